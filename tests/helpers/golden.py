"""Where the golden vectors, the tiny scenes and the real lego scene are."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
# tests/golden is a copy of ../shared/golden's .npz files and convert fixture, so a fresh
# clone without ../shared still runs every golden comparison.
GOLDEN = TESTS / "golden"
BLENDER = GOLDEN / "convert" / "input" / "tiny"  # 4 train/val/test images of 64x64 (RGBA)
MULTISCALE = GOLDEN / "convert" / "output" / "tiny"  # the same, converted: 64, 32, 16, 8 pixels
LEGO = Path(os.environ.get("MIPNERF_LEGO", REPO.parent / "shared" / "data" / "lego"))


def load_golden(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / f"{name}.npz") as z:
        return {key: z[key] for key in z.files}

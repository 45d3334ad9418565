"""Shared test fixtures: where the golden vectors and the real lego scene are."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
# tests/golden is a copy of ../shared/golden's .npz files and convert fixture, so a fresh
# clone without ../shared still runs every golden comparison.
GOLDEN = TESTS / "golden"
LEGO = Path(os.environ.get("MIPNERF_LEGO", TESTS.parent.parent / "shared" / "data" / "lego"))


def load_golden(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / f"{name}.npz") as z:
        return {key: z[key] for key in z.files}


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def lego_dir() -> Path:
    if not (LEGO / "transforms_train.json").exists():
        pytest.skip(f"the real lego scene is not at {LEGO} (set MIPNERF_LEGO to run this test)")
    return LEGO

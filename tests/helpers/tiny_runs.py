"""Tiny run folders for the eval/render tests: an untrained small MipNerf saved the way the trainer saves.

Building the checkpoint with the trainer's own payload and save functions (instead of
training) keeps these tests to seconds while exercising the real checkpoint format.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from golden import BLENDER, MULTISCALE
from tiny import TINY_MODEL

STEP = 7


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """Tiny models on a busy 2-core machine run several times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_run(
    out_dir: Path, multiscale: bool, exp_name: str | None = None, model: dict | None = None, **settings_values
) -> Path:
    """A run folder with ckpt/last.pt (and step-0000007.pt) of a tiny untrained model; returns the run folder."""
    from mipnerf_cli.core.models.mipnerf import MipNerf
    from mipnerf_cli.runs import checkpoints
    from mipnerf_cli.runs.payload import make_payload
    from mipnerf_cli.settings import resolve_train_settings

    settings = resolve_train_settings(
        None,
        {
            "data": MULTISCALE if multiscale else BLENDER,
            "multiscale": multiscale,
            "out_dir": out_dir,
            "exp_name": exp_name or ("tiny-multiscale" if multiscale else "tiny"),
            "device": "cpu",
            "tensorboard": False,
            "model": {**TINY_MODEL, **(model or {})},
            **settings_values,
        },
    )
    torch.manual_seed(0)
    network = MipNerf(settings.model.to_model_config())
    optimizer = torch.optim.Adam(network.parameters())
    kind = "multiscale" if multiscale else "blender"
    payload = make_payload(STEP, network, optimizer, settings, kind, settings.run_dir, 0.0)
    checkpoints.save_step(settings.run_dir / "ckpt", payload, keep=1)
    return settings.run_dir


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

"""Tiny run folders for the eval/render tests: an untrained small MipNerf saved the way the trainer saves.

Building the checkpoint with the trainer's own payload and save functions (instead of
training) keeps these tests to seconds while exercising the real checkpoint format.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from golden import GOLDEN

BLENDER = GOLDEN / "convert" / "input" / "tiny"  # 4 images of 64x64 per split
MULTISCALE = GOLDEN / "convert" / "output" / "tiny"  # the same converted: 64, 32, 16, 8 pixels
TINY_MODEL = {
    "num_samples": 4,
    "netdepth": 2,
    "netwidth": 16,
    "netwidth_condition": 8,
    "max_deg_point": 4,
    "deg_view": 2,
}
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


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m mipnerf_cli ARGS` as a user would run it."""
    return subprocess.run([sys.executable, "-m", "mipnerf_cli", *args], capture_output=True, text=True, timeout=300)


class CliResult:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli_in_process(capsys, *args: str) -> CliResult:
    """`mipnerf ARGS` through the real entry point (`cli.main`), without a new interpreter.

    Starting Python with torch takes seconds on a busy machine; this runs the same code
    path (Typer parsing, the MipNerfError/ValidationError handlers, exit codes).
    """
    from mipnerf_cli import cli as cli_module

    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["mipnerf", *args]
    try:
        cli_module.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

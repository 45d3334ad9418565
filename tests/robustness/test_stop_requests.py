"""Ctrl+C / SIGTERM reach long renders: validation, eval and render stop between chunks.

Real processes get real signals while a render is under way whose views take far longer
than the time allowed to stop (a 96x96 view rendered one ray per chunk), so only a check
between chunks can meet it.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from cli_runner import mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from processes import MIPNERF, start, wait_until
from tiny import tiny_settings

from mipnerf_cli.core.models.base import RadianceField
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.core.render import RenderStopped, render_rays
from mipnerf_cli.runs import checkpoints

SIZE = 96
TINY = tiny_settings(
    batch_size=32,
    max_steps=2,
    check_interval=2,
    log_interval=1,
    val_views=2,
    val_downscale=1,
    val_chunk=1,  # SIZE * SIZE forward passes per view: tens of seconds on a CPU
)
STOP_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory, mipnerf) -> Path:
    path = tmp_path_factory.mktemp("scene") / "demo"
    result = mipnerf("demo-scene", path, "--size", SIZE, "--train", 2, "--val", 1, "--test", 2)
    assert result.returncode == 0, result.stderr
    return path


def stop_and_time(process: subprocess.Popen, signum: int) -> float:
    process.send_signal(signum)
    sent = time.monotonic()
    try:
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return time.monotonic() - sent


def test_render_rays_asks_should_stop_between_chunks():
    class Counting(RadianceField):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))
            self.calls = 0

        def forward(self, rays, randomized, white_bkgd, generator=None, noise=None, last_level_only=False):
            self.calls += 1
            n = rays.origins.shape[0]

            class Level:
                rgb, distance, acc = torch.zeros(n, 3), torch.zeros(n), torch.zeros(n)

            return [Level]

    n = 10
    rays = RayBundle(
        origins=torch.zeros(n, 3),
        directions=torch.ones(n, 3),
        viewdirs=torch.ones(n, 3),
        radii=torch.ones(n, 1),
        lossmult=torch.ones(n, 1),
        near=torch.zeros(n, 1),
        far=torch.ones(n, 1),
    )
    model = Counting()
    answers = iter([False, False, True])
    with pytest.raises(RenderStopped):
        render_rays(model, rays, 3, False, should_stop=lambda: next(answers))
    assert model.calls == 2  # two chunks, then the stop
    model.calls = 0
    assert render_rays(model, rays, 3, False, should_stop=lambda: False)["rgb"].shape == (n, 3)
    assert model.calls == 4


def test_sigterm_during_validation_saves_the_finished_step_and_exits_within_seconds(tmp_path, scene):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "out" / "run"
    process = start(
        *MIPNERF,
        "train",
        "--config",
        config,
        "--data",
        scene,
        "--out-dir",
        tmp_path / "out",
        "--exp-name",
        "run",
        "--no-progress",
        folder=tmp_path,
    )
    # The step's checkpoint is written just before validation starts.
    wait_until(lambda: (run / "ckpt" / "step-0000002.pt").exists(), process, 240, "the checkpoint of step 2", 0.02)
    time.sleep(1.0)  # well into the first view
    seconds = stop_and_time(process, signal.SIGTERM)
    out, err = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert process.returncode == 143, err  # SIGTERM's code (Ctrl+C: 130), as before
    assert seconds < STOP_WITHIN_S, f"took {seconds:.1f}s to stop"
    assert "SIGTERM: stopping after this step and saving" in err and "Traceback" not in err
    assert f"stopped at step 2; saved {run / 'ckpt' / 'step-0000002.pt'}; continue with --resume auto" in out
    assert "validation psnr" not in out  # the interrupted validation reports nothing
    payload, path = checkpoints.load_newest_good(run / "ckpt")
    assert (payload["step"], path.name) == (2, "last.pt")
    metrics = (run / "metrics.jsonl").read_text()
    assert '"split": "val"' not in metrics and '"step": 2' in metrics


@pytest.fixture(scope="module")
def trained(tmp_path_factory, scene, mipnerf) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "val_views": 0}))
    result = mipnerf(
        "train", "--config", config, "--data", scene, "--out-dir", folder / "out", "--exp-name", "run", "--no-progress"
    )
    assert result.returncode == 0, result.stderr
    return folder / "out" / "run"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_eval_exits_130_within_seconds_and_writes_nothing(tmp_path, trained, signum):
    before = snapshot(trained)
    process = start(
        *MIPNERF,
        "eval",
        "--run",
        trained,
        "--chunk",
        1,
        "--device",
        "cpu",
        "--cpu-threads",
        1,
        "--no-progress",
        "--save-image",
        folder=tmp_path,
    )
    wait_until(lambda: any((trained / "eval").glob(".2.partial-*/images")), process, 240, "eval's first image", 0.02)
    time.sleep(1.0)
    seconds = stop_and_time(process, signum)
    err = (tmp_path / "stderr").read_text()
    assert process.returncode == 130 and err.strip() == "interrupted", err
    assert seconds < STOP_WITHIN_S, f"took {seconds:.1f}s to stop"
    assert snapshot(trained) == before  # no staging folder, not even an empty eval/


def test_sigterm_during_render_exits_130_within_seconds_and_writes_nothing(tmp_path, trained):
    before = snapshot(trained)
    process = start(
        *MIPNERF,
        "render",
        "--run",
        trained,
        "--frames",
        3,
        "--chunk",
        1,
        "--format",
        "png",
        "--device",
        "cpu",
        "--cpu-threads",
        1,
        "--no-progress",
        folder=tmp_path,
    )
    wait_until(
        lambda: any((trained / "render").glob(".spheric.partial-*/frames")), process, 240, "the first frame", 0.02
    )
    time.sleep(1.0)
    seconds = stop_and_time(process, signal.SIGTERM)
    err = (tmp_path / "stderr").read_text()
    assert process.returncode == 130 and err.strip() == "interrupted", err
    assert seconds < STOP_WITHIN_S, f"took {seconds:.1f}s to stop"
    assert snapshot(trained) == before

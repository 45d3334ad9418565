"""The grid model (`model_family: trimip`, `--config fast`) through every command, and
`train --max-minutes` / the ETA rules for both models, on tiny demo scenes in seconds."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from golden import GOLDEN

from mipnerf_cli.reporting import human_duration
from mipnerf_cli.training.loop import long_schedule_warning

TINY_FAST = {
    "model_family": "trimip",
    "batch_size": 64,
    "max_steps": 8,
    "check_interval": 4,
    "log_interval": 2,
    "val_views": 1,
    "device": "cpu",
    "tensorboard": False,
    "cpu_threads": 1,
    "lr_init": 1.0e-2,
    "trimip": {
        "plane_resolution": 16,
        "plane_features": 4,
        "hidden": 16,
        "geo_features": 7,
        "deg_view": 2,
        "march_steps": 32,
        "occupancy_resolution": 8,
        "occupancy_interval": 2,
        "occupancy_warmup": 4,
    },
}
TINY_PAPER = {
    "batch_size": 32,
    "max_steps": 100000,
    "check_interval": 100000,
    "log_interval": 1,
    "val_views": 0,
    "device": "cpu",
    "tensorboard": False,
    "cpu_threads": 1,
    "model": {
        "num_samples": 4,
        "netdepth": 2,
        "netwidth": 16,
        "netwidth_condition": 8,
        "max_deg_point": 4,
        "deg_view": 2,
    },
}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, mipnerf):
    """A demo scene (16 px, 4 train / 2 test views), its multiscale conversion and the tiny configs."""
    root = tmp_path_factory.mktemp("fast")
    result = mipnerf("demo-scene", root / "demo", "--size", 16, "--train", 4, "--val", 1, "--test", 2)
    assert result.returncode == 0, result.stderr
    result = mipnerf("convert", root / "demo", root / "multiscale")
    assert result.returncode == 0, result.stderr
    (root / "fast.yaml").write_text(yaml.safe_dump(TINY_FAST))
    (root / "paper.yaml").write_text(yaml.safe_dump(TINY_PAPER))
    return root


@pytest.fixture(scope="module")
def fast_run(scenes, mipnerf):
    result = mipnerf(
        "train", "--config", scenes / "fast.yaml", "--multiscale", "--data", scenes / "multiscale" / "demo",
        "--out-dir", scenes / "runs", "--exp-name", "fast", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "done: step 8" in result.stdout
    return scenes / "runs" / "fast"


def test_the_checkpoint_records_the_family_and_loads(fast_run):
    from mipnerf_cli.core.models.trimip import TriMipRF
    from mipnerf_cli.runs import checkpoints
    from mipnerf_cli.runs.trained import load_trained_model

    payload = checkpoints.load_checkpoint(fast_run / "ckpt" / "last.pt")
    assert payload["model_family"] == "trimip"
    assert payload["model_config"]["plane_resolution"] == 16 and payload["model_config"]["prefilter"] is True
    assert "occupied" in payload["model"]
    trained = load_trained_model(fast_run, None, torch.device("cpu"))
    assert isinstance(trained.model, TriMipRF)
    # The grid was updated during training (steps 1, 3, 5, 7), so it is no longer the all-occupied start.
    assert torch.equal(trained.model.occupied, payload["model"]["occupied"])


def test_eval_render_export_plot_on_the_fast_run(fast_run, mipnerf):
    result = mipnerf("eval", "--run", fast_run, "--scale", 2, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (fast_run / "eval" / "8" / "results.json").is_file()
    result = mipnerf("render", "--run", fast_run, "--frames", 2, "--scale", 2, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (fast_run / "render" / "spheric" / "rgb.mp4").is_file()
    result = mipnerf("export", fast_run, "--resolution", 12)
    assert result.returncode == 0, result.stderr
    assert (fast_run / "export" / "mesh.ply").is_file()
    result = mipnerf("plot", fast_run)
    assert result.returncode == 0, result.stderr
    assert (fast_run / "quality.png").is_file()


def test_the_viewer_renders_the_fast_model(fast_run):
    import numpy as np

    from mipnerf_cli.runs.trained import load_trained_model
    from mipnerf_cli.viewer import cameras, render

    trained = load_trained_model(fast_run, None, torch.device("cpu"))
    view = cameras.ViewCamera(np.array([[1, 0, 0, 0], [0, 0, -1, -4.0], [0, 1, 0, 0]], dtype=float), 0.7, 1.0)
    renderer = render.ProgressiveRenderer(trained.model, True, 2.0, 6.0, chunk=64)
    image = renderer.render(view, 12, 12)
    assert image.shape == (12, 12, 3) and image.dtype == np.uint8
    # The viewer's render queue times each finished image: the "Frame time" line shows it.
    frames = []
    queue = render.RenderQueue(renderer, frames.append)
    try:
        queue.submit(view, 16)
        assert queue.wait_idle(60)
    finally:
        queue.stop()
    final = frames[-1]
    assert final.final and (final.width, final.height) == (16, 16) and 0 < final.seconds < 60
    assert render.frame_time_text(final) == f"16x16: {final.seconds:.2f} s ({1 / final.seconds:.1f} fps)"
    assert all(render.frame_time_text(f) is None for f in frames if f.seconds is None)


def test_bench_measures_the_grid_model(scenes, mipnerf):
    result = mipnerf(
        "bench", "--config", scenes / "fast.yaml", "--steps", 1, "--warmup", 0, "--batch", 32, "--chunk", 32, "--json"
    )
    assert result.returncode == 0, result.stderr
    import json

    phases = json.loads(result.stdout)["phases"]
    assert [(p["phase"], p["grid"].split()[0]) for p in phases] == [
        ("train", "ball"), ("render", "ball"), ("train", "off"), ("render", "off"),
    ]  # fmt: skip
    with_grid, without = phases[0], phases[2]
    assert 0 < with_grid["samples_per_ray"] < without["samples_per_ray"]
    assert all(p["rays_per_s"] > 0 for p in phases)


def test_the_ablation_flag_drops_prefiltering(scenes, mipnerf):
    result = mipnerf(
        "train", "--config", scenes / "fast.yaml", "--multiscale", "--data", scenes / "multiscale" / "demo",
        "--out-dir", scenes / "runs", "--exp-name", "ablation", "--no-integration", "--max-steps", 2, "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from mipnerf_cli.runs import checkpoints

    payload = checkpoints.load_checkpoint(scenes / "runs" / "ablation" / "ckpt" / "last.pt")
    assert payload["model_config"]["prefilter"] is False


@pytest.mark.parametrize("config", ["fast.yaml", "paper.yaml"])
def test_max_minutes_stops_saves_and_continues(scenes, mipnerf, config):
    name = f"budget-{config[:-5]}"
    args = ("train", "--config", scenes / config, "--data", scenes / "demo", "--out-dir", scenes / "runs")
    result = mipnerf(*args, "--exp-name", name, "--max-minutes", 0.004, "--max-steps", 100000, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "time budget spent (0.004 min of training)" in result.stdout
    from mipnerf_cli.runs import checkpoints

    first = checkpoints.load_checkpoint(scenes / "runs" / name / "ckpt" / "last.pt")
    assert 0 < first["step"] < 100000 and first["elapsed_s"] > 0.1
    # The same budget again: nothing left to do.
    again = mipnerf(*args, "--exp-name", name, "--max-minutes", 0.004, "--max-steps", 100000, "--no-progress")
    assert again.returncode == 0 and "raise --max-minutes" in again.stdout
    assert checkpoints.load_checkpoint(scenes / "runs" / name / "ckpt" / "last.pt")["step"] == first["step"]
    # --max-steps without a budget continues from there.
    target = first["step"] + 2
    more = mipnerf(*args, "--exp-name", name, "--max-steps", target, "--no-progress")
    assert more.returncode == 0, more.stderr
    assert "resuming from" in more.stdout and f"done: step {target}" in more.stdout


@pytest.mark.parametrize(
    "flags, fragments",
    [
        (["--max-minutes", "0"], ("max_minutes", "greater than 0")),
        (["--max-minutes", "-3"], ("max_minutes", "greater than 0")),
        (["--max-minutes", "nan"], ("max_minutes", "finite")),
        (["--max-minutes", "inf"], ("max_minutes", "finite")),
    ],
)
def test_bad_budgets_are_refused(scenes, mipnerf, flags, fragments):
    out = scenes / "refused"
    before = snapshot(scenes)
    result = mipnerf("train", "--config", scenes / "fast.yaml", "--data", scenes / "demo", "--out-dir", out, *flags)
    assert_refused(result, *fragments)
    assert snapshot(scenes) == before


def test_the_grid_model_refuses_captures(scenes, mipnerf):
    before = snapshot(scenes)
    result = mipnerf(
        "train", "--config", scenes / "fast.yaml", "--data", GOLDEN / "llff" / "llff_scene", "--factor", 2,
        "--out-dir", scenes / "refused",
    )  # fmt: skip
    assert_refused(result, "grid model", "capture", "--config llff-cpu")
    assert snapshot(scenes) == before


def test_packaged_fast_config_resolves():
    from mipnerf_cli.settings import resolve_train_settings

    settings = resolve_train_settings("fast", {"data": GOLDEN / "convert" / "output" / "tiny", "multiscale": True})
    family, config = settings.model_family_config()
    assert family == "trimip" and config.prefilter and config.plane_resolution == 128


def test_trimip_settings_mirror_the_engine_config():
    import dataclasses

    from mipnerf_cli.core.models.trimip import TriMipConfig
    from mipnerf_cli.settings import TriMipSettings

    engine = {f.name: f.default for f in dataclasses.fields(TriMipConfig)}
    settings = {name: field.default for name, field in TriMipSettings.model_fields.items()}
    assert settings == engine


def test_human_durations():
    assert [human_duration(s) for s in (0.4, 42, 61, 3599, 7980, 86400, 97200, 31596018)] == [
        "0 s", "42 s", "1 min", "59 min", "2 h 13 min", "1 d", "1 d 3 h", "365 d",
    ]  # fmt: skip


def test_long_schedule_warning_names_the_ways_out():
    # The paper's 1M steps at 0.0317 steps/s (`mipnerf train --data lego` on 2 cores): a year.
    line = long_schedule_warning(20, 20 / 0.0317, 1_000_000 - 20, None)
    assert line is not None and "365 d" in line
    for name in ("lego-cpu", "fast", "--max-minutes"):
        assert name in line
    assert long_schedule_warning(20, 10.0, 5000, None) is None  # 42 min
    assert long_schedule_warning(20, 20 / 0.0317, 1_000_000, 60.0) is None  # bounded to an hour
    assert long_schedule_warning(0, 0.0, 10, None) is None
    assert math.isclose(20 / 0.0317 / 20 * 999_980 / 86400, 365.1, rel_tol=1e-2)

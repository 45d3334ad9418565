"""The whole workflow through the installed `mipnerf` console script, as a user runs it.

demo-scene -> convert -> train (multiscale and single-scale) -> eval -> render, each a
separate process, on a 32 px scene with a tiny model; then a training run killed
(SIGKILL) or interrupted (Ctrl+C) after a checkpoint and continued with `--resume auto`.
Everything here is checked from the outside: exit codes, the files each command writes,
and what they contain.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from processes import start, wait_until
from tiny import WIDER, tiny_settings

TINY_CONFIG = tiny_settings(
    model=WIDER, batch_size=256, lr_init=5.0e-3, lr_final=5.0e-4, lr_delay_steps=0, log_interval=5, val_views=1
)
SIZE = 32
STEPS = 30
CHECK = 10
TEST_VIEWS = 2


def mipnerf_executable() -> str:
    """The console script installed next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("mipnerf")
    found = str(beside) if beside.exists() else shutil.which("mipnerf")
    if found is None:
        pytest.fail("the `mipnerf` console script is not installed; run `pip install -e .` (or `make install`)")
    return found


# A real process per command, not the `mipnerf` fixture: this file checks the installed console script.
def run(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("MIPNERF_DEBUG", None)
    result = subprocess.run(
        [mipnerf_executable(), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    result = run(*args, timeout=timeout)
    assert result.returncode == 0, f"mipnerf {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def metrics(run_dir: Path, split: str = "train") -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["split"] == split]


def checkpoint_step(path: Path) -> int:
    from mipnerf_cli.runs.checkpoints import load_checkpoint

    return int(load_checkpoint(path)["step"])


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> dict:
    """Run the demo pipeline once; the tests below inspect what each command left."""
    root = tmp_path_factory.mktemp("e2e")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    blender = root / "scenes" / "tiny"
    multiscale_root = root / "multiscale"
    runs = root / "runs"
    outputs = {"root": root, "config": config, "blender": blender, "multiscale": multiscale_root / "tiny", "runs": runs}
    outputs["demo_scene"] = ok(
        "demo-scene", blender, "--size", SIZE, "--train", 6, "--val", 1, "--test", TEST_VIEWS, "--workers", 1
    )
    outputs["convert"] = ok("convert", blender, multiscale_root, "--workers", 1)
    outputs["train"] = ok(
        "train",
        "--multiscale",
        "--config",
        config,
        "--data",
        outputs["multiscale"],
        "--out-dir",
        runs,
        "--max-steps",
        STEPS,
        "--check-interval",
        CHECK,
        "--no-progress",
    )
    run_dir = runs / "tiny-multiscale"
    outputs["run_dir"] = run_dir
    outputs["eval"] = ok("eval", "--run", run_dir, "--scale", 4, "--save-image", "--cpu-threads", 1, "--no-progress")
    outputs["render"] = ok(
        "render",
        "--run",
        run_dir,
        "--path",
        "spheric",
        "--frames",
        3,
        "--fps",
        10,
        "--resolution",
        "16x16",
        "--cpu-threads",
        1,
        "--no-progress",
    )
    return outputs


def test_demo_scene_and_convert_write_both_formats(workflow):
    blender, multiscale = workflow["blender"], workflow["multiscale"]
    assert "wrote" in workflow["demo_scene"].stdout
    for split, count in (("train", 6), ("val", 1), ("test", TEST_VIEWS)):
        frames = json.loads((blender / f"transforms_{split}.json").read_text())["frames"]
        assert len(frames) == count
        assert len(list((blender / split).glob("r_*.png"))) == count
    metadata = json.loads((multiscale / "metadata.json").read_text())
    assert len(metadata["test"]["file_path"]) == 4 * TEST_VIEWS
    assert sorted(set(metadata["test"]["width"])) == [SIZE // 8, SIZE // 4, SIZE // 2, SIZE]
    assert (multiscale / metadata["test"]["file_path"][-1]).is_file()


def test_train_writes_the_run_folder(workflow):
    run_dir = workflow["run_dir"]
    out = workflow["train"].stdout
    assert f"done: step {STEPS}" in out
    assert f"step {STEPS}: validation psnr" in out
    ckpt = run_dir / "ckpt"
    assert {p.name for p in ckpt.iterdir()} == {
        "last.pt",
        *(f"step-{s:07d}.pt" for s in range(CHECK, STEPS + 1, CHECK)),
    }
    assert checkpoint_step(ckpt / "last.pt") == STEPS
    assert not (run_dir / ".lock").exists()
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert recorded["multiscale"] is True and recorded["max_steps"] == STEPS and recorded["model"]["netwidth"] == 32
    assert (run_dir / recorded["data"]).resolve() == workflow["multiscale"].resolve()
    train_lines = metrics(run_dir)
    assert [r["step"] for r in train_lines] == list(range(5, STEPS + 1, 5))
    assert all(math.isfinite(r["loss"]) for r in train_lines)
    val = metrics(run_dir, "val")
    assert [r["step"] for r in val] == [10, 20, 30]
    assert len(val[-1]["psnr_levels"]) == 4
    assert val[-1]["psnr"] > val[0]["psnr"], "validation PSNR did not improve over 30 steps"


def test_eval_writes_results_for_every_scale(workflow):
    run_dir = workflow["run_dir"]
    folder = run_dir / "eval" / str(STEPS)
    results = json.loads((folder / "results.json").read_text())
    assert str(folder / "results.json") in workflow["eval"].stdout
    assert "average" in workflow["eval"].stdout
    assert results["step"] == STEPS and results["kind"] == "multiscale" and results["split"] == "test"
    assert Path(results["checkpoint"]).resolve() == (run_dir / "ckpt" / "last.pt").resolve()
    assert [s["factor"] for s in results["scales"]] == [1, 2, 4, 8]
    assert [s["width"] for s in results["scales"]] == [SIZE, SIZE // 2, SIZE // 4, SIZE // 8]
    assert [s["num_images"] for s in results["scales"]] == [TEST_VIEWS] * 4
    psnrs = [s["psnr"] for s in results["scales"]]
    assert all(5.0 < p < 60.0 for p in psnrs)
    assert results["average"]["psnr"] == pytest.approx(np.mean(psnrs))
    # SSIM's 11x11 window needs images at least that large.
    assert [s["ssim"] is not None for s in results["scales"]] == [True, True, False, False]
    assert 0.0 < results["scales"][0]["ssim"] <= 1.0
    assert len(results["images"]) == 4 * TEST_VIEWS
    assert results["num_rays"] == TEST_VIEWS * sum((SIZE >> k) ** 2 for k in range(4))
    # The trainer's last validation rendered the first test view at every scale with the
    # same weights: the separate eval process must score it the same.
    first_view = [r["psnr"] for r in results["images"] if r["file"].startswith("000_")]
    np.testing.assert_allclose(first_view, metrics(run_dir, "val")[-1]["psnr_levels"], atol=1e-3)
    images = {p.name for p in (folder / "images").iterdir()}
    for level in range(4):
        for kind in ("rgb", "gt", "depth", "acc"):
            assert f"000_d{level}_{kind}.png" in images
    import imageio.v3 as iio

    assert iio.imread(folder / "images" / "000_d3_rgb.png").shape[:2] == (SIZE // 8, SIZE // 8)


def test_render_writes_videos(workflow):
    folder = workflow["run_dir"] / "render" / "spheric"
    for name in ("rgb", "depth", "acc"):
        video = folder / f"{name}.mp4"
        assert str(video) in workflow["render"].stdout
        frames = video_frames(video)
        assert len(frames) == 3 and frames[0].shape[:2] == (16, 16)
    assert not (folder / "frames").exists()


def video_frames(video: Path) -> list:
    import imageio.v2 as imageio

    with imageio.get_reader(video, format="FFMPEG") as reader:
        return [frame for frame in reader]


def test_rerunning_a_finished_train_changes_nothing(workflow):
    run_dir = workflow["run_dir"]
    before = (run_dir / "ckpt" / "last.pt").read_bytes()
    result = ok(
        "train",
        "--multiscale",
        "--config",
        workflow["config"],
        "--data",
        workflow["multiscale"],
        "--out-dir",
        workflow["runs"],
        "--max-steps",
        STEPS,
        "--check-interval",
        CHECK,
        "--no-progress",
    )
    assert f"already at step {STEPS}" in result.stdout
    assert (run_dir / "ckpt" / "last.pt").read_bytes() == before


def test_single_scale_train_and_eval_at_scale_1(workflow):
    runs = workflow["runs"]
    ok(
        "train",
        "--config",
        workflow["config"],
        "--data",
        workflow["blender"],
        "--out-dir",
        runs,
        "--exp-name",
        "single",
        "--max-steps",
        10,
        "--check-interval",
        10,
        "--no-progress",
    )
    result = ok("eval", "--run", runs / "single", "--scale", 1, "--cpu-threads", 1, "--no-progress")
    results = json.loads((runs / "single" / "eval" / "10" / "results.json").read_text())
    assert results["kind"] == "blender" and results["step"] == 10
    assert [(s["factor"], s["width"], s["num_images"]) for s in results["scales"]] == [(1, SIZE, TEST_VIEWS)]
    assert "d0 (1/1)" in result.stdout
    # A single-scale scene has one level: asking for four is one clear line, exit 1.
    refused = run("eval", "--run", runs / "single", "--scale", 4, "--no-progress")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: --scale 4:") and refused.stderr.count("\n") == 1


def _train_args(workflow, exp_name: str, max_steps: int, check_interval: int) -> list:
    return [
        "train",
        "--multiscale",
        "--config",
        workflow["config"],
        "--data",
        workflow["multiscale"],
        "--out-dir",
        workflow["runs"],
        "--exp-name",
        exp_name,
        "--max-steps",
        max_steps,
        "--check-interval",
        check_interval,
        "--no-progress",
    ]


def test_resume_auto_after_sigkill_continues_from_the_saved_step(workflow):
    run_dir = workflow["runs"] / "killed"
    trainer = start(mipnerf_executable(), *_train_args(workflow, "killed", 100_000, 10))
    # step-N.pt is written before last.pt is linked to it: wait for both of the second save.
    last = run_dir / "ckpt" / "last.pt"
    wait_until(
        lambda: (run_dir / "ckpt" / "step-0000020.pt").exists() and last.exists() and checkpoint_step(last) >= 20,
        trainer,
        timeout=90,
        what="the second save",
        poll=0.005,
    )
    trainer.send_signal(signal.SIGKILL)
    trainer.communicate()
    assert trainer.returncode == -signal.SIGKILL
    saved = checkpoint_step(run_dir / "ckpt" / "last.pt")
    assert saved >= 20

    target = saved + 10
    result = ok(*_train_args(workflow, "killed", target, 10), "--resume", "auto")
    assert f"at step {saved}" in result.stdout and "resuming from" in result.stdout
    assert f"done: step {target}" in result.stdout
    assert checkpoint_step(run_dir / "ckpt" / "last.pt") == target
    # Steps after the last save were lost with the process and trained once more, no gaps, no repeats.
    assert [r["step"] for r in metrics(run_dir)] == list(range(5, target + 1, 5))


def test_ctrl_c_saves_exits_130_and_resume_continues(workflow):
    run_dir = workflow["runs"] / "interrupted"
    trainer = start(mipnerf_executable(), *_train_args(workflow, "interrupted", 100_000, 100_000))
    wait_until(
        lambda: (run_dir / "metrics.jsonl").exists() and len(metrics(run_dir)) >= 2,
        trainer,
        timeout=90,
        what="two logged steps",
        poll=0.005,
    )
    trainer.send_signal(signal.SIGINT)
    out, err = trainer.communicate(timeout=60)
    assert trainer.returncode == 130, err
    assert "Traceback" not in err
    saved = checkpoint_step(run_dir / "ckpt" / "last.pt")
    assert saved >= 10 and f"stopped at step {saved}" in out

    result = ok(*_train_args(workflow, "interrupted", saved + 5, 100_000))  # --resume auto is the default
    assert f"resuming from {run_dir / 'ckpt'}" in result.stdout and f"at step {saved}" in result.stdout
    assert checkpoint_step(run_dir / "ckpt" / "last.pt") == saved + 5

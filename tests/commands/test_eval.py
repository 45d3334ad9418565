"""`mipnerf eval`: results.json (validated by its schema), the per-scale numbers, images, bad input."""

from __future__ import annotations

import json
import math
import shutil

import imageio.v3 as iio
import pytest
import torch
from tiny import tiny_config
from tiny_runs import (
    BLENDER,
    MULTISCALE,
    STEP,
    assert_one_line_error,
    make_run,
)

from mipnerf_cli import evaluation
from mipnerf_cli.core.metrics import psnr, ssim, truncated_to_uint8
from mipnerf_cli.core.render import render_image
from mipnerf_cli.data import load_scene
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.evaluation import EvalResults, evaluate, read_results
from mipnerf_cli.runs.trained import load_trained_model
from mipnerf_cli.settings import EvalSettings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {"blender": make_run(out, multiscale=False), "multiscale": make_run(out, multiscale=True)}


def run_eval(**values) -> tuple[EvalResults, object]:
    return evaluate(EvalSettings(device="cpu", progress=False, **values))


def test_blender_eval_writes_valid_results_and_images(runs):
    run = runs["blender"]
    results, folder = run_eval(run=run, save_image=True)
    assert folder == run / "eval" / str(STEP)
    on_disk = read_results(folder / "results.json")  # schema validation
    assert on_disk == results
    assert results.exp_name == "tiny" and results.step == STEP and results.kind == "blender"
    assert results.checkpoint == str(run / "ckpt" / "last.pt")
    assert [s.scale for s in results.scales] == [0]
    scale = results.scales[0]
    assert (scale.num_images, scale.height, scale.width, scale.factor) == (4, 64, 64, 1)
    assert [row.file for row in results.images] == ["r_0", "r_1", "r_2", "r_3"]
    psnrs = [row.psnr for row in results.images]
    assert scale.psnr == pytest.approx(sum(psnrs) / 4)
    assert scale.psnr_std == pytest.approx(torch.tensor(psnrs, dtype=torch.float64).std(unbiased=False).item())
    assert results.average.psnr == pytest.approx(scale.psnr) and results.average.ssim == pytest.approx(scale.ssim)
    assert results.num_rays == 4 * 64 * 64 and results.rays_per_second > 0
    assert results.lpips_available is False and results.lpips_note and scale.lpips is None
    json_text = (folder / "results.json").read_text()
    assert "NaN" not in json_text and "Infinity" not in json_text

    # The numbers are those of rendering and scoring image 0 by hand.
    trained = load_trained_model(run, None, torch.device("cpu"))
    images = load_scene(BLENDER, "test", multiscale=False)
    rays, target = images.image_rays(0)
    rgb = render_image(trained.model, rays, 64, 64, chunk=1000, white_bkgd=True)["rgb"].clamp(0, 1)
    assert results.images[0].psnr == pytest.approx(psnr(rgb, target), abs=1e-4)
    assert results.images[0].ssim == pytest.approx(ssim(rgb, target), abs=1e-4)
    # Beside them, nerfbaselines' protocol: both images truncated to 8 bits (never above the float score here).
    rgb8, target8 = truncated_to_uint8(rgb), truncated_to_uint8(target)
    assert results.images[0].psnr_uint8 == pytest.approx(psnr(rgb8, target8), abs=1e-4)
    assert results.images[0].ssim_uint8 == pytest.approx(ssim(rgb8, target8), abs=1e-4)
    assert scale.psnr_uint8 == pytest.approx(sum(row.psnr_uint8 for row in results.images) / 4)
    assert results.average.psnr_uint8 == scale.psnr_uint8 and results.average.ssim_uint8 == scale.ssim_uint8

    names = sorted(p.name for p in (folder / "images").iterdir())
    assert names == sorted(f"r_{i}_{kind}.png" for i in range(4) for kind in ("gt", "rgb", "depth", "acc"))
    for kind in ("gt", "rgb", "depth", "acc"):
        assert iio.imread(folder / "images" / f"r_1_{kind}.png").shape == (64, 64, 3)
    saved = torch.from_numpy(iio.imread(folder / "images" / "r_0_rgb.png")).float() / 255
    assert psnr(saved, rgb) > 45  # the PNG is the rendered image, up to 8-bit rounding


def test_multiscale_eval_reports_every_scale_and_the_average(runs):
    results, folder = run_eval(run=runs["multiscale"], limit=2)
    assert [(s.scale, s.factor, s.width, s.num_images) for s in results.scales] == [
        (0, 1, 64, 2),
        (1, 2, 32, 2),
        (2, 4, 16, 2),
        (3, 8, 8, 2),
    ]
    assert [row.file for row in results.images[:3]] == ["000_d0", "001_d0", "000_d1"]
    assert results.average.psnr == pytest.approx(sum(s.psnr for s in results.scales) / 4)
    # 8x8 images are smaller than the 11x11 SSIM window: no SSIM there, so no SSIM average.
    assert results.scales[3].ssim is None and results.scales[2].ssim is not None
    assert results.average.ssim is None
    assert results.num_rays == 2 * (64**2 + 32**2 + 16**2 + 8**2)
    assert not (folder / "images").exists()


def test_a_model_trained_at_a_downscale_is_scored_at_it_unless_told(runs, tmp_path):
    """Like google/mipnerf, whose `factor` shrinks every split: trained at 1/2, scored at 1/2."""
    run = make_run(tmp_path, multiscale=False, exp_name="half", downscale=2)
    results, _ = run_eval(run=run, limit=1, out=tmp_path / "as-trained")
    scale = results.scales[0]
    assert (scale.width, scale.height, results.num_rays) == (32, 32, 32 * 32)
    trained = load_trained_model(run, None, torch.device("cpu"))
    rays, target = load_scene(BLENDER, "test", multiscale=False, downscale=2).image_rays(0)
    rgb = render_image(trained.model, rays, 32, 32, chunk=1000, white_bkgd=True)["rgb"].clamp(0, 1)
    assert results.images[0].psnr == pytest.approx(psnr(rgb, target), abs=1e-4)

    results, _ = run_eval(run=run, limit=1, downscale=1, out=tmp_path / "full")
    assert (results.scales[0].width, results.num_rays) == (64, 64 * 64)
    # A multiscale scene has its own levels: nothing is shrunk.
    results, _ = run_eval(run=runs["multiscale"], limit=1, scale=1, downscale=4, out=tmp_path / "multiscale")
    assert results.scales[0].width == 64


def test_scale_limits_the_levels(runs):
    results, _ = run_eval(run=runs["multiscale"], scale=2, limit=1)
    assert [s.scale for s in results.scales] == [0, 1]
    assert results.average.ssim == pytest.approx((results.scales[0].ssim + results.scales[1].ssim) / 2)


def test_rerun_replaces_the_folder_and_leaves_no_staging(runs, tmp_path):
    out = tmp_path / "results"
    run_eval(ckpt=runs["blender"] / "ckpt" / f"step-{STEP:07d}.pt", out=out, limit=1, save_image=True)
    run_eval(ckpt=runs["blender"] / "ckpt" / f"step-{STEP:07d}.pt", out=out, limit=2)
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert read_results(out / "results.json").scales[0].num_images == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_failure_midway_leaves_no_results(runs, tmp_path, monkeypatch):
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return render_image(*args, **kwargs)

    monkeypatch.setattr(evaluation.scoring, "render_image", failing_render)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_eval(run=runs["blender"], out=tmp_path / "a" / "b", save_image=True)
    assert list(tmp_path.iterdir()) == []


def test_identical_rendering_gives_null_psnr_not_infinity(runs, tmp_path, monkeypatch):
    def perfect(model, rays, height, width, chunk, white_bkgd, **render_options):
        return {
            "rgb": torch.ones(height, width, 3),
            "distance": torch.full((height, width), 4.0),
            "acc": torch.zeros(height, width),
        }

    # A white target (the white background of an empty image) rendered exactly.
    monkeypatch.setattr(evaluation.scoring, "render_image", perfect)
    monkeypatch.setattr(evaluation.scoring, "psnr_of", lambda a, b: math.inf)
    results, folder = run_eval(run=runs["blender"], out=tmp_path / "r", limit=1)
    row = json.loads((folder / "results.json").read_text())["images"][0]
    assert row["psnr"] is None and results.scales[0].psnr is None


def test_check_scale_and_select_images():
    assert evaluation.run.check_scale(None, [0, 1, 0, 1], "multiscale", BLENDER) == 2
    with pytest.raises(MipNerfError, match="--scale 3: .* with 2 resolution levels; use --scale 2"):
        evaluation.run.check_scale(3, [0, 1, 0, 1], "multiscale", MULTISCALE)
    assert evaluation.run.select_images([0, 1, 0, 1, 0, 1], 2, limit=2) == [[0, 2], [1, 3]]
    assert evaluation.run.select_images([0, 1, 0, 1], 1, limit=None) == [[0, 2]]


# ----------------------------------------------------------------------------- bad input through the CLI entry point
# (missing, truncated or mismatched checkpoints and --scale beyond the data: tests/robustness/test_bad_input.py)


def test_run_prefers_a_step_file_newer_than_last(runs, tmp_path):
    from mipnerf_cli.runs.checkpoints import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(runs["blender"], run, ignore=shutil.ignore_patterns("eval"))
    payload = load_checkpoint(run / "ckpt" / "last.pt")
    save_checkpoint(run / "ckpt" / "step-0000009.pt", {**payload, "step": 9})  # killed before last.pt was updated
    trained = load_trained_model(run, None, torch.device("cpu"))
    assert (trained.step, trained.checkpoint_path.name) == (9, "step-0000009.pt")


def test_data_of_the_other_kind(runs, tmp_path, mipnerf):
    result = mipnerf(
        "eval",
        "--run",
        str(runs["blender"]),
        "--data",
        str(MULTISCALE),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "r"),
    )
    assert_one_line_error(result, "multiscale scene", "single-scale")
    result = mipnerf(
        "eval",
        "--run",
        str(runs["multiscale"]),
        "--data",
        str(BLENDER),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "r"),
    )
    assert_one_line_error(result, "single-scale (Blender) scene", "trained on a multiscale")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(runs, tmp_path, mipnerf):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = mipnerf("eval", "--run", str(runs["blender"]), "--device", "cpu", "--out", str(blocker / "eval"))
    assert_one_line_error(result, "cannot write to", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_run_and_ckpt_together_and_bad_values(runs, mipnerf):
    result = mipnerf("eval", "--run", str(runs["blender"]), "--ckpt", str(runs["blender"] / "ckpt" / "last.pt"))
    assert_one_line_error(result, "either --run", "--ckpt")
    result = mipnerf("eval", "--run", str(runs["blender"]), "--chunk", "0")
    assert result.returncode == 1 and "• chunk:" in result.stderr and "Traceback" not in result.stderr


def test_lpips_is_unavailable_without_the_package_or_its_weights(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    scorer, note = evaluation.scoring.lpips_scorer()
    assert scorer is None and "lpips package is not installed" in note

    # Installed, but the AlexNet weights were never downloaded: still nothing is fetched.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    scorer, note = evaluation.scoring.lpips_scorer()
    assert scorer is None and "never downloaded" in note and str(tmp_path) in note
    assert list(tmp_path.iterdir()) == []


def test_train_then_eval_then_render_through_the_cli(tmp_path, mipnerf):
    """The real pipeline on the tiny multiscale scene: a trained run folder is all eval/render need."""
    config = tiny_config(
        tmp_path / "tiny.yaml",
        batch_size=64,
        max_steps=4,
        check_interval=2,
        log_interval=1,
        val_views=0,
        lr_delay_steps=0,
    )
    result = mipnerf(
        "train",
        "--config",
        str(config),
        "--data",
        str(MULTISCALE),
        "--multiscale",
        "--out-dir",
        str(tmp_path / "out"),
        "--exp-name",
        "e2e",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "e2e"

    result = mipnerf(
        "eval",
        "--run",
        str(run),
        "--scale",
        "4",
        "--limit",
        "1",
        "--no-progress",
        "--save-image",
        "--cpu-threads",
        "1",
    )
    assert result.returncode == 0, result.stderr
    results = read_results(run / "eval" / "4" / "results.json")
    assert results.step == 4 and results.exp_name == "e2e" and len(results.scales) == 4
    assert results.data == str(MULTISCALE.resolve())
    assert len(list((run / "eval" / "4" / "images").iterdir())) == 4 * 4
    assert "average" in result.stdout and "d3 (1/8)" in result.stdout

    result = mipnerf(
        "render",
        "--run",
        str(run),
        "--frames",
        "3",
        "--resolution",
        "16x12",
        "--no-progress",
        "--cpu-threads",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert iio.imread(run / "render" / "spheric" / "depth.mp4").shape == (3, 12, 16, 3)


def test_out_never_replaces_a_file_or_a_foreign_folder(runs, tmp_path, mipnerf):
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    result = mipnerf("eval", "--run", str(runs["blender"]), "--device", "cpu", "--out", str(precious))
    assert_one_line_error(result, "notes.txt exists and is not a folder")
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.tex").write_text("keep me too")
    result = mipnerf("eval", "--run", str(runs["blender"]), "--device", "cpu", "--out", str(documents))
    assert_one_line_error(result, "documents already holds other files", "--out")
    assert precious.read_text() == "keep me" and (documents / "thesis.tex").read_text() == "keep me too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents", "notes.txt"]
    assert [p.name for p in documents.iterdir()] == ["thesis.tex"]
    # An empty folder is fine.
    (tmp_path / "empty").mkdir()
    run_eval(run=runs["blender"], out=tmp_path / "empty", limit=1)
    assert (tmp_path / "empty" / "results.json").is_file()


def test_staging_left_by_a_killed_eval_is_cleaned_up(runs, tmp_path):
    import sys

    from processes import start

    dead = start(sys.executable, "-c", "pass")
    dead.wait()
    leftover = tmp_path / f".r.partial-{dead.pid}-0000"
    leftover.mkdir()
    (leftover / "results.json").write_text("{")
    run_eval(run=runs["blender"], out=tmp_path / "r", limit=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]

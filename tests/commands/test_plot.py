import json

import imageio.v3 as iio
import numpy as np
import pytest

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.plotting import MEAN_COLOUR, plot_curves, read_metrics


def write_metrics(run, torn=False):
    run.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(50, 501, 50):
        lines.append({"step": step, "split": "train", "psnr": 10 + step / 50, "elapsed_s": step * 0.1})
        if step % 250 == 0:
            lines.append(
                {
                    "step": step,
                    "split": "val",
                    "psnr": 12 + step / 100,
                    "psnr_levels": [11, 12, 13, 14],
                    "elapsed_s": step * 0.1,
                }
            )
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    if torn:
        text += '{"step": 550, "spl'
    (run / "metrics.jsonl").write_text(text)


def test_read_metrics_splits_train_and_val_and_skips_a_torn_last_line(tmp_path):
    write_metrics(tmp_path / "run", torn=True)
    curves = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert curves.train_step == list(range(50, 501, 50))
    assert curves.val_step == [250, 500]
    assert curves.val_psnr == [14.5, 17.0]
    assert curves.val_levels[0] == [11, 12, 13, 14]


def test_damaged_line_in_the_middle_is_refused(tmp_path):
    run = tmp_path / "run"
    write_metrics(run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[2] = "not json"
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(MipNerfError, match="metrics.jsonl:3"):
        read_metrics(run / "metrics.jsonl")


def test_plot_draws_the_mean_test_curve(tmp_path):
    write_metrics(tmp_path / "run")
    image = plot_curves(read_metrics(tmp_path / "run" / "metrics.jsonl"), "run")
    assert image.dtype == np.uint8 and image.ndim == 3
    # the thick black test-mean line is drawn in both panels
    mean_pixels = np.all(image == np.array(MEAN_COLOUR, dtype=np.uint8), axis=-1)
    half = image.shape[1] // 2
    assert mean_pixels[:, :half].sum() > 50 and mean_pixels[:, half:].sum() > 50


def test_cli_writes_the_png_and_refuses_a_run_without_metrics(tmp_path, mipnerf):
    run = tmp_path / "run"
    write_metrics(run)
    result = mipnerf("plot", run)
    assert result.returncode == 0, result.stderr
    assert "17.00 dB at step 500" in result.stdout
    assert iio.imread(run / "quality.png").shape[:2] == (420, 1120)

    empty = tmp_path / "empty"
    empty.mkdir()
    result = mipnerf("plot", empty)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {empty / 'metrics.jsonl'} not found: give a run folder written by `mipnerf train`"
    ]
    assert not (empty / "quality.png").exists()


def test_a_val_record_with_scales_left_out_is_drawn_at_its_own_scales(tmp_path):
    """A CPU validation within its budget renders the smallest scales only ("levels")."""
    run = tmp_path / "run"
    run.mkdir()
    records = [
        {"step": 10, "split": "train", "psnr": 12.0},
        {"step": 10, "split": "val", "psnr": 15.0, "psnr_levels": [14.0, 16.0], "levels": [2, 3]},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    row = read_metrics(run / "metrics.jsonl").val_levels[0]
    assert np.isnan(row[:2]).all() and row[2:] == [14.0, 16.0]


def test_several_runs_are_drawn_in_one_figure_one_colour_each(tmp_path, mipnerf):
    from mipnerf_cli.plotting import RUN_COLOURS, plot_comparison

    write_metrics(tmp_path / "a")
    write_metrics(tmp_path / "b")
    image = plot_comparison(
        [("a", read_metrics(tmp_path / "a" / "metrics.jsonl")), ("b", read_metrics(tmp_path / "b" / "metrics.jsonl"))]
    )
    assert image.shape == (380 + 12 + 2 * 22, 1120, 3)
    half = image.shape[1] // 2
    for colour in RUN_COLOURS[:2]:
        pixels = np.all(image[:380] == np.array(colour, dtype=np.uint8), axis=-1)
        assert pixels[:, :half].sum() > 50 and pixels[:, half:].sum() > 50

    out = tmp_path / "both.png"
    result = mipnerf("plot", tmp_path / "a", tmp_path / "b", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "a: test PSNR 17.00 dB at step 500" in result.stdout
    assert "b: test PSNR 17.00 dB at step 500" in result.stdout
    assert iio.imread(out).shape[:2] == (436, 1120)

    missing = tmp_path / "missing"
    result = mipnerf("plot", tmp_path / "a", missing, "--out", tmp_path / "no.png")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {missing}: folder not found; give a run folder written by `mipnerf train`"
    ]
    assert not (tmp_path / "no.png").exists()


def test_a_comparison_of_runs_without_test_psnr_is_refused(tmp_path):
    from mipnerf_cli.plotting import plot_comparison

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "split": "train", "psnr": 12.0}) + "\n")
    with pytest.raises(MipNerfError, match="none of the runs has a test-view PSNR"):
        plot_comparison([("run", read_metrics(run / "metrics.jsonl")), ("run2", read_metrics(run / "metrics.jsonl"))])

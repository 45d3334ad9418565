"""benchmarks/gpu_check.sh, the first GPU run, in its dry mode (--device cpu, toy sizes):
every command it will run on the GPU runs here, so the script cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from golden import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run_script(*args: str, out: Path) -> subprocess.CompletedProcess:
    # A bash script that starts its own processes: a real process, not the `mipnerf` fixture.
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    env.pop("MIRROR", None)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_dry_run_runs_every_part_and_writes_its_figures(tmp_path):
    out = tmp_path / "gpu_check"
    result = run_script("--device", "cpu", out=out)
    assert result.returncode == 0, result.stdout + result.stderr
    status = dict(line.split("\t")[:2] for line in (out / "status.tsv").read_text().splitlines())
    expected = {
        "env",
        "tests",
        "bench_paper_32",
        "lego_convert",
        "lego_train",
        "lego_plot",
        "lego_eval",
        "fast_train",
        "fast_plot",
        "fast_eval",
        *(f"precision_{mp}_{tf}" for mp in ("mixed-precision", "fp32") for tf in ("tf32", "no-tf32")),
    }
    assert expected <= set(status), status
    assert all(status[name] == "0" for name in expected), status
    assert status["anchor_32"].startswith("skipped") and status["precision_compile"].startswith("skipped")

    bench = json.loads((out / "bench_paper_32.json").read_text())
    assert bench["train"]["rays_per_s"] > 0 and bench["render"]["rays_per_s"] > 0
    assert bench["train"]["rays_per_iteration"] == 32
    for mp in ("mixed-precision", "fp32"):
        for tf in ("tf32", "no-tf32"):
            precision = json.loads((out / f"precision_{mp}_{tf}.json").read_text())
            assert precision["train"]["rays_per_s"] > 0 and precision["render"] is None
            assert precision["fast_path"]["tf32"] is False  # a CPU: the switches do not apply
    assert "passed" in (out / "tests.txt").read_text()
    assert "torch" in (out / "env.txt").read_text()

    lego = out / "lego"
    records = [json.loads(line) for line in (lego / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4] and all(len(r["psnr_levels"]) == 4 for r in val)
    assert (lego / "quality.png").stat().st_size > 0
    results = json.loads((lego / "eval" / "results.json").read_text())
    assert results["step"] == 4 and [s["num_images"] for s in results["scales"]] == [2, 2, 2, 2]
    fast = out / "fast"
    records = [json.loads(line) for line in (fast / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [2, 4]
    assert (fast / "quality.png").stat().st_size > 0
    results = json.loads((fast / "eval" / "results.json").read_text())
    assert results["step"] == 4 and [s["num_images"] for s in results["scales"]] == [1, 1, 1, 1]
    assert "model_family: trimip" in (fast / "runs" / "fast" / "config.yaml").read_text().splitlines()
    summary = (out / "summary.md").read_text()
    assert "| bench_paper_32 |" in summary and "lego eval at step 4" in summary
    assert "grid model (--config fast), full-size lego, eval at step 4" in summary
    assert "grid model: 4 steps in" in summary


def test_bad_arguments_are_refused(tmp_path):
    result = run_script("--device", "tpu", out=tmp_path / "x")
    assert result.returncode == 2 and "choose cuda or cpu" in result.stderr
    assert not (tmp_path / "x").exists()

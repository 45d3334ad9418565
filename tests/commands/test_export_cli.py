"""`mipnerf export` through the real command line: a mesh and a point cloud of a tiny run, and
the refused inputs (one line, exit 1, nothing written), as tests/robustness/test_bad_input.py checks them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from tiny_runs import BLENDER, make_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return make_run(tmp_path_factory.mktemp("runs"), multiscale=False, data=BLENDER)
    finally:
        torch.set_num_threads(threads)


def test_mesh_export_writes_a_coloured_mesh(run, tmp_path, mipnerf):
    from mipnerf_cli.io.ply import read_ply

    out = tmp_path / "mesh.ply"
    result = mipnerf(
        "export",
        run,
        "--what",
        "mesh",
        "--method",
        "density",
        "--resolution",
        24,
        "--out",
        out,
        "--cpu-threads",
        1,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert "chosen from the density histogram" in result.stdout and f"wrote {out}" in result.stdout
    vertices, colours, faces = read_ply(out)
    assert len(vertices) > 0 and len(faces) > 0 and faces.max() < len(vertices)
    assert (np.abs(vertices) <= 2.0 + 1e-5).all()  # inside the grid: cameras at 4, near 2
    assert colours.std() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.ply"]
    # --keep-all keeps at least as much
    everything = tmp_path / "all.ply"
    result = mipnerf(
        "export",
        run,
        "--method",
        "density",
        "--resolution",
        24,
        "--keep-all",
        "--out",
        everything,
        "--cpu-threads",
        1,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert len(read_ply(everything)[0]) >= len(vertices)


def test_pointcloud_export_default_location(run, mipnerf):
    from mipnerf_cli.io.ply import read_ply

    result = mipnerf(
        "export",
        run,
        "--what",
        "pointcloud",
        "--method",
        "density",
        "--min-acc",
        0.01,
        "--cpu-threads",
        1,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    out = run / "export" / "pointcloud.ply"
    assert f"wrote {out}" in result.stdout
    points, colours, faces = read_ply(out)
    assert faces is None and len(points) > 0 and len(points) == len(colours)


def test_export_help(mipnerf):
    result = mipnerf("export", "--help")
    assert result.returncode == 0
    for option in ("--what", "--resolution", "--threshold", "--keep-all", "--ckpt", "--out", "--method", "--min-views"):
        assert option in result.stdout


def _unwritable(tmp_path):
    if os.geteuid() == 0:  # root writes into read-only folders, but not into /proc
        return Path("/proc/mesh.ply")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "mesh.ply"


CASES = {
    "no-checkpoint": (lambda run, tmp: ["export", tmp / "empty-run"], ("no checkpoint in", "empty-run")),
    "ckpt-missing": (lambda run, tmp: ["export", "--ckpt", tmp / "none.pt"], ("checkpoint", "none.pt", "not found")),
    "grid-too-big": (
        lambda run, tmp: ["export", run, "--resolution", 100000, "--out", tmp / "m.ply"],
        ("--resolution 100000: the density grid needs about", "use --resolution"),
    ),
    "grid-too-big-new-spelling": (  # --resolution above is the older spelling; the message names the one typed
        lambda run, tmp: ["export", run, "--grid", 100000, "--out", tmp / "m.ply"],
        ("error: --grid 100000: the density grid needs about", "; use --grid "),
    ),
    "no-surface": (
        lambda run, tmp: [
            "export",
            run,
            "--method",
            "density",
            "--resolution",
            12,
            "--threshold",
            1e9,
            "--out",
            tmp / "m.ply",
        ],
        ("--threshold 1e+09 gives no surface: the density on the grid ranges from",),
    ),
    "out-unwritable": (
        lambda run, tmp: ["export", run, "--method", "density", "--grid", 12, "--out", _unwritable(tmp)],
        ("cannot write there",),
    ),
    "out-folder-missing": (lambda run, tmp: ["export", run, "--out", tmp / "nowhere" / "m.ply"], ("does not exist",)),
    "out-not-ply": (lambda run, tmp: ["export", run, "--out", tmp / "m.obj"], ("must end in .ply",)),
    "what-unknown": (lambda run, tmp: ["export", run, "--what", "voxels", "--out", tmp / "m.ply"], ("what",)),
    "method-unknown": (lambda run, tmp: ["export", run, "--method", "poisson", "--out", tmp / "m.ply"], ("method",)),
    "surface-opacity-1": (
        lambda run, tmp: ["export", run, "--surface-opacity", 1, "--out", tmp / "m.ply"],
        ("surface_opacity", "less than 1"),
    ),
    "min-views-0": (
        lambda run, tmp: ["export", run, "--min-views", 0, "--out", tmp / "m.ply"],
        ("min_views", "greater than or equal to 1"),
    ),
    "min-size-1": (lambda run, tmp: ["export", run, "--min-size", 1, "--out", tmp / "m.ply"], ("min_size",)),
    "threshold-with-fusion": (
        lambda run, tmp: ["export", run, "--threshold", 2, "--out", tmp / "m.ply"],
        ("--threshold belongs to the density level set", "--method density"),
    ),
    "keep-all-with-fusion": (
        lambda run, tmp: ["export", run, "--keep-all", "--out", tmp / "m.ply"],
        ("--keep-all belongs to the density level set",),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_one_line_and_nothing_written(case, run, tmp_path, mipnerf):
    prepare, fragments = CASES[case]
    (tmp_path / "empty-run").mkdir()
    args = prepare(run, tmp_path)
    before = snapshot(tmp_path, run)
    result = mipnerf(*args, "--no-progress", "--cpu-threads", 1)
    assert_refused(result, *fragments)
    assert snapshot(tmp_path, run) == before


def test_export_from_a_checkpoint_file_with_a_given_threshold(run, tmp_path, mipnerf):
    from mipnerf_cli.io.ply import read_ply

    first = tmp_path / "first.ply"
    result = mipnerf(
        "export",
        "--ckpt",
        run / "ckpt" / "last.pt",
        "--method",
        "density",
        "--resolution",
        16,
        "--keep-all",
        "--out",
        first,
        "--cpu-threads",
        1,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    chosen = float(result.stdout.split("threshold ")[1].split()[0])
    # The printed threshold (4 digits) given by hand gives (nearly) the same mesh.
    again = tmp_path / "again.ply"
    result = mipnerf(
        "export",
        "--ckpt",
        run / "ckpt" / "last.pt",
        "--method",
        "density",
        "--resolution",
        16,
        "--keep-all",
        "--out",
        again,
        "--threshold",
        repr(chosen),
        "--cpu-threads",
        1,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert "(given)" in result.stdout
    (v1, _, f1), (v2, _, _) = read_ply(first), read_ply(again)
    assert len(f1) > 0 and abs(len(v1) - len(v2)) <= 0.02 * len(v1)
    assert np.abs(v1.mean(axis=0) - v2.mean(axis=0)).max() < 0.01


def test_fusion_refuses_a_run_that_renders_no_surface(run, tmp_path, mipnerf):
    """The tiny run's views stay under opacity 0.5 (the density method's point cloud above needs
    --min-acc 0.01): the fusion method says so in one line and writes nothing. Its successful
    exports are measured in tests/commands/test_export_accuracy.py on a demo training."""
    for what in ("mesh", "pointcloud"):
        before = snapshot(tmp_path, run)
        result = mipnerf(
            "export",
            run,
            "--what",
            what,
            "--resolution",
            16,
            "--out",
            tmp_path / "x.ply",
            "--cpu-threads",
            1,
            "--no-progress",
        )
        assert_refused(result, "train longer")
        assert snapshot(tmp_path, run) == before

"""How accurate `mipnerf export` is on the demo scene, whose true geometry is known.

Exports the mesh and the point cloud of a trained demo run through the CLI with default flags
(the fusion method), samples points on the true surfaces (the ones the training cameras see:
mipnerf_cli.demo.geometry) and prints precision / recall / F-score at 3 % and 1 % of the
scene radius (demo.SCENE_RADIUS) and the Chamfer distance, as a Markdown table; --density
adds the density level set's rows (`--method density`, every piece and the largest);
--picture draws the mesh to a PNG.

    mipnerf demo-scene /tmp/exp/demo
    mipnerf train --config demo --data /tmp/exp/demo --out-dir /tmp/exp --exp-name demo-run
    PYTHONPATH=$PWD python benchmarks/export_accuracy.py /tmp/exp/demo-run --picture docs/demo_mesh.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mipnerf_cli.demo import geometry as demo_geometry  # noqa: E402
from mipnerf_cli.demo import scenes as demo  # noqa: E402
from mipnerf_cli.export.accuracy import mesh_surface_points, surface_scores  # noqa: E402
from mipnerf_cli.io.ply import read_ply  # noqa: E402

TRUTH_POINTS = 200_000


def truth(scene: Path) -> np.ndarray:
    """Points on the demo's true surfaces that some training camera sees."""
    frames = json.loads((scene / "transforms_train.json").read_text())["frames"]
    poses = np.stack([np.array(frame["transform_matrix"]) for frame in frames])
    points = demo_geometry.surface_points(TRUTH_POINTS)
    return points[demo_geometry.visible_mask(points, poses)]


def scene_of(run: Path) -> Path:
    import torch

    from mipnerf_cli.runs.trained import load_trained_model, scene_folder

    return scene_folder(load_trained_model(run, None, torch.device("cpu")), None)


def export(run: Path, out: Path, *args: str) -> str:
    command = [
        sys.executable,
        "-m",
        "mipnerf_cli",
        "export",
        str(run),
        "--out",
        str(out),
        "--no-progress",
        "--cpu-threads",
        "1",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return done.stdout


def scores(ply: Path, true_points: np.ndarray, tau: float) -> dict[str, float]:
    """surface_scores at 3 `tau` (about one training pixel at the objects), plus the F-score at `tau`."""
    vertices, _, faces = read_ply(ply)
    predicted = mesh_surface_points(vertices, faces, TRUTH_POINTS) if faces is not None else vertices.astype(np.float64)
    result = surface_scores(predicted, true_points, 3 * tau)
    result["fscore1"] = surface_scores(predicted, true_points, tau)["fscore"]
    return result


def draw_mesh(ply: Path, picture: Path, size: int = 640) -> None:
    """A flat-shaded rendering of the mesh with its vertex colours (numpy painter's algorithm)."""
    from mipnerf_cli.demo.scenes import look_at, sphere_point
    from mipnerf_cli.io.images import write_png

    vertices, colours, faces = read_ply(ply)
    pose = look_at(sphere_point(np.radians(-60), np.radians(35), 4.0))  # all four objects in view
    camera = (vertices - pose[:3, 3]) @ pose[:3, :3]  # camera coordinates, looking down -z
    focal = size / 2 / np.tan(np.radians(22))
    pixels = np.stack(
        [size / 2 + focal * camera[:, 0] / -camera[:, 2], size / 2 - focal * camera[:, 1] / -camera[:, 2]], 1
    )
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = 0.35 + 0.65 * np.abs(normals @ (demo.LIGHT))
    face_colour = (colours[faces].astype(np.float64).mean(axis=1) * light[:, None]).clip(0, 255)
    depth = -camera[faces, 2].mean(axis=1)
    image = np.full((size, size, 3), 255.0)
    for index in np.argsort(-depth):  # far to near; each triangle filled by its bounding box test
        p = pixels[faces[index]]
        x0, y0 = np.floor(p.min(axis=0)).astype(int).clip(0, size - 1)
        x1, y1 = np.ceil(p.max(axis=0)).astype(int).clip(0, size - 1)
        if x1 < x0 or y1 < y0:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        (ax, ay), (bx, by), (cx, cy) = p
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) < 1e-12:
            continue
        w0 = ((bx - xs) * (cy - ys) - (by - ys) * (cx - xs)) / area
        w1 = ((cx - xs) * (ay - ys) - (cy - ys) * (ax - xs)) / area
        inside = (w0 >= 0) & (w1 >= 0) & (w0 + w1 <= 1)
        region = image[y0 : y1 + 1, x0 : x1 + 1]
        region[inside] = face_colour[index]
    write_png(picture, np.rint(image).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run trained on the demo scene (configs/demo)")
    parser.add_argument("--density", action="store_true", help="also the density level set (--method density)")
    parser.add_argument("--picture", type=Path, help="draw the default mesh to this PNG")
    args = parser.parse_args()
    true_points = truth(scene_of(args.run))
    radius = demo.SCENE_RADIUS
    tau = 0.01 * radius
    exports = [("mesh (default: fusion)", "mesh.ply", ("--what", "mesh"))]
    exports.append(("point cloud (default: fusion)", "cloud.ply", ("--what", "pointcloud")))
    if args.density:
        exports.append(("mesh, density, every piece", "dmesh.ply", ("--method", "density", "--keep-all")))
        exports.append(("mesh, density, largest piece", "dlargest.ply", ("--method", "density")))
        exports.append(("point cloud, density", "dcloud.ply", ("--method", "density", "--what", "pointcloud")))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, file, flags in exports:
            ply = Path(folder) / file
            print(export(args.run, ply, *flags).strip())
            rows.append((name, scores(ply, true_points, tau)))
            if file == "mesh.ply" and args.picture is not None:
                draw_mesh(ply, args.picture)
    print(
        f"\n{len(true_points):,} true points on the visible surfaces; scene radius {radius}: "
        f"3 % = {3 * tau:.4f}, 1 % = {tau:.4f}\n"
    )
    print("| export | precision @ 3 % | recall @ 3 % | F-score @ 3 % | F-score @ 1 % | Chamfer (units) |")
    print("|---|---|---|---|---|---|")
    for name, s in rows:
        print(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['fscore']:.3f} | {s['fscore1']:.3f} "
            f"| {s['chamfer']:.4f} |"
        )


if __name__ == "__main__":
    main()

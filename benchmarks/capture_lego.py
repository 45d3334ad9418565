"""How well `mipnerf convert PHOTOS` recovers real cameras: the lego scene as a photo capture.

100 train views of the real lego scene (../shared/data/lego, or $MIPNERF_LEGO), composited
on white, reduced to 400x400 and saved as JPEG files with no poses, are converted; the
recovered cameras are then aligned to the true ones with a similarity (Umeyama) and
compared: images registered, rotation error (degrees), camera-centre error (% of the mean
distance of the true cameras from the object at the origin) and focal error. Prints a
markdown table.

    python benchmarks/capture_lego.py [--lego DIR] [--out DIR] [--threads N] [--views 100]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mipnerf_cli.convert.capture.alignment import pose_errors
from mipnerf_cli.convert.capture.pipeline import CaptureOptions, convert_capture
from mipnerf_cli.convert.capture.sfm import SfmOptions
from mipnerf_cli.reporting import LineReporter

SIZE = 400


def write_photos(lego: Path, folder: Path, views: int) -> tuple[dict[str, np.ndarray], float]:
    """JPEGs r_<i>.jpg on white at SIZE px; returns the true OpenGL cam2world by name and the focal."""
    meta = json.loads((lego / "transforms_train.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for frame in meta["frames"][:views]:
        source = lego / f"{frame['file_path']}.png"
        with Image.open(source) as image:
            rgba = np.asarray(image.convert("RGBA").resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float32) / 255
        rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        name = f"{Path(frame['file_path']).name}.jpg"
        Image.fromarray(np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)).save(folder / name, quality=95)
        truth[name] = np.array(frame["transform_matrix"], dtype=np.float64)
    return truth, 0.5 * SIZE / math.tan(0.5 * meta["camera_angle_x"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_lego = os.environ.get("MIPNERF_LEGO", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "lego"))
    parser.add_argument("--lego", type=Path, default=Path(default_lego))
    parser.add_argument("--out", type=Path, default=None, help="keep the converted scene here (default: a temp folder)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--views", type=int, default=100)
    parser.add_argument(
        "--keep-photos", type=Path, default=None, help="write the JPEG photos here (default: a temp folder)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = args.keep_photos or Path(tmp) / "photos"
        truth, focal = write_photos(args.lego, photos, args.views)
        out = args.out or Path(tmp) / "scene"
        start = time.perf_counter()
        summary = convert_capture(
            photos, out, CaptureOptions(sfm=SfmOptions(threads=args.threads), overwrite=True), LineReporter(print)
        )
        elapsed = time.perf_counter() - start
        meta = json.loads((out / "transforms.json").read_text())
    names = [frame["original_name"] for frame in meta["frames"]]
    recovered = np.array([frame["transform_matrix"] for frame in meta["frames"]])
    errors = pose_errors(recovered, np.array([truth[name] for name in names])).summary()
    rows = [
        ("images registered", f"{len(names)}/{len(truth)}"),
        ("scene kind detected", summary.scene_kind),
        (
            "rotation error median / max (deg)",
            f"{errors['rotation_median_deg']:.3f} / {errors['rotation_max_deg']:.3f}",
        ),
        (
            "centre error median / max (% of camera distance)",
            f"{errors['centre_median_pct']:.3f} / {errors['centre_max_pct']:.3f}",
        ),
        ("focal error (%)", f"{100 * (meta['fl_x'] / focal - 1):+.2f}"),
        ("convert time (s)", f"{elapsed:.0f} on {args.threads or os.cpu_count()} threads"),
    ]
    print("\n| lego as photos (100 views, 400x400 JPEG) | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""The true-pose twin of a converted lego photo capture: the same images, order and split, the
lego scene's own cameras and focal, and the recovered bounds brought to the true scale (the
similarity that aligns the recovered cameras). Training both with the same settings isolates
what the recovered poses cost.

    python benchmarks/capture_true_twin.py CAPTURE LEGO TWIN
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from mipnerf_cli.convert.capture.alignment import pose_errors
from mipnerf_cli.data.formats.llff_poses import llff_pose_row


def main() -> None:
    capture, lego, twin = map(Path, sys.argv[1:4])
    recovered = json.loads((capture / "transforms.json").read_text())
    lego_meta = json.loads((lego / "transforms_train.json").read_text())
    true = {Path(f["file_path"]).name + ".jpg": np.array(f["transform_matrix"], float) for f in lego_meta["frames"]}
    frames = recovered["frames"]
    found = np.array([f["transform_matrix"] for f in frames])
    truth = np.array([true[f["original_name"]] for f in frames])
    errors = pose_errors(found, truth)
    focal = 0.5 * recovered["w"] / math.tan(0.5 * lego_meta["camera_angle_x"])
    print(
        json.dumps(
            {**errors.summary(), "scale": errors.scale, "focal_error_pct": 100 * (recovered["fl_x"] / focal - 1)}
        )
    )
    twin.mkdir(parents=True)
    for folder in ("images", "images_2", "images_4", "images_8"):
        os.symlink((capture / folder).resolve(), twin / folder)
    s = errors.scale
    rows = [
        llff_pose_row(truth[i], recovered["h"], recovered["w"], focal, f["near"] * s, f["far"] * s)
        for i, f in enumerate(frames)
    ]
    np.save(twin / "poses_bounds.npy", np.array(rows))
    document = dict(recovered, fl_x=focal, fl_y=focal, generator="benchmarks/capture_true_twin.py")
    document["frames"] = [
        dict(f, transform_matrix=truth[i].tolist(), near=f["near"] * s, far=f["far"] * s) for i, f in enumerate(frames)
    ]
    (twin / "transforms.json").write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()

"""Binary little-endian PLY: coloured points, or a coloured triangle mesh; written atomically.

The layout every viewer reads (MeshLab, CloudCompare, Blender, Open3D, trimesh):

    ply / format binary_little_endian 1.0
    element vertex N: float x, y, z; uchar red, green, blue
    element face M: list uchar int vertex_indices      (meshes only)

The file is written next to its target under a hidden temporary name and moved into place
with os.replace, so a failed or interrupted export leaves no half-written PLY.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import WriteError, write_bytes_atomically

VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
FACE = np.dtype([("count", "u1"), ("v0", "<i4"), ("v1", "<i4"), ("v2", "<i4")])


def ply_bytes(vertices: np.ndarray, colours: np.ndarray, faces: Optional[np.ndarray] = None) -> bytes:
    """The PLY file of `vertices` (N, 3) float, `colours` (N, 3) uint8 and optional `faces` (M, 3) int."""
    vertices = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    if len(colours) != len(vertices):
        raise ValueError(f"{len(vertices)} vertices but {len(colours)} colours")
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment written by mipnerf export",
        f"element vertex {len(vertices)}",
    ]
    header += [f"property float {axis}" for axis in "xyz"]
    header += [f"property uchar {channel}" for channel in ("red", "green", "blue")]
    records = np.empty(len(vertices), VERTEX)
    for i, axis in enumerate("xyz"):
        records[axis] = vertices[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        records[channel] = colours[:, i]
    body = [records.tobytes()]
    if faces is not None:
        faces = np.asarray(faces).reshape(-1, 3)
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError("a face refers to a vertex that does not exist")
        header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
        triangles = np.empty(len(faces), FACE)
        triangles["count"] = 3
        for i in range(3):
            triangles[f"v{i}"] = faces[:, i]
        body.append(triangles.tobytes())
    header.append("end_header")
    return ("\n".join(header) + "\n").encode("ascii") + b"".join(body)


def write_ply(path: Path, vertices: np.ndarray, colours: np.ndarray, faces: Optional[np.ndarray] = None) -> None:
    """Write the PLY atomically and durably (`io.files`); MipNerfError if impossible."""
    data = ply_bytes(vertices, colours, faces)
    try:
        write_bytes_atomically(Path(path), data, durable=True)
    except WriteError as error:
        raise MipNerfError(f"{path}: cannot write there ({error.reason}); choose an --out you can write to") from None


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(vertices (N, 3) float32, colours (N, 3) uint8, faces (M, 3) int32 or None) of a PLY `write_ply` wrote."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    if lines[:2] != ["ply", "format binary_little_endian 1.0"]:
        raise ValueError(f"{path}: not a binary little-endian PLY")
    counts = {line.split()[1]: int(line.split()[2]) for line in lines if line.startswith("element ")}
    records = np.frombuffer(data, VERTEX, counts["vertex"], end)
    vertices = np.stack([records[axis] for axis in "xyz"], axis=-1)
    colours = np.stack([records[channel] for channel in ("red", "green", "blue")], axis=-1)
    faces = None
    if "face" in counts:
        triangles = np.frombuffer(data, FACE, counts["face"], end + records.nbytes)
        if len(triangles) and not (triangles["count"] == 3).all():
            raise ValueError(f"{path}: only triangle faces are supported")
        faces = np.stack([triangles[f"v{i}"] for i in range(3)], axis=-1)
    return vertices, colours, faces

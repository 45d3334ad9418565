"""Floaters: the small pieces of an export, and the points few views agree with.

A mesh falls into connected pieces (triangles sharing vertices). A piece is a floater when it
is small (its bounding box's diagonal under `min_size` scene units) or when few training
views render a surface on it (at most `min_views` - 1 of them agree at any of its vertices);
every other piece is an object the cameras see, and is kept. Points are floaters when fewer
than `min_views` views agree with them. Pure numpy functions; the counts come from
``export.fusion.view_agreement``.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Pieces:
    """What the floater filter found in a mesh."""

    total: int  # connected pieces
    dropped: int  # of them, floaters
    dropped_vertices: int


def piece_labels(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """(V,) int label of the connected piece each vertex belongs to (vertices shared by
    triangles connect; a vertex in no triangle is a piece of its own).

    faces: (F, 3) vertex indices;  num_vertices: V.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(num_vertices, num_vertices))
    _, labels = connected_components(graph, directed=False)
    return labels


def piece_extents(vertices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(P,) the diagonal of each piece's axis-aligned bounding box.

    vertices: (V, 3);  labels: (V,) piece of each vertex, 0..P-1.
    """
    count = int(labels.max()) + 1 if len(labels) else 0
    low = np.full((count, 3), np.inf)
    high = np.full((count, 3), -np.inf)
    np.minimum.at(low, labels, vertices)
    np.maximum.at(high, labels, vertices)
    return np.linalg.norm(high - low, axis=1)


def floater_pieces(
    vertices: np.ndarray, labels: np.ndarray, vertex_views: np.ndarray, min_size: float, min_views: int
) -> np.ndarray:
    """(P,) True for the pieces that are floaters: smaller than `min_size` across, or no vertex
    of which `min_views` views agree with.

    vertices: (V, 3);  labels: (V,) from `piece_labels`;  vertex_views: (V,) views that agree
    at each vertex.
    """
    count = int(labels.max()) + 1 if len(labels) else 0
    best_views = np.zeros(count, dtype=np.int64)
    np.maximum.at(best_views, labels, vertex_views.astype(np.int64))
    return (piece_extents(vertices, labels) < min_size) | (best_views < min_views)


def drop_floaters(
    vertices: np.ndarray, faces: np.ndarray, vertex_views: np.ndarray, min_size: float, min_views: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Pieces]:
    """The mesh without its floater pieces.

    vertices: (V, 3);  faces: (F, 3);  vertex_views: (V,) views that agree at each vertex.
    Returns (vertices (V', 3), faces (F', 3) renumbered, kept (V,) bool mask of the input's
    vertices, Pieces).
    """
    labels = piece_labels(faces, len(vertices))
    floaters = floater_pieces(vertices, labels, vertex_views, min_size, min_views)
    keep = ~floaters[labels] if len(labels) else np.zeros(0, dtype=bool)
    renumber = np.cumsum(keep) - 1
    kept_faces = renumber[faces[keep[faces[:, 0]]]] if len(faces) else faces
    summary = Pieces(total=len(floaters), dropped=int(floaters.sum()), dropped_vertices=int((~keep).sum()))
    return vertices[keep], kept_faces, keep, summary

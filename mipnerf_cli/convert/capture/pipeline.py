"""`mipnerf convert PHOTOS|VIDEO OUT`: source -> SfM -> layout -> scene folder, staged.

OUT is written under a hidden folder next to it and renamed into place only when every
stage succeeded; an error or Ctrl+C removes the hidden folder (pycolmap's scratch files
live inside it too), so OUT is either the finished scene or as it was.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from mipnerf_cli.convert.capture.layout import opengl_cam2world, point_depths
from mipnerf_cli.convert.capture.sfm import SfmResult, check_options, import_pycolmap, run_sfm
from mipnerf_cli.convert.capture.sources import read_source, require_photo_files, source_kind
from mipnerf_cli.convert.capture.writer import GENERATOR, TRANSFORMS, Frame, PinholeCamera, write_scene
from mipnerf_cli.data.layout import SCENE_KINDS, depth_bounds, detect_scene_kind, layout_spread_deg, reliable_points
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.staging import StagedFolder
from mipnerf_cli.reporting import Reporter
from mipnerf_cli.settings import CaptureOptions


@dataclasses.dataclass(frozen=True)
class CaptureSummary:
    out_dir: Path
    source: str  # "photos" | "video"
    num_inputs: int
    registered: list[str]
    unregistered: list[str]
    skipped: list[tuple[str, str]]
    scene_kind: str
    detected_kind: str
    camera_spread_deg: float
    focal: float
    size: tuple[int, int]  # (width, height) of the undistorted images
    multiscale: bool


def is_capture_scene(folder: Path) -> bool:
    """Whether ``folder`` holds a scene this command wrote (its transforms.json says so)."""
    try:
        with open(folder / TRANSFORMS, encoding="utf-8") as file:
            return json.load(file).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def check_request(source: Path, out_dir: Path, options: CaptureOptions) -> str:
    """Every check that needs no pixels; returns the source kind ("photos" or "video")."""
    kind = source_kind(source)
    if kind == "blender":
        raise MipNerfError(f"{source} is a Blender scene; it is converted by the Blender path, not as photos")
    if kind == "photos":
        require_photo_files(source)
    check_options(options.sfm)
    if options.scene_kind is not None and options.scene_kind not in SCENE_KINDS:
        raise MipNerfError(f"--scene-kind must be one of {', '.join(SCENE_KINDS)}, got {options.scene_kind!r}")
    if options.multiscale and options.scene_kind == "forward-facing":
        raise MipNerfError(forward_facing_multiscale())
    if options.llffhold < 1:
        raise MipNerfError(f"--llffhold must be at least 1, got {options.llffhold}")
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not options.overwrite:
            raise MipNerfError(f"{out_dir} already exists and is not empty; pass --overwrite to replace it")
        if not is_capture_scene(out_dir):
            raise MipNerfError(
                f"{out_dir} holds files that are not a scene made by `mipnerf convert` (no {TRANSFORMS} of ours); "
                "refusing to replace it, choose another OUT"
            )
    if Path(source).resolve() == out_dir.resolve() or out_dir.resolve() in Path(source).resolve().parents:
        raise MipNerfError(f"{out_dir}: the output would replace the source; choose another OUT")
    import_pycolmap()
    return kind


def forward_facing_multiscale() -> str:
    return (
        "--multiscale needs a 360° scene: a forward-facing capture is trained in NDC, which the multiscale "
        "loader does not do; drop --multiscale (or pass --scene-kind 360 if the cameras do go around the subject)"
    )


def frames_from(result: SfmResult, original_names: dict[str, str]) -> tuple[list[Frame], np.ndarray]:
    """Frames in name order, and the (P, 3) sparse points."""
    model = result.reconstruction
    points = np.array([point.xyz for point in model.points3D.values()], dtype=np.float64).reshape(-1, 3)
    by_name = {image.name: image for image in model.images.values()}
    ids = list(model.points3D.keys())
    trusted = reliable_points(
        np.array([model.points3D[i].track.length() for i in ids]), np.array([model.points3D[i].error for i in ids])
    )
    reliable = {i for i, keep in zip(ids, trusted) if keep}
    frames = []
    for name in result.registered:
        image = by_name[name]
        pose = image.cam_from_world
        cam_from_world = np.asarray((pose() if callable(pose) else pose).matrix(), dtype=np.float64)
        observed = [p.point3D_id for p in image.points2D if p.has_point3D()]
        used = [i for i in observed if i in reliable] or observed
        seen = np.array([model.points3D[i].xyz for i in used], dtype=np.float64).reshape(-1, 3)
        bounds = depth_bounds(point_depths(cam_from_world, seen))
        if bounds is None:
            raise MipNerfError("a registered image sees no 3D point in front of it; the reconstruction is broken")
        near, far = bounds
        camera = model.cameras[image.camera_id]
        pinhole = PinholeCamera(
            float(camera.focal_length_x),
            float(camera.focal_length_y),
            float(camera.principal_point_x),
            float(camera.principal_point_y),
            int(camera.width),
            int(camera.height),
        )
        frames.append(
            Frame(result.image_dir / name, original_names[name], opengl_cam2world(cam_from_world), pinhole, near, far)
        )
    return frames, points


def convert_capture(
    source: Path | str, out_dir: Path | str, options: CaptureOptions, reporter: Reporter
) -> CaptureSummary:
    """Photos or a video at ``source`` -> the scene folder ``out_dir`` (see writer.py)."""
    source, out_dir = Path(source), Path(out_dir)
    kind = check_request(source, out_dir, options)
    staged = StagedFolder.open(out_dir, is_capture_scene, f"a scene made by `mipnerf convert` ({TRANSFORMS})")
    try:
        work = staged.path / ".work"
        (work / "frames").mkdir(parents=True)
        photos = read_source(source, work / "frames", reporter, options.fps, options.frames)
        for name, reason in photos.skipped:
            reporter.warning(f"left out {name}: cannot decode it ({reason})")
        result = run_sfm(photos, work, options.sfm, reporter)
        frames, points = frames_from(result, {p.path.name: p.original_name for p in photos.photos})
        cam2world = np.array([frame.cam2world for frame in frames])
        spread = layout_spread_deg(cam2world, points)
        detected = detect_scene_kind(cam2world, points)
        scene_kind = options.scene_kind or detected
        if options.multiscale and scene_kind != "360":
            raise MipNerfError(forward_facing_multiscale())
        unregistered = [p.original_name for p in photos.photos if p.path.name in set(result.unregistered)]
        write_scene(
            staged.path,
            frames,
            scene_kind,
            unregistered,
            photos.kind,
            reporter,
            model=result.reconstruction,
            multiscale=options.multiscale,
            llffhold=options.llffhold,
            workers=options.workers,
        )
        shutil.rmtree(work)
        staged.commit()
    except OSError as error:
        raise MipNerfError(f"{out_dir}: cannot write there ({error.strerror or error}); choose another OUT") from None
    finally:
        staged.discard()
    return CaptureSummary(
        out_dir=out_dir,
        source=kind,
        num_inputs=len(photos.photos) + len(photos.skipped),
        registered=[frame.original_name for frame in frames],
        unregistered=unregistered,
        skipped=photos.skipped,
        scene_kind=scene_kind,
        detected_kind=detected,
        camera_spread_deg=spread,
        focal=frames[0].camera.fx,
        size=(frames[0].camera.width, frames[0].camera.height),
        multiscale=options.multiscale,
    )

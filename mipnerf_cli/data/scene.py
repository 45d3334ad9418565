"""Which kind of scene a folder holds, and loading one split of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from mipnerf_cli.data.cameras import SplitCameras
from mipnerf_cli.data.formats.blender import blender_cameras, load_blender
from mipnerf_cli.data.formats.capture import FORMAT_NAMES, POSES_BOUNDS, TRANSFORMS, capture_format, resolve_spherify
from mipnerf_cli.data.formats.llff import LLFFHOLD, llff_cameras, load_llff
from mipnerf_cli.data.formats.multiscale import METADATA, load_multiscale, multiscale_cameras
from mipnerf_cli.data.formats.transforms import SPLITS, transforms_path
from mipnerf_cli.data.imageset import ImageSet
from mipnerf_cli.errors import MipNerfError


def scene_kind(path: Path | str) -> str:
    """ "multiscale" if ``path`` holds metadata.json (checked first), "blender" if it holds a
    transforms_<split>.json, "llff" if it holds a real capture: poses_bounds.npy, a nerfstudio /
    instant-ngp transforms.json or a COLMAP model sparse/0 (``capture.capture_format`` says
    which; all three are built into rays by the LLFF loader, so they are one kind to training,
    eval, render, view and export); MipNerfError otherwise."""
    path = Path(path)
    if not path.exists():
        raise MipNerfError(f"{path}: scene folder not found")
    if not path.is_dir():
        raise MipNerfError(f"{path}: not a folder; pass the scene folder")
    if (path / METADATA).is_file():
        return "multiscale"
    if any(transforms_path(path, split).is_file() for split in SPLITS):
        return "blender"
    if capture_format(path) is not None:
        return "llff"
    if (path / "images").is_dir():
        raise MipNerfError(
            f"{path / POSES_BOUNDS}: file not found; a capture (images/) needs it (LLFF's imgs2poses.py writes it "
            f"from a COLMAP reconstruction), a nerfstudio {TRANSFORMS} or a COLMAP model in sparse/0"
        )
    raise MipNerfError(
        f"{path}: not a scene: expected {METADATA} (multiscale, from `mipnerf convert`), "
        f"transforms_train.json (Blender), {POSES_BOUNDS} (LLFF), {TRANSFORMS} (nerfstudio) or sparse/0 (COLMAP)"
    )


def check_scene_kind(
    path: Path | str,
    kind: str,
    multiscale: bool | None = None,
    downscale: int = 1,
    factor: int = 0,
    spherify: bool | None = None,
) -> None:
    """The one check of a scene's kind against the options asked for; MipNerfError naming the
    flag to drop or add. `mipnerf train` (training.check_scene) and ``load_scene`` both ask it.

    kind: ``scene_kind(path)``; multiscale: None accepts any kind, True / False insist.
    spherify: True when --spherify was asked for (None or False: nothing to check).
    """
    if kind == "multiscale" and multiscale is False:
        raise MipNerfError(f"{path} is a multiscale scene ({METADATA}); add --multiscale to train on it")
    if kind == "multiscale" and downscale != 1:
        raise MipNerfError(
            f"{path} is a multiscale scene with its own levels; drop --downscale (it applies to Blender scenes only)"
        )
    if kind == "llff" and (multiscale or downscale != 1):
        flags = " and ".join(
            flag for flag, given in (("--multiscale", multiscale), ("--downscale", downscale != 1)) if given
        )
        raise MipNerfError(
            f"{path} is {FORMAT_NAMES[capture_format(path)]}; drop {flags} (a capture's resolution is its --factor)"
        )
    if kind != "llff" and (factor or spherify):
        what = "a multiscale" if kind == "multiscale" else "a Blender"
        raise MipNerfError(
            f"{path} is {what} scene, not an LLFF one (a capture: {POSES_BOUNDS}, {TRANSFORMS} or sparse/0); "
            "drop --factor/--spherify (they apply to captures)"
        )
    if kind == "blender" and multiscale:
        raise MipNerfError(
            f"{path} is a single-scale Blender scene; drop --multiscale, or convert it first (multiscale data is a "
            f"Blender scene at 4 resolutions, written by `mipnerf convert {path} OUT_DIR`)"
        )


def llff_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The LLFF keyword arguments of ``load_scene`` (factor, spherify, llffhold) from a run's
    settings (a TrainSettings dump; runs from before LLFF support have none: the defaults).

    Runs record the spherify they trained with (``settings.finish_train_settings`` resolves
    it from the scene); a run without one (None: from before that) gets the scene's kind
    now, from its recorded data folder.
    """
    spherify = settings.get("spherify")
    if spherify is None:
        data = settings.get("data")
        folder = Path(data) if data else None
        is_capture = folder is not None and folder.is_dir() and scene_kind(folder) == "llff"
        spherify = resolve_spherify(folder, None) if is_capture else False  # a multiscale capture: its own poses
    return {
        "factor": int(settings.get("factor") or 0),
        "spherify": bool(spherify),
        "llffhold": int(settings.get("llffhold") or LLFFHOLD),
    }


def load_scene(
    path: Path | str,
    split: str,
    multiscale: bool | None = None,
    white_bkgd: bool = True,
    downscale: int = 1,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    factor: int = 0,
    spherify: bool | None = None,
    llffhold: int = LLFFHOLD,
    near: float | None = None,
    far: float | None = None,
    kind: str | None = None,
) -> ImageSet:
    """One split ("train", "val" or "test") of the scene at ``path`` as an ImageSet.

    multiscale: None detects the kind; True / False insist on it and raise MipNerfError
    when the folder holds the other kind. downscale applies to Blender scenes only.
    progress(done, total) is called after each image is decoded.
    factor, spherify, llffhold: captures only (see ``mipnerf_cli.data.formats.llff``; "val" is
    their test split; spherify None: the scene's kind); near, far override a capture's ray bounds.
    kind: ``scene_kind(path)`` when the caller has decided it already (training does, once).
    """
    path = Path(path)
    kind = _checked_kind(path, split, multiscale, downscale, factor, spherify, kind)
    if kind == "llff":
        return load_llff(
            path,
            split,
            factor,
            spherify,
            llffhold,
            near,
            far,
            white_bkgd=white_bkgd,
            workers=workers,
            progress=progress,
        )
    if kind == "multiscale":
        return load_multiscale(path, split, white_bkgd, workers, progress)
    return load_blender(path, split, white_bkgd, downscale, workers, progress)


def load_cameras(
    path: Path | str,
    split: str,
    multiscale: bool | None = None,
    downscale: int = 1,
    *,
    factor: int = 0,
    spherify: bool | None = None,
    llffhold: int = LLFFHOLD,
    near: float | None = None,
    far: float | None = None,
) -> SplitCameras:
    """The cameras of the split ``load_scene`` would load with the same arguments, read from the
    scene's transforms / metadata / poses files and the image headers, without decoding a pixel."""
    path = Path(path)
    kind = _checked_kind(path, split, multiscale, downscale, factor, spherify)
    if kind == "llff":
        return llff_cameras(path, split, factor, spherify, llffhold, near, far)
    if kind == "multiscale":
        return multiscale_cameras(path, split)
    return blender_cameras(path, split, downscale)


def _checked_kind(
    path: Path,
    split: str,
    multiscale: bool | None,
    downscale: int,
    factor: int,
    spherify: bool | None,
    kind: str | None = None,
) -> str:
    """The kind of scene `path` is loaded as, after the checks of ``load_scene`` (kind: as the
    caller decided it, else ``scene_kind(path)``)."""
    if split not in SPLITS:
        raise MipNerfError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    kind = kind or scene_kind(path)
    if multiscale is False and kind == "multiscale" and transforms_path(path, split).is_file():
        kind = "blender"  # a folder holding both: the caller asked for the Blender files
    check_scene_kind(path, kind, multiscale, downscale, factor, spherify)
    if kind == "blender" and not transforms_path(path, split).is_file():
        raise MipNerfError(f"{transforms_path(path, split)}: file not found (this scene has no '{split}' split)")
    return kind

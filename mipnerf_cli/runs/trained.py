"""The one door from a run folder or a checkpoint to what eval, render, view and export need.

A run folder looks like ``<run>/ckpt/last.pt`` (plus ``step-*.pt``) next to ``config.yaml``;
``--run DIR`` picks its newest checkpoint, ``--ckpt FILE`` a given one (its run folder is
the parent of ``ckpt/``). Everything the commands need besides the weights (scene folder,
kind, background) is read from the checkpoint, which carries the settings it was trained with.

- :func:`load_trained_model`: the settings and the model (of any family) -> :class:`TrainedModel`;
- :meth:`TrainedModel.scene` -> :class:`TrainedScene`: the scene folder, its kind (checked
  against the checkpoint's, the same refusal for every command), spherify, NDC, the Blender
  downscale, decided here once and passed along;
- :meth:`TrainedScene.cameras` -> :class:`SceneCameras`: a split's cameras from the scene's
  transforms / metadata / poses files, no pixels decoded; :meth:`TrainedScene.load`: the
  split's images (eval).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from mipnerf_cli.errors import MipNerfError

KIND_NAMES = {"multiscale": "a multiscale", "llff": "an LLFF"}  # else "a single-scale (Blender)"


@dataclasses.dataclass
class TrainedModel:
    """A model ready to render, and where it came from."""

    model: torch.nn.Module
    checkpoint_path: Path
    run_dir: Path
    step: int
    exp_name: str
    kind: str | None  # "blender" | "multiscale" as recorded at training time (None if unknown)
    white_bkgd: bool
    data_path: Path | None  # the scene folder recorded at training time
    settings: dict[str, Any]
    device: torch.device

    def scene(self, data: Path | None = None) -> TrainedScene:
        """The scene this model renders: ``--data`` if given, else the one it was trained on."""
        return trained_scene(self, data)


def newest_checkpoint(run_dir: Path) -> Path:
    """``<run>/ckpt/last.pt``, else the ``step-*.pt`` with the highest step."""
    from mipnerf_cli.runs.checkpoints import LAST, step_checkpoints

    if run_dir.is_file():
        raise MipNerfError(f"--run {run_dir} is a file; pass the run folder, or give a checkpoint file with --ckpt")
    if not run_dir.is_dir():
        raise MipNerfError(f"run folder {run_dir} not found; pass the folder `mipnerf train` wrote (out/<exp_name>)")
    folder = run_dir / "ckpt"
    if (folder / LAST).is_file():
        return folder / LAST
    steps = step_checkpoints(folder)
    if not steps:
        raise MipNerfError(
            f"no checkpoint in {folder} (expected last.pt or step-*.pt); train first or pass --ckpt FILE"
        )
    return steps[-1][1]


def _load_newest(checkpoint_path: Path, from_run: bool) -> tuple[dict[str, Any], Path]:
    """Load `checkpoint_path`; for ``--run``, prefer a step file newer than last.pt.

    A step file with a higher step than last.pt means training was killed between writing
    the two (the trainer resumes from it too). A damaged newest checkpoint is an error,
    not a silent fallback: the results would be filed under another step.
    """
    from mipnerf_cli.runs.checkpoints import LAST, load_checkpoint, step_checkpoints
    from mipnerf_cli.runs.payload import step_of

    try:
        payload = load_checkpoint(checkpoint_path)
    except MipNerfError as error:
        older = [path for _, path in step_checkpoints(checkpoint_path.parent)] if from_run else []
        hint = f"; to use an older one pass --ckpt {older[-1]}" if older and older[-1] != checkpoint_path else ""
        raise MipNerfError(f"{error}{hint}") from None
    if from_run and checkpoint_path.name == LAST:
        newer = [path for step, path in step_checkpoints(checkpoint_path.parent) if step > step_of(payload)]
        if newer:
            return load_checkpoint(newer[-1]), newer[-1]
    return payload, checkpoint_path


def run_dir_of(checkpoint_path: Path) -> Path:
    """The run folder of a checkpoint: the parent of ``ckpt/``, else the file's own folder."""
    parent = checkpoint_path.absolute().parent
    return parent.parent if parent.name == "ckpt" else parent


def resolve_checkpoint(run: Path | None, ckpt: Path | None) -> tuple[Path, Path]:
    """(checkpoint file, run folder) from ``--run`` or ``--ckpt`` (exactly one of them)."""
    if (run is None) == (ckpt is None):
        raise MipNerfError("pass either --run DIR (its newest checkpoint) or --ckpt FILE, not both or neither")
    if ckpt is not None:
        if not ckpt.is_file():
            raise MipNerfError(f"checkpoint {ckpt} not found; pass a .pt file, or --run RUN_DIR for a run's newest one")
        return ckpt.absolute(), run_dir_of(ckpt)
    run = run.absolute()
    return newest_checkpoint(run), run


def load_trained_model(run: Path | None, ckpt: Path | None, device: torch.device) -> TrainedModel:
    """Load the checkpoint chosen by ``--run``/``--ckpt`` and build its model on `device`.

    Raises MipNerfError naming the file when it is missing, truncated, corrupt or holds
    weights that do not fit the model it describes.
    """
    from mipnerf_cli.runs.payload import model_from_checkpoint, read

    checkpoint_path, run_dir = resolve_checkpoint(run, ckpt)
    payload, checkpoint_path = _load_newest(checkpoint_path, from_run=run is not None)
    try:
        model, _ = model_from_checkpoint(payload, source=checkpoint_path)
    except MipNerfError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        # load_state_dict reports shape mismatches as a long multi-line RuntimeError.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MipNerfError(
            f"checkpoint {checkpoint_path} does not fit the model it describes ({first_line[:200]})"
        ) from None
    recorded = read(payload)
    model = model.to(device).eval()
    return TrainedModel(
        model=model,
        checkpoint_path=checkpoint_path,
        run_dir=run_dir,
        step=recorded.step,
        exp_name=str(recorded.settings.get("exp_name") or run_dir.name),
        kind=recorded.kind,
        white_bkgd=recorded.white_bkgd,
        data_path=recorded.data_path(run_dir),
        settings=recorded.settings,
        device=device,
    )


def training_downscale(trained: TrainedModel, scene_kind: str, requested: int | None = None) -> int:
    """How many times smaller than on disk a scene's images are scored and rendered.

    `requested` if given, else the run's training `downscale`: like google/mipnerf, whose
    `factor` shrinks every split, a model trained at 1/8 is evaluated at 1/8. Multiscale
    scenes carry their own levels and are never shrunk.
    """
    if scene_kind != "blender":
        return 1
    if requested is not None:
        return requested
    return int(trained.settings.get("downscale") or 1)


def scene_folder(trained: TrainedModel, data: Path | None) -> Path:
    """``--data`` if given, else the scene folder the checkpoint was trained on."""
    if data is not None:
        path = data
    elif trained.data_path is not None:
        path = trained.data_path
        if not path.is_absolute():
            path = trained.run_dir / path
    else:
        raise MipNerfError(f"checkpoint {trained.checkpoint_path} does not record its scene folder; pass --data PATH")
    if not path.exists():
        raise MipNerfError(f"scene folder {path} not found; pass --data PATH")
    return path


@dataclasses.dataclass(frozen=True)
class TrainedScene:
    """A trained model's scene as it was trained on it, decided once (:func:`trained_scene`).

    kind: "blender" | "multiscale" | "llff"; downscale: Blender images this many times smaller
    than on disk; factor, spherify, llffhold: a capture's loader options (the run's own);
    ndc: the model sees its rays in NDC (``data.formats.llff.uses_ndc``, the one rule).
    """

    folder: Path
    kind: str
    downscale: int
    factor: int
    spherify: bool
    llffhold: int
    ndc: bool
    white_bkgd: bool

    @property
    def llff(self) -> dict[str, Any] | None:
        """A capture's loader options (factor, spherify, llffhold), else None."""
        if self.kind != "llff":
            return None
        return {"factor": self.factor, "spherify": self.spherify, "llffhold": self.llffhold}

    def _options(self, downscale: int | None = None) -> dict[str, Any]:
        return {
            "multiscale": self.kind == "multiscale",
            "downscale": self.downscale if downscale is None or self.kind != "blender" else downscale,
            "factor": self.factor,
            "spherify": self.spherify,
            "llffhold": self.llffhold,
        }

    def cameras(self, split: str = "train") -> SceneCameras:
        """The cameras of `split` (no pixels decoded)."""
        from mipnerf_cli.data import load_cameras

        found = load_cameras(self.folder, split, **self._options())
        return SceneCameras(
            scene=self,
            split=split,
            cam2world=found.cam2world.to(torch.float64),
            focals=found.focal.to(torch.float64),
            widths=list(found.widths),
            heights=list(found.heights),
            levels=list(found.levels),
            files=list(found.files),
            near=float(found.near),
            far=float(found.far),
        )

    def load(self, split: str, downscale: int | None = None):
        """The images of `split` (a ``data.ImageSet``), Blender ones `downscale` times smaller
        than on disk (default: as trained)."""
        from mipnerf_cli.data import load_scene

        return load_scene(self.folder, split, white_bkgd=self.white_bkgd, **self._options(downscale))


@dataclasses.dataclass(frozen=True)
class SceneCameras:
    """The cameras of one split of a trained model's scene, in the split's order.

    cam2world: (I, 3, 4) float64;  focals: (I,) float64 pixels;  widths, heights, levels: I ints
    (level 0: full resolution);  files: the I image files;  near, far: the rays' bounds.
    """

    scene: TrainedScene
    split: str
    cam2world: torch.Tensor
    focals: torch.Tensor
    widths: list[int]
    heights: list[int]
    levels: list[int]
    files: list[Path]
    near: float
    far: float

    @property
    def folder(self) -> Path:
        return self.scene.folder

    @property
    def kind(self) -> str:
        return self.scene.kind

    @property
    def ndc(self) -> bool:
        return self.scene.ndc

    @property
    def llff(self) -> dict[str, Any] | None:
        return self.scene.llff

    @property
    def focal(self) -> float:
        """The first camera's focal length (pixels)."""
        return float(self.focals[0])

    @property
    def width(self) -> int:
        return self.widths[0]

    @property
    def height(self) -> int:
        return self.heights[0]

    @property
    def centres(self) -> torch.Tensor:
        """(I, 3) the camera centres."""
        return self.cam2world[:, :3, 3]

    def full_resolution(self) -> SceneCameras:
        """The full-resolution (level 0) cameras; MipNerfError when the split has none."""
        full = [i for i, level in enumerate(self.levels) if level == 0]
        if not full:
            raise MipNerfError(
                f"{self.folder}: the {self.split} split has no full-resolution images to take the cameras from"
            )
        return dataclasses.replace(
            self,
            cam2world=self.cam2world[full],
            focals=self.focals[full],
            widths=[self.widths[i] for i in full],
            heights=[self.heights[i] for i in full],
            levels=[0] * len(full),
            files=[self.files[i] for i in full],
        )

    def rays(self, cam2world: torch.Tensor, width: int, height: int, focal: float):
        """The H*W rays (row-major, a RayBundle) of a pinhole camera at `cam2world` (3, 4) as this
        scene's model sees them: in NDC for a forward-facing capture, else world rays."""
        from mipnerf_cli.data.formats.llff import pose_rays

        return pose_rays(cam2world, width, height, focal, self.near, self.far, self.ndc)


def trained_scene(trained: TrainedModel, data: Path | None = None) -> TrainedScene:
    """The scene of `trained` (``--data`` if given, else the recorded one), decided once: its
    kind, refused in one line when it is not the kind the checkpoint was trained on; spherify
    and the capture options from the run's settings; NDC; the Blender downscale."""
    from mipnerf_cli.data import llff_options, scene_kind
    from mipnerf_cli.data.formats.llff import uses_ndc

    folder = scene_folder(trained, data)
    kind = scene_kind(folder)
    if trained.kind is not None and kind != trained.kind:
        trained_as = KIND_NAMES.get(trained.kind, "a single-scale (Blender)")
        found = KIND_NAMES.get(kind, "a single-scale (Blender)")
        raise MipNerfError(
            f"{folder} is {found} scene but checkpoint {trained.checkpoint_path} was trained on {trained_as} "
            "scene; pass --data with a scene of the same kind"
        )
    options = llff_options(trained.settings)
    return TrainedScene(
        folder=folder,
        kind=kind,
        downscale=training_downscale(trained, kind),
        factor=options["factor"],
        spherify=options["spherify"],
        llffhold=options["llffhold"],
        ndc=uses_ndc(kind, options["spherify"]),
        white_bkgd=trained.white_bkgd,
    )


def load_trained_model_on_ranks(run: Path | None, ckpt: Path | None, device: torch.device, context) -> TrainedModel:
    """`load_trained_model` for every torchrun process (`context`: a distributed.Context).

    Rank 0 reads the checkpoint (so its errors are reported once, and the other machines
    need no copy of the run folder) and hands the model to the others, each on its `device`.
    """
    if not context.distributed:
        return load_trained_model(run, ckpt, device)
    trained = context.broadcast(context.on_main(lambda: load_trained_model(run, ckpt, torch.device("cpu"))))
    return dataclasses.replace(trained, model=trained.model.to(device), device=device)

"""Finding and loading a trained model for `mipnerf eval` and `mipnerf render`.

A run folder looks like ``<run>/ckpt/last.pt`` (plus ``step-*.pt``) next to ``config.yaml``;
``--run DIR`` picks its newest checkpoint, ``--ckpt FILE`` a given one (its run folder is
the parent of ``ckpt/``). Everything the commands need besides the weights (scene folder,
kind, background) is read from the checkpoint, which carries the settings it was trained with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from mipnerf_cli.errors import MipNerfError


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


def load_trained_model_on_ranks(run: Path | None, ckpt: Path | None, device: torch.device, context) -> TrainedModel:
    """`load_trained_model` for every torchrun process (`context`: a distributed.Context).

    Rank 0 reads the checkpoint (so its errors are reported once, and the other machines
    need no copy of the run folder) and hands the model to the others, each on its `device`.
    """
    if not context.distributed:
        return load_trained_model(run, ckpt, device)
    trained = context.broadcast(context.on_main(lambda: load_trained_model(run, ckpt, torch.device("cpu"))))
    return dataclasses.replace(trained, model=trained.model.to(device), device=device)

"""What a checkpoint holds: the payload schema, written and read in this one module.

Payload keys (``FORMAT_VERSION`` 1):

- ``format_version`` (int), ``step`` (int: steps done), ``elapsed_s`` (training seconds over
  all sessions, validation excluded);
- ``model`` (the plain model's state_dict, on the CPU), ``optimizer`` (Adam's state_dict);
- ``model_family`` (``core.models.FAMILIES`` key; absent in checkpoints written before
  families existed, which hold a ``mipnerf``), ``model_config`` (that family's config as a
  dict), ``settings`` (the TrainSettings as plain data);
- ``scene`` (dict: kind, multiscale, white_bkgd, data, data_relative_to_run);
- ``cpu_kernel`` ('mkl' | 'onednn': the CPU fast path's matmul kernel the training steps ran;
  absent where none ran and in older checkpoints). A resumed run with ``cpu_kernel: auto``
  runs it again instead of probing afresh (a probe on a busy machine may choose otherwise,
  and the two kernels agree only to ~1e-6), so resume stays bit-exact.

No random-generator state: every step's batch and noise come from (seed, step), so resuming
needs only the step (checkpoints written before kept an ``"rng"`` entry, which loads and is
ignored). :func:`make_payload` builds a payload; :func:`read` is what resume, eval, render
and view take from one; :func:`check` is what loading demands of one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional

from mipnerf_cli.errors import MipNerfError, first_line

FORMAT_VERSION = 1
REQUIRED = ("step", "model", "model_config", "settings")


def model_config_dict(settings) -> dict[str, Any]:
    """The ``model_config`` entry of a run with these TrainSettings (of its model family)."""
    return dataclasses.asdict(settings.model_family_config()[1])


def make_payload(step, model, optimizer, settings, kind, run_dir, elapsed_s, cpu_kernel=None) -> dict[str, Any]:
    """The checkpoint of `step` (see the module docstring for the keys)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "model_family": model.family,
        "model_config": model.config_dict(),
        "settings": settings.model_dump(mode="json"),
        "scene": {
            "kind": kind,
            "multiscale": settings.multiscale,
            "white_bkgd": settings.white_bkgd,
            "data": str(settings.data),
            "data_relative_to_run": _relative(settings.data, run_dir),
        },
        "elapsed_s": elapsed_s,
    }
    if cpu_kernel is not None:
        payload["cpu_kernel"] = cpu_kernel
    return payload


def _relative(path: Path, folder: Path) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return str(path)


def check(payload: Any, path: Path) -> None:
    """MipNerfError naming `path` unless `payload` is a payload this version reads."""
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise MipNerfError(f"checkpoint {path} is not a mipnerf checkpoint (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise MipNerfError(
            f"checkpoint {path} has format version {payload['format_version']}; this mipnerf reads version {FORMAT_VERSION}"
        )
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise MipNerfError(f"checkpoint {path} lacks {', '.join(missing)}")


def step_of(payload: dict[str, Any]) -> int:
    """The number of steps a payload has done."""
    return int(payload["step"])


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What a payload says about its run, besides the weights (read by :func:`read`).

    kind: "blender" | "multiscale" | "llff" (older payloads without a scene entry: from the
    multiscale setting, else None); white_bkgd: the scene entry's, else the settings', else True.
    """

    step: int
    elapsed_s: float
    model_config: dict[str, Any]
    model_family: str
    settings: dict[str, Any]
    kind: Optional[str]
    white_bkgd: bool
    data: Optional[str]  # the scene folder as given at training time
    data_relative_to_run: Optional[str]
    cpu_kernel: Optional[str] = None  # the training steps' matmul kernel ('mkl' | 'onednn'), if recorded

    def data_path(self, run_dir: Path) -> Path | None:
        """The scene folder: relative to the run folder where that exists (it survives moving
        the run and its data together), else as recorded."""
        relative = self.data_relative_to_run
        if relative and (run_dir / relative).exists():
            return Path(os.path.normpath(run_dir / relative))
        for value in (self.data, self.settings.get("data")):
            if value:
                return Path(value)
        return None


def read(payload: dict[str, Any]) -> Recorded:
    """The run information of a loaded payload (:func:`check` passed)."""
    settings = dict(payload.get("settings") or {})
    scene = dict(payload.get("scene") or {})
    kind = scene.get("kind")
    if kind is None and "multiscale" in settings:
        kind = "multiscale" if settings["multiscale"] else "blender"
    return Recorded(
        step=int(payload.get("step", 0)),
        elapsed_s=float(payload.get("elapsed_s", 0.0)),
        model_config=payload["model_config"],
        model_family=payload.get("model_family", "mipnerf"),
        settings=settings,
        kind=kind,
        white_bkgd=bool(scene.get("white_bkgd", settings.get("white_bkgd", True))),
        data=scene.get("data"),
        data_relative_to_run=scene.get("data_relative_to_run"),
        cpu_kernel=payload.get("cpu_kernel"),
    )


def model_from_checkpoint(ckpt: dict[str, Any], source: str | Path = "checkpoint"):
    """(the checkpoint's model, of its family, in eval mode on CPU with its weights, the settings dict)."""
    from mipnerf_cli.core import models

    family = ckpt.get("model_family", models.DEFAULT_FAMILY)
    if family not in models.FAMILIES:
        raise MipNerfError(f"{source} holds a {family!r} model, which this version does not know")
    unknown = sorted(set(ckpt["model_config"]) - models.config_fields(family))
    if unknown:
        raise MipNerfError(f"{source} has model settings this version does not know: {', '.join(unknown)}")
    model = models.build(family, ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as error:
        detail = _weights_mismatch(model, ckpt["model"]) or first_line(error)
        raise MipNerfError(
            f"{source}: the weights do not fit its model_config ({detail}); the file was changed or not "
            "written by `mipnerf train`, use a checkpoint as the trainer wrote it"
        ) from None
    model.eval()
    return model, ckpt["settings"]


def _weights_mismatch(model, weights: dict[str, Any]) -> str:
    """The first difference between a model's parameters and a state_dict, in a few words."""
    expected = model.state_dict()
    for name, tensor in weights.items():
        if name not in expected:
            return f"unexpected weight {name}"
        if tuple(tensor.shape) != tuple(expected[name].shape):
            return f"{name} is {tuple(tensor.shape)} in the file, {tuple(expected[name].shape)} in the model"
    missing = [name for name in expected if name not in weights]
    return f"missing weight {missing[0]}" if missing else ""

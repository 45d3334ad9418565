"""The nerfbaselines Method: this project's model, training step and checkpoints behind
nerfbaselines' interface (``nerfbaselines.Method``).

- settings: ``config_overrides`` are TrainSettings fields (``max_steps=...``; a model field as
  ``model.num_samples=...``), over the packaged config named by ``config`` (``config=lego``),
  over the defaults; the dataset's background decides ``white_bkgd``.
- ``train_iteration(step)`` is the project's step ``step + 1`` (its steps count from 1):
  `training.begin_step` runs the model's ``before_step`` hook (the grid model's occupancy
  grid) and draws the batch from (seed, step), as ``mipnerf train``'s loop does;
  `training.train_step` takes it.
- two method ids: ``mipnerf`` (MipNerfMethod, the paper model) and ``mipnerf-fast``
  (MipNerfFastMethod: the grid model, packaged config ``fast`` unless ``config`` says otherwise).
- ``save(path)`` writes ``path/mipnerf.pt``, a checkpoint of `runs.checkpoints` that
  ``mipnerf eval --ckpt`` and ``mipnerf render --ckpt`` read too; a reloaded checkpoint
  saves to the same bytes.
- ``render(camera)`` renders the fine level deterministically (`core.render.render_image`)
  with `cameras.camera_rays`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from nerfbaselines import Method

from mipnerf_cli.config_files import deep_merge, find_config, load_yaml_settings
from mipnerf_cli.distributed import SINGLE
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.nerfbaselines import cameras as nb_cameras
from mipnerf_cli.settings import TrainSettings

CHECKPOINT_FILE = "mipnerf.pt"
METHOD_ID = "mipnerf"
FAST_METHOD_ID = "mipnerf-fast"
OUTPUTS = ("color", {"name": "depth", "type": "depth"}, "accumulation")


def settings_from_overrides(
    overrides: Optional[dict[str, Any]],
    base: Optional[dict[str, Any]] = None,
    default_config: Optional[str] = None,
) -> TrainSettings:
    """TrainSettings from nerfbaselines' ``config_overrides`` (values may be strings, as
    ``--set key=value`` gives them) over ``base`` (a checkpoint's settings) or, without it,
    the packaged config ``config`` names (else ``default_config``) and the defaults."""
    from pydantic import ValidationError

    values = dict(overrides or {})
    config = values.pop("config", None if base is not None else default_config)
    merged: dict[str, Any] = dict(base) if base is not None else {}
    if config is not None:
        merged = deep_merge(merged, load_yaml_settings(find_config(str(config))))
    nested: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = str(key).split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    try:
        return TrainSettings.model_validate(deep_merge(merged, nested))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise MipNerfError(f"mipnerf config_overrides: {problems}") from None


def scalar_hparams(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings flattened to ``a.b`` keys with int/float/str/bool values (None dropped)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(scalar_hparams(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[f"{prefix}{key}"] = value
        elif value is not None:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class MipNerfMethod(Method):
    """mip-NeRF (``core.models``' ``mipnerf`` family) as a nerfbaselines method."""

    method_id = METHOD_ID
    default_config: Optional[str] = None  # the packaged config used when ``config`` is not given

    def __init__(
        self,
        *,
        checkpoint: Optional[str] = None,
        train_dataset: Optional[dict] = None,
        config_overrides: Optional[dict[str, Any]] = None,
    ):
        from mipnerf_cli import runtime as runtimes
        from mipnerf_cli.distributed import SINGLE
        from mipnerf_cli.runs.checkpoints import load_checkpoint
        from mipnerf_cli.runs.payload import model_from_checkpoint
        from mipnerf_cli.training import build_model, build_optimizer, load_optimizer_state
        from mipnerf_cli.training.setup import pin_train_kernel

        super().__init__()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        payload = None
        if checkpoint is not None:
            payload = load_checkpoint(Path(checkpoint) / CHECKPOINT_FILE)
            self.settings = settings_from_overrides(config_overrides, base=payload["settings"])
            self.scene = dict(payload.get("scene") or {})
        else:
            if train_dataset is None:
                raise MipNerfError("mipnerf needs a checkpoint or a train dataset")
            self.settings = settings_from_overrides(config_overrides, default_config=self.default_config)
            self.scene = {}
        self.train_set = None
        if train_dataset is not None:
            self.train_set = nb_cameras.dataset_image_set(train_dataset)
            root = train_dataset.get("image_paths_root")
            self.settings = self.settings.model_copy(
                update={"white_bkgd": self.train_set.white_bkgd, "data": Path(root) if root else None}
            )
            if not self.scene:
                multiscale = (train_dataset.get("metadata") or {}).get("multiscale_base_width") is not None
                self.scene = {
                    "kind": "multiscale" if multiscale else "blender",
                    "multiscale": multiscale,
                    "white_bkgd": self.train_set.white_bkgd,
                    "data": None if root is None else str(root),
                    "data_relative_to_run": None,
                    "near": self.train_set.near,
                    "far": self.train_set.far,
                }
        self.runtime = runtimes.from_settings(self.settings)
        if payload is not None:
            self.model, _ = model_from_checkpoint(payload, Path(checkpoint) / CHECKPOINT_FILE)
            self.model = self.model.to(self.runtime.device)
        else:
            self.model = build_model(self.settings).to(self.runtime.device)
        # The training kernel as `mipnerf train` pins it: a reloaded checkpoint keeps the one it recorded.
        recorded = None if payload is None else payload.get("cpu_kernel")
        self.runtime = pin_train_kernel(self.runtime, self.model, self.settings, recorded, SINGLE)
        self.optimizer = build_optimizer(self.model, self.settings, self.runtime)
        if payload is not None:
            load_optimizer_state(self.optimizer, payload["optimizer"])
        self.step = 0 if payload is None else int(payload["step"])
        self.loaded_step = None if payload is None else self.step
        self.elapsed_s = 0.0 if payload is None else float(payload.get("elapsed_s", 0.0))

    @classmethod
    def get_method_info(cls) -> dict[str, Any]:
        return {
            "method_id": cls.method_id,
            "required_features": frozenset(("color",)),
            "supported_camera_models": frozenset(("pinhole",)),
            "supported_outputs": OUTPUTS,
            "can_resume_training": True,
        }

    def get_info(self) -> dict[str, Any]:
        info = dict(self.get_method_info())
        info.update(
            num_iterations=self.settings.max_steps,
            loaded_step=self.loaded_step,
            loaded_checkpoint=self.checkpoint,
            batch_size=self.settings.batch_size,
            eval_batch_size=self.settings.val_chunk,
            hparams=scalar_hparams(
                {
                    k: v
                    for k, v in self.settings.model_dump(mode="json").items()
                    if k not in ("data", "data_root", "out_dir")
                }
            ),
        )
        return info

    # ------------------------------------------------------------------------- training

    def train_iteration(self, step: int) -> dict[str, float]:
        """nerfbaselines' step ``step`` (from 0) = the project's step ``step + 1``."""
        from mipnerf_cli.training import (
            begin_step,
            learning_rate,
            psnr_from_level_mse,
            step_generator,
            train_step,
        )

        if self.train_set is None:
            raise MipNerfError("mipnerf was loaded without a train dataset; it cannot train")
        tic = time.perf_counter()
        settings, device = self.settings, self.runtime.device
        number = step + 1
        rays, pixels, noise, _ = begin_step(settings, number, self.train_set, self.model, device, SINGLE)
        lr = learning_rate(number, settings)
        generator = step_generator(settings.seed, number, "noise", device) if noise is None else None
        pending = train_step(
            self.model, self.optimizer, rays, pixels, lr, settings, generator, self.runtime, noise=noise
        )
        stats = pending.get()
        if not stats.finite:
            raise MipNerfError(f"the loss became {stats.loss} at step {number} (lr {lr:.3g})")
        self.step = number
        self.elapsed_s += time.perf_counter() - tic
        return {
            "loss": stats.loss,
            "psnr": psnr_from_level_mse(stats.level_mses[-1]),
            "learning_rate": lr,
            "num_rays": settings.batch_size,
        }

    # ------------------------------------------------------------------------- rendering

    def render(self, camera, *, options: Optional[dict] = None) -> dict[str, np.ndarray]:
        """color (H, W, 3) float32 in [0, 1], depth (H, W) (distance along the ray per unit of
        camera-space z, i.e. z depth), accumulation (H, W); deterministic."""
        from mipnerf_cli.core.render import render_image

        camera = camera.item()
        fallback = (self.scene["near"], self.scene["far"]) if "near" in self.scene else None
        rays, height, width = nb_cameras.camera_rays(camera, nb_cameras.near_far(camera, fallback))
        white = bool(self.scene.get("white_bkgd", self.settings.white_bkgd))
        out = render_image(
            self.model, rays, height, width, self.settings.val_chunk, white, **self.runtime.render_options(self.model)
        )
        return {
            "color": out["rgb"].clamp(0.0, 1.0).numpy(),
            "depth": out["distance"].numpy(),
            "accumulation": out["acc"].numpy(),
        }

    # ------------------------------------------------------------------------- checkpoints

    def save(self, path: str) -> None:
        """``path/mipnerf.pt``: the project's checkpoint (`runs.payload` layout)."""
        from mipnerf_cli.runs.checkpoints import save_checkpoint
        from mipnerf_cli.runs.payload import make_payload

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        payload = make_payload(
            self.step, self.model, self.optimizer, self.settings, self.scene["kind"], folder, self.elapsed_s,
            cpu_kernel=self.runtime.train_kernel,
        )  # fmt: skip
        # The scene entry as it was when the model was made: nothing in the file depends on
        # the folder it is saved to, so a reloaded checkpoint saves to the same bytes.
        payload["scene"] = dict(self.scene)
        save_checkpoint(folder / CHECKPOINT_FILE, payload)


class MipNerfFastMethod(MipNerfMethod):
    """The grid model (``core.models``' ``trimip`` family, packaged config ``fast``) as a
    nerfbaselines method; everything else as MipNerfMethod."""

    method_id = FAST_METHOD_ID
    default_config = "fast"

"""What a run is built from: the scene check, the model, the optimizer, the CPU matmul kernel, torch.compile."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from mipnerf_cli.core import fast, kernels
from mipnerf_cli.distributed import Context
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runtime import Runtime
from mipnerf_cli.settings import DATA_ROOT_ENV, TrainSettings


def check_scene(settings: TrainSettings) -> str:
    """The scene's kind ("blender" | "multiscale" | "llff"); MipNerfError when it does not fit the settings."""
    from mipnerf_cli.data.scene import check_scene_kind, scene_kind

    data = settings.data
    if not data.exists():
        hint = (
            "" if settings.scene is None else f" (from --scene {settings.scene} under --data-root {settings.data_root})"
        )
        raise MipNerfError(f"scene folder {data} not found{hint}; pass --data SCENE_DIR or set {DATA_ROOT_ENV}")
    kind = scene_kind(data)
    if settings.model_family == "trimip" and kind not in ("blender", "multiscale"):
        raise MipNerfError(
            f"the grid model (model_family trimip, --config fast) takes Blender and multiscale scenes; "
            f"{data} is a capture: train it with --config llff-cpu (or llff)"
        )
    check_scene_kind(
        data,
        kind,
        multiscale=settings.multiscale,
        downscale=settings.downscale,
        factor=settings.factor or 0,
        spherify=bool(settings.spherify),
    )
    return kind


@dataclasses.dataclass(frozen=True)
class TrainScene:
    """What training needs to know about its scene, decided once (``resolve_scene``) and
    handed to every load of it."""

    kind: str  # "blender" | "multiscale" | "llff"
    factor: int = 0  # LLFF: images_<factor>/ (0: images/)
    spherify: bool = False  # LLFF: a 360° capture (spherified poses, no NDC)
    llffhold: int = 8  # LLFF: every llffhold-th image is a test image

    def load_options(self) -> dict[str, Any]:
        """The keyword arguments of ``data.load_scene`` that this decides (kind and the LLFF options)."""
        return {"kind": self.kind, "factor": self.factor, "spherify": self.spherify, "llffhold": self.llffhold}


def resolve_scene(settings: TrainSettings) -> tuple[TrainSettings, TrainScene]:
    """The scene's kind, checked against the settings (``check_scene``), and for a capture the
    spherify its scene implies when the settings leave it open; the settings returned record
    that spherify, so that config.yaml and the checkpoints hold what was trained with."""
    from mipnerf_cli.data.formats.capture import resolve_spherify

    kind = check_scene(settings)
    spherify = settings.spherify
    if kind == "llff" and spherify is None:
        spherify = resolve_spherify(settings.data, None)
        settings = settings.model_copy(update={"spherify": spherify})
    scene = TrainScene(kind=kind, factor=settings.factor or 0, spherify=bool(spherify), llffhold=settings.llffhold)
    return settings, scene


def build_model(settings: TrainSettings) -> nn.Module:
    """A freshly initialised model of the settings' family; the initial weights depend on the seed only."""
    import dataclasses

    from mipnerf_cli.core import models

    family, config = settings.model_family_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return models.build(family, dataclasses.asdict(config))


class SkippableAdam(torch.optim.Adam):
    """torch's Adam whose step takes `found_inf`: a device tensor, 1.0 to skip the update
    (moments and step counts included), which the fused implementation reads without the
    host waiting for the device. torch's Adam.step reads it from the optimizer's attributes
    (where torch's GradScaler puts it); this step argument keeps that inside the optimizer."""

    @property
    def fused(self) -> bool:
        """Whether every parameter group runs the fused implementation (the one that reads `found_inf`)."""
        return all(group.get("fused") for group in self.param_groups)

    def step(self, closure=None, found_inf: torch.Tensor | None = None):
        if found_inf is None:
            return super().step(closure)
        if not self.fused:
            raise ValueError("found_inf needs the fused Adam (fused=True)")
        self.found_inf = found_inf
        try:
            return super().step(closure)
        finally:
            del self.found_inf


def build_optimizer(model: nn.Module, settings: TrainSettings, runtime: Runtime | None = None) -> SkippableAdam:
    """Adam; fused (one kernel for all parameters, a device flag to skip a step) under the
    sync-free step of CUDA (`runtime.sync_free_step`), torch's default implementation elsewhere."""
    fused = runtime is not None and runtime.sync_free_step
    return SkippableAdam(
        model.parameters(),
        lr=settings.lr_init,
        betas=(settings.adam_beta1, settings.adam_beta2),
        eps=settings.adam_eps,
        fused=fused or None,
    )


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """A checkpoint's Adam state into `optimizer`, which keeps its own implementation (fused
    or not: the checkpoint may come from another device) with its step counts where it wants them."""
    own = [{key: group[key] for key in ("fused", "foreach") if key in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kind in zip(optimizer.param_groups, own):
        group.update(kind)
        if group.get("fused"):
            for parameter in group["params"]:
                entry = optimizer.state.get(parameter, {})
                if "step" in entry:
                    entry["step"] = entry["step"].to(device=parameter.device, dtype=torch.float32)


def pin_train_kernel(
    runtime: Runtime, model: nn.Module, settings: TrainSettings, recorded: str | None, context: Context
) -> Runtime:
    """`runtime` with the CPU fast path's training kernel pinned (`Runtime.train_kernel`), which
    the run's checkpoints record; unchanged off the fast path or for a family without a choice.

    An explicit `cpu_kernel` ('mkl' / 'onednn') is pinned as it is. 'auto' takes the kernel a
    resumed checkpoint `recorded` (when it runs here), so that a probe answering otherwise on a
    busy machine cannot break bit-exact resume (the kernels agree only to ~1e-6); without one
    (a new run, an older checkpoint) rank 0 probes at its batch's shape and every torchrun rank
    takes its answer (`context.broadcast`), so all ranks run, and record, one kernel.
    """
    if not runtime.uses_fast_path(model) or model.matmul_shape(1) is None:
        return runtime
    name = runtime.cpu_kernel
    if name == "auto":
        if recorded == "mkl" or (recorded == "onednn" and kernels.onednn_available()):
            name = recorded
        else:
            options = runtime.fast_options(settings.fast_micro_batch, settings.fast_workers)
            rows = settings.batch_size // context.world_size
            name = context.broadcast(fast.train_kernel_name(model, options, rows) if context.is_main else None)
    return dataclasses.replace(runtime, train_kernel=name)


def compile_for_training(step_model: nn.Module) -> nn.Module:
    """The training step's module under torch.compile; the model itself stays eager.

    Only training runs compiled: one graph (fixed batch, randomized, pre-drawn noise).
    Validation renders the plain model, whose other flags and short last chunk would
    otherwise recompile at every check (multiscale lego reached dynamo's limit of 8 graphs
    and fell back to eager without a word). Checkpoints take the plain model's state_dict.
    """
    return torch.compile(step_model, dynamic=False)

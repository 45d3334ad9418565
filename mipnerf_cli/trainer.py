"""The training loop of `mipnerf train`.

One step is a pure function of (seed, step, parameters, optimizer state): the batch of
pixels comes from ``data.sample_batch(seed, step)`` and the stratified-sampling noise from
a generator seeded with (seed, step). That is why a checkpoint needs no sampler state
and a run killed after any save and resumed ends bit-identical to an uninterrupted one.

Several processes (torchrun, :mod:`mipnerf_cli.distributed`): ``batch_size`` is the global
batch. Every rank draws the whole step's pixels and noise from (seed, step) and takes its
rows (:func:`rank_rows`); each rank's loss is weighted by its share of the batch's lossmult
sum, so the averaged gradient is the one of the global batch and W ranks follow the
1-process trajectory up to float summation order. Rank 0 alone writes to the run folder;
all ranks stop together (Ctrl+C, a non-finite loss) and checkpoints hold the plain model's
state_dict, so a run can be resumed on any number of ranks.

Run folder ``<out_dir>/<exp_name>/``: ``config.yaml`` (resolved settings, paths relative to
the folder), ``ckpt/step-NNNNNNN.pt`` + ``ckpt/last.pt``, ``metrics.jsonl``, ``.lock``,
and TensorBoard events when tensorboard is installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import yaml
from torch import nn

from mipnerf_cli import checkpoint
from mipnerf_cli.checkpoint import FORMAT_VERSION, RunLock
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.distributed import SINGLE, Context, PeerError, check_batch_split
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.reporting import SILENT, ReportArg, Reporter, as_reporter, quiet_progress
from mipnerf_cli.runtime import Runtime, from_settings
from mipnerf_cli.settings import DATA_ROOT_ENV, TrainSettings, settings_for_file
from mipnerf_cli.stopping import StopSignals

# ----------------------------------------------------------------------------- one step


@dataclasses.dataclass
class StepStats:
    """What one step measured. level_mses: per level (coarse first), the reference's
    loss terms (weighted squared error summed over colour channels per ray)."""

    loss: float
    level_mses: list[float]
    finite: bool
    stop_vote: int = 0  # several ranks: index in STOP_SIGNALS of the latest signal any rank saw


@dataclasses.dataclass
class PendingStats:
    """A step's loss terms on their way back from the device (`train_step(defer=True)`).

    terms: (1 + L + V,) the loss, the L level terms and V stop votes (one per STOP_SIGNALS
    entry after None, summed over the ranks), in host memory that a non-blocking copy fills;
    event: marks the end of that copy on CUDA (None: the values are there already).
    """

    terms: torch.Tensor
    levels: int
    event: Optional["torch.cuda.Event"] = None

    @staticmethod
    def read_back(terms: torch.Tensor, levels: int) -> "PendingStats":
        """Start copying `terms` to the host without waiting for the device."""
        if terms.device.type != "cuda":
            return PendingStats(terms.detach().cpu(), levels)
        host = torch.empty(terms.shape, dtype=terms.dtype, pin_memory=True)
        host.copy_(terms.detach(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return PendingStats(host, levels, event)

    def get(self) -> StepStats:
        """The step's stats (waits for the copy, so for the step, to finish)."""
        if self.event is not None:
            self.event.synchronize()
        values = self.terms.tolist()
        return StepStats(
            loss=values[0],
            level_mses=values[1 : 1 + self.levels],
            finite=math.isfinite(values[0]),
            stop_vote=_stop_vote(values[1 + self.levels :]),
        )


def _stop_vote(counts: list[float]) -> int:
    """The largest STOP_SIGNALS index that some rank voted for (counts: ranks per signal after None)."""
    return max((i + 1 for i, count in enumerate(counts) if count > 0), default=0)


def learning_rate(step: int, settings: TrainSettings) -> float:
    """The reference schedule: log-linear lr_init -> lr_final with a sine warm-up."""
    from mipnerf_cli.core.losses import learning_rate_decay

    return float(
        learning_rate_decay(
            step,
            settings.lr_init,
            settings.lr_final,
            settings.max_steps,
            lr_delay_steps=settings.lr_delay_steps,
            lr_delay_mult=settings.lr_delay_mult,
        )
    )


def step_seed(seed: int, step: int) -> int:
    # A hash rather than seed * K + step, so that neighbouring seeds never share a stream.
    # (The trailing ":0" keeps the streams of runs made when the noise was drawn per rank.)
    digest = hashlib.sha256(f"mipnerf:{seed}:{step}:0".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The sampling-noise generator of one step: a pure function of (seed, step)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(step_seed(seed, step))
    return generator


def rank_rows(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s contiguous rows of a global batch (batch_size divisible by world_size)."""
    share = batch_size // world_size
    return slice(rank * share, (rank + 1) * share)


def rank_slice(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank `rank`'s contiguous share of the global batch (batch divisible by world_size)."""
    return indices[rank_rows(indices.shape[0], rank, world_size)]


def noise_rows(noise: list[dict[str, torch.Tensor]] | None, rows: slice) -> list[dict[str, torch.Tensor]] | None:
    """The rows of a batch's pre-drawn sampling noise (`MipNerf.draw_noise`) that a rank uses."""
    if noise is None:
        return None
    return [{key: value[rows] for key, value in level.items()} for level in noise]


@dataclasses.dataclass(frozen=True)
class Shard:
    """How one of several ranks takes part in a step of the global batch.

    share: this rank's sum(lossmult) over the global batch's sum(lossmult). Each rank's loss
      is normalised by its own lossmult sum, so the global loss is the sum of the ranks'
      losses times their shares (not their mean: the sums differ between ranks).

    A model wrapped in DistributedDataParallel has its gradients averaged during backward;
    a plain model (the CPU fast path evaluates the plain MipNerf block by block, out of DDP's
    reach) has them summed after it by :func:`_sum_weighted_gradients`.
    """

    context: Context
    share: torch.Tensor  # () float32 on the model's device
    # (len(STOP_SIGNALS) - 1,) float32 on the model's device: 1 where this rank saw that
    # signal; summed with the loss terms (one all-reduce), so no collective of its own.
    stop_votes: Optional[torch.Tensor] = None


def _sum_weighted_gradients(parameters: list[nn.Parameter], shard: Shard) -> None:
    """grad <- sum over ranks of share * grad, in one flat all-reduce (what DDP does in buckets)."""
    grads = [p.grad for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads]).mul_(shard.share)
    shard.context.all_reduce_sum_(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rays: RayBundle,
    pixels: torch.Tensor,
    lr: float,
    settings: TrainSettings,
    generator: torch.Generator | None,
    runtime: Runtime | None = None,
    noise: list[dict[str, torch.Tensor]] | None = None,
    shard: Shard | None = None,
    defer: bool = False,
) -> StepStats | PendingStats:
    """One optimisation step on a batch.

    rays: RayBundle of B rays; pixels: (B, 3) float32 targets, both on the model's device.
    noise: the batch's sampling noise drawn beforehand (`MipNerf.draw_noise`, B rows), else
    drawn from `generator`. With a `shard`, the rays are this rank's part of a global batch
    and the step (gradient, loss, the finite check) is the global batch's on every rank.
    The optimizer is not stepped when the loss is not finite (StepStats.finite False), so
    the parameters stay as they were. `runtime` decides autocast and the CPU fast path
    (default: float32 on the pixels' device, the fast path as `settings.fast_path` says).

    With `runtime.sync_free_step` (CUDA) and a fused Adam (`build_optimizer(..., runtime)`)
    the host never waits for the device: the optimizer gets the non-finite flag as a device
    tensor and skips the update itself. `defer` then returns PendingStats, to be read a step
    later (`.get()`). A Shard's stop votes come back summed in StepStats.stop_vote.
    """
    from mipnerf_cli.core import fast
    from mipnerf_cli.core.losses import mipnerf_loss

    if runtime is None:
        runtime = Runtime(device=pixels.device, fast_path=settings.fast_path)

    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    lossmult = torch.ones_like(rays.lossmult) if settings.disable_multiscale_loss else rays.lossmult
    wrapped = isinstance(model, nn.parallel.DistributedDataParallel)
    if runtime.uses_fast_path(model):
        # The perf engineer's CPU fast path (core/fast.py): the same loss and gradients.
        loss, level_mses = fast.forward_backward(
            model, rays, pixels, lossmult, randomized=settings.randomized, white_bkgd=settings.white_bkgd,
            coarse_loss_mult=settings.coarse_loss_mult, generator=generator,
            options=fast.FastOptions(settings.fast_micro_batch, settings.fast_workers), noise=noise,
        )  # fmt: skip
    else:
        with runtime.autocast():
            outputs = model(
                rays, randomized=settings.randomized, white_bkgd=settings.white_bkgd, generator=generator, noise=noise
            )
        outputs = [type(level)(*(t.float() for t in level)) for level in outputs]
        loss, level_mses = mipnerf_loss(outputs, pixels, lossmult, coarse_loss_mult=settings.coarse_loss_mult)
        if shard is not None and wrapped:
            # DDP averages the W ranks' gradients; weighting by W * share makes that average
            # the gradient of the global batch's loss.
            (loss * (shard.share * shard.context.world_size)).backward()
        else:
            loss.backward()
    if shard is not None:
        if not wrapped:
            _sum_weighted_gradients([p for p in model.parameters() if p.grad is not None], shard)
        # The global loss terms, on every rank: the finite check and the logs agree everywhere.
        # The stop votes ride along, unweighted: one collective per step for both.
        parts = [torch.cat([loss.detach()[None], level_mses.detach()]) * shard.share]
        if shard.stop_votes is not None:
            parts.append(shard.stop_votes)
        totals = shard.context.all_reduce_sum_(torch.cat(parts))
        loss, level_mses, votes = totals[0], totals[1 : 1 + level_mses.numel()], totals[1 + level_mses.numel() :]
    else:
        votes = loss.new_zeros(0)
    if runtime.sync_free_step and all(group.get("fused") for group in optimizer.param_groups):
        return _step_on_device(model, optimizer, loss, level_mses, votes, settings, defer)
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        return StepStats(loss=loss_value, level_mses=level_mses.detach().tolist(), finite=False)
    parameters = [p for p in model.parameters() if p.grad is not None]
    if settings.grad_max_val > 0:
        torch.nn.utils.clip_grad_value_(parameters, settings.grad_max_val)
    if settings.grad_max_norm > 0:
        torch.nn.utils.clip_grad_norm_(parameters, settings.grad_max_norm)
    optimizer.step()
    return StepStats(
        loss=loss_value, level_mses=level_mses.detach().tolist(), finite=True, stop_vote=_stop_vote(votes.tolist())
    )


def _step_on_device(model, optimizer, loss, level_mses, votes, settings, defer: bool) -> StepStats | PendingStats:
    """Clip and step without reading anything back: the fused optimizer skips the update
    (moments and step count included) when told so by a device flag."""
    terms = torch.cat([loss.detach().float()[None], level_mses.detach().float(), votes.float()])
    parameters = [p for p in model.parameters() if p.grad is not None]
    if settings.grad_max_val > 0:
        torch.nn.utils.clip_grad_value_(parameters, settings.grad_max_val)
    if settings.grad_max_norm > 0:
        torch.nn.utils.clip_grad_norm_(parameters, settings.grad_max_norm)
    optimizer.found_inf = (~torch.isfinite(terms[0])).float()  # read by Adam.step (as GradScaler sets it)
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf
    pending = PendingStats.read_back(terms, level_mses.numel())
    return pending if defer else pending.get()


def psnr_from_level_mse(level_mse: float) -> float:
    """Per-channel PSNR from a reference loss term, which sums the 3 channels per ray.

    The reference logs -10 log10 of the term itself, 4.77 dB below the usual image PSNR;
    dividing by 3 makes training and validation PSNR comparable.
    """
    from mipnerf_cli.core.losses import mse_to_psnr

    return float(mse_to_psnr(level_mse / 3.0))


# ----------------------------------------------------------------------------- set-up helpers


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
    check_scene_kind(
        data,
        kind,
        multiscale=settings.multiscale,
        downscale=settings.downscale,
        factor=settings.factor or 0,
        spherify=bool(settings.spherify),
    )
    return kind


def build_model(settings: TrainSettings) -> nn.Module:
    """A freshly initialised model; the initial weights depend on the seed only."""
    from mipnerf_cli.core.model import MipNerf

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return MipNerf(settings.model.to_model_config())


def build_optimizer(model: nn.Module, settings: TrainSettings, runtime: Runtime | None = None) -> torch.optim.Optimizer:
    """Adam; fused (one kernel for all parameters, a device flag to skip a step) under the
    sync-free step of CUDA (`runtime.sync_free_step`), torch's default implementation elsewhere."""
    fused = runtime is not None and runtime.sync_free_step
    return torch.optim.Adam(
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


def model_config_dict(settings: TrainSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings.model.to_model_config())


def refuse_model_change(recorded: dict[str, Any], wanted: dict[str, Any], source: Path) -> None:
    changed = [
        f"{key} {recorded.get(key)!r} -> {wanted.get(key)!r}"
        for key in sorted(set(recorded) | set(wanted))
        if recorded.get(key) != wanted.get(key)
    ]
    if changed:
        raise MipNerfError(
            f"cannot resume from {source}: the model settings differ ({'; '.join(changed)}); "
            "keep the checkpoint's model settings, or start a new run with another --exp-name"
        )


def changed_settings(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    ignore = {"model", "resume_path"}
    return [
        f"{key} {recorded[key]!r} -> {current[key]!r}"
        for key in current
        if key not in ignore and key in recorded and recorded[key] != current[key]
    ]


# ----------------------------------------------------------------------------- run folder


class RunFiles:
    """Paths and writers of one run folder (rank 0 only)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.ckpt_dir = run_dir / "ckpt"
        self.config = run_dir / "config.yaml"
        self.metrics = run_dir / "metrics.jsonl"
        self._metrics_handle = None
        self._tensorboard = None

    def write_config(self, settings: TrainSettings) -> None:
        header = "# Resolved settings of this run (mipnerf train). Relative paths are relative to this folder.\n"
        body = yaml.safe_dump(settings_for_file(settings, self.dir), sort_keys=False)
        checkpoint.write_atomic(self.config, (header + body).encode())

    def open_metrics(self, keep_until_step: int) -> None:
        """Start metrics.jsonl afresh, or keep the lines up to the resumed step."""
        kept = []
        if keep_until_step > 0 and self.metrics.exists():
            for line in self.metrics.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    if int(json.loads(line)["step"]) <= keep_until_step:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill
        checkpoint.write_atomic(self.metrics, "".join(kept).encode())
        self._metrics_handle = open(self.metrics, "a", encoding="utf-8")

    def open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is an optional extra
            return
        self._tensorboard = SummaryWriter(log_dir=str(self.dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if self._metrics_handle is not None:
            try:
                self._metrics_handle.write(json.dumps(record) + "\n")
                self._metrics_handle.flush()
            except OSError as error:  # a full disk: say so in one line, the checkpoints are intact
                handle, self._metrics_handle = self._metrics_handle, None
                try:
                    handle.close()
                except OSError:
                    pass
                raise MipNerfError(
                    f"could not write {self.metrics}: {error.strerror or error}; training stopped at step "
                    f"{record.get('step')}, free some space and run the same command to resume from the last checkpoint"
                ) from None
        if self._tensorboard is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "split"):
                    self._tensorboard.add_scalar(f"{prefix}/{key}", value, record["step"])
                elif isinstance(value, list):
                    for i, item in enumerate(value):
                        self._tensorboard.add_scalar(f"{prefix}/{key}_{i}", item, record["step"])

    def close(self) -> None:
        if self._metrics_handle is not None:
            self._metrics_handle.close()
            self._metrics_handle = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


@dataclasses.dataclass
class TrainResult:
    step: int
    run_dir: Path
    interrupted_by: Optional[str] = None  # "SIGINT" / "SIGTERM" when stopped early
    last_checkpoint: Optional[Path] = None

    @property
    def exit_code(self) -> int:
        return {None: 0, "SIGINT": 130, "SIGTERM": 143}[self.interrupted_by]


class StopRequest(StopSignals):
    """First Ctrl+C (or SIGTERM): finish the step, save, stop. Second Ctrl+C: leave at once.

    Leaving at once is safe: checkpoints are written to temporary files and renamed, so
    an interrupted save leaves only a temporary file, removed at the next start.
    """

    def __init__(self, reporter: Reporter = SILENT) -> None:
        super().__init__()
        # Its `alert` channel (stderr on a terminal); ranks other than 0 get torchrun's copy
        # of the signal and pass SILENT.
        self.reporter = reporter

    def _say(self, message: str) -> None:
        self.reporter.alert(message)

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            self._say("interrupted again: leaving now without saving")
            os._exit(130)
        self.signal_name = signal.Signals(signum).name
        self._say(f"{self.signal_name}: stopping after this step and saving (Ctrl+C again to leave at once)")


# ----------------------------------------------------------------------------- validation


def pick_val_views(levels: list[int], count: int) -> list[int]:
    """Image indices of `count` evenly spaced views, each with all its scales.

    Multiscale splits list every view's levels together (level 0 first), so a view is a
    level-0 image plus the images that follow it with higher levels.
    """
    starts = [i for i, level in enumerate(levels) if level == 0]
    if count <= 0 or not starts:
        return []
    count = min(count, len(starts))
    chosen = [starts[(k * len(starts)) // count] for k in range(count)]
    picked = []
    for start in chosen:
        picked.append(start)
        i = start + 1
        while i < len(levels) and levels[i] > 0:
            picked.append(i)
            i += 1
    return picked


def load_val_set(settings: TrainSettings, report: Callable[[str], None]):
    """The test split (else val) at val_downscale, or None when validation is off/impossible."""
    from mipnerf_cli.data import llff_options, load_scene, scene_kind

    if settings.val_views == 0:
        return None
    problems = []
    # Multiscale data brings its own smaller levels, LLFF its factor; downscaling applies to Blender scenes.
    blender = scene_kind(settings.data) == "blender"
    for split in ("test", "val"):
        try:
            downscale = settings.downscale * settings.val_downscale if blender else 1
            return load_scene(
                settings.data,
                split,
                multiscale=settings.multiscale,
                white_bkgd=settings.white_bkgd,
                downscale=downscale,
                **llff_options(settings.model_dump()),
            )
        except MipNerfError as error:
            problems.append(str(error))
    report(f"warning: no validation during training ({problems[0]})")
    return None


def validate(
    model: nn.Module, val_set, views: list[int], settings: TrainSettings, runtime: Runtime, should_stop
) -> dict[str, Any] | None:
    """PSNR over the chosen views, overall and per scale, rendered under `runtime` as `mipnerf
    eval` renders them; None if `should_stop()` answered True (it is asked between chunks)."""
    from mipnerf_cli.core.metrics import psnr
    from mipnerf_cli.core.render import RenderStopped, render_rays

    by_level: dict[int, list[float]] = {}
    for i in views:
        if should_stop():
            return None
        rays, target = val_set.image_rays(i)
        try:
            out = render_rays(
                model,
                rays,
                settings.val_chunk,
                settings.white_bkgd,
                **runtime.render_options(model),
                should_stop=should_stop,
            )
        except RenderStopped:
            return None
        by_level.setdefault(val_set.levels[i], []).append(psnr(out["rgb"].view_as(target), target))
    level_psnrs = [sum(v) / len(v) for _, v in sorted(by_level.items())]
    return {"psnr": sum(level_psnrs) / len(level_psnrs), "psnr_levels": level_psnrs}


# ----------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class Start:
    step: int = 0
    elapsed_s: float = 0.0
    payload: dict[str, Any] | None = None
    source: Path | None = None


def find_start(settings: TrainSettings, files: RunFiles, report: Callable[[str], None]) -> Start:
    """Where training begins: step 0, or a verified checkpoint (`resume_path`)."""
    resume = settings.resume_path
    has_checkpoints = bool(checkpoint.step_checkpoints(files.ckpt_dir)) or (files.ckpt_dir / checkpoint.LAST).exists()
    if resume is None:
        if has_checkpoints:
            raise MipNerfError(
                f"{files.dir} already has checkpoints; pass --resume auto to continue it, "
                "or another --exp-name to start a new run"
            )
        return Start()
    if resume == "auto":
        found = checkpoint.load_newest_good(files.ckpt_dir, report=report)
        if found is None:
            return Start()
        payload, source = found
    else:
        path = Path(resume)
        if path.is_dir():
            found = checkpoint.load_newest_good(path / "ckpt" if (path / "ckpt").is_dir() else path, report=report)
            if found is None:
                raise MipNerfError(f"--resume {path}: no checkpoint in that folder")
            payload, source = found
        else:
            payload, source = checkpoint.load_checkpoint(path), path
        if has_checkpoints and source.absolute().parent != files.ckpt_dir.absolute():
            raise MipNerfError(
                f"{files.dir} already has checkpoints of its own; to start from {source}, "
                "pick another --exp-name (or --resume auto to continue this run)"
            )
    refuse_model_change(payload["model_config"], model_config_dict(settings), source)
    changes = changed_settings(payload.get("settings") or {}, settings.model_dump(mode="json"))
    if changes:
        report(f"resuming with changed settings: {'; '.join(changes)}")
    return Start(
        step=int(payload["step"]), elapsed_s=float(payload.get("elapsed_s", 0.0)), payload=payload, source=source
    )


def set_aside_later_checkpoints(ckpt_dir: Path, start: Start, report: Callable[[str], None]) -> None:
    """Rename the run's checkpoints that are not behind the starting point (damaged ones
    skipped by --resume auto, or the future abandoned by --resume <an older step file>),
    so that rotation and later resumes only ever see this trajectory."""
    later = [path for step, path in checkpoint.step_checkpoints(ckpt_dir) if step > start.step]
    last = ckpt_dir / checkpoint.LAST
    if last.exists() and not (start.source is not None and _same_file(last, start.source)):
        try:
            if int(checkpoint.load_checkpoint(last)["step"]) > start.step:
                later.append(last)
        except MipNerfError:
            later.append(last)
    for path in later:
        aside = path.with_name(path.name + ".set-aside")
        os.replace(path, aside)
        report(f"set aside {path.name} as {aside.name} (not on the path from step {start.step})")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def make_payload(step, model, optimizer, settings, kind, run_dir, elapsed_s) -> dict[str, Any]:
    """The checkpoint of `step`. No random-generator state is stored: every step's batch and
    noise come from (seed, step), so resuming needs only the step (checkpoints written
    before this kept an "rng" entry, which loads and is ignored)."""
    return {
        "format_version": FORMAT_VERSION,
        "step": step,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "model_config": model_config_dict(settings),
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


def _relative(path: Path, folder: Path) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return str(path)


def train(
    settings: TrainSettings,
    context: Context | None = None,
    report: ReportArg = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train (or continue) the run described by resolved `settings`; see the module docstring.

    context: this process's place among the torchrun processes (default: alone).
    Every check that can refuse the run happens before anything is written; the run
    folder is created only once they pass. Raises MipNerfError for bad input, a
    non-finite loss or a failed save (PeerError on ranks other than 0, which report nothing).
    report: a `reporting.Reporter` (the commands pass the console's), or a callable taking
    each line; default and on ranks other than 0: silent.
    """
    from mipnerf_cli.data import llff_options, load_scene

    context = context or SINGLE
    is_main = context.is_main
    reporter = as_reporter(report) if is_main else SILENT
    report = reporter.info
    check_batch_split(
        settings.batch_size,
        context.world_size,
        f"the {context.world_size} processes",
        MipNerfError if is_main else PeerError,
    )
    runtime = from_settings(settings, context.device)  # training and validation both follow it
    device = runtime.device
    files = RunFiles(settings.run_dir)
    lock = RunLock(files.dir) if is_main else None
    try:

        def decide_start() -> tuple[str, Start]:
            kind = check_scene(settings)
            if lock is not None and files.dir.is_dir():
                _acquire(lock, report)
            return kind, find_start(settings, files, report)

        # Rank 0 reads the checkpoint and hands it out: the other machines need no copy of the run folder.
        kind, start = context.broadcast(context.on_main(decide_start))
        if start.step >= settings.max_steps:
            report(
                f"{files.dir} is already at step {start.step} (max_steps {settings.max_steps}); raise --max-steps to go on"
            )
            return TrainResult(step=start.step, run_dir=files.dir, last_checkpoint=start.source)
        train_set = load_scene(
            settings.data,
            "train",
            multiscale=settings.multiscale,
            white_bkgd=settings.white_bkgd,
            downscale=settings.downscale,
            **llff_options(settings.model_dump()),
        )
        val_set = load_val_set(settings, report) if is_main else None
        model = build_model(settings).to(device)
        optimizer = build_optimizer(model, settings, runtime)
        if start.payload is not None:
            model.load_state_dict(start.payload["model"])
            load_optimizer_state(optimizer, start.payload["optimizer"])
            report(f"resuming from {start.source} at step {start.step}")
        step_model = wrap_for_ranks(model, runtime, context)
        if settings.compile:
            step_model = compile_for_training(step_model)

        def open_run_folder() -> None:
            if not lock.held:
                files.dir.mkdir(parents=True, exist_ok=True)
                _acquire(lock, report)
            checkpoint.remove_stale_temporaries(files.ckpt_dir)
            set_aside_later_checkpoints(files.ckpt_dir, start, report)
            files.write_config(settings)
            files.open_metrics(keep_until_step=start.step)
            if settings.tensorboard:
                files.open_tensorboard()

        context.on_main(open_run_folder)
        return _loop(
            settings,
            step_model,
            model,
            optimizer,
            train_set,
            val_set,
            files,
            kind,
            runtime,
            start,
            context,
            reporter,
            show_progress and is_main,
        )
    finally:
        files.close()
        if lock is not None:
            lock.release()


def wrap_for_ranks(model: nn.Module, runtime: Runtime, context: Context) -> nn.Module:
    """The module the steps run: the model itself, or its DistributedDataParallel wrapper.

    The CPU fast path evaluates the plain model block by block, which DDP's backward hooks
    cannot follow; there the ranks start from rank 0's weights and train_step sums the
    gradients itself. Checkpoints always take the plain model's state_dict.
    """
    if not context.distributed:
        return model
    device = runtime.device
    if runtime.uses_fast_path(model):
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def compile_for_training(step_model: nn.Module) -> nn.Module:
    """The training step's module under torch.compile; the model itself stays eager.

    Only training runs compiled: one graph (fixed batch, randomized, pre-drawn noise).
    Validation renders the plain model, whose other flags and short last chunk would
    otherwise recompile at every check (multiscale lego reached dynamo's limit of 8 graphs
    and fell back to eager without a word). Checkpoints take the plain model's state_dict.
    """
    return torch.compile(step_model, dynamic=False)


def _acquire(lock: RunLock, report) -> None:
    lock.acquire()
    if lock.taken_over_from:
        report(f"took over a stale lock ({lock.taken_over_from}, no longer running)")


class Window:
    """Running sums between two metrics.jsonl lines."""

    def __init__(self) -> None:
        self.steps, self.loss, self.level_mses, self.seconds = 0, 0.0, None, 0.0

    def add(self, stats: StepStats, seconds: float) -> None:
        self.steps += 1
        self.loss += stats.loss
        self.seconds += seconds
        mses = stats.level_mses
        self.level_mses = mses if self.level_mses is None else [a + b for a, b in zip(self.level_mses, mses)]

    def record(self, step: int, lr: float, batch_size: int, elapsed_s: float) -> dict[str, Any]:
        level_psnrs = [psnr_from_level_mse(m / self.steps) for m in self.level_mses]
        return {
            "step": step,
            "split": "train",
            "loss": self.loss / self.steps,
            "psnr": level_psnrs[-1],
            "psnr_levels": level_psnrs,
            "lr": lr,
            "rays_per_s": batch_size * self.steps / max(self.seconds, 1e-9),
            "elapsed_s": elapsed_s,
        }


STOP_SIGNALS = (None, "SIGINT", "SIGTERM")  # agreed between ranks by index (the largest wins)


def _loop(
    settings,
    step_model,
    model,
    optimizer,
    train_set,
    val_set,
    files,
    kind,
    runtime: Runtime,
    start,
    context: Context,
    reporter: Reporter,
    show_progress,
) -> TrainResult:
    report = reporter.info

    is_main = context.is_main
    device = runtime.device
    views = pick_val_views(val_set.levels, settings.val_views) if val_set is not None else []
    step = start.step
    saved_step = start.step
    last_checkpoint = start.source
    # elapsed_s: training wall-clock over all sessions of the run, validation excluded.
    clock_start, validation_s = time.perf_counter(), 0.0

    def elapsed() -> float:
        return start.elapsed_s + time.perf_counter() - clock_start - validation_s

    def save_on_main() -> None:
        nonlocal last_checkpoint
        if saved_step == step:
            return
        payload = make_payload(step, model, optimizer, settings, kind, files.dir, elapsed())
        try:
            last_checkpoint = checkpoint.save_step(files.ckpt_dir, payload, settings.keep_checkpoints)
        except MipNerfError as error:
            kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was saved"
            raise MipNerfError(f"{error}; training stopped at step {step}, {kept}") from None

    def save() -> None:
        # The other ranks wait for the save: if it fails, every rank stops.
        nonlocal saved_step
        context.on_main(save_on_main)
        saved_step = step

    window, rays_per_s = Window(), None
    bar = (
        reporter.progress(f"train {settings.exp_name}", total=settings.max_steps, completed=step)
        if show_progress
        else quiet_progress(reporter)
    )
    say = bar.log

    def account(step: int, lr: float, seconds: float, stats: StepStats) -> StepStats:
        """Check and count a step's stats (a sync-free step's arrive one step late)."""
        nonlocal rays_per_s
        if not stats.finite:
            where = (
                f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
            )
            raise (MipNerfError if is_main else PeerError)(
                f"the loss became {stats.loss} at step {step} (lr {lr:.3g}); stopped without saving, {where}; "
                "resume with --resume auto and a lower lr_init, or set grad_max_norm"
            )
        window.add(stats, seconds)
        rate = settings.batch_size / max(seconds, 1e-9)
        rays_per_s = rate if rays_per_s is None else 0.9 * rays_per_s + 0.1 * rate
        bar.update(
            1, loss=stats.loss, psnr=psnr_from_level_mse(stats.level_mses[-1]), lr=lr, **{"rays/s": int(rays_per_s)}
        )
        return stats

    stopped_by = None
    # The sync-free step (CUDA) reads its loss back a step late: step k is checked once step
    # k+1 is queued, so the GPU never idles waiting for the host. A step that logs, saves,
    # validates or ends the run is read at once, so nothing is written before it is checked.
    pending, last = None, None  # (step, lr, seconds, PendingStats) not yet read; the latest read StepStats
    with StopRequest(reporter) as stop, bar:
        while step < settings.max_steps and stopped_by is None:
            step += 1
            tic = time.perf_counter()
            rays, pixels, noise, shard = step_batch(
                settings, step, train_set, model, device, context, stop_vote=STOP_SIGNALS.index(stop.signal_name)
            )
            lr = learning_rate(step, settings)
            generator = step_generator(settings.seed, step, device) if noise is None else None
            stats = train_step(
                step_model,
                optimizer,
                rays,
                pixels,
                lr,
                settings,
                generator,
                runtime,
                noise=noise,
                shard=shard,
                defer=runtime.sync_free_step,
            )
            if pending is not None:
                last, pending = account(*pending[:3], pending[3].get()), None
            seconds = time.perf_counter() - tic
            boundary = (
                step % settings.log_interval == 0 or step % settings.check_interval == 0 or step == settings.max_steps
            )
            if isinstance(stats, PendingStats) and not boundary:
                pending = (step, lr, seconds, stats)
            else:
                last = account(step, lr, seconds, stats.get() if isinstance(stats, PendingStats) else stats)

            if step % settings.log_interval == 0 or step == settings.max_steps:
                files.log(window.record(step, lr, settings.batch_size, elapsed()))
                window = Window()
            if step % settings.check_interval == 0 or step == settings.max_steps:
                save()
                if views:
                    tic = time.perf_counter()
                    result = validate(model, val_set, views, settings, runtime, stop.requested)
                    validation_s += time.perf_counter() - tic
                    if result is not None:
                        files.log(
                            {"step": step, "split": "val", **result, "images": len(views), "elapsed_s": elapsed()}
                        )
                        say(f"step {step}: validation psnr {_format_psnrs(result)} on {len(views)} test image(s)")
            # Every rank stops after the same step, whichever of them got the signal: the ranks'
            # votes come summed with the loss terms; after a validation (which a signal may
            # have interrupted) they are asked afresh.
            if not context.distributed:
                stopped_by = stop.signal_name
            elif last is None or step % settings.check_interval == 0:
                stopped_by = STOP_SIGNALS[context.max(STOP_SIGNALS.index(stop.signal_name))]
            else:
                stopped_by = STOP_SIGNALS[last.stop_vote]
        if pending is not None:
            account(*pending[:3], pending[3].get())

        if stopped_by is not None:
            save()
            where = f"; saved {last_checkpoint}" if last_checkpoint is not None else ""
            say(f"stopped at step {step}{where}; continue with --resume auto")
            context.barrier()
            return TrainResult(step=step, run_dir=files.dir, interrupted_by=stopped_by, last_checkpoint=last_checkpoint)
    report(f"done: step {step}, checkpoint {last_checkpoint}")
    # Nobody leaves before rank 0 has validated and closed its files (torchrun reads an early exit as the end).
    context.barrier()
    return TrainResult(step=step, run_dir=files.dir, last_checkpoint=last_checkpoint)


def step_batch(
    settings: TrainSettings,
    step: int,
    train_set,
    model: nn.Module,
    device: torch.device,
    context: Context,
    stop_vote: int = 0,
):
    """This rank's rays (RayBundle on `device`), pixels (N, 3), sampling noise and Shard for `step`.

    stop_vote: the STOP_SIGNALS index of the signal this rank has seen (its Shard carries it
    to the other ranks). Everything goes to a GPU in one host->device copy (`to_device`).

    The global batch and its noise are drawn whole from (seed, step) on every rank (a few
    hundred kB; the noise as `MipNerf.draw_noise` draws it for the global batch) and each
    rank keeps its rows, so the rays a rank sees, and their noise, are those a single
    process sees in the same rows. One process: the whole batch, shard None.
    """
    from mipnerf_cli.data import sample_batch

    indices = sample_batch(settings.seed, step, train_set.num_pixels, settings.batch_size)
    rays, pixels = train_set.pixel_rays(indices)
    noise = None
    if settings.randomized:
        if hasattr(model, "draw_noise"):
            noise = model.draw_noise((settings.batch_size,), step_generator(settings.seed, step, device), device=device)
        elif context.distributed:
            raise ValueError(
                f"{type(model).__name__} cannot draw its noise up front (draw_noise), which sharding needs"
            )
    if not context.distributed:
        rays, pixels = to_device([rays, pixels], device)
        return rays, pixels, noise, None
    rows = rank_rows(settings.batch_size, context.rank, context.world_size)
    lossmult = torch.ones_like(rays.lossmult) if settings.disable_multiscale_loss else rays.lossmult
    share = lossmult[rows].sum() / lossmult.sum()
    votes = torch.zeros(len(STOP_SIGNALS) - 1)
    if stop_vote:
        votes[stop_vote - 1] = 1.0
    rays, pixels, share, votes = to_device([rays[rows], pixels[rows], share, votes], device)
    return rays, pixels, noise_rows(noise, rows), Shard(context, share, votes)


def to_device(items: list, device: torch.device) -> list:
    """float32 CPU tensors and RayBundles on `device`, in one host->device copy (a pinned
    buffer on CUDA, copied without blocking); on a CPU they are returned as they are."""
    if device.type == "cpu":
        return list(items)
    return packed_copy(items, device)


def packed_copy(items: list, device: torch.device) -> list:
    """`items` (float32 tensors and RayBundles) copied to `device` through one flat buffer;
    each comes back contiguous, with its shape and the same values bit for bit."""
    tensors = []
    for item in items:
        tensors.extend(item.tensors().values() if isinstance(item, RayBundle) else [item])
    flat = torch.cat([t.reshape(-1) for t in tensors])
    if device.type == "cuda":
        flat = flat.pin_memory()
    moved = iter(
        view.view(t.shape)
        for view, t in zip(flat.to(device, non_blocking=True).split([t.numel() for t in tensors]), tensors)
    )
    out = []
    for item in items:
        if isinstance(item, RayBundle):
            out.append(RayBundle(**{name: next(moved) for name in item.tensors()}))
        else:
            out.append(next(moved))
    return out


def _format_psnrs(result: dict[str, Any]) -> str:
    text = f"{result['psnr']:.2f}"
    if len(result["psnr_levels"]) > 1:
        text += " (per scale " + " / ".join(f"{p:.2f}" for p in result["psnr_levels"]) + ")"
    return text

"""The training loop of `mipnerf train`: set up (`train`), then step, log, save, validate (`_loop`).

Several processes (torchrun, :mod:`mipnerf_cli.distributed`): ``batch_size`` is the global
batch, split over the ranks (:mod:`mipnerf_cli.training.shards`). Rank 0 alone writes to the
run folder (:mod:`mipnerf_cli.runs`); all ranks stop together (Ctrl+C, a non-finite loss) and
checkpoints hold the plain model's state_dict, so a run can be resumed on any number of ranks.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Optional

from torch import nn

from mipnerf_cli.data.sampler import step_generator
from mipnerf_cli.distributed import SINGLE, Context, PeerError, check_batch_split
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.reporting import (
    SILENT,
    Progress,
    ReportArg,
    Reporter,
    as_reporter,
    human_duration,
    quiet_progress,
)
from mipnerf_cli.runs import checkpoints
from mipnerf_cli.runs.folder import RunFiles
from mipnerf_cli.runs.lock import RunLock
from mipnerf_cli.runs.payload import make_payload
from mipnerf_cli.runtime import Runtime, from_settings
from mipnerf_cli.settings import TrainSettings
from mipnerf_cli.training.batch import begin_step
from mipnerf_cli.training.resume import Start, find_start, set_aside_later_checkpoints
from mipnerf_cli.training.setup import (
    TrainScene,
    build_model,
    build_optimizer,
    compile_for_training,
    load_optimizer_state,
    pin_train_kernel,
    resolve_scene,
)
from mipnerf_cli.training.shards import wrap_for_ranks
from mipnerf_cli.training.step import (
    StepStats,
    learning_rate,
    psnr_from_level_mse,
    train_step,
)
from mipnerf_cli.training.stop import STOP_SIGNALS, StopRequest
from mipnerf_cli.training.validation import describe_budget, format_psnrs, load_val_set, val_images, validate


@dataclasses.dataclass
class TrainResult:
    step: int
    run_dir: Path
    interrupted_by: Optional[str] = None  # "SIGINT" / "SIGTERM" when stopped early
    last_checkpoint: Optional[Path] = None

    @property
    def exit_code(self) -> int:
        return {None: 0, "SIGINT": 130, "SIGTERM": 143}[self.interrupted_by]


def train(
    settings: TrainSettings,
    context: Context | None = None,
    report: ReportArg = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train (or continue) the run described by resolved `settings`.

    context: this process's place among the torchrun processes (default: alone).
    Every check that can refuse the run happens before anything is written; the run
    folder is created only once they pass. Raises MipNerfError for bad input, a
    non-finite loss or a failed save (PeerError on ranks other than 0, which report nothing).
    report: a `reporting.Reporter` (the commands pass the console's), or a callable taking
    each line; default and on ranks other than 0: silent.
    """
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
    files = RunFiles(settings.run_dir)
    lock = RunLock(files.dir) if is_main else None
    try:

        def decide_start() -> tuple[TrainSettings, TrainScene, Start]:
            resolved, scene = resolve_scene(settings)
            if lock is not None and files.dir.is_dir():
                _acquire(lock, report)
            return resolved, scene, find_start(resolved, files, report)

        # Rank 0 decides the scene and reads the checkpoint and hands them out: the other
        # machines need no copy of the run folder.
        settings, scene, start = context.broadcast(context.on_main(decide_start))
        if start.step >= settings.max_steps:
            report(
                f"{files.dir} is already at step {start.step} (max_steps {settings.max_steps}); raise --max-steps to go on"
            )
            return TrainResult(step=start.step, run_dir=files.dir, last_checkpoint=start.source)
        if settings.max_minutes is not None and start.elapsed_s >= settings.max_minutes * 60:
            report(
                f"{files.dir} has trained {human_duration(start.elapsed_s)} already (--max-minutes "
                f"{settings.max_minutes:g}); raise --max-minutes or leave it out to go on"
            )
            return TrainResult(step=start.step, run_dir=files.dir, last_checkpoint=start.source)
        train_set, val_set, images = _load_splits(settings, scene, runtime, is_main, report)
        model, step_model, optimizer = _build_model(settings, start, runtime, context, report)
        runtime = pin_train_kernel(runtime, model, settings, start.cpu_kernel, context)
        context.on_main(lambda: _open_run_folder(files, lock, start, settings, report))
        bar = (
            reporter.progress(f"train {settings.exp_name}", total=settings.max_steps, completed=start.step)
            if show_progress and is_main
            else quiet_progress(reporter)
        )
        run = TrainRun(
            settings=settings, model=model, step_model=step_model, optimizer=optimizer, train_set=train_set,
            val_set=val_set, val_images=images, files=files, kind=scene.kind, runtime=runtime, context=context,
            reporter=reporter, bar=bar, start=start,
        )  # fmt: skip
        return _loop(run)
    finally:
        files.close()
        if lock is not None:
            lock.release()


def _load_splits(settings: TrainSettings, scene: TrainScene, runtime: Runtime, is_main: bool, report):
    """(the train split, the validation split or None, the validation images); rank 0 alone validates."""
    from mipnerf_cli.data import load_scene

    train_set = load_scene(
        settings.data,
        "train",
        multiscale=settings.multiscale,
        white_bkgd=settings.white_bkgd,
        downscale=settings.downscale,
        **scene.load_options(),
    )
    val_set = load_val_set(settings, scene, report) if is_main else None
    images = val_images(val_set, settings, runtime) if val_set is not None else []
    if images and (line := describe_budget(val_set, images, settings, runtime)) is not None:
        report(line)
    return train_set, val_set, images


def _build_model(settings: TrainSettings, start: Start, runtime: Runtime, context: Context, report):
    """(the model, the module the steps run, the optimizer), from `start`'s checkpoint if it has one."""
    model = build_model(settings).to(runtime.device)
    optimizer = build_optimizer(model, settings, runtime)
    if start.payload is not None:
        model.load_state_dict(start.payload["model"])
        load_optimizer_state(optimizer, start.payload["optimizer"])
        report(f"resuming from {start.source} at step {start.step}")
    step_model = wrap_for_ranks(model, runtime, context)
    if settings.compile:
        step_model = compile_for_training(step_model)
    return model, step_model, optimizer


def _open_run_folder(files: RunFiles, lock: RunLock, start: Start, settings: TrainSettings, report) -> None:
    """Rank 0, once every check has passed: create and lock the folder, tidy ckpt/, start the logs."""
    if not lock.held:
        files.dir.mkdir(parents=True, exist_ok=True)
        _acquire(lock, report)
    checkpoints.remove_stale_temporaries(files.ckpt_dir)
    set_aside_later_checkpoints(files.ckpt_dir, start, report)
    files.write_config(settings)
    files.open_metrics(keep_until_step=start.step)
    if settings.tensorboard:
        files.open_tensorboard()


def _acquire(lock: RunLock, report) -> None:
    lock.acquire()
    if lock.taken_over_from:
        report(f"took over a stale lock ({lock.taken_over_from}, no longer running)")


@dataclasses.dataclass(eq=False)
class TrainRun:
    """Everything the loop works with, and where it stands (step, last save, clocks)."""

    settings: TrainSettings
    model: nn.Module  # the plain model: checkpoints and validation take it
    step_model: nn.Module  # what the steps run: the model, its DDP wrapper or its compiled module
    optimizer: Any
    train_set: Any  # data.ImageSet
    val_set: Any  # data.ImageSet, or None (no validation, or not rank 0)
    val_images: list[int]  # the val_set images every validation renders
    files: RunFiles
    kind: str  # the scene's kind, recorded in the checkpoints
    runtime: Runtime
    context: Context
    reporter: Reporter
    bar: Progress
    start: Start
    step: int = 0  # steps done
    saved_step: int = 0
    last_checkpoint: Optional[Path] = None
    clock_start: float = dataclasses.field(default_factory=time.perf_counter)
    validation_s: float = 0.0
    window: "Window" = dataclasses.field(default_factory=lambda: Window())
    rays_per_s: Optional[float] = None  # smoothed, for the progress bar

    def __post_init__(self) -> None:
        self.step = self.saved_step = self.start.step
        self.last_checkpoint = self.start.source

    def elapsed(self) -> float:
        """Training wall-clock over all sessions of the run, validation excluded."""
        return self.start.elapsed_s + time.perf_counter() - self.clock_start - self.validation_s

    def account(self, step: int, lr: float, seconds: float, stats: StepStats) -> StepStats:
        """Check and count a step's stats (a sync-free step's arrive one step late)."""
        if not stats.finite:
            where = (
                f"the last good checkpoint is {self.last_checkpoint}"
                if self.last_checkpoint
                else "no checkpoint was written yet"
            )
            raise (MipNerfError if self.context.is_main else PeerError)(
                f"the loss became {stats.loss} at step {step} (lr {lr:.3g}); stopped without saving, {where}; "
                "resume with --resume auto and a lower lr_init, or set grad_max_norm"
            )
        self.window.add(stats, seconds)
        rate = self.settings.batch_size / max(seconds, 1e-9)
        self.rays_per_s = rate if self.rays_per_s is None else 0.9 * self.rays_per_s + 0.1 * rate
        self.bar.update(
            1,
            loss=stats.loss,
            psnr=psnr_from_level_mse(stats.level_mses[-1]),
            lr=lr,
            **{"rays/s": int(self.rays_per_s)},
        )
        return stats

    def out_of_time(self) -> bool:
        """Whether --max-minutes of training (all sessions, validation excluded) are spent; every rank agrees."""
        budget = self.settings.max_minutes
        if budget is None:
            return False
        spent = self.elapsed() >= budget * 60
        if self.context.distributed:
            spent = bool(self.context.max(int(spent)))
        return spent

    def warn_long_schedule(self) -> None:
        """Once, after the first steps of a session: say so when the schedule would take more than a day."""
        steps = self.step - self.start.step
        seconds = self.elapsed() - self.start.elapsed_s
        line = long_schedule_warning(steps, seconds, self.settings.max_steps - self.step, self.settings.max_minutes)
        if line is not None:
            self.bar.log(f"warning: {line}")

    def log_window(self, lr: float) -> None:
        """One "train" line of metrics.jsonl: the means since the previous one."""
        self.files.log(self.window.record(self.step, lr, self.settings.batch_size, self.elapsed()))
        self.window = Window()

    def save(self, again: bool = False) -> None:
        """Checkpoint the current step (once; `again`: rewrite it, e.g. with the time spent since);
        the other ranks wait, so a failed save stops every rank."""
        self.context.on_main(lambda: self._save_on_main(again))
        self.saved_step = self.step

    def _save_on_main(self, again: bool = False) -> None:
        if self.saved_step == self.step and not again:
            return
        payload = make_payload(
            self.step, self.model, self.optimizer, self.settings, self.kind, self.files.dir, self.elapsed(),
            cpu_kernel=self.runtime.train_kernel,
        )  # fmt: skip
        try:
            self.last_checkpoint = checkpoints.save_step(self.files.ckpt_dir, payload, self.settings.keep_checkpoints)
        except MipNerfError as error:
            kept = (
                f"the last good checkpoint is {self.last_checkpoint}"
                if self.last_checkpoint
                else "no checkpoint was saved"
            )
            raise MipNerfError(f"{error}; training stopped at step {self.step}, {kept}") from None

    def validate(self, should_stop) -> None:
        """Render the validation images (rank 0) and log their PSNR; nothing when a stop came first."""
        if not self.val_images:
            return
        tic = time.perf_counter()
        result = validate(self.model, self.val_set, self.val_images, self.settings, self.runtime, should_stop)
        self.validation_s += time.perf_counter() - tic
        if result is not None:
            count = len(self.val_images)
            self.files.log({"step": self.step, "split": "val", **result, "images": count, "elapsed_s": self.elapsed()})
            self.bar.log(f"step {self.step}: validation psnr {format_psnrs(result)} on {count} test image(s)")

    def agreed_stop(self, stop: StopRequest, last: StepStats | None) -> str | None:
        """The signal that stops every rank after this step (None: go on).

        Every rank stops after the same step, whichever of them got the signal: the ranks'
        votes come summed with the loss terms; after a validation (which a signal may have
        interrupted) they are asked afresh.
        """
        if not self.context.distributed:
            return stop.signal_name
        if last is None or self.step % self.settings.check_interval == 0:
            return STOP_SIGNALS[self.context.max(STOP_SIGNALS.index(stop.signal_name))]
        return STOP_SIGNALS[last.stop_vote]


def _loop(run: TrainRun) -> TrainResult:
    settings, context, device = run.settings, run.context, run.runtime.device
    stopped_by = None
    # The sync-free step (CUDA) reads its loss back a step late: step k is checked once step
    # k+1 is queued, so the GPU never idles waiting for the host. A step that logs, saves,
    # validates or ends the run is read at once, so nothing is written before it is checked.
    pending, last = None, None  # (step, lr, seconds, PendingStats) not yet read; the latest read StepStats
    out_of_time = False
    with StopRequest(run.reporter) as stop, run.bar:
        while run.step < settings.max_steps and stopped_by is None and not out_of_time:
            run.step += 1
            step = run.step
            tic = time.perf_counter()
            rays, pixels, noise, shard = begin_step(  # the model's before_step hook, then the batch
                settings,
                step,
                run.train_set,
                run.model,
                device,
                context,
                stop_vote=STOP_SIGNALS.index(stop.signal_name),
            )
            lr = learning_rate(step, settings)
            generator = step_generator(settings.seed, step, "noise", device) if noise is None else None
            stats = train_step(
                run.step_model, run.optimizer, rays, pixels, lr, settings, generator, run.runtime,
                noise=noise, shard=shard,
            )  # fmt: skip
            if pending is not None:
                last, pending = run.account(*pending[:3], pending[3].get()), None
            seconds = time.perf_counter() - tic
            logs = step % settings.log_interval == 0 or step == settings.max_steps
            checks = step % settings.check_interval == 0 or step == settings.max_steps
            if stats.deferred and not (logs or checks):
                pending = (step, lr, seconds, stats)
            else:
                last = run.account(step, lr, seconds, stats.get())

            if logs:
                run.log_window(lr)
            if checks:
                run.save()
                run.validate(stop.requested)
            stopped_by = run.agreed_stop(stop, last)
            if step == run.start.step + WARN_AFTER_STEPS:
                run.warn_long_schedule()
            out_of_time = run.out_of_time()
        if pending is not None:
            run.account(*pending[:3], pending[3].get())

        if out_of_time and stopped_by is None:
            # Again if this step was saved already: the checkpoint then records the spent budget.
            run.save(again=True)
            run.bar.log(
                f"time budget spent ({settings.max_minutes:g} min of training) at step {run.step}; saved "
                f"{run.last_checkpoint}; continue with a larger --max-minutes or with --max-steps"
            )

        if stopped_by is not None:
            run.save()
            where = f"; saved {run.last_checkpoint}" if run.last_checkpoint is not None else ""
            run.bar.log(f"stopped at step {run.step}{where}; continue with --resume auto")
            context.barrier()
            return TrainResult(
                step=run.step, run_dir=run.files.dir, interrupted_by=stopped_by, last_checkpoint=run.last_checkpoint
            )
    run.reporter.info(f"done: step {run.step}, checkpoint {run.last_checkpoint}")
    # Nobody leaves before rank 0 has validated and closed its files (torchrun reads an early exit as the end).
    context.barrier()
    return TrainResult(step=run.step, run_dir=run.files.dir, last_checkpoint=run.last_checkpoint)


WARN_AFTER_STEPS = 20  # steps of a session timed before judging the schedule's length
LONG_SCHEDULE_S = 86400.0


def long_schedule_warning(steps: int, seconds: float, steps_left: int, max_minutes: Optional[float]) -> Optional[str]:
    """The warning for a schedule that would take more than a day at the measured speed
    (`steps` done in `seconds`), or None. A --max-minutes budget bounds the time."""
    if steps <= 0 or seconds <= 0:
        return None
    remaining = seconds / steps * steps_left
    if max_minutes is not None:
        remaining = min(remaining, max_minutes * 60)
    if remaining <= LONG_SCHEDULE_S:
        return None
    return (
        f"at {steps / seconds:.3g} steps/s the remaining {steps_left} steps take about {human_duration(remaining)} "
        "here; for a CPU use --config lego-cpu (mip-NeRF sized for a CPU, about an hour on lego at 1/4) or "
        "--config fast (the grid model, minutes), or bound the run with --max-minutes M"
    )


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

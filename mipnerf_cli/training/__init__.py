"""Training (`mipnerf train`): one module per job, the loop reading top to bottom.

step.py        train_step(model, optimizer, rays, pixels, lr, ...) -> PendingStats (.get(): StepStats);
               the lr schedule (the per-step generators: data/sampler.py)
batch.py       a step's rays, pixels and noise from (seed, step), on the device in one copy;
               begin_step: the model's before_step hook, then the batch
shards.py      several ranks sharing one step (rank_rows, Shard, wrap_for_ranks)
setup.py       the scene, decided once (resolve_scene), the model, the optimizer, torch.compile
resume.py      where a run starts (Start, find_start) and the checkpoints set aside
validation.py  the validation images (within a CPU's budget) and their PSNR
stop.py        StopRequest: Ctrl+C / SIGTERM finish the step, save and stop
loop.py        train(): set up a TrainRun, then step, log, save, validate

The run folder it writes is :mod:`mipnerf_cli.runs`.
"""

from mipnerf_cli.data.sampler import step_generator, step_seed
from mipnerf_cli.training.batch import begin_step, packed_copy, step_batch, to_device
from mipnerf_cli.training.loop import TrainResult, TrainRun, train
from mipnerf_cli.training.resume import Start, find_start
from mipnerf_cli.training.setup import (
    SkippableAdam,
    TrainScene,
    build_model,
    build_optimizer,
    check_scene,
    load_optimizer_state,
    resolve_scene,
)
from mipnerf_cli.training.shards import Shard, rank_rows, rank_slice, wrap_for_ranks
from mipnerf_cli.training.step import (
    PendingStats,
    StepStats,
    learning_rate,
    psnr_from_level_mse,
    train_step,
)
from mipnerf_cli.training.stop import STOP_SIGNALS, StopRequest
from mipnerf_cli.training.validation import load_val_set, pick_val_views, val_images, validate

__all__ = [
    "STOP_SIGNALS",
    "PendingStats",
    "Shard",
    "SkippableAdam",
    "Start",
    "StepStats",
    "StopRequest",
    "TrainResult",
    "TrainRun",
    "TrainScene",
    "begin_step",
    "build_model",
    "build_optimizer",
    "check_scene",
    "find_start",
    "learning_rate",
    "load_optimizer_state",
    "load_val_set",
    "packed_copy",
    "pick_val_views",
    "psnr_from_level_mse",
    "rank_rows",
    "rank_slice",
    "resolve_scene",
    "step_batch",
    "step_generator",
    "step_seed",
    "to_device",
    "train",
    "train_step",
    "val_images",
    "validate",
    "wrap_for_ranks",
]

"""One torchrun worker of tests/training/test_distributed.py: several multi-process scenarios in one launch.

Starting torchrun and importing torch in each process costs seconds, so one launch of
``python -m torch.distributed.run --nproc-per-node 2 tests/helpers/distributed_worker.py SPEC.json``
runs them all in one gloo process group:

1. one training step's gradients and global loss on each path (CPU fast path: gradients
   summed by hand; plain path: DistributedDataParallel), saved per rank;
2. `mipnerf` commands (train, eval, render, refusals) through the Typer app, as torchrun
   would run ``-m mipnerf_cli``; each rank records its exit code and error.

The grid model's occupancy grid, as each rank computed it in its own last `before_step` that
refreshed it (before DDP's forward copies rank 0's buffers to the others), is saved as
``grid-trimip-rank{R}.pt``.

SPEC.json: {"out": folder, "device": "cpu" | "cuda", "settings": {...TrainSettings values...},
"step": int, "commands": [[argv...], ...]}. Writes ``grads-{fast|plain}-rank{R}.pt`` and
``commands-rank{R}.json`` into the out folder. With "cuda" the group uses NCCL and rank R
the GPU cuda:LOCAL_RANK, as `mipnerf` itself does under torchrun.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def gradients(spec: dict, context, out: Path) -> None:
    from mipnerf_cli import training
    from mipnerf_cli.data import load_scene
    from mipnerf_cli.runtime import Runtime
    from mipnerf_cli.settings import resolve_train_settings

    device = context.device or torch.device("cpu")
    settings = resolve_train_settings(None, spec["settings"])
    train_set = load_scene(settings.data, "train", multiscale=settings.multiscale, white_bkgd=settings.white_bkgd)
    for tag, fast in (("fast", True), ("plain", False)):
        s = settings.model_copy(update={"fast_path": fast})
        model = training.build_model(s).to(device)
        optimizer = training.build_optimizer(model, s)
        step_model = training.wrap_for_ranks(model, Runtime(device=device, fast_path=fast), context)
        # The fast path is a CPU path: there the gradients are summed by hand, elsewhere by DDP.
        assert isinstance(step_model, torch.nn.parallel.DistributedDataParallel) == (device.type == "cuda" or not fast)
        rays, pixels, noise, shard = training.step_batch(s, spec["step"], train_set, model, device, context)
        # lr 0: the gradients stay in .grad and the weights as they were.
        stats = training.train_step(step_model, optimizer, rays, pixels, 0.0, s, None, noise=noise, shard=shard).get()
        torch.save(
            {
                "grads": {name: p.grad.cpu() for name, p in model.named_parameters()},
                "loss": stats.loss,
                "level_mses": stats.level_mses,
                "share": float(shard.share),
                "rays": len(rays),
            },
            out / f"grads-{tag}-rank{context.rank}.pt",
        )


def record_grids(grids: dict) -> None:
    """Keep in `grids` the occupancy grid of every grid-model refresh, as this rank computed it."""
    from mipnerf_cli.core.models.trimip import TriMipRF

    update = TriMipRF.update_occupancy

    def recording(self, step: int) -> None:
        update(self, step)
        grids.update(step=step, occupancy_ema=self.occupancy_ema.cpu().clone(), occupied=self.occupied.cpu().clone())

    TriMipRF.update_occupancy = recording


def commands(spec: dict, rank: int, out: Path) -> None:
    from mipnerf_cli.cli import app

    grids = {}
    record_grids(grids)

    records = []
    for argv in spec["commands"]:
        record = {"argv": argv, "exit": 0, "error": None}
        try:
            code = app(args=argv, prog_name="mipnerf", standalone_mode=False)
            record["exit"] = code if isinstance(code, int) else 0
        except Exception as error:  # a MipNerfError that the CLI would print; anything else too
            record["exit"], record["error"] = 1, f"{type(error).__name__}: {error}"
        records.append(record)
        dist.barrier()  # the next command starts together on every rank
    (out / f"commands-rank{rank}.json").write_text(json.dumps(records, indent=1))
    if grids:
        torch.save(grids, out / f"grid-trimip-rank{rank}.pt")


def main() -> None:
    from mipnerf_cli.distributed import Context

    torch.set_num_threads(1)
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec["out"])
    device = None
    if spec.get("device") == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device is not None else "gloo")
    context = Context(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ["LOCAL_RANK"]), device=device
    )
    try:
        gradients(spec, context, out)
        commands(spec, context.rank, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

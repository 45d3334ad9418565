"""Several processes working as one (launched by torchrun): who does what, and the few collectives.

torchrun starts one process per GPU (or per CPU share) and tells each its place through the
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``);
:func:`launched` reads that, joins the process group (env:// rendezvous; NCCL on CUDA with
device ``cuda:LOCAL_RANK``, gloo on CPU) and hands out a :class:`Context`. Without torchrun
(or with one process) the context is the trivial one and every collective is a no-op, so the
commands have a single code path.

Rank 0 is the only one that talks to the user or writes files. Decisions that can refuse a
command (bad input, an existing output) are taken by rank 0 first (:meth:`Context.on_main`,
:meth:`Context.main_first`) and broadcast, so the reason is printed once and every rank
stops; the other ranks leave with :class:`PeerError`, which the commands turn into a quiet
exit 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from typing import Any, Callable, Iterator, Optional, TypeVar

import torch

from mipnerf_cli.errors import MipNerfError

T = TypeVar("T")

# Rank 0 alone validates and saves checkpoints while the others wait in the next collective;
# the timeout must outlast that (a crashed rank is noticed by torchrun, not by this timeout).
COLLECTIVE_TIMEOUT = dt.timedelta(minutes=60)


class PeerError(MipNerfError):
    """Raised on ranks other than 0 when rank 0 refused the command (rank 0 says why)."""


@dataclasses.dataclass
class Context:
    """This process's place among `world_size` processes.

    device: the device this process must use (``cuda:LOCAL_RANK`` under torchrun on GPUs), or
    None when the settings choose (one process, or CPU processes).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Optional[torch.device] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def _group_device(self) -> torch.device:
        # NCCL only moves CUDA tensors; gloo takes CPU ones.
        return self.device if self.device is not None and self.device.type == "cuda" else torch.device("cpu")

    # -- tensor collectives (no-ops with one process)

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over all ranks, in place; every rank gets the same result."""
        if self.distributed:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def max(self, value: int) -> int:
        """The largest of the ranks' `value`s, on every rank."""
        if not self.distributed:
            return value
        box = torch.tensor([value], dtype=torch.int64, device=self._group_device())
        torch.distributed.all_reduce(box, op=torch.distributed.ReduceOp.MAX)
        return int(box.item())

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    # -- object collectives (pickled; small things, or one image at a time)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> Optional[list[Any]]:
        """Every rank's `value`, in rank order, on rank 0; None on the other ranks."""
        if not self.distributed:
            return [value]
        box: Optional[list[Any]] = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(value, box, dst=0)
        return box

    # -- decisions taken by rank 0

    def on_main(self, action: Callable[[], T]) -> Optional[T]:
        """Run `action` on rank 0 only while the others wait; its MipNerfError stops every rank.

        Returns the action's value on rank 0, None elsewhere.
        """
        value, failure = None, None
        if self.is_main:
            try:
                value = action()
            except MipNerfError as error:
                failure = str(error)
        failure = self.broadcast(failure)
        if failure is not None:
            if self.is_main:
                raise MipNerfError(failure)
            raise PeerError(f"rank 0 stopped: {failure}")
        return value

    def main_first(self, action: Callable[[], T]) -> T:
        """Run `action` on rank 0, then (if it succeeded) on the other ranks.

        For set-up every rank needs (loading a checkpoint or a scene): an error every rank
        would meet is reported once, by rank 0; what fails on another rank only (a file
        missing on its machine) is that rank's own error.
        """
        value = self.on_main(action)
        return value if self.is_main else action()  # type: ignore[return-value]


SINGLE = Context()


def torchrun_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 when not under torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise MipNerfError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number; start the processes with torchrun"
        ) from None


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    if value is None:
        raise MipNerfError(f"WORLD_SIZE is set but {name} is not; start the processes with torchrun")
    try:
        return int(value)
    except ValueError:
        raise MipNerfError(f"{name}={value!r} is not a number; start the processes with torchrun") from None


def _wants_cuda(device_name: str) -> bool:
    return device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())


@contextlib.contextmanager
def launched(device_name: str = "auto") -> Iterator[Context]:
    """The process group torchrun asked for, joined for the duration of the block.

    device_name: the command's --device ("auto", "cpu", "cuda"). On CUDA every process takes
    the GPU ``cuda:LOCAL_RANK`` and the group uses NCCL; on CPU it uses gloo. A group that
    already exists (a test harness) is used as is and left open.
    """
    world_size = torchrun_world_size()
    if world_size <= 1:
        yield SINGLE
        return
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    device = None
    if _wants_cuda(device_name):
        if not torch.cuda.is_available():
            raise MipNerfError("--device cuda: no CUDA device is available here; use --device cpu")
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise MipNerfError(
                f"rank {rank}: LOCAL_RANK {local_rank} but this machine has {count} CUDA device(s); "
                f"start at most {count} processes per machine (--nproc-per-node {count})"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    created = False
    if not torch.distributed.is_initialized():
        backend = "nccl" if device is not None else "gloo"
        # device_id binds NCCL's communicator to this rank's GPU at once (not via the
        # current device that set_device happened to leave).
        bound = {"device_id": device} if device is not None else {}
        torch.distributed.init_process_group(backend, init_method="env://", timeout=COLLECTIVE_TIMEOUT, **bound)
        created = True
    try:
        yield Context(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
    finally:
        if created:
            torch.distributed.destroy_process_group()


def round_robin(
    context: Context, count: int, work: Callable[[int], Any], take: Callable[[int, int, Any], None]
) -> None:
    """Items 0..count-1 dealt round-robin to the ranks (item k to rank k % world_size).

    Every rank calls `work(k)` for its own items; after each round rank 0 gathers the
    round's results and calls `take(k, rank, result)` for them in item order, so what rank 0
    writes is exactly what one process would write. Used by `mipnerf eval` and `mipnerf render`.
    """
    for first in range(0, count, context.world_size):
        k = first + context.rank
        mine = work(k) if k < count else None
        gathered = context.gather(mine)
        for rank, item in enumerate(gathered or []):
            if first + rank < count:
                take(first + rank, rank, item)


def check_batch_split(batch_size: int, processes: int, named: str, error: type[MipNerfError] = MipNerfError) -> None:
    """Refuse a global batch that `processes` processes cannot share evenly.

    named: how the message names them ("the 4 processes", "--nproc 4"); error: the
    exception to raise (PeerError on ranks other than 0, which report nothing).
    """
    if batch_size % processes:
        raise error(
            f"batch_size {batch_size} is the global batch and must be divisible by {named}; "
            f"use a multiple of {processes}"
        )

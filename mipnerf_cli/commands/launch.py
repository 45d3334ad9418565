"""Commands under torchrun: `--nproc N` (start torchrun on this machine) and running in a process group.

`mipnerf train --nproc 4 ...` is a shortcut for
``python -m torch.distributed.run --standalone --nproc-per-node 4 -m mipnerf_cli train ...``:
the command line is rebuilt from the options the user gave (``--nproc`` left out) and
torchrun's own entry point runs in this process, so that Ctrl+C (torchrun forwards it to
the workers, which save and stop) and a refused run end with the workers' exit code and no
launcher traceback. Several machines need torchrun itself (README, "Multi-GPU").
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Callable, Optional, TypeVar

import typer

from mipnerf_cli.errors import MipNerfError

if TYPE_CHECKING:  # importing it at run time pulls in torch, which `mipnerf --help` must not wait for
    from mipnerf_cli import distributed

T = TypeVar("T")

NprocOption = Annotated[
    Optional[int],
    typer.Option(
        "--nproc",
        min=1,
        help="Start N processes on this machine with torchrun (one per GPU; CPU: each gets a share of the cores). "
        "For several machines run torchrun yourself.",
    ),
]


def in_process_group(device: str, body: Callable[[distributed.Context], T]) -> T:
    """`body(context)` in this process's place among the torchrun processes (alone without torchrun).

    Ranks other than 0 leave with exit 1 and no message when rank 0 refused (rank 0 says
    why); an error of their own names their rank.
    """
    from mipnerf_cli import distributed

    try:
        with distributed.launched(device) as context:
            try:
                return body(context)
            except distributed.PeerError:
                raise
            except MipNerfError as error:
                if context.is_main:
                    raise
                raise MipNerfError(f"rank {context.rank}: {error}") from None
    except distributed.PeerError:
        raise typer.Exit(1) from None


def torchrun_argv(ctx: typer.Context, nproc: int) -> list[str]:
    """The torchrun arguments that run this command in `nproc` processes on this machine.

    The options the user set (on the command line or through the environment) are passed
    on as they were parsed; defaults stay defaults; ``--nproc`` itself is left out.
    """
    from typer._click.core import ParameterSource

    args: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name == "nproc" or ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT):
            continue
        value = ctx.params[name]
        if getattr(param, "param_type_name", "") == "argument":  # a positional (RUN)
            args.append(str(value))
            continue
        if getattr(param, "is_flag", False):
            if value:
                args.append(param.opts[0])
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
            continue
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) and getattr(param, "multiple", False) else [value]
        for item in values:
            args += [param.opts[0], str(item)]
    return ["--standalone", f"--nproc-per-node={nproc}", "-m", "mipnerf_cli", ctx.info_name or ctx.command.name, *args]


def start_torchrun(ctx: typer.Context, nproc: int, device: str, batch_size: Optional[int] = None) -> None:
    """`--nproc N`: refuse what every process would refuse, then run the command under torchrun and exit."""
    refuse_nested_launch()
    if batch_size is not None:
        from mipnerf_cli.distributed import check_batch_split

        check_batch_split(batch_size, nproc, f"--nproc {nproc}")
    check_devices(nproc, device)
    raise typer.Exit(run_torchrun(ctx, nproc))


def refuse_nested_launch() -> None:
    from mipnerf_cli import distributed

    if distributed.torchrun_world_size() > 1 or "TORCHELASTIC_RUN_ID" in os.environ:
        raise MipNerfError(
            "--nproc: this is already a torchrun process; drop --nproc (torchrun decides the number of processes)"
        )


def check_devices(nproc: int, device: str) -> None:
    """Refuse more GPU processes than GPUs before starting any."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    if nproc > count:
        raise MipNerfError(f"--nproc {nproc}: this machine has {count} CUDA device(s); use --nproc {count} or fewer")


def run_torchrun(ctx: typer.Context, nproc: int) -> int:
    """Run this command in `nproc` processes under torchrun; returns the exit code for the user.

    0 when every process succeeded; 130/143 when stopped by SIGINT/SIGTERM (the workers got
    it too, and rank 0 saved); else the first failed process's code (rank 0 printed why).
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # torchrun gives each process one thread unless told otherwise; a CPU run can use its share of the cores.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    sys.stdout.flush()
    try:
        torchrun.main(torchrun_argv(ctx, nproc))
    except SignalException as stop:
        return 128 + int(stop.sigval)
    except ChildFailedError as failed:
        _, failure = failed.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0

"""Options shared by the commands that load a trained model (`eval`, `render`), defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

RunOption = Annotated[
    Optional[Path],
    typer.Option("--run", help="Run folder written by `mipnerf train`; its newest checkpoint (ckpt/last.pt) is used."),
]
CkptOption = Annotated[Optional[Path], typer.Option("--ckpt", help="A checkpoint file (instead of --run).")]
DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Scene folder. Default: the scene the checkpoint was trained on."),
]
ChunkOption = Annotated[
    int, typer.Option("--chunk", help="Rays per forward pass; lower it if the device runs out of memory.")
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu or cuda.")]
ProgressOption = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show a progress bar (plain lines when not a terminal).")
]
CpuThreadsOption = Annotated[
    Optional[int],
    typer.Option(
        "--cpu-threads", help="torch CPU threads; fewer can be faster on a busy machine (default: torch's choice)."
    ),
]

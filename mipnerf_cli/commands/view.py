"""`mipnerf view`: look around a trained (or still training) run in the browser."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.commands.options import CkptOption, CpuThreadsOption, DataOption, DeviceOption
from mipnerf_cli.console import info

LOCAL = ("127.0.0.1", "localhost", "::1")


def view_command(
    run_dir: Annotated[Optional[Path], typer.Argument(help="Run folder written by `mipnerf train`.")] = None,
    ckpt: CkptOption = None,
    data: DataOption = None,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on; other than 127.0.0.1 exposes the viewer to the network."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    resolution: Annotated[int, typer.Option("--resolution", help="Longer side of the refined image, in pixels.")] = 256,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Reload newer checkpoints of a run still training.")
    ] = True,
    keyframes_out: Annotated[
        Optional[Path],
        typer.Option("--keyframes-out", help="Where 'Export camera_path.json' writes. Default: ./camera_path.json."),
    ] = None,
    device: DeviceOption = "auto",
    cpu_threads: CpuThreadsOption = None,
) -> None:
    """Serve an interactive viewer of RUN_DIR (or --ckpt FILE) on http://HOST:PORT until Ctrl+C."""
    from mipnerf_cli.viewer.server import open_viewer

    if host not in LOCAL:
        info(
            f"warning: --host {host} lets anyone who can reach this machine on port {port} see the scene, "
            "move the camera and write the keyframe file; there is no password"
        )
    viewer = open_viewer(
        run_dir, ckpt, data, host, port, resolution, device, cpu_threads, watch, keyframes_out, report=info
    )
    info(f"viewer of {viewer.trained.checkpoint_path} (step {viewer.step}) at {viewer.url}  (Ctrl+C stops)")
    try:
        while True:
            time.sleep(1.0)
    finally:
        viewer.close()

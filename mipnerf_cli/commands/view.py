"""`mipnerf view`: look around a trained (or still training) run in the browser."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.commands.options import (
    CkptOption,
    ConfigOption,
    CpuThreadsOption,
    DataOption,
    DeviceOption,
    RunArgument,
    RunOption,
    one_of,
    run_settings,
)
from mipnerf_cli.console import info

LOCAL = ("127.0.0.1", "localhost", "::1")


def view_command(
    run_path: RunArgument = None,
    config: ConfigOption = None,
    data: DataOption = None,
    host: Annotated[
        Optional[str],
        typer.Option("--host", help="Address to listen on; other than 127.0.0.1 exposes the viewer to the network."),
    ] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port to listen on.")] = None,
    max_size: Annotated[
        Optional[int],
        typer.Option(
            "--max-size", help="Longer side of the refined image, in pixels (the older --resolution still works)."
        ),
    ] = None,
    watch: Annotated[
        Optional[bool], typer.Option("--watch/--no-watch", help="Reload newer checkpoints of a run still training.")
    ] = None,
    keyframes_out: Annotated[
        Optional[Path],
        typer.Option("--keyframes-out", help="Where 'Export camera_path.json' writes. Default: ./camera_path.json."),
    ] = None,
    device: DeviceOption = None,
    cpu_threads: CpuThreadsOption = None,
    run: RunOption = None,
    ckpt: CkptOption = None,
    resolution: Annotated[
        Optional[int], typer.Option("--resolution", hidden=True, help="The older spelling of --max-size.")
    ] = None,
) -> None:
    """Serve an interactive viewer of RUN on http://HOST:PORT until Ctrl+C."""
    from mipnerf_cli.settings import ViewSettings
    from mipnerf_cli.viewer.server import open_viewer

    flags = dict(
        data=data, host=host, port=port, max_size=one_of(("--max-size", max_size), ("--resolution", resolution)),
        watch=watch, keyframes_out=keyframes_out, device=device, cpu_threads=cpu_threads,
    )  # fmt: skip
    settings = run_settings(ViewSettings, config, flags, run_path, run, ckpt)
    if settings.host not in LOCAL:
        info(
            f"warning: --host {settings.host} lets anyone who can reach this machine on port {settings.port} see the "
            "scene, move the camera and write the keyframe file; there is no password"
        )
    viewer = open_viewer(
        settings.run,
        settings.ckpt,
        settings.data,
        settings.host,
        settings.port,
        settings.max_size,
        settings.device,
        settings.cpu_threads,
        settings.watch,
        settings.keyframes_out,
        report=info,
    )
    info(f"viewer of {viewer.trained.checkpoint_path} (step {viewer.step}) at {viewer.url}  (Ctrl+C stops)")
    try:
        while True:
            time.sleep(1.0)
    finally:
        viewer.close()

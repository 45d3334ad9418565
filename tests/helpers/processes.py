"""A real process, started and waited for: the one way the tests start one.

Every other CLI call goes through the `mipnerf` fixture (cli_runner.py). A test starts a
process of its own only where it needs one: to send it a signal (Ctrl+C, SIGTERM, SIGKILL)
while it works, to crash it half-way through a write, to hold a lock from another process,
to serve a port a browser connects to, or to run torchrun or the installed console script.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

MIPNERF = (sys.executable, "-m", "mipnerf_cli")  # `python -m mipnerf_cli`, as a user runs it


def start(*command, folder: Path | None = None, stderr=subprocess.PIPE, env: dict | None = None) -> subprocess.Popen:
    """Start `command` (each part made a str). Its output goes to text pipes, or with `folder`
    to the files folder/stdout and folder/stderr (for a process that writes more than a pipe
    holds while nobody reads it). `stderr=subprocess.STDOUT` merges the two pipes."""
    command = [str(part) for part in command]
    if folder is None:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
    process.folder = folder
    return process


def output(process: subprocess.Popen) -> str:
    """What an ended process printed (for a failure message)."""
    folder = getattr(process, "folder", None)
    if folder is not None:
        return (folder / "stdout").read_text(errors="replace") + (folder / "stderr").read_text(errors="replace")
    out, err = process.communicate(timeout=30)
    return (out or "") + (err or "")


def wait_until(ready, process: subprocess.Popen, timeout: float, what: str, poll: float = 0.01) -> None:
    """Poll `ready()` until it is true. Fails if the process ends first (with its exit code and
    output) or after `timeout` seconds (killing the process); `what` names what was awaited."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}: {output(process)}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)

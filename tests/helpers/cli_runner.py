"""Running `mipnerf` as a user would, many times over, in seconds; and checking that a refused
command left the disk as it was.

Every call is a process of its own, with its own exit code, stdout and stderr. Starting
Python and importing torch costs seconds on a busy machine, so by default the processes are
forked from one server process that has imported mipnerf_cli once and never runs a command
itself: each child starts from that clean state and runs ``mipnerf_cli.cli.main()`` exactly
as ``python -m mipnerf_cli`` does (an escaping exception prints its traceback and exits 1,
as the interpreter would). Set MIPNERF_TEST_SUBPROCESS=1, or run where os.fork is missing,
to start a fresh interpreter for every call instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import pytest

FORK_SERVER = r"""
import json, os, sys, traceback
import mipnerf_cli.cli
# What the commands import lazily; importing here is what makes each child fast.
import mipnerf_cli.training, mipnerf_cli.evaluation, mipnerf_cli.rendering.video, mipnerf_cli.convert.multiscale
try:
    import torch._dynamo  # seconds: torch.optim imports it on the first optimizer
except ImportError:
    pass

reply = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints must not garble the replies
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(request["cwd"])
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            for fd, name in ((1, "stdout"), (2, "stderr")):
                os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.argv = ["mipnerf", *request["args"]]
            try:
                mipnerf_cli.cli.main()
                code = 0
            except SystemExit as exit_:
                code = exit_.code
                if isinstance(code, str):
                    sys.stderr.write(code + "\n")
                code = code if isinstance(code, int) else (0 if code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    reply.write(json.dumps({"pid": pid}) + "\n")
    reply.flush()
    _, status = os.waitpid(pid, 0)
    reply.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
    reply.flush()
"""


class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def _environment() -> dict[str, str]:
    # MIPNERF_DEBUG would turn one-line errors into tracebacks.
    return {key: value for key, value in os.environ.items() if key != "MIPNERF_DEBUG"}


class Mipnerf:
    """``mipnerf(*args, cwd=None) -> CliResult``: one `mipnerf ARGS` process per call."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout
        self._server: subprocess.Popen | None = None
        self._lock = threading.Lock()
        if hasattr(os, "fork") and os.environ.get("MIPNERF_TEST_SUBPROCESS", "") in ("", "0"):
            self._server = subprocess.Popen(
                [sys.executable, "-c", FORK_SERVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=_environment(),
            )
        self._started_server = self._server is not None

    @property
    def closed(self) -> bool:
        return self._server is None and self._started_server

    def __call__(self, *args, cwd: Path | None = None) -> CliResult:
        args = [str(arg) for arg in args]
        cwd = str(cwd or os.getcwd())
        if self._server is None:
            done = subprocess.run(
                [sys.executable, "-m", "mipnerf_cli", *args],
                capture_output=True,
                text=True,
                cwd=cwd,
                timeout=self.timeout,
                env=_environment(),
            )
            return CliResult(done.returncode, done.stdout, done.stderr)
        with self._lock, tempfile.TemporaryDirectory() as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"args": args, "cwd": cwd, "stdout": str(out), "stderr": str(err)}
            self._server.stdin.write(json.dumps(request) + "\n")
            self._server.stdin.flush()
            pid = json.loads(self._server.stdout.readline())["pid"]
            killer = threading.Timer(self.timeout, os.kill, (pid, signal.SIGKILL))
            killer.start()
            try:
                code = json.loads(self._server.stdout.readline())["code"]
            finally:
                killer.cancel()
            return CliResult(code, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        if self._server is not None:
            self._server.kill()  # it holds nothing worth a clean exit, and torch's takes seconds
            self._server.wait()
            self._server = None


_shared: Mipnerf | None = None


@pytest.fixture(scope="session")
def mipnerf():
    """The session's one runner (one server process, however many test files use it)."""
    global _shared
    if _shared is None or _shared.closed:
        _shared = Mipnerf()
    yield _shared
    _shared.close()


# ----------------------------------------------------------------------------- what a refusal must look like


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under `roots` (hidden ones included): files with size and mtime, folders
    by name, links with their target. Equal snapshots: nothing created, removed or written."""
    state: dict[str, tuple] = {}
    for root in roots:
        root = Path(root)
        if not root.exists() and not root.is_symlink():
            state[str(root)] = ("absent",)
            continue
        for path in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            if path.is_symlink():
                state[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                state[str(path)] = ("dir",)
            else:
                info = path.stat()
                state[str(path)] = ("file", info.st_size, info.st_mtime_ns)
    return state


def assert_refused(result: CliResult, *fragments: str) -> str:
    """Exit code 1, no traceback, and exactly one line on stderr: ``error: ...`` holding
    every fragment (the file or field it is about, and what to do). Returns that line."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line

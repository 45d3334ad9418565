"""The run folder's lock: one trainer per run folder (``<run_dir>/.lock`` holding "pid host")."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import pid_alive


class RunLock:
    """An exclusive lock on a run folder: ``<run_dir>/.lock`` holding "pid host".

    Held with ``fcntl.flock``, which the kernel drops when the holder dies, so a lock
    left by a killed trainer is taken over silently. Where flock is unavailable the pid
    in the file decides: a lock from a dead process on this host is taken over.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None
        self.taken_over_from: str | None = None  # the holder text of a stale lock we replaced

    def acquire(self) -> "RunLock":
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                previous = _read_holder(fd)
                if not _try_flock(fd) or not self._pid_check_passes(previous):
                    raise MipNerfError(
                        f"another trainer ({previous or 'unknown pid'}) is using {self.path.parent}; wait for it to "
                        f"finish or pick another --exp-name (if no trainer is running, delete {self.path})"
                    )
                # The previous holder may have unlinked the file between our open and flock.
                if os.fstat(fd).st_ino != _inode(self.path):
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"pid {os.getpid()} {socket.gethostname()}\n".encode())
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            self.taken_over_from = previous or None
            return self
        raise MipNerfError(f"could not take the lock {self.path}; try again")

    def _pid_check_passes(self, holder: str) -> bool:
        if _HAVE_FLOCK:
            return True
        pid, host = _parse_holder(holder)
        return pid is None or pid == os.getpid() or (host in (None, socket.gethostname()) and not pid_alive(pid))

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


try:
    import fcntl

    _HAVE_FLOCK = True
except ImportError:  # Windows
    _HAVE_FLOCK = False


def _try_flock(fd: int) -> bool:
    if not _HAVE_FLOCK:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode(errors="replace").strip()
    except OSError:
        return ""


def _parse_holder(text: str) -> tuple[int | None, str | None]:
    parts = text.removeprefix("pid ").split()
    try:
        return int(parts[0]), (parts[1] if len(parts) > 1 else None)
    except (IndexError, ValueError):
        return None, None

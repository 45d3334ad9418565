"""Small file-system rules that several modules share: the one atomic file write, pid checks.

Every file that must never be seen half-written goes through :func:`write_atomically` (bytes
and text through :func:`write_bytes_atomically` / :func:`write_text_atomically`): PNGs, videos,
PLYs, checkpoints, the run's config.yaml, camera paths. Folders written all at once are
:mod:`mipnerf_cli.io.staging`'s; nothing here knows about runs or scenes.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Callable

from mipnerf_cli.errors import MipNerfError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which would race with the writer
# threads of `mipnerf convert` if it were read at every write.
UMASK = _read_umask()


def temporary_path(path: Path) -> Path:
    """A new empty hidden file ``.<name>.tmp-<pid>-<random><suffix>`` next to `path` (same folder,
    so os.replace is atomic; same suffix, so writers that pick the format by name still do),
    with the usual permissions."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    os.chmod(name, 0o666 & ~UMASK)  # mkstemp creates 0600
    return Path(name)


class WriteError(MipNerfError):
    """A file could not be written: "could not write PATH: REASON; the previous file is intact"
    (or "; nothing was written"). `path` and `reason` for callers that word it their own way."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        previous = "the previous file is intact" if path.exists() else "nothing was written"
        super().__init__(f"could not write {path}: {reason}; {previous}")


def write_atomically(
    path: Path,
    write: Callable[[Path], None],
    durable: bool = False,
    failures: tuple[type[BaseException], ...] = (OSError,),
) -> None:
    """`path` holds what ``write(tmp)`` puts into a hidden temporary file beside it, whole, or
    is left as it was (the temporary file then replaces `path` with os.replace).

    durable: the file and the rename are fsynced (checkpoints, a run's files: they survive a
    power cut). An exception of `failures` (default OSError: disk full, permissions; a video
    encoder passes Exception) becomes a :class:`WriteError`; a MipNerfError from `write` and
    Ctrl+C pass through. The temporary file is removed in every case.
    """
    path = Path(path)
    try:
        tmp = temporary_path(path)
    except OSError as error:
        raise WriteError(path, _reason(error)) from None
    try:
        write(tmp)
        if durable:
            descriptor = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        os.replace(tmp, path)
    except MipNerfError:
        tmp.unlink(missing_ok=True)
        raise
    except failures as error:
        tmp.unlink(missing_ok=True)
        raise WriteError(path, _reason(error)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def write_bytes_atomically(path: Path, data: bytes, durable: bool = False) -> None:
    """`path` holds `data` whole or is left as it was (:func:`write_atomically`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            file.write(data)

    write_atomically(path, write, durable)


def write_text_atomically(path: Path, text: str, durable: bool = False) -> None:
    """`path` holds `text` (UTF-8) whole or is left as it was (:func:`write_atomically`)."""
    write_bytes_atomically(path, text.encode("utf-8"), durable)


def link_atomically(source: Path, target: Path) -> bool:
    """Make `target` a hard link to the file `source`, replacing `target` atomically and durably;
    False (and `target` as it was) where the file system has no hard links."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.link(source, tmp)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    _fsync_folder(target.parent)
    return True


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; not possible on every platform / file system."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True

"""Small file-system rules that several modules share: atomic writes and pid checks.

The run-folder and output-folder contracts (runs/checkpoints.py, output_folder.py,
data/staging.py) build on these; nothing here knows about runs or scenes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mipnerf_cli.errors import MipNerfError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which would race with the writer
# threads of `mipnerf convert` if it were read at every write.
UMASK = _read_umask()


def temporary_path(path: Path) -> Path:
    """A new empty hidden file next to `path` (same folder, so os.replace is atomic; same
    suffix, so writers that pick the format by name still do), with the usual permissions."""
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    os.chmod(name, 0o666 & ~UMASK)  # mkstemp creates 0600
    return Path(name)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """`path` holds `data` whole or is left as it was (temporary file + os.replace).

    MipNerfError "could not write PATH: REASON" when it cannot be written (disk full,
    permissions); the temporary file is removed, also on Ctrl+C.
    """
    path = Path(path)
    try:
        tmp = temporary_path(path)
    except OSError as error:
        raise MipNerfError(f"could not write {path}: {error.strerror or error}") from None
    try:
        with open(tmp, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise MipNerfError(f"could not write {path}: {error.strerror or error}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True

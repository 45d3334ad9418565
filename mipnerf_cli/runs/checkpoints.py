"""Checkpoint files that survive kills and disks filling up, and the ckpt/ folder's rules.

File format: a regular ``torch.save`` zip archive followed by a 40-byte trailer, the magic
``MIPNERF\\x01`` and the sha256 of the archive bytes. ``torch.load(path, weights_only=True)``
still reads such a file directly (zip readers look for the directory at the end and skip
the trailer); :func:`load_checkpoint` first checks the trailer, so a truncated or bit-flipped
file is reported instead of half-loaded. Writes are atomic and durable
(``io.files.write_bytes_atomically``: a temporary file in the same folder, fsynced, replaces
the target): a kill at any moment leaves either the old file or the new one, never a mixture.

Folder ``<run>/ckpt/``: ``step-NNNNNNN.pt`` (the newest `keep_checkpoints`) and ``last.pt``
(a hard link to the newest step file where the file system allows). What a checkpoint
holds (its payload) is :mod:`mipnerf_cli.runs.payload`'s business.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch

from mipnerf_cli.errors import MipNerfError, first_line
from mipnerf_cli.io.files import link_atomically, write_bytes_atomically
from mipnerf_cli.reporting import ReportArg, as_reporter
from mipnerf_cli.runs import payload as schema

MAGIC = b"MIPNERF\x01"
TRAILER_SIZE = len(MAGIC) + 32
STEP_FILE = re.compile(r"^step-(\d+)\.pt$")
LAST = "last.pt"
USE_ANOTHER = "; use an older checkpoint of the run"


# ----------------------------------------------------------------------------- save / load


def step_file_name(step: int) -> str:
    return f"step-{step:07d}.pt"


def serialize(payload: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint file: torch.save archive + magic + sha256(archive).

    The same values give the same bytes: pickle writes a string it has seen before as a
    reference only when it is the same object, so every string is interned first (a
    reloaded optimizer state holds its own copies of keys such as "step", and would
    otherwise pickle differently from the state it was loaded from)."""
    buffer = io.BytesIO()
    torch.save(_interned(payload), buffer)
    archive = buffer.getvalue()
    return archive + MAGIC + hashlib.sha256(archive).digest()


def _interned(value: Any) -> Any:
    """`value` with every str in its dicts, lists and tuples replaced by the interned copy."""
    if type(value) is str:
        return sys.intern(value)
    if type(value) is dict:
        return {_interned(k): _interned(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_interned(v) for v in value)
    return value


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically to `path` (see module docstring for the format)."""
    write_bytes_atomically(Path(path), serialize(payload), durable=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint; MipNerfError naming the file on any problem.

    Only plain data is unpickled (``weights_only=True``); a file holding other pickled
    objects is refused.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MipNerfError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise MipNerfError(f"checkpoint {path} is a folder; give a .pt file (e.g. {path}/ckpt/last.pt)") from None
    except OSError as error:
        raise MipNerfError(f"cannot read checkpoint {path}: {error.strerror or error}") from None

    has_trailer = len(data) > TRAILER_SIZE and data[-TRAILER_SIZE:-32] == MAGIC
    archive = data[:-TRAILER_SIZE] if has_trailer else data
    if has_trailer and hashlib.sha256(archive).digest() != data[-32:]:
        raise MipNerfError(f"checkpoint {path} is corrupted (checksum mismatch); use an older checkpoint of the run")
    try:
        payload = torch.load(io.BytesIO(archive), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported" in str(error):
            raise MipNerfError(
                f"checkpoint {path} contains pickled Python objects, not just tensors and plain data; "
                "refusing to load it (only weights_only checkpoints are accepted)"
            ) from None
        raise MipNerfError(f"checkpoint {path} is corrupted or truncated ({first_line(error)}){USE_ANOTHER}") from None
    except Exception as error:  # torch raises RuntimeError/EOFError/... for damaged archives
        raise MipNerfError(f"checkpoint {path} is corrupted or truncated ({first_line(error)}){USE_ANOTHER}") from None
    if not has_trailer:
        raise MipNerfError(
            f"checkpoint {path} has no checksum: it is truncated or was not written by `mipnerf train`{USE_ANOTHER}"
        )
    schema.check(payload, path)
    return payload


# ----------------------------------------------------------------------------- the ckpt folder


def step_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the step-*.pt files in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = STEP_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def load_newest_good(folder: Path, report: ReportArg = None) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint in `folder` that verifies, saying which bad ones were skipped.

    report: a `reporting.Reporter` or a callable taking each line (default: silent).

    last.pt normally is the newest; a step file with a higher number means a kill came
    between writing that file and updating last.pt, so that file wins. None when there
    are no checkpoints at all; MipNerfError when there are some but none is good.
    """
    problems: list[str] = []

    def attempt(path: Path) -> dict[str, Any] | None:
        try:
            return load_checkpoint(path)
        except MipNerfError as error:
            problems.append(str(error))
            return None

    last_path = folder / LAST
    last = attempt(last_path) if last_path.exists() else None
    last_step = schema.step_of(last) if last is not None else -1
    newer = [(step, path) for step, path in reversed(step_checkpoints(folder)) if step > last_step]
    older = [(step, path) for step, path in reversed(step_checkpoints(folder)) if step < last_step]
    found = None
    for _, path in newer:
        payload = attempt(path)
        if payload is not None:
            found = (payload, path)
            break
    if found is None and last is not None:
        found = (last, last_path)
    for _, path in older if found is None else []:
        payload = attempt(path)
        if payload is not None:
            found = (payload, path)
            break
    if found is None:
        if problems:
            raise MipNerfError(f"no usable checkpoint in {folder}: {problems[0]}")
        return None
    reporter = as_reporter(report)
    for problem in problems:
        reporter.warning(problem)
    if problems:
        reporter.info(f"falling back to {found[1]} (step {schema.step_of(found[0])})")
    return found


def save_step(folder: Path, payload: dict[str, Any], keep: int) -> Path:
    """Save step-N.pt and last.pt, then delete all but the newest `keep` step files.

    last.pt is a hard link to the step file where the file system allows it (no second
    copy on disk), else a second atomic write. With keep == 0 only last.pt is written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = serialize(payload)
    last = folder / LAST
    if keep == 0:
        write_bytes_atomically(last, data, durable=True)
        return last
    target = folder / step_file_name(schema.step_of(payload))
    write_bytes_atomically(target, data, durable=True)
    if not link_atomically(target, last):
        write_bytes_atomically(last, data, durable=True)
    for _, old in step_checkpoints(folder)[:-keep]:
        _remove_quietly(old)
    return target


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files left by a writer that was killed mid-save (call with the lock held)."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") and ".tmp-" in entry.name:
                _remove_quietly(entry)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

"""Writing a folder all at once: build it under a hidden temporary name, then rename it.

A crash, an error or Ctrl-C before the rename leaves only the hidden folder, which the
writer removes on the way out; readers never see a half-written scene.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from mipnerf_cli.errors import MipNerfError


def make_hidden_dir(parent: Path, stem: str) -> Path:
    """A new empty folder ``parent/.<stem>.partial-<pid>-<random>``. Its mode follows the
    umask (unlike ``tempfile.mkdtemp``'s 0700), because it becomes the user's output."""
    for _ in range(100):
        path = Path(parent) / f".{stem}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise MipNerfError(f"{parent}: cannot create a temporary folder")


def create_parents(path: Path) -> list[Path]:
    """Create the missing ancestors of ``path`` (not ``path`` itself), outermost first;
    returns those created so that :func:`remove_empty` can undo it."""
    missing = [p for p in Path(path).parents if not p.exists()]
    created = []
    for parent in reversed(missing):
        parent.mkdir()
        created.append(parent)
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove the given folders, innermost first, where they are still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


def remove_tree(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def cannot_write(out_dir: Path, error: OSError) -> MipNerfError:
    """The one-line error for an OSError met while creating or filling ``out_dir``."""
    where = error.filename or out_dir
    return MipNerfError(
        f"{out_dir}: cannot write there ({where}: {error.strerror or error}); choose an OUT_DIR you can write to"
    )


def write_generated_scene(out_dir: Path, marker: str, overwrite: bool, write: Callable[[Path], None]) -> Path:
    """Run ``write(folder)`` into a hidden folder beside ``out_dir`` and rename it into place.

    An existing non-empty ``out_dir`` is refused unless ``overwrite``, and even then only if it
    holds ``marker`` (a scene of the same kind), so that no other folder is deleted. A failed
    write leaves the disk as it was.
    """
    if out_dir.exists():
        if not out_dir.is_dir():
            raise MipNerfError(f"{out_dir}: exists and is not a folder; choose another OUT_DIR")
        if any(out_dir.iterdir()):
            if not overwrite:
                raise MipNerfError(f"{out_dir} already exists and is not empty; pass --overwrite to replace it")
            if not (out_dir / marker).is_file():
                raise MipNerfError(f"{out_dir} holds no {marker}; refusing to replace it, choose another OUT_DIR")
    created: list[Path] = []
    staging = None
    try:
        created = create_parents(out_dir)
        staging = make_hidden_dir(out_dir.parent, out_dir.name)
        write(staging)
        if out_dir.exists():
            old = out_dir.parent / f"{staging.name}.old"
            os.rename(out_dir, old)
            os.rename(staging, out_dir)
            remove_tree(old)
        else:
            os.rename(staging, out_dir)
        staging, created = None, []
    except OSError as error:
        raise cannot_write(out_dir, error) from None
    finally:
        remove_tree(staging)
        remove_empty(created)
    return out_dir

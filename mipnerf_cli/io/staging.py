"""Writing a folder all at once: build it under a hidden name beside its target, then rename it.

A ``StagedFolder`` is the one mechanism. Its hidden folder ``.<name>.partial-<pid>-<random>``
becomes the target on :meth:`StagedFolder.commit` (an earlier target is moved aside and
removed) or vanishes on :meth:`StagedFolder.discard`, together with the parent folders made
for it. A crash, an error or Ctrl-C before the rename leaves only the hidden folder, which the
writer removes on the way out, or the next writer of the same target does once the pid is
gone; readers never see a half-written folder.

Only an earlier output of ours is ever replaced: the command output folders
(:meth:`StagedFolder.open`: empty, or ``looks_like_ours``), the generated demo scenes
(:func:`write_generated_scene`: with ``--overwrite`` and the scene's marker file) and the
converter's scenes (its own checks, ``convert/multiscale.py``) check before they stage.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import pid_alive


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


class StagedFolder:
    """A hidden folder that becomes `target` on :meth:`commit`, or vanishes on :meth:`discard`."""

    def __init__(self, target: Path, path: Path, created_parents: list[Path]) -> None:
        self.target = target
        self.path = path
        self._created_parents = created_parents
        self._committed = False

    @classmethod
    def create(cls, target: Path) -> "StagedFolder":
        """The hidden folder beside `target` (its missing parents made too), with no check of
        what `target` holds; hidden folders of writers of `target` that were killed are removed.
        OSError when it cannot be made (the parents made are removed again)."""
        target = Path(os.path.abspath(target))
        _remove_stale_staging(target)
        created: list[Path] = []
        try:
            created = create_parents(target)
            path = make_hidden_dir(target.parent, target.name)
        except BaseException:
            remove_empty(created)
            raise
        return cls(target, path, created)

    @classmethod
    def open(cls, target: Path, looks_like_ours: Callable[[Path], bool], what: str) -> "StagedFolder":
        """Check that `target` may be (re)placed, then create the hidden folder next to it.

        `what` names the output in messages (e.g. "an eval result folder (results.json)").
        Raises MipNerfError before creating anything when `target` is a file or someone
        else's folder, and when its parent cannot be written.
        """
        target = Path(os.path.abspath(target))
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise MipNerfError(f"{target} exists and is not a folder; pass --out with a new or empty folder")
        if target.is_dir() and any(target.iterdir()) and not looks_like_ours(target):
            raise MipNerfError(
                f"{target} already holds other files (it is not {what}); pass --out with a new or empty folder"
            )
        try:
            return cls.create(target)
        except OSError as error:
            raise MipNerfError(
                f"cannot write to {target.parent}: {error.strerror or error}; pass --out DIR to write elsewhere"
            ) from None

    def commit(self) -> None:
        """Move the finished folder into place, replacing an earlier output (or a link to one)."""
        old = None
        if self.target.exists() or self.target.is_symlink():
            old = make_hidden_dir(self.target.parent, f"{self.target.name}.old")
            os.replace(self.target, old / self.target.name)
        os.replace(self.path, self.target)
        self._committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Remove the hidden folder and the parents created for it (nothing once committed)."""
        if not self._committed:
            shutil.rmtree(self.path, ignore_errors=True)
            remove_empty(self._created_parents)


def _remove_stale_staging(target: Path) -> None:
    """Delete hidden folders for `target` left by a writer that was killed (its pid is gone)."""
    if not target.parent.is_dir():
        return
    for prefix in (f".{target.name}.partial-", f".{target.name}.old.partial-"):
        for entry in target.parent.glob(f"{glob.escape(prefix)}*"):
            pid_text = entry.name[len(prefix) :].split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and not pid_alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)


def write_generated_scene(out_dir: Path, marker: str, overwrite: bool, write: Callable[[Path], None]) -> Path:
    """Run ``write(folder)`` into a staged folder for ``out_dir`` and commit it.

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
    try:
        staged = StagedFolder.create(out_dir)
        try:
            write(staged.path)
            staged.commit()
        finally:
            staged.discard()
    except OSError as error:
        raise cannot_write(out_dir, error) from None
    return out_dir

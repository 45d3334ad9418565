"""An output folder written all at once, that only ever replaces an earlier output of ours.

The commands build their output under a hidden sibling folder and rename it into place at
the end, so ``<run>/eval/<step>/`` or ``<run>/render/spheric/`` is either complete or
absent. An existing target is replaced only when it is empty or `looks_like_ours` says it
is an earlier output of the same command: ``--out ~/Documents`` must never delete a folder
of the user's.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import Callable

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import pid_alive
from mipnerf_cli.io.staging import create_parents, make_hidden_dir, remove_empty


class StagedFolder:
    """A hidden folder that becomes `target` on :meth:`commit`, or vanishes on :meth:`discard`."""

    def __init__(self, target: Path, path: Path, created_parents: list[Path]) -> None:
        self.target = target
        self.path = path
        self._created_parents = created_parents

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
        _remove_stale_staging(target)
        created: list[Path] = []
        try:
            created = create_parents(target)
            path = make_hidden_dir(target.parent, target.name)
        except OSError as error:
            remove_empty(created)
            raise MipNerfError(
                f"cannot write to {target.parent}: {error.strerror or error}; pass --out DIR to write elsewhere"
            ) from None
        return cls(target, path, created)

    def commit(self) -> None:
        """Move the finished folder into place, replacing an earlier output."""
        old = None
        if self.target.exists():
            old = make_hidden_dir(self.target.parent, f"{self.target.name}.old")
            os.replace(self.target, old / self.target.name)
        os.replace(self.path, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Remove the hidden folder and the parents created for it."""
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

"""Following a run that is still training: newer checkpoints, read-only."""

from __future__ import annotations

from pathlib import Path

import torch

from mipnerf_cli.errors import MipNerfError


class CheckpointWatcher:
    """Finds a newer good checkpoint in a run folder, read-only (no lock, nothing written).

    poll() returns (model, step, path) when a checkpoint with a new step has appeared, else None.
    A damaged or half-written file is skipped (the previous model stays).
    """

    def __init__(self, run_dir: Path, step: int, device: torch.device) -> None:
        self.folder = Path(run_dir) / "ckpt"
        self.step = step
        self.device = device
        self._seen: tuple | None = self._signature()

    def _signature(self) -> tuple | None:
        if not self.folder.is_dir():
            return None
        entries = []
        for entry in sorted(self.folder.glob("*.pt")):
            try:
                stat = entry.stat()
            except OSError:
                continue
            entries.append((entry.name, stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def poll(self):
        from mipnerf_cli.runs.checkpoints import load_newest_good
        from mipnerf_cli.runs.payload import model_from_checkpoint

        signature = self._signature()
        if signature == self._seen:
            return None
        self._seen = signature
        try:
            found = load_newest_good(self.folder, report=lambda message: None)
        except MipNerfError:
            return None
        if found is None or int(found[0].get("step", -1)) == self.step:
            return None
        payload, path = found
        try:
            model, _ = model_from_checkpoint(payload, source=path)
        except (MipNerfError, RuntimeError, KeyError, TypeError, ValueError):
            return None
        self.step = int(payload["step"])
        return model.to(self.device).eval(), self.step, path

"""The run folder and its files besides the checkpoints (rank 0 writes them).

``<out_dir>/<exp_name>/``: ``config.yaml`` (the resolved settings, paths relative to the
folder), ``ckpt/`` (:mod:`mipnerf_cli.runs.checkpoints`), ``metrics.jsonl`` (one JSON
record per line: ``split`` "train" every log_interval, "val" every check_interval),
``.lock`` (:mod:`mipnerf_cli.runs.lock`), and ``tensorboard/`` events when tensorboard is
installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mipnerf_cli.config_files import settings_for_file
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import write_text_atomically
from mipnerf_cli.settings import TrainSettings


class RunFiles:
    """Paths and writers of one run folder (rank 0 only)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.ckpt_dir = run_dir / "ckpt"
        self.config = run_dir / "config.yaml"
        self.metrics = run_dir / "metrics.jsonl"
        self._metrics_handle = None
        self._tensorboard = None

    def write_config(self, settings: TrainSettings) -> None:
        header = "# Resolved settings of this run (mipnerf train). Relative paths are relative to this folder.\n"
        body = yaml.safe_dump(settings_for_file(settings, self.dir), sort_keys=False)
        write_text_atomically(self.config, header + body, durable=True)

    def open_metrics(self, keep_until_step: int) -> None:
        """Start metrics.jsonl afresh, or keep the lines up to the resumed step."""
        kept = []
        if keep_until_step > 0 and self.metrics.exists():
            for line in self.metrics.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    if int(json.loads(line)["step"]) <= keep_until_step:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill
        write_text_atomically(self.metrics, "".join(kept), durable=True)
        self._metrics_handle = open(self.metrics, "a", encoding="utf-8")

    def open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is an optional extra
            return
        self._tensorboard = SummaryWriter(log_dir=str(self.dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if self._metrics_handle is not None:
            try:
                self._metrics_handle.write(json.dumps(record) + "\n")
                self._metrics_handle.flush()
            except OSError as error:  # a full disk: say so in one line, the checkpoints are intact
                handle, self._metrics_handle = self._metrics_handle, None
                try:
                    handle.close()
                except OSError:
                    pass
                raise MipNerfError(
                    f"could not write {self.metrics}: {error.strerror or error}; training stopped at step "
                    f"{record.get('step')}, free some space and run the same command to resume from the last checkpoint"
                ) from None
        if self._tensorboard is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "split"):
                    self._tensorboard.add_scalar(f"{prefix}/{key}", value, record["step"])
                elif isinstance(value, list):
                    for i, item in enumerate(value):
                        self._tensorboard.add_scalar(f"{prefix}/{key}_{i}", item, record["step"])

    def close(self) -> None:
        if self._metrics_handle is not None:
            self._metrics_handle.close()
            self._metrics_handle = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

"""Ctrl+C and SIGTERM during training: finish the step, save, stop (a second Ctrl+C leaves)."""

from __future__ import annotations

import os
import signal

from mipnerf_cli.reporting import SILENT, Reporter
from mipnerf_cli.stopping import StopSignals

STOP_SIGNALS = (None, "SIGINT", "SIGTERM")  # agreed between ranks by index (the largest wins)


class StopRequest(StopSignals):
    """First Ctrl+C (or SIGTERM): finish the step, save, stop. Second Ctrl+C: leave at once.

    Leaving at once is safe: checkpoints are written to temporary files and renamed, so
    an interrupted save leaves only a temporary file, removed at the next start.
    """

    def __init__(self, reporter: Reporter = SILENT) -> None:
        super().__init__()
        # Its `alert` channel (stderr on a terminal); ranks other than 0 get torchrun's copy
        # of the signal and pass SILENT.
        self.reporter = reporter

    def _say(self, message: str) -> None:
        self.reporter.alert(message)

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            self._say("interrupted again: leaving now without saving")
            os._exit(130)
        self.signal_name = signal.Signals(signum).name
        self._say(f"{self.signal_name}: stopping after this step and saving (Ctrl+C again to leave at once)")

"""Ctrl+C / SIGTERM for long renders (`mipnerf eval`, `mipnerf render`): stop between chunks.

While a `StopSignals` is entered, the first SIGINT or SIGTERM only records itself;
`requested` (passed to `core.render.render_rays` as `should_stop`) answers True from then
on, so the render stops at the next chunk and `check` turns the request into the
KeyboardInterrupt the CLI reports as "interrupted" (exit 130) after the staged output was
discarded. A second Ctrl+C raises KeyboardInterrupt at once. Training has its own
`training.StopRequest` (it saves the finished step instead of giving up).
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignals:
    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.signal_name is not None

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested."""
        if self.signal_name is not None:
            raise KeyboardInterrupt(self.signal_name)

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt("SIGINT")
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

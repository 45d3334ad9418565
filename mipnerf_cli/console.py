"""Progress and messages for the commands: a rich bar on a terminal, plain lines elsewhere.

Only the command layer uses this module; the library reports through the
`mipnerf_cli.reporting.Reporter` protocol, and the commands pass it `ConsoleReporter`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from mipnerf_cli.reporting import human_duration

console = Console()
err_console = Console(stderr=True)


def info(message: str) -> None:
    """A line for the user on stdout (rich markup allowed)."""
    console.print(message, highlight=False, soft_wrap=True)  # long paths stay on one line in logs


def _format_fields(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key} {value}")
    return "  ".join(parts)


class _EtaColumn(ProgressColumn):
    """The time left in human units ("2 h 13 min", "353 d"); "-" until the speed is known."""

    def render(self, task) -> Text:
        left = task.time_remaining
        return Text("-" if left is None else human_duration(left), style="progress.remaining")


class ProgressBar:
    """A progress bar over ``total`` units that also shows named live fields.

    On a terminal it is a rich bar with ETA; when stdout is not a terminal (CI, ``| tee``)
    it prints one plain line at most every ``line_interval_s`` seconds and at the end, so
    logs stay readable. Use as a context manager::

        with ProgressBar("train", total=1000, completed=start) as bar:
            bar.update(advance=1, loss=0.01, psnr=25.3)
            bar.log("validation psnr 24.1")
    """

    def __init__(
        self,
        description: str,
        total: int,
        completed: int = 0,
        enabled: bool = True,
        line_interval_s: float = 10.0,
        unit: str = "",
    ) -> None:
        self.description = description
        self.total = total
        self.completed = completed
        self.enabled = enabled
        self.interactive = enabled and console.is_terminal
        self.line_interval_s = line_interval_s
        self.unit = unit
        self.fields: dict[str, Any] = {}
        self._progress: Progress | None = None
        self._task = None
        self._last_line = 0.0
        self._start = time.perf_counter()
        self._start_completed = completed

    def __enter__(self) -> "ProgressBar":
        self._start = time.perf_counter()
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                _EtaColumn(),
                TextColumn("{task.fields[status]}"),
                console=console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                self.description, total=self.total, completed=self.completed, status=""
            )
        return self

    def update(self, advance: int = 1, **fields: Any) -> None:
        self.completed += advance
        self.fields.update(fields)
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, advance=advance, status=_format_fields(self.fields))
            return
        now = time.perf_counter()
        if now - self._last_line >= self.line_interval_s or self.completed >= self.total:
            self._last_line = now
            self._print_line()

    def _print_line(self) -> None:
        elapsed = time.perf_counter() - self._start
        done = self.completed - self._start_completed
        eta = ""
        if done > 0 and self.completed < self.total:
            eta = f"  eta {human_duration(elapsed / done * (self.total - self.completed))}"
        status = _format_fields(self.fields)
        print(f"{self.description} {self.completed}/{self.total}{eta}  {status}".rstrip(), flush=True)

    def log(self, message: str) -> None:
        """A line printed above the bar (or plainly)."""
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(message, highlight=False)
        else:
            print(message, flush=True)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
        sys.stdout.flush()


class ConsoleReporter:
    """The `reporting.Reporter` the commands pass to the library: `info` lines on stdout,
    `alert` lines on stderr (written plainly, so a signal handler can call it mid-bar),
    `progress` as a `ProgressBar` (disabled when `show_progress` is false, its log lines then
    printed as `info` lines)."""

    def __init__(self, show_progress: bool = True) -> None:
        self.show_progress = show_progress

    def info(self, message: str) -> None:
        info(message)

    def warning(self, message: str) -> None:
        info(f"warning: {message}")

    def alert(self, message: str) -> None:
        sys.stderr.write(f"\n{message}\n")
        sys.stderr.flush()

    def progress(
        self, description: str, total: int, completed: int = 0, *, line_interval_s: float = 10.0, unit: str = ""
    ):
        if not self.show_progress:
            from mipnerf_cli.reporting import quiet_progress

            return quiet_progress(self)
        return ProgressBar(description, total=total, completed=completed, line_interval_s=line_interval_s, unit=unit)

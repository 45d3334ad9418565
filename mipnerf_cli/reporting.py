"""How the library speaks to the user without knowing the terminal: a small Reporter protocol.

The library (training, evaluation, video, runs.checkpoints) takes a `Reporter` as an argument and
never imports rich; the command layer passes `console.ConsoleReporter` (rich bar on a
terminal, plain lines elsewhere), tests and other rank processes pass `SILENT` or a plain
callable (`as_reporter` turns one into a Reporter). Four channels:

- ``info(message)``: a line for the user (stdout on the terminal);
- ``warning(message)``: the same, as ``warning: <message>``;
- ``alert(message)``: an out-of-band line (stderr on the terminal), safe to call from a
  signal handler, e.g. "SIGTERM: stopping after this step";
- ``progress(description, total, completed)``: a context manager with
  ``update(advance, **fields)`` (live fields such as loss, psnr) and ``log(message)`` (a
  line above the bar).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Union


class Progress(Protocol):
    """A progress display over `total` units; a context manager."""

    def __enter__(self) -> "Progress": ...

    def __exit__(self, *exc: Any) -> None: ...

    def update(self, advance: int = 1, **fields: Any) -> None: ...

    def log(self, message: str) -> None: ...


class Reporter(Protocol):
    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def alert(self, message: str) -> None: ...

    def progress(
        self, description: str, total: int, completed: int = 0, *, line_interval_s: float = 10.0, unit: str = ""
    ) -> Progress: ...


class QuietProgress:
    """A progress that shows nothing; its `log` lines go to `log_to` (default: nowhere)."""

    def __init__(self, log_to: Callable[[str], None] | None = None) -> None:
        self._log_to = log_to

    def __enter__(self) -> "QuietProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, advance: int = 1, **fields: Any) -> None:
        return None

    def log(self, message: str) -> None:
        if self._log_to is not None:
            self._log_to(message)


class LineReporter:
    """Every message, as one string, to a callable (`print`, `list.append`, a logger); no bar."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def info(self, message: str) -> None:
        self._write(message)

    def warning(self, message: str) -> None:
        self._write(f"warning: {message}")

    def alert(self, message: str) -> None:
        self._write(message)

    def progress(
        self, description: str, total: int, completed: int = 0, *, line_interval_s: float = 10.0, unit: str = ""
    ) -> QuietProgress:
        return QuietProgress(log_to=self._write)


SILENT: Reporter = LineReporter(lambda message: None)

ReportArg = Union[Reporter, Callable[[str], None], None]


def as_reporter(report: ReportArg) -> Reporter:
    """A Reporter from what a caller passed: a Reporter as is, a callable as `LineReporter`, None as SILENT."""
    if report is None:
        return SILENT
    if all(hasattr(report, name) for name in ("info", "warning", "alert", "progress")):
        return report  # type: ignore[return-value]
    return LineReporter(report)  # type: ignore[arg-type]


def quiet_progress(reporter: Reporter) -> QuietProgress:
    """No bar, but the bar's `log` lines still reach the user as `info` lines."""
    return QuietProgress(log_to=reporter.info)


def human_duration(seconds: float) -> str:
    """A duration as people say it: "42 s", "12 min", "2 h 13 min", "3 d 4 h", "353 d"."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    if days < 10:
        return f"{days} d {hours} h" if hours else f"{days} d"
    return f"{days} d"

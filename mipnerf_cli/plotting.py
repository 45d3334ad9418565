"""`mipnerf plot`: the quality curve of a run (PSNR against steps and against training time),
or several runs' test-view PSNR side by side.

Drawn with OpenCV, which the package already depends on, so no plotting library is needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mipnerf_cli.errors import MipNerfError

PANEL_W, PANEL_H = 560, 380
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 20, 36, 48
# BGR colours: validation per scale, then the training curve
SCALE_COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]
TRAIN_COLOUR = (170, 170, 170)
MEAN_COLOUR = (20, 20, 20)
# BGR colours of the runs in a comparison, in the order given
RUN_COLOURS = [(20, 20, 20), (40, 39, 214), (180, 119, 31), (44, 160, 44), (14, 127, 255), (189, 103, 148)]


@dataclass
class Curves:
    """What metrics.jsonl holds, as columns."""

    train_step: list[int] = field(default_factory=list)
    train_time: list[float] = field(default_factory=list)
    train_psnr: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_time: list[float] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)
    val_levels: list[list[float]] = field(default_factory=list)


def read_metrics(path: Path) -> Curves:
    """Parse metrics.jsonl; a torn last line (a killed run) is skipped, other bad lines refused."""
    if not path.is_file():
        raise MipNerfError(f"{path} not found: give a run folder written by `mipnerf train`")
    curves = Curves()
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise MipNerfError(f"{path}:{number} is not a JSON line; the metrics file is damaged") from None
        psnr = record.get("psnr")
        if not isinstance(psnr, (int, float)) or not math.isfinite(psnr):
            continue
        if record.get("split") == "val":
            curves.val_step.append(int(record["step"]))
            curves.val_time.append(float(record.get("elapsed_s", 0.0)))
            curves.val_psnr.append(float(psnr))
            curves.val_levels.append(_by_scale(record, psnr))
        else:
            curves.train_step.append(int(record["step"]))
            curves.train_time.append(float(record.get("elapsed_s", 0.0)))
            curves.train_psnr.append(float(psnr))
    if not curves.train_step and not curves.val_step:
        raise MipNerfError(f"{path} has no PSNR records yet: train for at least log_interval steps")
    return curves


def _by_scale(record: dict, psnr: float) -> list[float]:
    """A val record's PSNR per scale index (NaN where a CPU validation left a scale out:
    its "levels" name the scales that "psnr_levels" holds)."""
    psnrs = [float(p) for p in record.get("psnr_levels", [psnr])]
    levels = record.get("levels") or list(range(len(psnrs)))
    row = [float("nan")] * (max(levels) + 1)
    for level, value in zip(levels, psnrs):
        row[level] = value
    return row


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _tick_label(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _draw_panel(image, origin_x: int, xs_series, ys_series, colours, widths, x_label: str, title: str, y_range) -> None:
    import cv2

    x0, y0 = origin_x + MARGIN_L, MARGIN_T
    x1, y1 = origin_x + PANEL_W - MARGIN_R, PANEL_H - MARGIN_B
    all_x = [x for xs in xs_series for x in xs]
    x_low, x_high = 0.0, max(all_x) if all_x else 1.0
    y_low, y_high = y_range

    def to_px(x: float, y: float) -> tuple[int, int]:
        px = x0 + (x - x_low) / max(x_high - x_low, 1e-9) * (x1 - x0)
        py = y1 - (y - y_low) / max(y_high - y_low, 1e-9) * (y1 - y0)
        return int(round(px)), int(round(py))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for tick in _nice_ticks(y_low, y_high):
        _, py = to_px(x_low, tick)
        cv2.line(image, (x0, py), (x1, py), (230, 230, 230), 1)
        cv2.putText(image, _tick_label(tick), (origin_x + 8, py + 4), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for tick in _nice_ticks(x_low, x_high):
        px, _ = to_px(tick, y_low)
        cv2.line(image, (px, y1), (px, y1 + 4), (60, 60, 60), 1)
        cv2.putText(image, _tick_label(tick), (px - 12, y1 + 18), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(image, (x0, y0), (x1, y1), (60, 60, 60), 1)
    for xs, ys, colour, width in zip(xs_series, ys_series, colours, widths):
        points = np.array([to_px(x, y) for x, y in zip(xs, ys)], dtype=np.int32)
        if len(points) == 1:
            cv2.circle(image, tuple(int(v) for v in points[0]), 3, colour, -1, cv2.LINE_AA)
        elif len(points) > 1:
            cv2.polylines(image, [points], False, colour, width, cv2.LINE_AA)
    cv2.putText(image, title, (x0, y0 - 12), font, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.putText(image, x_label, ((x0 + x1) // 2 - 30, PANEL_H - 12), font, 0.45, (20, 20, 20), 1, cv2.LINE_AA)


def plot_curves(curves: Curves, title: str) -> np.ndarray:
    """A (H, W, 3) uint8 BGR image: PSNR against steps (left) and training minutes (right)."""
    import cv2

    series_y, colours, widths, legend = [], [], [], []
    series_steps, series_minutes = [], []
    if curves.train_psnr:
        series_steps.append(curves.train_step)
        series_minutes.append([t / 60 for t in curves.train_time])
        series_y.append(curves.train_psnr)
        colours.append(TRAIN_COLOUR)
        widths.append(1)
        legend.append(("train (batch)", TRAIN_COLOUR))
    if curves.val_psnr:
        num_levels = max(len(levels) for levels in curves.val_levels)
        if num_levels > 1:
            for level in range(num_levels):
                ys = [levels[level] if level < len(levels) else float("nan") for levels in curves.val_levels]
                series_steps.append(curves.val_step)
                series_minutes.append([t / 60 for t in curves.val_time])
                series_y.append(ys)
                colour = SCALE_COLOURS[level % len(SCALE_COLOURS)]
                colours.append(colour)
                widths.append(1)
                legend.append((f"test 1/{2**level}", colour))
        series_steps.append(curves.val_step)
        series_minutes.append([t / 60 for t in curves.val_time])
        series_y.append(curves.val_psnr)
        colours.append(MEAN_COLOUR)
        widths.append(2)
        legend.append(("test (mean)" if num_levels > 1 else "test views", MEAN_COLOUR))
    finite = [y for ys in series_y for y in ys if math.isfinite(y)]
    y_range = (math.floor(min(finite)) - 1, math.ceil(max(finite)) + 1)
    image = np.full((PANEL_H + 40, 2 * PANEL_W, 3), 255, dtype=np.uint8)
    panel = np.full((PANEL_H, 2 * PANEL_W, 3), 255, dtype=np.uint8)
    _draw_panel(panel, 0, series_steps, series_y, colours, widths, "step", f"{title}: PSNR (dB)", y_range)
    _draw_panel(panel, PANEL_W, series_minutes, series_y, colours, widths, "training minutes", "PSNR (dB)", y_range)
    image[:PANEL_H] = panel
    x = MARGIN_L
    for text, colour in legend:
        cv2.line(image, (x, PANEL_H + 20), (x + 24, PANEL_H + 20), colour, 2, cv2.LINE_AA)
        cv2.putText(image, text, (x + 30, PANEL_H + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
        x += 40 + 9 * len(text)
    return image


def plot_comparison(runs: list[tuple[str, Curves]]) -> np.ndarray:
    """A (H, W, 3) uint8 BGR image: each run's test-view PSNR (the mean over the scales
    validated) against steps (left) and training minutes (right), one colour per run."""
    import cv2

    drawn = [(name, curves) for name, curves in runs if curves.val_psnr]
    if not drawn:
        raise MipNerfError("none of the runs has a test-view PSNR yet: train past check_interval steps")
    colours = [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(len(drawn))]
    steps = [curves.val_step for _, curves in drawn]
    minutes = [[t / 60 for t in curves.val_time] for _, curves in drawn]
    ys = [curves.val_psnr for _, curves in drawn]
    finite = [y for series in ys for y in series if math.isfinite(y)]
    y_range = (math.floor(min(finite)) - 1, math.ceil(max(finite)) + 1)
    rows = len(drawn)
    image = np.full((PANEL_H + 12 + 22 * rows, 2 * PANEL_W, 3), 255, dtype=np.uint8)
    panel = np.full((PANEL_H, 2 * PANEL_W, 3), 255, dtype=np.uint8)
    widths = [2] * len(drawn)
    _draw_panel(panel, 0, steps, ys, colours, widths, "step", "test-view PSNR (dB)", y_range)
    _draw_panel(panel, PANEL_W, minutes, ys, colours, widths, "training minutes", "test-view PSNR (dB)", y_range)
    image[:PANEL_H] = panel
    for row, ((name, curves), colour) in enumerate(zip(drawn, colours)):
        y = PANEL_H + 10 + 22 * row
        text = (
            f"{name}: {curves.val_psnr[-1]:.2f} dB at step {curves.val_step[-1]} ({curves.val_time[-1] / 60:.1f} min)"
        )
        cv2.line(image, (MARGIN_L, y), (MARGIN_L + 24, y), colour, 2, cv2.LINE_AA)
        cv2.putText(image, text, (MARGIN_L + 30, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return image

"""bench's results: the schema (`BenchResult`, `PhaseResult`; `--json` prints `to_dict()`) and
the rows it adds to BENCHMARKS.md's results table."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from mipnerf_cli.io.files import write_bytes_atomically


@dataclasses.dataclass
class PhaseResult:
    rays_per_s: float  # total rays / total time of the measured iterations
    rays_per_s_median: float  # median of the per-iteration rates
    samples_per_s: float
    gflops: float  # achieved, from the model's FLOP count
    flops_per_ray: int
    iterations: int
    rays_per_iteration: int
    seconds: float
    peak_memory_bytes: int
    mfu: Optional[float] = None  # achieved / the best measured matmul rate
    mlp_shape_utilisation: Optional[float] = None  # achieved / the matmul rate at the MLP's shape


@dataclasses.dataclass
class BenchResult:
    machine: str
    device: str
    config: str
    torch_version: str
    threads: int
    fast_path: dict[str, Any]
    flops: dict[str, Any]
    matmul_peak: Optional[dict[str, Any]]
    train: Optional[PhaseResult]
    render: Optional[PhaseResult]
    memory: list[dict[str, Any]]
    date: str
    load_average: Optional[list[float]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MARKDOWN_HEADER = (
    "| machine | config | what | anchor rays/s | ours rays/s | ratio | MFU | date | load | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)


def markdown_rows(result: BenchResult, anchor: dict[str, Optional[float]], command: str) -> str:
    """One table row per measured phase (train, render)."""
    rows = []
    for what in ("train", "render"):
        phase: Optional[PhaseResult] = getattr(result, what)
        if phase is None:
            continue
        anchor_rate = anchor.get(what)
        ratio = f"{phase.rays_per_s / anchor_rate:.2f}×" if anchor_rate else "–"
        mfu = f"{100 * phase.mfu:.0f}%" if phase.mfu is not None else "–"
        load = " ".join(f"{x:.1f}" for x in result.load_average) if result.load_average else "–"
        cells = [
            result.machine,
            result.config,
            what,
            f"{anchor_rate:.1f}" if anchor_rate else "–",
            f"{phase.rays_per_s:.1f}",
            ratio,
            mfu,
            result.date[:10],
            load,
            f"`{command}`",
        ]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n")
    return "".join(rows)


def append_markdown(path: Path, rows: str) -> None:
    """Add rows at the end of the results table of path (the table and file made if missing;
    the file is replaced whole, never left half-written)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
    header = MARKDOWN_HEADER.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == header[0].strip()), None)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += (["\n"] if lines else []) + ["## `mipnerf bench` rows\n", "\n", *header]
        end = len(lines)
    else:
        end = start + 1
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        if not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
    lines[end:end] = rows.splitlines(keepends=True)
    write_bytes_atomically(path, "".join(lines).encode("utf-8"))

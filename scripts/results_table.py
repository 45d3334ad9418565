#!/usr/bin/env python3
"""Print the per-scale table of a `mipnerf eval` results.json (the end of `make demo`).

python scripts/results_table.py out/demo-multiscale/eval/1000/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def number(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(results: dict) -> str:
    rows = [("scale", "size", "images", "PSNR", "SSIM")]
    for s in results["scales"]:
        name = "full" if s["factor"] == 1 else f"1/{s['factor']}"
        rows.append(
            (name, f"{s['width']}x{s['height']}", str(s["num_images"]), number(s["psnr"], 2), number(s["ssim"], 4))
        )
    if len(results["scales"]) > 1:
        average = results["average"]
        rows.append(
            ("average", "", str(len(results["images"])), number(average["psnr"], 2), number(average["ssim"], 4))
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: results_table.py RESULTS_JSON")
    path = Path(sys.argv[1])
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        sys.exit(f"error: cannot read {path}: {error}")
    print(f"{results['exp_name']}, step {results['step']}, {results['split']} split ({results['kind']} scene)")
    print(table(results))


if __name__ == "__main__":
    main()

"""`mipnerf eval`: render a checkpoint's test split, score it, write results.json.

- results.py  the results.json schema (EvalResults and its parts), per-scale means, read/write
- scoring.py  one image rendered and scored (PSNR, SSIM, LPIPS when available offline)
- run.py      evaluate(): the scene, the images to score, the ranks, the staged output folder
"""

from __future__ import annotations

from mipnerf_cli.evaluation.results import EvalResults, read_results
from mipnerf_cli.evaluation.run import evaluate

__all__ = ["evaluate", "EvalResults", "read_results"]

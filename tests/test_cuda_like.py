"""The CUDA path's precision policy (bf16 autocast) exercised on a CPU with native bf16."""

from __future__ import annotations

import pytest
import torch
from test_model import TINY, random_rays

from pathlib import Path
from mipnerf_cli.core.model import MipNerf

def _cpu_has_native_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


pytestmark = pytest.mark.skipif(
    not _cpu_has_native_bf16(),
    reason="this CPU has no native bf16 (AVX512-BF16/AMX); bf16 autocast on it may crash or be emulated",
)

BF16_RGB_TOL = 3e-2  # bf16 keeps 8 mantissa bits: ~4e-3 relative per op, a few layers deep


def test_forward_and_backward_under_bf16_autocast_match_float32():
    torch.manual_seed(0)
    model = MipNerf(TINY)
    rays = random_rays(32)
    reference = model(rays, randomized=False, white_bkgd=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        levels = model(rays, randomized=False, white_bkgd=True)
    for ref, got in zip(reference, levels, strict=True):
        assert got.rgb.dtype == torch.float32
        assert torch.isfinite(got.rgb).all()
        assert (got.rgb - ref.rgb).abs().max() < BF16_RGB_TOL
    levels[-1].rgb.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

"""Which prefiltered encoding pays on a CPU: mip-mapped tri-planes (Tri-MipRF) or a
multisampled hash grid (Zip-NeRF), forward + backward over M samples, same feature width.

    PYTHONPATH=. python benchmarks/encoding_choice.py [--samples 65536] [--threads 1]

The hash grid here is a measurement-only sketch in plain PyTorch (16 levels x 2 features,
2^17 entries, 6 multisamples per sample as Zip-NeRF takes, trilinear corners, the spatial
hash of Instant-NGP); the tri-plane is the package's `core.triplane`.
"""

from __future__ import annotations

import argparse
import time

import torch

from mipnerf_cli.core import triplane

PRIMES = (1, 2654435761, 805459861)


def hash_grid_lookup(table: torch.Tensor, points: torch.Tensor, base: int = 16, scale: float = 1.5) -> torch.Tensor:
    """table: (levels, T, F); points: (M, 3) in [0, 1]. Returns (M, levels * F)."""
    levels, size, _ = table.shape
    out = []
    for level in range(levels):
        res = int(base * scale**level)
        x = points * res
        lo = torch.floor(x).long()
        w = x - lo
        feat = 0
        for corner in range(8):
            offs = torch.tensor([(corner >> k) & 1 for k in range(3)])
            idx = lo + offs
            h = (idx[:, 0] * PRIMES[0]) ^ (idx[:, 1] * PRIMES[1]) ^ (idx[:, 2] * PRIMES[2])
            h = h % size
            cw = torch.prod(torch.where(offs.bool(), w, 1 - w), dim=-1, keepdim=True)
            feat = feat + cw * table[level][h]
        out.append(feat)
    return torch.cat(out, dim=-1)


def time_it(fn, rounds: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    m = args.samples
    g = torch.Generator().manual_seed(0)
    points = torch.rand(m, 3, generator=g) * 2 - 1
    level = torch.rand(m, generator=g) * 4

    planes = (torch.rand(3, 16, 128, 128, generator=g) * 0.2 - 0.1).requires_grad_()

    def tri():
        pyramid = triplane.mip_pyramid_from_planes(planes, triplane.num_mip_levels(128))
        feats = triplane.sample_mip_pyramid(pyramid, triplane.plane_coords_from_points(points), level)
        feats.square().sum().backward()

    def tri_point():
        feats = triplane.sample_mip_pyramid([planes], triplane.plane_coords_from_points(points), level * 0)
        feats.square().sum().backward()

    table = (torch.rand(16, 2**17, 2, generator=g) * 2e-4 - 1e-4).requires_grad_()
    offsets = torch.randn(6, 3, generator=g) * 0.002

    def hashed():
        multi = ((points[:, None, :] + offsets) * 0.5 + 0.5).clamp(0, 1).reshape(-1, 3)
        feats = hash_grid_lookup(table, multi).view(m, 6, -1).mean(1)
        feats.square().sum().backward()

    for name, fn in (("tri-plane, mip-mapped (48 ch)", tri), ("tri-plane, point samples", tri_point),
                     ("hash grid x6 multisamples (32 ch)", hashed)):  # fmt: skip
        seconds = time_it(fn)
        print(f"{name:36s} {seconds * 1e3:8.1f} ms  {m / seconds / 1e6:6.2f} M samples/s (fwd+bwd)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Time google/mipnerf's JAX reference on this CPU with bench's workload: train steps and renders.

    python benchmarks/reference_jax.py MIRROR_GIT_DIR [--batch 256] [--chunk 2048] [--steps 3]

Run it with a Python that has jax, flax, optax and gin-config (for example a venv made with
`pip install jax==0.10.2 flax optax gin-config`; benchmarks/side_by_side.py takes it as
--jax-python). MIRROR_GIT_DIR is the git directory of a copy of google/mipnerf (a bare mirror
or a clone's .git): its internal/mip.py, internal/math.py and internal/models.py are read from
there at run time into a temporary folder, never copied into this repo. The reference's
internal/utils.py needs the long-gone flax.optim, so a stand-in module gives models.py the one
helper it uses (`namedtuple_map`).

The workload is `mipnerf bench`'s and the anchor's: the paper config (the reference's
defaults: 128 + 128 samples, 8x256 MLP, view branch 128), rays from cameras on a sphere of
radius 4 aimed at random points in [-1, 1]^3, near 2, far 6, cone radius of Blender's
800-pixel camera; a training step is the reference's loss (both levels, coarse x0.1, no
weight decay) and its gradient through `jax.value_and_grad`, then Adam at 5e-4 (optax; the
reference used flax.optim.Adam), jitted as one function; rendering is the reference model's
deterministic pass (randomized=False, white background) over one chunk, jitted. Compilation
happens in the unmeasured warm-up. Prints one JSON line last:
{"train_rays_per_s": ..., "render_rays_per_s": ..., "jax_version": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = ("internal/mip.py", "internal/math.py", "internal/models.py")
STAND_IN_UTILS = '''"""Stand-in for the reference's internal/utils.py (which needs flax.optim): what models.py uses."""
import collections

Rays = collections.namedtuple("Rays", ("origins", "directions", "viewdirs", "radii", "lossmult", "near", "far"))


def namedtuple_map(fn, tup):
    return type(tup)(*map(fn, tup))
'''


def extract(mirror: str) -> Path:
    """The reference's modules in a temporary package folder `internal/`."""
    root = Path(tempfile.mkdtemp(prefix="reference_jax_"))
    (root / "internal").mkdir()
    for name in FILES:
        text = subprocess.run(
            ["git", "--git-dir", mirror, "show", f"HEAD:{name}"], check=True, capture_output=True, text=True
        ).stdout
        (root / name).write_text(text)
    (root / "internal" / "__init__.py").write_text("")
    (root / "internal" / "utils.py").write_text(STAND_IN_UTILS)
    return root


def make_rays(np, Rays, n: int, seed: int):
    """bench's workload rays (benchmarks/../mipnerf_cli/bench/workload.py: anchor_rays), in numpy."""
    rng = np.random.default_rng(seed)
    origins = rng.standard_normal((n, 3)).astype(np.float32)
    origins = origins / np.linalg.norm(origins, axis=-1, keepdims=True) * 4.0
    target = ((rng.random((n, 3)) - 0.5) * 2.0).astype(np.float32)
    directions = target - origins
    viewdirs = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    ones = np.ones((n, 1), np.float32)
    radius = 0.5 / 1111.0 * 2 / 12**0.5
    return Rays(origins, directions, viewdirs, ones * radius, ones, ones * 2.0, ones * 6.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mirror", help="git directory of a copy of google/mipnerf")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=3, help="measured iterations of each phase")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured iterations after compiling")
    args = parser.parse_args()

    sys.path.insert(0, str(extract(args.mirror)))
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from internal import models, utils

    model = models.MipNerfModel()
    train_rays = jax.tree_util.tree_map(jnp.asarray, make_rays(np, utils.Rays, args.batch, 1))
    render_rays = jax.tree_util.tree_map(jnp.asarray, make_rays(np, utils.Rays, args.chunk, 2))
    pixels = jnp.asarray(np.random.default_rng(3).random((args.batch, 3), dtype=np.float32))
    key = jax.random.PRNGKey(0)
    variables = model.init(key, rng=key, rays=utils.namedtuple_map(lambda x: x[:2], train_rays),
                           randomized=False, white_bkgd=True)  # fmt: skip
    optimizer = optax.adam(5e-4)
    opt_state = optimizer.init(variables)

    def loss_fn(variables, key, rays, pixels):
        levels = model.apply(variables, key, rays, randomized=True, white_bkgd=True)
        mask = rays.lossmult
        losses = jnp.array([(mask * (rgb - pixels) ** 2).sum() / mask.sum() for rgb, _, _ in levels])
        return 0.1 * jnp.sum(losses[:-1]) + losses[-1]

    @jax.jit
    def train_step(variables, opt_state, key, rays, pixels):
        key, step_key = jax.random.split(key)
        loss, grad = jax.value_and_grad(loss_fn)(variables, step_key, rays, pixels)
        updates, opt_state = optimizer.update(grad, opt_state, variables)
        return optax.apply_updates(variables, updates), opt_state, key, loss

    @jax.jit
    def render(variables, rays):
        return model.apply(variables, key, rays, randomized=False, white_bkgd=True)[-1]

    def timed(run, iterations: int) -> float:
        tic = time.perf_counter()
        for _ in range(iterations):
            jax.block_until_ready(run())
        return time.perf_counter() - tic

    state = {"variables": variables, "opt_state": opt_state, "key": key}

    def one_step():
        state["variables"], state["opt_state"], state["key"], loss = train_step(
            state["variables"], state["opt_state"], state["key"], train_rays, pixels
        )
        return loss

    compile_tic = time.perf_counter()
    timed(one_step, 1 + args.warmup)
    train_compile_s = time.perf_counter() - compile_tic
    train_s = timed(one_step, args.steps)
    timed(lambda: render(state["variables"], render_rays), 1 + args.warmup)
    render_s = timed(lambda: render(state["variables"], render_rays), args.steps)
    print(
        json.dumps(
            {
                "train_rays_per_s": args.batch * args.steps / train_s,
                "render_rays_per_s": args.chunk * args.steps / render_s,
                "jax_version": jax.__version__,
                "devices": [str(d) for d in jax.devices()],
                "train_warmup_s": train_compile_s,
                "batch": args.batch,
                "chunk": args.chunk,
                "steps": args.steps,
            }
        )
    )


if __name__ == "__main__":
    main()

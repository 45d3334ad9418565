"""No hidden process-wide state in the fast path: its worker threads belong to a pool that is
joined, and the thread count / allocator / TF32 switches are set by `Runtime.apply()` only."""

from __future__ import annotations

import threading

import torch
from tiny import FAST_CONFIG as TINY
from tiny import model_for, rays_and_pixels
from tiny_runs import one_cpu_thread  # noqa: F401  (autouse)

from mipnerf_cli import runtime as runtime_module
from mipnerf_cli.core import fast
from mipnerf_cli.core.render import render_rays


def fast_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mipnerf-fast")]


def test_a_call_without_a_pool_leaves_no_thread_behind():
    model = model_for(TINY)
    rays, pixels = rays_and_pixels(12)
    before = len(fast_threads())
    fast.render_last_level(model, rays, white_bkgd=True, options=fast.FastOptions(micro_batch=2, workers=2))
    fast.forward_backward(
        model, rays, pixels, rays.lossmult, randomized=False, white_bkgd=True, coarse_loss_mult=0.1,
        options=fast.FastOptions(micro_batch=3, workers=2),
    )  # fmt: skip
    assert len(fast_threads()) == before


def test_the_runtimes_pool_is_used_and_joined_when_it_closes():
    model = model_for(TINY)
    rays, _ = rays_and_pixels(256)  # chunks of 128 rays: 4 blocks of 32 over 2 workers
    before = set(fast_threads())
    previous = torch.get_num_threads()
    try:
        with runtime_module.resolve("cpu", cpu_threads=2) as runtime:
            options = runtime.render_options(model)
            assert options["fast_path"] is True and options["fast_pool"] is runtime.pool
            out = render_rays(model, rays, 128, white_bkgd=True, **options)
            started = set(fast_threads()) - before
            assert len(started) == 2  # the pool's two workers, kept for the next chunk
            render_rays(model, rays, 128, white_bkgd=True, **options)
            assert set(fast_threads()) - before == started  # reused, not started again
        assert not any(t.is_alive() for t in started)  # joined when the `with` ended
    finally:
        torch.set_num_threads(previous)
    assert out["rgb"].shape == (256, 3)


def test_only_apply_sets_the_thread_count():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert runtime_module.pick_device("cpu") == torch.device("cpu")
        assert torch.get_num_threads() == 1  # choosing a device sets nothing
        runtime = runtime_module.Runtime(device=torch.device("cpu"), cpu_threads=2)
        assert torch.get_num_threads() == 1  # nor does building a policy
        runtime.apply()
        assert torch.get_num_threads() == 2
        runtime_module.resolve("cpu", cpu_threads=1)  # resolve applies what it resolved
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_only_a_cpu_fast_path_policy_tunes_the_allocator(monkeypatch):
    import ctypes

    calls = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name: calls.append(name))
    model = model_for(TINY)
    rays, pixels = rays_and_pixels(4)
    fast.render_last_level(model, rays, white_bkgd=True)
    fast.forward_backward(model, rays, pixels, rays.lossmult, randomized=False, white_bkgd=True, coarse_loss_mult=0.1)
    runtime_module.Runtime(device=torch.device("cpu"), fast_path=False).apply()
    assert calls == []  # neither a fast-path call nor a plain-path policy touches glibc
    runtime_module.Runtime(device=torch.device("cpu")).apply()
    assert calls == ["libc.so.6"]  # a CPU fast-path policy does, when applied

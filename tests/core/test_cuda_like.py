"""The CUDA path's policy (bf16 autocast, the plain step, the plain render) exercised on a CPU
with native bf16: forward/backward, training steps, validation, eval and render."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import MODEL_CONFIG as TINY
from tiny import random_rays
from tiny import tiny_run_settings as tiny
from tiny_runs import BLENDER, MULTISCALE, make_run, one_cpu_thread  # noqa: F401  (autouse)

from mipnerf_cli import runtime as runtime_module
from mipnerf_cli.core.models.mipnerf import MipNerf

pytestmark = pytest.mark.skipif(
    not runtime_module.cpu_has_native_bf16(),
    reason="this CPU has no native bf16 (AVX512-BF16/AMX); bf16 autocast on it may crash or be emulated",
)

BF16_RGB_TOL = 3e-2  # bf16 keeps 8 mantissa bits: ~4e-3 relative per op, a few layers deep
CPU = torch.device("cpu")


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


def test_cuda_like_policy_is_the_cuda_one():
    policy = runtime_module.cuda_like()
    model = MipNerf(TINY)
    assert policy.autocast_dtype == torch.bfloat16 and not policy.uses_fast_path(model)
    assert policy.render_options(model) == {"device": CPU, "autocast_dtype": torch.bfloat16, "fast_path": False}
    assert runtime_module.resolve("cpu").uses_fast_path(model)  # a real CPU command stays float32 + fast


def _train_losses(settings, policy, steps: int) -> list[float]:
    from mipnerf_cli import distributed, training
    from mipnerf_cli.data import load_scene

    images = load_scene(MULTISCALE, "train", multiscale=True)
    model = training.build_model(settings)
    optimizer = training.build_optimizer(model, settings, policy)
    assert all(group["fused"] is (True if policy.sync_free_step else None) for group in optimizer.param_groups)
    losses = []
    for step in range(1, steps + 1):
        rays, pixels, noise, _ = training.step_batch(settings, step, images, model, CPU, distributed.SINGLE)
        stats = training.train_step(model, optimizer, rays, pixels, 5e-3, settings, None, policy, noise=noise).get()
        assert stats.finite
        losses.append(stats.loss)
    return losses


def test_training_steps_under_the_cuda_like_policy_follow_float32(tmp_path):
    settings = tiny(tmp_path, data=MULTISCALE, multiscale=True, batch_size=256)
    steps = 30
    bf16 = _train_losses(settings, runtime_module.cuda_like(), steps)
    fp32 = _train_losses(settings, runtime_module.Runtime(device=CPU, fast_path=False), steps)
    assert all(torch.isfinite(torch.tensor(bf16)))
    first, last = sum(bf16[:5]) / 5, sum(bf16[-5:]) / 5
    assert last < 0.8 * first  # it learns
    # ... about as float32 does over the same batches and noise
    assert abs(last - sum(fp32[-5:]) / 5) < 0.1 * first
    assert abs(bf16[0] - fp32[0]) < 0.02 * fp32[0]  # the same initial weights and batch


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A short multiscale run trained under the cuda-like policy, validating one view at every scale."""
    from mipnerf_cli import training

    out = tmp_path_factory.mktemp("cuda-like")
    settings = tiny(
        out,
        data=MULTISCALE,
        multiscale=True,
        batch_size=256,
        max_steps=8,
        check_interval=8,
        log_interval=4,
        val_views=1,
        val_chunk=512,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training.loop, "from_settings", lambda settings, device=None: runtime_module.cuda_like())
        result = training.train(settings, report=lambda message: None, show_progress=False)
    assert result.step == 8
    return settings.run_dir


def test_validation_during_a_cuda_like_training_is_finite(trained_run):
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert len(val) == 1 and len(val[0]["psnr_levels"]) == 4
    assert all(5.0 < p < 60.0 for p in val[0]["psnr_levels"])
    assert all(r["loss"] == r["loss"] and r["loss"] < 1.0 for r in records if r["split"] == "train")


def _eval(run, policy, monkeypatch):
    from mipnerf_cli import evaluation
    from mipnerf_cli.settings import EvalSettings

    monkeypatch.setattr(evaluation.run, "from_settings", lambda settings, device=None: policy)
    results, _ = evaluation.evaluate(
        EvalSettings(run=run, limit=1, device="cpu", progress=False, out=run / f"eval-{policy.autocast_dtype}")
    )
    return [scale.psnr for scale in results.scales]


def test_eval_under_the_cuda_like_policy_matches_validation_and_float32(trained_run, monkeypatch):
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    validation = next(r for r in records if r["split"] == "val")["psnr_levels"]
    cuda_like = _eval(trained_run, runtime_module.cuda_like(), monkeypatch)
    # Validation and eval render one checkpoint's view with one policy: the same PSNR.
    assert cuda_like == pytest.approx(validation, abs=1e-4)
    fp32 = _eval(trained_run, runtime_module.Runtime(device=CPU), monkeypatch)
    assert cuda_like == pytest.approx(fp32, abs=0.3)  # bf16 vs float32 renders of the same weights


def test_eval_psnr_equals_validation_psnr_under_the_cpu_policy(tmp_path, monkeypatch):
    """Same checkpoint, same view, same (float32 fast-path) policy: validation's number is eval's."""
    from mipnerf_cli import training

    settings = tiny(
        tmp_path,
        data=MULTISCALE,
        multiscale=True,
        batch_size=128,
        max_steps=4,
        check_interval=4,
        log_interval=4,
        val_views=1,
    )
    training.train(settings, report=lambda message: None, show_progress=False)
    records = [json.loads(line) for line in (settings.run_dir / "metrics.jsonl").read_text().splitlines()]
    validation = next(r for r in records if r["split"] == "val")["psnr_levels"]
    assert _eval(settings.run_dir, runtime_module.resolve("cpu"), monkeypatch) == pytest.approx(validation, abs=1e-4)


def test_render_under_the_cuda_like_policy_is_close_to_float32(trained_run):
    from mipnerf_cli.core.render import render_rays
    from mipnerf_cli.runs.trained import load_trained_model

    trained = load_trained_model(None, trained_run / "ckpt" / "last.pt", CPU)
    rays = random_rays(96)
    bf16 = render_rays(trained.model, rays, 40, True, **runtime_module.cuda_like().render_options(trained.model))
    fp32 = render_rays(trained.model, rays, 40, True, **runtime_module.resolve("cpu").render_options(trained.model))
    for key in ("rgb", "acc"):
        assert torch.isfinite(bf16[key]).all()
        assert (bf16[key] - fp32[key]).abs().max() < BF16_RGB_TOL


def test_a_nonfinite_loss_found_a_step_late_stops_as_at_once(tmp_path, monkeypatch):
    """The sync-free step reads step k's loss after queuing step k+1; the stop is the same:
    step k named, nothing saved after the last good checkpoint."""
    from mipnerf_cli import training
    from mipnerf_cli.core import losses
    from mipnerf_cli.errors import MipNerfError
    from mipnerf_cli.runs import checkpoints

    monkeypatch.setattr(training.loop, "from_settings", lambda settings, device=None: runtime_module.cuda_like())
    settings = tiny(tmp_path, max_steps=3, check_interval=3, log_interval=3)
    training.train(settings, report=lambda message: None, show_progress=False)
    last = settings.run_dir / "ckpt" / "last.pt"
    before = last.read_bytes()
    real, calls = losses.mipnerf_loss, []

    def poisoned(*args, **kwargs):  # step 5 (the second of the resumed run) only
        calls.append(1)
        loss, level = real(*args, **kwargs)
        return (loss * float("nan") if len(calls) == 2 else loss), level

    monkeypatch.setattr(losses, "mipnerf_loss", poisoned)
    with pytest.raises(MipNerfError, match=r"loss became nan at step 5.*last good checkpoint is .*last\.pt"):
        training.train(
            tiny(tmp_path, max_steps=9, check_interval=3, log_interval=3, resume_path="auto"),
            report=lambda message: None,
            show_progress=False,
        )
    assert len(calls) == 3  # step 6 was queued before step 5's loss was read
    assert last.read_bytes() == before and checkpoints.load_checkpoint(last)["step"] == 3


def test_the_fused_step_skips_a_nonfinite_update_on_the_device(tmp_path):
    from mipnerf_cli import training
    from mipnerf_cli.data import load_scene

    settings = tiny(tmp_path)
    policy = runtime_module.cuda_like()
    model = training.build_model(settings)
    optimizer = training.build_optimizer(model, settings, policy)
    rays, pixels = load_scene(BLENDER, "train").pixel_rays(torch.arange(32))
    assert training.train_step(model, optimizer, rays, pixels, 1e-3, settings, None, policy).get().finite
    before = [p.detach().clone() for p in model.parameters()]
    moments = {k: v.clone() for k, v in optimizer.state[next(model.parameters())].items()}
    pending = training.train_step(model, optimizer, rays, pixels * float("nan"), 1e-3, settings, None, policy)
    assert isinstance(pending, training.PendingStats)
    stats = pending.get()
    assert not stats.finite and len(stats.level_mses) == 2
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    after = optimizer.state[next(model.parameters())]
    assert all(torch.equal(moments[k], after[k]) for k in moments)  # step count and moments too


def test_mipnerf_render_under_the_cuda_like_policy_writes_the_float32_frames(trained_run, tmp_path, monkeypatch):
    """`mipnerf render`'s library call (video.render_path) under the cuda-like policy: the
    same frames as float32 within bf16's error (8-bit PNGs: a few levels)."""
    import imageio.v3 as iio
    import numpy as np

    from mipnerf_cli.rendering import video
    from mipnerf_cli.settings import RenderSettings

    frames = {}
    for name, policy in (("bf16", runtime_module.cuda_like()), ("fp32", runtime_module.resolve("cpu"))):
        monkeypatch.setattr(video, "from_settings", lambda settings, device=None, policy=policy: policy)
        result = video.render_path(
            RenderSettings(
                run=trained_run,
                device="cpu",
                progress=False,
                frames=2,
                resolution="16x12",
                format="png",
                out=tmp_path / name,
            )
        )
        frames[name] = iio.imread(result.folder / "frames" / "rgb_0001.png").astype(np.int16)
    assert frames["bf16"].shape == (12, 16, 3)
    assert np.abs(frames["bf16"] - frames["fp32"]).max() <= 255 * BF16_RGB_TOL

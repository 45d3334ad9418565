"""The trainer's checkpoint payload: what it stores, and that older payloads still resume."""

from __future__ import annotations

import torch
from tiny import tiny_settings
from tiny_runs import BLENDER, STEP, make_run, one_cpu_thread  # noqa: F401  (fixture)

from mipnerf_cli import training
from mipnerf_cli.runs import checkpoints
from mipnerf_cli.settings import resolve_train_settings


def test_a_new_checkpoint_stores_no_rng_state(tmp_path):
    run = make_run(tmp_path / "out", multiscale=False)
    payload = checkpoints.load_checkpoint(run / "ckpt" / "last.pt")
    assert payload["step"] == STEP and "model" in payload and "optimizer" in payload
    assert "rng" not in payload


def test_an_old_checkpoint_with_an_rng_entry_still_loads_and_resumes(tmp_path):
    run = make_run(tmp_path / "out", multiscale=False)
    last = run / "ckpt" / "last.pt"
    old = checkpoints.load_checkpoint(last)
    old["rng"] = {"torch_cpu": torch.get_rng_state()}  # what checkpoints held before
    for path in sorted((run / "ckpt").iterdir()):
        path.unlink()
    checkpoints.save_step(run / "ckpt", old, keep=1)
    assert "rng" in checkpoints.load_checkpoint(last)

    settings = resolve_train_settings(
        None,
        tiny_settings(
            data=BLENDER,
            out_dir=tmp_path / "out",
            exp_name="tiny",
            batch_size=32,
            max_steps=STEP + 1,
            check_interval=100,
            val_views=0,
        ),
    )
    lines = []
    result = training.train(settings, report=lines.append, show_progress=False)
    assert result.step == STEP + 1 and result.interrupted_by is None
    assert f"resuming from {last} at step {STEP}" in lines
    resumed = checkpoints.load_checkpoint(last)
    assert resumed["step"] == STEP + 1 and "rng" not in resumed
    assert not all(torch.equal(resumed["model"][k], old["model"][k]) for k in old["model"])  # it trained a step

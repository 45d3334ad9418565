"""Real processes: SIGKILL after a save then resume is bit-identical; Ctrl+C saves and exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from golden import BLENDER
from processes import MIPNERF, start, wait_until
from tiny import WIDER, tiny_config

from mipnerf_cli.runs import checkpoints

# The grid model (`model_family: trimip`), tiny.
TRIMIP = {
    "model_family": "trimip",
    "trimip": {
        "plane_resolution": 16,
        "plane_features": 4,
        "hidden": 16,
        "geo_features": 7,
        "deg_view": 2,
        "march_steps": 32,
        "occupancy_resolution": 8,
        "occupancy_interval": 2,
        "occupancy_warmup": 4,
    },
}


def start_training(tmp_path: Path, exp_name: str, *extra: str, values: dict | None = None) -> subprocess.Popen:
    """`values`: more settings for the config file (e.g. `TRIMIP`)."""
    config = tiny_config(
        tmp_path / "tiny.yaml",
        model=WIDER,
        batch_size=512,
        lr_init=5.0e-3,
        lr_final=5.0e-4,
        lr_delay_steps=0,
        log_interval=1,
        val_views=0,
        **(values or {}),
    )
    return start(
        *MIPNERF,
        "train",
        "--config",
        str(config),
        "--data",
        str(BLENDER),
        "--out-dir",
        str(tmp_path / "out"),
        "--exp-name",
        exp_name,
        "--no-progress",
        *extra,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def trained_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def settings_like_start(tmp_path: Path, exp_name: str, **flags):
    """The settings `start_training` gives its subprocess, for running the same training in-process."""
    from mipnerf_cli.settings import resolve_train_settings

    overrides = {"data": BLENDER, "out_dir": tmp_path / "out", "exp_name": exp_name, **flags}
    return resolve_train_settings(tmp_path / "tiny.yaml", overrides)


def train_in_process(settings, messages=None):
    from mipnerf_cli.training import train

    return train(settings, report=(messages.append if messages is not None else lambda m: None), show_progress=False)


def test_sigkill_after_a_save_then_resume_is_bit_identical(tmp_path):
    killed = start_training(tmp_path, "killed", "--max-steps", "60", "--check-interval", "10")
    ckpt_dir = tmp_path / "out" / "killed" / "ckpt"
    wait_until(lambda: (ckpt_dir / "step-0000020.pt").exists(), killed, 60, "the save of step 20", 0.002)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    survivor, survivor_path = checkpoints.load_newest_good(ckpt_dir, report=lambda m: None)
    assert 20 <= survivor["step"] < 60, "the kill came too late to test anything"
    assert (tmp_path / "out" / "killed" / ".lock").exists()  # left behind by the killed process

    messages = []
    resumed = settings_like_start(tmp_path, "killed", max_steps=60, check_interval=10)
    assert train_in_process(resumed, messages).step == 60
    assert f"resuming from {survivor_path} at step {survivor['step']}" in messages
    assert any("took over a stale lock" in m for m in messages)
    train_in_process(settings_like_start(tmp_path, "straight", max_steps=60, check_interval=10))

    a = checkpoints.load_checkpoint(tmp_path / "out" / "straight" / "ckpt" / "last.pt")
    b = checkpoints.load_checkpoint(ckpt_dir / "last.pt")
    assert a["step"] == b["step"] == 60
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(state_a[i][k], state_b[i][k]) for i in state_a for k in state_a[i])
    # Steps logged after the last save were dropped on resume and logged again once.
    assert trained_steps(tmp_path / "out" / "killed") == list(range(1, 61))


@pytest.mark.parametrize("family", ["mipnerf", "trimip"])
def test_ctrl_c_saves_once_and_exits_130(tmp_path, family):
    values = TRIMIP if family == "trimip" else None
    trainer = start_training(tmp_path, "run", "--max-steps", "100000", "--check-interval", "100000", values=values)
    run_dir = tmp_path / "out" / "run"
    wait_until(lambda: len(trained_steps(run_dir)) >= 3, trainer, 60, "3 steps", 0.002)
    trainer.send_signal(signal.SIGINT)
    code, out, err = finish(trainer)
    assert code == 130, err
    assert "Traceback" not in err and "stopping after this step and saving" in err
    saved = checkpoints.load_checkpoint(run_dir / "ckpt" / "last.pt")
    assert saved["step"] >= 3 and f"stopped at step {saved['step']}" in out
    assert sorted(p.name for p in (run_dir / "ckpt").iterdir()) == ["last.pt", f"step-{saved['step']:07d}.pt"]
    assert not (run_dir / ".lock").exists()
    assert max(trained_steps(run_dir)) == saved["step"]
    assert saved["model_family"] == family
    if family == "trimip":  # the grid model continues from the step it saved
        step = saved["step"]
        settings = settings_like_start(tmp_path, "run", max_steps=step + 2, check_interval=100000, resume_path="auto")
        assert train_in_process(settings).step == step + 2


def test_second_ctrl_c_leaves_at_once_without_damage(tmp_path):
    trainer = start_training(tmp_path, "run", "--max-steps", "100000", "--check-interval", "5")
    run_dir = tmp_path / "out" / "run"
    wait_until(lambda: (run_dir / "ckpt" / "step-0000010.pt").exists(), trainer, 60, "the save of step 10", 0.002)
    trainer.send_signal(signal.SIGINT)
    trainer.send_signal(signal.SIGINT)
    code, _, err = finish(trainer)
    assert code == 130 and "Traceback" not in err
    # Whatever the second signal interrupted, the newest checkpoint that loads is a good one.
    payload, path = checkpoints.load_newest_good(run_dir / "ckpt", report=lambda m: None)
    assert payload["step"] >= 10
    assert all(torch.isfinite(t).all() for t in payload["model"].values())


def test_second_trainer_on_a_busy_run_is_refused(tmp_path):
    from mipnerf_cli.errors import MipNerfError

    first = start_training(tmp_path, "run", "--max-steps", "100000", "--check-interval", "100000")
    run_dir = tmp_path / "out" / "run"
    try:
        wait_until(lambda: len(trained_steps(run_dir)) >= 1, first, 60, "a step", 0.002)
        with pytest.raises(MipNerfError, match=rf"another trainer \(pid {first.pid} "):
            train_in_process(settings_like_start(tmp_path, "run", max_steps=100000))
    finally:
        first.send_signal(signal.SIGINT)
        code, _, err = finish(first)
    assert code == 130, err
    assert not os.path.exists(run_dir / ".lock")

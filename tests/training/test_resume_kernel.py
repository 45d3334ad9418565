"""The CPU fast path's training kernel ('auto': probed once per process) is recorded in the
checkpoints, and a resumed 'auto' run takes the recorded kernel even where its own probe
would answer otherwise, so resume stays bit-identical (issue 25's follow-up)."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_run_settings
from tiny_runs import one_cpu_thread  # noqa: F401  (autouse: tiny models run faster on one thread)

from mipnerf_cli.core import fast, kernels
from mipnerf_cli.core.kernels import Probe
from mipnerf_cli.distributed import SINGLE
from mipnerf_cli.runs import checkpoints
from mipnerf_cli.runtime import Runtime
from mipnerf_cli.training import train
from mipnerf_cli.training.setup import build_model, pin_train_kernel

needs_onednn = pytest.mark.skipif(not kernels.onednn_available(), reason="this torch build has no oneDNN")


def new_process_whose_probe_favours(monkeypatch, winner: str) -> None:
    """A process that has probed nothing yet and whose probe finds `winner` 1.6x faster."""
    loser = "mkl" if winner == "onednn" else "onednn"
    times = {winner: 1.0, loser: 1.6}
    monkeypatch.setattr(kernels, "probe", lambda *key: Probe(tuple(key[:3]), 1, dict(times), dict(times)))
    monkeypatch.setattr(kernels, "_probes", {})
    monkeypatch.setattr(kernels, "MIN_PROBE_MACS", 0)  # the tiny model is below the size that probes


def training_kernels(monkeypatch) -> list[str]:
    """The names of the kernels the training steps run from now on (filled as they run)."""
    seen: list[str] = []
    kernel_for = fast.kernel_for

    def spy(model, options, rays_per_block, workers, train):
        chosen = kernel_for(model, options, rays_per_block, workers, train)
        if train:
            seen.append(chosen["kernel"].name)
        return chosen

    monkeypatch.setattr(fast, "kernel_for", spy)
    return seen


class Killed(Exception):
    pass


def run(settings, **overrides):
    return train(settings.model_copy(update=overrides), report=lambda m: None, show_progress=False)


def last(run_dir):
    return checkpoints.load_checkpoint(run_dir / "ckpt" / "last.pt")


def same_weights(a, b) -> bool:
    return all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@needs_onednn
def test_a_resumed_auto_run_takes_the_recorded_kernel_and_stays_bit_identical(tmp_path, monkeypatch):
    settings = tiny_run_settings(tmp_path, val_views=0, max_steps=6, check_interval=3)
    assert settings.cpu_kernel == "auto" and settings.fast_path
    seen = training_kernels(monkeypatch)

    new_process_whose_probe_favours(monkeypatch, "onednn")
    run(settings, exp_name="straight")
    straight = last(tmp_path / "out" / "straight")
    assert straight["cpu_kernel"] == "onednn" and set(seen) == {"onednn"}

    new_process_whose_probe_favours(monkeypatch, "onednn")
    save_step = checkpoints.save_step

    def save_then_die(folder, payload, keep):  # the process killed right after its save of step 3
        path = save_step(folder, payload, keep)
        if payload["step"] == 3:
            raise Killed
        return path

    monkeypatch.setattr(checkpoints, "save_step", save_then_die)
    with pytest.raises(Killed):
        run(settings, exp_name="killed")
    monkeypatch.setattr(checkpoints, "save_step", save_step)
    first_half = last(tmp_path / "out" / "killed")
    assert first_half["step"] == 3 and first_half["cpu_kernel"] == "onednn"

    # The resuming process's probe now favours MKL: the recorded oneDNN runs all the same.
    new_process_whose_probe_favours(monkeypatch, "mkl")
    seen.clear()
    assert run(settings, exp_name="killed", resume_path="auto").step == 6
    resumed = last(tmp_path / "out" / "killed")
    assert set(seen) == {"onednn"} and resumed["cpu_kernel"] == "onednn"
    assert same_weights(resumed, straight)
    state_a, state_b = straight["optimizer"]["state"], resumed["optimizer"]["state"]
    assert all(torch.equal(state_a[i][k], state_b[i][k]) for i in state_a for k in state_a[i])

    # A checkpoint without the entry (written before it existed) probes as before: MKL here,
    # and the run ends elsewhere (the kernels differ in the last bits, so the test above can fail).
    old = {key: value for key, value in first_half.items() if key != "cpu_kernel"}
    checkpoints.save_checkpoint(tmp_path / "old.pt", old)
    new_process_whose_probe_favours(monkeypatch, "mkl")
    seen.clear()
    run(settings, exp_name="from-old", resume_path=str(tmp_path / "old.pt"))
    from_old = last(tmp_path / "out" / "from-old")
    assert set(seen) == {"mkl"} and from_old["cpu_kernel"] == "mkl"
    assert not same_weights(from_old, straight)


def test_an_explicit_kernel_wins_over_the_recorded_one(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "probe", lambda *key: pytest.fail("a named or recorded kernel needs no probe"))
    settings = tiny_run_settings(tmp_path)
    model = build_model(settings)

    def pinned(cpu_kernel: str, recorded: str | None) -> str | None:
        runtime = Runtime(device=torch.device("cpu"), cpu_kernel=cpu_kernel)
        return pin_train_kernel(runtime, model, settings, recorded, SINGLE).train_kernel

    assert pinned("mkl", "onednn") == "mkl" and pinned("auto", "mkl") == "mkl"
    assert (
        pin_train_kernel(Runtime(device=torch.device("cpu")), model, settings, "mkl", SINGLE).fast_options(16, 1).kernel
        == "mkl"
    )
    off_the_fast_path = Runtime(device=torch.device("cpu"), fast_path=False)
    assert pin_train_kernel(off_the_fast_path, model, settings, "mkl", SINGLE).train_kernel is None

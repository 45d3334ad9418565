"""Checkpoint files: atomic writes, integrity checks, pickle refusal, rotation, the run lock."""

from __future__ import annotations

import builtins
import os
import sys
import textwrap

import pytest
import torch
from disk_faults import DiskFillsUp
from processes import start

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runs import checkpoints
from mipnerf_cli.runs.checkpoints import load_checkpoint, load_newest_good, save_checkpoint, save_step
from mipnerf_cli.runs.lock import RunLock
from mipnerf_cli.runs.payload import FORMAT_VERSION


def payload(step: int = 7, value: float = 1.0) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "step": step,
        "model": {"layer.weight": torch.full((4, 3), value), "layer.bias": torch.arange(4.0)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
        "model_config": {"netwidth": 4},
        "settings": {"exp_name": "x", "data": "/d", "lr_init": 5e-4, "resume_path": None},
        "scene": {"kind": "blender", "white_bkgd": True},
        "rng": {"torch_cpu": torch.get_rng_state()},
    }


def test_round_trip_and_plain_torch_load(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, payload())
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["settings"] == payload()["settings"]
    assert torch.equal(loaded["model"]["layer.weight"], torch.ones(4, 3))
    # The checksum trailer does not stop a plain weights_only torch.load.
    assert torch.load(path, weights_only=True)["step"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary left


@pytest.mark.parametrize("keep", [10, 0.5, -1, -40, -41])
def test_truncated_file_is_detected(tmp_path, keep):
    path = tmp_path / "a.pt"
    save_checkpoint(path, payload())
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep > 0 else len(data) + keep)
    path.write_bytes(data[:cut])
    with pytest.raises(MipNerfError, match=r"a\.pt (is corrupted|has no checksum)"):
        load_checkpoint(path)


def test_every_single_bit_flip_is_detected(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, payload())
    data = path.read_bytes()
    # Every 7th byte across the whole file (zip headers, pickle, tensor data, trailer).
    for position in range(0, len(data), 7):
        flipped = bytearray(data)
        flipped[position] ^= 1 << (position % 8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(MipNerfError, match=r"a\.pt"):
            load_checkpoint(path)


def test_pickled_object_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "step": 1, "model": Exploit()}, path)
    with pytest.raises(MipNerfError, match=r"evil\.pt contains pickled Python objects.*refusing"):
        load_checkpoint(path)
    assert not marker.exists()


def test_pickled_object_with_a_valid_checksum_is_still_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("x",))

    path = tmp_path / "evil.pt"
    path.write_bytes(checkpoints.serialize({"format_version": 1, "step": 1, "model": Exploit()}))
    with pytest.raises(MipNerfError, match="pickled Python objects"):
        load_checkpoint(path)


def test_foreign_and_missing_files(tmp_path):
    torch.save({"weights": torch.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(MipNerfError, match="no checksum"):
        load_checkpoint(tmp_path / "plain.pt")
    save_checkpoint(tmp_path / "other.pt", {"weights": torch.ones(2)})
    with pytest.raises(MipNerfError, match="not a mipnerf checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    save_checkpoint(tmp_path / "future.pt", {**payload(), "format_version": 99})
    with pytest.raises(MipNerfError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(MipNerfError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(MipNerfError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, payload(step=1))
    before = path.read_bytes()

    real_open = builtins.open

    def open_full(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return DiskFillsUp(handle) if "w" in mode and ".tmp-" in str(file) else handle

    monkeypatch.setattr(builtins, "open", open_full)
    with pytest.raises(
        MipNerfError, match=r"could not write .*last\.pt: No space left on device; the previous file is intact"
    ):
        save_checkpoint(path, payload(step=2))
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_failed_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    save_step(folder, payload(step=1), keep=3)

    def refuse(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(MipNerfError, match="Input/output error"):
        save_step(folder, payload(step=2), keep=3)
    monkeypatch.undo()
    assert load_checkpoint(folder / "last.pt")["step"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "step-0000001.pt"]


def test_rotation_keeps_the_newest_k_and_last(tmp_path):
    folder = tmp_path / "ckpt"
    for step in (100, 200, 300, 400, 500):
        save_step(folder, payload(step=step), keep=3)
    assert sorted(p.name for p in folder.iterdir()) == [
        "last.pt",
        "step-0000300.pt",
        "step-0000400.pt",
        "step-0000500.pt",
    ]
    assert load_checkpoint(folder / "last.pt")["step"] == 500
    save_step(folder, payload(step=600), keep=0)  # keep 0: only last.pt is written
    assert load_checkpoint(folder / "last.pt")["step"] == 600


def test_newest_good_falls_back_over_damaged_files(tmp_path):
    folder = tmp_path / "ckpt"
    for step in (100, 200, 300):
        save_step(folder, payload(step=step, value=step), keep=3)
    # last.pt is a hard link to step-300: damaging one damages both, as on a real disk.
    data = (folder / "step-0000300.pt").read_bytes()
    (folder / "last.pt").unlink()
    (folder / "last.pt").write_bytes(data[: len(data) // 2])
    (folder / "step-0000300.pt").write_bytes(data[:-1])
    messages = []
    loaded, path = load_newest_good(folder, report=messages.append)
    assert loaded["step"] == 200 and path.name == "step-0000200.pt"
    assert any("last.pt" in m for m in messages) and any("step-0000300.pt" in m for m in messages)
    assert messages[-1].startswith("falling back to") and "step 200" in messages[-1]
    assert load_newest_good(tmp_path / "empty") is None


def test_a_step_file_newer_than_last_wins(tmp_path):
    # A kill between writing step-N.pt and updating last.pt leaves last.pt one save behind.
    folder = tmp_path / "ckpt"
    save_step(folder, payload(step=10), keep=3)
    save_checkpoint(folder / "step-0000020.pt", payload(step=20))
    messages = []
    loaded, path = load_newest_good(folder, report=messages.append)
    assert (loaded["step"], path.name, messages) == (20, "step-0000020.pt", [])
    (folder / "step-0000020.pt").write_bytes(b"torn")
    loaded, path = load_newest_good(folder, report=messages.append)
    assert (loaded["step"], path.name) == (10, "last.pt") and "falling back to" in messages[-1]


def test_all_damaged_is_an_error(tmp_path):
    folder = tmp_path / "ckpt"
    save_step(folder, payload(step=100), keep=3)
    for p in folder.iterdir():
        os.unlink(p)
        p.write_bytes(b"garbage")
    with pytest.raises(MipNerfError, match="no usable checkpoint"):
        load_newest_good(folder, report=lambda m: None)


def test_stale_temporaries_are_removed(tmp_path):
    folder = tmp_path / "ckpt"
    save_step(folder, payload(step=100), keep=3)
    (folder / ".step-0000200.pt.tmp-999").write_bytes(b"half a file")
    checkpoints.remove_stale_temporaries(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "step-0000100.pt"]


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mipnerf_cli.runs.lock import RunLock
    lock = RunLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_second_holder_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    holder = start(sys.executable, "-c", HOLD_LOCK, tmp_path)  # a lock held by another process
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(MipNerfError, match=rf"another trainer \(pid {holder.pid} .*delete .*\.lock"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: its lock file remains, naming a dead pid.
    assert (tmp_path / ".lock").read_text().startswith(f"pid {holder.pid}")
    lock = RunLock(tmp_path).acquire()
    assert lock.taken_over_from.startswith(f"pid {holder.pid}")
    assert (tmp_path / ".lock").read_text().startswith(f"pid {os.getpid()}")
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_lock_in_the_same_process_is_exclusive_too(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(MipNerfError, match="another trainer"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path) as lock:
        assert lock.held and lock.taken_over_from is None

"""Faults of issue 10 that the other test files leave open, each with real processes where a
signal or a crash is involved.

Already covered elsewhere (and not repeated here):
* truncated / bit-flipped checkpoints refused by load_checkpoint, naming the file:
  test_checkpoint.py (every 7th byte flipped, five truncation points); through the CLI:
  test_bad_input.py cases 16;
* --resume auto over damaged files, in-process: test_train.py, test_checkpoint.py;
* a NaN loss (monkeypatched) stops training, last.pt unchanged: test_train.py;
* an OSError while writing or renaming a checkpoint file: test_checkpoint.py;
* SIGKILL after a save, then resume, bit-identical; Ctrl+C saves once and exits 130;
  two Ctrl+C in a row: test_train_resume.py.

Here: a bit flip met by eval and by `train --resume auto` through the CLI; a real NaN
(an absurd learning rate, nothing monkeypatched) and an inf loss; a full disk during the
trainer's second save; SIGKILL, and a second Ctrl+C, while a checkpoint is half-written;
Ctrl+C during convert and render.
"""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from disk_faults import DiskFillsUp
from processes import MIPNERF, start, wait_until
from tiny import tiny_settings

from mipnerf_cli.io import files
from mipnerf_cli.runs import checkpoints

TINY = tiny_settings(
    batch_size=32, check_interval=2, log_interval=1, lr_init=5e-3, lr_final=5e-4, lr_delay_steps=0, val_views=0
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, mipnerf) -> Path:
    """A 16-pixel demo scene (Blender format), written by the CLI."""
    path = tmp_path_factory.mktemp("scene") / "demo"
    result = mipnerf("demo-scene", path, "--size", 16, "--train", 4, "--val", 1, "--test", 2)
    assert result.returncode == 0, result.stderr
    return path


def config(folder: Path, **changes) -> Path:
    path = folder / f"tiny-{len(list(folder.glob('tiny-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def train_args(folder: Path, scene: Path, *extra, exp_name: str = "run", **changes) -> list:
    return [
        "train",
        "--config",
        config(folder, **changes),
        "--data",
        scene,
        "--out-dir",
        folder / "out",
        "--exp-name",
        exp_name,
        "--no-progress",
        *extra,
    ]


def flip_a_bit(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    path.unlink()  # last.pt is a hard link to the newest step file: never edit in place
    path.write_bytes(bytes(data))


def steps_of(folder: Path) -> dict[str, int]:
    """{file name: step} of the checkpoints in `folder` that load."""
    found = {}
    for path in sorted(folder.glob("*.pt")):
        try:
            found[path.name] = int(checkpoints.load_checkpoint(path)["step"])
        except Exception:
            pass
    return found


def same_weights(a: Path, b: Path) -> bool:
    first, second = checkpoints.load_checkpoint(a), checkpoints.load_checkpoint(b)
    return first["step"] == second["step"] and all(
        torch.equal(first["model"][k], second["model"][k]) for k in first["model"]
    )


# ----------------------------------------------------------------------------- damaged checkpoints through the CLI


def test_eval_names_a_bit_flipped_checkpoint(tmp_path, scene, mipnerf):
    assert mipnerf(*train_args(tmp_path, scene, max_steps=2)).returncode == 0
    last = tmp_path / "out" / "run" / "ckpt" / "last.pt"
    flip_a_bit(last)
    before = snapshot(tmp_path)
    result = mipnerf("eval", "--ckpt", last, "--device", "cpu", "--no-progress")
    assert_refused(result, f"checkpoint {last} is corrupted (checksum mismatch)", "use an older checkpoint")
    assert snapshot(tmp_path) == before


def test_resume_auto_falls_back_to_the_newest_good_checkpoint_and_says_so(tmp_path, scene, mipnerf):
    assert mipnerf(*train_args(tmp_path, scene, max_steps=4, keep_checkpoints=3)).returncode == 0
    ckpt = tmp_path / "out" / "run" / "ckpt"
    for name in ("last.pt", "step-0000004.pt"):  # the same file twice (a hard link), as a bad disk would leave it
        flip_a_bit(ckpt / name, where=0.7)
    result = mipnerf(*train_args(tmp_path, scene, "--resume", "auto", max_steps=6, keep_checkpoints=3))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"warning: checkpoint {ckpt / 'last.pt'} is corrupted (checksum mismatch)" in result.stdout
    assert f"falling back to {ckpt / 'step-0000002.pt'} (step 2)" in result.stdout
    assert f"resuming from {ckpt / 'step-0000002.pt'} at step 2" in result.stdout
    # The damaged files are kept aside for inspection, never read again; training went on.
    assert {"last.pt.set-aside", "step-0000004.pt.set-aside"} <= {p.name for p in ckpt.iterdir()}
    assert steps_of(ckpt) == {"last.pt": 6, "step-0000002.pt": 2, "step-0000004.pt": 4, "step-0000006.pt": 6}


# ----------------------------------------------------------------------------- non-finite loss


def test_a_real_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, scene, mipnerf):
    """Nothing monkeypatched: a learning rate of 1e30 blows the weights up to NaN in one step."""
    assert mipnerf(*train_args(tmp_path, scene, max_steps=2)).returncode == 0
    ckpt = tmp_path / "out" / "run" / "ckpt"
    before = snapshot(ckpt)
    result = mipnerf(*train_args(tmp_path, scene, max_steps=6, lr_init=1e30, lr_final=1e30))
    line = assert_refused(
        result,
        "the loss became nan at step",
        "stopped without saving",
        f"the last good checkpoint is {ckpt / 'last.pt'}",
        "a lower lr_init",
    )
    assert "at step 3 " in line or "at step 4 " in line, line  # step 3 moves the weights, step 3 or 4 sees NaN
    assert snapshot(ckpt) == before  # nothing written, renamed or left half-done
    assert not (tmp_path / "out" / "run" / ".lock").exists()
    # The run goes on from the good checkpoint with a sane learning rate.
    result = mipnerf(*train_args(tmp_path, scene, max_steps=4))
    assert result.returncode == 0 and f"resuming from {ckpt / 'last.pt'} at step 2" in result.stdout, result.stderr


@pytest.mark.parametrize("bad", [float("inf"), float("-inf")], ids=["inf", "-inf"])
def test_an_infinite_loss_stops_training_too(tmp_path, scene, monkeypatch, bad):
    from mipnerf_cli import training
    from mipnerf_cli.core import losses
    from mipnerf_cli.errors import MipNerfError
    from mipnerf_cli.settings import resolve_train_settings

    def settings(max_steps):
        return resolve_train_settings(
            config(tmp_path, max_steps=max_steps), {"data": scene, "out_dir": tmp_path / "out", "exp_name": "run"}
        )

    torch.set_num_threads(1)
    training.train(settings(2), show_progress=False, report=lambda message: None)
    ckpt = tmp_path / "out" / "run" / "ckpt"
    before = snapshot(ckpt)
    real = losses.mipnerf_loss
    monkeypatch.setattr(losses, "mipnerf_loss", lambda *a, **k: (real(*a, **k)[0] * bad, real(*a, **k)[1]))
    with pytest.raises(MipNerfError, match=rf"the loss became {bad} at step 3 .*last good checkpoint is .*last\.pt"):
        training.train(settings(6), show_progress=False, report=lambda message: None)
    assert snapshot(ckpt) == before


# ----------------------------------------------------------------------------- a full disk while saving


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, scene, monkeypatch):
    """The disk fills up half-way through the second checkpoint file (an OSError from write)."""
    from mipnerf_cli import training
    from mipnerf_cli.errors import MipNerfError
    from mipnerf_cli.settings import resolve_train_settings

    opened = []
    real_open = open

    def open_on_a_filling_disk(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode and Path(file).name.startswith(".step-"):  # a step-N.pt being written
            opened.append(Path(file).name)
            if len(opened) == 2:
                return DiskFillsUp(handle)
        return handle

    monkeypatch.setattr(files, "open", open_on_a_filling_disk, raising=False)  # the one atomic writer
    torch.set_num_threads(1)
    settings = resolve_train_settings(
        config(tmp_path, max_steps=6), {"data": scene, "out_dir": tmp_path / "out", "exp_name": "run"}
    )
    ckpt = settings.run_dir / "ckpt"
    with pytest.raises(MipNerfError) as caught:
        training.train(settings, show_progress=False, report=lambda message: None)
    message = str(caught.value)
    assert f"could not write {ckpt / 'step-0000004.pt'}: No space left on device" in message
    assert f"training stopped at step 4, the last good checkpoint is {ckpt / 'step-0000002.pt'}" in message
    assert "\n" not in message
    monkeypatch.undo()
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.pt", "step-0000002.pt"]  # no half file, no temporary
    assert steps_of(ckpt) == {"last.pt": 2, "step-0000002.pt": 2}
    assert not (settings.run_dir / ".lock").exists()


def test_a_full_disk_while_logging_metrics_is_one_line_and_keeps_the_checkpoints(tmp_path, scene, monkeypatch):
    from mipnerf_cli import training
    from mipnerf_cli.errors import MipNerfError
    from mipnerf_cli.runs.folder import RunFiles
    from mipnerf_cli.settings import resolve_train_settings

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.lines = handle, 0

        def write(self, text):
            self.lines += 1
            if self.lines == 3:  # the log line of step 3, after the save of step 2
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(text)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    real_open_metrics = RunFiles.open_metrics

    def open_metrics_on_a_filling_disk(self, keep_until_step):
        real_open_metrics(self, keep_until_step)
        self._metrics_handle = FullDisk(self._metrics_handle)

    monkeypatch.setattr(RunFiles, "open_metrics", open_metrics_on_a_filling_disk)
    torch.set_num_threads(1)
    settings = resolve_train_settings(
        config(tmp_path, max_steps=6), {"data": scene, "out_dir": tmp_path / "out", "exp_name": "run"}
    )
    with pytest.raises(
        MipNerfError,
        match=r"could not write .*metrics\.jsonl: No space left on device; training stopped at step 3, "
        r"free some space and run the same command to resume",
    ):
        training.train(settings, show_progress=False, report=lambda message: None)
    monkeypatch.undo()
    assert steps_of(settings.run_dir / "ckpt") == {"last.pt": 2, "step-0000002.pt": 2}
    assert not (settings.run_dir / ".lock").exists()


def test_a_full_disk_while_writing_eval_results_is_one_line_and_leaves_nothing(tmp_path, scene, mipnerf, monkeypatch):
    from mipnerf_cli import evaluation
    from mipnerf_cli.errors import MipNerfError
    from mipnerf_cli.settings import EvalSettings

    assert mipnerf(*train_args(tmp_path, scene, max_steps=2)).returncode == 0
    run = tmp_path / "out" / "run"
    before = snapshot(tmp_path)

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(
        MipNerfError, match=rf"could not write results\.json in {run / 'eval'}: No space left on device"
    ):
        evaluation.evaluate(EvalSettings(run=run, device="cpu", cpu_threads=1, progress=False, save_image=True))
    monkeypatch.undo()
    assert snapshot(tmp_path) == before  # no eval/ folder, no staging, no images


# ----------------------------------------------------------------------------- killed while a checkpoint is half-written

# Runs `mipnerf ARGS` in a process whose N-th checkpoint write stops half-way: it writes half
# of the file, creates MARKER and sleeps, so that the test can kill it exactly there.
SLOW_SAVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mipnerf_cli import cli
    from mipnerf_cli.io import files

    slow_write_number, marker = int(sys.argv[1]), Path(sys.argv[2])
    writes = []

    class HalfThenWait:
        def __init__(self, handle):
            self.handle = handle
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.handle.close()
        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            marker.write_text(self.handle.name)
            time.sleep(300)
        def flush(self):
            self.handle.flush()
        def fileno(self):
            return self.handle.fileno()

    def open_slowly(file, mode="r", *args, **kwargs):
        handle = open(file, mode, *args, **kwargs)
        if "w" in mode and Path(file).name.startswith(".step-"):  # a step-N.pt being written
            writes.append(file)
            if len(writes) == slow_write_number:
                return HalfThenWait(handle)
        return handle

    files.open = open_slowly
    sys.argv = ["mipnerf", *sys.argv[3:]]
    cli.main()
    """
)


def start_with_a_slow_save(tmp_path: Path, slow_write_number: int, args: list) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / "half-written"
    process = start(sys.executable, "-c", SLOW_SAVE, slow_write_number, marker, *args, folder=tmp_path)
    wait_until(marker.exists, process, 240, "the slow save", 0.02)
    return process, Path(marker.read_text())


def check_only_the_good_checkpoint_is_visible(ckpt: Path, half_file: Path) -> None:
    # The half-written bytes sit in a hidden temporary that no reader looks at.
    assert half_file.parent == ckpt and half_file.name.startswith(".step-0000004.pt.tmp-")
    assert half_file.exists() and 0 < half_file.stat().st_size
    assert sorted(p.name for p in ckpt.iterdir() if not p.name.startswith(".")) == ["last.pt", "step-0000002.pt"]
    assert steps_of(ckpt) == {"last.pt": 2, "step-0000002.pt": 2}
    payload, path = checkpoints.load_newest_good(ckpt, report=pytest.fail)  # nothing to warn about
    assert (payload["step"], path.name) == (2, "last.pt")


def test_sigkill_during_a_checkpoint_write_leaves_nothing_resume_would_read(tmp_path, scene, mipnerf):
    args = train_args(tmp_path, scene, max_steps=6)
    trainer, half_file = start_with_a_slow_save(tmp_path, 2, args)  # the save of step 4
    trainer.send_signal(signal.SIGKILL)
    assert trainer.wait(timeout=60) == -signal.SIGKILL
    ckpt = tmp_path / "out" / "run" / "ckpt"
    check_only_the_good_checkpoint_is_visible(ckpt, half_file)

    result = mipnerf(*args)  # the same command again: --resume auto is the default
    assert result.returncode == 0, result.stderr
    assert f"resuming from {ckpt / 'last.pt'} at step 2" in result.stdout
    assert not half_file.exists()  # the stale temporary is cleaned up at the start
    # And the resumed run is exactly the uninterrupted one.
    assert mipnerf(*train_args(tmp_path, scene, exp_name="straight", max_steps=6)).returncode == 0
    assert same_weights(ckpt / "last.pt", tmp_path / "out" / "straight" / "ckpt" / "last.pt")


def test_second_ctrl_c_during_a_checkpoint_write_leaves_at_once_and_corrupts_nothing(tmp_path, scene, mipnerf):
    args = train_args(tmp_path, scene, max_steps=6)
    trainer, half_file = start_with_a_slow_save(tmp_path, 2, args)
    trainer.send_signal(signal.SIGINT)  # "stop after this step and save": the save is under way
    deadline = time.monotonic() + 60
    while "stopping after this step" not in (tmp_path / "stderr").read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    trainer.send_signal(signal.SIGINT)  # "leave at once"
    assert trainer.wait(timeout=60) == 130
    err = (tmp_path / "stderr").read_text()
    assert "Traceback" not in err
    assert (
        "SIGINT: stopping after this step and saving" in err and "interrupted again: leaving now without saving" in err
    )
    ckpt = tmp_path / "out" / "run" / "ckpt"
    check_only_the_good_checkpoint_is_visible(ckpt, half_file)
    result = mipnerf(*args)
    assert result.returncode == 0 and f"resuming from {ckpt / 'last.pt'} at step 2" in result.stdout, result.stderr


# ----------------------------------------------------------------------------- Ctrl+C outside training


def interrupt_when(process: subprocess.Popen, ready, timeout: float = 240) -> tuple[str, str]:
    wait_until(ready, process, timeout, "the moment to interrupt it")
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=60)


def test_ctrl_c_during_convert_says_interrupted_and_leaves_out_dir_alone(tmp_path, scene):
    source = tmp_path / "scenes" / "many"
    shutil.copytree(scene, source)
    meta = json.loads((source / "transforms_train.json").read_text())
    meta["frames"] = meta["frames"] * 500  # 2000 images: seconds of work to interrupt
    (source / "transforms_train.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / "notes.txt").write_text("keep me")
    before = snapshot(out)
    process = start(*MIPNERF, "convert", source, out, "--workers", "1")

    def converting() -> bool:  # PNGs are being written into the hidden staging folder
        return any(out.glob(".many.partial-*/images_train/*.png"))

    _, err = interrupt_when(process, converting)
    assert process.returncode == 130, err
    assert err.strip() == "interrupted"
    assert snapshot(out) == before  # the staging folder is gone too


def test_ctrl_c_during_render_says_interrupted_and_writes_nothing(tmp_path, scene, mipnerf):
    assert mipnerf(*train_args(tmp_path, scene, max_steps=2)).returncode == 0
    run = tmp_path / "out" / "run"
    before = snapshot(tmp_path)
    process = start(
        *MIPNERF,
        "render",
        "--run",
        run,
        "--frames",
        1000,
        "--resolution",
        "32x32",
        "--device",
        "cpu",
        "--cpu-threads",
        1,
        "--no-progress",
    )

    def rendering() -> bool:
        return any((run / "render").glob(".spheric.partial-*/frames/rgb_0001.png"))

    _, err = interrupt_when(process, rendering)
    assert process.returncode == 130, err
    assert err.strip() == "interrupted"
    assert snapshot(tmp_path) == before  # no staging folder, not even an empty render/

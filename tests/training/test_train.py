"""`mipnerf train` in-process: the step, the loop, the run folder, resume rules, bad input."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from golden import BLENDER, MULTISCALE
from tiny import tiny_run_settings as tiny
from typer.testing import CliRunner  # in-process, not the `mipnerf` fixture: these tests monkeypatch what it calls

from mipnerf_cli import training
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runs import checkpoints
from mipnerf_cli.runs.lock import RunLock
from mipnerf_cli.runs.payload import model_from_checkpoint


def quiet(message: str) -> None:
    pass


def train(settings, **kwargs):
    return training.train(settings, report=kwargs.pop("report", quiet), show_progress=False, **kwargs)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models on a busy 2-core machine run several times faster on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo_scene(tmp_path_factory):
    """A small coherent scene (the procedural demo at 32 px), where validation PSNR means something."""
    from mipnerf_cli.demo.scenes import DemoSceneSpec, make_demo_scene

    path = tmp_path_factory.mktemp("demo") / "scene"
    make_demo_scene(path, DemoSceneSpec(height=32, width=32, num_train=8, num_val=1, num_test=2, supersample=1))
    return path


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- the step


def test_train_step_is_a_pure_function_of_seed_step_and_state(tmp_path):
    from mipnerf_cli.data import load_scene, sample_batch

    settings = tiny(tmp_path)
    images = load_scene(BLENDER, "train")
    rays, pixels = images.pixel_rays(sample_batch(0, 5, images.num_pixels, 64))

    def one_step(step):
        model = training.build_model(settings)
        optimizer = training.build_optimizer(model, settings)
        generator = training.step_generator(settings.seed, step, "noise", torch.device("cpu"))
        stats = training.train_step(model, optimizer, rays, pixels, 1e-3, settings, generator).get()
        return model, stats

    (a, stats_a), (b, stats_b), (c, _) = one_step(5), one_step(5), one_step(6)
    assert stats_a.finite and stats_a.loss == stats_b.loss and len(stats_a.level_mses) == 2
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # Another step number draws other sampling noise, hence other updates.
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_nonfinite_loss_leaves_the_parameters_alone(tmp_path):
    settings = tiny(tmp_path)
    model = training.build_model(settings)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = training.build_optimizer(model, settings)
    from mipnerf_cli.data import load_scene

    rays, pixels = load_scene(BLENDER, "train").pixel_rays(torch.arange(32))
    stats = training.train_step(model, optimizer, rays, pixels * float("nan"), 1e-3, settings, None).get()
    assert not stats.finite
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_helpers():
    assert training.rank_slice(torch.arange(8), 1, 2).tolist() == [4, 5, 6, 7]
    assert training.pick_val_views([0, 0, 0, 0], 2) == [0, 2]
    assert training.pick_val_views([0, 1, 2, 0, 1, 2, 0, 1, 2], 2) == [0, 1, 2, 3, 4, 5]
    assert training.pick_val_views([0, 0], 0) == []
    assert training.psnr_from_level_mse(3 * 0.01) == pytest.approx(20.0)
    assert training.step_seed(0, 1, "noise") != training.step_seed(1, 0, "noise")


# ----------------------------------------------------------------------------- the loop


def test_loss_goes_down_and_the_run_folder_is_complete(tmp_path, demo_scene):
    settings = tiny(
        tmp_path,
        data=demo_scene,
        max_steps=150,
        check_interval=75,
        log_interval=25,
        batch_size=256,
        lr_init=1e-2,
        lr_final=1e-3,
        val_views=2,
        val_downscale=1,
    )
    result = train(settings)
    run = settings.run_dir
    assert result.step == 150 and result.exit_code == 0
    lines = metrics(run)
    train_lines = [m for m in lines if m["split"] == "train"]
    assert [m["step"] for m in train_lines] == [25, 50, 75, 100, 125, 150]
    assert train_lines[-1]["loss"] < 0.5 * train_lines[0]["loss"], train_lines
    assert train_lines[-1]["psnr"] > train_lines[0]["psnr"] + 3
    assert set(train_lines[0]) >= {"loss", "psnr", "psnr_levels", "lr", "rays_per_s", "elapsed_s"}
    val = [m for m in lines if m["split"] == "val"]
    assert [m["step"] for m in val] == [75, 150] and val[0]["images"] == 2
    assert val[-1]["psnr"] > val[0]["psnr"] > 11, val
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["last.pt", "step-0000075.pt", "step-0000150.pt"]
    assert not (run / ".lock").exists()
    ckpt = checkpoints.load_checkpoint(run / "ckpt" / "last.pt")
    assert set(ckpt) >= {"format_version", "step", "model", "optimizer", "model_config", "settings", "scene"}
    assert "rng" not in ckpt  # resume is driven by (seed, step): no generator state is stored
    assert ckpt["step"] == 150 and ckpt["scene"]["kind"] == "blender" and ckpt["model_config"]["netwidth"] == 32
    model, recorded = model_from_checkpoint(ckpt)
    assert recorded["batch_size"] == 256
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ckpt["model"].values()))
    config = (run / "config.yaml").read_text()
    assert "max_steps: 150" in config and "data: ../../../" in config  # relative to the run folder


def test_learning_rate_follows_the_reference_schedule(tmp_path):
    from mipnerf_cli.core.losses import learning_rate_decay

    settings = tiny(tmp_path, max_steps=4, lr_delay_steps=2, lr_delay_mult=0.1)
    train(settings)
    lrs = [m["lr"] for m in metrics(settings.run_dir) if m["split"] == "train"]
    assert lrs == pytest.approx([learning_rate_decay(s, 5e-3, 5e-4, 4, 2, 0.1) for s in (1, 2, 3, 4)])


def test_resume_from_a_checkpoint_continues_exactly(tmp_path):
    straight = tiny(tmp_path, exp_name="straight", max_steps=6, check_interval=3, keep_checkpoints=2)
    train(straight)
    middle = straight.run_dir / "ckpt" / "step-0000003.pt"
    resumed = tiny(tmp_path, exp_name="resumed", max_steps=6, resume_path=str(middle))
    messages = []
    assert train(resumed, report=messages.append).step == 6
    assert any(f"resuming from {middle} at step 3" in m for m in messages)
    a = checkpoints.load_checkpoint(straight.run_dir / "ckpt" / "last.pt")
    b = checkpoints.load_checkpoint(resumed.run_dir / "ckpt" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [m["step"] for m in metrics(resumed.run_dir) if m["split"] == "train"] == [4, 5, 6]


def test_max_steps_may_be_raised_on_resume(tmp_path):
    train(tiny(tmp_path, max_steps=3))
    messages = []
    settings = tiny(tmp_path, max_steps=5, check_interval=5)
    assert train(settings, report=messages.append).step == 5
    assert any("max_steps 3 -> 5" in m and "check_interval 3 -> 5" in m for m in messages), messages
    assert [m["step"] for m in metrics(settings.run_dir) if m["split"] == "train"] == [1, 2, 3, 4, 5]


def test_resume_refuses_another_model_shape(tmp_path):
    train(tiny(tmp_path, max_steps=3))
    last = tiny(tmp_path).run_dir / "ckpt" / "last.pt"
    before = last.read_bytes()
    with pytest.raises(MipNerfError, match=r"model settings differ \(netwidth 32 -> 64\)"):
        train(tiny(tmp_path, max_steps=6, model={"netwidth": 64}))
    assert last.read_bytes() == before


def test_fresh_start_over_existing_checkpoints_is_refused(tmp_path):
    train(tiny(tmp_path, max_steps=3))
    with pytest.raises(MipNerfError, match="already has checkpoints; pass --resume auto"):
        train(tiny(tmp_path, resume_path="none"))


def test_finished_run_is_left_alone(tmp_path):
    settings = tiny(tmp_path, max_steps=3)
    train(settings)
    messages = []
    assert train(settings, report=messages.append).step == 3
    assert "already at step 3" in messages[0]


def test_resume_auto_falls_back_over_a_corrupt_checkpoint(tmp_path):
    settings = tiny(tmp_path, max_steps=6, check_interval=2)
    train(settings)
    ckpt_dir = settings.run_dir / "ckpt"
    for name in ("last.pt", "step-0000006.pt"):  # hard links: rewrite, do not edit in place
        data = (ckpt_dir / name).read_bytes()
        (ckpt_dir / name).unlink()
        (ckpt_dir / name).write_bytes(data[: len(data) - 100])
    messages = []
    result = train(tiny(tmp_path, max_steps=6, check_interval=2), report=messages.append)
    assert any("falling back to" in m and "step-0000004.pt" in m for m in messages), messages
    assert result.step == 6 and checkpoints.load_checkpoint(ckpt_dir / "last.pt")["step"] == 6
    # The damaged files were renamed, not deleted, and no longer count as checkpoints.
    assert {"last.pt.set-aside", "step-0000006.pt.set-aside"} <= {p.name for p in ckpt_dir.iterdir()}
    assert [step for step, _ in checkpoints.step_checkpoints(ckpt_dir)] == [2, 4, 6]


def test_resume_from_an_older_step_of_the_same_run_sets_the_later_ones_aside(tmp_path):
    straight = tiny(tmp_path, exp_name="straight", max_steps=6, check_interval=3)
    train(straight)
    settings = tiny(tmp_path, max_steps=6, check_interval=2)
    train(settings)
    ckpt_dir = settings.run_dir / "ckpt"
    messages = []
    again = tiny(tmp_path, max_steps=6, check_interval=3, resume_path=str(ckpt_dir / "step-0000002.pt"))
    train(again, report=messages.append)
    assert sum("set aside" in m for m in messages) == 3  # step-4, step-6 and last.pt (step 6)
    assert [step for step, _ in checkpoints.step_checkpoints(ckpt_dir)] == [2, 3, 6]
    a = checkpoints.load_checkpoint(straight.run_dir / "ckpt" / "last.pt")
    b = checkpoints.load_checkpoint(ckpt_dir / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resume_from_another_run_into_a_run_with_checkpoints_is_refused(tmp_path):
    other = tiny(tmp_path, exp_name="other", max_steps=3)
    train(other)
    train(tiny(tmp_path, max_steps=3))
    with pytest.raises(MipNerfError, match="already has checkpoints of its own"):
        train(tiny(tmp_path, max_steps=6, resume_path=str(other.run_dir)))


def test_resume_from_a_file_into_a_new_run(tmp_path):
    source = tiny(tmp_path, exp_name="a", max_steps=3)
    train(source)
    target = tiny(tmp_path, exp_name="b", max_steps=5, resume_path=str(source.run_dir / "ckpt" / "step-0000003.pt"))
    assert train(target).step == 5
    assert checkpoints.load_checkpoint(target.run_dir / "ckpt" / "last.pt")["step"] == 5


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    settings = tiny(tmp_path, max_steps=3)
    train(settings)
    last = settings.run_dir / "ckpt" / "last.pt"
    before = last.read_bytes()
    from mipnerf_cli.core import losses

    real = losses.mipnerf_loss

    def poisoned(*args, **kwargs):
        loss, level = real(*args, **kwargs)
        return loss * float("nan"), level

    monkeypatch.setattr(losses, "mipnerf_loss", poisoned)
    with pytest.raises(MipNerfError, match=r"loss became nan at step 4.*last good checkpoint is .*last\.pt"):
        train(tiny(tmp_path, max_steps=6))
    assert last.read_bytes() == before and not (settings.run_dir / ".lock").exists()


def test_failed_save_stops_with_the_last_good_checkpoint_named(tmp_path, monkeypatch):
    settings = tiny(tmp_path, max_steps=6, check_interval=3)
    real = checkpoints.write_bytes_atomically
    calls = []

    def full_disk_on_the_second_save(path, data, **options):
        calls.append(path.name)
        if path.name == "step-0000006.pt":
            raise MipNerfError(f"could not write {path}: No space left on device; nothing was written")
        real(path, data, **options)

    monkeypatch.setattr(checkpoints, "write_bytes_atomically", full_disk_on_the_second_save)
    with pytest.raises(
        MipNerfError, match=r"No space left.*stopped at step 6, the last good checkpoint is .*step-0000003\.pt"
    ):
        train(settings)
    monkeypatch.undo()
    assert checkpoints.load_checkpoint(settings.run_dir / "ckpt" / "last.pt")["step"] == 3


def test_second_trainer_on_the_same_run_is_refused(tmp_path):
    settings = tiny(tmp_path, max_steps=3)
    settings.run_dir.mkdir(parents=True)
    with RunLock(settings.run_dir):
        with pytest.raises(MipNerfError, match="another trainer"):
            train(settings)
    assert sorted(p.name for p in settings.run_dir.iterdir()) == []  # nothing written meanwhile


def test_multiscale_run_scores_every_scale(tmp_path):
    settings = tiny(tmp_path, data=MULTISCALE, multiscale=True, max_steps=2, check_interval=2)
    train(settings)
    val = [m for m in metrics(settings.run_dir) if m["split"] == "val"][0]
    assert len(val["psnr_levels"]) == 4 and val["images"] == 4
    assert checkpoints.load_checkpoint(settings.run_dir / "ckpt" / "last.pt")["scene"]["kind"] == "multiscale"


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "args, message",
    [
        # (cases 10-14 of issue 10 are in tests/robustness/test_bad_input.py)
        (["--data", str(MULTISCALE), "--multiscale", "--downscale", "2"], "drop --downscale"),
        (["--scene", "nope", "--data-root", "/nonexistent"], "scene folder /nonexistent/nerf_synthetic/nope not found"),
        (["--data", str(BLENDER), "--config", "no-such"], "config no-such not found"),
        (["--data", str(BLENDER), "--resume", "/nonexistent.pt"], "checkpoint /nonexistent.pt does not exist"),
    ],
)
def test_bad_input_is_one_clear_message(tmp_path, mipnerf, args, message):
    out_dir = tmp_path / "out"
    code, _, err = mipnerf("train", "--out-dir", str(out_dir), *args)
    assert code == 1 and message in err, err
    assert "Traceback" not in err and not out_dir.exists()


def test_flags_reach_the_settings(monkeypatch, tmp_path):
    from mipnerf_cli.cli import app

    got = {}

    def fake_train(settings, context=None, report=None, show_progress=True):
        got["settings"], got["context"] = settings, context
        return training.TrainResult(step=0, run_dir=tmp_path)

    monkeypatch.setattr(training, "train", fake_train)
    args = [
        "train",
        "--config",
        "demo",
        "--data",
        str(BLENDER),
        "--out-dir",
        str(tmp_path),
        "--exp-name",
        "x",
        "--max-steps",
        "7",
        "--batch-size",
        "64",
        "--check-interval",
        "5",
        "--resume",
        "none",
        "--device",
        "cpu",
        "--no-integration",
        "--seed",
        "3",
        "--downscale",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    s = got["settings"]
    assert (s.data, s.out_dir, s.exp_name) == (BLENDER, tmp_path, "x")
    assert (s.max_steps, s.batch_size, s.check_interval, s.resume_path, s.device, s.seed) == (7, 64, 5, None, "cpu", 3)
    assert s.downscale == 2 and s.model.disable_integration
    assert s.model.netwidth == 64 and s.model.num_samples == 24  # the demo config's model survives the flags
    assert not got["context"].distributed  # no torchrun: one process


def test_tensorboard_events_when_it_is_installed(tmp_path, monkeypatch):
    import types

    scalars = []

    class FakeWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            scalars.append((tag, step))

        def close(self):
            scalars.append(("closed", None))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    train(tiny(tmp_path, max_steps=2, check_interval=2, tensorboard=True))
    assert ("train/loss", 1) in scalars and ("train/psnr_levels_1", 2) in scalars and ("val/psnr", 2) in scalars
    assert scalars[-1] == ("closed", None)


def test_a_batch_goes_to_the_device_in_one_packed_copy_bit_for_bit(tmp_path):
    from mipnerf_cli.data import load_scene

    rays, pixels = load_scene(BLENDER, "train").pixel_rays(torch.arange(0, 4096, 37))
    share, votes = torch.tensor(0.25), torch.tensor([0.0, 1.0])
    moved = training.packed_copy([rays, pixels, share, votes], torch.device("cpu"))
    for name, tensor in rays.tensors().items():
        got = moved[0].tensors()[name]
        assert got.is_contiguous() and torch.equal(got, tensor)
    assert torch.equal(moved[1], pixels) and moved[2].shape == () and moved[2].item() == 0.25
    assert moved[3].tolist() == [0.0, 1.0]
    # A CPU run copies nothing.
    assert training.to_device([rays, pixels], torch.device("cpu"))[1] is pixels


def test_optimizer_state_moves_between_fused_and_plain_adam(tmp_path):
    from mipnerf_cli.runtime import Runtime

    settings = tiny(tmp_path)
    sync_free = Runtime(device=torch.device("cpu"), sync_free_step=True)
    model = training.build_model(settings)
    plain = training.build_optimizer(model, settings)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    plain.step()
    fused = training.build_optimizer(model, settings, sync_free)
    training.load_optimizer_state(fused, plain.state_dict())
    assert fused.param_groups[0]["fused"] is True
    assert fused.state[next(model.parameters())]["step"].item() == 1
    back = training.build_optimizer(model, settings)
    training.load_optimizer_state(back, fused.state_dict())
    assert back.param_groups[0]["fused"] is None


def test_the_fused_adam_skips_a_step_when_its_found_inf_argument_says_so(tmp_path):
    from mipnerf_cli.runtime import Runtime

    settings = tiny(tmp_path)
    model = training.build_model(settings)
    optimizer = training.build_optimizer(model, settings, Runtime(device=torch.device("cpu"), sync_free_step=True))
    first = next(model.parameters())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step(found_inf=torch.tensor(0.0))  # an ordinary step
    before = [p.detach().clone() for p in model.parameters()]
    moments = {key: value.clone() for key, value in optimizer.state[first].items()}
    optimizer.step(found_inf=torch.tensor(1.0))  # skipped: weights, moments and step count as they were
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    assert all(torch.equal(moments[key], optimizer.state[first][key]) for key in moments)
    assert optimizer.state[first]["step"].item() == 1 and not hasattr(optimizer, "found_inf")
    optimizer.step(found_inf=torch.tensor(0.0))
    assert optimizer.state[first]["step"].item() == 2 and not torch.equal(before[0], first)
    with pytest.raises(ValueError, match="fused"):
        training.build_optimizer(model, settings).step(found_inf=torch.tensor(1.0))


def test_compile_covers_the_training_step_and_leaves_validation_eager(tmp_path, monkeypatch):
    """compile: true compiles what the steps run; validation renders the plain model (no
    recompiles for its flags and short last chunk), and checkpoints keep plain keys."""
    compiled, validated = [], []

    class Recorder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            compiled.append(kwargs.get("randomized"))
            return self.inner(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", lambda module, dynamic=None: Recorder(module))
    real_validate = training.loop.validate
    monkeypatch.setattr(
        training.loop, "validate", lambda model, *a, **k: validated.append(model) or real_validate(model, *a, **k)
    )
    settings = tiny(tmp_path, max_steps=3, check_interval=3, compile=True)
    train(settings)
    assert compiled == [True, True, True]  # every training step, nothing else
    assert len(validated) == 1 and not isinstance(validated[0], Recorder)
    saved = checkpoints.load_checkpoint(settings.run_dir / "ckpt" / "last.pt")["model"]
    assert not any(key.startswith(("inner.", "_orig_mod.")) for key in saved)


@pytest.mark.parametrize("sync_free", [False, True])
def test_the_ranks_stop_votes_travel_with_the_loss_terms(tmp_path, sync_free):
    """A Shard's stop votes are summed with the loss terms (no collective of their own)
    and come back as the largest STOP_SIGNALS index voted for."""
    from mipnerf_cli.data import load_scene
    from mipnerf_cli.distributed import SINGLE
    from mipnerf_cli.runtime import Runtime

    settings = tiny(tmp_path)
    policy = Runtime(device=torch.device("cpu"), sync_free_step=sync_free)
    model = training.build_model(settings)
    optimizer = training.build_optimizer(model, settings, policy)
    rays, pixels = load_scene(BLENDER, "train").pixel_rays(torch.arange(32))
    for votes, expected in (([0.0, 0.0], None), ([1.0, 0.0], "SIGINT"), ([1.0, 1.0], "SIGTERM")):
        shard = training.Shard(SINGLE, torch.tensor(1.0), torch.tensor(votes))
        stats = training.train_step(model, optimizer, rays, pixels, 1e-3, settings, None, policy, shard=shard).get()
        assert stats.finite and len(stats.level_mses) == 2
        assert training.STOP_SIGNALS[stats.stop_vote] == expected

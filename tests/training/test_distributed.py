"""Several processes (torchrun, gloo on CPU): 2 ranks follow the 1-process trajectory; sharded eval and render.

One torchrun launch of 2 processes (tests/helpers/distributed_worker.py) runs every multi-process
scenario; the tests compare what it wrote with the same work done here in one process.
The scene is the converted multiscale golden scene, whose rays carry loss weights 1, 4, 16
and 64: the two ranks' lossmult sums differ, so a plain mean of per-rank losses would not be
the global loss, and the gradient test would catch it.

On a machine with 2 GPUs, ``MIPNERF_TEST_DEVICE=cuda python -m pytest tests/training/test_distributed.py``
runs the same checks with NCCL and one GPU per rank (float32: no bf16 autocast, no TF32).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from golden import MULTISCALE, TESTS
from processes import MIPNERF, start, wait_until
from tiny import WIDER, tiny_settings
from typer.testing import CliRunner  # in-process, not the `mipnerf` fixture: these tests monkeypatch what it calls

from mipnerf_cli import distributed, training
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runs import checkpoints
from mipnerf_cli.settings import resolve_train_settings

STEPS = 4
GRAD_STEP = 2  # a step whose two half-batches have clearly different lossmult sums (asserted)
HELPERS = TESTS / "helpers"
DEVICE = os.environ.get("MIPNERF_TEST_DEVICE", "cpu")
if DEVICE == "cuda" and torch.cuda.device_count() < 2:
    pytest.skip("MIPNERF_TEST_DEVICE=cuda needs 2 CUDA devices", allow_module_level=True)

# A constant learning rate keeps the trajectory independent of max_steps, so a run stopped at
# step 4 and continued to 6 can be compared with one run to 6.
SETTINGS = tiny_settings(
    model=WIDER,
    data=str(MULTISCALE),
    multiscale=True,
    device=DEVICE,
    mixed_precision=False,  # float32 on GPUs too, for a tight comparison
    batch_size=128,
    max_steps=STEPS,
    check_interval=2,
    keep_checkpoints=5,
    log_interval=1,
    lr_init=5e-4,
    lr_final=5e-4,
    lr_delay_steps=0,
    val_views=1,
)
# The grid model (`model_family: trimip`), tiny; its occupancy grid (buffers `occupancy_ema`
# and `occupied`, refreshed in `before_step`) is updated at steps 1 and 3 of the 4.
TRIMIP = {
    "model_family": "trimip",
    "fast_path": False,
    "trimip": {
        "plane_resolution": 16,
        "plane_features": 4,
        "hidden": 16,
        "geo_features": 7,
        "deg_view": 2,
        "march_steps": 32,
        "occupancy_resolution": 8,
        "occupancy_interval": 2,
        "occupancy_warmup": 2,
    },
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo talks over loopback only
    return env


def write_config(path: Path, **overrides) -> Path:
    path.write_text(yaml.safe_dump({**SETTINGS, **overrides}))
    return path


def settings_for(out: Path, exp_name: str, **overrides):
    return resolve_train_settings(None, {**SETTINGS, "out_dir": out, "exp_name": exp_name, **overrides})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoints.load_checkpoint(path)["model"]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Runs every 2-process scenario in one torchrun launch; returns the folder it wrote."""
    root = tmp_path_factory.mktemp("ddp")
    out = root / "out"
    fast = write_config(root / "fast.yaml")
    plain = write_config(root / "plain.yaml", fast_path=False)
    trimip = write_config(root / "trimip.yaml", **TRIMIP)
    # A run started by one process (2 steps), to be continued by two.
    torch.set_num_threads(1)
    training.train(settings_for(out, "resumed", max_steps=2), report=quiet, show_progress=False)
    common = ["--out-dir", str(out), "--no-progress"]
    spec = {
        "out": str(root),
        "device": DEVICE,
        "settings": {**SETTINGS, "out_dir": str(out), "exp_name": "grads"},
        "step": GRAD_STEP,
        "commands": [
            ["train", "--config", str(fast), "--exp-name", "fast", *common],
            ["train", "--config", str(plain), "--exp-name", "plain", *common],
            ["train", "--config", str(trimip), "--exp-name", "trimip", *common],
            ["train", "--config", str(fast), "--exp-name", "resumed", *common],
            ["train", "--config", str(fast), "--exp-name", "odd", "--batch-size", "127", *common],
            ["train", "--config", str(fast), "--exp-name", "fast", "--resume", "none", *common],
            ["eval", "--run", str(out / "fast"), "--out", str(root / "eval"), "--save-image", "--cpu-threads", "1",
             "--device", DEVICE, "--no-progress"],
            ["render", "--run", str(out / "fast"), "--frames", "3", "--resolution", "12x10", "--format", "png",
             "--out", str(root / "render"), "--cpu-threads", "1", "--device", DEVICE, "--no-progress"],
        ],
    }  # fmt: skip
    (root / "spec.json").write_text(json.dumps(spec))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
        "--log-dir", str(root / "logs"), "--redirects", "3",
        str(HELPERS / "distributed_worker.py"), str(root / "spec.json"),
    ]  # fmt: skip
    # torchrun starts the worker processes itself: a real process, not the `mipnerf` fixture.
    result = subprocess.run(command, capture_output=True, text=True, env=loopback_env(), timeout=600)
    logs = {path.parent.name + "/" + path.name: path.read_text() for path in (root / "logs").rglob("*.log")}
    assert result.returncode == 0, result.stderr[-3000:] + "\n".join(f"--- {k}\n{v[-2000:]}" for k, v in logs.items())
    records = [json.loads((root / f"commands-rank{rank}.json").read_text()) for rank in (0, 1)]
    return {"root": root, "out": out, "records": records, "logs": logs}


def command_record(two_ranks, rank: int, exp_or_kind: str, *flags: str) -> dict:
    for record in two_ranks["records"][rank]:
        argv = record["argv"]
        if exp_or_kind in argv and all(flag in argv for flag in flags):
            return record
    raise AssertionError(f"no command {exp_or_kind} {flags}")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The same runs in this one process: fast path to step 6 (checkpoints at 2, 4, 6), plain path
    and the grid model to 4."""
    out = tmp_path_factory.mktemp("single") / "out"
    torch.set_num_threads(1)
    training.train(settings_for(out, "fast", max_steps=6), report=quiet, show_progress=False)
    training.train(settings_for(out, "plain", fast_path=False), report=quiet, show_progress=False)
    training.train(settings_for(out, "trimip", **TRIMIP), report=quiet, show_progress=False)
    return out


# ----------------------------------------------------------------------------- training


def test_one_step_gradient_is_the_global_batch_gradient(two_ranks):
    from mipnerf_cli.data import load_scene

    settings = resolve_train_settings(None, {**SETTINGS, "exp_name": "grads"})
    train_set = load_scene(MULTISCALE, "train", multiscale=True)
    for tag in ("fast", "plain"):
        ranks = [torch.load(two_ranks["root"] / f"grads-{tag}-rank{r}.pt", weights_only=True) for r in (0, 1)]
        # The halves weigh differently: a mean of per-rank losses would be another loss.
        assert abs(ranks[0]["share"] - 0.5) > 0.2 and ranks[0]["share"] + ranks[1]["share"] == pytest.approx(1.0)
        assert ranks[0]["rays"] == ranks[1]["rays"] == 64
        s = settings.model_copy(update={"fast_path": tag == "fast"})
        device = torch.device(DEVICE)
        model = training.build_model(s).to(device)
        rays, pixels, noise, shard = training.step_batch(s, GRAD_STEP, train_set, model, device, distributed.SINGLE)
        assert shard is None
        stats = training.train_step(
            model, training.build_optimizer(model, s), rays, pixels, 0.0, s, None, noise=noise
        ).get()
        for r in (0, 1):
            assert ranks[r]["loss"] == pytest.approx(stats.loss, rel=1e-5)
            assert ranks[r]["level_mses"] == pytest.approx(stats.level_mses, rel=1e-5)
        for name, p in model.named_parameters():
            # Every rank holds the same summed gradient, equal to the 1-process one.
            assert torch.equal(ranks[0]["grads"][name], ranks[1]["grads"][name]), name
            grad = p.grad.cpu()
            assert float((ranks[0]["grads"][name] - grad).abs().max()) <= 1e-5 * float(grad.abs().max()) + 1e-9, (
                tag,
                name,
            )


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_two_ranks_follow_the_one_process_trajectory(two_ranks, one_process, path):
    assert command_record(two_ranks, 0, path)["exit"] == 0
    two = weights(two_ranks["out"] / path / "ckpt" / f"step-{STEPS:07d}.pt")
    one = weights(one_process / path / "ckpt" / f"step-{STEPS:07d}.pt")
    assert max_difference(two, one) < 1e-5
    start = weights(one_process / path / "ckpt" / "step-0000002.pt")
    assert max_difference(one, start) > 1e-4  # the steps did move the weights


def test_two_ranks_train_the_grid_model_as_one_process(two_ranks, one_process):
    """The grid model under torchrun: the same weights as one process, and the same occupancy grid
    on both ranks (each rank refreshes it in `before_step` from the same weights and step)."""
    assert [command_record(two_ranks, r, "trimip")["exit"] for r in (0, 1)] == [0, 0]
    run = two_ranks["out"] / "trimip"
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["last.pt", "step-0000002.pt", "step-0000004.pt"]
    two = weights(run / "ckpt" / f"step-{STEPS:07d}.pt")
    one = weights(one_process / "trimip" / "ckpt" / f"step-{STEPS:07d}.pt")
    grid = ("occupancy_ema", "occupied")
    assert two.keys() == one.keys() and set(grid) <= two.keys()
    learned = {k: v for k, v in two.items() if k not in grid}
    assert max_difference(learned, {k: one[k] for k in learned}) < 1e-5
    assert torch.equal(two["occupied"], one["occupied"])
    assert float((two["occupancy_ema"] - one["occupancy_ema"]).abs().max()) < 1e-5
    assert float(two["occupancy_ema"].abs().max()) > 0  # the grid was refreshed
    start = weights(one_process / "trimip" / "ckpt" / "step-0000002.pt")
    assert max_difference(learned, {k: start[k] for k in learned}) > 1e-4  # the steps did move the weights
    # Rank 1's grid at the end of the run, recorded by the worker, is rank 0's.
    ranks = [torch.load(two_ranks["root"] / f"grid-trimip-rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    for name in grid:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        assert torch.equal(ranks[0][name], two[name]), name


def test_rank_zero_alone_writes_and_logs(two_ranks):
    run = two_ranks["out"] / "fast"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["split"] == "train"] == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["last.pt", "step-0000002.pt", "step-0000004.pt"]
    assert yaml.safe_load((run / "config.yaml").read_text())["batch_size"] == 128  # the global batch
    stdout = {name: text for name, text in two_ranks["logs"].items() if name.endswith("stdout.log")}
    rank0 = next(text for name, text in stdout.items() if name.startswith("0/"))
    rank1 = next(text for name, text in stdout.items() if name.startswith("1/"))
    assert "done: step 4" in rank0 and "validation psnr" in rank0
    assert rank1.strip() == "", rank1


def test_a_one_process_run_continues_on_two_ranks(two_ranks, one_process):
    assert command_record(two_ranks, 0, "resumed")["exit"] == 0
    resumed = weights(two_ranks["out"] / "resumed" / "ckpt" / "step-0000004.pt")
    assert max_difference(resumed, weights(one_process / "fast" / "ckpt" / "step-0000004.pt")) < 1e-5


def test_a_two_rank_run_continues_in_one_process(two_ranks, one_process, tmp_path):
    import shutil

    run = tmp_path / "out" / "fast"
    shutil.copytree(two_ranks["out"] / "fast", run)
    result = training.train(
        settings_for(tmp_path / "out", "fast", max_steps=6, resume_path="auto"), report=quiet, show_progress=False
    )
    assert result.step == 6
    assert (
        max_difference(
            weights(run / "ckpt" / "step-0000006.pt"), weights(one_process / "fast" / "ckpt" / "step-0000006.pt")
        )
        < 1e-5
    )


def test_refusals_are_reported_once_and_stop_every_rank(two_ranks):
    odd = [command_record(two_ranks, r, "odd") for r in (0, 1)]
    assert (
        odd[0]["exit"] == 1
        and "batch_size 127" in odd[0]["error"]
        and "divisible by the 2 processes" in odd[0]["error"]
    )
    assert odd[1]["exit"] == 1 and odd[1]["error"] is None  # rank 1 leaves quietly: rank 0 said why
    assert not (two_ranks["out"] / "odd").exists()
    again = [command_record(two_ranks, r, "fast", "--resume") for r in (0, 1)]
    assert again[0]["exit"] == 1 and "already has checkpoints" in again[0]["error"]
    assert again[1]["exit"] == 1 and again[1]["error"] is None


# ----------------------------------------------------------------------------- eval and render


def test_sharded_eval_equals_one_process_eval(two_ranks, tmp_path):
    from mipnerf_cli.evaluation import evaluate, read_results
    from mipnerf_cli.settings import EvalSettings

    assert [command_record(two_ranks, r, "eval")["exit"] for r in (0, 1)] == [0, 0]
    sharded = read_results(two_ranks["root"] / "eval" / "results.json")
    single, folder = evaluate(
        EvalSettings(
            run=two_ranks["out"] / "fast",
            out=tmp_path / "eval",
            save_image=True,
            device=DEVICE,
            cpu_threads=1,
            progress=False,
        )
    )
    assert sharded.processes == 2 and single.processes == 1
    assert sharded.step == single.step == STEPS and len(sharded.images) == len(single.images) == 16
    assert [(i.file, i.scale) for i in sharded.images] == [(i.file, i.scale) for i in single.images]
    for a, b in zip(sharded.images, single.images):
        assert a.psnr == pytest.approx(b.psnr, abs=1e-4) and a.ssim == pytest.approx(b.ssim, abs=1e-5)
    assert [s.model_dump() for s in sharded.scales] == pytest.approx([s.model_dump() for s in single.scales], abs=1e-4)
    assert sharded.num_rays == single.num_rays
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert names == sorted(p.name for p in (two_ranks["root"] / "eval" / "images").iterdir()) and len(names) == 64
    same = sum(
        (folder / "images" / n).read_bytes() == (two_ranks["root"] / "eval" / "images" / n).read_bytes() for n in names
    )
    assert same == len(names)


def test_sharded_render_equals_one_process_render(two_ranks, tmp_path):
    from mipnerf_cli.rendering.video import render_path
    from mipnerf_cli.settings import RenderSettings

    assert [command_record(two_ranks, r, "render")["exit"] for r in (0, 1)] == [0, 0]
    single = render_path(
        RenderSettings(run=two_ranks["out"] / "fast", frames=3, resolution="12x10", format="png", out=tmp_path / "render",
                       device=DEVICE, cpu_threads=1, progress=False)
    )  # fmt: skip
    mine = sorted(p.name for p in (single.folder / "frames").iterdir())
    theirs = sorted(p.name for p in (two_ranks["root"] / "render" / "frames").iterdir())
    assert mine == theirs and len(mine) == 9
    for name in mine:
        assert (single.folder / "frames" / name).read_bytes() == (
            two_ranks["root"] / "render" / "frames" / name
        ).read_bytes(), name


@pytest.mark.slow
def test_nproc_trains_and_ctrl_c_saves_then_one_process_continues(tmp_path):
    """The real thing: `mipnerf train --nproc 2` (torchrun, 2 gloo workers), Ctrl+C, resume alone."""
    import signal

    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", max_steps=100000, check_interval=100000, val_views=0)
    process = start(*MIPNERF, "train", "--config", config, "--out-dir", out, "--exp-name", "x", "--nproc", 2,
                    "--no-progress", env=loopback_env())  # fmt: skip
    metrics = out / "x" / "metrics.jsonl"
    wait_until(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3, process, 300, "3 steps", 0.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.count("stopping after this step") == 1  # rank 0 only
    step = int(checkpoints.load_checkpoint(out / "x" / "ckpt" / "last.pt")["step"])
    assert step >= 3 and f"stopped at step {step}" in stdout
    settings = settings_for(out, "x", max_steps=step + 2, check_interval=100000, val_views=0, resume_path="auto")
    assert training.train(settings, report=quiet, show_progress=False).step == step + 2


# ----------------------------------------------------------------------------- without processes


def test_batch_not_divisible_by_the_processes_is_refused_before_anything():
    settings = settings_for(Path("/nonexistent"), "x", batch_size=130)
    context = distributed.Context(rank=0, world_size=4)
    with pytest.raises(
        MipNerfError, match="batch_size 130 is the global batch and must be divisible by the 4 processes"
    ):
        training.train(settings, context=context, report=quiet, show_progress=False)
    with pytest.raises(distributed.PeerError):
        training.train(settings, context=distributed.Context(rank=3, world_size=4), report=quiet, show_progress=False)


def fake_torchrun(monkeypatch, outcome=None):
    """Replace torchrun's entry point; returns the list of argument lists it was called with."""
    from torch.distributed import run as torchrun

    calls = []

    def main(args):
        calls.append(args)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(torchrun, "main", main)
    return calls


def test_nproc_refuses_an_indivisible_batch_before_starting_torchrun(tmp_path, monkeypatch):
    from mipnerf_cli.cli import app

    calls = fake_torchrun(monkeypatch)
    config = write_config(tmp_path / "c.yaml")
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--nproc", "3", "--out-dir", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, MipNerfError)
    assert "batch_size 128 is the global batch and must be divisible by --nproc 3" in str(result.exception)
    assert not calls and not (tmp_path / "tiny").exists()


def test_nproc_runs_torchrun_with_the_options_given(tmp_path, monkeypatch):
    from mipnerf_cli.cli import app

    calls = fake_torchrun(monkeypatch)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = write_config(tmp_path / "c.yaml")
    args = [
        "train",
        "--config",
        str(config),
        "--nproc",
        "2",
        "--exp-name",
        "x",
        "--single-scale",
        "--no-progress",
        "--max-steps",
        "9",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0
    (argv,) = calls
    assert argv[:5] == ["--standalone", "--nproc-per-node=2", "-m", "mipnerf_cli", "train"] and "--nproc" not in argv
    rest = argv[5:]
    pairs = {
        rest[i]: rest[i + 1]
        for i in range(len(rest) - 1)
        if rest[i].startswith("--") and not rest[i + 1].startswith("--")
    }
    assert pairs == {"--config": str(config), "--exp-name": "x", "--max-steps": "9"}
    assert "--single-scale" in rest and "--no-progress" in rest
    assert "--batch-size" not in rest  # defaults stay defaults
    assert int(os.environ["OMP_NUM_THREADS"]) >= 1  # each process's share of the cores


def test_nproc_exit_codes(tmp_path, monkeypatch):
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from mipnerf_cli.cli import app

    args = ["eval", "--run", str(tmp_path), "--nproc", "2"]
    fake_torchrun(monkeypatch, SignalException("stop", sigval=2))
    assert CliRunner().invoke(app, args).exit_code == 130  # Ctrl+C: the workers saved and stopped
    failure = ProcessFailure(local_rank=0, pid=1, exitcode=1, error_file="")
    fake_torchrun(monkeypatch, ChildFailedError("mipnerf_cli", {0: failure}))
    assert CliRunner().invoke(app, args).exit_code == 1  # rank 0 said why


def test_nproc_is_refused_inside_torchrun(tmp_path, monkeypatch):
    from mipnerf_cli.cli import app

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    config = write_config(tmp_path / "c.yaml")
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--nproc", "2", "--out-dir", str(tmp_path)])
    assert result.exit_code == 1 and "already a torchrun process" in str(result.exception)


def test_one_process_context_is_a_no_op():
    context = distributed.SINGLE
    assert context.is_main and not context.distributed
    t = torch.tensor([1.0, 2.0])
    assert context.all_reduce_sum_(t) is t and t.tolist() == [1.0, 2.0]
    assert context.broadcast("x") == "x" and context.gather(3) == [3] and context.max(2) == 2
    assert context.on_main(lambda: 5) == 5 and context.main_first(lambda: 6) == 6
    with distributed.launched("cpu") as launched:  # no WORLD_SIZE here: alone
        assert launched is distributed.SINGLE


@pytest.mark.parametrize("device_name, backend", [("cuda", "nccl"), ("cpu", "gloo")])
def test_the_nccl_group_is_bound_to_the_ranks_gpu(monkeypatch, device_name, backend):
    """init_process_group(device_id=cuda:LOCAL_RANK) under NCCL; gloo gets no device."""
    joined = {}
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(
        torch.distributed, "init_process_group", lambda backend, **kwargs: joined.update(backend=backend, **kwargs)
    )
    monkeypatch.setattr(torch.distributed, "destroy_process_group", lambda: None)
    with distributed.launched(device_name) as context:
        assert context.rank == 1 and context.world_size == 2
    assert joined["backend"] == backend
    assert joined.get("device_id") == (torch.device("cuda", 1) if backend == "nccl" else None)

"""`mipnerf bench` and mipnerf_cli/bench/: FLOP count, fields, markdown rows (no timings asserted)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from reference_weights import reference_layer_order
from tiny_runs import one_cpu_thread  # noqa: F401  (autouse)
from typer.testing import CliRunner

from mipnerf_cli.bench import flops as bench_flops
from mipnerf_cli.bench import hardware, peaks, report, workload
from mipnerf_cli.cli import app
from mipnerf_cli.core.kernels import onednn_available
from mipnerf_cli.core.models.mipnerf import MipNerf, ModelConfig

TINY = ModelConfig(
    num_samples=4, netdepth=3, netwidth=8, netdepth_condition=1, netwidth_condition=4, skip_layer=2,
    max_deg_point=2, deg_view=1,
)  # fmt: skip
TINY_YAML = """model:
  num_samples: 4
  netdepth: 2
  netwidth: 8
  netwidth_condition: 4
  max_deg_point: 2
  deg_view: 1
"""


def test_flop_count_of_a_tiny_config_by_hand():
    # Encoded point 2*3*2 = 12 features, view 3 + 2*3*1 = 9. Trunk 12->8, 8->8, 8->8; after layer 2
    # (2 % 2 == 0) the input rejoins: heads see 8 + 12 = 20. density 20->1, bottleneck 20->8,
    # condition 8 + 9 -> 4, rgb 4->3; 2 * in * out each.
    by_hand = 2 * (12 * 8 + 8 * 8 + 8 * 8 + 20 * 1 + 20 * 8 + 17 * 4 + 4 * 3)
    flops = bench_flops.model_flops(TINY)
    assert flops.forward_per_sample == by_hand == 968
    assert flops.samples_per_ray == 8
    assert flops.forward_per_ray == 968 * 8 == flops.render_per_ray
    assert flops.train_per_ray == 3 * 968 * 8


def test_paper_config_costs_0_94_gflop_per_trained_ray():
    flops = bench_flops.model_flops(ModelConfig())
    assert flops.forward_per_sample == 1_220_608
    assert flops.train_per_ray == 937_426_944
    assert flops.render_per_ray == 312_475_648


@pytest.mark.parametrize("config", [ModelConfig(), TINY, dataclasses.replace(TINY, use_viewdirs=False, netdepth=5)])
def test_flop_layers_are_the_models_layers(config):
    model = MipNerf(config)
    shapes = [(layer.in_features, layer.out_features) for layer in reference_layer_order(model)]
    assert [(d.in_features, d.out_features) for d in bench_flops.dense_layers(config)] == shapes


def test_anchor_rays_follow_the_anchor_workload():
    rays = workload.anchor_rays(64, seed=1)
    assert torch.allclose(rays.origins.norm(dim=-1), torch.full((64,), 4.0))
    aim = rays.origins + rays.directions  # the targets, within [-1, 1]^3
    assert aim.abs().max() <= 1.0 + 1e-5
    assert torch.allclose(rays.viewdirs.norm(dim=-1), torch.ones(64))
    assert (rays.near == 2).all() and (rays.far == 6).all()
    assert torch.equal(workload.anchor_rays(64, seed=1).origins, rays.origins)


def test_image_rays_cover_the_image():
    rays = workload.image_rays(4)
    assert len(rays) == 16
    centre = rays.viewdirs.mean(dim=0)
    assert torch.allclose(centre / centre.norm(), torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)


def invoke(*args: str):
    """`mipnerf bench ARGS` in this process (not the `mipnerf` fixture's): several tests below
    monkeypatch what bench calls, which a separate process would not see."""
    return CliRunner().invoke(app, ["bench", *args], catch_exceptions=False)


PHASE_FIELDS = {
    "rays_per_s", "rays_per_s_median", "samples_per_s", "gflops", "flops_per_ray", "iterations",
    "rays_per_iteration", "seconds", "peak_memory_bytes", "mfu", "mlp_shape_utilisation",
}  # fmt: skip


@pytest.mark.parametrize("fast", ["--fast", "--plain"])
def test_bench_json_has_every_field(tmp_path, fast):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    result = invoke("--config", str(config), "--batch", "8", "--chunk", "16", "--steps", "2", "--warmup", "1",
                    "--no-peak", "--json", "--memory-sizes", "4,8", fast)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for phase in ("train", "render"):
        assert set(data[phase]) == PHASE_FIELDS
        assert data[phase]["rays_per_s"] > 0 and data[phase]["iterations"] == 2
        assert data[phase]["peak_memory_bytes"] > 0
        assert data[phase]["mfu"] is None  # no peak measured
    assert data["train"]["rays_per_iteration"] == 8 and data["render"]["rays_per_iteration"] == 16
    assert data["flops"]["forward_per_sample"] == 2 * (12 * 8 + 8 * 8 + 8 * 1 + 8 * 8 + 17 * 4 + 4 * 3)
    assert data["train"]["gflops"] == pytest.approx(data["train"]["rays_per_s"] * data["flops"]["train_per_ray"] / 1e9)
    assert data["fast_path"]["enabled"] is (fast == "--fast")
    if fast == "--fast":
        kernel = data["fast_path"]["kernel"]
        assert kernel["setting"] == "auto" and {kernel["train"], kernel["render"]} <= {"mkl", "onednn"}
    assert [row["image"] for row in data["memory"]] == ["4x4", "8x8"]
    assert data["machine"] and data["config"] == "tiny.yaml" and data["date"]


@pytest.mark.parametrize("fast", [True, False])
def test_bench_plain_never_touches_the_fast_path_and_fast_does(tmp_path, monkeypatch, fast):
    """--plain measures the plain (CUDA) step and render; --fast the CPU fast path's."""
    from mipnerf_cli.core import fast as fast_module

    calls = []

    def recorded(name):
        real = getattr(fast_module, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            if not fast:
                raise AssertionError(f"bench --plain went through core.fast.{name}")
            return real(*args, **kwargs)

        return wrapper

    for name in ("render_last_level", "forward_backward"):
        monkeypatch.setattr(fast_module, name, recorded(name))
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    result = invoke("--config", str(config), "--batch", "8", "--chunk", "16", "--steps", "1", "--warmup", "0",
                    "--no-peak", "--json", "--fast" if fast else "--plain")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(set(calls)) == (["forward_backward", "render_last_level"] if fast else [])


def test_bench_with_peak_reports_mfu_and_writes_markdown(tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\n| machine | config | what | anchor rays/s | ours rays/s | ratio | MFU | date | load | command |\n"
                        "|---|---|---|---|---|---|---|---|---|---|\n| old | row | | | | | | | | |\n\n## Notes\ntext\n")  # fmt: skip
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    result = invoke("--config", str(config), "--what", "train", "--batch", "8", "--steps", "1", "--warmup", "0",
                    "--anchor-train", "2.5", "--markdown", str(markdown))  # fmt: skip
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())  # the console may wrap long lines
    assert "rays/s" in words and "matmul peak" in words
    lines = markdown.read_text().splitlines()
    row = lines[5]  # right after the existing row, inside the table
    assert row.startswith("| ") and "| tiny.yaml | train | 2.5 |" in row and "×" in row and "%" in row
    assert lines[6] == "" and lines[7] == "## Notes"
    assert "render" not in markdown.read_text()


def test_markdown_table_is_created_when_missing(tmp_path):
    path = tmp_path / "B.md"
    result = report.BenchResult(
        machine="m", device="cpu", config="paper", torch_version="x", threads=2, fast_path={}, flops={},
        matmul_peak=None, train=None, render=report.PhaseResult(10.0, 10.0, 2560.0, 3.1, 1, 1, 1, 1.0, 1, mfu=0.5),
        memory=[], date="2024-01-02T00:00:00", load_average=[1.0, 2.0, 3.0],
    )  # fmt: skip
    report.append_markdown(path, report.markdown_rows(result, {"render": 5.0}, "mipnerf bench"))
    text = path.read_text()
    assert report.MARKDOWN_HEADER in text
    assert "| m | paper | render | 5.0 | 10.0 | 2.00× | 50% | 2024-01-02 | 1.0 2.0 3.0 | `mipnerf bench` |" in text


def test_peak_memory_is_measured():
    memory = peaks.PeakMemory(torch.device("cpu"))
    memory.start()
    block = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB touched
    assert memory.peak_bytes() >= 64 << 20
    del block


def test_matmul_rate_is_positive():
    assert peaks.matmul_rate(64, 32, 16, torch.device("cpu"), min_seconds=0.01) > 0
    if onednn_available():
        assert peaks.matmul_rate(64, 32, 16, torch.device("cpu"), min_seconds=0.01, kernel="onednn") > 0
        assert peaks.concurrent_matmul_rate(64, 32, 16, 2, min_seconds=0.01, kernel="onednn") > 0


def cpuinfo(vendor: str, family: int, model_name: str, flags: str, siblings: int = 2, cores: int = 2) -> str:
    block = (f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel name\t: {model_name}\n"
             f"cpu MHz\t\t: 2793.438\nsiblings\t: {siblings}\ncpu cores\t: {cores}\nflags\t\t: fpu {flags} sse2\n")  # fmt: skip
    return block + "\n" + block.replace("processor\t: 0", "processor\t: 1")


def test_hardware_peak_is_cores_fma_units_lanes_and_clock():
    intel = hardware.cpu_peak(
        {"cpuinfo": cpuinfo("GenuineIntel", 6, "Intel(R) Xeon(R) Processor @ 2.80GHz", "avx2 fma avx512f"),
         "lscpu": "", "max_khz": None, "cpus": "2"}
    )  # fmt: skip
    assert (intel.cores, intel.fma_units, intel.vector_bits, intel.ghz) == (2, 2, 512, 2.8)
    assert intel.gflops == pytest.approx(2 * 2 * 16 * 2 * 2.8) and intel.clock_source == "model name"
    # Zen 4 (family 25) runs 512-bit FMAs as two halves; cpufreq's maximum clock first; SMT siblings are not cores.
    zen4 = hardware.cpu_peak(
        {"cpuinfo": cpuinfo("AuthenticAMD", 25, "AMD EPYC 9454 48-Core Processor", "avx2 fma avx512f", 4, 2),
         "lscpu": "CPU max MHz:  3810.0\n", "max_khz": "3700000\n", "cpus": "4"}
    )  # fmt: skip
    assert (zen4.cores, zen4.vector_bits, zen4.ghz, zen4.clock_source) == (2, 256, 3.7, "cpufreq cpuinfo_max_freq")
    zen3 = hardware.cpu_peak(
        {"cpuinfo": cpuinfo("AuthenticAMD", 25, "AMD EPYC 7B13", "avx2 fma"), "lscpu": "CPU max MHz:  3500.0\n",
         "max_khz": None, "cpus": "2"}
    )  # fmt: skip
    assert (zen3.vector_bits, zen3.ghz, zen3.gflops) == (256, 3.5, pytest.approx(2 * 2 * 8 * 2 * 3.5))
    no_clock = cpuinfo("AuthenticAMD", 25, "AMD EPYC 7B13", "avx2 fma").replace("cpu MHz\t\t: 2793.438\n", "")
    assert hardware.cpu_peak({"cpuinfo": no_clock, "lscpu": None, "max_khz": None, "cpus": "2"}) is None
    assert hardware.cpu_peak({"cpuinfo": None, "lscpu": None, "max_khz": None, "cpus": "2"}) is None


def test_mfu_is_against_the_highest_peak():
    chip = hardware.CpuPeak(cores=2, fma_units=2, vector_bits=256, ghz=2.0, clock_source="x", model="m")  # 128 GFLOP/s
    measured = peaks.MatmulPeaks((2048, 256, 256), {"mkl": 150.0, "onednn": 236.0}, 200.0, 2048, chip)
    assert measured.mlp_gflops == 236.0 and measured.mlp_kernel == "onednn"
    assert measured.best_gflops == 236.0 and measured.best_source == "measured: onednn at 2048x256x256"
    fast_chip = dataclasses.replace(chip, ghz=4.0)  # 256 GFLOP/s
    above = peaks.MatmulPeaks((2048, 256, 256), {"mkl": 150.0, "onednn": 236.0}, 200.0, 2048, fast_chip)
    assert above.best_gflops == 256.0 and above.best_source.startswith("hardware: 2 cores x 2 FMA x 8 lanes")
    described = above.describe(torch.float32)
    assert described["hardware"]["gflops"] == 256.0 and described["mlp_by_kernel"] == {"mkl": 150.0, "onednn": 236.0}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--what", "everything"], "• what:"),
        (["--device", "tpu"], "• device:"),
        (["--steps", "0"], "• steps:"),
        (["--config", "no-such-config"], "no-such-config"),
        (["--memory-sizes", "a,b"], "• memory_sizes:"),
        (["--memory-sizes", "0,800"], "• memory_sizes:"),
        (["--workers", "-1"], "• fast_workers:"),
    ],
)
def test_bad_input_is_one_line(args, message, mipnerf):
    done = mipnerf("bench", *args, "--no-peak")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_model_is_seeded_by_its_own_generator_not_the_global_one(monkeypatch):
    from mipnerf_cli.settings import BenchSettings, bench_model

    settings = BenchSettings(model=bench_model("demo")[1])
    torch.manual_seed(123)
    first = workload.build_model(settings, torch.device("cpu"))
    torch.manual_seed(456)  # another global state: the same weights
    monkeypatch.setattr(torch, "manual_seed", lambda seed: pytest.fail("bench re-seeded torch's global generator"))
    monkeypatch.setattr(
        torch.random, "manual_seed", lambda seed: pytest.fail("bench re-seeded torch's global generator")
    )
    second = workload.build_model(settings, torch.device("cpu"))
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_bench_trains_with_the_trainers_optimizer(monkeypatch, tmp_path):
    from mipnerf_cli import training as trainer

    built = []
    real = trainer.build_optimizer

    def recorded(model, settings, runtime=None):
        built.append((settings.lr_init, settings.batch_size, runtime.fast_path))
        return real(model, settings, runtime)

    monkeypatch.setattr(trainer, "build_optimizer", recorded)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    result = invoke("--config", str(config), "--what", "train", "--batch", "8", "--steps", "1", "--warmup", "0",
                    "--no-peak", "--json", "--plain")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert built == [(5e-4, 8, False)]

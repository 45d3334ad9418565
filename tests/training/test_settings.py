"""TrainSettings: defaults, precedence (defaults < yaml < flags), rejected input, paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydantic
import pytest

from mipnerf_cli.cli import format_validation_error
from mipnerf_cli.config_files import find_config, load_yaml_settings, packaged_configs, settings_for_file
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.settings import ModelSettings, TrainSettings, resolve_train_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_the_reference_ones():
    s = TrainSettings()
    assert (s.batch_size, s.lr_init, s.lr_final, s.lr_delay_steps, s.lr_delay_mult) == (4096, 5e-4, 5e-6, 2500, 0.01)
    assert (s.adam_beta1, s.adam_beta2, s.adam_eps) == (0.9, 0.999, 1e-8)
    assert (s.coarse_loss_mult, s.grad_max_norm, s.grad_max_val) == (0.1, 0.0, 0.0)
    assert (s.max_steps, s.check_interval, s.keep_checkpoints) == (1_000_000, 10_000, 3)
    assert s.white_bkgd and s.randomized and s.resume_path == "auto" and s.device == "auto"
    assert (s.model.num_samples, s.model.num_levels, s.model.resample_padding) == (128, 2, 0.01)
    assert (s.model.netdepth, s.model.netwidth, s.model.skip_layer) == (8, 256, 4)


def test_model_section_mirrors_model_config():
    from mipnerf_cli.core.models import mipnerf as model

    reference = {f.name: f.default for f in dataclasses.fields(model.ModelConfig)}
    assert ModelSettings().model_dump() == reference
    assert ModelSettings(netwidth=64).to_model_config() == model.ModelConfig(netwidth=64)


def test_the_model_config_is_declared_once():
    """ModelSettings is derived from core's ModelConfig: same fields in the same order, same
    defaults, descriptions and bounds, and the settings package names none of them itself."""
    import inspect
    import re
    import subprocess
    import sys

    from mipnerf_cli import settings
    from mipnerf_cli.core.models.mipnerf_config import ModelConfig

    fields = dataclasses.fields(ModelConfig)
    assert list(ModelSettings.model_fields) == [f.name for f in fields]
    assert len(fields) == 19
    for field in fields:
        setting = ModelSettings.model_fields[field.name]
        assert setting.default == field.default and setting.description == field.metadata["help"]
    source = "\n".join(path.read_text() for path in Path(inspect.getfile(settings)).parent.glob("*.py"))
    assert not [f.name for f in fields if re.search(rf"^\s+{f.name}\s*:", source, re.MULTILINE)]
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 1"):
        ModelSettings(netdepth_condition=0)  # a bound written in core, checked by the settings
    with pytest.raises(pydantic.ValidationError, match="'cone' or 'cylinder'"):
        ModelSettings(ray_shape="sphere")
    # reading settings stays quick: core's model config imports no torch
    code = "import sys, mipnerf_cli.settings; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_precedence_defaults_then_yaml_then_flags(tmp_path):
    config = write(tmp_path / "c.yaml", "batch_size: 512\nmax_steps: 300\nmodel:\n  netwidth: 64\n  num_samples: 16\n")
    s = resolve_train_settings(config, {"data": tmp_path, "max_steps": 50, "model": {"disable_integration": True}})
    assert s.batch_size == 512  # yaml over default
    assert s.max_steps == 50  # flag over yaml
    assert (s.model.netwidth, s.model.num_samples, s.model.disable_integration) == (
        64,
        16,
        True,
    )  # merged, not replaced
    assert s.lr_init == 5e-4  # untouched default
    # A flag that was not given (None) does not override the file.
    assert resolve_train_settings(config, {"data": tmp_path, "max_steps": None}).max_steps == 300


def test_seed_yaml_key_names_work(tmp_path):
    config = write(
        tmp_path / "seed.yaml",
        "exp_name: my_lego\ncheck_interval: 2000\nresume_path: None\nmax_steps: 12345\n",
    )
    s = resolve_train_settings(config, {"data": tmp_path})
    assert (s.exp_name, s.check_interval, s.resume_path, s.max_steps) == ("my_lego", 2000, None, 12345)


def test_yaml_numbers_without_a_dot_are_floats(tmp_path):
    # PyYAML reads "5e-4" as a string; it must still be accepted as a float.
    s = resolve_train_settings(write(tmp_path / "c.yaml", "lr_init: 5e-4\n"), {"data": tmp_path})
    assert s.lr_init == pytest.approx(5e-4)


def test_packaged_configs_resolve_by_name(tmp_path):
    assert {"demo", "lego", "lego-multiscale"} <= set(packaged_configs())
    lego = resolve_train_settings("lego", {"data_root": tmp_path})
    assert lego.data == tmp_path / "nerf_synthetic" / "lego" and not lego.multiscale
    multi = resolve_train_settings("lego-multiscale", {"data_root": tmp_path})
    assert multi.data == tmp_path / "multiscale" / "lego" and multi.multiscale
    assert multi.exp_name == "lego-multiscale"
    demo = resolve_train_settings("demo.yaml", {"data": tmp_path})
    assert demo.model.netwidth < 256 and demo.max_steps < 10_000


@pytest.mark.parametrize(
    "text, field, message",
    [
        ("lr_inti: 0.1\n", "lr_inti", "Extra inputs are not permitted"),
        ('batch_size: "many"\n', "batch_size", "valid integer"),
        ("batch_size: 0\n", "batch_size", "greater than 0"),
        ("batch_size: -4\n", "batch_size", "greater than 0"),
        ("model:\n  netwidht: 3\n", "model.netwidht", "Extra inputs"),
        ("model:\n  ray_shape: sphere\n", "model.ray_shape", "'cone' or 'cylinder'"),
        ("device: tpu\n", "device", "'auto', 'cpu' or 'cuda'"),
        ("exp_name: ../escape\n", "exp_name", "should match pattern"),
        ("lr_delay_mult: 2\n", "lr_delay_mult", "less than or equal to 1"),
        ("max_steps: 1.5\n", "max_steps", "valid integer"),
    ],
)
def test_bad_values_are_named_by_field(tmp_path, text, field, message):
    with pytest.raises(pydantic.ValidationError) as caught:
        resolve_train_settings(write(tmp_path / "bad.yaml", text), {"data": tmp_path})
    lines = format_validation_error(caught.value).splitlines()
    assert any(line.startswith(f"• {field}: ") and message in line for line in lines), lines


def test_every_problem_is_listed(tmp_path):
    with pytest.raises(pydantic.ValidationError) as caught:
        TrainSettings.model_validate({"batch_size": "many", "unknown": 1, "model": {"netwidth": 0}})
    assert {tuple(e["loc"]) for e in caught.value.errors()} == {("batch_size",), ("unknown",), ("model", "netwidth")}


def test_model_degrees_must_be_ordered():
    with pytest.raises(pydantic.ValidationError, match="max_deg_point"):
        ModelSettings(min_deg_point=8, max_deg_point=8)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    bad = write(tmp_path / "broken.yaml", "batch_size: 4\nmodel: [netwidth: 3\n")
    with pytest.raises(MipNerfError, match=r"broken\.yaml is not valid yaml at line \d"):
        resolve_train_settings(bad, {"data": tmp_path})


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(MipNerfError, match="must be a mapping"):
        load_yaml_settings(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    assert load_yaml_settings(write(tmp_path / "empty.yaml", "")) == {}


def test_missing_config_lists_the_packaged_ones(tmp_path):
    with pytest.raises(MipNerfError, match="not found.*demo, fast, lego"):
        find_config("no-such-config")
    with pytest.raises(MipNerfError, match="not found"):
        find_config(tmp_path / "missing.yaml")


def test_scene_or_data_is_required():
    with pytest.raises(MipNerfError, match="--scene NAME.*--data"):
        resolve_train_settings(None, {})


def test_scene_lookup_and_data_root_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MIPNERF_DATA", str(tmp_path / "root"))
    s = resolve_train_settings(None, {"scene": "lego"})
    assert s.data == tmp_path / "root" / "nerf_synthetic" / "lego"
    assert s.exp_name == "lego"
    s = resolve_train_settings(None, {"scene": "lego", "multiscale": True, "data_root": tmp_path / "flag"})
    assert s.data == tmp_path / "flag" / "multiscale" / "lego"  # the flag beats the environment
    assert s.exp_name == "lego-multiscale"


def test_paths_in_yaml_are_relative_to_the_file_and_never_expanded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    config = write(tmp_path / "cfg" / "c.yaml", "data: ../scenes/$HOME/x\nout_dir: runs\n")
    s = resolve_train_settings(config, {})
    assert s.data == tmp_path / "cfg" / "../scenes/$HOME/x"
    assert s.out_dir == tmp_path / "cfg" / "runs"
    # Flags are relative to the current folder.
    s = resolve_train_settings(config, {"out_dir": Path("elsewhere")})
    assert s.out_dir == tmp_path / "elsewhere"


def test_written_config_round_trips_after_moving_the_run(tmp_path):
    import shutil

    import yaml

    data = tmp_path / "data" / "scene"
    s = resolve_train_settings(None, {"data": data, "out_dir": tmp_path / "out", "exp_name": "run1"})
    run_dir = s.run_dir
    run_dir.mkdir(parents=True)
    values = settings_for_file(s, run_dir)
    assert values["data"] == "../../data/scene" and values["out_dir"] == ".."
    (run_dir / "config.yaml").write_text(yaml.safe_dump(values))
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "out", moved / "out")
    again = resolve_train_settings(moved / "out" / "run1" / "config.yaml", {})
    assert again.data == moved / "out" / "run1" / "../../data/scene"
    assert again.run_dir.resolve() == (moved / "out" / "run1").resolve()
    assert again.model_dump(exclude={"data", "out_dir", "data_root"}) == s.model_dump(
        exclude={"data", "out_dir", "data_root"}
    )

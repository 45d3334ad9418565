"""The commands that read a run (eval, render, view, plot, export): RUN positional or as the
older --run / --ckpt, settings from --config with flags over it, one meaning per flag name.

The library call of each command is replaced by one that records the settings it was given
(as fastapi-cli's and huggingface_hub's CLI tests do), so these run in milliseconds; what a
user sees on a refusal is checked through the real CLI (`mipnerf` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import assert_refused, snapshot
from typer.testing import CliRunner

from mipnerf_cli.cli import app

COMMANDS = ("eval", "render", "view", "plot", "export")


class Called(Exception):
    """Raised by a stand-in library function, carrying what the command passed it."""

    def __init__(self, settings) -> None:
        super().__init__("called")
        self.settings = settings


def _record_settings(settings, *args, **kwargs):
    raise Called(settings)


def _record_view(run, ckpt, data, host, port, max_size, device, cpu_threads, watch, keyframes_out, report=None):
    raise Called(
        dict(run=run, ckpt=ckpt, data=data, host=host, port=port, max_size=max_size, device=device, watch=watch)
    )


def _record_plot(path):
    raise Called(dict(run=path.parent))


@pytest.fixture
def called(monkeypatch):
    """`called(*args)`: run the CLI in-process and return what the library function was given."""
    from mipnerf_cli import evaluation, plotting
    from mipnerf_cli.export import geometry
    from mipnerf_cli.rendering import video
    from mipnerf_cli.viewer import server as viewer

    monkeypatch.setattr(evaluation, "evaluate", _record_settings)
    monkeypatch.setattr(video, "render_path", _record_settings)
    monkeypatch.setattr(geometry, "export_geometry", _record_settings)
    monkeypatch.setattr(viewer, "open_viewer", _record_view)
    monkeypatch.setattr(plotting, "read_metrics", _record_plot)

    def invoke(*args):
        result = CliRunner().invoke(app, [str(arg) for arg in args])
        assert isinstance(result.exception, Called), (result.exception, result.output)
        value = result.exception.settings
        return value if isinstance(value, dict) else value.model_dump()

    return invoke


@pytest.fixture
def run(tmp_path) -> Path:
    """A run folder with a checkpoint file (the library is not called, so it may be empty)."""
    (tmp_path / "run" / "ckpt").mkdir(parents=True)
    (tmp_path / "run" / "ckpt" / "last.pt").write_bytes(b"")
    return tmp_path / "run"


@pytest.mark.parametrize("command", COMMANDS)
def test_the_run_is_positional_or_one_of_the_older_flags(command, called, run):
    ckpt = run / "ckpt" / "last.pt"
    folder = called(command, run)
    if command == "plot":  # plot reads the run folder's metrics.jsonl
        assert folder["run"] == run
        assert called(command, ckpt)["run"] == run  # a checkpoint: its run folder
        assert called(command, "--run", run)["run"] == run
        assert called(command, "--ckpt", ckpt)["run"] == run
        return
    assert (folder["run"], folder["ckpt"]) == (run, None)
    assert (called(command, ckpt)["run"], called(command, ckpt)["ckpt"]) == (None, ckpt)
    assert (called(command, "--run", run)["run"], called(command, "--run", run)["ckpt"]) == (run, None)
    assert called(command, "--ckpt", ckpt)["ckpt"] == ckpt


# command -> (a yaml key, its value in the file, the flag that overrides it, its value, another key kept from the file)
CONFIG_CASES = {
    "eval": ("limit", 3, "--limit", 5, ("split", "val")),
    "render": ("frames", 9, "--frames", 4, ("fps", 12.0)),
    "view": ("port", 8123, "--port", 8124, ("max_size", 64)),
    "export": ("grid", 32, "--grid", 48, ("what", "pointcloud")),
    "plot": (None, None, None, None, None),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_config_file_then_flags(command, called, run, tmp_path):
    key, in_file, flag, given, (kept, kept_value) = (
        CONFIG_CASES[command] if command != "plot" else (None, None, None, None, (None, None))
    )
    config = tmp_path / "configs" / f"{command}.yaml"
    config.parent.mkdir()
    if command == "plot":
        config.write_text("run: ../run\nout: plot.png\n")
        assert called(command, "--config", config)["run"].resolve() == run  # relative to the file's folder
        return
    config.write_text(f"run: ../run\n{key}: {in_file}\n{kept}: {kept_value}\n")
    from_file = called(command, "--config", config)
    assert (from_file["run"].resolve(), from_file[key], from_file[kept]) == (run, in_file, kept_value)
    over = called(command, "--config", config, flag, given)
    assert (over[key], over[kept]) == (given, kept_value)
    # A run given on the command line replaces the file's, whichever spelling either uses.
    ckpt = run / "ckpt" / "last.pt"
    replaced = called(command, ckpt, "--config", config)
    assert (replaced["run"], replaced["ckpt"]) == (None, ckpt)


def test_flags_left_out_are_the_settings_defaults(called, run):
    from mipnerf_cli.settings import EvalSettings, ExportSettings, RenderSettings

    for command, settings_type in (("eval", EvalSettings), ("render", RenderSettings), ("export", ExportSettings)):
        got = called(command, run)
        expected = settings_type(run=run).model_dump()
        assert got == expected, command
    view = called("view", run)
    assert (view["host"], view["port"], view["max_size"], view["watch"]) == ("127.0.0.1", 8080, 256, True)


def test_renamed_options_keep_their_older_spelling(called, run):
    assert called("view", run, "--max-size", 96)["max_size"] == 96
    assert called("view", run, "--resolution", 96)["max_size"] == 96
    assert called("export", run, "--grid", 40)["grid"] == 40
    assert called("export", run, "--resolution", 40)["grid"] == 40
    assert called("render", run, "--resolution", "20x10")["resolution"] == (20, 10)  # render's is WxH
    assert called("render", run, "--downscale", 2)["downscale"] == 2
    assert called("render", run, "--scale", 2)["downscale"] == 2  # render's older spelling (eval's --scale: levels)
    assert called("eval", run, "--scale", 2)["scale"] == 2


def test_render_settings_take_the_older_scale_key(called, run, tmp_path):
    from mipnerf_cli.settings import RenderSettings

    assert RenderSettings(run=run, scale=4).downscale == 4
    config = tmp_path / "render.yaml"
    config.write_text("scale: 3\n")
    assert called("render", run, "--config", config)["downscale"] == 3
    assert called("render", run, "--config", config, "--downscale", 5)["downscale"] == 5  # the flag wins


def test_help_shows_the_settings_defaults(called, run):
    from mipnerf_cli.settings import RenderSettings

    result = CliRunner().invoke(app, ["render", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "[default: 120]" in result.output and "[default: auto]" in result.output
    # shown only: the same command object afterwards still sees its flags as "not given"
    assert called("render", run, "--fps", 5) == RenderSettings(run=run, fps=5).model_dump()


def test_nproc_passes_the_positional_run_on(monkeypatch, run):
    from mipnerf_cli.commands import launch

    argv = []
    monkeypatch.setattr(launch, "check_devices", lambda nproc, device: None)
    monkeypatch.setattr(launch, "run_torchrun", lambda ctx, nproc: argv.extend(launch.torchrun_argv(ctx, nproc)) or 0)
    result = CliRunner().invoke(app, ["render", str(run), "--frames", "3", "--nproc", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert argv[-6:] == ["render", str(run), "--frames", "3", "--device", "cpu"]


# ----------------------------------------------------------------------------- refusals, through the real CLI


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_config_and_run_choices_are_one_line(command, mipnerf, run, tmp_path):
    before = snapshot(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_setting: 1\n")
    assert_refused(mipnerf(command, run, "--config", bad), "no_such_setting", "no such setting")
    assert_refused(mipnerf(command, run, "--config", tmp_path / "missing.yaml"), "missing.yaml", "not found")
    broken = tmp_path / "broken.yaml"
    broken.write_text("frames: [1\n")
    assert_refused(mipnerf(command, run, "--config", broken), "broken.yaml", "not valid yaml")
    assert_refused(mipnerf(command, run, "--run", run), "RUN and --run", "give it once")
    assert_refused(mipnerf(command), "no run given", "RUN")
    bad.unlink()
    broken.unlink()
    assert snapshot(tmp_path) == before


def test_an_option_and_its_older_spelling_together_are_refused(mipnerf, run):
    assert_refused(mipnerf("view", run, "--max-size", 9, "--resolution", 9), "--max-size and --resolution")
    assert_refused(mipnerf("export", run, "--grid", 9, "--resolution", 9), "--grid and --resolution")
    assert_refused(mipnerf("render", run, "--downscale", 2, "--scale", 2), "--downscale and --scale", "as --downscale")

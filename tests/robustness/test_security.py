"""Issue 10, security: checkpoints are only ever unpickled as plain data (weights_only=True),
a checkpoint carrying a pickled object is refused before anything runs, and paths or values
in config files are taken literally (never executed, never shell- or ~-expanded)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from golden import REPO
from tiny import tiny_settings

PACKAGE = REPO / "mipnerf_cli"
TINY = tiny_settings(batch_size=32, max_steps=1, check_interval=1, lr_delay_steps=0, val_views=0)


def calls_in_package():
    """(file, line, dotted name of the callee, keyword arguments) of every call in mipnerf_cli."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                yield path.relative_to(PACKAGE.parent), node.lineno, ast.unparse(node.func), node.keywords


def test_every_torch_load_is_weights_only():
    loads = [
        (f, line, kw) for f, line, name, kw in calls_in_package() if name.endswith(("torch.load", "serialization.load"))
    ]
    assert loads, "no torch.load found: the scan is broken"
    for file, line, keywords in loads:
        given = {k.arg: k.value for k in keywords}
        assert "weights_only" in given, f"{file}:{line}: torch.load without weights_only=True"
        assert isinstance(given["weights_only"], ast.Constant) and given["weights_only"].value is True, f"{file}:{line}"


@pytest.mark.parametrize(
    "callee",
    # ".x": any method x (Path(...).expanduser()); "x": the builtin itself (not model.eval()).
    [
        "pickle.load",
        "pickle.loads",
        "yaml.load",
        "yaml.unsafe_load",
        "yaml.full_load",
        "eval",
        "exec",
        "os.system",
        "os.popen",
        ".expandvars",
        ".expanduser",
    ],
)
def test_no_unsafe_loading_or_shell_expansion_in_the_package(callee):
    def matches(name: str) -> bool:
        if callee.startswith("."):
            return name.endswith(callee)
        return name == callee or ("." in callee and name.endswith("." + callee))

    found = [f"{f}:{line}" for f, line, name, _ in calls_in_package() if matches(name)]
    assert found == [], f"{callee} called at {found}"


def test_no_subprocess_goes_through_a_shell():
    shells = [
        f"{f}:{line}"
        for f, line, name, keywords in calls_in_package()
        if name.startswith("subprocess.") and any(k.arg == "shell" for k in keywords)
    ]
    assert shells == []


# ----------------------------------------------------------------------------- a checkpoint with a pickled object


@pytest.fixture(scope="module")
def scene(tmp_path_factory, mipnerf) -> Path:
    path = tmp_path_factory.mktemp("scene") / "demo"
    assert mipnerf("demo-scene", path, "--size", 16, "--train", 4, "--val", 1, "--test", 2).returncode == 0
    return path


class Exploit:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def evil_checkpoint(folder: Path, scene: Path, where: str) -> tuple[Path, Path]:
    """A checkpoint in the real format, valid checksum included, with the exploit in `where`."""
    import torch

    from mipnerf_cli.runs import checkpoints
    from mipnerf_cli.runs.payload import FORMAT_VERSION

    marker = folder / "code-ran"
    payload = {
        "format_version": FORMAT_VERSION,
        "step": 1,
        "model": {"w": torch.ones(2)},
        "optimizer": {},
        "model_config": {},
        "settings": {"data": str(scene)},
        "scene": {"kind": "blender", "white_bkgd": True},
        "rng": {},
    }
    payload[where] = Exploit(marker) if where != "model" else {"w": Exploit(marker)}
    path = folder / "evil.pt"
    path.write_bytes(checkpoints.serialize(payload))
    return path, marker


@pytest.mark.parametrize(
    "command, where",
    [("eval", "model"), ("eval", "settings"), ("render", "scene"), ("train", "optimizer")],
)
def test_a_checkpoint_with_a_pickled_object_is_refused_and_nothing_runs(tmp_path, scene, mipnerf, command, where):
    path, marker = evil_checkpoint(tmp_path, scene, where)
    if command == "train":
        config = tmp_path / "tiny.yaml"
        config.write_text(yaml.safe_dump(TINY))
        args = ["train", "--config", config, "--data", scene, "--out-dir", tmp_path / "out", "--resume", path]
    else:
        args = [command, "--ckpt", path, "--device", "cpu", "--out", tmp_path / "out"]
    before = snapshot(tmp_path)
    result = mipnerf(*args)
    assert_refused(result, f"checkpoint {path} contains pickled Python objects", "refusing to load it")
    assert not marker.exists()
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- config values stay literal


def test_paths_in_a_config_are_never_executed_or_expanded(tmp_path, scene, mipnerf, monkeypatch):
    marker = tmp_path / "pwned"
    folder = tmp_path / "configs"
    folder.mkdir()
    for data in (f"$(touch {marker})", f"`touch {marker}`", "~/scene", "$HOME/scene", "${HOME}"):
        config = folder / "c.yaml"
        config.write_text(yaml.safe_dump({**TINY, "data": data}))
        result = mipnerf("train", "--config", config, "--out-dir", tmp_path / "out")
        # Relative to the config's folder, character for character.
        assert_refused(result, f"scene folder {folder / data} not found")
        assert not marker.exists() and not (tmp_path / "out").exists()


def test_an_out_dir_with_shell_syntax_is_a_folder_of_that_name(tmp_path, scene, mipnerf):
    marker = tmp_path / "pwned"
    config = tmp_path / "c.yaml"
    out = f"$(touch {marker.name})~"
    config.write_text(yaml.safe_dump({**TINY, "data": str(scene), "out_dir": out}))
    result = mipnerf("train", "--config", config, "--exp-name", "run", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / out / "run" / "ckpt" / "last.pt").is_file()
    assert not marker.exists()


def test_yaml_tags_that_would_run_code_are_refused(tmp_path, scene, mipnerf):
    marker = tmp_path / "pwned"
    config = tmp_path / "c.yaml"
    config.write_text(f'data: !!python/object/apply:os.system ["touch {marker}"]\n')
    result = mipnerf("train", "--config", config, "--out-dir", tmp_path / "out")
    assert_refused(result, f"config {config} is not valid yaml")
    assert not marker.exists()

import subprocess
import sys

from mipnerf_cli import __version__


def run(*args):
    return subprocess.run([sys.executable, "-m", "mipnerf_cli", *args], capture_output=True, text=True)


def test_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("convert", "train", "eval", "render", "bench", "demo-scene"):
        assert command in result.stdout


def test_short_help_and_version():
    assert run("-h").returncode == 0
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mipnerf {__version__}"

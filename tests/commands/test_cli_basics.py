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


def test_usage_errors_are_one_line_without_traceback():
    for args in (("nope",), ("convert",), ("eval", "--scale", "abc")):
        result = run(*args)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr


def test_no_arguments_prints_help():
    result = run()
    assert "Usage" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr

"""`mipnerf` itself: help for the app and for every command it registers, the version, and
usage errors as one line."""

import pytest
from typer.main import get_command

from mipnerf_cli import __version__
from mipnerf_cli.cli import app


def registered_commands() -> list[tuple[str, ...]]:
    """Every command of the Typer app (and of any group in it), as the words that call it."""

    def walk(group, words: tuple[str, ...]):
        for name, command in group.commands.items():
            yield (*words, name)
            if hasattr(command, "commands"):
                yield from walk(command, (*words, name))

    return sorted(walk(get_command(app), ()))


COMMANDS = registered_commands()


def test_help_lists_every_command(mipnerf):
    result = mipnerf("--help")
    assert result.returncode == 0
    for command in ("convert", "train", "eval", "render", "bench", "demo-scene"):
        assert command in result.stdout


def test_help_lists_every_registered_command(mipnerf):
    assert len(COMMANDS) >= 9  # the enumeration below found the app's commands
    result = mipnerf("--help")
    assert result.returncode == 0
    visible = [words for words in COMMANDS if len(words) == 1 and not get_command(app).commands[words[0]].hidden]
    for (command,) in visible:
        assert f" {command} " in result.stdout, command


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_answers_help(mipnerf, command, flag):
    result = mipnerf(*command, flag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr and result.stderr == ""
    assert f"Usage: mipnerf {' '.join(command)} " in result.stdout, result.stdout


def test_short_help_and_version(mipnerf):
    assert mipnerf("-h").returncode == 0
    result = mipnerf("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mipnerf {__version__}"


def test_usage_errors_are_one_line_without_traceback(mipnerf):
    for args in (("nope",), ("convert",), ("eval", "--scale", "abc")):
        result = mipnerf(*args)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr


def test_no_arguments_prints_help(mipnerf):
    result = mipnerf()
    assert "Usage" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr

"""The `mipnerf` Typer app: registers the commands and turns user errors into one line.

Every command lives in its own module under ``mipnerf_cli/commands``; this file only
wires them up. A :class:`~mipnerf_cli.errors.MipNerfError` or a pydantic validation error
becomes a short message on stderr and exit code 1; set ``MIPNERF_DEBUG=1`` to see the
traceback instead.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from typing import Annotated, Optional

import typer

from mipnerf_cli import __version__
from mipnerf_cli.commands import bench, convert, demo_scene, export, plot, render, train, view
from mipnerf_cli.commands import eval as evaluate
from mipnerf_cli.commands.options import with_settings_defaults
from mipnerf_cli.errors import MipNerfError

try:  # recent typer releases vendor click; older ones use the click package
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

app = typer.Typer(
    name="mipnerf",
    help="mip-NeRF in PyTorch: convert, train, evaluate, render, view and export Blender scenes, LLFF scenes and your own photos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mipnerf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """mip-NeRF in PyTorch: convert, train, evaluate, render, view and export Blender scenes, LLFF scenes and your own photos."""


def _interruptible(command):
    """`command` with Ctrl+C turned into typer.Abort, which main() reports as "interrupted".

    typer catches a KeyboardInterrupt raised inside a command and returns exit code 130
    without a word; an Abort passes through to main() instead.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise typer.Abort() from None

    return run


app.command("convert")(_interruptible(convert.convert_command))
app.command("demo-scene")(_interruptible(demo_scene.demo_scene_command))
app.command("train")(_interruptible(train.train_command))
app.command("eval", cls=with_settings_defaults("EvalSettings"))(_interruptible(evaluate.eval_command))
app.command("render", cls=with_settings_defaults("RenderSettings"))(_interruptible(render.render_command))
app.command("bench")(_interruptible(bench.bench_command))
app.command("plot", cls=with_settings_defaults("PlotSettings"))(_interruptible(plot.plot_command))
app.command("view", cls=with_settings_defaults("ViewSettings"))(_interruptible(view.view_command))
app.command("export", cls=with_settings_defaults("ExportSettings"))(_interruptible(export.export_command))


def format_validation_error(error) -> str:
    """One `• field: message` line per problem of a pydantic ValidationError, with the
    value that was given, or for an unknown key the setting it was probably meant to be."""
    lines = []
    for problem in error.errors():
        loc = tuple(problem.get("loc", ()))
        field = ".".join(str(part) for part in loc) or "settings"
        message = problem.get("msg", "invalid value")
        value = problem.get("input")
        if problem.get("type") == "extra_forbidden" and loc:
            close = difflib.get_close_matches(str(loc[-1]), _setting_names(error.title, loc), n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            message += f" (no such setting; {guess}fix or remove it)"
        elif isinstance(value, (str, int, float)) and len(repr(value)) <= 40:
            message += f" (got {value!r})"
        lines.append(f"• {field}: {message}")
    return "\n".join(lines)


def _setting_names(model_name: str, loc: tuple) -> list[str]:
    """The keys allowed next to ``loc[-1]`` in the settings model called `model_name`."""
    import pydantic

    from mipnerf_cli import settings

    model = getattr(settings, model_name, None)
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        annotation = field.annotation if field is not None else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) else None
    return list(model.model_fields) if model is not None else []


def main() -> None:
    """Console-script entry point."""
    import pydantic

    debug = os.environ.get("MIPNERF_DEBUG", "") not in ("", "0")
    try:
        # standalone_mode=False hands click's usage errors to us, so they become one line too
        exit_code = app(prog_name="mipnerf", standalone_mode=False)
    except NoArgsIsHelpError as error:
        error.show()
        sys.exit(error.exit_code)
    except UsageError as error:
        hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        sys.stderr.write(f"error: {error.format_message()}{hint}\n")
        sys.exit(error.exit_code)
    except ClickException as error:
        sys.stderr.write(f"error: {error.format_message()}\n")
        sys.exit(1)
    except typer.Abort:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except MipNerfError as error:
        if debug:
            raise
        sys.stderr.write(f"error: {error}\n")
        sys.exit(1)
    except pydantic.ValidationError as error:
        if debug:
            raise
        problems = format_validation_error(error)
        if "\n" in problems:
            sys.stderr.write("error: invalid settings\n" + problems + "\n")
        else:  # one problem, one line
            sys.stderr.write(f"error: invalid setting {problems}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)

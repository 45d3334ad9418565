"""Options that several commands share, defined once, and the rules that go with them.

Each flag name has one meaning across the commands. Options default to None, "not given":
the defaults live in the pydantic settings (`mipnerf_cli.settings`), and a given flag
overrides the same key of a ``--config`` file (`settings.resolve_settings`).

Old spellings stay accepted as hidden options where scripts may use them, and the help of
the new option names them: ``--run DIR`` / ``--ckpt FILE`` (now the positional RUN),
`view --resolution` (now ``--max-size``), `export --resolution` (now ``--grid``), `render --scale`
(now ``--downscale``: `eval --scale` is the number of resolution levels scored). A message about
such an option names the spelling that was typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mipnerf_cli.errors import MipNerfError

# -- the run a command reads: one positional RUN (a run folder or a checkpoint file)

RunArgument = Annotated[
    Optional[Path],
    typer.Argument(
        metavar="RUN",
        help="A run folder written by `mipnerf train` (its newest checkpoint is used) or a checkpoint file. "
        "The older --run DIR and --ckpt FILE still work.",
        show_default=False,
    ),
]
RunOption = Annotated[
    Optional[Path], typer.Option("--run", hidden=True, help="A run folder (the older spelling of RUN).")
]
CkptOption = Annotated[
    Optional[Path], typer.Option("--ckpt", hidden=True, help="A checkpoint file (the older spelling of RUN).")
]
RUN_KEYS = ("run", "ckpt")  # one choice: a run given on the command line replaces a config file's


def run_choice(positional: Optional[Path], run: Optional[Path], ckpt: Optional[Path]) -> dict[str, Optional[Path]]:
    """The settings keys ``run`` / ``ckpt`` from RUN or its older spellings (at most one of them).

    RUN that is a file is a checkpoint; anything else is a run folder (the loader reports
    one that is missing). Nothing given: {} (a config file may name the run)."""
    given = [(name, value) for name, value in (("RUN", positional), ("--run", run), ("--ckpt", ckpt)) if value]
    if len(given) > 1:
        names = " and ".join(name for name, _ in given)
        raise MipNerfError(
            f"{names} both name the run; give it once: as RUN (a run folder or a checkpoint file), "
            "or either --run DIR or --ckpt FILE"
        )
    if positional is not None:
        return {"run": None, "ckpt": positional} if positional.is_file() else {"run": positional, "ckpt": None}
    if run is not None or ckpt is not None:
        return {"run": run, "ckpt": ckpt}
    return {}


# -- settings from a file

ConfigOption = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="Settings yaml with this command's setting names as keys; flags override it, and relative "
        "paths inside it are relative to the file.",
        show_default=False,
    ),
]


def run_settings(
    settings_type: type,
    config: Optional[Path],
    flags: dict[str, Any],
    positional: Optional[Path] = None,
    run: Optional[Path] = None,
    ckpt: Optional[Path] = None,
):
    """The settings of a command that reads a run: defaults < `config` < the flags given
    (None: not given), the run from RUN or its older spellings, else from the config file."""
    from mipnerf_cli.settings import resolve_settings

    settings = resolve_settings(settings_type, config, {**flags, **run_choice(positional, run, ckpt)}, (RUN_KEYS,))
    if settings.run is None and settings.ckpt is None:
        raise MipNerfError("no run given: pass RUN, a run folder written by `mipnerf train` or a checkpoint file")
    return settings


def one_of(new: tuple[str, Any], old: tuple[str, Any]) -> Any:
    """The value of an option given under its name or its older spelling (not both)."""
    (new_name, new_value), (old_name, old_value) = new, old
    if new_value is not None and old_value is not None:
        raise MipNerfError(f"{new_name} and {old_name} are the same option; give it once, as {new_name}")
    return new_value if new_value is not None else old_value


# -- options with one meaning wherever they appear

DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Scene folder. Default: the scene the checkpoint was trained on."),
]
ChunkOption = Annotated[
    Optional[int],
    typer.Option("--chunk", help="Rays per forward pass; lower it if the device runs out of memory."),
]
DeviceOption = Annotated[Optional[str], typer.Option("--device", help="auto (CUDA when available), cpu or cuda.")]
ProgressOption = Annotated[
    Optional[bool],
    typer.Option("--progress/--no-progress", help="Show a progress bar (plain lines when not a terminal)."),
]
CpuThreadsOption = Annotated[
    Optional[int],
    typer.Option(
        "--cpu-threads", help="torch CPU threads; fewer can be faster on a busy machine (default: torch's choice)."
    ),
]


# -- help that shows the settings' defaults


def with_settings_defaults(settings_name: str) -> type:
    """A Typer command class whose help shows, for each option left at None ("not given"),
    the default of the same-named field of ``settings.<settings_name>``: the defaults are
    written once, in the settings, and read only when help is asked for (reading the
    settings module costs more than `mipnerf --help` should wait)."""
    from typer.core import TyperCommand

    class SettingsDefaultsCommand(TyperCommand):
        def settings_defaults(self) -> list[tuple[Any, Any]]:
            """(parameter, the settings' default) for each option that defaults to "not given"
            and has a default worth showing (docs/commands.md is generated from these too)."""
            from mipnerf_cli import settings

            fields = getattr(settings, settings_name).model_fields
            shown = []
            for param in self.params:
                field = fields.get(param.name or "")
                if field is None or param.default is not None or field.is_required():
                    continue
                default = field.get_default(call_default_factory=True)
                if default is not None:
                    shown.append((param, default))
            return shown

        def format_help(self, ctx, formatter) -> None:
            # a lone flag (--keep-frames) says nothing when off, as Typer's own help does
            shown = [
                (p, d) for p, d in self.settings_defaults() if d is not False or getattr(p, "secondary_opts", None)
            ]
            saved = [(param, param.default, param.show_default) for param, _ in shown]
            for param, default in shown:
                param.default, param.show_default = default, True
            try:
                super().format_help(ctx, formatter)
            finally:  # the command object outlives this help (tests run many commands in one process)
                for param, default, show_default in saved:
                    param.default, param.show_default = default, show_default

    return SettingsDefaultsCommand

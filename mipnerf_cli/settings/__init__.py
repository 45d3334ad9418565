"""All settings of the commands: pydantic models, resolved in one place (`resolve_settings`;
reading and writing the yaml files: `mipnerf_cli.config_files`). Nothing here reads a scene.

Precedence, lowest first: the defaults written here, a ``--config`` yaml file (a path or
the name of a config shipped in ``mipnerf_cli/configs``), then the command-line flags.
Unknown keys and bad values are pydantic validation errors, which the CLI prints as
``• field: message`` lines. Relative paths inside a yaml file are relative to that file's
folder (so a run folder's ``config.yaml`` still works after the folder moves); relative
paths given on the command line are relative to the current directory. Paths are never
shell-expanded.

The models live in the modules of this package, one per group of commands (base: the model
sections and `resolve_settings`; train; commands: eval, render, view, plot, export; capture:
convert's photo/video options; bench); every public name is re-exported here, in that order,
so callers import from ``mipnerf_cli.settings``.
"""

from __future__ import annotations

from mipnerf_cli.settings.base import *  # noqa: F403
from mipnerf_cli.settings.base import _config_fields  # noqa: F401
from mipnerf_cli.settings.bench import *  # noqa: F403
from mipnerf_cli.settings.capture import *  # noqa: F403
from mipnerf_cli.settings.commands import *  # noqa: F403
from mipnerf_cli.settings.train import *  # noqa: F403

"""Settings files: finding a config (a file or a packaged config's name), reading its yaml with
relative paths anchored at the file's folder, merging it with flags, and writing a run's
resolved settings back (paths relative to the run folder). The models themselves and their
resolution are `mipnerf_cli.settings`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from pydantic import BaseModel

from mipnerf_cli.errors import MipNerfError

# The path settings of `mipnerf train` (TrainSettings' Path fields and the resume_path file).
TRAIN_PATH_FIELDS = ("out_dir", "data", "data_root", "resume_path")


def packaged_configs() -> list[str]:
    """Names of the configs shipped with the package (`--config demo`)."""
    folder = resources.files("mipnerf_cli") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def find_config(name_or_path: str | Path) -> Path:
    """A config file path from a path or a packaged config's name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    if "/" not in text and os.sep not in text:
        stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
        packaged = resources.files("mipnerf_cli") / "configs" / f"{stem}.yaml"
        if packaged.is_file():
            return Path(str(packaged))
    if path.exists():
        raise MipNerfError(f"config {path} is not a file")
    raise MipNerfError(
        f"config {text} not found: give a yaml file or one of the packaged configs ({', '.join(packaged_configs())})"
    )


def load_yaml_settings(path: Path, path_fields: tuple[str, ...] = TRAIN_PATH_FIELDS) -> dict[str, Any]:
    """The mapping in a yaml config, with its relative paths (`path_fields`) anchored at the file's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MipNerfError(f"cannot read config {path}: {error}") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise MipNerfError(f"config {path} is not valid yaml{line}: {problem}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise MipNerfError(f"config {path} must be a mapping of setting: value, not a {type(values).__name__}")
    return anchor_paths(values, path.parent, path_fields)


def anchor_paths(
    values: dict[str, Any], folder: Path, path_fields: tuple[str, ...] = TRAIN_PATH_FIELDS
) -> dict[str, Any]:
    """Relative path settings (and a resume_path file) taken relative to `folder`."""
    anchored = dict(values)
    for key in path_fields:
        value = anchored.get(key)
        if (
            not isinstance(value, str)
            or not value
            or (key == "resume_path" and value in ("auto", "None", "none", "null"))
        ):
            continue
        if not Path(value).is_absolute():
            anchored[key] = str(folder / value)
    return anchored


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def path_fields(settings_type: type[BaseModel]) -> tuple[str, ...]:
    """The settings that are paths (anchored at a config file's folder), resume_path included."""
    paths = tuple(
        name for name, field in settings_type.model_fields.items() if field.annotation in (Path, Optional[Path])
    )
    return paths + (("resume_path",) if "resume_path" in settings_type.model_fields else ())


def settings_for_file(settings: BaseModel, folder: Path) -> dict[str, Any]:
    """Plain data for a yaml file in `folder`, paths relative to it where possible."""
    values = settings.model_dump(mode="json")
    for key in path_fields(type(settings)):
        value = values.get(key)
        if not value or (key == "resume_path" and value == "auto"):
            continue
        try:
            values[key] = os.path.relpath(value, folder)
        except ValueError:  # another drive on Windows: keep it absolute
            pass
    return values

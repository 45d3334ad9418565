"""The model sections (derived from core's config dataclasses, declared there once) and
`resolve_settings`, the one route from defaults to a yaml file to the flags."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from mipnerf_cli.config_files import deep_merge, find_config, load_yaml_settings, path_fields
from mipnerf_cli.core.models.mipnerf_config import ModelConfig
from mipnerf_cli.core.models.trimip_config import TriMipConfig

DATA_ROOT_ENV = "MIPNERF_DATA"
SettingsT = TypeVar("SettingsT", bound=BaseModel)
SIMPLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _config_fields(config_type: type) -> dict[str, Any]:
    """pydantic fields (type, Field) of a core model config dataclass: its defaults, bounds and
    descriptions (``core.models.mipnerf_config.hyper``), in its order."""
    types = typing.get_type_hints(config_type)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):
        extra = dict(field.metadata)
        description = extra.pop("help", None)
        fields[field.name] = (types[field.name], Field(field.default, description=description, **extra))
    return fields


class ModelSettings(create_model("ModelFields", __module__=__name__, **_config_fields(ModelConfig))):
    """The `model:` section: the fields of `core.models.mipnerf_config.ModelConfig` (declared there
    once, with the reference defaults), and the rules that span fields."""

    model_config = ConfigDict(extra="forbid")
    config_type: ClassVar[type] = ModelConfig

    @model_validator(mode="after")
    def _degrees_ordered(self) -> "ModelSettings":
        if self.max_deg_point <= self.min_deg_point:
            raise ValueError(
                f"max_deg_point ({self.max_deg_point}) must be larger than min_deg_point ({self.min_deg_point})"
            )
        return self

    def to_model_config(self) -> ModelConfig:
        """The engine's frozen `ModelConfig` with these values."""
        return self.config_type(**self.model_dump())


class TriMipSettings(create_model("TriMipFields", __module__=__name__, **_config_fields(TriMipConfig))):
    """The `trimip:` section (the grid model, `model_family: trimip`, `--config fast`): the
    fields of `core.models.trimip_config.TriMipConfig`, declared there once."""

    model_config = ConfigDict(extra="forbid")
    config_type: ClassVar[type] = TriMipConfig

    @field_validator("plane_resolution")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"must be a power of two (64, 128, 256, ...), not {value}")
        return value

    def to_model_config(self) -> TriMipConfig:
        """The engine's frozen `TriMipConfig` with these values."""
        return self.config_type(**self.model_dump())


def resolve_settings(
    settings_type: type[SettingsT],
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    choices: tuple[tuple[str, ...], ...] = (),
) -> SettingsT:
    """Any command's settings: defaults < `config` yaml < `overrides` (None: not given).

    choices: groups of keys that are one choice (``("run", "ckpt")``): an override of one of
    them replaces the file's values of the whole group.
    Raises pydantic.ValidationError for bad values, MipNerfError for a bad file.
    """
    values: dict[str, Any] = {}
    if config is not None:
        values = load_yaml_settings(find_config(config), path_fields(settings_type))
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    for group in choices:
        if any(key in given for key in group):
            values = {key: value for key, value in values.items() if key not in group}
    return settings_type.model_validate(deep_merge(values, given))

#!/usr/bin/env python3
"""Print the yaml keys of `mipnerf train` (TrainSettings and its `model:` section) as the
markdown table in README.md's "Settings" section, straight from mipnerf_cli/settings.py:

    python scripts/settings_table.py
"""

from __future__ import annotations

from mipnerf_cli.settings import ModelSettings, TrainSettings

DEFAULT_FACTORY_TEXT = {"data_root": "`data` (env `MIPNERF_DATA`)", "model": "see below"}
# For the fields whose pydantic description is empty.
EXTRA_DESCRIPTIONS = {
    "seed": "seed of the initial weights, the batches and the sampling noise",
    "lr_init": "learning rate after the warm-up (log-linear decay from here)",
    "lr_final": "learning rate at max_steps",
    "adam_beta1": "Adam β1",
    "adam_beta2": "Adam β2",
    "adam_eps": "Adam ε",
    "coarse_loss_mult": "weight of the coarse level's loss",
    "max_steps": "train up to this step (also the end of the lr schedule)",
    "device": "auto (CUDA when available), cpu or cuda",
    "ray_shape": "cone (mip-NeRF) or cylinder",
}


def default_text(name: str, field) -> str:
    if field.default_factory is not None:
        return DEFAULT_FACTORY_TEXT.get(name, "(computed)")
    value = field.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"`{value:_}`".replace("_", ",")
    return f"`{value}`"


def rows(model, prefix: str = "") -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        if name == "model":
            continue
        description = field.description or EXTRA_DESCRIPTIONS.get(name, "")
        description = description.replace("|", "\\|").replace("<", "&lt;")
        lines.append(f"| `{prefix}{name}` | {default_text(name, field)} | {description} |")
    return lines


def main() -> None:
    print("| key | default | meaning |")
    print("|---|---|---|")
    print("\n".join(rows(TrainSettings)))
    print("\n".join(rows(ModelSettings, "model.")))


if __name__ == "__main__":
    main()

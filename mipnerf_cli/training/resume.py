"""Where a run starts: step 0, or a verified checkpoint of the same model (``--resume``).

A resumed run follows the trajectory of the checkpoint it starts from: the run's
checkpoints past that point are set aside, so that rotation and later resumes never mix
two trajectories.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runs import checkpoints, payload
from mipnerf_cli.runs.folder import RunFiles
from mipnerf_cli.settings import TrainSettings


@dataclasses.dataclass
class Start:
    step: int = 0
    elapsed_s: float = 0.0
    payload: dict[str, Any] | None = None
    source: Path | None = None
    cpu_kernel: str | None = None  # the matmul kernel the checkpoint's steps ran (payload.Recorded.cpu_kernel)


def find_start(settings: TrainSettings, files: RunFiles, report: Callable[[str], None]) -> Start:
    """Where training begins: step 0, or a verified checkpoint (`resume_path`)."""
    resume = settings.resume_path
    has_checkpoints = bool(checkpoints.step_checkpoints(files.ckpt_dir)) or (files.ckpt_dir / checkpoints.LAST).exists()
    if resume is None:
        if has_checkpoints:
            raise MipNerfError(
                f"{files.dir} already has checkpoints; pass --resume auto to continue it, "
                "or another --exp-name to start a new run"
            )
        return Start()
    if resume == "auto":
        found = checkpoints.load_newest_good(files.ckpt_dir, report=report)
        if found is None:
            return Start()
        loaded, source = found
    else:
        path = Path(resume)
        if path.is_dir():
            found = checkpoints.load_newest_good(path / "ckpt" if (path / "ckpt").is_dir() else path, report=report)
            if found is None:
                raise MipNerfError(f"--resume {path}: no checkpoint in that folder")
            loaded, source = found
        else:
            loaded, source = checkpoints.load_checkpoint(path), path
        if has_checkpoints and source.absolute().parent != files.ckpt_dir.absolute():
            raise MipNerfError(
                f"{files.dir} already has checkpoints of its own; to start from {source}, "
                "pick another --exp-name (or --resume auto to continue this run)"
            )
    recorded = payload.read(loaded)
    if recorded.model_family != settings.model_family:
        raise MipNerfError(
            f"cannot resume from {source}: it holds a {recorded.model_family} model, these settings train "
            f"{settings.model_family}; start a new run with another --exp-name"
        )
    refuse_model_change(recorded.model_config, payload.model_config_dict(settings), source)
    changes = changed_settings(recorded.settings, settings.model_dump(mode="json"))
    if changes:
        report(f"resuming with changed settings: {'; '.join(changes)}")
    return Start(
        step=recorded.step, elapsed_s=recorded.elapsed_s, payload=loaded, source=source, cpu_kernel=recorded.cpu_kernel
    )


def set_aside_later_checkpoints(ckpt_dir: Path, start: Start, report: Callable[[str], None]) -> None:
    """Rename the run's checkpoints that are not behind the starting point (damaged ones
    skipped by --resume auto, or the future abandoned by --resume <an older step file>),
    so that rotation and later resumes only ever see this trajectory."""
    later = [path for step, path in checkpoints.step_checkpoints(ckpt_dir) if step > start.step]
    last = ckpt_dir / checkpoints.LAST
    if last.exists() and not (start.source is not None and _same_file(last, start.source)):
        try:
            if payload.step_of(checkpoints.load_checkpoint(last)) > start.step:
                later.append(last)
        except MipNerfError:
            later.append(last)
    for path in later:
        aside = path.with_name(path.name + ".set-aside")
        os.replace(path, aside)
        report(f"set aside {path.name} as {aside.name} (not on the path from step {start.step})")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_model_change(recorded: dict[str, Any], wanted: dict[str, Any], source: Path) -> None:
    changed = [
        f"{key} {recorded.get(key)!r} -> {wanted.get(key)!r}"
        for key in sorted(set(recorded) | set(wanted))
        if recorded.get(key) != wanted.get(key)
    ]
    if changed:
        raise MipNerfError(
            f"cannot resume from {source}: the model settings differ ({'; '.join(changed)}); "
            "keep the checkpoint's model settings, or start a new run with another --exp-name"
        )


def changed_settings(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    ignore = {"model", "trimip", "resume_path", "max_minutes"}
    return [
        f"{key} {recorded[key]!r} -> {current[key]!r}"
        for key in current
        if key not in ignore and key in recorded and recorded[key] != current[key]
    ]

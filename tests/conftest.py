"""Shared test fixtures. The helpers they use live in tests/helpers/ (on sys.path through
pyproject's `pythonpath`), so test modules import helpers, never each other:

- golden.py: GOLDEN, LEGO, load_golden
- cli_runner.py: the `mipnerf` fixture (every CLI call of the tests), snapshot, assert_refused
- processes.py: start a real process and wait for what it prints or writes
- tiny.py: the tiny model's settings (TINY_MODEL, tiny_settings, tiny_config_yaml)
- tiny_runs.py: a saved run folder of an untrained tiny model (make_run)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import mipnerf  # noqa: F401  (the session's CLI runner, for every test module)
from golden import GOLDEN, LEGO, load_golden  # noqa: F401


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def lego_dir() -> Path:
    if not (LEGO / "transforms_train.json").exists():
        pytest.skip(f"the real lego scene is not at {LEGO} (set MIPNERF_LEGO to run this test)")
    return LEGO

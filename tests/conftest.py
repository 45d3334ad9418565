"""Shared test fixtures. The helpers they use live in tests/helpers/ (on sys.path through
pyproject's `pythonpath`), so test modules import helpers, never each other:

- golden.py: GOLDEN, the tiny BLENDER and MULTISCALE scenes, LEGO, load_golden
- cli_runner.py: the `mipnerf` fixture (every CLI call of the tests, one process each, forked
  from a server that imported the package once), snapshot, assert_refused
- processes.py: start, wait_until: a real process, for the tests that signal, crash or serve one
- tiny.py: the tiny model's settings (tiny_settings, tiny_config, tiny_run_settings) and the
  core tests' tiny configs and random rays
- tiny_runs.py: a saved run folder of an untrained tiny model (make_run), one_cpu_thread
- reference_weights.py, capture_scene.py, disk_faults.py, distributed_worker.py: what their
  names say, for the tests that use them
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

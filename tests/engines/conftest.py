"""One local Ray session for every engine test (Ray starts in ~5-10 s on two cores: start it once)."""

from __future__ import annotations

from pathlib import Path

import pytest

# workers import the test detectors (tests.engines.scenes) from the repository root
ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="session")
def ray_session():
    """``ray`` initialised with two CPUs for the whole test session; skips when the [ray] extra is absent."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", runtime_env={"env_vars": {"PYTHONPATH": ROOT}})
    yield ray
    if started:
        ray.shutdown()

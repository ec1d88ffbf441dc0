import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples on every run, so a landing does not depend on the draw; local
# runs draw afresh (hypothesis's default) and keep finding new edge cases, as they have.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "plugins"
TEST_DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def plugins() -> Path:
    return PLUGINS


def shared_data_path(relpath: str) -> Path:
    """A file of the shared real data (CONVENTIONS.md "Real data in tests"): under ``CI=true``
    a missing file fails the test, elsewhere it skips with the reason."""
    base = Path(os.environ.get("FLOWMM_SHARED_DATA", ROOT.parent / "shared" / "data"))
    path = base / relpath
    if not path.exists():
        msg = f"shared data file missing: {path} (set FLOWMM_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_data():
    """``shared_data("hyperliquid/...")`` -> the path of a shared real-data file."""
    return shared_data_path

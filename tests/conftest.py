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


@pytest.fixture(scope="session")
def probe() -> Path:
    """tests/data/graphs/live_probe.yaml: the quoting graph of the loopback-server tests."""
    return TEST_DATA / "graphs" / "live_probe.yaml"


@pytest.fixture(scope="session")
def archive_rec(tmp_path_factory) -> Path:
    """The BTC archive hour's first 3,000 l2Book frames as a flowmm recording (``<recv ns>
    <frame>`` lines), for the loopback server: the live feed's and real execution's tests."""
    import json

    import lz4.frame

    from flowmm.hyperliquid.messages import iso_to_ns

    archive = shared_data_path("hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4")
    raw = lz4.frame.decompress(archive.read_bytes()).splitlines()[:3000]
    path = tmp_path_factory.mktemp("rec") / "archive3000.rec"
    with open(path, "w") as f:
        for line in raw:
            d = json.loads(line)
            f.write(f"{iso_to_ns(d['time'])} {json.dumps(d['raw'], separators=(',', ':'))}\n")
    return path

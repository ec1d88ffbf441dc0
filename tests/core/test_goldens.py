"""The engine reproduces the golden runs bit for bit (scripts/goldens.py; ``make goldens``
regenerates them, in a commit that says why): trace, fills, interrupts and summary figures of
the flagship and example graphs on the synthetic market, the hftbacktest capture and the BTC
archive hour."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("goldens", ROOT / "scripts" / "goldens.py")
G = importlib.util.module_from_spec(_spec)
sys.modules["goldens"] = G  # dataclasses look their module up
_spec.loader.exec_module(G)
GOLDENS = G.load_goldens()


@pytest.mark.parametrize("case", G.CASES, ids=lambda c: c.name)
def test_engine_reproduces_the_golden(case, shared_data, monkeypatch):
    monkeypatch.setenv("FLOWMM_CACHE_DIR", str(ROOT / ".pytest_cache" / "flowmm-goldens"))
    if case.source in ("capture", "archive"):
        shared_data(G.CAPTURE if case.source == "capture" else G.ARCHIVE)  # skips without it
    run = G.run_case(case)
    assert G.compare(case, run, GOLDENS) == []


def test_every_case_has_a_golden_and_copyable_ones_their_files():
    assert sorted(GOLDENS) == sorted(c.name for c in G.CASES)
    for c in G.CASES:
        assert (G.GOLDEN_DIR / c.name / "trace.parquet").exists() == c.copyable
        assert GOLDENS[c.name]["fills_rows"] != 0, f"{c.name} makes no fills"


def test_diff_names_the_first_differing_row_and_column():
    import pyarrow as pa

    a = pa.table({"t": [1, 2, 3], "x": [0.0, float("nan"), 2.0], "y": [5.0, 6.0, 7.0]})
    b = pa.table({"t": [1, 2, 3], "x": [0.0, float("nan"), 2.5], "y": [5.0, 6.5, 7.0]})
    assert G.first_difference(a, a) is None
    assert G.first_difference(a, b) == "row 1 (t=2), column 'y': 6.0 != 6.5"
    assert G.table_hash(a) != G.table_hash(b)


def test_the_same_generated_code_runs_with_the_jit_disabled(shared_data, tmp_path):
    """The debugging mode (docs/scheduling.md): NUMBA_DISABLE_JIT=1 runs the generated engine
    and the kernels as plain Python, to the same goldens (one quoting, one plain graph)."""
    import os
    import subprocess

    shared_data(G.CAPTURE)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", FLOWMM_CACHE_DIR=str(tmp_path))
    cases = ["minimal-synthetic-calm-1", "glft_minimal-capture", "demo-capture"]
    out = subprocess.run(
        [sys.executable, "-W", "ignore", str(ROOT / "scripts" / "goldens.py"), "check", *cases],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == [w for c in cases for w in (f"{c}:", "ok")]


@pytest.mark.parametrize(
    "name", ["glft_minimal-synthetic-trend_down-0", "demo-capture", "as2008_symmetric-as2008-0"]
)
def test_a_call_that_hands_back_with_full_buffers_resumes_exactly(name, shared_data, monkeypatch):
    """Tiny trace and interrupt buffers: the compiled loop yields every few cycles (and at each
    interrupt) and resumes where it stopped; the runs still match their goldens."""
    from flowmm.core.fused import FusedEngine

    monkeypatch.setattr(FusedEngine, "TRACE_ROWS", 3)
    monkeypatch.setattr(FusedEngine, "IRQ_ROWS", 1)
    monkeypatch.setenv("FLOWMM_CACHE_DIR", str(ROOT / ".pytest_cache" / "flowmm-goldens"))
    case = G.BY_NAME[name]
    if case.source == "capture":
        shared_data(G.CAPTURE)
    assert G.compare(case, G.run_case(case), GOLDENS) == []

"""The run report: plots, the self-contained HTML, graceful degradation, the console summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flowmm
from flowmm.errors import FlowmmError
from flowmm.io.report import console_summary, read_run, write_report
from flowmm.sources.synthetic import Synthetic

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_771_538_760_000_000_000

ACCOUNTING = {
    "duration_s": 1168.0,
    "fills_buys": 11,
    "fills_sells": 1,
    "volume_bought": 7.4,
    "volume_sold": 0.46,
    "final_q": 6.94,
    "max_abs_q": 7.1,
    "realised_pnl": 0.02,
    "unrealised_pnl": -0.84,
    "total_pnl": -0.8234,
    "fees": 0.0123,
    "funding": -0.001,
    "time_quoted_s": 1000.0,
    "time_one_sided_s": 250.0,
    "avg_as_bps": {"1s": 3.5, "5s": 14.69, "30s": None},
    "markouts": [
        {"horizon_s": 1.0, "n": 12, "as_bps_mean": 3.5},
        {"horizon_s": 5.0, "n": 12, "as_bps_mean": 14.69},
        {"horizon_s": 30.0, "n": 0, "as_bps_mean": None},
    ],
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "demo"
    graph = flowmm.load_graph(ROOT / "graphs" / "demo.yaml")
    graph.run(Synthetic("trend_down", seed=1, duration="3m"), out_dir=out, backend="python")
    return out


def _png_ok(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 2000, path  # a real image, not just a header


def _rich_run(root: Path, n: int = 240) -> Path:
    """A hand-made run folder with mid, ladder level-0, position and PnL columns, plus fills."""
    rng = np.random.default_rng(7)
    t = T0 + np.arange(n, dtype=np.int64) * 1_000_000_000
    mid = 100_000.0 + np.cumsum(rng.normal(0, 5.0, n))
    pos = np.cumsum(rng.choice([-0.01, 0.0, 0.01], n))
    cols = {
        "t": pa.array(t, pa.int64()),
        "cycle": pa.array(np.arange(n), pa.int64()),
        "source.mid": mid,
        "quoter.bid_px.0": mid - 10.0,
        "quoter.ask_px.0": mid + 12.0,
        "quoter.bid_px.1": mid - 20.0,
        "exec.position": pos,
        "acct.total_pnl": np.cumsum(rng.normal(0, 0.1, n)),
        "vol.sigma": np.abs(rng.normal(1, 0.1, n)),
        "belief.drift": rng.normal(0, 1, n),
        "belief.p_up": rng.uniform(0, 1, n),
        "dead.x": np.full(n, np.nan),
    }
    run = root / "rich"
    run.mkdir(parents=True)
    table = pa.table(
        {k: v if isinstance(v, pa.Array) else pa.array(v, pa.float64()) for k, v in cols.items()}
    )
    pq.write_table(table, run / "trace.parquet")
    idx = np.array([10, 30, 31, 90, 150, 200])
    side = np.array([1, 1, -1, 1, -1, 1], np.int8)
    fills = pa.table(
        {
            "t": pa.array(t[idx] + 300_000_000, pa.int64()),
            "px": np.where(side > 0, mid[idx] - 10.0, mid[idx] + 12.0),
            "sz": np.full(len(idx), 0.01),
            "side": pa.array(side, pa.int8()),
            "oid": pa.array(np.arange(len(idx)), pa.int64()),
            "fee": np.full(len(idx), 0.0015),
            "maker": np.ones(len(idx)),
            "mid_ref": mid[idx],
        }
    )
    pq.write_table(fills, run / "fills.parquet")
    (run / "interrupts.csv").write_text(f"t,value\n{t[50]},-1.0\n{t[120]},1.0\n")
    summary = {
        "graph": "richgraph",
        "version_hash": "abcdef0123456789",
        "source": "synthetic",
        "scenario": "trend_down",
        "seed": 4,
        "events": 5000,
        "cycles": n,
        "interrupts": 2,
        "wall_s": 1.5,
        **ACCOUNTING,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_demo_run_report(demo_run: Path) -> None:
    report = write_report(demo_run)
    assert report == demo_run / "report.html"
    text = report.read_text()
    summary = json.loads((demo_run / "summary.json").read_text())
    assert "demo" in text and summary["version_hash"] in text
    assert f"{summary['events']:,}" in text and f"{summary['cycles']:,}" in text
    assert 'src="http' not in text and "<link" not in text and "<script" not in text
    assert "data:image/png;base64," in text
    # the demo traces no mid and writes no fills: noted, not fatal
    assert "no fills.parquet" in text and "no mid column traced" in text
    # the interrupts still get a time panel, and the posterior panels exist
    _png_ok(demo_run / "plots" / "price.png")
    _png_ok(demo_run / "plots" / "posterior.png")
    assert not (demo_run / "plots" / "spreads.png").exists()


def test_rich_run_report(tmp_path: Path) -> None:
    run = _rich_run(tmp_path)
    report = write_report(run)
    text = report.read_text()
    for png in ("price", "position", "pnl", "spreads", "posterior"):
        _png_ok(run / "plots" / f"{png}.png")
    # every plot is embedded, and the header carries the run's identity
    assert text.count("data:image/png;base64,") == 5
    assert 'src="http' not in text
    for s in ("richgraph", "abcdef0123456789", "trend_down", "<code>4</code>"):
        assert s in text
    # the summary table has every key, nested ones flattened
    assert "avg_as_bps.5s" in text and "14.69" in text and "final_q" in text
    assert "all-NaN columns skipped: dead.x" in text
    # the console table is included
    assert "| Total PnL" in text


def test_posterior_groups_exclude_used_columns(tmp_path: Path, monkeypatch) -> None:
    import flowmm.io.report as rep

    seen = {}

    def spy(groups, data, t0, out):
        seen["groups"] = groups
        return real(groups, data, t0, out)

    real = rep._group_panels
    monkeypatch.setattr(rep, "_group_panels", spy)
    run = _rich_run(tmp_path)
    write_report(run, extra_columns=["vol.sigma"])
    groups = dict(seen["groups"])
    # used above: mid, level-0 quotes, position, pnl, the extra column; all-NaN dropped
    assert groups == {"quoter": ["quoter.bid_px.1"], "belief": ["belief.drift", "belief.p_up"]}
    _png_ok(run / "plots" / "extra_0.png")


def test_many_groups_capped(tmp_path: Path) -> None:
    n = 20
    cols = {"t": pa.array(T0 + np.arange(n, dtype=np.int64) * 10**9), "cycle": pa.array(np.arange(n))}
    for g in range(15):
        cols[f"node{g:02d}.v"] = pa.array(np.arange(n, dtype=float) * g)
    (tmp_path / "r").mkdir()
    pq.write_table(pa.table(cols), tmp_path / "r" / "trace.parquet")
    text = write_report(tmp_path / "r").read_text()
    assert "not shown (over 12 panels): node12, node13, node14" in text
    _png_ok(tmp_path / "r" / "plots" / "posterior.png")


def test_mid_column_argument(tmp_path: Path) -> None:
    run = _rich_run(tmp_path)
    text = write_report(run, mid_column="nope.mid").read_text()
    assert "mid column &#x27;nope.mid&#x27; not in the trace" in text
    assert not (run / "plots" / "spreads.png").exists()


def test_empty_trace_and_missing_fills(demo_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "empty"
    run.mkdir()
    schema = pq.read_schema(demo_run / "trace.parquet")
    pq.write_table(schema.empty_table(), run / "trace.parquet")
    (run / "summary.json").write_text(
        json.dumps({"graph": "emptygraph", "version_hash": "0" * 16, "cycles": 0})
    )
    (run / "interrupts.csv").write_text("t,value\n")
    text = write_report(run).read_text()
    assert "emptygraph" in text and "the trace is empty" in text and "no fills.parquet" in text
    assert "data:image/png;base64," not in text  # nothing to plot, nothing plotted


def test_fills_only_position_from_fills(tmp_path: Path) -> None:
    run = _rich_run(tmp_path)
    (run / "trace.parquet").unlink()
    (run / "summary.json").write_text("{not json")
    text = write_report(run).read_text()
    assert "no trace.parquet" in text and "summary.json unreadable" in text
    assert "cumulative signed fill size" in text
    _png_ok(run / "plots" / "price.png")
    _png_ok(run / "plots" / "position.png")
    data = read_run(run)
    assert np.cumsum(data.fills["side"] * data.fills["sz"])[-1] == pytest.approx(0.02)


def test_missing_folder_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(FlowmmError) as e:
        write_report(tmp_path / "nope")
    assert e.value.location.file == str(tmp_path / "nope")


def _rows(table: str) -> dict[str, str]:
    out = {}
    for line in table.splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line)  # Markdown: an escaped \| is not a separator
        assert len(cells) == 4 and cells[0] == cells[3] == "", line
        out[cells[1].strip()] = cells[2].strip()
    return out


def test_console_summary_full() -> None:
    s = {"events": 5000, "cycles": 181, "interrupts": 2, "wall_s": 1.5, **ACCOUNTING}
    rows = _rows(console_summary(s))
    assert rows["Duration"] == "19m 28s"
    assert rows["Fills"] == "12 (11 buys, 1 sell)"
    assert rows["Volume bought"] == "7.4" and rows["Volume sold"] == "0.46"
    assert rows["Final position"] == "+6.94 long"
    assert rows[r"Max \|q\|"] == "7.1"
    assert rows["Realized PnL"] == "+$0.02"
    assert rows["Unrealized PnL"] == "-$0.84"
    assert rows["Total PnL"] == "-$0.82"
    assert rows["Fees"] == "$0.01 paid"
    assert rows["Funding"] == "-$0.001"
    assert rows["Avg AS (5s)"] == "14.69 bps, n=12"
    assert rows["Avg AS (30s)"] == "n/a (no markout)"
    assert rows["Time one-sided"] == "4m 10s (25% of quoted time)"
    assert rows["Events"] == "5,000" and rows["Quote cycles"] == "181" and rows["Wall time"] == "1.50s"
    assert "Sharpe" not in rows


def test_console_summary_only_present_rows() -> None:
    rows = _rows(console_summary({"graph": "demo", "events": 10, "cycles": 3}))
    assert rows == {"Events": "10", "Quote cycles": "3"}
    assert console_summary({}) == ""
    # accounting figures nested under a sub-dict are found; a Sharpe key is shown
    rows = _rows(console_summary({"cycles": 1, "accounting": {"final_q": -2.0, "sharpe_1h": 1.234}}))
    assert rows["Final position"] == "-2 short" and rows["Sharpe (1h)"] == "1.23"


def test_thin_keeps_the_envelope() -> None:
    from flowmm.io.report import _thin

    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 5000.0)
    y[51_234] = 9.0  # a one-sample spike must survive decimation
    y[70_000:70_010] = np.nan
    tx, ty = _thin(x, y, buckets=500)
    assert len(tx) == len(ty) <= 1000
    assert np.nanmax(ty) == 9.0 and np.nanmin(ty) == pytest.approx(y[np.isfinite(y)].min())
    assert np.all(np.diff(tx) >= 0)
    sx, sy = _thin(x[:800], y[:800], buckets=500)  # short series untouched
    assert len(sx) == 800 and np.array_equal(sy, y[:800])

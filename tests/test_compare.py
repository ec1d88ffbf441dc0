"""``flowmm.compare``: several graphs on the same synthetic event streams, median and worst."""

from __future__ import annotations

import csv
import json
import math
import pickle
import statistics
from pathlib import Path

import pytest

from flowmm.compare import (
    CSV_COLUMNS,
    CompareError,
    CompareResult,
    RunFailed,
    compare,
    larger_is_worse,
    parse_seeds,
)
from flowmm.errors import GraphError
from flowmm.sources.synthetic import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = [ROOT / "graphs" / "demo.yaml", ROOT / "graphs" / "vol_minimal.yaml"]
LABELS = ["demo", "vol_minimal"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> tuple[CompareResult, Path]:
    out = tmp_path_factory.mktemp("compare")
    result = compare(
        GRAPHS, scenario="calm", seeds=SEEDS, duration="60s", out_dir=out, backend="python", jobs=2
    )
    return result, out


def _summaries(out: Path, label: str) -> dict[int, dict]:
    return {s: json.loads((out / label / f"calm-seed{s}" / "summary.json").read_text()) for s in SEEDS}


def test_every_graph_and_seed_has_its_run_folder(done):
    result, out = done
    for label in LABELS:
        for s in SEEDS:
            folder = out / label / f"calm-seed{s}"
            assert (folder / "summary.json").is_file() and (folder / "trace.parquet").is_file()
    assert set(result.runs) == {(g, s) for g in LABELS for s in SEEDS}


def test_same_event_stream_per_seed(done):
    _, out = done
    per_graph = {label: _summaries(out, label) for label in LABELS}
    for s in SEEDS:
        counts = {label: per_graph[label][s]["events"] for label in LABELS}
        assert len(set(counts.values())) == 1, counts
    # and the seeds really are different streams (else "same stream" would be vacuous)
    assert per_graph["demo"][0]["events"] != per_graph["demo"][1]["events"]


def test_csv_medians_and_worst_match_the_run_summaries(done):
    _, out = done
    with open(out / "compare.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    metrics = {r["metric"] for r in rows}
    assert metrics == {"cycles", "events", "interrupts"}  # numeric, shared, not wall-clock
    assert "wall_s" not in metrics
    for label in LABELS:
        summaries = _summaries(out, label)
        for r in (r for r in rows if r["graph"] == label):
            values = [summaries[s][r["metric"]] for s in SEEDS]
            assert float(r["median"]) == statistics.median(values)
            expected_worst = max(values) if r["metric"] == "interrupts" else min(values)
            assert float(r["worst"]) == expected_worst
            assert int(r["seeds"]) == len(SEEDS)
    assert len(rows) == len(LABELS) * 3


def test_markdown_has_graphs_as_columns_and_median_worst_cells(done):
    result, out = done
    md = (out / "compare.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["metric", "worst", *LABELS]
    cells = {line.strip("|").split("|")[0].strip(): line for line in table[2:]}
    assert set(cells) == {"seeds", "cycles", "events", "interrupts"}
    row = result.cell("demo", "events")
    assert f"{row.median:g} ({row.worst:g})" in cells["events"]
    # the console table carries the same cells
    assert f"{row.median:g} ({row.worst:g})" in result.format_table()


def test_same_inputs_give_an_identical_csv(done, tmp_path):
    _, out = done
    again = compare(
        GRAPHS,
        scenario="calm",
        seeds=SEEDS,
        duration="60s",
        out_dir=tmp_path,
        backend="python",
        jobs=1,
        progress=False,
    )
    assert (tmp_path / "compare.csv").read_bytes() == (out / "compare.csv").read_bytes()
    assert (tmp_path / "compare.md").read_bytes() == (out / "compare.md").read_bytes()
    assert again.rows == done[0].rows


def test_a_bad_graph_fails_before_any_run(tmp_path):
    bad = ROOT / "tests" / "graphs" / "broken" / "cycle.yaml"
    with pytest.raises(GraphError) as info:
        compare([GRAPHS[0], bad], scenario="calm", seeds=[0], duration="60s", out_dir=tmp_path / "o")
    assert info.value.exit_code == 2
    assert not (tmp_path / "o").exists()  # nothing ran, nothing written


def test_a_bad_scenario_or_duration_fails_before_any_run(tmp_path):
    with pytest.raises(ScenarioError):
        compare(GRAPHS, scenario="no_such", seeds=[0], duration="60s", out_dir=tmp_path / "o")
    with pytest.raises(ScenarioError):
        compare(GRAPHS, scenario="calm", seeds=[0], duration="soon", out_dir=tmp_path / "o")
    with pytest.raises(CompareError):
        compare(GRAPHS, scenario="calm", seeds=[0], duration="60s", out_dir=tmp_path / "o", jobs=0)
    with pytest.raises(CompareError):
        compare(GRAPHS, scenario="calm", seeds=[0], duration="60s", out_dir=tmp_path / "o", backend="x")
    assert not (tmp_path / "o").exists()


def test_two_graphs_with_the_same_name_get_distinct_columns(tmp_path, capsys):
    copy = tmp_path / "demo_b.yaml"
    copy.write_text(GRAPHS[0].read_text())
    result = compare(
        [GRAPHS[0], copy],
        scenario="calm",
        seeds=[0],
        duration="5s",
        out_dir=tmp_path / "o",
        backend="python",
        jobs=1,
        progress=True,
    )
    assert result.graphs == ["demo-demo", "demo-demo_b"]
    assert "compare: 2/2 runs done" in capsys.readouterr().err  # progress on stderr
    assert (tmp_path / "o" / "demo-demo_b" / "calm-seed0" / "summary.json").is_file()


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("7", [7]), ("0-3", [0, 1, 2, 3]), ("0,3,5", [0, 3, 5]), ("0-2,9", [0, 1, 2, 9]), (" 4 , 2 ", [4, 2])],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "1-", "-1", "5-2", "1,,2", "1.5", "0-3,2", "3,3"])
def test_parse_seeds_errors(text):
    with pytest.raises(CompareError) as info:
        parse_seeds(text)
    assert info.value.exit_code == 2
    assert info.value.format().startswith("flowmm: error: bad --seeds")
    assert "hint:" in info.value.format()


def test_worst_rule_and_metric_selection_on_fabricated_summaries():
    # as the execution layer's summaries will look: nested AS per horizon, a None Sharpe
    runs = {
        ("a", 0): {
            "pnl": 1.0,
            "max_abs_q": 3,
            "as_bps": {"1s": 0.5},
            "sharpe": None,
            "wall_s": 9.0,
            "ok": True,
        },
        ("a", 1): {
            "pnl": -2.0,
            "max_abs_q": 5,
            "as_bps": {"1s": 1.5},
            "sharpe": 2.0,
            "wall_s": 1.0,
            "ok": True,
        },
        ("a", 2): {"pnl": 4.0, "max_abs_q": 1, "as_bps": {"1s": -1.0}, "sharpe": math.nan, "wall_s": 2.0},
    }
    r = CompareResult(["a"], "calm", [0, 1, 2], None, "python", runs)
    assert r.metrics == ["as_bps.1s", "max_abs_q", "pnl", "sharpe"]  # no wall_s, no bool, no partial key
    assert (r.cell("a", "pnl").median, r.cell("a", "pnl").worst) == (1.0, -2.0)
    assert (r.cell("a", "max_abs_q").worst, r.cell("a", "max_abs_q").worst_is) == (5.0, "max")
    assert r.cell("a", "as_bps.1s").worst == 1.5
    sharpe = r.cell("a", "sharpe")
    assert (sharpe.median, sharpe.worst, sharpe.seeds) == (2.0, 2.0, 1)  # None and NaN left out
    assert larger_is_worse("fees_paid") and larger_is_worse("drawdown") and not larger_is_worse("pnl_total")


def test_run_failed_survives_the_process_boundary():
    err = pickle.loads(pickle.dumps(RunFailed("g.yaml, seed 3: boom", 3)))
    assert (err.message, err.exit_code, err.format()) == ("g.yaml, seed 3: boom", 3, "g.yaml, seed 3: boom")

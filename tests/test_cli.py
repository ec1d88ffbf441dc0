"""The ``flowmm`` command line: in-process through ``main(argv)``, and a few real subprocesses.

(The broken-graph cases of ``flowmm validate`` are in tests/core/test_validation.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import flowmm
from flowmm import cli
from flowmm.cli import main
from flowmm.core.node import registry

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "graphs" / "demo.yaml"
BROKEN = ROOT / "tests" / "graphs" / "broken"
SEC = 1_000_000_000


def demo_events(n_books: int = 12) -> list[dict]:
    """Books every 0.5 s with a drifting mid, a trade after each, and a buy burst at the end."""
    events = []
    for i in range(n_books):
        t = SEC + i * SEC // 2
        mid = 100.0 + 0.01 * i
        events.append(
            {"t": t, "kind": "book", "bids": [[mid - 0.05, 2.0, 1]], "asks": [[mid + 0.05, 1.5, 2]]}
        )
        events.append({"t": t + 1000, "kind": "trade", "px": mid + 0.05, "sz": 0.1, "side": "B", "tid": i})
    t_end = events[-1]["t"]
    for k in range(4):  # demo's burst: 4 same-side trades within 1 s
        events.append({"t": t_end + (k + 1) * 1000, "kind": "trade", "px": 101.0, "sz": 1.0, "side": "B"})
    return events


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


# -- help and version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, expected",
    [
        ([], "validate"),
        (["validate"], "Exit status"),
        (["render"], "--upstream"),
        (["nodes"], "docstring"),
        (["run"], "--backend"),
        (["version"], "version"),
    ],
)
def test_help_on_every_command(command, expected, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert expected in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_version(capsys):
    code, out, _ = run_cli(capsys, "version")
    assert code == 0
    assert out.splitlines()[0] == f"flowmm {flowmm.__version__}"
    assert "numba" in out


# -- validate ------------------------------------------------------------------------------------


def test_validate_ok(capsys):
    code, out, _ = run_cli(capsys, "validate", str(DEMO))
    assert code == 0
    plan_hash = flowmm.load_graph(DEMO).version_hash
    assert out.strip() == f"{DEMO}: ok (6 nodes, hash {plan_hash})"


def test_validate_checks_every_file_even_after_a_failure(capsys):
    bad = BROKEN / "cycle.yaml"
    code, out, _ = run_cli(capsys, "validate", str(bad), str(DEMO))
    assert code == 2
    assert f"{bad}:9:5 [b]: error: cycle in the graph: a -> b -> a" in out
    assert "    hint: " in out
    assert f"{DEMO}: ok (6 nodes" in out
    assert out.rstrip().endswith("2 files: 1 ok, 1 failed")


def test_validate_bad_nodes_folder_is_exit_2(tmp_path, capsys):
    code, _, err = run_cli(capsys, "validate", str(DEMO), "--nodes", str(tmp_path / "nope"))
    assert code == 2
    assert "node folder not found" in err


def test_validate_with_user_nodes_folder(tmp_path, capsys):
    graph = tmp_path / "probe.yaml"
    graph.write_text(
        "name: probe\nclock: {on_book: true}\nnodes:\n"
        "  p:\n    type: testing.truth_mu\n    diagnostic: true\n    in: {truth: source.truth}\n"
    )
    plugins = ROOT / "tests" / "graphs" / "plugins"
    code, out, _ = run_cli(capsys, "validate", str(graph), "--nodes", str(plugins))
    assert code == 0 and f"{graph}: ok (1 node, hash " in out


# -- nodes ---------------------------------------------------------------------------------------


def test_nodes_lists_every_type_with_trigger_tier_and_summary(capsys):
    code, out, _ = run_cli(capsys, "nodes")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["TYPE", "TRIGGER", "TIER", "DESCRIPTION"]
    for type_name, cls in registry().items():
        row = next(ln for ln in lines if ln.split()[0] == type_name)
        tier = cls.tier if cls.trigger == "cycle" else "-"  # tiers do not apply to event nodes
        assert row.split()[1:3] == [cls.trigger, tier]
        assert row.rstrip().endswith(cls.doc().splitlines()[0])
    burst = next(ln for ln in lines if ln.startswith("quoting.burst_cancel "))
    assert burst.split()[1:3] == ["event", "-"]


def test_nodes_describes_one_type(capsys):
    code, out, _ = run_cli(capsys, "nodes", "features.trade_flow")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "features.trade_flow  (trigger: cycle, default tier: hot)"
    section = {}
    current = None
    for ln in lines:
        if ln in ("inputs:", "outputs:", "params:"):
            current = ln[:-1]
            section[current] = []
        elif current and ln.startswith("  "):
            section[current].append(ln.split())
        elif not ln:
            current = None
    assert section["inputs"] == [["trades", "trades"]]
    assert [row[:2] for row in section["outputs"]] == [
        ["buy_sz", "f64"],
        ["sell_sz", "f64"],
        ["imbalance", "f64"],
        ["count", "f64"],
        ["obs", "obs"],
    ]
    params = {row[0]: row for row in section["params"]}
    assert params["alpha"][:4] == ["alpha", "float", "default", "0.05"]
    assert params["sigma"][:4] == ["sigma", "float", "default", "0.2"]
    assert "observation noise, bps/s  (> 0)" in out
    # the full docstring, formula included
    assert "I = (V_buy - V_sell) / (V_buy + V_sell)" in out
    assert "With no volume the imbalance is 0" in out


def test_nodes_shows_variadic_inputs(capsys):
    code, out, _ = run_cli(capsys, "nodes", "estimators.obs_fusion")
    assert code == 0
    assert "obs  obs (variadic)" in out
    assert "params:\n  (none)" in out


def test_nodes_unknown_type_suggests(capsys):
    code, _, err = run_cli(capsys, "nodes", "features.trade_flo")
    assert code == 2
    assert "unknown node type 'features.trade_flo'" in err
    assert "did you mean features.trade_flow" in err
    assert "<graph>" not in err


# -- render --------------------------------------------------------------------------------------


def test_render_dot_default_output_in_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "render", str(DEMO), "--format", "dot")
    assert code == 0
    assert out.strip() == "demo.dot"
    text = (tmp_path / "demo.dot").read_text()
    for node in ("ret", "vol", "vol_smooth", "flow", "fused", "burst"):
        assert node in text


def test_render_passes_options(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_render(plan, out, *, fmt="svg", upstream=None, downstream=None):
        seen.update(name=plan.spec.name, out=out, fmt=fmt, upstream=upstream, downstream=downstream)
        return Path(out)

    import flowmm.render

    monkeypatch.setattr(flowmm.render, "render", fake_render)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "render", str(DEMO), "--format", "png", "--upstream", "fused")
    assert code == 0 and out.strip() == "demo.png"
    assert seen == dict(name="demo", out="demo.png", fmt="png", upstream="fused", downstream=None)
    code, out, _ = run_cli(capsys, "render", str(DEMO), "-o", "x/g.svg", "--downstream", "vol")
    assert code == 0 and seen["out"] == "x/g.svg" and seen["downstream"] == "vol"


def test_render_without_graphviz_exits_1_without_traceback(monkeypatch, capsys):
    import flowmm.render

    def missing(plan, out, **kwargs):
        raise flowmm.render.GraphvizMissing("the Graphviz `dot` program was not found", hint="install it")

    monkeypatch.setattr(flowmm.render, "render", missing)
    code, out, err = run_cli(capsys, "render", str(DEMO))
    assert code == 1
    assert "dot` program was not found" in err and "hint: install it" in err
    assert out == ""


def test_render_broken_graph_exit_2(capsys):
    code, _, err = run_cli(capsys, "render", str(BROKEN / "unknown_type.yaml"))
    assert code == 2
    assert "unknown_type.yaml:5:11 [ret]: error: unknown node type" in err


# -- run -----------------------------------------------------------------------------------------


def test_run_events_writes_the_run_folder(tmp_path, capsys):
    events = demo_events()
    data = write_jsonl(tmp_path / "events.jsonl", events)
    out_dir = tmp_path / "run"
    code, out, _ = run_cli(
        capsys,
        "run",
        str(DEMO),
        "--source",
        "events",
        "--data",
        str(data),
        "--out",
        str(out_dir),
        "--backend",
        "python",
        "--no-progress",
    )
    assert code == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    trace = pq.read_table(out_dir / "trace.parquet")
    assert summary["events"] == len(events)
    assert summary["backend"] == "python"
    assert summary["cycles"] == trace.num_rows > 0
    assert summary["interrupts"] >= 1  # the buy burst
    assert "vol.sigma" in trace.column_names
    hash_ = flowmm.load_graph(DEMO).version_hash
    assert summary["version_hash"] == hash_
    assert f"hash {hash_}" in out
    assert f"{len(events)} events, {summary['cycles']} cycles, {summary['interrupts']} interrupts" in out
    assert f"{trace.num_rows} trace rows" in out
    assert str(out_dir) in out


def test_run_default_out_dir_and_progress(tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "events.jsonl", demo_events(4))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        capsys, "run", str(DEMO), "--source", "events", "--data", str(data), "--backend", "python"
    )
    assert code == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("demo-events-")
    assert len(runs[0].name) == len("demo-events-YYYYmmdd-HHMMSS")
    assert (runs[0] / "trace.parquet").is_file()
    assert "event time" not in err  # stderr is not a terminal here: no progress line


def test_run_progress_line_on_a_terminal(tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "events.jsonl", demo_events(4))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    args = ("run", str(DEMO), "--source", "events", "--data", str(data), "--backend", "python")
    code, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "r"))
    assert code == 0
    assert "100%" in err and "event time" in err and "events" in err  # progress in event time
    code, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "q"), "--quiet")
    assert code == 0 and "event time" not in err


def test_run_prints_graph_warnings_first(tmp_path, capsys):
    data = write_jsonl(tmp_path / "events.jsonl", demo_events(4))
    graph = BROKEN / "unconsumed_output.yaml"
    args = ["run", str(graph), "--source", "events", "--data", str(data), "--out", str(tmp_path / "r")]
    code, _, err = run_cli(capsys, *args, "--backend", "python", "--no-progress")
    assert code == 0
    assert "warning: output ret.ret_bps is neither consumed nor traced" in err
    code, _, err = run_cli(capsys, *args, "--backend", "python", "--strict")
    assert code == 2 and "error: output ret.ret_bps" in err


def test_run_live_needs_a_coin(capsys):
    code, out, err = run_cli(capsys, "run", str(DEMO), "--source", "live")
    assert code == 2 and "--source live needs --coin" in err
    assert out == ""


def test_run_events_and_replay_need_data(capsys):
    code, _, err = run_cli(capsys, "run", str(DEMO), "--source", "events")
    assert code == 2 and "--source events needs --data" in err
    code, _, err = run_cli(capsys, "run", str(DEMO), "--source", "replay")
    assert code == 2 and "--source replay needs --data" in err and "recordings" in err


def test_run_replay_of_a_real_capture(shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLOWMM_CACHE_DIR", str(tmp_path / "cache"))
    data = shared_data("hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz")
    args = ["run", str(ROOT / "graphs" / "minimal.yaml"), "--source", "replay", "--data", str(data)]
    code, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "r"), "--no-progress")
    assert code == 0, err
    assert "replay of BTC: 55 frames, 0 malformed, 0 late, cache written" in out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["source"] == "replay" and summary["replay"]["parse"]["snapshot_trades"] == 30
    assert "graph instrument is HYPE but the data is BTC" in err
    code, _, err = run_cli(capsys, *args, "--speed", "fast")
    assert code == 2 and "--speed takes a number or max" in err


def test_run_bad_event_file_is_located(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a run that wrongly went ahead would write runs/ here
    events = demo_events(3)
    lines = [json.dumps(e) for e in events]
    lines[2] = '{"t": 2000000000, "kind": "trade", "px": "abc", "sz": 1, "side": "B"}'
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(
        capsys, "run", str(DEMO), "--source", "events", "--data", str(data), "--backend", "python"
    )
    assert code == 2
    assert f"{data}:3: error: field 'px' is not a number: 'abc'" in err
    assert not (tmp_path / "runs").exists()


def test_run_missing_event_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a run that wrongly went ahead would write runs/ here
    data = tmp_path / "nope.jsonl"
    code, _, err = run_cli(capsys, "run", str(DEMO), "--source", "events", "--data", str(data))
    assert code == 2 and f"{data}: error: cannot read event file" in err
    assert not (tmp_path / "runs").exists()


def test_run_source_lacking_a_stream_stays_silent_and_strict_makes_it_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    trades_only = [e for e in demo_events(3) if e["kind"] == "trade"]
    data = write_jsonl(tmp_path / "trades.jsonl", trades_only)
    args = ["run", str(DEMO), "--source", "events", "--data", str(data), "--backend", "python"]
    code, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "source.mid: not in this source; silent in " in out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "ret" in summary["missing_streams"]["source.mid"]
    code, _, err = run_cli(capsys, *args, "--strict")  # a strict run refuses, at the user's line
    assert code == 2
    assert f"{DEMO}:12:17 [ret.price]: error: input 'price': stream source.mid is not provided" in err


def test_default_backend_falls_back_to_python(monkeypatch):
    monkeypatch.setitem(sys.modules, "flowmm.core.fused", None)  # import fails with ImportError
    assert cli.default_backend() == "python"


def test_run_fused_when_unavailable_is_exit_2(tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "events.jsonl", demo_events(3))
    monkeypatch.setitem(sys.modules, "flowmm.core.fused", None)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        capsys, "run", str(DEMO), "--source", "events", "--data", str(data), "--backend", "fused"
    )
    assert code == 2 and "backend 'fused' is not available" in err


# -- error handling ------------------------------------------------------------------------------


def test_keyboard_interrupt_exits_130_quietly(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_version", interrupted)
    code, out, err = run_cli(capsys, "version")
    assert code == 130
    assert err.strip() == "interrupted"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_version", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["version"])


# -- real processes ------------------------------------------------------------------------------


def flowmm_process(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowmm", *argv], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_process_validate_broken_graph_no_traceback():
    bad = BROKEN / "many_errors.yaml"
    proc = flowmm_process("validate", str(bad), str(BROKEN / "yaml_syntax.yaml"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{bad}:7:11 [ret]: error: unknown node type 'features.mid_retrun'" in proc.stdout
    assert "yaml_syntax.yaml:7:6: error: YAML syntax error" in proc.stdout


def test_process_run_live_without_coin_and_bad_data(tmp_path):
    proc = flowmm_process("run", str(DEMO), "--source", "live")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--source live needs --coin" in proc.stderr
    data = tmp_path / "bad.jsonl"
    data.write_text('{"t": 1, "kind": "bok"}\n')
    proc = flowmm_process("run", str(DEMO), "--source", "events", "--data", str(data), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{data}:1: error: unknown kind 'bok'" in proc.stderr


def test_process_version():
    proc = flowmm_process("version")
    assert proc.returncode == 0 and proc.stdout.startswith(f"flowmm {flowmm.__version__}\n")


def test_scenarios_lists_the_synthetic_scenarios(capsys):
    code, out, _ = run_cli(capsys, "scenarios")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    for name in ("calm", "chop", "vol_spike", "cascade", "trend_down", "trend_up", "trend_down_weak"):
        assert name in names


def test_run_synthetic_writes_a_run_folder(tmp_path, capsys):
    out_dir = tmp_path / "run"
    args = ("run", str(DEMO), "--source", "synthetic", "--scenario", "trend_down", "--seed", "3")
    code, out, err = run_cli(capsys, *args, "--duration", "90s", "--out", str(out_dir), "--no-progress")
    assert code == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["source"] == "synthetic"
    assert summary["cycles"] == 91  # 1 s clock over 90 s: both ends are cycle boundaries
    assert (out_dir / "trace.parquet").is_file()


def test_run_synthetic_bad_scenario_or_duration_is_a_clear_error(capsys):
    code, _, err = run_cli(capsys, "run", str(DEMO), "--source", "synthetic", "--scenario", "trend_dwn")
    assert code == 2 and "trend_dwn" in err and "Traceback" not in err
    args = ("run", str(DEMO), "--source", "synthetic", "--duration", "soon")
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "soon" in err and "Traceback" not in err


def test_compare_cli(tmp_path):
    args = ["compare", str(DEMO), "--seeds", "0", "--duration", "10s", "--backend", "python", "-j", "1"]
    assert main([*args, "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "compare.csv").is_file() and (tmp_path / "compare.md").is_file()


def test_run_a_quoting_graph_trades_on_paper(tmp_path, capsys):
    out_dir = tmp_path / "run"
    args = ("run", str(ROOT / "graphs" / "minimal.yaml"), "--source", "synthetic", "--scenario", "trend_down")
    code, out, err = run_cli(capsys, *args, "--duration", "5m", "--out", str(out_dir))
    assert code == 0, err
    assert "backend fused" in out and "| Total PnL" in out  # the session table
    for name in ("trace.parquet", "fills.parquet", "summary.json", "graph.svg", "report.html"):
        assert (out_dir / name).is_file(), name
    assert (out_dir / "plots" / "price.png").is_file()
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["broker"] == "paper" and "total_pnl" in summary
    fills = pq.read_table(out_dir / "fills.parquet")
    assert fills.column_names == ["t", "px", "sz", "side", "oid", "fee", "maker", "mid_ref"]
    trace = pq.read_table(out_dir / "trace.parquet")
    assert trace.column_names == [
        "t", "cycle", "source.mid", "exec.position", "exec.pnl",
        "quote.ladder.bid_px.0", "quote.ladder.bid_sz.0", "quote.ladder.ask_px.0", "quote.ladder.ask_sz.0",
    ]  # fmt: skip
    assert trace.num_rows == 301
    for png in ("price", "position", "pnl", "spreads"):
        assert (out_dir / "plots" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_run_folder_name_says_what_ran(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = (
        "run",
        str(DEMO),
        "--source",
        "synthetic",
        "--scenario",
        "calm",
        "--seed",
        "4",
        "--duration",
        "20s",
    )
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("demo-synthetic-calm-4-")
    assert len(run.name) == len("demo-synthetic-calm-4-YYYYmmdd-HHMMSS")


def test_run_quote_clock_flag_replaces_the_graphs_clock(tmp_path, capsys):
    args = ["run", str(ROOT / "graphs" / "vol_minimal.yaml"), "--source", "synthetic", "--scenario", "calm"]
    args += ["--duration", "60s", "--backend", "python", "--no-progress"]
    code, out, err = run_cli(capsys, *args, "--quote-every-ms", "250", "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["cycles"] == 241  # 0, 0.25, ..., 60 s
    code, _, err = run_cli(capsys, *args, "--quote-every-ms", "0")
    assert code == 2 and "vol_minimal.yaml:7:25: error: clock.quote_every_ms" in err

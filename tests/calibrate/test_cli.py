"""``flowmm calibrate``: params file, report, table; usage errors without a traceback."""

from pathlib import Path

import yaml

import flowmm
from flowmm.cli import main

GRAPH = str(Path(__file__).with_name("gate_graph.yaml"))
SYN = ["--source", "synthetic", "--scenario", "mixed", "--seeds", "0", "--no-progress"]


def test_calibrate_writes_params_report_and_plot(tmp_path, capsys):
    out = tmp_path / "params.yaml"
    argv = ["calibrate", GRAPH, *SYN, "--knobs", "book=1", "--duration", "2h", "--block", "20m"]
    argv += ["--folds", "3", "--features", "bim,oi", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "bim" in text and "admit" in text and "remove oi" in text
    doc = yaml.safe_load(out.read_text())
    assert set(doc["params"]) == {"bim"} and set(doc["calibration"]["rejected"]) == {"oi"}
    report = tmp_path / "params-report"
    assert (report / "report.md").read_text().startswith("# Calibration of `calibration_gate`")
    assert (report / "r2_folds.png").stat().st_size > 1000
    # the file includes into the graph it came from (rejected features keep their defaults)
    g = tmp_path / "g.yaml"
    g.write_text(Path(GRAPH).read_text().replace("trace:", f"params_from: {out.name}\ntrace:"))
    assert flowmm.load_graph(g).plan.node("bim").node.params.alpha == doc["params"]["bim"]["alpha"]


def test_usage_errors_exit_2_without_traceback(tmp_path, capsys):
    out = str(tmp_path / "p.yaml")
    assert main(["calibrate", GRAPH, *SYN, "--knobs", "book", "--out", out]) == 2
    assert "--knobs: 'book' is not NAME=VALUE" in capsys.readouterr().err
    assert main(["calibrate", GRAPH, *SYN, "--knobs", "bok=1", "--out", out]) == 2
    assert "--knobs" in capsys.readouterr().err
    argv = ["calibrate", GRAPH, *SYN, "--duration", "20m", "--features", "bim", "--out", out]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "walk-forward needs at least 6 blocks of data, got 1" in err and "Traceback" not in err
    assert main(["calibrate", GRAPH, *SYN, "--horizon", "soon", "--out", out]) == 2
    assert "--horizon" in capsys.readouterr().err
    assert main(["calibrate", GRAPH, "--source", "replay", "--out", out]) == 2
    assert "--source replay needs --data" in capsys.readouterr().err


def test_previous_params_file_shows_what_changed(tmp_path, capsys):
    old = tmp_path / "old.yaml"
    old.write_text(
        "params:\n  bim: {alpha: 0.05, sigma: 0.2}\n  oi: {alpha: 0.01}\ncalibration: {admitted: [bim, oi]}\n"
    )
    out = tmp_path / "new.yaml"
    argv = ["calibrate", GRAPH, *SYN, "--knobs", "book=1", "--duration", "2h", "--block", "20m"]
    argv += ["--folds", "3", "--features", "bim,oi", "--out", str(out), "--previous", str(old)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    new = yaml.safe_load(out.read_text())["params"]["bim"]
    change = (new["alpha"] - 0.05) / 0.05
    assert f"bim.alpha: 0.05 -> {new['alpha']:.4g} ({change:+.1%})" in text
    assert "oi.alpha: 0.01 -> -" in text and "oi: admitted before, rejected now" in text
    assert "## Change from the previous params file" in (tmp_path / "new-report" / "report.md").read_text()
    assert main([*argv[:-1], str(tmp_path / "missing.yaml")]) == 2
    assert "--previous: cannot read" in capsys.readouterr().err

"""Golden runs: the engine's behaviour pinned, bit for bit (issue 16, "Identical behaviour").

Each case runs one graph on one source with the default execution (paper when the graph names
a ladder) and keeps its trace, its fills and its summary figures (timing keys excluded):

    python scripts/goldens.py write            # regenerate tests/data/goldens (make goldens)
    python scripts/goldens.py check [CASE...]  # run the cases, compare; a mismatch prints the
                                               # first differing row and column
    python scripts/goldens.py diff A B         # first difference of two trace/fills parquet files
                                               # (or two run folders)

Every case stores the SHA-256 of its canonical trace and fills (column names, types and values,
NaN as one bit pattern) and its summary in ``goldens.json``. The trace and fills files
themselves are stored too, except for cases on the BTC archive hour, whose data may not be
copied into the repository (../shared/data/hyperliquid/README.md): for those, ``check --keep
DIR`` writes the run's files so they can be diffed against a ``write --out DIR`` of another
commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = ROOT / "graphs"
GOLDEN_DIR = ROOT / "tests" / "data" / "goldens"
SHARED = Path(os.environ.get("FLOWMM_SHARED_DATA", ROOT.parent / "shared" / "data"))
CAPTURE = "hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"
ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"
SYN_DURATION = "10m"
AS2008_DURATION = 60.0  # seconds of the textbook market (a 5-ms clock: 12,000 cycles)
# summary keys that measure the machine, or identify the code (version_hash covers the kernels'
# source: any kernel edit changes it), not the run's behaviour
TIMING_KEYS = {"wall_s", "backend", "version_hash"}
# The 25-s capture trades too little to reach any graph's quotes under the queue model (0 fills
# at 100-ms to 6-s clocks): on it the ladder graphs quote every second and fill by the
# intensity model, A*exp(-k*delta) with k scaled to BTC's price, so matching, accounting and the
# markouts run on real data too.
CAPTURE_CLOCK_MS = 1000
CAPTURE_FILLS = {"fill_model": "intensity", "intensity_A": 1.0, "intensity_k": 0.05}
LADDER_GRAPHS = ("legacy", "rfc_unified", "bayes_e2e", "glft_minimal", "minimal", "rfc_unified_calibrated")


@dataclass(frozen=True)
class Case:
    graph: str
    source: str  # "synthetic:<scenario>:<seed>", "as2008:<seed>", "capture", "archive"

    @property
    def name(self) -> str:
        return f"{self.graph}-{self.source.replace(':', '-')}"

    @property
    def copyable(self) -> bool:
        """The run's files may be committed (not derived from the unlicensed archive hour)."""
        return self.source != "archive"


CASES = tuple(
    [Case(g, s) for g in LADDER_GRAPHS for s in ("synthetic:trend_down:0", "synthetic:calm:1", "capture")]
    + [Case("as2008_symmetric", "as2008:0")]
    + [Case(g, s) for g in ("demo", "vol_minimal") for s in ("capture", "archive")]
)
BY_NAME = {c.name: c for c in CASES}


# -- running a case ----------------------------------------------------------------------------
def _open_source(case: Case):
    from flowmm.sources.replay import Replay
    from flowmm.sources.synthetic import open_synthetic

    kind, *rest = case.source.split(":")
    if kind == "synthetic":
        return open_synthetic(rest[0], seed=int(rest[1]), duration=SYN_DURATION)
    if kind == "as2008":
        return open_synthetic("as2008", seed=int(rest[0]), duration=AS2008_DURATION)
    path = SHARED / (CAPTURE if kind == "capture" else ARCHIVE)
    if not path.exists():
        raise FileNotFoundError(f"{path}: the shared data (set FLOWMM_SHARED_DATA)")
    return Replay([path], coin="BTC", cache=False)


def _graph_file(case: Case, source, tmp: Path) -> Path:
    """The graph file, with the instrument taken from the data on a real-data source."""
    path = GRAPHS / f"{case.graph}.yaml"
    if case.source not in ("capture", "archive"):
        return path
    inst = source.instrument
    fields = [f"coin: {source.coin}", f"tick_size: {source.tick_size!r}"]
    if inst is not None and inst.sz_decimals is not None:
        fields.append(f"sz_decimals: {inst.sz_decimals}")
    text, n = re.subn(
        r"(?m)^instrument: \{[^}]*\}", "instrument: {" + ", ".join(fields) + "}", path.read_text()
    )
    if n != 1:
        raise ValueError(f"{path}: no one-line 'instrument: {{...}}' to replace")
    out = tmp / path.name
    out.write_text(text)
    if (GRAPHS / "params").is_dir() and not (tmp / "params").exists():
        (tmp / "params").symlink_to(GRAPHS / "params")  # params_from: paths relative to the file
    return out


def run_case(case: Case):
    """Run one case; returns the ``flowmm.graph.Run``."""
    import flowmm
    from flowmm.execution.paper import PaperBroker, paper_broker_for

    source = _open_source(case)
    with tempfile.TemporaryDirectory(prefix="flowmm-golden-") as tmp:
        capture = case.source == "capture" and case.graph in LADDER_GRAPHS
        clock = CAPTURE_CLOCK_MS if capture else None
        graph = flowmm.load_graph(_graph_file(case, source, Path(tmp)), quote_every_ms=clock)
        if capture:
            broker = PaperBroker(tick_size=source.tick_size, **CAPTURE_FILLS)
        else:
            broker = paper_broker_for(graph.plan, source)
        return graph.run(source, broker=broker)


# -- canonical form ------------------------------------------------------------------------------
def _canon_column(col: pa.ChunkedArray) -> np.ndarray:
    a = col.to_numpy(zero_copy_only=False)
    if a.dtype.kind == "f":
        a = np.where(np.isnan(a), np.nan, a).astype(np.float64)  # one NaN bit pattern
    return np.ascontiguousarray(a)


def table_hash(table: pa.Table | None) -> str | None:
    if table is None:
        return None
    h = hashlib.sha256()
    for name in table.column_names:
        col = table[name]
        h.update(f"{name}:{col.type};".encode())
        h.update(_canon_column(col).tobytes())
    return h.hexdigest()


def summary_figures(summary: dict) -> dict:
    """The summary without its timing keys and without the replay cache's state."""
    out = {k: v for k, v in summary.items() if k not in TIMING_KEYS}
    if isinstance(out.get("replay"), dict):
        out["replay"] = {k: v for k, v in out["replay"].items() if k != "cache"}
        # where the shared data sits is the machine's business: the file name only
        out["replay"]["files"] = [{**f, "path": Path(f["path"]).name} for f in out["replay"].get("files", [])]
    return json.loads(json.dumps(out))  # tuples -> lists, as the stored JSON has them


def record(run) -> dict:
    return {
        "trace_sha256": table_hash(run.trace),
        "fills_sha256": table_hash(run.fills),
        "trace_rows": run.trace.num_rows,
        "fills_rows": None if run.fills is None else run.fills.num_rows,
        "interrupts": [[int(t), float(v)] for t, v in run.interrupts],
        "summary": summary_figures(run.summary),
    }


# -- diffing -----------------------------------------------------------------------------------
def first_difference(a: pa.Table, b: pa.Table) -> str | None:
    """The first differing row and column of two tables (None when equal), as a sentence."""
    if a.column_names != b.column_names:
        only_a = [c for c in a.column_names if c not in b.column_names]
        only_b = [c for c in b.column_names if c not in a.column_names]
        return f"columns differ: only in the first {only_a}, only in the second {only_b}"
    n = min(a.num_rows, b.num_rows)
    best: tuple[int, str, object, object] | None = None
    for name in a.column_names:
        x, y = _canon_column(a[name])[:n], _canon_column(b[name])[:n]
        if x.dtype.kind == "f":
            same = (x.view(np.int64) == y.view(np.int64)) if y.dtype == x.dtype else np.zeros(n, bool)
        else:
            same = x == y
        bad = np.flatnonzero(~same)
        if len(bad) and (best is None or bad[0] < best[0]):
            best = (int(bad[0]), name, x[bad[0]], y[bad[0]])
    if best is not None:
        row, name, x, y = best
        t = a["t"][row].as_py() if "t" in a.column_names else None
        return f"row {row} (t={t}), column {name!r}: {x.item()!r} != {y.item()!r}"
    if a.num_rows != b.num_rows:
        return f"equal over the first {n} rows, then {a.num_rows} rows vs {b.num_rows}"
    return None


def _tables(path: Path) -> dict[str, Path]:
    if path.is_dir():
        return {p.stem: p for p in (path / "trace.parquet", path / "fills.parquet") if p.exists()}
    return {path.stem: path}


def diff_paths(a: Path, b: Path) -> list[str]:
    ta, tb = _tables(a), _tables(b)
    out = []
    for key in sorted(set(ta) | set(tb)):
        if key not in ta or key not in tb:
            out.append(f"{key}: only in {'the first' if key in ta else 'the second'}")
            continue
        d = first_difference(pq.read_table(ta[key]), pq.read_table(tb[key]))
        if d is not None:
            out.append(f"{key}: {d}")
    return out


# -- golden store ------------------------------------------------------------------------------
def load_goldens(root: Path = GOLDEN_DIR) -> dict:
    return json.loads((root / "goldens.json").read_text())


def _write_files(run, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(run.trace.replace_schema_metadata(None), folder / "trace.parquet")
    if run.fills is not None:
        pq.write_table(run.fills.replace_schema_metadata(None), folder / "fills.parquet")


def compare(case: Case, run, goldens: dict, root: Path = GOLDEN_DIR) -> list[str]:
    """What differs between a run and its golden (empty when identical)."""
    want, got = goldens[case.name], record(run)
    problems = []
    for key in ("trace", "fills"):
        if want[f"{key}_sha256"] == got[f"{key}_sha256"]:
            continue
        stored = root / case.name / f"{key}.parquet"
        table = run.trace if key == "trace" else run.fills
        if table is not None and stored.exists():
            problems.append(f"{key}: {first_difference(pq.read_table(stored), table)}")
        else:
            problems.append(f"{key}: hash differs ({want[f'{key}_sha256']} != {got[f'{key}_sha256']})")
    for key in ("interrupts", "summary"):
        if want[key] != got[key]:
            if key == "summary":
                diff = {k: (want[key].get(k), got[key].get(k)) for k in set(want[key]) | set(got[key])
                        if want[key].get(k) != got[key].get(k)}  # fmt: skip
                problems.append(f"summary: {diff}")
            else:
                problems.append(f"{key}: {want[key][:3]}... != {got[key][:3]}...")
    return problems


def write(root: Path, names: list[str]) -> None:
    cases = [BY_NAME[n] for n in names] if names else list(CASES)
    path = root / "goldens.json"
    goldens = json.loads(path.read_text()) if path.exists() and names else {}
    for case in cases:
        run = run_case(case)
        rec = record(run)
        fills = "no broker" if run.fills is None else f"{rec['fills_rows']} fills"
        print(f"{case.name}: {rec['trace_rows']} cycles, {fills}", file=sys.stderr)
        if rec["fills_rows"] == 0:
            print(f"  warning: {case.name} made no fills", file=sys.stderr)
        goldens[case.name] = rec
        shutil.rmtree(root / case.name, ignore_errors=True)
        if case.copyable:
            _write_files(run, root / case.name)
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(goldens.items())), indent=1) + "\n")


def check(root: Path, names: list[str], keep: Path | None) -> int:
    goldens = load_goldens(root)
    bad = 0
    for case in [BY_NAME[n] for n in names] if names else CASES:
        run = run_case(case)
        if keep is not None:
            _write_files(run, keep / case.name)
        problems = compare(case, run, goldens, root)
        print(f"{case.name}: {'ok' if not problems else 'DIFFERS'}")
        for p in problems:
            print(f"  {p}")
        bad += bool(problems)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="regenerate the goldens")
    w.add_argument("cases", nargs="*", help="only these cases (default: all)")
    w.add_argument("--out", type=Path, default=GOLDEN_DIR)
    c = sub.add_parser("check", help="run the cases and compare them with the goldens")
    c.add_argument("cases", nargs="*")
    c.add_argument("--keep", type=Path, help="write each run's trace and fills here")
    c.add_argument("--goldens", type=Path, default=GOLDEN_DIR)
    d = sub.add_parser("diff", help="first difference of two parquet files or run folders")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    sub.add_parser("list", help="the case names")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        write(args.out, args.cases)
        return 0
    if args.cmd == "check":
        return check(args.goldens, args.cases, args.keep)
    if args.cmd == "list":
        print("\n".join(c.name for c in CASES))
        return 0
    diffs = diff_paths(args.a, args.b)
    print("\n".join(diffs) if diffs else "identical")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())

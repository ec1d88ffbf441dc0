"""Several graphs on the same event streams, side by side: ``flowmm compare``.

``compare(graphs, scenario=..., seeds=...)`` runs every graph on every seed of one synthetic
scenario. Per seed, every graph sees the *same* event stream (``Synthetic(scenario, seed,
duration)`` is deterministic per seed and the market does not react to orders), so differences
between columns come from the graphs alone. Runs go to parallel processes; each writes its own
run folder ``out_dir/<graph>/<scenario>-seed<N>/``.

The table: for each graph and every numeric summary key shared by all runs (nested dicts are
flattened to ``a.b``; wall-clock keys are left out), the median over seeds and the worst seed.
"Worst" is the max for keys where larger is worse (``LARGER_IS_WORSE``) and the min otherwise
(PnL, Sharpe, fills...). ``None``/NaN values (e.g. a Sharpe ratio without fills) are left out of
that key's median and worst. Written as ``compare.csv`` (one row per graph and metric) and
``compare.md`` (graphs as columns, metrics as rows, ``median (worst)`` cells); no timestamps, so
the same inputs give identical files.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from flowmm.errors import FlowmmError, UsageError
from flowmm.graph import BACKENDS

# Substrings of a metric name for which a larger value is worse: worst = max. Everything else: min.
LARGER_IS_WORSE: tuple[str, ...] = (
    "max_abs_q", "max_q", "max_long", "max_short", "q_var", "as_bps", "drawdown", "fees", "interrupts",
    "time_one_sided", "time_no_quotes",
)  # fmt: skip
# Summary keys that measure the machine, not the graph: never compared.
WALL_CLOCK: tuple[str, ...] = ("wall_s", "wall_", "_wall", "elapsed", "events_per_s")
CSV_COLUMNS = ("graph", "metric", "median", "worst", "worst_is", "seeds")


class CompareError(UsageError):
    """A compare that cannot be carried out: bad seeds, jobs, backend, or clashing graphs."""


class RunFailed(FlowmmError):
    """One run of a compare failed in its worker: carries the worker's formatted error."""

    def __init__(self, message: str, exit_code: int = 1):
        self.exit_code = exit_code
        super().__init__(message)

    def __reduce__(self):  # picklable across the process boundary (FlowmmError's args are not)
        return (RunFailed, (self.message, self.exit_code))

    def format(self) -> str:
        return self.message


# -- seeds ---------------------------------------------------------------------------------------

_SEED_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """``"0-19"`` -> 0..19, ``"0,3,5"`` -> [0, 3, 5], ``"7"`` -> [7]; items combine: ``"0-3,9"``.

    Raises ``CompareError`` (exit 2) for anything else: empty items, negative numbers, a
    reversed range, or a seed given twice (it would count twice in the median)."""
    hint = "e.g. --seeds 0-19, --seeds 0,3,5 or --seeds 7 (non-negative integers)"
    seeds: list[int] = []
    items = str(text).replace(" ", "").split(",")
    for item in items:
        m = _SEED_ITEM.match(item)
        if not m:
            raise CompareError(f"bad --seeds {text!r}: {item!r} is not a seed or a range A-B", hint=hint)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise CompareError(f"bad --seeds {text!r}: range {item!r} runs backwards", hint=hint)
        seeds.extend(range(lo, hi + 1))
    dups = sorted({s for s in seeds if seeds.count(s) > 1})
    if dups:
        raise CompareError(f"bad --seeds {text!r}: seed {dups[0]} given more than once", hint=hint)
    return seeds


# -- the worker ----------------------------------------------------------------------------------


def run_one(
    graph_path: str,
    scenario: str,
    seed: int,
    duration: str | None,
    out_dir: str,
    backend: str,
    node_dirs: Sequence[str] = (),
    allow_plugins: bool = False,
) -> dict[str, Any]:
    """One graph on one seed; returns the run's summary dict. Module-level with plain arguments,
    so it works under the ``spawn`` start method (it loads the graph itself)."""
    from flowmm.execution.paper import paper_broker_for
    from flowmm.graph import load_graph
    from flowmm.sources.guard import guard_source
    from flowmm.sources.synthetic import open_synthetic

    try:
        graph = load_graph(Path(graph_path), node_dirs=list(node_dirs), allow_plugins=allow_plugins)
        source = guard_source(open_synthetic(scenario, seed=seed, duration=duration))
        broker = paper_broker_for(graph.plan, source)  # a graph that quotes gets paper execution
        run = graph.run(source, broker=broker, out_dir=out_dir, backend=backend)
        source.record(run)  # into the run folder's summary.json; the table compares graphs, not inputs
        run.summary.pop("rejected")
    except FlowmmError as exc:
        raise RunFailed(f"{graph_path}, seed {seed}: {exc.format()}", exc.exit_code) from None
    return run.summary


# -- the table -----------------------------------------------------------------------------------


def larger_is_worse(metric: str) -> bool:
    """Whether the worst seed of ``metric`` is its max (see ``LARGER_IS_WORSE``)."""
    return any(p in metric for p in LARGER_IS_WORSE)


def _is_wall_clock(metric: str) -> bool:
    return any(p in metric for p in WALL_CLOCK)


def _flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def _number(v: Any) -> float | None:
    """A summary value as a float; None for None/NaN (left out); raises TypeError if not numeric."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    return None if math.isnan(v) else float(v)


def numeric_metrics(summaries: Iterable[dict[str, Any]]) -> list[str]:
    """Sorted metric names that are numeric (or None/NaN) in every summary, minus wall-clock keys."""
    flats = [_flatten(s) for s in summaries]
    if not flats:
        return []
    keys = set.intersection(*(set(f) for f in flats))
    out = []
    for key in keys:
        if _is_wall_clock(key):
            continue
        try:
            values = [_number(f[key]) for f in flats]
        except TypeError:
            continue
        if any(v is not None for v in values):
            out.append(key)
    return sorted(out)


@dataclass(frozen=True)
class Row:
    """One graph x one metric: median and worst over seeds, and how many seeds had a value."""

    graph: str
    metric: str
    median: float
    worst: float
    worst_is: str  # "max" | "min"
    seeds: int


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v)}"
    if abs(v) >= 1000:
        return f"{v:.1f}"
    return f"{v:.4g}"


def _seeds_label(seeds: Sequence[int]) -> str:
    s = sorted(seeds)
    if s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}-{s[-1]}"
    return ",".join(map(str, s))


@dataclass
class CompareResult:
    """The runs of a compare and their side-by-side table (``rows``)."""

    graphs: list[str]  # column labels, in the order given
    scenario: str
    seeds: list[int]
    duration: str | None
    backend: str
    runs: dict[tuple[str, int], dict[str, Any]]  # (graph label, seed) -> summary
    rows: list[Row] = field(default_factory=list)
    out_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = self._table()

    def _table(self) -> list[Row]:
        metrics = numeric_metrics(self.runs.values())
        rows = []
        for g in self.graphs:
            flats = [_flatten(self.runs[(g, s)]) for s in sorted(self.seeds)]
            for m in metrics:
                values = [v for v in (_number(f[m]) for f in flats) if v is not None]
                big = larger_is_worse(m)
                if values:
                    med, worst = float(statistics.median(values)), (max if big else min)(values)
                else:
                    med = worst = math.nan
                rows.append(Row(g, m, med, float(worst), "max" if big else "min", len(values)))
        return rows

    @property
    def metrics(self) -> list[str]:
        return sorted({r.metric for r in self.rows})

    def cell(self, graph: str, metric: str) -> Row:
        for r in self.rows:
            if r.graph == graph and r.metric == metric:
                return r
        raise KeyError((graph, metric))

    def _grid(self) -> tuple[list[str], list[list[str]]]:
        header = ["metric", "worst", *self.graphs]
        body = [["seeds", "", *(str(len(self.seeds)) for _ in self.graphs)]]
        for m in self.metrics:
            cells = [self.cell(g, m) for g in self.graphs]
            body.append([m, cells[0].worst_is, *(f"{_fmt(c.median)} ({_fmt(c.worst)})" for c in cells)])
        return header, body

    def caption(self) -> str:
        dur = self.duration or "the scenario's length"
        return (
            f"scenario {self.scenario}, seeds {_seeds_label(self.seeds)} ({len(self.seeds)}), "
            f"duration {dur}, backend {self.backend}; cells: median (worst) over seeds"
        )

    def format_table(self) -> str:
        """The table for the console: aligned columns, a caption line first."""
        header, body = self._grid()
        rows = [header, *body]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [self.caption()]
        for i, r in enumerate(rows):
            lines.append(
                "  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
            )
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)

    def to_markdown(self) -> str:
        header, body = self._grid()
        lines = [f"# compare: {' vs '.join(self.graphs)}", "", self.caption(), ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---", "---", *(["---:"] * len(self.graphs))]) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        # repr: the shortest text that reads back as the same float, so the file is exact
        w.writerows(
            [r.graph, r.metric, repr(r.median), repr(r.worst), r.worst_is, r.seeds] for r in self.rows
        )
        return buf.getvalue()

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``compare.csv`` and ``compare.md`` into ``out_dir``; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, md_path = out / "compare.csv", out / "compare.md"
        csv_path.write_text(self.to_csv())
        md_path.write_text(self.to_markdown())
        return csv_path, md_path


# -- compare -------------------------------------------------------------------------------------


def _labels(graphs: Sequence[Any], paths: Sequence[Path]) -> list[str]:
    """Column labels: the graph's name; the file stem too when two graphs share a name."""
    names = [g.name for g in graphs]
    labels = [n if names.count(n) == 1 else f"{n}-{p.stem}" for n, p in zip(names, paths)]
    if len(set(labels)) != len(labels):
        dup = next(label for label in labels if labels.count(label) > 1)
        raise CompareError(
            f"two graphs would share the column {dup!r}",
            hint="give the graphs different `name:`s (or files different names)",
        )
    return labels


class _Progress:
    """Runs done / total on stderr: one redrawn line on a terminal, a line per run otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled
        self.tty = enabled and sys.stderr.isatty()
        if self.tty:  # a log gets one line per finished run, no "0/N" line
            self.show("")

    def show(self, what: str) -> None:
        if not self.enabled:
            return
        text = f"  compare: {self.done}/{self.total} runs done"
        if self.tty:
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
        else:
            print(f"{text} ({what})", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def compare(
    graphs: Sequence[str | Path],
    *,
    scenario: str,
    seeds: Sequence[int],
    duration: str | None,
    out_dir: str | Path,
    backend: str = "fused",
    jobs: int | None = None,
    progress: bool = True,
    node_dirs: Sequence[str | Path] = (),
    allow_plugins: bool = False,
) -> CompareResult:
    """Run every graph on every seed of a synthetic scenario and tabulate median and worst.

    All graphs, the scenario and the duration are validated before any run starts (a bad graph
    raises its ``GraphError``). Runs go to ``jobs`` processes (default ``os.cpu_count()``);
    ``compare.csv`` and ``compare.md`` are written into ``out_dir``."""
    from flowmm.graph import load_graph
    from flowmm.sources.synthetic import open_synthetic

    if not graphs:
        raise CompareError("no graphs to compare", hint="flowmm compare A.yaml B.yaml ...")
    seeds = list(seeds)
    if not seeds:
        raise CompareError("no seeds to run", hint="e.g. --seeds 0-19")
    if backend not in BACKENDS:
        raise CompareError(f"unknown backend {backend!r}", hint=" | ".join(BACKENDS))
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise CompareError(f"--jobs must be at least 1, not {jobs}")

    # everything a user can get wrong fails here, before the first run
    source = open_synthetic(scenario, seed=seeds[0], duration=duration)  # ScenarioError if bad
    paths = [Path(g) for g in graphs]
    node_dirs = [str(d) for d in node_dirs]
    # GraphError if bad
    loaded = [load_graph(p, node_dirs=node_dirs, allow_plugins=allow_plugins) for p in paths]
    for g in loaded:
        g.check_source(source.provides())
    labels = _labels(loaded, paths)
    scen_label = getattr(source.scenario, "name", source.scenario)  # AS2008: a plain name
    out = Path(out_dir)

    tasks = {
        (label, seed): (str(path), scenario, seed, duration, str(out / label / f"{scen_label}-seed{seed}"))
        for label, path in zip(labels, paths)
        for seed in seeds
    }
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    bar = _Progress(len(tasks), progress)
    if jobs == 1:  # in-process: no pool to start, plain tracebacks when debugging
        for key, (p, sc, sd, du, od) in tasks.items():
            runs[key] = run_one(p, sc, sd, du, od, backend, node_dirs, allow_plugins)
            bar.done += 1
            bar.show(f"{key[0]} seed {key[1]}")
    else:
        # spawn: no fork of a parent that may hold numba / thread state; same on every OS
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(run_one, p, sc, sd, du, od, backend, node_dirs, allow_plugins): key
                for key, (p, sc, sd, du, od) in tasks.items()
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in sorted(done, key=lambda f: futures[f]):
                    if fut.exception() is not None:
                        for other in pending:
                            other.cancel()
                        bar.close()
                        raise fut.exception()
                    runs[futures[fut]] = fut.result()
                    bar.done += 1
                    bar.show(f"{futures[fut][0]} seed {futures[fut][1]}")
    bar.close()

    result = CompareResult(labels, scen_label, seeds, duration, backend, runs, out_dir=out)
    result.write(out)
    return result


__all__ = [
    "CSV_COLUMNS",
    "LARGER_IS_WORSE",
    "CompareError",
    "CompareResult",
    "Row",
    "RunFailed",
    "compare",
    "larger_is_worse",
    "numeric_metrics",
    "parse_seeds",
    "run_one",
]

"""Plots and one self-contained HTML report of a run folder, and the console summary table.

A run folder (``flowmm.graph.write_run``) holds ``trace.parquet`` (one row per quote cycle: ``t``
int64 ns, ``cycle``, then ``node.port`` float columns), ``summary.json``, ``interrupts.csv``,
``graph.yaml`` and, with the execution layer, ``fills.parquet`` (``t, px, sz, side, oid, fee,
maker, mid_ref``; side ``+1`` our bid filled, ``-1`` our ask filled).

:func:`write_report` reads what is there, writes ``plots/*.png`` and ``report.html`` (plots
embedded as base64 PNG, inline CSS, no external asset) and returns the report's path. A missing
file or column skips its panel with a note in the report; an empty trace is not an error.

:func:`console_summary` renders a summary dict (the engine's keys plus the accounting module's
``flowmm.execution.accounting.summary``) as the seed's "Session Numbers" table, one row per key
present.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowmm.errors import FlowmmError, Location

MAX_PANELS = 12  # posterior panels; the rest are listed in a note
MAX_LINES = 8  # lines per posterior panel
MAX_BUCKETS = 1500  # per line; see _thin
NS_PER_MIN = 60e9

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;border-bottom:1px solid #ddd;margin-top:1.6em}
.meta{color:#555} .meta code{background:#f3f3f3;padding:0 .3em}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.note{color:#8a5a00;background:#fff8e5;border-left:3px solid #e0a800;padding:.3em .6em;margin:.3em 0}
"""


@dataclass
class RunData:
    """A run folder read into arrays; ``notes`` says what was missing or unreadable."""

    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, np.ndarray] = field(default_factory=dict)  # column -> float64 (t: int64)
    fills: dict[str, np.ndarray] | None = None
    interrupts_t: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    interrupts_v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    trace_meta: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        t = self.trace.get("t")
        return 0 if t is None else len(t)

    def t0(self) -> int | None:
        """The time origin: the first trace row, else the first fill or interrupt."""
        for arr in (
            self.trace.get("t"),
            None if self.fills is None else self.fills.get("t"),
            self.interrupts_t,
        ):
            if arr is not None and len(arr):
                return int(np.min(arr))
        return None


# -- reading --------------------------------------------------------------------------------


def _column(table, name: str, dtype) -> np.ndarray:
    col = table.column(name)
    if dtype is np.int64:
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
    # nulls become NaN; a non-numeric column becomes all-NaN rather than failing the report
    try:
        arr = col.cast("float64").to_numpy(zero_copy_only=False)
    except Exception:  # noqa: BLE001 - pyarrow raises several types for an impossible cast
        return np.full(len(col), np.nan)
    return np.asarray(arr, dtype=np.float64)


def read_run(run_dir: Path) -> RunData:
    """Read a run folder; raises ``FlowmmError`` only when the folder itself does not exist."""
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FlowmmError(
            f"run folder {run_dir} does not exist",
            Location(file=str(run_dir)),
            hint="pass the --out folder of a `flowmm run`",
        )
    data = RunData(run_dir)

    p = run_dir / "summary.json"
    if p.is_file():
        try:
            loaded = json.loads(p.read_text())
            data.summary = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError) as e:
            data.notes.append(f"summary.json unreadable: {e}")
    else:
        data.notes.append("no summary.json")

    p = run_dir / "trace.parquet"
    if p.is_file():
        try:
            table = pq.read_table(p)
            meta = table.schema.metadata or {}
            data.trace_meta = {k.decode(): v.decode(errors="replace") for k, v in meta.items()}
            if "t" in table.column_names:
                data.trace["t"] = _column(table, "t", np.int64)
                for name in table.column_names:
                    if name != "t":
                        data.trace[name] = _column(table, name, np.float64)
            else:
                data.notes.append("trace.parquet has no `t` column: trace panels skipped")
        except Exception as e:  # noqa: BLE001 - a corrupt file must not stop the report
            data.notes.append(f"trace.parquet unreadable: {e}")
    else:
        data.notes.append("no trace.parquet")

    p = run_dir / "fills.parquet"
    if p.is_file():
        try:
            table = pq.read_table(p)
            need = {"t", "px", "sz", "side"}
            if need <= set(table.column_names):
                data.fills = {"t": _column(table, "t", np.int64)}
                for name in table.column_names:
                    if name != "t":
                        data.fills[name] = _column(table, name, np.float64)
            else:
                data.notes.append(f"fills.parquet lacks columns {sorted(need - set(table.column_names))}")
        except Exception as e:  # noqa: BLE001
            data.notes.append(f"fills.parquet unreadable: {e}")
    else:
        data.notes.append("no fills.parquet (fills and fill-based position not shown)")

    p = run_dir / "interrupts.csv"
    if p.is_file():
        ts, vs = [], []
        try:
            with open(p, newline="") as f:
                for row in csv.DictReader(f):
                    ts.append(int(row["t"]))
                    vs.append(float(row.get("value") or "nan"))
            data.interrupts_t = np.asarray(ts, np.int64)
            data.interrupts_v = np.asarray(vs, np.float64)
        except (OSError, KeyError, ValueError) as e:
            data.notes.append(f"interrupts.csv unreadable: {e}")
    return data


# -- column selection -----------------------------------------------------------------------


def _usable(data: RunData, name: str) -> bool:
    a = data.trace.get(name)
    return a is not None and name not in ("t", "cycle") and bool(np.isfinite(a).any())


def _pick_mid(data: RunData, mid_column: str | None) -> str | None:
    if mid_column is not None:
        if _usable(data, mid_column):
            return mid_column
        data.notes.append(f"mid column {mid_column!r} not in the trace (or all NaN)")
        return None
    names = [n for n in data.trace if n not in ("t", "cycle")]
    for pred in (lambda n: n == "source.mid", lambda n: n.startswith("source.") and n.endswith("mid")):
        for n in names:
            if pred(n) and _usable(data, n):
                return n
    for n in names:
        if n.endswith("mid") and _usable(data, n):
            return n
    return None


def _first(data: RunData, pred) -> str | None:
    return next((n for n in data.trace if pred(n) and _usable(data, n)), None)


# -- plotting -------------------------------------------------------------------------------


def _new_fig(height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # a Figure on an Agg canvas, not pyplot: headless, and no global backend switch or open
    # figures left behind in the caller's process (e.g. a notebook)
    fig = Figure(figsize=(11, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _minutes(t: np.ndarray, t0: int) -> np.ndarray:
    return (t.astype(np.int64) - t0) / NS_PER_MIN


def _thin(x: np.ndarray, y: np.ndarray, buckets: int = MAX_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` points: each bucket's min and max, so spikes survive at plot width.

    Drawing 10^5+ points per line is slow and invisible at ~1000 px; the envelope looks the same.
    """
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    starts = np.unique(np.arange(buckets, dtype=np.int64) * n // buckets)
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduceat(y, starts)
        hi = np.fmax.reduceat(y, starts)
    return np.repeat(x[starts], 2), np.column_stack([lo, hi]).ravel()


def _price_panel(data, t0, mid, bid, ask, out: Path, notes: list[str]) -> Path | None:
    fills = data.fills
    has_fills = fills is not None and len(fills["t"]) > 0
    if mid is None and bid is None and ask is None and not has_fills and not len(data.interrupts_t):
        notes.append("no mid, quote, fill or interrupt data: price panel skipped")
        return None
    fig, ax = _new_fig(4.2)
    tr = data.trace
    x = _minutes(tr["t"], t0) if "t" in tr else None
    if mid is not None:
        ax.plot(*_thin(x, tr[mid]), color="black", lw=1.0, label=mid)
    else:
        notes.append("no mid column traced (trace `source.mid` or pass mid_column)")
    for col, color in ((bid, "tab:green"), (ask, "tab:red")):
        if col is not None:
            ax.plot(*_thin(x, tr[col]), color=color, lw=0.8, alpha=0.7, ds="steps-post", label=col)
    if has_fills:
        m = _minutes(fills["t"], t0)
        b = fills["side"] > 0
        s = fills["side"] < 0
        ax.scatter(
            m[b], fills["px"][b], marker="^", color="green", s=36, zorder=5, label=f"bid fills ({b.sum()})"
        )
        ax.scatter(
            m[s], fills["px"][s], marker="v", color="red", s=36, zorder=5, label=f"ask fills ({s.sum()})"
        )
    if len(data.interrupts_t):
        ax.vlines(
            _minutes(data.interrupts_t, t0),
            0,
            1,
            transform=ax.get_xaxis_transform(),
            color="tab:orange",
            lw=0.6,
            alpha=0.5,
            label=f"interrupts ({len(data.interrupts_t)})",
        )
    ax.set_title("price, quotes, fills, interrupts")
    ax.set_xlabel("minutes")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out)


def _series_panel(title: str, series: list[tuple[str, np.ndarray, np.ndarray]], out: Path, step=False):
    fig, ax = _new_fig()
    for label, x, y in series:
        ax.plot(*_thin(x, y), lw=1.0, label=label, ds="steps-post" if step else "default")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_title(title)
    ax.set_xlabel("minutes")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out)


def _group_panels(groups: list[tuple[str, list[str]]], data: RunData, t0: int, out: Path) -> Path:
    n = len(groups)
    ncols = 3 if n > 4 else min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, _ = _new_fig(2.4 * nrows)
    fig.clear()
    x = _minutes(data.trace["t"], t0)
    for i, (node, cols) in enumerate(groups):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for c in cols[:MAX_LINES]:
            ax.plot(*_thin(x, data.trace[c]), lw=0.9, label=c.split(".", 1)[-1])
        more = f" (+{len(cols) - MAX_LINES} more)" if len(cols) > MAX_LINES else ""
        ax.set_title(node + more, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    return _save(fig, out)


# -- the report -----------------------------------------------------------------------------


@dataclass
class _Section:
    title: str
    png: Path | None = None
    notes: list[str] = field(default_factory=list)


def write_report(
    run_dir: Path, *, mid_column: str | None = None, extra_columns: list[str] | None = None
) -> Path:
    """Write ``plots/*.png`` and a self-contained ``report.html`` into ``run_dir``; return the HTML path.

    ``mid_column``: the trace column to plot as the price (default: ``source.mid``-like, else the
    first column ending in ``mid``). ``extra_columns``: trace columns to plot in their own panel
    (they are then left out of the posterior panels).
    """
    run_dir = Path(run_dir)
    data = read_run(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    sections: list[_Section] = []
    t0 = data.t0()
    has_trace = data.n_rows > 0
    if not has_trace and "t" in data.trace:
        data.notes.append("the trace is empty (no quote cycle): trace panels skipped")

    used: set[str] = {"t", "cycle"}
    mid = _pick_mid(data, mid_column) if has_trace else None
    bid = _first(data, lambda n: n.endswith("bid_px.0")) if has_trace else None
    ask = _first(data, lambda n: n.endswith("ask_px.0")) if has_trace else None
    used.update(c for c in (mid, bid, ask) if c)

    sec = _Section("Price")
    sections.append(sec)
    if t0 is not None:
        sec.png = _price_panel(data, t0, mid, bid, ask, plots / "price.png", sec.notes)
    else:
        sec.notes.append("no trace rows, fills or interrupts: nothing to plot")

    # position: a traced column, else the running sum of signed fill sizes
    sec = _Section("Position")
    sections.append(sec)
    pos = _first(data, lambda n: "position" in n) if has_trace else None
    if pos is not None:
        used.add(pos)
        sec.png = _series_panel(
            "position",
            [(pos, _minutes(data.trace["t"], t0), data.trace[pos])],
            plots / "position.png",
            step=True,
        )
    elif data.fills is not None and len(data.fills["t"]) and t0 is not None:
        f = data.fills
        order = np.argsort(f["t"], kind="stable")
        q = np.concatenate([[0.0], np.cumsum((f["side"] * f["sz"])[order])])
        x = np.concatenate([[0.0], _minutes(f["t"][order], t0)])
        sec.notes.append("no position column traced: cumulative signed fill size")
        sec.png = _series_panel(
            "position (from fills)", [("Σ side·sz", x, q)], plots / "position.png", step=True
        )
    else:
        sec.notes.append("no position column traced and no fills")

    sec = _Section("PnL")
    sections.append(sec)
    pnl = [n for n in data.trace if "pnl" in n.lower() and _usable(data, n)] if has_trace else []
    if pnl:
        used.update(pnl)
        x = _minutes(data.trace["t"], t0)
        sec.png = _series_panel("PnL", [(c, x, data.trace[c]) for c in pnl], plots / "pnl.png")
    else:
        sec.notes.append("no PnL column traced")

    sec = _Section("Spreads per side")
    sections.append(sec)
    if mid is not None and (bid is not None or ask is not None):
        x = _minutes(data.trace["t"], t0)
        m = data.trace[mid]
        series = []
        with np.errstate(invalid="ignore", divide="ignore"):
            if ask is not None:
                series.append(("ask − mid (bps)", x, (data.trace[ask] - m) / m * 1e4))
            if bid is not None:
                series.append(("mid − bid (bps)", x, (m - data.trace[bid]) / m * 1e4))
        sec.png = _series_panel("half-spreads per side (bps)", series, plots / "spreads.png", step=True)
    else:
        sec.notes.append("needs a mid and a level-0 quote column (`*bid_px.0` / `*ask_px.0`)")

    for i, c in enumerate(extra_columns or []):
        sec = _Section(f"Extra: {c}")
        sections.append(sec)
        if has_trace and _usable(data, c):
            used.add(c)
            x = _minutes(data.trace["t"], t0)
            sec.png = _series_panel(c, [(c, x, data.trace[c])], plots / f"extra_{i}.png")
        else:
            sec.notes.append(f"column {c!r} not in the trace (or all NaN)")

    sec = _Section("Posterior and other traced values")
    sections.append(sec)
    groups: dict[str, list[str]] = {}
    skipped_nan = []
    for n in data.trace:
        if n in used:
            continue
        if _usable(data, n):
            groups.setdefault(n.split(".", 1)[0], []).append(n)
        else:
            skipped_nan.append(n)
    if skipped_nan:
        sec.notes.append(f"all-NaN columns skipped: {', '.join(skipped_nan)}")
    glist = list(groups.items())
    if len(glist) > MAX_PANELS:
        sec.notes.append(
            f"not shown (over {MAX_PANELS} panels): {', '.join(g for g, _ in glist[MAX_PANELS:])}"
        )
        glist = glist[:MAX_PANELS]
    if glist and has_trace:
        sec.png = _group_panels(glist, data, t0, plots / "posterior.png")
    elif has_trace:
        sec.notes.append("no other traced column")

    out = run_dir / "report.html"
    out.write_text(_html(data, sections))
    return out


def _img(path: Path, mime: str = "image/png") -> str:
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:{mime};base64,{b64}">'


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows.extend(_flatten(v, key + "."))
        else:
            rows.append((key, v))
    return rows


def _cell(v: Any) -> str:
    if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
        keys = list(dict.fromkeys(k for r in v for k in r))
        head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
        body = "".join("<tr>" + "".join(_td(r.get(k)) for k in keys) + "</tr>" for r in v)
        return f"<td><table><tr>{head}</tr>{body}</table></td>"
    return _td(v)


def _td(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return f"<td>{html.escape(str(v))}</td>"
    if isinstance(v, (int, float)):
        text = f"{v:,}" if isinstance(v, int) else f"{v:.6g}"
        return f'<td class="num">{html.escape(text)}</td>'
    if isinstance(v, (list, dict)):
        return f"<td>{html.escape(json.dumps(v))}</td>"
    return f"<td>{html.escape(str(v))}</td>"


def _html(data: RunData, sections: list[_Section]) -> str:
    s = data.summary
    name = s.get("graph") or data.run_dir.name
    vhash = s.get("version_hash") or data.trace_meta.get("flowmm.version_hash")
    meta = [("version", vhash)] + [(k, s.get(k)) for k in ("source", "scenario", "seed", "backend")]
    meta_html = " · ".join(f"{k} <code>{html.escape(str(v))}</code>" for k, v in meta if v is not None)
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>flowmm run: {e(str(name))}</title><style>{_CSS}</style></head><body>",
        f"<h1>flowmm run: {e(str(name))}</h1>",
        f'<p class="meta">{meta_html}<br>folder <code>{e(str(data.run_dir))}</code></p>',
    ]
    parts += [f'<div class="note">{e(n)}</div>' for n in data.notes]
    parts.append("<h2>Summary</h2>")
    if s:
        rows = "".join(f"<tr><th>{e(k)}</th>{_cell(v)}</tr>" for k, v in _flatten(s))
        parts.append(f"<table>{rows}</table>")
        text = console_summary(s)
        if text:
            parts.append(f"<h2>Session numbers</h2><pre>{e(text)}</pre>")
    else:
        parts.append('<div class="note">no summary</div>')
    svgs = sorted(data.run_dir.glob("*.svg"))
    for sec in sections:
        parts.append(f"<h2>{e(sec.title)}</h2>")
        parts += [f'<div class="note">{e(n)}</div>' for n in sec.notes]
        if sec.png is not None:
            parts.append(_img(sec.png))
    if svgs:
        parts.append("<h2>Graph</h2>" + _img(svgs[0], "image/svg+xml"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- console summary ------------------------------------------------------------------------


def _duration(s: float) -> str:
    s = float(s)
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m {sec:02d}s"
    if m:
        return f"{m}m {sec:02d}s"
    return f"{s:.3g}s" if s < 10 else f"{sec}s"


def _money(x: float) -> str:
    x = float(x)
    sign = "+" if x > 0 else ("-" if x < 0 else "")
    a = abs(x)
    body = f"{a:,.2f}" if a >= 0.005 or a == 0 else f"{a:.2g}"
    return f"{sign}${body}"


def _qty(x: float) -> str:
    return f"{float(x):,.6g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _lookup(summary: dict) -> dict:
    """Top-level keys, plus those of nested dicts (e.g. an ``accounting`` sub-dict) not shadowed."""
    flat = dict(summary)
    for v in summary.values():
        if isinstance(v, dict):
            for k, w in v.items():
                flat.setdefault(k, w)
    return flat


def console_summary(summary: dict) -> str:
    """The "Session Numbers" table (Markdown) of a run summary: only the rows whose keys exist."""
    s = _lookup(summary)
    rows: list[tuple[str, str]] = []

    def ok(*keys: str) -> bool:
        return all(s.get(k) is not None for k in keys)

    if ok("duration_s"):
        rows.append(("Duration", _duration(s["duration_s"])))
    if ok("fills_buys", "fills_sells"):
        b, a = int(s["fills_buys"]), int(s["fills_sells"])
        rows.append(("Fills", f"{b + a} ({_plural(b, 'buy')}, {_plural(a, 'sell')})"))
    if ok("volume_bought"):
        rows.append(("Volume bought", _qty(s["volume_bought"])))
    if ok("volume_sold"):
        rows.append(("Volume sold", _qty(s["volume_sold"])))
    if ok("final_q"):
        q = float(s["final_q"])
        rows.append(
            ("Final position", f"{q:+,.6g} long" if q > 0 else f"{q:+,.6g} short" if q < 0 else "0 (flat)")
        )
    if ok("max_abs_q"):
        rows.append(("Max \\|q\\|", _qty(s["max_abs_q"])))  # escaped: the table is Markdown
    for key, label in (
        ("realised_pnl", "Realized PnL"),
        ("unrealised_pnl", "Unrealized PnL"),
        ("total_pnl", "Total PnL"),
    ):
        if ok(key):
            rows.append((label, _money(s[key])))
    if ok("fees"):
        f = float(s["fees"])
        kind = " paid" if f > 0 else " rebate" if f < 0 else ""
        rows.append(("Fees", _money(abs(f)).lstrip("+") + kind))
    if ok("funding"):
        rows.append(("Funding", _money(s["funding"]) + (" (received)" if s["funding"] > 0 else "")))
    counts = {}
    for m in s.get("markouts") or []:
        if isinstance(m, dict) and m.get("horizon_s") is not None:
            counts[f"{float(m['horizon_s']):g}s"] = m.get("n")
    avg = s.get("avg_as_bps")
    if isinstance(avg, dict):
        for h, v in avg.items():
            n = counts.get(h)
            text = "n/a (no markout)" if v is None else f"{float(v):.2f} bps"
            rows.append((f"Avg AS ({h})", text + (f", n={n}" if n else "")))
    for k in sorted(k for k in s if k.lower().startswith("sharpe") and s[k] is not None):
        label = "Sharpe" if k.lower() == "sharpe" else f"Sharpe ({k.split('_', 1)[-1]})"
        rows.append((label, f"{float(s[k]):.2f}"))
    if ok("time_one_sided_s"):
        t1 = float(s["time_one_sided_s"])
        tq = s.get("time_quoted_s")
        pct = f" ({100 * t1 / float(tq):.0f}% of quoted time)" if tq else ""
        rows.append(("Time one-sided", _duration(t1) + pct))
    for key, label in (("events", "Events"), ("cycles", "Quote cycles"), ("interrupts", "Interrupts")):
        if ok(key) and not isinstance(s[key], (dict, list)):
            rows.append((label, f"{int(s[key]):,}"))
    if ok("wall_s"):
        rows.append(("Wall time", f"{float(s['wall_s']):.2f}s"))
    if not rows:
        return ""
    w = max(len("Metric"), *(len(r[0]) for r in rows))
    v = max(len("Value"), *(len(r[1]) for r in rows))
    lines = [f"| {'Metric':<{w}} | {'Value':<{v}} |", f"|{'-' * (w + 2)}|{'-' * (v + 2)}|"]
    lines += [f"| {a:<{w}} | {b:<{v}} |" for a, b in rows]
    return "\n".join(lines)


__all__ = ["RunData", "console_summary", "read_run", "write_report"]

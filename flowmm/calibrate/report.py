"""The calibration report: the gate table (console and Markdown), the core parameters, the
recommendation, and a plot of each feature's out-of-sample R^2 per fold."""

from __future__ import annotations

import math
from pathlib import Path

from flowmm.calibrate.result import Calibration

HEAD = ["feature", "h s", "n", "gain", "sigma", "R2 oos", "R2 folds min..max", "sign", "incr R2",
        "edge bps", "cost bps", "verdict"]  # fmt: skip


def _f(x: float, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def gate_rows(calib: Calibration) -> list[list[str]]:
    gains = {f.name: f.gain for f in calib.features}
    rows = []
    for g in calib.groups:
        for r in g.features:
            folds = [x for x in r.r2_folds if math.isfinite(x)]
            span = f"{min(folds):+.4f}..{max(folds):+.4f}" if folds else "-"
            verdict = "admit" if r.admitted else "reject: " + "; ".join(r.reasons)
            rows.append([
                r.name, f"{g.horizon_s:g}", f"{r.fit.n:,}", f"{gains[r.name]} {_f(r.fit.slope, '.4g')}",
                _f(r.fit.sigma, ".4g"), _f(r.r2, "+.4f"), span, r.sign_folds, _f(r.incr_r2, "+.4f"),
                _f(r.edge_bps, ".2f") + ("" if r.cost_ok else " <"), _f(r.cost_bps, ".2f"), verdict,
            ])  # fmt: skip
    return rows


def core_lines(calib: Calibration) -> list[str]:
    out = []
    ou = calib.ou
    if ou is not None:
        out.append(
            f"OU drift MLE on prices ({ou.n_prices:,} prices every {ou.dt_s:g} s): "
            f"kappa_mu {ou.kappa_mu:.4g} /s (half-life {math.log(2) / ou.kappa_mu:.0f} s), "
            f"sigma_mu {ou.sigma_mu:.4g} (bps/s)/sqrt(s), drift sd {ou.drift_sd:.4g} bps/s, "
            f"sigma {ou.sigma:.4g} bps/sqrt(s), price noise {ou.eta:.3g} bps"
        )
    f = calib.fill
    if f is not None:
        out.append(
            f"fill regression ({f.n:,} tape fills, tau_fill {f.tau_s:g} s): c_fill {f.slope:.4g} bps/s, "
            f"sigma_fill {f.resid_sd:.4g} bps/s (intercept {f.intercept:+.3g})"
        )
    if not calib.drift_nodes:
        out.append("no estimators.kalman_drift node in the graph: core parameters are reported, not written")
    return out + calib.notes


def recommendation(calib: Calibration) -> list[str]:
    if not calib.rejected:
        return ["every feature passed the gate: keep them all"]
    wired = {f.name: f.wired_to for f in calib.features}
    out = []
    for name in calib.rejected:
        lists = " and ".join(f"`{w}`" for w in wired[name])
        out.append(
            f"remove {name}: delete node `{name}`" + (f" and `{name}.obs` from {lists}" if lists else "")
        )
    return out


def changes(calib: Calibration, previous: dict) -> list[str]:
    """What moved since a previous params file (the weekly review, seed 000 Appendix A):
    every param's relative change and every gate verdict that flipped."""
    old_params = previous.get("params") or {}
    old_admitted = set((previous.get("calibration") or {}).get("admitted") or [])
    new_params = calib.params()
    out = []
    for node in sorted(set(old_params) | set(new_params)):
        old, new = old_params.get(node, {}), new_params.get(node, {})
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key), new.get(key)
            if a is None or b is None:
                out.append(f"{node}.{key}: {a if a is not None else '-'} -> {b if b is not None else '-'}")
            elif a != b:
                rel = f" ({(b - a) / abs(a):+.1%})" if a else ""
                out.append(f"{node}.{key}: {a:.4g} -> {b:.4g}{rel}")
    names = {f.name for f in calib.features}
    now = set(calib.admitted)
    for name in sorted(names & (old_admitted ^ now)):
        out.append(f"{name}: {'admitted' if name in old_admitted else 'rejected'} before, "
                   f"{'admitted' if name in now else 'rejected'} now")  # fmt: skip
    return out or ["no change"]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def console(calib: Calibration, previous: dict | None = None) -> str:
    cfg = calib.config
    d = calib.data
    lines = [
        f"calibration of {calib.graph} (hash {calib.graph_hash}) on {d['source']}: {d['segments']} segments, "
        f"{d['hours']:g} h, {d['cycles']:,} cycles",
        f"gate: R2 oos > {cfg.r2_min}, incremental R2 > {cfg.incr_r2_min}"
        + (", edge > cost" if cfg.cost_gate else " (cost check reported: '<' = edge below cost)")
        + f"; {cfg.folds} folds, {cfg.window} window, {cfg.block_s:g}-s blocks",
        "",
        *_table([HEAD, *gate_rows(calib)]),
        "",
        *core_lines(calib),
        "",
        *recommendation(calib),
    ]
    if previous is not None:
        lines += ["", "change from the previous params file:", *(f"  {c}" for c in changes(calib, previous))]
    return "\n".join(lines)


def markdown(calib: Calibration, plot_name: str | None = None, previous: dict | None = None) -> str:
    cfg = calib.config
    d = calib.data
    rows = gate_rows(calib)
    md = [
        f"# Calibration of `{calib.graph}`",
        "",
        f"Graph hash `{calib.graph_hash}`; data: {d['source']}, {d['segments']} segments, {d['hours']:g} h, "
        f"{d['cycles']:,} cycles. Walk-forward: {cfg.folds} folds, {cfg.window} window, "
        f"{cfg.block_s:g}-s blocks. "
        f"Gate: out-of-sample R² > {cfg.r2_min} and incremental R² > {cfg.incr_r2_min}"
        + (" and edge > cost." if cfg.cost_gate else "; the cost check is reported (`<`: edge below cost)."),
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
        *("| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows),
        "",
        "## Core parameters",
        "",
        *(f"- {line}" for line in core_lines(calib)),
        "",
        "## Recommendation",
        "",
        *(f"- {line}" for line in recommendation(calib)),
    ]
    if previous is not None:
        md += [
            "",
            "## Change from the previous params file",
            "",
            *(f"- {c}" for c in changes(calib, previous)),
        ]
    if plot_name:
        md += ["", f"![out-of-sample R² per fold]({plot_name})"]
    return "\n".join(md) + "\n"


def plot(calib: Calibration, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(calib.groups)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 4), squeeze=False)
    for ax, g in zip(axes[0], calib.groups):
        for r in g.features:
            folds = range(1, len(r.r2_folds) + 1)
            ax.plot(folds, r.r2_folds, marker="o", ls="-" if r.admitted else ":", label=r.name)
        ax.axhline(calib.config.r2_min, color="k", lw=0.8, ls="--", label="R² gate")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_xticks(range(1, len(g.folds) + 1))
        ax.set_xlabel("walk-forward fold")
        ax.set_ylabel("out-of-sample R²")
        ax.set_title(f"{calib.graph}: horizon {g.horizon_s:g} s (dotted: rejected)")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(calib: Calibration, out_dir: str | Path, previous: dict | None = None) -> Path:
    """report.md and r2_folds.png in ``out_dir``; returns the Markdown file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot(calib, out / "r2_folds.png")
    md = out / "report.md"
    md.write_text(markdown(calib, png.name, previous))
    return md

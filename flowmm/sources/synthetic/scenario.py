"""Scenario files: pydantic models, the loader (located errors) and the phase schedule.

A scenario is a YAML file (``graphs/scenarios/NAME.yaml``, see docs/synthetic.md)::

    name: trend_down
    description: one line shown by `flowmm scenarios`
    knobs: {book: 1, trade_side: 1, ...}       # information channels, 0 = no information
    regimes: {volatile: {sigma: 2.0}}          # optional overrides of the regime defaults
    phases:
      - {name: lead_in, duration: 2m, regime: quiet}
      - {name: selloff, duration: 15m, regime: trending_down, mu: -0.063}
      - {duration: 20m, markov: {regimes: [quiet, trending_up], dwell_s: 120}}

Units follow CONVENTIONS.md: drifts in bps/s, volatilities in bps/sqrt(s), funding per hour.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flowmm.core.yamlloc import Located, load_located_file
from flowmm.errors import Diagnostic, GraphError, Location


class ScenarioError(GraphError):
    """A scenario file (or name) failed to load; holds all diagnostics, each located."""


class Regime(IntEnum):
    """Regime ids carried by TRUTH events (``source.truth[2]``)."""

    quiet = 0
    trending_down = 1
    trending_up = 2
    mean_reverting = 3
    volatile = 4


RegimeName = Literal["quiet", "trending_down", "trending_up", "mean_reverting", "volatile"]
KNOB_NAMES = ("book", "trade_side", "sweeps", "hawkes", "lead", "basis", "oi", "funding", "size")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: str | float | int) -> float:
    """``"20m"``, ``"90s"``, ``"1h"``, ``"500ms"`` or a number of seconds -> seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"not a duration: {value!r} (use e.g. 20m, 90s, 1h or seconds)")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not seconds > 0 or not np.isfinite(seconds):
        raise ValueError(f"a duration must be positive, not {value!r}")
    return seconds


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Knobs(Strict):
    """One strength per information channel; 0 = the channel carries no information, 1 = the
    documented full strength (docs/synthetic.md, "Information channels")."""

    book: float = Field(0.0, ge=0, le=2)
    trade_side: float = Field(0.0, ge=0, le=2)
    sweeps: float = Field(0.0, ge=0, le=2)
    hawkes: float = Field(0.0, ge=0, le=1.5)
    lead: float = Field(0.0, ge=0, le=2)
    basis: float = Field(0.0, ge=0, le=2)
    oi: float = Field(0.0, ge=0, le=2)
    funding: float = Field(0.0, ge=0, le=2)
    size: float = Field(0.0, ge=0, le=2)

    def array(self) -> np.ndarray:
        return np.array([getattr(self, k) for k in KNOB_NAMES], np.float64)


class Flow(Strict):
    """The order-flow market (docs/synthetic.md, "Order flow moves the price"): with a ``flow:``
    section every aggressive order comes from ``flow.flow_pass`` and moves the mid; without one
    the market is the exogenous-price market (and its event stream is unchanged). Strengths:
    0 = off, 1 = the documented strength (``flow.FlowModel``)."""

    impact: float = Field(1.0, ge=0, le=3)  # orders move the mid (0: they print, nothing moves)
    metaorders: float = Field(1.0, ge=0, le=3)  # uninformed parent orders split over minutes
    informed: float = Field(0.0, ge=0, le=3)  # metaorders start on the latent drift's side
    liquidations: float = Field(0.0, ge=0, le=3)  # forced orders triggered by the mid's moves

    def array(self) -> np.ndarray:
        return np.array([self.impact, self.metaorders, self.informed, self.liquidations], np.float64)


class Instrument(Strict):
    """The simulated perp. Defaults: a HYPE-like HIP-3 market (documented assumptions)."""

    coin: str = "HYPE"
    price: float = Field(28.0, gt=0)
    tick: float = Field(0.001, gt=0)
    size_decimals: int = Field(2, ge=0, le=8)
    depth_scale: float = Field(120.0, gt=0)  # instrument size per BTC of the calibration book
    trade_rate: float = Field(1.5, gt=0)  # aggressive orders per second, both sides, activity 1
    trade_size_median: float = Field(3.0, gt=0)
    trade_size_logsd: float = Field(1.3, ge=0, le=3)
    open_interest: float = Field(500_000.0, gt=0)


class Reference(Strict):
    """The reference asset (BTC): shares a contemporaneous component and leads by ``lead_s``."""

    coin: str = "BTC"
    price: float = Field(95_000.0, gt=0)
    tick: float = Field(1.0, gt=0)
    sigma: float = Field(0.35, ge=0)  # bps/sqrt(s)
    beta: float = Field(0.8, ge=0, le=3)  # instrument bps per BTC bps (contemporaneous + lagged)
    lead_s: float = Field(30.0, ge=0, le=600)


class Spot(Strict):
    basis_mean_bps: float = 2.0  # (perp - spot)/spot, long-run mean
    basis_sd_bps: float = Field(1.0, ge=0)


class Funding(Strict):
    """Long-run distribution of the hourly funding rate with every knob 0: a funding z-score
    ``(f - mean)/sd`` of +2 means +2 sigma of this distribution."""

    mean: float = 1.25e-5  # per hour (Hyperliquid's interest component, 0.01 % / 8 h)
    sd: float = Field(2.0e-5, gt=0)  # per hour


class RegimeParams(Strict):
    """Parameters of a regime; every field optional (None = the regime's default)."""

    mu: float | None = None  # target drift of the instrument, bps/s (BTC's share included)
    mu_sd: float | None = Field(None, ge=0)  # stationary sd of the drift around its target
    mu_tau_s: float | None = Field(None, gt=0)  # drift OU time constant (ramp at regime changes)
    sigma: float | None = Field(None, gt=0)  # total volatility, bps/sqrt(s)
    jump_rate: float | None = Field(None, ge=0)  # uninformed sweeps (jumps) per second, both sides
    jump_ticks: float | None = Field(None, ge=4, le=200)  # mean jump size in ticks
    mean_reversion: float | None = Field(None, ge=0, le=1)  # 1/s pull toward a 5-min price anchor
    activity: float | None = Field(None, gt=0, le=20)  # trade-rate multiplier
    spread_scale: float | None = Field(None, ge=1, le=10)
    oi_flow: Literal[-1, 1] | None = None  # +1 positions opened into moves, -1 liquidations
    btc_mu: float | None = None  # reference drift, bps/s (runs lead_s ahead of the instrument)


REGIME_DEFAULTS: dict[str, dict[str, float]] = {
    "quiet": dict(mu=0.0, mu_sd=0.0, mu_tau_s=30.0, sigma=0.6, jump_rate=0.002, jump_ticks=6.0,
                  mean_reversion=0.0, activity=1.0, spread_scale=1.0, oi_flow=1, btc_mu=0.0),
    "trending_down": dict(mu=-0.06, mu_sd=0.01, mu_tau_s=30.0, sigma=0.5, jump_rate=0.002, jump_ticks=6.0,
                          mean_reversion=0.0, activity=1.0, spread_scale=1.0, oi_flow=1, btc_mu=-0.02),
    "trending_up": dict(mu=0.06, mu_sd=0.01, mu_tau_s=30.0, sigma=0.5, jump_rate=0.002, jump_ticks=6.0,
                        mean_reversion=0.0, activity=1.0, spread_scale=1.0, oi_flow=1, btc_mu=0.02),
    "mean_reverting": dict(mu=0.0, mu_sd=0.0, mu_tau_s=30.0, sigma=0.7, jump_rate=0.002, jump_ticks=6.0,
                           mean_reversion=1 / 60, activity=1.0, spread_scale=1.0, oi_flow=1, btc_mu=0.0),
    "volatile": dict(mu=0.0, mu_sd=0.0, mu_tau_s=30.0, sigma=1.8, jump_rate=0.02, jump_ticks=10.0,
                     mean_reversion=0.0, activity=2.5, spread_scale=2.0, oi_flow=1, btc_mu=0.0),
}  # fmt: skip


class Markov(Strict):
    """Random regime switching inside a phase: exponential dwell times, next regime uniform
    among the others."""

    regimes: list[RegimeName] = Field(min_length=2)
    dwell_s: float = Field(gt=0)


class Phase(RegimeParams):
    name: str | None = None
    duration: float
    regime: RegimeName | None = None
    markov: Markov | None = None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @model_validator(mode="after")
    def _one_regime(self):
        if (self.regime is None) == (self.markov is None):
            raise ValueError("a phase sets exactly one of regime: NAME or markov: {regimes, dwell_s}")
        return self


class Scenario(Strict):
    name: str
    description: str = ""
    start: datetime = datetime(2026, 2, 19, 22, 6, tzinfo=UTC)
    instrument: Instrument = Field(default_factory=Instrument)
    reference: Reference = Field(default_factory=Reference)
    spot: Spot = Field(default_factory=Spot)
    funding: Funding = Field(default_factory=Funding)
    knobs: Knobs = Field(default_factory=Knobs)
    flow: Flow | None = None
    regimes: dict[RegimeName, RegimeParams] = Field(default_factory=dict)
    phases: list[Phase] = Field(min_length=1)

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    @property
    def duration_s(self) -> float:
        """The scenario's own length (sum of its phases)."""
        return float(sum(p.duration for p in self.phases))

    @property
    def start_ns(self) -> int:
        return int(round(self.start.timestamp())) * 1_000_000_000

    def with_knobs(self, **knobs: float) -> Scenario:
        """A copy with some knobs changed (``with_knobs(book=1)``); validated."""
        merged = self.knobs.model_dump() | knobs
        return self.model_copy(update={"knobs": Knobs.model_validate(merged)})

    def with_flow(self, **flow: float) -> Scenario:
        """A copy with some order-flow strengths changed (``with_flow(impact=0)``); validated."""
        merged = (self.flow.model_dump() if self.flow else {}) | flow
        return self.model_copy(update={"flow": Flow.model_validate(merged)})

    def regime_params(self, regime: str, phase: RegimeParams | None = None) -> dict[str, float]:
        """Effective parameters: regime defaults < scenario ``regimes:`` overrides < the phase's."""
        out = dict(REGIME_DEFAULTS[regime])
        for layer in (self.regimes.get(regime), phase):
            if layer is not None:
                out.update({k: v for k, v in layer.model_dump().items() if k in out and v is not None})
        return out


# --- the schedule: phases -> segments of constant parameters --------------------------------

SEG_FIELDS = ("mu", "mu_sd", "mu_tau_s", "sigma", "jump_rate", "jump_ticks", "mean_reversion",
              "activity", "spread_scale", "oi_flow", "regime", "btc_mu")  # fmt: skip
SEG = {k: i for i, k in enumerate(SEG_FIELDS)}


def segments(scn: Scenario, n_blocks: int, dt: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand the phases into segments covering ``n_blocks`` blocks of ``dt`` seconds.

    Returns (start block per segment, parameter rows [n_seg, len(SEG_FIELDS)], phase index per
    segment). Markov phases draw their regime sequence from ``seed``; the last phase is extended
    when more blocks are asked for than the scenario has."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x5E6])))
    starts: list[int] = []
    rows: list[list[float]] = []
    phase_of: list[int] = []
    block = 0
    for i, ph in enumerate(scn.phases):
        if block >= n_blocks:
            break
        last = i == len(scn.phases) - 1
        end = n_blocks if last else min(n_blocks, block + int(round(ph.duration / dt)))
        if end <= block:
            continue
        if ph.regime is not None:
            plan = [(block, ph.regime)]
        else:
            plan, b, reg = [], block, ph.markov.regimes[int(rng.integers(len(ph.markov.regimes)))]
            while b < end:
                plan.append((b, reg))
                b += max(1, int(round(rng.exponential(ph.markov.dwell_s) / dt)))
                others = [r for r in ph.markov.regimes if r != reg]
                reg = others[int(rng.integers(len(others)))]
        for b, reg in plan:
            par = scn.regime_params(reg, ph)
            starts.append(b)
            rows.append([float(Regime[reg]) if k == "regime" else float(par[k]) for k in SEG_FIELDS])
            phase_of.append(i)
        block = end
    return np.array(starts, np.int64), np.array(rows, np.float64), np.array(phase_of, np.int64)


# --- loading ----------------------------------------------------------------------------------


def scenario_dirs() -> list[Path]:
    """Where named scenarios are looked up, first match wins.

    The single source of truth is ``graphs/scenarios/*.yaml`` in the repository. A regular
    install ships that folder as package data of ``flowmm.scenarios`` (setup.py maps it like
    ``nodes/`` -> ``flowmm.nodes``); an editable install reads the repository folder."""
    out: list[Path] = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("flowmm.scenarios")  # a folder of YAML: a namespace package
        if spec is not None and spec.submodule_search_locations:
            out.extend(Path(p).resolve() for p in spec.submodule_search_locations if Path(p).is_dir())
    except (ImportError, ValueError):
        pass
    repo = (Path(__file__).resolve().parents[3] / "graphs" / "scenarios").resolve()
    if repo.is_dir() and repo not in out:
        out.append(repo)
    return out


def list_scenarios() -> list[tuple[str, str]]:
    """(name, one-line description) of every named scenario, sorted by name."""
    found: dict[str, str] = {}
    for d in scenario_dirs():
        for path in sorted(d.glob("*.yaml")):
            if path.stem in found:
                continue
            try:
                found[path.stem] = load_scenario(path).description.strip().splitlines()[0]
            except (ScenarioError, IndexError):
                found[path.stem] = "(does not load: run `flowmm scenarios` on it for the error)"
    from flowmm.sources.synthetic.textbook import AS2008  # the textbook setup, defined in code

    found[AS2008.scenario] = AS2008.description
    return sorted(found.items())


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.parent != Path("."):
        return p
    for d in scenario_dirs():
        cand = d / f"{p.name}.yaml"
        if cand.is_file():
            return cand
    names = sorted({q.stem for d in scenario_dirs() for q in d.glob("*.yaml")})
    raise ScenarioError(
        [
            Diagnostic(
                f"unknown scenario {str(name_or_path)!r}",
                Location(),
                hint=f"known scenarios: {', '.join(names) or '(none found)'}; or give a path to a .yaml file",
            )
        ]
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a scenario by name (``graphs/scenarios/NAME.yaml``) or path; errors name file:line."""
    path = _resolve(name_or_path)
    if not path.is_file():
        raise ScenarioError([Diagnostic("scenario file not found", Location(str(path)))])
    try:
        doc = load_located_file(path)
    except GraphError as exc:
        raise ScenarioError(exc.diagnostics) from None
    if doc.diagnostics:
        raise ScenarioError(doc.diagnostics)
    if not isinstance(doc.data, dict):
        raise ScenarioError([Diagnostic("a scenario file is a mapping (name, phases, ...)", doc.loc(()))])
    data = dict(doc.data)
    data.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_diagnostics(exc, doc)) from None


def _diagnostics(exc: ValidationError, doc: Located) -> list[Diagnostic]:
    """pydantic errors -> located diagnostics (path kept to the deepest key in the file)."""
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    for e in exc.errors():
        path: list[Any] = []
        cur: Any = doc.data
        for x in e["loc"]:
            if isinstance(cur, dict) and x in cur:
                path.append(x)
                cur = cur[x]
            elif isinstance(cur, list) and isinstance(x, int) and 0 <= x < len(cur):
                path.append(x)
                cur = cur[x]
            elif isinstance(x, str) and x not in ("function-after", "function-before") and "[" not in x:
                if e["type"] in ("missing", "extra_forbidden"):
                    path.append(x)
                break
        msg = e["msg"].removeprefix("Value error, ")
        what = ".".join(str(p) for p in path) or "scenario"
        if e["type"] == "extra_forbidden":
            text, hint = f"unknown key {path[-1]!r}", _allowed(tuple(path[:-1]))
        elif e["type"] == "missing":
            text, hint = f"{what}: required key missing", None
        else:
            got = e.get("input")
            text = f"{what}: {msg}" + ("" if isinstance(got, (dict, list)) else f" (got {got!r})")
            hint = None
        key = (tuple(path), text)
        if key in seen:
            continue
        seen.add(key)
        loc_path = tuple(path) if e["type"] in ("extra_forbidden", "missing") else tuple(path) + ("<value>",)
        if e["type"] == "missing":
            loc_path = tuple(path[:-1])
        out.append(Diagnostic(text, doc.loc(loc_path), hint=hint))
    return out


def _allowed(parent: tuple) -> str | None:
    models: dict[str, type[BaseModel]] = {
        "instrument": Instrument,
        "reference": Reference,
        "spot": Spot,
        "funding": Funding,
        "knobs": Knobs,
        "flow": Flow,
    }
    if not parent:
        model: type[BaseModel] | None = Scenario
    elif len(parent) == 1:
        model = models.get(parent[0])
    elif parent[0] == "phases" and len(parent) == 2:
        model = Phase
    elif parent[0] == "phases" and len(parent) == 3 and parent[2] == "markov":
        model = Markov
    elif parent[0] == "regimes" and len(parent) == 2:
        model = RegimeParams
    else:
        model = None
    return f"allowed keys: {', '.join(model.model_fields)}" if model else None

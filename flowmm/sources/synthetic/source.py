"""``Synthetic``: the simulated market as a source of events for ``Graph.run``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from flowmm.core.events import EventTable
from flowmm.errors import Diagnostic, Location
from flowmm.sources.synthetic import calibration as C
from flowmm.sources.synthetic import flow as F
from flowmm.sources.synthetic import kernels as K
from flowmm.sources.synthetic.scenario import Scenario, ScenarioError, load_scenario, parse_duration, segments


@dataclass(frozen=True)
class Model:
    """Fixed constants of the model (docs/synthetic.md). Knobs scale the channel strengths;
    these are the strengths at knob = 1. Frozen with the trend scenarios: do not retune."""

    dt: float = 0.1  # block, s: every event of a block shares its timestamp
    mu_ref: float = 0.05  # bps/s: drift scale of the channels' tanh(mu / mu_ref)
    sigma_tau_s: float = 300.0  # stochastic volatility: log-sigma OU time constant
    vol_of_vol: float = 0.2  # stationary sd of log sigma
    book_g: float = 0.18  # book thinning: queues scaled by exp(+-g * u), u = next-10s z-return
    book_horizon_s: float = 10.0
    book_depth_bps: float = 10.0  # thinning within this distance of mid, half as much reversed out to 5x
    side_a: float = 0.35  # trade side: P(buy) = (1 + side_a * tanh(mu / mu_ref)) / 2
    sweep_rate: float = 0.0045  # informed sweeps per s per unit of |mu| / mu_ref (capped at 3)
    hawkes_n: float = 0.6  # branching ratio at knob 1
    hawkes_beta: float = 2.0  # 1/s, decay of the excitation
    lead_share: float = 0.3  # share of the BTC beta that arrives lead_s late
    basis_k_bps: float = 3.0  # basis shift: basis_k * tanh(EMA(mu) / mu_ref)
    basis_tau_s: float = 300.0  # basis noise OU time constant
    basis_mu_tau_s: float = 60.0  # EMA of mu the basis follows
    oi_open: float = 0.45  # P(an order opens) = 0.5 + oi_open * |tanh(mu / mu_ref)| * oi_flow
    funding_zmax: float = 3.0  # funding z = noise + zmax * tanh(-A / mu_ref)
    anticipation_tau_s: float = 300.0  # A: forward EW average of the drift
    funding_tau_s: float = 300.0  # funding-noise OU time constant
    size_shift: float = 0.7  # log-size shift of orders on the drift's side at |tanh| = 1
    mr_anchor_tau_s: float = 300.0  # mean-reverting regime: anchor = EMA of the mid
    parity: float = 0.2  # share of the own variance in +-1 steps from an odd mid (1 from an even one)
    spread_refresh: float = 0.02  # per block, probability of redrawing the spread
    book_refresh: float = 0.04  # per 0.5 s, probability a queue is redrawn
    refresh_depth: int = 300  # ticks of book that churn
    jump_min_ticks: float = 3.0  # smallest jump/sweep, ticks
    reprice_ticks: int = 30  # queues this close behind a moved touch are redrawn (quotes pegged to the mid)
    xmit_blocks: int = 5  # the reference's moves reach the instrument every 0.5 s, with its mid
    p_flip: float = 0.4  # after those moves, an even mid steps +-1 with this probability

    def array(self) -> np.ndarray:
        a = np.array(astuple(self), np.float64)
        assert len(a) == K.N_CONST, "Model fields and kernels.C_* out of step"
        return a


MODEL = Model()
STREAMS = frozenset(
    {
        "source.book",
        "source.bbo",
        "source.mid",
        "source.trades",
        "source.ctx",
        "source.ref_mid",
        "source.spot_mid",
        "source.truth",
        "source.timer",
        "source.clock",
    }
)
TIMER_START = 1  # TIMER code of the session-start event
MARGIN_S = 1800.0  # latent path computed beyond the run (book look-ahead, anticipation)
STATE = ("ist", "fst", "bsz", "bnn", "asz", "ann", "stb", "sta")  # render's state, in its argument order


def _seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) & 0xFFFFFFFF for w in words]).generate_state(1)[0])


class Synthetic:
    """A seeded, deterministic simulated Hyperliquid perp (docs/synthetic.md).

    ``Synthetic("trend_down", seed=3, duration="20m")``: ``scenario`` is a name from
    ``graphs/scenarios/``, a path to a scenario YAML, or a ``Scenario``; ``duration`` is
    ``"20m"``, ``"90s"``, seconds, or None for the scenario's own length (a shorter run shows
    the scenario's beginning and is an exact prefix of the full run).

    The market does not react to our orders: no fill or order of ours changes what it emits
    (with a ``flow:`` section the crowd's orders move the price; ours are too small to and are
    not fed back, docs/synthetic.md)."""

    name = "synthetic"
    chunk_blocks = 600  # 60 s of events per chunk

    def __init__(self, scenario: str | Path | Scenario, seed: int = 0, duration: str | float | None = None):
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.seed = int(seed)
        self.model = MODEL
        if duration is None:
            seconds = self.scenario.duration_s
        else:
            try:
                seconds = parse_duration(duration)
            except ValueError as exc:
                raise ScenarioError(
                    [Diagnostic(str(exc), Location(), hint="e.g. --duration 20m, 90s, 1h or seconds")]
                ) from None
        self.duration_s = seconds
        self.n_blocks = max(1, int(round(seconds / self.model.dt)))
        self.start_ns = self.scenario.start_ns
        self.dt_ns = int(round(self.model.dt * 1e9))
        self.end_time = self.start_ns + int(round(seconds * 1e9))
        self._latent: dict[str, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"Synthetic({self.scenario.name!r}, seed={self.seed}, duration={self.duration_s:g}s)"

    def provides(self) -> set[str]:
        """The streams this source writes (no ``source.book_agg``)."""
        return set(STREAMS)

    # --- the price world ---------------------------------------------------------------------

    def latent(self) -> dict[str, np.ndarray]:
        """The latent paths per block (for tests of the simulator itself and for plots; the
        channel tests read only events): X (mid in half ticks), JUMP, MU, MULAT, SIG, REG,
        Y (BTC log-price, bps), ANT (anticipated drift)."""
        if self._latent is None:
            self._latent = self._compute_latent()
        return self._latent

    def _compute_latent(self) -> dict[str, np.ndarray]:
        m, scn = self.model, self.scenario
        n_scn = int(round(scn.duration_s / m.dt))
        n = max(self.n_blocks, n_scn) + int(round(MARGIN_S / m.dt))
        lag = int(round(scn.reference.lead_s / m.dt))
        seg_start, seg_par, _ = segments(scn, n + lag, m.dt, self.seed)
        x0 = 2 * int(round(scn.instrument.price / scn.instrument.tick)) + 1
        out = {k: np.zeros(n, np.int64) for k in ("X", "JUMP", "REG")}
        out |= {k: np.zeros(n, np.float64) for k in ("MU", "MULAT", "SIG", "Y", "ANT")}
        scratch = [np.zeros(n + lag) for _ in range(3)]
        K.latent_pass(
            _seed(self.seed, 1), _seed(self.seed, 2), n, lag, x0, seg_start, seg_par,
            scn.knobs.array(), m.array(), self._ipar(), out["X"], out["JUMP"], out["MU"], out["MULAT"],
            out["SIG"], out["REG"], out["Y"], *scratch,
        )  # fmt: skip
        K.anticipation(out["MULAT"], m.dt, m.anticipation_tau_s, out["ANT"])
        out["seg_start"], out["seg_par"] = seg_start, seg_par
        out |= self._flow(x0, seg_start, seg_par, out)
        return out

    def _flow(self, x0: int, seg_start: np.ndarray, seg_par: np.ndarray, lat: dict) -> dict[str, np.ndarray]:
        """The order-flow pass (flow.py): every aggressive order of the run, and their impact
        added to X (and their variance to SIG). Without a ``flow:`` section: no orders."""
        n = lat["X"].shape[0]
        out = {"F_OFF": np.zeros(n + 1, np.int64)}
        scn = self.scenario
        if scn.flow is None:
            out |= {"F_SIDE": np.zeros(1), "F_SIZE": np.zeros(1)}
            out |= {"F_KIND": np.zeros(1, np.int64), "F_WALK": np.zeros(1, np.int64)}
            return out
        ins = scn.instrument
        fi = np.array([ins.price, ins.tick, 10.0**-ins.size_decimals, ins.trade_rate, ins.trade_size_median,
                       ins.trade_size_logsd])  # fmt: skip
        cap = int(n * self.model.dt * ins.trade_rate * 4) + 1000
        while True:
            side, size, kind, walk = (
                np.zeros(cap),
                np.zeros(cap),
                np.zeros(cap, np.int64),
                np.zeros(cap, np.int64),
            )
            X, SIG = lat["X"].copy(), lat["SIG"].copy()
            got = F.flow_pass(_seed(self.seed, 4), x0, seg_start, seg_par, scn.flow.array(),
                              F.FLOW_MODEL.array(), fi, lat["MU"], X, SIG, out["F_OFF"], side, size,
                              kind, walk)  # fmt: skip
            if got >= 0:
                break
            cap *= 2
        lat["X"], lat["SIG"] = X, SIG
        return out | {"F_SIDE": side[:got], "F_SIZE": size[:got], "F_KIND": kind[:got], "F_WALK": walk[:got]}

    def _ipar(self) -> np.ndarray:
        scn = self.scenario
        ins, ref = scn.instrument, scn.reference
        p = np.zeros(K.N_IPAR)
        p[K.I_PRICE], p[K.I_TICK], p[K.I_LOT] = ins.price, ins.tick, 10.0 ** (-ins.size_decimals)
        p[K.I_DEPTH_SCALE], p[K.I_TRADE_RATE] = ins.depth_scale, ins.trade_rate
        p[K.I_TS_MED], p[K.I_TS_LOGSD], p[K.I_OI0] = (
            ins.trade_size_median,
            ins.trade_size_logsd,
            ins.open_interest,
        )
        p[K.I_BTC_PX], p[K.I_BTC_TICK], p[K.I_BTC_SIGMA], p[K.I_BETA] = (
            ref.price,
            ref.tick,
            ref.sigma,
            ref.beta,
        )
        p[K.I_BASIS_MEAN], p[K.I_BASIS_SD] = scn.spot.basis_mean_bps, scn.spot.basis_sd_bps
        p[K.I_F_MEAN], p[K.I_F_SD] = scn.funding.mean, scn.funding.sd
        p[K.I_TICK_DIV] = _divisor(ins.tick)
        p[K.I_BTC_TICK_DIV] = _divisor(ref.tick)
        return p

    # --- events --------------------------------------------------------------------------------

    def chunks(self) -> Iterator[EventTable]:
        """Event tables of ``chunk_blocks`` blocks each; a block's events share one timestamp
        and never straddle two chunks."""
        lat = self.latent()
        m = self.model
        ipar = self._ipar()
        knobs = self.scenario.knobs.array()
        cst = m.array()
        pi, lmean, lsd, lcap = C.slot_tables()
        lm = np.ascontiguousarray(np.stack([lmean, lcap]))
        cdf_odd, cdf_even = C.spread_tables()
        cdf_n = C.n_table()
        state = {
            "ist": np.zeros(K.N_ISTATE, np.int64),
            "fst": np.zeros(K.N_FSTATE),
            "bsz": np.zeros(C.D_MAX),
            "bnn": np.zeros(C.D_MAX),
            "asz": np.zeros(C.D_MAX),
            "ann": np.zeros(C.D_MAX),
            "stb": np.zeros((K.LEVELS, 3)),
            "sta": np.zeros((K.LEVELS, 3)),
        }
        scratch = [np.zeros((K.LEVELS, 3)) for _ in range(4)] + [np.zeros(8)]
        flow = [lat[k] for k in ("F_OFF", "F_SIDE", "F_SIZE", "F_KIND", "F_WALK")] + [
            self.scenario.flow is not None
        ]
        paths = [lat[k] for k in ("X", "JUMP", "MU", "SIG", "REG", "Y", "ANT", "seg_start", "seg_par")]
        tables = (knobs, cst, ipar, pi, lm, lsd, cdf_odd, cdf_even, cdf_n)
        for c, k0 in enumerate(range(0, self.n_blocks, self.chunk_blocks)):
            k1 = min(k0 + self.chunk_blocks, self.n_blocks)
            blocks = k1 - k0
            cap_ev, cap_pl = 8 * blocks + 1000, 60 * blocks + 4000
            while True:
                saved = {k: v.copy() for k, v in state.items()}
                out = (np.empty(cap_ev, np.int64), np.empty(cap_ev, np.int64), np.empty(cap_ev + 1, np.int64),
                       np.empty(cap_pl))  # fmt: skip
                ne, npl = K.render(_seed(self.seed, 3, c), k0, k1, self.start_ns, self.dt_ns, *paths, *tables,
                                   *(state[k] for k in STATE), *scratch, *flow, *out)  # fmt: skip
                if ne >= 0:
                    break
                state = saved
                cap_ev, cap_pl = 2 * cap_ev, 2 * cap_pl
            t, kind, off, payload = out
            yield EventTable(t[:ne].copy(), kind[:ne].copy(), off[: ne + 1].copy(), payload[:npl].copy())

    def events(self) -> EventTable:
        """The whole run as one table."""
        parts = list(self.chunks())
        if not parts:
            return EventTable.empty()
        offs, base = [], 0
        for p in parts:
            offs.append(p.off[:-1] + base)
            base += int(p.off[-1])
        return EventTable(
            np.concatenate([p.t for p in parts]),
            np.concatenate([p.kind for p in parts]),
            np.concatenate(offs + [np.array([base], np.int64)]),
            np.concatenate([p.payload for p in parts]),
        )


def _divisor(tick: float) -> float:
    """1/tick when it is an integer (prices then print exactly), else 0."""
    inv = 1.0 / tick
    return float(round(inv)) if abs(inv - round(inv)) < 1e-9 * inv else 0.0


def funding_zscore(rate: np.ndarray | float, scenario: Scenario) -> np.ndarray | float:
    """z-score of an hourly funding rate against the scenario's documented long-run mean/sd."""
    return (np.asarray(rate) - scenario.funding.mean) / scenario.funding.sd


__all__ = ["MODEL", "Model", "Synthetic", "funding_zscore"]

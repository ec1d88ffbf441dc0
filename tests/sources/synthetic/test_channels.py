"""Information channels: each knob, switched on alone in ``mixed`` (random quiet / trending
regimes), moves its documented statistics and nothing else; with every knob off nothing
observable predicts returns. Statistics are computed from the events (truth mu comes from
TRUTH events), per seed, then t-tested across 20 seeds (docs/synthetic.md, "Channels")."""

from __future__ import annotations

import pytest

from flowmm.sources.synthetic import KNOB_NAMES, Synthetic, load_scenario

DURATION_S = 1800.0
STATS = ("bim", "dbim", "bpg", "side", "size", "sweep", "hawkes", "lead", "basis", "oi", "funding")
# knob -> (its channel's statistic and expected sign, other statistics it also moves)
MOVES = {
    "book": (("bim", 1), ("dbim", "bpg")),
    "trade_side": (("side", 1), ()),
    "sweeps": (("sweep", 1), ()),
    "hawkes": (("hawkes", 1), ()),
    "lead": (("lead", 1), ()),
    "basis": (("basis", 1), ()),
    "oi": (("oi", 1), ()),
    "funding": (("funding", -1), ()),
    "size": (("size", 1), ()),
}
ON, OFF = 5.0, 3.5  # |t| thresholds: clearly non-zero / compatible with zero (allows ~130 checks)


@pytest.fixture(scope="module")
def tstats(tape):
    """knob (or "none") -> {statistic: t across seeds}, computed once per knob."""
    base = load_scenario("mixed")
    assert not base.knobs.array().any()
    cache: dict[str, dict[str, float]] = {}

    def get(knob: str) -> dict[str, float]:
        if knob not in cache:
            scn = base if knob == "none" else base.with_knobs(**{knob: 1.0})
            per_seed = []
            for seed in range(tape.N_SEEDS):
                src = Synthetic(scn, seed=seed, duration=DURATION_S)
                d = tape.decode(src.events())
                per_seed.append(tape.channel_stats(d, src.start_ns, DURATION_S, scn.reference.lead_s))
            cache[knob] = {s: tape.tstat([r[s] for r in per_seed]) for s in STATS}
        return cache[knob]

    return get


def test_every_knob_is_documented():
    assert set(MOVES) == set(KNOB_NAMES)


def test_with_every_knob_off_no_channel_statistic_moves(tstats):
    t = tstats("none")
    assert all(abs(v) < OFF for v in t.values()), t


@pytest.mark.parametrize("knob", KNOB_NAMES)
def test_a_knob_moves_its_channel_and_nothing_else(tstats, knob):
    t = tstats(knob)
    (primary, sign), also = MOVES[knob]
    assert sign * t[primary] > ON, f"{knob}: {primary} t = {t[primary]:.1f}"
    for s in also:
        assert t[s] > OFF, f"{knob} also moves {s}: t = {t[s]:.1f}"
    untouched = {s: round(v, 2) for s, v in t.items() if s != primary and s not in also}
    assert all(abs(v) < OFF for v in untouched.values()), f"{knob} moved {untouched}"


def test_calm_is_a_martingale_for_every_observable(tape):
    """calm: truth mu is 0 throughout, and nothing seen up to t predicts the next 10 s."""
    scn = load_scenario("calm")
    assert not scn.knobs.array().any()
    per_seed = []
    for seed in range(tape.N_SEEDS):
        src = Synthetic(scn, seed=seed)
        d = tape.decode(src.events())
        assert not d["truth"][:, 0].any() and set(d["truth"][:, 2]) == {0.0}
        per_seed.append(tape.martingale_stats(d, src.start_ns, src.duration_s, scn.reference.lead_s))
    t = {k: round(tape.tstat([r[k] for r in per_seed]), 2) for k in per_seed[0]}
    assert all(abs(v) < OFF for v in t.values()), t


def test_hawkes_clustering_is_overdispersion_not_more_trading(tape):
    """The Hawkes knob keeps the mean order rate (its base rate is scaled by 1 - branching)."""
    calm = load_scenario("calm")
    rates = {}
    for knob in (0.0, 1.0):
        n = 0
        for seed in range(6):
            src = Synthetic(calm.with_knobs(hawkes=knob), seed=seed, duration=600)
            n += len(tape.orders(tape.decode(src.events())).t)
        rates[knob] = n / (6 * 600)
    assert rates[0.0] == pytest.approx(calm.instrument.trade_rate, rel=0.05)
    assert rates[1.0] == pytest.approx(rates[0.0], rel=0.12)

"""Segments of data for a calibration: each is built only when its turn comes and dropped
after, so memory holds one segment (a synthetic seed, one replayed day) at a time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flowmm.calibrate.pipeline import Segment
from flowmm.errors import UsageError


def parse_knobs(text: str | None) -> dict[str, float]:
    """``"book=1,lead=0.5"`` -> {"book": 1.0, "lead": 0.5} (validated by the scenario's Knobs)."""
    out: dict[str, float] = {}
    for part in filter(None, (text or "").split(",")):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(
                f"--knobs: {part!r} is not NAME=VALUE", hint="e.g. --knobs book=1,lead=1"
            ) from None
        if not sep:
            raise UsageError(f"--knobs: {part!r} is not NAME=VALUE", hint="e.g. --knobs book=1,lead=1")
    return out


def synthetic_segments(
    scenario: str, seeds: Sequence[int], duration: str | float | None, knobs: dict[str, float] | None = None
) -> list[Segment]:
    """One segment per seed of a synthetic scenario (knobs override the scenario's)."""
    from pydantic import ValidationError

    from flowmm.sources.synthetic import Synthetic, load_scenario

    scn = load_scenario(scenario)
    if knobs:
        try:
            scn = scn.with_knobs(**knobs)
        except (ValidationError, TypeError, ValueError) as exc:
            raise UsageError(
                f"--knobs: {exc}".splitlines()[0], hint="knobs: see `docs/synthetic.md`"
            ) from None
    return [(f"{scn.name} seed {s}", lambda s=s: Synthetic(scn, seed=s, duration=duration)) for s in seeds]


def replay_segments(paths: Sequence[str | Path], **replay_kw) -> list[Segment]:
    """One segment per path (a file, or a folder whose files are replayed together: one day of
    the instrument with its reference and spot books). Give them in time order."""
    from flowmm.sources.replay import Replay

    return [(str(p), lambda p=p: Replay([p], **replay_kw)) for p in paths]

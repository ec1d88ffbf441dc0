"""The graph file as pydantic models (``GraphSpec``), every key documented in docs/graph-reference.md.

Node params are validated later, against each node type's own ``Params`` model, so that a
mistyped param is reported at its own line with the node's name.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def no_bool_for_numbers(model: type[BaseModel], data: Any) -> Any:
    """Refuse ``true``/``false`` for a number field: pydantic reads them as 1 and 0, so
    ``quote_every_ms: true`` would quietly be a 1-ms clock and ``levels: true`` one level."""
    if not isinstance(data, dict):
        return data
    for name, field in model.model_fields.items():
        value = data.get(field.alias or name, data.get(name))
        if isinstance(value, bool) and "bool" not in str(field.annotation):
            raise ValueError(f"{name}: a number is required, not {str(value).lower()}")
    return data


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_bools(cls, data: Any) -> Any:
        return no_bool_for_numbers(cls, data)


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_QUOTE_EVERY_MS = 86_400_000  # one day: a slower clock is a typo (and a run of 0 cycles)
MAX_BUFFER = 1 << 24  # records per ring (128 MiB of float64): 1e14 would ask for 728 TiB


class InstrumentSpec(Strict):
    coin: str = "HYPE"
    dex: str | None = None  # HIP-3 builder dex, None = main dex
    tick_size: float | None = Field(None, gt=0)
    sz_decimals: int | None = Field(None, ge=0)


class ClockSpec(Strict):
    """Quote cycles: every ``quote_every_ms`` of event time, or on every book update."""

    quote_every_ms: int | None = Field(None, gt=0, le=MAX_QUOTE_EVERY_MS)
    on_book: bool = False

    @model_validator(mode="after")
    def _one_mode(self):
        if (self.quote_every_ms is None) == (not self.on_book):
            raise ValueError("set exactly one of quote_every_ms: N or on_book: true")
        return self


class TierSpec(Strict):
    every: int = Field(gt=0)  # runs on cycles where cycle % every == phase
    phase: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _phase_lt_every(self):
        if self.phase >= self.every:
            raise ValueError(f"phase must be < every ({self.every})")
        return self


class ExecutionSpec(Strict):
    ladder: str | None = None  # node.port of type ladder: the desired quotes
    cancel: str | None = None  # node.port of type f64: interrupt (+1 bids, -1 asks, 0 both)


class BuffersSpec(Strict):
    """Ring capacities of batch ports (records). A consumer may fall at most this far behind."""

    trades: int = Field(65536, gt=0, le=MAX_BUFFER)
    fills: int = Field(4096, gt=0, le=MAX_BUFFER)
    markouts: int = Field(16384, gt=0, le=MAX_BUFFER)
    actions: int = Field(4096, gt=0, le=MAX_BUFFER)


class NodeSpec(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: str
    in_: dict[str, str | list[str]] = Field(default_factory=dict, alias="in")
    params: dict[str, Any] = Field(default_factory=dict)
    tier: str | None = None
    trigger: Literal["event", "cycle"] | None = None
    diagnostic: bool = False  # may read source.truth (synthetic ground truth)
    doc: str | None = None
    unused: list[str] = Field(default_factory=list)  # outputs the graph ignores on purpose (no warning)


class GraphSpec(Strict):
    name: str
    description: str = ""
    instrument: InstrumentSpec = Field(default_factory=InstrumentSpec)
    clock: ClockSpec
    tiers: dict[str, int | TierSpec] = Field(
        default_factory=lambda: {"hot": 1, "warm": 3, "cold": 10}, validate_default=True
    )
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    buffers: BuffersSpec = Field(default_factory=BuffersSpec)
    trace: list[str] | Literal["all"] = "all"  # node.port list; "all" = every scalar output
    plugins: list[str] = Field(default_factory=list)  # folders of user node modules
    # files of node params ({params: {node: {param: value}}}, e.g. from `flowmm calibrate`),
    # relative to the graph file; merged into the nodes' params (plan.py, _include_params)
    params_from: str | list[str] | None = None
    nodes: dict[str, NodeSpec]

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # the name becomes a file name (runs/<name>-...): no path separators, no "..", no spaces
        if not SAFE_NAME.fullmatch(v) or v.strip(".") == "":
            raise ValueError(
                f"name {v!r} is not a safe file name: use letters, digits, '_', '-' and '.' "
                "(at most 100, starting with a letter or digit)"
            )
        return v

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, v: dict[str, Any]) -> dict[str, TierSpec]:
        out = {}
        for name, t in v.items():
            if isinstance(t, int):
                if t <= 0:
                    raise ValueError(f"tier {name!r}: period must be > 0")
                t = TierSpec(every=t)
            out[name] = t
        return out

    @field_validator("nodes")
    @classmethod
    def _names(cls, v: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        for name in v:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"node name {name!r} must be an identifier (letters, digits, _)")
            if name in ("source", "exec"):
                raise ValueError(f"node name {name!r} is reserved for streams")
        return v

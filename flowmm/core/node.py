"""Node base class, port declarations and the node registry.

A node is a registered class::

    class EwmaVol(Node):
        '''sigma_t^2 = (1 - w) sigma^2 + w r^2/dt ...  (seed section)'''
        type_name = "estimators.ewma_vol"
        class Params(NodeParams):
            half_life_s: float = 300.0
        inputs = {"price": In("f64")}
        outputs = {"sigma": Out("f64")}
        tier, trigger = "hot", "cycle"
        def init_state(self): return (np.zeros(3),)
        kernel = ewma_vol_kernel   # a module-level @njit(cache=True) function

The kernel is a pure function of arrays and scalars, called as
``kernel(now, dt, params, *state, *inputs, *outputs) -> int64 emitted-bitmask`` where

* ``now``: event time in int ns; ``dt``: seconds since this node last ran (0.0 on its first run);
* ``params``: float64 array packed from ``Params`` (``pack_params``);
* each state array from ``init_state``, in order;
* per input, in declaration order: a value port gives ``(value, ticked)``; a variadic value
  port gives ``(values[n, ...], ticked[n])``; a batch port gives ``(times, records, start, end)``
  and the kernel reads records ``start..end-1`` at ``i % capacity``. An optional input that is
  not wired arrives as NaNs, never ticked (a batch one as an empty range);
* per output: a value port gives its array (write in place); a batch port gives
  ``(times, records, count)`` and the kernel appends with ``ring_append``;
* the return value has bit ``i`` set when value output ``i`` was emitted (ticked); batch
  outputs tick by appending.

The parameter names are part of the contract and checked when the class is created
(``kernel_parameters``): ``now, dt, params``, then any state names, then per value input
``<port>, <port>_ticked``, per batch input ``<port>_t, <port>_r, <port>_start, <port>_end``,
per value output ``<port>``, per batch output ``<port>_t, <port>_r, <port>_count``. A kernel
returns its class's named emit bits, ``EMIT = MyNode.EMIT`` at module level (one int per
value output, upper-cased port name, plus ``NONE`` and ``ALL``): ``return EMIT.SIGMA | EMIT.OBS``.
numba freezes the tuple as a compile-time constant, so a named bit costs what a literal does.
"""

from __future__ import annotations

import difflib
import inspect
import math
import sys
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numba import njit
from numba.core.registry import CPUDispatcher
from pydantic import BaseModel, ConfigDict

from flowmm.core.ports import PORT_TYPES
from flowmm.errors import FlowmmError, Location

TIERS_DEFAULT = ("hot", "warm", "cold")
TRIGGERS = ("event", "cycle")


@dataclass(frozen=True)
class In:
    """An input port. ``variadic``: a YAML list of sources; ``optional``: may be left unwired."""

    type: str
    variadic: bool = False
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Out:
    """An output port. ``size`` (``vec`` only): an int or the name of an int param."""

    type: str
    size: int | str | None = None
    doc: str = ""


class NodeParams(BaseModel):
    """Base of every node's ``Params``: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeDefinitionError(FlowmmError, TypeError):
    """A node class is declared wrongly (a programming error of the node's author)."""


_REGISTRY: dict[str, type[Node]] = {}


@njit(cache=True)
def ring_append(times, records, count, now):
    """Reserve the next record of a batch output ring; returns its row index."""
    i = count[0] % times.shape[0]
    times[i] = now
    count[0] += 1
    return i


class Node:
    """Base class of all nodes; see the module docstring for the kernel contract."""

    type_name: ClassVar[str] = ""
    Params: ClassVar[type[NodeParams]] = NodeParams
    inputs: ClassVar[dict[str, In]] = {}
    outputs: ClassVar[dict[str, Out]] = {}
    tier: ClassVar[str] = "hot"
    trigger: ClassVar[str] = "cycle"
    kernel: ClassVar[Any] = None
    EMIT: ClassVar[Any] = None  # the named emit bits, generated from ``outputs``

    def __init__(self, params: NodeParams | None = None):
        self.params = params if params is not None else self.Params()

    # -- declaration hooks -------------------------------------------------------------
    def init_state(self) -> tuple[np.ndarray, ...]:
        """Fresh state arrays (preallocated once; kernels update them in place)."""
        return ()

    def checked_state(self) -> tuple[np.ndarray, ...]:
        """``init_state()``, checked against the kernel's state parameters (count only: the
        names between ``params`` and the first port's are the kernel's to choose)."""
        state = self.init_state()
        names = kernel_state_names(type(self))
        if len(state) != len(names):
            py = self.kernel.py_func
            raise NodeDefinitionError(
                f"{type(self).__qualname__} ({self.type_name}): init_state() returns {len(state)} "
                f"array(s), kernel {py.__name__} takes {len(names)} state parameter(s) {names}",
                Location(inspect.getsourcefile(py), py.__code__.co_firstlineno, node=self.type_name),
            )
        return state

    def pack_params(self) -> np.ndarray:
        """Params as a float64 array in field order (bool -> 0/1, None -> NaN).

        Override for params that are not scalars (keep the layout documented)."""
        values = []
        for name in type(self.params).model_fields:
            v = getattr(self.params, name)
            if v is None:
                values.append(math.nan)
            elif isinstance(v, (bool, int, float)):
                values.append(float(v))
            else:
                raise NodeDefinitionError(
                    f"{self.type_name}: param {name!r} is not a scalar; override pack_params()"
                )
        return np.array(values, dtype=np.float64)

    def output_size(self, port: str) -> int | None:
        """Size of a ``vec`` output (from its declaration, possibly a param name)."""
        size = self.outputs[port].size
        if isinstance(size, str):
            return int(getattr(self.params, size))
        return size

    # -- registration ------------------------------------------------------------------
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("type_name"):
            return  # an abstract intermediate class
        _check_definition(cls)
        cls.EMIT = emit_bits(cls)
        old = _REGISTRY.get(cls.type_name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise NodeDefinitionError(
                f"node type {cls.type_name!r} defined twice: {old.__module__} and {cls.__module__}"
            )
        _REGISTRY[cls.type_name] = cls

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def group(cls) -> str:
        return cls.type_name.split(".", 1)[0]


def _class_location(cls: type) -> Location:
    """The file and line of a class definition (best effort: a class made by exec has none)."""
    try:
        file = inspect.getsourcefile(cls)
        line = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return Location(getattr(sys.modules.get(cls.__module__), "__file__", None))
    return Location(file, line, node=getattr(cls, "type_name", None) or None)


def _check_definition(cls: type[Node]) -> None:
    name = cls.type_name
    where = f"{cls.__module__}.{cls.__qualname__} ({name})"
    if name.count(".") != 1 or not all(p.isidentifier() for p in name.split(".")):
        raise NodeDefinitionError(f"{where}: type_name must look like 'group.name'", _class_location(cls))
    if not (cls.__doc__ or "").strip():
        raise NodeDefinitionError(
            f"{where}: a node needs a docstring (formula + seed section)", _class_location(cls)
        )
    if not isinstance(cls.kernel, CPUDispatcher):
        raise NodeDefinitionError(
            f"{where}: kernel must be an @njit(cache=True) function", _class_location(cls)
        )
    py = cls.kernel.py_func
    if getattr(inspect.getmodule(py), py.__name__, None) is not cls.kernel:
        raise NodeDefinitionError(
            f"{where}: kernel must be a module-level function of its module", _class_location(cls)
        )
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, NodeParams)):
        raise NodeDefinitionError(f"{where}: Params must subclass NodeParams", _class_location(cls))
    if cls.Params.model_config.get("extra") != "forbid":
        raise NodeDefinitionError(f"{where}: Params must keep extra='forbid'", _class_location(cls))
    if cls.trigger not in TRIGGERS:
        raise NodeDefinitionError(f"{where}: trigger must be one of {TRIGGERS}", _class_location(cls))
    for port, decl in {**cls.inputs, **cls.outputs}.items():
        if decl.type not in PORT_TYPES:
            raise NodeDefinitionError(
                f"{where}: port {port!r} has unknown type {decl.type!r}", _class_location(cls)
            )
    for port, decl in cls.inputs.items():
        if decl.variadic and PORT_TYPES[decl.type].batch:
            raise NodeDefinitionError(
                f"{where}: batch input {port!r} cannot be variadic", _class_location(cls)
            )
    for port, decl in cls.outputs.items():
        if (decl.type == "vec") != (decl.size is not None):
            raise NodeDefinitionError(
                f"{where}: output {port!r}: size is required for vec, only for vec", _class_location(cls)
            )
    if len(cls.outputs) > 62:
        raise NodeDefinitionError(
            f"{where}: at most 62 outputs (the emitted mask is an int64)", _class_location(cls)
        )
    if set(cls.inputs) & set(cls.outputs):
        raise NodeDefinitionError(
            f"{where}: a port name is both an input and an output", _class_location(cls)
        )
    _check_kernel_abi(cls, where)


def kernel_parameters(cls: type[Node]) -> list[tuple[str, str, str]]:
    """The kernel parameters the ports ask for, after ``now, dt, params`` and the state:
    ``(name, port, what)`` in call order (see the module docstring)."""
    out = []
    for port, decl in cls.inputs.items():
        if PORT_TYPES[decl.type].batch:
            for sfx, what in (("_t", "times"), ("_r", "records"), ("_start", "start"), ("_end", "end")):
                out.append((port + sfx, port, f"input {what}"))
        else:
            out += [(port, port, "input value"), (port + "_ticked", port, "input ticked")]
    for port, decl in cls.outputs.items():
        if PORT_TYPES[decl.type].batch:
            for sfx, what in (("_t", "times"), ("_r", "records"), ("_count", "count")):
                out.append((port + sfx, port, f"output {what}"))
        else:
            out.append((port, port, "output"))
    return out


def kernel_state_names(cls: type[Node]) -> list[str]:
    """The kernel's state parameter names (between ``params`` and the first port's)."""
    names = list(inspect.signature(cls.kernel.py_func).parameters)
    return names[3 : len(names) - len(kernel_parameters(cls))]


def _check_kernel_abi(cls: type[Node], where: str) -> None:
    """Parameter names and count against the convention; a mismatch names the port."""
    py = cls.kernel.py_func
    loc = Location(inspect.getsourcefile(py), py.__code__.co_firstlineno, node=cls.type_name)
    head = f"{cls.__qualname__} ({cls.type_name}): kernel {py.__name__}"  # the location has the file
    sig = inspect.signature(py).parameters.values()
    for p in sig:
        if p.kind is not p.POSITIONAL_OR_KEYWORD or p.default is not p.empty:
            raise NodeDefinitionError(
                f"{head}: parameter {p.name!r} must be plain positional (no *, **, default)", loc
            )
    names = [p.name for p in sig]
    lead = ["now", "dt", "params"]
    for i, want in enumerate(lead):
        if i >= len(names) or names[i] != want:
            got = repr(names[i]) if i < len(names) else "nothing"
            raise NodeDefinitionError(f"{head}: parameter {i + 1} is {got}, expected {want!r}", loc)
    ports = kernel_parameters(cls)
    start = _align(names, [n for n, _, _ in ports])
    state = names[3:start]
    for k, (want, port, what) in enumerate(ports):
        i = start + k
        if i >= len(names):
            raise NodeDefinitionError(
                f"{head}: has {len(names)} parameters, too few for its ports: "
                f"no parameter {want!r} for {what} of port {port!r}",
                Location(loc.file, loc.line, node=cls.type_name, port=port),
                hint="kernel(now, dt, params, *state, *inputs, *outputs); see docs/writing-a-node.md",
            )
        if names[i] != want:
            seen = [n for n, _, _ in ports]
            why = "wrong order" if names[i] in seen else "wrong name"
            raise NodeDefinitionError(
                f"{head}: parameter {i + 1} is {names[i]!r}, expected {want!r} for {what} of port "
                f"{port!r} ({why})",
                Location(loc.file, loc.line, node=cls.type_name, port=port),
                hint="kernel(now, dt, params, *state, *inputs, *outputs); see docs/writing-a-node.md",
            )
    extra = names[start + len(ports) :]
    if extra:
        last = ports[-1][1] if ports else "params"
        raise NodeDefinitionError(
            f"{head}: {len(extra)} parameter(s) after the last port's: {', '.join(map(repr, extra))}",
            Location(loc.file, loc.line, node=cls.type_name, port=last if ports else None),
            hint="kernel(now, dt, params, *state, *inputs, *outputs); see docs/writing-a-node.md",
        )
    clash = sorted(set(state) & {n for n, _, _ in ports})
    if clash:
        raise NodeDefinitionError(f"{head}: state parameter {clash[0]!r} has a port's name", loc)


def _align(names: list[str], want: list[str]) -> int:
    """Where the port parameters start. The state count is the kernel's to choose, so try the
    count that fits the total and the one before the first port-like name; keep the better fit
    (the most parameters in place), so an error points at the parameter that is wrong."""
    cands = [len(names) - len(want)]
    first = next((i for i in range(3, len(names)) if names[i] in want), None)
    if first is not None:
        cands.append(first)
    cands = [c for c in cands if c >= 3] or [3]

    def fit(c: int) -> int:
        return sum(1 for k, w in enumerate(want) if c + k < len(names) and names[c + k] == w)

    return max(cands, key=lambda c: (fit(c), c == cands[0]))


def emit_bits(cls: type[Node]) -> tuple:
    """The named emit bits of a node class: a namedtuple, one ``1 << i`` per value output ``i``
    (upper-cased port name), ``NONE`` = 0 and ``ALL`` = every value output. Batch outputs tick
    by appending and get no bit. numba treats a global namedtuple as a constant."""
    names, bits = [], []
    for i, (port, decl) in enumerate(cls.outputs.items()):
        if not PORT_TYPES[decl.type].batch:
            names.append(port.upper())
            bits.append(1 << i)
    where = f"{cls.__module__}.{cls.__qualname__} ({cls.type_name})"
    for reserved in ("NONE", "ALL"):
        if reserved in names:
            raise NodeDefinitionError(
                f"{where}: output {reserved.lower()!r} is reserved (emit bit {reserved})"
            )
    if len(set(names)) != len(names):
        raise NodeDefinitionError(f"{where}: two outputs differ only by case: {names}")
    total = 0
    for b in bits:
        total |= b
    kind = namedtuple(f"Emit_{cls.__name__}", [*names, "NONE", "ALL"])
    return kind(*bits, 0, total)


def registry() -> dict[str, type[Node]]:
    """All registered node types (built-in ones are loaded on first use)."""
    from flowmm.core.discovery import load_builtin_nodes

    load_builtin_nodes()
    return dict(_REGISTRY)


def get_node_type(type_name: str) -> type[Node]:
    reg = registry()
    if type_name not in reg:
        raise KeyError(type_name)
    return reg[type_name]


def closest_types(type_name: str, n: int = 3) -> list[str]:
    reg = registry()
    close = difflib.get_close_matches(type_name, list(reg), n=n, cutoff=0.5)
    if not close:  # 'bim' should suggest 'features.bim'
        short = {t.split(".", 1)[1]: t for t in reg}
        close = [short[s] for s in difflib.get_close_matches(type_name.split(".")[-1], list(short), n=n)]
    return close

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
"""

from __future__ import annotations

import difflib
import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numba import njit
from numba.core.registry import CPUDispatcher
from pydantic import BaseModel, ConfigDict

from flowmm.core.ports import PORT_TYPES

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


class NodeDefinitionError(TypeError):
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

    def __init__(self, params: NodeParams | None = None):
        self.params = params if params is not None else self.Params()

    # -- declaration hooks -------------------------------------------------------------
    def init_state(self) -> tuple[np.ndarray, ...]:
        """Fresh state arrays (preallocated once; kernels update them in place)."""
        return ()

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


def _check_definition(cls: type[Node]) -> None:
    name = cls.type_name
    where = f"{cls.__module__}.{cls.__qualname__} ({name})"
    if name.count(".") != 1 or not all(p.isidentifier() for p in name.split(".")):
        raise NodeDefinitionError(f"{where}: type_name must look like 'group.name'")
    if not (cls.__doc__ or "").strip():
        raise NodeDefinitionError(f"{where}: a node needs a docstring (formula + seed section)")
    if not isinstance(cls.kernel, CPUDispatcher):
        raise NodeDefinitionError(f"{where}: kernel must be an @njit(cache=True) function")
    py = cls.kernel.py_func
    if getattr(inspect.getmodule(py), py.__name__, None) is not cls.kernel:
        raise NodeDefinitionError(f"{where}: kernel must be a module-level function of its module")
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, NodeParams)):
        raise NodeDefinitionError(f"{where}: Params must subclass NodeParams")
    if cls.Params.model_config.get("extra") != "forbid":
        raise NodeDefinitionError(f"{where}: Params must keep extra='forbid'")
    if cls.trigger not in TRIGGERS:
        raise NodeDefinitionError(f"{where}: trigger must be one of {TRIGGERS}")
    for port, decl in {**cls.inputs, **cls.outputs}.items():
        if decl.type not in PORT_TYPES:
            raise NodeDefinitionError(f"{where}: port {port!r} has unknown type {decl.type!r}")
    for port, decl in cls.inputs.items():
        if decl.variadic and PORT_TYPES[decl.type].batch:
            raise NodeDefinitionError(f"{where}: batch input {port!r} cannot be variadic")
    for port, decl in cls.outputs.items():
        if (decl.type == "vec") != (decl.size is not None):
            raise NodeDefinitionError(f"{where}: output {port!r}: size is required for vec, only for vec")
    if len(cls.outputs) > 62:
        raise NodeDefinitionError(f"{where}: at most 62 outputs (the emitted mask is an int64)")
    if set(cls.inputs) & set(cls.outputs):
        raise NodeDefinitionError(f"{where}: a port name is both an input and an output")


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

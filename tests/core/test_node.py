"""The checked kernel ABI (flowmm/core/node.py): parameter names and count against the ports,
and the named emit bits every kernel returns."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from flowmm.cli import main
from flowmm.core.discovery import load_plugin_dir
from flowmm.core.node import (
    _REGISTRY,
    In,
    Node,
    NodeDefinitionError,
    Out,
    emit_bits,
    kernel_parameters,
    kernel_state_names,
    registry,
)
from flowmm.errors import FlowmmError

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
PLUGIN_DIRS = [
    REPO / "tests" / "plugins",
    REPO / "tests" / "graphs" / "plugins",
    REPO / "tests" / "core" / "fused_plugins",
    REPO / "docs" / "examples" / "nodes",
]


@pytest.fixture(autouse=True, scope="module")
def _unregister_test_nodes():
    """The classes declared here must not leak into other tests' view of the registry."""
    yield
    for name in [t for t in _REGISTRY if t.startswith("abitest")]:
        del _REGISTRY[name]


@njit(cache=True)
def good_kernel(
    now, dt, params, state, price, price_ticked, trades_t, trades_r, trades_start, trades_end, out
):
    return 0


@njit(cache=True)
def misnamed_kernel(now, dt, params, state, px, px_ticked, trades_t, trades_r, trades_start, trades_end, out):
    return 0


@njit(cache=True)
def reordered_kernel(now, dt, params, trades_t, trades_r, trades_start, trades_end, price, price_ticked, out):
    return 0


@njit(cache=True)
def short_kernel(now, dt, params, price, price_ticked, trades_t, trades_r, trades_start, trades_end):
    return 0


@njit(cache=True)
def long_kernel(
    now, dt, params, price, price_ticked, trades_t, trades_r, trades_start, trades_end, out, extra
):
    return 0


@njit(cache=True)
def bad_lead_kernel(t, dt, params, price, price_ticked, trades_t, trades_r, trades_start, trades_end, out):
    return 0


@njit(cache=True)
def varargs_kernel(now, dt, params, *args):
    return 0


@njit(cache=True)
def batch_out_kernel(now, dt, params, x, x_ticked, a, acts_t, acts_r, acts_count, b):
    return 0


def _declare(kernel, type_name: str, outputs=None):
    """Create a node class with two inputs (a value, a batch) around ``kernel``."""
    return type(
        "Probe" + type_name.split(".")[1].title(),
        (Node,),
        {
            "__doc__": "A test node.",
            "__module__": __name__,
            "type_name": type_name,
            "inputs": {"price": In("f64"), "trades": In("trades")},
            "outputs": outputs or {"out": Out("f64")},
            "kernel": kernel,
        },
    )


def _error(kernel, type_name: str) -> NodeDefinitionError:
    with pytest.raises(NodeDefinitionError) as info:
        _declare(kernel, type_name)
    assert type_name not in _REGISTRY  # a rejected class is not registered
    return info.value


def _def_line(kernel) -> int:
    return kernel.py_func.__code__.co_firstlineno


def test_conforming_kernel_is_accepted_and_state_is_what_precedes_the_ports():
    cls = _declare(good_kernel, "abitest.good")
    assert kernel_state_names(cls) == ["state"]
    assert [n for n, _, _ in kernel_parameters(cls)] == [
        "price", "price_ticked", "trades_t", "trades_r", "trades_start", "trades_end", "out",
    ]  # fmt: skip


def test_wrong_name_is_located_and_names_class_parameter_and_port():
    err = _error(misnamed_kernel, "abitest.misnamed")
    assert isinstance(err, FlowmmError)  # the CLI prints it without a traceback
    assert "ProbeMisnamed" in err.message and "'px'" in err.message and "'price'" in err.message
    assert "wrong name" in err.message
    assert err.location.file == str(HERE) and err.location.line == _def_line(misnamed_kernel)
    assert (err.location.node, err.location.port) == ("abitest.misnamed", "price")
    assert err.format().startswith(f"{HERE}:{_def_line(misnamed_kernel)} [abitest.misnamed.price]: error:")


def test_wrong_order_is_reported_as_such():
    err = _error(reordered_kernel, "abitest.reordered")
    assert "wrong order" in err.message and "'trades_t'" in err.message and "'price'" in err.message
    assert err.location.port == "price"


def test_too_few_parameters_names_the_port_left_without_one():
    err = _error(short_kernel, "abitest.short")
    assert "too few" in err.message and "'out'" in err.message
    assert err.location.port == "out"


def test_extra_parameter_after_the_ports_is_an_error():
    err = _error(long_kernel, "abitest.long")
    assert "'extra'" in err.message and err.location.port == "out"


def test_now_dt_params_come_first():
    err = _error(bad_lead_kernel, "abitest.badlead")
    assert "'t'" in err.message and "'now'" in err.message


def test_varargs_are_refused():
    err = _error(varargs_kernel, "abitest.varargs")
    assert "'args'" in err.message


def test_emit_bits_follow_output_order_and_skip_batch_outputs():
    outputs = {"a": Out("f64"), "acts": Out("actions"), "b": Out("f64")}
    cls = type(
        "ProbeBatchOut",
        (Node,),
        {
            "__doc__": "A test node.",
            "__module__": __name__,
            "type_name": "abitest.batch_out",
            "inputs": {"x": In("f64")},
            "outputs": outputs,
            "kernel": batch_out_kernel,
        },
    )
    e = cls.EMIT
    assert (e.A, e.B, e.NONE, e.ALL) == (1, 4, 0, 5)
    assert not hasattr(e, "ACTS")
    assert [n for n, _, _ in kernel_parameters(cls)][-4:] == ["acts_t", "acts_r", "acts_count", "b"]


def test_reserved_output_name_is_refused():
    fake = type(
        "Fake", (), {"outputs": {"all": Out("f64")}, "type_name": "abitest.fake", "__qualname__": "Fake"}
    )
    with pytest.raises(NodeDefinitionError, match="reserved"):
        emit_bits(fake)


def test_cli_prints_a_bad_plugin_kernel_as_a_located_error(tmp_path, capsys):
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    (nodes / "bad.py").write_text(
        textwrap.dedent(
            '''
            from numba import njit
            from flowmm.core.node import In, Node, Out


            @njit(cache=True)
            def twice_kernel(now, dt, params, value, value_ticked, y):
                return 0


            class Twice(Node):
                """y = 2 x"""

                type_name = "abitestcli.twice"
                inputs = {"x": In("f64")}
                outputs = {"y": Out("f64")}
                kernel = twice_kernel
            '''
        )
    )
    graph = tmp_path / "g.yaml"
    graph.write_text("name: g\nnodes:\n  t: {type: abitestcli.twice, in: {x: source.mid}}\n")
    code = main(["validate", str(graph), "--nodes", str(nodes)])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert f"{nodes / 'bad.py'}:6 [abitestcli.twice.x]: error:" in err
    assert "'value'" in err and "'x'" in err


def _all_node_classes() -> list[type[Node]]:
    registry()
    for d in PLUGIN_DIRS:
        try:
            load_plugin_dir(d)
        except FlowmmError as exc:  # another test loaded a copy of it: its classes are registered
            if "defined twice" not in exc.message:
                raise
    return [c for c in _REGISTRY.values() if not c.type_name.startswith("abitest")]


def _int_constant(node: ast.AST) -> bool:
    """An int literal, or an expression of int literals only (``(1 << 12) - 1``)."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.BinOp):
        return _int_constant(node.left) and _int_constant(node.right)
    if isinstance(node, ast.IfExp):
        return _int_constant(node.body) or _int_constant(node.orelse)
    return False


def test_every_kernel_returns_its_own_named_emit_bits_not_literals():
    classes = _all_node_classes()
    assert len(classes) > 40
    for cls in classes:
        py = cls.kernel.py_func
        fn = ast.parse(textwrap.dedent(inspect.getsource(py))).body[0]
        literal = [
            ast.unparse(r) for r in ast.walk(fn) if isinstance(r, ast.Return) and _int_constant(r.value)
        ]
        assert not literal, f"{cls.type_name}: {py.__name__} returns literal masks: {literal}"
        used = [py.__globals__.get(n) for n in py.__code__.co_names]
        emits = [g for g in used if type(g).__name__.startswith("Emit_") and hasattr(g, "ALL")]
        assert emits, f"{cls.type_name}: {py.__name__} uses no emit bits"
        assert all(g is cls.EMIT for g in emits), f"{cls.type_name}: uses another node's emit bits"


def test_init_state_count_must_match_the_kernel_state_parameters():
    cls = _declare(good_kernel, "abitest.state_count")
    cls.init_state = lambda self: (np.zeros(1), np.zeros(2))
    with pytest.raises(
        NodeDefinitionError, match=r"returns 2 array\(s\), kernel good_kernel takes 1"
    ) as info:
        cls().checked_state()
    assert info.value.location.line == _def_line(good_kernel)

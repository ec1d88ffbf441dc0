"""Graph identity: a version hash over spec, resolved params and kernel sources."""

import copy

import flowmm

SPEC = {
    "name": "h",
    "clock": {"quote_every_ms": 500},
    "nodes": {"v": {"type": "estimators.ewma_vol", "in": {"price": "source.mid"}}},
}


def test_hash_is_stable_and_sensitive_to_params_and_wiring():
    h = flowmm.load_graph(SPEC).version_hash
    assert h == flowmm.load_graph(copy.deepcopy(SPEC)).version_hash
    explicit = copy.deepcopy(SPEC)
    explicit["nodes"]["v"]["params"] = {"half_life_s": 300.0}  # the default, written out
    assert flowmm.load_graph(explicit).version_hash == h
    changed = copy.deepcopy(SPEC)
    changed["nodes"]["v"]["params"] = {"half_life_s": 60.0}
    assert flowmm.load_graph(changed).version_hash != h
    clock = copy.deepcopy(SPEC)
    clock["clock"] = {"quote_every_ms": 1000}
    assert flowmm.load_graph(clock).version_hash != h


def test_hash_is_stamped_into_run_outputs(tmp_path):
    import json

    import pyarrow.parquet as pq

    from flowmm.sources import Events

    g = flowmm.load_graph(SPEC)
    ev = [{"t": 10**18, "kind": "bbo", "bid": [10.0, 1, 1], "ask": [10.1, 1, 1]}]
    g.run(Events(ev), out_dir=tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["version_hash"] == g.version_hash
    meta = pq.read_schema(tmp_path / "trace.parquet").metadata
    assert meta[b"flowmm.version_hash"].decode() == g.version_hash

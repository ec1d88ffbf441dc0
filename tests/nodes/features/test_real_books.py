"""The book features over every snapshot of the real BTC archive hour, through the replay
source; the depth coverage per BIM depth is printed (pytest -s) and checked for sanity."""

import numpy as np
import pytest

import flowmm
from flowmm.sources.replay import Replay

ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"
GRAPH = """
name: real_books
instrument: {coin: BTC}
clock: {on_book: true}
trace: [bim.bim, bim.covered_bps, bim.obs, dbim.dbim, dbim.obs, bpg.bpg, bpg.obs]
nodes:
  bim: {type: features.bim, in: {book: source.book}}
  dbim: {type: features.dbim, in: {book: source.book}}
  bpg: {type: features.bpg, in: {book: source.book}}
"""


@pytest.fixture(scope="module")
def trace(shared_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "real_books.yaml"
    path.write_text(GRAPH)
    return (
        flowmm.load_graph(path).run(Replay(shared_data(ARCHIVE), coin="BTC", cache=False)).trace.to_pydict()
    )


def test_every_snapshot_gives_book_features(trace):
    assert len(trace["t"]) == 5587  # one cycle per snapshot
    for col, bound in (("bim.bim.0", 1), ("bim.bim.1", 1), ("bim.bim.2", 1), ("bpg.bpg", 2)):
        x = np.asarray(trace[col])
        assert np.isfinite(x).all() and (np.abs(x) <= bound).all(), col
    for col in ("bim.obs.z", "bim.obs.R", "bpg.obs.z"):
        assert np.isfinite(trace[col]).all(), col
    assert np.isfinite(trace["dbim.dbim"][3:]).all()  # after its lag of books


def test_depth_coverage_per_bim_depth(trace):
    rows = []
    for k, d in enumerate((10, 25, 50)):
        cov = np.asarray(trace[f"bim.covered_bps.{k}"])
        assert (cov <= d + 1e-9).all() and (cov > 0).all()
        reached = float(np.mean(cov >= d - 1e-9))
        rows.append((d, reached, *np.percentile(cov, [5, 50, 95])))
    print("\nBTC archive hour 2024-01-01 12:00 UTC, 5,587 twenty-level books")
    print("depth  reached   covered bps p5 / median / p95")
    for d, reached, p5, p50, p95 in rows:
        print(f"{d:>5}  {reached:7.1%}   {p5:6.1f} / {p50:6.1f} / {p95:6.1f}")
    assert rows[0][1] == 1.0  # every book reaches 10 bps in 2024
    assert rows[2][1] < 0.5  # most do not reach 50 bps: measured on less, R inflated

"""Inputs that used to end in a traceback end in a located error (exit 2)."""

from __future__ import annotations

import gzip
import json
import socket

import lz4.frame
import pytest

from .conftest import DEMO_EVENTS, DEMO_GRAPH, ROOT

ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"


def _run(cli_run, *argv):
    return cli_run("run", DEMO_GRAPH, *argv, "--no-progress")


def test_a_time_of_2_to_the_64_is_a_located_error(cli_run, tmp_path):
    data = tmp_path / "big.jsonl"
    data.write_text('{"t": 18446744073709551616, "kind": "trade", "px": 1, "sz": 1, "side": "B"}\n')
    code, text = _run(cli_run, "--source", "events", "--data", data, "--out", tmp_path / "r")
    assert code == 2 and f"{data}:1: error:" in text and "2**63" in text


@pytest.mark.parametrize("source", ["events", "replay"])
def test_a_truncated_gz_is_a_located_error(cli_run, tmp_path, source):
    whole = gzip.compress(DEMO_EVENTS.read_bytes())
    data = tmp_path / "cut.jsonl.gz"
    data.write_bytes(whole[: len(whole) // 2])
    code, text = _run(cli_run, "--source", source, "--data", data, "--out", tmp_path / "r", "--no-cache")
    assert code == 2 and f"{data}: error:" in text and "truncated" in text


def test_a_corrupt_lz4_block_is_a_located_error(cli_run, tmp_path, shared_data):
    raw = bytearray(shared_data(ARCHIVE).read_bytes()[:400_000])
    raw[50_000:50_400] = b"\x07" * 400
    data = tmp_path / "bad.lz4"
    data.write_bytes(bytes(raw))
    code, text = _run(cli_run, "--source", "replay", "--data", data, "--out", tmp_path / "r", "--no-cache")
    assert code == 2 and f"{data}: error: LZ4 data is corrupt" in text


def test_a_plugin_redefining_a_built_in_type_is_located_at_its_file(cli_run, tmp_path):
    (tmp_path / "pl").mkdir()
    src = (ROOT / "nodes" / "estimators" / "ewma_vol.py").read_text()
    (tmp_path / "pl" / "dup.py").write_text(src.replace("ewma_vol_kernel", "dup_kernel"))
    code, text = cli_run("validate", "--nodes", tmp_path / "pl", DEMO_GRAPH)
    assert code == 2 and f"{tmp_path / 'pl' / 'dup.py'}:" in text
    assert "'estimators.ewma_vol' defined twice" in text


def test_serve_on_a_busy_port_is_a_located_error(cli_run, tmp_path, archive_rec):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, text = cli_run("serve", "--data", archive_rec, "--port", port)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in text and "--port" in text


def test_replay_of_an_npz_prints_its_summary_without_keyerror(cli_run, tmp_path, shared_data):
    from flowmm.io.hftbacktest import write_npz
    from flowmm.sources.replay import Replay

    capture = Replay(shared_data("hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"), cache=False)
    npz = tmp_path / "cap.npz"
    write_npz(capture.table, npz)
    code, text = _run(cli_run, "--source", "replay", "--data", npz, "--out", tmp_path / "r", "--no-cache")
    assert code == 0, text
    assert "replay of" in text and json.loads((tmp_path / "r" / "summary.json").read_text())["events"] > 0


def test_lz4_written_by_us_still_reads(tmp_path):
    from flowmm.io.recording import open_lines

    p = tmp_path / "x.lz4"
    p.write_bytes(lz4.frame.compress(b"a\nb\n"))
    assert list(open_lines(p)) == [b"a", b"b"]

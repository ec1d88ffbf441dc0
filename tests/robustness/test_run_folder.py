"""Run folders: another run is not overwritten silently, symlinks are not followed, a bad
``--out`` or a full disk is a located error, --execute recordings are 0600, replay caches
stay in FLOWMM_CACHE_DIR."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from .conftest import DEMO_EVENTS, DEMO_GRAPH

RUN = ("run", DEMO_GRAPH, "--source", "events", "--data", DEMO_EVENTS, "--no-progress")


def test_a_second_run_into_the_same_folder_is_refused_unless_overwrite(cli_run, tmp_path):
    out = tmp_path / "run"
    assert cli_run(*RUN, "--out", out)[0] == 0
    first = (out / "summary.json").read_text()
    code, text = cli_run(*RUN, "--out", out)
    assert code == 2 and "holds another run" in text and "--overwrite" in text
    assert (out / "summary.json").read_text() == first  # untouched
    assert cli_run(*RUN, "--out", out, "--overwrite")[0] == 0


def test_a_planted_summary_symlink_is_not_followed(cli_run, tmp_path):
    out, victim = tmp_path / "run", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("precious\n")
    (out / "summary.json").symlink_to(victim)
    code, text = cli_run(*RUN, "--out", out)
    assert code == 2 and "summary.json" in text
    assert cli_run(*RUN, "--out", out, "--overwrite")[0] == 0
    assert victim.read_text() == "precious\n"  # the link was removed, not written through
    assert not (out / "summary.json").is_symlink()
    assert json.loads((out / "summary.json").read_text())["events"] == 109


def test_out_at_a_file_is_a_located_error(cli_run, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    code, text = cli_run(*RUN, "--out", f)
    assert code == 2 and "is a file" in text and str(f) in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_an_unwritable_place_is_a_located_error(cli_run, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, text = cli_run(*RUN, "--out", ro / "run")
    finally:
        ro.chmod(0o700)
    assert code == 2 and "cannot create the folder" in text


def test_out_under_a_file_is_a_located_error(cli_run, tmp_path):
    # as a user without permissions sees it, also as root: a path through a file cannot be made
    f = tmp_path / "afile"
    f.write_text("x")
    code, text = cli_run(*RUN, "--out", f / "run")
    assert code == 2 and "cannot create the folder" in text


def test_disk_full_while_writing_the_run_is_a_located_error(cli_run, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "trace.parquet"))

    monkeypatch.setattr(pq, "write_table", full)
    code, text = cli_run(*RUN, "--out", tmp_path / "run")
    assert code == 2 and "the disk is full" in text


def test_a_private_recording_is_created_0600(tmp_path):
    from flowmm.io.recording import RecordingWriter

    w = RecordingWriter(tmp_path / "feed.rec.lz4", private=True, rotate_bytes=200, block_lines=1)
    for i in range(50):
        w.write(i, {"channel": "x", "data": "y" * 20})
    w.close()
    assert len(w.files) > 1  # rotated files too
    for p in w.files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_execute_asks_the_live_source_for_a_private_recording(monkeypatch, tmp_path):
    import argparse

    from flowmm import cli
    from flowmm.sources import live

    seen = {}

    class FakeLive:
        def __init__(self, cfg, *, record=None, private=False):
            seen["private"] = private

    monkeypatch.setattr(live, "Live", FakeLive)
    monkeypatch.setattr(
        "flowmm.execution.hyperliquid.config.resolve_exec_network",
        lambda url, testnet, mainnet: ("http://127.0.0.1:1", "testnet", "testnet"),
    )
    args = argparse.Namespace(
        coin="BTC", execute=True, url=None, testnet=False, mainnet=False, stale_ms=None, duration=None,
        agg_sig_figs=None, spec=None, dex=None, ref_coin=None, spot_coin=None, address=None,
        max_frames=None, max_reconnects=0, flush_ms=None, fast_book=False, record=None, out_dir=tmp_path,
    )  # fmt: skip
    monkeypatch.setattr(live, "reads_stream", lambda spec, s: False)
    monkeypatch.setattr(live, "LiveConfig", lambda **kw: kw)
    cli._open_live(args)
    assert seen["private"] is True


def test_the_replay_cache_is_written_under_flowmm_cache_dir_not_beside_the_data(
    tmp_path, monkeypatch, archive_rec
):
    import shutil

    from flowmm.sources.replay import Replay

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(archive_rec, data / "a.rec")
    monkeypatch.setenv("FLOWMM_CACHE_DIR", str(tmp_path / "cache"))
    src = Replay(data / "a.rec")
    assert src.cache_state.startswith("written")
    assert [p.name for p in data.iterdir()] == ["a.rec"]
    assert str(tmp_path / "cache" / "replay") in src.cache_state
    assert Replay(data / "a.rec").cache_state.startswith("hit")

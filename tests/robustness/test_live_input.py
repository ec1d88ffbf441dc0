"""A far-future timestamp in a live frame is rejected and counted, never followed: the books
after it are not dropped, the run ends on its own terms (--max-frames here) and its trace
stays in the present. A replay of such a recording likewise."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from flowmm.hyperliquid.loopback import LoopbackServer

Y2100_MS = 4_102_444_800_000


def test_a_year_2100_live_frame_is_rejected_not_followed(archive_rec, probe, tmp_path, cli_run):
    lines = archive_rec.read_text().splitlines()[:400]
    recv, frame = lines[200].split(" ", 1)
    msg = json.loads(frame)
    assert msg["channel"] == "l2Book"
    msg["data"]["time"] = Y2100_MS
    lines[200] = f"{recv} {json.dumps(msg)}"
    rec = tmp_path / "spike.rec"
    rec.write_text("\n".join(lines) + "\n")
    with LoopbackServer(rec, speed=None, start_delay_s=0.05) as srv:
        code, text = cli_run(
            "run", probe, "--source", "live", "--coin", "BTC", "--url", srv.url, "--max-frames", "400",
            "--stale-ms", "60000", "--duration", "60s", "--out", tmp_path / "live", "--no-progress",
        )  # fmt: skip
    assert code == 0, text
    s = json.loads((tmp_path / "live" / "summary.json").read_text())
    # the parser refuses the frame (a Hyperliquid frame: counted malformed, as the live feed's
    # other bad frames); an events file's is the input guard's time_jump
    assert s["live"]["faults"]["malformed"] == 1 and s["live"]["stop"] == "max_frames"
    t = pq.read_table(tmp_path / "live" / "trace.parquet").column("t").to_numpy()
    assert len(t) and t.max() < Y2100_MS * 1_000_000 // 2
    assert s["live"]["faults"]["out_of_order"] == 0  # the books after it were not dropped


def test_a_year_2100_frame_in_a_recording_does_not_clamp_the_rest(archive_rec, tmp_path):
    from flowmm.sources.replay import Replay

    lines = archive_rec.read_text().splitlines()[:400]
    recv, frame = lines[200].split(" ", 1)
    msg = json.loads(frame)
    msg["data"]["time"] = Y2100_MS
    lines[200] = f"{recv} {json.dumps(msg)}"
    rec = tmp_path / "spike.rec"
    rec.write_text("\n".join(lines) + "\n")
    src = Replay(rec, cache=False)
    p = src.summary()["parse"]
    assert p["malformed"] == 1 and p["late_clamped"] == 0
    assert src.table.t.max() < Y2100_MS * 1_000_000 // 2 and len(src.table) >= 399

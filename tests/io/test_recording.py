"""The recording format: LZ4 frames appended per block, rotation, truncated tails, other codecs."""

import gzip

import lz4.frame
import pytest

from flowmm.io.recording import ReadReport, RecordingWriter, first_line, open_lines


def test_round_trip_with_tags_blocks_and_dict_frames(tmp_path):
    path = tmp_path / "s.rec.lz4"
    with RecordingWriter(path, block_lines=3) as w:
        for i in range(10):
            w.write(1000 + i, f'{{"channel":"l2Book","data":{{"i":{i}}}}}', tag="fast" if i % 2 else None)
        w.write(2000, {"channel": "flowmm.timer", "data": {"code": 1}})
        w.write(2001, '{"channel": "x",\n "data": 1}')  # a newline inside a frame is re-encoded away
    lines = list(open_lines(path))
    assert len(lines) == 12
    assert lines[0] == b'1000 {"channel":"l2Book","data":{"i":0}}'
    assert lines[1] == b'1001 fast {"channel":"l2Book","data":{"i":1}}'
    assert lines[10] == b'2000 {"channel":"flowmm.timer","data":{"code":1}}'
    assert lines[11] == b'2001 {"channel":"x","data":1}'
    raw = path.read_bytes()
    assert raw.count(b"\x04\x22\x4d\x18") == 4  # one LZ4 frame per block of 3 lines (+ the rest)


def test_rotation_by_size_names_the_next_files(tmp_path):
    base = tmp_path / "run.rec.lz4"
    w = RecordingWriter(base, block_lines=1, rotate_bytes=200)
    for i in range(40):
        w.write(i, f'{{"channel":"trades","data":[{i}]}}')
    w.close()
    assert w.files[0] == base and w.files[1].name == "run-0001.rec.lz4" and len(w.files) > 2
    back = [line for f in w.files for line in open_lines(f)]
    assert [int(x.split(b" ")[0]) for x in back] == list(range(40))


def test_a_truncated_last_frame_is_reported_not_parsed(tmp_path):
    path = tmp_path / "crash.rec.lz4"
    good = lz4.frame.compress(b"1 {}\n2 {}\n")
    partial = lz4.frame.compress(b"3 {}\n" * 50)[:-9]
    path.write_bytes(good + partial)
    report = ReadReport(str(path))
    assert list(open_lines(path, report)) == [b"1 {}", b"2 {}"]
    assert report.truncated_bytes == len(partial) and "incomplete" in report.notes[0]


def test_gzip_plain_and_first_line(tmp_path):
    gz = tmp_path / "a.gz"
    with gzip.open(gz, "wb") as f:
        f.write(b"\n5 {}\r\n6 {}")
    assert list(open_lines(gz)) == [b"5 {}", b"6 {}"]
    plain = tmp_path / "b.txt"
    plain.write_bytes(b"7 {}\n")
    assert first_line(plain) == b"7 {}"


def test_a_recording_is_named_rec_lz4(tmp_path):
    with pytest.raises(ValueError, match="rec.lz4"):
        RecordingWriter(tmp_path / "x.lz4")

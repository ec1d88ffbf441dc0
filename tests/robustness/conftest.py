"""Helpers of the robustness tests (issue 20): bad input, tried as an operator or attacker would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_GRAPH = ROOT / "graphs" / "demo.yaml"
DEMO_EVENTS = ROOT / "flowmm" / "examples" / "btc_20250126_events.jsonl"
SEC = 1_000_000_000


def book(t: int, bid: float, ask: float, sz: float = 1.0) -> dict:
    return {"t": t, "kind": "book", "bids": [[bid, sz, 1]], "asks": [[ask, sz, 1]]}


def write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


@pytest.fixture
def cli_run(capsys):
    """``cli_run(*argv)`` -> (exit code, stdout + stderr), in-process; never a traceback."""
    from flowmm.cli import main

    def run(*argv: str) -> tuple[int, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        text = out.out + out.err
        assert "Traceback" not in text, text
        return code, text

    return run

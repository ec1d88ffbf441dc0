"""Each feature carries its synthetic channel's information when the knob is on, and none when
every knob is off (issue "Feature nodes"): out-of-sample R^2 > 0.01 or |t| > 5 on, R^2 < 0.002
or |t| < 3.5 off, over 20 seeds x 2 h of scenario ``mixed`` (the method: information.py).

About 2 minutes: 9 knob settings x 20 seeds on the fused backend (one compile)."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "feature_information", Path(__file__).with_name("information.py")
)
information = sys.modules["feature_information"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(information)
CHANNELS, table = information.CHANNELS, information.table

SEEDS, DURATION = range(20), "2h"


@pytest.fixture(scope="module")
def results():
    res = table(SEEDS, DURATION)
    print(f"\n{'feature':8} {'knob':10} {'h s':>4}  {'R2 on':>8} {'t on':>7}  {'R2 off':>8} {'t off':>7}")
    for c in CHANNELS:
        (r_on, t_on), (r_off, t_off) = res[c.feature]["on"], res[c.feature]["off"]
        print(
            f"{c.feature:8} {c.knob:10} {c.horizon_s:>4}  {r_on:8.4f} {t_on:7.2f}  {r_off:8.4f} {t_off:7.2f}"
        )
    return res


@pytest.mark.parametrize("channel", CHANNELS, ids=[c.feature for c in CHANNELS])
def test_information_on_and_off(results, channel):
    (r_on, t_on), (r_off, t_off) = results[channel.feature]["on"], results[channel.feature]["off"]
    assert r_on > 0.01 or abs(t_on) > 5, (
        f"{channel.feature} with {channel.knob} on: R2 {r_on:.4f}, t {t_on:.2f}"
    )
    assert r_off < 0.002 or abs(t_off) < 3.5, f"{channel.feature} all off: R2 {r_off:.4f}, t {t_off:.2f}"

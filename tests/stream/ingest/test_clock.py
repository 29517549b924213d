import logging
import random

import numpy as np
import pytest

from stream.ingest.clock import StreamClock
from stream.ingest.lifecycle import Backoff
from stream.logs import RateLimitedLog


def feed(clock: StreamClock, frames) -> list:
    return [clock.stamp(pts, arrival) for pts, arrival in frames]


def steady(n: int, fps: float = 25.0, pts0: float = 0.0, t0: float = 1000.0):
    return [(pts0 + i / fps, t0 + i / fps) for i in range(n)]


def test_steady_stream_follows_the_pts_from_zero():
    stamps = feed(StreamClock("c", live=True, nominal_fps=25), steady(50, pts0=123.4))
    ts = np.array([s.ts for s in stamps])
    assert ts[0] == 0.0 and np.allclose(np.diff(ts), 0.04) and all(s.gap is None for s in stamps)


@pytest.mark.parametrize("name,jump_to", [("reset to zero", 0.0), ("33-bit MPEG-TS wrap-around", 0.01),
                                          ("jump of hours", 7200.0)])
def test_pts_discontinuities_inside_a_connection_do_not_bend_stream_time(name, jump_to):
    clock = StreamClock("c", live=True, nominal_fps=25)
    wrap = 2 ** 33 / 90000.0
    before = steady(25, pts0=wrap - 1.0)
    after = steady(25, pts0=jump_to, t0=before[-1][1] + 0.04)
    stamps = feed(clock, before + after)
    ts = np.array([s.ts for s in stamps])
    assert np.all(np.diff(ts) > 0), name
    assert np.allclose(np.diff(ts), 0.04), name          # continuous: no gap invented, none lost
    assert clock.discontinuities == 1 and all(s.gap is None for s in stamps)


def test_missing_pts_continue_at_the_frame_rate():
    clock = StreamClock("c", live=True, nominal_fps=10)
    frames = [(None, 0.0)] + [(0.1 * i if i % 3 else None, 0.1 * i) for i in range(1, 30)]
    ts = np.array([s.ts for s in feed(clock, frames)])
    assert np.allclose(np.diff(ts), 0.1)


def test_a_reconnect_continues_stream_time_by_the_outage_and_reports_it_as_a_gap():
    clock = StreamClock("c", live=True, nominal_fps=25)
    first = feed(clock, steady(50, t0=100.0))              # 2 s, wall 100..102
    clock.new_segment()
    second = feed(clock, steady(50, pts0=0.0, t0=107.0))   # camera back 5 s later, its PTS from 0
    assert second[0].ts == pytest.approx(first[-1].ts + 5.04)
    assert second[0].gap == pytest.approx((first[-1].ts + 0.04, second[0].ts))
    assert np.allclose(np.diff([s.ts for s in second]), 0.04) and clock.gaps == 1


def test_frames_lost_in_the_network_are_a_gap_and_the_pts_is_kept():
    clock = StreamClock("c", live=True, nominal_fps=25)
    frames = steady(25) + steady(25, pts0=3.0, t0=1003.0)     # 2 s of frames never arrived
    stamps = feed(clock, frames)
    assert stamps[25].ts == pytest.approx(3.0) and stamps[25].gap == pytest.approx((1.0, 3.0))
    assert clock.discontinuities == 0


def test_a_file_loop_continues_one_frame_later_without_a_gap():
    clock = StreamClock("c", live=False, nominal_fps=10)
    a = feed(clock, [(i / 10, 0.0) for i in range(30)])     # fast replay: arrival times mean nothing
    clock.new_segment()
    b = feed(clock, [(i / 10, 0.0) for i in range(30)])
    assert b[0].ts == pytest.approx(a[-1].ts + 0.1) and b[0].gap is None


def test_repeated_pts_keep_time_moving():
    clock = StreamClock("c", live=False, nominal_fps=10)
    ts = [s.ts for s in feed(clock, [(0.0, 0), (0.1, 0), (0.1, 0), (0.3, 0), (0.4, 0)])]
    assert np.all(np.diff(ts) > 0)


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets():
    b = Backoff(0.5, 8.0, jitter=0.2, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    for i, d in enumerate(delays):
        base = min(8.0, 0.5 * 2 ** i)
        assert base * 0.8 - 1e-9 <= d <= min(8.0, base * 1.2) + 1e-9
    assert max(delays) <= 8.0 and len(set(delays)) == len(delays)      # jittered, capped
    b.reset()
    assert b.next_delay() <= 0.6


def test_rate_limited_log_holds_back_repeats_and_counts_them(caplog):
    now = [0.0]
    say = RateLimitedLog(logging.getLogger("t"), every_s=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t"):
        for i in range(100):
            now[0] = i * 1.0                 # one failure a second for 100 s
            say(logging.WARNING, "open", "camera x: refused")
            say(logging.WARNING, "decode", "camera x: corrupt")
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "refused" in m]) == 4            # t = 0, 30, 60, 90
    assert "(29 more like this in the last 30 s)" in lines[2]

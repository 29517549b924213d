"""The model's batching scheduler: full batches, max wait, fairness, open events first, order."""
from __future__ import annotations

import pytest

from stream.detection.scheduler import Request, Scheduler


def test_a_batch_goes_when_full_or_when_the_oldest_has_waited():
    s = Scheduler(max_batch=4, max_wait_s=0.05)
    s.add(Request("a", 0, arrival=10.0))
    assert s.plan(10.01) is None and s.wait_s(10.01) == pytest.approx(0.04)
    plan = s.plan(10.05)
    assert plan.reason == "waited" and [r.window_id for r in plan.requests] == [0]
    for k in range(5):
        s.add(Request("a", k + 1, arrival=11.0))
    plan = s.plan(11.0)
    assert plan.reason == "full" and len(plan.requests) == 4 and s.pending() == 1
    assert s.plan(11.0) is None and s.plan(11.0, flush=True).reason == "flush" and s.pending() == 0


def test_a_flooding_camera_does_not_starve_the_others():
    s = Scheduler(max_batch=8, max_wait_s=1.0)
    for k in range(100):
        s.add(Request("flood", k, arrival=k * 0.001))
    s.add(Request("quiet", 0, arrival=0.05))
    s.add(Request("other", 0, arrival=0.06))
    plan = s.plan(0.2)
    cams = [r.camera for r in plan.requests]
    assert cams.count("quiet") == 1 and cams.count("other") == 1 and cams.count("flood") == 6
    flood = [r.window_id for r in plan.requests if r.camera == "flood"]
    assert flood == sorted(flood) == list(range(6))                   # each camera's windows in order
    nxt = s.plan(0.2)
    assert [r.window_id for r in nxt.requests] == list(range(6, 14))  # and on from there


def test_open_events_go_first():
    s = Scheduler(max_batch=3, max_wait_s=0.0)
    for k in range(4):
        s.add(Request("calm", k, arrival=float(k)))
    s.add(Request("incident", 0, arrival=9.0, priority=True))
    s.add(Request("incident", 1, arrival=9.5, priority=True))
    plan = s.plan(10.0)
    assert [(r.camera, r.window_id) for r in plan.requests] == [("incident", 0), ("incident", 1), ("calm", 0)]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Scheduler(0, 0.1)

"""The console's parts that need no browser: what it keeps of the verdicts and events it observes,
and the timeline it draws from them."""
from __future__ import annotations

import re

from stream.http.readmodel import Recent, zones_yaml
from stream.config import ZoneConfig
from stream.http.console import timeline_svg
from stream.types import Alert, SecondScore, Verdict


def verdict(k: int, scores: list[float]) -> Verdict:
    start = 2.0 * k                                   # 4 s windows every 2 s: seconds scored twice
    secs = tuple(SecondScore(start + t, start + t + 1, s, "chase") for t, s in enumerate(scores))
    return Verdict("lobby", k, start, start + 4, 1000 + start, 1004 + start, max(scores), secs, {}, "", "hawkeye", 2)


def alert(state: str, score: float = 0.7) -> Alert:
    return Alert("e1", "lobby", state, "chase", score, 2.0, 6.0, 1002.0, 1006.0, "", 1)


def test_recent_keeps_each_cameras_scores_and_its_open_event():
    recent = Recent(keep=3)
    for k in range(5):
        recent.observe(verdict(k, [0.1, 0.2, 0.3, 0.4]))
    assert [r["window_id"] for r in recent.scores("lobby")] == [2, 3, 4]            # the last `keep`
    assert [r["window_id"] for r in recent.scores("lobby", since=1009.0)] == [3, 4]  # ending then or later
    assert recent.scores("door") == [] and recent.score_of("lobby", 4) == 0.4
    assert recent.open_event("lobby") is None
    recent.observe(alert("open"))
    recent.observe(alert("update", 0.9))
    assert recent.open_event("lobby") == {"alert_id": "e1", "category": "chase", "score": 0.9, "wall_start": 1002.0}
    recent.observe(alert("close"))
    assert recent.open_event("lobby") is None


def test_the_timeline_draws_each_second_once_the_thresholds_and_the_events_as_links():
    recent = Recent()
    recent.observe(verdict(0, [0.1, 0.2, 0.8, 0.9]))
    recent.observe(verdict(1, [0.0, 0.0, 0.5, 0.4]))        # seconds 2 and 3 again: the first score stands
    event = {**alert("close").__dict__, "state": "close"}
    svg = timeline_svg(recent.scores("lobby"), [event], start=1000.0, end=1006.0, open_threshold=0.6,
                       close_threshold=0.4)
    points = re.search(r'<polyline class="scores" points="([^"]+)"', svg).group(1).split()
    assert len(points) == 6                                  # seconds 0..5, each once
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[2] < ys[1] and ys[3] < ys[2]                  # 0.8 and 0.9 (not 0.0) drawn for seconds 2 and 3
    assert '<a href="/events/e1">' in svg and svg.count('class="threshold') == 2


def test_drawn_zones_come_back_as_the_configs_yaml():
    import yaml
    zones = {"door way": ZoneConfig(kind="exclude", points=[(0.1, 0.2), (0.3, 0.2), (0.3, 0.5)])}
    text = zones_yaml("lobby", zones)
    back = yaml.safe_load(text)["cameras"]["lobby"]["zones"]
    assert ZoneConfig(**back["door way"]) == zones["door way"]
    assert yaml.safe_load(zones_yaml("lobby", {}))["cameras"]["lobby"]["zones"] == {}

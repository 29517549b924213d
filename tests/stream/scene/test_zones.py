"""Zones: where a camera's events may open, from where its people stand (or what moves)."""
from __future__ import annotations

import numpy as np
import pytest

from stream.config import ConfigError, EventsConfig, ZoneConfig, parse_config
from stream.detection.events import EventTracker
from stream.scene.zones import Zones
from stream.types import MotionSummary, PersonTrack, SceneGraph, SecondScore, Verdict

W, H = 800, 600
LEFT = ZoneConfig(kind="include", points=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])
DOOR = ZoneConfig(kind="exclude", points=[(0.1, 0.6), (0.3, 0.6), (0.3, 0.9), (0.1, 0.9)])


def person(feet_x: float, feet_y: float, present=(True,) * 4) -> PersonTrack:
    boxes = np.array([[feet_x - 20, feet_y - 120, feet_x + 20, feet_y]] * 4, float)
    return PersonTrack(1, np.array(present), boxes, np.ones(4), np.zeros((4, 17, 3)))


def scene(*tracks, motion=None) -> SceneGraph:
    return SceneGraph("cam", 0, 0.0, 4.0, np.array([0.25, 1.25, 2.25, 3.25]), np.zeros(4), (W, H), tracks,
                      motion=motion)


def test_people_open_events_only_where_they_stand_inside_an_include_zone_and_outside_every_exclude_one():
    zones = Zones({"left": LEFT, "door": DOOR})
    assert list(zones.frames(scene(person(100, 300)))) == [1, 1, 1, 1]        # left half, above the door
    assert list(zones.frames(scene(person(600, 300)))) == [-1, -1, -1, -1]    # the right half
    assert list(zones.frames(scene(person(160, 500)))) == [-1, -1, -1, -1]    # in the door (excluded)
    assert list(zones.frames(scene())) == [0, 0, 0, 0]                        # nobody located
    both = scene(person(600, 300), person(100, 300))
    assert all(zones.admits(both)(t, t + 1) for t in range(4))                # one of them inside is enough


def test_a_second_is_judged_by_its_own_frames_and_nothing_located_opens_only_without_include_zones():
    walking_out = scene(person(100, 300, present=(True, True, False, False)), person(600, 300, (False, False, True, True)))
    admits = Zones({"left": LEFT}).admits(walking_out)
    assert [admits(t, t + 1) for t in range(4)] == [True, True, False, False]
    assert not Zones({"left": LEFT}).admits(scene())(0, 1)
    assert Zones({"door": DOOR}).admits(scene())(0, 1)            # exclude zones only: the rest of the picture is open


def test_without_people_what_moves_locates_the_event():
    masks = np.zeros((3, 60, 80), bool)
    masks[:, 10:20, 60:70] = True                                  # something moves in the right half
    motion = MotionSummary(np.zeros(3), np.zeros(3), np.zeros(8), np.zeros(4), masks)
    assert list(Zones({"left": LEFT}).frames(scene(motion=motion))) == [0, -1, -1, -1]
    masks[:, 10:20, 5:10] = True                                   # and something on the left
    assert list(Zones({"left": LEFT}).frames(scene(motion=motion))) == [0, 1, 1, 1]


def test_the_tracker_opens_only_in_admitted_seconds_and_then_follows_the_event_anywhere():
    def verdict(k, scores):
        secs = tuple(SecondScore(4.0 * k + t, 4.0 * k + t + 1, s, "fighting") for t, s in enumerate(scores))
        return Verdict("cam", k, 4.0 * k, 4.0 * k + 4, 0.0, 4.0, max(scores), secs, {}, "", "baseline", 1)
    tracker = EventTracker("cam", EventsConfig(open_threshold=0.6, close_threshold=0.4, min_duration_s=1.0,
                                               close_after_s=2.0))
    assert tracker.update(verdict(0, [0.9] * 4), lambda s, e: False) == []       # high, but outside the zones
    opened = tracker.update(verdict(1, [0.9] * 4), lambda s, e: s >= 6.0)
    assert [a.state for a in opened] == ["open"] and opened[0].start == 6.0
    assert tracker.update(verdict(2, [0.9] * 4), lambda s, e: False) == [] and tracker.is_open   # continues


def test_zones_are_checked_in_the_config():
    from pathlib import Path

    import yaml
    demo = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"

    def load(zones):
        data = yaml.safe_load(demo.read_text())
        data["cameras"]["lobby"]["zones"] = zones
        return parse_config(data, demo.parent, "demo.yaml", check_files=False)
    ok = load({"floor": {"points": [[0, 0.5], [1, 0.5], [1, 1]]}})
    assert ok.cameras["lobby"].zones["floor"].kind == "include"
    for zones, says in (({"a": {"points": [[0, 0], [1, 1]]}}, "at least 3"),
                        ({"a": {"points": [[0, 0], [0.5, 0.5], [1, 1]]}}, "encloses no area"),
                        ({"a": {"points": [[0, 0], [1.5, 0], [1, 1]]}}, "less than or equal to 1"),
                        ({"a": {"kind": "ignore", "points": [[0, 0], [1, 0], [1, 1]]}}, "'include' or 'exclude'")):
        with pytest.raises(ConfigError, match=says) as e:
            load(zones)
        assert "cameras.lobby.zones.a" in str(e.value)


def test_zones_are_drawn_where_they_lie_at_any_size():
    image = np.zeros((300, 400, 3), np.uint8)
    Zones({"left": LEFT}).draw(image)
    assert image[150, 199].any() and not image[150, 300].any()    # the edge at x = 0.5, nothing to its right

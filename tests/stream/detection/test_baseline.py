"""The kinematic baseline on scene graphs with known motion."""
import numpy as np
import pytest

from stream.config import BaselineConfig
from stream.detection.baseline import BaselineDetector, ramp
from stream.types import PersonTrack, SceneGraph

T = 8
TS = np.arange(T) * 0.5     # 4 s window sampled at 2 fps


def upright_keypoints(box):
    x0, y0, x1, y1 = box
    cx, h = (x0 + x1) / 2, y1 - y0
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = cx
    kp[[5, 6], 1] = y0 + 0.2 * h      # shoulders
    kp[[11, 12], 1] = y0 + 0.5 * h    # hips
    kp[[9, 10], 1] = y0 + 0.5 * h     # wrists
    kp[[15, 16], 1] = y1              # ankles
    kp[:, 2] = 0.9
    return kp


def track(tid, boxes, keypoints=None):
    boxes = np.asarray(boxes, np.float32)
    kps = np.stack([upright_keypoints(b) for b in boxes]) if keypoints is None else keypoints
    return PersonTrack(tid, np.ones(len(boxes), bool), boxes, np.ones(len(boxes), np.float32), kps)


def scene(*tracks):
    return SceneGraph("cam", 0, 0.0, 4.0, TS, 1000.0 + TS, (768, 576), tuple(tracks))


def walker(tid, speed_bh_per_s, x0=100.0):
    return track(tid, [[x0 + speed_bh_per_s * 100 * t, 100, x0 + 40 + speed_bh_per_s * 100 * t, 200] for t in TS])


@pytest.fixture
def det():
    return BaselineDetector(BaselineConfig())


def test_ramp_is_half_at_the_threshold_and_monotonic():
    assert ramp(2.0, 2.0, 0.15) == pytest.approx(0.5)
    xs = ramp(np.linspace(0, 4, 50), 2.0, 0.15)
    assert np.all(np.diff(xs) > 0) and xs[0] < 0.01 and xs[-1] > 0.99


def test_walking_people_score_low_and_a_runner_scores_running(det):
    calm = det(scene(walker(1, 0.8), walker(2, 0.6, x0=400)))
    assert calm.score < 0.2 and calm.explanation == ""
    run = det(scene(walker(1, 0.8), walker(2, 3.0, x0=400)))
    assert run.score > 0.9
    assert max(run.seconds, key=lambda s: s.score).category == "running"
    assert "person 2" in run.explanation


def test_a_person_lying_down_scores_fall(det):
    box = [100, 150, 200, 190]
    kp = np.zeros((T, 17, 3), np.float32)
    kp[:, [5, 6], :2] = [110, 170]    # shoulders beside the hips: a horizontal torso
    kp[:, [11, 12], :2] = [170, 172]
    kp[:, :, 2] = 0.9
    v = det(scene(track(1, [box] * T, kp)))
    assert v.categories["fall"] > 0.9 and v.seconds[0].category == "fall"


def test_close_people_with_fast_arms_score_scuffle_but_calm_neighbours_do_not(det):
    def pair(arm_amplitude):
        tracks = []
        for tid, x in ((1, 100.0), (2, 140.0)):
            boxes = [[x, 100, x + 40, 200]] * T
            kp = np.stack([upright_keypoints(b) for b in boxes])
            kp[:, [9, 10], 1] += arm_amplitude * np.where(np.arange(T) % 2, 1, -1)[:, None]
            tracks.append(track(tid, boxes, kp))
        return scene(*tracks)
    assert det(pair(0.0)).categories["scuffle"] < 0.1
    fight = det(pair(80.0))    # wrists swing 160 px (1.6 heights) every 0.5 s
    assert fight.categories["scuffle"] > 0.8


def test_per_second_scores_cover_the_window_and_the_window_score_is_their_max(det):
    v = det(scene(walker(1, 3.0)))
    assert [(s.start, s.end) for s in v.seconds] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert v.score == max(s.score for s in v.seconds)
    assert v.detector == "baseline" and v.people == 1 and "detector" in v.latency_ms


def test_an_empty_scene_is_a_quiet_verdict(det):
    v = det(scene())
    assert v.score == 0.0 and len(v.seconds) == 4 and v.people == 0


def test_a_person_who_stays_put_scores_loitering_once_their_dwell_passes_the_threshold(det):
    box = [300, 100, 340, 200]
    stay = track(5, [box] * T)
    lingering = PersonTrack(5, stay.present, stay.boxes, stay.box_scores, stay.keypoints, dwell=6.0 + TS * 2)   # 6 -> 13 s
    v = det(scene(lingering))
    assert [s.category for s in v.seconds][-1] == "loitering" and v.seconds[-1].score > 0.85   # 13 s
    assert v.seconds[0].score < 0.15                        # 6-7 s in place is not yet loitering (10 s)
    assert v.explanation.startswith("person 5 has stayed in one place")
    assert det(scene(stay)).score < 0.1                     # no dwell known: nothing said


def test_a_left_object_scores_abandoned_only_while_nobody_is_near_it(det):
    bag = [np.array([[500, 180, 540, 200, 4.0 + t, 7]], np.float32) for t in TS]   # there 4 -> 7.5 s
    owner = walker(1, 0.0, x0=545.0)                                               # standing right beside it
    away = walker(1, 0.0, x0=100.0)
    base = scene(away)
    left = SceneGraph(**{**base.__dict__, "objects": tuple(bag)})
    v = det(left)
    assert v.categories["abandoned"] > 0.8 and v.seconds[-1].category == "abandoned"
    assert v.seconds[0].score < 0.5                          # 4 s there: under the 6 s threshold
    assert v.explanation.startswith("object 7 has been left with nobody near it")
    attended = SceneGraph(**{**scene(owner).__dict__, "objects": tuple(bag)})
    assert det(attended).categories["abandoned"] == 0.0

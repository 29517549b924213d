"""A tracked person's pose every k sampled frames (models.pose.every_frames): who gets a new pose,
how the others' keypoints follow their box, and what it saves on real footage."""
from __future__ import annotations

import numpy as np
import pytest

from engines import create_engine
from stream.scene.graph import SceneBuilder
from stream.scene.people import PersonDetector
from stream.scene.pose import PoseEstimator, PoseRefresh, TopDown
from stream.types import Frame, Window
from tests.stream.scene.test_batching import Counting


def pose_at(box: np.ndarray) -> np.ndarray:
    """17 keypoints spread over the box, all confident."""
    kp = np.ones((17, 3), np.float32)
    kp[:, 0] = np.linspace(box[0], box[2], 17)
    kp[:, 1] = np.linspace(box[1], box[3], 17)
    return kp


def step(refresh: PoseRefresh, ids, boxes, camera="a"):
    """One frame through plan and fill, with a 'model' that returns pose_at(box)."""
    ids, boxes = np.asarray(ids), np.asarray(boxes, np.float32).reshape(-1, 4)
    due = refresh.plan(camera, ids, boxes)
    posed = np.zeros((len(ids), 17, 3), np.float32)
    posed[due] = np.array([pose_at(b) for b in boxes[due]], np.float32).reshape(-1, 17, 3)
    return due, refresh.fill(camera, ids, boxes, due, posed)


def test_a_tracked_person_is_posed_every_k_frames_and_followed_between():
    r = PoseRefresh(3)
    box = np.array([100, 100, 140, 200], np.float32)
    dues = []
    for t in range(7):
        moved = box + [5 * t, 2 * t, 5 * t, 2 * t]         # walking: the box moves, its shape does not
        due, kp = step(r, [1], [moved])
        dues.append(bool(due[0]))
        # followed: the last pose moved with the box, so it lies where a new one would
        np.testing.assert_allclose(kp[0, :, :2], pose_at(moved)[:, :2], atol=1e-3)
        assert (kp[0, :, 2] == 1).all()
    assert dues == [True, False, False, True, False, False, True]


def test_a_box_that_changes_shape_gets_a_new_pose_at_once():
    r = PoseRefresh(5)
    standing = np.array([100, 100, 140, 200], np.float32)
    assert step(r, [1], [standing])[0][0]
    assert not step(r, [1], [standing + 1])[0][0]
    fallen = np.array([80, 170, 180, 210], np.float32)      # wider than tall: a fall
    assert step(r, [1], [fallen])[0][0]
    crouched = np.array([80, 150, 180, 210], np.float32)    # 50 % taller than the fallen box
    assert step(r, [1], [crouched])[0][0]


def test_untracked_and_new_people_always_get_a_pose_and_every_1_poses_everyone():
    r = PoseRefresh(4)
    boxes = [[0, 0, 20, 60], [50, 0, 70, 60]]
    assert step(r, [0, 1], boxes)[0].tolist() == [True, True]
    assert step(r, [0, 1], boxes)[0].tolist() == [True, False]   # id 0: a weak detection, never followed
    assert step(r, [0, 1, 2], boxes + [[90, 0, 110, 60]])[0].tolist() == [True, False, True]
    every = PoseRefresh(1)
    for _ in range(3):
        assert step(every, [1, 2], boxes)[0].all()


def test_a_person_missed_for_a_frame_keeps_their_pose_and_a_lost_one_is_forgotten():
    r = PoseRefresh(3)
    box = np.array([100, 100, 140, 200], np.float32)
    step(r, [1], [box])
    step(r, [], [])                                          # hidden for one frame
    due, kp = step(r, [1], [box + 4])
    assert not due[0] and (kp[0, :, 2] == 1).all()
    for _ in range(3):
        step(r, [], [])                                      # gone for longer than a pose is followed
    assert step(r, [1], [box])[0][0]
    step(r, [1], [box], camera="b")
    r.forget("a")
    assert step(r, [1], [box], camera="a")[0][0] and not step(r, [1], [box], camera="b")[0][0]


def test_no_pose_found_is_not_followed_as_if_it_were_one():
    r = PoseRefresh(3)
    box = np.array([100, 100, 140, 200], np.float32)
    ids, boxes = np.array([1]), box[None]
    due = r.plan("a", ids, boxes)
    r.fill("a", ids, boxes, due, np.zeros((1, 17, 3), np.float32))    # the model found no pose
    due, kp = step(r, [1], [box + 3])
    assert not due[0] and (kp == 0).all()


def test_on_vtest_every_3_frames_runs_the_pose_model_on_fewer_crops_with_the_same_people(models_dir, vtest_frames):
    """Four windows of real footage in one batch (plan and fill across frames of one call):
    the same boxes and tracks as posing everyone, fewer crops, and every followed
    person's keypoints near their box."""
    det = create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2)
    counts = {}
    graphs = {}
    for every in (1, 3):
        pose = Counting(create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=2))
        scene = SceneBuilder(TopDown(PersonDetector(det), PoseEstimator(pose)), pose_every=every)
        frames = tuple(Frame("cam", i, i * 0.5, 0.0, im) for i, im in enumerate(vtest_frames[:8]))
        graphs[every] = scene.build_many([Window("cam", 0, 0.0, 4.0, frames)])[0]
        counts[every] = sum(pose.calls)
    assert counts[3] < 0.75 * counts[1], counts          # new tracks and weak detections are always posed
    a, b = graphs[1], graphs[3]
    assert [t.track_id for t in a.tracks] == [t.track_id for t in b.tracks]
    for ta, tb in zip(a.tracks, b.tracks):
        np.testing.assert_array_equal(ta.boxes, tb.boxes)
        seen = tb.present & (tb.keypoints[..., 2].max(-1) > 0)
        height = (tb.boxes[seen, 3] - tb.boxes[seen, 1])[:, None]
        centre = (tb.boxes[seen, None, :2] + tb.boxes[seen, None, 2:]) / 2
        assert (np.linalg.norm(tb.keypoints[seen, :, :2] - centre, axis=-1) < height).all()


def test_each_camera_may_set_its_own_rate_and_a_reload_applies_it():
    from stream.config import ConfigError, parse_config
    from stream.scene.graph import pose_every_of
    raw = {"cameras": {"gate": {"path": "a.mp4", "pose_every_frames": 1}, "hall": {"path": "b.mp4"}},
           "models": {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx", "every_frames": 3}}}
    assert pose_every_of(parse_config(raw, check_files=False)) == (3, {"gate": 1})
    r = PoseRefresh()
    r.every, r.cameras = pose_every_of(parse_config(raw, check_files=False))
    box = [[100, 100, 140, 200]]
    assert [step(r, [1], box, camera="gate")[0][0] for _ in range(3)] == [True, True, True]
    assert [step(r, [1], box, camera="hall")[0][0] for _ in range(3)] == [True, False, False]
    raw["cameras"]["gate"]["pose_every_frames"] = 0
    with pytest.raises(ConfigError, match="cameras.gate.pose_every_frames"):
        parse_config(raw, check_files=False)

"""People are searched for only where something moved (motion.people_on_motion): which frames are
still, and what a still frame keeps, on real footage through the real models."""
from __future__ import annotations

import numpy as np

from engines import create_engine
from stream.scene.graph import SceneBuilder, StillFrames
from stream.scene.motion import MotionExtractor, PairMotion
from stream.scene.people import PersonDetector
from stream.scene.pose import PoseEstimator, TopDown
from stream.types import Frame, Window
from tests.stream.scene.test_batching import Counting


def flow_moving(share: float) -> PairMotion:
    mask = np.zeros((100, 100), bool)
    mask.flat[:int(share * mask.size)] = True
    return PairMotion(0.5, np.zeros((100, 100, 2), np.float32), mask)


def test_a_frame_is_still_after_a_search_while_too_little_of_it_moves_and_not_for_longer_than_every_s():
    s = StillFrames(every_s=2.0, min_moving=0.001)
    assert not s.check("a", 0.0, None)                  # a camera's first frame: no flow, searched
    assert s.check("a", 0.5, flow_moving(0.0))
    assert s.check("a", 1.0, flow_moving(0.0005))       # below the share
    assert not s.check("a", 1.5, flow_moving(0.01))     # something moved
    assert s.check("a", 2.0, flow_moving(0.0))
    assert s.check("a", 3.0, flow_moving(0.0))
    assert not s.check("a", 3.5, flow_moving(0.0))      # 2 s since the last search: searched however still
    assert not s.check("b", 4.0, flow_moving(0.0))      # each camera its own
    assert not s.check("a", 1.0, flow_moving(0.0))      # time went back (a file that loops): searched
    s.forget("a")
    assert not s.check("a", 1.5, flow_moving(0.0))


def still_scene(models_dir, vtest_frames, every_s: float = 4.0):
    det = Counting(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2))
    pose = Counting(create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=2))
    scene = SceneBuilder(TopDown(PersonDetector(det), PoseEstimator(pose)), motion=MotionExtractor(),
                         pose_every=3, still=StillFrames(every_s=every_s))
    return scene, det, pose


def test_a_still_camera_keeps_its_people_tracks_and_poses_without_running_the_models(models_dir, vtest_frames):
    """A real frame held still for 3 s (4 s windows at 2 fps, two calls: a still frame first in a
    batch keeps the last batch's people), then real people walking: only the first frame and
    the walking ones go through the detector; the still ones have the first frame's boxes, ids
    and keypoints exactly."""
    scene, det, pose = still_scene(models_dir, vtest_frames)
    held = [vtest_frames[0]] * 6
    walking = [vtest_frames[1], vtest_frames[2]]
    frames = [Frame("cam", i, i * 0.5, 1000.0 + i * 0.5, im) for i, im in enumerate(held + walking)]
    first = scene.build_many([Window("cam", 0, 0.0, 2.0, tuple(frames[:4]))])[0]
    assert sum(det.calls) == 1 and sum(pose.calls) > 0
    posed = sum(pose.calls)
    second = scene.build_many([Window("cam", 1, 1.0, 4.0, tuple(frames[2:8]))])[0]
    assert sum(det.calls) == 1 + 2, det.calls          # the two walking frames only
    assert sum(pose.calls) > posed                      # the walkers' new tracks
    tracks = [t for t in first.tracks if t.present[0]]
    assert tracks, "vtest's first frame has people"
    for t in tracks:
        assert t.present.all()
        np.testing.assert_array_equal(t.boxes, np.repeat(t.boxes[:1], 4, 0))
        np.testing.assert_array_equal(t.keypoints, np.repeat(t.keypoints[:1], 4, 0))
        later = next(u for u in second.tracks if u.track_id == t.track_id)
        np.testing.assert_array_equal(later.boxes[:4], np.repeat(t.boxes[:1], 4, 0))   # frames 2-5: still
        np.testing.assert_array_equal(later.keypoints[:4], np.repeat(t.keypoints[:1], 4, 0))
    assert any(t.present[4:].any() for t in second.tracks)


def test_a_still_camera_is_searched_every_every_s(models_dir, vtest_frames):
    scene, det, _ = still_scene(models_dir, vtest_frames, every_s=1.0)
    frames = tuple(Frame("cam", i, i * 0.5, 0.0, vtest_frames[0]) for i in range(6))    # 0 .. 2.5 s, all still
    scene.build_many([Window("cam", 0, 0.0, 3.0, frames)])
    assert sum(det.calls) == 3, det.calls                # at 0, 1 and 2 s


def test_without_motion_every_frame_is_searched(models_dir, vtest_frames):
    det = Counting(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2))
    pose = create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=2)
    scene = SceneBuilder(TopDown(PersonDetector(det), PoseEstimator(pose)), motion=None, still=StillFrames())
    frames = tuple(Frame("cam", i, i * 0.5, 0.0, vtest_frames[0]) for i in range(4))
    scene.build_many([Window("cam", 0, 0.0, 2.0, frames)])
    assert sum(det.calls) == 4

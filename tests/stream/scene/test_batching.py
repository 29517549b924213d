"""Batching across cameras: windows of many cameras share engine calls, with the same results as
one window at a time; the pipeline's scene stage gathers windows up to max_batch frames or
max_wait_ms."""
from __future__ import annotations

import threading
import time

import numpy as np

from engines import create_engine
from stream.alerts.publisher import Publisher
from stream.config import parse_config
from stream.ingest.source import VideoSource
from stream.detection.baseline import BaselineDetector
from stream.pipeline import Pipeline
from stream.scene.graph import SceneBuilder
from stream.scene.people import PersonDetector
from stream.scene.pose import PoseEstimator, TopDown
from stream.types import Frame, Window
from tests.harness import StubScene


class Counting:
    """A real engine that records the batch size of every call."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []
        self.backend, self.input_names, self.output_names = engine.backend, engine.input_names, engine.output_names

    def run(self, feeds):
        self.calls.append(len(next(iter(feeds.values()))))
        return self.engine.run(feeds)


def windows(camera: str, images: list[np.ndarray]) -> list[Window]:
    frames = [Frame(camera, i, i * 0.5, 1000.0 + i * 0.5, im) for i, im in enumerate(images)]
    return [Window(camera, 0, 0.0, 2.0, tuple(frames[:4])), Window(camera, 1, 1.0, 3.0, tuple(frames[2:6]))]


def builder(models_dir, max_batch=16):
    det = Counting(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2))
    pose = Counting(create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=2))
    people = TopDown(PersonDetector(det, max_batch=max_batch), PoseEstimator(pose, max_batch=max_batch))
    return SceneBuilder(people), det, pose


def test_windows_of_two_cameras_share_engine_calls_and_match_one_at_a_time(models_dir, vtest_frames):
    cams = {"a": windows("a", vtest_frames[:6]), "b": windows("b", vtest_frames[2:8])}
    batched, det, pose = builder(models_dir)
    first = batched.build_many([cams["a"][0], cams["b"][0]])          # 8 new frames, two cameras
    second = batched.build_many([cams["a"][1], cams["b"][1]])         # 4 new frames: 2 each are cached
    assert det.calls == [8, 4]
    assert pose.calls[0] == 16 and max(pose.calls) == 16              # crops of all 8 frames, 16 a call

    alone, det1, _ = builder(models_dir)
    for cam in ("a", "b"):
        for w, got in zip(cams[cam], [first, second]):
            want = alone.build(w)
            g = next(x for x in got if x.camera == cam)
            assert [t.track_id for t in g.tracks] == [t.track_id for t in want.tracks]
            for t, u in zip(g.tracks, want.tracks):
                np.testing.assert_array_equal(t.present, u.present)
                np.testing.assert_allclose(t.keypoints, u.keypoints, atol=0.05)   # batched vs single numerics
    assert det1.calls == [4, 2, 4, 2]


def test_scene_stage_gathers_windows_of_all_cameras_into_batches(clip12, free_endpoint, tmp_path):
    """Three cameras replayed as fast as possible into a slow scene stage: batches fill up with
    windows of several cameras, every window is built exactly once, each camera's in order."""
    cfg = parse_config({
        "replay": "fast",
        "cameras": {c: {"path": str(clip12)} for c in ("a", "b", "c")},
        "windows": {"length_s": 2.0, "stride_s": 1.0, "sample_fps": 2.0},
        "models": {"max_batch": 16, "max_wait_ms": 200, "person_detector": {"path": "x.onnx"},
                   "pose": {"path": "y.onnx"}},
        "alerts": {"endpoint": free_endpoint},
    }, check_files=False)
    scene = StubScene(seconds=0.05)

    def make_source(camera, c, on_state):
        return VideoSource(camera, c.target, is_file=True, replay="fast", ingest=c.ingest, on_state=on_state)
    pipeline = Pipeline(cfg, make_source, scene, BaselineDetector(cfg.detector.baseline),
                        Publisher(free_endpoint, outbox=tmp_path / "outbox.sqlite"), threading.Event())
    t0 = time.monotonic()
    assert pipeline.run() == 0 and time.monotonic() - t0 < 60
    done = [w for b in scene.batches for w in b]
    for cam in ("a", "b", "c"):
        ids = [i for c, i in done if c == cam]
        assert ids == list(range(12))                         # 12 s at a 1 s stride, in order, once each
    assert 4 <= max(len(b) for b in scene.batches) <= 5       # max_batch 16 frames: 4 windows of 4 (last ones shorter)
    assert any(len({c for c, _ in b}) >= 2 for b in scene.batches)   # one batch, several cameras
    assert len(scene.batches) < len(done)


def test_two_scene_workers_share_the_cameras_each_camera_on_one_of_them_in_order(clip12, free_endpoint, tmp_path):
    """`runtime.scene_workers: 2`: each worker builds whole cameras (its tracks stay with it), the
    cameras are shared out evenly, and every camera's windows are built once each, in order, and
    published in order."""
    cfg = parse_config({
        "replay": "fast",
        "cameras": {c: {"path": str(clip12)} for c in ("a", "b", "c", "d")},
        "windows": {"length_s": 2.0, "stride_s": 1.0, "sample_fps": 2.0},
        "models": {"max_batch": 8, "max_wait_ms": 50, "person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}},
        "alerts": {"endpoint": free_endpoint, "publish_verdicts": True},
        "runtime": {"scene_workers": 2},
    }, check_files=False)
    workers = [StubScene(seconds=0.02), StubScene(seconds=0.02)]
    seen: list = []

    def make_source(camera, c, on_state):
        return VideoSource(camera, c.target, is_file=True, replay="fast", ingest=c.ingest, on_state=on_state)
    pipeline = Pipeline(cfg, make_source, workers, BaselineDetector(cfg.detector.baseline),
                        Publisher(free_endpoint, outbox=tmp_path / "outbox.sqlite"), threading.Event())
    pipeline.observers.append(seen.append)
    assert pipeline.run() == 0
    built = [{c for b in w.batches for c, _ in b} for w in workers]
    assert len(built[0]) == len(built[1]) == 2 and not built[0] & built[1]     # two cameras each, none shared
    for w in workers:
        done = [x for b in w.batches for x in b]
        for cam in {c for c, _ in done}:
            assert [i for c, i in done if c == cam] == list(range(12))
    for cam in ("a", "b", "c", "d"):
        assert [v.window_id for v in seen if v.camera == cam and not hasattr(v, "alert_id")] == list(range(12))


def test_each_camera_keeps_the_people_above_its_own_score_in_one_shared_batch(models_dir, vtest_frames):
    """Cameras with their own person_score_threshold share the detector's batch (run down to the
    lowest of them); each keeps exactly what a detector at its own threshold finds."""
    from stream.scene.graph import person_scores_of
    from stream.scene.decoders import People
    cfg = parse_config({"cameras": {"far": {"path": "a.mp4", "person_score_threshold": 0.1},
                                    "near": {"path": "b.mp4", "person_score_threshold": 0.6},
                                    "plain": {"path": "c.mp4"}},
                        "models": {"person_detector": {"path": "x.onnx", "score_threshold": 0.3},
                                   "pose": {"path": "y.onnx"}}}, check_files=False)
    default, own = person_scores_of(cfg)
    assert (default, own) == (0.3, {"far": 0.1, "near": 0.6})
    det = create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2)
    pose = create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=2)

    class Seen(TopDown):
        def find(self, images, *, poses=True):
            self.last = super().find(images, poses=poses)
            return self.last
    shared = Seen(PersonDetector(det, score_threshold=0.1), PoseEstimator(pose))
    builder = SceneBuilder(shared)
    assert builder.person_scores(default, own, floor=0.1) == []
    images = vtest_frames[:4]
    found = builder.analyse([Window(cam, 0, 0.0, 2.0, tuple(Frame(cam, i, i * 0.5, 0.0, im)
                                                             for i, im in enumerate(images)))
                             for cam in ("far", "near", "plain")])
    for cam, frames in zip(("far", "near", "plain"), found):
        alone = PersonDetector(det, score_threshold={"far": 0.1, "near": 0.6, "plain": 0.3}[cam]).detect(images)
        assert [len(f.scores) for f in frames] == [len(d.scores) for d in alone], cam
    assert sum(len(f.scores) for f in found[1]) < sum(len(f.scores) for f in found[0])
    assert isinstance(shared.last[0], People)
    assert builder.person_scores(default, {"near": 0.05}) == ["near"]      # below the models' floor: needs a restart

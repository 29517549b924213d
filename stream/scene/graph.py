"""Build a window's SceneGraph: people, poses and tracks for every sampled frame.

Overlapping windows share frames; each frame is analysed once (a small per-camera cache), and all
new frames of a window go through the detector in one batch and all their crops through the pose
model in one batch."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stream.scene.kinematics import feet
from stream.scene.motion import MotionExtractor, MotionSummary, PairMotion
from stream.scene.people import PersonDetector
from stream.scene.relations import GeometricRelations
from stream.scene.pose import PoseEstimator
from stream.scene.tracking import PersonTracker
from stream.types import PersonTrack, SceneGraph, Window


@dataclass(frozen=True)
class FrameScene:
    ts: float
    boxes: np.ndarray       # (P, 4)
    scores: np.ndarray      # (P,)
    track_ids: np.ndarray   # (P,)
    keypoints: np.ndarray   # (P, 17, 3)


class SceneBuilder:
    def __init__(self, detector: PersonDetector, pose: PoseEstimator, *, iou_threshold: float = 0.3,
                 max_age_s: float = 2.0, max_jump: float = 0.6, high_score: float = 0.5,
                 motion: MotionExtractor | None = None, relations: GeometricRelations | None = None):
        self.detector, self.pose, self.motion, self.relations = detector, pose, motion, relations
        self._flows: dict[str, dict[tuple[int, int], PairMotion]] = {}   # per camera: (seq a, seq b) -> flow
        self._tracker_args = (iou_threshold, max_age_s, max_jump, high_score)
        self._trackers: dict[str, PersonTracker] = {}
        self._cache: dict[str, dict[int, FrameScene]] = {}

    def forget(self, camera: str) -> None:
        """The camera's stream ended: drop its cached frames and its tracks."""
        self._cache.pop(camera, None)
        self._trackers.pop(camera, None)
        self._flows.pop(camera, None)

    def motion_of(self, window: Window) -> MotionSummary | None:
        """Flow between each pair of consecutive sampled frames (each pair computed once, shared
        by overlapping windows), summarised for the window."""
        if self.motion is None:
            return None
        flows = self._flows.setdefault(window.camera, {})
        pairs = []
        for a, b in zip(window.frames, window.frames[1:]):
            if (a.seq, b.seq) not in flows:
                flows[(a.seq, b.seq)] = self.motion.pair(a.image, b.image, b.ts - a.ts)
            pairs.append(flows[(a.seq, b.seq)])
        first = window.frames[0].seq if window.frames else None
        for key in [k for k in flows if first is None or k[0] < first]:
            del flows[key]     # later windows start later: they never need these pairs again
        h = window.frames[0].image.shape[0] if window.frames else 1
        return self.motion.summarise(pairs, h)

    def analyse(self, window: Window) -> dict[int, FrameScene]:
        """Per-frame results for the window's frames (seq -> FrameScene), computing only new ones."""
        cache = self._cache.setdefault(window.camera, {})
        tracker = self._trackers.setdefault(window.camera, PersonTracker(*self._tracker_args))
        new = [f for f in window.frames if f.seq not in cache]
        if new:
            images = [f.image for f in new]
            dets = self.detector.detect(images)
            poses = self.pose.estimate(images, [d.boxes for d in dets])
            for f, d, kp in zip(new, dets, poses):   # frames arrive in time order: track in order
                cache[f.seq] = FrameScene(f.ts, d.boxes, d.scores, tracker.update(d.boxes, f.ts, d.scores), kp)
        for seq in [s for s, fs in cache.items() if fs.ts < window.start]:
            del cache[seq]       # later windows start later: they never need these frames again
        return {f.seq: cache[f.seq] for f in window.frames}

    def build(self, window: Window) -> SceneGraph:
        t0 = time.perf_counter()
        scenes = self.analyse(window)
        T = len(window.frames)
        ids = sorted({int(i) for s in scenes.values() for i in s.track_ids} - {0})   # 0: a weak, untracked detection
        tracks = []
        for tid in ids:
            present = np.zeros(T, bool)
            boxes = np.full((T, 4), np.nan, np.float32)
            scores = np.zeros(T, np.float32)
            kps = np.zeros((T, 17, 3), np.float32)
            for t, f in enumerate(window.frames):
                s = scenes[f.seq]
                hit = np.flatnonzero(s.track_ids == tid)
                if len(hit):
                    present[t], boxes[t], scores[t], kps[t] = True, s.boxes[hit[0]], s.scores[hit[0]], s.keypoints[hit[0]]
            tracks.append(PersonTrack(tid, present, boxes, scores, kps))
        h, w = window.frames[0].image.shape[:2] if T else (0, 0)
        return SceneGraph(
            camera=window.camera, window_id=window.window_id, start=window.start, end=window.end,
            timestamps=np.array([f.ts for f in window.frames], np.float64),
            walls=np.array([f.wall for f in window.frames], np.float64),
            frame_size=(w, h), tracks=tuple(tracks),
            latency_ms={"scene": (time.perf_counter() - t0) * 1000.0}, final=window.final,
            gaps=window.gaps, wall_start=window.wall_start, wall_end=window.wall_end, motion=self.motion_of(window),
            relations=self._relations(tracks, np.array([f.ts for f in window.frames])))

    def _relations(self, tracks: list[PersonTrack], ts: np.ndarray) -> tuple:
        """Per sampled frame, the triples between the people present (feet velocity from the
        track's neighbouring frames)."""
        if self.relations is None:
            return ()
        out = []
        for t in range(len(ts)):
            here = [tr for tr in tracks if tr.present[t]]
            vel = np.zeros((len(here), 2), np.float32)
            for k, tr in enumerate(here):
                seen = np.flatnonzero(tr.present)
                a, b = seen[seen < t], seen[seen > t]
                i, j = (a[-1] if len(a) else t), (b[0] if len(b) else t)
                if j > i:
                    vel[k] = (feet(tr.boxes[j]) - feet(tr.boxes[i])) / (ts[j] - ts[i])
            out.append(tuple(self.relations.frame(np.array([tr.track_id for tr in here]),
                                                  np.array([tr.boxes[t] for tr in here]).reshape(-1, 4), vel,
                                                  np.array([tr.keypoints[t] for tr in here]).reshape(-1, 17, 3))))
        return tuple(out)

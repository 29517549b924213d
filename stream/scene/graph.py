"""Build windows' SceneGraphs: people, poses, tracks, relations and motion for every sampled frame.

Overlapping windows share frames; each frame is analysed once (a small per-camera cache). The new
frames of all windows in a batch, from any number of cameras, go through the models together: the
detector (or a bottom-up pose model) in batches of frames, the pose model in batches of crops."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from stream.scene.kinematics import feet
from stream.scene.motion import MotionExtractor, MotionSummary, PairMotion
from stream.scene.pose import PeopleFinder
from stream.scene.relations import GeometricRelations
from stream.scene.tracking import PersonTracker
from stream.types import PersonTrack, SceneGraph, Window


@dataclass(frozen=True)
class FrameScene:
    ts: float
    boxes: np.ndarray       # (P, 4)
    scores: np.ndarray      # (P,)
    track_ids: np.ndarray   # (P,)
    keypoints: np.ndarray   # (P, 17, 3)
    thumb: np.ndarray | None = None   # (h, w, 3) the model's small copy of the frame


THUMB_SIZE = (64, 48)      # (width, height) of the frames the Hawkeye model sees (HawkeyeConfig.thumb_size)


class SceneBuilder:
    def __init__(self, people: PeopleFinder, *, iou_threshold: float = 0.3,
                 max_age_s: float = 2.0, max_jump: float = 0.6, high_score: float = 0.5,
                 motion: MotionExtractor | None = None, relations: GeometricRelations | None = None,
                 thumb_size: tuple[int, int] | None = None):
        self.people, self.motion, self.relations = people, motion, relations
        self.thumb_size = thumb_size
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

    def new_frames(self, window: Window) -> int:
        """How many of the window's frames the models have not seen yet."""
        cache = self._cache.get(window.camera, {})
        return sum(f.seq not in cache for f in window.frames)

    def analyse(self, windows: list[Window]) -> list[dict[int, FrameScene]]:
        """Per window, the results for its frames (seq -> FrameScene), computing only new ones, all
        cameras' new frames in one pass through the models."""
        todo: dict[tuple[str, int], object] = {}
        for w in windows:
            cache = self._cache.setdefault(w.camera, {})
            todo.update({(w.camera, f.seq): f for f in w.frames if f.seq not in cache})
        if todo:
            found = self.people.find([f.image for f in todo.values()])
            for ((camera, seq), f), p in zip(todo.items(), found):   # a camera's frames come in time order
                tracker = self._trackers.setdefault(camera, PersonTracker(*self._tracker_args))
                thumb = cv2.resize(f.image, self.thumb_size, interpolation=cv2.INTER_AREA) if self.thumb_size else None
                self._cache[camera][seq] = FrameScene(f.ts, p.boxes, p.scores,
                                                      tracker.update(p.boxes, f.ts, p.scores), p.keypoints, thumb)
        out = [{f.seq: self._cache[w.camera][f.seq] for f in w.frames} for w in windows]
        for camera in {w.camera for w in windows}:
            start = max(w.start for w in windows if w.camera == camera)
            cache = self._cache[camera]
            for seq in [s for s, fs in cache.items() if fs.ts < start]:
                del cache[seq]       # later windows start later: they never need these frames again
        return out

    def build(self, window: Window) -> SceneGraph:
        return self.build_many([window])[0]

    def build_many(self, windows: list[Window]) -> list[SceneGraph]:
        """Scene graphs for windows from any cameras, in order; each reports the batch's time as
        its scene latency (every window in the batch waited for all of it)."""
        t0 = time.perf_counter()
        scenes = self.analyse(windows)
        graphs = [self._graph(w, s) for w, s in zip(windows, scenes)]
        ms = (time.perf_counter() - t0) * 1000.0
        return [replace(g, latency_ms={"scene": ms}) for g in graphs]

    def _graph(self, window: Window, scenes: dict[int, FrameScene]) -> SceneGraph:
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
        ts = np.array([f.ts for f in window.frames], np.float64)
        motion = self.motion_of(window)
        return SceneGraph(
            camera=window.camera, window_id=window.window_id, start=window.start, end=window.end, timestamps=ts,
            walls=np.array([f.wall for f in window.frames], np.float64), frame_size=(w, h), tracks=tuple(tracks),
            latency_ms={}, final=window.final, gaps=window.gaps, wall_start=window.wall_start,
            wall_end=window.wall_end, motion=motion, relations=self._relations(tracks, ts),
            **self._thumbs(scenes, window, motion))

    def _thumbs(self, scenes: dict[int, FrameScene], window: Window, motion: MotionSummary | None) -> dict:
        """The model's compact view of the frames: small copies (kilobytes, so the scene -> model
        hop never carries frames), and Hawk's motion frames, the copy blacked out where nothing
        moved since the previous sampled frame (the first frame uses the first pair's mask)."""
        if self.thumb_size is None or not window.frames:
            return {}
        thumbs = np.stack([scenes[f.seq].thumb for f in window.frames])   # made once per frame, in analyse
        if motion is None or len(motion.masks) == 0:
            return {"thumbs": thumbs, "motion_thumbs": np.zeros_like(thumbs)}
        masks = np.concatenate([motion.masks[:1], motion.masks])
        moving = np.stack([cv2.resize(m.astype(np.uint8), self.thumb_size, interpolation=cv2.INTER_NEAREST)
                           for m in masks])
        return {"thumbs": thumbs, "motion_thumbs": thumbs * moving[..., None]}

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


def scene_from_config(cfg, *, thumbs: bool | None = None) -> SceneBuilder:
    """The scene stage a HawkwatchConfig describes: engines loaded, pose model checked against its
    declared input (a mismatch is a ConfigError naming both). Thumbnails for the model are made
    when the detector is the Hawkeye model (or `thumbs` says so)."""
    from engines import create_engine, onnx_input_shapes
    from stream.config import ConfigError
    from stream.scene.people import PersonDetector
    from stream.scene.pose import BottomUp, PoseEstimator, TopDown, resolve_input

    m, p = cfg.models, cfg.models.pose

    def engine(path):
        return create_engine(m.backend, path, threads=m.threads, options=m.engine_options(), fallback=m.fallback)
    try:
        spec = resolve_input(p.decoder, next(iter(onnx_input_shapes(p.path).values()), None), size=p.input_size,
                             layout=p.layout, channels=p.channels, mean=p.mean, std=p.std, model_name=str(p.path))
    except ValueError as e:
        raise ConfigError(f"models.pose: {e}") from None
    if p.top_down:
        d = m.person_detector
        people = TopDown(PersonDetector(engine(d.path), score_threshold=d.score_threshold, nms_iou=d.nms_iou,
                                        max_people=d.max_people, max_batch=m.max_batch),
                         PoseEstimator(engine(p.path), decoder=p.decoder, spec=spec,
                                       presence_threshold=p.presence_threshold, crop_scale=p.crop_scale,
                                       min_box_height=p.min_box_height, max_batch=m.max_batch,
                                       simcc_split_ratio=p.simcc_split_ratio))
    else:
        people = BottomUp(engine(p.path), decoder=p.decoder, spec=spec, score_threshold=p.score_threshold,
                          nms_iou=p.nms_iou, max_batch=m.max_batch, peak_threshold=p.peak_threshold,
                          tag_threshold=p.tag_threshold)
    motion = MotionExtractor(cfg.motion.width, cfg.motion.min_speed) if cfg.motion.enabled else None
    t = cfg.tracking
    if thumbs is None:
        thumbs = cfg.detector.name == "hawkeye"
    return SceneBuilder(people, iou_threshold=t.iou_threshold, max_age_s=t.max_age_s, max_jump=t.max_jump,
                        high_score=t.high_score, motion=motion, relations=GeometricRelations(),
                        thumb_size=THUMB_SIZE if thumbs else None)

"""Build windows' SceneGraphs: people, poses, tracks (with dwell), left objects, relations and
motion for every sampled frame.

Overlapping windows share frames; each frame is analysed once (a small per-camera cache). The new
frames of all windows in a batch, from any number of cameras, go through the models together: the
detector (or a bottom-up pose model) in batches of frames, the pose model in batches of crops."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np

from stream.scene.appearance import AppearanceEncoder
from stream.scene.decoders import People
from stream.scene.kinematics import KIN, PersonKinematics, feet
from stream.scene.motion import MotionExtractor, PairMotion
from stream.scene.named_objects import NamedObjectDetector
from stream.scene.objects import LeftObjects
from stream.scene.pose import PeopleFinder, PoseRefresh, TopDown
from stream.scene.relations import GeometricRelations
from stream.scene.tracking import PersonTracker
from stream.types import PersonTrack, SceneGraph, Window


@dataclass(frozen=True)
class FrameScene:
    """Everything the scene stage knows about one sampled frame. It does not depend on the window
    the frame is seen in, so overlapping windows share it, and training stores it (training/features.py)."""
    ts: float
    boxes: np.ndarray       # (P, 4)
    scores: np.ndarray      # (P,)
    track_ids: np.ndarray   # (P,)
    keypoints: np.ndarray   # (P, 17, 3)
    dwell: np.ndarray | None = None          # (P,) seconds each person has stayed where they stand
    kinematics: np.ndarray | None = None     # (P, KIN) how each person moves and stands (kinematics.KINEMATICS)
    objects: np.ndarray | None = None        # (M, 6) left objects: x0, y0, x1, y1, seconds there, id
    named: np.ndarray | None = None          # (K, 6) named objects: x0, y0, x1, y1, score, VG150 class
    thumb: np.ndarray | None = None          # (h, w, 3) the model's small copy of the frame
    motion_thumb: np.ndarray | None = None   # the same, blacked out where nothing moved since the previous frame
    flow: PairMotion | None = None           # flow from the camera's previous sampled frame (None for its first)
    appearance: np.ndarray | None = None     # (1 + P, 1280) float16 pretrained features (scene/appearance.py): the
                                             # whole frame, then each person in `boxes` order ((1, 1280): frame only)


class StillFrames:
    """Which frames need no search for people: nothing in them moved since the camera's previous
    sampled frame (less than `min_moving` of the frame, by the flow's mask), and the camera's
    people were searched for less than `every_s` ago. Such a frame keeps the last people found,
    their boxes, tracks and poses, so a quiet camera costs its flow and little else (Frigate's
    way: the detector runs where there is motion). The search every `every_s` finds whoever came
    in too slowly to show as motion, and lets a track that the detector lost end."""

    def __init__(self, every_s: float = 4.0, min_moving: float = 0.0005):
        self.every_s, self.min_moving = every_s, min_moving
        self._searched: dict[str, float] = {}    # per camera: when its people were last searched for

    def check(self, camera: str, ts: float, flow: PairMotion | None) -> bool:
        """True: the frame at `ts` keeps the camera's last people. Call for a camera's frames in time order."""
        last = self._searched.get(camera)
        still = flow is not None and last is not None and 0.0 <= ts - last < self.every_s \
            and float(flow.mask.mean()) < self.min_moving
        if not still:
            self._searched[camera] = ts
        return still

    def forget(self, camera: str) -> None:
        self._searched.pop(camera, None)


THUMB_SIZE = (64, 48)      # (width, height) of the frames the Hawkeye model sees (HawkeyeConfig.thumb_size)


class SceneBuilder:
    def __init__(self, people: PeopleFinder, *, iou_threshold: float = 0.3,
                 max_age_s: float = 2.0, max_jump: float = 0.6, high_score: float = 0.5, max_speed: float = 3.5,
                 motion: MotionExtractor | None = None, relations: GeometricRelations | None = None,
                 thumb_size: tuple[int, int] | None = None, objects: Callable[[], LeftObjects] | None = None,
                 named: NamedObjectDetector | None = None, named_every_s: float = 0.0,
                 appearance: AppearanceEncoder | None = None, appearance_crops: bool = True, pose_every: int = 1,
                 still: StillFrames | None = None):
        self.people, self.motion, self.relations = people, motion, relations
        # frames where nothing moves keep the camera's last people (needs `motion`); None: every frame is searched
        self.still = still if motion is not None else None
        self._people_last: dict[str, People] = {}     # per camera: the people of its last analysed frame
        # a top-down pose model runs on a tracked person at most every `pose_every` sampled frames (PoseRefresh)
        self.refresh = PoseRefresh(pose_every) if isinstance(people, TopDown) else None
        self.appearance, self.appearance_crops = appearance, appearance_crops   # None: no pretrained features
        self.objects = objects          # makes a camera's left-object finder; None: no objects
        self.named, self.named_every_s = named, named_every_s    # the COCO detector; None: no named objects
        self._named_last: dict[str, tuple[float, np.ndarray]] = {}   # per camera: when it last ran, what it found
        self.thumb_size = thumb_size
        self._tracker_args = (iou_threshold, max_age_s, max_jump, high_score, max_speed)
        self._trackers: dict[str, PersonTracker] = {}
        self._finders: dict[str, LeftObjects] = {}
        self._kinematics: dict[str, PersonKinematics] = {}
        self._last: dict[str, tuple[float, np.ndarray]] = {}      # per camera: the last analysed frame (ts, motion's grey copy)
        self._cache: dict[str, dict[int, FrameScene]] = {}
        self._person_default, self._person_floor, self._person_scores = 0.0, 0.0, {}   # see person_scores

    def person_scores(self, default: float, cameras: dict[str, float], floor: float | None = None) -> list[str]:
        """Each camera's minimum person score (`default` for the others); the models find people
        down to `floor` (set once, when they are built). Returns the cameras asking for less than
        that floor: they get the floor until the models are built again (a restart)."""
        if floor is not None:
            self._person_floor = floor
        self._person_default, self._person_scores = default, dict(cameras)
        return sorted(cam for cam, v in cameras.items() if v < self._person_floor)

    def pose_every(self, default: int, cameras: dict[str, int]) -> None:
        """How often a tracked person gets a new pose (in sampled frames): `default`, and each
        camera's own in `cameras`. Applies from the next frame on."""
        if self.refresh is not None:
            self.refresh.every, self.refresh.cameras = default, dict(cameras)

    def _people_of(self, camera: str, found: People) -> People:
        threshold = self._person_scores.get(camera, self._person_default)
        if threshold <= self._person_floor:
            return found
        keep = found.scores >= threshold
        return People(found.boxes[keep], found.scores[keep], found.keypoints[keep])

    def forget(self, camera: str) -> None:
        """The camera's stream ended: drop its cached frames, its tracks and its last frame."""
        self._cache.pop(camera, None)
        self._trackers.pop(camera, None)
        self._finders.pop(camera, None)
        self._kinematics.pop(camera, None)
        self._named_last.pop(camera, None)
        self._last.pop(camera, None)
        self._people_last.pop(camera, None)
        if self.still is not None:
            self.still.forget(camera)
        if self.refresh is not None:
            self.refresh.forget(camera)

    def new_frames(self, window: Window) -> int:
        """How many of the window's frames the models have not seen yet."""
        cache = self._cache.get(window.camera, {})
        return sum(f.seq not in cache for f in window.frames)

    def analyse(self, windows: list[Window]) -> list[list[FrameScene]]:
        """Per window, the FrameScenes of its frames, computing only new ones, all cameras' new
        frames in one pass through the models."""
        todo: dict[tuple[str, int], object] = {}
        for w in windows:
            cache = self._cache.setdefault(w.camera, {})
            todo.update({(w.camera, f.seq): f for f in w.frames if f.seq not in cache})
        if todo:
            keys, frames = list(todo), list(todo.values())     # a camera's frames come in time order
            images = [f.image for f in frames]
            pixels = [self._pixels(camera, f.ts, im) for (camera, _), f, im in zip(keys, frames, images)]
            still = [False] * len(frames) if self.still is None else \
                [self.still.check(camera, f.ts, px["flow"]) for (camera, _), f, px in zip(keys, frames, pixels)]
            found = self._find_people(keys, images, still)
            named = self._find_named(todo)
            features = self._describe(frames, found)
            tracked = []
            for (camera, _), f, p in zip(keys, frames, found):
                tracker = self._trackers.setdefault(camera, PersonTracker(*self._tracker_args))
                ids = tracker.update(p.boxes, f.ts, p.scores)
                objects = None
                if self.objects is not None:
                    if camera not in self._finders:
                        self._finders[camera] = self.objects()
                    objects = self._finders[camera].update(f.image, f.ts, p.boxes)
                tracked.append((ids, tracker.dwell(), objects))
            if self.refresh is not None:
                found = self._poses(keys, frames, found, [ids for ids, _, _ in tracked], still)
            for (camera, seq), f, p, (ids, dwell, objects), a, px in zip(keys, frames, found, tracked, features, pixels):
                kin = self._kinematics.setdefault(camera, PersonKinematics()).update(f.ts, ids, p.boxes, p.keypoints,
                                                                                     dwell)
                self._cache[camera][seq] = FrameScene(f.ts, p.boxes, p.scores, ids, p.keypoints, dwell, kin,
                                                      objects, named.get((camera, seq)), **px, appearance=a)
        out = [[self._cache[w.camera][f.seq] for f in w.frames] for w in windows]
        for camera in {w.camera for w in windows}:
            start = max(w.start for w in windows if w.camera == camera)
            cache = self._cache[camera]
            for seq in [s for s, fs in cache.items() if fs.ts < start]:
                del cache[seq]       # later windows start later: they never need these frames again
        return out

    def _find_people(self, keys: list, images: list[np.ndarray], still: list[bool]) -> list[People]:
        """The people of each new frame: found by the models in one batch, except on a still frame,
        which keeps its camera's last ones (its frames come in time order, the first never still)."""
        search = [im for im, s in zip(images, still) if not s]
        if not search:
            found = []
        elif self.refresh is None:
            found = self.people.find(search)
        else:
            found = self.people.find(search, poses=False)
        found, out = iter(found), []
        for (camera, _), s in zip(keys, still):
            if not s:
                self._people_last[camera] = self._people_of(camera, next(found))
            out.append(self._people_last[camera])
        return out

    def _poses(self, keys: list, frames: list, found: list[People], ids: list[np.ndarray],
               still: list[bool]) -> list[People]:
        """The tracked people's keypoints (self.refresh): new poses for those due, in one batch. A
        still frame keeps its camera's last frame's keypoints whole (its boxes are that frame's)."""
        due = [np.zeros(len(p.boxes), bool) if s else self.refresh.plan(camera, i, p.boxes)
               for (camera, _), i, p, s in zip(keys, ids, found, still)]
        posed = self.people.pose.estimate([f.image for f in frames], [p.boxes[d] for p, d in zip(found, due)])
        out, last = [], {}
        for (camera, _), i, p, d, k, s in zip(keys, ids, found, due, posed, still):
            if s:           # its camera's previous frame's, posed in this batch, or its own from the last batch
                p = last.get(camera, p)
            else:
                full = np.zeros((len(p.boxes), 17, 3), np.float32)
                full[d] = k
                p = People(p.boxes, p.scores, self.refresh.fill(camera, i, p.boxes, d, full))
            last[camera] = p
            out.append(p)
        self._people_last.update(last)
        return out

    def _describe(self, frames: list, found: list) -> list:
        """Pretrained features of the new frames (and of their people), one batched pass."""
        if self.appearance is None:
            return [None] * len(frames)
        return self.appearance.describe([f.image for f in frames],
                                        [p.boxes for p in found] if self.appearance_crops else None)

    def _find_named(self, todo: dict) -> dict:
        """Named objects of the new frames, the detector run (in one batch) on each camera's frames
        at most once every `named_every_s`; the frames between reuse the last result."""
        if self.named is None:
            return {}
        due, last = [], dict(self._named_last)
        for (camera, seq), f in todo.items():
            if camera not in last or f.ts - last[camera][0] >= self.named_every_s or f.ts < last[camera][0]:
                due.append((camera, seq))
                last[camera] = (f.ts, None)
        found = dict(zip(due, self.named.detect([todo[k].image for k in due])))
        out = {}
        for (camera, seq), f in todo.items():
            if (camera, seq) in found:
                self._named_last[camera] = (f.ts, found[(camera, seq)])
            out[(camera, seq)] = self._named_last[camera][1]
        return out

    def _pixels(self, camera: str, ts: float, image: np.ndarray) -> dict:
        """What a frame's pixels give besides people: flow from the camera's previous sampled frame,
        and the model's thumbnails (Hawk's motion frame: the thumbnail where that flow moves)."""
        last = self._last.get(camera)
        grey = self.motion.grey(image) if self.motion else None
        self._last[camera] = (ts, grey)
        flow = self.motion.pair_grey(last[1], grey, ts - last[0], image.shape[:2]) \
            if self.motion and last and ts > last[0] else None
        if self.thumb_size is None:
            return {"flow": flow}
        thumb = cv2.resize(image, self.thumb_size, interpolation=cv2.INTER_AREA)
        moving = np.zeros(thumb.shape[:2], np.uint8) if flow is None else \
            cv2.resize(flow.mask.astype(np.uint8), self.thumb_size, interpolation=cv2.INTER_NEAREST)
        return {"flow": flow, "thumb": thumb, "motion_thumb": thumb * moving[..., None]}

    def build(self, window: Window) -> SceneGraph:
        return self.build_many([window])[0]

    def build_many(self, windows: list[Window]) -> list[SceneGraph]:
        """Scene graphs for windows from any cameras, in order; each reports the batch's time as
        its scene latency (every window in the batch waited for all of it)."""
        t0 = time.perf_counter()
        graphs = [self.graph(w, frames) for w, frames in zip(windows, self.analyse(windows))]
        ms = (time.perf_counter() - t0) * 1000.0
        return [replace(g, latency_ms={"scene": ms}) for g in graphs]

    def graph(self, window: Window, frames: list[FrameScene]) -> SceneGraph:
        """The window's SceneGraph from its frames' FrameScenes (from `analyse`)."""
        h, w = window.frames[0].image.shape[:2] if window.frames else (0, 0)
        return assemble(window, frames, np.array([f.wall for f in window.frames], np.float64), (w, h),
                        relations=self.relations, motion=self.motion)


def assemble(window: Window, frames: list[FrameScene], walls: np.ndarray, frame_size: tuple[int, int], *,
             relations: GeometricRelations | None, motion: MotionExtractor | None) -> SceneGraph:
    """A window's SceneGraph from its frames' FrameScenes: tracks through the window, relations
    between the people of each frame, the motion summary and the thumbnails. Only the window's
    metadata is read from `window` (training passes one without frames)."""
    T = len(frames)
    ids = sorted({int(i) for s in frames for i in s.track_ids} - {0})   # 0: a weak, untracked detection
    crops = bool(frames) and all(s.appearance is not None and len(s.appearance) == len(s.boxes) + 1 for s in frames)
    tracks = []
    for tid in ids:
        present = np.zeros(T, bool)
        boxes = np.full((T, 4), np.nan, np.float32)
        scores = np.zeros(T, np.float32)
        kps = np.zeros((T, 17, 3), np.float32)
        dwell = np.zeros(T, np.float32)
        kin = np.zeros((T, KIN), np.float32)
        look = np.zeros((T, frames[0].appearance.shape[1]), np.float16) if crops else None
        for t, s in enumerate(frames):
            hit = np.flatnonzero(s.track_ids == tid)
            if len(hit):
                present[t], boxes[t], scores[t], kps[t] = True, s.boxes[hit[0]], s.scores[hit[0]], s.keypoints[hit[0]]
                dwell[t] = s.dwell[hit[0]] if s.dwell is not None else 0.0
                if s.kinematics is not None:
                    kin[t] = s.kinematics[hit[0]]
                if look is not None:
                    look[t] = s.appearance[1 + hit[0]]
        tracks.append(PersonTrack(tid, present, boxes, scores, kps, dwell, kin, look))
    ts = np.array([f.ts for f in frames], np.float64)
    objects = tuple(f.objects if f.objects is not None else np.zeros((0, 6), np.float32) for f in frames)
    named = tuple(f.named if f.named is not None else np.zeros((0, 6), np.float32) for f in frames)
    summary = None
    if motion is not None:        # the flows between the window's consecutive frames
        summary = motion.summarise([f.flow for f in frames[1:] if f.flow is not None], max(frame_size[1], 1))
    pictures = {}           # what the model sees of the frames: thumbnails, pretrained features
    if frames and all(f.appearance is not None for f in frames):
        pictures["appearance"] = np.stack([f.appearance[0] for f in frames])
    if frames and frames[0].thumb is not None:
        pictures |= {"thumbs": np.stack([f.thumb for f in frames]), "motion_thumbs": np.stack([f.motion_thumb for f in frames])}
    return SceneGraph(
        camera=window.camera, window_id=window.window_id, start=window.start, end=window.end, timestamps=ts,
        walls=walls, frame_size=frame_size, tracks=tuple(tracks), latency_ms={}, final=window.final, gaps=window.gaps,
        wall_start=window.wall_start, wall_end=window.wall_end, motion=summary, objects=objects, named=named,
        relations=frame_relations(relations, tracks, ts, objects, named) if relations else (),
        sensors=tuple(f.sensor for f in window.frames) if any(f.sensor is not None for f in window.frames) else (), **pictures)


def frame_relations(relations: GeometricRelations, tracks: list[PersonTrack], ts: np.ndarray,
                    objects: tuple[np.ndarray, ...] = (), named: tuple[np.ndarray, ...] = ()) -> tuple:
    """Per sampled frame, the triples between the people present (feet velocity from the track's
    neighbouring frames in the window), the named objects and the left objects."""
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
        out.append(tuple(relations.frame(np.array([tr.track_id for tr in here]),
                                         np.array([tr.boxes[t] for tr in here]).reshape(-1, 4), vel,
                                         np.array([tr.keypoints[t] for tr in here]).reshape(-1, 17, 3),
                                         objects=objects[t] if t < len(objects) else None,
                                         named=named[t] if t < len(named) else None)))
    return tuple(out)


def pose_every_of(cfg) -> tuple[int, dict[str, int]]:
    """How often a tracked person gets a new pose: for cameras that do not set it, and for each that does."""
    return cfg.models.pose.every_frames, {cam: c.pose_every_frames for cam, c in cfg.cameras.items()
                                          if c.pose_every_frames is not None}


def person_scores_of(cfg) -> tuple[float, dict[str, float]]:
    """The minimum person score of cameras that do not set their own, and each one's that does."""
    p = cfg.models.pose
    default = cfg.models.person_detector.score_threshold if p.top_down else p.score_threshold
    return default, {cam: c.person_score_threshold for cam, c in cfg.cameras.items()
                     if c.person_score_threshold is not None}


def scene_from_config(cfg, *, thumbs: bool | None = None) -> SceneBuilder:
    """The scene stage a HawkwatchConfig describes: engines loaded, pose model checked against its
    declared input (a mismatch is a ConfigError naming both). Thumbnails for the model are made
    when the detector is the Hawkeye model (or `thumbs` says so)."""
    from engines import create_engine, onnx_input_shapes
    from stream.config import ConfigError
    from stream.scene.people import PersonDetector
    from stream.scene.pose import BottomUp, PoseEstimator, TopDown, resolve_input

    m, p = cfg.models, cfg.models.pose

    def loaded(key: str, path, load):
        """`load()`, or a ConfigError naming the setting and the file that does not load."""
        try:
            return load()
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - any reason a model file does not load is the config's
            raise ConfigError(f"{key}: {path} does not load as a model: {type(e).__name__}: {e}") from None

    def engine(key: str, path):
        return loaded(key, path, lambda: create_engine(m.backend, path, threads=m.threads,
                                                       options=m.engine_options(), fallback=m.fallback))

    def input_shape(key: str, path):
        return next(iter(loaded(key, path, lambda: onnx_input_shapes(path)).values()), None)
    pose_input = input_shape("models.pose.path", p.path)
    try:
        spec = resolve_input(p.decoder, pose_input, size=p.input_size,
                             layout=p.layout, channels=p.channels, mean=p.mean, std=p.std, model_name=str(p.path))
    except ValueError as e:
        raise ConfigError(f"models.pose: {e}") from None
    default_score, person_scores = person_scores_of(cfg)
    floor = min([default_score, *person_scores.values()])     # the models find down to the lowest camera's
    if p.top_down:
        d = m.person_detector
        shape = input_shape("models.person_detector.path", d.path)
        size = shape[1] if shape and len(shape) == 4 and isinstance(shape[1], int) else 300   # NHWC input
        people = TopDown(PersonDetector(engine("models.person_detector.path", d.path),
                                        score_threshold=floor, nms_iou=d.nms_iou,
                                        max_people=d.max_people, max_batch=m.max_batch, size=size,
                                        class_index=d.class_index, tiles=d.tiles),
                         PoseEstimator(engine("models.pose.path", p.path), decoder=p.decoder, spec=spec,
                                       presence_threshold=p.presence_threshold, crop_scale=p.crop_scale,
                                       min_box_height=p.min_box_height, max_batch=m.max_batch,
                                       simcc_split_ratio=p.simcc_split_ratio))
    else:
        people = BottomUp(engine("models.pose.path", p.path), decoder=p.decoder, spec=spec,
                          score_threshold=floor,
                          nms_iou=p.nms_iou, max_batch=m.max_batch, peak_threshold=p.peak_threshold,
                          tag_threshold=p.tag_threshold)
    motion = MotionExtractor(cfg.motion.width, cfg.motion.min_speed) if cfg.motion.enabled else None
    o = cfg.objects
    objects = (lambda: LeftObjects(o.width, o.history_s, o.still_s, o.threshold, max_unseen_s=o.max_unseen_s)) \
        if o.enabled else None
    named = None
    if o.named is not None:
        named = NamedObjectDetector(engine("objects.named.path", o.named.path),
                                    score_threshold=o.named.score_threshold,
                                    nms_iou=o.named.nms_iou, max_batch=m.max_batch)
    t = cfg.tracking
    if thumbs is None:
        thumbs = cfg.detector.name == "hawkeye"
    a = m.appearance
    scene = SceneBuilder(people, iou_threshold=t.iou_threshold, max_age_s=t.max_age_s, max_jump=t.max_jump,
                         high_score=t.high_score, max_speed=t.max_speed, motion=motion, relations=GeometricRelations(),
                         thumb_size=THUMB_SIZE if thumbs else None, objects=objects, named=named,
                         named_every_s=o.named.every_s if o.named is not None else 0.0,
                         appearance=AppearanceEncoder(engine("models.appearance.path", a.path),
                                                      max_batch=m.max_batch) if a else None,
                         appearance_crops=a.crops if a else True,
                         still=StillFrames(cfg.motion.search_every_s, cfg.motion.still_below)
                         if cfg.motion.people_on_motion else None)
    scene.person_scores(default_score, person_scores, floor)
    scene.pose_every(*pose_every_of(cfg))
    return scene

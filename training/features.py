"""Scene features on disk, in Hawkeye's layout, and the windows the stream saw rebuilt from them.

Per video, one file per sampled frame N (N counts the video's decoded frames):

    pose_feat/<video>/frame_N.npy    (P, 17, 5) float32: x, y (pixels), keypoint score, track id, box score
    rel_feat/<video>/frame_N.npy     (K, 353) float32: 51 predicate + 151 subject + 151 object probabilities
    box_feat/<video>/frame_N.npy     (P, 7) float32: x0, y0, x1, y1, score, track id, dwell (s)  (Hawkwatch's)
    obj_feat/<video>/frame_N.npy     (M, 6) float32: left objects x0, y0, x1, y1, seconds there, id (Hawkwatch's)
    kin_feat/<video>/frame_N.npy     (P, KIN) float32: how each person moves and stands, in box_feat's order
                                     (stream/scene/kinematics.py; Hawkwatch's)
    rel_nodes/<video>/frame_N.npy    (K, 2) int64: subject and object entity of each triple (Hawkwatch's)
    thumb_feat/<video>/frame_N.npy   (2, 48, 64, 3) uint8 BGR: the model's frame and motion frame (Hawkwatch's)
    app_feat/<video>/frame_N.npy     (1 + P, 1280) float16: pretrained features of the frame, then of each person
                                     in box_feat's order (stream/scene/appearance.py; only with models.appearance)
    meta/<video>.json                fps, frame size, the sampled frames' stream times, the stream's windows

The first two are Hawkeye's own (its released features load). The others hold what makes the
stream's scene graphs exact: boxes, track ids and dwell (tracks through a window), left objects, people's
motion, entity ids (the relation graph's adjacency), and Hawk's motion frames. Features written before
kin_feat existed (version 2) get it by replaying the stream's own PersonKinematics over the stored frames:
it reads only what box_feat and pose_feat hold, frame after frame, so the values are the stream's. Relations depend on the window
(velocity from neighbouring frames), so windows rebuilt from these files recompute them with the
stream's code; `rel_feat` keeps each frame's triples from the first window that held it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stream.scene.graph import THUMB_SIZE, FrameScene, assemble
from stream.scene.kinematics import KIN, PersonKinematics
from stream.scene.relations import OBJECTS, PREDICATES, ROW, GeometricRelations
from stream.types import SceneGraph, Triple, Window

FEATURE_VERSION = 3        # 2: dwell in box_feat, obj_feat (version 1's six-column boxes still load, without them);
                           # 3: kin_feat (version 2's get it by replay)
KINDS = ("pose_feat", "box_feat", "obj_feat", "kin_feat", "rel_feat", "rel_nodes", "thumb_feat", "app_feat")


class FeatureError(ValueError):
    """A feature file is missing or misshapen; the message names the file and the shape expected."""


def _path(root: Path, kind: str, video: str, frame: int) -> Path:
    return root / kind / video / f"frame_{frame}.npy"


def write_frame(root: Path, video: str, frame: int, scene: FrameScene, rel: np.ndarray, nodes: np.ndarray) -> None:
    """One sampled frame's features (`rel`, `nodes`: its triples' rows and entity ids)."""
    P = len(scene.boxes)
    tid = scene.track_ids.astype(np.float32)
    pose = np.zeros((P, 17, 5), np.float32)
    pose[..., :3] = scene.keypoints
    pose[..., 3] = tid[:, None]
    pose[..., 4] = scene.scores[:, None]
    dwell = np.zeros(P, np.float32) if scene.dwell is None else scene.dwell
    boxes = np.concatenate([scene.boxes.reshape(P, 4), scene.scores.reshape(P, 1), tid.reshape(P, 1),
                            dwell.reshape(P, 1)], 1).astype(np.float32)
    objects = np.zeros((0, 6), np.float32) if scene.objects is None else scene.objects
    arrays = {"pose_feat": pose, "box_feat": boxes, "obj_feat": objects.astype(np.float32),
              "rel_feat": rel.astype(np.float32), "rel_nodes": nodes.astype(np.int64)}
    if scene.kinematics is not None:
        arrays["kin_feat"] = scene.kinematics.astype(np.float32)
    if scene.thumb is not None:
        arrays["thumb_feat"] = np.stack([scene.thumb, scene.motion_thumb])
    if scene.appearance is not None:
        arrays["app_feat"] = scene.appearance.astype(np.float16)
    for kind, a in arrays.items():
        p = _path(root, kind, video, frame)
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, a)


def write_appearance(root: Path, video: str, frame: int, features: np.ndarray) -> None:
    """One sampled frame's pretrained features (for features extracted before they were configured)."""
    p = _path(root, "app_feat", video, frame)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, features.astype(np.float16))


def has_appearance(root: Path, video: str) -> bool:
    """Every sampled frame of an extracted video has its app_feat."""
    meta = json.loads((root / "meta" / f"{video}.json").read_text())
    return all(_path(root, "app_feat", video, int(n)).exists() for n in meta["frames"])


def _load(path: Path, shape: tuple, dtype=None) -> np.ndarray:
    """An array whose shape matches `shape` (None: any length); errors name the file and the shape."""
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    if not path.exists():
        raise FeatureError(f"{path}: missing (expected an array of shape {want})")
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise FeatureError(f"{path}: not a numpy array file ({e}); expected shape {want}") from None
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        raise FeatureError(f"{path}: shape {tuple(a.shape)}, expected {want}")
    if not np.issubdtype(a.dtype, np.number):
        raise FeatureError(f"{path}: dtype {a.dtype} is not numeric")
    return a if dtype is None else a.astype(dtype)


@dataclass
class VideoFeatures:
    """A video's frames as the scene stage saw them, and the windows the stream cut."""
    video: str
    fps: float
    frame_size: tuple[int, int]
    frames: list[int]                       # the sampled frames' numbers
    scenes: list[FrameScene]                # one per sampled frame
    windows: list[tuple[int, float, float, bool, list[int]]]   # (id, start, end, final, frame numbers)
    rel: list[np.ndarray] | None = None     # Hawkeye's rel_feat, when there are no boxes to recompute them
    source: str | None = None               # the video the features came from (extraction records it)

    def scene_graphs(self, relations: GeometricRelations | None = None) -> list[SceneGraph]:
        """The stream's SceneGraph of every window (relations recomputed by the stream's own code,
        or read from rel_feat for Hawkeye's features)."""
        at = {n: i for i, n in enumerate(self.frames)}
        relations = relations or GeometricRelations()
        out = []
        for wid, start, end, final, members in self.windows:
            idx = [at[n] for n in members if n in at]
            scenes = [self.scenes[i] for i in idx]
            ts = np.array([s.ts for s in scenes])
            win = Window(self.video, wid, start, end, (), final=final, wall_start=start, wall_end=end)
            g = assemble(win, scenes, ts, self.frame_size, relations=relations if self.rel is None else None, motion=None)
            if self.rel is not None:
                g = replace(g, relations=tuple(triples_from_rows(self.rel[i]) for i in idx))
            out.append(g)
        return out


def triples_from_rows(rows: np.ndarray) -> tuple[Triple, ...]:
    """Hawkeye's (K, 353) rows -> triples: each part's most likely label; entities are told apart
    by class only (the rows carry no identities)."""
    P, O = len(PREDICATES), len(OBJECTS)
    out = []
    for r in rows:
        pred, sub, obj = (int(np.argmax(part[1:])) + 1 for part in (r[:P], r[P:P + O], r[P + O:]))
        out.append(Triple(sub, sub, pred, 1000 + obj, obj, float(r[pred])))
    return tuple(out)


def write_meta(root: Path, video: str, fps: float, frame_size: tuple[int, int], frames: list[int],
               timestamps: list[float], windows: list[tuple], extra: dict | None = None) -> None:
    p = root / "meta" / f"{video}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {"version": FEATURE_VERSION, "video": video, "fps": fps, "frame_size": list(frame_size),
            "frames": frames, "timestamps": timestamps,
            "windows": [{"id": w[0], "start": w[1], "end": w[2], "final": w[3], "frames": w[4]} for w in windows],
            **(extra or {})}
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta) + "\n")
    tmp.replace(p)                  # written last and atomically: its presence means the video is complete


def has_video(root: Path, video: str) -> bool:
    return (root / "meta" / f"{video}.json").exists()


def hawkeye_meta(root: Path, video: str, fps: float, length_s: float = 4.0, stride_s: float = 2.0) -> dict:
    """Hawkeye's released features have no index: frames from the file names, stream time N / fps,
    windows of `length_s` every `stride_s`."""
    names = sorted((p for p in (root / "pose_feat" / video).glob("frame_*.npy")), key=lambda p: int(p.stem[6:]))
    frames = [int(p.stem[6:]) for p in names]
    if not frames:
        raise FeatureError(f"{root / 'pose_feat' / video}: no frame_N.npy files")
    ts = [n / fps for n in frames]
    end = ts[-1] + 1.0 / fps           # as the stream cuts them: every window that starts before the end
    wins = []
    for k in range(int(math.ceil((end - 1e-6) / stride_s))):
        s, e = k * stride_s, min(k * stride_s + length_s, end)
        wins.append({"id": k, "start": s, "end": e, "final": False,
                     "frames": [n for n, t in zip(frames, ts) if s - 1e-6 <= t < e - 1e-6]})
    wins[-1]["final"] = True
    return {"fps": fps, "frame_size": [1, 1], "frames": frames, "timestamps": ts, "windows": wins}


def read_video(root: Path, video: str, fps: float = 30.0) -> VideoFeatures:
    """A video's features. Hawkwatch's own (with boxes) rebuild the stream's windows exactly;
    Hawkeye's (pose_feat and rel_feat only; `fps` is theirs) give tracks from the pose's track ids
    and use rel_feat as is."""
    root = Path(root)
    meta_path = root / "meta" / f"{video}.json"
    if not meta_path.exists() and (root / "pose_feat" / video).is_dir():
        meta = hawkeye_meta(root, video, fps)
    elif not meta_path.exists():
        raise FeatureError(f"{meta_path}: missing, and no {root / 'pose_feat' / video}; "
                           "run `python -m training.extract` for this video")
    else:
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise FeatureError(f"{meta_path}: not JSON ({e})") from None
    try:
        frames = [int(n) for n in meta["frames"]]
        stamps = [float(t) for t in meta["timestamps"]]
        w, h = (int(v) for v in meta["frame_size"])
        windows = [(int(x["id"]), float(x["start"]), float(x["end"]), bool(x["final"]), [int(n) for n in x["frames"]])
                   for x in meta["windows"]]
        fps = float(meta["fps"])
    except (KeyError, TypeError, ValueError) as e:
        raise FeatureError(f"{meta_path}: not a feature index ({type(e).__name__}: {e})") from None
    if len(frames) != len(stamps):
        raise FeatureError(f"{meta_path}: {len(frames)} frames but {len(stamps)} timestamps")
    own = (root / "box_feat" / video).is_dir()
    replay = PersonKinematics() if own and not (root / "kin_feat" / video).is_dir() else None
    scenes, rel = [], []
    for n, ts in zip(frames, stamps):
        pose = _load(_path(root, "pose_feat", video, n), (None, 17, 5), np.float32)
        extra = {}
        if own:
            boxes = _load(_path(root, "box_feat", video, n), (len(pose), None), np.float32)
            if boxes.shape[1] not in (6, 7):
                raise FeatureError(f"{_path(root, 'box_feat', video, n)}: shape {boxes.shape}, expected ({len(pose)}, 7)")
            if boxes.shape[1] == 7:
                extra["dwell"] = boxes[:, 6].copy()
            op = _path(root, "obj_feat", video, n)
            if op.exists():
                extra["objects"] = _load(op, (None, 6), np.float32)
            extra["kinematics"] = _load(_path(root, "kin_feat", video, n), (len(pose), KIN), np.float32) \
                if replay is None else replay.update(ts, boxes[:, 5].astype(np.int64), boxes[:, :4], pose[..., :3],
                                                     extra.get("dwell"))
        else:   # Hawkeye's: boxes around the keypoints
            kp = pose[..., :2]
            boxes = np.concatenate([kp.min(1), kp.max(1), pose[:, :1, 4], pose[:, :1, 3]], 1) if len(pose) else \
                np.zeros((0, 6), np.float32)
        pictures = {}
        tp = _path(root, "thumb_feat", video, n)
        if tp.exists():
            t = _load(tp, (2, THUMB_SIZE[1], THUMB_SIZE[0], 3), np.uint8)
            pictures = {"thumb": t[0], "motion_thumb": t[1]}
        ap = _path(root, "app_feat", video, n)
        if ap.exists():
            pictures["appearance"] = _load(ap, (None, None), np.float16)
            if len(pictures["appearance"]) not in (1, len(pose) + 1):
                raise FeatureError(f"{ap}: shape {pictures['appearance'].shape}, expected (1 + {len(pose)} people, N) "
                                   "or (1, N)")
        scenes.append(FrameScene(ts, boxes[:, :4].copy(), boxes[:, 4].copy(), boxes[:, 5].astype(np.int64),
                                 pose[..., :3].copy(), **extra, **pictures))
        if not own:
            rel.append(_load(_path(root, "rel_feat", video, n), (None, ROW), np.float32))
    return VideoFeatures(video, fps, (w, h), frames, scenes, windows, None if own else rel, meta.get("source"))


def videos(root: Path) -> list[str]:
    """The videos with features under root (an index, or Hawkeye's pose_feat folders)."""
    root = Path(root)
    return sorted({p.stem for p in (root / "meta").glob("*.json")} | {p.name for p in (root / "pose_feat").glob("*")
                                                                     if p.is_dir()})

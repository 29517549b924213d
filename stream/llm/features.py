"""Scene graphs -> the model's inputs: one clip per second of a window (Hawkeye reasons about
1-second clips), then clips of many windows padded into one ClipBatch.

Per clip: its sampled frames' appearance and motion thumbnails, the skeletons of the
`max_people` people who stand out most in it (fixed slots through the clip; present longest and
fastest first, so a runner among idle bystanders gets a slot), each joint as x, y (fractions of
the frame), score and its velocity (body heights a second, from the person's previous sampled
frame in the window: at 2 frames a second a clip holds two frames, and the velocity is what says
walk from run) and the person's dwell (how long they have stayed where they are, from the
tracker: what tells a loiterer from a passer-by), the same people's kinematics (speed, acceleration,
turn, posture, their nearest neighbour's distance, approach and contact, scattering: scene/kinematics.py)
in units near 1, each frame's `max_triples` strongest relation triples as (K, 353) rows with the
entity ids that make the relation graph's adjacency, and (for a model with `appearance_dim`) the
pretrained features of each frame and of the same people's crops.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from stream.llm.hawkeye import POSE_CHANNELS, ClipBatch, HawkeyeConfig
from stream.scene.kinematics import KIN, KINEMATICS
from stream.scene.relations import ROW, relation_rows
from stream.types import PersonTrack, SceneGraph

_EPS = 1e-6


@dataclass(frozen=True)
class Clip:
    start: float
    end: float
    frames: np.ndarray      # (T, 3, H, W) float32 0..1, RGB
    motion: np.ndarray      # (T, 3, H, W)
    pose: np.ndarray        # (T, P, 17, POSE_CHANNELS) x, y, score, vx, vy, dwell
    people: np.ndarray      # (T, P) bool
    kinematics: np.ndarray  # (T, P, KIN) scaled by KIN_SCALE
    rel: np.ndarray         # (T, K, 353)
    rel_nodes: np.ndarray   # (T, K, 2) int64
    rel_mask: np.ndarray    # (T, K) bool
    appearance: np.ndarray  # (T, 1 + P, A) float16 pretrained features: the frame, then the people's slots


def seconds_of(scene: SceneGraph) -> list[tuple[float, float]]:
    """[start, end) of each second of the window (the last may be shorter)."""
    out, s = [], scene.start
    while s < scene.end - _EPS:
        out.append((s, min(s + 1.0, scene.end)))
        s += 1.0
    return out


def _thumbs(images: np.ndarray | None, idx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if images is None:
        return np.zeros((len(idx), 3, h, w), np.float32)
    sel = images[idx]
    if sel.shape[1:3] != (h, w):
        sel = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in sel]) if len(sel) else \
            np.zeros((0, h, w, 3), np.uint8)
    return np.ascontiguousarray(sel[..., ::-1].transpose(0, 3, 1, 2), np.float32) / 255.0


# each kinematic feature's unit for the model (heights a second / 2, dwell in tens of seconds, counts / 5 or 10)
KIN_SCALE = np.array([{"speed": 2.0, "acceleration": 5.0, "dwell": 10.0, "nearest": 5.0, "approach": 2.0, "neighbours": 5.0,
                       "outward": 2.0, "people": 10.0}.get(k, 1.0) for k in KINEMATICS], np.float32)
MAX_SPEED = 5.0    # body heights a second; faster is a tracking slip, clipped
DWELL_UNIT, MAX_DWELL = 10.0, 3.0   # dwell enters the model in tens of seconds, up to 30 s


def joint_velocity(track: PersonTrack, timestamps: np.ndarray, max_gap_s: float = 1.5) -> np.ndarray:
    """(T, 17, 2) each joint's velocity in body heights a second, from the person's previous
    sampled frame in the window (within `max_gap_s`); 0 where either frame does not know it."""
    T = len(timestamps)
    out = np.zeros((T, 17, 2), np.float32)
    seen = np.flatnonzero(track.present)
    for prev, t in zip(seen[:-1], seen[1:]):
        dt = timestamps[t] - timestamps[prev]
        height = track.boxes[t, 3] - track.boxes[t, 1]
        if not 0 < dt <= max_gap_s or not height > 1:
            continue
        a, b = track.keypoints[prev], track.keypoints[t]
        known = (a[:, 2] > 0) & (b[:, 2] > 0)
        out[t, known] = np.clip((b[known, :2] - a[known, :2]) / dt / height, -MAX_SPEED, MAX_SPEED)
    return out


def clips_of(scene: SceneGraph, cfg: HawkeyeConfig) -> list[Clip]:
    fw, fh = scene.frame_size
    scale = np.array([max(fw, 1), max(fh, 1), 1.0], np.float32)
    P, K = cfg.max_people, cfg.max_triples
    velocity = [joint_velocity(t, scene.timestamps) for t in scene.tracks]
    dwell = [np.zeros(len(scene.timestamps), np.float32) if t.dwell is None else
             np.clip(t.dwell / DWELL_UNIT, 0.0, MAX_DWELL) for t in scene.tracks]
    out = []
    for start, end in seconds_of(scene):
        idx = np.flatnonzero((scene.timestamps >= start - _EPS) & (scene.timestamps < end - _EPS))
        T = len(idx)

        def salience(k: int) -> float:      # frames present, then speed (heights a second, up to 3) and dwell
            t = scene.tracks[k]
            speed = float(np.abs(velocity[k][idx]).max())
            return float(t.present[idx].sum() + min(speed, 3.0) / 3.0 + dwell[k][idx].max() / MAX_DWELL
                         + 0.1 * t.box_scores[idx].mean())

        ranked = sorted(range(len(scene.tracks)), key=lambda k: -salience(k)) if T else []
        pose = np.zeros((T, P, 17, POSE_CHANNELS), np.float32)
        people = np.zeros((T, P), bool)
        kin = np.zeros((T, P, KIN), np.float32)
        for slot, k in enumerate(ranked[:P]):
            track = scene.tracks[k]
            pose[:, slot, :, :3] = track.keypoints[idx] / scale
            pose[:, slot, :, 3:5] = velocity[k][idx]
            pose[:, slot, :, 5] = (dwell[k][idx] * track.present[idx])[:, None]
            people[:, slot] = track.present[idx]
            if track.kinematics is not None:
                kin[:, slot] = np.clip(track.kinematics[idx] / KIN_SCALE, -3.0, 3.0) * track.present[idx, None]
        rel = np.zeros((T, K, ROW), np.float32)
        nodes = np.full((T, K, 2), -2, np.int64)
        rmask = np.zeros((T, K), bool)
        for t, i in enumerate(idx):
            triples = sorted(scene.relations[i], key=lambda r: -r.score)[:K] if i < len(scene.relations) else []
            if triples:
                rel[t, :len(triples)] = relation_rows(triples)
                nodes[t, :len(triples)] = [(r.subject, r.object) for r in triples]
                rmask[t, :len(triples)] = True
        look = np.zeros((T, 1 + P, cfg.appearance_dim), np.float16)
        if cfg.appearance_dim:
            if scene.appearance is None or scene.appearance.shape[1] != cfg.appearance_dim:
                raise ValueError(f"the model reads {cfg.appearance_dim} pretrained appearance features a frame; "
                                 f"the scene graph of {scene.camera} has "
                                 f"{'none' if scene.appearance is None else scene.appearance.shape[1]} "
                                 "(set models.appearance in the config, or extract the features with it)")
            look[:, 0] = scene.appearance[idx]
            for slot, k in enumerate(ranked[:P]):
                track = scene.tracks[k]
                if track.appearance is not None:
                    look[:, 1 + slot] = track.appearance[idx] * track.present[idx, None]
        out.append(Clip(start, end, _thumbs(scene.thumbs, idx, cfg.thumb_size),
                        _thumbs(scene.motion_thumbs, idx, cfg.thumb_size), pose, people, kin, rel, nodes, rmask, look))
    return out


def collate(clips: list[Clip], cfg: HawkeyeConfig) -> ClipBatch:
    """Clips padded to the longest (at least one frame slot, so an empty second still has a token)."""
    B, T = len(clips), max([1, *(len(c.frames) for c in clips)])
    w, h = cfg.thumb_size
    P, K = cfg.max_people, cfg.max_triples
    b = {"frames": np.zeros((B, T, 3, h, w), np.float32), "motion": np.zeros((B, T, 3, h, w), np.float32),
         "frame_mask": np.zeros((B, T), bool), "pose": np.zeros((B, T, P, 17, POSE_CHANNELS), np.float32),
         "people": np.zeros((B, T, P), bool), "kinematics": np.zeros((B, T, P, KIN), np.float32), "rel": np.zeros((B, T, K, ROW), np.float32),
         "rel_nodes": np.full((B, T, K, 2), -2, np.int64), "rel_mask": np.zeros((B, T, K), bool),
         "appearance": np.zeros((B, T, 1 + P, cfg.appearance_dim), np.float32)}
    for i, c in enumerate(clips):
        n = len(c.frames)
        for key, value in (("frames", c.frames), ("motion", c.motion), ("pose", c.pose), ("people", c.people),
                           ("kinematics", c.kinematics), ("rel", c.rel), ("rel_nodes", c.rel_nodes), ("rel_mask", c.rel_mask),
                           ("appearance", c.appearance)):
            b[key][i, :n] = value
        b["frame_mask"][i, :max(n, 1)] = True      # an empty second keeps one (blank) frame: it is still a second
    return ClipBatch(**{k: torch.from_numpy(v) for k, v in b.items()})

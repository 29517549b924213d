"""The kinematic baseline detector: transparent rules over tracks and poses, scored per second.

Five cues, each a logistic ramp around a configured threshold, distances measured in body
heights so they do not depend on distance to the camera:
- running:   ground speed of a person's feet (bottom centre of the box), body heights per second;
- fall:      torso angle from vertical (hip centre -> shoulder centre), from keypoints;
- scuffle:   two people in contact (distance between centres under `scuffle_distance` heights)
             while their wrists move fast relative to their own bodies;
- loitering: how long a person has stayed in place (the tracker's dwell);
- abandoned: how long a left object (stream/scene/objects.py) has been there, while nobody is
             within `abandoned_distance` body heights of it.
A second's score is the highest cue of anyone (or any object) in it; the window's score the highest second.
This detector is kept beside the Hawkeye model as the reference it must beat.
"""
from __future__ import annotations

import time

import numpy as np

from stream.config import BaselineConfig
from stream.scene.kinematics import feet, heights_away, ramp, torso_angles
from stream.types import PersonTrack, SceneGraph, SecondScore, Verdict

CATEGORIES = ("running", "fall", "scuffle", "loitering", "abandoned")
_L_WRIST, _R_WRIST, _L_HIP, _R_HIP = 9, 10, 11, 12
_MIN_KP_SCORE = 0.5


def _heights(track: PersonTrack) -> np.ndarray:
    return track.boxes[:, 3] - track.boxes[:, 1]


def foot_speed(track: PersonTrack, ts: np.ndarray) -> np.ndarray:
    """(T,) body heights per second between each frame and the previous frame it was seen in; 0 at the first."""
    speed = np.zeros(len(ts))
    seen = np.flatnonzero(track.present)
    for a, b in zip(seen[:-1], seen[1:]):
        fa, fb = feet(track.boxes[[a, b]])
        height = max(float(np.nanmean(_heights(track)[[a, b]])), 1.0)
        speed[b] = np.linalg.norm(fb - fa) / height / max(ts[b] - ts[a], 1e-3)
    return speed


def torso_angle(track: PersonTrack) -> np.ndarray:
    """(T,) degrees between the torso and vertical; NaN where the keypoints are not confident."""
    return np.where(track.present, torso_angles(track.keypoints, _MIN_KP_SCORE), np.nan)


def wrist_speed(track: PersonTrack, ts: np.ndarray) -> np.ndarray:
    """(T,) fastest wrist relative to the hip centre, body heights per second."""
    k = track.keypoints
    hips = (k[:, _L_HIP, :2] + k[:, _R_HIP, :2]) / 2
    out = np.zeros(len(ts))
    seen = np.flatnonzero(track.present)
    for a, b in zip(seen[:-1], seen[1:]):
        height = max(float(np.nanmean(_heights(track)[[a, b]])), 1.0)
        best = 0.0
        for w in (_L_WRIST, _R_WRIST):
            if min(k[a, w, 2], k[b, w, 2], k[a, _L_HIP, 2], k[b, _L_HIP, 2]) < _MIN_KP_SCORE:
                continue
            rel = (k[b, w, :2] - hips[b]) - (k[a, w, :2] - hips[a])
            best = max(best, float(np.linalg.norm(rel)) / height / max(ts[b] - ts[a], 1e-3))
        out[b] = best
    return out


def object_ids(scene: SceneGraph) -> list[int]:
    """The ids of the window's left objects, in the order of `abandoned`'s rows."""
    return sorted({int(o[5]) for objs in scene.objects for o in objs})


class BaselineDetector:
    name = "baseline"
    max_batch, max_wait_s = 1, 0.0      # one window at a time: nothing to gain from batching
    explains = talks = False            # its verdicts carry their explanation; it answers no questions

    def __init__(self, cfg: BaselineConfig):
        self.cfg = cfg

    def cues(self, scene: SceneGraph) -> dict[str, np.ndarray]:
        """Per category, a (people, T) score for each track in each sampled frame; `abandoned` is
        (objects, T), one row per left object of the window (`object_ids` names them)."""
        c, ts, tracks = self.cfg, scene.timestamps, scene.tracks
        n, T = len(tracks), len(ts)
        running = np.zeros((n, T))
        fall = np.zeros((n, T))
        scuffle = np.zeros((n, T))
        wrists = np.zeros((n, T))
        loitering = np.zeros((n, T))
        for i, tr in enumerate(tracks):
            running[i] = np.where(tr.present, ramp(foot_speed(tr, ts), c.run_speed, c.softness), 0.0)
            if tr.dwell is not None:
                loitering[i] = np.where(tr.present, ramp(tr.dwell, c.loiter_s, c.softness), 0.0)
            angle = torso_angle(tr)
            fall[i] = np.where(np.isnan(angle), 0.0, ramp(np.nan_to_num(angle), c.fall_angle_deg, c.softness))
            wrists[i] = wrist_speed(tr, ts)
        for t in range(T):   # contact between two people, weighted by how agitated their arms are
            here = [i for i, tr in enumerate(tracks) if tr.present[t]]
            for a in here:
                for b in here:
                    if a >= b:
                        continue
                    ba, bb = tracks[a].boxes[t], tracks[b].boxes[t]
                    height = max((ba[3] - ba[1] + bb[3] - bb[1]) / 2, 1.0)
                    dist = np.hypot((ba[0] + ba[2] - bb[0] - bb[2]) / 2, (ba[1] + ba[3] - bb[1] - bb[3]) / 2) / height
                    if dist < c.scuffle_distance:
                        s = float(ramp(max(wrists[a, t], wrists[b, t]), c.scuffle_limb_speed, c.softness))
                        scuffle[a, t] = max(scuffle[a, t], s)
                        scuffle[b, t] = max(scuffle[b, t], s)
        return {"running": running, "fall": fall, "scuffle": scuffle, "loitering": loitering,
                "abandoned": self.abandoned(scene, object_ids(scene))}

    def abandoned(self, scene: SceneGraph, ids: list[int]) -> np.ndarray:
        """(objects, T): each left object's (of `ids`) time there as a ramp, 0 while someone is near it."""
        c, T = self.cfg, len(scene.timestamps)
        out = np.zeros((len(ids), T))
        for t, objs in enumerate(scene.objects[:T]):
            boxes = [tr.boxes[t] for tr in scene.tracks if tr.present[t]]
            for x0, y0, x1, y1, there, oid in objs:
                if not (heights_away(boxes, ((x0 + x1) / 2, y1)) < c.abandoned_distance).any():
                    out[ids.index(int(oid)), t] = ramp(there, c.abandoned_s, c.softness)
        return out

    def batch(self, scenes: list[SceneGraph]) -> list[Verdict]:
        return [self(s) for s in scenes]

    def __call__(self, scene: SceneGraph) -> Verdict:
        t0 = time.perf_counter()
        cues = self.cues(scene)
        objects = object_ids(scene)
        ts = scene.timestamps
        seconds = []
        best_reason, best = "", 0.0
        start = scene.start
        while start < scene.end - 1e-6:
            end = min(start + 1.0, scene.end)
            in_sec = (ts >= start - 1e-6) & (ts < end - 1e-6)
            score, cat = 0.0, "normal"
            for name in CATEGORIES:
                vals = cues[name][:, in_sec]
                if vals.size and vals.max() > score:
                    score, cat = float(vals.max()), name
                    if score > best:
                        i, _ = np.unravel_index(np.argmax(vals), vals.shape)
                        best = score
                        who = f"object {objects[i]}" if name == "abandoned" else \
                            f"person {scene.tracks[i].track_id}"
                        best_reason = self._reason(name, who, score, start)
            seconds.append(SecondScore(start, end, score, cat))
            start = end
        categories = {name: float(cues[name].max()) if cues[name].size else 0.0 for name in CATEGORIES}
        score = max((s.score for s in seconds), default=0.0)
        return Verdict(
            camera=scene.camera, window_id=scene.window_id, start=scene.start, end=scene.end,
            wall_start=scene.wall_start, wall_end=scene.wall_end, gaps=scene.gaps,
            score=score, seconds=tuple(seconds), categories=categories,
            explanation=best_reason if score >= 0.5 else "", detector=self.name,
            people=len(scene.tracks),
            latency_ms={**scene.latency_ms, "detector": (time.perf_counter() - t0) * 1000.0}, final=scene.final)

    @staticmethod
    def _reason(category: str, who: str, score: float, second: float) -> str:
        what = {"running": "moves at running speed", "fall": "has a torso far from upright",
                "scuffle": "is in contact with someone while their arms move fast",
                "loitering": "has stayed in one place for a long time",
                "abandoned": "has been left with nobody near it"}[category]
        return f"{who} {what} (from {second:.0f} s, score {score:.2f})"

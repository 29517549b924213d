"""Small kinematic measures shared by the scene stage and the detectors: logistic ramps, where a
person's feet are, and how far the torso leans from vertical (COCO-17 keypoints)."""
from __future__ import annotations

import numpy as np

L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 5, 6, 11, 12


def ramp(x: np.ndarray | float, threshold: float, softness: float) -> np.ndarray:
    """Logistic ramp: 0.5 at the threshold, ~0.05/0.95 at threshold -/+ 2*softness*threshold."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, np.float64) - threshold) / (softness * threshold)))


def feet(boxes: np.ndarray) -> np.ndarray:
    """(..., 2) bottom centres of (..., 4) x0, y0, x1, y1 boxes: where a person stands."""
    boxes = np.asarray(boxes)
    return np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, boxes[..., 3]], axis=-1)


def heights_away(boxes: np.ndarray, point) -> np.ndarray:
    """(P,) how far each person's feet are from `point` (x, y pixels), in that person's body heights."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.linalg.norm(feet(boxes) - np.asarray(point, np.float32), axis=1) / np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)


def torso_angles(keypoints: np.ndarray, min_score: float) -> np.ndarray:
    """(...) degrees between the torso (hip centre -> shoulder centre) and vertical, from (..., 17, 3)
    keypoints; NaN where a shoulder or hip is less confident than `min_score`."""
    k = np.asarray(keypoints)
    conf = k[..., [L_SHOULDER, R_SHOULDER, L_HIP, R_HIP], 2].min(axis=-1) >= min_score
    v = (k[..., L_SHOULDER, :2] + k[..., R_SHOULDER, :2]) / 2 - (k[..., L_HIP, :2] + k[..., R_HIP, :2]) / 2
    angle = np.degrees(np.arctan2(np.abs(v[..., 0]), -v[..., 1]))   # image y grows downwards
    return np.where(conf, angle, np.nan)


# -- how each person moves: the scene stage's per-person motion features ------------------------
KINEMATICS = ("speed", "acceleration", "turn", "dwell", "lean", "aspect", "shrink", "upright", "bent", "lying",
              "nearest", "approach", "contact", "neighbours", "outward", "people")
"""Per person and sampled frame (`PersonKinematics.update`), in body heights and seconds:

    speed         how fast the feet move, heights a second (since the person's previous sampled frame, if
                  at most `max_gap_s` ago; else 0)
    acceleration  change of that speed since then, heights a second per second
    turn          change of heading since then, 0 (straight on) .. 1 (turned back); 0 when either is still
    dwell         seconds stayed where they stand (the tracker's)
    lean          torso angle from vertical, fractions of 90 degrees (0 upright, 1 flat; from the box if unknown)
    aspect        box width / height (a lying person is wider than tall)
    shrink        box height / the tallest the track was in the last `memory_s` (a fall or a crouch < 1)
    upright, bent, lying   posture, one-hot from lean, aspect and shrink
    nearest       feet distance to the nearest other person, heights (capped at FAR)
    approach      how fast the two close in, heights a second (negative: moving apart)
    contact       1 when their boxes overlap and their feet are within CONTACT heights
    neighbours    people within 2 heights
    outward       speed away from the centre of everyone in the frame, heights a second (a group scattering)
    people        how many people the frame holds"""
KIN = len(KINEMATICS)
FAR, CONTACT = 10.0, 0.6


def posture(lean: np.ndarray, aspect: np.ndarray, shrink: np.ndarray) -> np.ndarray:
    """(P, 3) one-hot upright / bent / lying."""
    lying = (lean > 0.65) | (aspect > 1.1)
    bent = ~lying & ((lean > 0.3) | (shrink < 0.75))
    return np.stack([~lying & ~bent, bent, lying], axis=-1).astype(np.float32)


class PersonKinematics:
    """One camera's per-person motion, frame after frame (causal: only the frames seen so far), so
    the stream and training's replay of stored frames compute the same values."""

    def __init__(self, max_gap_s: float = 1.5, memory_s: float = 3.0, max_speed: float = 5.0, min_lean_score: float = 0.3):
        self.max_gap_s, self.memory_s, self.max_speed, self.min_lean_score = max_gap_s, memory_s, max_speed, min_lean_score
        self._history: dict[int, list[tuple[float, np.ndarray, float, float, np.ndarray]]] = {}
        # track id -> [(ts, feet, height, speed, velocity)], the last `memory_s`

    def update(self, ts: float, track_ids: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
               dwell: np.ndarray | None) -> np.ndarray:
        """(P, KIN) for a frame's people (track id 0, an untracked detection: no motion, only posture)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        P = len(boxes)
        out = np.zeros((P, KIN), np.float32)
        if P == 0:
            self._forget(ts)
            return out
        height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        width = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
        pos = feet(boxes)
        velocity = np.zeros((P, 2), np.float32)
        col = {k: i for i, k in enumerate(KINEMATICS)}
        tallest = height.copy()
        for p, tid in enumerate(np.asarray(track_ids).astype(int)):
            past = self._history.get(tid, []) if tid else []
            prev = past[-1] if past and 0 < ts - past[-1][0] <= self.max_gap_s else None
            if prev is not None:
                t0, f0, _, s0, v0 = prev
                velocity[p] = (pos[p] - f0) / (ts - t0) / height[p]
                speed = min(float(np.linalg.norm(velocity[p])), self.max_speed)
                out[p, col["speed"]] = speed
                out[p, col["acceleration"]] = np.clip((speed - s0) / (ts - t0), -2 * self.max_speed, 2 * self.max_speed)
                if speed > 0.2 and np.linalg.norm(v0) > 0.2:
                    cos = float(velocity[p] @ v0 / np.linalg.norm(velocity[p]) / np.linalg.norm(v0))
                    out[p, col["turn"]] = (1.0 - np.clip(cos, -1.0, 1.0)) / 2.0
            if past:
                tallest[p] = max(height[p], max(h[2] for h in past))
            if tid:
                self._history.setdefault(tid, []).append((ts, pos[p], float(height[p]), float(out[p, col["speed"]]),
                                                          velocity[p].copy()))
        if dwell is not None:
            out[:, col["dwell"]] = dwell
        lean = torso_angles(keypoints, self.min_lean_score) / 90.0 if len(keypoints) else np.full(P, np.nan)
        aspect = width / height
        lean = np.where(np.isnan(lean), np.clip(aspect - 0.4, 0.0, 1.0), lean)
        shrink = height / tallest
        out[:, col["lean"]], out[:, col["aspect"]], out[:, col["shrink"]] = lean, aspect, shrink
        out[:, col["upright"]:col["lying"] + 1] = posture(lean, aspect, shrink)
        scale = (height[:, None] + height[None, :]) / 2
        gap = pos[None, :, :] - pos[:, None, :]                             # (P, P, 2) from p to q
        dist = np.linalg.norm(gap, axis=-1) / scale
        np.fill_diagonal(dist, np.inf)
        out[:, col["people"]] = P
        if P > 1:
            q = dist.argmin(1)
            rows = np.arange(P)
            out[:, col["nearest"]] = np.minimum(dist[rows, q], FAR)
            unit = gap[rows, q] / np.maximum(np.linalg.norm(gap[rows, q], axis=-1, keepdims=True), 1e-6)
            out[:, col["approach"]] = ((velocity[rows] - velocity[q]) * unit).sum(-1)
            x0 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
            x1 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
            y0 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
            y1 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
            overlap = (x1 > x0) & (y1 > y0)
            out[:, col["contact"]] = (overlap[rows, q] & (dist[rows, q] < CONTACT)).astype(np.float32)
            out[:, col["neighbours"]] = (dist < 2.0).sum(1)
        if P > 2:
            away = pos - pos.mean(0)
            unit = away / np.maximum(np.linalg.norm(away, axis=-1, keepdims=True), 1e-6)
            out[:, col["outward"]] = (velocity * unit).sum(-1)
        self._forget(ts)
        return out

    def _forget(self, ts: float) -> None:
        for tid in list(self._history):
            kept = [h for h in self._history[tid] if ts - h[0] <= self.memory_s]
            if kept:
                self._history[tid] = kept
            else:
                del self._history[tid]

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

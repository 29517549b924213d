"""Decoders for the pose models users bring as ONNX exports, all to COCO-17 keypoints (x, y, score)
in the model's input pixels (map them to the frame with the preprocessing's inverse).

- `decode_yolo_pose`: Ultralytics YOLOv8/11-pose heads, (N, 56, A) = box cx, cy, w, h, person score,
  then 17 x (x, y, visibility): people, boxes and keypoints in one pass over the frame.
- `decode_simcc`: RTMPose (MMPose) SimCC heads, x and y classification vectors per joint at
  `split_ratio` bins per input pixel, for one person crop each (top-down).
- `decode_associative_embedding`: HigherHRNet (Hawkeye's extractor) heatmaps + tags, bottom-up:
  peaks per joint, grouped into people by their tag values, as in Newell et al.'s associative
  embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream.scene.people import nms

K = 17


@dataclass(frozen=True)
class People:
    boxes: np.ndarray       # (P, 4) x0, y0, x1, y1
    scores: np.ndarray      # (P,)
    keypoints: np.ndarray   # (P, 17, 3) x, y, score


def _empty() -> People:
    return People(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, K, 3), np.float32))


def decode_yolo_pose(output: np.ndarray, *, score_threshold: float = 0.25, nms_iou: float = 0.7,
                     max_people: int = 100) -> People:
    """One image's output, (56, A) or (1, 56, A) (or transposed (A, 56))."""
    out = np.asarray(output, np.float32)
    out = out[0] if out.ndim == 3 else out
    if out.shape[0] != 5 + 3 * K and out.shape[1] == 5 + 3 * K:
        out = out.T
    if out.shape[0] != 5 + 3 * K:
        raise ValueError(f"YOLO-pose output must have 56 rows (box 4, score 1, 17 x 3 keypoints), got {output.shape}")
    scores = out[4]
    keep = np.flatnonzero(scores >= score_threshold)
    if keep.size == 0:
        return _empty()
    cx, cy, w, h = out[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    picked = nms(boxes, scores[keep], nms_iou, max_people)
    kps = out[5:, keep].T.reshape(-1, K, 3)[picked]
    return People(boxes[picked].astype(np.float32), scores[keep][picked].astype(np.float32), kps.astype(np.float32))


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, *, split_ratio: float = 2.0) -> np.ndarray:
    """(N, 17, Wx) and (N, 17, Hy) -> (N, 17, 3) in crop pixels. A joint's score is the smaller of
    its two maxima (MMPose's rule), so a joint certain in x but not in y is not trusted."""
    sx, sy = np.asarray(simcc_x, np.float32), np.asarray(simcc_y, np.float32)
    if sx.ndim != 3 or sy.ndim != 3 or sx.shape[:2] != sy.shape[:2] or sx.shape[1] != K:
        raise ValueError(f"SimCC outputs must be (N, 17, W*ratio) and (N, 17, H*ratio), got {sx.shape} and {sy.shape}")
    x = sx.argmax(-1) / split_ratio
    y = sy.argmax(-1) / split_ratio
    score = np.minimum(sx.max(-1), sy.max(-1))
    return np.stack([x, y, score], axis=-1).astype(np.float32)


def decode_associative_embedding(heatmaps: np.ndarray, tags: np.ndarray, *, input_size: tuple[int, int],
                                 peak_threshold: float = 0.1, tag_threshold: float = 1.0,
                                 max_people: int = 30, min_joints: int = 3) -> People:
    """One image: heatmaps (17, H, W), tags (17, H, W) or (17, H, W, L) -> people, keypoints scaled
    from the heatmap grid to `input_size` (width, height).

    Peaks are local maxima (3x3) above `peak_threshold`, the `max_people` strongest per joint (of a
    flat top, one).
    Joints are taken in COCO order; each peak joins the person whose mean tag is nearest (within
    `tag_threshold`) and who has no such joint yet, or starts a new person."""
    hm = np.asarray(heatmaps, np.float32)
    tg = np.asarray(tags, np.float32)
    if tg.ndim == 3:
        tg = tg[..., None]
    if hm.ndim != 3 or hm.shape[0] != K or tg.shape[:3] != hm.shape:
        raise ValueError(f"heatmaps must be (17, H, W) and tags (17, H, W[, L]) of the same grid, "
                         f"got {hm.shape} and {tags.shape}")
    _, H, W = hm.shape
    sx, sy = input_size[0] / W, input_size[1] / H
    people: list[dict] = []            # {"tag": running mean, "joints": {k: (x, y, score)}, "tags": [...]}
    for k in range(K):
        dilated = cv2.dilate(hm[k], np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero((hm[k] == dilated) & (hm[k] > peak_threshold))
        peaks: list[tuple[int, int]] = []
        for i in np.argsort(-hm[k, ys, xs]):          # a flat top gives equal neighbours: keep one of them
            if all(abs(ys[i] - py) > 1 or abs(xs[i] - px) > 1 for py, px in peaks):
                peaks.append((ys[i], xs[i]))
        for y, x in peaks[:max_people]:
            tag = tg[k, y, x]
            free = [p for p in people if k not in p["joints"]]
            dist = [np.linalg.norm(p["tag"] - tag) for p in free]
            if dist and min(dist) < tag_threshold:
                person = free[int(np.argmin(dist))]
            elif len(people) < max_people:
                person = {"joints": {}, "tags": []}
                people.append(person)
            else:
                continue
            person["joints"][k] = ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, float(hm[k, y, x]))
            person["tags"].append(tag)
            person["tag"] = np.mean(person["tags"], axis=0)
    people = [p for p in people if len(p["joints"]) >= min_joints]
    if not people:
        return _empty()
    kps = np.zeros((len(people), K, 3), np.float32)
    for i, p in enumerate(people):
        for k, v in p["joints"].items():
            kps[i, k] = v
    boxes, scores = [], []
    for person in kps:
        seen = person[person[:, 2] > 0]
        boxes.append([seen[:, 0].min(), seen[:, 1].min(), seen[:, 0].max(), seen[:, 1].max()])
        scores.append(seen[:, 2].mean())
    return People(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), kps)

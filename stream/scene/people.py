"""People detection: an SSD-style ONNX detector (boxes + scores) run in batches, then NMS."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines import Engine


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Indices of x0, y0, x1, y1 `boxes` kept by greedy non-maximum suppression (OpenCV's), best
    first, at most `limit`."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(float).tolist()
    keep = cv2.dnn.NMSBoxes(xywh, np.asarray(scores, float).tolist(), 0.0, iou)   # scores: filtered before
    return np.asarray(keep, np.int64).reshape(-1)[:limit]


def tile_boxes(width: int, height: int, n: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """The whole image, then an n x n grid of crops that overlap by `overlap` of a crop (so a person
    cut by one crop's edge is whole in its neighbour): x0, y0, x1, y1 each."""
    out = [(0, 0, width, height)]
    if n > 1:
        w, h = width / (n - (n - 1) * overlap), height / (n - (n - 1) * overlap)
        for j in range(n):
            for i in range(n):
                x0, y0 = int(round(i * w * (1 - overlap))), int(round(j * h * (1 - overlap)))
                out.append((x0, y0, min(width, int(round(x0 + w))), min(height, int(round(y0 + h)))))
    return out


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray    # (P, 4) x0, y0, x1, y1 in image pixels
    scores: np.ndarray   # (P,)


class PersonDetector:
    """Runs a detector whose outputs are normalised `boxes (N, A, 4)` as (ymin, xmin, ymax, xmax)
    and `scores (N, A)` (a person detector: the bundled SSDLite, 300 x 300) or `scores (N, A, C)`
    (a multi-class one: `class_index` is its person class, 0 for the bundled COCO NanoDet,
    416 x 416); both as `engines.zoo` converts them."""

    def __init__(self, engine: Engine, *, score_threshold: float = 0.3, nms_iou: float = 0.6,
                 max_people: int = 64, max_batch: int = 16, size: int = 300, class_index: int | None = None,
                 tiles: int = 1):
        self.engine = engine
        self.input = engine.input_names[0]
        self.score_threshold, self.nms_iou, self.max_people = score_threshold, nms_iou, max_people
        self.max_batch = max_batch
        self.size, self.class_index = size, class_index
        self.tiles = tiles      # > 1: also a tiles x tiles grid of overlapping crops, for people too small whole

    def preprocess(self, image_bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(cv2.resize(image_bgr, (self.size, self.size), interpolation=cv2.INTER_LINEAR),
                           cv2.COLOR_BGR2RGB)
        return rgb.astype(np.float32)   # the graph normalises 0..255 itself

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        if self.tiles <= 1:
            return self._detect(images)
        crops, origins = [], []
        for im in images:
            boxes = tile_boxes(im.shape[1], im.shape[0], self.tiles)
            crops += [im[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
            origins.append(boxes)
        found = self._detect(crops)
        out, k = [], 0
        for im, boxes in zip(images, origins):
            height, width = im.shape[:2]
            parts = found[k:k + len(boxes)]
            k += len(boxes)
            xyxy, scores = [], []
            for t, (d, b) in enumerate(zip(parts, boxes)):
                keep = np.ones(len(d.boxes), bool)
                if t:             # a crop's person cut by its inner edge: whole in a neighbour or the full pass
                    w, h = b[2] - b[0], b[3] - b[1]
                    inner = np.array([b[0] > 0, b[1] > 0, b[2] < width, b[3] < height])
                    near = np.stack([d.boxes[:, 0] <= 2, d.boxes[:, 1] <= 2, d.boxes[:, 2] >= w - 2,
                                     d.boxes[:, 3] >= h - 2], 1)
                    keep = ~(near & inner).any(1)
                xyxy.append(d.boxes[keep] + np.array([b[0], b[1], b[0], b[1]], np.float32))
                scores.append(d.scores[keep])
            xyxy, scores = np.concatenate(xyxy), np.concatenate(scores)
            keep = nms(xyxy, scores, self.nms_iou, self.max_people)
            out.append(Detections(xyxy[keep].reshape(-1, 4), scores[keep]))
        return out

    def _detect(self, images: list[np.ndarray]) -> list[Detections]:
        out: list[Detections] = []
        for i in range(0, len(images), self.max_batch):
            chunk = images[i:i + self.max_batch]
            batch = np.stack([self.preprocess(im) for im in chunk])             # (B, size, size, 3)
            res = self.engine.run({self.input: batch})
            scores = res["scores"]
            if scores.ndim == 3:
                if self.class_index is None:
                    raise ValueError(f"the detector scores {scores.shape[2]} classes: say which is the person "
                                     f"class (models.person_detector.class_index; 0 for COCO)")
                scores = scores[..., self.class_index]
            for im, boxes, s in zip(chunk, res["boxes"], scores):           # (A, 4), (A,)
                out.append(self.decode(boxes, s, im.shape[1], im.shape[0]))
        return out

    def decode(self, boxes: np.ndarray, scores: np.ndarray, width: int, height: int) -> Detections:
        keep = scores >= self.score_threshold
        b, s = boxes[keep], scores[keep]
        xyxy = np.stack([b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], axis=1)
        xyxy = np.clip(xyxy, 0, [width, height, width, height]).astype(np.float32)
        idx = nms(xyxy, s, self.nms_iou, self.max_people)           # s is already above the threshold
        xyxy, s = xyxy[idx], s[idx]
        return Detections(xyxy.reshape(-1, 4), s.astype(np.float32))

"""Objects with names: a COCO-80 detector (the bundled NanoDet, models/nanodet.onnx, converted by
engines.zoo) finds the things a relation graph should name — bags, bicycles, vehicles, a dog,
an umbrella — and gives each its Visual Genome 150 class (stream/scene/relations.py), so the
graph says "man carrying bag", "bag on street", "man near car", "man riding bike".

Only the COCO classes in `VG150_OF` are kept; people stay the person detector's job (it is
tracked, posed and measured). Things no class covers (a box, a parcel) are still found by the
left-object finder (stream/scene/objects.py), which stays as the fallback.

The detector runs on whole frames, batched across cameras: pixels in, per frame an (K, 6) array
of x0, y0, x1, y1 (image pixels), score, VG150 class index; class-wise non-maximum suppression.
"""
from __future__ import annotations

import cv2
import numpy as np

from engines import Engine
from stream.scene.people import nms
from stream.scene.relations import OBJ

COCO80 = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
          "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
          "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
          "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
          "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
          "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
          "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
          "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
          "teddy bear", "hair drier", "toothbrush")
assert len(COCO80) == 80

# COCO class -> VG150 object: what a surveillance scene graph has a use for
VG150_OF = {
    "backpack": "bag", "handbag": "bag", "suitcase": "bag",
    "bicycle": "bike", "motorcycle": "motorcycle", "car": "car", "bus": "bus", "truck": "truck",
    "umbrella": "umbrella", "dog": "dog", "skateboard": "skateboard", "bench": "bench", "laptop": "laptop",
}
SAME_THING_IOU = 0.7           # boxes of two classes this alike are one thing (a van: car and truck)


class NamedObjectDetector:
    """Runs a COCO-80 detector whose outputs are normalised `boxes (N, A, 4)` as (ymin, xmin,
    ymax, xmax) and `scores (N, A, 80)` (models/nanodet.onnx); `detect` returns per image the
    (K, 6) named objects: x0, y0, x1, y1 in pixels, score, VG150 class."""

    def __init__(self, engine: Engine, *, score_threshold: float = 0.4, nms_iou: float = 0.5,
                 max_objects: int = 32, max_batch: int = 16, classes: dict[str, str] | None = None, size: int = 416):
        self.engine = engine
        self.input = engine.input_names[0]
        self.size = size
        self.score_threshold, self.nms_iou, self.max_objects = score_threshold, nms_iou, max_objects
        self.max_batch = max_batch
        classes = VG150_OF if classes is None else classes
        unknown = sorted(set(classes) - set(COCO80))
        if unknown:
            raise ValueError(f"not COCO-80 classes: {', '.join(unknown)}")
        self.coco = np.array([COCO80.index(c) for c in classes], np.int64)
        self.vg = np.array([OBJ[v] for v in classes.values()], np.int64)

    def preprocess(self, image_bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(cv2.resize(image_bgr, (self.size, self.size), interpolation=cv2.INTER_LINEAR),
                           cv2.COLOR_BGR2RGB)
        return rgb.astype(np.float32)     # the graph normalises as NanoDet was trained

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i in range(0, len(images), self.max_batch):
            chunk = images[i:i + self.max_batch]
            res = self.engine.run({self.input: np.stack([self.preprocess(im) for im in chunk])})
            for im, boxes, scores in zip(chunk, res["boxes"], res["scores"]):
                out.append(self.decode(boxes, scores, im.shape[1], im.shape[0]))
        return out

    def decode(self, boxes: np.ndarray, scores: np.ndarray, width: int, height: int) -> np.ndarray:
        """One image's (A, 4) normalised (ymin, xmin, ymax, xmax) and (A, 80) scores -> (K, 6)."""
        kept = scores[:, self.coco]                                    # (A, C) the classes we name
        cell, col = np.nonzero(kept >= self.score_threshold)
        if len(cell) == 0:
            return np.zeros((0, 6), np.float32)
        b = boxes[cell][:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32)
        s = kept[cell, col]
        kept_cells = []
        for c in np.unique(col):                                       # suppression within a class
            m = np.flatnonzero(col == c)
            kept_cells += list(m[nms(b[m], s[m], self.nms_iou, self.max_objects)])
        k = np.array(kept_cells, np.int64)
        k = k[nms(b[k], s[k], SAME_THING_IOU, self.max_objects)]      # one thing, two names (car / truck): the likelier
        return np.column_stack([b[k], s[k], self.vg[col[k]]]).astype(np.float32)

"""Pretrained appearance: EfficientNet-Lite0 (ImageNet, frozen; engines/convert/efficientnet.py)
as an encoder of whole frames and of person crops, run through `engines` like the other models
(ONNX Runtime here, TensorRT where a GPU has it).

    enc = AppearanceEncoder(create_engine("onnxruntime", "models/efficientnet_lite0.onnx"))
    enc.frames([image, ...])          # (N, 1280) pooled features of whole frames
    enc.crops(image, boxes)           # (P, 1280) of each person box (10 % margin, squared)
    enc.describe(images, boxes)       # per frame (1 + P, 1280): the frame, then its people (one batched pass)
    enc.classify([image])             # (N, 1000) ImageNet probabilities (the encoder's own check)
"""
from __future__ import annotations

import cv2
import numpy as np

SIZE = 224
DIM = 1280


def _square(box: np.ndarray, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A person box widened to a square with a margin, inside the frame."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * (1 + margin)
    a, b = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
    return a, b, int(min(cx + side / 2, width)), int(min(cy + side / 2, height))


class AppearanceEncoder:
    def __init__(self, engine, max_batch: int = 8, margin: float = 0.1):
        self.engine, self.max_batch, self.margin = engine, max_batch, margin

    @staticmethod
    def _tensor(images: list[np.ndarray]) -> np.ndarray:
        """BGR uint8 pictures of any size -> (N, 3, 224, 224) RGB 0..1."""
        out = np.empty((len(images), 3, SIZE, SIZE), np.float32)
        for i, im in enumerate(images):
            out[i] = cv2.resize(im, (SIZE, SIZE), interpolation=cv2.INTER_AREA)[..., ::-1].transpose(2, 0, 1) / 255.0
        return out

    def _run(self, images: list[np.ndarray], output: str) -> np.ndarray:
        width = DIM if output == "features" else 1000
        if not images:
            return np.zeros((0, width), np.float32)
        parts = [self.engine.run({"image": self._tensor(images[i:i + self.max_batch])})[output]
                 for i in range(0, len(images), self.max_batch)]
        return np.concatenate(parts).astype(np.float32)

    def frames(self, images: list[np.ndarray]) -> np.ndarray:
        return self._run(list(images), "features")

    def _pieces(self, image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        h, w = image.shape[:2]
        pieces = []
        for box in np.asarray(boxes, np.float32).reshape(-1, 4):
            x0, y0, x1, y1 = _square(box, self.margin, w, h)
            pieces.append(image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)])
        return pieces

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._run(self._pieces(image, boxes), "features")

    def describe(self, images: list[np.ndarray], boxes: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Per frame a (1 + P, 1280) float16 array: the whole frame's features, then each person
        box's (`boxes[i]` of frame i; None: frames only, (1, 1280) each). All pictures go through
        the engine in batches of `max_batch`, whichever frame they come from."""
        pieces, counts = [], []
        for i, im in enumerate(images):
            mine = [im] + (self._pieces(im, boxes[i]) if boxes is not None else [])
            pieces += mine
            counts.append(len(mine))
        features = self._run(pieces, "features").astype(np.float16)
        return np.split(features, np.cumsum(counts)[:-1]) if images else []

    def classify(self, images: list[np.ndarray]) -> np.ndarray:
        logits = self._run(list(images), "logits")
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

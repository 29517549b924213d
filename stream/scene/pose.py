"""Human pose: the BlazePose landmark model on square crops around each person, mapped to COCO-17.

Distant people (vtest.avi's are 25-180 px tall) are upscaled by the crop warp to the model's
256x256 input; the affine maps crop corners exactly onto 0 and 256, as MediaPipe does (half a
pixel off costs most of the agreement with MediaPipe, see MODELS notes in the README)."""
from __future__ import annotations

import cv2
import numpy as np

from engines import Engine

# BlazePose's 33 landmarks -> COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
                "left_knee", "right_knee", "left_ankle", "right_ankle")
COCO17_EDGES = ((0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
                (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
_SIZE = 256


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def square_crop(box: np.ndarray, scale: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the upright square crop around an x0, y0, x1, y1 box."""
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale


def crop_to_image(box: np.ndarray, scale: float, xy: np.ndarray) -> np.ndarray:
    """Map (..., 2) crop pixel coordinates back to the image (the inverse of `PoseEstimator.crop`)."""
    cx, cy, side = square_crop(box, scale)
    return np.array([cx - side / 2, cy - side / 2], np.float32) + xy * (side / _SIZE)


class PoseEstimator:
    def __init__(self, engine: Engine, *, presence_threshold: float = 0.5, crop_scale: float = 1.25,
                 min_box_height: float = 16.0, max_batch: int = 16):
        self.engine = engine
        self.input = engine.input_names[0]
        self.presence_threshold, self.crop_scale = presence_threshold, crop_scale
        self.min_box_height, self.max_batch = min_box_height, max_batch

    def crop(self, image_bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        cx, cy, side = square_crop(box, self.crop_scale)
        x0, y0 = cx - side / 2, cy - side / 2
        s = _SIZE / side
        # Boxes and keypoints are continuous coordinates (a pixel's centre at i + 0.5), and so are the
        # model's crop coordinates (corners at 0 and 256); warpAffine indexes pixel centres at i.
        off = 0.5 * (s - 1.0)
        m = np.array([[s, 0, off - x0 * s], [0, s, off - y0 * s]], np.float32)
        crop = cv2.warpAffine(image_bgr, m, (_SIZE, _SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)

    def estimate(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """For each image, (P, 17, 3) COCO-17 keypoints (x, y, score) for its P boxes, in one or more
        batched engine calls across all images. Poses not found have score 0."""
        jobs = [(i, j) for i, b in enumerate(boxes) for j in range(len(b))
                if b[j, 3] - b[j, 1] >= self.min_box_height]
        result = [np.zeros((len(b), 17, 3), np.float32) for b in boxes]
        for k in range(0, len(jobs), self.max_batch):
            chunk = jobs[k:k + self.max_batch]
            batch = np.stack([self.crop(images[i], boxes[i][j]) for i, j in chunk]).astype(np.float32) / 255.0
            res = self.engine.run({self.input: batch})
            landmarks = res["Identity"].reshape(-1, 39, 5)      # x, y (crop px), z, visibility, presence logits
            present = res["Identity_1"].reshape(-1)             # already a probability
            for (i, j), lm, p in zip(chunk, landmarks, present):
                if p < self.presence_threshold:
                    continue
                pts = lm[BLAZEPOSE_TO_COCO17]
                result[i][j, :, :2] = crop_to_image(boxes[i][j], self.crop_scale, pts[:, :2])
                result[i][j, :, 2] = _sigmoid(pts[:, 3])
        return result

"""Motion as in Hawk: dense Farneback optical flow between consecutive sampled frames, a magnitude
mask of what moves, and per-window motion features.

Flow is computed on a grey copy scaled to `width` pixels (motion, not detail, is wanted) and
expressed back in frame pixels per second, so the features do not depend on the sample rate or
the resolution used. The mask marks pixels moving faster than `min_speed` frame heights per second;
Hawk's motion tokens are frames with everything outside that mask blacked out (`masked_frame`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream.types import MotionSummary

DIRECTION_BINS = 8      # 0 = rightwards, counter-clockwise in image coordinates (y down: 2 = upwards)
SPEED_BINS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)   # frame heights per second: the histogram's edges


@dataclass(frozen=True)
class PairMotion:
    dt: float
    flow: np.ndarray         # (h, w, 2) float32, frame pixels per second, at the reduced size
    mask: np.ndarray         # (h, w) bool: moving faster than min_speed


class MotionExtractor:
    def __init__(self, width: int = 160, min_speed: float = 0.02, winsize: int = 7):
        self.width, self.min_speed, self.winsize = width, min_speed, winsize

    def grey(self, image: np.ndarray) -> np.ndarray:
        """The small grey copy flow is computed on (`pair_grey` takes two of them)."""
        h, w = image.shape[:2]
        small = cv2.resize(image, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small

    def pair(self, a: np.ndarray, b: np.ndarray, dt: float) -> PairMotion:
        """Flow from image a to image b, taken dt seconds apart."""
        return self.pair_grey(self.grey(a), self.grey(b), dt, a.shape[:2])

    def pair_grey(self, ga: np.ndarray, gb: np.ndarray, dt: float, frame_size: tuple[int, int]) -> PairMotion:
        """`pair` from the frames' grey copies (`grey`) and their (height, width) in pixels."""
        if dt <= 0:
            raise ValueError(f"frames must be apart in time (dt={dt})")
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, pyr_scale=0.5, levels=3, winsize=self.winsize, iterations=3,
                                            poly_n=5, poly_sigma=1.2, flags=0)
        scale = frame_size[1] / ga.shape[1]                # back to frame pixels
        flow = flow * np.float32(scale / dt)
        speed = np.linalg.norm(flow, axis=2) / frame_size[0]  # frame heights per second
        return PairMotion(dt, flow, speed > self.min_speed)

    def summarise(self, pairs: list[PairMotion], frame_height: int) -> MotionSummary:
        n = len(pairs)
        if n == 0:
            return MotionSummary(np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(DIRECTION_BINS, np.float32),
                                 np.zeros(len(SPEED_BINS) + 1, np.float32), np.zeros((0, 1, 1), bool))
        energy, moving = np.zeros(n, np.float32), np.zeros(n, np.float32)
        dirs = np.zeros(DIRECTION_BINS, np.float64)
        speeds = np.zeros(len(SPEED_BINS) + 1, np.float64)
        for i, p in enumerate(pairs):
            speed = np.linalg.norm(p.flow, axis=2) / frame_height
            energy[i], moving[i] = speed.mean(), p.mask.mean()
            if p.mask.any():
                fx, fy = p.flow[..., 0][p.mask], p.flow[..., 1][p.mask]
                angle = np.arctan2(-fy, fx) % (2 * np.pi)     # image y points down; count counter-clockwise
                sector = np.round(angle / (2 * np.pi) * DIRECTION_BINS).astype(int) % DIRECTION_BINS  # centred
                dirs += np.bincount(sector, minlength=DIRECTION_BINS)
                speeds += np.bincount(np.searchsorted(SPEED_BINS, speed[p.mask]), minlength=len(SPEED_BINS) + 1)
        total = dirs.sum()
        return MotionSummary(energy, moving, (dirs / total if total else dirs).astype(np.float32),
                             (speeds / total if total else speeds).astype(np.float32),
                             np.stack([p.mask for p in pairs]))


def masked_frame(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hawk's motion input: the frame with everything that does not move blacked out (the mask is
    scaled up to the frame)."""
    full = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    return image * full[..., None].astype(image.dtype)

"""Each benchmark video seen through a camera of its own, so a model cannot learn one view: zoom
and crop, a small perspective tilt, brightness, contrast, colour temperature, blur, sensor noise
and H.264 quality, drawn per video from its seed and recorded with it (`Camera.to_dict`).

The whole picture goes through the camera after the actors are composed into it (as a real
camera sees a real scene), so the ground truth's spans do not change; positions and sizes do,
which is the point. The crop is drawn around where the video's events happen (`keep`), so it
never cuts an event's people out of view; it may cut the normal walkers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Camera:
    zoom: float            # 1 = the whole recording; 1.3 = a crop of 77 % of each side
    centre: tuple[float, float]   # the crop's centre, fractions of the frame (kept inside it)
    tilt: float            # keystone: the top edge narrower (> 0) or wider (< 0), fraction of the width
    brightness: float      # added, 0..255 units
    contrast: float        # scaled about mid-grey
    temperature: float     # > 0 warmer (red up, blue down), fraction
    blur: float            # Gaussian sigma, pixels (0: none)
    noise: float           # sensor noise sigma, 0..255 units
    crf: int               # H.264 quality of the written video (higher: worse)
    seed: int              # the noise's own seed

    @classmethod
    def draw(cls, rng: np.random.Generator, size: tuple[int, int] = (768, 576),
             keep: tuple[float, float, float, float] | None = None) -> Camera:
        """A camera of its own: `keep` (x0, y0, x1, y1 in the recording's pixels, where the events
        happen) stays in view, zooming out as far as it takes."""
        w, h = size
        zoom = float(rng.uniform(1.0, 1.35))
        if keep is not None:                     # the crop (less the tilt's inset) must hold the box
            need_w, need_h = (min(w, keep[2]) - max(0, keep[0])) / w, (min(h, keep[3]) - max(0, keep[1])) / h
            zoom = float(max(1.0, min(zoom, 0.94 / max(need_w, 1e-3), 1.0 / max(need_h, 1e-3))))
        room = 0.5 - 0.5 / zoom
        cx, cy = float(0.5 + rng.uniform(-room, room)), float(0.5 + rng.uniform(-room, room))
        if keep is not None:                     # slide the crop over the box, as little as needed
            half, m = 0.5 / zoom, 0.06 * 0.5 / zoom
            centre = []
            for c, k0, k1 in ((cx, max(0, keep[0]) / w, min(w, keep[2]) / w), (cy, max(0, keep[1]) / h, min(h, keep[3]) / h)):
                lo, hi = max(half, k1 - half + m), min(1 - half, k0 + half - m)
                centre.append(float(np.clip(c, lo, hi)) if lo <= hi else float(np.clip((k0 + k1) / 2, half, 1 - half)))
            cx, cy = centre
        return cls(zoom=zoom, centre=(cx, cy), tilt=float(rng.uniform(-0.05, 0.05)), brightness=float(rng.uniform(-25, 25)),
                   contrast=float(rng.uniform(0.8, 1.2)), temperature=float(rng.uniform(-0.08, 0.08)),
                   blur=float(rng.choice([0.0, rng.uniform(0.4, 1.2)])), noise=float(rng.uniform(0.0, 6.0)),
                   crf=int(rng.integers(18, 31)), seed=int(rng.integers(0, 2**31)))

    def to_dict(self) -> dict:
        """As written to the ground truth and the manifest (JSON values, 4 decimals)."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, (tuple, list)) else round(v, 4) if isinstance(v, float) else v
        return {k: plain(v) for k, v in asdict(self).items()}

    def warp(self, size: tuple[int, int]) -> np.ndarray:
        """The 3x3 map from the recording's pixels to this camera's (zoom about the centre, then tilt)."""
        w, h = size
        cw, ch = w / self.zoom, h / self.zoom
        x0, y0 = self.centre[0] * w - cw / 2, self.centre[1] * h - ch / 2
        inset = self.tilt * cw / 2
        src = np.float32([[x0 + max(inset, 0), y0], [x0 + cw - max(inset, 0), y0],
                          [x0 + cw - max(-inset, 0), y0 + ch], [x0 + max(-inset, 0), y0 + ch]])
        dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        return cv2.getPerspectiveTransform(src, dst)

    def tone(self) -> np.ndarray:
        """Contrast about mid-grey, brightness and colour temperature as one per-channel lookup table."""
        v = (np.arange(256, dtype=np.float32) - 128.0) * self.contrast + 128.0 + self.brightness
        lut = v[:, None] * np.float32([1.0 - self.temperature, 1.0, 1.0 + self.temperature])      # B, G, R
        return np.clip(np.round(lut), 0, 255).astype(np.uint8).reshape(256, 1, 3)

    def apply(self, frame: np.ndarray, k: int, warp: np.ndarray | None = None, tone: np.ndarray | None = None,
              ) -> np.ndarray:
        """Frame `k` of the video (BGR uint8) as this camera records it."""
        h, w = frame.shape[:2]
        img = cv2.warpPerspective(frame, self.warp((w, h)) if warp is None else warp, (w, h),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img = cv2.LUT(img, self.tone() if tone is None else tone)
        if self.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.blur)
        if self.noise > 0:                       # OpenCV's generator, seeded per frame: the same noise every run
            noise = np.empty(img.shape, np.int16)
            cv2.setRNGSeed(int((self.seed * 100_003 + k) % 2**31))
            cv2.randn(noise, 0.0, self.noise)
            img = cv2.add(img, noise, dtype=cv2.CV_8U)
        return img

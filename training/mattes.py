"""People cut out of real footage cleanly enough to be composed into other footage: a matte from
BlazePose's own person segmentation and background subtraction together, and clothes recoloured
without touching skin or hair.

    seg = Segmenter(create_engine("onnxruntime", "models/pose_segmentation.onnx"))
    cut = matte(frame, background, box, seg([frame], [box])[0])      # (patch, alpha) or None
    new = recolour(patch, alpha, regions(patch, alpha), {1: "navy", 2: "khaki"})   # top, trousers

Either cue alone fails in its own way: background subtraction keeps shadows, the grey halo where
a person's colour is close to the road's, and any other moving thing in the box (the "grey bars
beside the heads"); the segmentation head alone bleeds a few pixels into the background at 256 px
and takes a pedestrian's neighbour for part of them. A pixel is kept where the segmentation says
person and the background disagrees with it (within a pixel's reach, so a dark coat on a dark road
keeps its edge), the edge is pulled in by a pixel and feathered.
"""
from __future__ import annotations

import cv2
import numpy as np

SIDE = 256      # BlazePose's input


class Segmenter:
    """BlazePose's segmentation head (models/pose_segmentation.onnx, built by `make models`) on
    person boxes: per box, a probability map of the box's size that each pixel is that person."""

    def __init__(self, engine, batch: int = 16):
        self.engine, self.batch = engine, batch

    @staticmethod
    def _roi(box: np.ndarray) -> np.ndarray:
        """The 2x3 map from the frame to a 256 px square crop around the box (MediaPipe's 1.25 margin)."""
        x0, y0, x1, y1 = box
        side = 1.25 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        s = SIDE / side
        return np.float32([[s, 0, SIDE / 2 - s * cx], [0, s, SIDE / 2 - s * cy]])

    def __call__(self, frames: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        maps = [self._roi(b) for b in boxes]
        crops = np.stack([cv2.warpAffine(f, m, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                          for f, m in zip(frames, maps)])[..., ::-1].astype(np.float32) / 255.0
        logits = []
        for k in range(0, len(crops), self.batch):
            out = self.engine.run({"input_1": np.ascontiguousarray(crops[k:k + self.batch])})
            logits.append(out["Identity_2"][..., 0])
        prob = 1.0 / (1.0 + np.exp(-np.clip(np.concatenate(logits), -30, 30)))
        result = []
        for f, m, p, box in zip(frames, maps, prob, boxes):
            whole = cv2.warpAffine(p, m, (f.shape[1], f.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            result.append(whole)
        return result


def matte(frame: np.ndarray, background: np.ndarray, box: np.ndarray, person: np.ndarray,
          ) -> tuple[np.ndarray, np.ndarray] | None:
    """The person inside `box` -> (BGR patch, alpha 0..1) cropped to them, feet at the bottom; None
    when too little of them is left (lost head or legs). `person`: the segmenter's map, frame-sized."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    x0, x1 = int(max(0, x0 - 0.15 * bw)), int(min(w, x1 + 0.15 * bw))
    y0, y1 = int(max(0, y0 - 0.05 * bh)), int(min(h, y1 + 0.05 * bh))
    if x1 - x0 < 8 or y1 - y0 < 20:
        return None
    patch, bg = frame[y0:y1, x0:x1], background[y0:y1, x0:x1]
    diff = np.abs(patch.astype(np.int16) - bg.astype(np.int16)).max(axis=2)
    moving = cv2.dilate((diff > 20).astype(np.uint8), np.ones((3, 3), np.uint8))
    seg = person[y0:y1, x0:x1]
    mask = ((seg > 0.5) & (moving > 0)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    keep = [i for i in range(1, n) if i == biggest or stats[i, cv2.CC_STAT_AREA] > 0.05 * stats[biggest, cv2.CC_STAT_AREA]]
    mask = np.isin(labels, keep).astype(np.uint8)
    if mask.sum() < 0.2 * bw * bh:
        return None
    ys, xs = np.nonzero(mask)
    ya, yb, xa, xb = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if (yb - ya) < 0.75 * bh:
        return None                                      # lost the head or the legs
    core = cv2.erode(mask, np.ones((2, 2), np.uint8))    # the edge pixel is half background: pull it in
    alpha = cv2.GaussianBlur(core.astype(np.float32), (5, 5), 0.9)
    alpha = np.minimum(alpha, np.clip((seg - 0.3) / 0.4, 0.0, 1.0))
    return patch[ya:yb, xa:xb].copy(), alpha[ya:yb, xa:xb]


# -- clothes ----------------------------------------------------------------------------------------
HEAD = 0.17          # the top of a standing person that is head and hair: never recoloured
WAIST = 0.52         # above: the top's colour, below: the trousers'


def skin(patch: np.ndarray) -> np.ndarray:
    """Pixels in the range of human skin tones (YCrCb, all complexions), bool."""
    ycc = cv2.cvtColor(patch, cv2.COLOR_BGR2YCrCb)
    return (ycc[..., 1] >= 133) & (ycc[..., 1] <= 178) & (ycc[..., 2] >= 77) & (ycc[..., 2] <= 130) & (ycc[..., 0] > 40)


def regions(patch: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Per pixel: 0 not clothes (background, head, hair, skin), 1 the top, 2 the trousers or skirt.
    Where the two meet (a coat can reach the knees) each pixel goes to the garment whose colour it
    is nearer to, measured on the chest and the shins."""
    h = patch.shape[0]
    rows = np.broadcast_to((np.arange(h) / max(1, h - 1))[:, None], alpha.shape)
    clothes = (alpha >= 0.3) & (rows >= HEAD) & ~skin(patch)
    out = np.where(rows < WAIST, 1, 2).astype(np.uint8)
    lab = cv2.cvtColor(patch, cv2.COLOR_BGR2LAB).astype(np.float32)
    chest, shins = clothes & (rows > 0.22) & (rows < 0.4), clothes & (rows > 0.72) & (rows < 0.9)
    if chest.sum() >= 4 and shins.sum() >= 4:
        top, bottom = lab[chest].mean(axis=0), lab[shins].mean(axis=0)
        middle = clothes & (rows >= 0.4) & (rows <= 0.75)
        nearer_top = np.linalg.norm(lab - top, axis=2) < np.linalg.norm(lab - bottom, axis=2)
        out[middle] = np.where(nearer_top[middle], 1, 2)
        out = cv2.medianBlur(out, 5)                     # no speckles of one garment in the other
    out[~clothes] = 0
    return out


# Clothing colours people wear (BGR): the recolouring moves a garment's mean to one of these and
# keeps its own shading and texture.
PALETTE = {
    "black": (28, 28, 30), "charcoal": (62, 60, 58), "grey": (120, 118, 115), "white": (215, 215, 212),
    "navy": (80, 40, 28), "denim": (125, 85, 50), "khaki": (120, 160, 175), "brown": (40, 60, 95),
    "olive": (45, 95, 90), "burgundy": (45, 30, 110), "red": (40, 40, 170), "forest": (50, 85, 40),
    "beige": (165, 190, 205), "sky": (200, 160, 110), "mustard": (40, 150, 190),
}
_LAB = {k: cv2.cvtColor(np.uint8([[v]]), cv2.COLOR_BGR2LAB)[0, 0].astype(np.float32) for k, v in PALETTE.items()}


def recolour(patch: np.ndarray, alpha: np.ndarray, parts: np.ndarray, colours: dict[int, str]) -> np.ndarray:
    """`patch` with each garment (1 top, 2 bottom, as `regions` labels them) moved to a palette
    colour: its mean L*a*b* becomes the colour's, its variation (folds, shading) is kept at reduced
    chroma; skin, hair and the head are untouched."""
    if not colours:
        return patch
    lab = cv2.cvtColor(patch, cv2.COLOR_BGR2LAB).astype(np.float32)
    out = lab.copy()
    for part, name in colours.items():
        where = parts == part
        if where.sum() < 4:
            continue
        mean = lab[where].mean(axis=0)
        target = _LAB[name]
        out[where, 0] = np.clip(target[0] + 0.8 * (lab[where, 0] - mean[0]), 0, 255)
        out[where, 1:] = target[1:] + 0.4 * (lab[where, 1:] - mean[1:])
    soft = np.clip(cv2.GaussianBlur((parts > 0).astype(np.float32), (3, 3), 0), 0, 1)[..., None]
    new = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR).astype(np.float32)
    return (soft * new + (1 - soft) * patch).astype(np.uint8)

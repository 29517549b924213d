"""Left objects: things that appeared where the background used to be and have stayed put, away
from any person (a bag set down, a box left behind). The person detector knows one class, so
this is the scene stage's only view of objects; it needs no model.

It is the classic dual-rate idea of abandoned-object detection: a pixel belongs to a left object
when it differs from the *long-term* background (something is there that was not) but has not
changed for `still_s` (it is not moving). Per camera, at the sampled frames:

- the long-term background is the per-pixel median of one grey frame a second over `history_s`,
  with people (every detected box, widened) and the objects already found painted over with the
  background before a frame joins, so neither a loiterer nor a left bag is ever absorbed into it.
  The median is taken again every `refresh_s` (every second while the history is short): over
  a minute of history, a few seconds more or less changes little, and the median was the
  finder's largest cost;
- `still_s` is checked against the sampled frames of the last seconds, people masked;
- blobs of such pixels, outside people, of a plausible size and no taller than wide (a person
  the detector missed is tall), whose edges are in the frame rather than in the background
  (else it is a ghost: something left a place the background still shows it at), are matched
  to the objects of the previous frames (overlap), so each keeps an id and its first time.

An object is reported once it has been still for `still_s`, with how long it has been there. An
object that is not found for a moment (a passer-by hides it) stays reported for up to
`max_unseen_s`, and its time there goes on when it is found again.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class _Object:
    object_id: int
    box: np.ndarray          # x0, y0, x1, y1 at the reduced size
    first_ts: float
    last_ts: float


def overlap_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over the smaller box's area."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area = lambda r: np.maximum((r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1]), 1e-9)  # noqa: E731
    return w * h / np.minimum(area(a)[:, None], area(b)[None, :])


def _edges(grey: np.ndarray) -> np.ndarray:
    return np.abs(cv2.Sobel(grey, cv2.CV_16S, 1, 0)).astype(np.float32) + np.abs(cv2.Sobel(grey, cv2.CV_16S, 0, 1))


class LeftObjects:
    """One camera's left-object finder; `update` once per sampled frame, in time order."""

    def __init__(self, width: int = 320, history_s: float = 60.0, still_s: float = 2.0, threshold: int = 28,
                 min_area: float = 2.5e-4, max_area: float = 0.02, min_aspect: float = 0.8, max_unseen_s: float = 3.0,
                 warmup_s: float = 4.0, refresh_s: float = 5.0):
        self.width, self.history_s, self.still_s, self.threshold = width, history_s, still_s, threshold
        self.refresh_s, self._refreshed = refresh_s, float("-inf")
        self.min_aspect = min_aspect
        self.min_area, self.max_area, self.max_unseen_s, self.warmup_s = min_area, max_area, max_unseen_s, warmup_s
        self._history: deque[tuple[float, np.ndarray]] = deque()    # one frame a second, people painted over
        self._recent: deque[tuple[float, np.ndarray, np.ndarray]] = deque()   # (ts, grey, people mask)
        self._background: np.ndarray | None = None
        self._background_edges: np.ndarray | None = None
        self._objects: list[_Object] = []
        self._next_id = 1
        self._first_ts: float | None = None

    def update(self, image: np.ndarray, ts: float, people: np.ndarray) -> np.ndarray:
        """A BGR frame at stream time `ts` and its person boxes (P, 4) in pixels (all detections,
        weak ones too) -> (M, 6) float32: x0, y0, x1, y1 (pixels), seconds there, object id."""
        h0, w0 = image.shape[:2]
        scale = self.width / w0
        size = (self.width, max(1, round(h0 * scale)))
        grey = cv2.GaussianBlur(cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA),
                                             cv2.COLOR_BGR2GRAY), (5, 5), 0)
        mask = self._people_mask(np.asarray(people, np.float32).reshape(-1, 4) * scale, size)
        if self._first_ts is None:
            self._first_ts = ts
        found = self._find(grey, mask, ts) if ts - self._first_ts >= self.warmup_s else []
        self._track(found, ts, mask)
        self._remember(grey, mask, ts)
        out = [(*(o.box / scale), ts - o.first_ts + self.still_s, o.object_id) for o in self._objects]
        return np.array(out, np.float32).reshape(-1, 6)

    @staticmethod
    def _people_mask(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Person boxes widened by a fifth of their height each way (limbs, shadows, a bag held)."""
        m = np.zeros((size[1], size[0]), bool)
        for x0, y0, x1, y1 in boxes:
            pad = 0.2 * (y1 - y0)
            m[max(0, int(y0 - pad)):max(0, int(y1 + pad) + 1), max(0, int(x0 - pad)):max(0, int(x1 + pad) + 1)] = True
        return m

    def _find(self, grey: np.ndarray, people: np.ndarray, ts: float) -> list[np.ndarray]:
        """Boxes (reduced size) of blobs that differ from the background and have not changed for still_s."""
        if self._background is None:
            return []
        old = [(g, m) for t, g, m in self._recent if ts - t <= self.still_s + 1e-6]
        if not old or ts - self._recent[0][0] < self.still_s - 1e-6:
            return []
        fg = cv2.absdiff(grey, self._background) > self.threshold
        still = np.ones_like(fg)
        for g, m in old:
            still &= (cv2.absdiff(grey, g) <= self.threshold) & ~m
        cand = (fg & still & ~people).astype(np.uint8)
        cand = cv2.morphologyEx(cand, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
        area = grey.shape[0] * grey.shape[1]
        edges_now = None
        out = []
        for x, y, w, h, a in stats[1:]:
            if not (self.min_area * area <= a <= self.max_area * area and a >= 0.3 * w * h and w >= self.min_aspect * h):
                continue
            ring = (slice(max(0, y - 2), y + h + 2), slice(max(0, x - 2), x + w + 2))
            edges_now = _edges(grey) if edges_now is None else edges_now
            if edges_now[ring].mean() > self._background_edges[ring].mean():    # else a ghost: the background holds the thing
                out.append(np.array([x, y, x + w, y + h], np.float32))
        return out

    def _track(self, found: list[np.ndarray], ts: float, people: np.ndarray) -> None:
        """Blobs continue the objects they mostly overlap (intersection over the smaller box); an
        object not found for up to `max_unseen_s` (hidden by a passer-by, or a flicker of the
        threshold) is kept, so that its time there goes on when it is found again. While people
        cover part of an object, its box does not shrink to the part still in view."""
        boxes = np.array(found, np.float32).reshape(-1, 4)
        old = np.array([o.box for o in self._objects], np.float32).reshape(-1, 4)
        score = overlap_smaller(old, boxes)
        taken: set[int] = set()
        for flat in np.argsort(-score, axis=None):
            i, j = divmod(int(flat), len(boxes))
            if score[i, j] < 0.5:
                break
            o = self._objects[i]
            if j in taken or o.last_ts == ts:
                continue
            x0, y0, x1, y1 = o.box.astype(int)
            covered = people[y0:y1 + 1, x0:x1 + 1].mean() > 0.1 if x1 > x0 and y1 > y0 else False
            o.box = np.concatenate([np.minimum(o.box[:2], boxes[j, :2]), np.maximum(o.box[2:], boxes[j, 2:])]) \
                if covered else boxes[j]
            o.last_ts = ts
            taken.add(j)
        for j in range(len(boxes)):
            if j not in taken:
                self._objects.append(_Object(self._next_id, boxes[j], ts, ts))
                self._next_id += 1
        self._objects = [o for o in self._objects if ts - o.last_ts <= self.max_unseen_s]

    def _remember(self, grey: np.ndarray, people: np.ndarray, ts: float) -> None:
        self._recent.append((ts, grey, people))
        while self._recent and ts - self._recent[0][0] > self.still_s + 1.0:
            self._recent.popleft()
        if self._history and ts - self._history[-1][0] < 1.0 - 1e-6:
            return
        frame = grey.copy()
        if self._background is not None:      # people and left objects never become background
            keep = people.copy()
            for o in self._objects:
                x0, y0, x1, y1 = o.box.astype(int)
                keep[y0:y1 + 1, x0:x1 + 1] = True
            frame[keep] = self._background[keep]
        self._history.append((ts, frame))
        while ts - self._history[0][0] > self.history_s:
            self._history.popleft()
        if len(self._history) >= 10 and 0.0 <= ts - self._refreshed < self.refresh_s - 1e-6:
            return
        self._refreshed = ts
        self._background = np.median(np.stack([g for _, g in self._history]), axis=0).astype(np.uint8)
        self._background_edges = _edges(self._background)

"""Person tracking, ByteTrack-style: stable ids per camera from matching predicted track boxes to
detections in two rounds.

1. Confident detections (score >= `high_score`) match the tracks first. Boxes overlap first (IoU).
   At low sampling rates (2 fps) a walker's box can move past any overlap, so a track may also
   continue to the detection nearest its predicted centre, within `max_jump` body heights (or as
   far as `max_speed` body heights a second carry a person in the time since the track was last
   seen: a runner a new track has no velocity for yet) and a plausible change of height. Overlaps
   always rank before distances.
2. Weak detections (below `high_score`: a person half hidden, blurred, far) may then continue the
   tracks still unmatched, by overlap only. This is ByteTrack's point: an occluded person keeps
   their id instead of being lost and reborn. A weak detection never starts a track: unmatched, it
   gets id 0, which means "not a tracked person".

Tracks move with a smoothed velocity between frames and end after `max_age_s` unseen.

The tracker also measures each person's *dwell*: how long someone has stood where they stand now.
It is measured by place, not by id: going back through the recent frames' detections (weak ones
too), as long as each gap without a person of similar height within `dwell_radius` body heights
of these feet is at most `dwell_gap_s`. A person standing still is often missed by the detector
for a frame or two, and ids can swap when others walk past; counting by id, a loiterer's dwell
kept starting again from 0. A person who has just moved more than the radius has a dwell of 0, so
a walker crossing a spot where someone stood does not inherit their time."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from stream.scene.kinematics import feet, heights_away


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of x0, y0, x1, y1 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    velocity: np.ndarray    # box change per second, to predict where the person is next
    last_ts: float
    feet: np.ndarray | None = None       # where its feet were when last seen, and when
    feet_ts: float = 0.0


class PersonTracker:
    def __init__(self, iou_threshold: float = 0.3, max_age_s: float = 2.0, max_jump: float = 0.6,
                 high_score: float = 0.5, max_speed: float = 3.5, dwell_radius: float = 0.5, dwell_gap_s: float = 2.5,
                 max_dwell_s: float = 300.0):
        self.iou_threshold, self.max_age_s, self.max_jump = iou_threshold, max_age_s, max_jump
        self.dwell_radius, self.dwell_gap_s, self.max_dwell_s = dwell_radius, dwell_gap_s, max_dwell_s
        self._seen: deque[tuple[float, np.ndarray, np.ndarray]] = deque()   # (ts, feet (P, 2), heights (P,))
        self._dwell = np.zeros(0, np.float32)
        self.max_speed = max_speed
        self.high_score = high_score
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, boxes: np.ndarray, ts: float, scores: np.ndarray | None = None) -> np.ndarray:
        """Assign a track id to each box of the frame at `ts`; returns (P,) int ids, 0 for a weak
        detection that continued no track. Without `scores` every detection counts as confident."""
        self._tracks = [t for t in self._tracks if ts - t.last_ts <= self.max_age_s]
        predicted = np.array([t.box + t.velocity * (ts - t.last_ts) for t in self._tracks]).reshape(-1, 4)
        strong = np.ones(len(boxes), bool) if scores is None else np.asarray(scores) >= self.high_score
        ids = np.zeros(len(boxes), np.int64)
        taken_t: set[int] = set()
        reach = np.array([max(self.max_jump, self.max_speed * (ts - t.last_ts)) for t in self._tracks])
        affinity = self._affinity(predicted, boxes, reach)
        affinity[:, ~strong] = 0.0
        self._match(affinity, boxes, ts, ids, taken_t)                       # round 1: confident detections
        weak = iou_matrix(predicted, boxes)
        weak[:, strong] = 0.0
        weak[weak < self.iou_threshold] = 0.0
        self._match(weak, boxes, ts, ids, taken_t)                           # round 2: weak ones, overlap only
        for bi in np.flatnonzero(strong & (ids == 0)):
            self._tracks.append(_Track(self._next_id, boxes[bi].copy(), np.zeros(4, np.float32), ts))
            ids[bi] = self._next_id
            self._next_id += 1
        self._measure_dwell(boxes, ts, ids)
        return ids

    def dwell(self) -> np.ndarray:
        """(P,) seconds someone has stood where each person of the last `update` stands."""
        return self._dwell.copy()

    def _measure_dwell(self, boxes: np.ndarray, ts: float, ids: np.ndarray) -> None:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        at = feet(boxes)
        heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        dwell = np.zeros(len(boxes), np.float32)
        seen_now = {t.track_id: t for t in self._tracks if t.last_ts == ts}     # the tracks this frame continued
        for p in range(len(boxes)):
            t = seen_now.get(int(ids[p]))
            moved = t is not None and t.feet is not None and ts - t.feet_ts <= self.dwell_gap_s and \
                heights_away(boxes[p:p + 1], t.feet)[0] > self.dwell_radius
            if t is not None:
                t.feet, t.feet_ts = at[p], ts
            if moved:
                continue                  # has just moved more than the radius
            since = last = ts
            for then, f, h in reversed(self._seen):
                if last - then > self.dwell_gap_s:
                    break
                ratio = h / heights[p]
                if ((np.hypot(*(f - at[p]).T) <= self.dwell_radius * heights[p]) & (ratio > 0.7) & (ratio < 1.4)).any():
                    since = last = then
            dwell[p] = ts - since
        self._seen.append((ts, at, heights))
        while ts - self._seen[0][0] > self.max_dwell_s:
            self._seen.popleft()
        self._dwell = dwell

    def _match(self, affinity: np.ndarray, boxes: np.ndarray, ts: float, ids: np.ndarray, taken_t: set[int]) -> None:
        """Greedy, best pair first; updates the matched tracks and writes their ids."""
        for flat in np.argsort(-affinity, axis=None):
            ti, bi = divmod(int(flat), len(boxes))
            if affinity[ti, bi] <= 0:
                break
            if ti in taken_t or ids[bi]:
                continue
            taken_t.add(ti)
            t = self._tracks[ti]
            dt = ts - t.last_ts
            if dt > 0:
                t.velocity = 0.5 * t.velocity + 0.5 * (boxes[bi] - t.box) / dt
            t.box, t.last_ts = boxes[bi].copy(), ts
            ids[bi] = t.track_id

    def _affinity(self, tracks: np.ndarray, boxes: np.ndarray, reach: np.ndarray) -> np.ndarray:
        """IoU where it reaches the threshold (1 >= a >= thr); otherwise a distance score in (0, thr)
        for a detection within each track's `reach` (body heights) and a 2/3..3/2 height ratio;
        <= 0 never matches."""
        ious = iou_matrix(tracks, boxes)
        if len(tracks) == 0 or len(boxes) == 0:
            return ious
        centre = lambda r: np.stack([(r[:, 0] + r[:, 2]) / 2, (r[:, 1] + r[:, 3]) / 2], 1)  # noqa: E731
        th, bh = tracks[:, 3] - tracks[:, 1], boxes[:, 3] - boxes[:, 1]
        dist = np.linalg.norm(centre(tracks)[:, None] - centre(boxes)[None], axis=2) / np.maximum(th[:, None], 1.0)
        ratio = bh[None, :] / np.maximum(th[:, None], 1.0)
        near = (1.0 - dist / np.maximum(reach[:, None], 1e-9)) * self.iou_threshold
        near = np.where((ratio > 2 / 3) & (ratio < 1.5), near, -1.0)
        return np.where(ious >= self.iou_threshold, ious, np.minimum(near, self.iou_threshold * 0.999))

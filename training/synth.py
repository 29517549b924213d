"""A ground-truthed streaming benchmark made from real footage: scripted anomalies composed into
vtest.avi with frame-exact spans.

No labelled anomaly video can be downloaded here, so this builds one. The footage is real: the
background is vtest.avi's own recording (its real pedestrians walking through it are the normal
traffic), and every actor is a real person of that recording, cut out of it. The people in it are
found with the project's person detector and followed with its tracker at the full 10 fps, and
each is cut out by background subtraction against the recording's median frame, so an actor walks
with their own gait. Actors are then scripted into other segments of the recording, at
other places, scales (the scene's perspective, fitted to the detections) and speeds:

    fall       walks, falls over (0.4 s), lies 3-6 s, gets up         span: the fall until up again
    scuffle    two people meet and shove each other back and forth    span: the shoving
    chase      one person runs after another                          span: while both run in view
    running    a walker breaks into a run                             span: the run in view
    dispersal  a standing group suddenly scatters outwards            span: the scattering
    loitering  a person stops and lingers on the spot 12-20 s         span: the lingering
    abandoned  a person puts a bag down and walks away; it stays      span: from the owner gone to the end

mixed with extra normal walkers (density varies by video). Each video is seeded and reproducible
(`--seed`; the train, val and test splits draw from separate seeds and separate actors).

Written in Hawkeye's layout:

    <out>/videos/<video>.mp4                       the whole video (the stream replays these)
    <out>/dataset/vid_split/<video>/<s>_<e>.mp4    its 1-second clips
    <out>/gt.json                                  ActivityNet-style ground truth, spans in seconds
                                                   (and frames: "frames": [first, end) at `fps`)
    <out>/manifest.json                            what made it (seed, counts, source sha256, the actors
                                                   each split casts); each annotation names its actors

    python -m training.synth --video data/vtest.avi --out data/bench [--seed 0] [--train 48 --val 8 --test 16]
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stream.cli import Parser
from engines import file_sha256

CATEGORIES = ("fall", "scuffle", "chase", "running", "dispersal", "loitering", "abandoned")
SPLITS = ("train", "val", "test")
GENERATOR_VERSION = 2
GROUND_Y = (200.0, 560.0)     # where feet can be in vtest's frame (the road and the lawn)
WALK = (0.55, 0.85)           # walking speed, body heights a second
RUN = (2.2, 3.0)              # running speed


# -- actors cut out of the footage ---------------------------------------------------------------
@dataclass
class Sprite:
    """One real person's walk: per frame a BGR patch and its alpha (0..1), feet at the bottom
    centre. `speed` is their own walking speed in body heights a second (gait plays at this rate)."""
    patches: list[np.ndarray]
    alphas: list[np.ndarray]
    speed: float
    track: int

    @property
    def height(self) -> float:
        return float(np.median([a.shape[0] for a in self.alphas]))


@dataclass
class Bank:
    sprites: list[Sprite]
    perspective: tuple[float, float]     # body height (px) = a * feet y + b
    background: np.ndarray

    def height_at(self, y: float) -> float:
        a, b = self.perspective
        return max(12.0, a * y + b)


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    if len(frames) < 50:
        raise ValueError(f"{path}: {len(frames)} frames; the benchmark needs a longer recording")
    return frames, float(fps)


def cut_out(frame: np.ndarray, background: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The person inside `box`: pixels that differ from the background, cleaned up, the connected
    parts that overlap the box's central column; feathered alpha. None if too little is left."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    x0, x1 = int(max(0, x0 - 0.1 * bw)), int(min(w, x1 + 0.1 * bw))
    y0, y1 = int(max(0, y0 - 0.05 * bh)), int(min(h, y1 + 0.05 * bh))
    if x1 - x0 < 8 or y1 - y0 < 20:
        return None
    patch, bg = frame[y0:y1, x0:x1], background[y0:y1, x0:x1]
    diff = np.abs(patch.astype(np.int16) - bg.astype(np.int16)).max(axis=2)
    mask = (diff > 28).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    cx = (x1 - x0) // 2
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_LEFT] <= cx + 0.25 * bw
            and stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] >= cx - 0.25 * bw
            and stats[i, cv2.CC_STAT_AREA] > 15]
    mask = np.isin(labels, keep).astype(np.uint8)
    if mask.sum() < 0.2 * bw * bh:
        return None
    ys, xs = np.nonzero(mask)
    ya, yb, xa, xb = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if (yb - ya) < 0.7 * bh:
        return None                                     # lost the head or the legs
    alpha = cv2.GaussianBlur(mask[ya:yb, xa:xb].astype(np.float32), (3, 3), 0)
    return patch[ya:yb, xa:xb].copy(), alpha


def build_bank(frames: list[np.ndarray], fps: float, detector, progress=print, min_len: int = 16) -> Bank:
    """Track every person of the recording at the full frame rate; keep those seen alone for at
    least `min_len` consecutive frames as sprites."""
    from stream.scene.tracking import PersonTracker

    background = np.median(np.stack(frames[::8]), axis=0).astype(np.uint8)
    tracker = PersonTracker(iou_threshold=0.3, max_age_s=0.3)
    runs: dict[int, list[tuple[int, np.ndarray]]] = {}
    feet_h = []
    for i, f in enumerate(frames):
        d = detector.detect([f])[0]
        ids = tracker.update(d.boxes, i / fps, d.scores)
        for k, (box, tid) in enumerate(zip(d.boxes, ids)):
            feet_h.append((box[3], box[3] - box[1]))
            others = np.delete(d.boxes, k, axis=0)
            alone = not len(others) or not np.any((others[:, 0] < box[2] + 10) & (others[:, 2] > box[0] - 10)
                                                  & (others[:, 1] < box[3]) & (others[:, 3] > box[1]))
            if tid and alone and box[3] < f.shape[0] - 2 and box[1] > 2 and box[3] - box[1] > 60:
                runs.setdefault(int(tid), []).append((i, box))
        if i % 100 == 0:
            progress(f"  cutting out actors: frame {i}/{len(frames)}")
    fh = np.array(feet_h)
    a, b = np.linalg.lstsq(np.c_[fh[:, 0], np.ones(len(fh))], fh[:, 1], rcond=None)[0]
    sprites = []
    for tid, seen in sorted(runs.items()):
        best: list[tuple[int, np.ndarray]] = []
        cur: list[tuple[int, np.ndarray]] = []
        for i, box in seen:                                  # the longest stretch of consecutive frames
            cur = cur + [(i, box)] if cur and i == cur[-1][0] + 1 else [(i, box)]
            best = cur if len(cur) > len(best) else best
        cuts = [cut_out(frames[i], background, box) for i, box in best]
        cuts = [c for c in cuts if c is not None]
        if len(cuts) < min_len:
            continue
        boxes = np.array([box for _, box in best])
        heights = boxes[:, 3] - boxes[:, 1]
        feet_x = (boxes[:, 0] + boxes[:, 2]) / 2
        speed = abs(feet_x[-1] - feet_x[0]) / heights.mean() / (len(best) / fps)
        if speed < 0.2:
            continue                                          # standing still: no gait to play
        right = feet_x[-1] > feet_x[0]                        # sprites face right: mirror the others
        patches = [p if right else p[:, ::-1].copy() for p, _ in cuts]
        alphas = [al if right else al[:, ::-1].copy() for _, al in cuts]
        sprites.append(Sprite(patches, alphas, float(np.clip(speed, 0.3, 1.2)), tid))
    if len(sprites) < 6:
        raise ValueError(f"only {len(sprites)} people could be cut out of the recording; the benchmark needs 6")
    return Bank(sprites, (float(a), float(b)), background)


# -- scripts: where each actor is in every frame -------------------------------------------------
@dataclass
class Actor:
    """Per frame of the video: visible, feet position, body height, gait frame (index into the
    sprite), lean angle (degrees, about the feet), facing left."""
    sprite: Sprite
    n: int
    tint: tuple[float, float, float] = (0.0, 1.0, 1.0)   # hue shift (OpenCV units, 0..180), saturation and value scales
    visible: np.ndarray = field(init=False)
    x: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)
    gait: np.ndarray = field(init=False)
    angle: np.ndarray = field(init=False)
    left: np.ndarray = field(init=False)

    def __post_init__(self):
        self.visible = np.zeros(self.n, bool)
        self.x, self.y, self.gait, self.angle = (np.zeros(self.n) for _ in range(4))
        self.left = np.zeros(self.n, bool)


class Script:
    """Builds actors frame by frame: `move` walks or runs an actor along a heading, `hold` keeps
    them in place (standing, lying, shoving); positions are in pixels, speeds in body heights a second."""

    def __init__(self, bank: Bank, n: int, fps: float, size: tuple[int, int], rng: np.random.Generator):
        self.bank, self.n, self.fps, self.size, self.rng = bank, n, fps, size, rng

    def actor(self, sprites: list[Sprite]) -> Actor:
        """A person from the bank in clothes of other colours: the actors are vtest's own pedestrians,
        who also walk normally in every background, so each composed person (actor or extra walker)
        is recoloured, and who someone is says nothing about what they do."""
        tint = (float(self.rng.uniform(0, 180)), float(self.rng.uniform(0.6, 1.6)), float(self.rng.uniform(0.7, 1.3)))
        return Actor(sprites[self.rng.integers(len(sprites))], self.n, tint)

    def inside(self, x: float, y: float, margin: float = 0.0) -> bool:
        w, _ = self.size
        return -margin <= x <= w + margin and GROUND_Y[0] - 20 <= y <= GROUND_Y[1] + 10

    def move(self, a: Actor, t0: int, t1: int, x: float, y: float, heading: float, speed: float,
             stop_outside: bool = True) -> tuple[int, float, float]:
        """Frames [t0, t1): move from (x, y) along `heading` (radians, 0 = right, y down) at
        `speed`; the gait plays at speed / the sprite's own speed. Returns where it stopped."""
        if t0 >= self.n:
            return t0, x, y
        dx, dy = np.cos(heading), np.sin(heading)
        rate = float(np.clip(speed / a.sprite.speed, 0.5, 3.0))
        g = a.gait[t0 - 1] if t0 > 0 else self.rng.uniform(0, len(a.sprite.patches))
        t = t0
        for t in range(t0, min(t1, self.n)):
            h = self.bank.height_at(y)
            step = speed * h / self.fps
            x, y = x + dx * step, float(np.clip(y + dy * step, *GROUND_Y))
            g += rate
            a.visible[t], a.x[t], a.y[t], a.gait[t], a.left[t] = True, x, y, g, dx < 0
            if stop_outside and not self.inside(x, y, margin=0.3 * h):
                a.visible[t] = False
                return t, x, y
        return min(t1, self.n), x, y

    def hold(self, a: Actor, t0: int, t1: int, x: float, y: float, *, left: bool, sway: float = 0.0,
             shove: float = 0.0, angle: float | np.ndarray = 0.0, gait: float | None = None, phase: float = 0.0) -> None:
        """Frames [t0, t1) in place: `sway` (body heights) wanders slowly, `shove` (body heights)
        rocks back and forth at ~2.5 Hz with a lean; `angle` per frame or fixed."""
        g = self.rng.uniform(0, len(a.sprite.patches)) if gait is None else gait
        for k, t in enumerate(range(t0, min(t1, self.n))):
            h = self.bank.height_at(y)
            s = k / self.fps
            ox = sway * h * np.sin(0.7 * s + phase) + shove * h * np.sin(2 * np.pi * 2.5 * s + phase)
            oy = 0.3 * sway * h * np.sin(0.45 * s + phase)
            lean = 12.0 * np.sin(2 * np.pi * 2.5 * s + phase) if shove else 0.0
            if shove:
                g += self.rng.uniform(0.5, 2.5)
            elif sway:
                g += 0.15
            ang = angle[k] if isinstance(angle, np.ndarray) else angle
            a.visible[t], a.x[t], a.y[t], a.gait[t], a.left[t], a.angle[t] = True, x + ox, y + oy, g, left, ang + lean

    def edge_start(self) -> tuple[float, float, float]:
        """A point at the left or right edge of the ground and a heading into the frame."""
        w, _ = self.size
        y = self.rng.uniform(*GROUND_Y)
        if self.rng.random() < 0.5:
            return -5.0, y, self.rng.uniform(-0.25, 0.25)
        return w + 5.0, y, np.pi + self.rng.uniform(-0.25, 0.25)

    def spot(self) -> tuple[float, float]:
        w, _ = self.size
        return self.rng.uniform(0.15 * w, 0.85 * w), self.rng.uniform(GROUND_Y[0] + 30, GROUND_Y[1] - 20)

    def walk_to(self, a: Actor, t0: int, x: float, y: float, speed: float) -> None:
        """Enter from the nearer edge and walk to (x, y), arriving at frame t0."""
        w, _ = self.size
        sx = -5.0 if x < w / 2 else w + 5.0
        sy = float(np.clip(y + self.rng.uniform(-60, 60), *GROUND_Y))
        heading = np.arctan2(y - sy, x - sx)
        dist = np.hypot(x - sx, y - sy)
        frames = int(dist / (speed * self.bank.height_at((y + sy) / 2) / self.fps))
        start = max(0, t0 - frames)
        self.move(a, start, t0, sx, sy, heading, speed, stop_outside=False)


# -- events --------------------------------------------------------------------------------------
def event(kind: str, s: Script, sprites: list[Sprite], t0: int) -> tuple[list[Actor], tuple[int, int] | None, list]:
    """Script one event starting around frame t0 -> its actors, its span [first, end) in frames,
    and props (bags)."""
    rng, fps, n = s.rng, s.fps, s.n
    walk, run = rng.uniform(*WALK), rng.uniform(*RUN)
    sec = lambda lo, hi: int(rng.uniform(lo, hi) * fps)  # noqa: E731
    if kind == "running":
        a = s.actor(sprites)
        x, y, heading = s.edge_start()
        t, x, y = s.move(a, t0 - sec(1, 3), t0, x, y, heading, walk)
        end, _, _ = s.move(a, t0, n, x, y, heading + rng.uniform(-0.3, 0.3), run)
        return [a], (t0, end), []
    if kind == "chase":
        lead, chaser = s.actor(sprites), s.actor(sprites)
        x, y, heading = s.edge_start()
        end1, _, _ = s.move(lead, t0, n, x, y, heading, run)
        gap = rng.uniform(1.0, 1.6) * s.bank.height_at(y)
        lag = int(gap / (run * s.bank.height_at(y) / fps))
        end2, _, _ = s.move(chaser, t0 + lag, n, x, y, heading, run * 1.05)
        return [lead, chaser], (t0 + lag, max(end1, end2)), []
    if kind == "fall":
        a = s.actor(sprites)
        x, y = s.spot()
        heading = 0.0 if rng.random() < 0.5 else np.pi
        t, x, y = s.move(a, t0 - sec(1, 3), t0, x - np.cos(heading) * 40, y, heading, walk, stop_outside=False)
        lie, down, up = sec(3, 6), 4, 8
        side = 1 if rng.random() < 0.5 else -1
        angle = np.concatenate([np.linspace(0, 88, down), np.full(lie, 88.0), np.linspace(88, 0, up)]) * side
        s.hold(a, t0, t0 + len(angle), x, y, left=heading > 1, angle=angle, gait=a.gait[max(t0 - 1, 0)])
        s.move(a, t0 + len(angle), n, x, y, heading, walk)
        return [a], (t0, min(n, t0 + len(angle))), []
    if kind == "scuffle":
        a, b = s.actor(sprites), s.actor(sprites)
        x, y = s.spot()
        h = s.bank.height_at(y)
        d = 0.18 * h
        s.walk_to(a, t0, x - d, y, walk)
        s.walk_to(b, t0, x + d, y, walk)
        a.left[:t0] = False
        b.left[:t0] = True
        dur = sec(3, 6)
        s.hold(a, t0, t0 + dur, x - d, y, left=False, shove=0.1, phase=0.0)
        s.hold(b, t0, t0 + dur, x + d, y, left=True, shove=0.1, phase=np.pi)
        s.move(a, t0 + dur, n, x - d, y, np.pi + rng.uniform(-0.4, 0.4), walk)
        s.move(b, t0 + dur, n, x + d, y, rng.uniform(-0.4, 0.4), walk)
        return [a, b], (t0, min(n, t0 + dur)), []
    if kind == "dispersal":
        x, y = s.spot()
        h = s.bank.height_at(y)
        k = int(rng.integers(4, 7))
        actors = []
        stand = sec(2, 4)
        dur = 0
        for i in range(k):
            a = s.actor(sprites)
            ang = 2 * np.pi * i / k + rng.uniform(-0.3, 0.3)
            px, py = x + 0.55 * h * np.cos(ang), y + 0.25 * h * np.sin(ang)
            s.hold(a, max(0, t0 - stand), t0, px, py, left=np.cos(ang) > 0, sway=0.03, phase=rng.uniform(0, 6))
            end, _, _ = s.move(a, t0, min(n, t0 + sec(2.5, 3.5)), px, py, ang, rng.uniform(*RUN))
            s.move(a, end, n, a.x[end - 1], a.y[end - 1], ang, walk)
            dur = max(dur, end - t0)
            actors.append(a)
        return actors, (t0, min(n, t0 + dur)), []
    if kind == "loitering":
        a = s.actor(sprites)
        x, y = s.spot()
        s.walk_to(a, t0, x, y, walk)
        dur = sec(12, 20)
        k, left = t0, bool(rng.random() < 0.5)
        while k < t0 + dur:                                   # lingers, turning now and then
            seg = sec(2, 5)
            s.hold(a, k, min(k + seg, t0 + dur), x, y, left=left, sway=0.08, phase=rng.uniform(0, 6))
            k, left = k + seg, not left
        s.move(a, t0 + dur, n, x, y, 0.0 if rng.random() < 0.5 else np.pi, walk)
        return [a], (t0, min(n, t0 + dur)), []
    if kind == "abandoned":
        a = s.actor(sprites)
        x, y = s.spot()
        h = s.bank.height_at(y)
        s.walk_to(a, t0, x, y, walk)
        put = sec(1, 2)
        s.hold(a, t0, t0 + put, x, y, left=False, gait=a.gait[max(t0 - 1, 0)])
        heading = 0.0 if rng.random() < 0.5 else np.pi
        s.move(a, t0 + put, n, x, y, heading, walk)
        away = t0 + put + int(1.2 / walk * fps)               # the owner 1.2 body heights away: the bag is left
        bag = {"x": x + 0.25 * h, "y": y, "h": h, "from": t0 + put // 2, "colour": _bag_colour(rng),
               "shape": (rng.uniform(0.28, 0.4), rng.uniform(0.16, 0.24))}
        return [a], (min(away, n), n), [bag]
    raise ValueError(f"unknown event {kind!r}; choose from {CATEGORIES}")


def _bag_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    palette = [(30, 30, 35), (40, 25, 90), (90, 60, 20), (20, 20, 120), (60, 60, 60), (30, 70, 30)]
    return palette[int(rng.integers(len(palette)))]


def draw_bag(img: np.ndarray, bag: dict) -> None:
    """A holdall on the ground: a rounded body, a darker base, a handle and a soft shadow."""
    w, hgt = bag["shape"][0] * bag["h"], bag["shape"][1] * bag["h"]
    x, y = bag["x"], bag["y"]
    overlay = img.copy()
    cv2.ellipse(overlay, (int(x), int(y)), (int(w * 0.6), max(2, int(hgt * 0.15))), 0, 0, 360, (40, 40, 40), -1)
    img[:] = cv2.addWeighted(overlay, 0.4, img, 0.6, 0)
    x0, y0, x1, y1 = int(x - w / 2), int(y - hgt), int(x + w / 2), int(y)
    r = max(2, int(hgt * 0.3))
    col = bag["colour"]
    cv2.rectangle(img, (x0 + r, y0), (x1 - r, y1), col, -1)
    cv2.rectangle(img, (x0, y0 + r), (x1, y1 - r), col, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(img, (cx, cy), r, col, -1)
    dark = tuple(int(c * 0.6) for c in col)
    cv2.rectangle(img, (x0 + 1, int(y1 - hgt * 0.25)), (x1 - 1, y1), dark, -1)
    cv2.ellipse(img, (int(x), y0), (max(2, int(w * 0.25)), max(2, int(hgt * 0.35))), 0, 180, 360, dark, 2)


def recolour(patch: np.ndarray, tint: tuple[float, float, float]) -> np.ndarray:
    """A BGR patch with its hue rotated and its saturation and value scaled."""
    if tint == (0.0, 1.0, 1.0):
        return patch
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + tint[0]) % 180
    hsv[..., 1:] *= tint[1:]
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)


def paste(img: np.ndarray, sprite: Sprite, gait: float, x: float, y: float, height: float, angle: float, left: bool,
          tint: tuple[float, float, float] = (0.0, 1.0, 1.0)) -> None:
    """Alpha-blend the sprite's gait frame, recoloured by `tint`, with its feet at (x, y), scaled to
    `height`, leaning `angle` degrees about the feet, mirrored when facing left."""
    i = int(gait) % len(sprite.patches)
    patch, alpha = recolour(sprite.patches[i], tint), sprite.alphas[i]
    scale = height / sprite.height
    ph, pw = patch.shape[:2]
    nw, nh = max(2, int(round(pw * scale))), max(4, int(round(ph * scale)))
    patch = cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    alpha = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if left:
        patch, alpha = patch[:, ::-1], alpha[:, ::-1]
    feet = (nw / 2.0, nh - 1.0)
    side = int(np.ceil(np.hypot(nw, nh))) + 2
    m = cv2.getRotationMatrix2D(feet, -angle, 1.0)          # positive angle leans right (clockwise on screen)
    m[:, 2] += (side - feet[0], side - feet[1])             # feet at (side, side) of a 2side canvas
    patch = cv2.warpAffine(np.ascontiguousarray(patch), m, (2 * side, 2 * side), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(np.ascontiguousarray(alpha), m, (2 * side, 2 * side), flags=cv2.INTER_LINEAR)
    ox, oy = int(round(x)) - side, int(round(y)) - side
    H, W = img.shape[:2]
    ax0, ay0, ax1, ay1 = max(0, ox), max(0, oy), min(W, ox + 2 * side), min(H, oy + 2 * side)
    if ax1 <= ax0 or ay1 <= ay0:
        return
    a = alpha[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox, None]
    src = patch[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox].astype(np.float32)
    dst = img[ay0:ay1, ax0:ax1].astype(np.float32)
    img[ay0:ay1, ax0:ax1] = (a * src + (1 - a) * dst).astype(np.uint8)


# -- videos ----------------------------------------------------------------------------------------
@dataclass
class VideoPlan:
    name: str
    subset: str
    base_start: int              # first frame of the recording used as the background
    mirror: bool
    actors: list[Actor]
    props: list[dict]
    annotations: list[dict]      # {"segment": [s, e], "frames": [f0, f1], "label"}


def plan_video(bank: Bank, sprites: list[Sprite], name: str, subset: str, kinds: list[str], n: int, fps: float,
               n_source: int, size: tuple[int, int], rng: np.random.Generator, extra_walkers: int) -> VideoPlan:
    s = Script(bank, n, fps, size, rng)
    actors, props, annotations = [], [], []
    slots = np.linspace(0.15 * n, 0.75 * n, len(kinds) + 1)
    for k, kind in enumerate(kinds):
        t0 = int(rng.uniform(slots[k], slots[k + 1] - 0.1 * n)) if len(kinds) > 1 else int(rng.uniform(0.2 * n, 0.55 * n))
        got, span, extra = event(kind, s, sprites, t0)
        actors += got
        props += extra
        if span and span[1] - span[0] >= int(fps // 2):
            f0, f1 = int(span[0]), int(span[1])
            annotations.append({"segment": [round(f0 / fps, 3), round(f1 / fps, 3)], "frames": [f0, f1], "label": kind,
                                "actors": sorted({a.sprite.track for a in got})})
    for _ in range(extra_walkers):               # more normal traffic
        a = s.actor(sprites)
        x, y, heading = s.edge_start()
        s.move(a, int(rng.uniform(0, 0.8 * n)), n, x, y, heading, rng.uniform(*WALK))
        actors.append(a)
    start = int(rng.integers(0, max(1, n_source - n)))
    return VideoPlan(name, subset, start, bool(rng.random() < 0.5), actors, props, annotations)


def render(plan: VideoPlan, frames: list[np.ndarray], bank: Bank, n: int) -> list[np.ndarray]:
    out = []
    for t in range(n):
        img = frames[(plan.base_start + t) % len(frames)].copy()
        if plan.mirror:
            img = np.ascontiguousarray(img[:, ::-1])
        for bag in plan.props:
            if t >= bag["from"]:
                draw_bag(img, bag)
        here = sorted((a for a in plan.actors if a.visible[t]), key=lambda a: a.y[t])   # far ones first
        for a in here:
            paste(img, a.sprite, a.gait[t], a.x[t], a.y[t], bank.height_at(a.y[t]), a.angle[t], bool(a.left[t]), a.tint)
        out.append(img)
    return out


def write_video(path: Path, frames: list[np.ndarray], fps: float, crf: int = 20) -> None:
    """H.264 (PyAV, libx264), every frame kept: the stream decodes it like a camera recording."""
    import av
    from fractions import Fraction

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        st.width, st.height, st.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        st.options = {"preset": "veryfast", "crf": str(crf), "g": str(int(fps * 2))}
        for f in frames:
            for packet in st.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)


def write_clips(folder: Path, frames: list[np.ndarray], fps: float, crf: int = 20) -> None:
    """Hawkeye's vid_split: 1-second clips named <start>_<end>.mp4 (seconds)."""
    per = int(round(fps))
    for k in range(0, len(frames), per):
        chunk = frames[k:k + per]
        write_video(folder / f"{k // per}_{k // per + 1}.mp4", chunk, fps, crf)


def split_kinds(count: int, normal_share: float, rng: np.random.Generator) -> list[list[str]]:
    """Each video's events: categories dealt round-robin (balanced), one or two a video, some none."""
    deck, out = [], []
    for i in range(count):
        if rng.random() < normal_share:
            out.append([])
            continue
        k = 2 if rng.random() < 0.35 else 1
        kinds = []
        for _ in range(k):
            if not deck:
                deck = list(rng.permutation(CATEGORIES))
            kinds.append(str(deck.pop()))
        out.append(kinds if len(set(kinds)) == len(kinds) else kinds[:1])
    return out


_shared: dict = {}     # what every video's rendering reads: set before the worker processes fork, shared with them


def _make_video(job: tuple[str, int, int, list[str]]) -> tuple[str, dict]:
    """One video of the benchmark, a pure function of its job and the shared bank: rendered,
    written, and its ground truth recorded last (gen/<video>.json, atomically), so an
    interrupted run resumes after the videos it finished."""
    subset, si, i, kinds = job
    g = _shared
    name = f"{subset}_{i:03d}"
    vrng = np.random.default_rng([g["seed"], si, i])
    plan = plan_video(g["bank"], g["by_split"][subset] or g["bank"].sprites, name, subset, kinds, g["n"], g["fps"],
                      len(g["frames"]), g["size"], vrng, extra_walkers=int(vrng.integers(0, 4)))
    video_frames = render(plan, g["frames"], g["bank"], g["n"])
    entry = {"subset": subset, "duration": g["n"] / g["fps"], "fps": g["fps"], "frames": g["n"],
             "annotations": plan.annotations}
    crf = 20
    if g["cameras"]:                             # its own stream of draws: the plan is the same with or without
        from training.cameras import Camera
        cam = Camera.draw(np.random.default_rng([g["seed"], si, i, 1]))
        warp = cam.warp(g["size"])
        video_frames = [cam.apply(f, k, warp) for k, f in enumerate(video_frames)]
        entry["camera"], crf = cam.to_dict(), cam.crf
    write_video(g["out"] / "videos" / f"{name}.mp4", video_frames, g["fps"], crf)
    if g["clips"]:
        write_clips(g["out"] / "dataset" / "vid_split" / name, video_frames, g["fps"], crf)
    done = g["out"] / "gen" / f"{name}.json"
    done.parent.mkdir(parents=True, exist_ok=True)
    done.with_suffix(".part").write_text(json.dumps(entry) + "\n")
    done.with_suffix(".part").replace(done)
    return name, entry


def generate(video: Path, out: Path, *, seed: int = 0, counts: dict[str, int] | None = None, seconds: float = 30.0,
             clips: bool = True, detector=None, bank: Bank | None = None, progress=print, workers: int = 1,
             cameras: bool = False) -> dict:
    """Build the benchmark; returns the ground truth (also written to <out>/gt.json). `bank`:
    actors already cut out of this video (else they are cut out here, with `detector`). Videos are
    rendered by `workers` processes side by side; a run that was interrupted resumes after the
    videos it finished (the same settings are required: another seed, length or source is refused).
    `cameras`: each video through a camera of its own (training/cameras.py), recorded in its
    ground truth entry and the manifest."""
    counts = counts or {"train": 48, "val": 8, "test": 16}
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; choose from {SPLITS}")
    params = {"generator_version": GENERATOR_VERSION, "seed": seed, "seconds": seconds, "clips": clips,
              "cameras": cameras, "source_sha256": file_sha256(video)}
    params_path = out / "gen" / "params.json"
    if params_path.exists() and json.loads(params_path.read_text()) != params:
        raise ValueError(f"{out} holds a benchmark made with other settings ({params_path}); "
                         "use another --out, or delete it to start again")
    params_path.parent.mkdir(parents=True, exist_ok=True)
    params_path.write_text(json.dumps(params) + "\n")
    frames, fps = read_video(video)
    t0 = time.time()
    if bank is None:
        if detector is None:
            from training.extract import person_detector
            detector = person_detector()
        bank = build_bank(frames, fps, detector, progress)
    progress(f"{len(bank.sprites)} actors cut out of {video.name}; height = {bank.perspective[0]:.3f} y + "
             f"{bank.perspective[1]:.1f} px ({time.time() - t0:.0f} s)")
    # actors are split between the subsets, so no test actor was seen in training
    by_split = {"train": [s for i, s in enumerate(bank.sprites) if i % 5 < 3],
                "val": [s for i, s in enumerate(bank.sprites) if i % 5 == 3],
                "test": [s for i, s in enumerate(bank.sprites) if i % 5 == 4]}
    jobs = [(subset, si, i, kinds) for si, subset in enumerate(SPLITS) if counts.get(subset)
            for i, kinds in enumerate(split_kinds(counts[subset], 0.15, np.random.default_rng([seed, si])))]
    database = {}
    for subset, _, i, _ in jobs:                 # finished by an earlier, interrupted run
        done = out / "gen" / f"{subset}_{i:03d}.json"
        if done.exists():
            database[done.stem] = json.loads(done.read_text())
    todo = [j for j in jobs if f"{j[0]}_{j[2]:03d}" not in database]
    if database:
        progress(f"{len(database)} of {len(jobs)} videos already made: resuming")
    _shared.update(bank=bank, frames=frames, fps=fps, seed=seed, by_split=by_split, out=out, clips=clips,
                   cameras=cameras, n=int(round(seconds * fps)), size=(frames[0].shape[1], frames[0].shape[0]))

    def made(name: str, entry: dict) -> None:
        database[name] = entry
        labels = ", ".join(a["label"] for a in entry["annotations"]) or "normal only"
        progress(f"[{len(database)}/{len(jobs)}] {name}: {labels} ({time.time() - t0:.0f} s)")
    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        for job in todo:
            made(*_make_video(job))
    else:                                        # forked: the bank and the frames are shared, not copied
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for name, entry in pool.imap_unordered(_make_video, todo):
                made(name, entry)
    _shared.clear()
    gt = {"version": f"hawkwatch-synth-{GENERATOR_VERSION}",
          "database": {name: database[name] for name in sorted(database, key=lambda v: (SPLITS.index(v.split("_")[0]), v))}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "gt.json").write_text(json.dumps(gt, indent=1) + "\n")
    (out / "manifest.json").write_text(json.dumps({
        "generator_version": GENERATOR_VERSION, "seed": seed, "counts": counts, "seconds": seconds, "fps": fps,
        "source": video.name, "source_sha256": params["source_sha256"], "actors": len(bank.sprites),
        # which people of the recording (tracker ids) each split may cast: disjoint, so no test actor was seen
        "actors_by_split": {k: sorted(sp.track for sp in v) for k, v in by_split.items()},
        "cameras": {name: e["camera"] for name, e in gt["database"].items() if "camera" in e},
        "perspective": bank.perspective}, indent=1) + "\n")
    return gt


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m training.synth", __doc__)
    ap.add_argument("--video", type=Path, default=Path("data/vtest.avi"), help="the real footage actors come from")
    ap.add_argument("--out", type=Path, default=Path("data/bench"), help="the benchmark folder (videos, gt.json)")
    ap.add_argument("--seed", type=int, default=0, help="every draw follows from it: same seed, same benchmark")
    ap.add_argument("--train", type=int, default=48, help="videos in the train split")
    ap.add_argument("--val", type=int, default=8, help="videos in the val split")
    ap.add_argument("--test", type=int, default=16, help="videos in the test split")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each video")
    ap.add_argument("--no-clips", action="store_true", help="skip the 1-second vid_split clips")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes rendering videos side by side")
    ap.add_argument("--cameras", action="store_true",
                    help="each video through a camera of its own: zoom, tilt, colour, blur, noise, H.264 quality "
                         "(off for generator version 2, whose figures the README reports)")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be at least 1, got {args.workers}")
    try:
        generate(args.video, args.out, seed=args.seed, counts={"train": args.train, "val": args.val, "test": args.test},
                 seconds=args.seconds, clips=not args.no_clips, progress=lambda m: print(m, file=sys.stderr, flush=True),
                 workers=args.workers, cameras=args.cameras)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

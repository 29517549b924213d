"""A ground-truthed streaming benchmark made from real footage: scripted anomalies composed into
vtest.avi with frame-exact spans (generator version 3).

No labelled anomaly video can be downloaded here, so this builds one. The footage is real: the
background is vtest.avi's own recording (its real pedestrians walking through it are the normal
traffic), and every actor is a real person of that recording, cut out of it. The people in it are
found with the project's person detector and followed with its tracker at the full 10 fps, the
pieces of each person's track linked (`link_tracks`), and each is cut out with BlazePose's
segmentation and background subtraction together (training/mattes.py), so an actor walks with
their own gait; look-alikes never seen together count as one person (`_distinct`). Actors are
dressed anew (clothes only) and scripted into other segments of the recording, at other places,
scales (the scene's perspective, fitted to the detections) and speeds:

    fall       walks, falls about the feet (0.3-1 s), lies 3-6 s in a pose     span: the fall until up again
               of its own, gets up
    scuffle    two people meet and shove each other back and forth            span: the shoving
    chase      one person runs after another                                   span: while both run in view
    running    a walker breaks into a run (quicker steps, longer strides)     span: the run in view
    dispersal  a group walks up, stands together, then scatters outwards      span: the scattering
    loitering  a person stops and lingers on the spot 12-20 s                  span: the lingering
    abandoned  a person puts a bag down and walks away; it stays               span: from the owner gone to the end
    theft      as abandoned, then someone else picks the bag up and goes       span: from their arrival until away

mixed with extra normal walkers (density varies by video), each video seen through a camera of
its own (training/cameras.py). Each video is seeded and reproducible (`--seed`; the train, val
and test splits draw from separate seeds and separate people).

Written in Hawkeye's layout:

    <out>/videos/<video>.mp4                       the whole video (the stream replays these)
    <out>/dataset/vid_split/<video>/<s>_<e>.mp4    its 1-second clips
    <out>/gt.json                                  ActivityNet-style ground truth, spans in seconds
                                                   (and frames: "frames": [first, end) at `fps`)
    <out>/manifest.json                            what made it (seed, counts, source sha256, the actors
                                                   each split casts); each annotation names its actors

    python -m training.synth --video data/vtest.avi --out data/bench [--seed 0] [--train 300 --val 40 --test 80]
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

from engines.cli import Parser
from engines import file_sha256
from training.backdrops import GROUND_Y, Backdrop, frame_at, read_frames, real_backdrops
from training.mattes import PALETTE, Segmenter, matte, recolour, regions

CATEGORIES = ("fall", "scuffle", "chase", "running", "dispersal", "loitering", "abandoned", "theft")
SPLITS = ("train", "val", "test")
GENERATOR_VERSION = 3
WALK = (0.55, 0.85)           # walking speed, body heights a second
RUN = (1.6, 2.4)              # running speed (a person 1.75 m tall: 2.8-4.2 m/s)


# -- actors cut out of the footage ---------------------------------------------------------------
@dataclass
class Sprite:
    """One real person's walk: per frame a BGR patch, its alpha (0..1) and its clothes (`mattes.regions`),
    feet at the bottom centre. `speed` is their own walking speed in body heights a second (gait
    plays at this rate); `stand` the frame whose legs are closest together (standing, lying);
    `track` the person's id (the first tracker id of their track)."""
    patches: list[np.ndarray]
    alphas: list[np.ndarray]
    speed: float
    track: int
    parts: list[np.ndarray] = field(default_factory=list)
    stand: int = 0

    @property
    def height(self) -> float:
        return float(np.median([a.shape[0] for a in self.alphas]))


@dataclass
class Bank:
    sprites: list[Sprite]
    perspective: tuple[float, float]     # body height (px) = a * feet y + b
    background: np.ndarray | None
    ground: tuple[float, float] = GROUND_Y   # where feet can be (y, px)

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


def link_tracks(tracks: dict[int, list[tuple[int, np.ndarray]]], fps: float) -> dict[int, int]:
    """Tracker id -> person id. A tracker loses people behind others and starts a new id when they
    come out; a track that starts within 2 s of another's end, where that one was heading, at the
    same size, continues it (greedily, best match first). The person's id is their first track's."""
    ends = {}
    for tid, seen in tracks.items():
        f = np.array([i for i, _ in seen])
        b = np.array([box for _, box in seen])
        feet = np.c_[(b[:, 0] + b[:, 2]) / 2, b[:, 3]]
        h = b[:, 3] - b[:, 1]
        k = min(5, len(f))
        v = (feet[-1] - feet[-k]) / max(1, f[-1] - f[-k])
        ends[tid] = (f[0], f[-1], feet[0], feet[-1], h[:k].mean(), h[-k:].mean(), v)
    pairs = []
    for a, (_, a1, _, a_end, _, a_h, a_v) in ends.items():
        for b, (b0, _, b_start, _, b_h, _, _) in ends.items():
            gap = b0 - a1
            if a != b and 0 < gap <= 2 * fps:
                miss = np.hypot(*(b_start - (a_end + a_v * gap))) / a_h
                if miss < 0.6 and 0.7 < b_h / a_h < 1.4:
                    pairs.append((miss + gap / (2 * fps), a, b))
    person = {t: t for t in tracks}
    after, before = set(), set()
    for _, a, b in sorted(pairs):
        if a not in after and b not in before:
            after.add(a)
            before.add(b)
            person[b] = a

    def root(t: int) -> int:
        while person[t] != t:
            t = person[t]
        return t
    return {t: root(t) for t in tracks}


def build_bank(frames: list[np.ndarray], fps: float, detector, segmenter, progress=print, min_len: int = 12) -> Bank:
    """Track every person of the recording at the full frame rate, link the pieces of each person's
    track (`link_tracks`), and keep everyone seen alone, whole and walking for at least `min_len`
    consecutive frames, cut out with `mattes.matte` (BlazePose's segmentation with `segmenter` and
    background subtraction). Two people who never share a frame and dress alike are taken for one
    person seen twice: the one seen less is dropped, so nobody can play in two splits."""
    from stream.scene.tracking import PersonTracker

    background = np.median(np.stack(frames[::8]), axis=0).astype(np.uint8)
    tracker = PersonTracker(iou_threshold=0.3, max_age_s=0.3)
    tracks: dict[int, list[tuple[int, np.ndarray]]] = {}
    usable: set[tuple[int, int]] = set()
    feet_h = []
    for i, f in enumerate(frames):
        d = detector.detect([f])[0]
        ids = tracker.update(d.boxes, i / fps, d.scores)
        for k, (box, tid) in enumerate(zip(d.boxes, ids)):
            feet_h.append((box[3], box[3] - box[1]))
            if not tid:
                continue
            tracks.setdefault(int(tid), []).append((i, box))
            others = np.delete(d.boxes, k, axis=0)
            alone = not len(others) or not np.any((others[:, 0] < box[2] + 10) & (others[:, 2] > box[0] - 10)
                                                  & (others[:, 1] < box[3]) & (others[:, 3] > box[1]))
            if alone and box[3] < f.shape[0] - 2 and box[1] > 2 and box[3] - box[1] > 50:
                usable.add((i, int(tid)))
        if i % 100 == 0:
            progress(f"  finding people: frame {i}/{len(frames)}")
    fh = np.array(feet_h)
    a, b = np.linalg.lstsq(np.c_[fh[:, 0], np.ones(len(fh))], fh[:, 1], rcond=None)[0]
    person = link_tracks(tracks, fps)
    stretches: dict[int, list[tuple[int, np.ndarray]]] = {}
    seen_in: dict[int, set[int]] = {}
    for tid, seen in sorted(tracks.items()):
        seen_in.setdefault(person[tid], set()).update(i for i, _ in seen)
        cur: list[tuple[int, np.ndarray]] = []
        for i, box in seen:                                   # the longest stretch seen alone and whole
            ok = (i, tid) in usable
            cur = (cur + [(i, box)] if cur and i == cur[-1][0] + 1 else [(i, box)]) if ok else []
            if len(cur) > len(stretches.get(person[tid], [])):
                stretches[person[tid]] = cur
    sprites = []
    for n_done, (pid, best) in enumerate(sorted(stretches.items())):
        if len(best) < min_len:
            continue
        progress(f"  cutting out person {pid} ({n_done + 1}/{len(stretches)}): {len(best)} frames")
        maps = segmenter([frames[i] for i, _ in best], [box for _, box in best])
        cuts = [matte(frames[i], background, box, m) for (i, box), m in zip(best, maps)]
        cuts = [c for c in cuts if c is not None]
        if len(cuts) < min_len:
            continue
        boxes = np.array([box for _, box in best])
        heights = boxes[:, 3] - boxes[:, 1]
        feet_x = (boxes[:, 0] + boxes[:, 2]) / 2
        speed = np.hypot(feet_x[-1] - feet_x[0], boxes[-1, 3] - boxes[0, 3]) / heights.mean() / (len(best) / fps)
        if speed < 0.2:
            continue                                          # standing still: no gait to play
        right = feet_x[-1] > feet_x[0]                        # sprites face right: mirror the others
        patches = [p if right else p[:, ::-1].copy() for p, _ in cuts]
        alphas = [al if right else al[:, ::-1].copy() for _, al in cuts]
        legs = [(al[int(0.7 * len(al)):] > 0.5).any(axis=0).sum() / al.shape[0] for al in alphas]
        sprites.append(Sprite(patches, alphas, float(np.clip(speed, 0.3, 1.2)), pid,
                              [regions(p, al) for p, al in zip(patches, alphas)], int(np.argmin(legs))))
    sprites = _distinct(sprites, seen_in)
    if len(sprites) < 6:
        raise ValueError(f"only {len(sprites)} people could be cut out of the recording; the benchmark needs 6")
    return Bank(sprites, (float(a), float(b)), background)


def _distinct(sprites: list[Sprite], seen_in: dict[int, set[int]], close: float = 12.0) -> list[Sprite]:
    """Drop the lesser of two sprites that may be one person: never in the same frame, and their
    top and their trousers each within `close` (L*a*b* units) of the other's. It errs on the side
    of dropping: vtest.avi's people cross the scene more than once, many in dark coats and jeans,
    and one person in two splits would make the test split's people seen ones."""
    def dress(sp: Sprite) -> np.ndarray:
        lab = [cv2.cvtColor(p, cv2.COLOR_BGR2LAB).astype(np.float32) for p in sp.patches]
        return np.stack([np.concatenate([x[r == part] for x, r in zip(lab, sp.parts)] + [np.zeros((1, 3))]).mean(0)
                         for part in (1, 2)])
    looks = {sp.track: dress(sp) for sp in sprites}
    keep: list[Sprite] = []
    for sp in sorted(sprites, key=lambda s: -len(s.patches)):
        twin = any(not (seen_in[sp.track] & seen_in[k.track])
                   and np.all(np.linalg.norm(looks[sp.track] - looks[k.track], axis=1) < close) for k in keep)
        if not twin:
            keep.append(sp)
    return sorted(keep, key=lambda s: s.track)


# -- scripts: where each actor is in every frame -------------------------------------------------
@dataclass
class Actor:
    """Per frame of the video: visible, feet position, gait frame (index into the sprite), lean
    angle (degrees about the feet, > 0 clockwise on screen), bend at the hips (degrees, the upper
    body against the legs), width stretch, facing left. `colours`: the palette colour of the top
    (1) and of the trousers (2), see training/mattes.py."""
    sprite: Sprite
    n: int
    colours: dict[int, str] = field(default_factory=dict)
    visible: np.ndarray = field(init=False)
    x: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)
    gait: np.ndarray = field(init=False)
    angle: np.ndarray = field(init=False)
    bend: np.ndarray = field(init=False)
    stretch: np.ndarray = field(init=False)
    left: np.ndarray = field(init=False)
    looks: dict[int, np.ndarray] = field(init=False, default_factory=dict, repr=False)   # recoloured frames

    def __post_init__(self):
        self.visible = np.zeros(self.n, bool)
        self.x, self.y, self.gait, self.angle, self.bend = (np.zeros(self.n) for _ in range(5))
        self.stretch = np.ones(self.n)
        self.left = np.zeros(self.n, bool)

    def patch(self, gait: float) -> tuple[np.ndarray, np.ndarray]:
        """The sprite's frame at `gait`, in this actor's clothes, and its alpha."""
        i = int(gait) % len(self.sprite.patches)
        if i not in self.looks:
            self.looks[i] = recolour(self.sprite.patches[i], self.sprite.alphas[i], self.sprite.parts[i], self.colours) \
                if self.sprite.parts else self.sprite.patches[i]
        return self.looks[i], self.sprite.alphas[i]


class Script:
    """Builds actors frame by frame: `move` walks or runs an actor along a heading, `hold` keeps
    them in place (standing, lying, shoving); positions are in pixels, speeds in body heights a second."""

    def __init__(self, bank: Bank, n: int, fps: float, size: tuple[int, int], rng: np.random.Generator):
        self.bank, self.n, self.fps, self.size, self.rng = bank, n, fps, size, rng
        self.cast_so_far: set[int] = set()

    def cast(self, sprites: list[Sprite], k: int = 1) -> list[Actor]:
        """`k` different people from `sprites` (people not yet in this video first), each in clothes
        of their own: the actors are vtest's own pedestrians, who also walk normally in every
        background, so every composed person is dressed anew and who someone is says nothing about
        what they do."""
        fresh = [i for i in range(len(sprites)) if sprites[i].track not in self.cast_so_far]
        used = [i for i in range(len(sprites)) if i not in fresh]
        order = list(self.rng.permutation(fresh)) + list(self.rng.permutation(used))
        names = sorted(PALETTE)
        actors = []
        for i in order[:k]:
            self.cast_so_far.add(sprites[i].track)
            colours = {part: names[int(self.rng.integers(len(names)))] for part in (1, 2)}
            actors.append(Actor(sprites[i], self.n, colours if self.rng.random() < 0.85 else {}))
        return actors

    def inside(self, x: float, y: float, margin: float = 0.0) -> bool:
        w, _ = self.size
        return -margin <= x <= w + margin and self.bank.ground[0] - 20 <= y <= self.bank.ground[1] + 10

    def move(self, a: Actor, t0: int, t1: int, x: float, y: float, heading: float, speed: float,
             stop_outside: bool = True, running: bool = False) -> tuple[int, float, float]:
        """Frames [t0, t1): move from (x, y) along `heading` (radians, 0 = right, y down) at
        `speed`; the gait plays at speed / the sprite's own speed. Running: the cadence rises to at
        most twice the walk's and the stride lengthens (the figure widens), the body leans into the
        run and bounces with each step. Returns where it stopped."""
        if t0 >= self.n:
            return t0, x, y
        dx, dy = np.cos(heading), np.sin(heading)
        rate = float(np.clip(speed / a.sprite.speed, 0.5, 2.0 if running else 3.0))
        lean = self.rng.uniform(7, 12) if running else 0.0
        g = a.gait[t0 - 1] if t0 > 0 else self.rng.uniform(0, len(a.sprite.patches))
        t = t0
        for k, t in enumerate(range(t0, min(t1, self.n))):
            h = self.bank.height_at(y)
            step = speed * h / self.fps
            x, y = x + dx * step, float(np.clip(y + dy * step, *self.bank.ground))
            g += rate
            bounce = 0.03 * h * abs(np.sin(np.pi * 2.8 * k / self.fps)) if running else 0.0
            a.visible[t], a.x[t], a.y[t], a.gait[t], a.left[t] = True, x, y - bounce, g, dx < 0
            a.angle[t] = -lean if dx < 0 else lean
            a.stretch[t] = 1.15 if running else 1.0
            if stop_outside and not self.inside(x, y, margin=0.3 * h):
                a.visible[t] = False
                return t, x, y
        return min(t1, self.n), x, y

    def hold(self, a: Actor, t0: int, t1: int, x: float, y: float, *, left: bool, sway: float = 0.0,
             shove: float = 0.0, angle: float | np.ndarray = 0.0, bend: float | np.ndarray = 0.0,
             gait: float | None = None, phase: float = 0.0) -> None:
        """Frames [t0, t1) in place: `sway` (body heights) wanders slowly, `shove` (body heights)
        rocks back and forth at ~2.5 Hz with a lean; `angle` and `bend` per frame or fixed. The
        pose is the sprite's standing frame unless `gait` says which."""
        g = float(a.sprite.stand) if gait is None else gait
        for k, t in enumerate(range(t0, min(t1, self.n))):
            h = self.bank.height_at(y)
            s = k / self.fps
            ox = sway * h * np.sin(0.7 * s + phase) + shove * h * np.sin(2 * np.pi * 2.5 * s + phase)
            oy = 0.3 * sway * h * np.sin(0.45 * s + phase)
            lean = 12.0 * np.sin(2 * np.pi * 2.5 * s + phase) if shove else 0.0
            gk = g + self.rng.uniform(0.5, 2.5) * k if shove else g
            ang = angle[k] if isinstance(angle, np.ndarray) else angle
            a.visible[t], a.x[t], a.y[t], a.gait[t], a.left[t], a.angle[t] = True, x + ox, y + oy, gk, left, ang + lean
            a.bend[t] = bend[k] if isinstance(bend, np.ndarray) else bend
            a.stretch[t] = 1.0

    def edge_start(self) -> tuple[float, float, float]:
        """A point at the left or right edge of the ground and a heading into the frame."""
        w, _ = self.size
        y = self.rng.uniform(*self.bank.ground)
        if self.rng.random() < 0.5:
            return -5.0, y, self.rng.uniform(-0.25, 0.25)
        return w + 5.0, y, np.pi + self.rng.uniform(-0.25, 0.25)

    def spot(self, room: float = 0.0) -> tuple[float, float]:
        """A place on the ground with `room` body heights free on either side inside the frame."""
        w, _ = self.size
        lo, hi = self.bank.ground
        k = (hi - lo) / (GROUND_Y[1] - GROUND_Y[0])             # margins as in vtest's frame, scaled
        y = self.rng.uniform(lo + 30 * k, hi - 20 * k)
        side = max(0.12 * w, room * self.bank.height_at(y) + 0.03 * w)
        return self.rng.uniform(side, w - side), y

    def walk_to(self, a: Actor, t0: int, x: float, y: float, speed: float) -> None:
        """Enter from the nearer edge and walk to (x, y), arriving at frame t0."""
        w, _ = self.size
        sx = -5.0 if x < w / 2 else w + 5.0
        sy = float(np.clip(y + self.rng.uniform(-60, 60), *self.bank.ground))
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
        (a,) = s.cast(sprites)
        x, y, heading = s.edge_start()
        t, x, y = s.move(a, t0 - sec(1, 3), t0, x, y, heading, walk)
        end, _, _ = s.move(a, t0, n, x, y, heading + rng.uniform(-0.3, 0.3), run, running=True)
        return [a], (t0, end), []
    if kind == "chase":
        lead, chaser = s.cast(sprites, 2)
        x, y, heading = s.edge_start()
        end1, _, _ = s.move(lead, t0, n, x, y, heading, run, running=True)
        gap = rng.uniform(1.0, 1.6) * s.bank.height_at(y)
        lag = int(gap / (run * s.bank.height_at(y) / fps))
        end2, _, _ = s.move(chaser, t0 + lag, n, x, y, heading, run * 1.05, running=True)
        return [lead, chaser], (t0 + lag, max(end1, end2)), []
    if kind == "fall":
        # walks in, trips: rotates about the feet over 0.3-1 s (accelerating, as a body falls) into a
        # lying pose of its own (how flat, how bent at the hips), lies 3-6 s, gets up over 1-1.5 s
        (a,) = s.cast(sprites)
        x, y = s.spot(room=1.15)
        heading = 0.0 if rng.random() < 0.5 else np.pi
        came = sec(1, 3)                                      # walks 1-3 s to the spot, arriving at t0
        back = np.cos(heading) * walk * s.bank.height_at(y) * min(came, t0) / fps
        t, x, y = s.move(a, t0 - came, t0, x - back, y, heading, walk, stop_outside=False)
        down, lie, up = max(3, sec(0.3, 1.0)), sec(3, 6), sec(1.0, 1.5)
        side = 1 if rng.random() < 0.5 else -1
        flat, hips = rng.uniform(78, 100), rng.uniform(-35, 25)
        fall = flat * np.linspace(0, 1, down + 1)[1:] ** 2
        rise = flat * (1 - np.linspace(0, 1, up + 1)[1:] ** 0.7)
        angle = np.concatenate([[0.0], fall, np.full(lie, flat), rise]) * side
        bend = np.concatenate([[0.0], hips * np.linspace(0, 1, down), np.full(lie, hips), hips * rise / flat]) * side
        gait = a.gait[max(t0 - 1, 0)] if rng.random() < 0.4 else None     # frozen mid-step, or legs together
        s.hold(a, t0, t0 + len(angle), x, y, left=heading > 1, angle=angle, bend=bend, gait=gait)
        s.move(a, t0 + len(angle), n, x, y, heading, walk)
        return [a], (t0, min(n, t0 + len(angle))), []
    if kind == "scuffle":
        a, b = s.cast(sprites, 2)
        x, y = s.spot()
        h = s.bank.height_at(y)
        d = 0.18 * h
        s.walk_to(a, t0, x - d, y, walk)
        s.walk_to(b, t0, x + d, y, walk)
        a.left[:t0] = False
        b.left[:t0] = True
        dur = sec(3, 6)
        s.hold(a, t0, t0 + dur, x - d, y, left=False, shove=0.1, phase=0.0, gait=a.gait[max(t0 - 1, 0)])
        s.hold(b, t0, t0 + dur, x + d, y, left=True, shove=0.1, phase=np.pi, gait=b.gait[max(t0 - 1, 0)])
        s.move(a, t0 + dur, n, x - d, y, np.pi + rng.uniform(-0.4, 0.4), walk)
        s.move(b, t0 + dur, n, x + d, y, rng.uniform(-0.4, 0.4), walk)
        return [a, b], (t0, min(n, t0 + dur)), []
    if kind == "dispersal":
        # a group gathers (each walks in), stands together talking for 3-6 s, then everyone runs off
        x, y = s.spot(room=0.8)
        h = s.bank.height_at(y)
        actors = s.cast(sprites, int(rng.integers(4, 7)))
        stand = sec(3, 6)
        dur = 0
        for i, a in enumerate(actors):
            ang = 2 * np.pi * i / len(actors) + rng.uniform(-0.3, 0.3)
            px, py = x + 0.45 * h * np.cos(ang), float(np.clip(y + 0.2 * h * np.sin(ang), *s.bank.ground))
            came = max(0, t0 - stand - sec(0, 2))
            s.walk_to(a, came, px, py, walk)
            s.hold(a, came, t0, px, py, left=np.cos(ang) > 0, sway=0.03, phase=rng.uniform(0, 6))
            end, _, _ = s.move(a, t0, min(n, t0 + sec(2.5, 3.5)), px, py, ang, rng.uniform(*RUN), running=True)
            s.move(a, end, n, a.x[end - 1], a.y[end - 1], ang, walk)
            dur = max(dur, end - t0)
        return actors, (t0, min(n, t0 + dur)), []
    if kind == "loitering":
        (a,) = s.cast(sprites)
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
    if kind in ("abandoned", "theft"):
        # abandoned: the owner puts a bag down and walks off; it stays. theft: someone else walks up
        # 2.5-5 s later, bends, picks it up and walks briskly away with it
        owner, *thief = s.cast(sprites, 2 if kind == "theft" else 1)
        x, y = s.spot(room=0.6)
        h = s.bank.height_at(y)
        s.walk_to(owner, t0, x, y, walk)
        put = sec(1, 2)
        stoop = np.r_[np.linspace(0, 25, put // 2), np.linspace(25, 0, put - put // 2)]
        s.hold(owner, t0, t0 + put, x, y, left=False, angle=stoop)
        heading = 0.0 if rng.random() < 0.5 else np.pi
        s.move(owner, t0 + put, n, x, y, heading, walk)
        bag = {"x": x + 0.25 * h, "y": y, "h": h, "from": t0 + put // 2, "colour": _bag_colour(rng),
               "shape": (rng.uniform(0.28, 0.4), rng.uniform(0.16, 0.24))}
        if kind == "abandoned":
            away = t0 + put + int(1.2 / walk * fps)           # the owner 1.2 body heights away: the bag is left
            return [owner], (min(away, n), n), [bag]
        (taker,) = thief
        came = t0 + put + sec(2.5, 5)
        side = -1.0 if heading == 0.0 else 1.0                # from the side the owner did not leave by
        s.walk_to(taker, came, bag["x"] + side * 0.2 * h, y, walk)
        grab = sec(0.6, 1.2)
        s.hold(taker, came, came + grab, bag["x"] + side * 0.2 * h, y, left=side > 0,
               angle=np.r_[np.linspace(0, 30, grab // 2), np.linspace(30, 0, grab - grab // 2)] * -side)
        bag.update(until=came + grab // 2, carrier=taker)
        off = np.pi if side > 0 else 0.0
        end, _, _ = s.move(taker, came + grab, n, bag["x"], y, off + rng.uniform(-0.3, 0.3), rng.uniform(1.0, 1.5))
        gone = came + grab + int(2.0 / 1.25 * fps)            # two body heights away with the bag
        return [owner, taker], (came, min(end, gone, n)), [bag]
    raise ValueError(f"unknown event {kind!r}; choose from {CATEGORIES}")


def _bag_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    palette = [(30, 30, 35), (40, 25, 90), (90, 60, 20), (20, 20, 120), (60, 60, 60), (30, 70, 30)]
    return palette[int(rng.integers(len(palette)))]


def draw_bag(img: np.ndarray, bag: dict, at: tuple[float, float] | None = None, h: float | None = None) -> None:
    """A holdall: a rounded body, a darker base, a handle; on the ground (with a soft shadow) at
    its own place, or carried, its base at `at` for a person `h` tall."""
    h = bag["h"] if h is None else h
    w, hgt = bag["shape"][0] * h, bag["shape"][1] * h
    x, y = (bag["x"], bag["y"]) if at is None else at
    if at is None:
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


def _blend(img: np.ndarray, patch: np.ndarray, alpha: np.ndarray, anchor: tuple[float, float],
           at: tuple[float, float], angle: float) -> None:
    """Alpha-blend `patch` into `img` with its point `anchor` at `at`, turned `angle` degrees
    (clockwise on screen) about that point."""
    ph, pw = patch.shape[:2]
    if abs(angle) < 0.5:                                     # upright: no canvas to turn
        ox, oy = int(round(at[0] - anchor[0])), int(round(at[1] - anchor[1]))
        cw, ch = pw, ph
    else:
        side = int(np.ceil(np.hypot(pw, ph))) + 2
        m = cv2.getRotationMatrix2D(anchor, -angle, 1.0)
        m[:, 2] += (side - anchor[0], side - anchor[1])      # anchor at (side, side) of a 2side canvas
        patch = cv2.warpAffine(np.ascontiguousarray(patch), m, (2 * side, 2 * side), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(np.ascontiguousarray(alpha), m, (2 * side, 2 * side), flags=cv2.INTER_LINEAR)
        ox, oy = int(round(at[0])) - side, int(round(at[1])) - side
        cw = ch = 2 * side
    H, W = img.shape[:2]
    ax0, ay0, ax1, ay1 = max(0, ox), max(0, oy), min(W, ox + cw), min(H, oy + ch)
    if ax1 <= ax0 or ay1 <= ay0:
        return
    a = alpha[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox, None]
    src = patch[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox].astype(np.float32)
    dst = img[ay0:ay1, ax0:ax1].astype(np.float32)
    img[ay0:ay1, ax0:ax1] = (a * src + (1 - a) * dst).astype(np.uint8)


HIPS = 0.48          # where a standing person bends, from the top


def paste(img: np.ndarray, sprite: Sprite | Actor, gait: float, x: float, y: float, height: float, angle: float,
          left: bool, bend: float = 0.0, stretch: float = 1.0) -> None:
    """The sprite's (or actor's, in their clothes) gait frame with its feet at (x, y), scaled to
    `height` (and `stretch` in width), leaning `angle` degrees about the feet, the upper body bent
    a further `bend` degrees at the hips, mirrored when facing left."""
    if isinstance(sprite, Actor):
        patch, alpha = sprite.patch(gait)
        sprite = sprite.sprite
    else:
        i = int(gait) % len(sprite.patches)
        patch, alpha = sprite.patches[i], sprite.alphas[i]
    scale = height / sprite.height
    ph, pw = patch.shape[:2]
    nw, nh = max(2, int(round(pw * scale * stretch))), max(4, int(round(ph * scale)))
    patch = cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    alpha = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if left:
        patch, alpha = patch[:, ::-1], alpha[:, ::-1]
    if abs(bend) < 1.0:
        _blend(img, patch, alpha, (nw / 2.0, nh - 1.0), (x, y), angle)
        return
    cut = int(HIPS * nh)                                     # legs about the feet, the upper body about the hips
    _blend(img, patch[cut:], alpha[cut:], (nw / 2.0, nh - cut - 1.0), (x, y), angle)
    r = np.radians(angle)
    hips = (x + np.sin(r) * (nh - cut), y - np.cos(r) * (nh - cut))
    top = min(nh, cut + 2)                                   # two rows of overlap: no seam at the waist
    _blend(img, patch[:top], alpha[:top], (nw / 2.0, cut - 1.0), hips, angle + bend)


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
    events: tuple[float, float, float, float] | None = None   # where the events happen (x0, y0, x1, y1), px


def plan_video(bank: Bank, sprites: list[Sprite], name: str, subset: str, kinds: list[str], n: int, fps: float,
               n_source: int, size: tuple[int, int], rng: np.random.Generator, extra_walkers: int) -> VideoPlan:
    s = Script(bank, n, fps, size, rng)
    actors, props, annotations, boxes = [], [], [], []
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
            boxes += [_extent(a, bank, f0, f1) for a in got] + [
                (b["x"] - 0.3 * b["h"], b["y"] - 0.3 * b["h"], b["x"] + 0.3 * b["h"], b["y"]) for b in extra]
    for a in s.cast(sprites, extra_walkers):                 # more normal traffic
        x, y, heading = s.edge_start()
        s.move(a, int(rng.integers(0, max(1, int(0.8 * n)))), n, x, y, heading, rng.uniform(*WALK))
        actors.append(a)
    start = int(rng.integers(0, max(1, n_source - n)))
    boxes = [b for b in boxes if b is not None]
    events = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
              max(b[3] for b in boxes)) if boxes else None
    return VideoPlan(name, subset, start, bool(rng.random() < 0.5), actors, props, annotations, events)


def _extent(a: Actor, bank: Bank, f0: int, f1: int) -> tuple[float, float, float, float] | None:
    """The box an actor's body covers while visible in frames [f0, f1) (lying bodies included)."""
    t = np.flatnonzero(a.visible[f0:f1]) + f0
    if not len(t):
        return None
    h = np.array([bank.height_at(y) for y in a.y[t]])
    lying = np.abs(a.angle[t]) > 30
    half = np.where(lying, 1.05 * h, 0.35 * h)
    top = np.where(lying, 0.5 * h, 1.05 * h)
    return (float((a.x[t] - half).min()), float((a.y[t] - top).min()), float((a.x[t] + half).max()),
            float((a.y[t] + 0.05 * h).max()))


def render(plan: VideoPlan, frames: list[np.ndarray], bank: Bank, n: int) -> list[np.ndarray]:
    out = []
    for t in range(n):
        img = frame_at(frames, plan.base_start + t).copy()
        if plan.mirror:
            img = np.ascontiguousarray(img[:, ::-1])
        for bag in plan.props:
            if bag["from"] <= t < bag.get("until", n):
                draw_bag(img, bag)
        here = sorted((a for a in plan.actors if a.visible[t]), key=lambda a: a.y[t])   # far ones first
        for a in here:
            paste(img, a, a.gait[t], a.x[t], a.y[t], bank.height_at(a.y[t]), a.angle[t], bool(a.left[t]),
                  a.bend[t], a.stretch[t])
            for bag in plan.props:                           # a bag being carried off, in the hand
                if bag.get("carrier") is a and t >= bag["until"]:
                    h = bank.height_at(a.y[t])
                    hand = a.x[t] + (-0.22 if a.left[t] else 0.22) * h
                    draw_bag(img, bag, at=(hand, a.y[t] - 0.3 * h), h=h)
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


# How long each category's span typically lasts (s): the training split deals categories in
# inverse proportion, so each has a fair share of the anomalous seconds a model learns from,
# where an equal number of events would give loitering and abandoned bags most of them.
TYPICAL_SECONDS = {"fall": 6.0, "scuffle": 4.5, "chase": 3.5, "running": 2.5, "dispersal": 3.0, "loitering": 16.0,
                   "abandoned": 13.0, "theft": 2.5}
NORMAL_SHARE = {"train": 0.1, "val": 0.15, "test": 0.25}   # videos with no event (the test's: false alerts)


def split_kinds(count: int, normal: int, rng: np.random.Generator, by_seconds: bool = False) -> list[list[str]]:
    """Each video's events: `normal` videos with none, the others one or two events dealt from a
    shuffled deck, so every category comes round equally often (`by_seconds`: in inverse
    proportion to its typical length, for equal anomalous seconds)."""
    copies = {c: max(1, round(max(TYPICAL_SECONDS.values()) / TYPICAL_SECONDS[c])) if by_seconds else 1
              for c in CATEGORIES}
    quiet = set(rng.choice(count, size=min(normal, count), replace=False).tolist()) if normal else set()
    deck, out = [], []
    for i in range(count):
        if i in quiet:
            out.append([])
            continue
        k = 2 if rng.random() < 0.35 else 1
        kinds = []
        for _ in range(k):
            if not deck:
                deck = list(rng.permutation([c for c in CATEGORIES for _ in range(copies[c])]))
            kinds.append(str(deck.pop()))
        out.append(kinds if len(set(kinds)) == len(kinds) else kinds[:1])
    return out


DEFAULT_COUNTS = {"train": 300, "val": 40, "test": 80}


def person_segmenter(models: Path = Path(__file__).resolve().parents[1] / "models"):
    """BlazePose's segmentation head (models/pose_segmentation.onnx, built by `make models`)."""
    from engines import create_engine

    path = models / "pose_segmentation.onnx"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `make models`")
    return Segmenter(create_engine("onnxruntime", path, threads=2))


_shared: dict = {}     # what every video's rendering reads: set before the worker processes fork, shared with them


def _make_video(job: tuple[str, int, int, list[str]]) -> tuple[str, dict]:
    """One video of the benchmark, a pure function of its job and the shared bank: rendered,
    written, and its ground truth recorded last (gen/<video>.json, atomically), so an
    interrupted run resumes after the videos it finished."""
    subset, si, i, kinds = job
    g = _shared
    name = f"{subset}_{i:03d}"
    vrng = np.random.default_rng([g["seed"], si, i])
    bank, frames, size = g["bank"], g["frames"], g["size"]
    backdrop: Backdrop | None = None
    if g["backdrops"].get(subset):               # a real camera's normal footage, dealt round the split's clips
        backdrop = g["backdrops"][subset][i % len(g["backdrops"][subset])]
        frames = read_frames(Path(backdrop.path), g["fps"], width=backdrop.size[0], limit_s=g["backdrop_s"])
        bank = Bank(bank.sprites, backdrop.perspective, None, backdrop.ground)
        size = (frames[0].shape[1], frames[0].shape[0])
    plan = plan_video(bank, g["by_split"][subset] or bank.sprites, name, subset, kinds, g["n"], g["fps"],
                      len(frames), size, vrng, extra_walkers=int(vrng.integers(0, 4)))
    video_frames = render(plan, frames, bank, g["n"])
    entry = {"subset": subset, "duration": g["n"] / g["fps"], "fps": g["fps"], "frames": g["n"],
             "annotations": plan.annotations}
    if backdrop is not None:
        entry["backdrop"] = backdrop.name
    crf = 20
    if g["cameras"]:                             # its own stream of draws: the plan is the same with or without
        from training.cameras import Camera
        cam = Camera.draw(np.random.default_rng([g["seed"], si, i, 1]), size, keep=plan.events)
        warp, tone = cam.warp(size), cam.tone()
        video_frames = [cam.apply(f, k, warp, tone) for k, f in enumerate(video_frames)]
        entry["camera"], crf = {**cam.to_dict(), "mirror": plan.mirror}, cam.crf
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
             cameras: bool = True, backdrops: Path | None = None, backdrop_splits: tuple[str, ...] = ("train", "val"),
             backdrop_s: float = 60.0) -> dict:
    """Build the benchmark; returns the ground truth (also written to <out>/gt.json). `bank`:
    actors already cut out of this video (else they are cut out here, with `detector`). Videos are
    rendered by `workers` processes side by side; a run that was interrupted resumes after the
    videos it finished (the same settings are required: another seed, length or source is refused).
    `cameras`: each video through a camera of its own (training/cameras.py), recorded in its
    ground truth entry and the manifest. `backdrops`: a real-clip set folder; the videos of
    `backdrop_splits` are composed into its normal clips of the same split (training/backdrops.py),
    dealt round them in order, instead of into `video`, which the actors still come from."""
    counts = counts or dict(DEFAULT_COUNTS)
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; choose from {SPLITS}")
    params = {"generator_version": GENERATOR_VERSION, "seed": seed, "seconds": seconds, "clips": clips,
              "cameras": cameras, "source_sha256": file_sha256(video)}
    if backdrops is not None:
        unknown = set(backdrop_splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown backdrop splits {sorted(unknown)}; choose from {SPLITS}")
        params.update(backdrops=str(backdrops), backdrop_splits=list(backdrop_splits), backdrop_s=backdrop_s,
                      backdrops_sha256=file_sha256(backdrops / "gt.json") if (backdrops / "gt.json").exists() else None)
    params_path = out / "gen" / "params.json"
    if params_path.exists() and json.loads(params_path.read_text()) != params:
        raise ValueError(f"{out} holds a benchmark made with other settings ({params_path}); "
                         "use another --out, or delete it to start again")
    frames, fps = read_video(video)
    t0 = time.time()
    scenes: dict[str, list[Backdrop]] = {}
    if backdrops is not None:
        from training.backdrops import scene_detector
        scenes = real_backdrops(backdrops, [s for s in backdrop_splits if counts.get(s)], fps, scene_detector(),
                                progress, limit_s=backdrop_s, cache=out / "gen" / "backdrops.json")
    params_path.parent.mkdir(parents=True, exist_ok=True)      # written once the inputs are known to be good
    params_path.write_text(json.dumps(params) + "\n")
    if bank is None:
        if detector is None:
            from training.extract import person_detector
            detector = person_detector()
        bank = build_bank(frames, fps, detector, person_segmenter(), progress)
    progress(f"{len(bank.sprites)} actors cut out of {video.name}; height = {bank.perspective[0]:.3f} y + "
             f"{bank.perspective[1]:.1f} px ({time.time() - t0:.0f} s)")
    # actors are split between the subsets, so no test actor was seen in training
    by_split = {"train": [s for i, s in enumerate(bank.sprites) if i % 5 < 3],
                "val": [s for i, s in enumerate(bank.sprites) if i % 5 == 3],
                "test": [s for i, s in enumerate(bank.sprites) if i % 5 == 4]}
    jobs = [(subset, si, i, kinds) for si, subset in enumerate(SPLITS) if counts.get(subset)
            for i, kinds in enumerate(split_kinds(counts[subset], round(NORMAL_SHARE[subset] * counts[subset]),
                                                  np.random.default_rng([seed, si]), by_seconds=subset == "train"))]
    database = {}
    for subset, _, i, _ in jobs:                 # finished by an earlier, interrupted run
        done = out / "gen" / f"{subset}_{i:03d}.json"
        if done.exists():
            database[done.stem] = json.loads(done.read_text())
    todo = [j for j in jobs if f"{j[0]}_{j[2]:03d}" not in database]
    if database:
        progress(f"{len(database)} of {len(jobs)} videos already made: resuming")
    _shared.update(bank=bank, frames=frames, fps=fps, seed=seed, by_split=by_split, out=out, clips=clips,
                   cameras=cameras, n=int(round(seconds * fps)), size=(frames[0].shape[1], frames[0].shape[0]),
                   backdrops=scenes, backdrop_s=backdrop_s)

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
        # the balance a reader should check: events and anomalous seconds per category, normal-only footage
        "balance": balance(gt),
        "perspective": bank.perspective,
        # the real cameras each split's videos were composed into, with the scene fitted to each
        "backdrops": {k: [b.to_dict() for b in v] for k, v in scenes.items()}}, indent=1) + "\n")
    return gt


def balance(gt: dict) -> dict:
    """Per split: events and anomalous seconds per category, and the seconds of normal-only videos."""
    out: dict[str, dict] = {}
    for e in gt["database"].values():
        b = out.setdefault(e["subset"], {"events": dict.fromkeys(CATEGORIES, 0), "seconds": dict.fromkeys(CATEGORIES, 0.0),
                                         "normal_only_seconds": 0.0})
        for a in e["annotations"]:
            b["events"][a["label"]] += 1
            b["seconds"][a["label"]] = round(b["seconds"][a["label"]] + a["segment"][1] - a["segment"][0], 1)
        if not e["annotations"]:
            b["normal_only_seconds"] += e["duration"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m training.synth", __doc__)
    ap.add_argument("--video", type=Path, default=Path("data/vtest.avi"), help="the real footage actors come from")
    ap.add_argument("--out", type=Path, default=Path("data/bench"), help="the benchmark folder (videos, gt.json)")
    ap.add_argument("--seed", type=int, default=0, help="every draw follows from it: same seed, same benchmark")
    for split in SPLITS:
        ap.add_argument(f"--{split}", type=int, default=DEFAULT_COUNTS[split], help=f"videos in the {split} split "
                        f"({NORMAL_SHARE[split] * 100:.0f} %% of them with no event)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each video")
    ap.add_argument("--no-clips", action="store_true", help="skip the 1-second vid_split clips")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes rendering videos side by side")
    ap.add_argument("--no-cameras", action="store_true",
                    help="every video in vtest.avi's own view (by default each has a camera of its own: mirror, "
                         "zoom, tilt, colour, blur, noise, H.264 quality)")
    ap.add_argument("--backdrops", type=Path, help="a real-clip set folder (gt.json, videos/): compose the "
                    "--backdrop-splits' videos into its normal clips of the same split instead of into --video")
    ap.add_argument("--backdrop-splits", nargs="+", default=["train", "val"], choices=SPLITS,
                    help="the splits composed into --backdrops (default: train val; test stays on --video)")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be at least 1, got {args.workers}")
    if min(args.train, args.val, args.test) < 0 or args.seconds < 5:
        ap.error("video counts must be 0 or more and --seconds at least 5")
    try:
        generate(args.video, args.out, seed=args.seed, counts={"train": args.train, "val": args.val, "test": args.test},
                 seconds=args.seconds, clips=not args.no_clips, progress=lambda m: print(m, file=sys.stderr, flush=True),
                 workers=args.workers, cameras=not args.no_cameras, backdrops=args.backdrops,
                 backdrop_splits=tuple(args.backdrop_splits))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

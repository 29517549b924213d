"""Real cameras' normal footage as backgrounds for the synthetic benchmark's scripted events.

vtest.avi is one camera; a model trained on events composed only into it learns that camera's
look. `training.synth --backdrops data/real` composes the same actors and scripts into the
normal clips of the real-clip set instead (the split's own clips, so no camera crosses splits):
each clip's own people walk through as the normal traffic, its scene gives the scale.

A backdrop is read at the benchmark's frame rate and width, played forwards then backwards when
a video outlasts it (no jump cut). Its perspective (body height against feet y) is fitted to the
people `scene_detector` finds on a frame a second: a line where there are enough at different
depths, their median height where there are a few or all at one depth, and vtest's perspective
scaled to the frame's height where there are fewer than 3 or the fit is implausible (people
smaller nearer the camera, or taller than 70 % of the frame); `fitted` says which.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

WIDTH = 768                      # vtest.avi's width: actors keep the scale they were cut out at
VTEST_HEIGHT = 576
GROUND_Y = (200.0, 560.0)        # where feet can be in vtest's frame (the road and the lawn)
MIN_BOXES = 12                   # detections needed to fit a perspective (a slope)
SAMPLES = 24                     # frames a backdrop's people are found on (a second apart)
MIN_PEOPLE = 3                   # ... to take their size (no slope); fewer: vtest's perspective scaled


@dataclass(frozen=True)
class Backdrop:
    name: str                            # the real clip's name in its ground truth
    path: str
    size: tuple[int, int]                # (width, height) it is read at
    frames: int                          # at the benchmark's frame rate
    perspective: tuple[float, float]     # body height (px) = a * feet y + b
    ground: tuple[float, float]          # where feet can be (y, px)
    fitted: bool                         # perspective and ground from its own people (else vtest's, scaled)

    def to_dict(self) -> dict:
        return asdict(self)


def read_frames(path: Path, fps: float, width: int = WIDTH, limit_s: float | None = None) -> list[np.ndarray]:
    """The clip's frames at `fps` (the nearest earlier frame for each tick) and `width` (aspect kept,
    even height)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open backdrop video {path}")
    src_fps = cap.get(cv2.CAP_PROP_FPS) or fps
    out, k, t_next = [], 0, 0.0
    while limit_s is None or t_next < limit_s:
        ok, f = cap.read()
        if not ok:
            break
        t = k / src_fps
        k += 1
        if t + 1e-6 < t_next:
            continue
        h = int(round(f.shape[0] * width / f.shape[1] / 2)) * 2
        out.append(cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA if f.shape[1] > width else cv2.INTER_LINEAR))
        t_next += 1.0 / fps
    cap.release()
    if not out:
        raise ValueError(f"backdrop video {path} has no frames")
    return out


def frame_at(frames: list[np.ndarray], i: int) -> np.ndarray:
    """Frame `i` of the footage played forwards, backwards, forwards... (no jump where it repeats)."""
    n = len(frames)
    if n == 1:
        return frames[0]
    k = i % (2 * n - 2)
    return frames[k if k < n else 2 * n - 2 - k]


def prior_scene(height: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """vtest.avi's perspective and ground (training/synth.py), scaled to a frame `height` px high."""

    r = height / VTEST_HEIGHT
    return (0.269, 10.5 * r), (GROUND_Y[0] * r, GROUND_Y[1] * r)


def fit_scene(frames: list[np.ndarray], fps: float, detector) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """(perspective, ground, fitted) from the people the detector finds on a frame a second."""
    height = frames[0].shape[0]
    step = max(1, int(round(fps)))
    feet, tall = [], []
    for f in frames[::step][:SAMPLES]:
        for box in detector.detect([f])[0].boxes:
            if box[3] < height - 2 and box[1] > 2:        # whole people only: a cut box is not their height
                feet.append(float(box[3]))
                tall.append(float(box[3] - box[1]))
    prior = prior_scene(height)
    if len(feet) < MIN_PEOPLE:
        return *prior, False
    y, hgt = np.array(feet), np.array(tall)
    lo, hi = np.percentile(y, [5, 95])
    ground = (max(0.2 * height, lo - 0.05 * height), min(0.98 * height, hi + 0.05 * height))
    if ground[1] - ground[0] < 0.25 * height:             # too narrow a strip to script events in
        mid = (ground[0] + ground[1]) / 2
        ground = (max(0.2 * height, mid - 0.15 * height), min(0.98 * height, mid + 0.15 * height))
    ground = (float(ground[0]), float(ground[1]))

    def plausible(a: float, b: float) -> bool:          # taller nearer the camera, never tiny or filling the frame
        return a >= 0 and min(a * g + b for g in ground) >= 0.06 * height and max(a * g + b for g in ground) <= 0.7 * height
    if len(feet) >= MIN_BOXES and hi - lo >= 0.15 * height:
        a, b = (float(v) for v in np.linalg.lstsq(np.c_[y, np.ones(len(y))], hgt, rcond=None)[0])
        if plausible(a, b):
            return (a, b), ground, True
    b = float(np.median(hgt))                             # few people, one depth, or a fit that is not plausible
    if plausible(0.0, b):
        return (0.0, b), ground, True
    return *prior, False


def scene_detector(models: Path = Path(__file__).resolve().parents[1] / "models"):
    """The detector that sizes a backdrop's people: the bundled COCO NanoDet over 2 x 2 tiles and the
    whole frame where `make models` built it (it finds 64 % of the people hand-boxed in real CCTV
    against SSDLite's 20 %, bench/bench_people.py), else the stream's SSDLite."""
    from engines import create_engine
    from stream.scene.people import PersonDetector

    path = models / "nanodet.onnx"
    if not path.exists():
        from training.extract import person_detector
        return person_detector(models)
    return PersonDetector(create_engine("onnxruntime", path, threads=2), score_threshold=0.4, size=416,
                          class_index=0, tiles=2)


def real_backdrops(real: Path, subsets: list[str], fps: float, detector, progress=print,
                   limit_s: float = 60.0, cache: Path | None = None) -> dict[str, list[Backdrop]]:
    """The normal clips (no annotation) of the real-clip set at `real` (its gt.json and videos/), per
    subset, each fitted (`fit_scene`) on its first `limit_s` seconds; `cache` (JSON) keeps the fits."""
    gt_path = real / "gt.json"
    if not gt_path.exists():
        raise FileNotFoundError(f"{gt_path} is missing: --backdrops takes a real-clip set folder "
                                "(python -m training.realset --out FOLDER)")
    database = json.loads(gt_path.read_text())["database"]
    known = {}
    if cache is not None and cache.exists():
        known = {b["name"]: Backdrop(**{**b, "size": tuple(b["size"]), "perspective": tuple(b["perspective"]),
                                         "ground": tuple(b["ground"])}) for b in json.loads(cache.read_text())}
    out: dict[str, list[Backdrop]] = {}
    for subset in subsets:
        names = sorted(v for v, e in database.items() if e["subset"] == subset and not e["annotations"])
        if not names:
            raise ValueError(f"{gt_path} has no normal clips in its {subset!r} split to compose into")
        out[subset] = []
        for k, name in enumerate(names):
            path = real / "videos" / f"{name}.mp4"
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing (in {gt_path} but not in its videos/)")
            if name in known and known[name].path == str(path):
                out[subset].append(known[name])
                continue
            frames = read_frames(path, fps, limit_s=limit_s)
            perspective, ground, fitted = fit_scene(frames, fps, detector)
            known[name] = Backdrop(name, str(path), (frames[0].shape[1], frames[0].shape[0]), len(frames),
                                   perspective, ground, fitted)
            out[subset].append(known[name])
            if cache is not None:                         # an interrupted run does not find them again
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps([b.to_dict() for b in known.values()], indent=1) + "\n")
            progress(f"  backdrop {subset} {k + 1}/{len(names)} {name}: {len(frames)} frames, height = "
                     f"{perspective[0]:.3f} y + {perspective[1]:.1f} px, feet at y {ground[0]:.0f}-{ground[1]:.0f}"
                     f"{'' if fitted else ' (too few people found: vtest scaled)'}")
    return out

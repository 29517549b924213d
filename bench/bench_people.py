"""Person detection on real CCTV frames, people counted by hand: recall and precision at IoU 0.5,
average precision, and the cost a frame on this machine, for each bundled detector and a tiled pass.

    python bench/bench_people.py [--truth bench/people_truth.json] [--videos data/real/videos] [--threads 2]

The truth (`bench/people_truth.json`) holds 72 frames of the real-clip set (training/real_clips.yaml,
one frame of each of 72 cameras: crowds, night, distance, fights, falls, partial views), each person
boxed by hand around what is visible of them, and `ignore` regions where nobody can be boxed fairly
(dense crowds, people under ~12 px, reflections, posters). The frames are read from the rebuilt set
(`python -m training.realset --sources ... --out data/real`) at the recorded time.

A detection matches the unmatched truth box it overlaps most at IoU >= 0.5 (highest scores first);
one that matches none and lies mostly (>= 50 % of its area) in an ignore region is not counted; the
rest are false positives. Recall and precision are at each detector's operating threshold (the
config's 0.3); AP is the area under the precision-recall curve over all thresholds >= 0.05.
Intervals are 95 % bootstrap intervals over frames.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines import create_engine  # noqa: E402
from stream.scene.people import PersonDetector  # noqa: E402
from stream.scene.tracking import iou_matrix  # noqa: E402

IOU = 0.5


def frame_at(path: Path, t: float) -> np.ndarray:
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if f.time is not None and f.time >= t - 1e-3:
                return f.to_ndarray(format="bgr24")
    raise ValueError(f"{path} has no frame at {t:.3f} s")


def match(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray, ignore: np.ndarray) -> list[tuple[float, int]]:
    """(score, 1 true positive | 0 false positive) for each counted detection, best first."""
    order = np.argsort(-scores)
    iou = iou_matrix(boxes, truth) if len(truth) and len(boxes) else np.zeros((len(boxes), len(truth)))
    taken = np.zeros(len(truth), bool)
    out = []
    for i in order:
        cand = np.where(~taken & (iou[i] >= IOU))[0] if len(truth) else []
        if len(cand):
            taken[cand[np.argmax(iou[i, cand])]] = True
            out.append((float(scores[i]), 1))
            continue
        b = boxes[i]
        area = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
        inside = 0.0
        for g in ignore:
            w, h = min(b[2], g[2]) - max(b[0], g[0]), min(b[3], g[3]) - max(b[1], g[1])
            inside += max(w, 0) * max(h, 0)
        if inside / area < 0.5:
            out.append((float(scores[i]), 0))
    return out


def figures(per_frame: list[list[tuple[float, int]]], n_truth: list[int], threshold: float) -> dict[str, float]:
    tp = sum(k for m in per_frame for s, k in m if s >= threshold)
    det = sum(1 for m in per_frame for s, _ in m if s >= threshold)
    total = sum(n_truth)
    allm = sorted((x for m in per_frame for x in m), key=lambda x: -x[0])
    hits = np.cumsum([k for _, k in allm]) if allm else np.zeros(0)
    prec = hits / np.arange(1, len(allm) + 1) if allm else np.zeros(0)
    rec = hits / max(total, 1)
    ap = 0.0
    for r in np.linspace(0, 1, 101):                    # COCO-style 101-point interpolated AP
        ok = prec[rec >= r]
        ap += (ok.max() if len(ok) else 0.0) / 101
    return {"recall": tp / max(total, 1), "precision": tp / max(det, 1), "ap": ap}


def interval(per_frame, n_truth, threshold, key, rounds=500, seed=0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(rounds):
        idx = rng.integers(0, len(per_frame), len(per_frame))
        vals.append(figures([per_frame[i] for i in idx], [n_truth[i] for i in idx], threshold)[key])
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", type=Path, default=ROOT / "bench" / "people_truth.json")
    ap.add_argument("--videos", type=Path, default=ROOT / "data" / "real" / "videos")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.3, help="operating threshold (the config's)")
    args = ap.parse_args()
    truth = json.loads(args.truth.read_text())["frames"]
    missing = sorted({f["clip"] for f in truth if not (args.videos / f"{f['clip']}.mp4").exists()})
    if missing:
        print(f"{len(missing)} clips are not in {args.videos} (first: {missing[0]}); rebuild the real set: "
              "python -m training.realset --sources SOURCES --out data/real", file=sys.stderr)
        return 2
    frames = []
    for i, f in enumerate(truth):
        frames.append(frame_at(args.videos / f"{f['clip']}.mp4", f["time_s"]))
        print(f"\rreading frames {i + 1}/{len(truth)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    gt = [np.array(f["people"], np.float32).reshape(-1, 4) for f in truth]
    ig = [np.array(f["ignore"], np.float32).reshape(-1, 4) for f in truth]
    heights = np.concatenate([g[:, 3] - g[:, 1] for g in gt])
    print(f"{len(truth)} frames, {sum(len(g) for g in gt)} people (height median {np.median(heights):.0f} px, "
          f"{(heights < 50).mean():.0%} under 50 px), {sum(len(i) for i in ig)} ignore regions\n")
    models = ROOT / "models"
    ssd = create_engine("onnxruntime", models / "ssdlite_person.onnx", threads=args.threads)
    nano = create_engine("onnxruntime", models / "nanodet.onnx", threads=args.threads)
    low = 0.05                                         # keep low scores: AP needs them; recall/precision cut at --threshold
    detectors = {
        "SSDLite 300 (shipped)": PersonDetector(ssd, score_threshold=low),
        "SSDLite 300, 2x2 tiles + whole": PersonDetector(ssd, score_threshold=low, tiles=2),
        "SSDLite 300, 3x3 tiles + whole": PersonDetector(ssd, score_threshold=low, tiles=3),
        "NanoDet 416 (COCO person)": PersonDetector(nano, score_threshold=low, size=416, class_index=0),
        "NanoDet 416, 2x2 tiles + whole": PersonDetector(nano, score_threshold=low, size=416, class_index=0, tiles=2),
    }
    print("| detector | recall @0.5 IoU (95 % CI) | precision (95 % CI) | AP | ms a frame (median, p95) |")
    print("|---|---|---|---|---|")
    for name, det in detectors.items():
        det.detect(frames[:2])
        found, ms = [], []
        for im in frames:
            t0 = time.perf_counter()
            found.append(det.detect([im])[0])
            ms.append((time.perf_counter() - t0) * 1000)
        per = [match(d.boxes, d.scores, g, i) for d, g, i in zip(found, gt, ig)]
        n = [len(g) for g in gt]
        f = figures(per, n, args.threshold)
        r_lo, r_hi = interval(per, n, args.threshold, "recall")
        p_lo, p_hi = interval(per, n, args.threshold, "precision")
        print(f"| {name} | {f['recall']:.1%} ({r_lo:.0%}–{r_hi:.0%}) | {f['precision']:.1%} ({p_lo:.0%}–{p_hi:.0%}) | "
              f"{f['ap']:.3f} | {np.median(ms):.0f}, {np.percentile(ms, 95):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

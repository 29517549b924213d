"""What a pose crop costs: each BlazePose landmark model (ONNX Runtime, CPU) on real vtest.avi
person crops, in ms per crop, by engine threads and batch size.

    python bench/bench_pose_speed.py [--models pose_landmark_full,pose_landmark_lite] [--threads 1,2] [--batches 1,4]

The crops are the scene stage's (SSDLite boxes, PoseEstimator.crop); each setting runs for
`--seconds` after one warm-up call, the models one after the other at each setting.
Figures vary with the machine and its load: compare the models within one run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_pose_accuracy import detections, frames  # noqa: E402
from engines import create_engine  # noqa: E402
from stream.scene.pose import PoseEstimator  # noqa: E402


def ms_per_crop(engine, crops: np.ndarray, batch: int, seconds: float) -> float:
    feed = {engine.input_names[0]: crops[:batch]}
    engine.run(feed)                                   # warm-up: ONNX Runtime plans on the first call
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.run(feed)
        runs += 1
    return 1000 * (time.perf_counter() - start) / (runs * batch)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=ROOT / "data" / "vtest.avi")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--names", default="pose_landmark_full,pose_landmark_lite", help="models in --models")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="1,4")
    p.add_argument("--seconds", type=float, default=3.0, help="per model and setting")
    args = p.parse_args()
    images = frames(args.video, 4)
    dets = detections(args.models, images)
    names = args.names.split(",")
    pose = PoseEstimator(create_engine("onnxruntime", args.models / f"{names[0]}.onnx", threads=1))
    boxes = [(i, b) for i, d in enumerate(dets) for b in d.boxes if b[3] - b[1] >= pose.min_box_height]
    batches = [int(b) for b in args.batches.split(",")]
    crops = pose.spec.tensor([pose.crop(images[i], b) for i, b in boxes[:max(batches)]])
    print(f"{len(crops)} vtest person crops, ONNX Runtime CPU; ms per crop")
    for threads in (int(t) for t in args.threads.split(",")):
        engines = {n: create_engine("onnxruntime", args.models / f"{n}.onnx", threads=threads) for n in names}
        for batch in batches:
            ms = {n: ms_per_crop(e, crops, batch, args.seconds) for n, e in engines.items()}
            ratio = f" ({ms[names[0]] / ms[names[1]]:.2f}x)" if len(names) == 2 else ""
            print(f"threads {threads}, batch {batch}: " + ", ".join(f"{n} {v:.1f}" for n, v in ms.items()) + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())

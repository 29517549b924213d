"""What the pretrained appearance encoder costs: EfficientNet-Lite0 (224x224, engines) on real
vtest.avi frames and on the person crops the scene stage finds in them.

    python bench/bench_appearance.py [--frames 24] [--backend onnxruntime] [--threads 2]

Prints milliseconds per frame and per crop at batch 1 and batch 8 (median and p95 over the
calls of one run), and the crops a frame holds, so the cost of encoding every sampled frame and
every person at 2 (or 4) frames a second per camera follows.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines import create_engine  # noqa: E402
from stream.scene.appearance import AppearanceEncoder  # noqa: E402
from stream.scene.people import PersonDetector  # noqa: E402


def timed(fn, items, batch: int) -> list[float]:
    """ms per item of each call of `fn` on `batch` items."""
    out = []
    for i in range(0, len(items) - batch + 1, batch):
        t0 = time.perf_counter()
        fn(items[i:i + batch])
        out.append((time.perf_counter() - t0) * 1000 / batch)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24, help="vtest.avi frames, 2 s apart (default 24)")
    ap.add_argument("--backend", default="onnxruntime", help="engine backend (default onnxruntime)")
    ap.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    args = ap.parse_args()
    frames = []
    with av.open(str(ROOT / "data" / "vtest.avi")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 20 == 0:
                frames.append(f.to_ndarray(format="bgr24"))
            if len(frames) == args.frames:
                break
    models = ROOT / "models"
    enc = AppearanceEncoder(create_engine(args.backend, models / "efficientnet_lite0.onnx", threads=args.threads))
    people = PersonDetector(create_engine(args.backend, models / "ssdlite_person.onnx", threads=args.threads))
    crops = []
    for im, found in zip(frames, people.detect(frames)):
        crops += [(im, b) for b in found.boxes]
    enc.frames(frames[:2])                                   # warm-up
    print(f"EfficientNet-Lite0 224x224, {args.backend}, {args.threads} threads; {len(frames)} vtest frames, "
          f"{len(crops)} person crops ({len(crops) / len(frames):.1f} a frame)")
    for what, fn, items in (("frame", enc.frames, frames),
                            # a batch of crops cut from one frame: the cost does not depend on which
                            ("crop", lambda part: enc.crops(part[0][0], np.array([b for _, b in part])), crops)):
        for batch in (1, 8):
            ms = timed(fn, items, batch)
            if ms:
                print(f"  per {what}, batch {batch}: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms "
                      f"({len(ms)} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The two bundled detectors side by side: SSDLite (people only, 300 x 300) and NanoDet (COCO-80,
416 x 416, models/nanodet.onnx), as person detectors and, for NanoDet, as the named-object finder.

    python bench/bench_detectors.py [--frames 24] [--bench-videos 20] [--threads 2]

On real vtest.avi frames (2 s apart) and, where `make bench-data` has built it, on frames of the
benchmark's test videos (three a video): milliseconds a frame at batch 1 and 4 (median, p95),
people found at score >= 0.5 by each, how many each finds that the other does not (IoU < 0.4),
and the named objects NanoDet finds, by VG150 class.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_appearance import timed  # noqa: E402
from engines import create_engine  # noqa: E402
from stream.scene.named_objects import NamedObjectDetector  # noqa: E402
from stream.scene.people import PersonDetector  # noqa: E402
from stream.scene.relations import OBJECTS  # noqa: E402
from stream.scene.tracking import iou_matrix  # noqa: E402


def video_frames(path: Path, every: int, limit: int) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % every == 0:
                out.append(f.to_ndarray(format="bgr24"))
            if len(out) == limit:
                break
    return out


def compare(name: str, frames: list[np.ndarray], ssd: PersonDetector, nano: PersonDetector,
            named: NamedObjectDetector) -> None:
    a, b = ssd.detect(frames), nano.detect(frames)
    only_a = only_b = 0
    for x, y in zip(a, b):
        m = iou_matrix(x.boxes, y.boxes)
        only_a += int((m.max(1) < 0.4).sum()) if len(y.boxes) else len(x.boxes)
        only_b += int((m.max(0) < 0.4).sum()) if len(x.boxes) else len(y.boxes)
    classes = Counter(OBJECTS[int(c)] for objs in named.detect(frames) for c in objs[:, 5])
    print(f"{name}: {len(frames)} frames; people at score >= 0.5: SSDLite {sum(len(x.boxes) for x in a)}, "
          f"NanoDet {sum(len(y.boxes) for y in b)}; found only by SSDLite {only_a}, only by NanoDet {only_b}")
    print(f"  named objects (NanoDet, score >= 0.4), frames with each: {dict(classes.most_common()) or 'none'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24, help="vtest.avi frames, 2 s apart (default 24)")
    ap.add_argument("--bench-videos", type=int, default=20, help="benchmark test videos to sample (default 20)")
    ap.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    args = ap.parse_args()
    models = ROOT / "models"
    ssd = PersonDetector(create_engine("onnxruntime", models / "ssdlite_person.onnx", threads=args.threads),
                         score_threshold=0.5)
    engine = create_engine("onnxruntime", models / "nanodet.onnx", threads=args.threads)
    nano = PersonDetector(engine, size=416, class_index=0, score_threshold=0.5)
    named = NamedObjectDetector(engine)
    frames = video_frames(ROOT / "data" / "vtest.avi", 20, args.frames)
    print(f"ms a frame, {args.threads} threads (median / p95):")
    for label, det in (("SSDLite", ssd), ("NanoDet", nano)):
        det.detect(frames[:2])                                           # warm-up
        row = []
        for batch in (1, 4):
            ms = timed(det.detect, frames, batch)
            row.append(f"batch {batch}: {np.median(ms):.1f} / {np.percentile(ms, 95):.1f}")
        print(f"  {label:8s} {'   '.join(row)}")
    compare("vtest.avi", frames, ssd, nano, named)
    videos = sorted((ROOT / "data" / "bench" / "videos").glob("test_*.mp4"))
    if videos:
        picked = [videos[i] for i in np.linspace(0, len(videos) - 1, min(args.bench_videos, len(videos))).astype(int)]
        sample = [f for v in picked for f in video_frames(v, 100, 3)]
        compare(f"benchmark test split ({len(picked)} videos)", sample, ssd, nano, named)
    else:
        print("benchmark test split: not built (`make bench-data`), not measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())

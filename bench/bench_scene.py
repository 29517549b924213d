"""Scene-stage cost on real footage, and what batching buys.

    python bench/bench_scene.py [--seconds 40] [--backend onnxruntime|torch] [--batches 1,2,4,8,16]

1. Cost per sampled frame: vtest.avi's windows (4 s long, 2 s stride, 2 fps) through the scene
   stage as the pipeline runs it, split into detector, pose, and the rest (tracking, relations,
   motion). Target: <= 100 ms a frame on the 2-core CPU. How many streams the
   whole pipeline runs is bench/bench_streams.py's curve, not this. With `--appearance`, the pretrained appearance features of each frame and person
   (models.appearance, EfficientNet-Lite0) too, and their share.
2. Batched vs unbatched: the same frames through the people models (detector + pose) with
   max_batch 1 and then larger batches; throughput ratios measured in this run. Target: >= 2x at
   batch 8.

With a GPU and `--backend torch`, the same models run as torch CUDA ops (the GPU benchmark).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines import create_engine  # noqa: E402
from stream.ingest.source import VideoSource  # noqa: E402
from stream.ingest.windows import WindowAssembler  # noqa: E402
from stream.scene.appearance import AppearanceEncoder  # noqa: E402
from stream.scene.graph import SceneBuilder  # noqa: E402
from stream.scene.motion import MotionExtractor  # noqa: E402
from stream.scene.people import PersonDetector  # noqa: E402
from stream.scene.pose import PoseEstimator, TopDown  # noqa: E402
from stream.scene.relations import GeometricRelations  # noqa: E402


class Timed:
    """An engine that adds up the time spent in it and the images it saw."""

    def __init__(self, engine):
        self.engine, self.seconds, self.images, self.calls = engine, 0.0, 0, 0
        self.backend, self.input_names, self.output_names = engine.backend, engine.input_names, engine.output_names

    def run(self, feeds):
        t0 = time.perf_counter()
        out = self.engine.run(feeds)
        self.seconds += time.perf_counter() - t0
        self.images += len(next(iter(feeds.values())))
        self.calls += 1
        return out


def people_models(args, max_batch: int) -> tuple[TopDown, Timed, Timed]:
    det = Timed(create_engine(args.backend, args.models / "ssdlite_person.onnx", threads=args.threads))
    pose = Timed(create_engine(args.backend, args.models / "pose_landmark_full.onnx", threads=args.threads))
    return TopDown(PersonDetector(det, max_batch=max_batch), PoseEstimator(pose, max_batch=max_batch)), det, pose


def windows(args):
    asm = WindowAssembler("vtest", 4.0, 2.0, 2.0)
    out = []
    for f in VideoSource("vtest", str(args.video), is_file=True, replay="fast", max_stream_s=args.seconds).frames():
        out += asm.push(f.seq, f.ts, f.wall, f.pixels, f.gap)
    return out + asm.finish()


def cost_per_frame(args, wins) -> None:
    people, det, pose = people_models(args, 16)
    look = Timed(create_engine(args.backend, args.models / "efficientnet_lite0.onnx", threads=args.threads)) \
        if args.appearance else None

    def builder():
        return SceneBuilder(people, motion=MotionExtractor(), relations=GeometricRelations(),
                            appearance=AppearanceEncoder(look, max_batch=16) if look else None)
    builder().build(wins[0])                              # warm-up: first calls allocate
    scene = builder()
    timed = [det, pose] + ([look] if look else [])
    for e in timed:
        e.seconds = e.images = 0
    t0 = time.perf_counter()
    graphs = [scene.build(w) for w in wins]
    total = time.perf_counter() - t0
    frames = len({f.seq for w in wins for f in w.frames})
    people_seen = sum(t.present.sum() for g in graphs for t in g.tracks) / sum(len(g.timestamps) for g in graphs)
    per = 1000 * total / frames
    print(f"cost per sampled frame: {per:.0f} ms over {frames} frames (~{people_seen:.1f} tracked people a frame; "
          f"{pose.images / frames:.1f} pose crops a frame), target <= 100 ms: {'met' if per <= 100 else 'NOT met'}")
    appearance = f", appearance {1000 * look.seconds / frames:.0f} ms ({look.images / frames:.1f} images a frame, " \
        f"{1000 * look.seconds / max(look.images, 1):.1f} ms each)" if look else ""
    print(f"  detector {1000 * det.seconds / frames:.0f} ms, pose {1000 * pose.seconds / frames:.0f} ms "
          f"({1000 * pose.seconds / max(pose.images, 1):.1f} ms a crop){appearance}, tracking + relations + motion "
          f"{1000 * (total - sum(e.seconds for e in timed)) / frames:.0f} ms")
    print(f"  this stage alone, on one thread, would keep up with {1000 / per / 2:.1f} streams at 2 fps; it leaves out "
          "decode, left objects, the model and evidence: bench/bench_streams.py measures what the pipeline runs")


def batching(args, wins) -> None:
    seen, images = set(), []
    for w in wins:
        for f in w.frames:
            if f.seq not in seen:
                seen.add(f.seq)
                images.append(f.image)
    images = images[:args.batch_frames]
    results = {}
    for b in args.batches:
        people, det, pose = people_models(args, b)
        people.find(images[:b])                           # warm-up at this batch size
        det.seconds = pose.seconds = det.images = pose.images = 0
        t0 = time.perf_counter()
        for i in range(0, len(images), b):                # b frames at a time, as the scene stage gathers them
            people.find(images[i:i + b])
        total = time.perf_counter() - t0
        results[b] = (len(images) / total, det.images / det.seconds, pose.images / pose.seconds)
    base = results[args.batches[0]]
    print(f"batched vs unbatched ({len(images)} frames; throughput relative to batch {args.batches[0]}):")
    for b, (fps, dps, pps) in results.items():
        print(f"  batch {b:>3}: {fps:6.1f} frames/s ({fps / base[0]:.2f}x)   detector {dps:6.1f} img/s "
              f"({dps / base[1]:.2f}x)   pose {pps:6.1f} crops/s ({pps / base[2]:.2f}x)")
    if 8 in results:
        r = results[8][0] / base[0]
        print(f"  batch 8 vs batch {args.batches[0]}: {r:.2f}x, target >= 2x: {'met' if r >= 2 else 'NOT met'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=ROOT / "data" / "vtest.avi")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=40.0, help="of vtest.avi")
    p.add_argument("--batches", default="1,2,4,8,16", help="batch sizes to compare, the first is the base")
    p.add_argument("--batch-frames", type=int, default=48, help="frames in the batching comparison")
    p.add_argument("--only", choices=["cost", "batching"])
    p.add_argument("--appearance", action="store_true",
                   help="the cost includes the pretrained appearance features (models.appearance)")
    args = p.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    wins = windows(args)
    if args.only != "batching":
        cost_per_frame(args, wins)
    if args.only != "cost":
        batching(args, wins)
    return 0


if __name__ == "__main__":
    sys.exit(main())

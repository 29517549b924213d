"""Benchmark the foundation pipeline on vtest.avi; every figure is a ratio measured in this run.

    python bench/bench_pipeline.py [--video data/vtest.avi] [--repeats 3]

(a) ingest throughput (decode + windowing, models off) as a ratio of raw PyAV decode throughput;
    sampled frames become BGR images on the consumer's thread, so their conversion is timed apart;
(b) end-to-end with models on, in fast replay: stream seconds per wall second (x real time);
(c) per-stage latency p50 / p95 from that run.
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.config import load_config, parse_config, with_overrides  # noqa: E402
from stream.ingest.source import VideoSource  # noqa: E402
from stream.ingest.windows import WindowAssembler  # noqa: E402
from stream.app import build_pipeline  # noqa: E402


def raw_decode(video: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return n, time.perf_counter() - t0


def ingest(video: Path, length: float, stride: float, fps: float) -> tuple[int, float, list]:
    t0 = time.perf_counter()
    asm = WindowAssembler("bench", length, stride, fps)
    n, windows = 0, []
    for f in VideoSource("bench", str(video), is_file=True, replay="fast").frames():
        windows += asm.push(f.seq, f.ts, f.wall, f.pixels)
        n += 1
    windows += asm.finish()
    return n, time.perf_counter() - t0, windows


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=ROOT / "data" / "vtest.avi")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    cfg = load_config(args.config)
    w = cfg.windows

    print(f"(a) ingest vs raw PyAV decode on {args.video.name}, {args.repeats} interleaved repeats", flush=True)
    raw, ours = [], []
    for r in range(args.repeats):
        n_raw, t_raw = raw_decode(args.video)
        n_ing, t_ing, windows = ingest(args.video, w.length_s, w.stride_s, w.sample_fps)
        assert n_raw == n_ing, (n_raw, n_ing)
        raw.append(n_raw / t_raw)
        ours.append(n_ing / t_ing)
        print(f"    repeat {r + 1}: raw {raw[-1]:7.1f} fps   ingest {ours[-1]:7.1f} fps", flush=True)
    frames = [f for w in windows for f in w.frames]
    t0 = time.perf_counter()
    for f in frames:
        f.image
    conv_ms = (time.perf_counter() - t0) * 1000 / max(len(frames), 1)
    print(f"    BGR conversion of the {len(frames)} sampled frames, on the consumer's thread: {conv_ms:.2f} ms each")
    paired = sorted(o / r for o, r in zip(ours, raw))   # each repeat ran both back to back
    ratio = paired[len(paired) // 2]
    print(f"    ingest / raw decode: median of paired repeats {ratio:.3f} (best of each {max(ours) / max(raw):.3f})"
          f"   target >= 0.9   {'OK' if ratio >= 0.9 else 'BELOW TARGET'}")

    print("(b) end to end, models on, fast replay of the whole file", flush=True)
    data = cfg.model_dump(mode="json")
    data["cameras"] = {"bench": {"path": str(args.video.resolve())}}
    data["http"] = None                       # not the demo's fixed port (the demo may be running)
    data["alerts"].update(endpoint=free_endpoint(), wait_for_subscriber_s=0.0, health_interval_s=3600.0)
    pipe = build_pipeline(with_overrides(parse_config(data), replay="fast"), stop=threading.Event())
    t0 = time.perf_counter()
    code = pipe.run()
    wall = time.perf_counter() - t0
    snap = pipe.stats["bench"].snapshot()
    stream_s = snap["stream_time"] + 1.0 / (snap["declared_fps"] or 25.0)
    print(f"    {snap['frames_decoded']} frames ({stream_s:.1f} s of video, {snap['frames_sampled']} sampled "
          f"at {w.sample_fps:g} fps, {snap['windows_done']} windows) in {wall:.1f} s wall (exit {code})")
    print(f"    {snap['frames_decoded'] / wall:.1f} decoded frames/s, {snap['frames_sampled'] / wall:.1f} "
          f"model frames/s = {stream_s / wall:.2f}x real time")
    print("(c) per-stage latency, ms")
    for stage, lat in snap["latency_ms"].items():
        print(f"    {stage:<18} p50 {lat['p50']:8.1f}   p95 {lat['p95']:8.1f}   (n={lat['n']})")
    return code


if __name__ == "__main__":
    sys.exit(main())

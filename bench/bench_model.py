"""The Hawkeye model stage: throughput against batch size, and window-to-verdict latency with
4 cameras.

    python bench/bench_model.py [--batches 1,4,16,32] [--model DIR]

1. Windows a second through `HawkeyeDetector.batch` at each batch size (real vtest scene graphs,
   4 s windows, each second scored and the window categorised), as ratios to batch 1 measured in
   this run. Targets: batch 16 >= 6x batch 1 on CPU, >= 12x on a GPU.
2. The whole pipeline on 4 cameras replaying vtest in real time with `detector: hawkeye`:
   p50/p95 window close -> verdict.

Without --model the embedded LM's architecture runs with untrained weights: speed does not depend
on the weights.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.llm.detector import HawkeyeDetector  # noqa: E402
from stream.llm.hawkeye import load_model  # noqa: E402
from stream.llm.lm import new_model  # noqa: E402


def scenes(seconds: float, features: Path | None = None):
    """vtest's scene graphs: from extracted features (training/features.py; no decoder or ONNX
    Runtime needed, e.g. on a GPU machine) or made here by the scene stage."""
    if features is not None:
        from training.features import read_video
        return [g for g in read_video(features, "vtest").scene_graphs() if g.start < seconds]
    from stream.config import load_config
    from stream.ingest.source import VideoSource
    from stream.ingest.windows import WindowAssembler
    from stream.scene.graph import scene_from_config

    cfg = load_config(ROOT / "configs" / "demo.yaml")
    builder = scene_from_config(cfg, thumbs=True)
    asm = WindowAssembler("vtest", 4.0, 2.0, 2.0)
    out = []
    for f in VideoSource("vtest", str(ROOT / "data" / "vtest.avi"), is_file=True, replay="fast",
                         max_stream_s=seconds).frames():
        out += [builder.build(w) for w in asm.push(f.seq, f.ts, f.wall, f.pixels, f.gap)]
    return out


def throughput(det: HawkeyeDetector, graphs, batches: list[int], seconds: float) -> None:
    rates = {}
    for b in batches:
        batch = [graphs[i % len(graphs)] for i in range(b)]
        det.batch(batch)                                        # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n == 0:
            det.batch(batch)
            n += b
        rates[b] = n / (time.perf_counter() - t0)
    base = rates[batches[0]]
    where = torch.cuda.get_device_name() if det.device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"model stage throughput ({where}):")
    for b, r in rates.items():
        print(f"  batch {b:>3}: {r:7.1f} windows/s  ({r / base:.2f}x batch {batches[0]}; {4 * r:.0f} scored seconds/s)")
    if 16 in rates:
        r = rates[16] / base
        target = 12 if det.device.type == "cuda" else 6
        print(f"  batch 16 vs batch {batches[0]}: {r:.2f}x, target >= {target}x on {det.device.type}: "
              f"{'met' if r >= target else 'NOT met'}")


def latency(model_dir: Path, seconds: float) -> None:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
        base = ROOT / "configs"
        cfg["cameras"] = {f"cam{k}": {"path": str((base / "../data/vtest.avi").resolve())} for k in range(4)}
        for key in ("person_detector", "pose"):
            cfg["models"][key]["path"] = str((base / cfg["models"][key]["path"]).resolve())
        cfg["detector"] = {"name": "hawkeye", "hawkeye": {"model": str(model_dir), "explain": False}}
        cfg["alerts"]["wait_for_subscriber_s"] = 0
        cfg["alerts"]["health_interval_s"] = 1000
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(path), "--duration", str(seconds),
               "--log-level", "WARNING"]
        env_endpoint = cfg["alerts"]["endpoint"]
        import json

        import zmq
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.connect(env_endpoint)
        sock.setsockopt(zmq.SUBSCRIBE, b"verdict/")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lat = []
        while proc.poll() is None or sock.poll(0):
            if sock.poll(200):
                msg = json.loads(sock.recv_multipart()[1])
                lat.append(msg["latency_ms"].get("window_to_verdict", float("nan")))
        err = proc.stderr.read()
        sock.close()
    if not lat:
        print(f"latency: no verdicts ({err.strip()[-300:]})")
        return
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(f"4 cameras, real time, {seconds:.0f} s: {len(lat)} verdicts, window close -> verdict "
          f"p50 {p(0.5):.0f} ms, p95 {p(0.95):.0f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="1,4,16,32")
    ap.add_argument("--model", type=Path, help="a model directory (default: untrained embedded architecture)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0, help="per batch size")
    ap.add_argument("--latency-seconds", type=float, default=40.0)
    ap.add_argument("--only", choices=["throughput", "latency"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--features", type=Path, help="take vtest's scene graphs from extracted features (data/bench)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or new_model().save(Path(tmp) / "model")
        if args.only != "latency":
            det = HawkeyeDetector(load_model(model_dir, merge_lora=True, device=args.device), threads=args.threads)
            throughput(det, scenes(20.0, args.features), [int(b) for b in args.batches.split(",")], args.seconds)
        if args.only != "throughput":
            latency(model_dir, args.latency_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a live-video viewer costs, and how late its video is.

    python bench/bench_live.py [--seconds 20] [--viewers 1,4]

A pipeline (run_pipeline.py, its own process, configs/demo.yaml's models and detector) runs two
cameras replaying vtest.avi in real time, looping: `h264` (the file re-encoded as an IP camera
sends it: remuxed to viewers) and `mpeg4` (the file as it is, MPEG-4 part 2, which browsers do
not play: transcoded to H.264 for each viewer). For 0 viewers, then each count in --viewers on
each camera, HTTP clients read /api/cameras/<c>/live.mp4 for --seconds while the process tree's
CPU is sampled. It prints, per route:

    CPU/viewer   what each viewer's stream costs, measured on the threads that mux (and encode) it
                 (`cpu_per_viewer` of /api/cameras/<c>/live), in % of one core; and the whole
                 process's CPU above the 0-viewer run, per viewer (noisier: the scene stage varies)
    delay        p50/p95 from the source having a frame to its fragment going to the server
                 (`delay_ms` of /api/cameras/<c>/live); the browser adds its buffer, which the
                 console keeps under a second (tests/test_console.py checks < 1.5 s)
    received     fragments a second each viewer received (the camera sends 10 frames a second)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402
from stream.ingest.clips import camera_clip  # noqa: E402


def config(folder: Path, port: int) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    base = ROOT / "configs"
    h264 = folder / "vtest_h264.mp4"
    camera_clip(ROOT / "data" / "vtest.avi", h264)
    cfg["cameras"] = {"h264": {"path": str(h264), "loop": True},
                      "mpeg4": {"path": str(ROOT / "data" / "vtest.avi"), "loop": True}}
    for key, model in cfg["models"].items():
        if isinstance(model, dict) and "path" in model:
            model["path"] = str((base / model["path"]).resolve())
    cfg["detector"]["hawkeye"] = {**cfg["detector"]["hawkeye"], "explain": False,
                                  "model": str((base / cfg["detector"]["hawkeye"]["model"]).resolve())}
    cfg["alerts"] = {"endpoint": f"tcp://127.0.0.1:{free_port()}", "query_endpoint": None, "chat_endpoint": None,
                     "outbox": {"path": str(folder / "outbox.sqlite")}, "evidence": {"enabled": False}}
    cfg["http"] = {"endpoint": f"127.0.0.1:{port}"}
    cfg.pop("normal", None)
    out = folder / "live.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def watch(url: str, until: float, counts: list[int], i: int) -> None:
    """Read the live stream until `until`, counting fragments (moof boxes); reconnect as the console
    does when it ends (a file camera's next loop ends its viewers' streams)."""
    while time.monotonic() < until:
        with urllib.request.urlopen(url, timeout=30) as r:
            while time.monotonic() < until:
                chunk = r.read1(65536)
                if not chunk:
                    break
                counts[i] += chunk.count(b"moof")


def run(port: int, camera: str | None, viewers: int, seconds: float, proc: psutil.Process) -> dict:
    until = time.monotonic() + seconds
    counts = [0] * viewers
    threads = [threading.Thread(target=watch, args=(f"http://127.0.0.1:{port}/api/cameras/{camera}/live.mp4", until,
                                                    counts, i), daemon=True) for i in range(viewers)]
    for t in threads:
        t.start()
    time.sleep(2.0)                                   # viewers started, at their first keyframe
    c0, t0 = cpu_seconds(proc), time.monotonic()
    time.sleep(max(0.0, until - time.monotonic() - 1.0))
    cpu = (cpu_seconds(proc) - c0) / (time.monotonic() - t0) * 100
    info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras/{camera or 'h264'}/live").read())
    for t in threads:
        t.join(timeout=5)
    return {"cpu": cpu, "delay": info.get("delay_ms"), "fps": [c / seconds for c in counts],
            "own": info.get("cpu_per_viewer")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--viewers", default="1,4", help="viewer counts per camera, comma-separated")
    args = p.parse_args()
    counts = [int(v) for v in args.viewers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        cfg = config(Path(tmp), port)
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(cfg), "--log-level",
                                 "WARNING"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ})
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        print(proc.stderr.read(), file=sys.stderr)
                        return 1
                    time.sleep(1.0)
            time.sleep(10.0)                          # models warm, windows flowing
            ps = psutil.Process(proc.pid)
            base = run(port, None, 0, args.seconds, ps)
            print(f"live video: 2 cameras replaying vtest.avi in real time, {os.cpu_count()} CPUs, "
                  f"{args.seconds:g} s a run; no viewer: the process uses {base['cpu']:.0f} % of a core")
            print("  route                     viewers  CPU/viewer (own, process)  delay p50 / p95 ms  fragments/s per viewer")
            for camera, route in (("h264", "remux (H.264 camera)"), ("mpeg4", "transcode (MPEG-4 part 2)")):
                for n in counts:
                    r = run(port, camera, n, args.seconds, ps)
                    delay = r["delay"] or {"p50": float("nan"), "p95": float("nan")}
                    fps = sum(r["fps"]) / max(len(r["fps"]), 1)
                    own = r["own"] if r["own"] is not None else float("nan")
                    print(f"  {route:<26}{n:>6}  {own:>7.1f} %, {(r['cpu'] - base['cpu']) / n:>6.1f} %     "
                          f"{delay['p50']:>8.1f} / {delay['p95']:<8.1f}  {fps:>10.1f}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark live ingest against a real RTSP server on loopback; figures are measured in this run.

    python bench/bench_ingest.py [streams|faults|memory|all] [--quick]

streams  How many 640x480 @ 25 fps RTSP streams ingest keeps up with: each stream decodes >= 95 %
         of the frames the camera sent while windows sample 8 fps (sampled frames converted to BGR,
         as the scene stage does), and the CPU it costs per stream. The gst-rtsp-server sending
         the streams runs on the same 2 cores; its CPU is reported beside ours.
faults   A stream whose server is killed and restarted >= 20 times: recovery time (server ready ->
         first frame) p50 / max against the backoff cap, and frames lost per restart.
memory   RSS over a long accelerated replay (>= 1 million frames, a small clip looped in fast
         mode through source + windows): growth from the first tenth to the end.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.config import IngestConfig  # noqa: E402
from stream.ingest.clips import camera_clip  # noqa: E402
from stream.ingest.source import VideoSource  # noqa: E402
from stream.ingest.windows import WindowAssembler  # noqa: E402
from tests.servers import RtspServer  # noqa: E402

CACHE = ROOT / "out" / "bench"
TICK = os.sysconf("SC_CLK_TCK")


def clip(name: str, seconds: float, **kw) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / name
    if not path.exists():
        camera_clip(ROOT / "data" / "vtest.avi", path, seconds, **kw)
    return path


def proc_cpu_s(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK     # utime + stime


class Ingest:
    """One camera as the pipeline runs it: a source thread pushing into a window assembler, and the
    sampled frames converted to BGR on a consumer's behalf."""

    def __init__(self, url: str, ingest: IngestConfig, sample_fps: float = 8.0):
        self.source = VideoSource("cam", url, is_file=False, ingest=ingest)
        self.asm = WindowAssembler("cam", 2.0, 1.0, sample_fps)
        self.arrivals: list[float] = []
        self.ts: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for d in self.source.frames():
            self.arrivals.append(time.monotonic())
            self.ts.append(d.ts)
            for w in self.asm.push(d.seq, d.ts, d.wall, d.pixels, d.gap):
                for f in w.frames:
                    f.image   # noqa: B018 - the conversion the scene stage would do

    def stop(self):
        self.source.stop.set()
        self.thread.join(timeout=10)


def bench_streams(counts: list[int], seconds: float) -> None:
    video = clip("vtest_640x480_25fps.mp4", 80.0, size=(640, 480), fps=25.0)   # 32 s at 25 fps
    print(f"\n== concurrent RTSP streams: 640x480 @ 25 fps H.264, windows sampled at 8 fps, {seconds:g} s each")
    print(f"{'streams':>7} {'decoded % (min)':>16} {'sampled fps':>12} {'CPU/stream':>11} {'server CPU':>11}  keeps up")
    best = 0
    for n in counts:
        with RtspServer({"/cam": video}) as server:
            cams = [Ingest(server.url("/cam"), IngestConfig(probe_s=0.5)) for _ in range(n)]
            for c in cams:
                c.thread.start()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(len(c.arrivals) > 25 for c in cams):
                time.sleep(0.1)
            time.sleep(1.0)                                  # past the connect bursts
            t0, cpu0, srv0 = time.monotonic(), proc_cpu_s(), proc_cpu_s(server.proc.pid)
            start = [len(c.arrivals) for c in cams]
            sampled0 = [c.asm.sampled for c in cams]
            time.sleep(seconds)
            dt, cpu, srv = time.monotonic() - t0, proc_cpu_s() - cpu0, proc_cpu_s(server.proc.pid) - srv0
            got = [len(c.arrivals) - s for c, s in zip(cams, start)]
            sampled = [(c.asm.sampled - s) / dt for c, s in zip(cams, sampled0)]
            for c in cams:
                c.stop()
        pct = min(got) / (25.0 * dt) * 100.0
        ok = pct >= 95.0 and min(sampled) >= 7.6
        best = n if ok else best
        print(f"{n:>7} {pct:>15.1f}% {np.mean(sampled):>12.2f} {cpu / dt / n * 100:>10.1f}% {srv / dt * 100:>10.1f}%  "
              f"{'yes' if ok else 'NO'}")
    print(f"ingest keeps up with {best} concurrent streams (target >= 8); CPU is % of one core")


def bench_faults(restarts: int) -> None:
    video = clip("vtest_768x576_10fps.mp4", 60.0)
    cap = 1.0
    ingest = IngestConfig(probe_s=0.5, backoff_initial_s=0.2, backoff_max_s=cap, watchdog_s=2.0)
    print(f"\n== fault run: {restarts} RTSP server restarts (kill -9, down 1 s), backoff cap {cap:g} s, "
          f"768x576 @ 10 fps")
    recover, lost, beyond = [], [], []
    with RtspServer({"/cam": video}) as server:
        cam = Ingest(server.url("/cam"), ingest)
        cam.thread.start()
        while len(cam.arrivals) < 20:
            time.sleep(0.05)
        threads0 = len(os.listdir("/proc/self/task"))
        for i in range(restarts):
            time.sleep(2.0)
            last_before = len(cam.arrivals)
            server.kill()
            time.sleep(1.0)
            ready = server.start()
            while len(cam.arrivals) <= last_before or cam.arrivals[-1] <= ready:
                if time.monotonic() > ready + 30:
                    raise SystemExit(f"restart {i}: no recovery within 30 s")
                time.sleep(0.01)
            first = next(k for k in range(last_before, len(cam.arrivals)) if cam.arrivals[k] > ready)
            recover.append(cam.arrivals[first] - ready)
            gap = cam.ts[first] - cam.ts[first - 1]           # stream time the camera was away
            lost.append(round(gap * 10.0) - 1)
            beyond.append(recover[-1] * 10.0)
            print(f"\r  restart {i + 1}/{restarts}: recovered in {recover[-1]:.2f} s", end="", flush=True)
        threads1 = len(os.listdir("/proc/self/task"))
        ts = np.array(cam.ts)
        cam.stop()
    print()
    print(f"recovery (server ready -> first frame): p50 {np.median(recover):.2f} s, max {max(recover):.2f} s "
          f"(must be < cap + 2 = {cap + 2:.1f} s)")
    print(f"frames lost per restart: p50 {np.median(lost):.0f}, max {max(lost)} (the server was down 1 s = 10 "
          f"frames); beyond the outage (recovery x fps): p50 {np.median(beyond):.1f}")
    print(f"stream time monotonic over the run: {bool(np.all(np.diff(ts) > 0))}; "
          f"OS threads {threads0} -> {threads1} after {restarts} reconnects")


def bench_memory(frames: int) -> None:
    video = clip("vtest_96x72.mp4", 80.0, size=(96, 72))
    src = VideoSource("cam", str(video), is_file=True, replay="fast", loop=True)
    asm = WindowAssembler("cam", 4.0, 2.0, 2.0)
    print(f"\n== memory: {frames:,} frames of a looped 96x72 clip, fast replay through source + windows")

    def rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    marks = []
    t0 = time.monotonic()
    for d in src.frames():
        for w in asm.push(d.seq, d.ts, d.wall, d.pixels, d.gap):
            for f in w.frames:
                f.image   # noqa: B018
        if d.seq % (frames // 20) == 0:
            marks.append((d.seq, rss_mb()))
            print(f"\r  {d.seq:>9,} frames  RSS {marks[-1][1]:.1f} MiB", end="", flush=True)
        if d.seq + 1 >= frames:
            src.stop.set()
    marks.append((frames, rss_mb()))
    dt = time.monotonic() - t0
    print()
    base = next(m for s, m in marks if s >= frames // 10)
    end = marks[-1][1]
    print(f"{frames:,} frames in {dt:.0f} s ({frames / dt:,.0f} fps); RSS after the first tenth {base:.1f} MiB, "
          f"at the end {end:.1f} MiB: growth {100 * (end - base) / base:+.2f} % (target <= 5 %); "
          f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", default="all", choices=["streams", "faults", "memory", "all"])
    p.add_argument("--quick", action="store_true", help="fewer streams, restarts and frames (a smoke run)")
    a = p.parse_args()
    if a.what in ("streams", "all"):
        bench_streams([1, 2, 4] if a.quick else [1, 8, 16, 32, 48, 56, 64], 5.0 if a.quick else 12.0)
    if a.what in ("faults", "all"):
        bench_faults(3 if a.quick else 20)
    if a.what in ("memory", "all"):
        bench_memory(50_000 if a.quick else 1_000_000)


if __name__ == "__main__":
    main()

"""The streams curve: how many cameras one machine runs in real time, and what each one costs.

    python bench/bench_streams.py [--streams 1,2,4,8,12] [--seconds 60] [--warmup 15] [--video FILE]
                                  [--detector hawkeye|baseline] [--set runtime.scene_workers=2]

For each N, a pipeline (run_pipeline.py, a process of its own, with configs/demo.yaml's models
and the shipped Hawkeye model) replays data/vtest.avi (or --video) on N cameras in real time, each looping,
for warmup + seconds of stream time. A subscriber takes every verdict and health message, and
the pipeline's process tree is sampled every second. After the warmup (models loaded, queues
settled) it measures, per N:

    p50 / p95     window close -> verdict (`latency_ms.window_to_verdict`), over every camera
    x real time   stream seconds scored per wall second, per camera (1.00: keeps up)
    CPU/stream    the process tree's CPU time per wall second per camera, in % of one core
    RSS           the process tree's peak resident memory, and its growth over the measured span
                  (the last 10 % of the samples against the first 10 %: a leak shows here;
                  runs of 10 minutes or more also print the mean of each tenth, which tells
                  a leak, climbing to the end, from a warm-up that levels off)
    load          the 1-minute load average at the end (how busy the machine was)
    stage p95     each stage's p95 from the cameras' health (the median camera), in ms

Every figure is from this run, on this machine: compare figures from one run, not across
machines. A cell reads "behind" where the cameras fell below 0.95x real time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402
from engines.cli import Parser, set_dotted  # noqa: E402


def config(n: int, detector: str, sets: list[str], folder: Path, video: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    base = ROOT / "configs"
    video = str(video.resolve())
    cfg["cameras"] = {f"cam{k}": {"path": video, "loop": True} for k in range(n)}
    for key, model in cfg["models"].items():
        if isinstance(model, dict) and "path" in model:
            model["path"] = str((base / model["path"]).resolve())
    if detector == "hawkeye":
        cfg["detector"]["hawkeye"] = {**cfg["detector"].get("hawkeye", {}), "explain": False,
                                      "model": str((base / cfg["detector"]["hawkeye"]["model"]).resolve())}
    else:
        cfg["detector"] = {"name": "baseline"}
    port = free_port()
    cfg["alerts"] = {"endpoint": f"tcp://127.0.0.1:{port}", "query_endpoint": None, "chat_endpoint": None,
                     "wait_for_subscriber_s": 2.0, "health_interval_s": 5.0,
                     "outbox": {"path": str(folder / "outbox.sqlite")}, "evidence": {"enabled": False}}
    cfg.pop("http", None)
    cfg.pop("normal", None)
    for item in sets:
        set_dotted(cfg, *item.split("=", 1))
    out = folder / f"streams{n}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_and_rss(proc: psutil.Process) -> tuple[float, int]:
    cpu, rss = 0.0, 0
    for p in tree(proc):
        try:
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return cpu, rss


def run(n: int, args: argparse.Namespace, folder: Path) -> dict:
    path = config(n, args.detector, args.set, folder, args.video)
    endpoint = yaml.safe_load(path.read_text())["alerts"]["endpoint"]
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.connect(endpoint)
    for topic in (b"verdict/", b"health/"):
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    cmd = [sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(path), "--duration",
           str(args.warmup + args.seconds), "--log-level", "WARNING"]
    popen = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(popen.pid)
    verdicts: list[tuple[float, dict]] = []
    health: dict[str, dict] = {}
    samples: list[tuple[float, float, int]] = []        # (wall, cpu seconds, rss)
    next_sample = time.monotonic()
    while popen.poll() is None or sock.poll(0):
        if sock.poll(100):
            topic, body = sock.recv_multipart()[:2]
            msg = json.loads(body)
            if topic.startswith(b"verdict/"):
                verdicts.append((time.monotonic(), msg))
                if len(verdicts) % 25 == 0:
                    print(f"\r  N={n}: {len(verdicts)} verdicts", end="", file=sys.stderr, flush=True)
            else:
                health[msg["camera"]] = msg
        if time.monotonic() >= next_sample and popen.poll() is None:
            samples.append((time.monotonic(), *cpu_and_rss(proc)))
            next_sample += 1.0
    print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    err = popen.stderr.read()
    sock.close()
    if popen.returncode != 0 or not verdicts:
        return {"n": n, "error": (err.strip().splitlines() or ["no verdicts"])[-1]}
    start = verdicts[0][0] + args.warmup * 0.5     # the first verdict comes a window after the models load
    steady = [(t, m) for t, m in verdicts if t >= start]
    lat = sorted(m["latency_ms"]["window_to_verdict"] / 1000.0 for _, m in steady if "window_to_verdict" in m["latency_ms"])
    rates = []
    for cam in {m["camera"] for _, m in steady}:
        mine = [(t, m["end"]) for t, m in steady if m["camera"] == cam]
        if len(mine) >= 2 and mine[-1][0] > mine[0][0]:
            rates.append((mine[-1][1] - mine[0][1]) / (mine[-1][0] - mine[0][0]))
    window = [s for s in samples if start <= s[0] <= steady[-1][0]]
    cpu = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) >= 2 else float("nan")
    stages: dict[str, list[float]] = {}
    for msg in health.values():
        for stage, summary in (msg.get("latency_ms") or {}).items():
            if summary:
                stages.setdefault(stage, []).append(summary["p95"])
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")  # noqa: E731
    return {"n": n, "verdicts": len(steady), "p50": q(0.5), "p95": q(0.95),
            "rt": statistics.mean(rates) if rates else float("nan"), "cpu_per_stream": 100.0 * cpu / n,
            "rss_mb": max(s[2] for s in samples) / 2**20 if samples else float("nan"),
            "rss_growth": growth([s[2] for s in window]), "rss_tenths": tenths([s[2] for s in window]),
            "load": os.getloadavg()[0], "stages": {k: statistics.median(v) for k, v in sorted(stages.items())}}


def tenths(rss: list[int]) -> list[float]:
    """The mean RSS (MB) of each tenth of the samples: a leak climbs to the end, a warm-up levels off."""
    if len(rss) < 10:
        return []
    k = len(rss) // 10
    return [sum(rss[i * k:(i + 1) * k]) / k / 2**20 for i in range(10)]


def growth(rss: list[int]) -> float:
    """% growth of the last tenth of the samples' mean over the first tenth's."""
    if len(rss) < 10:
        return float("nan")
    k = len(rss) // 10
    return 100.0 * (sum(rss[-k:]) / sum(rss[:k]) - 1.0)


def main(argv: list[str] | None = None) -> int:
    p = Parser("python bench/bench_streams.py", __doc__)
    p.add_argument("--streams", default="1,2,4,8,12", help="the camera counts, comma-separated")
    p.add_argument("--seconds", type=float, default=60.0, help="stream seconds measured per run, after the warmup")
    p.add_argument("--warmup", type=float, default=15.0, help="stream seconds before measuring")
    p.add_argument("--detector", choices=["hawkeye", "baseline"], default="hawkeye", help="the detector the runs use")
    p.add_argument("--video", type=Path, default=ROOT / "data" / "vtest.avi",
                   help="what every camera replays (vtest.avi: people walking everywhere all the time; a quiet "
                        "scene shows what searching only where something moves saves)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override (YAML value), e.g. runtime.scene_workers=2; repeatable")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.streams.split(",")]
    if not args.video.is_file():
        p.error(f"--video {args.video}: no such file")
    print(f"streams curve: {args.video.name} looped in real time, detector {args.detector}, {os.cpu_count()} CPUs, "
          f"{args.seconds:.0f} s measured after {args.warmup:.0f} s" + (f", {' '.join(args.set)}" if args.set else ""))
    print(f"{'N':>3} {'verdicts':>8} {'p50 s':>6} {'p95 s':>6} {'x rt':>5} {'CPU/stream':>10} {'RSS MB':>7} {'growth':>6} "
          f"{'load':>5}  stage p95 ms")
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            r = run(n, args, Path(tmp))
            if "error" in r:
                print(f"{n:>3} error: {r['error']}")
                continue
            stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stages"].items())
            note = "" if r["rt"] >= 0.95 else "  behind"
            print(f"{n:>3} {r['verdicts']:>8} {r['p50']:>6.2f} {r['p95']:>6.2f} {r['rt']:>5.2f} "
                  f"{r['cpu_per_stream']:>9.0f}% {r['rss_mb']:>7.0f} {r['rss_growth']:>5.1f}% {r['load']:>5.1f}  {stages}{note}")
            if args.seconds >= 600 and r["rss_tenths"]:
                print(f"    RSS by tenth of the run, MB: {' '.join(f'{m:.0f}' for m in r['rss_tenths'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

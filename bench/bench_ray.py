"""The Ray runtime against the local one, on this machine; every figure is measured in this run.

    python bench/bench_ray.py [--seconds 60] [--workers 1,2] [--config configs/demo.yaml]

(a) overhead: the demo config replayed in real time for --seconds, first under `local` (threads in
    this process), then under `ray` on a two-node cluster on this machine (scripts/ray_cluster.py's
    layout: the camera's worker on the worker node, the model on the head): CPU seconds per stream
    second of every process involved (this one; on Ray also the GCS, raylets and workers, sampled
    every 0.5 s) from the first verdict to the last, and window-to-verdict latency p50 / p95. Targets: <= 10 % more CPU, <= 50 ms
    more p95 latency.
(b) payload: the bytes each window's scene graph takes as Ray ships it (pickle protocol 5, arrays
    included) between the camera's worker and the driver, and again to a model worker; by part.
(c) scaling: N cameras (the demo's file, fast replay, --scaling-seconds each) on N camera workers
    and N model workers, for each N in --workers; stream seconds scored per wall second, against
    N x the one-worker figure, and against the local runtime with the same N cameras (the overhead
    under full load). On a 2-core machine only N <= 2 means anything.
"""
from __future__ import annotations

import argparse
import os
import pickle
import socket
import sys
import threading
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.config import load_config, parse_config, with_overrides  # noqa: E402
from stream.app import build_pipeline  # noqa: E402


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class TreeCPU:
    """CPU seconds of this process and all its descendants, sampled on a thread (a process that
    ends between samples loses at most its last interval)."""

    def __init__(self, interval: float = 0.5):
        self.interval, self._seen, self._names, self._rss, self._stop = interval, {}, {}, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            try:
                t, key = p.cpu_times(), (p.pid, p.create_time())
                self._seen[key] = t.user + t.system
                self._rss[key] = max(self._rss.get(key, 0), p.memory_info().rss)
                self._names[key] = p.name() if p.pid != os.getpid() else "this process (driver)"   # ray::IDLE
                # becomes ray::CameraWorker once it runs one: the latest name counts
            except psutil.Error:
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> TreeCPU:
        self.restart()
        self._thread.start()
        return self

    def restart(self) -> None:
        """Count from now (processes that start later count from 0)."""
        self._sample()
        self._start = dict(self._seen)

    def by_process(self) -> dict[str, float]:
        """CPU seconds since `restart`, by process name (Ray names its workers ray::Class)."""
        names: dict[str, float] = defaultdict(float)
        for (pid, created), v in self._seen.items():
            names[self._names.get((pid, created), "?")] += v - self._start.get((pid, created), 0.0)
        return dict(sorted(names.items(), key=lambda kv: -kv[1]))

    def peak_rss(self) -> dict[str, float]:
        """The largest resident memory each process had, in MiB, by process name."""
        names: dict[str, float] = defaultdict(float)
        for key, rss in self._rss.items():
            names[self._names.get(key, "?")] += rss / 2**20
        return dict(sorted(names.items(), key=lambda kv: -kv[1]))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = sum(v - self._start.get(k, 0.0) for k, v in self._seen.items())


def config(base, n: int, **runtime) -> object:
    """The base config with `n` cameras replaying its first camera's file, nothing but verdicts out."""
    data = base.model_dump(mode="json")
    video = data["cameras"]["lobby"]["path"]
    data["cameras"] = {f"cam{i}": {"path": video} for i in range(n)}
    ep = free_endpoint()
    data["http"] = None                       # not the demo's fixed port (the demo may be running)
    data["alerts"].update(endpoint=ep, query_endpoint=None, chat_endpoint=None, wait_for_subscriber_s=0.0,
                          health_interval_s=3600.0, evidence={**data["alerts"]["evidence"], "enabled": False})
    data["runtime"] = {**data["runtime"], **runtime}
    return parse_config(data)


def run(cfg, *, replay: str, seconds: float, sizes: list | None = None) -> dict:
    """Run the pipeline; CPU and wall time count from its first verdict to its last (the steady
    state: not the models loading, nor a Ray worker process starting), stream time likewise."""
    pipe = build_pipeline(with_overrides(cfg, replay=replay, duration_s=seconds), stop=threading.Event())
    first: dict[str, tuple[float, float]] = {}
    last: dict[str, tuple[float, float]] = {}

    def seen(obj) -> None:
        if hasattr(obj, "seconds"):          # a verdict
            now = time.perf_counter()
            if not first:
                cpu.restart()
            first.setdefault(obj.camera, (now, obj.end))
            last[obj.camera] = (now, obj.end)
    pipe.observers.append(seen)
    if sizes is not None:
        arrived = pipe.scene_arrived

        def measured(scene, waited_ms=0.0):
            if hasattr(scene, "tracks"):
                sizes.append(scene)
            return arrived(scene, waited_ms)
        pipe.scene_arrived = measured
    with TreeCPU() as cpu:
        code = pipe.run()
    assert code == 0, pipe.failure
    snaps = {cam: s.snapshot() for cam, s in pipe.stats.items()}
    wall = max(t for t, _ in last.values()) - min(t for t, _ in first.values())
    return {"wall": wall, "cpu": cpu.seconds, "by_process": cpu.by_process(), "rss": cpu.peak_rss(),
            "stream": sum(last[c][1] - first[c][1] for c in first),
            "windows": sum(s["windows_done"] for s in snaps.values()),
            "latency": next(iter(snaps.values()))["latency_ms"]}


def payload(scenes: list) -> None:
    whole = np.array([len(pickle.dumps(s, protocol=5)) for s in scenes], float)
    parts: dict[str, list[int]] = defaultdict(list)
    for s, size in zip(scenes, whole):
        for name in ("tracks", "motion", "thumbs", "motion_thumbs", "relations", "objects", "named", "appearance"):
            without = replace(s, **{name: () if isinstance(getattr(s, name), tuple) else None})
            if name == "thumbs":       # the motion thumbnails travel as a mask over the thumbnails
                without = replace(without, motion_thumbs=None)
            parts[name].append(size - len(pickle.dumps(without, protocol=5)))
    print(f"    {len(scenes)} scene graphs: mean {whole.mean() / 1024:.1f} KiB, p95 {np.percentile(whole, 95) / 1024:.1f} "
          f"KiB, max {whole.max() / 1024:.1f} KiB per window (crossing twice: worker -> driver -> model worker)")
    print("    what each part adds (mean KiB; thumbs with their motion copy): " + ", ".join(f"{k} {np.mean(v) / 1024:.1f}" for k, v in parts.items()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--seconds", type=float, default=60.0, help="stream seconds of the real-time runs (a)")
    p.add_argument("--workers", default="1,2", help="worker counts for the scaling runs (c); empty: skip them")
    p.add_argument("--scaling-seconds", type=float, default=30.0, help="stream seconds per camera in (c)")
    args = p.parse_args()
    base = load_config(args.config)

    print(f"(a) overhead: {base.cameras['lobby'].target} in real time for {args.seconds:g} s, local then ray", flush=True)
    local = run(config(base, 1), replay="realtime", seconds=args.seconds)
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "labels": {"hawkwatch/role": "models"}, "include_dashboard": False})
    cluster.add_node(num_cpus=2, labels={"hawkwatch/role": "ingest"})
    try:
        with TreeCPU() as idle:
            time.sleep(args.seconds / 2)
        idle_rate = idle.seconds / (args.seconds / 2)
        scenes: list = []
        on_ray = run(config(base, 1, engine="ray", address=cluster.address), replay="realtime",
                     seconds=args.seconds, sizes=scenes)
        for name, r in (("local", local), ("ray", on_ray)):
            lat = r["latency"]
            print(f"    {name:<5} CPU {r['cpu']:6.1f} s for {r['stream']:.1f} s of stream = {r['cpu'] / r['stream']:.3f} "
                  f"CPU-s per stream s ({r['windows']} windows); latency p50 / p95 ms: " +
                  ", ".join(f"{k} {v['p50']:.0f} / {v['p95']:.0f}" for k, v in lat.items()))
        for name, r in (("local", local), ("ray", on_ray)):
            print(f"    {name:<5} peak memory (RSS, MiB) by process: " + ", ".join(
                f"{n} {mib:.0f}" for n, mib in list(r["rss"].items())[:6] if mib >= 20))
        print("    ray's CPU seconds by process: " + ", ".join(
            f"{name} {sec:.1f}" for name, sec in list(on_ray["by_process"].items())[:8]))
        print(f"    the idle two-node cluster alone (GCS, raylets, agents; measured {args.seconds / 2:g} s): "
              f"{idle_rate:.3f} CPU-s per s")
        rate_local, rate_ray = local["cpu"] / local["stream"], on_ray["cpu"] / on_ray["stream"]
        extra_cpu = rate_ray / rate_local - 1
        marginal = (rate_ray - idle_rate) / rate_local - 1
        extra_p95 = on_ray["latency"]["window_to_verdict"]["p95"] - local["latency"]["window_to_verdict"]["p95"]
        print(f"    ray over local: CPU {extra_cpu:+.1%} in all, {marginal:+.1%} beyond the idle cluster "
              f"(target <= +10 %: {'OK' if marginal <= 0.10 else 'ABOVE TARGET'});  p95 window_to_verdict "
              f"{extra_p95:+.0f} ms (target <= +50 ms: {'OK' if extra_p95 <= 50 else 'ABOVE TARGET'})")
        print("(b) payload per window", flush=True)
        payload(scenes)
    finally:
        cluster.shutdown()

    print(f"(c) scaling: N cameras x {args.scaling_seconds:g} s, fast replay, N camera workers and N model workers",
          flush=True)
    one = None
    for n in [int(x) for x in args.workers.split(",") if x]:
        r = run(config(base, n), replay="fast", seconds=args.scaling_seconds)
        print(f"    local, N={n} cameras: {r['stream']:.0f} stream s in {r['wall']:.1f} s wall = "
              f"{r['stream'] / r['wall']:.2f} stream s per s", flush=True)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": n, "include_dashboard": False})
        cluster.add_node(num_cpus=n)
        try:
            cfg = config(base, n, engine="ray", address=cluster.address,
                         cameras={"num_cpus": 1}, models={"actors": n, "num_cpus": 1})
            r = run(cfg, replay="fast", seconds=args.scaling_seconds)
        finally:
            cluster.shutdown()
        rate = r["stream"] / r["wall"]
        one = one or rate
        print(f"    ray,   N={n}: {r['windows']} windows, {r['stream']:.0f} stream s in {r['wall']:.1f} s wall = {rate:.2f} "
              f"stream s per s ({rate / (n * one):.2f} x linear; {rate:.1f} cameras in real time at best)", flush=True)
    cores = psutil.cpu_count()
    print(f"    this machine has {cores} cores: worker counts above {cores} were not measured here")
    return 0


if __name__ == "__main__":
    sys.exit(main())

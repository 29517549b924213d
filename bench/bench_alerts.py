"""Alerts through the outbox and out to a subscriber, against a bare ZeroMQ PUB socket.

Both paths send the same alert JSON to one SUB socket on loopback (a receiving thread).
Hawkwatch's path numbers each alert, commits it to the SQLite outbox (WAL) and only then sends
it. Two phases, each path measured in the same run:
- latency: alerts paced 1 ms apart, one per call (an alert as the pipeline sends it when nothing
  else is queued); from the call to the subscriber's receipt, p50/p99;
- throughput: as fast as they go. A backlog in the pipeline's outbox queue is stored in one
  commit (group commit, up to 256), so the outbox path takes batches of `--batch`; the bare
  socket sends one by one.

    python bench/bench_alerts.py [--alerts 5000] [--synchronous full|normal] [--batch 64]

Targets (issue 6): >= 5,000 alerts/s through outbox + publish; p99 <= 5 ms.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stream.alerts.outbox import Outbox  # noqa: E402
from stream.alerts.publisher import Publisher  # noqa: E402


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def alert(k: int) -> dict:
    return {"alert_id": f"bench-{k // 3}", "state": ("open", "update", "close")[k % 3], "category": "scuffle",
            "score": 0.91, "start": 12.0, "end": 18.5, "wall_start": 1.7e9, "wall_end": 1.7e9 + 6.5,
            "explanation": "Two people shove each other near the entrance.", "window_id": k, "reason": "",
            "evidence": [], "latency_ms": {"scene": 41.2, "model": 18.7, "sent": time.perf_counter()}}


class Receiver(threading.Thread):
    def __init__(self, endpoint: str, n: int):
        super().__init__(daemon=True)
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(endpoint)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"alert/")
        self.n, self.latency = n, []

    def run(self) -> None:
        while len(self.latency) < self.n and self.sock.poll(10_000):
            body = self.sock.recv_multipart()[1]
            self.latency.append((time.perf_counter() - json.loads(body)["latency_ms"]["sent"]) * 1000)
        self.sock.close(0)


def run(send, endpoint: str, n: int, wait, pace_s: float = 0.0, batch: int = 1) -> tuple[float, np.ndarray]:
    rx = Receiver(endpoint, n)
    rx.start()
    wait()
    t0 = time.perf_counter()
    for k in range(0, n, batch):
        send(range(k, min(n, k + batch)))
        if pace_s:
            time.sleep(pace_s)
    rx.join(timeout=60)
    elapsed = time.perf_counter() - t0
    if len(rx.latency) < n:
        raise SystemExit(f"the subscriber got {len(rx.latency)} of {n}")
    return n / elapsed, np.array(rx.latency)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alerts", type=int, default=5000)
    p.add_argument("--synchronous", choices=["full", "normal"], default="full")
    p.add_argument("--batch", type=int, default=64, help="alerts a commit in the throughput phase")
    args = p.parse_args()
    n = args.alerts

    def bare_path(pace_s, batch):
        ep = free_endpoint()
        bare = zmq.Context.instance().socket(zmq.XPUB)
        bare.setsockopt(zmq.SNDHWM, 0)
        bare.bind(ep)

        def wait():
            bare.poll(5000)
            bare.recv()

        def send(ks):
            for k in ks:
                bare.send_multipart([b"alert/lobby", json.dumps({"camera": "lobby", "seq": k + 1, **alert(k)}).encode()])
        try:
            return run(send, ep, n, wait, pace_s, 1)
        finally:
            bare.close(0)

    def outbox_path(pace_s, batch):
        with tempfile.TemporaryDirectory() as tmp:
            ep = free_endpoint()
            pub = Publisher(ep, outbox=Outbox(Path(tmp) / "outbox.sqlite", synchronous=args.synchronous), send_hwm=0)
            try:
                return run(lambda ks: pub.publish_alerts([{"camera": "lobby", **alert(k)} for k in ks]), ep, n,
                           lambda: pub.wait_for_subscriber(5), pace_s, batch)
            finally:
                pub.close()

    results = {}
    for phase, pace, batch in (("latency", 0.001, 1), ("throughput", 0.0, args.batch)):
        for name, path in (("bare PUB (reference)", bare_path), ("outbox + publish", outbox_path)):
            results[phase, name] = path(pace, batch)

    print(f"{n} alerts a phase; outbox synchronous={args.synchronous}; throughput batches of {args.batch}")
    print(f"{'path':<24}{'alerts/s':>10}{'p50 ms':>9}{'p99 ms':>9}   (latency phase: paced 1 ms)")
    for name in ("bare PUB (reference)", "outbox + publish"):
        rate = results["throughput", name][0]
        lat = results["latency", name][1]
        print(f"{name:<24}{rate:>10.0f}{np.percentile(lat, 50):>9.3f}{np.percentile(lat, 99):>9.3f}")
    rate, ref_rate = results["throughput", "outbox + publish"][0], results["throughput", "bare PUB (reference)"][0]
    p99 = np.percentile(results["latency", "outbox + publish"][1], 99)
    ref_p99 = np.percentile(results["latency", "bare PUB (reference)"][1], 99)
    print(f"ratio outbox/bare: throughput {rate / ref_rate:.2f}x, p99 latency {p99 / ref_p99:.1f}x")
    print(f"targets: >= 5000 alerts/s: {'met' if rate >= 5000 else 'NOT met'} ({rate:.0f}); "
          f"p99 <= 5 ms: {'met' if p99 <= 5 else 'NOT met'} ({p99:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

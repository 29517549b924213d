"""Chat never pauses scoring: window-close -> verdict latency with and without questions.

    python bench/bench_chat.py [--video data/vtest.avi] [--seconds 160] [--every 2]

Runs the demo config (the embedded Hawkeye model) on the video in real time twice in one process:
once alone, once with a user asking the chat endpoint a question every `--every` seconds. Prints
p50 / p95 of window_to_verdict for both, with 95 % bootstrap intervals (windows are few), the
ratio of the p95s (target: within 10 %), and how long the answers took.
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402
from stream.alerts.query import QueryClient  # noqa: E402
from stream.config import load_config, parse_config, with_overrides  # noqa: E402
from stream.app import build_pipeline  # noqa: E402

QUESTIONS = ["Is anyone running?", "How many people are there?", "Is anyone lying on the ground?",
             "Was a bag left behind?", "What happened in the last seconds?"]


def run(cfg_data: dict, video: Path, seconds: float, ask_every: float | None) -> tuple[list[float], list[float]]:
    """One real-time run; returns the window_to_verdict latencies (ms) and the answer times (ms)."""
    data = {**cfg_data, "cameras": {"bench": {"path": str(video.resolve())}}}
    chat = f"tcp://127.0.0.1:{free_port()}"
    data["alerts"] = {**data["alerts"], "endpoint": f"tcp://127.0.0.1:{free_port()}", "query_endpoint": None,
                      "chat_endpoint": chat, "wait_for_subscriber_s": 0.0, "health_interval_s": 3600.0}
    latencies: list[float] = []
    pipe = build_pipeline(with_overrides(parse_config(data), replay="realtime", loop=True, duration_s=seconds),
                          stop=threading.Event())
    record = pipe.stats["bench"].latency

    def keep(stage: str, ms: float) -> None:
        if stage == "window_to_verdict":
            latencies.append(ms)
        record(stage, ms)
    pipe.stats["bench"].latency = keep
    answers: list[float] = []
    done = threading.Event()

    def ask() -> None:
        client = QueryClient(chat, timeout_s=60.0, what="chat")
        k = 0
        while not done.wait(ask_every):
            rep = client.request({"op": "chat", "camera": "bench", "question": QUESTIONS[k % len(QUESTIONS)]})
            k += 1
            if rep.get("ok"):
                answers.append(rep["ms"])
        client.close()
    asker = threading.Thread(target=ask, daemon=True) if ask_every else None
    if asker:
        asker.start()
    pipe.run()
    done.set()
    if asker:
        asker.join(timeout=60)
    return latencies, answers


def p95_interval(x: list[float], rng: np.random.Generator) -> tuple[float, float, float]:
    a = np.asarray(x)
    boot = np.percentile(rng.choice(a, (2000, len(a))), 95, axis=1)
    return float(np.percentile(a, 95)), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=ROOT / "data" / "vtest.avi", help="the footage (default: %(default)s)")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml",
                   help="models and windows from this config (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=160.0,
                   help="stream seconds per run; the video loops (default: %(default)s)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between questions (default: %(default)s)")
    args = p.parse_args()
    data = load_config(args.config).model_dump(mode="json")
    data["http"] = None                       # not the demo's fixed port (the demo may be running)
    if data["detector"]["name"] != "hawkeye":
        print("the config's detector does not chat; use one with detector: hawkeye", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    results = {}
    for label, every in (("alone", None), (f"a question every {args.every:g} s", args.every)):
        print(f"running {args.seconds:g} s of {args.video.name} in real time, {label} ...", flush=True)
        lat, answers = run(data, args.video, args.seconds, every)
        p95, lo, hi = p95_interval(lat, rng)
        results[label] = p95
        extra = (f"; {len(answers)} answers, p50 {np.percentile(answers, 50):.0f} ms, max {max(answers):.0f} ms"
                 if answers else "")
        print(f"    window_to_verdict over {len(lat)} windows: p50 {np.percentile(lat, 50):.0f} ms, "
              f"p95 {p95:.0f} ms (95 % CI {lo:.0f}-{hi:.0f}){extra}", flush=True)
    alone, chatting = results.values()
    print(f"p95 with questions / alone: {chatting / alone:.2f}   target <= 1.10   "
          f"{'OK' if chatting <= 1.10 * alone else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

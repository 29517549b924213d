"""A real publishing process for the alert tests: the pipeline's Publisher (outbox, ZeroMQ, query
endpoint) sending scripted events, so kills and restarts can be timed exactly.

    python tests/stream/alerts/emitter.py ENDPOINT QUERY OUTBOX COUNT RATE [CAMERAS]

Writes "ready" once bound, then COUNT alerts (open/update/close cycles over the cameras, RATE a
second, a health message per camera after each), then "done"; it stays up until killed.
"""
from __future__ import annotations

import sys
import time
import uuid

from stream.alerts.publisher import Publisher


def main() -> None:
    endpoint, query, outbox, count, rate = sys.argv[1:6]
    cameras = sys.argv[6].split(",") if len(sys.argv) > 6 else ["lobby", "gate"]
    pub = Publisher(endpoint, outbox=outbox, query_endpoint=query)
    pub.resume()
    print("ready", flush=True)
    events: dict[str, tuple[str, int]] = {}
    for k in range(int(count)):
        cam = cameras[k % len(cameras)]
        aid, n = events.get(cam, (str(uuid.uuid4()), 0))
        state = "open" if n == 0 else ("close" if n == 2 else "update")
        events[cam] = (aid, n + 1) if state != "close" else (str(uuid.uuid4()), 0)
        pub.publish("alert", cam, {"alert_id": aid, "state": state, "category": "scuffle", "score": 0.9,
                                   "start": float(k), "end": k + 1.0, "wall_start": 1e9 + k, "wall_end": 1e9 + k + 1,
                                   "explanation": "", "window_id": k, "reason": "", "evidence": [], "latency_ms": {}})
        pub.publish("health", cam, {"state": "streaming", "detail": None, "source": "file", "stream_time": float(k),
                                    "fps_in": 10.0, "fps_out": 2.0, "windows_emitted": k, "windows_done": k,
                                    "windows_dropped": 0, "alerts": k, "latency_ms": {}})
        time.sleep(1.0 / float(rate))
    print("done", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

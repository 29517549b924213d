"""Publish alerts, verdicts and health over ZeroMQ: multipart [topic, json], one sequence per topic.

Topics are prefixes, so a subscriber picks what it wants: `alert/` (every camera's alerts),
`alert/lobby`, `health/`, `verdict/`. Every message carries the schema version, its type, the
camera, a sequence number that counts 1, 2, 3... per topic (a gap means a lost message), and
the time it was sent. The socket is an XPUB so the pipeline can wait for a first subscriber."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from typing import Any

import zmq

from stream.types import Alert, Verdict

log = logging.getLogger(__name__)
MESSAGE_SCHEMA = 1


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 3) for k, v in d.items()}


def alert_payload(alert: Alert) -> dict[str, Any]:
    p = asdict(alert)
    p["score"] = round(alert.score, 4)
    p["latency_ms"] = _rounded(alert.latency_ms)
    return p


def verdict_payload(v: Verdict) -> dict[str, Any]:
    return {
        "window_id": v.window_id, "start": v.start, "end": v.end, "wall_start": v.wall_start, "wall_end": v.wall_end,
        "score": round(v.score, 4), "people": v.people, "detector": v.detector, "final": v.final,
        "categories": _rounded(v.categories), "explanation": v.explanation,
        "seconds": [{"start": s.start, "end": s.end, "score": round(s.score, 4), "category": s.category}
                    for s in v.seconds],
        "gaps": [[round(a, 3), round(b, 3)] for a, b in v.gaps],
        "latency_ms": _rounded(v.latency_ms),
    }


class Publisher:
    """Owns the PUB socket; use from one thread only (ZeroMQ sockets are not thread-safe)."""

    def __init__(self, endpoint: str, *, send_hwm: int = 10000, context: zmq.Context | None = None):
        self.endpoint = endpoint
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, send_hwm)
        self._sock.setsockopt(zmq.LINGER, 2000)   # on close, give queued messages 2 s to leave
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as e:
            self._sock.close(0)
            raise OSError(f"cannot bind alerts endpoint {endpoint}: {e.strerror}") from None
        self._seq: dict[str, int] = {}
        self.sent = 0

    def wait_for_subscriber(self, timeout_s: float) -> bool:
        """Block until a subscription arrives (XPUB sees it) or the timeout passes."""
        if self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            self._sock.recv()   # the subscription message itself
            return True
        return False

    def publish(self, kind: str, camera: str, payload: dict[str, Any]) -> dict[str, Any]:
        topic = f"{kind}/{camera}"
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        msg = {"schema": MESSAGE_SCHEMA, "type": kind, "camera": camera, "seq": seq, "sent_at": time.time(), **payload}
        self._sock.send_multipart([topic.encode(), json.dumps(msg, separators=(",", ":")).encode()])
        self.sent += 1
        while self._sock.poll(0, zmq.POLLIN):   # drain (un)subscription notices so they never pile up
            self._sock.recv()
        return msg

    def close(self) -> None:
        self._sock.close()

"""What keeps a live source alive: its states and the reconnect backoff (its logs: stream/logs.py).

A source is always in exactly one state and announces each change:

    connecting ──► streaming ──► stalled (watchdog: no frame for N s) ──► reconnecting ──► connecting ...
         │              └──────► reconnecting (stream ended or broke) ──┘
         └──► reconnecting (cannot open: refused, wrong URL, bad codec)
    any state ──► stopped (asked to stop, or the file ended) | failed (gave up: max_reconnects, or a bad file)
"""
from __future__ import annotations

import random

CONNECTING, STREAMING, STALLED, RECONNECTING, STOPPED, FAILED = (
    "connecting", "streaming", "stalled", "reconnecting", "stopped", "failed")
STATES = (CONNECTING, STREAMING, STALLED, RECONNECTING, STOPPED, FAILED)


class Backoff:
    """Exponential backoff with jitter and a cap: initial, 2x, 4x ... each scaled by a random
    factor in [1 - jitter, 1 + jitter], never above `cap_s`. `reset()` after a success."""

    def __init__(self, initial_s: float, cap_s: float, jitter: float = 0.2, rng: random.Random | None = None):
        if not 0 < initial_s <= cap_s:
            raise ValueError("need 0 < initial_s <= cap_s")
        self.initial_s, self.cap_s, self.jitter = initial_s, cap_s, jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        base = min(self.cap_s, self.initial_s * 2.0 ** min(self.failures, 60))
        self.failures += 1
        delay = base * self._rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        if delay > self.cap_s:   # jitter below the cap, so cameras that went down together do not retry in step
            delay = self.cap_s * self._rng.uniform(1.0 - self.jitter, 1.0)
        return delay

    def reset(self) -> None:
        self.failures = 0

"""Which windows the model runs together (vLLM's split: this scheduler decides, the runner runs
a plain-dataclass plan).

A batch goes out when `max_batch` windows wait or the oldest has waited `max_wait_s`. Windows of
cameras with an open event go first (their next scores decide when the alert closes); the rest
are taken round-robin across cameras, each camera's oldest first, so a camera with a backlog
cannot starve the others, and each camera's windows stay in order.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    camera: str
    window_id: int
    arrival: float              # monotonic seconds
    priority: bool = False      # the camera has an open event


@dataclass(frozen=True)
class BatchPlan:
    requests: tuple[Request, ...]
    reason: str                 # "full" | "waited" | "flush"
    oldest_wait_s: float


class Scheduler:
    def __init__(self, max_batch: int, max_wait_s: float):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("need max_batch >= 1 and max_wait_s >= 0")
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._queues: dict[str, deque[Request]] = {}

    def add(self, request: Request) -> None:
        self._queues.setdefault(request.camera, deque()).append(request)

    def pending(self, camera: str | None = None) -> int:
        if camera is not None:
            return len(self._queues.get(camera, ()))
        return sum(len(q) for q in self._queues.values())

    def _oldest(self) -> float | None:
        return min((q[0].arrival for q in self._queues.values() if q), default=None)

    def wait_s(self, now: float) -> float | None:
        """Seconds until the oldest request is due (0: due now); None when nothing waits."""
        oldest = self._oldest()
        return None if oldest is None else max(0.0, oldest + self.max_wait_s - now)

    def plan(self, now: float, *, flush: bool = False) -> BatchPlan | None:
        """The next batch if one is due (or anything waits and `flush`), else None."""
        oldest = self._oldest()
        if oldest is None:
            return None
        n = self.pending()
        if n >= self.max_batch:
            reason = "full"
        elif now - oldest >= self.max_wait_s:
            reason = "waited"
        elif flush:
            reason = "flush"
        else:
            return None
        picked: list[Request] = []
        cams = sorted((c for c, q in self._queues.items() if q), key=lambda c: self._queues[c][0].arrival)
        for cam in [c for c in cams if any(r.priority for r in self._queues[c])]:   # open events: all of them
            while self._queues[cam] and len(picked) < self.max_batch:
                picked.append(self._queues[cam].popleft())
        while len(picked) < self.max_batch and any(self._queues[c] for c in cams):  # the rest: round-robin
            for cam in cams:
                if self._queues[cam] and len(picked) < self.max_batch:
                    picked.append(self._queues[cam].popleft())
        for cam in [c for c, q in self._queues.items() if not q]:
            del self._queues[cam]
        return BatchPlan(tuple(picked), reason, now - oldest)

"""Bounded queues between stages, each with a declared policy when full."""
from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Callable

from stream.types import EndOfStream


class StageQueue:
    """A bounded queue with a declared policy when full: `block` (lossless) or `drop_oldest`.

    Each put names its policy (a live camera drops, a replayed file blocks). When full, a
    drop_oldest put evicts the oldest droppable item of the camera with the most droppable items
    queued, so the cameras share the room fairly and a replayed file or an end of stream is never
    lost. With nothing droppable queued, it waits like a blocking put."""

    def __init__(self, maxsize: int, policy: str = "block", on_drop: Callable[[object], None] | None = None):
        if policy not in ("block", "drop_oldest"):
            raise ValueError(f"unknown queue policy {policy!r}")
        self.maxsize, self.policy, self._on_drop = maxsize, policy, on_drop
        self._items: deque[tuple[object, bool]] = deque()   # (item, droppable)
        self._cond = threading.Condition()
        self.dropped = 0

    def _victim(self) -> tuple[object, bool] | None:
        counts: dict[object, int] = {}
        for item, droppable in self._items:
            if droppable:
                cam = getattr(item, "camera", None)
                counts[cam] = counts.get(cam, 0) + 1
        if not counts:
            return None
        most = max(counts.values())
        return next(e for e in self._items if e[1] and counts.get(getattr(e[0], "camera", None)) == most)

    def put(self, item, *, policy: str | None = None, abort: threading.Event | None = None) -> bool:
        """Returns False only when `abort` was set while waiting for room."""
        droppable = (policy or self.policy) == "drop_oldest" and not isinstance(item, EndOfStream)
        dropped = []
        with self._cond:
            while len(self._items) >= self.maxsize:
                victim = self._victim() if droppable else None
                if victim is not None:
                    self._items.remove(victim)
                    dropped.append(victim[0])
                    continue
                if abort is not None and abort.is_set():
                    return False
                self._cond.wait(0.1)
            self.dropped += len(dropped)
            self._items.append((item, droppable))
            self._cond.notify_all()
        for old in dropped:
            if self._on_drop:
                self._on_drop(old)
        return True

    def get(self, timeout: float | None = None):
        """The oldest item; raises queue.Empty after `timeout` seconds with nothing to get."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                raise queue.Empty
            item, _ = self._items.popleft()
            self._cond.notify_all()
            return item

    def qsize(self) -> int:
        return len(self._items)

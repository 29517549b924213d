"""Logs that never flood: a camera that is down for a day, or a client that keeps sending bad
requests, writes a few lines an hour, not one per retry. Used by every stage, so it sits below them."""
from __future__ import annotations

import logging
import time
from typing import Callable


class RateLimitedLog:
    """Logs each kind of message at most once per `every_s` seconds; the next line it lets through
    says how many it held back. A camera that is down for a day writes a few lines an hour, not
    one per retry."""

    def __init__(self, logger: logging.Logger, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._logger, self.every_s, self._clock = logger, every_s, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, level: int, key: str, msg: str, *args) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        self._last[key] = now
        if held:
            msg += f" ({held} more like this in the last {now - last:.0f} s)"
        self._logger.log(level, msg, *args)
        return True

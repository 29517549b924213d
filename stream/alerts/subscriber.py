"""Receive every alert exactly once, in order per camera, even across restarts of either side.

ZeroMQ's PUB/SUB drops what a subscriber is not there for (before it connects, while it is
down, when its queue is full). Alerts are numbered per camera by the pipeline's outbox, so the
subscriber can tell: it keeps each camera's position (the last number handed to the callback),
and when a message skips ahead, or a health message says the camera has alerts beyond the
position, it fetches the missing ones from the query endpoint before going on.

    sub = AlertSubscriber("tcp://host:5556", "tcp://host:5557", positions=stored_positions)
    sub.run(callback)          # callback(msg) once per alert; sub.positions after each

Exactly once across *your* restarts needs your positions to be saved with your results (in the
same transaction, file or write): pass them back as `positions` on start. The CLI
(`python -m stream.subscribe --out FILE`) does this with its JSON-lines output, which is both.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import zmq

from stream.alerts.query import QueryClient

log = logging.getLogger(__name__)


class AlertsLost(RuntimeError):
    """Alerts the subscriber never saw are gone from the outbox (retention removed them)."""


class AlertSubscriber:
    def __init__(self, endpoint: str, query_endpoint: str, *, cameras: list[str] | None = None,
                 positions: dict[str, tuple[str, int]] | None = None, context: zmq.Context | None = None,
                 configure: Callable[[zmq.Socket], None] | None = None, query_timeout_s: float = 5.0,
                 on_lost: str = "raise", from_start: bool = True, extra_topics: list[str] = ()):
        """`positions`: camera -> (outbox id, last seq handed over). `cameras`: only these (default
        every camera). `configure(socket)`: applied to both sockets before connecting (CURVE keys).
        `on_lost`: "raise" (AlertsLost) or "skip" when retention removed alerts never handed over.
        `from_start`: a camera without a position starts at its first stored alert (else at the
        next new one). `extra_topics`: more topic prefixes to receive (e.g. "verdict/"; "" for
        all), for `run`'s `on_message`."""
        if on_lost not in ("raise", "skip"):
            raise ValueError("on_lost must be 'raise' or 'skip'")
        self._ctx = context or zmq.Context.instance()
        self.cameras = set(cameras) if cameras else None
        self.positions: dict[str, tuple[str, int]] = dict(positions or {})
        self.on_lost, self.from_start = on_lost, from_start
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 100_000)
        if configure is not None:
            configure(self._sub)
        self._sub.connect(endpoint)
        for prefix in ("alert/", "health/"):
            if self.cameras is None:
                self._sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
            else:
                for cam in self.cameras:
                    self._sub.setsockopt(zmq.SUBSCRIBE, f"{prefix}{cam}".encode())
        for prefix in extra_topics:
            self._sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self._query = QueryClient(query_endpoint, context=self._ctx, timeout_s=query_timeout_s, configure=configure)
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()    # (alert_id, revision), bounded
        self.delivered = self.backfilled = self.duplicates = 0
        self.caught_up = False                    # the first catch-up has been answered

    def _wanted(self, camera: str) -> bool:
        return self.cameras is None or camera in self.cameras

    # -- handing over ------------------------------------------------------------------------
    def _hand(self, msg: dict, callback: Callable[[dict], Any]) -> None:
        cam, outbox, seq = msg["camera"], msg["outbox"], msg["seq"]
        key = (msg["alert_id"], msg["revision"])
        if key in self._seen:                     # the same alert message under another number: never twice
            self.duplicates += 1
        else:
            callback(msg)
            self.delivered += 1
            self._seen[key] = None
            if len(self._seen) > 100_000:
                self._seen.popitem(last=False)
        self.positions[cam] = (outbox, seq)

    def _position(self, camera: str, outbox: str) -> int:
        """The last number handed over for this camera in this outbox (0 for a new outbox: the
        pipeline's outbox was replaced, numbering starts again)."""
        got = self.positions.get(camera)
        return got[1] if got and got[0] == outbox else 0

    def catch_up(self, camera: str, outbox: str, until: int | None, callback: Callable[[dict], Any]) -> None:
        """Fetch and hand over the camera's alerts after its position, up to `until` (None: all)."""
        while True:
            after = self._position(camera, outbox)
            if until is not None and after >= until:
                return
            limit = 500 if until is None else min(500, until - after)
            reply = self._query.request({"op": "since", "camera": camera, "after": after, "limit": limit})
            if not reply.get("ok"):
                raise RuntimeError(f"alerts query refused: {reply.get('error')}")
            if reply["outbox"] != outbox:
                if until is None:            # catching up from scratch: adopt the endpoint's outbox
                    outbox = reply["outbox"]
                    continue
                raise RuntimeError(f"camera {camera}: the query endpoint serves outbox {reply['outbox']}, "
                                   f"the alerts came from {outbox}")
            alerts = reply["alerts"]
            if alerts and alerts[0]["seq"] != after + 1:
                lost = f"camera {camera}: alerts {after + 1}-{alerts[0]['seq'] - 1} were removed by retention"
                if self.on_lost == "raise":
                    raise AlertsLost(lost)
                log.warning("%s; skipping them", lost)
            for a in alerts:
                self._hand(a, callback)
                self.backfilled += 1
            if not alerts or not reply["more"]:
                return

    def catch_up_all(self, callback: Callable[[dict], Any]) -> None:
        """Everything the outbox has beyond the positions (on start: what happened while down)."""
        reply = self._query.request({"op": "cameras"})
        if not reply.get("ok"):
            raise RuntimeError(f"alerts query refused: {reply.get('error')}")
        for cam, last in sorted(reply["cameras"].items()):
            if not self._wanted(cam):
                continue
            if not self.from_start and self._position(cam, reply["outbox"]) == 0:
                self.positions[cam] = (reply["outbox"], last)
                continue
            self.catch_up(cam, reply["outbox"], None, callback)

    # -- the loop --------------------------------------------------------------------------------
    def handle(self, topic: str, msg: dict, callback: Callable[[dict], Any]) -> None:
        kind, cam = msg.get("type"), msg.get("camera")
        if not isinstance(cam, str) or not self._wanted(cam):
            return
        if kind == "alert":
            outbox, seq = msg["outbox"], msg["seq"]
            at = self._position(cam, outbox)
            if seq <= at:
                self.duplicates += 1              # already handed over (a back-fill overtook it)
                return
            if seq > at + 1:
                self.catch_up(cam, outbox, seq - 1, callback)
            self._hand(msg, callback)
        elif kind == "health" and msg.get("outbox") and msg.get("alert_seq", 0) > self._position(cam, msg["outbox"]):
            self.catch_up(cam, msg["outbox"], msg["alert_seq"], callback)   # missed the newest: no later one will say

    def run(self, callback: Callable[[dict], Any], *, stop: threading.Event | None = None,
            idle_timeout_s: float | None = None, on_message: Callable[[str, dict], Any] | None = None) -> None:
        """Catch up, then hand over alerts as they come until `stop` is set or nothing arrives for
        `idle_timeout_s`. `on_message(topic, msg)` sees every message (health too), for display."""
        time.sleep(0.05)                          # let the subscription reach the publisher first
        warned = False
        last = time.monotonic()
        patience = self._query.timeout_s
        while not (stop and stop.is_set()):
            if not self.caught_up:                # the pipeline may not be up yet: keep asking
                if idle_timeout_s is not None:    # the idle timeout counts from the start, asking included
                    left = idle_timeout_s - (time.monotonic() - last)
                    if left <= 0:
                        return
                    self._query.timeout_s = max(0.05, min(patience, left))
                try:
                    self.catch_up_all(callback)
                    self.caught_up = True
                    self._query.timeout_s = patience
                except TimeoutError as e:
                    if not warned:
                        log.warning("%s; retrying", e)
                        warned = True
            if not self._sub.poll(100):
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            topic, body = self._sub.recv_multipart()
            try:
                msg = json.loads(body)
            except ValueError:
                log.warning("a message on %s that is not JSON; ignored", topic[:64])
                continue
            if on_message is not None:
                on_message(topic.decode(errors="replace"), msg)
            self.handle(topic.decode(errors="replace"), msg, callback)

    def close(self) -> None:
        self._sub.close(0)
        self._query.close()

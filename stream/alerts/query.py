"""The catch-up endpoint: a ROUTER socket that answers, from the outbox, which alerts a camera
has had since a number. Subscribers use it to fill gaps and to catch up after a restart.

Requests are one JSON object (from a REQ or DEALER socket), at most `MAX_REQUEST` bytes:

    {"op": "since", "camera": "lobby", "after": 41, "limit": 100}
        -> {"ok": true, "outbox": ID, "camera": "lobby", "alerts": [<alert message>...],
            "last_seq": 57, "first_seq": 1, "more": true}
    {"op": "cameras"}
        -> {"ok": true, "outbox": ID, "cameras": {"lobby": 57, ...}}

Anything else is answered {"ok": false, "error": "..."} and changes nothing (the endpoint only
reads). `first_seq` is the oldest alert retention kept: a subscriber further behind has lost
the ones in between for good and is told so.
"""
from __future__ import annotations

import json
import logging
import threading
from functools import partial
from pathlib import Path
from typing import Any, Callable

import zmq

from stream.alerts.outbox import Outbox, Reader
from stream.logs import RateLimitedLog

log = logging.getLogger(__name__)

MAX_REQUEST = 4096            # bytes; a request is a few dozen
MAX_LIMIT = 500               # alerts a reply
MAX_FRAME = 1 << 20           # larger messages make ZeroMQ drop the connection before we see them


class RequestError(ValueError):
    pass


def int_field(req: dict, key: str, default: int | None, lo: int, hi: int) -> int:
    v = req.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise RequestError(f"{key} must be an integer")
    if not lo <= v <= hi:
        raise RequestError(f"{key} must be between {lo} and {hi}")
    return v


def camera_field(req: dict) -> str:
    camera = req.get("camera")
    if not isinstance(camera, str) or not 0 < len(camera) <= 64:
        raise RequestError("camera must be a camera id (a string of 1-64 characters)")
    return camera


def only_fields(req: dict, allowed: set[str]) -> None:
    unknown = set(req) - allowed
    if unknown:
        raise RequestError(f"unknown fields {sorted(unknown)}")


def reply(body: bytes, handle: Callable[[dict], dict[str, Any]]) -> dict[str, Any]:
    """`handle`'s reply to one request body, or {"ok": false, "error"} when the body is not one
    JSON object of at most MAX_REQUEST bytes, `handle` refuses it, or `handle` breaks (never raises:
    no request may end the endpoint)."""
    try:
        if len(body) > MAX_REQUEST:
            raise RequestError(f"request too large ({len(body)} bytes; at most {MAX_REQUEST})")
        try:
            req = json.loads(body)
        except RecursionError:        # "[" * 2048: the parser's recursion, not ours
            raise RequestError("request is not JSON (nested too deeply)") from None
        except (ValueError, UnicodeDecodeError):
            raise RequestError("request is not JSON") from None
        if not isinstance(req, dict):
            raise RequestError("request must be a JSON object")
        return handle(req)
    except RequestError as e:
        return {"ok": False, "error": str(e)}
    except Exception as e:  # noqa: BLE001 - a bug or a fault behind one request answers that request
        log.exception("a request failed")
        return {"ok": False, "error": f"internal error ({type(e).__name__}); the request was not served"}


def catch_up(reader: Reader, req: dict, live: Outbox | None = None) -> dict[str, Any]:
    """A catch-up request's reply, from the outbox (and, with `live`, the writer's outbox, the
    alerts a storage fault holds in memory)."""
    op = req.get("op")
    if op == "cameras":
        cameras = reader.cameras()
        if live is not None:
            cameras = {c: max(n, live.last_seq(c)) for c, n in {**live.cameras(), **cameras}.items()}
        return {"ok": True, "outbox": reader.id, "cameras": dict(sorted(cameras.items()))}
    if op != "since":
        raise RequestError("op must be 'since' or 'cameras'")
    only_fields(req, {"op", "camera", "after", "limit"})
    camera = camera_field(req)
    after = int_field(req, "after", None, 0, 2**62)
    limit = int_field(req, "limit", 100, 1, MAX_LIMIT)
    rows, last, first = reader.since(camera, after, limit)
    alerts = [json.loads(r) for r in rows]
    if live is not None:                   # held rows are newer than every stored one
        top = alerts[-1]["seq"] if alerts else after
        alerts += [json.loads(b) for b in live.held_since(camera, top)][:limit - len(alerts)]
        last = max(last, live.last_seq(camera))
    more = bool(alerts) and alerts[-1]["seq"] < last
    return {"ok": True, "outbox": reader.id, "camera": camera, "alerts": alerts, "last_seq": last,
            "first_seq": first, "more": more}


def answer(reader: Reader, body: bytes) -> dict[str, Any]:
    """One catch-up request body's reply."""
    return reply(body, partial(catch_up, reader))


class RequestServer:
    """A ROUTER endpoint served from its own thread: each request (from a REQ or DEALER socket)
    is one JSON object, answered by `handle(request) -> reply` through `reply`."""

    def __init__(self, endpoint: str, handle: Callable[[dict], dict[str, Any]], *, name: str,
                 context: zmq.Context | None = None, configure: Any = None):
        self.endpoint, self.name, self._handle = endpoint, name, handle
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        if configure is not None:
            configure(self._sock)           # CURVE (stream/alerts/security.py)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as e:
            self._sock.close(0)
            raise OSError(f"cannot bind {name} endpoint {endpoint}: {e.strerror}") from None
        self._stop = threading.Event()
        self._thread = self._new_thread()
        self.answered = self.refused = self.restarts = 0
        self._log = RateLimitedLog(log, every_s=10.0)     # a flood of bad requests is not a flood of lines

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._serve, name=self.name.replace(" ", "-"), daemon=True)

    def start(self) -> RequestServer:
        self._thread.start()
        return self

    def ensure_serving(self) -> bool:
        """Restart the serving thread if it died (called with every health message); returns
        whether it had to. `reply` answers every request, so this is the last line of defence."""
        if self._stop.is_set() or self._thread.is_alive():
            return False
        self.restarts += 1
        log.error("the %s endpoint's thread had died; restarting it (restart %d)", self.name, self.restarts)
        self._thread = self._new_thread()
        self._thread.start()
        return True

    def status(self) -> dict[str, Any]:
        """For health messages."""
        return {"serving": self._thread.is_alive(), "answered": self.answered, "refused": self.refused,
                "restarts": self.restarts}

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(100):
                continue
            frames = self._sock.recv_multipart()
            # REQ peers send [identity, b"", body]; DEALER peers [identity, body]
            if len(frames) == 3 and frames[1] == b"":
                route, body = frames[:2], frames[2]
            elif len(frames) == 2:
                route, body = frames[:1], frames[1]
            else:            # several frames: not a request; answered on the envelope it came with
                route, body = frames[:2] if frames[1:2] == [b""] else frames[:1], None
            out = reply(body, self._handle) if body is not None else \
                {"ok": False, "error": "a request is one frame (one JSON object)"}
            if out["ok"]:
                self.answered += 1
            else:
                self.refused += 1
                self._log(logging.INFO, "refused", "refused a request to the %s endpoint: %s", self.name,
                          out["error"])
            try:
                self._sock.send_multipart([*route, json.dumps(out, separators=(",", ":")).encode()])
            except zmq.ZMQError:
                pass        # the peer left

    def closed(self) -> None:
        """Called once the socket is closed."""

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._sock.close(0)
        self.closed()


class QueryServer(RequestServer):
    """The catch-up endpoint, reading the outbox through a connection of its own."""

    def __init__(self, endpoint: str, outbox: Outbox | Path, *, context: zmq.Context | None = None,
                 configure: Any = None):
        """`outbox`: the writer's Outbox (its held alerts are served too), or the path of one."""
        live = outbox if isinstance(outbox, Outbox) else None
        self._reader = Reader(live.path if live else outbox)
        try:
            super().__init__(endpoint, partial(catch_up, self._reader, live=live), name="alerts query",
                             context=context, configure=configure)
        except OSError:
            self._reader.close()
            raise

    def closed(self) -> None:
        self._reader.close()


class QueryClient:
    """Asks a request endpoint (a DEALER socket, so a lost reply never wedges it)."""

    def __init__(self, endpoint: str, *, context: zmq.Context | None = None, timeout_s: float = 5.0,
                 configure: Any = None, what: str = "alerts query"):
        self._ctx = context or zmq.Context.instance()
        self.endpoint, self.timeout_s, self._configure, self.what = endpoint, timeout_s, configure, what
        self._sock = self._open()

    def _open(self) -> zmq.Socket:
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        if self._configure is not None:
            self._configure(s)
        s.connect(self.endpoint)
        return s

    def request(self, req: dict) -> dict:
        """The reply; raises TimeoutError when none comes (the socket is then replaced, so a late
        reply is never mistaken for the next one's)."""
        self._sock.send(json.dumps(req).encode())
        if not self._sock.poll(int(self.timeout_s * 1000)):
            self._sock.close(0)
            self._sock = self._open()
            raise TimeoutError(f"no answer from the {self.what} endpoint {self.endpoint} in {self.timeout_s:g} s")
        return json.loads(self._sock.recv())

    def close(self) -> None:
        self._sock.close(0)

"""What every request passes before the routes see it (an ASGI middleware):

- **Host.** On loopback without a token, a page on any site could reach the API through DNS
  rebinding (its name made to resolve to 127.0.0.1). The Host header must be one of
  `http.allowed_hosts` (default on loopback: localhost and the loopback addresses), else 400.
- **Cross-origin writes.** A page served from elsewhere (another loopback port included) may
  post a form to the console, and the browser sends the cookie along where `SameSite` allows.
  A POST, PUT, PATCH or DELETE whose `Origin` (or, without one, `Referer`) is not this server,
  or that the browser marks `Sec-Fetch-Site: cross-site`, gets 403. Clients that send none of
  these (curl, scripts) are not browsers and pass.
- **Body size.** A body over `http.max_body_kb` gets 413, whether it says its length or not, before
  a route parses it.
- **Slow or silent clients** (`deadline_protocol`, for uvicorn): a connection whose request has not
  arrived within `http.header_timeout_s` is closed, and beyond `http.max_connections` at once new
  requests get 503, so slow sockets cannot take every descriptor from the console, /metrics and
  /healthz."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from stream.config import HttpConfig
from stream.net import is_loopback

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


class TooLarge(Exception):
    pass


def deadline_protocol(header_timeout_s: float):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request has not fully arrived
    within `header_timeout_s` of connecting (uvicorn waits forever: a thousand clients that
    connect and send nothing, or a header a byte at a time, would hold every descriptor)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineProtocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._deadline = self.loop.call_later(header_timeout_s, self._too_slow)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and self._deadline is not None:     # a whole request arrived
                self._deadline.cancel()
                self._deadline = None

        def connection_lost(self, exc) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().connection_lost(exc)

        def _too_slow(self) -> None:
            self._deadline = None
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()
    return DeadlineProtocol


def allowed_hosts(cfg: HttpConfig) -> set[str] | None:
    """The Host names accepted (lower case, no port); None: any."""
    if cfg.allowed_hosts is not None:
        return {h.lower().strip("[]") for h in cfg.allowed_hosts}
    host = cfg.endpoint.rpartition(":")[0].strip("[]").lower()
    if is_loopback(f"tcp://{cfg.endpoint}"):
        return {n.strip("[]") for n in LOOPBACK_NAMES} | {host}
    return None


def _host_of(value: str) -> str:
    """The name in a Host header (`name:port`, `[v6]:port`), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rpartition(":")[0] if value.count(":") == 1 else value


class Guard:
    def __init__(self, app, cfg: HttpConfig):
        self.app, self.hosts, self.max_body = app, allowed_hosts(cfg), cfg.max_body_kb * 1024

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.hosts is not None and _host_of(host) not in self.hosts:
            return await _refuse(send, 400, f"this server does not answer to the host {host!r} (http.allowed_hosts)")
        if scope["method"] in UNSAFE and _cross_origin(headers, host):
            return await _refuse(send, 403, "a write from another site is refused (Origin is not this server)")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _refuse(send, 413, f"the body is over {self.max_body // 1024} KiB (http.max_body_kb)")
        seen, over, started = 0, False, False

        async def counted():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    over = True
                    raise TooLarge
            return message

        async def answered(message):
            # whatever the app makes of a body cut short (FastAPI: 400), the client hears 413
            nonlocal started
            if over:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _refuse(send, 413, f"the body is over {self.max_body // 1024} KiB (http.max_body_kb)")
                return
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, counted, answered)
        except TooLarge:
            if not started:
                await _refuse(send, 413, f"the body is over {self.max_body // 1024} KiB (http.max_body_kb)")


def _cross_origin(headers: dict[str, str], host: str) -> bool:
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = headers.get("origin") or headers.get("referer")
    if not origin:
        return False
    if origin == "null":             # a sandboxed frame or a file: never this server
        return True
    return urlsplit(origin).netloc.lower() != host.lower()


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

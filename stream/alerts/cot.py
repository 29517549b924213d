"""Cursor on Target out: alerts that carry a position (drone feeds) become markers on TAK maps
(ATAK, WinTAK, iTAK, TAK Server), where the people who act on them already look.

Each alert message becomes one CoT 2.0 `<event>` whose uid is `<uid_prefix>.<alert_id>`, so an
event's updates move and relabel its one marker instead of adding new ones. The point is the
alert's GeoJSON event point (`geometry`, a FeatureCollection: the Point with `role: event`) with
its 1-sigma errors as `ce`/`le`, which is what CoT means by them too. A close sends TAK's delete
event (`t-x-d-d` linking the marker's uid, with `__forcedelete`), the way TAK clients remove a
marker before its stale time; the stale time (`stale_s`) still clears a marker whose close never
arrives. Alerts without a position (fixed cameras) are skipped: TAK has nowhere to put them.

The marker's type defaults to `a-u-G`, an unknown ground point: an anomaly is a thing at a place,
whose affiliation a detector cannot judge, and an atom is what TAK users re-type (hostile,
neutral) and task. `b-m-p-s-p-i` is not it: that is a sensor's point of interest (where a UAS's
camera looks), one per sensor, that moves with the gimbal.

Transports: udp:// sends each event as one datagram (multicast with `ttl` hops: TAK's mesh
default is 239.2.3.1:6969); tcp:// and tls:// stream the events back to back to a TAK Server
from a thread of their own that reconnects with backoff, behind a bounded queue that drops the
oldest event when the server stays away, so `send` never blocks the pipeline. Every drop and
skip is counted; the outbox keeps every alert anyway.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import re
import select
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from urllib.parse import quote

from stream.config import CotConfig, cot_address

log = logging.getLogger(__name__)

UNKNOWN = 9999999.0          # CoT's "not known" for hae, ce and le
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")   # no XML 1.0 parser takes these
_SEND_TIMEOUT_S = 5.0        # a connect or a write that takes longer: the server is gone, reconnect
_VERDICT_WAIT_S = 1.0        # TLS 1.3: how long the server may take to accept or refuse our certificate
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _text(value) -> str:
    return _NOT_XML.sub("", str(value))


def cot_time(t: float) -> str:
    """ISO 8601 UTC with milliseconds and Z, as CoT writes times: 2024-05-01T12:00:00.250Z."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_point(alert: dict) -> tuple[float, float, float, float, float] | None:
    """(lat, lon, hae, ce, le) of the alert's event point, or None when it has no position.
    Unknown height and errors are CoT's 9999999."""
    geometry = alert.get("geometry")
    if not isinstance(geometry, dict):
        return None
    points = [f for f in geometry.get("features", [])
              if isinstance(f, dict) and (f.get("geometry") or {}).get("type") == "Point"]
    point = next((f for f in points if (f.get("properties") or {}).get("role") == "event"),
                 points[0] if points else None)
    if point is None:
        return None
    coords = point["geometry"].get("coordinates") or []
    if len(coords) < 2:
        return None
    props = point.get("properties") or {}

    def known(value) -> float:          # absent or null (place() cannot always bound its error): unknown
        return UNKNOWN if value is None else float(value)
    lon, lat = float(coords[0]), float(coords[1])
    hae = known(coords[2]) if len(coords) > 2 else UNKNOWN
    return lat, lon, hae, known(props.get("ce")), known(props.get("le"))


def _event(uid: str, event_type: str, how: str, now: float, stale: float,
           point: tuple[float, float, float, float, float]) -> tuple[ET.Element, ET.Element]:
    event = ET.Element("event", version="2.0", uid=_text(uid), type=event_type, how=how, time=cot_time(now),
                       start=cot_time(now), stale=cot_time(stale))
    lat, lon, hae, ce, le = point
    ET.SubElement(event, "point", lat=f"{lat:.7f}", lon=f"{lon:.7f}", hae=f"{hae:.1f}", ce=f"{ce:.1f}",
                  le=f"{le:.1f}")
    return event, ET.SubElement(event, "detail")


def _bytes(event: ET.Element) -> bytes:
    return _DECLARATION + ET.tostring(event, encoding="unicode").encode()


def cot_event(alert: dict, *, uid_prefix: str = "hawkwatch", event_type: str = "a-u-G", stale_s: float = 300.0,
              how: str = "m-g", callsign: str = "Hawkwatch", console_url: str | None = None,
              now: float | None = None) -> bytes:
    """The CoT event of one alert message: its marker (open, update), or the marker's delete (close).
    An open or update without an event point is a ValueError (see `event_point`)."""
    now = time.time() if now is None else now
    uid = f"{uid_prefix}.{alert['alert_id']}"
    if alert.get("state") == "close":
        event, detail = _event(f"{uid}.delete", "t-x-d-d", how, now, now + 20.0, (0.0, 0.0, 0.0, UNKNOWN, UNKNOWN))
        ET.SubElement(detail, "link", uid=_text(uid), relation="none", type="none")
        ET.SubElement(detail, "__forcedelete")
        return _bytes(event)
    point = event_point(alert)
    if point is None:
        raise ValueError(f"alert {alert['alert_id']} has no event point in `geometry`")
    event, detail = _event(uid, event_type, how, now, now + stale_s, point)
    category, camera = _text(alert.get("category", "")), _text(alert.get("camera", ""))
    ET.SubElement(detail, "contact", callsign=f"{_text(callsign)}: {category} ({camera})")
    ET.SubElement(detail, "link", uid=_text(uid_prefix), type="a-f-G-U-C", relation="p-p",
                  parent_callsign=_text(callsign))
    remarks = ET.SubElement(detail, "remarks", source=_text(uid_prefix))
    remarks.text = (f"{category}, score {float(alert.get('score', 0.0)):.2f}, camera {camera} "
                    f"({_text(alert.get('state', ''))}): {_text(alert.get('explanation', ''))}")
    if console_url:
        ET.SubElement(detail, "link", url=f"{console_url.rstrip('/')}/events/{quote(str(alert['alert_id']), safe='')}",
                      relation="r-u", mime="text/html", remarks="Hawkwatch event")
    return _bytes(event)


class _Udp:
    """One datagram per event; a full socket buffer drops the event (counted by the sink)."""

    def __init__(self, host: str, port: int, ttl: int):
        try:
            family, _, _, _, self.address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as e:
            raise RuntimeError(f"alerts.cot.endpoint: cannot resolve {host}: {e.strerror}") from None
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        if family == socket.AF_INET6:
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        else:
            self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)

    def put(self, data: bytes) -> bool:
        try:
            self._sock.sendto(data, self.address)
        except OSError:                 # buffer full, no route: a datagram is lost either way
            return False
        return True

    def close(self) -> None:
        self._sock.close()


class _Stream:
    """TCP or TLS to a TAK Server: a thread connects, sends what the queue holds and reconnects
    (0.5 s doubling to 30 s) when the server goes; `put` only queues."""

    def __init__(self, host: str, port: int, size: int, context: ssl.SSLContext | None):
        self.host, self.port, self._context = host, port, context
        self._queue: collections.deque[bytes] = collections.deque()
        self._size = size
        self._ready = threading.Condition()
        self._stop = False
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cot-{host}:{port}", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> bool:
        """Queue one event; False when the queue was full and the oldest went."""
        with self._ready:
            full = len(self._queue) >= self._size
            if full:
                self._queue.popleft()
            self._queue.append(data)
            self._ready.notify()
        return not full

    def _next(self, timeout: float) -> bytes | None:
        with self._ready:
            if not self._queue and not self._stop:
                self._ready.wait(timeout)
            return self._queue[0] if self._queue else None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=_SEND_TIMEOUT_S)
        if self._context is not None:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
                if sock.version() == "TLSv1.3":
                    # the server checks our certificate after the handshake returns here and answers
                    # with session tickets or an alert: wait for that, so that a refused connection
                    # is never taken as connected and no event is written into it
                    if select.select([sock], [], [], _VERDICT_WAIT_S)[0]:
                        self._discard_incoming(sock)
            except (OSError, ssl.SSLError):
                sock.close()
                raise
        return sock

    def _run(self) -> None:
        delay, failures, where = 0.5, 0, f"{self.host}:{self.port}"
        while not self._stop:
            try:
                sock = self._connect()
            except OSError as e:
                failures += 1
                if failures == 1:
                    log.warning("CoT: cannot connect to %s (%s); retrying with backoff", where, e)
                with self._ready:
                    if not self._stop:
                        self._ready.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            log.info("CoT: connected to %s%s", where, f" after {failures} failed tries" if failures else "")
            delay, failures = 0.5, 0
            self.connected.set()
            try:
                self._pump(sock)
            except OSError as e:
                log.info("CoT: lost %s (%s); reconnecting", where, e)
            finally:
                self.connected.clear()
                sock.close()

    def _pump(self, sock: socket.socket) -> None:
        """Send until stopped (and the queue is empty) or the server goes. An event leaves the
        queue only once sent, so one that meets a closed connection goes on the next."""
        while True:
            data = self._next(timeout=0.2)
            self._discard_incoming(sock)
            if data is None:
                if self._stop:
                    return
                continue
            sock.sendall(data)
            with self._ready:
                if self._queue and self._queue[0] is data:
                    self._queue.popleft()

    @staticmethod
    def _discard_incoming(sock: socket.socket) -> None:
        """Read what the server sent (TAK Server sends its clients' traffic too, TLS 1.3 its
        session tickets) and notice a closed connection before an event is written into it.
        Without blocking: a TLS record's bytes may be readable before the record is whole."""
        sock.setblocking(False)
        try:
            while True:
                try:
                    if not sock.recv(65536):
                        raise ConnectionError("the server closed the connection")
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return
        finally:
            sock.settimeout(_SEND_TIMEOUT_S)

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop, giving queued events `timeout_s` to leave while connected."""
        with self._ready:
            self._stop = True
            self._ready.notify_all()
        self._thread.join(timeout_s)


def tls_context(cfg: CotConfig) -> ssl.SSLContext:
    """The client context of a tls:// endpoint: the CA to check the server with, the client
    certificate TAK servers ask for."""
    t = cfg.tls
    password = None
    if t.password_env:
        password = os.environ.get(t.password_env)
        if password is None:
            raise RuntimeError(f"alerts.cot.tls.password_env: ${t.password_env} is not set")
    try:
        context = ssl.create_default_context(cafile=str(t.ca_file) if t.ca_file else None)
        context.check_hostname = t.check_hostname
        if t.certfile:
            context.load_cert_chain(str(t.certfile), str(t.keyfile), password=password)
    except (OSError, ValueError) as e:      # ssl.SSLError is an OSError: a file that is no certificate, a wrong key
        raise RuntimeError(f"alerts.cot.tls: {e}") from None
    return context


class CotSink:
    """Alerts with a position to a TAK endpoint as CoT events; health and verdicts are not sent."""
    name = "cot"

    def __init__(self, cfg: CotConfig):
        self.cfg = cfg
        scheme, host, port = cot_address(cfg.endpoint)
        if scheme == "udp":
            self._transport: _Udp | _Stream = _Udp(host, port, cfg.ttl)
        else:
            self._transport = _Stream(host, port, cfg.queue_size, tls_context(cfg) if scheme == "tls" else None)
        self._marked: collections.OrderedDict[str, None] = collections.OrderedDict()   # alert_ids with a marker
        self.sent = self.skipped = self.dropped = 0

    @property
    def connected(self) -> threading.Event | None:
        """tcp/tls: set while connected to the server (None for udp)."""
        return getattr(self._transport, "connected", None)

    def send(self, topic: str, body: bytes) -> None:
        if not topic.startswith("alert/"):
            return
        alert = json.loads(body)
        alert_id = alert["alert_id"]
        closing = alert.get("state") == "close"
        if event_point(alert) is None and not (closing and alert_id in self._marked):
            self.skipped += 1         # no position, and no marker of this run to delete
            log.debug("CoT: alert %s of %s has no geometry: not sent", alert_id, alert.get("camera"))
            return
        c = self.cfg
        data = cot_event(alert, uid_prefix=c.uid_prefix, event_type=c.event_type, stale_s=c.stale_s, how=c.how,
                         callsign=c.callsign, console_url=c.console_url)
        self._remember(alert_id, closing)
        if self._transport.put(data):
            self.sent += 1
        else:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:      # 1st, 2nd, 4th... drop: logged, not flooded
                log.warning("CoT: %d events dropped so far (%s unreachable or too slow)", self.dropped,
                            c.endpoint)

    def _remember(self, alert_id: str, closing: bool) -> None:
        if closing:
            self._marked.pop(alert_id, None)
            return
        self._marked[alert_id] = None
        if len(self._marked) > 10_000:
            self._marked.popitem(last=False)

    def close(self) -> None:
        self._transport.close()

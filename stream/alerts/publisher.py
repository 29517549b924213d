"""Send alerts, verdicts and health to the sinks: ZeroMQ always, MQTT and Cursor on Target (TAK)
as options.

Alerts go to the outbox first (numbered and stored), then to every sink, then are marked sent;
a pipeline that dies in between sends them again when it starts (subscribers drop the repeat by
number). Health and verdicts are not stored: they are numbered per topic from 1 at start.

Storing (a commit with its fsync) runs on a writer thread of its own: the pipeline's publishing
thread `submit`s alerts and sends them with `send_stored` once they are on disk, so a slow disk
delays only the alerts, never health or verdicts. A storage fault (a full disk) holds the alerts
in memory, still numbered and sent (stream/alerts/outbox.py), and health says so.

Sinks sit behind one interface (`Sink.send(topic, body)`); a sink that raises is logged and
counted, never allowed to stop the others or the pipeline: the outbox has the alert, and the
query endpoint serves it to whoever missed it.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import zmq

from stream.alerts.outbox import Outbox, OutboxError, Stored
from stream.alerts.query import QueryServer
from stream.alerts.schema import SCHEMA_VERSION
from stream.alerts.security import CurveServer, KeyFileError
from stream.config import AlertsConfig, ConfigError
from stream.types import Alert, Verdict

log = logging.getLogger(__name__)


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 3) for k, v in d.items()}


def alert_payload(alert: Alert) -> dict[str, Any]:
    p = asdict(alert)
    p["score"] = round(alert.score, 4)
    p["latency_ms"] = _rounded(alert.latency_ms)
    if p["geometry"] is None:          # only a drone's camera places its events on the ground
        del p["geometry"]
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


class Sink(Protocol):
    name: str

    def send(self, topic: str, body: bytes) -> None: ...

    def close(self) -> None: ...


class ZmqSink:
    """The PUB side (an XPUB, so the pipeline can wait for a first subscriber)."""
    name = "zeromq"

    def __init__(self, endpoint: str, *, send_hwm: int = 10000, context: zmq.Context | None = None,
                 configure: Any = None):
        self._sock = (context or zmq.Context.instance()).socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, send_hwm)
        self._sock.setsockopt(zmq.LINGER, 2000)   # on close, give queued messages 2 s to leave
        if configure is not None:
            configure(self._sock)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as e:
            self._sock.close(0)
            raise OSError(f"cannot bind alerts endpoint {endpoint}: {e.strerror}") from None

    def wait_for_subscriber(self, timeout_s: float) -> bool:
        if self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            self._sock.recv()   # the subscription message itself
            return True
        return False

    def send(self, topic: str, body: bytes) -> None:
        self._sock.send_multipart([topic.encode(), body])
        while self._sock.poll(0, zmq.POLLIN):   # drain (un)subscription notices so they never pile up
            self._sock.recv()

    def close(self) -> None:
        self._sock.close()


class Publisher:
    """Owns the outbox, the sinks and the query endpoint; use from one thread only (the outbox's
    commits run on the publisher's own writer thread)."""

    def __init__(self, endpoint: str, *, outbox: Outbox | str | Path, query_endpoint: str | None = None,
                 send_hwm: int = 10000, sinks: list[Sink] = (), context: zmq.Context | None = None,
                 curve: Any = None):
        configure = curve.configure if curve is not None else None
        self.configure = configure        # CURVE server set-up for the pipeline's other endpoints (chat)
        self.zmq = ZmqSink(endpoint, send_hwm=send_hwm, context=context, configure=configure)
        self.outbox = outbox if isinstance(outbox, Outbox) else Outbox(outbox)
        self.sinks: list[Sink] = [self.zmq, *sinks]
        self.query = None
        if query_endpoint is not None:
            self.query = QueryServer(query_endpoint, self.outbox, context=context, configure=configure).start()
        self._curve = curve
        self._seq: dict[str, int] = {}
        self.sent = 0
        self.sink_errors: dict[str, int] = {s.name: 0 for s in self.sinks}
        self._to_store: queue.SimpleQueue = queue.SimpleQueue()   # lists of payloads (None: stop)
        self._stored: queue.SimpleQueue = queue.SimpleQueue()     # (batches, [Stored] or an exception)
        self._submitted = 0                                        # batches submitted and not yet sent
        self._writer = threading.Thread(target=self._store, name="outbox-writer", daemon=True)
        self._writer.start()

    @classmethod
    def from_config(cls, a: AlertsConfig) -> Publisher:
        """The outbox, the sinks, the query endpoint and CURVE, as the config's `alerts` says."""
        try:
            outbox = Outbox(a.outbox.path, synchronous=a.outbox.synchronous, max_mb=a.outbox.max_mb,
                            max_age_s=a.outbox.max_age_days * 86400 if a.outbox.max_age_days else None)
        except OutboxError as e:     # not the config's fault (a full disk, a read-only folder): exit 1
            raise OutboxError(f"alerts.outbox: {e}") from None
        try:
            curve = CurveServer(a.curve.secret_key, a.curve.allowed_clients, zmq.Context.instance()) if a.curve else None
            sinks = []
            if a.mqtt is not None:
                from stream.alerts.mqtt import MqttSink
                sinks.append(MqttSink(a.mqtt))
            if a.cot is not None:
                from stream.alerts.cot import CotSink
                sinks.append(CotSink(a.cot))
            return cls(a.endpoint, outbox=outbox, query_endpoint=a.query_endpoint, send_hwm=a.send_hwm,
                       sinks=sinks, curve=curve)
        except (KeyFileError, RuntimeError) as e:
            outbox.close()
            raise ConfigError(f"alerts: {e}") from None

    def wait_for_subscriber(self, timeout_s: float) -> bool:
        return self.zmq.wait_for_subscriber(timeout_s)

    def await_subscriber(self, seconds: float, stop: threading.Event) -> None:
        """Wait up to `seconds` for a first subscriber (`alerts.wait_for_subscriber_s`: so that a
        replay's first messages reach it); a stop ends the wait too."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self.wait_for_subscriber(min(0.2, seconds)):
            if time.monotonic() >= deadline:
                log.warning("no subscriber after %.1f s; starting anyway", seconds)
                return

    def _fan_out(self, topic: str, body: bytes) -> None:
        for sink in self.sinks:
            try:
                sink.send(topic, body)
            except Exception as e:  # noqa: BLE001 - one sink never stops the others
                self.sink_errors[sink.name] += 1
                n = self.sink_errors[sink.name]
                if n & (n - 1) == 0:                  # 1st, 2nd, 4th, 8th... failure: logged, not flooded
                    log.warning("sink %s failed (%d so far): %s", sink.name, n, e)
        self.sent += 1

    def _send(self, stored: list[Stored]) -> None:
        for s in stored:
            self._fan_out(f"alert/{s.camera}", s.body)
        self.outbox.mark_published(stored)

    # -- storing, on the writer thread ---------------------------------------------------------------
    def _store(self) -> None:
        """Commit what was submitted, a backlog in one transaction (group commit); while a storage
        fault holds alerts, try again every second."""
        while True:
            try:
                batch = self._to_store.get(timeout=1.0 if self.outbox.fault else None)
            except queue.Empty:
                self.outbox.retry()
                continue
            if batch is None:
                return
            batches = [batch]
            while len(batches) < 256:
                try:
                    more = self._to_store.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._to_store.put(None)
                    break
                batches.append(more)
            try:
                result: list[Stored] | Exception = self.outbox.append([p for b in batches for p in b])
            except Exception as e:  # noqa: BLE001 - handed to the publishing thread, which raises it
                result = e
            self._stored.put((len(batches), result))

    def submit(self, payloads: list[dict[str, Any]]) -> None:
        """Queue alerts to be numbered and stored; `send_stored` sends them once stored."""
        self._submitted += 1
        self._to_store.put(payloads)

    def send_stored(self, wait: bool = False) -> list[Stored]:
        """Send what the writer has stored since the last call, in order; with `wait`, everything
        submitted so far. Returns what was sent."""
        sent: list[Stored] = []
        while self._submitted:
            try:
                batches, result = self._stored.get(timeout=60.0) if wait else self._stored.get_nowait()
            except queue.Empty:
                if wait:
                    raise OutboxError("the outbox writer has not answered for 60 s") from None
                break
            self._submitted -= batches
            if isinstance(result, Exception):
                raise result
            self._send(result)
            sent += result
        return sent

    def resume(self) -> None:
        """At start: send what was stored but never sent, and close the events a previous run
        left open (their windows are gone; the close says why)."""
        pending = self.outbox.unpublished()
        if pending:
            log.info("sending %d alerts stored by the previous run but never sent", len(pending))
            self._send(pending)
        for last in self.outbox.unclosed():
            keep = {k: last[k] for k in ("alert_id", "camera", "category", "score", "start", "end", "wall_start",
                                        "wall_end", "explanation")}
            placed = {"geometry": last["geometry"]} if last.get("geometry") else {}
            self.publish_alerts([{**keep, **placed, "state": "close", "window_id": -1, "reason": "pipeline restarted",
                                  "evidence": last.get("evidence", []), "latency_ms": {}}])

    def publish_alerts(self, payloads: list[dict[str, Any]]) -> list[dict]:
        """Store, then send, waiting for both; returns the messages as sent (with anything
        submitted before them)."""
        self.submit(payloads)
        return [json.loads(s.body) for s in self.send_stored(wait=True)]

    def publish(self, kind: str, camera: str, payload: dict[str, Any]) -> dict[str, Any]:
        if kind == "alert":
            return self.publish_alerts([{"camera": camera, **payload}])[0]
        topic = f"{kind}/{camera}"
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        msg = {"schema": SCHEMA_VERSION, "type": kind, "camera": camera, "seq": seq, "sent_at": time.time(), **payload}
        if kind == "health":
            msg["alert_seq"], msg["outbox"] = self.outbox.last_seq(camera), self.outbox.id
            msg["outbox_state"] = self.outbox.status()
        self._fan_out(topic, json.dumps(msg, separators=(",", ":")).encode())
        return msg

    @property
    def storing(self) -> bool:
        """Whether submitted alerts are still waiting to be stored or sent."""
        return self._submitted > 0

    def close(self) -> None:
        try:
            self.send_stored(wait=True)
        except Exception:  # noqa: BLE001 - closing goes on; what was stored is sent at the next start
            log.exception("sending the last stored alerts")
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001
                log.exception("closing sink %s", sink.name)
        if self.query is not None:
            self.query.close()
        if self._curve is not None:
            self._curve.close()
        self._to_store.put(None)
        self._writer.join(timeout=30.0)
        self.outbox.close()

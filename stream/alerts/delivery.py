"""The publishing end of the pipeline, on the thread that owns the ZeroMQ socket and the outbox
(one writer either way): what the detector stage put on the publish queue goes out from here.

    verdict       -> counted and its latencies kept on the camera's stats; published when
                     `alerts.publish_verdicts`; shown to the observers (the console)
    alert(s)      -> a run of them is stored in one outbox commit (group commit), then sent
    EndOfStream   -> the camera's stored alerts are sent first, then `ended` is told (its final health)
"""
from __future__ import annotations

import logging
import queue
from typing import Callable, Mapping

from stream.alerts.publisher import Publisher, alert_payload, verdict_payload
from stream.metrics import CameraStats
from stream.queues import StageQueue
from stream.types import Alert, EndOfStream, Verdict

log = logging.getLogger(__name__)

GROUP_COMMIT = 256      # alerts stored in one outbox commit at most


class Delivery:
    def __init__(self, publisher: Publisher, stats: Mapping[str, CameraStats], publish_verdicts: bool,
                 observers: list[Callable[[Verdict | Alert], None]], ended: Callable[[EndOfStream], None]):
        self.publisher, self.stats, self.publish_verdicts = publisher, stats, publish_verdicts
        self.observers, self.ended = observers, ended

    def step(self, published: StageQueue) -> None:
        """One turn of the publishing loop: take what is waiting (briefly, or soon again while
        alerts are being stored), deliver it, and send the alerts the outbox has stored."""
        item = self._take(published, 0.002 if self.publisher.storing else 0.1)
        alerts: list[Alert] = []
        while isinstance(item, Alert) and len(alerts) < GROUP_COMMIT:
            alerts.append(item)
            item = self._take(published, 0)
        if alerts:
            self.alerts(alerts)
        if isinstance(item, EndOfStream):
            self.publisher.send_stored(wait=True)     # the camera's alerts go out before its final health
            self.ended(item)
        elif isinstance(item, Verdict):
            self.verdict(item)
        elif isinstance(item, Alert):                  # the one after a full group commit
            self.alerts([item])
        self.publisher.send_stored()

    @staticmethod
    def _take(published: StageQueue, timeout: float):
        try:
            return published.get(timeout=timeout)
        except queue.Empty:
            return None

    def verdict(self, verdict: Verdict) -> None:
        stats = self.stats[verdict.camera]
        stats.count("windows_done")
        for stage, ms in verdict.latency_ms.items():
            stats.latency(stage, ms)
        if self.publish_verdicts:
            self.publisher.publish("verdict", verdict.camera, verdict_payload(verdict))
        for observe in self.observers:
            observe(verdict)

    def alerts(self, alerts: list[Alert]) -> None:
        """To the outbox's writer; sent once stored (`send_stored`)."""
        self.publisher.submit([alert_payload(a) for a in alerts])
        for a in alerts:
            for observe in self.observers:
                observe(a)
            self.stats[a.camera].count("alerts")
            self.stats[a.camera].alert(a.category, a.state)
            log.info("alert %s %s on %s: %s %.2f", a.state, a.alert_id[:8], a.camera, a.category, a.score)

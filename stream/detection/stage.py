"""The detector stage: scene graphs in; verdicts and alerts out, in window order per camera.

    scenes ─► DetectorStage.add ─► Scheduler (which windows go together) ─► Scorer.submit (batches)
          ─► decide: each verdict out, then the camera's EventTracker (zones and its normal gate it)
          ─► AlertSequencer ─► out (the publisher's queue)
    opened events ─► evidence (EvidenceWriter's thread) and explanations (`run_explainer`'s thread)
          ─► back here as `update`s of their alerts

`DetectorStage` plans, submits and decides; `AlertSequencer` holds a camera's close until its
event's evidence is written, so every close carries its files. Both are plain objects that the
coordinator (stream/pipeline.py) runs on its threads; neither knows sockets or runtimes: the
scorer is anything with `Scorer`'s methods, and what goes out is handed to `out`.
"""
from __future__ import annotations

import logging
import queue
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, runtime_checkable

from stream.config import EventsConfig
from stream.detection.events import EventTracker
from stream.detection.scheduler import Request, Scheduler
from stream.scene.geolocate import MetadataErrors, place
from stream.types import Alert, EndOfStream, SceneGraph, Verdict

if TYPE_CHECKING:
    from stream.alerts.evidence import EvidenceWriter
    from stream.detection.normal import NormalMemories
    from stream.scene.zones import Zones

log = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """Runs the detector's batches: on the calling thread (stream/local_runtime.py: `InlineScorer`)
    or on a pool of actors (stream/ray_runtime.py), up to `parallel` batches at once; results are
    taken in submission order."""
    max_batch: int
    max_wait_s: float
    parallel: int
    explains: bool
    restarts: int           # model workers that died and were replaced

    def submit(self, scenes: list[SceneGraph]) -> Future: ...
    def explain(self, scene: SceneGraph, category: str, start: float, end: float) -> str: ...


class AlertSequencer:
    """Alerts and ends of stream towards the publisher, in order per camera. An opened event whose
    evidence is being written is `expected`; its close, if it comes first, is held with the
    camera's later messages behind it until `evidence_arrived` completes it."""

    def __init__(self, out: Callable[[Alert | EndOfStream], None]):
        self.out = out
        self.pending: set[str] = set()                     # alert ids whose evidence is being written
        self.held: dict[str, list[Alert | EndOfStream]] = {}   # camera -> a held close, then the rest

    def expect_evidence(self, alert_id: str) -> None:
        self.pending.add(alert_id)

    def send(self, item: Alert | EndOfStream) -> None:
        if item.camera in self.held:
            self.held[item.camera].append(item)
        elif isinstance(item, Alert) and item.state == "close" and item.alert_id in self.pending:
            self.held[item.camera] = [item]
        else:
            self.out(item)

    def evidence_arrived(self, camera: str, alert_id: str, evidence: tuple) -> bool:
        """True: it completed a held close, which went out with what was behind it; False: the
        event has not closed yet (the caller sends the evidence as an update)."""
        self.pending.discard(alert_id)
        first = self.held.get(camera, [None])[0]
        if not (isinstance(first, Alert) and first.alert_id == alert_id):
            return False
        items = self.held.pop(camera)
        for item in [replace(first, evidence=evidence), *items[1:]]:
            self.send(item)
        return True


def both(a: Callable[[float, float], bool] | None, b: Callable[[float, float], bool] | None):
    """Two `admits(start, end)` gates as one (None: no gate)."""
    if a is None or b is None:
        return a or b
    return lambda start, end: a(start, end) and b(start, end)


class DetectorStage:
    """Scenes -> verdicts -> events for every camera. `add` a scene (or a camera's end), then `step`
    submits the batches that are due and decides the finished ones in the order they went, so each
    camera's verdicts stay in window order; a window decided before (a restarted camera worker's
    repeat) is counted in `duplicates` and dropped.

    `out` takes each Verdict, Alert and EndOfStream, in order per camera.
    `scored(scene, verdict)` sees each decided window first and returns the verdict to publish
    (the coordinator adds its latency and frees the window's frames). `zones` and `normal` gate
    where and when an event may open; `evidence` writes an opened event's files; `geolocation_of`
    gives a drone camera's assumed metadata errors and ground height (its alerts' place)."""

    def __init__(self, scorer: Scorer, events_of: Callable[[str], EventsConfig],
                 out: Callable[[Verdict | Alert | EndOfStream], None], *, scored: Callable[[SceneGraph, Verdict], Verdict],
                 zones: Mapping[str, Zones], normal: NormalMemories, evidence: EvidenceWriter | None = None,
                 geolocation_of: Callable[[str], tuple[MetadataErrors, float | None]] = lambda cam: (MetadataErrors(),
                                                                                                     None)):
        self.scorer, self.events_of, self.out, self.scored = scorer, events_of, out, scored
        self.geolocation_of = geolocation_of
        self.zones, self.normal, self.evidence = zones, normal, evidence
        self.trackers: dict[str, EventTracker] = {}
        self.last: dict[str, Verdict] = {}                     # camera -> its latest verdict (to close at its end)
        self.decided: dict[str, int] = {}                      # camera -> the last window id decided
        self.waiting: dict[tuple[str, int], SceneGraph] = {}
        self.sched = Scheduler(scorer.max_batch, scorer.max_wait_s)
        self.running: deque[tuple[list[SceneGraph], Future]] = deque()   # batches submitted, in order
        self.sequencer = AlertSequencer(out)
        self.duplicates = 0
        self.explain_jobs: queue.Queue | None = queue.Queue(maxsize=16) if scorer.explains else None
        self.explanations: queue.SimpleQueue = queue.SimpleQueue()   # (camera, alert id, text) from the explainer

    # -- the detector thread ----------------------------------------------------------------------
    def add(self, item: SceneGraph | EndOfStream, now: float) -> None:
        if isinstance(item, EndOfStream):
            self.step(now, flush=True)                   # the camera's windows are decided before its end
            tracker = self.trackers.pop(item.camera, None)
            for alert in (tracker.flush(self.last.get(item.camera)) if tracker else []):
                self.sequencer.send(alert)
            self.last.pop(item.camera, None)
            self.decided.pop(item.camera, None)
            self.sequencer.send(item)
            return
        self.waiting[(item.camera, item.window_id)] = item
        tracker = self.trackers.get(item.camera)
        self.sched.add(Request(item.camera, item.window_id, now, priority=tracker is not None and tracker.is_open))

    def wait_s(self, now: float) -> float:
        """How long the thread may wait for the next scene before something is due here."""
        due = self.sched.wait_s(now)
        wait = 0.1 if due is None else min(due, 0.1)
        return min(wait, 0.005) if self.running else wait      # batches out on workers: look back soon

    def step(self, now: float, flush: bool = False) -> None:
        """Submit the batches that are due (while the models have room), decide the finished ones,
        and send the explanations and evidence that came back. `flush`: everything waiting is
        submitted and decided before returning."""
        while True:
            while len(self.running) < self.scorer.parallel and \
                    (plan := self.sched.plan(now, flush=flush)) is not None:
                scenes = [self.waiting.pop((r.camera, r.window_id)) for r in plan.requests]
                self.running.append((scenes, self.scorer.submit(scenes)))
            if not self.running or not (flush or self.running[0][1].done() or len(self.running) >= self.scorer.parallel):
                break
            scenes, result = self.running.popleft()       # waits for it when the models are full or flushing
            self._decide(scenes, result.result())
        self._explained()
        self._evidenced()

    def run(self, get: Callable[[float], SceneGraph | EndOfStream | None], running: Callable[[], bool]) -> None:
        """The detector thread's loop: `get(timeout)` the next scene (None: nothing came)."""
        while running():
            item = get(self.wait_s(time.monotonic()))
            if item is not None:
                self.add(item, time.monotonic())
            if not isinstance(item, EndOfStream):
                self.step(time.monotonic())

    def _decide(self, scenes: list[SceneGraph], verdicts: list[Verdict]) -> None:
        for scene, verdict in zip(scenes, verdicts):
            cam = scene.camera
            if scene.window_id <= self.decided.get(cam, -1):
                self.duplicates += 1
                continue
            self.decided[cam] = scene.window_id
            verdict = self.last[cam] = self.scored(scene, verdict)
            self.out(verdict)
            zones, normal = self.zones.get(cam), self.normal.of(cam)
            if cam not in self.trackers:
                self.trackers[cam] = EventTracker(cam, self.events_of(cam))
            tracker = self.trackers[cam]
            alerts = tracker.update(verdict, both(zones.admits(scene) if zones else None, normal.admits(verdict)))
            if scene.sensors and alerts:
                alerts = self._placed(scene, tracker, alerts, *self.geolocation_of(cam))
            normal.observed(verdict, tracker.is_open, [a.start for a in alerts if a.state == "open"])
            for alert in alerts:
                normal.event(alert.alert_id, alert.start, alert.end)
                self.sequencer.send(alert)
                if alert.state == "open" and self.evidence is not None and self.evidence.submit(scene, verdict, alert):
                    self.sequencer.expect_evidence(alert.alert_id)
                if alert.state == "open" and self.explain_jobs is not None:
                    try:
                        self.explain_jobs.put_nowait((scene, alert))
                    except queue.Full:
                        log.warning("explanations lag behind: none for alert %s", alert.alert_id[:8])

    @staticmethod
    def _placed(scene: SceneGraph, tracker: EventTracker, alerts: list[Alert], errors: MetadataErrors,
                ground_elev: float | None) -> list[Alert]:
        """A drone's alerts with where they are on the ground, from this window's frames in their span."""
        out = []
        for alert in alerts:
            geometry = place(scene, alert.start, alert.end, errors, ground_elev)
            if geometry is not None:
                alert = replace(alert, geometry=geometry)
                if alert.state != "close":
                    tracker.placed(geometry)
            out.append(alert)
        return out

    def _explained(self) -> None:
        while True:
            try:
                camera, alert_id, text = self.explanations.get_nowait()
            except queue.Empty:
                return
            tracker = self.trackers.get(camera)
            if tracker is not None and (update := tracker.explained(alert_id, text)) is not None:
                self.sequencer.send(update)

    def _evidenced(self) -> None:
        while self.evidence is not None:
            try:
                camera, alert_id, evidence = self.evidence.results.get_nowait()
            except queue.Empty:
                return
            if self.sequencer.evidence_arrived(camera, alert_id, evidence):
                continue
            tracker = self.trackers.get(camera)
            if tracker is not None and (update := tracker.evidenced(alert_id, evidence)):
                self.sequencer.send(update)

    # -- the explainer thread ---------------------------------------------------------------------
    def run_explainer(self, running: Callable[[], bool]) -> None:
        """Explanations for opened events, generated off the scoring path; each comes back to the
        detector thread, which owns the events, and goes out as an `update` of its alert."""
        while running():
            try:
                scene, alert = self.explain_jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self.explanations.put((alert.camera, alert.alert_id,
                                       self.scorer.explain(scene, alert.category, alert.start, alert.end)))
            except Exception:  # noqa: BLE001 - an explanation is never worth the alert
                log.exception("explaining alert %s failed", alert.alert_id[:8])

"""The coordinator: wires the stages, reports health and applies reloads. Built by the composition
root (stream/app.py).

    cameras (a runtime's CameraRunners: ingest, then locally the scene stage's thread here, or on
    Ray each camera's actor) -> windows -> scenes -> the detector stage's thread
    (stream/detection/stage.py, with the runtime's Scorer) -> the publish queue -> Delivery, on the
    calling thread (stream/alerts/delivery.py: it owns the ZeroMQ socket and the outbox)

Every arrow is a bounded queue: a live camera's windows drop the oldest when full (counted), a
replayed file blocks, and everything after the windows blocks, so nothing accepted is lost. The
calling thread also publishes health (at once on a camera's state change, and every
`alerts.health_interval_s`) and applies `reload`s: a removed camera's source stops and its end of
stream flushes it through every stage, an added one starts, a changed one restarts once its old
instance has flushed (stream/cameras.py); the other cameras never notice."""
from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from typing import Callable

from stream.alerts.chat import ChatService
from stream.alerts.delivery import Delivery
from stream.alerts.evidence import EvidenceWriter
from stream.alerts.publisher import Publisher
from stream.alerts.recordings import Recordings
from stream.cameras import Cameras, start_phases
from stream.config import CameraConfig, ConfigError, GeolocationConfig, HawkwatchConfig, reloaded
from stream.detection.normal import NormalMemories
from stream.detection.registry import Detector
from stream.detection.stage import DetectorStage, Scorer
from stream.ingest.source import VideoSource
from stream.local_runtime import InlineScorer, LocalRuntime
from stream.metrics import CameraStats
from stream.queues import StageQueue
from stream.redact import redact
from stream.runtime import Runtime
from stream.scene.geolocate import MetadataErrors
from stream.scene.graph import SceneBuilder, person_scores_of, pose_every_of
from stream.scene.stage import ScenePool
from stream.types import Alert, EndOfStream, SceneGraph, Verdict, Window

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, cfg: HawkwatchConfig, make_source: Callable[[str, CameraConfig, Callable], VideoSource] | None,
                 scene: SceneBuilder | list[SceneBuilder] | None, detector: Detector | Scorer, publisher: Publisher,
                 stop: threading.Event, evidence: EvidenceWriter | None = None, chat: ChatService | None = None,
                 *, runtime: Runtime | None = None, parts: ExitStack | None = None):
        """`scene`: the local scene stage's builders, one a worker (None where the runtime builds
        scene graphs elsewhere). `parts`: what the run closes when it ends, last first (stream/app.py's composition root
        hands its own); by default the runtime, the evidence writer, the publisher and the chat."""
        self.runtime = runtime or LocalRuntime(make_source)
        self.cfg, self.publisher, self.stop = cfg, publisher, stop
        self.scorer: Scorer = detector if isinstance(detector, Scorer) else InlineScorer(detector)
        self.evidence, self.chat = evidence, chat
        self.cameras = Cameras(self.runtime, self)      # runners, stats, zones, latest health and scene
        c = self.cameras                                  # (the HTTP read model reads these)
        self.sources, self.stats, self.zones, self.ended = c.sources, c.stats, c.zones, c.ended
        self.last_health, self.last_scene = c.last_health, c.last_scene
        self._changes: queue.SimpleQueue = queue.SimpleQueue()   # (camera, state, detail) from source threads
        self._reload: Callable[[], HawkwatchConfig] | None = None
        self._abort = threading.Event()          # a stage failed: unblock everyone, end now
        self._finished = threading.Event()       # every camera has ended: stage threads exit
        self.fatal: str | None = None            # why a stage broke, if one did
        self.failure: str | None = None          # after run(): the one-line reason for a non-zero exit
        self._emitted_at: dict[tuple[str, int], float] = {}   # (camera, window id) -> when ingest emitted it
        self.observers: list[Callable[[Verdict | Alert], None]] = []   # see each verdict and alert as published
        self.normal = NormalMemories(self._config)     # camera -> its own normal (stream/detection/normal.py)
        self.services: list = []                 # started with the run (the HTTP server, stream/http/)
        self.recordings: Recordings | None = None   # recorded cameras' footage on disk (stream/app.py sets it)
        self.detector_stage = DetectorStage(self.scorer, self._events_of, self._publish, scored=self._scored,
                                            zones=self.zones, normal=self.normal, evidence=evidence,
                                            geolocation_of=self._geolocation_of)
        self.delivery = Delivery(publisher, self.stats, cfg.alerts.publish_verdicts, self.observers, self._ended)
        # only the windows queue ever drops (live sources); later queues block, so nothing accepted is lost
        builders = [] if scene is None else scene if isinstance(scene, list) else [scene]
        self.windows = ScenePool(builders, cfg.queues.windows, on_drop=self._dropped)
        self.scenes = StageQueue(cfg.queues.scenes)
        self.to_publish = StageQueue(cfg.queues.publish)
        for cam, c in cfg.cameras.items():
            if c.enabled:
                self.cameras.add(cam, c)
        self.parts = parts if parts is not None else self._closing(publisher, evidence, chat)

    def _closing(self, *parts) -> ExitStack:
        closing = ExitStack()
        for part in (self.runtime, *parts):
            if part is not None:
                closing.callback(part.close)
        return closing

    def stats_of(self, camera: str) -> CameraStats:
        return self.stats[camera]

    def ring_of(self, camera: str):
        return self.evidence.ring(camera) if self.evidence is not None else None

    def _dropped(self, window: Window) -> None:
        self.stats[window.camera].count("windows_dropped")
        self._emitted_at.pop((window.camera, window.window_id), None)

    # -- cameras ---------------------------------------------------------------------------------
    def state_changed(self, camera: str, state: str, detail: str | None) -> None:
        """A camera's source changed state (any thread); published by the calling thread."""
        self._changes.put((camera, state, detail))

    def request_reload(self, load: Callable[[], HawkwatchConfig]) -> None:
        """Ask the running pipeline to re-read its config (thread- and signal-safe); applied by run()."""
        self._reload = load

    def _apply_reload(self, load: Callable[[], HawkwatchConfig]) -> None:
        try:
            new = load()
        except ConfigError as e:
            log.error("config reload rejected, keeping the running config: %s", e)
            return
        old = {c: cc for c, cc in self.cfg.cameras.items() if cc.enabled}
        want = {c: cc for c, cc in new.cameras.items() if cc.enabled}
        self.cameras.reload(old, want)
        if self.windows.builders:                   # the local scene stage: cameras' person scores apply now
            self.windows.pose_every(self.cfg.models.pose.every_frames, pose_every_of(new)[1])   # models.*: at restart
            for cam in self.windows.person_scores(*person_scores_of(new)):
                log.warning("reload: cameras.%s.person_score_threshold is below what the models were started "
                            "with; people that faint are found only after a restart", cam)
        self.cfg, ignored = reloaded(self.cfg, new)
        if ignored:
            log.warning("reload: changes to %s take effect only after a restart", ", ".join(ignored))

    # -- stages ---------------------------------------------------------------------------------
    def emit_window(self, window: Window | EndOfStream, policy: str) -> bool:
        """A camera's window (or its end) into the scene stage's queue (a local camera's thread);
        False: aborted."""
        if isinstance(window, Window):
            self._emitted_at[(window.camera, window.window_id)] = time.monotonic()
        return self.windows.put(window, policy=policy, abort=self._abort)

    def scene_arrived(self, scene: SceneGraph | EndOfStream, waited_ms: float = 0.0) -> bool:
        """A camera's scene graph (or its end) built elsewhere (a Ray camera actor), `waited_ms` after
        its window was emitted; False: aborted."""
        if isinstance(scene, SceneGraph):
            self._emitted_at[(scene.camera, scene.window_id)] = time.monotonic() - waited_ms / 1000.0
        return self.scenes.put(scene, abort=self._abort)

    def _stride_of(self, camera: str) -> float:
        return self.cfg.windows_of(camera).stride_s

    def _config(self) -> HawkwatchConfig:
        return self.cfg

    def _events_of(self, camera: str):
        return self.cfg.events_of(camera)

    def _geolocation_of(self, camera: str) -> tuple[MetadataErrors, float | None]:
        cam = self.cfg.cameras.get(camera)
        g = cam.geolocation if cam is not None else GeolocationConfig()
        return MetadataErrors(**g.model_dump(exclude={"ground_elevation_m"})), g.ground_elevation_m

    def _publish(self, item) -> bool:
        return self.to_publish.put(item, abort=self._abort)

    def _to_detector(self, item) -> bool:
        return self.scenes.put(item, abort=self._abort)

    def _going(self) -> bool:
        """The stage threads go on until every camera has ended, or the run aborted."""
        return not self._finished.is_set() and not self._abort.is_set()

    def _guarded(self, name: str, stage: Callable, *args) -> None:
        """A stage thread's body; a broken stage ends the run with its reason, logged once."""
        try:
            stage(*args)
        except Exception as e:
            log.exception("%s stage failed", name)
            self.fatal = f"{name} stage failed: {type(e).__name__}: {e}"
            self._abort.set()

    def _next_scene(self, timeout: float) -> SceneGraph | EndOfStream | None:
        try:
            return self.scenes.get(timeout=timeout)
        except queue.Empty:
            return None

    def _scored(self, scene: SceneGraph, verdict: Verdict) -> Verdict:
        """A window the detector stage decided: its latency from ingest to verdict, the camera's
        latest scene (snapshots, chat), and its frames freed."""
        emitted = self._emitted_at.pop((scene.camera, scene.window_id), None)
        if emitted is not None:
            verdict = replace(verdict, latency_ms={**verdict.latency_ms,
                                                   "window_to_verdict": (time.monotonic() - emitted) * 1000.0})
        self.last_scene[scene.camera] = scene
        if (runner := self.sources.get(scene.camera)) is not None:
            runner.scored(scene.window_id)
        if self.chat is not None:
            self.chat.remember(scene)
        return verdict

    # -- publishing (the calling thread) --------------------------------------------------------
    def _health(self, camera: str, state: str | None = None, detail: str | None = None) -> None:
        runner = self.sources[camera]
        counters = dict(runner.counters())
        restarts = counters.pop("restarts", 0)
        snap = self.stats[camera].health(counters, state, detail)
        snap["queues"] = {"windows": self.windows.qsize(), "scenes": self.scenes.qsize(),
                          "publish": self.to_publish.qsize()}
        snap["endpoints"] = {s.name: s.status() for s in self._request_servers()}
        snap["normal"] = self.normal.of(camera).status()
        if self.recordings is not None and camera in self.recordings.cameras:
            snap["recording"] = self.recordings.status(camera)
        snap["runtime"] = {"engine": self.runtime.engine, "node": getattr(runner, "node", None),
                           "restarts": restarts, "model_restarts": self.scorer.restarts,
                           "duplicates": self.detector_stage.duplicates}
        self.last_health[camera] = self.publisher.publish("health", camera, snap)

    def _request_servers(self) -> list:
        return [s for s in (self.publisher.query, self.chat.server if self.chat else None) if s is not None]

    def _publish_state_changes(self) -> None:
        while True:
            try:
                camera, state, detail = self._changes.get_nowait()
            except queue.Empty:
                return
            stats = self.stats.get(camera)
            if stats is None:
                continue
            if state not in ("stopped", "failed"):   # final states are published at the end of stream
                stats.state, stats.detail = state, detail
                self._health(camera, state, detail)

    def _ended(self, end: EndOfStream) -> None:
        """A camera's end of stream reached the publisher (after its alerts): its final health."""
        self._publish_state_changes()
        stats = self.stats[end.camera]
        stats.state = "failed" if end.reason.startswith("failed") else "stopped"
        stats.detail = end.reason
        self._health(end.camera)
        self.cameras.finished(end.camera, end.reason)

    def _running(self) -> bool:
        return self.cameras.running() and not self._abort.is_set()

    def run(self) -> int:
        """Run until every camera has ended; 0 if all ended normally, 1 on a failure."""
        for service in self.services:
            service.start()
        self.publisher.resume()
        if self.cfg.alerts.wait_for_subscriber_s > 0:
            self.publisher.await_subscriber(self.cfg.alerts.wait_for_subscriber_s, self.stop)
        stages = [threading.Thread(target=self._guarded, name="detector", daemon=True,
                                   args=("detector", self.detector_stage.run, self._next_scene, self._going))]
        m, workers = self.cfg.models, range(len(self.windows.builders) if self.runtime.scenes_built_here else 0)
        stages += [threading.Thread(target=self._guarded, name=f"scene{i or ''}", daemon=True, args=(
            "scene", self.windows.run, i, self._to_detector, m.max_batch, m.max_wait_ms / 1000, self._going))
            for i in workers]
        if self.detector_stage.explain_jobs is not None:
            stages.append(threading.Thread(target=self.detector_stage.run_explainer, name="explainer", daemon=True,
                                           args=(self._going,)))
        for t in stages:
            t.start()
        for cam, after in start_phases({c: self.cfg.cameras[c] for c in self.sources}, self._stride_of).items():
            self.cameras.start(cam, after)
        interval = self.cfg.alerts.health_interval_s
        next_health = time.monotonic() + interval
        while self._running():
            if self.stop.is_set():
                for src in self.sources.values():
                    src.stop()
            if self._reload is not None:
                load, self._reload = self._reload, None
                if not self.stop.is_set():
                    self._apply_reload(load)
            self._publish_state_changes()
            self.delivery.step(self.to_publish)
            if time.monotonic() >= next_health:
                next_health += interval
                for server in self._request_servers():
                    server.ensure_serving()
                for cam in self.sources:   # a failed camera stays on health, with its reason, until removed
                    if cam not in self.ended or self.ended[cam].startswith("failed"):
                        self._health(cam)
        self._finished.set()
        if self._abort.is_set():
            for src in self.sources.values():
                src.stop()
        for t in stages:
            t.join(timeout=5.0)
        for src in self.sources.values():
            src.join(timeout=5.0)
        self.normal.save()
        self.parts.close()
        failed = [f"camera {c}: {r.removeprefix('failed: ').removeprefix(f'camera {c}: ')}"
                  for c, r in self.ended.items() if r.startswith("failed")]
        if self.fatal:
            failed.insert(0, self.fatal)
        self.failure = redact("; ".join(failed)) if failed else None
        return 1 if failed else 0


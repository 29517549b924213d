"""Wire the stages: sources -> windows -> scene -> detector -> events -> publisher.

One thread per camera source, one for the scene stage, one for the detector; the calling thread
publishes (it owns the ZeroMQ socket), sends health (at once on every source state change, and
every `health_interval_s`) and applies config reloads. Every arrow is a bounded queue: replay
blocks (lossless), live streams drop the oldest window and count it (`queues.windows_policy`).
On stop, sources end their streams and everything already accepted flows through to the
subscriber before the socket closes.

Cameras come and go while running (`reload`): a removed camera's source stops and its end of
stream flushes it through every stage; an added one starts; a changed one restarts once its old
instance has flushed. The other cameras never notice.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Callable, Protocol

import numpy as np

from stream.alerts.evidence import EvidenceWriter
from stream.alerts.publisher import Publisher, alert_payload, verdict_payload
from stream.config import CameraConfig, ConfigError, HawkwatchConfig
from stream.ingest.source import SourceError, VideoSource
from stream.ingest.windows import WindowAssembler
from stream.llm.chat import ChatService
from stream.llm.events import EventTracker
from stream.llm.scheduler import Request, Scheduler
from stream.metrics import CameraStats
from stream.redact import redact
from stream.scene.graph import SceneBuilder, scene_from_config
from stream.types import Alert, EndOfStream, SceneGraph, Verdict, Window

log = logging.getLogger(__name__)


class Detector(Protocol):
    """Scene graphs -> verdicts, in batches of up to max_batch (stream/llm: baseline, hawkeye)."""
    max_batch: int
    max_wait_s: float

    def batch(self, scenes: list[SceneGraph]) -> list[Verdict]: ...


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


class Pipeline:
    def __init__(self, cfg: HawkwatchConfig, make_source: Callable[[str, CameraConfig, Callable], VideoSource],
                 scene: SceneBuilder, detector: Detector, publisher: Publisher,
                 stop: threading.Event, evidence: EvidenceWriter | None = None, chat: ChatService | None = None):
        self.cfg, self.make_source, self.scene, self.detector = cfg, make_source, scene, detector
        self.publisher, self.stop, self.evidence, self.chat = publisher, stop, evidence, chat
        self.sources: dict[str, VideoSource] = {}
        self.stats: dict[str, CameraStats] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._changes: queue.SimpleQueue = queue.SimpleQueue()   # (camera, state, detail) from source threads
        self._restart: dict[str, CameraConfig] = {}   # changed cameras, started once the old instance ended
        self._removed: set[str] = set()               # cameras being removed (their end is not a result)
        self._reload: Callable[[], HawkwatchConfig] | None = None
        self._abort = threading.Event()          # a stage failed: unblock everyone, end now
        self._finished = threading.Event()       # every camera has ended: stage threads exit
        self.fatal: str | None = None            # why a stage broke, if one did
        self.failure: str | None = None          # after run(): the one-line reason for a non-zero exit
        self.ended: dict[str, str] = {}          # camera -> EndOfStream.reason (cameras still configured)
        self._emitted_at: dict[tuple[str, int], float] = {}   # (camera, window id) -> when ingest emitted it
        explains = getattr(detector, "explains", False) and hasattr(detector, "explain")
        self._explain_jobs: queue.Queue | None = queue.Queue(maxsize=16) if explains else None
        self._explained: queue.SimpleQueue = queue.SimpleQueue()   # (camera, alert id, text) from the explainer

        def dropped(window: Window) -> None:
            self.stats[window.camera].count("windows_dropped")
            self._emitted_at.pop((window.camera, window.window_id), None)
        # only the windows queue ever drops (live sources); later queues block, so nothing accepted is lost
        self.windows = StageQueue(cfg.queues.windows, on_drop=dropped)
        self.scenes = StageQueue(cfg.queues.scenes)
        self.outbox = StageQueue(cfg.queues.outbox)
        for cam, c in cfg.cameras.items():
            if c.enabled:
                self._add_camera(cam, c)

    # -- cameras ---------------------------------------------------------------------------------
    def _add_camera(self, camera: str, cfg: CameraConfig) -> None:
        def on_state(state: str, detail: str | None) -> None:
            self._changes.put((camera, state, detail))
        source = self.make_source(camera, cfg, on_state)
        self.sources[camera] = source
        self.stats[camera] = CameraStats(camera, source.kind, source.name)
        self.ended.pop(camera, None)

    def _forget_camera(self, camera: str) -> None:
        del self.sources[camera], self.stats[camera]
        self.ended.pop(camera, None)

    def _start_camera(self, camera: str) -> None:
        t = threading.Thread(target=self._run_source, args=(camera, self.sources[camera]),
                             name=f"source-{camera}", daemon=True)
        self._threads[camera] = t
        t.start()

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
        for cam in sorted(old.keys() | want.keys()):
            if cam in want and cam not in old:
                log.info("reload: adding camera %s", cam)
                if cam in self.sources:       # still flushing an earlier removal: start after it
                    self._restart[cam] = want[cam]
                    self._removed.discard(cam)
                else:
                    self._add_camera(cam, want[cam])
                    self._start_camera(cam)
            elif cam in old and cam not in want:
                log.info("reload: removing camera %s", cam)
                self._restart.pop(cam, None)
                if cam in self.ended:          # already ended (failed): nothing to flush
                    self._forget_camera(cam)
                    continue
                self._removed.add(cam)
                self.sources[cam].stop.set()
            elif old[cam] != want[cam]:
                log.info("reload: camera %s changed; restarting it", cam)
                if cam in self.ended:
                    self._forget_camera(cam)
                    self._add_camera(cam, want[cam])
                    self._start_camera(cam)
                    continue
                self._restart[cam] = want[cam]
                self.sources[cam].stop.set()
        ignored = [k for k in HawkwatchConfig.model_fields
                   if k not in ("cameras", "ingest", "replay") and getattr(new, k) != getattr(self.cfg, k)]
        if ignored:
            log.warning("reload: changes to %s take effect only after a restart", ", ".join(ignored))
        self.cfg = self.cfg.model_copy(update={"cameras": new.cameras, "ingest": new.ingest, "replay": new.replay})

    # -- stages ---------------------------------------------------------------------------------
    def _run_source(self, camera: str, source: VideoSource) -> None:
        stats = self.stats[camera]
        w = self.cfg.windows
        asm = WindowAssembler(camera, w.length_s, w.stride_s, w.sample_fps)
        policy = self.cfg.queues.windows_policy
        if policy == "auto":
            policy = "drop_oldest" if source.live else "block"
        ring = self.evidence.ring(camera) if self.evidence is not None else None
        reason = "finished"
        try:
            for frame in source.frames():
                stats.declared_fps = source.declared_fps
                sampled, skipped = asm.sampled, asm.skipped
                pixels = _once(frame.pixels) if ring is not None else frame.pixels
                windows = asm.push(frame.seq, frame.ts, frame.wall, pixels, frame.gap)
                if ring is not None:
                    ring.offer(frame.ts, frame.wall, pixels, sampled=asm.sampled > sampled)
                stats.count("frames_decoded")
                stats.count("frames_sampled", asm.sampled - sampled)
                stats.count("windows_skipped", asm.skipped - skipped)
                stats.count("gaps", frame.gap is not None)
                stats.stream_time = frame.ts
                for window in windows:
                    self._emit(window, policy)
                if self._abort.is_set():
                    break
            reason = source.end_reason
        except SourceError as e:
            log.error("%s", e)
            reason = f"failed: {e}"
        except Exception as e:   # a bug in ingest must not take the other cameras down
            log.exception("camera %s: ingest failed", camera)
            reason = redact(f"failed: {type(e).__name__}: {e}")
        if ring is not None:
            ring.end()
        for window in asm.finish():
            self._emit(window, policy)
        self.windows.put(EndOfStream(camera, reason), abort=self._abort)

    def _emit(self, window: Window, policy: str) -> None:
        self.stats[window.camera].count("windows_emitted")
        self._emitted_at[(window.camera, window.window_id)] = time.monotonic()
        self.windows.put(window, policy=policy, abort=self._abort)

    def _run_scene(self) -> None:
        """Windows -> scene graphs. Windows are gathered, across cameras, until they hold
        models.max_batch new frames or models.max_wait_ms has passed since the first, and built
        together; an end of stream closes the batch it interrupts and follows it."""
        m = self.cfg.models
        max_wait = m.max_wait_ms / 1000.0
        held = None
        try:
            while not self._finished.is_set() and not self._abort.is_set():
                try:
                    item, held = held or self.windows.get(timeout=0.1), None
                except queue.Empty:
                    continue
                if isinstance(item, EndOfStream):
                    self.scene.forget(item.camera)
                    self.scenes.put(item, abort=self._abort)
                    continue
                items, frames, deadline = [item], self.scene.new_frames(item), time.monotonic() + max_wait
                while frames < m.max_batch:
                    try:
                        nxt = self.windows.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if isinstance(nxt, EndOfStream):
                        held = nxt
                        break
                    items.append(nxt)
                    frames += self.scene.new_frames(nxt)
                for graph in self.scene.build_many(items):
                    self.scenes.put(graph, abort=self._abort)
        except Exception as e:   # a broken stage ends the run with its reason, logged once
            log.exception("scene stage failed")
            self.fatal = f"scene stage failed: {type(e).__name__}: {e}"
            self._abort.set()

    def _run_detector(self) -> None:
        """Scenes -> verdicts -> events. The scheduler picks which waiting windows the detector runs
        together (up to the detector's max_batch: the model batches, the baseline takes one).

        An opened event's evidence is written on its own thread and goes out as an `update`; a close
        that comes before its evidence waits for it (with the camera's later messages behind it),
        so every close carries its event's files."""
        trackers: dict[str, EventTracker] = {}
        last: dict[str, Verdict] = {}
        waiting: dict[tuple[str, int], SceneGraph] = {}
        sched = Scheduler(self.detector.max_batch, self.detector.max_wait_s)
        pending: set[str] = set()                     # alert ids whose evidence is being written
        held: dict[str, list[Alert | EndOfStream]] = {}   # camera -> a close waiting for evidence, then the rest

        def send(item: Alert | EndOfStream) -> None:
            """Towards the publisher, in order per camera."""
            if item.camera in held:
                held[item.camera].append(item)
            elif isinstance(item, Alert) and item.state == "close" and item.alert_id in pending:
                held[item.camera] = [item]
            else:
                self.outbox.put(("alert", item) if isinstance(item, Alert) else item, abort=self._abort)

        def tracker_of(camera: str) -> EventTracker:
            if camera not in trackers:
                cam = self.cfg.cameras.get(camera)
                trackers[camera] = EventTracker(camera, cam.events if cam and cam.events else self.cfg.events)
            return trackers[camera]

        def decide(scenes: list[SceneGraph]) -> None:
            verdicts = self.detector.batch(scenes)
            for scene, verdict in zip(scenes, verdicts):
                emitted = self._emitted_at.pop((scene.camera, scene.window_id), None)
                if emitted is not None:
                    verdict = replace(verdict, latency_ms={
                        **verdict.latency_ms, "window_to_verdict": (time.monotonic() - emitted) * 1000.0})
                last[scene.camera] = verdict
                if self.chat is not None:
                    self.chat.remember(scene)
                self.outbox.put(("verdict", verdict), abort=self._abort)
                for alert in tracker_of(scene.camera).update(verdict):
                    send(alert)
                    if alert.state == "open" and self.evidence is not None and \
                            self.evidence.submit(scene, verdict, alert):
                        pending.add(alert.alert_id)
                    if alert.state == "open" and self._explain_jobs is not None:
                        try:
                            self._explain_jobs.put_nowait((scene, alert))
                        except queue.Full:
                            log.warning("explanations lag behind: none for alert %s", alert.alert_id[:8])

        def run_due(flush: bool = False) -> None:
            while (plan := sched.plan(time.monotonic(), flush=flush)) is not None:
                decide([waiting.pop((r.camera, r.window_id)) for r in plan.requests])

        def explained() -> None:
            while True:
                try:
                    camera, alert_id, text = self._explained.get_nowait()
                except queue.Empty:
                    return
                update = trackers[camera].explained(alert_id, text) if camera in trackers else None
                if update is not None:
                    send(update)

        def evidenced() -> None:
            while self.evidence is not None:
                try:
                    camera, alert_id, evidence = self.evidence.results.get_nowait()
                except queue.Empty:
                    return
                pending.discard(alert_id)
                first = held.get(camera, [None])[0]
                if isinstance(first, Alert) and first.alert_id == alert_id:
                    items = held.pop(camera)
                    for item in [replace(first, evidence=evidence), *items[1:]]:
                        send(item)
                elif camera in trackers and (update := trackers[camera].evidenced(alert_id, evidence)):
                    send(update)

        try:
            while not self._finished.is_set() and not self._abort.is_set():
                due = sched.wait_s(time.monotonic())
                try:
                    item = self.scenes.get(timeout=0.1 if due is None else min(due, 0.1))
                except queue.Empty:
                    item = None
                if isinstance(item, EndOfStream):
                    run_due(flush=True)                  # the camera's windows are decided before its end
                    explained()
                    evidenced()
                    tracker = trackers.pop(item.camera, None)
                    for alert in (tracker.flush(last.get(item.camera)) if tracker else []):
                        send(alert)
                    last.pop(item.camera, None)
                    send(item)
                    continue
                if item is not None:
                    waiting[(item.camera, item.window_id)] = item
                    sched.add(Request(item.camera, item.window_id, time.monotonic(),
                                      priority=item.camera in trackers and trackers[item.camera].is_open))
                run_due()
                explained()
                evidenced()
        except Exception as e:   # a broken stage ends the run with its reason, logged once
            log.exception("detector stage failed")
            self.fatal = f"detector stage failed: {type(e).__name__}: {e}"
            self._abort.set()

    def _run_explainer(self) -> None:
        """Explanations for opened events, generated off the scoring path; each goes back to the
        detector thread, which owns the events, and out as an `update` alert."""
        while not self._finished.is_set() and not self._abort.is_set():
            try:
                scene, alert = self._explain_jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._explained.put((alert.camera, alert.alert_id, self.detector.explain(scene)))
            except Exception:  # noqa: BLE001 - an explanation is never worth the alert
                log.exception("explaining alert %s failed", alert.alert_id[:8])

    # -- publishing (the calling thread) --------------------------------------------------------
    def _health(self, camera: str, state: str | None = None, detail: str | None = None) -> None:
        stats, source = self.stats[camera], self.sources[camera]
        stats.set("reconnects", source.reconnects)
        stats.set("decode_errors", source.decode_errors)
        snap = stats.snapshot()
        if state is not None:             # a state change: say the state it changed to, even if it moved on
            snap["state"], snap["detail"] = state, detail
        snap["detail"] = redact(snap["detail"]) if snap["detail"] else snap["detail"]
        snap["target"] = redact(snap["target"])
        snap["queues"] = {"windows": self.windows.qsize(), "scenes": self.scenes.qsize(),
                          "outbox": self.outbox.qsize()}
        snap["endpoints"] = {s.name: s.status() for s in self._request_servers()}
        self.publisher.publish("health", camera, snap)

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

    def _deliver(self, item) -> None:
        if isinstance(item, EndOfStream):
            self.publisher.send_stored(wait=True)       # the camera's alerts go out before its final health
            self._publish_state_changes()
            cam = item.camera
            stats = self.stats[cam]
            stats.state = "failed" if item.reason.startswith("failed") else "stopped"
            stats.detail = item.reason
            self._health(cam)
            self._threads.pop(cam).join(timeout=5.0)
            if cam in self._removed or cam in self._restart:
                self._removed.discard(cam)
                self._forget_camera(cam)
                if cam in self._restart:
                    self._add_camera(cam, self._restart.pop(cam))
                    self._start_camera(cam)
            else:
                self.ended[cam] = item.reason
            return
        kind, obj = item
        if kind == "verdict":
            stats = self.stats[obj.camera]
            stats.count("windows_done")
            for stage, ms in obj.latency_ms.items():
                stats.latency(stage, ms)
            if self.cfg.alerts.publish_verdicts:
                self.publisher.publish("verdict", obj.camera, verdict_payload(obj))
        else:
            self._publish_alerts([obj])

    def _publish_alerts(self, alerts: list) -> None:
        """To the outbox's writer; sent by the loop once stored (`send_stored`)."""
        self.publisher.submit([alert_payload(a) for a in alerts])
        for a in alerts:
            self.stats[a.camera].count("alerts")
            log.info("alert %s %s on %s: %s %.2f", a.state, a.alert_id[:8], a.camera, a.category, a.score)

    def _running(self) -> bool:
        return any(cam not in self.ended for cam in self.sources) and not self._abort.is_set()

    def run(self) -> int:
        """Run until every camera has ended; 0 if all ended normally, 1 on a failure."""
        self.publisher.resume()
        wait = self.cfg.alerts.wait_for_subscriber_s
        if wait > 0:
            deadline = time.monotonic() + wait
            while not self.stop.is_set() and not self.publisher.wait_for_subscriber(min(0.2, wait)):
                if time.monotonic() >= deadline:        # a stop signal ends the wait too
                    log.warning("no subscriber after %.1f s; starting anyway", wait)
                    break
        stages = [threading.Thread(target=self._run_scene, name="scene", daemon=True),
                  threading.Thread(target=self._run_detector, name="detector", daemon=True)]
        if self._explain_jobs is not None:
            stages.append(threading.Thread(target=self._run_explainer, name="explainer", daemon=True))
        for t in stages:
            t.start()
        for cam in list(self.sources):
            self._start_camera(cam)
        interval = self.cfg.alerts.health_interval_s
        next_health = time.monotonic() + interval
        while self._running():
            if self.stop.is_set():
                for src in self.sources.values():
                    src.stop.set()
            if self._reload is not None:
                load, self._reload = self._reload, None
                if not self.stop.is_set():
                    self._apply_reload(load)
            self._publish_state_changes()
            try:                     # alerts being stored: look back soon to send them
                item = self.outbox.get(timeout=0.002 if self.publisher.storing else 0.1)
            except queue.Empty:
                item = None
            alerts = []
            while isinstance(item, tuple) and item[0] == "alert" and len(alerts) < 256:
                alerts.append(item[1])       # a run of alerts is stored in one commit (group commit)
                try:
                    item = self.outbox.get(timeout=0)
                except queue.Empty:
                    item = None
            if alerts:
                self._publish_alerts(alerts)
            if item is not None:
                self._deliver(item)
            self.publisher.send_stored()
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
                src.stop.set()
        for t in [*stages, *self._threads.values()]:
            t.join(timeout=5.0)
        if self.evidence is not None:
            self.evidence.close()
        if self.chat is not None:
            self.chat.close()
        self.publisher.close()
        failed = [f"camera {c}: {r.removeprefix('failed: ').removeprefix(f'camera {c}: ')}"
                  for c, r in self.ended.items() if r.startswith("failed")]
        if self.fatal:
            failed.insert(0, self.fatal)
        self.failure = redact("; ".join(failed)) if failed else None
        return 1 if failed else 0


def build_pipeline(cfg: HawkwatchConfig, *, stop: threading.Event | None = None, replay: str | None = None,
                   loop: bool | None = None, duration_s: float | None = None) -> Pipeline:
    """Resolve the config into built stages (models loaded, socket bound); overrides come from the CLI."""
    from stream.llm.baseline import BaselineDetector

    def make_source(camera: str, c: CameraConfig, on_state: Callable[[str, str | None], None]) -> VideoSource:
        return VideoSource(camera, c.target, is_file=c.path is not None, is_device=c.device is not None,
                           replay=replay or c.replay, loop=c.loop if loop is None else loop, ingest=c.ingest,
                           stop=threading.Event(), max_stream_s=duration_s, on_state=on_state)

    scene = scene_from_config(cfg)
    verdicts = {"baseline": lambda: BaselineDetector(cfg.detector.baseline), "hawkeye": lambda: _hawkeye(cfg)}[
        cfg.detector.name]()
    publisher = Publisher.from_config(cfg.alerts)
    evidence = EvidenceWriter(cfg.alerts.evidence) if cfg.alerts.evidence.enabled else None
    chat = None
    if cfg.alerts.chat_endpoint is not None:
        try:
            chat = ChatService(verdicts).serve(cfg.alerts.chat_endpoint, publisher.configure)
        except OSError as e:
            publisher.close()
            raise ConfigError(f"alerts.chat_endpoint: {e}") from None
    return Pipeline(cfg, make_source, scene, verdicts, publisher, stop, evidence, chat)


def _once(make: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """`make`, called at most once (the windows and the evidence ring share a frame's conversion)."""
    made: list[np.ndarray] = []

    def image() -> np.ndarray:
        if not made:
            made.append(make())
        return made[0]
    return image


def _hawkeye(cfg: HawkwatchConfig):
    from stream.llm.detector import HawkeyeDetector
    from stream.llm.hawkeye import load_model

    h = cfg.detector.hawkeye
    try:
        model = load_model(h.model, lm_path=h.lm, merge_lora=True, device=h.device)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"detector.hawkeye: {e}") from None
    if model.cfg.appearance_dim and cfg.models.appearance is None:
        raise ConfigError(f"detector.hawkeye: the model at {h.model} reads pretrained appearance features "
                          f"(appearance_dim {model.cfg.appearance_dim}); set models.appearance "
                          "(path: models/efficientnet_lite0.onnx) so the scene stage computes them")
    return HawkeyeDetector(model, threads=h.threads, max_batch=h.max_batch, max_wait_s=h.max_wait_ms / 1000.0,
                           explain=h.explain)

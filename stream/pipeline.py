"""Wire the stages: sources -> windows -> scene -> detector -> events -> publisher.

One thread per camera source, one for the scene stage, one for the detector; the calling thread
publishes (it owns the ZeroMQ socket) and sends health. Every arrow is a bounded queue: replay
blocks (lossless), live streams drop the oldest window and count it. On stop, sources end their
streams and everything already accepted flows through to the subscriber before the socket closes.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Callable

from stream.alerts import Publisher, alert_payload, verdict_payload
from stream.config import HawkwatchConfig
from stream.ingest.source import SourceError, VideoSource
from stream.ingest.windows import WindowAssembler
from stream.llm.events import EventTracker
from stream.metrics import CameraStats
from stream.scene.graph import SceneBuilder
from stream.types import EndOfStream, SceneGraph, Verdict, Window

log = logging.getLogger(__name__)


class StageQueue:
    """A bounded queue with a declared policy when full: `block` (lossless) or `drop_oldest`.

    Ends of stream are never dropped: drop_oldest removes the oldest item that is not one."""

    def __init__(self, maxsize: int, policy: str = "block", on_drop: Callable[[object], None] | None = None):
        if policy not in ("block", "drop_oldest"):
            raise ValueError(f"unknown queue policy {policy!r}")
        self.maxsize, self.policy, self._on_drop = maxsize, policy, on_drop
        self._items: deque = deque()
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item, *, policy: str | None = None, abort: threading.Event | None = None) -> bool:
        """Returns False only when `abort` was set while waiting for room."""
        dropped = []
        with self._cond:
            if (policy or self.policy) == "block" or isinstance(item, EndOfStream):
                while len(self._items) >= self.maxsize:
                    if abort is not None and abort.is_set():
                        return False
                    self._cond.wait(0.1)
            else:
                while len(self._items) >= self.maxsize:
                    oldest = next((x for x in self._items if not isinstance(x, EndOfStream)), None)
                    if oldest is None:
                        break      # only ends are queued: exceed the bound by one rather than lose one
                    self._items.remove(oldest)
                    dropped.append(oldest)
                self.dropped += len(dropped)
            self._items.append(item)
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
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def qsize(self) -> int:
        return len(self._items)


class Pipeline:
    def __init__(self, cfg: HawkwatchConfig, sources: dict[str, VideoSource], scene: SceneBuilder,
                 detector: Callable[[SceneGraph], Verdict], publisher: Publisher, stop: threading.Event):
        self.cfg, self.sources, self.scene, self.detector = cfg, sources, scene, detector
        self.publisher, self.stop = publisher, stop
        self.stats = {cam: CameraStats(cam) for cam in sources}
        self._abort = threading.Event()          # a stage failed: unblock everyone, end now
        self.fatal: str | None = None            # why a stage broke, if one did
        self.failure: str | None = None          # after run(): the one-line reason for a non-zero exit
        self.ended: dict[str, str] = {}          # camera -> EndOfStream.reason
        self._emitted_at: dict[tuple[str, int], float] = {}   # (camera, window id) -> when ingest emitted it

        def dropped(window: Window) -> None:
            self.stats[window.camera].count("windows_dropped")
            self._emitted_at.pop((window.camera, window.window_id), None)
        # only the windows queue ever drops (live sources); later queues block, so nothing accepted is lost
        self.windows = StageQueue(cfg.queues.windows, on_drop=dropped)
        self.scenes = StageQueue(cfg.queues.scenes)
        self.outbox = StageQueue(cfg.queues.outbox)

    # -- stages ---------------------------------------------------------------------------------
    def _run_source(self, camera: str, source: VideoSource) -> None:
        stats = self.stats[camera]
        w = self.cfg.windows
        asm = WindowAssembler(camera, w.length_s, w.stride_s, w.sample_fps)
        policy = "block" if source.is_file else "drop_oldest"
        reason = "finished"
        try:
            stats.state = "connecting"
            for frame in source.frames():
                if stats.state != "streaming":
                    stats.state, stats.declared_fps = "streaming", source.declared_fps
                sampled = asm.sampled
                windows = asm.push(frame.seq, frame.ts, frame.wall, frame.pixels)
                stats.count("frames_decoded")
                stats.count("frames_sampled", asm.sampled - sampled)
                stats.stream_time = frame.ts
                for window in windows:
                    self._emit(window, policy)
                if self._abort.is_set():
                    break
            reason = source.end_reason
        except SourceError as e:
            log.error("%s", e)
            reason = f"failed: {e}"
        for window in asm.finish():
            self._emit(window, policy)
        self.windows.put(EndOfStream(camera, reason), abort=self._abort)

    def _emit(self, window: Window, policy: str) -> None:
        self.stats[window.camera].count("windows_emitted")
        self._emitted_at[(window.camera, window.window_id)] = time.monotonic()
        self.windows.put(window, policy=policy, abort=self._abort)

    def _run_scene(self) -> None:
        self._stage_loop(self.windows, self.scenes, self.scene.build, "scene")

    def _run_detector(self) -> None:
        trackers = {cam: EventTracker(cam, self.cfg.events) for cam in self.sources}
        last: dict[str, Verdict] = {}

        def decide(scene: SceneGraph) -> list:
            verdict = self.detector(scene)
            emitted = self._emitted_at.pop((scene.camera, scene.window_id), None)
            if emitted is not None:
                verdict = replace(verdict, latency_ms={
                    **verdict.latency_ms, "window_to_verdict": (time.monotonic() - emitted) * 1000.0})
            last[scene.camera] = verdict
            return [("verdict", verdict), *(("alert", a) for a in trackers[scene.camera].update(verdict))]

        def flush(end: EndOfStream) -> list:
            return [("alert", a) for a in trackers[end.camera].flush(last.get(end.camera))]

        self._stage_loop(self.scenes, self.outbox, decide, "detector", on_end=flush, many=True)

    def _stage_loop(self, inbox: StageQueue, outbox: StageQueue, work, name: str, on_end=None,
                    many: bool = False) -> None:
        open_cams = set(self.sources)
        try:
            while open_cams and not self._abort.is_set():
                try:
                    item = inbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(item, EndOfStream):
                    for out in (on_end(item) if on_end else []):
                        outbox.put(out, abort=self._abort)
                    open_cams.discard(item.camera)
                    outbox.put(item, abort=self._abort)
                    continue
                result = work(item)
                for out in (result if many else [result]):
                    outbox.put(out, abort=self._abort)
        except Exception as e:   # a broken stage ends the run with its reason, logged once
            log.exception("%s stage failed", name)
            self.fatal = f"{name} stage failed: {type(e).__name__}: {e}"
            self._abort.set()

    # -- publishing (the calling thread) --------------------------------------------------------
    def _health(self, camera: str) -> None:
        snap = self.stats[camera].snapshot()
        snap["queues"] = {"windows": self.windows.qsize(), "scenes": self.scenes.qsize(),
                          "outbox": self.outbox.qsize()}
        self.publisher.publish("health", camera, snap)

    def _deliver(self, item) -> None:
        if isinstance(item, EndOfStream):
            self.ended[item.camera] = item.reason
            stats = self.stats[item.camera]
            stats.state = "failed" if item.reason.startswith("failed") else "stopped"
            self._health(item.camera)
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
            self.stats[obj.camera].count("alerts")
            self.publisher.publish("alert", obj.camera, alert_payload(obj))
            log.info("alert %s %s on %s: %s %.2f", obj.state, obj.alert_id[:8], obj.camera, obj.category, obj.score)

    def run(self) -> int:
        """Run until every camera has ended; 0 if all ended normally, 1 on a failure."""
        if self.cfg.alerts.wait_for_subscriber_s > 0:
            if not self.publisher.wait_for_subscriber(self.cfg.alerts.wait_for_subscriber_s):
                log.warning("no subscriber after %.1f s; starting anyway", self.cfg.alerts.wait_for_subscriber_s)
        threads = [threading.Thread(target=self._run_source, args=(cam, src), name=f"source-{cam}", daemon=True)
                   for cam, src in self.sources.items()]
        threads += [threading.Thread(target=self._run_scene, name="scene", daemon=True),
                    threading.Thread(target=self._run_detector, name="detector", daemon=True)]
        for t in threads:
            t.start()
        for cam in self.sources:
            self._health(cam)
        interval = self.cfg.alerts.health_interval_s
        next_health = time.monotonic() + interval
        while len(self.ended) < len(self.sources) and not self._abort.is_set():
            if self.stop.is_set():
                for src in self.sources.values():
                    src.stop.set()
            try:
                self._deliver(self.outbox.get(timeout=0.1))
            except queue.Empty:
                pass
            if time.monotonic() >= next_health:
                next_health += interval
                for cam in self.sources:
                    if cam not in self.ended:
                        self._health(cam)
        if self._abort.is_set():
            for src in self.sources.values():
                src.stop.set()
        for t in threads:
            t.join(timeout=5.0)
        self.publisher.close()
        failed = [f"camera {c}: {r.removeprefix('failed: ')}" for c, r in self.ended.items() if r.startswith("failed")]
        if self.fatal:
            failed.insert(0, self.fatal)
        self.failure = "; ".join(failed) if failed else None
        return 1 if failed else 0


def build_pipeline(cfg: HawkwatchConfig, *, stop: threading.Event | None = None, replay: str | None = None,
                   loop: bool | None = None, duration_s: float | None = None) -> Pipeline:
    """Resolve the config into built stages (models loaded, socket bound); overrides come from the CLI."""
    from engines import create_engine
    from stream.llm.baseline import BaselineDetector
    from stream.scene.people import PersonDetector
    from stream.scene.pose import PoseEstimator

    stop = stop or threading.Event()
    sources = {}
    for cam, c in cfg.cameras.items():
        if not c.enabled:
            continue
        is_file = c.path is not None
        sources[cam] = VideoSource(cam, str(c.path) if is_file else c.url, is_file=is_file,
                                   replay=replay or c.replay, loop=c.loop if loop is None else loop,
                                   stop=threading.Event(), max_stream_s=duration_s)
    m = cfg.models
    detector = PersonDetector(create_engine(m.backend, m.person_detector.path, threads=m.threads),
                              score_threshold=m.person_detector.score_threshold, nms_iou=m.person_detector.nms_iou,
                              max_people=m.person_detector.max_people, max_batch=m.max_batch)
    pose = PoseEstimator(create_engine(m.backend, m.pose.path, threads=m.threads),
                         presence_threshold=m.pose.presence_threshold, crop_scale=m.pose.crop_scale,
                         min_box_height=m.pose.min_box_height, max_batch=m.max_batch)
    scene = SceneBuilder(detector, pose, iou_threshold=cfg.tracking.iou_threshold,
                         max_age_s=cfg.tracking.max_age_s, max_jump=cfg.tracking.max_jump)
    verdicts = {"baseline": lambda: BaselineDetector(cfg.detector.baseline)}[cfg.detector.name]()
    publisher = Publisher(cfg.alerts.endpoint, send_hwm=cfg.alerts.send_hwm)
    return Pipeline(cfg, sources, scene, verdicts, publisher, stop)

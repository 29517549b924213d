"""The pipeline on a Ray cluster (`runtime.engine: ray`): the same stages, run by actors.

What runs where:
  - one `CameraWorker` actor per camera: its source, windows and scene stage (and its evidence ring
    and writer, since frames never leave it), placed by `runtime.cameras` resources and the
    camera's `labels`, so ingest runs near its feed;
  - a pool of `ModelWorker` actors (`runtime.models`: count, CPUs/GPUs, labels) scoring batches;
  - this process (the driver): the coordinator of stream/pipeline.py with its scheduler (the same
    max-batch / max-wait / open-events-first rules as the local runtime, across all cameras), the
    event trackers and the publisher, the single writer of the outbox and the ZeroMQ sockets.

A window's frames stay with its camera's worker: scene graphs (kilobytes) and verdicts cross
between processes, a frame only when the console asks for a snapshot, and evidence is written
on the worker. Each camera
worker holds at most `runtime.in_flight` built scene graphs for the driver; a live camera then
drops its oldest (counted), a file waits.

Faults: actors are restarted by Ray (`runtime.max_restarts`) on any node with room. A camera
worker's driver-side runner notices (the new actor was never started), restarts it after the last
window it received (a file replays fast up to there, rebuilding its tracks on the last minute of
it; a live camera reconnects, its window ids and stream time continuing) and counts a restart in
the camera's health. A model worker's batch that dies with it is sent to another; verdicts are
decided once per window id (stream/pipeline.py). Evidence still being written when a camera worker
dies is given up (the alert goes out without files).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from itertools import count

from stream.config import ActorResources, CameraConfig, ConfigError, HawkwatchConfig
from stream.metrics import INGEST_COUNTERS, CameraStats
from stream.runtime import CameraHost
from stream.types import Alert, EndOfStream, SceneGraph, Verdict, Window

log = logging.getLogger(__name__)
RETRIES = 8        # a lost batch or call is tried again this often, waiting longer each time (about 21 s in all)


def backoff(attempt: int) -> float:
    """Seconds before try `attempt + 1`: a restarted model worker loads its model first (seconds on a
    busy machine), so a pool of one must wait that long for its batch to find a worker again."""
    return min(0.2 * 2 ** attempt, 5.0)

WARM_UP_S = 60.0          # a restarted file camera rebuilds its scene state (tracks, dwell, left objects) over this
GIVE_UP_S = 120.0         # a camera worker unreachable this long (no node with room) fails its camera


# -- the actors' classes: plain Python, made remote by RayRuntime ---------------------------------
class CameraWorker:
    """One camera's ingest and scene stage, as a (threaded) actor: `start` runs them on threads of
    its own; the driver takes the results with `pull`."""

    def __init__(self, cfg: HawkwatchConfig, camera: str):
        _log_like_the_driver()
        from stream.alerts.evidence import EvidenceWriter
        from stream.scene.graph import scene_from_config
        self.cfg, self.camera = cfg, camera
        self.scene = scene_from_config(cfg)
        self.evidence = EvidenceWriter(cfg.alerts.evidence) if cfg.alerts.evidence.enabled else None
        self.token: int | None = None                # which start() of the driver's this instance runs
        self._lock = threading.Lock()
        self._states: list[tuple[str, str | None]] = []
        self._emitted: dict[int, float] = {}         # window id -> when ingest emitted it (this process's clock)

    def start(self, token: int, resume_after: int = -1) -> dict:
        """Run the camera (once per instance): a file from the window after `resume_after` (the
        last one the driver received); a live camera anew, its window ids and stream time shifted
        to continue after it."""
        from stream.ingest.camera import CameraIngest
        from stream.ingest.source import open_source
        from stream.scene.stage import scene_stage
        from stream.queues import StageQueue
        if self.token is not None:
            return self._identity()
        c: CameraConfig = self.cfg.cameras[self.camera]
        w = self.cfg.windows_of(self.camera)
        live = c.live
        self.skip_through = -1 if live else resume_after        # windows already delivered (a file's)
        self.id_shift = resume_after + 1 if live else 0          # a live camera's new stream continues the ids
        self.t_shift = self.id_shift * w.stride_s
        warm_from = (resume_after + 1) * w.stride_s - WARM_UP_S   # a file's scene state is rebuilt from here
        self.warm_from_id = -1 if live else int(max(0.0, warm_from) // w.stride_s)

        def on_state(state: str, detail: str | None) -> None:
            with self._lock:
                self._states.append((state, detail))
        fast_until = (resume_after + 1) * w.stride_s + w.length_s if resume_after >= 0 and not live else 0.0
        self.source = open_source(self.camera, c, on_state=on_state, fast_until_s=fast_until,
                                  record=self.cfg.recordings if self.cfg.records(self.camera) else None)
        self.stats = CameraStats(self.camera, self.source.kind, self.source.name)
        self.policy = self.cfg.windows_policy_of(c)

        def dropped(window_id: int) -> None:
            self.stats.count("windows_dropped")
            with self._lock:
                self._emitted.pop(window_id, None)
        self.windows = StageQueue(self.cfg.queues.windows, on_drop=lambda w: dropped(w.window_id))
        self.out = StageQueue(self.cfg.runtime.in_flight, on_drop=lambda g: dropped(g.window_id - self.id_shift))
        self._replayed = 0           # windows emitted again only to warm the scene state up (not counted)
        self._done = threading.Event()
        ring = self.evidence.ring(self.camera) if self.evidence is not None else None
        ingest = CameraIngest(self.source, w, self.stats, ring)
        self.ingest = ingest

        def run_ingest() -> None:
            reason = ingest.run(self._emit)
            self.windows.put(EndOfStream(self.camera, reason))

        def run_scene() -> None:
            try:
                scene_stage(self.scene, self.windows, self._built, self.cfg.models.max_batch,
                            self.cfg.models.max_wait_ms / 1000.0, lambda: not self._done.is_set())
            except Exception as e:  # noqa: BLE001 - the camera ends with the reason; the others go on
                logging.getLogger(__name__).exception("camera %s: scene stage failed", self.camera)
                self.source.stop.set()
                self.out.put(EndOfStream(self.camera, f"failed: scene stage failed: {type(e).__name__}: {e}"))
                self._done.set()
        self.token = token
        for target in (run_ingest, run_scene):
            threading.Thread(target=target, name=f"{target.__name__}-{self.camera}", daemon=True).start()
        return self._identity()

    def _identity(self) -> dict:
        import ray
        return {"token": self.token, "node": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None}

    def _emit(self, window: Window) -> bool:
        if window.window_id <= self.skip_through:
            self._replayed += 1
        if window.window_id < self.warm_from_id:     # long before the resume point: nothing to rebuild
            return True
        with self._lock:
            self._emitted[window.window_id] = time.monotonic()
        policy = "block" if window.window_id <= self.skip_through else self.policy
        return self.windows.put(window, policy=policy)

    def _built(self, item: SceneGraph | EndOfStream) -> None:
        if isinstance(item, EndOfStream):
            self.out.put(item)
            self._done.set()
            return
        if item.window_id <= self.skip_through:       # rebuilt only to warm the scene state up
            with self._lock:
                self._emitted.pop(item.window_id, None)
            return
        self.out.put(_shifted(item, self.id_shift, self.t_shift), policy=self.policy)

    def pull(self, timeout_s: float = 0.2) -> dict:
        """What the camera produced since the last pull: scene graphs (with how long each waited
        since its window was emitted), its end, state changes, counters and finished evidence."""
        items, waited = [], []
        if self.token is not None:
            deadline = time.monotonic() + timeout_s
            while len(items) < self.cfg.runtime.in_flight:
                try:
                    item = self.out.get(timeout=max(0.0, deadline - time.monotonic()) if not items else 0)
                except queue.Empty:
                    break
                items.append(item)
                if isinstance(item, SceneGraph):
                    with self._lock:
                        t = self._emitted.pop(item.window_id - self.id_shift, None)
                    waited.append((time.monotonic() - t) * 1000.0 if t is not None else 0.0)
                else:
                    waited.append(0.0)
        with self._lock:
            states, self._states = self._states, []
        evidence = []
        while self.evidence is not None:
            try:
                evidence.append(self.evidence.results.get_nowait())
            except queue.Empty:
                break
        out = {"token": self.token, "items": items, "waited_ms": waited, "states": states, "evidence": evidence}
        if self.token is not None:
            snap = self.stats.snapshot()
            out["counters"] = {k: snap[k] for k in INGEST_COUNTERS if k in snap} | self.ingest.counters()
            out["counters"]["windows_emitted"] -= self._replayed
            out["stream_time"], out["declared_fps"] = snap["stream_time"], snap["declared_fps"]
        return out

    def frame_jpeg(self, window_id: int) -> bytes | None:
        """A recent window's last frame as JPEG (the console's snapshot; a frame is 1.3 MB raw)."""
        import cv2
        image = self.ingest.frame(window_id - self.id_shift) if self.token is not None else None
        if image is None:
            return None
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        return jpeg.tobytes() if ok else None

    def frames_scored(self, window_id: int) -> None:
        if self.token is not None:
            self.ingest.scored(window_id - self.id_shift)

    def write_evidence(self, scene: SceneGraph, verdict: Verdict, alert: Alert) -> bool:
        """An opened event's keyframe and clip, from this camera's frames (the result comes with a pull)."""
        if self.evidence is None or self.token is None:
            return False
        back = -self.t_shift
        return self.evidence.submit(_shifted(scene, -self.id_shift, back),
                                    replace(verdict, start=verdict.start + back, end=verdict.end + back),
                                    replace(alert, start=alert.start + back, end=alert.end + back))

    def stop(self) -> None:
        if self.token is not None:
            self.source.stop.set()

    def close(self) -> None:
        if self.evidence is not None:
            self.evidence.close()


class ModelWorker:
    """The detector, in an actor: batches of scene graphs in, verdicts out."""

    def __init__(self, cfg: HawkwatchConfig):
        _log_like_the_driver()
        from stream.detection.registry import build_detector
        self.detector = build_detector(cfg)

    def describe(self) -> dict:
        d = self.detector
        return {"name": d.name, "max_batch": d.max_batch, "max_wait_s": d.max_wait_s, "explains": d.explains,
                "talks": d.talks}

    def batch(self, scenes: list[SceneGraph]) -> list[Verdict]:
        return self.detector.batch(scenes)

    def explain(self, scene: SceneGraph, category: str, start: float, end: float) -> str:
        return self.detector.explain(scene, category, start, end)

    def chat(self, scenes: list[SceneGraph], question: str, max_new_tokens: int) -> str:
        return self.detector.chat(scenes, question, max_new_tokens=max_new_tokens)


def _shifted(scene: SceneGraph, ids: int, seconds: float) -> SceneGraph:
    """The scene graph with its window id and stream times moved on (a live camera's new stream)."""
    if not ids and not seconds:
        return scene
    return replace(scene, window_id=scene.window_id + ids, start=scene.start + seconds, end=scene.end + seconds,
                   timestamps=scene.timestamps + seconds, gaps=tuple((a + seconds, b + seconds) for a, b in scene.gaps))


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address answers, or a ConfigError that says so: Ray itself
    retries an unreachable head for minutes before it gives up."""
    import socket
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"runtime.address {address!r}: not auto, local, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(f"runtime.address {address}: no Ray head answers there ({e.strerror or e}); is the "
                          "cluster up (`ray status`), and is this its GCS port (6379 by default) or, with ray://, "
                          "its client port (10001)?") from None


def _log_like_the_driver() -> None:
    from stream.redact import RedactingFormatter
    root = logging.getLogger()
    if not any(isinstance(h.formatter, RedactingFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


# -- the driver's side -----------------------------------------------------------------------------
class RayRuntime:
    """Joins the cluster, starts the model pool; makes a `RayCamera` per camera (stream/runtime.py's
    `Runtime`)."""
    engine, scenes_built_here = "ray", False

    def __init__(self, cfg: HawkwatchConfig):
        import ray
        self.ray, self.cfg = ray, cfg
        self._tokens = count(1)
        address = cfg.runtime.address
        check_reachable(address)
        try:
            if address == "local":
                ray.init(include_dashboard=False, logging_level=logging.WARNING)
            else:
                ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as e:
            raise ConfigError(f"runtime.address {address}: no Ray cluster there ({e}); start one with `ray start "
                              "--head` (or scripts/ray_cluster.py), or use address: local") from None
        self.cameras: dict[str, RayCamera] = {}
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        have = ray.cluster_resources()
        m = cfg.runtime.models
        log.info("runtime ray: joined %s: %d node(s), %g CPUs, %g GPUs; starting %d model worker(s) (%g CPU, %g GPU "
                 "each%s)", address, len(nodes), have.get("CPU", 0), have.get("GPU", 0), m.actors, m.num_cpus,
                 m.num_gpus, f", preferring {m.labels}" if m.labels else "")
        for what, res, n in (("runtime.models", m, m.actors), ("runtime.cameras", cfg.runtime.cameras, 1)):
            for kind, want in (("CPU", res.num_cpus), ("GPU", res.num_gpus)):
                if want * n > have.get(kind, 0):
                    log.warning("%s wants %g %s in all and the cluster has %g: its workers wait until nodes with "
                                "room join (an autoscaling cluster adds them)", what, want * n, kind, have.get(kind, 0))
        try:
            self.scorer = ModelPool(self, cfg)
        except BaseException:
            ray.shutdown()
            raise
        self.evidence = RayEvidence(self) if cfg.alerts.evidence.enabled else None

    def options(self, resources: ActorResources, labels: dict[str, str], **more) -> dict:
        """Ray actor options: the resources, the labels preferred (any node when none has them)."""
        opts = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus,
                "max_restarts": self.cfg.runtime.max_restarts, **more}
        want = {**resources.labels, **labels}
        if want:
            opts["label_selector"] = want
            opts["fallback_strategy"] = [{"label_selector": {}}]
        return opts

    def camera(self, host: CameraHost, camera: str, cfg: CameraConfig) -> RayCamera:
        runner = RayCamera(self, host, camera, cfg)
        self.cameras[camera] = runner
        return runner

    def close(self) -> None:
        for cam in list(self.cameras.values()):
            cam.join(timeout=5.0)
            cam.kill()
        self.scorer.kill()
        self.ray.shutdown()


class RayCamera:
    """The driver's side of one camera worker: starts it, pulls its scene graphs into the pipeline,
    and restarts its camera when Ray has restarted the actor (stream/runtime.py's `CameraRunner`)."""

    def __init__(self, runtime: RayRuntime, host: CameraHost, camera: str, cfg: CameraConfig):
        from stream.redact import redact
        ray = runtime.ray
        self.runtime, self.host, self.camera, self.cfg = runtime, host, camera, cfg
        self.kind = cfg.kind
        self.name = redact(cfg.target)
        options = runtime.options(runtime.cfg.runtime.cameras, cfg.labels, max_concurrency=4, max_task_retries=0)
        only_this_camera = runtime.cfg.model_copy(update={"cameras": {camera: cfg}})
        self.actor = ray.remote(CameraWorker).options(**options).remote(only_this_camera, camera)
        self.restarts = 0
        self.node: str | None = None     # where the worker runs (a Ray node id), once started
        self.last_received = -1          # the last window id the driver took from the worker
        self.pending_evidence: set[str] = set()
        self._token: int | None = None
        self._base: dict[str, int] = dict.fromkeys(INGEST_COUNTERS, 0)   # totals of earlier instances
        self._counters: dict[str, int] = dict.fromkeys(INGEST_COUNTERS, 0)
        self._stopping = threading.Event()
        self._killed = False
        self._ended = False                  # its end of stream went to the pipeline; pulls go on for evidence
        self._delivered = threading.Event()  # ... until the pipeline has published that end
        self._thread: threading.Thread | None = None

    def start(self, after_s: float = 0.0) -> None:
        self._thread = threading.Thread(target=self._run, args=(after_s,), name=f"camera-{self.camera}", daemon=True)
        self._thread.start()

    def _start_worker(self) -> None:
        token = next(self.runtime._tokens)
        got = self.runtime.ray.get(self.actor.start.remote(token, self.last_received),
                                   timeout=self.runtime.cfg.runtime.start_timeout_s)
        self._token, self.node = got["token"], got["node"]
        labels = next((n.get("Labels", {}) for n in self.runtime.ray.nodes() if n["NodeID"] == self.node), {})
        mine = ", ".join(f"{k}={v}" for k, v in labels.items() if not k.startswith("ray.io/"))
        log.info("camera %s: its worker runs on ray node %s (%s)", self.camera, self.node[:8], mine or "no labels")

    def _run(self, after_s: float) -> None:
        ray = self.runtime.ray
        p = self.host
        self._stopping.wait(after_s)
        stats = p.stats_of(self.camera)
        unreachable_since: float | None = None
        try:
            while True:
                try:
                    if self._token is None:
                        self._start_worker()
                        if self._stopping.is_set():
                            self.actor.stop.remote()
                    got = ray.get(self.actor.pull.remote(0.5), timeout=60)
                    unreachable_since = None
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
                    unreachable_since = unreachable_since or time.monotonic()
                    why = self._given_up(e, unreachable_since)
                    if why is not None:
                        p.scene_arrived(EndOfStream(self.camera, f"failed: {why}"))
                        return
                    time.sleep(0.2)
                    continue
                if got["token"] != self._token:          # Ray restarted the actor: start its camera again
                    self._restarted()
                    continue
                for state, detail in got["states"]:
                    p.state_changed(self.camera, state, detail)
                for camera, alert_id, evidence in got["evidence"]:
                    self.pending_evidence.discard(alert_id)
                    self.runtime.evidence.results.put((camera, alert_id, evidence))
                self._counters = {k: self._base[k] + got["counters"].get(k, 0) for k in INGEST_COUNTERS}
                stats.stream_time, stats.declared_fps = got["stream_time"], got["declared_fps"]
                for item, waited in zip(got["items"], got["waited_ms"]):
                    if isinstance(item, SceneGraph):
                        self.last_received = item.window_id
                    if not p.scene_arrived(item, waited):
                        return
                    if isinstance(item, EndOfStream):
                        self._ended = True
                if self._ended and self._delivered.is_set():     # the camera is through: close its worker
                    return
        finally:
            self._release_evidence()
            self.kill()

    def _given_up(self, e: Exception, since: float) -> str | None:
        """Why the camera cannot go on after `e` (its worker unreachable since `since`), or None to retry."""
        errors = self.runtime.ray.exceptions
        if isinstance(e, errors.ActorDiedError) and "creation task" in str(e):
            return f"its camera worker could not start: {str(getattr(e, 'cause', None) or e).strip().splitlines()[-1]}"
        if isinstance(e, errors.GetTimeoutError) and self._token is None:
            return (f"its camera worker was not placed within runtime.start_timeout_s "
                    f"({self.runtime.cfg.runtime.start_timeout_s:g} s): no node has room for it")
        if time.monotonic() - since > GIVE_UP_S:
            return f"its camera worker could not be restarted: {type(e).__name__}"
        return None

    def _restarted(self) -> None:
        self.restarts += 1
        self._base = dict(self._counters)
        self._token = None
        self._release_evidence()
        log.warning("camera %s: its worker was restarted (restart %d); resuming after window %d",
                    self.camera, self.restarts, self.last_received)

    def _release_evidence(self) -> None:
        """Evidence the lost worker was writing will not come: its alerts go out without it."""
        if self.runtime.evidence is None:
            return
        for alert_id in list(self.pending_evidence):
            self.runtime.evidence.results.put((self.camera, alert_id, ()))
        self.pending_evidence.clear()

    def stop(self) -> None:
        if not self._stopping.is_set():
            self._stopping.set()
            self.actor.stop.remote()

    def join(self, timeout: float) -> None:
        """The pipeline is done with the camera (its end published, or the run over)."""
        self._delivered.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def counters(self) -> dict[str, int]:
        return {**self._counters, "restarts": self.restarts}

    def frame(self, window_id: int):
        """A recent window's last frame, from the worker that holds the frames (None if gone)."""
        import cv2
        import numpy as np
        try:
            jpeg = self.runtime.ray.get(self.actor.frame_jpeg.remote(window_id), timeout=5)
        except Exception:  # noqa: BLE001 - a worker being restarted has no frame to give
            return None
        return None if jpeg is None else cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)

    def scored(self, window_id: int) -> None:
        try:
            self.actor.frames_scored.remote(window_id)      # not waited for: the worker lets older frames go
        except Exception:  # noqa: BLE001 - a worker being restarted holds no frames
            pass

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        if self.runtime.cameras.get(self.camera) is self:
            del self.runtime.cameras[self.camera]
        try:
            self.runtime.ray.get(self.actor.close.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - a worker already gone has nothing to close
            pass
        self.runtime.ray.kill(self.actor, no_restart=True)


class RayEvidence:
    """Evidence is written where the frames are, by the camera's worker; results come back with
    its pulls (the `EvidenceWriter` interface the pipeline uses)."""

    def __init__(self, runtime: RayRuntime):
        self.runtime = runtime
        self.results: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, scene: SceneGraph, verdict: Verdict, alert: Alert) -> bool:
        cam = self.runtime.cameras.get(alert.camera)
        if cam is None:
            return False
        cam.pending_evidence.add(alert.alert_id)
        cam.actor.write_evidence.remote(scene, verdict, alert)
        return True

    def close(self) -> None:
        pass


class ModelPool:
    """`runtime.models.actors` model workers; each batch goes to the least busy one, and a batch
    lost with its worker is sent again to another (stream/detection/stage.py's `Scorer`)."""

    def __init__(self, runtime: RayRuntime, cfg: HawkwatchConfig):
        ray = runtime.ray
        self.ray = ray
        m = cfg.runtime.models
        remote = ray.remote(ModelWorker).options(**runtime.options(m, {}, max_concurrency=3, max_task_retries=0))
        self.actors = [remote.remote(cfg) for _ in range(m.actors)]
        wait = cfg.runtime.start_timeout_s
        try:
            info = ray.get(self.actors[0].describe.remote(), timeout=wait)
            ray.get([a.describe.remote() for a in self.actors[1:]], timeout=wait)
        except ray.exceptions.RayActorError as e:     # the detector could not be built (e.g. no model there)
            cause = getattr(e, "cause", None) or e
            raise ConfigError(f"runtime: the model workers did not start: {cause}") from None
        except ray.exceptions.GetTimeoutError:
            raise ConfigError(f"runtime.models: {m.actors} model worker(s) with {m.num_cpus:g} CPU and {m.num_gpus:g} "
                              f"GPU each were not placed within runtime.start_timeout_s ({wait:g} s): no node has that room "
                              "free") from None
        self.name, self.max_batch, self.max_wait_s = info["name"], info["max_batch"], info["max_wait_s"]
        self.explains, self.talks = info["explains"], info["talks"]
        self.parallel = len(self.actors)          # one batch on each worker (beside it: an explanation or a chat)
        self.restarts = 0
        self._busy = [0] * len(self.actors)
        self._lock = threading.Lock()

    def _pick(self) -> int:
        with self._lock:
            i = min(range(len(self.actors)), key=lambda k: self._busy[k])
            self._busy[i] += 1
            return i

    def submit(self, scenes: list[SceneGraph], attempt: int = 0, out: Future | None = None) -> Future:
        out = out or Future()
        i = self._pick()
        ref = self.actors[i].batch.remote(scenes)
        ref.future().add_done_callback(lambda f: self._done(f, i, scenes, attempt, out))
        return out

    def _done(self, f: Future, i: int, scenes: list[SceneGraph], attempt: int, out: Future) -> None:
        with self._lock:
            self._busy[i] -= 1
        try:
            out.set_result(f.result())
        except self.ray.exceptions.RayActorError as e:
            self.restarts += 1
            if attempt >= RETRIES:
                out.set_exception(RuntimeError(f"a model batch failed on {attempt + 1} workers: {e}"))
                return
            log.warning("a model worker died; its batch of %d windows goes to another", len(scenes))
            time.sleep(backoff(attempt))
            self.submit(scenes, attempt + 1, out)
        except Exception as e:  # noqa: BLE001 - the detector's own error: the detector stage reports it
            out.set_exception(e)

    def _call(self, method: str, *args, **kwargs):
        for attempt in range(RETRIES + 1):
            i = self._pick()
            try:
                return self.ray.get(getattr(self.actors[i], method).remote(*args, **kwargs))
            except self.ray.exceptions.RayActorError:
                time.sleep(backoff(attempt))
            finally:
                with self._lock:
                    self._busy[i] -= 1
        raise RuntimeError(f"no model worker answered {method}")

    def explain(self, scene: SceneGraph, category: str, start: float, end: float) -> str:
        return self._call("explain", scene, category, start, end)

    def chat(self, scenes: list[SceneGraph], question: str, max_new_tokens: int = 64) -> str:
        return self._call("chat", scenes, question, max_new_tokens)

    def kill(self) -> None:
        for a in self.actors:
            self.ray.kill(a, no_restart=True)

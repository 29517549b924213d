"""The HTTP API and the web console, served by the pipeline's own process (FastAPI on uvicorn, on
a thread of its own).

    GET  /api/cameras                    every camera's latest health (state, fps, drops, latencies)
    GET  /api/cameras/{c}/snapshot.jpg   its latest scored window's last frame, the scene drawn on it
    GET  /api/cameras/{c}/scores         its recent windows' scores, per second
    POST /api/cameras/{c}/chat           a question about its recent windows (detector: hawkeye)
    GET  /api/events                     events from the outbox, newest first, by camera, category, time; paged
    GET  /api/events/{id}                one event's latest message and its review
    GET  /api/events/{id}/keyframe.jpg, /clip.mp4   its evidence
    PUT  /api/events/{id}/review         confirmed | false_alarm (stored beside the outbox)
    GET  /api/labels                     the reviews as training labels (training/data.py's format)
    GET  /metrics                        Prometheus: per camera counters, per-stage latency histograms,
                                         alerts by category, queue depths, the outbox, catch-up requests
    GET  /docs                           the OpenAPI description (and /openapi.json)
    GET  /                               the console (stream/console/): cameras, timelines, events, chat

In the pipeline's process because that is where the state is: the health it publishes, its
counters and its outbox; a second process would have to rebuild all of it from the topics.
Without `http.token_env` it listens on loopback only (the config refuses anything else, as for
the ZeroMQ endpoints); with it, every request needs `Authorization: Bearer <token>`. HTTPS when
a certificate is configured.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from stream.alerts.outbox import Reader
from stream.alerts.reviews import ReviewStore, export as export_labels
from stream.config import ConfigError, HttpConfig, ZoneConfig
from stream.types import Alert, Verdict

if TYPE_CHECKING:
    from stream.pipeline import Pipeline

log = logging.getLogger(__name__)

SNAPSHOT_WIDTH = 960          # pixels: snapshots of wider cameras are scaled down to this
COOKIE = "hawkwatch_token"    # the console's sign-in keeps the bearer token here
OPEN_PATHS = {"/login", "/healthz"}   # served without the token (the sign-in page; the liveness probe)



class PipelineCollector:
    """Reads the running pipeline at each scrape (a prometheus_client custom collector)."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        from stream.metrics import COUNTERS, LATENCY_BUCKETS_S
        p = self.pipeline
        totals = {cam: stats.totals() for cam, stats in list(p.stats.items())}
        for name, doc in COUNTERS.items():
            if name == "alerts":          # by category and state, below
                continue
            family = CounterMetricFamily(f"hawkwatch_{name}", doc, labels=["camera"])
            for cam, t in totals.items():
                family.add_metric([cam], t["counts"].get(name, 0))
            yield family
        up = GaugeMetricFamily("hawkwatch_camera_up", "1 while the camera streams, 0 otherwise.", labels=["camera", "state"])
        for cam, t in totals.items():
            up.add_metric([cam, t["state"]], 1.0 if t["state"] == "streaming" else 0.0)
        yield up
        alerts = CounterMetricFamily("hawkwatch_alerts", COUNTERS["alerts"], labels=["camera", "category", "state"])
        for cam, t in totals.items():
            for (category, state), n in t["alerts"].items():
                alerts.add_metric([cam, category, state], n)
        yield alerts
        latency = HistogramMetricFamily("hawkwatch_stage_latency_seconds", "Per-stage latency of each window.",
                                        labels=["camera", "stage"])
        for cam, t in totals.items():
            for stage, (counts, total) in t["histograms"].items():
                cumulative, buckets = 0, []
                for bound, n in zip([*map(str, LATENCY_BUCKETS_S), "+Inf"], counts):
                    cumulative += n
                    buckets.append((bound, cumulative))
                latency.add_metric([cam, stage], buckets, total)
        yield latency
        depth = GaugeMetricFamily("hawkwatch_queue_depth", "Items waiting between stages.", labels=["queue"])
        for name, q in (("windows", p.windows), ("scenes", p.scenes), ("outbox", p.outbox)):
            depth.add_metric([name], q.qsize())
        yield depth
        box = p.publisher.outbox.status()
        yield GaugeMetricFamily("hawkwatch_outbox_degraded", "1 while the outbox cannot write (alerts held in memory).",
                                value=1.0 if box["state"] != "ok" else 0.0)
        yield GaugeMetricFamily("hawkwatch_outbox_held", "Published alerts waiting to be stored.", value=box["held"])
        yield CounterMetricFamily("hawkwatch_outbox_lost", "Published alerts dropped unstored.", value=box["lost"])
        if p.publisher.query is not None:
            q = p.publisher.query.status()
            yield CounterMetricFamily("hawkwatch_catchup_requests", "Subscribers' requests for missed alerts answered.",
                                      value=q["answered"])


class Recent:
    """Each camera's recent verdicts and its open event (an observer of the pipeline): the
    console's score curves and event badges."""

    def __init__(self, keep: int = 1800):      # 1 h of windows at a 2 s stride
        self.keep = keep
        self._verdicts: dict[str, deque[dict]] = {}
        self._open: dict[str, dict] = {}
        self._lock = threading.Lock()

    def observe(self, item: Verdict | Alert) -> None:
        if isinstance(item, Alert):
            with self._lock:
                if item.state == "close":
                    self._open.pop(item.camera, None)
                else:
                    self._open[item.camera] = {"alert_id": item.alert_id, "category": item.category,
                                               "score": round(item.score, 4), "wall_start": item.wall_start}
            return
        row = {"window_id": item.window_id, "start": item.start, "end": item.end, "wall_start": item.wall_start,
               "wall_end": item.wall_end, "score": round(item.score, 4),
               "seconds": [{"start": s.start, "end": s.end, "score": round(s.score, 4), "category": s.category}
                           for s in item.seconds]}
        with self._lock:
            self._verdicts.setdefault(item.camera, deque(maxlen=self.keep)).append(row)

    def scores(self, camera: str, since: float | None = None) -> list[dict]:
        with self._lock:
            rows = list(self._verdicts.get(camera, ()))
        return [r for r in rows if since is None or r["wall_end"] >= since]

    def open_event(self, camera: str) -> dict | None:
        """The camera's event open now (id, category, peak score, since when), or None."""
        with self._lock:
            return self._open.get(camera)

    def score_of(self, camera: str, window_id: int) -> float | None:
        with self._lock:
            rows = self._verdicts.get(camera, ())
            return next((r["score"] for r in reversed(rows) if r["window_id"] == window_id), None)


class Snapshots:
    """A camera's latest scored window: its last frame with the scene drawn on it, as JPEG. Made
    once per window and camera (a console refreshing every second costs one picture per window)."""

    def __init__(self, pipeline: Pipeline, recent: Recent, width: int = SNAPSHOT_WIDTH):
        self.pipeline, self.recent, self.width = pipeline, recent, width
        self._made: dict[tuple[str, bool], tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def jpeg(self, camera: str, overlay: bool = True) -> bytes | None:
        import cv2

        from stream.scene.render import draw, label
        scene, runner = self.pipeline.last_scene.get(camera), self.pipeline.sources.get(camera)
        if scene is None or runner is None:
            return None
        with self._lock:
            made = self._made.get((camera, overlay))
        if made is not None and made[0] == scene.window_id:
            return made[1]
        image = runner.frame(scene.window_id)
        if image is None:
            return None
        scale = min(1.0, self.width / image.shape[1])
        if overlay:
            image = draw(image, scene, len(scene.timestamps) - 1, scale=scale, trails=True)
            zones = self.pipeline.zones.get(camera)
            if zones is not None:
                zones.draw(image)
            score = self.recent.score_of(camera, scene.window_id)
            if score is not None:
                label(image, f"score {score:.2f}", (4, image.shape[0] - 6), (255, 255, 255))
        elif scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        with self._lock:
            self._made[(camera, overlay)] = (scene.window_id, data.tobytes())
        return data.tobytes()


class ChatRequest(BaseModel):
    question: str = Field(description="A free question about the camera's recent windows.")
    windows: int = Field(2, ge=1, le=8, description="How many recent windows the answer reads.")


class ReviewRequest(BaseModel):
    label: Literal["confirmed", "false_alarm"]
    note: str = Field("", max_length=1000)
    reviewer: str = Field("", max_length=100)


def outbox_event(pipeline: Pipeline, alert_id: str, reviews: ReviewStore | None = None) -> dict | None:
    """An event's latest message (a connection per request: requests run on a thread pool), with
    its `review` (or None) when given the reviews: what the API and the console both show."""
    with Reader(pipeline.publisher.outbox.path) as r:
        event = r.event(alert_id)
    if event is not None and reviews is not None:
        event["review"] = reviews.get(alert_id)
    return event


def outbox_events(pipeline: Pipeline, reviews: ReviewStore | None = None, **filters) -> list[dict]:
    """Events, newest first, each its latest message (Reader.events' filters), with its `review`
    when given the reviews."""
    with Reader(pipeline.publisher.outbox.path) as r:
        events = [json.loads(row) for row in r.events(**filters)]
    for event in events if reviews is not None else ():
        event["review"] = reviews.get(event["alert_id"])
    return events


def zones_yaml(camera: str, zones: dict[str, ZoneConfig]) -> str:
    """The zones as the config's YAML (to keep what was drawn on the console)."""
    lines = ["cameras:", f"  {camera}:", "    zones:" + ("" if zones else " {}")]
    for name, z in zones.items():
        points = ", ".join(f"[{x:g}, {y:g}]" for x, y in z.points)
        lines.append(f"      {json.dumps(name)}: {{kind: {z.kind}, points: [{points}]}}")
    return "\n".join(lines) + "\n"


def token_of(cfg: HttpConfig) -> str | None:
    """The bearer token clients must send, or None (loopback only)."""
    if cfg.token_file is not None:
        try:
            token = cfg.token_file.read_text().strip()
        except OSError as e:
            raise ConfigError(f"http.token_file: {cfg.token_file}: {e.strerror or e}") from None
        if not token:
            raise ConfigError(f"http.token_file: {cfg.token_file} is empty")
        return token
    if cfg.token_env is None:
        return None
    token = os.environ.get(cfg.token_env)
    if not token:
        raise ConfigError(f"http.token_env: the environment variable {cfg.token_env} is not set")
    return token


def record_review(pipeline: Pipeline, reviews: ReviewStore, event: dict, label: str, note: str = "",
                  reviewer: str = "") -> dict:
    """Store an operator's review of an event; a false alarm also joins its camera's normal (the
    answer's `normal` says what that did)."""
    row = reviews.set(event["alert_id"], event["camera"], label, note, reviewer)
    if label == "false_alarm" and event["camera"] in pipeline.cfg.cameras:
        row["normal"] = pipeline.normal.of(event["camera"]).false_alarm(event["alert_id"])
    return row


def create_app(pipeline: Pipeline, token: str | None, reviews: ReviewStore) -> FastAPI:
    def authorised(request: Request) -> None:
        if token is None or request.url.path in OPEN_PATHS or request.url.path.startswith("/static/"):
            return
        sent = request.headers.get("authorization") or f"Bearer {request.cookies.get(COOKIE, '')}"
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "send Authorization: Bearer <token> (the token in http.token_env)",
                                headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="Hawkwatch", description="Cameras, events, chat and metrics of a running Hawkwatch pipeline, "
                  "and its web console (/).", dependencies=[Depends(authorised)])
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(pipeline))
    recent = Recent()
    pipeline.observers.append(recent.observe)
    snapshots = Snapshots(pipeline, recent)
    app.state.pipeline, app.state.recent, app.state.reviews, app.state.token = pipeline, recent, reviews, token

    def camera_known(camera: str) -> str:
        if camera not in pipeline.sources and camera not in pipeline.last_health:
            raise HTTPException(404, f"no camera {camera!r}")
        return camera

    def event_of(alert_id: str) -> dict:
        event = outbox_event(pipeline, alert_id, reviews)
        if event is None:
            raise HTTPException(404, f"no event {alert_id!r} in the outbox")
        return event

    @app.get("/healthz", summary="Liveness: 200 while the pipeline runs (no token needed; says nothing else)")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/api/cameras", summary="Every camera's latest health message, with the event open on it (or null)")
    def cameras() -> list[dict]:
        return [{**pipeline.last_health[cam], "open_event": recent.open_event(cam)}
                for cam in sorted(pipeline.last_health)]

    @app.get("/api/cameras/{camera}/snapshot.jpg", summary="The latest scored window's last frame, scene drawn on it",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    def snapshot(camera: str, overlay: bool = True) -> Response:
        data = snapshots.jpeg(camera_known(camera), overlay)
        if data is None:
            raise HTTPException(404, f"no scored window of camera {camera!r} yet")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/cameras/{camera}/scores", summary="Recent windows' scores, per second (the last hour)")
    def scores(camera: str, since: float | None = Query(None, description="epoch seconds: windows ending then or "
                                                                            "later")) -> list[dict]:
        return recent.scores(camera_known(camera), since)

    @app.get("/api/cameras/{camera}/zones", summary="The camera's zones (points relative to the picture)")
    def get_zones(camera: str) -> dict:
        found = pipeline.zones.get(camera_known(camera))
        return found.as_config() if found is not None else {}

    @app.put("/api/cameras/{camera}/zones", summary="Replace the camera's zones until the pipeline restarts")
    def set_zones(camera: str, body: dict[str, ZoneConfig]) -> dict:
        from stream.scene.zones import Zones
        zones = pipeline.zones[camera_known(camera)] = Zones(body)
        return {"zones": zones.as_config(), "config": zones_yaml(camera, body)}

    @app.post("/api/cameras/{camera}/chat", summary="Ask about the camera's recent windows")
    def chat(camera: str, body: ChatRequest) -> dict:
        from stream.alerts.query import RequestError
        if pipeline.chat is None:
            raise HTTPException(503, "chat is off in this pipeline")
        try:
            return pipeline.chat.handle({"op": "chat", "camera": camera_known(camera), "question": body.question,
                                         "windows": body.windows})
        except RequestError as e:
            raise HTTPException(409, str(e)) from None

    @app.get("/api/events", summary="Events, newest first: each one's latest message (open, update or close)")
    def events(camera: str | None = None, category: str | None = None,
               since: float | None = Query(None, description="epoch seconds: events whose span starts then or later"),
               until: float | None = Query(None, description="epoch seconds: events whose span starts before"),
               limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict:
        found = outbox_events(pipeline, reviews, camera=camera, category=category, since=since, until=until, limit=limit,
                              offset=offset)
        return {"events": found, "next_offset": offset + len(found) if len(found) == limit else None}

    @app.get("/api/events/{alert_id}", summary="One event's latest message, with its review")
    def event(alert_id: str) -> dict:
        return event_of(alert_id)

    @app.get("/api/events/{alert_id}/{name}", summary="The event's evidence: keyframe.jpg or clip.mp4",
             response_class=FileResponse)
    def evidence(alert_id: str, name: Literal["keyframe.jpg", "clip.mp4"]) -> FileResponse:
        kind = name.split(".")[0]
        item = next((e for e in event_of(alert_id).get("evidence", []) if e["kind"] == kind), None)
        if item is None:
            raise HTTPException(404, f"event {alert_id} has no {kind} (evidence off, not written yet, or lost)")
        path, folder = Path(item["path"]).resolve(), pipeline.cfg.alerts.evidence.folder.resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise HTTPException(404, f"the {kind} of event {alert_id} is not on this machine ({item['path']})")
        return FileResponse(path, media_type="image/jpeg" if kind == "keyframe" else "video/mp4")

    @app.put("/api/events/{alert_id}/review", summary="Review an event: confirmed or a false alarm (which its "
                                                     "camera's normal learns at once, where it learns one)")
    def review(alert_id: str, body: ReviewRequest) -> dict:
        return record_review(pipeline, reviews, event_of(alert_id), body.label, body.note, body.reviewer)

    @app.post("/api/cameras/{camera}/normal/reset", summary="Forget what the camera learnt of its own normal")
    def normal_reset(camera: str) -> dict:
        normal = pipeline.normal.of(camera_known(camera))
        normal.reset()
        return normal.status()

    @app.get("/api/labels", summary="The reviews as training labels (training/data.py's ground-truth format)")
    def labels() -> dict:
        videos = {cam: Path(c.path).name for cam, c in pipeline.cfg.cameras.items() if c.path is not None}
        return export_labels(reviews, pipeline.publisher.outbox.path, videos)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    from stream.console import mount
    mount(app)
    return app


class ApiServer:
    """The app on uvicorn, on a thread; the socket is bound when this is made, so a taken port is a
    config error at start-up, not a log line later."""

    def __init__(self, pipeline: Pipeline, cfg: HttpConfig):
        import uvicorn
        token = token_of(cfg)
        host, _, port = cfg.endpoint.rpartition(":")
        self.sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host.strip("[]"), int(port)))
        except OSError as e:
            self.sock.close()
            raise ConfigError(f"http.endpoint {cfg.endpoint}: {e.strerror or e}") from None
        self.sock.listen(64)
        self.url = f"{'https' if cfg.certfile else 'http'}://{cfg.endpoint}"
        self.reviews = ReviewStore(cfg.reviews or pipeline.publisher.outbox.path.with_name("reviews.sqlite"))
        config = uvicorn.Config(create_app(pipeline, token, self.reviews), log_level="warning", access_log=False,
                                ssl_certfile=str(cfg.certfile) if cfg.certfile else None,
                                ssl_keyfile=str(cfg.keyfile) if cfg.keyfile else None)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="http",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("console on %s/ (API: %s/api/cameras, metrics: %s/metrics, docs: %s/docs)",
                 self.url, self.url, self.url, self.url)

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10.0)
        self.sock.close()
        self.reviews.close()

"""The HTTP API, served by the pipeline's own process (FastAPI on uvicorn, on a thread of its own).

    GET /api/cameras    every camera's latest health (state, fps, drops, latencies: what health/<camera> says)
    GET /api/events     events from the outbox, newest first, by camera, category and time, paged
    GET /metrics        Prometheus: per camera counters, per-stage latency histograms, alerts by category,
                        queue depths, the outbox's state, catch-up requests
    GET /docs           the OpenAPI description (and /openapi.json)

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
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.alerts.outbox import Reader
from stream.config import ConfigError, HttpConfig

if TYPE_CHECKING:
    from stream.pipeline import Pipeline

log = logging.getLogger(__name__)

COUNTERS = {   # CameraStats counter -> what the metric says
    "frames_decoded": "Frames decoded.", "frames_sampled": "Frames sampled into windows (what the models see).",
    "windows_emitted": "Windows cut.", "windows_done": "Windows scored.",
    "windows_dropped": "Windows dropped because the stages behind fell behind (live cameras).",
    "windows_skipped": "Windows wholly inside a gap, never cut.", "reconnects": "Reconnections after the first.",
    "decode_errors": "Packets the decoder rejected.", "gaps": "Stretches of stream time the camera sent nothing for.",
}


class PipelineCollector:
    """Reads the running pipeline at each scrape (a prometheus_client custom collector)."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        from stream.metrics import LATENCY_BUCKETS_S
        p = self.pipeline
        totals = {cam: stats.totals() for cam, stats in list(p.stats.items())}
        for name, doc in COUNTERS.items():
            family = CounterMetricFamily(f"hawkwatch_{name}", doc, labels=["camera"])
            for cam, t in totals.items():
                family.add_metric([cam], t["counts"].get(name, 0))
            yield family
        up = GaugeMetricFamily("hawkwatch_camera_up", "1 while the camera streams, 0 otherwise.", labels=["camera", "state"])
        for cam, t in totals.items():
            up.add_metric([cam, t["state"]], 1.0 if t["state"] == "streaming" else 0.0)
        yield up
        alerts = CounterMetricFamily("hawkwatch_alerts", "Alert messages published.", labels=["camera", "category", "state"])
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


def create_app(pipeline: Pipeline, token: str | None) -> FastAPI:
    def authorised(request: Request) -> None:
        if token is None:
            return
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "send Authorization: Bearer <token> (the token in http.token_env)",
                                headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="Hawkwatch", description="Cameras, events and metrics of a running Hawkwatch pipeline.",
                  dependencies=[Depends(authorised)])
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(pipeline))

    @app.get("/api/cameras", summary="Every camera's latest health message")
    def cameras() -> list[dict]:
        return [pipeline.last_health[cam] for cam in sorted(pipeline.last_health)]

    @app.get("/api/events", summary="Events, newest first: each one's latest message (open, update or close)")
    def events(camera: str | None = None, category: str | None = None,
               since: float | None = Query(None, description="epoch seconds: events whose span starts then or later"),
               until: float | None = Query(None, description="epoch seconds: events whose span starts before"),
               limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict:
        reader = Reader(pipeline.publisher.outbox.path)     # a connection per request: requests run on a pool
        try:
            rows = reader.events(camera=camera, category=category, since=since, until=until, limit=limit,
                                 offset=offset)
        finally:
            reader.close()
        return {"events": [json.loads(r) for r in rows], "next_offset": offset + len(rows) if len(rows) == limit
                else None}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class ApiServer:
    """The app on uvicorn, on a thread; the socket is bound when this is made, so a taken port is a
    config error at start-up, not a log line later."""

    def __init__(self, pipeline: Pipeline, cfg: HttpConfig):
        import uvicorn
        token = None
        if cfg.token_env is not None:
            token = os.environ.get(cfg.token_env)
            if not token:
                raise ConfigError(f"http.token_env: the environment variable {cfg.token_env} is not set")
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
        config = uvicorn.Config(create_app(pipeline, token), log_level="warning", access_log=False,
                                ssl_certfile=str(cfg.certfile) if cfg.certfile else None,
                                ssl_keyfile=str(cfg.keyfile) if cfg.keyfile else None)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="http",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("HTTP API on %s (cameras: %s/api/cameras, metrics: %s/metrics, docs: %s/docs)",
                 self.url, self.url, self.url, self.url)

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10.0)
        self.sock.close()

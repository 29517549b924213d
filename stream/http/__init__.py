"""The HTTP API and the web console, served by the pipeline's own process (FastAPI on uvicorn, on
a thread of its own). One router per resource, all reading one read model (readmodel.py):

    cameras.py     GET  /api/cameras                    every camera's latest health (state, fps, drops, latencies)
                   GET  /api/cameras/{c}/snapshot.jpg   its latest scored window's last frame, the scene drawn on it
                   GET  /api/cameras/{c}/scores         its recent windows' scores, per second
                   GET  /api/cameras/{c}/live.mp4       its live video (fragmented MP4; /live says how it plays)
                   GET  /api/cameras/{c}/recordings     its recorded segments in a time range (and each one's MP4)
                   GET  /api/cameras/{c}/export.mp4     a time range of its footage as one MP4
                   GET, PUT /api/cameras/{c}/zones      where events may open
                   POST /api/cameras/{c}/chat           a question about its recent windows (detector: hawkeye)
                   POST /api/cameras/{c}/normal/reset   forget what it learnt of its own normal
    events.py      GET  /api/events                     events from the outbox, newest first, by camera, category, time; paged
                   GET  /api/events/{id}                one event's latest message and its review
                   GET  /api/events/{id}/keyframe.jpg, /clip.mp4   its evidence
                   GET  /api/events/{id}/geometry.geojson   where a drone's event is on the ground
                   PUT  /api/events/{id}/review         confirmed | false_alarm (stored beside the outbox)
                   GET  /api/labels                     the reviews as training labels (training/data.py's format)
    operations.py  GET  /healthz, /metrics              liveness; Prometheus
    console/       GET  /                               the console: cameras, timelines, events, chat
                   GET  /docs                           the OpenAPI description (and /openapi.json)

In the pipeline's process because that is where the state is: the health it publishes, its
counters and its outbox; a second process would have to rebuild all of it from the topics.
Who may ask is auth.py's; what no request may do (a foreign Host or Origin, an oversized body)
guard.py's. HTTPS when a certificate is configured. A new resource is a module with
a `router` and its line in ROUTERS.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.openapi.docs import get_swagger_ui_html

from stream.alerts.reviews import ReviewStore
from stream.config import ConfigError, HttpConfig
from stream.http import cameras, console, events, operations
from stream.http.auth import SignInLimiter, authorised, token_of
from stream.http.guard import Guard, deadline_protocol
from stream.http.readmodel import ReadModel
from stream.scene.zones import ZoneStore

if TYPE_CHECKING:
    from stream.pipeline import Pipeline

log = logging.getLogger(__name__)

ROUTERS = (cameras.router, events.router, operations.router)


def create_app(read: ReadModel, token: str | None, cfg: HttpConfig | None = None) -> FastAPI:
    cfg = cfg or HttpConfig()
    app = FastAPI(title="Hawkwatch", description="Cameras, events, chat and metrics of a running Hawkwatch pipeline, "
                  "and its web console (/).", dependencies=[Depends(authorised)], docs_url=None, openapi_url=None)
    app.state.read, app.state.token, app.state.session_hours = read, token, cfg.session_hours
    app.state.sign_in = SignInLimiter()
    app.state.metrics = operations.metrics_registry(read)
    for router in ROUTERS:
        app.include_router(router)
    console.install(app)

    @app.get("/openapi.json", include_in_schema=False)     # behind the token, as every route is
    def openapi() -> dict:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Hawkwatch API")
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_middleware(Guard, cfg=cfg)
    return app


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming what is wrong and where, without echoing the input (which may not even be JSON:
    NaN, a huge number)."""
    return JSONResponse({"detail": [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                                    for e in exc.errors()]}, status_code=422)


class HttpServer:
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
        outbox = pipeline.publisher.outbox.path
        zone_store = ZoneStore(cfg.zones_file or outbox.with_name("zones.yaml"))
        pipeline.cameras.drawn_zones.update(zone_store.load())      # before the cameras start
        self.read = ReadModel(pipeline, self.reviews, zone_store)
        config = uvicorn.Config(create_app(self.read, token, cfg), log_level="warning", access_log=False,
                                http=deadline_protocol(cfg.header_timeout_s), limit_concurrency=cfg.max_connections,
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

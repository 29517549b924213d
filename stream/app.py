"""The composition root: the one place where a config becomes running parts. It picks the runtime
(local threads or Ray actors), loads the scene and detector models, binds the publisher's
sockets, and adds the chat endpoint and the HTTP server where configured; each part's close goes
on one `ExitStack`, so a part that fails to start closes those built before it, and the pipeline
closes them all, last built first, when its run ends.

    pipeline = build_pipeline(with_overrides(load_config(path), replay="fast"), stop=stop)
    code = pipeline.run()
"""
from __future__ import annotations

import threading
from contextlib import ExitStack

from stream.alerts.chat import ChatService
from stream.alerts.evidence import EvidenceWriter
from stream.alerts.publisher import Publisher
from stream.alerts.recordings import Recordings
from stream.config import ConfigError, HawkwatchConfig
from stream.detection.registry import build_detector, check_name as check_detector_name
from stream.ingest.source import open_source
from stream.local_runtime import LocalRuntime
from stream.pipeline import Pipeline
from stream.preflight import problems
from stream.scene.graph import scene_from_config


def build_pipeline(cfg: HawkwatchConfig, *, stop: threading.Event | None = None) -> Pipeline:
    """The config's pipeline, built and ready to run (models loaded, sockets bound); ConfigError
    names what the config asks for that cannot be had."""
    check_detector_name(cfg)                       # before a cluster is joined or a model loaded
    found = problems(cfg)                          # ports taken, folders not writable
    if found:
        raise ConfigError("; ".join(found))
    with ExitStack() as parts:
        if cfg.runtime.engine == "ray":
            from stream.ray_runtime import RayRuntime
            runtime = RayRuntime(cfg)                 # joins the cluster, starts the model pool
            parts.callback(runtime.close)
            scene, detector, evidence = None, runtime.scorer, runtime.evidence
        else:
            runtime = LocalRuntime(open_source)
            parts.callback(runtime.close)
            scene = [scene_from_config(cfg) for _ in range(cfg.runtime.scene_workers)]
            detector = build_detector(cfg)
            evidence = EvidenceWriter(cfg.alerts.evidence) if cfg.alerts.evidence.enabled else None
        if evidence is not None:
            parts.callback(evidence.close)
        publisher = Publisher.from_config(cfg.alerts)
        parts.callback(publisher.close)
        chat = ChatService(detector) if cfg.alerts.chat_endpoint is not None or cfg.http is not None else None
        if cfg.alerts.chat_endpoint is not None:
            try:
                chat.serve(cfg.alerts.chat_endpoint, publisher.configure)
            except OSError as e:
                raise ConfigError(f"alerts.chat_endpoint: {e}") from None
        if chat is not None:
            parts.callback(chat.close)
        pipeline = Pipeline(cfg, None, scene, detector, publisher, stop or threading.Event(), evidence, chat,
                            runtime=runtime, parts=ExitStack())
        recorded = [c for c in cfg.cameras if cfg.records(c)]
        if recorded:
            pipeline.recordings = Recordings(cfg.recordings, recorded, cfg.alerts.outbox.path)
            parts.callback(pipeline.recordings.close)
            pipeline.services.append(pipeline.recordings)
        if cfg.http is not None:
            from stream.http import HttpServer
            server = HttpServer(pipeline, cfg.http)
            parts.callback(server.close)
            pipeline.services.append(server)
        pipeline.parts = parts.pop_all()          # from here on the pipeline's run closes them
        return pipeline

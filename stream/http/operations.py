"""/healthz (liveness, no token) and /metrics (Prometheus): per camera counters, whether it is up
and its state (a state set, so `hawkwatch_camera_up` keeps one series whatever the state),
per-stage latency histograms, alerts by category and state, queue depths, the outbox, catch-up
requests and the process itself, read at each scrape."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, StateSetMetricFamily

from stream.http.readmodel import ReadModel
from stream.ingest.lifecycle import STATES
from stream.metrics import COUNTERS, LATENCY_BUCKETS_S

router = APIRouter(tags=["operations"])
CAMERA_STATES = ("starting", *STATES)        # "starting": paced cameras waiting for their phase (stream/cameras.py)


class PipelineCollector:
    """Reads the running pipeline at each scrape (a prometheus_client custom collector)."""

    def __init__(self, read: ReadModel):
        self.read = read

    def collect(self):
        totals = self.read.totals()
        for name, doc in COUNTERS.items():
            if name == "alerts":          # by category and state, below
                continue
            family = CounterMetricFamily(f"hawkwatch_{name}", doc, labels=["camera"])
            for cam, t in totals.items():
                family.add_metric([cam], t["counts"].get(name, 0))
            yield family
        up = GaugeMetricFamily("hawkwatch_camera_up", "1 while the camera streams, 0 otherwise.", labels=["camera"])
        state = StateSetMetricFamily("hawkwatch_camera_state", "The camera's state: one series per state, 1 for the "
                                                               "current one.", labels=["camera"])
        for cam, t in totals.items():
            up.add_metric([cam], 1.0 if t["state"] == "streaming" else 0.0)
            state.add_metric([cam], {s: s == t["state"] for s in CAMERA_STATES})
        yield up
        yield state
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
        for name, n in self.read.queue_depths().items():
            depth.add_metric([name], n)
        yield depth
        box = self.read.outbox_status()
        yield GaugeMetricFamily("hawkwatch_outbox_degraded", "1 while the outbox cannot write (alerts held in memory).",
                                value=1.0 if box["state"] != "ok" else 0.0)
        yield GaugeMetricFamily("hawkwatch_outbox_held", "Published alerts waiting to be stored.", value=box["held"])
        yield CounterMetricFamily("hawkwatch_outbox_lost", "Published alerts dropped unstored.", value=box["lost"])
        footage = {cam: s for cam, s in self.read.recording_status().items() if s}
        if footage:
            recorded = GaugeMetricFamily("hawkwatch_recordings_bytes", "Recorded footage on disk (as of the last "
                                                                       "sweep).", labels=["camera"])
            for cam, s in footage.items():
                recorded.add_metric([cam], s["bytes"])
            yield recorded
            yield GaugeMetricFamily("hawkwatch_recordings_disk_full", "1 while the recordings' disk has less free "
                                    "than recordings.min_free_gb.",
                                    value=1.0 if any(s["disk_full"] for s in footage.values()) else 0.0)
        catchup = self.read.catchup_status()
        if catchup is not None:
            yield CounterMetricFamily("hawkwatch_catchup_requests", "Subscribers' requests for missed alerts answered.",
                                      value=catchup["answered"])


def metrics_registry(read: ReadModel) -> CollectorRegistry:
    """The pipeline's metrics, and the process's own (CPU seconds, resident memory, open files,
    their limit, threads: `process_*`; the Python version: `python_info`)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(read))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


@router.get("/healthz", summary="Liveness: 200 while the pipeline runs (no token needed; says nothing else)")
def healthz() -> dict:
    return {"ok": True}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)

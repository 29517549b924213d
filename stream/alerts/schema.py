"""The messages subscribers receive, as versioned JSON schemas.

Every message is a ZeroMQ multipart `[topic, json]`; topics are prefixes (`alert/<camera>`,
`health/<camera>`, `verdict/<camera>`), so `alert/` subscribes to every camera's alerts.

The models below are the definition; `python -m stream.alerts.schema` writes them as JSON Schema
files to `stream/alerts/schemas/` (committed, and checked against these models by the tests), for
subscribers in any language.

Alerts are the durable part: each is written to the outbox before it is sent, and numbered per
camera (`seq` 1, 2, 3... within one outbox, `outbox` names it); a subscriber that sees a gap
fetches the missing ones by number from the query endpoint (stream/alerts/query.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 2
SCHEMA_DIR = Path(__file__).parent / "schemas"


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["keyframe", "clip"] = Field(description="keyframe: a JPEG with the scene overlay; clip: an MP4 around the span.")
    path: str = Field(description="Where the pipeline saved it (on the pipeline's machine).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the file's bytes.")
    bytes: int = Field(ge=0)


class GeoFeature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["Feature"]
    geometry: dict | None = Field(description="A GeoJSON Point or Polygon; null where the line of sight misses the ground.")
    properties: dict = Field(description="`role` (event, footprint, person, object), errors in metres, and the method.")


class GeoFeatures(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["FeatureCollection"]
    features: list[GeoFeature]


class AlertMessage(BaseModel):
    """One state change of an event: `open` when it starts, `update` when its span, score or
    explanation changes, `close` when it ends. All messages of an event share `alert_id`;
    `revision` counts them (0 for the open)."""
    model_config = ConfigDict(extra="forbid", title="Hawkwatch alert")
    schema_: Literal[2] = Field(alias="schema", description="Message schema version.")
    type: Literal["alert"]
    outbox: str = Field(min_length=1, description="The outbox that numbered it; `seq` counts within it.")
    camera: str = Field(min_length=1)
    seq: int = Field(ge=1, description="Per camera: 1, 2, 3... without gaps, across pipeline restarts.")
    alert_id: str = Field(min_length=1, description="The event's stable id.")
    revision: int = Field(ge=0, description="This message's number within the event: 0 is the open.")
    state: Literal["open", "update", "close"]
    category: str
    score: float = Field(ge=0.0, le=1.0, description="The event's peak score so far.")
    start: float = Field(description="Grounded span, stream seconds.")
    end: float
    wall_start: float = Field(description="The same span, wall clock (Unix seconds).")
    wall_end: float
    explanation: str
    window_id: int = Field(description="The window that caused this change (-1: none, e.g. a close at shutdown).")
    reason: str = Field("", description="Why an event closed other than by its scores (e.g. `pipeline restarted`).")
    evidence: list[Evidence] = Field(default_factory=list, description="Saved files (keyframe, clip): on the `update` that follows the open once they are written, and on every later message of the event.")
    latency_ms: dict[str, float] = Field(default_factory=dict, description="Stage latencies of the deciding window.")
    geometry: GeoFeatures | None = Field(None, description=(
        "A drone's camera only (MISB ST 0601 metadata in its feed): where the event is on the ground, as a GeoJSON "
        "FeatureCollection (longitude, latitude, metres): the event's Point (`role: event`, `ce` its circular error "
        "and `le` its height error, metres, 1 sigma), the frame's footprint Polygon (`role: footprint`) and a Point "
        "per person and left object located (`role: person` / `object`, `sigma_m`)."))
    sent_at: float = Field(description="When it was written to the outbox (Unix seconds).")


class LatencySummary(BaseModel):
    p50: float
    p95: float
    n: int


class OutboxState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["ok", "degraded"] = Field(description="degraded: the outbox cannot write (e.g. the disk is full); "
                                                         "alerts are still published and held in memory.")
    reason: str | None = Field(description="Why it is degraded (the storage error).")
    held: int = Field(ge=0, description="Published alerts waiting to be stored.")
    lost: int = Field(ge=0, description="Published alerts dropped unstored, beyond what memory may hold.")


class EndpointState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    serving: bool = Field(description="Whether its thread is serving requests.")
    answered: int = Field(ge=0)
    refused: int = Field(ge=0, description="Requests answered with an error.")
    restarts: int = Field(ge=0, description="Times its serving thread had died and was restarted.")


class RuntimeState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine: Literal["local", "ray"] = Field(description="What runs the stages (config `runtime.engine`).")
    node: str | None = Field(None, description="ray: the id of the node the camera's worker runs on.")
    restarts: int = Field(0, ge=0, description="ray: times the camera's worker was restarted (it died, or its node).")
    model_restarts: int = Field(0, ge=0, description="ray: model workers lost with a batch on them (it was retried).")
    duplicates: int = Field(0, ge=0, description="Windows scored twice after a restart; each was published once.")


class NormalState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["off", "learning", "ready"] = Field(description="What the camera's own normal does (config "
                                                                   "`normal`): nothing, learning (the model alone "
                                                                   "decides), or holding back familiar seconds.")
    seen_s: float = Field(ge=0.0, description="Seconds of footage learnt from.")
    warmup_s: float = Field(ge=0.0, description="Seconds with people to learn before it is used.")
    entries: int = Field(ge=0, description="Embeddings kept.")
    capacity: int = Field(ge=0, description="Most embeddings kept.")
    reviewed: int = Field(ge=0, description="False alarms learnt from operators' reviews.")
    suppressed: int = Field(ge=0, description="Seconds over the open threshold held back as familiar (this run).")
    detail: str | None = Field(None, description="A stalled warm-up, or a store set aside, and why.")


class HealthMessage(BaseModel):
    """A camera's state and counters, every `alerts.health_interval_s` and on every state change.
    `alert_seq` is the camera's last alert number: a subscriber whose position is behind it has
    missed the newest alerts even if no later alert comes to show the gap."""
    model_config = ConfigDict(extra="allow", title="Hawkwatch health")
    schema_: Literal[2] = Field(alias="schema")
    type: Literal["health"]
    camera: str
    seq: int = Field(ge=1, description="Per topic since the pipeline started (health is not durable).")
    sent_at: float
    state: Literal["starting", "connecting", "streaming", "stalled", "reconnecting", "stopped", "failed"]
    detail: str | None
    source: str
    stream_time: float
    fps_in: float
    fps_out: float
    windows_emitted: int
    windows_done: int
    windows_dropped: int
    alerts: int
    alert_seq: int = Field(ge=0, description="The camera's last alert `seq` in `outbox` (0: none yet).")
    outbox: str
    outbox_state: OutboxState = Field(description="Whether alerts are being stored.")
    endpoints: dict[str, EndpointState] = Field(default_factory=dict,
                                                description="The request endpoints (alerts query, chat).")
    runtime: RuntimeState | None = Field(None, description="Where the camera runs and what it survived.")
    normal: NormalState | None = Field(None, description="The camera's own normal (stream/detection/normal.py).")
    latency_ms: dict[str, LatencySummary]


MESSAGES = {"alert": AlertMessage, "health": HealthMessage}


def json_schema(kind: str) -> dict:
    s = MESSAGES[kind].model_json_schema(by_alias=True)
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["$id"] = f"https://hawkwatch.dev/schemas/{kind}.v{SCHEMA_VERSION}.json"
    return s


def schema_path(kind: str) -> Path:
    return SCHEMA_DIR / f"{kind}.v{SCHEMA_VERSION}.json"


def main(argv: list[str] | None = None) -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for kind in MESSAGES:
        schema_path(kind).write_text(json.dumps(json_schema(kind), indent=2) + "\n")
        print(schema_path(kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())

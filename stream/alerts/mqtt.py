"""The MQTT bridge: alerts and health to an MQTT broker too (where Frigate and Home Assistant
users already are), as `<prefix>/alert/<camera>` with the same JSON as on ZeroMQ.

paho-mqtt keeps the connection in its own thread, reconnects by itself and queues QoS 1/2
messages while the broker is away (up to `max_queued`), so `send` never blocks the pipeline. A
broker that stays away loses nothing either: the outbox keeps every alert.

Availability: `<prefix>/status` is 'online' (retained) while the bridge is connected; the broker
sets it to 'offline' when the connection drops (the last will), and so does a clean stop.

Each camera's latest alert and health are retained, so a subscriber that starts (Home Assistant
after a restart) knows at once whether an event is open and what state the camera is in. An
event's keyframe goes out as a JPEG on `<prefix>/snapshot/<camera>` (retained: the camera's last
event), as Frigate publishes its snapshots.

Home Assistant discovery: the first message of each camera announces it (retained, under
`discovery_prefix`): a binary sensor `anomaly` that is on while an event is open, with the
event's category, score and explanation as attributes, a sensor `state` with the camera's
stream state, and a camera `last event` showing the snapshot, grouped as one device per camera
and unavailable with the bridge.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)


class MqttSink:
    name = "mqtt"

    def __init__(self, cfg, *, max_queued: int = 10_000):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise RuntimeError("alerts.mqtt needs paho-mqtt: pip install 'hawkwatch[mqtt]'") from None
        self.cfg, self.topics = cfg, set(cfg.topics)
        self.status_topic = f"{cfg.topic_prefix}/status"
        self._announced: set[str] = set()
        self._snapshots: set[str] = set()            # alerts whose keyframe went out
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id)
        if cfg.username:
            password = os.environ.get(cfg.password_env) if cfg.password_env else None
            if cfg.password_env and password is None:
                raise RuntimeError(f"alerts.mqtt.password_env: ${cfg.password_env} is not set")
            self._client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            t = cfg.tls
            try:
                self._client.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None,
                                     certfile=str(t.certfile) if t.certfile else None,
                                     keyfile=str(t.keyfile) if t.keyfile else None)
            except (OSError, ValueError) as e:        # ssl.SSLError is an OSError: a file that is no certificate
                raise RuntimeError(f"alerts.mqtt.tls: {e}") from None
        if cfg.availability:
            self._client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self._ok, self._no_conn = mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN
        self._client.max_queued_messages_set(max_queued)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = self._connected
        self._client.connect_async(cfg.host, cfg.port, keepalive=30)
        self._client.loop_start()

    def _connected(self, client, userdata, flags, rc, properties=None) -> None:
        if rc.is_failure:
            log.warning("MQTT bridge: %s:%d refused the connection (%s)", self.cfg.host, self.cfg.port, rc)
            return
        log.info("MQTT bridge connected to %s:%d%s", self.cfg.host, self.cfg.port, " (TLS)" if self.cfg.tls else "")
        if self.cfg.availability:
            client.publish(self.status_topic, "online", qos=1, retain=True)

    def send(self, topic: str, body: bytes) -> None:
        kind, _, camera = topic.partition("/")
        if camera and camera not in self._announced and self.cfg.discovery_prefix:
            self._announce(camera)
        if kind not in self.topics:
            return
        self._publish(f"{self.cfg.topic_prefix}/{topic}", body, qos=self.cfg.qos, retain=kind in ("alert", "health"))
        if kind == "alert":
            self._snapshot(camera, body)

    def _snapshot(self, camera: str, body: bytes) -> None:
        """The alert's keyframe as a JPEG, once per event, when the file is there."""
        try:
            msg = json.loads(body)
        except ValueError:
            return
        key = next((e["path"] for e in msg.get("evidence", []) if e.get("kind") == "keyframe"), None)
        if key is None or msg.get("alert_id") in self._snapshots:
            return
        try:
            jpeg = Path(key).read_bytes()
        except OSError:
            return                              # not written yet: a later message of the event carries it
        self._snapshots.add(msg.get("alert_id"))
        if len(self._snapshots) > 10_000:
            self._snapshots.clear()
        self._publish(f"{self.cfg.topic_prefix}/snapshot/{camera}", jpeg, qos=self.cfg.qos, retain=True)

    def _publish(self, topic: str, body: bytes | str, qos: int, retain: bool = False) -> None:
        info = self._client.publish(topic, body, qos=qos, retain=retain)
        if info.rc not in (self._ok, self._no_conn):      # not connected yet: queued, sent on connect
            raise RuntimeError(f"MQTT publish failed (rc {info.rc})")

    def _announce(self, camera: str) -> None:
        """Home Assistant's discovery messages for one camera (retained: HA reads them when it starts)."""
        self._announced.add(camera)
        for topic, body in discovery(self.cfg, camera):
            self._publish(topic, json.dumps(body), qos=1, retain=True)

    def close(self) -> None:
        if self.cfg.availability and self._client.is_connected():
            info = self._client.publish(self.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):   # the connection went in between: the last will says it
                pass
        self._client.loop_stop()
        self._client.disconnect()


def discovery(cfg, camera: str) -> list[tuple[str, dict]]:
    """The discovery config messages of `camera`: (topic, body) for its anomaly and state sensors."""
    node = re.sub(r"[^A-Za-z0-9_-]", "_", f"{cfg.client_id}_{camera}")
    device = {"identifiers": [node], "name": f"Hawkwatch {camera}", "manufacturer": "Hawkwatch",
              "model": "camera"}
    common = {"device": device}
    if cfg.availability:
        common["availability_topic"] = f"{cfg.topic_prefix}/status"
    alert_topic, health_topic = f"{cfg.topic_prefix}/alert/{camera}", f"{cfg.topic_prefix}/health/{camera}"
    out = []
    if "alert" in cfg.topics:
        out.append((f"{cfg.discovery_prefix}/binary_sensor/{node}/anomaly/config", {
            **common, "name": "Anomaly", "unique_id": f"{node}_anomaly", "device_class": "problem",
            "state_topic": alert_topic, "json_attributes_topic": alert_topic,
            "value_template": "{{ 'OFF' if value_json.state == 'close' else 'ON' }}",
            "json_attributes_template": "{{ {'category': value_json.category, 'score': value_json.score, "
                                        "'explanation': value_json.explanation, 'alert_id': value_json.alert_id}"
                                        " | tojson }}"}))
    if "health" in cfg.topics:
        out.append((f"{cfg.discovery_prefix}/sensor/{node}/state/config", {
            **common, "name": "State", "unique_id": f"{node}_state", "state_topic": health_topic,
            "value_template": "{{ value_json.state }}", "icon": "mdi:cctv"}))
    if "alert" in cfg.topics:
        out.append((f"{cfg.discovery_prefix}/camera/{node}/last_event/config", {
            **common, "name": "Last event", "unique_id": f"{node}_last_event",
            "topic": f"{cfg.topic_prefix}/snapshot/{camera}"}))
    return out

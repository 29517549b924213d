"""The MQTT bridge: alerts and health to an MQTT broker too (where Frigate and Home Assistant
users already are), as `<prefix>/alert/<camera>` with the same JSON as on ZeroMQ.

paho-mqtt keeps the connection in its own thread, reconnects by itself and queues QoS 1/2
messages while the broker is away (up to `max_queued`), so `send` never blocks the pipeline. A
broker that stays away loses nothing either: the outbox keeps every alert.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class MqttSink:
    name = "mqtt"

    def __init__(self, cfg, *, max_queued: int = 10_000):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise RuntimeError("alerts.mqtt needs paho-mqtt: pip install 'hawkwatch[mqtt]'") from None
        self.cfg, self.topics = cfg, set(cfg.topics)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id)
        if cfg.username:
            password = os.environ.get(cfg.password_env) if cfg.password_env else None
            if cfg.password_env and password is None:
                raise RuntimeError(f"alerts.mqtt.password_env: ${cfg.password_env} is not set")
            self._client.username_pw_set(cfg.username, password)
        self._ok, self._no_conn = mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN
        self._client.max_queued_messages_set(max_queued)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = lambda c, u, f, rc, p=None: log.info("MQTT bridge connected to %s:%d (%s)",
                                                                       cfg.host, cfg.port, rc)
        self._client.connect_async(cfg.host, cfg.port, keepalive=30)
        self._client.loop_start()

    def send(self, topic: str, body: bytes) -> None:
        if topic.split("/", 1)[0] not in self.topics:
            return
        info = self._client.publish(f"{self.cfg.topic_prefix}/{topic}", body, qos=self.cfg.qos)
        if info.rc not in (self._ok, self._no_conn):      # not connected yet: queued, sent on connect
            raise RuntimeError(f"MQTT publish failed (rc {info.rc})")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

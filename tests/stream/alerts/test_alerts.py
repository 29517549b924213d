"""Alerts that are never lost: outbox, schema, the query endpoint, exactly-once subscribers,
CURVE and sinks, with real SQLite files, real ZeroMQ sockets and real processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import zmq

from stream.alerts import schema
from stream.alerts.outbox import Outbox
from stream.alerts.publisher import Publisher
from stream.alerts.query import QueryClient
from stream.alerts.security import client_configure
from stream.alerts.subscriber import AlertSubscriber
from stream.config import AlertsConfig
from tests.harness import ROOT, next_port

EMITTER = Path(__file__).with_name("emitter.py")


def alert(aid: str = "a1", state: str = "open", **kw) -> dict:
    return {"alert_id": aid, "state": state, "category": "fall", "score": 0.8, "start": 1.0, "end": 3.0,
            "wall_start": 1e9, "wall_end": 1e9 + 2, "explanation": "", "window_id": 1, "reason": "",
            "evidence": [], "latency_ms": {"model": 12.5}, **kw}


def dump(path: Path) -> list:
    """What the outbox holds: alerts, numbers, identity (not the file's bytes, which change when the
    WAL is checkpointed, nor when an alert was marked sent)."""
    import sqlite3
    con = sqlite3.connect(path)
    rows = [con.execute(q).fetchall() for q in (
        "SELECT camera, seq, alert_id, revision, state, written_at, body FROM alerts ORDER BY camera, seq",
        "SELECT * FROM cameras ORDER BY camera", "SELECT * FROM meta ORDER BY key")]
    con.close()
    return rows


def stored(path: Path) -> list[dict]:
    import sqlite3
    con = sqlite3.connect(path)
    rows = [json.loads(b) for (b,) in con.execute("SELECT body FROM alerts ORDER BY camera, seq")]
    con.close()
    return rows


def test_outbox_numbers_per_camera_continue_across_reopening_and_retention_never_reuses_them(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    got = box.append([{"camera": "lobby", **alert("a")}, {"camera": "gate", **alert("b")},
                      {"camera": "lobby", **alert("a", "update")}])
    assert [(s.camera, s.seq) for s in got] == [("lobby", 1), ("gate", 1), ("lobby", 2)]
    assert [json.loads(s.body)["revision"] for s in got] == [0, 0, 1]
    first_id = box.id
    box.close()
    box = Outbox(tmp_path / "o.sqlite", max_age_s=3600)
    assert box.id == first_id and box.last_seq("lobby") == 2
    (s,) = box.append([{"camera": "lobby", **alert("a", "close")}])
    assert s.seq == 3 and json.loads(s.body)["revision"] == 2              # the event's count continues too
    box._con.execute("UPDATE alerts SET written_at = written_at - 7200")    # everything is two hours old
    assert box.prune() == 4
    (s,) = box.append([{"camera": "lobby", **alert("c")}])
    assert s.seq == 4                                                      # numbers are never reused
    box.close()


def test_outbox_size_retention_drops_the_oldest(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_mb=0.3)
    for k in range(40):
        box.append([{"camera": "lobby", **alert(f"a{k}", explanation="x" * 20_000)}])
    box.prune()
    kept = [a["seq"] for a in stored(tmp_path / "o.sqlite")]
    assert kept and kept[-1] == 40 and kept == list(range(kept[0], 41)) and len(kept) < 40
    box.close()


def test_messages_validate_against_the_committed_schema_files(tmp_path, free_endpoint):
    for kind in schema.MESSAGES:       # the files in the repository are what the models say
        assert json.loads(schema.schema_path(kind).read_text()) == schema.json_schema(kind), \
            "run `python -m stream.alerts.schema` and commit the files"
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite")
    msgs = pub.publish_alerts([{"camera": "lobby", **alert(evidence=[
        {"kind": "keyframe", "path": "/x.jpg", "sha256": "0" * 64, "bytes": 10}])}])
    health = pub.publish("health", "lobby", {"state": "streaming", "detail": None, "source": "file",
                                             "stream_time": 1.0, "fps_in": 10.0, "fps_out": 2.0, "windows_emitted": 1,
                                             "windows_done": 1, "windows_dropped": 0, "alerts": 1,
                                             "latency_ms": {"scene": {"p50": 1.0, "p95": 2.0, "n": 3}}})
    pub.close()
    check = {k: jsonschema.Draft202012Validator(json.loads(schema.schema_path(k).read_text())) for k in schema.MESSAGES}
    check["alert"].validate(msgs[0])
    check["health"].validate(health)
    assert health["alert_seq"] == 1 and health["outbox"] == msgs[0]["outbox"]
    for bad in ({**msgs[0], "seq": 0}, {**msgs[0], "state": "opened"}, {**msgs[0], "surprise": 1},
                {k: v for k, v in msgs[0].items() if k != "alert_id"}, {**msgs[0], "score": 1.5}):
        with pytest.raises(jsonschema.ValidationError):
            check["alert"].validate(bad)


def test_the_query_endpoint_answers_and_refuses_hostile_requests_without_changing_anything(tmp_path, free_endpoint):
    query = next_port(free_endpoint)
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite", query_endpoint=query)
    pub.publish_alerts([{"camera": "lobby", **alert(f"a{k}")} for k in range(7)])
    before = dump(tmp_path / "o.sqlite")
    client = QueryClient(query)
    got = client.request({"op": "since", "camera": "lobby", "after": 2, "limit": 3})
    assert got["ok"] and [a["seq"] for a in got["alerts"]] == [3, 4, 5] and got["more"] and got["last_seq"] == 7
    assert client.request({"op": "cameras"})["cameras"] == {"lobby": 7}
    assert client.request({"op": "since", "camera": "nowhere", "after": 0})["alerts"] == []
    hostile = [{"op": "since", "camera": "lobby", "after": -1}, {"op": "since", "camera": "lobby", "after": "1"},
               {"op": "since", "camera": "lobby", "after": True}, {"op": "since", "camera": "lobby"},
               {"op": "since", "camera": "lobby", "after": 0, "limit": 10**6},
               {"op": "since", "camera": ["lobby"], "after": 0}, {"op": "since", "camera": "x" * 500, "after": 0},
               {"op": "since", "camera": "lobby", "after": 0, "sql": "DROP TABLE alerts"},
               {"op": "delete", "camera": "lobby"}, {"op": "since", "camera": "lobby'; DROP TABLE alerts; --", "after": 0},
               [1, 2], "since", {"op": "since", "camera": "lobby", "after": 0, "pad": "x" * 10_000}]
    for req in hostile:
        reply = client.request(req)
        assert reply["ok"] is (req == hostile[9]) and (reply["ok"] or reply["error"]), (req, reply)
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.connect(query)
    for frames in ([b"\xff\xfe not json"], [b"{}", b"{}"], [b"x" * 100_000]):
        raw.send_multipart(frames)
        assert raw.poll(5000), frames
        reply = json.loads(raw.recv())
        assert reply["ok"] is False and reply["error"]
    raw.close(0)
    assert client.request({"op": "cameras"})["ok"]                   # still serving
    client.close()
    pub.close()
    assert dump(tmp_path / "o.sqlite") == before


def test_resume_sends_what_was_never_sent_and_closes_events_left_open(tmp_path, free_endpoint):
    box = Outbox(tmp_path / "o.sqlite")
    box.append([{"camera": "lobby", **alert("left-open")}])           # stored; the process died before sending
    box.close()
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite", query_endpoint=next_port(free_endpoint))
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.connect(free_endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"alert/")
    assert pub.wait_for_subscriber(5)
    pub.resume()
    got = []
    while sub.poll(2000):
        got.append(json.loads(sub.recv_multipart()[1]))
    assert [(m["seq"], m["state"], m["reason"]) for m in got] == [(1, "open", ""), (2, "close", "pipeline restarted")]
    sub.close(0)
    pub.close()
    assert Outbox(tmp_path / "o.sqlite").unpublished() == []


def _emitter(endpoint: str, query: str, outbox: Path, count: int, rate: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, str(EMITTER), endpoint, query, str(outbox), str(count), str(rate)],
                         cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout.readline().strip() == "ready"
    return p


def _subscriber(endpoint: str, query: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stream.subscribe", "--endpoint", endpoint, "--query", query,
                             "--out", str(out), "--json", "--topic", "alert/"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _wait(cond, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _exactly_once_in_order(got: list[dict], outbox: Path) -> None:
    want = stored(outbox)
    key = lambda m: (m["camera"], m["seq"])  # noqa: E731
    assert len(got) == len({key(m) for m in got}), "an alert was handed over twice"
    for cam in {m["camera"] for m in want}:
        assert [m["seq"] for m in got if m["camera"] == cam] == [m["seq"] for m in want if m["camera"] == cam]
    assert sorted(got, key=key) == sorted(want, key=key)             # the same bytes as stored


def test_a_subscriber_killed_and_restarted_mid_stream_gets_every_alert_exactly_once(tmp_path, free_endpoint):
    query, box, out = next_port(free_endpoint), tmp_path / "o.sqlite", tmp_path / "alerts.jsonl"
    pub = _emitter(free_endpoint, query, box, 150, 60)
    try:
        sub = _subscriber(free_endpoint, query, out)
        _wait(lambda: len(_lines(out)) >= 30)
        sub.send_signal(signal.SIGKILL)          # mid-stream, maybe mid-write
        sub.wait()
        time.sleep(0.5)                          # alerts go by while it is down
        sub = _subscriber(free_endpoint, query, out)
        _wait(lambda: pub.stdout.readline().strip() == "done", 60)
        _wait(lambda: len(_lines(out)) >= 150)
        time.sleep(0.5)
        sub.send_signal(signal.SIGINT)
        sub.wait(timeout=10)
    finally:
        pub.kill()
        pub.wait()
    _exactly_once_in_order(_lines(out), box)


def test_a_publisher_killed_and_restarted_continues_its_numbers_and_nothing_is_lost(tmp_path, free_endpoint):
    query, box, out = next_port(free_endpoint), tmp_path / "o.sqlite", tmp_path / "alerts.jsonl"
    pub = _emitter(free_endpoint, query, box, 1000, 100)
    sub = _subscriber(free_endpoint, query, out)
    try:
        _wait(lambda: len(_lines(out)) >= 20)
        pub.send_signal(signal.SIGKILL)          # mid-stream: an event is open
        pub.wait()
        before = stored(box)
        pub = _emitter(free_endpoint, query, box, 40, 100)
        _wait(lambda: pub.stdout.readline().strip() == "done", 60)
        _wait(lambda: len(_lines(out)) >= len(stored(box)))
        time.sleep(0.5)
    finally:
        pub.kill()
        pub.wait()
        sub.send_signal(signal.SIGINT)
        sub.wait(timeout=10)
    after = stored(box)
    for cam in ("lobby", "gate"):
        seqs = [m["seq"] for m in after if m["camera"] == cam]
        assert seqs == list(range(1, len(seqs) + 1))                   # continued, no gap, no repeat
        mine = [m for m in before if m["camera"] == cam]
        restarted = [m for m in after if m["camera"] == cam][len(mine):]
        if mine[-1]["state"] != "close":                                # the kill left its event open
            assert (restarted[0]["alert_id"], restarted[0]["state"], restarted[0]["reason"]) == \
                (mine[-1]["alert_id"], "close", "pipeline restarted")
    _exactly_once_in_order(_lines(out), box)


def test_a_client_without_the_right_curve_key_receives_nothing(tmp_path, free_endpoint):
    from stream.alerts.security import CurveServer, main as keygen
    for name, folder in (("server", "keys"), ("operator", "keys/clients"), ("intruder", "other")):
        assert keygen([name, "--dir", str(tmp_path / folder)]) == 0
    assert keygen(["server", "--dir", str(tmp_path / "keys")]) == 1           # never overwrites a key
    ctx = zmq.Context()
    curve = CurveServer(tmp_path / "keys/server.key_secret", tmp_path / "keys/clients", ctx)
    query = next_port(free_endpoint)
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite", query_endpoint=query, context=ctx, curve=curve)
    good = client_configure(tmp_path / "keys/server.key", tmp_path / "keys/clients/operator.key_secret")
    bad = client_configure(tmp_path / "keys/server.key", tmp_path / "other/intruder.key_secret")
    socks = {}
    for name, conf in (("operator", good), ("intruder", bad), ("plain", None)):
        s = ctx.socket(zmq.SUB)
        if conf:
            conf(s)
        s.connect(free_endpoint)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        socks[name] = s
    time.sleep(1.0)
    pub.publish_alerts([{"camera": "lobby", **alert()}])
    assert socks["operator"].poll(3000)
    assert json.loads(socks["operator"].recv_multipart()[1])["alert_id"] == "a1"
    assert not socks["intruder"].poll(1000) and not socks["plain"].poll(200)
    assert QueryClient(query, context=ctx, configure=good).request({"op": "cameras"})["cameras"] == {"lobby": 1}
    with pytest.raises(TimeoutError):
        QueryClient(query, context=ctx, configure=bad, timeout_s=1.0).request({"op": "cameras"})
    for s in socks.values():
        s.close(0)
    pub.close()
    ctx.term()


def test_plaintext_is_refused_off_loopback_unless_the_config_says_so():
    assert AlertsConfig(endpoint="tcp://127.0.0.1:5556").curve is None
    with pytest.raises(ValueError, match="reachable from other machines"):
        AlertsConfig(endpoint="tcp://0.0.0.0:5556")
    with pytest.raises(ValueError, match="query_endpoint"):
        AlertsConfig(query_endpoint="tcp://*:5557")
    with pytest.raises(ValueError, match="chat_endpoint"):
        AlertsConfig(chat_endpoint="tcp://10.0.0.5:5558")
    assert AlertsConfig(endpoint="tcp://0.0.0.0:5556", query_endpoint="tcp://0.0.0.0:5557", allow_plaintext=True)
    with pytest.raises(ValueError, match="must differ"):
        AlertsConfig(chat_endpoint="tcp://127.0.0.1:5557")


class Broken:
    name = "broken"

    def send(self, topic, body):
        raise ConnectionError("the bridge's far end is down")

    def close(self):
        pass


class Recording:
    name = "recording"

    def __init__(self):
        self.got = []

    def send(self, topic, body):
        self.got.append(topic)

    def close(self):
        pass


def test_a_failing_sink_does_not_stop_the_others(tmp_path, free_endpoint):
    rec = Recording()
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite", sinks=[Broken(), rec])
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.connect(free_endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    assert pub.wait_for_subscriber(5)
    for k in range(5):
        pub.publish("alert", "lobby", alert(f"a{k}"))
    assert rec.got == ["alert/lobby"] * 5 and pub.sink_errors["broken"] == 5
    assert sum(1 for _ in iter(lambda: sub.poll(1000) and sub.recv_multipart(), 0)) == 5
    sub.close(0)
    pub.close()
    assert not Outbox(tmp_path / "o.sqlite").unpublished()          # marked sent (with the next commit or at close)


def test_the_subscriber_library_fills_a_gap_from_the_query_endpoint(tmp_path, free_endpoint):
    query = next_port(free_endpoint)
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite", query_endpoint=query)
    got = []
    sub = AlertSubscriber(free_endpoint, query)
    sub.catch_up_all(got.append)
    pub.publish_alerts([{"camera": "lobby", **alert(f"a{k}")} for k in range(3)])   # before it listens: missed
    live = stored(tmp_path / "o.sqlite")
    nxt = pub.publish_alerts([{"camera": "lobby", **alert("a3")}])[0]
    sub.handle("alert/lobby", nxt, got.append)                   # seq 4 arrives: 1-3 are fetched first
    sub.handle("alert/lobby", nxt, got.append)                   # a repeat is dropped
    assert [m["seq"] for m in got] == [1, 2, 3, 4] and got[:3] == live and sub.duplicates == 1
    sub.close()
    pub.close()


@pytest.fixture
def mosquitto(free_endpoint):
    port = int(free_endpoint.rsplit(":", 1)[1])
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read()
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_the_mqtt_bridge_delivers_alerts_to_a_real_broker_and_a_missing_one_stops_nothing(tmp_path, mosquitto,
                                                                                         free_endpoint):
    import paho.mqtt.client as mqtt

    from stream.alerts.mqtt import MqttSink
    from stream.config import MqttConfig
    got, ready = [], []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-listener")
    client.on_connect = lambda c, u, f, rc, p: (c.subscribe("site/+/+", qos=1), ready.append(1))   # not site/status
    client.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", mosquitto)
    client.loop_start()
    _wait(lambda: ready, 10)
    time.sleep(0.3)
    bridge = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto, topic_prefix="site", client_id="hw-test"))
    nowhere = MqttSink(MqttConfig(host="127.0.0.1", port=1, client_id="hw-nowhere"))    # no broker there
    nowhere.name = "mqtt-nowhere"
    pub = Publisher(next_port(free_endpoint), outbox=tmp_path / "o.sqlite", sinks=[nowhere, bridge])
    for k in range(3):
        pub.publish("alert", "lobby", alert(f"a{k}"))
    pub.publish("verdict", "lobby", {"window_id": 1})                # not bridged by default
    _wait(lambda: len(got) >= 3, 20)
    time.sleep(0.3)
    assert [(t, m["seq"]) for t, m in got] == [("site/alert/lobby", 1), ("site/alert/lobby", 2), ("site/alert/lobby", 3)]
    assert pub.sent == 4
    pub.close()
    assert not Outbox(tmp_path / "o.sqlite").unpublished()
    client.loop_stop()
    client.disconnect()


def test_retention_gives_the_freed_space_back_to_the_file_system(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    for k in range(40):
        box.append([{"camera": "lobby", **alert(f"a{k}", explanation="x" * 50_000)}])
    box.close()
    full = path.stat().st_size + (path.with_name("o.sqlite-wal").stat().st_size
                                  if path.with_name("o.sqlite-wal").exists() else 0)
    box = Outbox(path, max_mb=0.5)            # retention on opening: keeps about 10 of the 40
    box.close()
    assert path.stat().st_size < full / 2, (path.stat().st_size, full)
    assert 0 < len(stored(path)) < 40


def test_a_slow_commit_never_holds_up_health_or_the_publishing_thread(tmp_path, free_endpoint):
    """The commit (and its fsync) runs on the outbox writer's thread: while it is stuck, the
    publishing thread still sends health, and the alert follows once it is stored."""
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite")
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.connect(free_endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(0.3)
    try:
        with pub.outbox._lock:                 # a commit stuck in fsync
            pub.submit([{"camera": "lobby", **alert("a1")}])
            pub.send_stored()
            pub.publish("health", "lobby", {})
            assert sub.poll(2000)
            topic, _ = sub.recv_multipart()
            assert topic == b"health/lobby" and pub.storing
        sent = pub.send_stored(wait=True)
        assert [s.seq for s in sent] == [1] and sub.poll(2000) and sub.recv_multipart()[0] == b"alert/lobby"
    finally:
        sub.close(0)
        pub.close()


def test_catch_up_reads_agree_while_the_pipeline_writes_and_prunes(tmp_path):
    """Reader.since reads its rows, the last number and the first kept number in one transaction."""
    import threading
    from stream.alerts.outbox import Reader
    box = Outbox(tmp_path / "o.sqlite", max_mb=0.2)
    box.append([{"camera": "lobby", **alert("a0")}])
    reader = Reader(tmp_path / "o.sqlite")
    done = threading.Event()

    def write():
        k = 1
        while not done.is_set():
            box.append([{"camera": "lobby", **alert(f"a{k}", explanation="x" * 2000)}])
            box.prune()
            k += 1
    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(300):
            rows, last, first = reader.since("lobby", 0, 500)
            seqs = [json.loads(r)["seq"] for r in rows]
            assert seqs and seqs[0] == first and seqs[-1] == last, (seqs[:1], seqs[-1:], first, last)
    finally:
        done.set()
        writer.join()
        reader.close()
        box.close()


def _certificates(folder):
    """A CA and a broker certificate for 127.0.0.1 signed by it (openssl), and a second CA nobody used."""
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    for ca in ("ca", "other-ca"):
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}", "-keyout",
            f"{ca}.key", "-out", f"{ca}.pem")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key", "-out", "broker.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "broker.pem")


def test_the_mqtt_bridge_speaks_tls_keeps_its_availability_and_announces_cameras_to_home_assistant(
        tmp_path, free_endpoint):
    import paho.mqtt.client as mqtt

    from stream.alerts.mqtt import MqttSink
    from stream.config import MqttConfig, MqttTlsConfig
    _certificates(tmp_path)
    port = int(free_endpoint.rsplit(":", 1)[1])
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\ncafile {tmp_path}/ca.pem\ncertfile {tmp_path}/broker.pem\n"
        f"keyfile {tmp_path}/broker.key\nallow_anonymous true\nuser root\n")   # as root: read the files here
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert broker.poll() is None, broker.stderr.read()
    got: dict[str, list] = {}

    def listener():
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.tls_set(ca_certs=str(tmp_path / "ca.pem"))
        client.on_connect = lambda c, u, f, rc, p: c.subscribe([("site/#", 1), ("homeassistant/#", 1)])
        client.on_message = lambda c, u, m: got.setdefault(m.topic, []).append(
            (m.payload if m.topic.startswith("site/snapshot/") else m.payload.decode(), m.retain))
        client.connect("127.0.0.1", port)
        client.loop_start()
        return client
    tls = MqttTlsConfig(ca_file=tmp_path / "ca.pem")
    bridge = MqttSink(MqttConfig(host="127.0.0.1", port=port, topic_prefix="site", client_id="hw", tls=tls))
    wrong = MqttSink(MqttConfig(host="127.0.0.1", port=port, topic_prefix="wrong", client_id="hw-wrong",
                                tls=MqttTlsConfig(ca_file=tmp_path / "other-ca.pem")))   # does not trust the broker
    try:
        _wait(lambda: bridge._client.is_connected(), 10)
        bridge.send("health/lobby", json.dumps({"state": "streaming"}).encode())
        keyframe = tmp_path / "a1.jpg"
        keyframe.write_bytes(b"\xff\xd8 a keyframe \xff\xd9")
        bridge.send("alert/lobby", json.dumps(alert("a1", evidence=[{"kind": "keyframe", "path": str(keyframe)}])).encode())
        wrong.send("alert/lobby", json.dumps(alert("a1")).encode())
        time.sleep(0.5)
        first = listener()                       # joins afterwards: the retained messages are what it sees first
        _wait(lambda: "site/status" in got and "homeassistant/binary_sensor/hw_lobby/anomaly/config" in got, 10)
        assert got["site/status"][0] == ("online", True)
        anomaly = json.loads(got["homeassistant/binary_sensor/hw_lobby/anomaly/config"][0][0])
        assert anomaly["state_topic"] == "site/alert/lobby" and anomaly["availability_topic"] == "site/status"
        assert anomaly["unique_id"] == "hw_lobby_anomaly" and anomaly["device"]["identifiers"] == ["hw_lobby"]
        state = json.loads(got["homeassistant/sensor/hw_lobby/state/config"][0][0])
        assert state["state_topic"] == "site/health/lobby" and state["device"] == anomaly["device"]
        # retained: a subscriber that starts later (Home Assistant after a restart) knows the state at once
        _wait(lambda: "site/alert/lobby" in got and "site/snapshot/lobby" in got, 10)
        assert json.loads(got["site/alert/lobby"][0][0])["alert_id"] == "a1" and got["site/alert/lobby"][0][1]
        assert got["site/health/lobby"][0] == (json.dumps({"state": "streaming"}), True)
        assert got["site/snapshot/lobby"][0] == (keyframe.read_bytes(), True)         # the event's keyframe, as JPEG
        camera = json.loads(got["homeassistant/camera/hw_lobby/last_event/config"][0][0])
        assert camera["topic"] == "site/snapshot/lobby" and camera["device"] == anomaly["device"]
        got.pop("site/alert/lobby")
        assert not wrong._client.is_connected() and not any(t.startswith("wrong/") for t in got)
        bridge.send("alert/lobby", json.dumps(alert("a2")).encode())
        _wait(lambda: "site/alert/lobby" in got, 10)
        assert json.loads(got["site/alert/lobby"][0][0])["alert_id"] == "a2"       # delivered over TLS
        bridge.close()
        _wait(lambda: got["site/status"][-1][0] == "offline", 10)                 # a clean stop says so
        first.loop_stop()
        first.disconnect()
        got.clear()
        later = listener()
        _wait(lambda: "site/status" in got, 10)
        assert got["site/status"] == [("offline", True)]                           # ... and keeps saying it
        later.loop_stop()
        later.disconnect()
    finally:
        wrong.close()
        broker.terminate()
        broker.wait(timeout=10)

"""Cursor on Target out (stream/alerts/cot.py): real UDP, TCP and TLS receivers on loopback get
the events a TAK client would, and the config refuses endpoints it cannot use."""
from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from stream.alerts.cot import CotSink
from stream.config import ConfigError, CotConfig, CotTlsConfig, parse_config

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def alert(aid: str = "a1", state: str = "open", lon: float = 8.5417123, lat: float = 47.3769456,
          geometry: bool = True, **kw) -> dict:
    a = {"schema": 2, "type": "alert", "camera": "drone1", "alert_id": aid, "state": state, "category": "fight",
         "score": 0.87, "explanation": "two people grapple near the gate", "seq": 1, **kw}
    if geometry:
        a["geometry"] = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"role": "footprint"}, "geometry": {
                "type": "Polygon", "coordinates": [[[8.54, 47.37], [8.55, 47.37], [8.55, 47.38], [8.54, 47.37]]]}},
            {"type": "Feature", "properties": {"role": "event", "ce": 12.5, "le": 30.0},
             "geometry": {"type": "Point", "coordinates": [lon, lat, 412.0]}}]}
    return a


def send(sink: CotSink, a: dict) -> None:
    sink.send(f"alert/{a['camera']}", json.dumps(a).encode())


def parse(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == "event"
    return root


@pytest.fixture
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5.0)
        yield s


def udp_sink(receiver: socket.socket, **kw) -> CotSink:
    return CotSink(CotConfig(endpoint=f"udp://127.0.0.1:{receiver.getsockname()[1]}", **kw))


def test_a_udp_receiver_gets_a_well_formed_event_at_the_alerts_position(udp):
    sink = udp_sink(udp, console_url="https://hawkwatch.example:8080/")
    try:
        before = time.time()
        send(sink, alert())
        root = parse(udp.recv(65536))
    finally:
        sink.close()
    assert root.get("version") == "2.0" and root.get("uid") == "hawkwatch.a1"
    assert root.get("type") == "a-u-G" and root.get("how") == "m-g"
    times = {k: root.get(k) for k in ("time", "start", "stale")}
    assert all(ISO_MS.match(v) for v in times.values()), times
    parsed = {k: time.mktime(time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone for k, v in times.items()}
    assert abs(parsed["time"] - before) < 5 and parsed["stale"] - parsed["time"] == pytest.approx(300, abs=1)
    point = root.find("point")
    assert float(point.get("lat")) == pytest.approx(47.3769456, abs=1e-7)
    assert float(point.get("lon")) == pytest.approx(8.5417123, abs=1e-7)
    assert (float(point.get("hae")), float(point.get("ce")), float(point.get("le"))) == (412.0, 12.5, 30.0)
    detail = root.find("detail")
    assert detail.find("contact").get("callsign") == "Hawkwatch: fight (drone1)"
    remarks = detail.find("remarks").text
    assert "fight" in remarks and "0.87" in remarks and "drone1" in remarks and "grapple near the gate" in remarks
    urls = [link.get("url") for link in detail.findall("link") if link.get("url")]
    assert urls == ["https://hawkwatch.example:8080/events/a1"]
    assert sink.sent == 1 and sink.skipped == 0


def test_an_events_update_moves_its_marker_and_its_close_deletes_it(udp):
    sink = udp_sink(udp, uid_prefix="site-3", event_type="a-h-G", stale_s=60)
    try:
        send(sink, alert(state="open"))
        send(sink, alert(state="update", lat=47.4))
        send(sink, alert(state="close", geometry=False))      # a close at shutdown carries no position
        opened, updated, closed = (parse(udp.recv(65536)) for _ in range(3))
    finally:
        sink.close()
    assert opened.get("uid") == updated.get("uid") == "site-3.a1" and updated.get("type") == "a-h-G"
    assert float(updated.find("point").get("lat")) == pytest.approx(47.4)
    assert closed.get("type") == "t-x-d-d"
    assert closed.find("detail/link").get("uid") == "site-3.a1"
    assert closed.find("detail/__forcedelete") is not None


def test_an_alert_without_geometry_is_skipped_and_health_is_not_sent(udp, caplog):
    sink = udp_sink(udp)
    try:
        with caplog.at_level("DEBUG", logger="stream.alerts.cot"):
            send(sink, alert("fixed", geometry=False))
            send(sink, alert("fixed", state="close", geometry=False))   # never marked: nothing to delete
        sink.send("health/drone1", b'{"state": "streaming"}')
        send(sink, alert("flown"))
        first = parse(udp.recv(65536))
    finally:
        sink.close()
    assert first.get("uid") == "hawkwatch.flown"
    assert sink.skipped == 2 and sink.sent == 1
    assert "alert fixed of drone1 has no geometry" in caplog.text


def test_an_event_point_whose_error_place_could_not_bound_is_sent_with_cots_unknown(udp):
    a = alert("wide")
    event = next(f for f in a["geometry"]["features"] if f["properties"]["role"] == "event")
    event["properties"]["ce"] = None                 # place(): nobody located and the footprint above the horizon
    sink = udp_sink(udp)
    try:
        send(sink, a)
        point = parse(udp.recv(65536)).find("point")
    finally:
        sink.close()
    assert (float(point.get("ce")), float(point.get("le"))) == (9999999.0, 30.0)


def test_markup_in_the_explanation_arrives_escaped_and_parses(udp):
    evil = '</remarks></detail><detail><x a="1"/>&amp; <!-- "\' ]]> \x00\x1b'
    sink = udp_sink(udp, callsign='<Ops "A">')
    try:
        send(sink, alert(explanation=evil, category="fight<&>", alert_id='x"><y/>'))
        root = parse(udp.recv(65536))
    finally:
        sink.close()
    assert len(root.findall("detail")) == 1 and root.find("detail/x") is None
    assert root.find("detail/remarks").text.endswith(evil.replace("\x00", "").replace("\x1b", ""))
    assert root.get("uid") == 'hawkwatch.x"><y/>'
    assert root.find("detail/contact").get("callsign") == '<Ops "A">: fight<&> (drone1)'


class Server:
    """A TCP (or TLS) server on loopback collecting the events each connection sends."""

    def __init__(self, port: int = 0, context: ssl.SSLContext | None = None):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port, self.context = self.sock.getsockname()[1], context
        self.events: list[ET.Element] = []
        self.conn: socket.socket | None = None
        self.errors: list[Exception] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
        except OSError as e:            # closed, or a handshake the server refused
            self.errors.append(e)
            return
        self.conn, buffer = conn, b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"</event>" in buffer:
                one, _, buffer = buffer.partition(b"</event>")
                self.events.append(parse(one + b"</event>"))

    def wait(self, n: int, timeout: float = 10.0) -> list[ET.Element]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.shutdown(socket.SHUT_RDWR)     # wakes the thread blocked in recv (close alone does not)
            except OSError:
                pass
            self.conn.close()
        self.sock.close()
        self._thread.join(5)


def test_a_tcp_server_gets_events_in_order_and_the_sink_reconnects_after_the_server_restarts():
    server = Server()
    sink = CotSink(CotConfig(endpoint=f"tcp://127.0.0.1:{server.port}"))
    try:
        send(sink, alert("a1"))
        send(sink, alert("a2"))
        assert [e.get("uid") for e in server.wait(2)] == ["hawkwatch.a1", "hawkwatch.a2"]
        server.close()
        server = Server(server.port)
        send(sink, alert("a3"))
        assert [e.get("uid") for e in server.wait(1)] == ["hawkwatch.a3"]
        assert sink.dropped == 0
    finally:
        sink.close()
        server.close()


def test_the_tcp_sink_never_blocks_and_drops_the_oldest_while_the_server_is_away():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = CotSink(CotConfig(endpoint=f"tcp://127.0.0.1:{port}", queue_size=2))
    server = None
    try:
        started = time.monotonic()
        for i in range(5):
            send(sink, alert(f"a{i}"))
        assert time.monotonic() - started < 0.5
        assert sink.dropped == 3 and sink.sent == 2
        server = Server(port)
        assert [e.get("uid") for e in server.wait(2)] == ["hawkwatch.a3", "hawkwatch.a4"]
    finally:
        sink.close()
        if server is not None:
            server.close()


def _certificates(folder) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tak-ca", "-keyout",
            "ca.key", "-out", "ca.pem")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")


def test_a_tls_server_receives_the_event_and_requires_the_client_certificate(tmp_path):
    _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.pem"))
    context.load_cert_chain(str(tmp_path / "server.pem"), str(tmp_path / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED
    anonymous_server = Server(context=context)
    anonymous = CotSink(CotConfig(endpoint=f"tls://127.0.0.1:{anonymous_server.port}",
                                  tls=CotTlsConfig(ca_file=tmp_path / "ca.pem")))
    server = Server(context=context)
    sink = CotSink(CotConfig(endpoint=f"tls://127.0.0.1:{server.port}", tls=CotTlsConfig(
        ca_file=tmp_path / "ca.pem", certfile=tmp_path / "client.pem", keyfile=tmp_path / "client.key")))
    try:
        send(sink, alert("a1"))
        send(anonymous, alert("a1"))
        assert [e.get("uid") for e in server.wait(1)] == ["hawkwatch.a1"]
        assert server.conn.getpeercert()["subject"] == ((("commonName", "client"),),)
        deadline = time.monotonic() + 5
        while not anonymous_server.errors and time.monotonic() < deadline:
            time.sleep(0.02)
        assert anonymous_server.events == [] and anonymous_server.errors    # the handshake was refused
        assert not anonymous.connected.is_set()
    finally:
        for s in (sink, anonymous):
            s.close()
        for srv in (server, anonymous_server):
            srv.close()


BASE = {"cameras": {"gate": {"path": "gate.mp4"}},
        "models": {"person_detector": {"path": "p.onnx"}, "pose": {"path": "q.onnx"}}}


@pytest.mark.parametrize("cot, message", [
    ({"endpoint": "http://tak.example:8087"}, r"alerts\.cot\.endpoint: 'http://tak\.example:8087' must be udp://"),
    ({"endpoint": "tcp://tak.example"}, r"alerts\.cot\.endpoint: 'tcp://tak\.example' has no port"),
    ({"endpoint": "udp://:6969"}, r"alerts\.cot\.endpoint: 'udp://:6969' has no host"),
    ({"endpoint": "tcp://tak.example:99999"}, r"alerts\.cot\.endpoint: .* port must be a number from 1 to 65535"),
    ({"endpoint": "tls://tak.example:8089"}, r"alerts\.cot: a tls:// endpoint needs `tls`"),
    ({"endpoint": "udp://239.2.3.1:6969", "tls": {}}, r"alerts\.cot: `tls` is set but the endpoint is udp://"),
    ({"endpoint": "udp://239.2.3.1:6969", "ttl": 0}, r"alerts\.cot\.ttl: "),
    ({"endpoint": "udp://239.2.3.1:6969", "evnt_type": "a-h-G"}, r"alerts\.cot\.evnt_type: unknown key"),
])
def test_a_bad_cot_config_names_the_key(cot, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, "alerts": {"cot": cot}}, source="site.yaml", check_files=False)


def test_the_tak_multicast_default_is_a_valid_config():
    cfg = parse_config({**BASE, "alerts": {"cot": {"endpoint": "udp://239.2.3.1:6969"}}}, check_files=False)
    assert cfg.alerts.cot.event_type == "a-u-G" and cfg.alerts.cot.ttl == 1


def test_the_publisher_built_from_config_sends_alerts_to_tak(tmp_path, free_endpoint, udp):
    from stream.alerts.publisher import Publisher
    from stream.config import AlertsConfig

    a = AlertsConfig(endpoint=free_endpoint, outbox={"path": tmp_path / "outbox.db"},
                     cot={"endpoint": f"udp://127.0.0.1:{udp.getsockname()[1]}"})
    publisher = Publisher.from_config(a)
    try:
        payload = {k: v for k, v in alert().items() if k not in ("schema", "type", "seq")}
        publisher.publish_alerts([{**payload, "start": 1.0, "end": 2.0, "wall_start": 1e9, "wall_end": 1e9 + 1,
                                   "window_id": 1, "evidence": [], "latency_ms": {}}])
        root = parse(udp.recv(65536))
    finally:
        publisher.close()
    assert root.get("uid") == "hawkwatch.a1" and publisher.sink_errors["cot"] == 0

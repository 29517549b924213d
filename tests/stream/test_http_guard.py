"""What no request to the HTTP API may do, whatever route it names: answer to a foreign Host (DNS
rebinding), write from another site (CSRF), send an oversized body, crash the server with input
it cannot parse, guess the token without limit, or read /docs without the token; and what the
console's sign-in cookie is (a session that ends, not the token). The app is the real one
(create_app), its read model a stand-in holding one camera and no events."""
from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from stream.config import HttpConfig
from stream.http import create_app
from stream.http.auth import COOKIE, session, session_valid

TOKEN = "t0ken-for-tests"


class OneCamera:
    """The read model's answers for a pipeline with one camera, `lobby`, and an empty outbox."""
    chats = talks = False

    def knows(self, camera):
        return camera == "lobby"

    def health(self):
        return []

    def event(self, alert_id):
        return None

    def events(self, **filters):
        return []

    def scores(self, camera, since=None):
        return []

    def totals(self):
        return {}

    def queue_depths(self):
        return {}

    def outbox_status(self):
        return {"state": "ok", "held": 0, "lost": 0}

    def catchup_status(self):
        return None

    def recording_status(self):
        return {}


def client(token=None, **http) -> TestClient:
    cfg = HttpConfig(**({"token_env": "X"} if token else {}), **http)
    return TestClient(create_app(OneCamera(), token, cfg), base_url="http://127.0.0.1:8080")


def test_a_foreign_host_is_refused_on_loopback_and_allowed_hosts_widen_it():
    c = client()
    assert c.get("/healthz").status_code == 200
    assert c.get("/healthz", headers={"Host": "localhost:8080"}).status_code == 200
    r = c.get("/api/cameras", headers={"Host": "attacker.example"})
    assert r.status_code == 400 and "attacker.example" in r.json()["detail"]
    assert client(allowed_hosts=["nvr.lan"]).get("/healthz", headers={"Host": "nvr.lan:8080"}).status_code == 200


def test_a_write_from_another_origin_is_refused_and_one_from_the_console_passes():
    c = client()
    review = {"label": "false_alarm"}
    for headers in ({"Origin": "http://127.0.0.2:8000"}, {"Referer": "http://evil.example/page"},
                    {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        r = c.put("/api/events/abc/review", json=review, headers=headers)
        assert r.status_code == 403, headers
    # the same origin (the console's own pages) and clients that are not browsers reach the route (404: no event)
    assert c.put("/api/events/abc/review", json=review, headers={"Origin": "http://127.0.0.1:8080"}).status_code == 404
    assert c.put("/api/events/abc/review", json=review).status_code == 404
    assert c.get("/api/events", headers={"Origin": "http://127.0.0.2:8000"}).status_code == 200   # reads pass


def test_an_oversized_body_is_refused_before_it_is_parsed_with_or_without_its_length():
    c = client(max_body_kb=64)
    zones = {"big": {"points": [[0.5, 0.5]] * 20_000}}
    t0 = time.monotonic()
    r = c.put("/api/cameras/lobby/zones", content=json.dumps(zones), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and time.monotonic() - t0 < 2
    chunks = (b"x" * 8192 for _ in range(20))                 # no Content-Length: counted as it arrives
    assert c.post("/login", content=chunks, headers={"Content-Type": "application/x-www-form-urlencoded"}
                  ).status_code == 413


@pytest.mark.parametrize("method, url, body", [
    ("put", "/api/cameras/lobby/zones", '{"a": {"points": [[NaN, 0.1], [0.5, 0.9], [0.9, 0.1]]}}'),
    ("put", "/api/cameras/lobby/zones", '{"a": {"points": [[Infinity, 0.1], [0.5, 0.9], [0.9, 0.1]]}}'),
    ("get", f"/api/events?offset={2 ** 63}", None),
    ("get", "/api/events?offset=1e20", None),
    ("get", "/api/events?since=nan", None),
    ("get", "/cameras/lobby/timeline.svg?end=nan", None),
    ("get", "/cameras/lobby/timeline.svg?minutes=inf", None),
])
def test_input_that_cannot_be_used_is_a_422_naming_where_never_a_500(method, url, body):
    kwargs = {"content": body, "headers": {"Content-Type": "application/json"}} if body else {}
    r = getattr(client(), method)(url, **kwargs)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"]


def test_docs_need_the_token_and_sign_in_is_limited_to_a_few_tries_a_minute():
    c = client(TOKEN)
    assert c.get("/docs").status_code == 401 and c.get("/openapi.json").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/openapi.json", headers=auth).json()["info"]["title"] == "Hawkwatch"
    assert c.get("/docs", headers=auth).status_code == 200
    for _ in range(5):
        assert c.post("/login", data={"token": "guess"}).status_code == 401
    r = c.post("/login", data={"token": TOKEN})               # even the right one waits now
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_the_sign_in_cookie_is_a_session_that_ends_not_the_token():
    c = client(TOKEN, session_hours=1)
    r = c.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.cookies[COOKIE]
    assert TOKEN not in cookie and session_valid(TOKEN, cookie)
    assert "Max-Age=3600" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    c.cookies.clear()                                        # each request below sends only the cookie it names
    assert c.get("/api/cameras", cookies={COOKIE: cookie}).status_code == 200
    assert c.get("/api/cameras", cookies={COOKIE: session(TOKEN, 1, now=time.time() - 7200)}).status_code == 401
    assert c.get("/api/cameras", cookies={COOKIE: session("another-token", 1)}).status_code == 401
    assert c.get("/api/cameras", cookies={COOKIE: TOKEN}).status_code == 401       # the old cookie held the token


def test_zones_drawn_on_the_console_are_kept_across_restarts_and_a_broken_file_is_ignored(tmp_path, caplog):
    from stream.config import ZoneConfig
    from stream.scene.zones import ZoneStore
    store = ZoneStore(tmp_path / "zones.yaml")
    door = {"door": ZoneConfig(kind="exclude", points=[(0.1, 0.1), (0.5, 0.1), (0.5, 0.6)])}
    store.save("lobby", door)
    store.save("gate", {})
    again = ZoneStore(tmp_path / "zones.yaml").load()                  # the next start reads them back
    assert again == {"lobby": door, "gate": {}}
    (tmp_path / "zones.yaml").write_text("cameras: {lobby: {zones: {door: {kind: sideways, points: []}}}}")
    assert ZoneStore(tmp_path / "zones.yaml").load() == {}
    assert "does not read" in caplog.text


def test_a_client_that_sends_no_request_is_closed_and_the_server_keeps_answering():
    """A real uvicorn server with the guard's protocol: silent sockets and a header sent a byte at
    a time are closed after http.header_timeout_s, while /healthz keeps answering."""
    import socket
    import threading
    import urllib.request

    import uvicorn

    from stream.http.guard import deadline_protocol
    from tests.servers import free_port
    port = free_port()
    cfg = HttpConfig(endpoint=f"127.0.0.1:{port}", header_timeout_s=1.0)
    server = uvicorn.Server(uvicorn.Config(create_app(OneCamera(), None, cfg), host="127.0.0.1", port=port,
                                           log_level="warning", http=deadline_protocol(cfg.header_timeout_s)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
        trickle = socket.create_connection(("127.0.0.1", port))
        trickle.sendall(b"GET /healthz HT")                        # a header that never ends
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200                                 # the server answers beside them
        time.sleep(1.5)
        for s in [*silent, trickle]:
            s.settimeout(2.0)
            assert s.recv(1024) == b""                             # closed by the server
            s.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)

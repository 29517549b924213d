"""No request stops a request endpoint: thousands of random and adversarial messages on real
ZeroMQ sockets against the catch-up and chat endpoints, then valid requests must be answered."""
from __future__ import annotations

import json
import random
import threading

import pytest
import zmq

from stream.alerts.publisher import Publisher
from stream.alerts.query import MAX_FRAME, QueryClient, RequestServer
from stream.alerts.chat import ChatService
from tests.harness import next_port
from tests.stream.alerts.test_alerts import alert


def adversarial(rng: random.Random) -> list[list[bytes]]:
    """Messages (each a list of frames) a hostile or broken client sends."""
    nested = [b"[" * 2048 + b"]" * 2048, b"{\"a\":" * 3000 + b"1" + b"}" * 3000, b"[" * 100_000]
    numbers = [b'{"op":"since","camera":"lobby","after":1e999}', b'{"op":"since","camera":"lobby","after":'
               + b"9" * 5000 + b"}", b'{"op":"since","camera":"lobby","after":-0.0,"limit":NaN}',
               b'{"op":"since","camera":"lobby","after":Infinity}', b"1" * 4000]
    encodings = [b"\xff\xfe{}", b'{"op":"\xed\xa0\x80"}', b'{"op":"cameras"}\x00', "{\"op\":\"\U0001F600\"}".encode(),
                 b"\x00" * 64, b"", b"null", b'"\\ud800"']
    shapes = [[b"{}", b"{}"], [b"", b"", b"{}"], [b"{}"] * 40, [b"", b""], [b"x" * 4097]]
    out = [[m] for m in nested + numbers + encodings] + shapes
    for _ in range(2500):
        kind = rng.random()
        if kind < 0.4:                     # random bytes
            out.append([rng.randbytes(rng.randint(0, 300))])
        elif kind < 0.7:                   # JSON-ish with random values in every field
            req = {rng.choice(["op", "camera", "after", "limit", "question", "windows", "max_tokens", "x"]):
                   rng.choice([None, True, -1, 2**70, 1.5, "", "lobby", "since", "chat", "cameras", [], {}, "x" * 80])
                   for _ in range(rng.randint(0, 6))}
            out.append([json.dumps(req).encode()])
        elif kind < 0.9:                   # a valid request with one byte changed
            body = bytearray(b'{"op":"since","camera":"lobby","after":0,"limit":5}')
            body[rng.randrange(len(body))] = rng.randrange(256)
            out.append([bytes(body)])
        else:                              # several frames
            out.append([rng.randbytes(rng.randint(0, 20)) for _ in range(rng.randint(2, 5))])
    return out


def hammer(endpoint: str, messages: list[list[bytes]]) -> int:
    """Sends every message on a DEALER socket and reads the replies; returns how many came back."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    replies = 0
    for frames in messages:
        sock.send_multipart(frames)
        while sock.poll(0):
            json.loads(sock.recv_multipart()[-1])     # a reply to a REQ-shaped message has its empty frame
            replies += 1
    while sock.poll(2000):
        json.loads(sock.recv_multipart()[-1])
        replies += 1
    sock.close(0)
    return replies


def test_the_catch_up_endpoint_survives_thousands_of_hostile_messages(tmp_path, free_endpoint):
    query = next_port(free_endpoint)
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite", query_endpoint=query)
    pub.publish_alerts([{"camera": "lobby", **alert(f"a{k}")} for k in range(3)])
    client = QueryClient(query)
    try:
        # the request of the audit that used to end the serving thread, answered with an error
        bad = client.request(["x"])          # warm-up: the connection works
        assert bad["ok"] is False
        client._sock.send(b"[" * 2048 + b"]" * 2048)
        assert client._sock.poll(5000) and "nested too deeply" in json.loads(client._sock.recv())["error"]
        messages = adversarial(random.Random(7))
        replies = hammer(query, messages)
        assert replies >= len(messages) * 0.95, (replies, len(messages))    # answered, not ignored
        # a frame over the transport's limit drops only that connection
        big = zmq.Context.instance().socket(zmq.DEALER)
        big.connect(query)
        big.send(b"{" * (MAX_FRAME + 10))
        big.close(0)
        got = client.request({"op": "since", "camera": "lobby", "after": 0})
        assert got["ok"] and [a["seq"] for a in got["alerts"]] == [1, 2, 3]
        assert pub.query.status()["serving"] and pub.query.restarts == 0
        assert pub.query.refused >= len(messages) * 0.9
    finally:
        client.close()
        pub.close()


class _Talker:
    """A detector that talks (the real model's chat is tested in tests/stream/llm); this one
    breaks on one question, as a real model can fail on a request."""
    name, talks = "talker", True

    def chat(self, scenes, question, max_new_tokens=64):
        if "crash" in question:
            raise RuntimeError("the model broke")
        return f"{len(scenes)} windows: {question}"


def test_the_chat_endpoint_survives_hostile_messages_and_a_failing_answer(free_endpoint):
    from tests.harness import StubScene
    from stream.types import Frame, Window
    chat = ChatService(_Talker()).serve(free_endpoint)
    scene = StubScene()._graph(Window("lobby", 0, 0.0, 4.0, (Frame("lobby", 0, 0.0, 0.0, None),), wall_start=0.0,
                                      wall_end=4.0))
    chat.remember(scene)
    client = QueryClient(free_endpoint, what="chat")
    try:
        assert hammer(free_endpoint, adversarial(random.Random(11))[:1500]) > 1400
        broke = client.request({"op": "chat", "camera": "lobby", "question": "crash please"})
        assert broke["ok"] is False and "internal error (RuntimeError)" in broke["error"]
        good = client.request({"op": "chat", "camera": "lobby", "question": "Is anyone running?"})
        assert good["ok"] and good["answer"] == "1 windows: Is anyone running?"
    finally:
        client.close()
        chat.close()


def test_a_serving_thread_that_dies_is_restarted_and_reported(free_endpoint):
    """The last line of defence: should the thread die anyway, the health loop restarts it."""
    died = threading.Event()

    def handle(req):
        if req.get("op") == "die":
            died.set()
            raise SystemExit           # not an Exception: passes every handler, ends the thread
        return {"ok": True, "echo": req.get("op")}
    server = RequestServer(free_endpoint, handle, name="test").start()
    client = QueryClient(free_endpoint, timeout_s=1.0, what="test")
    try:
        with pytest.raises(TimeoutError):
            client.request({"op": "die"})
        assert died.is_set() and not server.status()["serving"]
        assert server.ensure_serving() and server.status()["restarts"] == 1
        assert client.request({"op": "ping"}) == {"ok": True, "echo": "ping"}
        assert not server.ensure_serving()          # alive: nothing to do
    finally:
        client.close()
        server.close()

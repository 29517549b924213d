"""Chat: ask the model a free question about a camera's recent windows (Hawkeye's chat paradigm,
Hawk's open questions), on a request endpoint of its own (`alerts.chat_endpoint`).

    {"op": "chat", "camera": "lobby", "question": "Is anyone running?", "windows": 2}
        -> {"ok": true, "camera": "lobby", "answer": "...", "windows": [41, 42], "start": 82.0, "end": 88.0,
            "wall_start": ..., "wall_end": ..., "ms": 950.0}

The detector thread hands every scored window to `remember`; an answer is generated from the
camera's last `windows` of them (at most `keep`). Generating shares the model with scoring one
token at a time, and a scoring batch that waits goes first (stream/llm/detector.py, ModelGate),
so a question never holds the cameras' verdicts back; questions are served one at a time. With a
detector that cannot talk (the baseline), every question is answered with an error that says so.

    python -m stream.alerts.chat --camera lobby "Is anyone running?"
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any

from engines.cli import Parser
from stream.alerts.query import RequestError, RequestServer, int_field, camera_field, only_fields
from stream.types import SceneGraph

MAX_QUESTION = 500        # characters


class ChatService:
    def __init__(self, detector: Any, keep: int = 8):
        self.detector, self.keep = detector, keep
        self._recent: dict[str, deque[SceneGraph]] = {}
        self._lock = threading.Lock()
        self.server: RequestServer | None = None
        self.talks = detector.talks

    def remember(self, scene: SceneGraph) -> None:
        """A scored window (the detector thread, every window)."""
        if not self.talks:
            return
        with self._lock:
            self._recent.setdefault(scene.camera, deque(maxlen=self.keep)).append(scene)

    def handle(self, req: dict) -> dict[str, Any]:
        if req.get("op") != "chat":
            raise RequestError("op must be 'chat'")
        only_fields(req, {"op", "camera", "question", "windows", "max_tokens"})
        camera = camera_field(req)
        question = req.get("question")
        if not isinstance(question, str) or not question.strip() or len(question) > MAX_QUESTION:
            raise RequestError(f"question must be a non-empty string of at most {MAX_QUESTION} characters")
        windows = int_field(req, "windows", 2, 1, self.keep)
        max_tokens = int_field(req, "max_tokens", 64, 1, 256)
        if not self.talks:
            raise RequestError(f"the {self.detector.name} detector does not answer "
                               "questions; run with detector: hawkeye")
        with self._lock:
            scenes = list(self._recent.get(camera, ()))[-windows:]
        if not scenes:
            raise RequestError(f"no windows of camera {camera!r} yet")
        t0 = time.perf_counter()
        text = self.detector.chat(scenes, question, max_new_tokens=max_tokens)
        return {"ok": True, "camera": camera, "answer": text, "windows": [s.window_id for s in scenes],
                "start": scenes[0].start, "end": scenes[-1].end, "wall_start": scenes[0].wall_start,
                "wall_end": scenes[-1].wall_end, "ms": round((time.perf_counter() - t0) * 1000.0, 1)}

    def serve(self, endpoint: str, configure: Any = None) -> ChatService:
        self.server = RequestServer(endpoint, self.handle, name="chat", configure=configure).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def main(argv: list[str] | None = None) -> int:
    from stream.alerts.query import QueryClient
    from stream.alerts.security import add_client_arguments, client_from_arguments

    p = Parser("python -m stream.alerts.chat", __doc__)
    p.add_argument("question", help="the question, in quotes")
    p.add_argument("--camera", required=True, help="the camera id the question is about")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5558", help="the pipeline's alerts.chat_endpoint")
    p.add_argument("--windows", type=int, default=2, help="how many of the camera's latest windows to ask about")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")
    add_client_arguments(p)
    args = p.parse_args(argv)
    client = QueryClient(args.endpoint, timeout_s=args.timeout, configure=client_from_arguments(p, args), what="chat")
    try:
        rep = client.request({"op": "chat", "camera": args.camera, "question": args.question,
                              "windows": args.windows})
    except TimeoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if not rep.get("ok"):
        print(f"error: {rep.get('error')}", file=sys.stderr)
        return 1
    print(f"[{rep['camera']} {rep['start']:.1f}-{rep['end']:.1f} s] {rep['answer']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

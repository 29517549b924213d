"""Print what a Hawkwatch subscriber receives, readably (or as JSON lines).

    python -m stream.subscribe --endpoint tcp://127.0.0.1:5556 [--topic alert/] [--json]
    python -m stream.subscribe --out alerts.jsonl      # every alert exactly once, across restarts

Alerts are never missed: gaps in a camera's numbers are filled from the query endpoint
(`--query`), before the next alert is shown. With `--out FILE` each alert is appended to FILE
(one JSON line, synced to disk) exactly once, in order per camera: the file is also where the
subscriber resumes from when restarted, so alerts it was down for are fetched, and none twice.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from engines.cli import Parser
from stream.alerts.security import add_client_arguments, client_from_arguments
from stream.alerts.subscriber import AlertSubscriber
from stream.config import beside


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def format_message(topic: str, msg: dict) -> str:
    kind, cam, seq = msg.get("type", topic.split("/")[0]), msg.get("camera", "?"), msg.get("seq", "?")
    head = f"{_clock(msg.get('sent_at', time.time()))} {kind.upper():<7} {cam} #{seq}"
    if kind == "alert":
        span = f"{msg['start']:.1f}-{msg['end']:.1f} s"
        files = "".join(f"  {e['kind']} {e['path']}" for e in msg.get("evidence") or ())
        return (f"{head} {msg['state'].upper():<5} {msg['category']} score {msg['score']:.2f} span {span}"
                f"  id {msg['alert_id'][:8]}" + (f"  \"{msg['explanation']}\"" if msg.get("explanation") else "")
                + files)
    if kind == "verdict":
        top = max(msg["seconds"], key=lambda s: s["score"], default=None)
        what = f" ({top['category']})" if top and top["score"] >= 0.5 else ""
        return (f"{head} window {msg['window_id']} {msg['start']:.1f}-{msg['end']:.1f} s  people {msg['people']}"
                f"  score {msg['score']:.2f}{what}")
    if kind == "health":
        lat = msg.get("latency_ms", {})
        lat_txt = "  ".join(f"{k} p50 {v['p50']:.0f} ms p95 {v['p95']:.0f} ms" for k, v in lat.items())
        why = f" ({msg['detail']})" if msg.get("detail") and msg["state"] != "streaming" else ""
        faults = "  ".join(f"{k.replace('_', ' ')} {msg[k]}" for k in ("reconnects", "gaps", "decode_errors")
                           if msg.get(k))
        rt = msg.get("runtime") or {}
        if rt.get("engine") == "ray":
            faults = "  ".join(x for x in (faults, f"on ray node {(rt.get('node') or '?')[:8]}", *(
                f"{k.replace('_', ' ')} {rt[k]}" for k in ("restarts", "model_restarts") if rt.get(k))) if x)
        return (f"{head} {msg['state']}{why}  t={msg['stream_time']:.1f} s  in {msg['fps_in']:.1f} fps  "
                f"out {msg['fps_out']:.1f} fps  windows {msg['windows_done']}/{msg['windows_emitted']} "
                f"({msg['windows_dropped']} dropped)  alerts {msg['alerts']}" + (f"  {faults}" if faults else "")
                + (f"  {lat_txt}" if lat_txt else ""))
    return f"{head} {json.dumps(msg)}"


def read_positions(path: Path) -> dict[str, tuple[str, int]]:
    """Each camera's last alert in an --out file; a torn last line (killed mid-write) is cut off."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
        data = data[:data.rfind(b"\n") + 1]
    positions: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(data.splitlines(), 1):
        try:
            msg = json.loads(line)
            positions[msg["camera"]] = (msg["outbox"], int(msg["seq"]))
        except (ValueError, KeyError, TypeError):
            raise SystemExit(f"{path}:{n}: not an alert line written by --out; use another file") from None
    return positions


def interruptible() -> None:
    """Ctrl-C and SIGINT end the subscriber even when it was started by a process that blocked or
    ignored SIGINT (both are inherited across exec: a service manager, a thread pool's launcher)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    interruptible()
    p = Parser("python -m stream.subscribe", __doc__)
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="the pipeline's PUB endpoint")
    p.add_argument("--query", help="its query endpoint, where missed alerts are fetched by number (default: "
                                   "--endpoint's host and port + 1, where the pipeline's alerts.query_endpoint: auto puts it)")
    p.add_argument("--topic", action="append", help="topic prefix to subscribe to (repeatable; default: all)")
    p.add_argument("--camera", action="append", help="only these cameras' alerts (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print each message as one JSON line")
    p.add_argument("--out", type=Path, help="append every alert to this JSON-lines file, exactly once; resumes from it")
    p.add_argument("--from-start", action="store_true",
                   help="also print the alerts already stored before this subscriber started (--out implies it)")
    add_client_arguments(p)
    p.add_argument("--until-stopped", action="store_true",
                   help="exit once every camera seen has reported state stopped or failed")
    p.add_argument("--timeout", type=float, help="exit (status 1) after this many seconds without a message, "
                                                 "counted from the start")
    args = p.parse_args(argv)
    query = args.query or beside(args.endpoint, 1)
    if query is None:
        p.error(f"--query is needed with --endpoint {args.endpoint}: give the pipeline's alerts.query_endpoint")
    configure = client_from_arguments(p, args)

    positions = read_positions(args.out) if args.out else {}
    out = args.out.open("ab") if args.out else None
    wanted = tuple(args.topic or [""])
    live: dict[str, bool] = {}

    def show(topic: str, msg: dict) -> None:
        if topic.startswith(wanted):
            print(json.dumps({"topic": topic, **msg}) if args.json else format_message(topic, msg), flush=True)

    def on_alert(msg: dict) -> None:
        if out is not None:
            out.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        show(f"alert/{msg['camera']}", msg)

    def on_message(topic: str, msg: dict) -> None:
        if msg.get("type") != "alert":
            show(topic, msg)
        if msg.get("type") == "health":
            live[msg["camera"]] = msg["state"] not in ("stopped", "failed")

    sub = AlertSubscriber(args.endpoint, query, cameras=args.camera, positions=positions, configure=configure,
                          from_start=args.from_start or args.out is not None, extra_topics=list(wanted))
    stop = _StopWhen(lambda: args.until_stopped and live and not any(live.values()))
    try:
        sub.run(on_alert, stop=stop, idle_timeout_s=args.timeout, on_message=on_message)
        if args.timeout and not stop.is_set():
            if not sub.caught_up:
                derived = "" if args.query else " (--endpoint's port + 1)"
                print(f"no answer from the query endpoint {query}{derived} in {args.timeout:g} s: is the pipeline "
                      "running? Pass --query with its alerts.query_endpoint", file=sys.stderr)
            else:
                print(f"no message for {args.timeout:g} s; exiting", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except (TimeoutError, RuntimeError) as e:
        print(f"subscriber: {e}", file=sys.stderr)
        return 1
    finally:
        sub.close()
        if out is not None:
            out.close()


class _StopWhen:
    """An Event-like stop flag computed from a condition (AlertSubscriber.run polls is_set)."""

    def __init__(self, condition):
        self.condition = condition

    def is_set(self) -> bool:
        return bool(self.condition())


if __name__ == "__main__":
    sys.exit(main())

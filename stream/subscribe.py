"""Print what a Hawkwatch subscriber receives, readably (or as JSON lines).

    python -m stream.subscribe --endpoint tcp://127.0.0.1:5556 [--topic alert/] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import zmq


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def format_message(topic: str, msg: dict) -> str:
    kind, cam, seq = msg.get("type", topic.split("/")[0]), msg.get("camera", "?"), msg.get("seq", "?")
    head = f"{_clock(msg.get('sent_at', time.time()))} {kind.upper():<7} {cam} #{seq}"
    if kind == "alert":
        span = f"{msg['start']:.1f}-{msg['end']:.1f} s"
        return (f"{head} {msg['state'].upper():<5} {msg['category']} score {msg['score']:.2f} span {span}"
                f"  id {msg['alert_id'][:8]}" + (f"  \"{msg['explanation']}\"" if msg.get("explanation") else ""))
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
        return (f"{head} {msg['state']}{why}  t={msg['stream_time']:.1f} s  in {msg['fps_in']:.1f} fps  "
                f"out {msg['fps_out']:.1f} fps  windows {msg['windows_done']}/{msg['windows_emitted']} "
                f"({msg['windows_dropped']} dropped)  alerts {msg['alerts']}" + (f"  {faults}" if faults else "")
                + (f"  {lat_txt}" if lat_txt else ""))
    return f"{head} {json.dumps(msg)}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.subscribe", description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556")
    p.add_argument("--topic", action="append", help="topic prefix to subscribe to (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print each message as one JSON line")
    p.add_argument("--until-stopped", action="store_true",
                   help="exit once every camera seen has reported state stopped or failed")
    p.add_argument("--timeout", type=float, help="exit after this many seconds without a message")
    args = p.parse_args(argv)

    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(args.endpoint)
    for t in args.topic or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, t.encode())
    live: dict[str, bool] = {}
    try:
        while True:
            if not sock.poll(int(args.timeout * 1000) if args.timeout else -1):
                print(f"no message for {args.timeout:g} s; exiting", file=sys.stderr)
                return 1
            topic, body = sock.recv_multipart()
            msg = json.loads(body)
            print(json.dumps({"topic": topic.decode(), **msg}) if args.json else format_message(topic.decode(), msg),
                  flush=True)
            if msg.get("type") == "health":
                live[msg["camera"]] = msg["state"] not in ("stopped", "failed")
                if args.until_stopped and live and not any(live.values()):
                    return 0
    except KeyboardInterrupt:
        return 0
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())

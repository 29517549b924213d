"""Hawkwatch's command line: load a config, build the pipeline, run until the input ends or a signal.

    python run_pipeline.py --config configs/demo.yaml [--replay realtime|fast] [--duration S] [--loop]

Exit status: 0 at the end of finite input (or after a clean stop), 2 on a bad config,
1 with a one-line reason on any other fatal error. SIGHUP re-reads the config: cameras are added,
removed or restarted without disturbing the others (a bad new config is logged and ignored).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hawkwatch", description="Watch video streams for implicit anomalous behaviour.")
    p.add_argument("--config", required=True, help="YAML config (see configs/demo.yaml)")
    p.add_argument("--replay", choices=["realtime", "fast"], help="override every file camera's replay mode")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this much stream time")
    p.add_argument("--loop", action="store_true", help="replay files forever")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = p.parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        p.error("--duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from stream.config import ConfigError, load_config
    from stream.pipeline import build_pipeline

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"hawkwatch: config error: {e}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():   # a second signal: the user wants out now
            os._exit(128 + signum)
        logging.getLogger("hawkwatch").info("%s: stopping, draining queues", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        pipeline = build_pipeline(cfg, stop=stop, replay=args.replay, loop=args.loop or None,
                                  duration_s=args.duration)
        signal.signal(signal.SIGHUP, lambda *_: pipeline.request_reload(lambda: load_config(args.config)))
        code = pipeline.run()
    except Exception as e:  # noqa: BLE001 - the contract is one line, not a traceback
        logging.getLogger("hawkwatch").debug("fatal", exc_info=True)
        print(f"hawkwatch: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if code != 0:
        print(f"hawkwatch: error: {pipeline.failure}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

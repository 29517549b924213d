"""Hawkwatch's command line: load a config, build the pipeline, run until the input ends or a signal.

    python run_pipeline.py --config configs/demo.yaml [--replay realtime|fast] [--duration S] [--loop]
    python run_pipeline.py check configs/demo.yaml      # validate: schema, files, models load; nothing runs
    python run_pipeline.py build-engines configs/demo.yaml   # TensorRT plans of its models, ahead of time

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


def _stream_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from engines.cli import Parser
    from importlib.metadata import PackageNotFoundError, version
    p = Parser("hawkwatch", "Watch camera and drone streams for implicit anomalous behaviour and publish grounded "
                            "alerts over ZeroMQ.",
               epilog="Other commands: `hawkwatch check CONFIG` validates a config and loads its models without "
                      "running it; `hawkwatch build-engines CONFIG` builds its TensorRT plans ahead of time. Each "
                      "takes --help.")
    try:
        release = version("hawkwatch")
    except PackageNotFoundError:          # run from a checkout that was never installed
        release = "(not installed)"
    p.add_argument("--version", action="version", version=f"hawkwatch {release}", help="print the version and exit")
    p.add_argument("--config", required=True, help="YAML config (see configs/demo.yaml)")
    p.add_argument("--replay", choices=["realtime", "fast"],
                   help="override every file camera's replay mode (default: each camera's `replay`)")
    p.add_argument("--duration", type=_stream_seconds, metavar="SECONDS",
                   help="stop each camera after this many seconds of its stream time; a live camera also stops "
                        "this long after it started, connected or not, so the run always ends "
                        "(default: run until the input ends or a signal)")
    p.add_argument("--loop", action="store_true", help="replay files forever")
    p.add_argument("--runtime", choices=["local", "ray"],
                   help="override the config's runtime.engine: threads in this process, or actors on a Ray cluster")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="override runtime.address: auto, HOST:PORT of the head, ray://HOST:PORT, or local")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="the least important log lines shown (on stderr)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="log lines as text, or as one JSON object a line (time, level, logger, thread, message) "
                        "for a log shipper")
    return p.parse_args(argv)


def parse_check_args(argv: list[str] | None) -> argparse.Namespace:
    from engines.cli import Parser
    p = Parser("hawkwatch check", "Validate a config without running it: the schema, the files it names, and that "
                                  "its models load (no camera is opened, no socket bound). Exit status 0 when it "
                                  "would start, 2 with the reason when not.")
    p.add_argument("config", help="the YAML config to check")
    p.add_argument("--runtime", choices=["local", "ray"], help="check it as it would run with this runtime.engine")
    return p.parse_args(argv)


def check(argv: list[str] | None) -> int:
    """`hawkwatch check CONFIG`: what `hawkwatch --config CONFIG` would run, or why it would not start."""
    args = parse_check_args(argv)
    from stream.config import ConfigError, load_config, summary
    from stream.redact import redact
    logging.basicConfig(level="WARNING")
    try:
        cfg = load_config(args.config)
        if args.runtime:
            cfg = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"engine": args.runtime})})
        print(summary(cfg, args.config))
        from stream.preflight import problems
        found = problems(cfg)
        if found:
            raise ConfigError("; ".join(found))
        print("host: every port it binds is free, every path it writes is writable")
        if cfg.runtime.engine == "ray":
            from stream.ray_runtime import check_reachable
            check_reachable(cfg.runtime.address)
            print(f"runtime: a Ray head answers at {cfg.runtime.address}")
        from stream.detection.registry import build_detector
        from stream.scene.graph import scene_from_config
        scene_from_config(cfg)
        print("scene stage: its models load")
        build_detector(cfg)
        print(f"detector: {cfg.detector.name} loads")
        learning = [c for c in cfg.cameras if cfg.normal_of(c).enabled]
        if learning:
            from stream.detection.normal import check_stores
            for line in check_stores(cfg, learning):
                print(line)
        if cfg.http is not None:
            from stream.http.auth import token_of
            print(f"http: {cfg.http.endpoint}, " + ("a token is set" if token_of(cfg.http) else "loopback, no token"))
    except ConfigError as e:
        print(redact(f"hawkwatch check: config error: {e}"), file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a model that does not load is the config's problem to report
        print(redact(f"hawkwatch check: config error: {type(e).__name__}: {e}"), file=sys.stderr)
        return 2
    print(f"{args.config}: ok")
    return 0


def build_engines(argv: list[str] | None) -> int:
    """`hawkwatch build-engines CONFIG`: the TensorRT plans of the config's scene models, built with
    its `models.tensorrt` settings into the cache the pipeline loads them from (engines/build.py)."""
    from engines.cli import Parser
    p = Parser("hawkwatch build-engines", "Build the TensorRT plans of a config's scene models ahead of time, with "
                                          "its models.tensorrt settings, into the cache the pipeline loads them "
                                          "from. Plans are specific to the GPU and the TensorRT version.")
    p.add_argument("config", help="the YAML config whose models to build")
    args = p.parse_args(argv)
    from engines.build import build_plans
    from engines.tensorrt_backend import BuildSpec, PlanCache
    from stream.config import ConfigError, load_config
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"hawkwatch build-engines: config error: {e}", file=sys.stderr)
        return 2
    opts = dict(cfg.models.engine_options()["tensorrt"])
    cache = PlanCache(opts.pop("cache_dir")) if "cache_dir" in opts else PlanCache()
    spec = BuildSpec(**opts)
    models = [m.path for m in (cfg.models.person_detector, cfg.models.pose) if m is not None]
    return build_plans([(path, spec, cache) for path in models], prog="hawkwatch build-engines")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return check(argv[1:])
    if argv[:1] == ["build-engines"]:
        return build_engines(argv[1:])
    # signals first: a SIGTERM or SIGHUP while the models load must not kill the process
    stop = threading.Event()
    reload_wanted = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():   # a second signal: the user wants out now
            os._exit(128 + signum)
        logging.getLogger("hawkwatch").info("%s: stopping, draining queues", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, lambda *_: reload_wanted.set())

    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    from stream.redact import JsonRedactingFormatter, RedactingFormatter, redact
    handler.setFormatter(JsonRedactingFormatter() if args.log_format == "json" else
                         RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    from stream.app import build_pipeline
    from stream.config import ConfigError, load_config, summary, with_overrides

    try:
        def load():
            cfg = with_overrides(load_config(args.config), replay=args.replay, loop=args.loop or None,
                                 duration_s=args.duration)
            runtime = {k: v for k, v in (("engine", args.runtime), ("address", args.ray_address)) if v}
            return cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update=runtime)}) if runtime else cfg
        cfg = load()
        logging.getLogger("hawkwatch").info("starting: %s", summary(cfg, args.config))
        pipeline = build_pipeline(cfg, stop=stop)

        def on_hup(*_):
            pipeline.request_reload(load)
        signal.signal(signal.SIGHUP, on_hup)
        if reload_wanted.is_set():          # a SIGHUP while starting: the file may have changed since it was read
            on_hup()
        code = pipeline.run()
    except ConfigError as e:
        print(redact(f"hawkwatch: config error: {e}"), file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the contract is one line, not a traceback
        logging.getLogger("hawkwatch").debug("fatal", exc_info=True)
        print(redact(f"hawkwatch: error: {type(e).__name__}: {e}"), file=sys.stderr)
        return 1
    if code != 0:
        print(f"hawkwatch: error: {pipeline.failure}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Serve H.264 video files over RTSP on loopback with Debian's gst-rtsp-server (no re-encoding).

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 /lobby=clip.mp4 [/gate=other.mkv ...]

Each client gets its own session that plays the file from the start, paced in real time, over
RTSP/TCP or RTSP/UDP as the client asks. Prints `READY <port>` once it listens. It is what the
test suite and the ingest benchmarks use as a real camera; it runs under Debian's python3 because
that is where python3-gi and the GStreamer introspection data live (scripts/install_system_deps.sh).
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

DEMUXERS = {".mp4": "qtdemux", ".mov": "qtdemux", ".mkv": "matroskademux", ".ts": "tsdemux"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("mounts", nargs="+", metavar="/PATH=FILE", help="mount point and the H.264 file it serves")
    args = p.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    points = server.get_mount_points()
    for spec in args.mounts:
        mount, sep, path = spec.partition("=")
        suffix = path[path.rfind("."):].lower()
        if not sep or not mount.startswith("/") or suffix not in DEMUXERS:
            p.error(f"{spec!r}: expected /PATH=FILE with FILE one of {', '.join(DEMUXERS)}")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f"( filesrc location=\"{path}\" ! {DEMUXERS[suffix]} ! h264parse "
                           f"! rtph264pay name=pay0 pt=96 config-interval=-1 )")
        factory.set_shared(False)
        points.add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr)
        return 1
    print(f"READY {server.get_bound_port()}", flush=True)
    try:
        GLib.MainLoop().run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

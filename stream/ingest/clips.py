"""Re-encode recorded footage the way an IP camera sends it, to replay it as a live camera.

    python -m stream.ingest.clips data/vtest.avi data/vtest_h264.mp4 [--seconds S] [--size 640x480] [--fps 25]

H.264 with a keyframe every second, no B-frames and one slice per picture. One slice matters:
gst-rtsp-server's payloader repeats SPS/PPS before every IDR slice, and FFmpeg then splits a
multi-slice keyframe into two broken pictures. scripts/rtsp_server.py serves the result over
RTSP; the test suite and bench/bench_ingest.py use it as their camera.
"""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

from engines.cli import Parser

import av


def camera_clip(src: Path, dst: Path, seconds: float | None = None, *, size: tuple[int, int] | None = None,
                fps: float | None = None) -> Path:
    """Re-encode (the first `seconds` of) a video as camera-like H.264. With `fps`, the source's
    frames are shown at that rate."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        rate = Fraction(fps).limit_denominator(1000) if fps else s_in.average_rate
        s_out = out.add_stream("libx264", rate=rate, options={
            "g": str(round(rate)), "bf": "0", "preset": "veryfast", "threads": "1"})
        s_out.width, s_out.height = size or (s_in.width, s_in.height)
        s_out.pix_fmt = "yuv420p"
        s_out.codec_context.time_base = 1 / rate
        for i, frame in enumerate(inp.decode(s_in)):
            if seconds is not None and i >= seconds * rate:
                break
            if size:
                frame = frame.reformat(width=size[0], height=size[1])
            frame.pts, frame.time_base = i, 1 / rate    # frame i shows at i / rate
            out.mux(s_out.encode(frame))
        out.mux(s_out.encode(None))
    return dst


def main(argv: list[str] | None = None) -> int:
    p = Parser("python -m stream.ingest.clips", __doc__)
    p.add_argument("src", type=Path, help="the recorded footage")
    p.add_argument("dst", type=Path, help="an .mp4 or .mkv file")
    p.add_argument("--seconds", type=float, help="only the first S seconds")
    p.add_argument("--size", help="WIDTHxHEIGHT")
    p.add_argument("--fps", type=float, help="show the source's frames at this rate")
    a = p.parse_args(argv)
    size = None
    if a.size:
        try:
            w, h = (int(v) for v in a.size.lower().split("x"))
        except ValueError:
            p.error(f"--size {a.size!r}: expected WIDTHxHEIGHT, e.g. 640x480")
        size = (w, h)
    if a.dst.suffix.lower() not in (".mp4", ".mkv"):
        p.error(f"{a.dst}: the output must be .mp4 or .mkv (what scripts/rtsp_server.py serves)")
    try:
        camera_clip(a.src, a.dst, a.seconds, size=size, fps=a.fps)
    except (av.FFmpegError, OSError) as e:
        print(f"cannot re-encode {a.src}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

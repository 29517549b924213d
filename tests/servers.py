"""Real peers on loopback for the ingest tests and benchmarks: an RTSP server (Debian's
gst-rtsp-server, scripts/rtsp_server.py) that can be killed, restarted and frozen, and ffmpeg
senders for MPEG-TS over UDP and SRT. System packages: scripts/install_system_deps.sh."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """scripts/rtsp_server.py as a child process serving `mounts` ({"/lobby": clip.mp4})."""

    def __init__(self, mounts: dict[str, Path], port: int | None = None):
        self.mounts, self.port = mounts, port or free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, mount: str, credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}{mount}"

    def start(self, timeout: float = 15.0) -> float:
        """Start and wait until it listens; returns the monotonic time it became ready."""
        args = [SYSTEM_PYTHON, str(ROOT / "scripts" / "rtsp_server.py"), "--port", str(self.port),
                *(f"{m}={p}" for m, p in self.mounts.items())]
        deadline = time.monotonic() + timeout
        while True:   # the port can linger for a moment after a kill
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                return time.monotonic()
            err = self.proc.stderr.read()
            self.proc.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start: {line}{err}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, no data flows (a hung camera)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.thaw()
        self.kill()


class FfmpegSender:
    """Debian's ffmpeg sending a file, looped and paced in real time, as MPEG-TS to `url`
    (udp://... or srt://...), without re-encoding."""

    def __init__(self, clip: Path, url: str):
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise RuntimeError("ffmpeg is missing: run scripts/install_system_deps.sh")
        self.args = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                     "-i", str(clip), "-c", "copy", "-f", "mpegts", url]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> FfmpegSender:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()

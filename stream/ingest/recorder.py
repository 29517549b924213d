"""Continuous recording: a camera's video packets, as its source demuxes them, remuxed (never
re-encoded) into MP4 segments on disk.

    <folder>/<camera>/<YYYY-MM-DD>/<start ms>-<end ms>.mp4      closed segments (UTC epoch milliseconds)
    <folder>/<camera>/<YYYY-MM-DD>/<start ms>.partial.mp4       the segment being written

A segment starts at a keyframe once `segment_s` has passed (and at every new connection, or a
file's next loop, whose timestamps start again), so each one plays on its own. They are
fragmented MP4 (a fragment per keyframe), so the segment being written plays up to its last
fragment, and one cut short by a crash is still a recording: `recover` names it by what it
holds. The wall-clock times in the names are the packets' arrival times, the same clock as
alerts' `wall_start`/`wall_end`, so an event's footage is found by its times.

Recording never stops detection: a fault (a full disk, a folder that went away) is counted,
reported (`problem`) and retried at the next segment.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import av

log = logging.getLogger(__name__)

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
_CLOSED = re.compile(r"^(\d+)-(\d+)\.mp4$")
_PARTIAL = re.compile(r"^(\d+)\.partial\.mp4$")


@dataclass(frozen=True)
class Segment:
    path: Path
    start: float          # wall clock, epoch seconds
    end: float | None     # None: being written

    @property
    def name(self) -> str:
        return self.path.name


def day_folder(folder: Path, camera: str, wall: float) -> Path:
    return folder / camera / time.strftime("%Y-%m-%d", time.gmtime(wall))


def segments(folder: Path, camera: str, start: float | None = None, end: float | None = None) -> list[Segment]:
    """The camera's segments overlapping [start, end] (wall clock), oldest first."""
    out = []
    root = Path(folder) / camera
    if not root.is_dir():
        return []
    for day in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in day.iterdir():
            m = _CLOSED.match(path.name)
            if m:
                seg = Segment(path, int(m.group(1)) / 1000, int(m.group(2)) / 1000)
            elif (m := _PARTIAL.match(path.name)):
                seg = Segment(path, int(m.group(1)) / 1000, None)
            else:
                continue
            if (end is None or seg.start <= end) and (start is None or seg.end is None or seg.end >= start):
                out.append(seg)
    return sorted(out, key=lambda s: s.start)


def recover(folder: Path, camera: str) -> int:
    """Name the segments a crash left open by how long they play; returns how many."""
    n = 0
    for seg in segments(folder, camera):
        if seg.end is None:
            try:
                with av.open(str(seg.path)) as c:
                    seconds = float(c.duration / av.time_base) if c.duration else 0.0
            except (av.FFmpegError, OSError):
                seconds = 0.0
            if seconds <= 0:
                seg.path.unlink(missing_ok=True)
                continue
            seg.path.rename(seg.path.with_name(f"{round(seg.start * 1000)}-{round((seg.start + seconds) * 1000)}.mp4"))
            n += 1
    return n


class Recorder:
    """One camera's segments. `connected(stream)` at each new connection (or loop), then
    `packet(packet)` for each of that stream's demuxed packets, from one thread."""

    def __init__(self, camera: str, folder: Path, segment_s: float = 10.0, clock=time.time):
        self.camera, self.folder, self.segment_s, self._clock = camera, Path(folder), segment_s, clock
        self.problem: str | None = None      # the last fault, until a segment is written again
        self.faults = 0
        self.segments_written = 0
        self._stream = None                  # the input stream the packets come from
        self._out = None                     # (container, stream, path, start wall, first dts)
        self._last_dts = None

    def connected(self, stream) -> None:
        """A new connection: the segment in progress ends; the next starts at its first keyframe."""
        self.close()
        self._stream = stream

    def packet(self, packet) -> None:
        if self._stream is None or packet.dts is None and packet.pts is None or packet.size == 0:
            return
        now = self._clock()
        try:
            if packet.is_keyframe and (self._out is None or now - self._out[3] >= self.segment_s):
                self._open_next(now, packet.dts if packet.dts is not None else packet.pts)
            if self._out is None:
                return                       # before the first keyframe: nothing plays without one
            container, stream, _, _, first = self._out
            dts = packet.dts if packet.dts is not None else packet.pts
            pts = packet.pts if packet.pts is not None else dts
            if self._last_dts is not None and dts <= self._last_dts:
                return                       # a timestamp going back (a broken stream): MP4 cannot hold it
            self._last_dts = dts
            packet.dts, packet.pts = dts - first, max(pts - first, dts - first)
            packet.stream = stream
            container.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as e:
            self._fault(e)

    def _open_next(self, now: float, first: int) -> None:
        self.close()
        folder = day_folder(self.folder, self.camera, now)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{round(now * 1000)}.partial.mp4"
        container = av.open(str(path), "w", format="mp4", options={"movflags": MOVFLAGS})
        try:
            stream = container.add_stream_from_template(self._stream)
        except Exception:
            container.close()
            path.unlink(missing_ok=True)
            raise
        self._out, self._last_dts = (container, stream, path, now, first), None

    def close(self) -> None:
        """End the segment in progress (named by its start and end)."""
        if self._out is None:
            return
        container, _, path, start, _ = self._out
        self._out = None
        try:
            container.close()
            end = self._clock()
            if path.stat().st_size > 0 and end > start:
                path.rename(path.with_name(f"{round(start * 1000)}-{round(end * 1000)}.mp4"))
                self.segments_written += 1
                self.problem = None
            else:
                path.unlink(missing_ok=True)
        except (av.FFmpegError, OSError) as e:
            self._fault(e)

    def _fault(self, e: Exception) -> None:
        self.faults += 1
        why = getattr(e, "strerror", None) or str(e)
        if self.problem != why:
            log.warning("camera %s: recording: %s (detection goes on)", self.camera, why)
        self.problem = why
        if self._out is not None:
            container, _, path, _, _ = self._out
            self._out = None
            try:
                container.close()
            except (av.FFmpegError, OSError):
                pass
            if path.exists() and path.stat().st_size == 0:
                path.unlink(missing_ok=True)

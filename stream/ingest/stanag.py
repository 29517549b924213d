"""Synthetic drone feeds: an MPEG-TS with H.264 video and an ST 0601 KLV data stream, like STANAG 4609.

For tests and test feeds, where no real drone is at hand. PyAV muxes the KLV as FFmpeg's `klv`
data stream, which FFmpeg's TS muxer writes as stream_type 0x06 with a "KLVA" registration
descriptor (its asynchronous carriage) and each packet with the PTS of the frame it belongs to;
FFmpeg's own demuxer, and so `stream.ingest.klv.klv_stream`, reads it back as `klv`.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable

import av
import numpy as np

from stream.ingest.klv import encode
from stream.types import SensorMetadata

PTS_HZ = 90_000     # MPEG-TS's clock


def write_stanag(path_or_url: str, frames_bgr: Iterable[np.ndarray],
                 metas: Iterable[SensorMetadata | bytes | None], fps: float, codec: str = "h264") -> int:
    """Write frames i = 0, 1, ... at `fps`, each followed by metas[i] as one KLV packet stamped
    with frame i's PTS (None: no packet for that frame; bytes: written as they are, a damaged
    packet for a test; metas may be shorter than frames).
    Returns the number of KLV packets written."""
    encoders = {"h264": "libx264", "h265": "libx265", "hevc": "libx265"}
    if codec not in encoders:
        raise ValueError(f"codec {codec!r} is not one of {sorted(encoders)}")
    rate = Fraction(fps).limit_denominator(1000)
    metas = iter(metas)
    written = 0
    with av.open(path_or_url, "w", format="mpegts") as out:
        video = out.add_stream(encoders[codec], rate=rate, options={
            "g": str(max(1, round(rate))), "bf": "0", "preset": "ultrafast", "threads": "1"})
        video.pix_fmt = "yuv420p"
        data = out.add_data_stream("klv")
        data.time_base = Fraction(1, PTS_HZ)
        for i, image in enumerate(frames_bgr):
            if i == 0:
                video.height, video.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts, frame.time_base = i, 1 / rate
            out.mux(video.encode(frame))
            meta = next(metas, None)
            if meta is not None:
                packet = av.Packet(meta if isinstance(meta, bytes) else encode(meta))
                packet.stream, packet.time_base = data, data.time_base
                packet.pts = packet.dts = round(i / rate * PTS_HZ)
                out.mux(packet)
                written += 1
        out.mux(video.encode(None))
    return written

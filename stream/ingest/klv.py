"""A drone feed's MISB ST 0601 metadata: KLV packets found in an MPEG-TS data stream, split, checked,
decoded into `SensorMetadata` and lined up with the video's time.

STANAG 4609 feeds carry the UAS Datalink Local Set (ST 0601) as SMPTE ST 336 KLV: a 16-byte
universal key, a BER length, then tag-length-value items whose last one (tag 1) is a checksum.
The PyPI `klvdata` library (MIT, one alpha release, 0.0.3) was read and not used: it never verifies
the checksum, reads only one-byte tags (no BER-OID), stops silently at a truncated item and lacks a
stream splitter that resynchronises, which are the four things a live feed needs.

Damage is normal on a radio link, so nothing here raises to the reader's caller: `decode` raises
`KlvDecodeError` naming what is wrong, and `KlvReader` catches it and counts it in `KlvStats` by
its kind. Decoded packets then go through `SensorTrack`, which answers "what did the drone say at
video time t" and refuses time stamps that go backwards.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

from stream.types import SensorMetadata

UAS_LS_KEY = bytes.fromhex("060E2B34020B01010E01030101000000")
UL_PREFIX = UAS_LS_KEY[:4]      # every SMPTE universal label starts so: where to resynchronise
MAX_PACKET = 65535              # a UAS LS packet is a few hundred bytes; a longer claimed length is damage
KLV_CODECS = ("klv", "smpte_klv")   # FFmpeg's name for ST 0601 in TS (stream_type 0x15, or 0x06 + "KLVA")


class KlvDecodeError(ValueError):
    """A packet that cannot be trusted; `kind` is the `KlvStats` counter it belongs to."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ---- the fixed-length scaled integers of ST 0601 (its section 8 mappings) ----

@dataclass(frozen=True)
class _Scaled:
    """Tag's real value = lo + (hi - lo) * (x - xmin) / (xmax - xmin) for the integer x of `size`
    bytes; signed items are symmetric (xmin = -xmax) and reserve their lowest value for "error"."""
    field: str
    size: int
    signed: bool
    lo: float
    hi: float

    @cached_property
    def span(self) -> tuple[int, int]:
        bits = 8 * self.size
        return (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if self.signed else (0, 2 ** bits - 1)

    def decode(self, raw: bytes) -> float | None:
        x = int.from_bytes(raw, "big", signed=self.signed)
        xmin, xmax = self.span
        if x < xmin:                 # 0x80.. : the producer's "out of range / error"
            return None
        return self.lo + (self.hi - self.lo) * (x - xmin) / (xmax - xmin)

    def encode(self, value: float) -> bytes:
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{self.field}={value} is outside ST 0601's range [{self.lo}, {self.hi}]")
        xmin, xmax = self.span
        x = round(xmin + (value - self.lo) * (xmax - xmin) / (self.hi - self.lo))
        return x.to_bytes(self.size, "big", signed=self.signed)


def _lat(name: str) -> _Scaled:
    return _Scaled(name, 4, True, -90.0, 90.0)


def _lon(name: str) -> _Scaled:
    return _Scaled(name, 4, True, -180.0, 180.0)


SCALED: dict[int, _Scaled] = {
    5: _Scaled("platform_heading", 2, False, 0.0, 360.0),
    6: _Scaled("platform_pitch", 2, True, -20.0, 20.0),
    7: _Scaled("platform_roll", 2, True, -50.0, 50.0),
    13: _lat("sensor_lat"),
    14: _lon("sensor_lon"),
    15: _Scaled("sensor_alt", 2, False, -900.0, 19000.0),
    16: _Scaled("hfov", 2, False, 0.0, 180.0),
    17: _Scaled("vfov", 2, False, 0.0, 180.0),
    18: _Scaled("sensor_rel_az", 4, False, 0.0, 360.0),
    19: _Scaled("sensor_rel_el", 4, True, -180.0, 180.0),
    20: _Scaled("sensor_rel_roll", 4, False, 0.0, 360.0),
    21: _Scaled("slant_range", 4, False, 0.0, 5_000_000.0),
    22: _Scaled("target_width", 2, False, 0.0, 10_000.0),
    23: _lat("frame_center_lat"),
    24: _lon("frame_center_lon"),
    25: _Scaled("frame_center_elev", 2, False, -900.0, 19000.0),
}
CORNER_FULL = {82 + 2 * i: _lat(f"corner {i + 1} lat") for i in range(4)} | \
              {83 + 2 * i: _lon(f"corner {i + 1} lon") for i in range(4)}
CORNER_OFFSET = {26 + i: _Scaled(f"corner {i // 2 + 1} offset", 2, True, -0.075, 0.075) for i in range(8)}
NAMED = {1, 2, 3, 65} | SCALED.keys() | CORNER_FULL.keys() | CORNER_OFFSET.keys()


# ---- BER lengths, BER-OID tags, the checksum ----

def _ber_length(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(length, position after it); IndexError when the buffer ends inside it."""
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 8:
        raise KlvDecodeError("bad_length", f"BER length at byte {pos} uses {n} length bytes")
    if pos + 1 + n > len(buf):
        raise IndexError
    return int.from_bytes(buf[pos + 1:pos + 1 + n], "big"), pos + 1 + n


def _ber_encode(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _oid(buf: bytes, pos: int) -> tuple[int, int]:
    """A BER-OID tag (7 bits a byte, high bit = more follow): (tag, position after it)."""
    if buf[pos] < 0x80:                     # ST 0601's own tags are all one byte
        return buf[pos], pos + 1
    tag = 0
    for i in range(pos, min(pos + 4, len(buf))):
        tag = (tag << 7) | (buf[i] & 0x7F)
        if buf[i] < 0x80:
            return tag, i + 1
    raise KlvDecodeError("malformed", f"tag at byte {pos} does not end within 4 bytes")


def _oid_encode(tag: int) -> bytes:
    out = [tag & 0x7F]
    while tag := tag >> 7:
        out.append(0x80 | (tag & 0x7F))
    return bytes(reversed(out))


def checksum(data: bytes) -> int:
    """ST 0601's 16-bit running sum: byte i weighs 256 when i is even (big-endian words), over the
    packet from the key to the checksum item's length byte."""
    total = sum(data[0::2]) << 8
    return (total + sum(data[1::2])) & 0xFFFF


# ---- one packet ----

def decode(packet: bytes, *, verify: bool = True) -> SensorMetadata:
    """One whole UAS LS packet (key, length, items) as `SensorMetadata`. Raises `KlvDecodeError`.
    `verify=False` reads a packet whose checksum is wrong (recorded samples), never a live feed."""
    packet = bytes(packet)
    if not packet.startswith(UAS_LS_KEY):
        raise KlvDecodeError("unknown_key", f"key {packet[:16].hex()} is not the UAS Datalink LS key")
    try:
        length, start = _ber_length(packet, 16)
    except IndexError:
        raise KlvDecodeError("truncated", f"packet of {len(packet)} bytes ends inside its length") from None
    if length > MAX_PACKET:
        raise KlvDecodeError("bad_length", f"length {length} is over {MAX_PACKET}")
    end = start + length
    if end > len(packet):
        raise KlvDecodeError("truncated", f"length says {length} bytes, {len(packet) - start} came")
    items: dict[int, bytes] = {}
    unknown: list[tuple[int, bytes]] = []
    packet, pos = packet[:end], start       # what follows the packet is none of its business
    while pos < end:
        tag, pos = _oid(packet, pos)
        if pos >= end:
            raise KlvDecodeError("truncated", f"tag {tag} has no length")
        try:
            n, pos = _ber_length(packet, pos)
        except IndexError:
            raise KlvDecodeError("truncated", f"tag {tag}'s length runs past the packet") from None
        if pos + n > end:
            raise KlvDecodeError("bad_length", f"tag {tag} says {n} bytes, {end - pos} are left")
        if tag == 1 and pos + n != end:
            raise KlvDecodeError("malformed", "the checksum (tag 1) is not the last item")
        if tag in NAMED:
            items[tag] = packet[pos:pos + n]
        else:
            unknown.append((tag, packet[pos:pos + n]))
        pos += n
    if 1 not in items or len(items[1]) != 2:
        raise KlvDecodeError("malformed", "no two-byte checksum (tag 1) at the end")
    if verify and checksum(packet[:end - 2]) != int.from_bytes(items[1], "big"):
        raise KlvDecodeError("bad_checksum", f"checksum {items[1].hex()} != computed "
                                             f"{checksum(packet[:end - 2]):04x}")
    return _meta(items, tuple(unknown))


def _meta(items: dict[int, bytes], unknown: tuple[tuple[int, bytes], ...]) -> SensorMetadata:
    def scaled(table: dict[int, _Scaled], tag: int) -> float | None:
        if tag not in items:
            return None
        raw, spec = items[tag], table[tag]
        if len(raw) != spec.size:
            raise KlvDecodeError("malformed", f"tag {tag} ({spec.field}) has {len(raw)} bytes, "
                                              f"ST 0601 says {spec.size}")
        return spec.decode(raw)

    values = {spec.field: scaled(SCALED, tag) for tag, spec in SCALED.items()}
    if 2 in items:
        if len(items[2]) != 8:
            raise KlvDecodeError("malformed", f"time stamp (tag 2) has {len(items[2])} bytes, not 8")
        values["time_us"] = int.from_bytes(items[2], "big")
    if 3 in items:
        values["mission_id"] = items[3].decode("ascii", "replace")
    if 65 in items:
        values["version"] = int.from_bytes(items[65], "big")
    return SensorMetadata(**values, corners=_corners(items, values, scaled), unknown=unknown)


def _corners(items, values, scaled) -> tuple[tuple[float, float], ...] | None:
    """Full corners (82-89) when present; else offsets (26-33) added to the frame centre."""
    if all(tag in items for tag in CORNER_FULL):
        pts = [(scaled(CORNER_FULL, 82 + 2 * i), scaled(CORNER_FULL, 83 + 2 * i)) for i in range(4)]
    elif all(tag in items for tag in CORNER_OFFSET):
        lat, lon = values["frame_center_lat"], values["frame_center_lon"]
        if lat is None or lon is None:
            return None
        offsets = [(scaled(CORNER_OFFSET, 26 + 2 * i), scaled(CORNER_OFFSET, 27 + 2 * i)) for i in range(4)]
        pts = [(None if a is None else lat + a, None if b is None else lon + b) for a, b in offsets]
    else:
        return None
    return None if any(a is None or b is None for a, b in pts) else tuple(pts)


def encode(meta: SensorMetadata) -> bytes:
    """`meta` as one UAS LS packet with its checksum; corners go out as full corners (82-89).
    Each real value comes back from `decode` within its tag's quantisation step."""
    def item(tag: int, raw: bytes) -> bytes:
        return _oid_encode(tag) + _ber_encode(len(raw)) + raw

    body = []
    if meta.time_us is not None:
        body.append(item(2, meta.time_us.to_bytes(8, "big")))
    if meta.mission_id is not None:
        body.append(item(3, meta.mission_id.encode("ascii")))
    for tag, spec in SCALED.items():
        value = getattr(meta, spec.field)
        if value is not None:
            body.append(item(tag, spec.encode(value)))
    if meta.version is not None:
        body.append(item(65, bytes([meta.version])))
    for i, (lat, lon) in enumerate(meta.corners or ()):
        body.append(item(82 + 2 * i, CORNER_FULL[82 + 2 * i].encode(lat)))
        body.append(item(83 + 2 * i, CORNER_FULL[83 + 2 * i].encode(lon)))
    body.extend(item(tag, raw) for tag, raw in meta.unknown)
    value = b"".join(body) + b"\x01\x02"
    head = UAS_LS_KEY + _ber_encode(len(value) + 2) + value
    return head + checksum(head).to_bytes(2, "big")


# ---- a byte stream of packets ----

@dataclass
class KlvStats:
    """What a feed's KLV did. Every whole UAS LS packet counts in `packets` and then in exactly
    one of `decoded`, `bad_checksum`, `truncated`, `bad_length`, `malformed`."""
    packets: int = 0
    decoded: int = 0
    bad_checksum: int = 0
    truncated: int = 0
    bad_length: int = 0          # a length that claims more than a packet can hold
    malformed: int = 0           # items that break ST 0601's rules (sizes, checksum position)
    unknown_key: int = 0         # other KLV sets in the stream (skipped by their length)
    garbage_bytes: int = 0       # skipped looking for the next key
    out_of_order: int = 0        # time stamps that went backwards (not applied)

    def rejected(self) -> int:
        return self.bad_checksum + self.truncated + self.bad_length + self.malformed


class KlvSplitter:
    """Whole KLV packets out of a data stream that asynchronous carriage cuts anywhere: bytes are
    kept until a packet is complete, and garbage is skipped to the next universal label. A packet
    with another packet's key inside it was cut short; it counts as truncated and the inner one is
    read instead. Each packet comes with the PTS of the chunk its first byte arrived in."""

    def __init__(self, stats: KlvStats):
        self.stats = stats
        self._buf = bytearray()
        self._chunks: deque[tuple[int, float | None]] = deque()   # (offset in _buf, pts) of each chunk

    def feed(self, data: bytes, pts: float | None = None) -> Iterator[tuple[float | None, bytes]]:
        if data:
            self._chunks.append((len(self._buf), pts))
            self._buf += data
        while (packet := self._next()) is not None:
            yield packet

    def flush(self) -> None:
        """The stream ended: what is left is a cut packet (or garbage)."""
        if self._buf.startswith(UAS_LS_KEY):
            self.stats.packets += 1
            self.stats.truncated += 1
        elif self._buf:
            self.stats.garbage_bytes += len(self._buf)
        self._drop(len(self._buf))

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        while len(self._chunks) > 1 and self._chunks[1][0] <= n:
            self._chunks.popleft()
        if self._chunks:
            self._chunks = deque((max(0, off - n), pts) for off, pts in self._chunks)
        if not self._buf:
            self._chunks.clear()

    def _next(self) -> tuple[float | None, bytes] | None:
        stats, buf = self.stats, self._buf
        while True:
            at = buf.find(UL_PREFIX)
            if at < 0:                      # keep a tail that may be the start of a label
                keep = next((k for k in (3, 2, 1) if buf.endswith(UL_PREFIX[:k])), 0)
                stats.garbage_bytes += len(buf) - keep
                self._drop(len(buf) - keep)
                return None
            if at:
                stats.garbage_bytes += at
                self._drop(at)
            if len(buf) < 17:
                return None
            ours = buf.startswith(UAS_LS_KEY)
            try:
                length, start = _ber_length(buf, 16)
                if length > MAX_PACKET:
                    raise KlvDecodeError("bad_length", f"length {length}")
            except IndexError:
                return None
            except KlvDecodeError:
                if ours:
                    stats.packets += 1
                    stats.bad_length += 1
                else:
                    stats.garbage_bytes += 4
                self._drop(4)
                continue
            inner = buf.find(UAS_LS_KEY, 16, start + length + len(UAS_LS_KEY) - 1)
            if inner > 0:                   # cut short: the next packet begins inside it
                if ours:
                    stats.packets += 1
                    stats.truncated += 1
                else:
                    stats.garbage_bytes += inner
                self._drop(inner)
                continue
            if start + length > len(buf):
                return None
            pts = self._chunks[0][1] if self._chunks else None
            packet = bytes(buf[:start + length])
            self._drop(start + length)
            if ours:
                stats.packets += 1
                return pts, packet
            stats.unknown_key += 1


class KlvReader:
    """Splitter and decoder together, for one feed: bytes in, (pts, metadata) out, damage counted."""

    def __init__(self, stats: KlvStats | None = None):
        self.stats = stats or KlvStats()
        self.splitter = KlvSplitter(self.stats)

    def feed(self, data: bytes, pts: float | None = None) -> list[tuple[float | None, SensorMetadata]]:
        out = []
        for at, packet in self.splitter.feed(data, pts):
            try:
                out.append((at, decode(packet)))
            except KlvDecodeError as e:
                setattr(self.stats, e.kind, getattr(self.stats, e.kind) + 1)
                continue
            self.stats.decoded += 1
        return out


# ---- the stream in a container, and its time line ----

def klv_stream(container):
    """The container's ST 0601 data stream (FFmpeg names stream_type 0x15, and 0x06 with a "KLVA"
    registration descriptor, `klv` / `smpte_klv`), or None."""
    return next((s for s in container.streams if s.type == "data" and s.name in KLV_CODECS), None)


def klv_payload(packet) -> tuple[float | None, bytes]:
    """A demuxed data packet as (PTS in seconds or None, its bytes): what `KlvReader.feed` takes."""
    pts = None if packet.pts is None or packet.time_base is None else float(packet.pts * packet.time_base)
    return pts, bytes(packet)


def read_klv(container) -> Iterator[tuple[float | None, bytes]]:
    """Demux only the KLV stream of an opened container (files, udp://, srt://), as `klv_payload`s."""
    stream = klv_stream(container)
    if stream is None:
        raise LookupError(f"no KLV data stream among {[f'{s.type}/{s.name}' for s in container.streams]}")
    for packet in container.demux(stream):
        if packet.size:
            yield klv_payload(packet)


class SensorTrack:
    """The latest metadata at or before a video time. A packet's time is its PTS (synchronous
    carriage); without one, its precision time stamp measured from the first packet's (anchored at
    that packet's arrival time); without either, its arrival time. Times that go backwards are
    counted in `stats.out_of_order` and not applied. Keeps the last `keep` packets."""

    def __init__(self, stats: KlvStats, keep: int = 512):
        self.stats = stats
        self._times: deque[float] = deque(maxlen=keep)
        self._metas: deque[SensorMetadata] = deque(maxlen=keep)
        self._anchor: tuple[int, float] | None = None      # (time_us, video time) of the first stamp
        self._last_us: int | None = None

    def add(self, meta: SensorMetadata, pts: float | None, arrival: float) -> bool:
        """Record `meta`; False when it went back in time (counted, dropped). `arrival`: the video
        time demuxed when it came."""
        if meta.time_us is not None and self._last_us is not None and meta.time_us < self._last_us:
            self.stats.out_of_order += 1
            return False
        t = pts
        if t is None and meta.time_us is not None:
            self._anchor = self._anchor or (meta.time_us, arrival)
            t = self._anchor[1] + (meta.time_us - self._anchor[0]) / 1e6
        if t is None:
            t = arrival
        if self._times and t < self._times[-1]:
            self.stats.out_of_order += 1
            return False
        if meta.time_us is not None:
            self._last_us = meta.time_us
        self._times.append(t)
        self._metas.append(meta)
        return True

    def at(self, t: float) -> SensorMetadata | None:
        i = bisect.bisect_right(self._times, t)
        return self._metas[i - 1] if i else None

"""ST 0601 KLV: decode and encode, a damaged stream counted and never raised, metadata lined up with
video, an MPEG-TS drone feed written, read back and sent over UDP and SRT on loopback, and a real sample."""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import fields, replace
from pathlib import Path

import av
import numpy as np
import pytest

from stream.ingest.klv import (CORNER_FULL, SCALED, UAS_LS_KEY, KlvDecodeError, KlvReader, KlvStats,
                               SensorTrack, _ber_encode, _oid_encode, checksum, decode, encode, klv_payload,
                               klv_stream, read_klv)
from stream.ingest.stanag import write_stanag
from stream.types import SensorMetadata
from tests.servers import free_port

MISB = Path(__file__).resolve().parents[1] / "fixtures" / "misb"

META = SensorMetadata(
    time_us=1_700_000_000_000_000, mission_id="HAWK 7", platform_heading=271.5, platform_pitch=-3.2,
    platform_roll=12.0, sensor_lat=52.1234567, sensor_lon=-1.7654321, sensor_alt=420.0, hfov=30.0, vfov=17.0,
    sensor_rel_az=45.0, sensor_rel_el=-60.0, sensor_rel_roll=0.5, slant_range=850.0, target_width=300.0,
    frame_center_lat=52.128, frame_center_lon=-1.760, frame_center_elev=95.0,
    corners=((52.13, -1.765), (52.13, -1.755), (52.126, -1.755), (52.126, -1.765)), version=17)


def raw_packet(items: list[tuple[int, bytes]], *, long_length: bool = False) -> bytes:
    """A UAS LS packet of exactly these items (tags BER-OID), with a correct checksum."""
    body = b"".join(_oid_encode(t) + _ber_encode(len(v)) + v for t, v in items) + b"\x01\x02"
    n = len(body) + 2
    head = UAS_LS_KEY + (b"\x82" + n.to_bytes(2, "big") if long_length else _ber_encode(n)) + body
    return head + checksum(head).to_bytes(2, "big")


def step(tag_field: str) -> float:
    spec = next(s for s in SCALED.values() if s.field == tag_field)
    lo, hi = spec.span
    return (spec.hi - spec.lo) / (hi - lo)


def assert_close(got: SensorMetadata, want: SensorMetadata) -> None:
    for f in fields(SensorMetadata):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if f.name == "corners" and b is not None:
            assert np.allclose(a, b, atol=360 / 2 ** 32), (a, b)
        elif isinstance(b, float):
            assert abs(a - b) <= step(f.name) / 2 + 1e-9, (f.name, a, b)
        else:
            assert a == b, f.name


# ---- the real sample ----

def test_misb_sample_decodes_to_the_values_klvdata_and_st0601_give():
    packet = (MISB / "DynamicOnlyMISMMSPacketData.bin").read_bytes()
    meta = decode(packet)
    # klvdata 0.0.3 prints these for the same file; ST 0601's worked examples round them
    assert meta.time_us == 1231798102000000            # 2009-01-12 22:08:22 UTC
    assert meta.platform_heading == pytest.approx(159.97436484321355, abs=1e-9)
    assert meta.sensor_lat == pytest.approx(60.176822966978335, abs=1e-12)
    assert meta.sensor_lon == pytest.approx(128.42675904204452, abs=1e-12)
    assert meta.sensor_alt == pytest.approx(14190.719462882427, abs=1e-6)
    assert meta.sensor_rel_el == pytest.approx(-168.79232483394085, abs=1e-9)
    assert meta.slant_range == pytest.approx(68590.98329874477, abs=1e-6)
    assert meta.frame_center_lat == pytest.approx(-10.542388633146132, abs=1e-12)
    assert meta.frame_center_lon == pytest.approx(29.15789012292302, abs=1e-12)
    assert meta.frame_center_elev == pytest.approx(3216.037, abs=0.01)
    assert meta.version == 6 and meta.corners is None and meta.unknown == ()
    assert encode(meta) == packet       # same items, same order: the very bytes


def test_misb_sample_whose_checksum_the_standard_got_wrong_is_counted_not_raised():
    packet = (MISB / "DynamicConstantMISMMSPacketData.bin").read_bytes()
    reader = KlvReader()
    assert reader.feed(packet) == []
    assert (reader.stats.packets, reader.stats.bad_checksum) == (1, 1)
    meta = decode(packet, verify=False)
    assert meta.mission_id == "Mission 12" and meta.sensor_rel_roll == pytest.approx(176.86543764939194)
    assert [tag for tag, _ in meta.unknown] == [10, 11, 12, 48, 94]     # designation, sensor, datum, 0102, MIIS
    assert meta.unknown[0][1] == b"Predator"


# ---- one packet ----

def test_round_trip_keeps_every_field_within_its_quantisation():
    rng = random.Random(7)
    assert_close(decode(encode(META)), META)
    for _ in range(200):
        values = {spec.field: rng.uniform(spec.lo, spec.hi) for spec in SCALED.values()}
        corners = tuple((rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(4))
        meta = SensorMetadata(time_us=rng.getrandbits(63), corners=corners, **values)
        assert_close(decode(encode(meta)), meta)


def test_st0601_worked_examples_for_full_and_offset_corners():
    centre = [(23, bytes.fromhex("f101a229")), (24, bytes.fromhex("14bc082b"))]
    full = [(82, bytes.fromhex("f0f41244")), (83, bytes.fromhex("14b679b9"))] + \
        [(tag, CORNER_FULL[tag].encode(0.0)) for tag in range(84, 90)]
    assert decode(raw_packet(centre + full)).corners[0] == pytest.approx((-10.579637999887, 29.1273677986333))
    offsets = [(26, bytes.fromhex("c06e")), (27, bytes.fromhex("cbe9"))] + [(tag, b"\x00\x00") for tag in range(28, 34)]
    meta = decode(raw_packet(centre + offsets))
    assert meta.corners[0] == pytest.approx((-10.579637999887, 29.1273677986333), abs=2.3e-6)
    assert meta.corners[2] == pytest.approx((meta.frame_center_lat, meta.frame_center_lon))
    assert decode(raw_packet(offsets)).corners is None      # offsets without a centre mean nothing


def test_reserved_error_values_decode_to_none():
    meta = decode(raw_packet([(13, b"\x80\x00\x00\x00"), (6, b"\x80\x00"), (14, b"\x7f\xff\xff\xff")]))
    assert meta.sensor_lat is None and meta.platform_pitch is None and meta.sensor_lon == 180.0


def test_ber_oid_tags_long_lengths_and_unknown_items_are_kept():
    blob = bytes(range(200))                     # 200 bytes: its length needs BER long form
    packet = raw_packet([(2, (5).to_bytes(8, "big")), (300, b"\xaa"), (95, blob), (65, b"\x11")], long_length=True)
    meta = decode(packet)
    assert (meta.time_us, meta.version) == (5, 17)
    assert meta.unknown == ((300, b"\xaa"), (95, blob))
    assert decode(encode(meta)) == meta


@pytest.mark.parametrize("damage, kind", [
    (lambda p: p[:-5] + bytes([p[-5] ^ 1]) + p[-4:], "bad_checksum"),
    (lambda p: p[:40], "truncated"),
    (lambda p: p[:16] + b"\x84\x7f\xff\xff\xff" + p[17:], "bad_length"),
    (lambda p: b"\x06\x0e\x2b\x34\x02\x0b\x01\x01\x0e\x01\x03\x03" + p[12:], "unknown_key"),
    (lambda p: raw_packet([(13, b"\x01\x02\x03")]), "malformed"),
])
def test_decode_names_the_damage(damage, kind):
    with pytest.raises(KlvDecodeError) as e:
        decode(damage(encode(META)))
    assert e.value.kind == kind


# ---- a stream of packets ----

def test_reader_splits_packets_cut_and_joined_anywhere_and_skips_garbage():
    packets = [encode(replace(META, time_us=META.time_us + i)) for i in range(20)]
    stream = b"\x00junk" + b"".join(packets[:10]) + b"\xff" * 7 + b"".join(packets[10:])
    reader, got = KlvReader(), []
    rng = random.Random(3)
    pos = 0
    while pos < len(stream):
        n = rng.randint(1, 300)
        got += reader.feed(stream[pos:pos + n], pts=pos / 1000)
        pos += n
    assert [m.time_us for _, m in got] == [META.time_us + i for i in range(20)]
    assert reader.stats.garbage_bytes == 12 and reader.stats.decoded == reader.stats.packets == 20
    assert all(pts is not None for pts, _ in got)


def test_a_cut_packet_followed_by_a_whole_one_counts_truncated_and_reads_the_next():
    whole = encode(META)
    reader = KlvReader()
    got = reader.feed(whole[:60] + whole + whole[:100] + b"\x06\x0e\x2b\x34\x02" + whole)
    reader.splitter.flush()
    assert len(got) == 2 and got[0][1] == got[1][1]
    assert reader.stats.truncated == 2 and reader.stats.packets == 4


def test_oversized_length_is_counted_and_the_stream_resynchronises():
    whole = encode(META)
    reader = KlvReader()
    got = reader.feed(UAS_LS_KEY + b"\x83\xff\xff\xff" + whole)
    assert len(got) == 1 and reader.stats.bad_length == 1


def test_fuzzed_streams_never_raise_and_every_packet_is_counted_once():
    rng = random.Random(11)
    good = [encode(replace(META, time_us=META.time_us + i, platform_heading=float(i))) for i in range(50)]
    reader = KlvReader()
    for i in range(2000):
        packet = bytearray(rng.choice(good))
        how = i % 4
        if how == 0:        # flipped bytes
            for _ in range(rng.randint(1, 4)):
                packet[rng.randrange(len(packet))] = rng.randrange(256)
        elif how == 1:      # cut
            packet = packet[:rng.randrange(len(packet))]
        elif how == 2:      # random bytes behind a real key
            packet = UAS_LS_KEY + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        reader.feed(bytes(packet))
    reader.splitter.flush()
    s = reader.stats
    assert s.packets == s.decoded + s.rejected() and s.packets >= 1500
    assert s.decoded >= 500 and s.bad_checksum > 0 and s.truncated > 0


# ---- time ----

def test_sensor_track_gives_the_latest_metadata_at_or_before_a_frame_and_refuses_going_back():
    stats = KlvStats()
    track = SensorTrack(stats)
    a, b, c = (replace(META, time_us=META.time_us + k * 100_000) for k in range(3))
    assert track.add(a, pts=1.0, arrival=0.9) and track.add(b, pts=1.1, arrival=1.0)
    assert not track.add(a, pts=1.2, arrival=1.1)            # its time stamp went backwards
    assert track.add(c, pts=1.2, arrival=1.2)
    assert track.at(0.5) is None and track.at(1.0) is a and track.at(1.15) is b and track.at(9) is c
    assert stats.out_of_order == 1


def test_sensor_track_without_pts_times_packets_by_their_precision_time_stamps():
    track = SensorTrack(KlvStats())
    first, later = replace(META, time_us=10_000_000), replace(META, time_us=12_500_000)
    track.add(first, pts=None, arrival=3.0)
    track.add(later, pts=None, arrival=3.1)        # arrived early: stamped 2.5 s after the first
    assert track.at(5.4) is first and track.at(5.5) is later
    bare = SensorTrack(KlvStats())
    bare.add(SensorMetadata(mission_id="x"), pts=None, arrival=2.0)
    assert bare.at(1.9) is None and bare.at(2.0).mission_id == "x"


# ---- MPEG-TS ----

def frames(n: int) -> list[np.ndarray]:
    return [np.full((96, 128, 3), (i * 9) % 256, np.uint8) for i in range(n)]


def metas(n: int) -> list[SensorMetadata]:
    return [replace(META, time_us=META.time_us + i * 33_333, platform_heading=float(i)) for i in range(n)]


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stanag") / "feed.ts"
    assert write_stanag(str(path), frames(60), metas(60), fps=30) == 60
    return path


def test_written_feed_reads_back_with_video_and_every_packet_in_sync(feed):
    with av.open(str(feed)) as c:
        assert klv_stream(c) is not None and c.streams.video[0].codec_context.name == "h264"
        reader, track, frame_pts, n_frames = KlvReader(), SensorTrack(KlvStats()), [], 0
        video = c.streams.video[0]
        for packet in c.demux(video, klv_stream(c)):
            if packet.stream is video:
                n_frames += len(packet.decode())
                if packet.pts is not None:
                    frame_pts.append(float(packet.pts * packet.time_base))
            elif packet.size:
                pts, data = klv_payload(packet)
                for pts, meta in reader.feed(data, pts):
                    track.add(meta, pts, arrival=frame_pts[-1] if frame_pts else 0.0)
    assert n_frames == 60 and reader.stats.decoded == 60 and reader.stats.rejected() == 0
    for i, t in enumerate(sorted(frame_pts)):
        assert_close(track.at(t), metas(60)[i])


def test_read_klv_says_when_a_file_has_no_klv(tmp_path):
    path = tmp_path / "plain.ts"
    with av.open(str(path), "w", format="mpegts") as out:      # a camera's TS: video only
        video = out.add_stream("mpeg2video", rate=10)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        for image in frames(5):
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(video.encode(None))
    with av.open(str(path)) as c, pytest.raises(LookupError, match="no KLV data stream"):
        next(read_klv(c))


def test_klv_arrives_over_udp_on_loopback(feed):
    port = free_port(socket.SOCK_DGRAM)
    sender = subprocess.Popen([shutil.which("ffmpeg"), "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                               "-i", str(feed), "-map", "0", "-c", "copy", "-f", "mpegts",
                               f"udp://127.0.0.1:{port}?pkt_size=1316"], stderr=subprocess.PIPE)
    try:
        reader = KlvReader()
        deadline = time.monotonic() + 10
        with av.open(f"udp://127.0.0.1:{port}?timeout=5000000", options={"probesize": "200000"}) as c:
            for pts, data in read_klv(c):
                reader.feed(data, pts)
                if reader.stats.decoded >= 10 or time.monotonic() > deadline:
                    break
        assert reader.stats.decoded >= 10 and reader.stats.bad_checksum == 0
    finally:
        sender.kill()
        sender.wait()


def test_a_camera_reading_srt_gets_the_klv_through_its_ffmpeg_relay(feed):
    """PyAV's FFmpeg has no SRT, so VideoSource reads srt:// through the system ffmpeg
    (stream/ingest/source.py `_open_relay`), which must relay the data stream with the video."""
    from stream.config import IngestConfig
    from stream.ingest.source import VideoSource
    port = free_port(socket.SOCK_DGRAM)
    sender = subprocess.Popen([shutil.which("ffmpeg"), "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                               "-i", str(feed), "-map", "0", "-c", "copy", "-f", "mpegts",
                               f"srt://127.0.0.1:{port}?mode=listener"])
    source = VideoSource("drone", f"srt://127.0.0.1:{port}?mode=caller", is_file=False,
                         ingest=IngestConfig(open_timeout_s=10, watchdog_s=5, probe_s=0.5))
    try:
        got = []
        for frame in source.frames():
            got.append(frame)
            if len(got) >= 30:
                source.stop.set()
        assert source.klv.decoded >= 20 and source.klv.rejected() == 0, source.klv
        assert got[-1].sensor is not None and got[-1].sensor.mission_id == META.mission_id
    finally:
        sender.kill()
        sender.wait()
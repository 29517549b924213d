"""A drone's feed end to end: a STANAG 4609 stream (H.264 + MISB ST 0601 KLV in MPEG-TS) sent
over UDP on loopback, the pipeline reading it as a camera, its alert placed on the ground, and a
Cursor-on-Target event for it received on loopback as TAK would."""
from __future__ import annotations

import math
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET

from dataclasses import replace

import numpy as np
import pytest

from bench.drone_flight import Flight, SyntheticFlight, video_feed
from stream.ingest.klv import encode
from stream.ingest.stanag import write_stanag
from stream.ingest.source import VideoSource
from tests.harness import Subscriber, all_stopped, start, write_config

TARGET = (45.0, 7.0, 50.0)
TWITCHY = {"open_threshold": 1e-4, "close_threshold": 0.0, "min_duration_s": 1.0, "max_event_s": 6.0}


@pytest.fixture(scope="module")
def drone_ts(tmp_path_factory, vtest):
    """vtest.avi's first 16 s seen by a drone hovering 40 m up, 45 degrees off nadir, over TARGET."""
    path = tmp_path_factory.mktemp("drone") / "drone.ts"
    video_feed(str(vtest), str(path), Flight(altitude_m=40.0, off_nadir_deg=45.0, hfov_deg=60.0, target=TARGET),
               seconds=16.0)
    return path


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    north = (a[0] - b[0]) * 111_320.0
    east = (a[1] - b[1]) * 111_320.0 * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_frame_of_a_drone_file_carries_the_metadata_sent_with_it(drone_ts):
    source = VideoSource("drone", str(drone_ts), is_file=True, replay="fast")
    frames = list(source.frames())
    assert len(frames) == 16 * 10 and all(f.sensor is not None for f in frames)
    assert source.klv.packets == source.klv.decoded == len(frames) and source.klv.rejected() == 0
    times = [f.sensor.time_us for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)    # each frame its own packet, in order
    centre = (frames[0].sensor.frame_center_lat, frames[0].sensor.frame_center_lon)
    assert metres(centre, TARGET[:2]) < 1.0


def test_damaged_metadata_is_counted_and_never_stops_the_video(tmp_path):
    """A feed whose KLV has a bad checksum, a truncated packet, random bytes, an impossible length
    and a time stamp going back: every frame decodes, each damage is one count, and each frame
    carries the last good metadata."""
    flight = SyntheticFlight(Flight(frames=12, fps=10.0, image_size=(320, 180)))
    frames = list(flight)
    good = [encode(f.meta) for f in frames]
    bad_sum = bytearray(good[2])
    bad_sum[-1] ^= 0xFF
    too_long = good[7][:16] + b"\x83\xff\xff\xff" + good[7][17:]
    rng = np.random.default_rng(0)
    packets = [good[0], good[1], bytes(bad_sum), good[3][:40], rng.bytes(120), good[5],
               encode(replace(frames[6].meta, time_us=frames[0].meta.time_us)), too_long, good[8], None, good[10], good[11]]
    path = tmp_path / "damaged.ts"
    write_stanag(str(path), [f.image for f in frames], packets, 10.0)
    source = VideoSource("drone", str(path), is_file=True, replay="fast")
    out = list(source.frames())
    assert len(out) == 12
    k = source.klv
    assert (k.decoded, k.bad_checksum, k.out_of_order) == (7, 1, 1), k     # the one gone back decodes, is not applied
    assert k.truncated + k.bad_length + k.malformed >= 2 and k.garbage_bytes > 0, k
    # each frame: the last good packet at or before it (frame 2 keeps 1's, frames 3-4 too, 6-7 keep 5's, 9 keeps 8's)
    keep = [0, 1, 1, 1, 1, 5, 5, 5, 8, 8, 10, 11]
    assert [o.sensor.time_us for o in out] == [frames[i].meta.time_us for i in keep]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to stream the feed")
def test_a_drone_feed_over_udp_gives_an_alert_on_the_ground_and_a_cot_event(tmp_path, drone_ts, models_dir, free_endpoint):
    video_port, cot = free_udp_port(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cot.bind(("127.0.0.1", 0))
    cot.settimeout(1.0)
    cfg = write_config(tmp_path, {"drone": {"url": f"udp://127.0.0.1:{video_port}", "duration_s": 14.0}},
                       free_endpoint, models_dir, events=TWITCHY)
    text = cfg.read_text().replace("alerts:\n", f"alerts:\n  cot:\n    endpoint: udp://127.0.0.1:{cot.getsockname()[1]}\n", 1)
    cfg.write_text(text)
    sub = Subscriber(free_endpoint)
    proc = start(cfg)
    sender = None
    try:
        sub.receive_until(lambda m: any(x["type"] == "health" and x["camera"] == "drone" for _, x in m), 120)
        sender = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(drone_ts), "-map", "0",
                                   "-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{video_port}?pkt_size=1316"])
        sub.receive_until(all_stopped(["drone"]), 120)
    finally:
        if sender is not None:
            sender.kill()
        proc.wait(60)
        sub.close()
    opened = [a for a in sub.of("alert", "drone") if a["state"] == "open"]
    assert opened, proc.stderr.read()[-3000:]
    placed = [a for a in sub.of("alert", "drone") if "geometry" in a]
    assert placed
    features = placed[0]["geometry"]["features"]
    event = next(f for f in features if f["properties"]["role"] == "event")
    lon, lat, _ = event["geometry"]["coordinates"]
    assert metres((lat, lon), TARGET[:2]) < 60.0        # vtest's people, in a footprint about 100 m deep
    assert 0 < event["properties"]["ce"] < 30.0
    assert any(f["properties"]["role"] == "footprint" and f["geometry"]["type"] == "Polygon" for f in features)
    assert sum(f["properties"]["role"] == "person" for f in features) >= 1
    health = [h for h in sub.of("health", "drone") if h.get("klv_packets")]
    assert health and health[-1]["klv_damaged"] == 0
    events = []
    while True:
        try:
            events.append(ET.fromstring(cot.recvfrom(65536)[0]))
        except socket.timeout:
            break
    cot.close()
    mine = [e for e in events if e.get("uid", "").endswith(placed[0]["alert_id"])]
    assert mine, [e.get("uid") for e in events]
    point = mine[0].find("point")
    assert abs(float(point.get("lat")) - lat) < 1e-6 and abs(float(point.get("lon")) - lon) < 1e-6

"""Evidence files: the per-camera frame ring, the keyframe with its overlay, the clip, hashes,
retention, and the events that carry them. Real JPEG and H.264 encoding, real footage."""
from __future__ import annotations

import hashlib
import os
import time

import av
import cv2
import numpy as np
import pytest

from stream.alerts.evidence import EvidenceWriter
from stream.frames import FrameRing
from stream.config import EventsConfig, EvidenceConfig
from stream.detection.events import EventTracker
from stream.types import Alert, Evidence, PersonTrack, SceneGraph, SecondScore, Verdict


def feed(ring: FrameRing, images: list[np.ndarray], seconds: float, fps: float = 10.0, every: int = 5):
    """`seconds` of a camera at `fps` (cycling through `images`); every `every`-th frame is sampled."""
    for k in range(int(seconds * fps)):
        ts = k / fps
        ring.offer(ts, 1e9 + ts, lambda k=k: images[k % len(images)], sampled=k % every == 0)


def test_the_ring_keeps_its_grid_and_every_sampled_frame_for_buffer_s(vtest_frames):
    ring = FrameRing("lobby", EvidenceConfig(fps=2.5, buffer_s=6.0, pre_s=1, post_s=1))
    feed(ring, vtest_frames, 20.0, every=3)      # 10 fps in; the ring's grid takes every 4th, the windows every 3rd
    kept = [round(f.ts * 10) for f in ring.between(0, 100)]
    assert kept == [k for k in range(138, 200) if k % 4 == 0 or k % 3 == 0]   # 6 s before the newest kept (19.8)
    decoded = cv2.imdecode(np.frombuffer(ring.between(0, 100)[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == vtest_frames[0].shape


def test_waiting_for_the_post_roll_ends_when_the_stream_ends():
    ring = FrameRing("lobby", EvidenceConfig())
    t0 = time.monotonic()
    ring.end()
    ring.wait_for(1e9, timeout_s=5.0)
    assert time.monotonic() - t0 < 1.0


def scene_and_verdict(frame_size, peak_second: int) -> tuple[SceneGraph, Verdict]:
    """A window 4-8 s with one person standing in a box, sampled at 2 fps; second `peak_second` scores highest."""
    ts = np.arange(4.0, 8.0, 0.5)
    box = np.array([300.0, 200.0, 360.0, 360.0])
    kp = np.zeros((len(ts), 17, 3))
    kp[:, :, 0], kp[:, :, 1], kp[:, :, 2] = 330.0, np.linspace(210, 350, 17), 0.9
    track = PersonTrack(7, np.ones(len(ts), bool), np.tile(box, (len(ts), 1)), np.full(len(ts), 0.9), kp)
    scene = SceneGraph("lobby", 2, 4.0, 8.0, ts, 1e9 + ts, frame_size, (track,))
    secs = tuple(SecondScore(float(s), float(s + 1), 0.9 if s == peak_second else 0.3, "fall") for s in range(4, 8))
    verdict = Verdict("lobby", 2, 4.0, 8.0, 1e9 + 4, 1e9 + 8, 0.9, secs, {"fall": 0.9}, "", "baseline", 1)
    return scene, verdict


def opened(start=5.0, end=7.0) -> Alert:
    return Alert("0b6f1a52-aaaa-4bbb-8ccc-123456789abc", "lobby", "open", "fall", 0.9, start, end,
                 1e9 + start, 1e9 + end, "", 2)


@pytest.fixture()
def written(tmp_path, vtest_frames):
    cfg = EvidenceConfig(folder=tmp_path / "evidence", fps=5.0, pre_s=2.0, post_s=1.0, wait_s=5.0)
    writer = EvidenceWriter(cfg)
    ring = writer.ring("lobby")
    frame = vtest_frames[0]
    feed(ring, [frame], 12.0)
    scene, verdict = scene_and_verdict((frame.shape[1], frame.shape[0]), peak_second=6)
    assert writer.submit(scene, verdict, opened())
    camera, alert_id, evidence = writer.results.get(timeout=60)
    writer.close()
    return frame, evidence, cfg


def test_an_opened_alert_gets_a_keyframe_with_the_overlay_and_a_clip_around_its_span(written):
    frame, evidence, cfg = written
    assert [e.kind for e in evidence] == ["keyframe", "clip"]
    for e in evidence:
        data = open(e.path, "rb").read()
        assert hashlib.sha256(data).hexdigest() == e.sha256 and len(data) == e.bytes
        assert os.path.dirname(e.path).startswith(str(cfg.folder / "lobby"))
    key = cv2.imread(evidence[0].path)
    assert key.shape == frame.shape
    diff = np.abs(key.astype(int) - frame.astype(int)).sum(axis=2)
    assert diff[200:360, 300:362].mean() > 3 * diff[400:, :250].mean() + 5   # the person's box and skeleton are drawn
    with av.open(evidence[1].path) as c:
        times = [f.time for f in c.decode(video=0)]
        size = (c.streams.video[0].width, c.streams.video[0].height)
    # [5 - 2, 7 + 1] s: the ring's 5/s grid plus the 2/s sampled frames, at their own times
    want = [k / 10 for k in range(30, 81) if k % 2 == 0 or k % 5 == 0]
    assert len(times) == len(want) and size == (frame.shape[1], frame.shape[0])
    assert np.allclose(np.array(times) - times[0], np.array(want) - want[0], atol=0.002)


def test_no_frames_of_the_span_means_no_evidence_and_no_files(tmp_path):
    writer = EvidenceWriter(EvidenceConfig(folder=tmp_path / "ev", wait_s=0.1))
    ring = writer.ring("lobby")
    ring.end()
    scene, verdict = scene_and_verdict((64, 64), 5)
    writer.submit(scene, verdict, opened())
    assert writer.results.get(timeout=30)[2] == ()
    assert not writer.submit(scene, verdict, opened().__class__(**{**opened().__dict__, "camera": "other"}))
    writer.close()
    assert not [p for p in (tmp_path / "ev").rglob("*") if p.is_file()]


def test_retention_removes_old_files_then_the_oldest_beyond_max_mb(tmp_path):
    folder = tmp_path / "ev"
    files = []
    for k in range(6):
        p = folder / "lobby" / f"2026-11-2{k}" / f"a{k}.mp4"
        p.parent.mkdir(parents=True)
        p.write_bytes(os.urandom(300_000))
        os.utime(p, (time.time() - (6 - k) * 3600, time.time() - (6 - k) * 3600))   # oldest first
        files.append(p)
    os.utime(files[0], (time.time() - 40 * 86400,) * 2)
    EvidenceWriter(EvidenceConfig(folder=folder, max_age_days=30, max_mb=1.0)).close()   # retention on open
    left = sorted(p.name for p in folder.rglob("*.mp4"))
    assert left == ["a3.mp4", "a4.mp4", "a5.mp4"]                  # 0 by age; 1, 2 by size (3 x 0.3 MB fit)
    assert not (folder / "lobby" / "2026-11-20").exists()          # emptied folders go too


def test_the_tracker_sends_evidence_as_an_update_and_the_close_carries_it():
    tracker = EventTracker("cam", EventsConfig(open_threshold=0.6, close_threshold=0.4, min_duration_s=1.0,
                                               close_after_s=1.0, cooldown_s=0.0))
    secs = lambda scores, t0: tuple(SecondScore(t0 + i, t0 + i + 1, s, "fall") for i, s in enumerate(scores))  # noqa: E731
    v = lambda k, scores: Verdict("cam", k, 4.0 * k, 4.0 * k + 4, 0, 0, max(scores), secs(scores, 4.0 * k),  # noqa: E731
                                  {}, "", "baseline", 1)
    [op] = tracker.update(v(0, [0.1, 0.9, 0.9, 0.9]))
    ev = (Evidence("keyframe", "/x.jpg", "0" * 64, 10), Evidence("clip", "/x.mp4", "1" * 64, 20))
    assert tracker.evidenced("not-this-one", ev) is None
    update = tracker.evidenced(op.alert_id, ev)
    assert op.evidence == () and update.state == "update" and update.evidence == ev
    [close] = tracker.update(v(1, [0.1, 0.1, 0.1, 0.1]))
    assert close.state == "close" and close.evidence == ev
    assert tracker.evidenced(op.alert_id, ev) is None                # closed: nothing more to say


def test_a_buffer_that_cannot_hold_the_clip_is_refused():
    with pytest.raises(ValueError, match="buffer_s"):
        EvidenceConfig(pre_s=20, post_s=20, buffer_s=30)

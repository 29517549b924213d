"""Credentials never leave the process: cameras whose URLs carry secrets in every form, run by
the real command line against real peers, and every byte the run wrote or published, and the
process table while it ran, searched for them."""
from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from stream.ingest.clips import camera_clip
from tests.harness import Subscriber, start, write_config
from tests.servers import FfmpegSender, RtspServer, free_port

pytestmark = pytest.mark.slow
SECRETS = ["S3cr@t/x1", "S3cr", "tok3n-zz81", "passphr4se-qq7", "pw-hh42", "k3y-jj93", "sig-mm55"]


def process_table(exclude: set[int]) -> str:
    rows = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
    return "\n".join(r for r in rows if int(r.split(None, 1)[0]) not in exclude)


def test_no_secret_of_any_camera_url_reaches_logs_messages_files_or_the_process_table(
        tmp_path, vtest, models_dir, free_endpoint):
    clip = camera_clip(vtest, tmp_path / "cam.mp4", 20.0)
    srt_port = free_port()
    with RtspServer({"/lobby": clip}) as rtsp, \
            FfmpegSender(clip, f"srt://127.0.0.1:{srt_port}?mode=listener&passphrase=passphr4se-qq7") as sender:
        cams = {
            "door": {"url": rtsp.url("/lobby", "admin:S3cr@t/x1") + "?token=tok3n-zz81"},
            "drone": {"url": f"srt://127.0.0.1:{srt_port}?mode=caller&passphrase=passphr4se-qq7&latency=200"},
            "gate": {"url": f"http://viewer:pw-hh42@127.0.0.1:{free_port()}/live.m3u8?api_key=k3y-jj93"},
            "yard": {"url": f"rtsp://127.0.0.1:{free_port()}/s?X-Amz-Signature=sig-mm55&Password=pw-hh42"},
        }
        config = write_config(tmp_path, cams, free_endpoint, models_dir, ingest={"backoff_initial_s": 0.2,
                              "backoff_max_s": 1.0, "probe_s": 0.5, "open_timeout_s": 3})
        sub = Subscriber(free_endpoint)
        proc = start(config, "--duration", "8", "--log-level", "DEBUG")
        tables: list[str] = []
        stop = threading.Event()

        def watch():
            while not stop.wait(0.3):
                tables.append(process_table({sender.proc.pid}))
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            out, err = proc.communicate(timeout=180)
        finally:
            stop.set()
            watcher.join()
        sub.receive_until(lambda _: not sub.sock.poll(500), 30)     # everything it queued
        sub.close()
    relayed = [t for t in tables if "ffmpeg" in t and "concat" in t]
    assert relayed, "the SRT relay never ran: the process table proves nothing"
    seen = {m["camera"]: m for _, m in sub.messages if m["type"] == "health"}
    assert {"door", "drone", "gate", "yard"} <= set(seen), err[-3000:]
    assert any(m["state"] == "streaming" for _, m in sub.messages if m.get("camera") == "drone")
    assert "***" in seen["gate"]["target"] and "***" in out + err
    written = b"".join(p.read_bytes() for p in Path(tmp_path).rglob("*") if p.is_file() and p.suffix != ".mp4")
    rows = sqlite3.connect(tmp_path / "outbox.sqlite").execute("SELECT body FROM alerts").fetchall()
    everything = {"stdout": out, "stderr": err, "messages": repr(sub.messages), "process table": "\n".join(tables),
                  "files": written.decode(errors="replace"), "outbox": repr(rows), "config": ""}
    everything["files"] = everything["files"].replace(config.read_text(), "")   # the config itself holds them
    for where, text in everything.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into the {where}"

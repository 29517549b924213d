"""What a valid config needs from the machine: `hawkwatch check` and the pipeline's start refuse a
port already taken and a path that cannot be written, naming the key, before any model loads."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from stream.app import build_pipeline
from stream.config import ConfigError, load_config
from stream.preflight import problems
from tests.harness import ROOT, write_config


def taken_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_a_port_in_use_and_an_outbox_that_cannot_be_written_are_named(tmp_path, clip12, models_dir, free_endpoint):
    holder, port = taken_port()
    with holder:
        (tmp_path / "not-a-folder").write_text("a file where a folder should be")
        config = write_config(tmp_path, {"lobby": clip12}, f"tcp://127.0.0.1:{port}", models_dir,
                              alerts={"endpoint": f"tcp://127.0.0.1:{port}", "query_endpoint": None,
                                      "chat_endpoint": None,
                                      "outbox": {"path": str(tmp_path / "not-a-folder" / "outbox.sqlite")}})
        cfg = load_config(config)
        assert problems(cfg) == [
            f"alerts.endpoint: tcp://127.0.0.1:{port}: port {port} is already in use (another pipeline, or another "
            "service)",
            f"alerts.outbox.path: {tmp_path / 'not-a-folder' / 'outbox.sqlite'}: {tmp_path / 'not-a-folder'} is a "
            "file, not a folder"]
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=f"alerts.endpoint: tcp://127.0.0.1:{port}: port {port} is already in use"):
            build_pipeline(cfg)
        assert time.monotonic() - t0 < 5                  # before any model is loaded
        bad = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "check", str(config)],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and f"port {port} is already in use" in bad.stderr, bad.stderr
    free = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir)
    assert problems(load_config(free)) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any folder")
def test_a_folder_this_user_cannot_write_is_named(tmp_path, clip12, models_dir, free_endpoint):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir,
                          alerts={"endpoint": free_endpoint, "outbox": {"path": str(locked / "state" / "o.sqlite")}})
    assert problems(load_config(config)) == [
        f"alerts.outbox.path: {locked / 'state' / 'o.sqlite'}: it does not exist, and {locked} is not writable by "
        "this user to create it"]


def test_a_camera_url_with_a_port_out_of_range_or_no_host_is_a_config_error(tmp_path, models_dir, free_endpoint):
    for url, why in (("rtsp://192.0.2.10:99999/stream1", "not a valid URL: Port out of range 0-65535"),
                     ("rtsp:///stream1", "the URL names no host")):
        config = write_config(tmp_path, {"gate": {"url": url}}, free_endpoint, models_dir)
        with pytest.raises(ConfigError, match=f"cameras.gate.url: {why}"):
            load_config(config)
    config = write_config(tmp_path, {"drone": {"url": "udp://@:5000"}}, free_endpoint, models_dir)
    assert load_config(config).cameras["drone"].url == "udp://@:5000"      # listening: no host

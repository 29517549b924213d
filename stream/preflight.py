"""What a valid config still needs from the machine it runs on: the ports it binds free, and the
folders it writes writable. `hawkwatch check` reports them, and the pipeline checks them before it
loads any model, so a port taken by another process or an outbox on a read-only disk is a config
error in a second (exit 2, which the shipped systemd unit does not restart) instead of a failure
after the models have loaded."""
from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from stream.config import HawkwatchConfig


def binds(cfg: HawkwatchConfig) -> list[tuple[str, str, str, int]]:
    """(key, endpoint, host, port) of every TCP endpoint the pipeline binds."""
    a = cfg.alerts
    out = []
    for key, ep in (("alerts.endpoint", a.endpoint), ("alerts.query_endpoint", a.query_endpoint),
                    ("alerts.chat_endpoint", a.chat_endpoint)):
        if ep is not None and ep.startswith("tcp://"):
            host, _, port = ep.removeprefix("tcp://").rpartition(":")
            out.append((key, ep, host, int(port)))
    if cfg.http is not None:
        host, _, port = cfg.http.endpoint.rpartition(":")
        out.append(("http.endpoint", cfg.http.endpoint, host, int(port)))
    return out


def _bind_problem(host: str, port: int) -> str | None:
    """Why a TCP socket cannot bind host:port now, or None."""
    host = host.strip("[]")
    host = "" if host in ("*", "0.0.0.0", "::") else host
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"the host does not resolve ({e.strerror})"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)       # as ZeroMQ and uvicorn bind
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"port {port} is already in use (another pipeline, or another service)"
            if e.errno == errno.EADDRNOTAVAIL:
                return "that address is not one of this machine's"
            if e.errno == errno.EACCES:
                return f"port {port} needs privileges this process does not have (use a port above 1023)"
            return e.strerror or str(e)
    return None


def writes(cfg: HawkwatchConfig) -> list[tuple[str, Path, bool]]:
    """(key, path, is_folder) of everything the pipeline creates or writes."""
    a = cfg.alerts
    out = [("alerts.outbox.path", a.outbox.path, False)]
    if a.evidence.enabled:
        out.append(("alerts.evidence.folder", a.evidence.folder, True))
    if any(cfg.normal_of(c).enabled for c in cfg.cameras):
        out.append(("normal.store", cfg.normal.store, True))
    if any(cfg.records(c) for c in cfg.cameras):
        out.append(("recordings.folder", cfg.recordings.folder, True))
    if cfg.http is not None and cfg.http.zones_file is not None:
        out.append(("http.zones_file", cfg.http.zones_file, False))
    if cfg.http is not None and cfg.http.reviews is not None:
        out.append(("http.reviews", cfg.http.reviews, False))
    return out


def _write_problem(path: Path, folder: bool) -> str | None:
    """Why `path` (a file, or a folder with `folder`) cannot be created or written, or None."""
    path = Path(path)
    if path.exists():
        if folder != path.is_dir():
            return "it is a folder" if path.is_dir() else "it is a file, not a folder"
        if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            return "it is not writable by this user"
        if not folder and not os.access(path.parent, os.W_OK | os.X_OK):
            return f"its folder {path.parent} is not writable by this user (SQLite writes a journal beside it)"
        return None
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"it does not exist, and {parent} is not writable by this user to create it"
    return None


def problems(cfg: HawkwatchConfig) -> list[str]:
    """One line per port that cannot be bound and per path that cannot be written; [] when none."""
    out = []
    for key, ep, host, port in binds(cfg):
        why = _bind_problem(host, port)
        if why:
            out.append(f"{key}: {ep}: {why}")
    for key, path, folder in writes(cfg):
        why = _write_problem(path, folder)
        if why:
            out.append(f"{key}: {path}: {why}")
    return out

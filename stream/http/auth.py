"""Who may use the HTTP API and the console: without `http.token_env` / `http.token_file` the
server listens on loopback only (the config refuses anything else) and lets every request in;
with a token, every request but the sign-in page, the liveness probe and the console's static
files must carry it, as `Authorization: Bearer <token>` or the console's sign-in cookie."""
from __future__ import annotations

import hmac
import os

from fastapi import HTTPException, Request

from stream.config import ConfigError, HttpConfig

COOKIE = "hawkwatch_token"    # the console's sign-in keeps the bearer token here
OPEN_PATHS = {"/login", "/healthz"}   # served without the token (the sign-in page; the liveness probe)


def token_of(cfg: HttpConfig) -> str | None:
    """The bearer token clients must send, or None (loopback only)."""
    if cfg.token_file is not None:
        try:
            token = cfg.token_file.read_text().strip()
        except OSError as e:
            raise ConfigError(f"http.token_file: {cfg.token_file}: {e.strerror or e}") from None
        if not token:
            raise ConfigError(f"http.token_file: {cfg.token_file} is empty")
        return token
    if cfg.token_env is None:
        return None
    token = os.environ.get(cfg.token_env)
    if not token:
        raise ConfigError(f"http.token_env: the environment variable {cfg.token_env} is not set")
    return token


def authorised(request: Request) -> None:
    """The app-wide dependency: a 401 for a request without the app's token, where it has one."""
    token = request.app.state.token
    if token is None or request.url.path in OPEN_PATHS or request.url.path.startswith("/static/"):
        return
    sent = request.headers.get("authorization") or f"Bearer {request.cookies.get(COOKIE, '')}"
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        raise HTTPException(401, "send Authorization: Bearer <token> (the token in http.token_env)",
                            headers={"WWW-Authenticate": "Bearer"})


def token_matches(request: Request, token: str) -> bool:
    """A token typed into the sign-in page is the app's (always, where the app has none)."""
    expected = request.app.state.token
    return expected is None or hmac.compare_digest(token.encode(), expected.encode())

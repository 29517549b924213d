"""Who may use the HTTP API and the console: without `http.token_env` / `http.token_file` the
server listens on loopback only (the config refuses anything else) and lets every request in;
with a token, every request but the sign-in page, the liveness probe and the console's static
files must carry it, as `Authorization: Bearer <token>` or the console's sign-in cookie.

The cookie is not the token: it is a session, its expiry signed with the token (HMAC-SHA256), so
it ends after `http.session_hours` and a stolen cookie never reveals the token. Sign-in allows
SIGN_IN_TRIES wrong tokens a minute from one address; more get 429."""
from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import deque

from fastapi import HTTPException, Request

from stream.config import ConfigError, HttpConfig

COOKIE = "hawkwatch_session"  # the console's sign-in: "<expiry>.<signature>"
SIGN_IN_TRIES = 5             # wrong tokens a minute from one address before 429
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
    sent = request.headers.get("authorization")
    if sent is None and session_valid(token, request.cookies.get(COOKIE, "")):
        return
    if not hmac.compare_digest((sent or "").encode(), f"Bearer {token}".encode()):
        raise HTTPException(401, "send Authorization: Bearer <token> (the token in http.token_env)",
                            headers={"WWW-Authenticate": "Bearer"})


def session(token: str, hours: float, now: float | None = None) -> str:
    """A sign-in cookie's value: when it expires, signed with the token."""
    expiry = str(int((time.time() if now is None else now) + hours * 3600))
    return f"{expiry}.{hmac.new(token.encode(), expiry.encode(), hashlib.sha256).hexdigest()}"


def session_valid(token: str, value: str, now: float | None = None) -> bool:
    expiry, _, signature = value.partition(".")
    if not expiry.isdigit() or int(expiry) <= (time.time() if now is None else now):
        return False
    want = hmac.new(token.encode(), expiry.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.encode(), want.encode())


class SignInLimiter:
    """Wrong sign-ins per client address over the last minute."""

    def __init__(self, tries: int = SIGN_IN_TRIES, per_s: float = 60.0):
        self.tries, self.per_s = tries, per_s
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, address: str) -> float:
        """Seconds before `address` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            failed = self._failed.get(address)
            while failed and now - failed[0] > self.per_s:
                failed.popleft()
            if not failed:
                self._failed.pop(address, None)
                return 0.0
            return self.per_s - (now - failed[0]) if len(failed) >= self.tries else 0.0

    def failed(self, address: str) -> None:
        with self._lock:
            if len(self._failed) > 10_000:          # a flood of addresses: forget the oldest half
                for key in list(self._failed)[:5_000]:
                    del self._failed[key]
            self._failed.setdefault(address, deque()).append(time.monotonic())


def token_matches(request: Request, token: str) -> bool:
    """A token typed into the sign-in page is the app's (always, where the app has none)."""
    expected = request.app.state.token
    return expected is None or hmac.compare_digest(token.encode(), expected.encode())

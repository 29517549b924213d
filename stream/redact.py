"""Credentials never leave the process: one function takes them out of any text that may hold a URL.

Camera URLs carry secrets in two places, and both are replaced by `***` for every scheme:
- the userinfo, whatever it contains (`rtsp://admin:S3cr@t/x1@host/` -> `rtsp://***@host/`): a
  password may hold `@`, `/` or `:` unencoded, so everything up to the URL's last `@` goes;
- query parameters whose name means a secret (`?password=`, `&token=`, SRT's `passphrase=`,
  `X-Amz-Signature=`...; see SECRET_PARAMS), matched case-insensitively inside the name.

Secrets the config takes from the environment or from files (`${NAME}`, `${file:PATH}`:
stream/config.py `substitute`) are masked wherever they appear, whatever they hold.

Every log line goes through it in `RedactingFormatter`, so a new log call that prints a target
cannot forget to; so do source errors, health messages' `detail` and `target`, failure reasons
and the command line's error lines. Alerts, evidence records and outbox rows name cameras by id
and never carry a target.
"""
from __future__ import annotations

import json
import logging
import re
import time

# parts of a parameter name that mark its value as a secret (api_key, access_token, streamkey...)
SECRET_PARAMS = ("pass", "pwd", "token", "key", "secret", "auth", "sig", "credential", "session", "cookie")
MASK = "***"

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s'\"<>]*)")
_PARAM = re.compile(r"([?&;])([^=&;#\s]*)=([^&;#\s]*)")


def secret_name(name: str) -> bool:
    name = name.lower()
    return any(part in name for part in SECRET_PARAMS)


def _redact_url(m: re.Match) -> str:
    scheme, rest = m.group(1), m.group(2)
    if "@" in rest:       # userinfo: up to the last @, whatever it holds (a path with @ loses its head too)
        rest = MASK + rest[rest.rindex("@"):]
    return scheme + _PARAM.sub(lambda p: f"{p.group(1)}{p.group(2)}={MASK}" if secret_name(p.group(2))
                               else p.group(0), rest)


_KNOWN: set[str] = set()      # secrets the config took from the environment: masked wherever they appear


def known_secret(value: str) -> None:
    """A secret to mask wherever it appears, whatever surrounds it (a camera password the config
    took from the environment, which may hold a space or a quote that ends a URL early)."""
    if len(value) >= 3:
        _KNOWN.add(value)


def redact(text: str) -> str:
    """`text` with the known secrets and the credentials of every URL in it replaced by `***`."""
    for secret in sorted(_KNOWN, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" not in text:
        return text
    return _URL.sub(_redact_url, text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line, tracebacks included, has gone through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonRedactingFormatter(logging.Formatter):
    """One JSON object a line (`--log-format json`, for log shippers): time (UTC, ISO 8601), level,
    logger, thread, message and, with an exception, its traceback; every text through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "thread": record.threadName,
                "message": redact(record.getMessage())}
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)

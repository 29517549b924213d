"""Credentials never leave the process: one function takes them out of any text that may hold a URL.

Camera URLs carry secrets in two places, and both are replaced by `***` for every scheme:
- the userinfo, whatever it contains (`rtsp://admin:S3cr@t/x1@host/` -> `rtsp://***@host/`): a
  password may hold `@`, `/` or `:` unencoded, so everything up to the URL's last `@` goes;
- query parameters whose name means a secret (`?password=`, `&token=`, SRT's `passphrase=`,
  `X-Amz-Signature=`...; see SECRET_PARAMS), matched case-insensitively inside the name.

Secrets the config takes from the environment or from files (`${NAME}`, `${file:PATH}`:
stream/config.py `substitute`), and those written in a camera's URL (`url_secrets`: its password,
secret parameters, an RTMP stream key), are masked wherever they appear, whatever they hold:
a password with a space, a quote or `<` ends the URL early for the pattern above.
Parameter names count percent-decoded, in the query and in the fragment (`#token=`), and short
names count whole (`pw`, `psk`, `jwt`, `sid`, `code`, `ticket`...).

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
# whole names that do too (short ones: as parts they would match too much, e.g. "code" in "codec")
SECRET_NAMES = {"pw", "psk", "jwt", "sid", "code", "ticket", "otp", "hash", "nonce"}
MASK = "***"

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s'\"<>]*)")
_PARAM = re.compile(r"([?&;#])([^=&;#\s]*)=([^&;#\s]*)")      # query parameters, and a fragment's (#token=)


def secret_name(name: str) -> bool:
    from urllib.parse import unquote
    name = unquote(name).lower()          # %70assword is a password too
    return name in SECRET_NAMES or any(part in name for part in SECRET_PARAMS)


def _redact_url(m: re.Match) -> str:
    scheme, rest = m.group(1), m.group(2)
    if "@" in rest:       # userinfo: up to the last @, whatever it holds (a path with @ loses its head too)
        rest = MASK + rest[rest.rindex("@"):]
    if scheme.lower() in ("rtmp://", "rtmps://"):     # rtmp://host/app/STREAM-KEY: the key is the last segment
        head, sep, tail = rest.partition("?")
        parts = head.split("/")
        if len(parts) >= 3 and parts[-1]:
            rest = "/".join([*parts[:-1], MASK]) + sep + tail
    return scheme + _PARAM.sub(lambda p: f"{p.group(1)}{p.group(2)}={MASK}" if secret_name(p.group(2))
                               else p.group(0), rest)


def url_secrets(url: str) -> list[str]:
    """The secrets a URL holds, whatever characters they are made of (a password with a space or
    a quote ends the URL where `redact` looks for it): its userinfo's password, the values of
    secret parameters, an RTMP stream key. The config registers them (`known_secret`)."""
    from urllib.parse import unquote
    scheme, _, rest = url.partition("://")
    if not rest:
        return []
    out = []
    authority = rest
    if "@" in rest:
        userinfo = rest[:rest.rindex("@")]
        out += [userinfo, userinfo.partition(":")[2], unquote(userinfo.partition(":")[2])]
        authority = rest[rest.rindex("@") + 1:]
    tail = authority[min([authority.index(c) for c in "?#" if c in authority], default=len(authority)):]
    for p in _PARAM.finditer(tail):                 # the query's parameters and the fragment's
        if secret_name(p.group(2)):
            out += [p.group(3), unquote(p.group(3))]
    if scheme.lower() in ("rtmp", "rtmps"):
        parts = authority.partition("?")[0].split("/")
        if len(parts) >= 3 and parts[-1]:
            out.append(parts[-1])
    return [s for s in out if s]


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

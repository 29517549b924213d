import logging

import pytest

from stream.redact import RedactingFormatter, redact

CASES = [
    # userinfo, whatever it contains
    ("rtsp://admin:secret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
    ("rtsp://admin:S3cr@t/x1@host/Streaming/101", "rtsp://***@host/Streaming/101"),
    ("rtsps://user:pa:ss@cam.local/s", "rtsps://***@cam.local/s"),
    ("rtmp://u:p%40ss@h/app/key", "rtmp://***@h/app/key"),
    ("http://only-user@h/x.m3u8", "http://***@h/x.m3u8"),
    # query parameters whose names mean a secret, any scheme, any case
    ("srt://10.0.0.20:9000?mode=caller&passphrase=0123456789ab&latency=200",
     "srt://10.0.0.20:9000?mode=caller&passphrase=***&latency=200"),
    ("rtsp://h/live?password=x&channel=1", "rtsp://h/live?password=***&channel=1"),
    ("https://h/live.m3u8?Token=abc", "https://h/live.m3u8?Token=***"),
    ("https://s3/b/o?X-Amz-Credential=A&X-Amz-Signature=B&X-Amz-Expires=60",
     "https://s3/b/o?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"),
    ("http://h/a?api_key=1&access_token=2&pwd=3&PASS=4&secret=5&auth=6#frag",
     "http://h/a?api_key=***&access_token=***&pwd=***&PASS=***&secret=***&auth=***#frag"),
    ("udp://0.0.0.0:5600?fifo_size=1000", "udp://0.0.0.0:5600?fifo_size=1000"),
    # both, inside a sentence, quoted
    ("cannot open 'rtsp://a:b@h/x?token=t': 404 Not Found", "cannot open 'rtsp://***@h/x?token=***': 404 Not Found"),
    # nothing to take
    ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
    ("/videos/a@b.avi", "/videos/a@b.avi"),
    ("password=x without a URL stays", "password=x without a URL stays"),
]


@pytest.mark.parametrize("text,want", CASES)
def test_redact_takes_credentials_out_of_urls(text, want):
    assert redact(text) == want


def test_log_lines_and_tracebacks_are_redacted():
    formatter = RedactingFormatter("%(message)s")
    try:
        raise OSError("rtsp://admin:S3cr@t/x1@h/live?token=zz refused")
    except OSError:
        import sys
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "opening %s", ("srt://h:1?passphrase=pp",),
                                   sys.exc_info())
    line = formatter.format(record)
    assert "srt://h:1?passphrase=***" in line and "rtsp://***@h/live?token=***" in line
    for secret in ("pp", "S3cr", "x1@", "zz"):
        assert secret not in line.replace("passphrase", "")

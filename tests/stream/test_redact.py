import json
import logging

import pytest

from stream.redact import RedactingFormatter, redact

CASES = [
    # userinfo, whatever it contains
    ("rtsp://admin:secret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
    ("rtsp://admin:S3cr@t/x1@host/Streaming/101", "rtsp://***@host/Streaming/101"),
    ("rtsps://user:pa:ss@cam.local/s", "rtsps://***@cam.local/s"),
    ("rtmp://u:p%40ss@h/app/key", "rtmp://***@h/app/***"),        # an RTMP stream key too
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


@pytest.mark.parametrize("url, secret", [
    ("rtsp://admin:pa\"ss word<1@192.0.2.7/live", 'pa"ss word<1'),        # a quote, a space, a <
    ("rtsp://admin:it's-me@192.0.2.7/live", "it's-me"),
    ("http://192.0.2.7/cgi?pw=Pw-9911", "Pw-9911"),
    ("rtmp://live.example.com/app/sk-4f9a0c7e21", "sk-4f9a0c7e21"),         # an RTMP stream key
    ("srt://192.0.2.7:9000?psk=Psk-77aa", "Psk-77aa"),
    ("https://192.0.2.7/s?jwt=eyJhbGci.x.y&sid=Sid-1", "eyJhbGci.x.y"),
    ("https://192.0.2.7/s?code=Code-55&ticket=Tk-66", "Tk-66"),
    ("https://192.0.2.7/s?%70assword=Enc-77", "Enc-77"),                      # a percent-encoded name
    ("https://192.0.2.7/s#token=Frag-88", "Frag-88"),                         # a fragment
])
def test_every_secret_a_camera_url_holds_is_masked_wherever_it_appears(url, secret):
    from stream.config import parse_config
    cfg = parse_config({"cameras": {"cam": {"url": url}},
                        "models": {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}}},
                       check_files=False)
    target = cfg.cameras["cam"].target
    for text in (f"camera cam: cannot open {target}: refused", json.dumps({"target": target}), secret):
        assert secret not in redact(text), redact(text)
    assert redact("https://192.0.2.7/s?codec=h264&session_id=") .startswith("https://192.0.2.7/s?codec=h264")

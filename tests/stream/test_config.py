import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stream.config import ConfigError, load_config, parse_config, with_overrides
from stream.redact import redact

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo.yaml"


@pytest.fixture
def demo(vtest, models_dir) -> dict:
    return yaml.safe_load(DEMO.read_text())


def _error(data: dict, base_dir: Path = DEMO.parent) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(data, base_dir, "demo.yaml")
    return str(e.value)


def test_demo_config_loads_and_resolves_paths_against_its_folder(demo):
    cfg = load_config(DEMO)
    assert cfg.cameras["lobby"].path == (ROOT / "data" / "vtest.avi").resolve()
    assert cfg.cameras["lobby"].replay == "realtime"          # merged from the top-level default
    assert cfg.alerts.endpoint == "tcp://127.0.0.1:5556"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d["cameras"]["lobby"].update(replay="slow"), "cameras.lobby.replay: Input should be 'realtime' or 'fast'"),
    (lambda d: d["cameras"]["lobby"].update(fps=5), "cameras.lobby.fps: unknown key"),
    (lambda d: d["cameras"]["lobby"].update(path="missing.avi"), "cameras.lobby.path: video file .*missing.avi does not exist"),
    (lambda d: d["cameras"]["lobby"].update(url="rtsp://cam/1"), "cameras.lobby: .*exactly one of `path`"),
    (lambda d: d["cameras"].update(door={"url": "ftp://x"}), "cameras.door.url: URL must start with"),
    (lambda d: d["windows"].update(stride_s=5.0), "windows: stride_s .* must not exceed length_s"),
    (lambda d: d["windows"].update(sample_fps=0), "windows.sample_fps: Input should be greater than 0"),
    (lambda d: d["events"].update(close_threshold=0.9), "events: close_threshold must be below open_threshold"),
    (lambda d: d["models"]["pose"].update(path="nope.onnx"), "models.pose.path: model file .* does not exist"),
    (lambda d: d["models"].update(backend="tensorflow"), "models.backend: unknown backend 'tensorflow'; choose one of"),
    (lambda d: d["alerts"].update(endpoint="127.0.0.1:5556"), "alerts.endpoint: endpoint must be"),
    (lambda d: d.update(cameras={}), "cameras: Dictionary should have at least 1 item"),
    (lambda d: d.update(colour="red"), "colour: unknown key"),
    (lambda d: d["cameras"].update(desk={"device": "video0"}), "cameras.desk.device: device must be a path under /dev/"),
    (lambda d: d["cameras"].update(yard={"url": "rtsp://c/1", "ingest": {"rtsp_transport": "http"}}),
     "cameras.yard.ingest.rtsp_transport: Input should be 'tcp' or 'udp'"),
    (lambda d: d.update(ingest={"backoff_initial_s": 20}), "backoff_initial_s .* must not exceed backoff_max_s"),
    (lambda d: d.update(ingest={"watchdog_s": 0}), "ingest.watchdog_s: Input should be greater than 0"),
    (lambda d: d["models"].update(fallback=["onnx"]), "models.fallback: unknown backend 'onnx'; choose from"),
    (lambda d: d["models"].update(tensorrt={"precision": "int8"}), "models.tensorrt: precision int8 needs calibration_cache"),
    (lambda d: d["models"].update(tensorrt={"precision": "int8", "calibration_cache": "no.cache"}),
     "models.tensorrt.calibration_cache: calibration cache .*no.cache does not exist"),
    (lambda d: d.update(queues={"windows_policy": "newest"}), "queues.windows_policy: Input should be 'auto', 'block' or"),
    (lambda d: d.update(normal={"enabled": True}, detector={"name": "baseline"}),
     "normal: camera lobby learns its own normal, which needs the scene embeddings of detector hawkeye"),
    (lambda d: d["cameras"]["lobby"].update(normal={"radius": 3}), "cameras.lobby.normal.radius: Input should be less"),
    # a typo in the top-level defaults is named there, not at the first camera
    (lambda d: d.update(ingest={"watchdg_s": 3}), r"^demo.yaml: ingest.watchdg_s: unknown key \(did you mean watchdog_s\?\)$"),
    # endpoints that are one address once host names are resolved are refused at load, not at bind
    (lambda d: d["alerts"].update(endpoint="tcp://localhost:6100", query_endpoint="tcp://127.0.0.1:6100"),
     "alerts: query_endpoint tcp://127.0.0.1:6100 is the same address as endpoint tcp://localhost:6100"),
    (lambda d: d["alerts"].update(endpoint="tcp://*:6100", chat_endpoint="tcp://127.0.0.1:6100",
                                  allow_plaintext=True),
     "alerts: chat_endpoint tcp://127.0.0.1:6100 is the same address as endpoint tcp://\\*:6100"),
    (lambda d: d.update(http={"endpoint": "0.0.0.0:8080"}),
     "http: endpoint 0.0.0.0:8080 is reachable from other machines: set token_env"),
    (lambda d: d.update(http={"endpoint": "8080"}), "http: endpoint '8080' must be HOST:PORT"),
    (lambda d: d.update(http={"endpoint": "0.0.0.0:8080", "token_env": "T", "token_file": "t"}),
     "http: token_env and token_file are two ways to give one token: set one"),
    (lambda d: d["cameras"]["lobby"].update(person_score_threshold=1.5),
     "cameras.lobby.person_score_threshold: Input should be less than or equal to 1"),
    (lambda d: d["alerts"].update(mqtt={"host": "broker", "tls": {"ca_file": "nope.pem"}}),
     "alerts.mqtt.tls.ca_file: ca_file .*nope.pem does not exist"),
    (lambda d: d["alerts"].update(mqtt={"host": "broker", "tls": {"keyfile": "demo.yaml"}}),
     "alerts.mqtt.tls: certfile and keyfile go together"),
    (lambda d: d["cameras"]["lobby"].update(zones={"door": {"kind": "exclude", "points": [[0, 0], [1, 0]]}}),
     "cameras.lobby.zones.door.points: List should have at least 3 items"),
    (lambda d: d.update(http={"endpoint": "127.0.0.1:8080", "certfile": "c.pem"}), "http: certfile and keyfile go together"),
    (lambda d: d.update(runtime={"engine": "kubernetes"}), "runtime.engine: Input should be 'local' or 'ray'"),
    (lambda d: d.update(runtime={"models": {"actors": 0}}), "runtime.models.actors: Input should be greater than or equal to 1"),
])
def test_bad_config_is_one_line_naming_the_field_path(demo, mutate, expected):
    data = copy.deepcopy(demo)
    mutate(data)
    msg = _error(data)
    assert "\n" not in msg
    assert msg.startswith("demo.yaml: ")
    import re
    assert re.search(expected, msg), msg


def test_ingest_defaults_merge_into_each_camera_field_by_field(demo):
    data = copy.deepcopy(demo)
    data["ingest"] = {"watchdog_s": 3.0, "rtsp_transport": "udp"}
    data["cameras"]["yard"] = {"url": "rtsp://10.0.0.8/main", "ingest": {"rtsp_transport": "tcp"}}
    cfg = parse_config(data, DEMO.parent)
    yard, lobby = cfg.cameras["yard"].ingest, cfg.cameras["lobby"].ingest
    assert (yard.watchdog_s, yard.rtsp_transport) == (3.0, "tcp")     # the camera's own value wins
    assert (lobby.watchdog_s, lobby.rtsp_transport) == (3.0, "udp")
    assert yard.max_reconnects is None and cfg.cameras["yard"].target == "rtsp://10.0.0.8/main"


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  lobby: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_config(bad)


def test_cli_exits_2_with_one_line_on_a_bad_config(tmp_path, demo):
    data = copy.deepcopy(demo)
    data["cameras"]["lobby"]["replay"] = "slow"
    data["cameras"]["lobby"]["path"] = str(ROOT / "data" / "vtest.avi")
    for m in ("person_detector", "pose"):
        data["models"][m]["path"] = str(ROOT / "models" / Path(data["models"][m]["path"]).name)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cameras.lobby.replay" in lines[0], done.stderr


@pytest.mark.parametrize("text,key", [
    ("cameras:\n  lobby: {path: a.avi}\n  gate: {path: b.avi}\n  lobby: {path: c.avi}\n", "'lobby'"),
    ("windows:\n  length_s: 4\n  length_s: 8\n", "'length_s'"),
    ("replay: fast\nreplay: realtime\n", "'replay'"),
])
def test_a_key_given_twice_is_an_error_naming_it(tmp_path, text, key):
    """Duplicate camera ids, or any key given twice, would silently keep the last one."""
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("version: 1\n" + text)
    with pytest.raises(ConfigError, match=rf"dup.yaml: line \d+: not valid YAML: duplicate key {key} \(first on line \d+\)"):
        load_config(cfg)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), *args], capture_output=True, text=True,
                          timeout=60)


def test_cli_refuses_duplicate_keys_and_clashing_endpoints_with_exit_2(tmp_path, demo):
    data = copy.deepcopy(demo)
    data["cameras"]["lobby"]["path"] = str(ROOT / "data" / "vtest.avi")
    for m in ("person_detector", "pose"):
        data["models"][m]["path"] = str(ROOT / "models" / Path(data["models"][m]["path"]).name)
    data["detector"] = {"name": "baseline"}
    data["alerts"].update(endpoint="tcp://localhost:6101", query_endpoint="tcp://127.0.0.1:6101")
    clash = tmp_path / "clash.yaml"
    clash.write_text(yaml.safe_dump(data))
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump(data) + "cameras:\n  other: {path: x.avi}\n")
    for cfg, what in ((clash, "same address as endpoint"), (twice, "duplicate key 'cameras'")):
        done = _cli("--config", str(cfg))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and what in lines[0], done.stderr


@pytest.mark.parametrize("value", ["-5", "0", "abc", "nan"])
def test_cli_a_bad_duration_is_a_one_line_error(value):
    done = _cli("--config", str(DEMO), "--duration", value)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--duration" in lines[0], done.stderr


def test_each_camera_switches_the_normal_on_or_off_or_replaces_it(demo):
    demo["normal"] = {"enabled": True, "warmup_minutes": 5, "store": "../var/normal"}
    demo["cameras"].update(gate={"path": "../data/vtest.avi", "normal": False},
                           door={"path": "../data/vtest.avi", "normal": {"enabled": True, "radius": 0.1}})
    cfg = parse_config(demo, DEMO.parent, "demo.yaml")
    lobby, gate, door = (cfg.normal_of(c) for c in ("lobby", "gate", "door"))
    assert lobby.enabled and lobby.warmup_minutes == 5 and lobby.store == (ROOT / "var" / "normal").resolve()
    assert not gate.enabled and gate.warmup_minutes == 5
    assert door.enabled and door.radius == 0.1 and door.warmup_minutes == 5       # field by field


def test_the_publish_queue_is_also_read_under_its_former_name(demo):
    assert parse_config({**demo, "queues": {"publish": 7}}, DEMO.parent).queues.publish == 7
    assert parse_config({**demo, "queues": {"outbox": 5}}, DEMO.parent).queues.publish == 5


def test_each_camera_knows_its_kind_and_whether_it_is_live_and_so_its_windows_policy(demo):
    cams = {"file": {"path": demo["cameras"]["lobby"]["path"]}, "door": {"url": "rtsps://user:pw@cam/1"},
            "usb": {"device": "/dev/video0"}}
    cfg = parse_config({**demo, "cameras": cams}, DEMO.parent)
    assert {c: (cc.kind, cc.live) for c, cc in cfg.cameras.items()} == {
        "file": ("file", False), "door": ("rtsp", True), "usb": ("device", True)}
    assert [cfg.windows_policy_of(cc) for cc in cfg.cameras.values()] == ["block", "drop_oldest", "drop_oldest"]
    forced = parse_config({**demo, "cameras": cams, "queues": {"windows_policy": "block"}}, DEMO.parent)
    assert {forced.windows_policy_of(cc) for cc in forced.cameras.values()} == {"block"}


def test_the_command_lines_overrides_go_into_every_camera_of_the_config(demo):
    cfg = parse_config(demo, DEMO.parent)
    same = with_overrides(cfg)
    assert same is cfg
    got = with_overrides(cfg, replay="fast", loop=True, duration_s=30.0)
    assert {(c.replay, c.loop, c.duration_s) for c in got.cameras.values()} == {("fast", True, 30.0)}
    assert {(c.replay, c.loop, c.duration_s) for c in cfg.cameras.values()} == {("realtime", False, None)}


def test_a_mistyped_key_is_the_error_shown_with_the_key_it_may_have_meant(demo):
    data = {**demo, "camreas": demo["cameras"]}
    del data["cameras"]
    assert _error(data).startswith("demo.yaml: camreas: unknown key (did you mean cameras?)")
    data = copy.deepcopy(demo)
    data["cameras"]["lobby"]["events"] = {"open_treshold": 0.5}
    assert _error(data) == "demo.yaml: cameras.lobby.events.open_treshold: unknown key (did you mean open_threshold?)"


def test_a_camera_url_takes_its_secret_from_the_environment_and_an_unset_one_is_named(demo, monkeypatch):
    data = copy.deepcopy(demo)
    data["cameras"] = {"gate": {"url": "rtsp://viewer:${GATE_PASSWORD}@192.0.2.10/stream1"}}
    monkeypatch.setenv("GATE_PASSWORD", "s3cr et")
    assert parse_config(data, DEMO.parent).cameras["gate"].url == "rtsp://viewer:s3cr et@192.0.2.10/stream1"
    assert redact(f"opening {parse_config(data, DEMO.parent).cameras['gate'].url}") == "opening rtsp://***@192.0.2.10/stream1"
    monkeypatch.delenv("GATE_PASSWORD")
    assert _error(data) == ("demo.yaml: cameras.gate.url: the environment variable GATE_PASSWORD (in "
                            "${GATE_PASSWORD}) is not set")


def test_any_value_takes_a_variable_a_default_or_a_file_and_masks_what_is_secret(demo, monkeypatch, tmp_path):
    data = copy.deepcopy(demo)
    (tmp_path / "gate_password").write_text("from a file\n")
    data["cameras"] = {"gate": {"url": "rtsp://viewer:${file:gate_password}@${GATE_HOST:-192.0.2.10}/stream1"},
                       "hall": {"url": "rtsp://192.0.2.11/s?token=${HALL_TOKEN}"}}
    data["alerts"] = {**data.get("alerts", {}), "endpoint": "tcp://127.0.0.1:${ALERT_PORT:-5556}"}
    data["cameras"]["hall"]["labels"] = {"site": "${SITE_KEY}"}          # a variable whose name means a secret
    monkeypatch.delenv("GATE_HOST", raising=False)
    monkeypatch.delenv("ALERT_PORT", raising=False)
    monkeypatch.setenv("HALL_TOKEN", "hall-secret-1")
    monkeypatch.setenv("SITE_KEY", "console-secret-2")
    cfg = parse_config(data, tmp_path, check_files=False)       # ${file:...} is relative to the config file
    assert cfg.cameras["gate"].url == "rtsp://viewer:from a file@192.0.2.10/stream1"
    assert cfg.alerts.endpoint == "tcp://127.0.0.1:5556"
    assert cfg.cameras["hall"].labels == {"site": "console-secret-2"}
    assert redact("from a file / hall-secret-1 / console-secret-2 / 5556") == "*** / *** / *** / 5556"
    monkeypatch.setenv("ALERT_PORT", "6000")
    monkeypatch.setenv("GATE_HOST", "")                       # set but empty: the default, as in a shell
    cfg = parse_config(data, tmp_path, check_files=False)
    assert cfg.alerts.endpoint == "tcp://127.0.0.1:6000" and "@192.0.2.10/" in cfg.cameras["gate"].url
    assert redact("port 6000") == "port 6000"                 # a port is no secret


def test_a_reference_that_cannot_be_resolved_is_named_with_its_key(demo, monkeypatch, tmp_path):
    data = copy.deepcopy(demo)
    data["cameras"] = {"gate": {"url": "rtsp://viewer:${file:missing}@192.0.2.10/"}}
    assert _error(data, tmp_path).startswith("demo.yaml: cameras.gate.url: the file ")
    assert "missing (in ${file:missing}) cannot be read: No such file or directory" in _error(data, tmp_path)
    data["cameras"] = {"gate": {"url": "rtsp://192.0.2.10/${not a name}"}}
    assert _error(data, tmp_path) == ("demo.yaml: cameras.gate.url: ${not a name} is neither ${NAME}, "
                                      "${NAME:-default} nor ${file:PATH} (write $${ for a literal ${)")
    data["cameras"] = {"gate": {"url": "rtsp://192.0.2.10/$${literal}"}}
    assert parse_config(data, DEMO.parent).cameras["gate"].url == "rtsp://192.0.2.10/${literal}"


def test_catch_up_and_chat_sit_beside_the_alerts_endpoint_unless_given(demo):
    data = copy.deepcopy(demo)
    data["alerts"] = {"endpoint": "tcp://127.0.0.1:6100"}
    a = parse_config(data, DEMO.parent).alerts
    assert (a.query_endpoint, a.chat_endpoint) == ("tcp://127.0.0.1:6101", "tcp://127.0.0.1:6102")
    data["alerts"] = {"endpoint": "ipc:///run/hawkwatch/alerts", "chat_endpoint": None}
    a = parse_config(data, DEMO.parent).alerts
    assert (a.query_endpoint, a.chat_endpoint) == ("ipc:///run/hawkwatch/alerts.query", None)
    data["alerts"] = {"endpoint": "tcp://127.0.0.1:6100", "query_endpoint": "tcp://127.0.0.1:7000"}
    assert parse_config(data, DEMO.parent).alerts.query_endpoint == "tcp://127.0.0.1:7000"
    data["alerts"] = {"endpoint": "tcp://127.0.0.1:65535"}
    assert _error(data).startswith("demo.yaml: alerts: Value error, query_endpoint: auto needs `endpoint` as "
                                   "tcp://HOST:PORT with a port below 65535") or \
        _error(data).startswith("demo.yaml: alerts: query_endpoint: auto needs")

"""The deployment files: the compose file against the Compose specification's schema, and the
Dockerfile, compose file, Prometheus scrape, container config and systemd unit agreeing with
each other and with the repository. No Docker engine runs here, so the image itself is not built
(docs/deploying.md)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from stream.config import parse_config
from tests.harness import ROOT

DEPLOY = ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_is_valid_compose():
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                          str(DEPLOY / "compose.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_prometheus_and_the_container_config_agree():
    c = compose()
    app, prom = c["services"]["hawkwatch"], c["services"]["prometheus"]
    assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for service in (app, prom):
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"compose mounts {source}, which is not in deploy/"
            else:
                assert source in c["volumes"], source
    mounted = {v.split(":")[1]: DEPLOY / v.split(":")[0] for v in app["volumes"] if v.startswith(".")}
    config_path = mounted["/etc/hawkwatch/hawkwatch.yaml"]
    cfg = parse_config(yaml.safe_load(config_path.read_text()), config_path.parent, str(config_path), check_files=False)
    port = cfg.http.endpoint.rpartition(":")[2]
    assert app["ports"] == [f"{port}:{port}"]
    (secret,) = app["secrets"]
    assert str(cfg.http.token_file) == f"/run/secrets/{secret}" and secret in prom["secrets"]
    assert c["secrets"][secret]["file"].lstrip("./") in (ROOT / ".gitignore").read_text() + \
        (ROOT / ".dockerignore").read_text()                        # the token never lands in git or the image
    for path in (cfg.alerts.outbox.path, cfg.alerts.evidence.folder, cfg.http.reviews):
        assert str(path).startswith("/var/lib/hawkwatch/"), path     # the state is in the volume
    assert any(v.endswith(":/var/lib/hawkwatch") for v in app["volumes"])
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == [f"hawkwatch:{port}"] and scrape["metrics_path"] == "/metrics"
    assert scrape["authorization"]["credentials_file"] == f"/run/secrets/{secret}"


def test_the_dockerfile_copies_what_exists_and_runs_the_mounted_config():
    text = (DEPLOY / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
    assert '"--config", "/etc/hawkwatch/hawkwatch.yaml"' in text and "/healthz" in text
    assert re.search(r"^FROM base-\$\{VARIANT\}$", text, flags=re.M) and "FROM nvidia/cuda:" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "!models/hawkeye" in ignored     # the shipped model goes in, the rest is built


def test_the_container_config_passes_hawkwatch_check_with_its_paths_here(tmp_path, models_dir, vtest):
    """The image's config, its /opt/hawkwatch and /var/lib/hawkwatch paths pointed here: loads, the
    models load and the detector runs (what the image would start with)."""
    text = (DEPLOY / "docker/hawkwatch.yaml").read_text()
    text = text.replace("/opt/hawkwatch/", f"{ROOT}/").replace("/var/lib/hawkwatch/", f"{tmp_path}/")
    text = text.replace("/run/secrets/hawkwatch_token", str(tmp_path / "token"))
    (tmp_path / "token").write_text("s3cret\n")
    (tmp_path / "hawkwatch.yaml").write_text(text)
    out = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "check", str(tmp_path / "hawkwatch.yaml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_unit_verifies(tmp_path):
    unit = (DEPLOY / "systemd/hawkwatch.service").read_text().replace("/opt/hawkwatch", str(ROOT))
    (tmp_path / "hawkwatch.service").write_text(unit)
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "hawkwatch.service")], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stderr == "", out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_unit_scores_under_4_in_systemd_analyze_security(tmp_path):
    unit = tmp_path / "hawkwatch.service"
    unit.write_text((DEPLOY / "systemd/hawkwatch.service").read_text().replace("/opt/hawkwatch", str(ROOT)))
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for hawkwatch.service: ([0-9.]+)", out.stdout).group(1))
    assert score < 4.0, out.stdout
    assert "LimitNOFILE=65536" in unit.read_text()


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="needs systemd-sysusers")
def test_the_sysusers_file_creates_the_units_user(tmp_path):
    (tmp_path / "etc").mkdir()
    out = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(DEPLOY / "systemd/hawkwatch.sysusers")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    user = next(line for line in (tmp_path / "etc/passwd").read_text().splitlines() if line.startswith("hawkwatch:"))
    assert user.split(":")[5] == "/var/lib/hawkwatch"
    unit = (DEPLOY / "systemd/hawkwatch.service").read_text()
    assert "User=hawkwatch" in unit and "StateDirectory=hawkwatch" in unit


def test_the_lock_file_pins_every_dependency_and_setup_and_the_image_install_with_it():
    import tomllib
    from packaging.requirements import Requirement
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"],
              *project["optional-dependencies"]["mqtt"]]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and "+" not in version, line                # exact, and no local build (+cpu)
            pins[name.lower().replace("_", "-")] = version
    for spec in wanted:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req.name} is not in requirements.lock (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (spec, pins[name])
    makefile, dockerfile = (ROOT / "Makefile").read_text(), (DEPLOY / "Dockerfile").read_text()
    assert "pip install -q -c requirements.lock -e '.[dev]'" in makefile
    assert 'pip install --no-cache-dir -c requirements.lock ".[mqtt]"' in dockerfile and "requirements.lock" in \
        dockerfile.split("COPY pyproject.toml", 1)[1].splitlines()[0]

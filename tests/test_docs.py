"""The docs: a short README whose links and first camera work, a site that builds without a broken
link, and a configuration reference that is what the schema says."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _slug(heading: str) -> str:
    """A heading's anchor, as GitHub and MkDocs' toc both make it for these headings."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def test_the_readme_is_short_and_every_link_in_it_reaches_a_file_and_heading():
    assert len(README.splitlines()) < 250
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert len(local) >= 10
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), f"README links to {link}, which does not exist"
        if anchor:
            heads = [_slug(h) for h in re.findall(r"^#+ (.+)$", target.read_text(), flags=re.M)]
            assert anchor in heads, f"README links to {link}: no such heading in {path}"


def test_the_readmes_first_camera_passes_check(tmp_path):
    yaml = re.search(r"```yaml\n# my.yaml\n(.*?)```", README, flags=re.S).group(1)
    config = ROOT / f"readme-first-camera-{tmp_path.name}.yaml"    # its paths are relative to the project root
    config.write_text(yaml)
    try:
        out = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "check", str(config)],
                             capture_output=True, text=True, timeout=240)
    finally:
        config.unlink()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 camera(s): door (rtsp rtsp://***@10.0.0.7/stream1)" in out.stdout


def test_the_configuration_reference_is_what_the_schema_says():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_reference.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    page = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    from stream.config import HawkwatchConfig, NormalConfig
    for name in HawkwatchConfig.model_fields:                 # every top-level key, and a nested one's description
        assert f"| `{name}` |" in page
    assert NormalConfig.model_fields["radius"].description.split()[0] in page
    assert "| `cameras.<id>.ingest.watchdog_s` | float | `5.0` |" in page


def test_the_site_builds_with_no_broken_link_or_anchor(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").exists()
    assert "Results on real footage" in (tmp_path / "site" / "training" / "index.html").read_text()

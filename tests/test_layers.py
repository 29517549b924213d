"""The house's layering holds: no import circle, and no import from a lower layer to a higher one
(scripts/layers.py; docs/design.md names the layers)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layers():
    spec = importlib.util.spec_from_file_location("layers", ROOT / "scripts" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_circle_and_no_import_runs_up_a_layer():
    assert _layers().violations() == []


def test_the_check_finds_a_circle_and_an_upward_import(tmp_path):
    layers = _layers()
    for name, text in {"engines/__init__.py": "from stream.config import X\n",
                       "stream/__init__.py": "", "stream/config.py": "import stream.types\n",
                       "stream/types.py": "from stream.config import Y\n", "run_pipeline.py": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = layers.violations(tmp_path)
    assert any(line.startswith("engines (engines) imports stream.config, a higher layer (base)") for line in found), found
    assert "import circle: stream.config <-> stream.types" in found, found

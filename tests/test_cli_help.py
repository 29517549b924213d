"""Every command line explains itself: each flag has help text that shows its default, and the
description is whole sentences (not a docstring's first line cut mid-sentence)."""
from __future__ import annotations

import argparse
import importlib

import pytest

from engines.cli import Parser

CLIS = ["training.synth", "training.evaluate", "training.qa", "training.cues", "training.extract", "training.train",
        "stream.alerts.chat", "stream.subscribe", "stream.alerts.security", "stream.alerts.reviews", "stream.ingest.clips",
        "stream.scene.render", "engines.zoo", "engines.build", "training.sheet", "run_pipeline", "run_pipeline check",
        "run_pipeline build-engines"]


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.mark.parametrize("module", CLIS)
def test_every_flag_has_help_with_its_default_and_the_description_is_whole(module, monkeypatch):
    def capture(self, *args, **kwargs):
        raise _Captured(self)
    monkeypatch.setattr(Parser, "parse_args", capture)
    mod = importlib.import_module(module.split()[0])
    with pytest.raises(_Captured) as got:
        {"run_pipeline": getattr(mod, "parse_args", None), "run_pipeline check": getattr(mod, "parse_check_args", None),
         "run_pipeline build-engines": getattr(mod, "build_engines", None)}.get(module, mod.main)([])
    parser = got.value.parser
    assert parser.description and parser.description.rstrip()[-1] in ".:)", parser.description
    help_text = parser.format_help()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help and len(action.help) > 8, (module, action.dest)
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            rendered = parser._get_formatter()._get_help_string(action) % vars(action)
            assert "default" in rendered, (module, action.dest, rendered)
    assert "(default: None)" not in help_text and "(default: False)" not in help_text


def test_hawkwatch_names_its_other_commands_and_its_version():
    import subprocess
    import sys

    from tests.harness import ROOT
    shown = subprocess.run([sys.executable, "run_pipeline.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "hawkwatch check CONFIG" in shown.stdout and "hawkwatch build-engines CONFIG" in \
        shown.stdout
    version = subprocess.run([sys.executable, "run_pipeline.py", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("hawkwatch 0.") and "--config" not in version.stderr

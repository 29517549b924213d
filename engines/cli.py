"""What every Hawkwatch command line shares: help that shows each flag's default, a description
made of whole sentences, and usage errors as one line (`prog: error: ...`, exit 2)."""
from __future__ import annotations

import argparse


def summary(doc: str | None) -> str:
    """A module docstring's first paragraph as one line: whole sentences, never cut mid-sentence."""
    first = (doc or "").strip().split("\n\n")[0]
    return " ".join(first.split())


class _DefaultsShown(argparse.HelpFormatter):
    """Each flag's help ends with its default, unless the help says it already or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    def __init__(self, prog: str, doc: str | None, **kwargs):
        super().__init__(prog=prog, description=summary(doc), formatter_class=_DefaultsShown, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def set_dotted(data: dict, key: str, value: object) -> None:
    """`key` (dotted: `events.open_threshold`) set to `value` in nested mappings, made where
    missing; a string value is read as YAML (`0.3` a number, `[1, 2]` a list). What every
    `--set KEY=VALUE` flag does."""
    import yaml

    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value) if isinstance(value, str) else value

"""Regenerate the README's demo transcript from a real run of the demo, so the README says what
`make demo` prints today (run it whenever the model or the event rules change):

    .venv/bin/python scripts/demo_transcript.py            # rewrites README.md's transcript block
    .venv/bin/python scripts/demo_transcript.py --check    # exit 1 if the README's alerts differ

The demo (configs/demo.yaml on data/vtest.avi) is replayed in real time, as `make demo` does (80 s).
tests/test_demo.py checks the block's alerts (their number and categories) against a run of its own,
replayed as fast as the models go (the same verdicts, sooner).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- demo transcript: begin -->", "<!-- demo transcript: end -->"
_OPEN = re.compile(r"ALERT\s+\S+ #\d+ OPEN\s+(\w+)")


def claimed(readme: str) -> list[str]:
    """The categories of the alerts the README's transcript block shows opening, in order."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README.md has no transcript block ({BEGIN} ... {END})")
    return _OPEN.findall(readme.split(BEGIN, 1)[1].split(END, 1)[0])


def run_demo() -> list[str]:
    """What `make demo` prints (the subscriber's lines; the pipeline's log is left out)."""
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "demo", "ARGS=--log-level WARNING"],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"make demo failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return [line for line in done.stdout.splitlines() if line.strip()]


def block(lines: list[str]) -> str:
    """The transcript: its first messages, then every alert, then the camera's last health line."""
    alerts = [ln for ln in lines if " ALERT " in ln]
    opened = _OPEN.findall("\n".join(alerts))
    head = [ln for ln in lines if " ALERT " not in ln][:4]
    last = [ln for ln in lines if " HEALTH " in ln][-1:]
    said = ("Over its 80 s the embedded model raises " + (f"{len(opened)} alert{'s' if len(opened) > 1 else ''} "
                                                           f"({', '.join(opened)})" if opened else "no alert") + ":")
    return "\n".join([BEGIN, said, "", "```", *head, "...", *alerts, *(["..."] if alerts else []), *last, "```", END])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the README instead of rewriting it")
    args = ap.parse_args(argv)
    text = README.read_text()
    lines = run_demo()
    new = block(lines)
    if args.check:
        ok = claimed(text) == claimed(new)
        print(f"README claims {claimed(text)}, the demo raised {claimed(new)}")
        return 0 if ok else 1
    start, end = text.index(BEGIN), text.index(END) + len(END)
    README.write_text(text[:start] + new + text[end:])
    print(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

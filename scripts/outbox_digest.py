"""The alerts a config gives, as one digest: run it through the pipeline (fast replay), read every
row of its outbox, and print them in order without what differs from run to run (alert ids become
their order of opening; wall times, latencies and evidence file names are left out), then the
sha256 of it all. Run it on two checkouts to show a change kept the alerts byte for byte:

    python scripts/outbox_digest.py --config configs/demo.yaml --set detector.name=baseline
    (cd /tmp/before && python /work/main/scripts/outbox_digest.py --config configs/demo.yaml ...)

`--set key.path=value` overrides the config (YAML values): the demo's own model is silent on
vtest.avi, so the baseline detector, or lower event thresholds, give it alerts to compare.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engines.cli import set_dotted  # noqa: E402

VOLATILE = ("wall_start", "wall_end", "latency_ms", "sent_at", "outbox")   # clocks, and the outbox's own id


def with_overrides(config: Path, sets: list[str], var: Path) -> dict:
    """The config with `--set` applied, its paths made absolute, and every file it writes under `var`."""
    raw = yaml.safe_load(config.read_text())
    for item in sets:
        set_dotted(raw, *item.split("=", 1))
    base = config.resolve().parent

    def absolute(node):
        if isinstance(node, dict):
            return {k: absolute(v) for k, v in node.items()}
        if isinstance(node, str) and node.startswith(".."):
            return str((base / node).resolve())
        return node
    raw = absolute(raw)
    alerts = raw.setdefault("alerts", {})
    alerts["outbox"] = {**alerts.get("outbox", {}), "path": str(var / "outbox.sqlite")}
    alerts["evidence"] = {**alerts.get("evidence", {}), "folder": str(var / "evidence")}
    alerts["wait_for_subscriber_s"] = 0
    raw.pop("http", None)
    raw.setdefault("normal", {})["store"] = str(var / "normal")
    raw["replay"] = "fast"
    return raw


def digest(outbox: Path) -> list[str]:
    con = sqlite3.connect(outbox)
    rows = con.execute("SELECT camera, seq, body FROM alerts ORDER BY camera, seq").fetchall()
    con.close()
    order: dict[str, int] = {}
    out = []
    for camera, seq, body in rows:
        msg = json.loads(body)
        msg["alert_id"] = order.setdefault(msg["alert_id"], len(order))
        for k in VOLATILE:
            msg.pop(k, None)
        msg["evidence"] = [{"kind": e["kind"]} for e in msg.get("evidence", [])]
        out.append(json.dumps({"camera": camera, "seq": seq, **msg}, sort_keys=True))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True, help="a pipeline config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    ap.add_argument("--rows", action="store_true", help="print every row, not only the digest")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        config = var / "config.yaml"
        config.write_text(yaml.safe_dump(with_overrides(args.config, args.set, var)))
        run = subprocess.run([sys.executable, "run_pipeline.py", "--config", str(config)], capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stderr[-2000:], file=sys.stderr)
            return run.returncode
        rows = digest(var / "outbox.sqlite")
    if args.rows:
        print("\n".join(rows))
    print(f"{len(rows)} outbox rows, sha256 {hashlib.sha256(chr(10).join(rows).encode()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

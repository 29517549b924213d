"""A Ray cluster of several nodes on this one machine, to try the Ray runtime (`make demo-ray`).

    python scripts/ray_cluster.py [--workers 1] [--cpus 2] [--address-file var/ray-address]

Starts a head node (label hawkwatch/role=models) and `--workers` worker nodes (hawkwatch/role=ingest),
each its own raylet with its own CPUs, prints the head's address (and writes it to --address-file),
and runs until SIGINT or SIGTERM, then stops every node. On real machines use `ray start --head`
and `ray start --address HEAD:6379 --labels ...` instead (docs/deploying.md: Running on a Ray cluster).
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engines.cli import Parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = Parser("ray_cluster.py", __doc__)
    p.add_argument("--workers", type=int, default=1, help="worker nodes besides the head (default 1)")
    p.add_argument("--cpus", type=float, default=2, help="logical CPUs each node offers (default 2)")
    p.add_argument("--address-file", type=Path, help="also write the head's address here (removed on exit)")
    args = p.parse_args(argv)
    if args.workers < 0 or args.cpus <= 0:
        p.error("--workers must be 0 or more and --cpus above 0")
    from ray.cluster_utils import Cluster

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": args.cpus, "labels": {"hawkwatch/role": "models"}, "include_dashboard": False})
    try:
        for _ in range(args.workers):
            cluster.add_node(num_cpus=args.cpus, labels={"hawkwatch/role": "ingest"})
        print(f"ray cluster: head {cluster.address} (hawkwatch/role=models) and {args.workers} worker node(s) "
              f"(hawkwatch/role=ingest), {args.cpus:g} CPUs each; Ctrl-C stops it", flush=True)
        if args.address_file:
            args.address_file.parent.mkdir(parents=True, exist_ok=True)
            args.address_file.write_text(cluster.address + "\n")
        stop.wait()
    finally:
        if args.address_file:
            args.address_file.unlink(missing_ok=True)
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

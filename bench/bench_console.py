"""What the web console costs the pipeline, per camera watched; every figure is measured in this run.

    python bench/bench_console.py [--cameras 2] [--seconds 40] [--rounds 2]

The demo config with --cameras cameras (each replaying vtest.avi in real time, looping) runs as
its own process. Once every camera has scored a window, its CPU time (user + system, that process
only) is read over --seconds, alternately with nobody watching and with a real browser (Debian's
headless chromium, driven by selenium) showing the console's grid (every camera's snapshot each
second, the states every 2 s) and one camera's page (its snapshot, and the timeline every 5 s).
The difference, divided by the cameras on screen, is the console's cost per camera. The browser's
own CPU is the viewer's, not counted. Rounds alternate to spread this machine's drift over both.
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402


def config(folder: Path, cameras: int, port: int) -> Path:
    cfg = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    cfg["cameras"] = {f"cam{k}": {"path": str(ROOT / "data/vtest.avi"), "loop": True} for k in range(cameras)}
    for part in ("person_detector", "pose"):
        cfg["models"][part]["path"] = str(ROOT / "configs" / cfg["models"][part]["path"])
    cfg["detector"]["hawkeye"]["model"] = str(ROOT / "models/hawkeye")
    base = free_port()
    cfg["alerts"].update(endpoint=f"tcp://127.0.0.1:{base}", query_endpoint=None, chat_endpoint=None,
                         wait_for_subscriber_s=0, outbox={"path": str(folder / "outbox.sqlite")},
                         evidence={"folder": str(folder / "evidence")})
    cfg["http"] = {"endpoint": f"127.0.0.1:{port}"}
    path = folder / "console-bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cpu_of(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def main() -> int:
    from engines.cli import Parser
    ap = Parser("python bench/bench_console.py", __doc__)
    ap.add_argument("--cameras", type=int, default=2, help="cameras in the pipeline, all on the grid")
    ap.add_argument("--seconds", type=float, default=40.0, help="seconds each measurement lasts")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (nobody watching, the console open)")
    args = ap.parse_args()
    from tests.test_console import _browser
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "--config",
                                 str(config(Path(tmp), args.cameras, port))], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        pipeline = psutil.Process(proc.pid)
        try:
            print(f"waiting for {args.cameras} cameras to score their first window ...", flush=True)
            while True:
                if proc.poll() is not None:
                    print(proc.stderr.read(), file=sys.stderr)
                    return 1
                try:
                    with urllib.request.urlopen(f"{url}/api/cameras", timeout=5) as r:
                        cams = json.loads(r.read())
                    if len(cams) == args.cameras and all(c.get("windows_done", 0) > 0 for c in cams):
                        break
                except OSError:
                    pass
                time.sleep(1.0)
            browser = _browser()
            idle, watched = [], []
            try:
                for k in range(args.rounds):
                    for watching in (False, True):
                        if watching:
                            browser.get(url + "/")
                            browser.switch_to.new_window("tab")
                            browser.get(f"{url}/cameras/cam0")
                        else:
                            browser.get("about:blank")
                            for handle in browser.window_handles[1:]:
                                browser.switch_to.window(handle)
                                browser.close()
                            browser.switch_to.window(browser.window_handles[0])
                        time.sleep(3.0)                       # the pages settle before counting
                        c0, t0 = cpu_of(pipeline), time.monotonic()
                        time.sleep(args.seconds)
                        rate = (cpu_of(pipeline) - c0) / (time.monotonic() - t0)
                        (watched if watching else idle).append(rate)
                        print(f"round {k + 1}: {'console open' if watching else 'nobody watching':16s} "
                              f"{rate * 100:5.1f} % of a core", flush=True)
            finally:
                browser.quit()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    diffs = [w - i for w, i in zip(watched, idle)]
    per_camera = [d / args.cameras for d in diffs]
    print(f"\npipeline CPU, {args.cameras} cameras in real time: nobody watching {statistics.mean(idle) * 100:.1f} % "
          f"of a core, console open {statistics.mean(watched) * 100:.1f} %")
    print(f"console's cost: {statistics.mean(diffs) * 100:+.1f} % of a core in all, "
          f"{statistics.mean(per_camera) * 100:+.2f} % per camera on screen "
          f"(rounds: {', '.join(f'{d * 100:+.2f}' for d in per_camera)})")
    print(f"(one machine, {os.cpu_count()} cores, {args.rounds} rounds of {args.seconds:g} s: the rounds' spread is "
          "the noise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

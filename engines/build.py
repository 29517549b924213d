"""Build TensorRT plans ahead of time, with progress, into the cache the pipeline loads them from.

    python -m engines.build models/pose_landmark_full.onnx [--precision fp16] [--opt-batch 8]
                            [--max-batch 16] [--cache-dir DIR] [--calibration-cache FILE]

Every model of a Hawkwatch config, with the config's settings: `hawkwatch build-engines CONFIG`
(run_pipeline.py; the engines know nothing of configs). A plan is specific to the GPU and the TensorRT version, so build on the machine that will run it
(or one with the same GPU). Builds that are already cached return at once.
"""
from __future__ import annotations

import sys
from pathlib import Path

from engines.cli import Parser
from engines import BackendUnavailable
from engines.tensorrt_backend import BuildSpec, EngineBuildError, PlanCache, ensure_plan


def build_plans(jobs: list[tuple[Path, BuildSpec, PlanCache]], prog: str = "engines.build") -> int:
    """Build (or find cached) each job's plan, one progress line per model on stderr; 0, or 1 with
    the reason when TensorRT is missing or a build fails."""
    for i, (path, spec, cache) in enumerate(jobs, 1):
        def say(msg: str, i=i, path=path) -> None:
            print(f"\r[{i}/{len(jobs)}] {path.name}: {msg:<70}", end="", file=sys.stderr, flush=True)
        try:
            plan_path, _ = ensure_plan(path, spec, cache, say)
        except (BackendUnavailable, EngineBuildError) as e:
            print(f"\n{prog}: {e}", file=sys.stderr)
            return 1
        print(f"\r[{i}/{len(jobs)}] {path.name}: {plan_path}".ljust(80), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = Parser("python -m engines.build", __doc__)
    p.add_argument("models", nargs="+", type=Path, help="ONNX files")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16", help="plan precision")
    p.add_argument("--opt-batch", type=int, default=8, help="the batch size TensorRT tunes the plans for")
    p.add_argument("--max-batch", type=int, default=16, help="the largest batch the plans take")
    p.add_argument("--workspace-mb", type=int, default=2048, help="builder workspace (scratch GPU memory)")
    p.add_argument("--cache-dir", type=Path, help="where plans go (default ~/.cache/hawkwatch/tensorrt)")
    p.add_argument("--calibration-cache", type=Path, help="int8: a TensorRT calibration cache file")
    a = p.parse_args(argv)
    try:
        spec = BuildSpec(precision=a.precision, opt_batch=min(a.opt_batch, a.max_batch), max_batch=a.max_batch,
                         workspace_mb=a.workspace_mb, calibration_cache=a.calibration_cache)
    except ValueError as e:
        p.error(str(e))
    for path in a.models:
        if not path.is_file():
            p.error(f"{path}: no such ONNX file")
    cache = PlanCache(a.cache_dir) if a.cache_dir else PlanCache()
    return build_plans([(m, spec, cache) for m in a.models])


if __name__ == "__main__":
    sys.exit(main())

"""Check the house's layering from the source: every import (at the top of a module, inside a
function, or only for type checking) goes to the same layer or one below, and no modules import
each other in a circle.

    python scripts/layers.py            # the layers, their modules, and any violation
    python scripts/layers.py --check    # exit 1 when there is a violation (the suite runs this)

The layers, lowest first, are LAYERS below; docs/design.md explains them.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# lowest first; a module belongs to the layer of the first name that is it or a package above it
# ("=name": that module only)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("engines: running exported models, the shared command-line style", ("engines",)),
    ("base: types, config, metrics, queues, frames", (
        "=stream", "stream.types", "stream.config", "stream.metrics", "stream.queues", "stream.frames", "stream.net",
        "stream.redact", "stream.logs", "stream.preflight")),
    ("ingest and scene", ("stream.ingest", "stream.scene")),
    ("the model", ("stream.llm",)),
    ("alerts: schema, outbox, sinks, evidence, reviews, request servers", ("stream.alerts",)),
    ("the detector stage", ("stream.detection",)),
    ("runtimes", ("stream.runtime", "stream.cameras", "stream.local_runtime", "stream.ray_runtime")),
    ("the coordinator", ("stream.pipeline",)),
    ("http: the API, its read model, the console", ("stream.http",)),
    ("the composition root", ("stream.app",)),
    ("commands", ("stream.subscribe", "run_pipeline", "training", "bench", "scripts")),
]


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for top in ("engines", "stream", "training", "bench", "scripts"):
        for path in sorted((root / top).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    found["run_pipeline"] = root / "run_pipeline.py"
    return found


def layer_of(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p.lstrip("=") or (not p.startswith("=") and module.startswith(p + ".")) for p in prefixes):
            return i
    return None


def imports(found: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project's modules it imports (anywhere in it)."""
    def resolve(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [resolve(f"{node.module}.{a.name}") or resolve(node.module) for a in node.names]
            else:
                continue
            edges[module].update(t for t in targets if t is not None and t != module)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def violations(root: Path = ROOT) -> list[str]:
    found = modules(root)
    edges = imports(found)
    problems = [f"{m}: in no layer (add it to LAYERS in scripts/layers.py)" for m in sorted(found)
                if layer_of(m) is None]
    for module in sorted(edges):
        here = layer_of(module)
        for target in sorted(edges[module]):
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                problems.append(f"{module} ({LAYERS[here][0].split(':')[0]}) imports {target}, "
                                f"a higher layer ({LAYERS[there][0].split(':')[0]})")
    problems += [f"import circle: {' <-> '.join(group)}" for group in circles(edges)]
    return problems


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from engines.cli import Parser
    p = Parser("python scripts/layers.py", __doc__)
    p.add_argument("--check", action="store_true", help="only the violations; exit 1 when there is one")
    args = p.parse_args(argv)
    if not args.check:
        found = modules()
        for i, (name, _) in enumerate(LAYERS):
            members = sorted(m for m in found if layer_of(m) == i)
            print(f"{i:>2} {name}: {len(members)} modules")
    problems = violations()
    for line in problems:
        print(line)
    if args.check and not problems:
        print("layers: no import circle, no import from a lower layer to a higher one")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

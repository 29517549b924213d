"""The backend registry: backends register themselves by name (`register_backend`), and
`create_engine` builds one by name, trying the config's fallbacks in order. engines/__init__.py
imports every backend, so that `from engines import create_engine` finds them all."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable, Protocol

import numpy as np


class Engine(Protocol):
    backend: str
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """The backend is registered but cannot run on this machine (package or device missing)."""


_BACKENDS: dict[str, Callable[..., Engine]] = {}


def register_backend(name: str):
    def deco(factory: Callable[..., Engine]) -> Callable[..., Engine]:
        _BACKENDS[name] = factory
        return factory
    return deco


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def onnx_input_shapes(path: str | Path) -> dict[str, list[int | None]]:
    """The ONNX file's graph inputs, name -> shape (None for a dynamic dimension), weights not loaded."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    return {i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input if i.name not in weights}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_engine(backend: str, model_path: str | Path, *, threads: int | None = None,
                  options: dict[str, dict] | None = None, fallback: tuple[str, ...] | list[str] = ()) -> Engine:
    """An engine for the model; `options` holds per-backend settings ({"tensorrt": {...}}), and
    `fallback` the backends to try, in order, when `backend` cannot run on this machine."""
    for name in (backend, *fallback):
        if name not in _BACKENDS:
            raise ValueError(f"unknown engine backend {name!r}; choose one of {', '.join(backend_names())}")
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist (bundled models: `make models`)")
    reasons = []
    for name in (backend, *fallback):
        try:
            engine = _BACKENDS[name](path, threads=threads, **(options or {}).get(name, {}))
        except BackendUnavailable as e:
            reasons.append(f"{name}: {e}")
            continue
        if reasons:
            log.warning("%s: using the %s backend (%s)", path.name, name, "; ".join(reasons))
        return engine
    others = [b for b in backend_names() if b not in (backend, *fallback)]
    raise BackendUnavailable("; ".join(reasons) + (f". Choose another backend ({', '.join(others)}) or list one "
                                                   "in models.fallback" if others else ""))


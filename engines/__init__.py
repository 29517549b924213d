"""Run exported models behind one interface, with the backend chosen by name from a registry.

    engine = create_engine("onnxruntime", "models/ssdlite_person.onnx", threads=2)
    outputs = engine.run({"image": batch})          # name -> array, batch first
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import numpy as np


class Engine(Protocol):
    backend: str
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class BackendUnavailable(RuntimeError):
    """The backend is registered but cannot run on this machine (package or device missing)."""


_BACKENDS: dict[str, Callable[..., Engine]] = {}


def register_backend(name: str):
    def deco(factory: Callable[..., Engine]) -> Callable[..., Engine]:
        _BACKENDS[name] = factory
        return factory
    return deco


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_engine(backend: str, model_path: str | Path, *, threads: int | None = None) -> Engine:
    if backend not in _BACKENDS:
        raise ValueError(f"unknown engine backend {backend!r}; choose one of {', '.join(backend_names())}")
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist (bundled models: `make models`)")
    return _BACKENDS[backend](path, threads=threads)


from engines import onnxruntime_backend  # noqa: E402,F401  (registers itself)

"""What every route and page is handed: the app's read model (a FastAPI dependency)."""
from __future__ import annotations

from fastapi import Request

from stream.http.readmodel import ReadModel


def read_model(request: Request) -> ReadModel:
    return request.app.state.read

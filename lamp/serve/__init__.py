"""lamp serve: a fitted pipeline behind HTTP (FastAPI + uvicorn); see :mod:`lamp.serve.app`."""

from __future__ import annotations

from lamp.serve.server import run_server

__all__ = ["run_server"]

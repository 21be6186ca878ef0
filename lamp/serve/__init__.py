"""lamp serve: a fitted pipeline behind HTTP (FastAPI + uvicorn); see :mod:`lamp.serve.app`."""

from __future__ import annotations

from lamp.serve.server import free_port, run_server, serving

__all__ = ["free_port", "run_server", "serving"]

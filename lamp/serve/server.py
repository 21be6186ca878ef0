"""Start the HTTP server on a saved pipeline bundle (what ``lamp serve BUNDLE`` runs)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from lamp.errors import MissingDependencyError

logger = logging.getLogger(__name__)


def run_server(bundle: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 8000, threads: int = 1,
               log_level: str = "info", llm: Any = None) -> None:
    """Load ``bundle``, build its history's indices, then serve it until interrupted.

    ``threads``: torch threads for the ranker. One query's batch is tiny: on a 2-core machine shared with
    other work, 2 spinning threads made the ranker 60 times slower than 1 (82 ms against 1.4 ms per call).
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", extra="serve", purpose="lamp serve") from exc
    import torch

    from lamp.pipeline.predictor import Pipeline
    from lamp.serve.app import create_app

    torch.set_num_threads(max(1, int(threads)))
    start = time.perf_counter()
    pipe = Pipeline.load(bundle, llm=llm)
    pipe.warm_up()
    history = pipe.history
    logger.info("loaded %s in %.1f s: %s events of history, newest %s; serving on http://%s:%d (docs: /docs)",
                bundle, time.perf_counter() - start, 0 if history is None else len(history.log),
                "-" if history is None or history.newest is None else pipe.time_spec.format(history.newest), host, port)
    uvicorn.run(create_app(pipe), host=host, port=port, log_level=log_level)

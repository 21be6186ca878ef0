"""A fitted :class:`lamp.Pipeline` behind HTTP: ``POST /observe``, ``POST /predict``, ``GET /health``.

>>> app = create_app(lamp.Pipeline.load("icews14.lamp"))        # doctest: +SKIP  (lamp serve does this)

Bad input is answered with 422 and ``{"error": ..., "problems": [{"field", "message", "fix"}]}``:
a malformed body, a missing or mistyped field, an unknown relation, a date that is not one, a batch
with an event earlier than the newest observed one. A batch with any bad event is refused whole
(nothing is kept). 5xx answers are reserved for the server's own faults: 503 when a component cannot
answer (e.g. an LLM backend is down), 500 only for a bug.

Requests are served concurrently (FastAPI runs these endpoints in a thread pool); the pipeline runs
one prediction at a time, each from the history as it was when it started, and builds a new history's
indices before letting the next prediction run (see :mod:`lamp.pipeline.predictor`). The OpenAPI
schema is at ``/openapi.json``, an interactive page at ``/docs``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pandas as pd

import lamp
from lamp.errors import ConfigError, DataFormatError, LampError, LeakageError, MissingDependencyError
from lamp.pipeline.predictor import Pipeline
from lamp.serve.schemas import (
    FIXES,
    ErrorResponse,
    HealthResponse,
    ObserveRequest,
    ObserveResponse,
    PredictRequest,
    PredictResponse,
)

logger = logging.getLogger(__name__)

_BAD_INPUT = (ConfigError, DataFormatError, LeakageError)  # the caller's to fix: 422 (RequestError is a ConfigError)


def create_app(pipe: Pipeline) -> Any:
    """The FastAPI app serving ``pipe``."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
    except ImportError as exc:
        raise MissingDependencyError("fastapi", extra="serve", purpose="lamp serve") from exc

    app = FastAPI(title="lamp", version=lamp.__version__,
                  description="Event forecasts from a fitted lamp pipeline: observe new events, ask what comes next, "
                              "with the abduced causes and the real past events behind each candidate.")
    errors: dict[int | str, dict[str, Any]] = {422: {"model": ErrorResponse, "description": "bad input"},
                                               503: {"model": ErrorResponse, "description": "a component failed"}}

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(err) for err in exc.errors()]
        return JSONResponse(status_code=422, content={
            "error": f"invalid request: {len(problems)} problem(s), first: {problems[0]['field']}: "
                     f"{problems[0]['message']}" if problems else "invalid request", "problems": problems})

    def failed(exc: LampError, *, batch: bool) -> JSONResponse:
        if not isinstance(exc, _BAD_INPUT):
            logger.error("%s: %s", type(exc).__name__, exc)
            return JSONResponse(status_code=503, content={"error": str(exc), "problems": []})
        field = "time" if isinstance(exc, LeakageError) else getattr(exc, "field", None) or ("events" if batch else "body")
        row = getattr(exc, "row", None)
        where = f"events[{row}].{field}" if (batch and row is not None) else field
        text, _, fix = str(exc).partition(" Fix: ")
        return JSONResponse(status_code=422, content={"error": str(exc), "problems": [
            {"field": where, "message": text, "fix": fix or FIXES.get(field, FIXES["body"])}]})

    @app.get("/health", response_model=HealthResponse)
    def health() -> dict[str, Any]:
        """Whether the server is up, and what it serves."""
        h = pipe.history
        return {"status": "ok", "lamp_version": lamp.__version__, "dataset": str(pipe.dataset_meta.get("name", "")),
                "components": {k: pipe.config.get(k) for k in ("base_model", "abducer", "retriever", "ranker")},
                "top_m": pipe.top_m, "entities": len(pipe.entities) if h is None else h.log.num_entities,
                "relations": len(pipe.relations), "history_events": 0 if h is None else len(h.log),
                "newest": "" if h is None or h.newest is None else pipe.time_spec.format(h.newest),
                "history_version": 0 if h is None else h.version}

    @app.get("/relations", response_model=list[str])
    def relations() -> Sequence[str]:
        """The relations the pipeline was trained on (a query or an event with another one is refused or dropped)."""
        return list(pipe.relations.names)

    @app.post("/observe", response_model=ObserveResponse, responses=errors)
    def observe(body: ObserveRequest) -> Any:
        """Add events to the pipeline's history (all of the batch, or nothing when any event is bad)."""
        frame = pd.DataFrame([e.model_dump() for e in body.events], columns=["subject", "relation", "object", "time"])
        try:
            return asdict(pipe.observe(frame))
        except LampError as exc:
            return failed(exc, batch=True)

    @app.post("/predict", response_model=PredictResponse, responses=errors)
    def predict(body: PredictRequest) -> Any:
        """Rank the objects of (subject, relation, ?, time) from the events observed strictly before time."""
        try:
            return pipe.predict(body.subject, body.relation, body.time, top_m=body.top_m).to_dict()
        except LampError as exc:
            return failed(exc, batch=False)

    return app


def _problem(err: Any) -> dict[str, str]:
    """One pydantic error as {field, message, fix}: ``('body', 'events', 3, 'time')`` -> ``events[3].time``."""
    kind = str(err.get("type", ""))
    if kind.startswith("json"):  # loc is ('body', <character position>)
        detail = (err.get("ctx") or {}).get("error", "")
        at = [p for p in err.get("loc", ()) if isinstance(p, int)]
        return {"field": "body", "message": f"{err.get('msg', 'invalid JSON')}{': ' + str(detail) if detail else ''}"
                f"{f' at character {at[0]}' if at else ''}", "fix": FIXES["body"]}
    loc = [p for p in err.get("loc", ()) if p != "body"]
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    names = [p for p in loc if isinstance(p, str)]
    if kind == "extra_forbidden":
        fix = f"remove {names[-1] if names else 'it'!r}: it is not a field of this request (see /openapi.json)."
    elif not names:
        fix = FIXES["body"]
    else:
        fix = FIXES.get(names[-1], FIXES["body"])
    message = str(err.get("msg", "invalid"))
    if "input" in err and kind not in ("missing", "value_error"):
        message += f" (got {_short(err['input'])})"
    return {"field": field or "body", "message": message, "fix": fix}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

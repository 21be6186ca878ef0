"""The JSON the server reads and writes (pydantic models: they validate requests and make the OpenAPI schema).

Every field says what it expects; :data:`FIXES` says how to fix a bad one (the 422 answers quote it).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from lamp.pipeline.prediction import CandidatePrediction

MAX_EVENTS = 100_000  # events per /observe request: a larger batch is split by the caller

FIXES = {
    "subject": "give the subject entity's name as a non-empty string, e.g. \"Barack Obama\".",
    "relation": "give one of the relations the pipeline was trained on (GET /relations lists them), "
                "e.g. \"Make statement\".",
    "object": "give the object entity's name as a string (\"\" for an event without one).",
    "time": "give an ISO date like \"2014-12-19\" (or a number in the dataset's time units).",
    "top_m": "give a whole number from 1 to 100, or leave it out (the pipeline's own M).",
    "events": f"send {{\"events\": [{{\"subject\": ..., \"relation\": ..., \"object\": ..., \"time\": ...}}, ...]}} "
              f"with 1 to {MAX_EVENTS} events (split a larger batch).",
    "body": "send a JSON object with the fields of this endpoint (see /docs or /openapi.json), "
            "with the header Content-Type: application/json.",
}


def _time_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a date string or a number, got {value!r}")
    return value


TimeValue = Annotated[str | float, BeforeValidator(_time_value)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EventIn(Strict):
    """One event, by names."""

    subject: str = Field(min_length=1, max_length=1000, description="the subject entity's name",
                         examples=["Barack Obama"])
    relation: str = Field(min_length=1, max_length=1000, description="the relation's name, as in training",
                          examples=["Impose embargo, boycott, or sanctions"])
    object: str = Field("", max_length=1000, description="the object entity's name ('' for none)",
                        examples=["Gazprom"])
    time: TimeValue = Field(description="an ISO date (or a number in the dataset's time units)",
                            examples=["2014-12-15"])


class ObserveRequest(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS,
                                  description="new events, in any order within the batch; none earlier than the "
                                              "newest already observed")


class ObserveResponse(BaseModel):
    added: int
    duplicates: int = Field(description="events equal to one already kept (or earlier in the batch): dropped")
    dropped_unseen_relation: int = Field(description="events whose relation was not seen in training: dropped")
    new_entities: list[str]
    history_events: int
    newest: str
    version: int = Field(description="the history's version: +1 per batch that added events")


class PredictRequest(Strict):
    subject: str = Field(min_length=1, max_length=1000, examples=["Barack Obama"])
    relation: str = Field(min_length=1, max_length=1000, examples=["Impose embargo, boycott, or sanctions"])
    time: TimeValue = Field(description="the query time: events strictly before it are used",
                            examples=["2014-12-19"])
    top_m: int | None = Field(None, ge=1, le=100, description="candidates to rank (default: the pipeline's M)")


class TiesOut(BaseModel):
    groups: list[list[int]] = Field(description="ranks sharing one final score (shown in base order)")
    at_cut: list[int] = Field(description="ranks whose base score equals that of candidates left out")
    beyond_cut: int = Field(description="candidates left out of the top-M that score as the last ones kept")
    score_at_cut: float | None
    any: bool


class PredictResponse(BaseModel):
    subject: str
    relation: str
    time: float
    date: str
    candidates: list[CandidatePrediction] = Field(description="best first, each with its abduced causes and the "
                                                                  "real past events (evidence) that support it")
    history_events: int
    ignored_future: int
    dropped_unseen_relation: int
    unseen_entities: list[str]
    ranker_used: bool
    ranking: str = Field(description="ranked | tied | arbitrary: whether the scores told the candidates apart")
    ties: TiesOut
    history_version: int | None
    note: str | None = Field(description="what the scores cannot tell apart, in words (null when nothing)")


class Problem(BaseModel):
    field: str = Field(description="where: e.g. events[3].time, relation, body")
    message: str
    fix: str


class ErrorResponse(BaseModel):
    error: str
    problems: list[Problem]


class HealthResponse(BaseModel):
    status: str
    lamp_version: str
    dataset: str
    components: dict[str, str | None]
    top_m: int
    entities: int
    relations: int
    history_events: int
    newest: str
    history_version: int

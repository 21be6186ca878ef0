"""Base temporal point-process models that score every candidate next event."""

from lamp.tpp.base import TIE_RULE, BaseModel, CandidateTable, rank_candidates

__all__ = ["TIE_RULE", "BaseModel", "CandidateTable", "rank_candidates"]

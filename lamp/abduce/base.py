"""The abducer interface and its resolver.

An abducer turns candidate effect events into cause events with scores (:class:`Abducer`, defined in
:mod:`lamp.types` and re-exported here). ``ABDUCERS`` picks one by a plain string; each kind is
imported only when used, and says whether it needs an LLM (``uses_llm``).

>>> abducer = ABDUCERS.make("rules", max_causes=5)                               # doctest: +SKIP
>>> both = ABDUCERS.make("llm_rules", client=client, mode="union")              # doctest: +SKIP
>>> ABDUCERS.lookup("pmi").uses_llm                                              # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import Any

from lamp.components import Resolver
from lamp.types import Abducer, AbductionRequest, AbductionResult, CauseEvent

__all__ = ["ABDUCERS", "Abducer", "AbductionRequest", "AbductionResult", "CauseEvent", "build_abducer", "uses_llm"]

ABDUCERS: Resolver[Abducer] = Resolver("abducer", {
    "rules": "lamp.abduce.rules.abducer:RulesAbducer",
    "llm": "lamp.abduce.llm_abducer:LLMAbducer",
    "llm_rules": "lamp.abduce.combined:LLMRulesAbducer",
    "pmi": "lamp.abduce.likelihood:PMIAbducer",
}, conf_group="abducer")


def uses_llm(name: str) -> bool:
    """Whether the abducer ``name`` needs an LLM client (``client=``)."""
    return bool(getattr(ABDUCERS.lookup(name), "uses_llm", False))


def build_abducer(kind: str, **kwargs: Any) -> Abducer:
    """An abducer by name with its options (fields of its ``Settings``) and, for LLM abducers, ``client=``."""
    return ABDUCERS.make(kind, **kwargs)

"""The abducer interface and its factory.

An abducer turns candidate effect events into cause events with scores (:class:`Abducer`, defined in
:mod:`lamp.types` and re-exported here). ``build_abducer`` picks one by a plain string; each kind is
imported only when used.

>>> abducer = build_abducer("rules", max_causes=5)                          # doctest: +SKIP
>>> both = build_abducer("llm_rules", llm={"backend": backend}, mode="union")   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from lamp.errors import ConfigError
from lamp.types import Abducer, AbductionRequest, AbductionResult, CauseEvent

__all__ = ["ABDUCERS", "Abducer", "AbductionRequest", "AbductionResult", "CauseEvent", "build_abducer"]

ABDUCERS = ("rules", "llm", "llm_rules")


def build_abducer(kind: str, **kwargs: Any) -> Abducer:
    """Build an abducer by name: ``rules``, ``llm``, ``llm_rules`` or ``pmi``.

    ``rules`` and ``llm`` pass ``kwargs`` to :class:`~lamp.abduce.rules.RulesAbducer` and
    ``lamp.abduce.llm_abducer.LLMAbducer``. ``llm_rules`` takes ``llm={...}`` and ``rules={...}`` (the
    kwargs of each part, or ready abducers) plus ``mode`` ("union" or "rerank") and ``max_causes``.
    ``pmi`` takes ``proposer`` (an abducer or ``{name, ...}``, default rules), ``backend`` (with
    ``loglikelihood``) or ``scorer``, ``template``, ``max_causes`` and ``candidates``
    (:mod:`lamp.abduce.likelihood`).
    """
    if kind == "rules":
        from lamp.abduce.rules.abducer import RulesAbducer

        return RulesAbducer(**kwargs)
    if kind == "llm":
        from lamp.abduce.llm_abducer import LLMAbducer

        return LLMAbducer(**kwargs)
    if kind == "pmi":
        from lamp.abduce.likelihood import PMIAbducer
        from lamp.llm.likelihood import PMIScorer

        proposer = kwargs.pop("proposer", None) or {"name": "rules"}
        if isinstance(proposer, dict):
            proposer = dict(proposer)
            proposer = build_abducer(str(proposer.pop("name", "rules")), **proposer)
        scorer = kwargs.pop("scorer", None)
        backend = kwargs.pop("backend", None)
        template = kwargs.pop("template", None)
        if scorer is None:
            if backend is None:
                raise ConfigError("abducer 'pmi' needs an LLM with log-probabilities. Fix: llm=local (or transformers).")
            scorer = PMIScorer(backend, **({"template": template} if template else {}))
        return PMIAbducer(proposer, scorer, **kwargs)
    if kind == "llm_rules":
        from lamp.abduce.combined import LLMRulesAbducer

        parts = {}
        for part in ("llm", "rules"):
            given = kwargs.pop(part, None) or {}
            parts[part] = build_abducer(part, **given) if isinstance(given, dict) else given
        bad = sorted(set(kwargs) - {"mode", "max_causes"})
        if bad:
            raise ConfigError(f"llm_rules got unknown arguments {bad}; valid: llm, rules, mode, max_causes.")
        return LLMRulesAbducer(parts["llm"], parts["rules"], **kwargs)
    raise ConfigError(f"Unknown abducer: {kind!r}. Valid choices are: {', '.join(ABDUCERS)}")

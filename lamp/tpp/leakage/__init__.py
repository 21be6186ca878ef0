"""A leakage audit of base models: checks that a model's scores ignore everything it must not see, and
positive controls (deliberately leaky wrappers) that prove each check can fail.

What a base model may see for a query at time t: the log's events strictly before t (single-step
setting), the query's own fields, and, when fitted, the train split's events plus its selection on
valid queries. The audit changes everything else and demands identical scores:

- the log at and after t (cut, random, filled with the answers): :func:`future_log_checks`;
- the query set: each query alone, with its inverse-direction twin (whose subject is the answer), in
  shuffled batches, with its target or filter list replaced: :func:`query_set_checks`;
- the data fit learns from: a refit on a log whose test part (or, with selection pinned, whose valid and
  test parts) is random must not move the scores on the real log: :func:`training_checks`.

``benchmarks/audit_leakage.py`` runs :func:`audit_base_model` on real data and writes the tables.
"""

from lamp.tpp.leakage.audit import MUST_FLAG, AuditResult, audit_base_model, sample_queries, verdict
from lamp.tpp.leakage.checks import CheckRow, compare, future_log_checks, query_set_checks, training_checks
from lamp.tpp.leakage.controls import BONUS, FilterLeak, FitLeak, SameTimeLeak, TargetLeak, TwinLeak

__all__ = [
    "BONUS", "MUST_FLAG", "AuditResult", "CheckRow", "FilterLeak", "FitLeak", "SameTimeLeak", "TargetLeak", "TwinLeak",
    "audit_base_model", "compare", "future_log_checks", "query_set_checks", "sample_queries", "training_checks",
    "verdict",
]

"""The method a report leads with (chosen on valid, never on test) and its one-sentence comparison."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from lamp.data.queries import QuerySet
from lamp.eval.metrics import apply_reorder, metrics_rows
from lamp.eval.summary import headline, select_on_valid, valid_scores
from lamp.tpp.base import CandidateTable


def base_table(n: int = 40) -> CandidateTable:
    """``n`` queries at 20 timestamps, M = 3; the gold is at base position 1 (the middle) everywhere."""
    frame = pd.DataFrame({
        "query_id": np.arange(n), "event_index": np.arange(n), "time": np.repeat(np.arange(n // 2), 2).astype(float),
        "subject": 0, "relation": 0, "object": -1, "direction": "object", "target": 1, "history_end": 0,
    })
    q = QuerySet("object", "test", frame, 10, 1, np.arange(n + 1), np.ones(n, dtype=np.int64))
    cands = np.tile([0, 1, 2], (n, 1))
    scores = np.tile(np.array([3, 2, 1], dtype=np.float32), (n, 1))
    return CandidateTable("base:toy", q, 3, cands, scores, np.full(n, 2.0))


def rows_of(tables: dict[str, CandidateTable], extra: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for method, table in tables.items():
        out += metrics_rows(table, dataset="toy", task="object", split="test", method=method,
                            extra=extra.get(method), n_boot=200)
    return out


def ranked(value: float, weight: Any = 1.5) -> dict[str, Any]:
    return {"ranker_stop_mean_rank_combined": value, "ranker_stop_mean_rank_base": 2.0, "ranker_stop_used": 21,
            "ranker_weight": weight, "ranker_evidence_control": "uses evidence"}


def test_the_lowest_valid_rank_leads_and_test_numbers_do_not_choose() -> None:
    base = base_table()
    # lamp[a] moves the gold to the top on every test query; lamp[b] keeps the base order
    up = np.tile([1, 0, 2], (len(base.candidates), 1))
    tables = {"base:toy": base, "lamp[a,no_ranker]": apply_reorder(base, up, "lamp[a,no_ranker]"),
              "lamp[a]": apply_reorder(base, up, "lamp[a]"), "lamp[b]": base}
    # ... but on valid lamp[b] did better: it leads, whatever the test numbers say
    rows = rows_of(tables, {"lamp[a]": ranked(1.9), "lamp[b]": ranked(1.6)})
    scores = {s.method: s for s in valid_scores(rows)}
    assert scores["base:toy"].value == 2.0 and scores["lamp[b]"].value == 1.6
    assert scores["lamp[a,no_ranker]"].value is None and "not a candidate" in scores["lamp[a,no_ranker]"].note
    assert "evidence control: uses evidence" in scores["lamp[a]"].note
    sel = select_on_valid(list(scores.values()))
    assert sel.method == "lamp[b]" and sel.base == "base:toy"
    sentence = headline(sel, rows, tables)
    assert sentence.startswith("Best on valid: lamp[b] (mean rank 1.60 vs 2.00 for the base, 21 held-out valid")
    assert "MRR 0.500 vs 0.500: +0.000" in sentence and "no clear difference from the base" in sentence


def test_a_better_row_gets_its_paired_interval_and_verdict() -> None:
    base = base_table()
    up = np.tile([1, 0, 2], (len(base.candidates), 1))
    tables = {"base:toy": base, "lamp[a]": apply_reorder(base, up, "lamp[a]")}
    rows = rows_of(tables, {"lamp[a]": ranked(1.2)})
    sentence = headline(select_on_valid(valid_scores(rows)), rows, tables)
    assert "MRR 1.000 vs 0.500: +0.500 (95% CI +0.500 to +0.500, paired bootstrap over 40 queries)" in sentence
    assert sentence.endswith("better than the base.")


def test_a_tie_on_valid_is_said() -> None:
    base = base_table()
    tables = {"base:toy": base, "lamp[llm]": base, "lamp[rules]": base, "ablation:recent": base}
    rows = rows_of(tables, {m: ranked(1.76) for m in ("lamp[llm]", "lamp[rules]", "ablation:recent")})
    sentence = headline(select_on_valid(valid_scores(rows)), rows, tables)
    assert sentence.startswith("Best on valid: lamp[llm] (mean rank 1.76, tied with lamp[rules] and ablation:recent, "
                               "the earlier row taken, vs 2.00 for the base")


def test_the_base_leads_when_nothing_beats_it_on_valid_and_ties_go_to_the_base() -> None:
    base = base_table()
    tables = {"base:toy": base, "lamp[a]": base}
    rows = rows_of(tables, {"lamp[a]": ranked(2.0, weight="inf")})
    scores = valid_scores(rows)
    assert "keeps the base order (w = inf)" in scores[1].note
    sel = select_on_valid(scores)
    assert sel.method == "base:toy"
    assert headline(sel, rows, tables).startswith("Best on valid: the base model base:toy (mean rank 2.00; no method "
                                                  "beat it, the closest is lamp[a] at 2.00")


def test_without_a_ranker_nothing_is_selected_and_the_sentence_says_so() -> None:
    base = base_table()
    tables = {"base:toy": base, "lamp[rules,no_ranker]": base}
    rows = rows_of(tables, {})
    sel = select_on_valid(valid_scores(rows))
    assert sel.method == "lamp[rules,no_ranker]" and "no method has a valid number" in sel.how
    assert headline(sel, rows, tables).startswith("Shown: lamp[rules,no_ranker] (no method has a valid number")


@pytest.mark.parametrize("directions", [["object"], ["object", "subject"]])
def test_one_direction_prefers_all_queries(directions: list[str]) -> None:
    from lamp.eval.summary import one_direction

    rows = [{"method": "m", "direction": d} for d in [*directions, "both"]]
    assert [r["direction"] for r in one_direction(rows)] == ["both"]


def test_a_method_whose_ranker_learned_from_another_abducers_evidence_is_not_selected() -> None:
    # train_evidence=rules: lamp[llm]'s ranker and its valid number are lamp[rules]'s; equal on valid, so the
    # earlier row would be taken although the LLM's own evidence was never measured there
    base = base_table()
    tables = {"base:toy": base, "lamp[llm]": base, "lamp[rules]": base}
    teacher = {**ranked(1.6), "ranker_trained_on": "lamp[rules] evidence of the valid queries, applied to lamp[llm]'s"}
    rows = rows_of(tables, {"lamp[llm]": teacher, "lamp[rules]": ranked(1.6)})
    scores = {s.method: s for s in valid_scores(rows)}
    assert scores["lamp[llm]"].value is None and "not a candidate" in scores["lamp[llm]"].note
    assert "applied to lamp[llm]'s test evidence" in scores["lamp[llm]"].note
    assert select_on_valid(list(scores.values())).method == "lamp[rules]"

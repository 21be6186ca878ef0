"""LLMClient with several calls in flight (``max_concurrency``): token and cost caps hold even when the server
counts more prompt tokens than the client estimates, and no request is paid twice."""

from __future__ import annotations

import pytest
from llm_fakes import FakeBackend, requests_for

from lamp.llm import BUDGET_EXHAUSTED, Budget, LLMCache, LLMClient, PriceTable

# prompts of 1 to 12 words: calibrating on one length must hold for the others
PROMPTS = [" ".join(f"w{i}" for i in range(1 + n % 12)) + f" q{n}" for n in range(60)]


@pytest.mark.parametrize(("scale", "overhead"), [(1, 0), (1, 40), (3, 0), (2, 25)],
                         ids=["exact", "template-overhead", "coarser-tokenizer", "both"])
def test_token_cap_holds_under_concurrency(scale: int, overhead: int, cache: LLMCache) -> None:
    backend = FakeBackend(delay_s=0.01, max_concurrency=8, prompt_scale=scale, prompt_overhead=overhead)
    client = LLMClient(backend, cache, Budget(max_tokens=400), None, poll_interval_s=0.01)
    assert client.max_concurrency == 8
    out = client.generate(requests_for(PROMPTS, max_tokens=3), progress=False)
    u = client.usage
    assert u.total_tokens <= 400, f"cap overshot: {u.total_tokens} tokens charged"
    assert u.budget_stopped and u.budget_skipped > 0  # the cap, not the prompts, ended the batch
    paid = [r.messages[-1][1] for r in backend.calls]
    assert len(paid) == len(set(paid)) == u.calls  # each request paid once, every paid call counted
    assert [r.ok for r in out] == [p in paid for p in PROMPTS]
    assert {r.error for r in out if not r.ok} == {BUDGET_EXHAUSTED}
    assert backend.max_active > 1  # once calibrated, calls overlap
    # what was paid is cached: asking again pays nothing
    again = client.generate(requests_for(paid, max_tokens=3), progress=False)
    assert all(r.cached for r in again) and len(backend.calls) == u.calls


def test_cost_cap_holds_under_concurrency() -> None:
    prices = PriceTable({"fake-1": {"prompt": 1e6, "completion": 1e6}})  # $1 per token
    backend = FakeBackend(delay_s=0.01, max_concurrency=8, prompt_scale=2, prompt_overhead=30)
    client = LLMClient(backend, None, Budget(max_cost_usd=500.0), prices, poll_interval_s=0.01)
    client.generate(requests_for(PROMPTS, max_tokens=3), progress=False)
    assert client.usage.estimated_cost_usd <= 500.0 and client.usage.budget_stopped
    assert backend.max_active > 1


def test_first_call_runs_alone_until_it_calibrates_the_estimate() -> None:
    """Before any answer the client cannot know how the server counts: one call, then the rest in parallel."""
    backend = FakeBackend(delay_s=0.05, max_concurrency=8, prompt_overhead=40)
    client = LLMClient(backend, None, Budget(max_tokens=10_000), None, poll_interval_s=0.01)
    client.generate(requests_for(PROMPTS[:20], max_tokens=3), progress=False)
    assert backend.active_at_start[1] == 1  # the second call began after the first had answered
    assert backend.max_active > 1
    assert client.usage.calls == 20 and not client.usage.budget_stopped


def test_without_token_or_cost_cap_all_calls_start_at_once() -> None:
    backend = FakeBackend(delay_s=0.05, max_concurrency=8)
    client = LLMClient(backend, None, Budget(max_calls=100), None, poll_interval_s=0.01)
    client.generate(requests_for(PROMPTS[:8]), progress=False)
    assert backend.max_active == 8

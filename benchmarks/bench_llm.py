"""Speed of the local LLM path: calls/s and tokens/s, prefix reuse, JSON-schema decoding, cache reruns.

    python benchmarks/bench_llm.py [--threads N] [--out benchmarks/results/llm.md]

Runs the packaged SmolLM2 in-process through LLMClient with a fresh cache, prints a markdown table
and writes it (with this command line at the top) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from lamp.llm import LLMCache, LLMClient, LLMRequest, LLMResponse, build_backend

logger = logging.getLogger("bench_llm")
SYSTEM = "You are an analyst of political events. Answer briefly."
COUNTRIES = ["France", "Germany", "Japan", "Brazil", "Kenya", "India", "Canada", "Egypt", "Peru", "Norway"]
VERBS = ["met with", "criticised", "signed an agreement with", "accused", "made a statement about",
         "hosted a visit from", "expressed intent to cooperate with", "threatened"]
SCHEMA = {"type": "object", "properties": {"causes": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
    "type": "object", "properties": {"subject": {"type": "string", "enum": COUNTRIES},
                                     "relation": {"type": "string", "enum": VERBS},
                                     "object": {"type": "string", "enum": COUNTRIES}},
    "required": ["subject", "relation", "object"]}}}, "required": ["causes"]}


def history(n_events: int, offset: int = 0) -> str:
    """A synthetic event history (~14 tokens per line), the shape of a lamp abduction prompt."""
    lines = []
    for i in range(n_events):
        j = i + offset
        a, b = COUNTRIES[j % 10], COUNTRIES[(3 * j + 1) % 10]
        lines.append(f"2014-{1 + j % 12:02d}-{1 + j % 28:02d}: {a} {VERBS[j % len(VERBS)]} {b}.")
    return "Past events:\n" + "\n".join(lines)


def questions(n: int) -> list[str]:
    return [f"Why might {COUNTRIES[i % 10]} have {VERBS[(i + 2) % len(VERBS)]} {COUNTRIES[(i + 5) % 10]}?"
            for i in range(n)]


def run(client: LLMClient, reqs: list[LLMRequest]) -> tuple[list[LLMResponse], float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = client.generate(reqs, progress=False)
    bad = [r.error for r in out if r.error]
    if bad:
        raise RuntimeError(f"{len(bad)} calls failed, first: {bad[0]}")
    return out, time.perf_counter() - t0, time.process_time() - c0


def row(case: str, out: list[LLMResponse], wall: float, cpu: float, note: str = "") -> dict[str, object]:
    calls = sum(not r.cached for r in out)
    comp = sum(r.completion_tokens for r in out if not r.cached)
    return {"case": case, "calls": calls, "cache hits": sum(r.cached for r in out),
            "prompt tok": sum(r.prompt_tokens for r in out if not r.cached), "completion tok": comp,
            "wall s": f"{wall:.2f}", "CPU s": f"{cpu:.2f}", "calls/s": f"{len(out) / wall:.2f}" if wall else "-",
            "completion tok/s (wall)": f"{comp / wall:.1f}" if calls else "-", "note": note}


def markdown(rows: list[dict[str, object]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n", type=int, default=4, help="requests per case")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "llm.md"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load0 = os.getloadavg()[0]
    backend = build_backend("local", packaged="smollm2", n_ctx=4096, n_threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        client = LLMClient(backend, LLMCache(Path(tmp) / "llm.sqlite"), None, None)
        t0 = time.perf_counter()
        backend.count_tokens("warm up")  # load the model outside the timings
        load_s = time.perf_counter() - t0
        n, rows, all_reqs = args.n, [], []

        def case(name: str, reqs: list[LLMRequest], note: str = "") -> list[LLMResponse]:
            all_reqs.extend(reqs)
            out, wall, cpu = run(client, reqs)
            rows.append(row(name, out, wall, cpu, note))
            logger.info("%s: %.2fs", name, wall)
            return out

        short = [LLMRequest(messages=(("system", SYSTEM), ("user", q)), max_tokens=32) for q in questions(n)]
        case("short prompts, free decoding", short, "max_tokens 32")
        prefix = history(60)
        shared = [LLMRequest(messages=(("system", SYSTEM), ("user", prefix + "\n\n" + q)), max_tokens=16)
                  for q in questions(n + 1)[1:]]
        first = case("1k shared prefix: first call", shared[:1], "prefix evaluated")
        case("1k shared prefix: later calls", shared[1:], "KV cache of the prefix reused")
        distinct = [LLMRequest(messages=(("system", SYSTEM), ("user", history(60, 1000 * (i + 1)) + "\n\n" + q)),
                               max_tokens=16) for i, q in enumerate(questions(3)[1:])]
        case("1k distinct prefixes", distinct, "no reuse possible")
        task = "\n\nList the events that most likely caused: "
        free = [LLMRequest(messages=(("system", SYSTEM), ("user", history(10) + task + q)), max_tokens=96)
                for q in questions(n)]
        case("abduction, free decoding", free, "max_tokens 96")
        constrained = [LLMRequest(messages=r.messages, max_tokens=96, json_schema=SCHEMA) for r in free]
        out = case("abduction, JSON-schema decoding", constrained, "")
        parsed = sum(_parses(r.text) for r in out)
        rows[-1]["note"] = f"max_tokens 96; {parsed}/{len(out)} parse as JSON"
        calls_before = client.usage.calls
        out, wall, cpu = run(client, all_reqs)
        rows.append(row("second run, all of the above", out, wall, cpu,
                        f"{client.usage.calls - calls_before} new calls"))
    header = [f"`{' '.join([Path(sys.executable).name, *sys.argv])}`", "",
              f"Model `{backend.model_id}`, n_ctx 4096, n_threads {args.threads}, temperature 0; "
              f"{platform.machine()} with {os.cpu_count()} cores, load average {load0:.1f} at the start "
              f"(other jobs share the cores: compare CPU s, not wall s); model load {load_s:.2f}s. First-call latency with the 1k prefix: "
              f"{first[0].latency_s:.2f}s ({first[0].prompt_tokens} prompt tokens).", ""]
    text = "\n".join(header) + markdown(rows) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    sys.stdout.write(text)
    return 0


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())

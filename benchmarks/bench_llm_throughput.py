"""Remote-LLM throughput of lamp's client against a real local OpenAI-compatible server, and its cache and
budget under concurrency.

    LAMP_DATA_DIR=/path/to/datasets python benchmarks/bench_llm_throughput.py [--n 16] [--slots 1,2]

The server is ``llama_cpp.server`` with the packaged SmolLM2-135M, one thread per process. It answers one
call at a time (its app holds one lock around the model), so an N-slot server is N such processes behind
a least-busy reverse proxy (``llm_proxy.CountingProxy``), which also records every call on the server's
side. The client is built from ``conf/llm/openai_compatible.yaml`` exactly as ``llm=openai_compatible``
builds it, and the requests are the abducer's own: per-candidate, constrained prompts for ICEWS14 test
queries (object task) and the top-5 candidates of base:frequency, captured from ``LLMAbducer.abduce``.

1. Throughput: the same ``--n`` requests with a fresh cache at each ``max_concurrency`` in
   ``--concurrency``, for each slot count in ``--slots``; then once more at the highest with the proxy
   admitting only ``slots`` calls at a time (429 + Retry-After beyond), and a cached rerun.
2. Budget: ``--budget-n`` (200) other requests at the highest concurrency with a token budget of
   ``--budget-share`` of what they need; overshoot = max(0, tokens spent - budget), from the client's
   usage and from the server's.
3. Shared cache: the same requests run at once by two client processes sharing one cache file (the keys
   paid in 2. are hits), then again by one client. Duplicate paid calls are counted from the server's log.

Prints a markdown table and writes it, with the command, date, machine and load average, to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from llm_proxy import CountingProxy

from lamp.abduce.llm_abducer import LLMAbducer
from lamp.data.load import load_dataset
from lamp.data.queries import make_queries
from lamp.llm import LLMClient, LLMRequest, LLMResponse, build_backend, packaged_gguf, request_key
from lamp.llm.types import failed_response, to_plain
from lamp.pipeline.components import build_llm_client
from lamp.pipeline.stages import abduction_requests
from lamp.serve.server import child_server, free_port
from lamp.tpp.base import rank_candidates
from lamp.tpp.frequency import FrequencyBaseline

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2"  # the name the client sends; part of the cache key
SERVER_PIDS: list[int] = []  # the llama_cpp.server processes, for their CPU time
logger = logging.getLogger("bench_llm_throughput")


# -- requests: the abducer's own -----------------------------------------------------------------------
class _Recorder:
    """Stands in for the LLM client inside LLMAbducer.abduce and keeps the calls it would make."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.calls = backend, []

    def generate(self, calls: Sequence[LLMRequest], progress: bool | None = None) -> list[LLMResponse]:
        self.calls.extend(calls)
        return [failed_response("recorded, not sent") for _ in calls]


def abduction_calls(n: int, *, seed: int, n_shots: int, num_causes: int, top_m: int = 5) -> list[LLMRequest]:
    """``n`` distinct per-candidate constrained abduction calls for ICEWS14 test queries (object task)."""
    log = load_dataset("icews14")
    queries = make_queries(log, "object", "test", directions="object")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(queries), size=min(len(queries), 2 * n // top_m + 10), replace=False))
    table = rank_candidates(FrequencyBaseline(), log, queries.take(pick), top_m)
    backend = build_backend("openai", model=MODEL, base_url="http://127.0.0.1:9/v1", api_key_env="",
                            context_length=2048)
    rec = _Recorder(backend)
    logging.getLogger("lamp.abduce.llm_abducer").setLevel(logging.ERROR)  # "n of n calls failed": recorded
    LLMAbducer(rec, prompt="icews", mode="per_candidate", n_shots=n_shots, num_causes=num_causes,
               progress=False).abduce(log, abduction_requests(log, table))
    distinct = {request_key("openai", MODEL, r): r for r in rec.calls}  # equal queries give equal prompts
    if len(distinct) < n:
        raise SystemExit(f"only {len(distinct)} distinct abduction calls; ask for fewer")
    return list(distinct.values())[:n]


def to_records(reqs: Sequence[LLMRequest]) -> list[dict[str, Any]]:
    return [{"messages": [list(m) for m in r.messages], "max_tokens": r.max_tokens, "temperature": r.temperature,
             "seed": r.seed, "json_schema": to_plain(r.json_schema), "tag": r.tag} for r in reqs]


# -- the client, as llm=openai_compatible builds it ----------------------------------------------------
def client_for(base_url: str, cache_path: Path, concurrency: int, budget: dict[str, Any] | None = None,
               **overrides: Any) -> LLMClient:
    cfg = yaml.safe_load((ROOT / "conf" / "llm" / "openai_compatible.yaml").read_text())
    cfg.update(model=MODEL, base_url=base_url, max_concurrency=concurrency, structured_output="json_object",
               context_length=2048, cache={"path": str(cache_path)}, prices={MODEL: {"prompt": 0, "completion": 0}},
               **overrides)
    cfg["budget"] = {**cfg["budget"], "max_calls": None, **(budget or {})}
    client: LLMClient = build_llm_client(cfg)
    return client


def _shared_cache_worker(base_url: str, cache_path: str, concurrency: int, records: list[dict[str, Any]],
                         start_at: float) -> dict[str, Any]:
    """One of two client processes over one cache file: starts at ``start_at``, returns its usage."""
    reqs = [LLMRequest(messages=tuple((r, c) for r, c in d["messages"]), max_tokens=d["max_tokens"],
                       temperature=d["temperature"], seed=d["seed"], json_schema=d["json_schema"], tag=d["tag"])
            for d in records]
    client = client_for(base_url, Path(cache_path), concurrency)
    time.sleep(max(0.0, start_at - time.time()))
    out = client.generate(reqs, progress=False)
    usage = client.usage.to_dict()
    usage["errors"] = sum(r.error is not None for r in out)
    return usage


# -- servers -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def llama_servers(n: int, threads: int, log_dir: Path) -> Iterator[list[str]]:
    """``n`` llama_cpp.server processes with the packaged SmolLM2 (one slot each)."""
    model = packaged_gguf("smollm2")
    with contextlib.ExitStack() as stack:
        urls = []
        for i in range(n):
            port = free_port()
            url = f"http://127.0.0.1:{port}"

            def ready(url: str = url) -> bool:
                try:
                    with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                        return bool(r.status == 200)
                except OSError:
                    return False

            proc = stack.enter_context(child_server(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port",
                 str(port), "--n_ctx", "2048", "--n_threads", str(threads), "--n_threads_batch", str(threads),
                 "--verbose", "False"],
                ready, what="llama_cpp.server", timeout=120, log_path=log_dir / f"server{i}.log"))
            SERVER_PIDS.append(proc.pid)
            urls.append(url)
        yield urls


# -- measurement ---------------------------------------------------------------------------------------
def _cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _check_servers() -> None:
    """Stop with an error if a server process is gone (numbers measured against it would be meaningless)."""
    for pid in SERVER_PIDS:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        if state in ("Z", "X", "gone"):
            raise SystemExit(f"llama_cpp.server (pid {pid}) has exited (something outside the benchmark "
                             "stopped it?); its log is in the benchmark's temporary folder. Run again.")


def measure(label: str, slots: int, concurrency: int, client: LLMClient, reqs: Sequence[LLMRequest],
            proxy: CountingProxy, note: str = "") -> dict[str, Any]:
    _check_servers()
    mark, before, cpu0 = proxy.mark(), client.usage.to_dict(), _cpu_s(SERVER_PIDS)
    t0 = time.perf_counter()
    out = client.generate(reqs, progress=False)
    wall = time.perf_counter() - t0
    cpu = _cpu_s(SERVER_PIDS) - cpu0
    _check_servers()
    after = client.usage.to_dict()
    paid = [r for r in out if not r.cached and r.error is None]
    lat = sorted(r.latency_s for r in paid)
    served = proxy.paid_keys(mark)
    tokens = sum(r.prompt_tokens + r.completion_tokens for r in paid)
    return {
        "run": label, "slots": slots, "max_concurrency": concurrency, "requests": len(reqs),
        "paid": after["calls"] - before["calls"], "cache hits": after["cache_hits"] - before["cache_hits"],
        "errors": sum(r.error is not None for r in out), "wall s": f"{wall:.1f}", "req/s": f"{len(reqs) / wall:.2f}",
        "tok/s": f"{tokens / wall:.0f}", "completion tok/s": f"{sum(r.completion_tokens for r in paid) / wall:.1f}",
        "p50 s": f"{statistics.median(lat):.2f}" if lat else "-",
        "p95 s": f"{lat[min(len(lat) - 1, int(0.95 * len(lat)))]:.2f}" if lat else "-",
        "retries": after["retries"] - before["retries"], "429s": proxy.rejected(mark),
        "server paid": sum(served.values()), "server dup": sum(c - 1 for c in served.values()),
        "server cores": f"{cpu / wall:.2f}", "note": note,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def throughput(proxy: CountingProxy, slots: int, reqs: list[LLMRequest], levels: list[int], tmp: Path,
               rows: list[dict[str, Any]], *, with_429: bool) -> None:
    for c in levels:
        client = client_for(proxy.base_url, tmp / f"sweep-{slots}-{c}.sqlite", c)
        rows.append(measure("throughput", slots, c, client, reqs, proxy, "fresh cache"))
        logger.info("%s", rows[-1])
    top = max(levels)
    if with_429:
        proxy.admit = slots
        for wait in (0.0, None):  # 0: every 429 spends one of max_retries (lamp before rate_limit_wait_s)
            client = client_for(proxy.base_url, tmp / f"sweep-{slots}-429-{wait}.sqlite", top,
                                **({} if wait is None else {"rate_limit_wait_s": wait}))
            setting = f"rate_limit_wait_s {client.backend.rate_limit_wait_s:g}"  # type: ignore[attr-defined]
            rows.append(measure("throughput, 429s", slots, top, client, reqs, proxy,
                                f"proxy admits {slots} in flight, 429 + Retry-After {proxy.retry_after_s:g}s beyond; "
                                f"max_retries {client.backend.policy.max_retries}, {setting}"))  # type: ignore[attr-defined]
            logger.info("%s", rows[-1])
        proxy.admit = None
    rows.append(measure("cached rerun", slots, top, client, reqs, proxy, "same client and cache"))


def budget_and_shared_cache(proxy: CountingProxy, slots: int, reqs: list[LLMRequest], conc: int, share: float,
                            need_per_call: float, tmp: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    cache = tmp / "shared.sqlite"
    budget = int(share * need_per_call * len(reqs))
    mark = proxy.mark()
    client = client_for(proxy.base_url, cache, conc, {"max_tokens": budget})
    rows.append(measure("budget", slots, conc, client, reqs, proxy, f"max_tokens budget {budget}"))
    server_tokens = sum(s.prompt_tokens + s.completion_tokens for s in proxy.served(mark) if s.status == 200)
    spent = client.usage.total_tokens
    result: dict[str, Any] = {"budget": budget, "spent (client)": spent, "spent (server)": server_tokens,
                              "overshoot": max(0, max(spent, server_tokens) - budget),
                              "paid": client.usage.calls, "skipped": client.usage.budget_skipped}
    logger.info("budget: %s", result)

    # two client processes, one cache file, the same requests, started together
    mark2 = proxy.mark()
    ctx = get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        start_at = time.time() + 8.0  # both have imported lamp and built their client by then
        futs = [pool.submit(_shared_cache_worker, proxy.base_url, str(cache), conc, to_records(reqs), start_at)
                for _ in range(2)]
        usages = [f.result() for f in futs]
    both = proxy.served(mark2)
    wall = max(s.end for s in both) - min(s.start for s in both) if both else 0.0
    served = proxy.paid_keys(mark2)
    for i, u in enumerate(usages):
        rows.append({"run": f"shared cache, client {i + 1} of 2", "slots": slots, "max_concurrency": conc,
                     "requests": len(reqs), "paid": u["calls"], "cache hits": u["cache_hits"], "errors": u["errors"],
                     "wall s": f"{u['wall_time_s']:.1f}", "retries": u["retries"],
                     "note": "two processes at once; hits include calls the other client paid"})
    rows.append({"run": "shared cache, both", "slots": slots, "max_concurrency": conc, "requests": 2 * len(reqs),
                 "paid": sum(u["calls"] for u in usages), "wall s": f"{wall:.1f}",
                 "server paid": sum(served.values()), "server dup": sum(c - 1 for c in served.values()),
                 "note": f"{result['paid']} keys already paid in the budget run"})
    again = client_for(proxy.base_url, cache, conc)
    rows.append(measure("shared cache, rerun", slots, conc, again, reqs, proxy, "a third client, same cache"))
    all_paid = proxy.paid_keys(mark)
    result.update({"keys paid (server)": len(all_paid), "calls paid (server)": sum(all_paid.values()),
                   "duplicate paid calls (server)": sum(c - 1 for c in all_paid.values()),
                   "duplicate paid calls (clients)": result["paid"] + sum(u["calls"] for u in usages)
                   + again.usage.calls - len({request_key("openai", MODEL, r) for r in reqs})})
    return result


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="requests per throughput run")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--slots", default="1,2", help="server slots (llama_cpp.server processes) to measure")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads per server process")
    ap.add_argument("--n-shots", type=int, default=2)
    ap.add_argument("--num-causes", type=int, default=1, help="causes per call (max_tokens = 60 * this + 16)")
    ap.add_argument("--budget-n", type=int, default=200)
    ap.add_argument("--budget-share", type=float, default=0.2, help="token budget / what the requests need")
    ap.add_argument("--throughput-only", action="store_true", help="skip the budget and shared-cache runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llm_throughput.md"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("httpx", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    load0, started = os.getloadavg(), datetime.datetime.now().astimezone()
    levels = [int(c) for c in args.concurrency.split(",")]
    slot_counts = [int(s) for s in args.slots.split(",")]
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the servers are stopped on kill too
    calls = abduction_calls(1 + args.n + args.budget_n, seed=args.seed, n_shots=args.n_shots, num_causes=args.num_causes)
    warmup, sweep, big = calls[0], calls[1: args.n + 1], calls[args.n + 1:]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lamp-bench-tp-") as tmpdir:
        tmp = Path(tmpdir)
        with llama_servers(max(slot_counts), args.threads, tmp) as urls:
            for url in urls:  # load the model's pages and the prompt's shared prefix outside the timings
                client_for(f"{url}/v1", tmp / "warmup.sqlite", 1).backend.generate([warmup])
            for slots in slot_counts:
                with CountingProxy(urls[:slots]) as proxy:
                    throughput(proxy, slots, sweep, levels, tmp, rows, with_429=slots == max(slot_counts))
            slots = max(slot_counts)
            need = statistics.mean(s.prompt_tokens + s.completion_tokens for s in proxy.served() if s.status == 200)
            exact: dict[str, Any] = {}
            if not args.throughput_only:
                with CountingProxy(urls[:slots]) as proxy:
                    exact = budget_and_shared_cache(proxy, slots, big, max(levels), args.budget_share, need, tmp,
                                                    rows)
    load1 = os.getloadavg()
    cmd = " ".join(["python", "benchmarks/bench_llm_throughput.py", *(argv if argv is not None else sys.argv[1:])])
    text = "\n".join([
        "# Remote LLM throughput, cache and budget under concurrency", "",
        f"`LAMP_DATA_DIR=... {cmd.strip()}`", "",
        f"{started:%Y-%m-%d %H:%M %Z}; {platform.machine()} with {os.cpu_count()} cores, load average "
        f"{load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} at the start and {load1[0]:.2f} / {load1[1]:.2f} / "
        f"{load1[2]:.2f} at the end (another engineer shares the cores).",
        f"Server: llama_cpp.server (llama-cpp-python) with `{packaged_gguf('smollm2').name}`, n_ctx 2048, "
        f"{args.threads} thread(s) per process (n_threads and n_threads_batch), one process per slot behind a least-busy counting proxy "
        "(benchmarks/llm_proxy.py). Client: conf/llm/openai_compatible.yaml (structured_output json_object).",
        f"Requests: per-candidate constrained abduction calls from LLMAbducer for ICEWS14 test queries x top-5 "
        f"of base:frequency, {args.n_shots} train demonstrations, {args.num_causes} cause(s) (max_tokens "
        f"{sweep[0].max_tokens}); "
        f"{args.n} in each throughput run, {args.budget_n} others in the budget and shared-cache runs.", "",
        markdown(rows), "",
        "paid / cache hits: the client's usage; server paid / server dup: 200 answers the proxy relayed in that "
        "run and how many of them repeated a request body already answered in it; p50/p95: latency of paid "
        "calls (queueing at the server and retry waits included); tok/s: prompt + completion tokens of paid "
        "calls per wall second; server cores: CPU seconds of the server processes per wall second. Each "
        "server answered one warm-up call first (not counted).", "",
        *(["Budget and shared cache (the 200-request runs):", "", markdown([exact]), ""] if exact else []),
    ])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``lamp cache stats`` and ``lamp cache clear``: the durable LLM response cache."""

from __future__ import annotations

import argparse
import json


def add_cache_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("cache", help="LLM response cache: statistics and clearing")
    sub = parser.add_subparsers(dest="cache_command", required=True)
    stats = sub.add_parser("stats", help="entries, size and calls per model")
    stats.add_argument("--path", default=None, help="cache file (default: $LAMP_CACHE_DIR/llm.sqlite)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(handler=cmd_stats)
    clear = sub.add_parser("clear", help="delete cached responses")
    clear.add_argument("--path", default=None)
    clear.add_argument("--model", default=None, help="only this model id (see `lamp cache stats`)")
    clear.set_defaults(handler=cmd_clear)


def _cache(path: str | None):  # type: ignore[no-untyped-def]
    from lamp.llm.cache import LLMCache, default_cache_path

    return LLMCache(path or default_cache_path())


def cmd_stats(args: argparse.Namespace) -> int:
    stats = _cache(args.path).stats()
    if args.json:
        print(json.dumps(stats, default=str))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    removed = _cache(args.path).clear(model_id=args.model)
    print(f"removed {removed} cached responses")
    return 0

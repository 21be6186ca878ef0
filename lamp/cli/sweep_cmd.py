"""``lamp sweep DIR``: one table and the mean-rank-versus-M plot for the runs of a sweep."""

from __future__ import annotations

import argparse


def add_sweep_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("sweep", help="summarise a multirun folder: mean rank vs M per method")
    parser.add_argument("folder", help="a multirun folder (lamp run -m ... writes multirun/<date>/)")
    parser.add_argument("--direction", default="both", choices=["both", "object", "subject"])
    parser.add_argument("--split", default="test")
    parser.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from lamp.pipeline.sweep import summarize_sweep

    out = summarize_sweep(args.folder, direction=args.direction, split=args.split)
    print(out.read_text(encoding="utf-8"))
    print(f"written: {out} and {out.parent / 'mean_rank_vs_m.png'}")
    return 0

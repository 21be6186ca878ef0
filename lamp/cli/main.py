"""The ``lamp`` command: ``lamp run ...`` (the Hydra app), ``lamp data ...``, ``lamp cache ...``, ``lamp sweep`` and
``lamp serve``."""

from __future__ import annotations

import argparse
import sys

from lamp.cli.logs import configure_console, split_verbose
from lamp.errors import LampError

USAGE = """usage: lamp [-v] <command> [...]

commands:
  run [overrides...]   run the pipeline (a Hydra app): lamp run dataset=icews18 task=object llm=openai
  data ...             list, describe, validate and download datasets (lamp data --help)
  cache ...            LLM cache statistics and clearing (lamp cache --help)
  sweep DIR            one table and the mean-rank-vs-M plot for a multirun folder (lamp run -m ...)
  serve BUNDLE         serve a saved pipeline over HTTP: POST /observe, POST /predict, GET /health

  -v, --verbose        also show lamp's DEBUG lines (e.g. lamp run -v; same as lamp run hydra.verbose=lamp)
"""


def _subcommands() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamp", description="lamp: event prediction with LLM abductive reasoning")
    sub = parser.add_subparsers(dest="command", required=True)
    from lamp.cli.data_cmd import add_data_parser

    add_data_parser(sub)
    from lamp.cli.cache_cmd import add_cache_parser

    add_cache_parser(sub)
    from lamp.cli.sweep_cmd import add_sweep_parser

    add_sweep_parser(sub)
    from lamp.cli.serve_cmd import add_serve_parser

    add_serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv, verbose = split_verbose(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "run":  # Hydra configures its logging (conf/hydra/job_logging/lamp.yaml)
        from lamp.cli.run import run_hydra

        return run_hydra(argv[1:], verbose=verbose)
    configure_console(verbose)
    try:
        args = _subcommands().parse_args(argv)
        return int(args.handler(args))
    except LampError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

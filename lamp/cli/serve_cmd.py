"""``lamp serve BUNDLE``: serve a saved pipeline over HTTP (POST /observe, POST /predict, GET /health)."""

from __future__ import annotations

import argparse


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("serve", help="serve a saved pipeline (lamp.Pipeline.save) over HTTP",
                                   description="Serve a pipeline bundle: POST /observe adds events, POST /predict "
                                               "ranks the objects of (subject, relation, ?, time), GET /health; the "
                                               "OpenAPI schema is at /openapi.json.")
    parser.add_argument("bundle", help="a folder written by lamp.Pipeline.save")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                            "only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the ranker (default 1)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="server log level (info logs every request)")
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from lamp.serve import run_server

    run_server(args.bundle, host=args.host, port=args.port, threads=args.threads, log_level=args.log_level)
    return 0

"""``lamp data``: list, describe, validate and download datasets.

    lamp data list
    lamp data stats icews14 [--json]
    lamp data stats reviews.jsonl.gz --format amazon --option type_field=category
    lamp data validate path/to/folder [--format renet]
    lamp data download icews18

Handlers return an exit code; a LampError propagates to ``lamp.cli.main``, which prints it as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lamp.errors import ConfigError


def add_data_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its subcommands to the ``lamp`` parser."""
    parser = subparsers.add_parser("data", help="list, describe, validate and download datasets",
                                   description="List, describe, validate and download datasets.")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="{list,stats,validate,download}")

    p = sub.add_parser("list", help="known datasets and whether they are in the data directory")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("stats", help="events, splits, vocabularies and dates of a dataset")
    p.add_argument("dataset", metavar="NAME_OR_PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_read_options(p)
    p.add_argument("--no-cache", action="store_true", help="read the source files, not the cache")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("validate", help="read a dataset from its files and check every event")
    p.add_argument("path", metavar="PATH")
    _add_read_options(p)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("download", help="download a dataset (or cameo, gdelt-renet) and check its sha256")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--root", help="data directory (default: $LAMP_DATA_DIR or ~/.cache/lamp/datasets)")
    p.add_argument("--force", action="store_true", help="download again even if the folder exists")
    p.set_defaults(handler=cmd_download)


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", help="reader format (default: the registry's, or detected from the files)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option; VALUE is JSON when it parses (e.g. columns.time=ts, split_fractions=[0.7,0.15,0.15])")


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r} is not KEY=VALUE. Example: --option type_field=category")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--option {item!r} sets a key below a non-object value.")
        node[leaf] = value
    return out


def _describe(event_log: Any) -> dict[str, Any]:
    info = dict(event_log.describe())
    info["format"] = event_log.meta.get("format")
    codes = event_log.meta.get("relation_cameo")
    if codes is not None:
        info["cameo_unmapped"] = [event_log.relations.names[i] for i, c in enumerate(codes) if not c]
    for key in ("dropped_rows", "duplicate_rows", "split_offsets", "derived_split"):
        if key in event_log.meta:
            info[key] = event_log.meta[key]
    return info


def _print_info(info: dict[str, Any]) -> None:
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "splits":
            value = ", ".join(f"{s} {n:,}" for s, n in value.items())
        elif isinstance(value, list):
            value = f"{len(value)}" + (f" ({', '.join(map(str, value[:5]))}{', ...' if len(value) > 5 else ''})"
                                       if value else "")
        print(f"{key:<{width}}  {value}")


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registry: name, format, local presence, download source, description."""
    from lamp.data.registry import AUXILIARY, DATASETS, data_dir

    root = data_dir()
    print(f"data directory: {root}")
    rows = [(s.name, s.format, "yes" if (root / s.folder).exists() else "no", "yes" if s.sources else "no",
             s.description) for s in DATASETS.values()]
    rows += [(n, "-", "yes" if (root / n).exists() else "no", "yes", "auxiliary files") for n in AUXILIARY]
    header = ("name", "format", "local", "download", "description")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Describe a dataset (events per split, vocabularies, time range)."""
    from lamp.data.load import load_dataset

    event_log = load_dataset(args.dataset, format=args.format, options=parse_options(args.option) or None,
                             use_cache=not args.no_cache)
    info = _describe(event_log)
    if args.json:
        json.dump(info, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_info(info)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Read a dataset from its files (no cache): any problem raises a DataFormatError naming file and line."""
    from lamp.data.load import load_dataset

    event_log = load_dataset(args.path, format=args.format, options=parse_options(args.option) or None,
                             use_cache=False, download=False)
    info = _describe(event_log)
    sizes = ", ".join(f"{s} {n:,}" for s, n in info["splits"].items())
    print(f"OK: {args.path} ({info['format']}): {info['events']:,} events ({sizes}), "
          f"{info['num_entities']:,} entities, {info['num_relations']:,} relations")
    if info.get("cameo_unmapped"):
        print(f"warning: {len(info['cameo_unmapped'])} relation(s) have no CAMEO code: {info['cameo_unmapped'][:10]}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Download a dataset and verify its checksums."""
    from lamp.data.download import download

    folder = download(args.name, args.root, force=args.force)
    print(f"{args.name}: {folder}")
    return 0

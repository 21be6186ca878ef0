"""``lamp data`` through a minimal argparse dispatcher shaped like lamp.cli.main."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lamp.cli.data_cmd import add_data_parser, parse_options
from lamp.errors import ConfigError, LampError


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """What lamp.cli.main does for ``lamp data ...``: dispatch, LampError -> one line, exit code 2."""
    parser = argparse.ArgumentParser(prog="lamp")
    add_data_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
        code = int(args.handler(args))
    except LampError as exc:
        print(f"error: {exc}", file=__import__("sys").stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_options() -> None:
    assert parse_options(["columns.time=ts", "columns.subject=a", "split_fractions=[0.7,0.2,0.1]", "x=1"]) == \
        {"columns": {"time": "ts", "subject": "a"}, "split_fractions": [0.7, 0.2, 0.1], "x": 1}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["novalue"])


def test_list(data_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LAMP_DATA_DIR", str(data_dir))
    code, out, _ = run(["data", "list"], capsys)
    assert code == 0 and "icews14" in out and "amazon-easytpp" in out and "cameo" in out


@pytest.mark.parametrize("name, dates", [("icews14", ("2014-01-01T00:00:00", "2014-12-31T00:00:00")),
                                         ("gdelt", (None, None))])
def test_stats_json(name: str, dates, data_dir: Path, tmp_cache: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LAMP_DATA_DIR", str(data_dir))
    code, out, _ = run(["data", "stats", name, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and out.count("\n") == 1
    assert {"splits", "num_entities", "num_relations", "time_unit", "first_date", "last_date"} <= set(info)
    assert (info["first_date"], info["last_date"]) == dates
    assert info["cameo_unmapped"] == []


def test_stats_text_with_format_and_options(data_dir: Path, tmp_cache: Path, capsys) -> None:
    path = data_dir / "gdelt-raw" / "20191024143000.export.CSV"
    code, out, _ = run(["data", "stats", str(path), "--format", "gdelt_raw", "--option", "time_field=SQLDATE"], capsys)
    assert code == 0 and "splits" in out and "1,366" in out


def test_validate_good_and_bad(data_dir: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = run(["data", "validate", str(data_dir / "icews14")], capsys)
    assert code == 0 and out.startswith("OK: ") and "90,730 events" in out
    bad = tmp_path / "reviews.json"
    bad.write_text('{"reviewerID": "u", "unixReviewTime": 1, "overall": 5}\n{oops\n')
    code, out, err = run(["data", "validate", str(bad), "--format", "amazon"], capsys)
    assert code == 2 and err.count("\n") == 1 and "line 2" in err and "Fix:" in err and "Traceback" not in err
    code, _, err = run(["data", "validate", str(tmp_path / "missing")], capsys)
    assert code == 2 and "neither a known dataset" in err


def test_download_unknown(capsys, tmp_path: Path) -> None:
    code, _, err = run(["data", "download", "icews99", "--root", str(tmp_path)], capsys)
    assert code == 2 and "Valid choices" in err
    (tmp_path / "icews14").mkdir()  # present already: nothing to fetch
    code, out, _ = run(["data", "download", "icews14", "--root", str(tmp_path)], capsys)
    assert code == 0 and str(tmp_path / "icews14") in out
    code, _, err = run(["data", "download", "amazon-instruments", "--root", str(tmp_path)], capsys)
    assert code == 2 and "no public download source" in err

"""Sweeps: a real two-job multirun on the joblib launcher, then ``lamp sweep`` over its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamp.cli.main import main
from lamp.errors import ConfigError
from lamp.pipeline.sweep import collect, summarize_sweep


@pytest.mark.slow
def test_multirun_over_m_then_sweep_summary(data_dir: Path, tmp_path: Path, tmp_cache: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "multirun"
    code = main(["run", "-m", "experiment=rules_only", "queries.n_test=4", "queries.n_valid=6",
                 "retriever=fuzzy", "ablations=[recent]", "candidates.top_m=3,5", "hydra/launcher=joblib",
                 "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"])
    assert code == 0
    out = capsys.readouterr().out  # the driver lists the jobs' reports (a job's own lines may come from elsewhere)
    assert f"sweep: 2 report(s) in {sweep}\n  report: {sweep / '0' / 'report.html'}\n  report: {sweep / '1'}" in out
    runs = sorted(p.parent.name for p in sweep.rglob("metrics.json"))
    assert runs == ["0", "1"]  # both jobs finished, in parallel, sharing one artifact cache
    assert main(["sweep", str(sweep)]) == 0
    text = (sweep / "sweep.md").read_text()
    assert "| method | M=3 | M=5 |" in text and "lamp[rules]" in text and "base:rules" in text
    assert (sweep / "mean_rank_vs_m.png").stat().st_size > 1000
    assert "written:" in capsys.readouterr().out
    frame = collect(sweep)
    assert set(frame["top_m"]) == {3, 5} and (frame["n_queries"] > 0).all()


@pytest.mark.slow
def test_a_failed_job_fails_the_sweep_whichever_process_ran_it(data_dir: Path, tmp_path: Path, tmp_cache: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # job 1 asks for a top-0 candidate list: a ConfigError inside a joblib worker process, not in this one
    sweep = tmp_path / "multirun"
    code = main(["run", "-m", "stages=[data,base,eval]", "base_model=recurrency", "queries.n_test=4",
                 "queries.n_valid=2", "candidates.top_m=3,0", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 f"hydra.sweep.dir={sweep}"])
    assert code == 2
    assert (sweep / "0" / "metrics.json").is_file() and not (sweep / "0" / "error.txt").exists()
    assert "top_m" in (sweep / "1" / "error.txt").read_text()
    err = capsys.readouterr().err
    assert "1 job(s) of the sweep failed" in err and str(sweep / "1") in err


def _write(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(rows))


def _row(method: str, m: int, n: int = 10, dataset: str = "icews14", **kw: object) -> dict:
    return {"method": method, "dataset": dataset, "task": "object", "direction": "both", "split": "test",
            "top_m": m, "n_queries": n, "n_gold_in_top_m": 4, "mean_rank_top_m": m / 2, "mrr_filtered": 0.3, **kw}


def test_sweep_labels_what_varies_and_refuses_mixed_sweeps(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "0", [_row("lamp[rules]", 5, retriever="fuzzy"), _row("base:recurrency", 5)])
    _write(tmp_path / "a" / "1", [_row("lamp[rules]", 5, retriever="dense"), _row("base:recurrency", 10)])
    text = summarize_sweep(tmp_path / "a").read_text()
    assert "lamp[rules] (retriever=dense)" in text and "lamp[rules] (retriever=fuzzy)" in text
    assert "| base:recurrency | 2.500 (4) | 5.000 (4) |" in text
    _write(tmp_path / "b" / "0", [_row("base:recurrency", 5)])
    _write(tmp_path / "b" / "1", [_row("base:recurrency", 5, dataset="icews18")])
    with pytest.raises(ConfigError, match="not comparable"):
        summarize_sweep(tmp_path / "b")
    with pytest.raises(ConfigError, match="no metrics.json"):
        summarize_sweep(tmp_path / "empty")

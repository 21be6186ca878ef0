"""``lamp run``: the Hydra app. The only place (with lamp/cli/convert.py) that sees a DictConfig.

What a run prints: lamp's INFO lines and warnings and one progress bar per long stage on stderr
(see conf/hydra/job_logging/lamp.yaml and :mod:`lamp.progress`); at the end, on stdout, the results
table, the LLM usage and cost lines, one sentence for the method chosen on valid against the base
model, and where the report is.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from lamp.errors import LampError
from lamp.pipeline.config import conf_dir

logger = logging.getLogger(__name__)


def summary_lines(result: object) -> list[str]:
    """The lines printed at the end of a run (``result``: a :class:`lamp.pipeline.run.RunResult`)."""
    from lamp.pipeline.report import results_caption, results_table, run_headline, usage_line
    from lamp.pipeline.run import RunResult
    from lamp.pipeline.timing import cost_line

    assert isinstance(result, RunResult)
    lines = []
    if result.metrics:
        lines += ["", results_caption(result.metrics), results_table(result.metrics)]
    if result.llm_usage:
        lines.append(usage_line(result.llm_usage))
    if result.cost:
        lines.append("cost: " + cost_line(result.cost))
    if result.metrics:
        lines.append(run_headline(result.metrics, result.methods))
    report = result.run_dir / "report.html"
    lines.append(f"report: {report}" if report.is_file() else f"outputs: {result.run_dir}")
    return lines


def run_hydra(argv: list[str], *, verbose: bool = False) -> int:
    """Run the Hydra app with ``argv`` as its command line; LampErrors print as one line.

    ``verbose``: show lamp's DEBUG lines (adds ``hydra.verbose=lamp`` unless ``hydra.verbose`` is given)."""
    import hydra
    from omegaconf import DictConfig

    from lamp.cli.convert import to_pipeline_config
    from lamp.cli.schemas import register_schemas

    register_schemas()
    if verbose and not any(a.startswith(("hydra.verbose=", "+hydra.verbose=")) for a in argv):
        argv = [*argv, "hydra.verbose=lamp"]
    status = {"code": 0}

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def _app(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        from lamp.pipeline.run import run_pipeline

        logging.captureWarnings(True)  # other libraries' warnings go to run.log (see the job_logging config)
        output_dir = HydraConfig.get().runtime.output_dir
        try:
            pcfg = to_pipeline_config(cfg, run_dir=output_dir)
            result = run_pipeline(pcfg)
        except LampError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status["code"] = 2
            # a sweep's job may run in another process (joblib, Ray): the driver finds its failure in this file
            Path(output_dir, FAILED_JOB_FILE).write_text(f"{exc}\n")
            return
        print("\n".join(summary_lines(result)))

    old = sys.argv
    sys.argv = ["lamp run", *argv]
    started = time.time()
    _SWEEP.clear()
    try:
        _app()
    except LampError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        sys.argv = old
    sweep = _SWEEP.pop("dir", None)
    reports = sweep_reports(sweep, started)
    if reports:  # the driver's own lines: a job's lines on another process (Ray) may arrive after it ends
        print(f"sweep: {len(reports)} report(s) in {sweep}", *(f"  report: {r}" for r in reports), sep="\n")
    failed = failed_sweep_jobs(sweep, started)
    if failed:
        print(f"error: {len(failed)} job(s) of the sweep failed (each printed its error; the message is in its "
              f"{FAILED_JOB_FILE}): {', '.join(str(p) for p in failed)}", file=sys.stderr)
        return 2
    return status["code"]


FAILED_JOB_FILE = "error.txt"
_SWEEP: dict[str, Path] = {}  # the folder of the sweep this process launched (set by SweepWatch)


class SweepWatch(Callback):
    """A Hydra callback (``hydra.callbacks.lamp_sweep`` in conf/run/default.yaml): tells the driver of a sweep
    where its jobs write, so that it can find the jobs that failed in other processes."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        _SWEEP["dir"] = Path(str(config.hydra.sweep.dir)).absolute()


def _written_since(sweep: Path | None, name: str, since: float) -> list[Path]:
    if sweep is None or not sweep.is_dir():
        return []
    found = [p for p in sweep.rglob(name) if p.stat().st_mtime >= since]
    return sorted(found, key=lambda p: [int(x) if x.isdigit() else -1 for x in p.relative_to(sweep).parts])


def failed_sweep_jobs(sweep: Path | None, since: float) -> list[Path]:
    """The output folders of the sweep in ``sweep`` whose job failed with a LampError after ``since`` (an
    epoch time), wherever the launcher ran them; [] after a single run (``sweep`` None)."""
    return [p.parent for p in _written_since(sweep, FAILED_JOB_FILE, since)]


def sweep_reports(sweep: Path | None, since: float) -> list[Path]:
    """The reports the jobs of the sweep in ``sweep`` wrote after ``since``, in job order."""
    return _written_since(sweep, "report.html", since)

"""Fit (or load from a checkpoint folder) the base models of the rerank benchmark, object task, both directions.

A checkpoint is ``<dir>/<dataset>-<model>/`` in lamp's safe checkpoint format (safetensors + JSON,
strict load with the data fingerprint), so a rerun never retrains: KE-ANHP takes ~10 min on ICEWS14
and over an hour on ICEWS18 on one CPU thread. ``--time-budget`` caps the KE-ANHP epochs of the later
datasets from the seconds per training example measured on the earlier ones (for a GPU lease).

    python benchmarks/fit_bases.py --datasets icews14,gdelt,icews18 --models ke_anhp --dir /tmp/bases
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from lamp.data import load_dataset
from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet, make_queries
from lamp.tpp.base import BaseModel
from lamp.tpp.factory import build_base_model, load_base_model

logger = logging.getLogger("fit_bases")

KE_SETTINGS: dict[str, Any] = {"epochs": 12, "patience": 2}


def checkpoint_dir(root: Path, dataset: str, model: str) -> Path:
    return root / f"{dataset}-{model}"


def fit_or_load(name: str, log: EventLog, train: QuerySet, valid: QuerySet, root: Path, *,
                settings: dict[str, Any] | None = None) -> tuple[BaseModel, dict[str, Any]]:
    """The base model ``name`` for ``log``: loaded from ``root`` when saved there, else fitted and saved."""
    path = checkpoint_dir(root, log.name, name)
    if (path / "checkpoint.json").is_file():
        return load_base_model(path, log=log), {"loaded": str(path)}
    kwargs = dict(settings or (KE_SETTINGS if name == "ke_anhp" else {}))
    model = build_base_model(name, **kwargs)
    start = time.perf_counter()
    report = model.fit(log, train, valid)
    report = {"fit_seconds": time.perf_counter() - start, **{k: v for k, v in report.items() if k != "tuning"}}
    model.save(path)
    logger.info("%s %s fit report: %s", log.name, name, json.dumps(report, default=str))
    return model, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="icews14,gdelt,icews18")
    ap.add_argument("--models", default="recurrency,rules,ke_anhp")
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=KE_SETTINGS["epochs"])
    ap.add_argument("--time-budget", type=float, default=None, help="seconds for all KE-ANHP fits (caps epochs)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    start, per_example = time.perf_counter(), None
    for dataset in args.datasets.split(","):
        log = load_dataset(dataset)
        train, valid = (make_queries(log, "object", s, directions="both") for s in ("train", "valid"))
        for name in args.models.split(","):
            settings = None
            if name == "ke_anhp":
                epochs = args.epochs
                if args.time_budget and per_example:
                    left = args.time_budget - (time.perf_counter() - start)
                    epochs = max(1, min(epochs, int(left / (per_example * 2 * log.split_ends[0] * 1.15))))
                settings = {**KE_SETTINGS, "epochs": epochs, "device": args.device}
            t0 = time.perf_counter()
            _, report = fit_or_load(name, log, train, valid, args.dir, settings=settings)
            took = time.perf_counter() - t0
            if name == "ke_anhp" and "curve" in report:
                per_example = took / (len(report["curve"]) * 2 * log.split_ends[0])
            logger.info("%s %s: %.1f s %s", dataset, name, took,
                        {k: report[k] for k in ("best_epoch", "best_score", "loaded") if k in report})


if __name__ == "__main__":
    main()

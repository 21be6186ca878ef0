"""Evaluation: metrics over candidate tables, bootstrap intervals, results rows and predictions frames."""

from lamp.eval.bootstrap import PairedResult, bootstrap_ci, paired_bootstrap
from lamp.eval.metrics import (
    TopMRank,
    accuracy,
    apply_reorder,
    hits_at,
    map_at_k,
    mar_at_k,
    mean_rank_top_m,
    metrics_from_predictions,
    metrics_rows,
    mrr,
    paired_difference,
    predictions_frame,
    ranking_metrics,
    rmse,
)

__all__ = [
    "PairedResult", "TopMRank", "accuracy", "apply_reorder", "bootstrap_ci", "hits_at", "map_at_k", "mar_at_k",
    "mean_rank_top_m", "metrics_from_predictions", "metrics_rows", "mrr", "paired_bootstrap", "paired_difference",
    "predictions_frame", "ranking_metrics", "rmse",
]

"""``lamp run``: the Hydra app. The only place (with lamp/cli/convert.py) that sees a DictConfig."""

from __future__ import annotations

import logging
import sys

from lamp.errors import LampError
from lamp.pipeline.config import conf_dir

logger = logging.getLogger(__name__)


def run_hydra(argv: list[str]) -> int:
    """Run the Hydra app with ``argv`` as its command line; LampErrors print as one line."""
    import hydra
    from omegaconf import DictConfig

    from lamp.cli.convert import to_pipeline_config
    from lamp.cli.schemas import register_schemas

    register_schemas()
    status = {"code": 0}

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def _app(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        from lamp.pipeline.report import results_table
        from lamp.pipeline.run import run_pipeline
        from lamp.pipeline.timing import cost_line

        try:
            pcfg = to_pipeline_config(cfg, run_dir=HydraConfig.get().runtime.output_dir)
            result = run_pipeline(pcfg)
        except LampError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status["code"] = 2
            return
        if result.metrics:
            print(results_table(result.metrics))
        usage = result.llm_usage
        if usage:
            print("LLM budget used: " + ", ".join(f"{k}={usage[k]}" for k in
                                                  ("calls", "cache_hits", "prompt_tokens", "completion_tokens",
                                                   "failures", "estimated_cost_usd", "budget_stopped") if k in usage))
            reused = usage.get("reused_from_artifacts")
            if reused:
                print("reused abduction artifacts (paid by an earlier run, not again): "
                      + ", ".join(f"{k}={v:g}" for k, v in reused.items()))
        if result.cost:
            print("cost: " + cost_line(result.cost))
        print(f"outputs: {result.run_dir}")

    old = sys.argv
    sys.argv = ["lamp run", *argv]
    try:
        _app()
    except LampError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        sys.argv = old
    return status["code"]

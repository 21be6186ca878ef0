"""The end-to-end pipeline: stages, artifact store, resume and the one-call API."""

from lamp.pipeline.api import run
from lamp.pipeline.config import ABLATIONS, STAGES, Component, PipelineConfig
from lamp.pipeline.run import RunResult, run_pipeline

__all__ = ["ABLATIONS", "STAGES", "Component", "PipelineConfig", "RunResult", "run", "run_pipeline"]

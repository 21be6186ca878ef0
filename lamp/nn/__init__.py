"""Neural-network utilities shared by the trained components (lamp.tpp, lamp.rank): one training loop, one device rule."""

from lamp.nn.device import DEVICES, resolve_device
from lamp.nn.training import EpochRecord, TrainConfig, TrainReport, run_training, seed_everything, state_copy

__all__ = ["DEVICES", "EpochRecord", "TrainConfig", "TrainReport", "resolve_device", "run_training",
           "seed_everything", "state_copy"]

"""Event data: EventLog, readers, the dataset registry, queries and the event-to-text function."""

from lamp.data.eventlog import SPLITS, EventLog, TimeSpec, Vocab, build_event_log
from lamp.data.load import detect_format, load_dataset, register_reader
from lamp.data.registry import DATASETS, DatasetSpec, data_dir
from lamp.data.render import render_event, render_row

__all__ = [
    "DATASETS", "SPLITS", "DatasetSpec", "EventLog", "TimeSpec", "Vocab", "build_event_log", "data_dir",
    "detect_format", "load_dataset", "register_reader", "render_event", "render_row",
]

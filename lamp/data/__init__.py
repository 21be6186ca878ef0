"""Event data: EventLog, readers, the dataset registry, CAMEO codes, queries and the event-to-text function."""

from lamp.data.cameo import attach_cameo, cameo_root_definitions, unmapped_relations
from lamp.data.download import download_dataset
from lamp.data.eventlog import SPLITS, EventLog, TimeSpec, Vocab, build_event_log
from lamp.data.load import detect_format, formats, load_dataset, register_reader
from lamp.data.registry import DATASETS, DatasetSpec, data_dir
from lamp.data.render import render_event, render_row

__all__ = [
    "DATASETS", "SPLITS", "DatasetSpec", "EventLog", "TimeSpec", "Vocab", "attach_cameo", "build_event_log",
    "cameo_root_definitions", "data_dir", "detect_format", "download_dataset", "formats", "load_dataset",
    "register_reader", "render_event", "render_row", "unmapped_relations",
]

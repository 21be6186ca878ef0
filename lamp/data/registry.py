"""Known datasets: where they live in a data directory, how to read them, and their public sources.

A dataset is resolved from a local data directory first (``data_dir`` argument, else the
``LAMP_DATA_DIR`` environment variable, else ``~/.cache/lamp/datasets``) and downloaded otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lamp.data.eventlog import TimeSpec
from lamp.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """One file to download: URL, sha256 and, for archives, the member folder to extract."""

    url: str
    sha256: str | None
    filename: str
    extract: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # relative to the data directory
    format: str  # "renet" | "named" | "amazon" | "easytpp" | "gdelt_raw" | "table"
    time_spec: TimeSpec
    description: str
    sources: tuple[Source, ...] = ()
    options: dict[str, object] = field(default_factory=dict)


_DAY, _HOUR, _MIN = 86400.0, 3600.0, 60.0
_DIFFUTKG = "https://raw.githubusercontent.com/AONE-NLP/DiffuTKG"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "icews14", "icews14", "renet", TimeSpec("day", _DAY, datetime(2013, 12, 31)),
            "ICEWS14, RE-GCN split; t = day index 1..365 (t=1 is 2014-01-01)",
            (Source(f"{_DIFFUTKG}/1378a0fffdafca4ddf8634df1546be3b9743f018/data/ICEWS14.zip",
                    "b35a6cb7808f73cc3bbf2101355d4cf59db9579264e15eba300f3bbffb6882b4", "ICEWS14.zip", True),),
        ),
        DatasetSpec(
            "icews18", "icews18", "renet", TimeSpec("hour", _HOUR, datetime(2018, 1, 1), granularity=24.0),
            "ICEWS18, RE-Net/RE-GCN split; t = hours in steps of 24 from 2018-01-01",
            (Source(f"{_DIFFUTKG}/1378a0fffdafca4ddf8634df1546be3b9743f018/data/ICEWS18.zip",
                    "f0ddc040d8cc292df7f10e8e2a62f53326e63277216a56be5ba6b00b65bc2148", "ICEWS18.zip", True),),
        ),
        DatasetSpec(
            "icews05-15", "icews05-15", "renet", TimeSpec("day", _DAY, datetime(2005, 1, 1)),
            "ICEWS05-15, RE-GCN split; t = 0-based day index from 2005-01-01",
            (Source(f"{_DIFFUTKG}/cadfada05dbf07df8c59d99c9dfae7e0d60bf801/data/ICEWS05_15.zip",
                    "06fca1dd8e79f9f6eedf249a78a9a9acb25e50915967f3e318af1ff320048e4f", "ICEWS05_15.zip", True),),
        ),
        DatasetSpec(
            "gdelt-renet", "gdelt-renet-full", "renet", TimeSpec("minute", _MIN, datetime(2018, 1, 1), granularity=15.0),
            "RE-Net GDELT (Jan 2018, 15-minute steps); event files are not distributed here",
        ),
        DatasetSpec(
            "gdelt", "gdelt", "named", TimeSpec("minute", _MIN, None, granularity=15.0),
            "GDELT 2018 slice (GenTKG-style subset of RE-Net GDELT); T_<minutes>, no absolute date, no headlines",
        ),
        DatasetSpec(
            "amazon-instruments", "amazon/musical-instruments-2014", "amazon", TimeSpec("day", _DAY, datetime(1970, 1, 1)),
            "Amazon 2014 5-core Musical Instruments reviews; event type = star rating; a proxy for the paper's Amazon data",
            options={"file": "reviews_Musical_Instruments_5.json.gz", "type_field": "overall"},
        ),
        DatasetSpec(
            "amazon-fashion", "amazon/fashion-2018", "amazon", TimeSpec("day", _DAY, datetime(1970, 1, 1)),
            "Amazon 2018 5-core AMAZON_FASHION reviews; event type = star rating; a proxy for the paper's Amazon data",
            options={"file": "AMAZON_FASHION_5.json", "type_field": "overall"},
        ),
        DatasetSpec(
            "amazon-easytpp", "amazon/easytpp-amazon", "easytpp", TimeSpec("step", 1.0, None),
            "EasyTPP Amazon (16 anonymous types) published by the LAMP authors; dev + test only",
        ),
    )
}


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``$LAMP_DATA_DIR``, else ``~/.cache/lamp/datasets``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("LAMP_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lamp" / "datasets"


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ConfigError(f"Unknown dataset name: {name!r}. Valid choices are: {', '.join(DATASETS)}; "
                          "or pass a path to a folder or file.")
    return DATASETS[name]

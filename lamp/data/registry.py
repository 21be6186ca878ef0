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
    """A known dataset: its folder under the data directory, reader format, time axis and sources."""

    name: str
    folder: str  # relative to the data directory
    format: str  # "renet" | "named" | "amazon" | "easytpp" | "gdelt_raw" | "table"
    time_spec: TimeSpec
    description: str
    sources: tuple[Source, ...] = ()
    options: dict[str, object] = field(default_factory=dict)


_DAY, _HOUR, _MIN = 86400.0, 3600.0, 60.0
_RAW = "https://raw.githubusercontent.com"
_DIFFUTKG = f"{_RAW}/AONE-NLP/DiffuTKG"
_GDELT_SLICE = f"{_RAW}/khanhnhan1512/RAG_LLM_DA/f62e95302a8eac7baa09ec4e7dbc6aec9a563dd5/datasets/GDELT"
_CAMEO = f"{_RAW}/yecchen/GDELT-ComplexEvent/2a2666420fc12f3a30b7228c64b793872b1fa073/data/CAMEO"
_RENET_GDELT = f"{_RAW}/INK-USC/RE-Net/a0e5f4732c5bb20d939f0f69e34fb9cf156ac1b2/data/GDELT"
_CDIFF = f"{_RAW}/networkslab/cdiff/dd04d4e2ff034307c3fa5efa87e40d3341939695/data/amazon"
_FASHION = f"{_RAW}/miranda-ham/IR_Project/bc89ae675f60b0e8e7aba212ec7fe30c937948a0"


def _files(base: str, pairs: tuple[tuple[str, str], ...]) -> tuple[Source, ...]:
    return tuple(Source(f"{base}/{name}", sha, name) for name, sha in pairs)

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
            _files(_GDELT_SLICE, (
                ("train.txt", "1095fdb69bbf4687ea62b5a96df0c234c9cff095a406efe188373699ec23c7f8"),
                ("valid.txt", "574e07ff5e298020b90557d19cab8a1507b5a3f8f29a3fb1d21b537df5ca2879"),
                ("test.txt", "2bb1cb498a8eca28d1ab9cc09a9aa17acc2e2cca947d3913b0da497ac7e9c005"),
                ("entity2id.json", "e33cc46c77eca0b05ec3ab40cfb9a37660b9d5eaac182014dbf35428e007f6c3"),
                ("relation2id.json", "e2facb49f9751e2794d87ef5f4d4c7e1dcdfc48b2cd8fa787f55d5d450287bbc"),
                ("stat.txt", "0257485e17247b68ff6bcf9f26bcdc9859bd2964ea9e9d30eac1e1d64d76a719"),
            )),
            # relations the names cannot map get RE-Net's CAMEO codes (lamp.data.cameo.gdelt_slice_codes)
            options={"cameo_fallback": "gdelt_slice"},
        ),
        DatasetSpec(
            "amazon-instruments", "amazon/musical-instruments-2014", "amazon", TimeSpec("day", _DAY, datetime(1970, 1, 1)),
            "Amazon 2014 5-core Musical Instruments reviews; event type = star rating; a proxy for the paper's Amazon data",
            options={"file": "reviews_Musical_Instruments_5.json.gz", "type_field": "overall"},
        ),
        DatasetSpec(
            "amazon-fashion", "amazon/fashion-2018", "amazon", TimeSpec("day", _DAY, datetime(1970, 1, 1)),
            "Amazon 2018 5-core AMAZON_FASHION reviews; event type = star rating; a proxy for the paper's Amazon data",
            _files(_FASHION, (("AMAZON_FASHION_5.json",
                               "da7990955c3948644a83ffeef5c111afbd6713e1e9414d27be5c61ea62307938"),)),
            options={"file": "AMAZON_FASHION_5.json", "type_field": "overall"},
        ),
        DatasetSpec(
            "amazon-easytpp", "amazon/easytpp-amazon", "easytpp", TimeSpec("step", 1.0, None),
            "EasyTPP Amazon (16 anonymous types) published by the LAMP authors; dev + test only",
            _files(_CDIFF, (("dev.pkl", "cd4c5684648924ad936d645d610451528a7b75692e67934f9ecdf20e3fa9d356"),
                            ("test.pkl", "6b15f1bf4d355d8d302eae37e3a4a85d929c5d0501b6e81bb65d59ce80d2e30c"))),
        ),
    )
}


# Folders that are not event datasets but that lamp reads: folder -> files to download.
AUXILIARY: dict[str, tuple[Source, ...]] = {
    "cameo": _files(_CAMEO, (
        ("dict_id2ont.json", "7d51eb9355732f6d0658ca45efd3af6e1ba27066a723e07450979bdd0dd3946e"),
        ("dict_hier_id.json", "4c8a1dca7c8902cd92b61e7fbda5820d854faa19d01c59672bfe2f69164cf3a8"),
        ("dict_hier_name.json", "16aa1ae4cb8b61f9e80df004788df0434b7f3f75873b1ca6e70eb8791575eee3"),
    )),
    "gdelt-renet": _files(_RENET_GDELT, (
        ("entity2id.txt", "e66a862431ced658585d66b9df88fd4daba61f1321185d4e6e92d88689108984"),
        ("relation2id.txt", "0fdc8e6edea4868deb646b17e4b3e9682b2e28f6bf8c64bc0483cc2dcc2d70d1"),
        ("stat.txt", "1912b3088232ea6823394ccbd58ccdaa72eb6bf5429e592666177be6e3fe8ef7"),
    )),
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
    """The registry entry of ``name``; an unknown name raises ConfigError listing the valid ones."""
    if name not in DATASETS:
        raise ConfigError(f"Unknown dataset name: {name!r}. Valid choices are: {', '.join(DATASETS)}; "
                          "or pass a path to a folder or file.")
    return DATASETS[name]


def manifest(name: str) -> dict[str, object]:
    """The download manifest of a dataset or auxiliary folder, as written to ``data/manifests/<name>.json``."""
    sources = AUXILIARY.get(name) if name not in DATASETS or not DATASETS[name].sources else None
    entry: dict[str, object]
    if sources is not None:
        entry = {"name": name, "kind": "auxiliary", "folder": name}
    else:
        spec = get_spec(name)
        sources = spec.sources
        entry = {"name": name, "kind": "dataset", "folder": spec.folder, "format": spec.format,
                 "description": spec.description, "time_spec": spec.time_spec.to_dict(), "options": dict(spec.options)}
    entry["sources"] = [{"url": s.url, "sha256": s.sha256, "filename": s.filename, "extract": s.extract}
                        for s in sources]
    return entry

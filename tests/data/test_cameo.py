"""CAMEO mapping on the real datasets: every relation of ICEWS14, ICEWS18 and the GDELT slice maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamp.data.cameo import (
    NAME_FIXES,
    attach_cameo,
    cameo_root_definitions,
    gdelt_slice_codes,
    load_codebook,
    map_relation_names,
    normalise_name,
    root_index,
    unmapped_relations,
)
from lamp.data.load import load_dataset
from lamp.errors import ConfigError


def _load(name: str, data_dir: Path):
    if not (data_dir / name).is_dir():
        pytest.skip(f"{data_dir / name} is missing")
    return load_dataset(name, data_root=data_dir, use_cache=False, download=False)


def test_normalise_name() -> None:
    assert normalise_name("Return,_release_person(s)") == "return release person s"
    assert normalise_name("Appeal for target to allow international involvement (non mediation)") == \
        normalise_name("Appeal_for_target_to_allow_international_involvement_(non-mediation)")


def test_root_definitions_are_the_20_roots(data_dir: Path) -> None:
    roots = cameo_root_definitions(data_dir / "cameo")
    assert [c for c, _, _ in roots] == [f"{i:02d}" for i in range(1, 21)]
    assert roots[0][1] == "Make public statement" and roots[18][1] == "Use conventional military force"
    assert all(desc for _, _, desc in roots)
    assert root_index("0841") == 7 and root_index("200") == 19


@pytest.mark.parametrize("name", ["icews14", "icews18", "gdelt"])
def test_no_relation_left_unmapped(name: str, data_dir: Path) -> None:
    event_log = _load(name, data_dir)  # load_dataset attaches CAMEO when the cameo folder exists
    assert unmapped_relations(event_log) == []
    meta = event_log.meta
    n = event_log.num_relations
    assert len(meta["relation_cameo"]) == len(meta["relation_root"]) == len(meta["relation_root_names"]) == n
    assert all(0 <= r < 20 for r in meta["relation_root"])
    assert len(meta["cameo_roots"]) == 20
    # every CAMEO root name is a real root name
    assert set(meta["relation_root_names"]) <= set(meta["cameo_roots"])


def test_known_relations(icews14) -> None:
    meta, rel = icews14.meta, icews14.relations
    code = dict(zip(rel.names, meta["relation_cameo"], strict=True))
    assert code["Make statement"] == "010"
    assert code["Carry out car bombing"] == "1832"
    assert code["Arrest, detain, or charge with legal action"] == "173"
    root = dict(zip(rel.names, meta["relation_root_names"], strict=True))
    assert root["Carry out car bombing"] == "Use unconventional violence"
    assert root["Threaten"] == "Threaten"


def test_name_mapping_agrees_with_renet_codes_on_gdelt(data_dir: Path) -> None:
    """RE-Net's code list is an independent check of the names and of the hand map."""
    event_log = _load("gdelt", data_dir)
    renet = gdelt_slice_codes(data_dir)
    assert renet is not None and None not in renet
    by_name = map_relation_names(event_log.relations.names, load_codebook(data_dir / "cameo"))
    assert by_name == renet


def test_every_hand_map_entry_is_used_and_valid(data_dir: Path) -> None:
    book = load_codebook(data_dir / "cameo")
    assert all(code in book.names for code in NAME_FIXES.values())
    exact = book.by_name()
    used = set()
    for name in ("icews14", "icews18", "gdelt"):
        for rel in _load(name, data_dir).relations.names:
            key = normalise_name(rel)
            if key not in exact:
                used.add(key)
    assert used == set(NAME_FIXES)


def test_fallback_codes_and_unmapped_report(data_dir: Path, icews14, caplog: pytest.LogCaptureFixture) -> None:
    book = load_codebook(data_dir / "cameo")
    assert map_relation_names(["no such event", "Consult"], book) == [None, "040"]
    assert map_relation_names(["no such event"], book, fallback_codes=["0841"]) == ["0841"]
    assert map_relation_names(["190"], book) == ["190"]  # RE-Net GDELT names relations by code
    renamed = icews14.relations.names[:-1] + ("Something unheard of",)
    import dataclasses

    from lamp.data.eventlog import Vocab

    odd = dataclasses.replace(icews14, relations=Vocab(renamed), meta={})
    with caplog.at_level("WARNING"):
        mapped = attach_cameo(odd, folder=data_dir / "cameo")
    assert unmapped_relations(mapped) == ["Something unheard of"]
    assert mapped.meta["relation_root"][-1] == -1
    assert "no CAMEO code" in caplog.text


def test_missing_codebook_is_a_config_error(tmp_path: Path, icews14) -> None:
    with pytest.raises(ConfigError, match="lamp data download cameo"):
        attach_cameo(icews14, folder=tmp_path)


def test_cameo_survives_the_cache(data_dir: Path, tmp_cache: Path) -> None:
    first = load_dataset("icews14", data_root=data_dir, download=False)
    second = load_dataset("icews14", data_root=data_dir, download=False)  # from the Parquet cache
    assert list((tmp_cache / "eventlogs").iterdir())
    for key in ("relation_cameo", "relation_root", "relation_root_names", "cameo_roots"):
        assert second.meta[key] == first.meta[key]

"""CAMEO event codes for relations: the codebook, name matching and the 20 root codes.

ICEWS and GDELT relation names are CAMEO event names. A relation is mapped to its CAMEO code by
its normalised name (lowercase, ``_`` -> space, punctuation dropped), then through a small hand
map for the names ICEWS/GDELT spell differently from the codebook, then (for the GDELT slice)
through RE-Net's relation codes. Its root is the code's first two digits: 20 roots, ``01`` (Make
public statement) .. ``20`` (Use unconventional mass force), the LAMP paper's "predicates".

The codebook is read from ``<data_dir>/cameo/dict_id2ont.json`` (yecchen/GDELT-ComplexEvent).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lamp.data.eventlog import EventLog
from lamp.data.registry import data_dir
from lamp.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

CODEBOOK_FILE = "dict_id2ont.json"

# Normalised ICEWS / GDELT names that differ from the codebook's wording -> CAMEO code.
# Every entry is checked against RE-Net's code list for GDELT in tests/data/test_cameo.py.
NAME_FIXES: dict[str, str] = {
    "make statement": "010",
    "deny responsibility": "016",
    "appeal for aid": "023",
    "appeal for change in leadership": "0241",
    "appeal for target to allow international involvement non mediation": "0255",
    "appeal to engage in or accept mediation": "028",
    "mediate": "045",
    "return release person s": "0841",
    "ease economic sanctions boycott embargo": "085",
    "allow humanitarian access": "0863",
    "demand diplomatic cooperation such as policy support": "102",
    "demand change in leadership": "1041",
    "demand that target yields": "105",
    "reject request for change in leadership": "1231",
    "reject request for policy change": "1232",
    "threaten with sanctions boycott embargo": "1312",
    "threaten with political dissent protest": "133",
    "threaten unconventional violence": "1383",
    "demonstrate for leadership change": "1411",
    "demonstrate for policy change": "1412",
    "engage in violent protest for policy change": "1452",
    "engage in violent protest for rights": "1453",
    "demonstrate military or police power": "150",
    "abduct hijack or take hostage": "181",
    "carry out car bombing": "1832",
}


@dataclass(frozen=True)
class Codebook:
    """CAMEO codes -> (name, description), plus a lookup by normalised name."""

    names: dict[str, str]
    descriptions: dict[str, str]
    path: str

    def by_name(self) -> dict[str, str]:
        """Normalised name -> code."""
        return {normalise_name(n): c for c, n in self.names.items()}

    def root_codes(self) -> list[str]:
        """The 20 two-digit root codes ``01`` .. ``20`` in order."""
        return sorted({c[:2] for c in self.names})

    def root_name(self, root: str) -> str:
        return self.names.get(root + "0", self.names.get(root, f"CAMEO {root}"))

    def name_of(self, code: str) -> str | None:
        """A code's name; an unknown sub-code falls back to its nearest known parent's name."""
        for k in range(len(code), 1, -1):
            name = self.names.get(code[:k]) or (self.names.get(code[:k] + "0") if k == 2 else None)
            if name:
                return name
        return None


def normalise_name(name: str) -> str:
    """``Return,_release_person(s)`` -> ``return release person s``."""
    text = re.sub(r"[^a-z0-9 ]", " ", name.lower().replace("_", " "))
    return " ".join(text.split())


def root_index(code: str) -> int:
    """Index 0..19 of a CAMEO code's root (``"0841"`` -> 7, root ``08`` Yield)."""
    return int(code[:2]) - 1


def cameo_dir(data_root: str | os.PathLike[str] | None = None) -> Path:
    """``<data_dir>/cameo``."""
    return data_dir(data_root) / "cameo"


def load_codebook(folder: str | os.PathLike[str] | None = None) -> Codebook:
    """Read the CAMEO codebook from ``folder`` (default ``<data_dir>/cameo``)."""
    path = Path(folder) if folder is not None else cameo_dir()
    return _load_codebook(str((path / CODEBOOK_FILE).resolve()))


@functools.lru_cache(maxsize=4)
def _load_codebook(file: str) -> Codebook:
    path = Path(file)
    if not path.is_file():
        raise ConfigError(
            f"The CAMEO codebook was not found at {path}. Put the cameo/ folder in the data directory "
            "(LAMP_DATA_DIR) or run `lamp data download cameo`."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"not valid UTF-8 JSON ({exc}).", path=file, fix="download the codebook again.") from exc
    if not isinstance(raw, dict) or not raw:
        raise DataFormatError("expected a JSON object code -> {name, description}.", path=file)
    names, descriptions = {}, {}
    for code, entry in raw.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and str(code).isdigit()):
            raise DataFormatError(f"entry {code!r} has no name or is not a numeric code.", path=file, field=str(code),
                                  fix="download the codebook again.")
        names[str(code)] = entry["name"].strip()
        descriptions[str(code)] = str(entry.get("description", "")).strip()
    return Codebook(names, descriptions, file)


def cameo_root_definitions(folder: str | os.PathLike[str] | None = None) -> list[tuple[str, str, str]]:
    """The 20 roots as ``(code, name, description)``, e.g. ``("01", "Make public statement", ...)``."""
    book = load_codebook(folder)
    return [(r, book.root_name(r), book.descriptions.get(r + "0", "")) for r in book.root_codes()]


def map_relation_names(
    names: Sequence[str], book: Codebook, fallback_codes: Sequence[str | None] | None = None,
) -> list[str | None]:
    """CAMEO code per relation name (None when unmapped): exact name, hand map, numeric code, fallback."""
    lookup = book.by_name()
    out: list[str | None] = []
    for i, name in enumerate(names):
        key = normalise_name(name)
        code = lookup.get(key) or NAME_FIXES.get(key)
        if code is None and key.isdigit() and book.name_of(key):
            code = key  # RE-Net GDELT names its relations by code
        if code is None and fallback_codes is not None and i < len(fallback_codes):
            code = fallback_codes[i]
        out.append(code)
    return out


def gdelt_slice_codes(data_root: str | os.PathLike[str] | None = None) -> list[str | None] | None:
    """CAMEO codes of the GDELT slice's 237 relations from RE-Net's ``relation2id.txt`` (None if absent).

    The slice re-indexed RE-Net's relations densely: slice id k is RE-Net id k for k <= 150, k + 1
    for 151 <= k <= 235, and 238 for k = 236 (see the datasets README).
    """
    path = data_dir(data_root) / "gdelt-renet" / "relation2id.txt"
    if not path.is_file():
        return None
    renet: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise DataFormatError("expected 'code<TAB>id'.", path=str(path), line=lineno,
                                  fix="download gdelt-renet/relation2id.txt again.")
        renet[int(parts[1])] = parts[0].strip()

    def renet_id(k: int) -> int:
        return k if k <= 150 else (k + 1 if k <= 235 else 238)

    return [renet.get(renet_id(k)) for k in range(237)]


def attach_cameo(
    event_log: EventLog,
    *,
    folder: str | os.PathLike[str] | None = None,
    fallback_codes: Sequence[str | None] | None = None,
) -> EventLog:
    """Return the log with CAMEO metadata in ``meta``.

    ``relation_cameo`` (code or None per relation), ``relation_root`` (root index 0..19, -1 when
    unmapped), ``relation_root_names`` and ``cameo_roots`` (the 20 root names in code order).
    Unmapped relations are logged as a warning; :func:`unmapped_relations` lists them.
    """
    book = load_codebook(folder)
    given = event_log.meta.get("relation_cameo")
    if given is not None and len(given) == event_log.num_relations:
        codes: list[str | None] = [str(c) if c else None for c in given]  # a reader that knows its codes
    else:
        codes = map_relation_names(event_log.relations.names, book, fallback_codes)
    roots = book.root_codes()
    root_names = [book.root_name(r) for r in roots]
    rel_root = [root_index(c) if c else -1 for c in codes]
    meta = dict(event_log.meta)
    meta.update({
        "relation_cameo": codes,
        "relation_root": rel_root,
        "relation_root_names": [root_names[i] if i >= 0 else "unmapped" for i in rel_root],
        "cameo_roots": root_names,
    })
    missing = [event_log.relations.names[i] for i, c in enumerate(codes) if c is None]
    if missing:
        log.warning("%s: %d relation(s) have no CAMEO code: %s", event_log.name, len(missing), missing[:10])
    return dataclasses.replace(event_log, meta=meta)


def unmapped_relations(event_log: EventLog) -> list[str]:
    """Names of the relations that have no CAMEO code (maps the log first when needed)."""
    codes = event_log.meta.get("relation_cameo")
    if codes is None:
        codes = attach_cameo(event_log).meta["relation_cameo"]
    return [event_log.relations.names[i] for i, c in enumerate(codes) if not c]

"""Readers for quadruple folders: RE-Net / RE-GCN id files and named ``T_<n>`` files (GDELT slice)."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.eventlog import SPLITS, EventLog, TimeSpec, build_event_log
from lamp.data.textio import read_text_lines
from lamp.errors import DataFormatError


def _split_file(folder: Path, split: str, suffix: str = "") -> Path:
    for name in (f"{split}{suffix}.txt", f"{split}{suffix}"):
        p = folder / name
        if p.is_file():
            return p
    raise DataFormatError(
        f"no {split} file found (looked for {split}{suffix}.txt and {split}{suffix}).", path=str(folder),
        fix=f"put the {split} split in {folder / (split + suffix + '.txt')}.",
    )


def read_vocab_file(path: Path, underscores: bool | None = None) -> list[str]:
    """Read a ``name<TAB>id`` file (or a JSON object name -> id) into a dense id-ordered list.

    ``underscores``: replace ``_`` by a space (None = auto: when no name contains a space).
    """
    pairs: list[tuple[str, Any, int | None]] = []
    if path.suffix == ".json":
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFormatError(f"not a valid UTF-8 JSON object name -> id ({exc}).", path=str(path),
                                  fix="regenerate the vocabulary file.") from exc
        items = list(mapping.items()) if isinstance(mapping, dict) else []
        if not items:
            raise DataFormatError("expected a non-empty JSON object name -> id.", path=str(path))
        pairs = [(str(k), v, None) for k, v in items]
    else:
        for lineno, line in read_text_lines(path):
            parts = line.split("\t")
            if len(parts) < 2:
                raise DataFormatError(f"expected 'name<TAB>id', got {line[:80]!r}.", path=str(path), line=lineno,
                                      fix="separate the name and the id with one tab.")
            pairs.append((parts[0], parts[1].strip(), lineno))
        if not pairs:
            raise DataFormatError("the vocabulary file is empty.", path=str(path), fix="list one 'name<TAB>id' per line.")
    names: dict[int, str] = {}
    for name, raw_id, where in pairs:
        try:
            if isinstance(raw_id, (bool, float)):
                raise TypeError(raw_id)
            idx = int(raw_id)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"id {raw_id!r} is not an integer.", path=str(path), line=where, field="id",
                                  fix="use integer ids 0..n-1.") from exc
        if idx in names:
            raise DataFormatError(f"id {idx} is given twice ({names[idx]!r} and {name!r}).", path=str(path), line=where,
                                  field="id", fix="give every name its own id.")
        names[idx] = name
    n = len(names)
    if set(names) != set(range(n)):
        missing = sorted(set(range(n)) - set(names))[:5]
        raise DataFormatError(f"ids must be dense 0..{n - 1}; missing {missing}.", path=str(path), field="id",
                              fix="renumber the vocabulary densely from 0.")
    ordered = [names[i] for i in range(n)]
    if underscores is None:
        underscores = not any(" " in s for s in ordered)
    if underscores:
        ordered = [s.replace("_", " ") for s in ordered]
    return ordered


def _parse_int_table(path: Path, min_cols: int, max_cols: int) -> pd.DataFrame:
    """Parse a tab-separated integer table; on any problem, locate the first bad line and explain it."""
    lines = read_text_lines(path)
    if not lines:
        raise DataFormatError("the file is empty.", path=str(path), fix="add events, one 'subject<TAB>relation<TAB>object<TAB>time' per line.")
    rows = []
    names = ["subject", "relation", "object", "time", "extra"]
    for lineno, line in lines:
        parts = line.split("\t") if "\t" in line else line.split()
        if not (min_cols <= len(parts) <= max_cols):
            raise DataFormatError(
                f"expected {min_cols}{'-' + str(max_cols) if max_cols != min_cols else ''} tab-separated columns "
                f"(subject, relation, object, time), got {len(parts)}: {line[:80]!r}.",
                path=str(path), line=lineno, fix="fix or remove that line.",
            )
        row = []
        for field, raw in zip(names, parts[:4], strict=False):
            try:
                val = float(raw) if field == "time" else int(raw)
            except ValueError as exc:
                kind = "a number" if field == "time" else "an integer id"
                raise DataFormatError(f"{raw!r} is not {kind}.", path=str(path), line=lineno, field=field,
                                      fix="fix or remove that line.") from exc
            row.append(val)
        rows.append((*row, lineno))
    arr = np.array(rows, dtype=np.float64)
    return pd.DataFrame({
        "subject": arr[:, 0].astype(np.int64), "relation": arr[:, 1].astype(np.int64),
        "object": arr[:, 2].astype(np.int64), "time": arr[:, 3], "_line": arr[:, 4].astype(np.int64),
    })


def _fast_int_table(path: Path) -> pd.DataFrame | None:
    """The fast path: pandas' C parser; None when the file needs the careful parser for an error."""
    try:
        raw = path.read_bytes()
        # a non-integer token makes pandas warn before it raises; the careful parser explains it instead
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            df = pd.read_csv(io.BytesIO(raw), sep="\t", header=None, dtype=np.int64, engine="c", encoding="utf-8",
                             on_bad_lines="error")
    except Exception:  # noqa: BLE001 - any failure falls back to the careful parser, which explains it
        return None
    if df.shape[1] not in (4, 5) or df.isna().to_numpy().any():
        return None
    # pandas skips blank lines; then row numbers are not line numbers, so let the careful parser count
    if len(df) != raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1):
        return None
    out = pd.DataFrame({"subject": df[0], "relation": df[1], "object": df[2], "time": df[3].astype(np.float64)})
    out["_line"] = np.arange(1, len(out) + 1)
    return out


def read_id_quadruples(
    folder: Path, name: str, time_spec: TimeSpec, *, underscores: bool | None = None,
) -> EventLog:
    """Read a RE-Net / RE-GCN folder: ``{train,valid,test}.txt`` + ``entity2id.txt`` + ``relation2id.txt``."""
    folder = Path(folder)
    entities = read_vocab_file(folder / "entity2id.txt", underscores)
    relations = read_vocab_file(folder / "relation2id.txt", underscores)
    parts, sources = {}, {}
    for split in SPLITS:
        path = _split_file(folder, split)
        sources[split] = str(path)
        df = _fast_int_table(path)
        parts[split] = df if df is not None else _parse_int_table(path, 4, 5)
    _check_stat(folder, len(entities), len(relations))
    return build_event_log(name, parts, entities, relations, time_spec, sources=sources,
                           meta={"format": "renet", "path": str(folder)})


def _check_stat(folder: Path, n_ent: int, n_rel: int) -> None:
    stat = folder / "stat.txt"
    if not stat.is_file() or stat.stat().st_size == 0:
        return
    fields = stat.read_text(encoding="utf-8", errors="replace").split()
    try:
        se, sr = int(fields[0]), int(fields[1])
    except (IndexError, ValueError) as exc:
        raise DataFormatError("expected 'num_entities<TAB>num_relations'.", path=str(stat), line=1,
                              fix="write the two counts or delete stat.txt.") from exc
    if se < n_ent or sr < n_rel:
        raise DataFormatError(
            f"declares {se} entities and {sr} relations, but the vocabularies hold {n_ent} and {n_rel}.",
            path=str(stat), line=1, fix="update stat.txt to match entity2id.txt and relation2id.txt.",
        )


def read_named_quadruples(folder: Path, name: str, time_spec: TimeSpec) -> EventLog:
    """Read ``subject<TAB>relation<TAB>object<TAB>T_<n>`` files (names with ``_`` for spaces)."""
    folder = Path(folder)
    ent_vocab = _named_vocab(folder, "entity")
    rel_vocab = _named_vocab(folder, "relation")
    ent_new: dict[str, int] = {}
    rel_new: dict[str, int] = {}
    parts, sources = {}, {}
    for split in SPLITS:
        path = _split_file(folder, split)
        sources[split] = str(path)
        rows = []
        lines = read_text_lines(path)
        if not lines:
            raise DataFormatError("the file is empty.", path=str(path), fix="add events or remove the dataset.")
        for lineno, line in lines:
            cols = line.split("\t")
            if len(cols) != 4:
                raise DataFormatError(f"expected 4 tab-separated columns (subject, relation, object, T_<n>), got {len(cols)}.",
                                      path=str(path), line=lineno, fix="fix or remove that line.")
            s, r, o, t = cols
            raw_t = t[2:] if t.startswith("T_") else t
            try:
                tv = float(raw_t)
            except ValueError as exc:
                raise DataFormatError(f"time {t!r} is not 'T_<number>' or a number.", path=str(path), line=lineno,
                                      field="time", fix="write times as T_<minutes>.") from exc
            rows.append((_vid(ent_vocab, ent_new, s), _vid(rel_vocab, rel_new, r), _vid(ent_vocab, ent_new, o), tv, lineno))
        arr = np.array(rows, dtype=np.float64)
        parts[split] = pd.DataFrame({"subject": arr[:, 0].astype(np.int64), "relation": arr[:, 1].astype(np.int64),
                                     "object": arr[:, 2].astype(np.int64), "time": arr[:, 3],
                                     "_line": arr[:, 4].astype(np.int64)})
    entities = [n.replace("_", " ") for n in _merged(ent_vocab, ent_new)]
    relations = [n.replace("_", " ") for n in _merged(rel_vocab, rel_new)]
    return build_event_log(name, parts, entities, relations, time_spec, sources=sources,
                           meta={"format": "named", "path": str(folder)})


def _named_vocab(folder: Path, kind: str) -> dict[str, int]:
    for fname in (f"{kind}2id.json",):
        p = folder / fname
        if p.is_file():
            names = read_vocab_file(p, underscores=False)
            return {n: i for i, n in enumerate(names)}
    return {}


def _vid(vocab: dict[str, int], new: dict[str, int], name: str) -> int:
    idx = vocab.get(name)
    if idx is not None:
        return idx
    if name not in new:
        new[name] = len(vocab) + len(new)
    return new[name]


def _merged(vocab: dict[str, int], new: dict[str, int]) -> list[str]:
    names = [""] * (len(vocab) + len(new))
    for mapping in (vocab, new):
        for n, i in mapping.items():
            names[i] = n
    return names


def looks_named(folder: Path) -> bool:
    """True when the train file holds names and ``T_<n>`` times rather than integer ids."""
    lines = read_text_lines(_split_file(Path(folder), "train"), limit=1)
    if not lines:
        return False
    cols = lines[0][1].split("\t")
    return len(cols) >= 4 and cols[3].startswith("T_")

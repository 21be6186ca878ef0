"""How every swappable component describes itself, and how one is made from a name.

A component (base model, abducer, retriever, ranker) is a :class:`Configurable`: one frozen
``Settings`` dataclass holds every option and is the only place its defaults are written (the Hydra
YAML files in ``conf/`` extend it and never restate it). From it the component derives its
:meth:`~Configurable.cache_key`: class path + version + resolved settings + the content of what it
reads (a prompt's text, a model file's hash). Stages key their artifacts with it, so two differently
configured instances never share a result.

A :class:`Resolver` per interface turns a name into a component::

    >>> from lamp.tpp.factory import BASE_MODELS
    >>> BASE_MODELS.choices[:3]                                   # doctest: +SKIP
    ['anhp', 'frequency', 'ke_anhp']
    >>> model = BASE_MODELS.make("recurrency", lmbda=0.1)         # doctest: +SKIP
    >>> model = BASE_MODELS.make({"name": "recurrency", "lmbda": 0.1})   # doctest: +SKIP
    >>> model is BASE_MODELS.make(model)                          # an instance passes through   # doctest: +SKIP
    True

Classes are imported only when a name is first resolved, so a heavy optional library loads only for
the component that needs it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import importlib
import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from lamp.errors import ArtifactError, ConfigError, MissingDependencyError

T = TypeVar("T")
S = TypeVar("S")


def stable_hash(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def not_in_key(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A settings field that does not change outputs (progress bars, thread counts): left out of cache keys."""
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(metadata={"key": False}, **kwargs)


def make_settings(settings_class: type[S], given: S | Mapping[str, Any] | None, overrides: Mapping[str, Any],
                  *, where: str) -> S:
    """``settings_class`` from an instance or a mapping, with ``overrides`` applied; unknown keys are an
    error that lists the valid ones."""
    if isinstance(given, settings_class) and not overrides:
        return given
    if isinstance(given, settings_class):
        base: dict[str, Any] = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)}  # type: ignore[arg-type]
    else:
        base = dict(given or {})  # type: ignore[arg-type]
    data = {k: v for k, v in {**base, **overrides}.items() if k not in ("name", "_target_")}
    valid = [f.name for f in dataclasses.fields(settings_class)]  # type: ignore[arg-type]
    bad = sorted(set(data) - set(valid))
    if bad:
        raise ConfigError(f"Invalid option(s) {bad} for {where}. Valid choices are: {', '.join(valid)}")
    try:
        return settings_class(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid settings for {where}: {exc}") from exc


def key_settings(settings: Any) -> dict[str, Any]:
    """The settings that go into a cache key (fields marked :func:`not_in_key` are left out)."""
    out = {}
    for f in dataclasses.fields(settings):
        if f.metadata.get("key", True):
            value = getattr(settings, f.name)
            out[f.name] = key_settings(value) if dataclasses.is_dataclass(value) else value
    return out


class Configurable:
    """Mixin of a component described by one ``Settings`` dataclass (``self.settings``).

    Subclasses set ``name`` (the registry and config-file name), ``Settings`` and ``version`` (bump it
    when the component's output changes for the same settings: old artifacts then stop matching), and
    may override :meth:`content_key` with the content of what the component reads.
    """

    name: str = "component"
    Settings: ClassVar[type]
    version: ClassVar[int] = 1
    settings: Any

    def content_key(self) -> Any:
        """What the component reads besides its settings (a prompt's text, a model's hash); JSON-able."""
        return None

    def describe(self) -> dict[str, Any]:
        """The component as its cache key sees it: class, version, settings, content."""
        cls = type(self)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "name": self.name, "version": cls.version,
                "settings": key_settings(self.settings), "content": self.content_key()}

    def cache_key(self) -> str:
        """A hash of :meth:`describe`: equal keys mean equal outputs on equal inputs."""
        return stable_hash(self.describe())


def cache_key_of(component: Any) -> str:
    """The cache key of a component; one that cannot describe itself is refused (it would be cached
    under a key that does not tell its configurations apart)."""
    fn = getattr(component, "cache_key", None)
    if not callable(fn):
        raise ConfigError(f"{type(component).__name__} cannot describe itself (no cache_key()), so its outputs "
                          "cannot be cached. Fix: derive it from lamp.components.Configurable, or give it a "
                          "cache_key() method that hashes everything that changes its output.")
    return str(fn())


COMPONENT_FILE = "component.json"


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 (16 hex digits) of a file's bytes, for the content part of a cache key."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def save_settings(component: Configurable, folder: str | os.PathLike[str], *, files: Mapping[str, str] | None = None,
                  settings: Any = None) -> None:
    """Write ``component.json``: name, class, version, settings (``settings`` in place of the component's
    own, e.g. with a prompt resolved to its text) and the component's other ``files``."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    cls = type(component)
    record = {"name": component.name, "class": f"{cls.__module__}.{cls.__qualname__}", "version": cls.version,
              "settings": dataclasses.asdict(settings if settings is not None else component.settings),
              "files": dict(files or {})}
    (target / COMPONENT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str), encoding="utf-8")


def load_settings(cls: type[Any], folder: str | os.PathLike[str]) -> tuple[Any, dict[str, str]]:
    """(settings, files) of a folder written by :func:`save_settings` for ``cls``; another class or
    version is refused with the fix."""
    path = Path(folder) / COMPONENT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is missing or unreadable ({exc}); expected a component saved by "
                            f"{cls.__name__}.save. Fix: save it again with this lamp version.") from exc
    expected = f"{cls.__module__}.{cls.__qualname__}"
    if record.get("class") != expected or record.get("version") != cls.version:
        raise ArtifactError(f"{path} holds {record.get('class')!r} version {record.get('version')!r}; expected "
                            f"{expected!r} version {cls.version}. Fix: refit and save it with this lamp version.")
    settings = make_settings(cls.Settings, record.get("settings") or {}, {}, where=f"{path}")
    return settings, dict(record.get("files") or {})


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered implementation: ``module:Class`` and options preset for this name."""

    target: str
    preset: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Resolver(Generic[T]):
    """Name -> implementation of one interface; the list of choices is the registry itself.

    ``make`` accepts a name, a mapping with a ``name`` key, or a ready instance (returned unchanged).
    """

    def __init__(self, interface: str, entries: Mapping[str, Entry | str], *, conf_group: str) -> None:
        self.interface = interface
        self.conf_group = conf_group
        self.entries = {k: (v if isinstance(v, Entry) else Entry(v)) for k, v in entries.items()}

    @property
    def choices(self) -> list[str]:
        return sorted(self.entries)

    def entry(self, name: str) -> Entry:
        if name not in self.entries:
            raise ConfigError(f"Invalid {self.interface} name: {name!r}. Valid choices are: {', '.join(self.choices)}")
        return self.entries[name]

    def lookup(self, name: str) -> type[T]:
        """The class registered as ``name`` (imported now)."""
        module, _, attr = self.entry(name).target.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("lamp"):
                raise MissingDependencyError(exc.name, purpose=f"the {self.interface} {name!r}") from exc
            raise
        cls: type[T] = getattr(mod, attr)
        return cls

    def settings_class(self, name: str) -> type:
        """The ``Settings`` dataclass of ``name``."""
        return self.lookup(name).Settings  # type: ignore[attr-defined, no-any-return]

    def preset(self, name: str) -> dict[str, Any]:
        return dict(self.entry(name).preset)

    def split(self, query: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(name, options) of a name or a ``{"name": ..., **options}`` mapping."""
        if isinstance(query, str):
            return query, {}
        data = dict(query)
        name = data.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f"A {self.interface} given as a mapping needs a 'name' key (one of "
                              f"{', '.join(self.choices)}); got keys {sorted(data)}.")
        return name, data

    def make(self, query: Any, /, **kwargs: Any) -> T:
        """An instance from a name or mapping (plus ``kwargs``); an instance is returned unchanged."""
        if not isinstance(query, (str, Mapping)):
            if kwargs:
                raise ConfigError(f"{type(query).__name__} is already built; options {sorted(kwargs)} cannot be "
                                  "applied to it. Fix: pass a name or a mapping instead of an instance.")
            return query  # type: ignore[no-any-return]
        name, options = self.split(query)
        cls = self.lookup(name)
        return cls(**{**self.preset(name), **options, **kwargs})


def schema_node(resolver: Resolver[Any], name: str) -> Any:
    """A dataclass for Hydra's ConfigStore: ``name`` (fixed) plus every field of ``name``'s Settings (nested
    settings too, as plain mutable dataclasses, which Hydra needs), with the registry's preset options as
    defaults."""
    return _schema(resolver.settings_class(name), {"name": name, **resolver.preset(name)},
                   f"{resolver.settings_class(name).__name__}_{name}")


def _schema(settings_class: Any, fixed: Mapping[str, Any], label: str) -> Any:
    hints = typing.get_type_hints(settings_class)
    fields: list[tuple[str, Any, Any]] = []
    if "name" in fixed:
        fields.append(("name", str, dataclasses.field(default=fixed["name"])))
    for f in dataclasses.fields(settings_class):
        kind: Any = hints[f.name]
        value: Any
        if f.name in fixed:
            value = fixed[f.name]
        elif f.default is not dataclasses.MISSING:
            value = f.default
        else:
            value = f.default_factory()  # type: ignore[misc, operator]
        spec: Any
        if dataclasses.is_dataclass(kind):
            kind = _schema(kind, {}, str(getattr(kind, "__name__", "Nested")))
            spec = dataclasses.field(default_factory=functools.partial(_as_schema, kind, value))
        elif isinstance(value, (list, dict)):
            spec = dataclasses.field(default_factory=functools.partial(copy.deepcopy, value))
        else:
            spec = dataclasses.field(default=value)
        fields.append((f.name, kind, spec))
    return dataclasses.make_dataclass(f"{label}Schema", fields)


def _as_schema(schema: Any, value: Any) -> Any:
    """``value`` (a Settings instance) as an instance of its schema dataclass, nested settings too."""
    kinds = typing.get_type_hints(schema)
    return schema(**{f.name: _as_schema(kinds[f.name], getattr(value, f.name))
                     if dataclasses.is_dataclass(kinds[f.name]) else copy.deepcopy(getattr(value, f.name))
                     for f in dataclasses.fields(value)})

"""Build a base model by name: one plain dict, name -> constructor, importing the model only when built.

>>> model = build_base_model("recurrency")                    # doctest: +SKIP
>>> model = build_base_model("frequency")                     # doctest: +SKIP
>>> model = load_base_model("runs/x/base_model", log=log)     # doctest: +SKIP

To add a model, add one entry to ``BASE_MODELS`` (and one YAML in ``conf/base_model/``).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

from lamp.errors import ConfigError, MissingDependencyError
from lamp.tpp.base import BaseModel


def _lazy(module: str, attr: str, **preset: Any) -> Callable[..., BaseModel]:
    """A constructor that imports ``module.attr`` on first use and calls it with ``preset`` + kwargs."""

    def construct(**kwargs: Any) -> BaseModel:
        cls = _import(module, attr)
        try:
            inspect.signature(cls).bind(**{**preset, **kwargs})
        except TypeError as exc:
            raise ConfigError(f"Invalid arguments for base model {attr} ({module}): {exc}. "
                              f"Its signature is {attr}{inspect.signature(cls)}.") from exc
        return cls(**{**preset, **kwargs})  # type: ignore[no-any-return]

    construct.__qualname__ = f"build[{module}:{attr}]"
    return construct


def _import(module: str, attr: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("lamp"):
            raise MissingDependencyError(exc.name, purpose=f"the base model in {module}") from exc
        raise ConfigError(f"The base model module {module} is not available in this lamp installation ({exc}).") from exc
    try:
        return getattr(mod, attr)
    except AttributeError as exc:
        raise ConfigError(f"{module} has no {attr}; the model registry is out of date with the code.") from exc


# name -> constructor. Names are the ones used in method names (``base:<name>``) and conf/base_model/.
BASE_MODELS: dict[str, Callable[..., BaseModel]] = {
    "recurrency": _lazy("lamp.tpp.recurrency", "RecurrencyBaseline"),
    "frequency": _lazy("lamp.tpp.frequency", "FrequencyBaseline"),
    "ke_anhp": _lazy("lamp.tpp.ke_anhp", "KEANHP"),
    "nhp": _lazy("lamp.tpp.easytpp_adapter", "EasyTPPModel", model="nhp"),
    "anhp": _lazy("lamp.tpp.easytpp_adapter", "EasyTPPModel", model="anhp"),
    "thp": _lazy("lamp.tpp.easytpp_adapter", "EasyTPPModel", model="thp"),
    "rules": _lazy("lamp.tpp.rules_model", "RulesModel"),
}

# checkpoint kind (the model's ``name``) -> (module, class) for load_base_model
_LOADERS: dict[str, tuple[str, str]] = {
    "recurrency": ("lamp.tpp.recurrency", "RecurrencyBaseline"),
    "frequency": ("lamp.tpp.frequency", "FrequencyBaseline"),
    "ke_anhp": ("lamp.tpp.ke_anhp", "KEANHP"),
    "rules": ("lamp.tpp.rules_model", "RulesModel"),
    "nhp": ("lamp.tpp.easytpp_adapter", "EasyTPPModel"),
    "anhp": ("lamp.tpp.easytpp_adapter", "EasyTPPModel"),
    "thp": ("lamp.tpp.easytpp_adapter", "EasyTPPModel"),
}


def available_models() -> list[str]:
    """Every registered base-model name."""
    return sorted(BASE_MODELS)


def build_base_model(name: str, **kwargs: Any) -> BaseModel:
    """A new, unfitted base model ``name`` built with ``kwargs`` (the model's own keyword arguments)."""
    if name not in BASE_MODELS:
        raise ConfigError(f"Invalid base model name: {name!r}. Valid choices are: {', '.join(available_models())}")
    return BASE_MODELS[name](**kwargs)


def load_base_model(path: str | os.PathLike[str], log: Any = None) -> BaseModel:
    """Load a saved base model; its kind is read from the checkpoint (strict, see lamp.tpp.checkpoint).

    With ``log`` (an EventLog), the checkpoint's data fingerprint must match it.
    """
    from lamp.tpp.checkpoint import read_checkpoint_meta

    kind = str(read_checkpoint_meta(path).get("kind"))
    if kind not in _LOADERS:
        raise ConfigError(f"{path} holds a {kind!r} checkpoint, which has no loader here. "
                          f"Loadable kinds: {', '.join(sorted(_LOADERS))}.")
    cls = _import(*_LOADERS[kind])
    loader = getattr(cls, "load", None)
    if loader is None:
        raise ConfigError(f"{cls.__name__} cannot load checkpoints (no load classmethod).")
    return loader(path, log=log)  # type: ignore[no-any-return]

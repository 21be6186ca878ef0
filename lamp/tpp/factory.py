"""Base models by name: the resolver ``BASE_MODELS`` (one entry per ``conf/base_model/<name>.yaml``).

>>> model = BASE_MODELS.make("recurrency")                    # doctest: +SKIP
>>> model = build_base_model("ke_anhp", epochs=2)             # the same, as a function   # doctest: +SKIP
>>> model = load_base_model("runs/x/base_model", log=log)     # doctest: +SKIP

To add a model, add one entry here; its class's ``Settings`` dataclass is its config (see
:mod:`lamp.components`).
"""

from __future__ import annotations

import os
from typing import Any

from lamp.components import Entry, Resolver
from lamp.errors import ConfigError
from lamp.tpp.base import BaseModel

_EASYTPP = "lamp.tpp.easytpp_adapter:EasyTPPModel"

# name -> class. Names are the ones used in method names (``base:<name>``) and conf/base_model/.
BASE_MODELS: Resolver[BaseModel] = Resolver("base model", {
    "recurrency": "lamp.tpp.recurrency:RecurrencyBaseline",
    "frequency": "lamp.tpp.frequency:FrequencyBaseline",
    "ke_anhp": "lamp.tpp.ke_anhp:KEANHP",
    "nhp": Entry(_EASYTPP, {"model": "nhp"}),
    "anhp": Entry(_EASYTPP, {"model": "anhp"}),
    "thp": Entry(_EASYTPP, {"model": "thp"}),
    "rules": "lamp.tpp.rules_model:RulesModel",
}, conf_group="base_model")


def available_models() -> list[str]:
    """Every registered base-model name."""
    return BASE_MODELS.choices


def build_base_model(name: str, **kwargs: Any) -> BaseModel:
    """A new, unfitted base model ``name`` built with ``kwargs`` (fields of its ``Settings``)."""
    return BASE_MODELS.make(name, **kwargs)


def load_base_model(path: str | os.PathLike[str], log: Any = None) -> BaseModel:
    """Load a saved base model; its kind is read from the checkpoint (strict, see lamp.tpp.checkpoint).

    With ``log`` (an EventLog), the checkpoint's data fingerprint must match it.
    """
    from lamp.tpp.checkpoint import read_checkpoint_meta

    kind = str(read_checkpoint_meta(path).get("kind"))
    if kind not in BASE_MODELS.entries:
        raise ConfigError(f"{path} holds a {kind!r} checkpoint, which has no loader here. "
                          f"Loadable kinds: {', '.join(BASE_MODELS.choices)}.")
    cls = BASE_MODELS.lookup(kind)
    return cls.load(path, log=log)  # type: ignore[attr-defined, no-any-return]

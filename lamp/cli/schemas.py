"""Hydra structured configs: every component's ``Settings`` dataclass, registered in Hydra's ConfigStore
as ``schema/<group>/<name>``, so ``conf/<group>/<name>.yaml`` extends it and never restates a default."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from lamp.components import Resolver, schema_node


def resolvers() -> list[Resolver]:  # type: ignore[type-arg]
    """The resolvers whose components have a config group of their own."""
    from lamp.abduce.base import ABDUCERS
    from lamp.rank import RANKERS
    from lamp.retrieval import RETRIEVERS
    from lamp.tpp.factory import BASE_MODELS

    return [BASE_MODELS, ABDUCERS, RETRIEVERS, RANKERS]


def register_schemas() -> None:
    """Store ``schema/<group>/<name>`` for every registered component (idempotent)."""
    store = ConfigStore.instance()
    for resolver in resolvers():
        for name in resolver.choices:
            store.store(group=f"schema/{resolver.conf_group}", name=name, node=schema_node(resolver, name))

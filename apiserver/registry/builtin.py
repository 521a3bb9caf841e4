"""Which strategy serves which built-in resource.

Each built-in kind's module declares its strategy with :func:`register`; resources without one
get the plain :class:`~apiserver.registry.strategy.Strategy`.
"""

from __future__ import annotations

import importlib

from apiserver.registry.strategy import Strategy
from apiserver.resources import ResourceInfo

_STRATEGIES: dict[tuple[str, str], type[Strategy]] = {}

# modules that register strategies for built-in kinds, imported once on first use
_MODULES = (
    "apiserver.registry.core.namespaces",
    "apiserver.registry.core.pods",
    "apiserver.registry.core.nodes",
    "apiserver.registry.core.services",
    "apiserver.registry.core.config",
    "apiserver.registry.core.events",
    "apiserver.registry.core.storage",
    "apiserver.registry.apps",
    "apiserver.registry.batch",
    "apiserver.registry.cluster",
    "apiserver.registry.scheduling",
)
_loaded = False


def register(group: str, resource: str):
    """Class decorator: ``@register("apps", "deployments")``."""

    def decorate(cls: type[Strategy]) -> type[Strategy]:
        _STRATEGIES[(group, resource)] = cls
        return cls

    return decorate


def strategy_for(info: ResourceInfo) -> Strategy:
    global _loaded
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(module)
        _loaded = True
    return _STRATEGIES.get((info.group, info.resource), Strategy)(info)

"""The in-tree plugin registry: every plugin the scheduler can enable, by its Kubernetes name.

Each module holds one plugin (or a closely related pair, like the volume plugins); a plugin is a
class with a ``NAME`` built as ``cls(args, handle)``. Out-of-tree plugins can be added to
:data:`REGISTRY` before the scheduler starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_MODULES = (
    "schedulinggates", "prioritysort", "nodeunschedulable", "nodename", "tainttoleration", "nodeaffinity",
    "nodeports", "noderesources", "balancedallocation", "volumes", "podtopologyspread", "interpodaffinity",
    "defaultpreemption", "imagelocality", "gangscheduling", "defaultbinder",
)


def _discover() -> dict[str, Callable[..., Any]]:
    registry: dict[str, Callable[..., Any]] = {}
    for name in _MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__ and isinstance(
                    getattr(value, "NAME", None), str):
                registry[value.NAME] = value
    return registry


REGISTRY: dict[str, Callable[..., Any]] = _discover()

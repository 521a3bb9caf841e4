"""What the strategy tests share: looking a strategy up as the server does, and its error texts.

The apps, batch and cluster strategy tests all check the messages a user would see after the
generic store has defaulted and prepared an object; these helpers run those steps the one way the
store does, so the test files differ only in what they build and expect.
"""

from __future__ import annotations

import copy

from apiserver.registry.builtin import strategy_for
from apiserver.resources import BUILTIN_RESOURCES

INFO = {(r.group, r.resource): r for r in BUILTIN_RESOURCES}


def strategy(group: str, resource: str):
    """The registered strategy of ``group``/``resource``."""
    return strategy_for(INFO[(group, resource)])


def errors(s, obj: dict) -> list[str]:
    """The texts of ``s.validate(obj)``."""
    return [str(e) for e in s.validate(obj)]


def update_errors(s, new: dict, old: dict) -> list[str]:
    """The texts of ``s.validate_update`` after defaulting and preparing a copy of ``new``, as on PUT."""
    new = copy.deepcopy(new)
    s.default(new)
    s.prepare_for_update(new, old)
    return [str(e) for e in s.validate_update(new, old)]

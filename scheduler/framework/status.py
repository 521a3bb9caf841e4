"""The result of a plugin call: a code and the reasons users will read in "0/3 nodes are available: ...".

Codes are kube-scheduler's: ``SUCCESS``; ``ERROR`` (something broke — the pod is retried with backoff);
``UNSCHEDULABLE`` (this node does not fit now, preemption might help); ``UNSCHEDULABLE_AND_UNRESOLVABLE``
(preemption cannot help: wrong node selector, untolerated taint); ``WAIT`` (Permit: hold the pod);
``SKIP`` (PreFilter/PreScore: this plugin has nothing to do for this pod; Bind: let the next binder try);
``PENDING`` (waiting for something outside the scheduler). Plugins return ``None`` for success where
the extension point allows it, which keeps the hot Filter/Score paths allocation-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Code(IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5
    PENDING = 6


@dataclass(slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""  # the plugin that answered (filled in by the runtime)
    error: BaseException | None = None

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_skip(self) -> bool:
        return self.code == Code.SKIP

    def is_wait(self) -> bool:
        return self.code == Code.WAIT

    def is_rejected(self) -> bool:
        """Unschedulable, unresolvable or pending: the pod does not fit (as opposed to an error)."""
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, Code.PENDING)

    def message(self) -> str:
        if self.error is not None and not self.reasons:
            return str(self.error) or type(self.error).__name__
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        self.plugin = self.plugin or plugin
        return self


SUCCESS = Status()


def success() -> Status:
    return Status()


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons)


def unresolvable(*reasons: str) -> Status:
    """Unschedulable in a way preemption cannot fix."""
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)


def skip() -> Status:
    return Status(Code.SKIP)


def error(exc: BaseException | str) -> Status:
    if isinstance(exc, str):
        return Status(Code.ERROR, (exc,))
    return Status(Code.ERROR, (), error=exc)

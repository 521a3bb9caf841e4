"""Which printer a kind gets: the ``(group, kind)`` table, and the default convertor for the rest.

kube-apiserver registers a table convertor per built-in resource and falls back to a default one
(``Name`` and ``Created At``) for everything else, LimitRange and custom resources included. The
per-kind modules each declare their ``PRINTERS``; this module joins them into the one lookup.
"""

from __future__ import annotations

from datetime import datetime

from apiserver.registry.printers import cluster, core, events, pods, workloads
from apiserver.registry.printers.base import AGE_DOC, Column, Printer, name_col

DEFAULT_COLUMNS = [name_col(), Column("Created At", "date", "", AGE_DOC)]
_ZERO_TIME = "0001-01-01T00:00:00Z"


def _default_row(obj: dict, now: datetime) -> list:
    """Kinds without a printer show the raw creation timestamp; kubectl prints it as is."""
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), meta.get("creationTimestamp") or _ZERO_TIME]


DEFAULT_PRINTER = Printer(DEFAULT_COLUMNS, _default_row)

_PRINTERS: dict[tuple[str, str], Printer] = {
    **pods.PRINTERS,
    **core.PRINTERS,
    **events.PRINTERS,
    **workloads.PRINTERS,
    **cluster.PRINTERS,
}


def printer_for(group: str, kind: str) -> Printer:
    """The printer kube-apiserver uses for ``group``/``kind``; the default convertor otherwise.

    LimitRange, for one, has no printer in Kubernetes either and shows ``NAME CREATED AT``.
    """
    return _PRINTERS.get((group, kind), DEFAULT_PRINTER)

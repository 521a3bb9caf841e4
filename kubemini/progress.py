"""How ``kubemini up`` shows its progress: a live checklist on a terminal, one plain line per event elsewhere.

``up`` launches every component at once and then waits for each in turn, so the useful picture is a list of
components, each either still starting (a spinner) or ready (a tick, the seconds since ``up`` began and where it
listens). On a terminal that list is redrawn in place with rich; in a pipe, a log file or CI each event is one
line (``  apiserver  ready in 1.4s  http://...``) so output stays greppable. Both take the same calls from
:class:`kubemini.cluster.ClusterStarter`: :meth:`waiting`, :meth:`ready`, :meth:`say` and :meth:`close`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text


class Progress(Protocol):
    def waiting(self, name: str, detail: str) -> None:
        """``name`` was launched (or is awaited) and is not ready yet."""

    def ready(self, name: str, seconds: float, detail: str) -> None:
        """``name`` became ready ``seconds`` after ``up`` began."""

    def say(self, line: str) -> None:
        """A line of its own (a note, a warning)."""

    def close(self, *, failed: bool = False) -> None:
        """No more events; ``failed`` marks what never became ready."""


class PlainProgress:
    """One line per ready component (and per note) through ``say``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def waiting(self, name: str, detail: str) -> None:
        pass

    def ready(self, name: str, seconds: float, detail: str) -> None:
        self._say(f"  {name:<29} ready in {f'{seconds:.1f}s':>6}  {detail}")

    def say(self, line: str) -> None:
        self._say(line)

    def close(self, *, failed: bool = False) -> None:
        pass


@dataclass
class _Row:
    detail: str
    seconds: float | None = None


class LiveProgress:
    """A checklist redrawn in place: a spinner per component until it is ready, then a tick and its time."""

    def __init__(self, console: Console | None = None) -> None:
        self._rows: dict[str, _Row] = {}
        self._failed = False
        self._live = Live(self._render(), console=console or Console(), refresh_per_second=12)
        self._live.start()

    def waiting(self, name: str, detail: str) -> None:
        self._rows[name] = _Row(detail)
        self._live.update(self._render())

    def ready(self, name: str, seconds: float, detail: str) -> None:
        self._rows[name] = _Row(detail, seconds)
        self._live.update(self._render())

    def say(self, line: str) -> None:
        self._live.console.print(line, highlight=False)

    def close(self, *, failed: bool = False) -> None:
        self._failed = failed
        self._live.update(self._render())
        self._live.stop()

    def _render(self) -> RenderableType:
        table = Table.grid(padding=(0, 2))
        for name, row in self._rows.items():
            if row.seconds is not None:
                mark: RenderableType = Text("✓", style="green")
                when = Text(f"{row.seconds:5.1f}s", style="dim")
            elif self._failed:
                mark, when = Text("✗", style="bold red"), Text("")
            else:
                mark, when = Spinner("dots", style="cyan"), Text("")
            table.add_row(mark, Text(name, style="bold"), when, Text(row.detail))
        return table

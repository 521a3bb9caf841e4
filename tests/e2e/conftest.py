"""Helpers shared by the kubectl end-to-end tests (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable

from tests.conftest import KUBECTL


def kubectl_popen(kubectl, *args: str) -> subprocess.Popen:
    """Start kubectl (the session ``kubectl`` fixture's binary and config) without waiting for it."""
    cmd = [KUBECTL, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)


class LineReader:
    """Reads a process's stdout on a thread so a test can wait for a line with a deadline."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, timeout: float = 15.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout}s") from None
        if line is None:
            raise AssertionError("the process closed its output")
        return line

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        """The first line (from now on) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line within {timeout}s; saw {seen!r}")
            try:
                line = self.next_line(remaining)
            except AssertionError as err:
                raise AssertionError(f"{err}; saw {seen!r}") from None
            if predicate(line):
                return line
            seen.append(line)

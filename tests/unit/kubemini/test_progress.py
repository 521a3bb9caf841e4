"""``kubemini up``'s progress: plain lines for pipes and logs, a live checklist on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from kubemini.progress import LiveProgress, PlainProgress


def test_plain_progress_prints_one_line_per_ready_component() -> None:
    lines: list[str] = []
    progress = PlainProgress(lines.append)
    progress.waiting("apiserver", "http://127.0.0.1:6443")
    progress.ready("apiserver", 1.44, "http://127.0.0.1:6443")
    progress.say("a note")
    progress.close()
    assert lines == ["  apiserver                     ready in   1.4s  http://127.0.0.1:6443", "a note"]


def test_live_progress_ticks_ready_components_and_crosses_the_rest_on_failure() -> None:
    out = io.StringIO()
    progress = LiveProgress(Console(file=out, force_terminal=True, width=100))
    progress.waiting("etcd", "http://127.0.0.1:16443")
    progress.waiting("apiserver", "http://127.0.0.1:6443")
    progress.ready("etcd", 0.3, "http://127.0.0.1:16443")
    progress.close(failed=True)
    final = out.getvalue().rsplit("\x1b[2K", 1)[-1]  # the last frame drawn
    etcd, api = [line for line in final.splitlines() if "etcd" in line or "apiserver" in line]
    assert "✓" in etcd and "0.3s" in etcd
    assert "✗" in api and "✓" not in api

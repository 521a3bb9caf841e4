"""Run the kubemini controller-manager as a child process (tests, benchmarks, ``make up``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from kubemini.ports import free_port
from kubemini.process import ComponentProcess


class ControllerManagerProcess(ComponentProcess):
    name = "controller-manager"

    def __init__(self, kubeconfig: Path, log_dir: Path, *, port: int | None = None,
                 extra_args: Sequence[str] = (), log_name: str = "controller-manager") -> None:
        super().__init__(log_dir)
        self.kubeconfig = Path(kubeconfig)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.log_name = log_name

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.log_name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ready_url(self) -> str:
        return self.url + "/healthz"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "controllers", "--kubeconfig", str(self.kubeconfig),
                "--port", str(self.port), *self.extra_args]

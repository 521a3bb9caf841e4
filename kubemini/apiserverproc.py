"""Run a kubemini API server as a child process (tests, `make up`, later `kubemini up`).

Owns the command line, the log file, readiness (``/readyz`` answers ``ok``) and a clean stop
(SIGTERM, then SIGKILL). Standard library only, like :mod:`kubemini.etcdserver`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self

from kubemini.ports import free_port


class ApiServerStartError(RuntimeError):
    """The API server exited or did not become ready; the message carries its log tail."""


class ApiServerProcess:
    def __init__(
        self,
        etcd_servers: Sequence[str],
        log_dir: Path,
        *,
        port: int | None = None,
        bind_address: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.etcd_servers = list(etcd_servers)
        self.log_dir = Path(log_dir)
        self.port = port or free_port()
        self.bind_address = bind_address
        self.extra_args = list(extra_args)
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.bind_address}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"apiserver-{self.port}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "apiserver",
            "--etcd-servers", ",".join(self.etcd_servers),
            "--bind-address", self.bind_address, "--port", str(self.port),
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ApiServerStartError(f"the API server exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise ApiServerStartError(f"the API server was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, grace: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_kubeconfig(path: Path, server: str, *, token: str = "kubemini") -> Path:
    """A kubeconfig with one cluster/user/context named ``kubemini``."""
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: kubemini\n  cluster:\n    server: {server}\n"
        f"users:\n- name: kubemini\n  user:\n    token: {token}\n"
        "contexts:\n- name: kubemini\n  context:\n    cluster: kubemini\n    user: kubemini\n"
        "current-context: kubemini\n"
    )
    return path

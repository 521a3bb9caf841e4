"""Run a kubemini API server as a child process (tests, `make up`, later `kubemini up`).

The API server's command line and readiness (``/readyz``); starting, log file and stopping are
:class:`kubemini.process.ComponentProcess`'s. Standard library only, like :mod:`kubemini.etcdserver`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from kubemini.ports import free_port
from kubemini.process import ComponentProcess


class ApiServerProcess(ComponentProcess):
    def __init__(
        self,
        etcd_servers: Sequence[str],
        log_dir: Path,
        *,
        port: int | None = None,
        bind_address: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(log_dir)
        self.etcd_servers = list(etcd_servers)
        self.port = port or free_port()
        self.bind_address = bind_address
        self.extra_args = list(extra_args)

    name = "API server"

    @property
    def url(self) -> str:
        return f"http://{self.bind_address}:{self.port}"

    @property
    def ready_url(self) -> str:
        return self.url + "/readyz"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"apiserver-{self.port}.log"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "apiserver",
            "--etcd-servers", ",".join(self.etcd_servers),
            "--bind-address", self.bind_address, "--port", str(self.port),
            *self.extra_args,
        ]


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

"""A kubemini component running as a child process: command line, log file, readiness, clean stop.

Every component (API server, controller-manager, scheduler, later the kubelet) is started the same
way by tests, benchmarks, ``make up`` and ``kubemini up``: spawn it in its own session with output
to ``<log_dir>/<name>.log``, poll its readiness URL until it answers 200, and stop it with SIGTERM
then SIGKILL after a grace period. A component that exits or is not ready in time raises
:class:`ComponentStartError` carrying the last lines of its log. Standard library only.
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


class ComponentStartError(RuntimeError):
    """The component exited or did not become ready; the message carries its log tail."""


class ComponentProcess:
    """Subclasses provide :meth:`command`, :attr:`name` and :attr:`ready_url`."""

    name = "component"

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def ready_url(self) -> str:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 20.0) -> Self:
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Spawn the process without waiting for it (components that wait for each other start together)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll the readiness URL; ComponentStartError (process stopped) if it exits or is not ready in time."""
        assert self._proc is not None, f"the {self.name} was never launched"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ComponentStartError(f"the {self.name} exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ComponentStartError(f"the {self.name} was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself; returns its exit status."""
        assert self._proc is not None, f"the {self.name} was never started"
        return self._proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, as far as others can tell)."""
        if self.running():
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

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


class ClientComponentProcess(ComponentProcess):
    """A component that reaches the API server through a kubeconfig and serves /healthz on ``--port``."""

    module = ""  # what ``python -m`` runs

    def __init__(self, kubeconfig: Path, log_dir: Path, *, port: int | None = None,
                 extra_args: Sequence[str] = (), log_name: str | None = None) -> None:
        super().__init__(log_dir)
        self.kubeconfig = Path(kubeconfig)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.log_name = log_name or self.name

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
        return [sys.executable, "-m", self.module, "--kubeconfig", str(self.kubeconfig),
                "--port", str(self.port), *self.extra_args]


class ControllerManagerProcess(ClientComponentProcess):
    name = "controller-manager"
    module = "controllers"


class SchedulerProcess(ClientComponentProcess):
    name = "scheduler"
    module = "scheduler"


class HollowNodesProcess(ClientComponentProcess):
    """``python -m kubelet.hollow``: fake nodes for scale tests; pass ``extra_args=["--nodes", "1000", ...]``."""

    name = "hollow-nodes"
    module = "kubelet.hollow"


class KubeletProcess(ClientComponentProcess):
    """``python -m kubelet`` for one node: ``--port`` is the kubelet server (logs, exec, /healthz, /metrics)."""

    name = "kubelet"
    module = "kubelet"

    def __init__(self, kubeconfig: Path, log_dir: Path, *, node_name: str, runtime_endpoint: str, root_dir: Path,
                 pod_logs_dir: Path, pod_cidr: str | None = None, port: int | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        args = ["--node-name", node_name, "--container-runtime-endpoint", runtime_endpoint,
                "--root-dir", str(root_dir), "--pod-logs-dir", str(pod_logs_dir)]
        if pod_cidr:
            args += ["--pod-cidr", pod_cidr]
        super().__init__(kubeconfig, log_dir, port=port, extra_args=[*args, *extra_args],
                         log_name=f"kubelet-{node_name}")
        self.node_name = node_name


class RuntimeProcess(ComponentProcess):
    """kubemini's CRI runtime (``python -m kubelet.runtime``) on its own socket, root, bridge and pod CIDR.

    Stopping it leaves its containers running (their shims live on), exactly like stopping containerd; a new
    process on the same root finds them again.
    """

    name = "runtime"

    def __init__(self, log_dir: Path, root: Path, *, pod_cidr: str, bridge: str, socket: Path | None = None,
                 metrics_port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        super().__init__(log_dir)
        self.root = Path(root)
        self.pod_cidr = pod_cidr
        self.bridge = bridge
        self.socket = Path(socket) if socket else self.root / "cri.sock"
        self.metrics_port = metrics_port or free_port()
        self.extra_args = list(extra_args)

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/healthz"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "kubelet.runtime", "--listen", self.endpoint, "--root", str(self.root),
                "--pod-cidr", self.pod_cidr, "--bridge", self.bridge, "--metrics-port", str(self.metrics_port),
                *self.extra_args]

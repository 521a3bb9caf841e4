"""A fresh, real kubemini control plane for users' integration tests (our answer to controller-runtime's envtest).

``Cluster`` starts a real etcd, the API server and the controller-manager (optionally the scheduler and hollow
nodes) as child processes in a private temp dir, and hands out a kubeconfig and clients. Unlike envtest, the
controllers run: Deployments get ReplicaSets and Pods, deleting a namespace really empties and removes it, and the
garbage collector deletes dependents of a deleted owner.

Start-up is concurrent, because each component waits for what it needs by itself: the API server retries etcd
during its start-up, and the controller-manager, scheduler and hollow nodes retry the API server. Every process is
launched at once (the API port is chosen up front so the kubeconfig exists before anyone reads it) and ``start()``
returns when each one reports ready: the API server's ``/readyz`` (etcd answers), the controller-manager's
``/healthz`` (its informers synced), the scheduler's, and the hollow nodes' (every node registered).

The pytest fixtures built on it live in :mod:`kubemini.pytest_plugin`. Standard library only at import time;
``httpx``, ``kubernetes`` and ``kubernetes_asyncio`` are imported when their client helper is called.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdNotInstalledError, EtcdServer, EtcdStartError, etcd_binary
from kubemini.process import (
    ComponentProcess,
    ComponentStartError,
    ControllerManagerProcess,
    HollowNodesProcess,
    SchedulerProcess,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["Cluster", "ClusterStartError", "wait_for"]

TOKEN = "kubemini"  # the API server accepts any bearer token; clients send this one
T = TypeVar("T")


class ClusterStartError(RuntimeError):
    """The cluster could not start; the message says why (and what to do). Nothing is left running."""


class Cluster:
    """A private control plane: ``with Cluster() as cluster: ...`` or ``start()`` / ``stop()``.

    ``scheduler`` and ``hollow_nodes`` (fake nodes that report pods bound to them Running) are off by default:
    without them pods stay Pending, which is what most controller tests want. ``controllers=False`` leaves
    the controller-manager out (a bare API server, like envtest). ``data_dir`` keeps logs and etcd's data in a
    directory of yours (kept after ``stop()``); by default a temp dir is used and removed.
    """

    def __init__(self, *, scheduler: bool = False, hollow_nodes: int = 0, controllers: bool = True,
                 data_dir: Path | str | None = None, timeout: float = 30.0) -> None:
        self.scheduler = scheduler
        self.hollow_nodes = hollow_nodes
        self.controllers = controllers
        self.timeout = timeout
        self._own_dir = data_dir is None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._etcd: EtcdServer | None = None
        self._components: list[ComponentProcess] = []
        self._url: str | None = None
        self.start_seconds: float | None = None  # how long the last start() took

    # --- what tests use ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._require(self._data_dir)

    @property
    def url(self) -> str:
        """The API server's base URL, e.g. ``http://127.0.0.1:41234``."""
        return self._require(self._url)

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig file for kubectl, ``kubernetes.config.load_kube_config(config_file=...)``, operators."""
        return self.data_dir / "kubeconfig"

    @property
    def etcd_endpoint(self) -> str:
        return self._require(self._etcd).endpoint

    def httpx_client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` with the API server as base URL: ``client.get("/api/v1/namespaces")``."""
        import httpx

        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)

    def kubernetes_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this cluster (needs ``pip install kubernetes``)."""
        client = _import("kubernetes.client", "kubernetes")
        return client.ApiClient(self._configure(client.Configuration()))

    def async_kubernetes_client(self) -> Any:
        """A ``kubernetes_asyncio.client.ApiClient`` (needs ``pip install kubernetes-asyncio``); use ``async with``."""
        client = _import("kubernetes_asyncio.client", "kubernetes-asyncio")
        return client.ApiClient(self._configure(client.Configuration()))

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every component concurrently; return once all are ready. Raises :class:`ClusterStartError`
        (with the failing component's log tail) after stopping whatever had started."""
        if self._url is not None:
            return self
        began = time.monotonic()
        try:
            etcd_binary()
        except EtcdNotInstalledError as exc:
            raise ClusterStartError(str(exc)) from None
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="kubemini-test-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)  # a Ctrl-C or an unhandled error in the test run still stops everything
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every process and remove the temp dir. Idempotent; safe after a failed start()."""
        atexit.unregister(self.stop)
        with ThreadPoolExecutor(max_workers=max(1, len(self._components))) as pool:
            list(pool.map(lambda c: c.stop(grace=5.0), self._components))  # all at once: the cluster is discarded
        self._components = []
        if self._etcd is not None:
            self._etcd.stop()
        self._etcd = None
        self._url = None
        if self._own_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Cluster {self._url or 'stopped'} scheduler={self.scheduler} hollow_nodes={self.hollow_nodes}>"

    # --- internals --------------------------------------------------------------------------------

    def _start_all(self) -> None:
        data, logs = self.data_dir, self.data_dir / "logs"
        etcd = self._etcd = EtcdServer(data / "etcd")
        api = ApiServerProcess([etcd.endpoint], logs)
        write_kubeconfig(self.kubeconfig, api.url, token=TOKEN)
        self._components = [api, *self._clients_of(logs)]
        etcd.launch()
        waits: list[Callable[[], object]] = [lambda: etcd.wait_ready(self.timeout)]
        waits += [lambda c=c: c.start(timeout=self.timeout) for c in self._components]
        with ThreadPoolExecutor(max_workers=len(waits)) as pool:
            error = _first_error([pool.submit(wait) for wait in waits], on_error=self._crash_all)
        if error is not None:
            raise ClusterStartError(_describe(error)) from error
        self._url = api.url

    def _clients_of(self, logs: Path) -> list[ComponentProcess]:
        kubeconfig = self.kubeconfig
        clients: list[ComponentProcess] = []
        if self.controllers:
            clients.append(ControllerManagerProcess(kubeconfig, logs))
        if self.scheduler:
            clients.append(SchedulerProcess(kubeconfig, logs))
        if self.hollow_nodes:
            clients.append(HollowNodesProcess(kubeconfig, logs, extra_args=["--nodes", str(self.hollow_nodes)]))
        return clients

    def _crash_all(self) -> None:
        """SIGKILL everything so the other start-up waits return at once instead of timing out."""
        if self._etcd is not None:
            self._etcd.kill()
        for component in self._components:
            component.kill()

    def _configure(self, conf: Any) -> Any:
        conf.host = self.url
        conf.api_key = {"authorization": f"Bearer {TOKEN}"}
        return conf

    @staticmethod
    def _require(value: T | None) -> T:
        if value is None:
            raise RuntimeError("the cluster is not running: call start() or use `with Cluster() as cluster:`")
        return value


def _first_error(futures: list[Future], on_error: Callable[[], None]) -> BaseException | None:
    """Wait for the futures; at the first failure call ``on_error``, then wait for the rest. Returns it."""
    done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    failed = [f.exception() for f in done if f.exception() is not None]
    if not failed:
        return None
    on_error()
    wait(pending)
    return failed[0]


def _describe(error: BaseException) -> str:
    if isinstance(error, EtcdStartError | ComponentStartError):
        return f"kubemini test cluster did not start: {error}"
    return f"kubemini test cluster did not start: {type(error).__name__}: {error}"


def _import(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"{module} is not installed: pip install {package}") from None


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
             message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy and return that (envtest's ``Eventually``).

    Fails with AssertionError after ``timeout`` seconds, naming ``message`` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {result!r})")
        time.sleep(interval)

"""pytest fixtures for testing controllers and operators against a real kubemini control plane.

Installed with kubemini (entry point ``pytest11``), so any test suite can ask for:

- ``kube_cluster``: a running :class:`kubemini.testing.Cluster`. By default one cluster is shared by the whole
  test session; ``--kubemini-scope=function`` (or ``kubemini_scope = function`` in the ini file) gives every
  test its own. A test marked ``@pytest.mark.kubemini(scheduler=True, hollow_nodes=2)`` always gets its own
  cluster with those options.
- ``kube_session_cluster``: always the shared session cluster, for session- or module-scoped fixtures of yours
  (installing CRDs once, say).
- ``kube_namespace``: a fresh namespace in ``kube_cluster`` for one test, deleted after it.

The shared cluster's options come from ini settings (``kubemini_scheduler``, ``kubemini_hollow_nodes``,
``kubemini_controllers``; override on the command line with ``-o kubemini_scheduler=true``). Nothing starts
unless a test uses one of these fixtures, so suites that do not use them pay nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubemini.testing import Cluster, ClusterStartError

SCOPES = ("session", "function")
MARKER = "kubemini"
MARKER_OPTIONS = ("scheduler", "hollow_nodes", "controllers")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kubemini", "kubemini test clusters")
    group.addoption("--kubemini-scope", choices=SCOPES, default=None,
                    help="one cluster per test session (default) or per test function (overrides kubemini_scope)")
    parser.addini("kubemini_scope", "kube_cluster's lifetime: session (default) or function", default="session")
    parser.addini("kubemini_scheduler", "run the scheduler in kubemini test clusters", type="bool", default=False)
    parser.addini("kubemini_hollow_nodes", "hollow nodes in kubemini test clusters (need the scheduler to get "
                  "pods bound)", default="0")
    parser.addini("kubemini_controllers", "run the controller-manager in kubemini test clusters", type="bool",
                  default=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(scheduler=False, hollow_nodes=0, controllers=True): give this "
                                       "test its own kubemini cluster with these options")
    scope = _scope(config)
    if scope not in SCOPES:
        raise pytest.UsageError(f"kubemini_scope = {scope!r}: want one of {', '.join(SCOPES)}")


@pytest.fixture(scope="session")
def kube_session_cluster(pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """The cluster shared by the whole session (started on first use, stopped at the end)."""
    yield from _run(_ini_options(pytestconfig))


@pytest.fixture
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A running cluster: the session's, or this test's own (marker, or ``--kubemini-scope=function``)."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        unknown = sorted(set(marker.kwargs) - set(MARKER_OPTIONS))
        if marker.args or unknown:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes only the keyword arguments "
                                    f"{', '.join(MARKER_OPTIONS)} (got {marker.args or ''}{unknown or ''})")
        yield from _run({**_ini_options(request.config), **marker.kwargs})
    elif _scope(request.config) == "function":
        yield from _run(_ini_options(request.config))
    else:
        yield request.getfixturevalue("kube_session_cluster")


@pytest.fixture
def kube_namespace(kube_cluster: Cluster) -> Iterator[str]:
    """The name of a new namespace, deleted after the test (the namespace controller then empties it)."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    with kube_cluster.httpx_client() as client:
        resp = client.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": name}})
        assert resp.status_code == 201, f"could not create namespace {name}: {resp.text}"
        yield name
        resp = client.delete(f"/api/v1/namespaces/{name}")
        assert resp.status_code in (200, 202, 404), f"could not delete namespace {name}: {resp.text}"


def _run(options: dict[str, Any]) -> Iterator[Cluster]:
    cluster = Cluster(**options)
    try:
        cluster.start()
    except ClusterStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


def _scope(config: pytest.Config) -> str:
    return config.getoption("kubemini_scope") or str(config.getini("kubemini_scope")).strip() or "session"


def _ini_options(config: pytest.Config) -> dict[str, Any]:
    hollow = str(config.getini("kubemini_hollow_nodes")).strip() or "0"
    if not hollow.isdigit():
        raise pytest.UsageError(f"kubemini_hollow_nodes = {hollow!r}: want a number of nodes")
    return {"scheduler": bool(config.getini("kubemini_scheduler")), "hollow_nodes": int(hollow),
            "controllers": bool(config.getini("kubemini_controllers"))}

"""Fixtures for the real-runtime tests: one CRI runtime process per session and runtime, pods cleaned per test.

Every test that uses ``runtime_process`` (directly or through ``cri_client``/``pods``) runs twice: against
kubemini's runtime and against Debian's containerd CRI plugin, the wire-compatibility reference. A test that
checks kubemini itself, or a behaviour where containerd answers differently, carries
``@pytest.mark.kubemini_only("why")`` and is skipped for containerd with that reason.
"""

from __future__ import annotations

import subprocess

import pytest

from kubemini.node import drain_runtime
from tests.runtime.containerd import ContainerdProcess, missing_containerd
from tests.runtime.cri import CriClient, Pods, RuntimeProcess, missing_prerequisites
from tests.runtime.registry import MISSING, Pusher, Registry, registry_available

RUNTIMES = ["kubemini", "containerd"]


def pytest_configure(config):
    config.addinivalue_line("markers", "kubemini_only(reason): skipped against containerd, with the reason given")


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("kubemini_only")
        callspec = getattr(item, "callspec", None)
        if marker and callspec and callspec.params.get("runtime_process") == "containerd":
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "checks kubemini itself")
            item.add_marker(pytest.mark.skip(reason=f"kubemini only: {reason}"))


@pytest.fixture(scope="session", params=RUNTIMES)
def runtime_process(request, tmp_path_factory):
    if request.param == "containerd":
        yield from _containerd(tmp_path_factory)
        return
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    process = RuntimeProcess(tmp_path_factory.mktemp("cri"))
    process.start()
    try:
        yield process
    finally:
        drain_runtime(process.endpoint)  # the runtime keeps pods when it stops, like containerd: none may outlive us
        process.stop()
        subprocess.run(["ip", "link", "del", process.bridge], capture_output=True)


def _containerd(tmp_path_factory):
    reason = missing_containerd()
    if reason:
        pytest.skip(f"containerd reference: {reason}")
    process = ContainerdProcess(tmp_path_factory.mktemp("containerd"))
    try:
        process.start()
    except (AssertionError, OSError, subprocess.SubprocessError) as err:
        process.stop()
        lines = str(err).strip().splitlines() or [type(err).__name__]
        last = f" ... {lines[-1]}" if len(lines) > 1 else ""
        pytest.skip(f"containerd reference could not start: {lines[0]}{last} (log: {process.log})")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def cri_client(runtime_process):
    client = CriClient(runtime_process.endpoint)
    yield client
    client.close()


@pytest.fixture
def pods(cri_client):
    tracker = Pods(cri_client)
    yield tracker
    tracker.cleanup()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """``127.0.0.1:<port>`` of a running docker-registry, stopped after the session."""
    if not registry_available():
        pytest.skip(MISSING)
    process = Registry(tmp_path_factory.mktemp("registry"))
    try:
        process.start()
        yield process.host
    finally:
        process.stop()


@pytest.fixture(scope="session")
def pusher(registry):
    pusher = Pusher(registry)
    yield pusher
    pusher.close()

"""Fixtures for the real-runtime tests: one kubemini CRI runtime process per session, pods cleaned per test."""

from __future__ import annotations

import subprocess

import pytest

from tests.runtime.cri import CriClient, Pods, RuntimeProcess, missing_prerequisites


@pytest.fixture(scope="session")
def runtime_process(tmp_path_factory):
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    process = RuntimeProcess(tmp_path_factory.mktemp("cri"))
    process.start()
    try:
        yield process
    finally:
        process.stop()
        subprocess.run(["ip", "link", "del", process.bridge], capture_output=True)


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

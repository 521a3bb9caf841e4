"""The harness itself: kube_cluster's scope option and marker, clean stops, and clear start-up errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubemini.process import ControllerManagerProcess
from kubemini.testing import Cluster, ClusterStartError

pytest_plugins = ["pytester"]

TWO_TESTS = """
urls = []

def test_one(kube_cluster, kube_namespace):
    urls.append(kube_cluster.url)

def test_two(kube_cluster):
    urls.append(kube_cluster.url)
    print("DISTINCT CLUSTERS:", len(set(urls)))
"""


@pytest.mark.parametrize(("args", "distinct"), [((), 1), (("--kubemini-scope=function",), 2)])
def test_scope_option(pytester, args, distinct):
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*DISTINCT CLUSTERS: {distinct}*"])


def test_marker_gives_a_test_its_own_cluster_with_options(pytester):
    pytester.makepyfile("""
        import pytest

        def test_shared(kube_cluster):
            assert not kube_cluster.scheduler

        @pytest.mark.kubemini(scheduler=True, hollow_nodes=1)
        def test_own(kube_cluster, kube_session_cluster):
            assert kube_cluster is not kube_session_cluster
            assert kube_cluster.scheduler and kube_cluster.hollow_nodes == 1

        @pytest.mark.kubemini(nodes=3)
        def test_typo(kube_cluster):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*takes only the keyword arguments scheduler, hollow_nodes, controllers*"])


def test_fixtures_start_nothing_unless_used(pytester, monkeypatch):
    started = record_child_processes(monkeypatch)
    pytester.makepyfile("""
        def test_plain(request):
            assert request.config.pluginmanager.hasplugin("kubemini")
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert started == []


def test_bad_scope_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\nkubemini_scope = module\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*kubemini_scope = 'module': want one of session, function*"])


def test_stop_leaves_no_process_and_no_temp_dir(monkeypatch):
    started = record_child_processes(monkeypatch)
    with Cluster(scheduler=True) as cluster:
        data_dir = cluster.data_dir
        assert len(started) == 4  # etcd, API server, controller-manager, scheduler
    assert all(p.poll() is not None for p in started)
    assert not data_dir.exists()
    cluster.stop()  # idempotent


def test_a_component_failing_halfway_stops_everything(monkeypatch, tmp_path):
    started = record_child_processes(monkeypatch)
    monkeypatch.setattr(ControllerManagerProcess, "command",
                        lambda self: [sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(2)"])
    with pytest.raises(ClusterStartError, match=r"(?s)the controller-manager exited with 2.*boom: bad flag"):
        Cluster(data_dir=tmp_path / "cluster").start()
    assert len(started) == 3
    assert all(p.poll() is not None for p in started), "no process left behind"


def test_missing_etcd_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("kubemini.etcdserver.shutil.which", lambda name: None)
    monkeypatch.setattr("kubemini.etcdserver.os.access", lambda path, mode: False)
    with pytest.raises(ClusterStartError, match="etcd is not installed: run `apt-get install etcd-server"):
        Cluster().start()


def record_child_processes(monkeypatch) -> list[subprocess.Popen]:
    """Every process started from now on (kubemini starts its components with subprocess.Popen)."""
    started: list[subprocess.Popen] = []

    class Recording(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    return started

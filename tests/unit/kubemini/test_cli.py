"""``kubemini`` argument parsing and the errors a user sees before (or instead of) anything starting."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kubemini import cli, cluster, commands
from kubemini import clusterstate as state
from kubemini.ports import free_port
from kubemini.process import ComponentStartError
from kubemini.progress import PlainProgress

SUBCOMMANDS = [["up"], ["down"], ["status"], ["logs"], ["image"], ["image", "load"], ["etcd"], ["etcd", "snapshot"],
               ["etcd", "snapshot", "save"], ["etcd", "snapshot", "restore"], []]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "kubemini")
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*words, "--help"])
    assert exit_.value.code == 0
    assert "usage: kubemini" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["up", "--nodes", "x"], "argument --nodes: 'x' is not a whole number"),
    (["up", "--nodes", "-1"], "-1 is not between 0 and 200"),
    (["up", "--port", "70000"], "70000 is not between 1 and 65535"),
    (["up", "--hollow-nodes", "1.5"], "is not a whole number"),
    (["up", "--pod-cidr-prefix", "10.300"], "is not two octets"),
    (["up", "--bridge-prefix", "br-x"], "must be 1-12 letters/digits"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["logs"], "the following arguments are required: COMPONENT"),
    (["etcd", "snapshot"], "the following arguments are required: COMMAND"),
    (["image", "load"], "the following arguments are required: FILE"),
    (["down", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err


def test_up_defaults() -> None:
    args = cli.build_parser().parse_args(["up"])
    assert (args.detach, args.port, args.nodes, args.hollow_nodes) == (False, 6443, None, 0)
    assert args.data_dir == Path.home() / ".kubemini"


def test_nodes_get_distinct_names_networks_and_dirs(tmp_path: Path) -> None:
    plans = cluster.plan_nodes(cluster.UpOptions(data_dir=tmp_path), 3, host="box")
    assert [p.name for p in plans] == ["box", "box-2", "box-3"]
    assert [p.pod_cidr for p in plans] == ["10.88.0.0/24", "10.88.1.0/24", "10.88.2.0/24"]
    assert [p.bridge for p in plans] == ["kubemini0", "kubemini1", "kubemini2"]
    assert plans[0].runtime_root == tmp_path / "runtime"  # node 1 keeps `make up`'s paths
    assert plans[1].runtime_socket == tmp_path / "nodes" / "box-2" / "runtime" / "cri.sock"
    assert len({p.kubelet_root for p in plans}) == len({p.pod_logs for p in plans}) == 3


def test_api_clients_stop_together_and_the_rest_in_order() -> None:
    names = ["hollow-nodes", "kubelet", "runtime", "scheduler", "controller-manager", "apiserver", "etcd"]
    assert cluster._stop_stages(names) == [["hollow-nodes"], ["kubelet"], ["runtime"],
                                           ["scheduler", "controller-manager"], ["apiserver"], ["etcd"]]


@pytest.fixture
def etcd_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "etcd_binary", lambda: "/usr/bin/etcd")


def up_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(argv) == 1
    return capsys.readouterr().err


def test_up_on_a_running_data_dir_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state.write_pids(tmp_path, {"etcd": os.getpid()})  # something alive
    err = up_error(["up", "-d", "--data-dir", str(tmp_path), "--port", "1"], capsys)
    assert f"error: kubemini is already running from {tmp_path}" in err
    assert state.read_pids(tmp_path) == {"etcd": os.getpid()}  # untouched


def test_a_port_in_use_names_the_port_and_the_flag(tmp_path: Path, etcd_installed: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = up_error(["up", "-d", "--data-dir", str(tmp_path), "--port", str(port)], capsys)
    assert f"port {port} is in use" in err and "--port" in err
    assert not (tmp_path / "pids.json").exists()


def test_missing_etcd_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def missing() -> str:
        raise cluster.EtcdNotInstalledError("no etcd")
    monkeypatch.setattr(cluster, "etcd_binary", missing)
    err = up_error(["up", "-d", "--data-dir", str(tmp_path), "--port", str(free_port())], capsys)
    assert "apt-get install -y etcd-server" in err


def test_without_runc_the_process_backend_is_offered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster.node.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cluster.node.shutil, "which", lambda binary, path=None: None if binary == "runc" else binary)
    assert cluster.node.node_prerequisites() == \
        "runc is missing: apt-get install -y runc (or --runtime process, which needs no runc)"
    assert cluster.node.node_prerequisites(runc=False) is None


def test_explicit_nodes_without_runc_say_how_to_install_it(tmp_path: Path, etcd_installed: None,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cluster.node, "node_prerequisites", lambda **_: "runc is missing: apt-get install -y runc")
    err = up_error(["up", "-d", "--data-dir", str(tmp_path), "--port", str(free_port()), "--nodes", "2"], capsys)
    assert "cannot start 2 node(s): runc is missing: apt-get install -y runc" in err


def test_a_component_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    class Dying:
        pid = os.getpid()
        log_path = tmp_path / "scheduler.log"

        def launch(self) -> None:
            pass

        def wait_ready(self, timeout: float) -> None:
            raise ComponentStartError("the scheduler exited with 1:\nTraceback ...\nValueError: boom")

    starter = cluster.ClusterStarter(cluster.UpOptions(data_dir=tmp_path), PlainProgress(lambda _: None))
    launched = starter.launch(Dying(), "scheduler", "detail")
    assert state.read_pids(tmp_path) == {"scheduler": os.getpid()}  # recorded before it is waited for
    with pytest.raises(cluster.UpError, match=r"(?s)the scheduler failed to start.*ValueError: boom"):
        starter.wait_ready(launched)


def recorded(tmp_path: Path) -> None:
    log = tmp_path / "apiserver.log"
    log.write_text("".join(f"line {i}\n" for i in range(10)))
    state.write_cluster(tmp_path, state.ClusterRecord(components=[state.ComponentRecord("apiserver", str(log)),
                                                                  state.ComponentRecord("etcd", "/nope")]))


def test_logs_tails_the_file_and_names_the_known_components(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    recorded(tmp_path)
    assert cli.main(["logs", "apiserver", "-n", "2", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "line 8\nline 9\n"
    assert cli.main(["logs", "kubelet", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: unknown component 'kubelet'; known: apiserver, etcd\n"


def test_commands_on_a_data_dir_without_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--data-dir", str(tmp_path)]) == 1
    assert "no kubemini cluster in" in capsys.readouterr().err
    assert cli.main(["down", "--data-dir", str(tmp_path)]) == 0
    assert "nothing is running" in capsys.readouterr().out


def test_restore_is_refused_while_running_and_needs_a_file(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = tmp_path / "snap.db"
    assert cli.main(["etcd", "snapshot", "restore", str(snapshot), "--data-dir", str(tmp_path)]) == 1
    assert f"{snapshot}: no such file" in capsys.readouterr().err
    state.write_pids(tmp_path, {"etcd": os.getpid()})
    assert cli.main(["etcd", "snapshot", "restore", str(snapshot), "--data-dir", str(tmp_path)]) == 1
    assert "stop it first with `kubemini down`" in capsys.readouterr().err


def test_snapshot_save_needs_a_running_etcd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded(tmp_path)
    assert cli.main(["etcd", "snapshot", "save", str(tmp_path / "s.db"), "--data-dir", str(tmp_path)]) == 1
    assert "etcd is not running" in capsys.readouterr().err


def test_image_load_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(commands.CommandError, match="no such file"):
        commands.image_load(tmp_path, tmp_path / "missing.tar")

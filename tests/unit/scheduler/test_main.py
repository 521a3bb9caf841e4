"""The scheduler command line: bad input is one clear line and exit status 2, before anything starts."""

from __future__ import annotations

import pytest

from scheduler.__main__ import main


@pytest.mark.parametrize(("args", "config", "message"), [
    ([], "profiles: [{schedulerName: a}, {schedulerName: a}]", "error: "),
    ([], "kind: Other", "error: "),
    ([], "profiles: [{plugins: {score: {enabled: [{name: NoSuchPlugin}]}}}]", "error: "),
    (["--kube-api-burst", "0"], None, "error: --kube-api-burst must be at least 1"),
    (["--leader-elect", "--leader-elect-renew-deadline", "20"], None, "error: renew_deadline (20.0s) must be less"),
])
def test_bad_input_is_one_line_and_status_2(args, config, message, capsys, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n"
                          "users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                          "current-context: x\n")
    argv = ["--kubeconfig", str(kubeconfig), *args]
    if config is not None:
        path = tmp_path / "config.yaml"
        path.write_text(config)
        argv += ["--config", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_missing_config_file_is_named(capsys, tmp_path):
    assert main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_bad_plugin_args_are_refused_at_start_up(capsys, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n"
                          "users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                          "current-context: x\n")
    config = tmp_path / "config.yaml"
    config.write_text("profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n"
                      "    args: {minCandidateNodesPercentage: 500}\n")
    assert main(["--kubeconfig", str(kubeconfig), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: profile default-scheduler, plugin DefaultPreemption: minCandidateNodesPercentage")

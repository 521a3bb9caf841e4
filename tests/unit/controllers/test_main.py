"""The controller-manager command line: bad input is one clear line and exit status 2, before anything starts."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from controllers.__main__ import main


@pytest.mark.parametrize(("args", "message"), [
    (["--controllers", "nope"], "error: unknown controller(s): nope"),
    (["--kubeconfig", "/does/not/exist"], "error: "),
    (["--concurrent-syncs", "replicaset=zero"], "error: --concurrent-syncs 'replicaset=zero'"),
    (["--leader-elect", "--leader-elect-renew-deadline", "20"], "error: renew_deadline (20.0s) must be less"),
    (["--kube-api-burst", "0"], "error: --kube-api-burst must be at least 1"),
    (["--port", "70000"], "error: --port must be between 0 and 65535"),
])
def test_bad_input_is_one_line_and_status_2(args, message, capsys, tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n"
                          "users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                          "current-context: x\n")
    if "--kubeconfig" not in args:
        args = ["--kubeconfig", str(kubeconfig), *args]
    # Earlier tests' asyncio leftovers may be collected (and logged) at any allocation: collect them now and drop
    # what they wrote, so only main's own output is judged.
    gc.collect()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1


def test_help_describes_the_flags():
    out = subprocess.run([sys.executable, "-m", "controllers", "--help"], capture_output=True, text=True, check=True)
    assert "--leader-elect" in out.stdout and "--controllers" in out.stdout

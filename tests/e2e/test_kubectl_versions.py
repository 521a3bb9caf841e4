"""The oldest and newest kubectl installed here work too (the suite otherwise pins 1.32).

kubectl 1.29 knows aggregated discovery only as v2beta1. kubectl 1.27 and 1.28 validate manifests
against /openapi/v2 (protobuf), which kubemini does not serve, so with them ``apply`` needs
``--validate=false`` (docs/differences.md).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

KUBECTL_DIR = Path(os.environ.get("KUBEMINI_KUBECTL_DIR", "/usr/lib/google-cloud-sdk/bin"))

MANIFEST = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: versions
data:
  a: "1"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: versions
spec:
  selector:
    matchLabels: {app: versions}
  template:
    metadata:
      labels: {app: versions}
    spec:
      containers:
      - name: c
        image: nginx:1.27
"""


@pytest.mark.parametrize("version", ["1.27", "1.29", "1.33"])
def test_other_kubectl_versions_apply_get_and_delete(version, kubeconfig, namespace, tmp_path):
    binary = KUBECTL_DIR / f"kubectl.{version}"
    if not binary.exists():
        pytest.fail(f"{binary} is missing; set KUBEMINI_KUBECTL_DIR")

    def kubectl(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(binary), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path), "-n", namespace, *args],
            input=stdin, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, f"kubectl {version} {args}: {result.stdout}{result.stderr}"
        return result.stdout

    validate = ["--validate=false"] if version in ("1.27", "1.28") else []
    applied = kubectl("apply", *validate, "-f", "-", stdin=MANIFEST)
    assert "configmap/versions created" in applied and "deployment.apps/versions created" in applied
    table = kubectl("get", "deployments")
    assert table.split()[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert "versions" in table
    changed = kubectl("apply", *validate, "-f", "-", stdin=MANIFEST.replace("nginx:1.27", "nginx:1.28"))
    assert "deployment.apps/versions configured" in changed
    image = kubectl("get", "deployment", "versions", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image == "nginx:1.28"
    kubectl("delete", "-f", "-", stdin=MANIFEST)
    assert "No resources found" in subprocess.run(
        [str(binary), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path), "-n", namespace,
         "get", "deployments,configmaps", "-l", "app=versions"],
        capture_output=True, text=True, timeout=60).stderr

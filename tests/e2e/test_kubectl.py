"""Real kubectl 1.32 against a real API server and etcd: what a user sees at the terminal.

No kubelet or controllers run here, so pods stay Pending and Deployments never get replicas; the
tests only look at what the API server itself is responsible for.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest
import yaml

from tests.e2e.conftest import LineReader, kubectl_popen
from tests.support import wait_for

pytestmark = pytest.mark.e2e


# --- helpers ----------------------------------------------------------------------------------------


def pod_manifest(name: str, labels: dict | None = None, containers: list | None = None) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": containers or [{"name": "main", "image": "nginx:1.27"}]},
    }


def deployment_manifest(name: str, replicas: int = 1, containers: list | None = None) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers or [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


def create(api, path: str, body: dict) -> dict:
    resp = api.post(path, json=body)
    assert resp.status_code == 201, f"POST {path}: {resp.status_code} {resp.text}"
    return resp.json()


def get_json(api, path: str) -> dict:
    resp = api.get(path)
    assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
    return resp.json()


def table_rows(output: str) -> tuple[list[str], list[list[str]]]:
    """Split kubectl's column output into the header line and the rows (split on runs of 2+ spaces)."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, f"no output: {output!r}"
    split = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return split[0], split[1:]


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- discovery ---------------------------------------------------------------------------------------


def test_api_resources_lists_core_kinds_with_short_names(kubectl):
    header, rows = table_rows(kubectl("api-resources"))
    assert header[:2] == ["NAME", "SHORTNAMES"], header
    by_name: dict[str, list[str]] = {}
    for row in rows:
        by_name.setdefault(row[0], row)
    assert by_name["pods"][1:] == ["po", "v1", "true", "Pod"], by_name.get("pods")
    assert by_name["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"], by_name["deployments"]
    assert by_name["services"][1:] == ["svc", "v1", "true", "Service"], by_name.get("services")
    assert by_name["namespaces"][1:] == ["ns", "v1", "false", "Namespace"], by_name.get("namespaces")


def test_explain_prints_field_docs(kubectl):
    out = kubectl("explain", "pods.spec.containers")
    assert "KIND:" in out and "Pod" in out, out
    assert "FIELD: containers <[]Container>" in out, out
    assert "DESCRIPTION:" in out and "FIELDS:" in out, out
    # a few fields of Container, with their types and the required marker on name
    assert "image\t<string>" in out, out
    assert "name\t<string> -required-" in out, out
    assert "ports\t<[]ContainerPort>" in out, out


# --- apply -------------------------------------------------------------------------------------------


APP_FILE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
    tier: frontend
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: {ns}
data:
  greeting: hello
"""


def test_apply_multi_document_file_then_update_then_unchanged(kubectl, api, namespace, tmp_path):
    ns = namespace + "-app"
    manifest = write(tmp_path, "app.yaml", APP_FILE.format(ns=ns, image="nginx:1.27"))

    out = kubectl("apply", "-f", manifest)
    assert out.splitlines() == [
        f"namespace/{ns} created",
        "deployment.apps/web created",
        "service/web created",
        "configmap/web-config created",
    ], out
    deploy_path = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    assert get_json(api, f"/api/v1/namespaces/{ns}/configmaps/web-config")["data"] == {"greeting": "hello"}
    assert get_json(api, f"/api/v1/namespaces/{ns}/services/web")["spec"]["ports"][0]["port"] == 80
    created = get_json(api, deploy_path)
    assert "kubectl.kubernetes.io/last-applied-configuration" in created["metadata"]["annotations"]

    # meanwhile, someone annotates and labels the Deployment outside the file
    assert "annotated" in kubectl("annotate", "deployment", "web", "-n", ns, "example.com/owner=team-a")
    assert "labeled" in kubectl("label", "deployment", "web", "-n", ns, "extra=kept")
    # a Deployment's generation follows its spec and annotations (they are copied to ReplicaSets), not labels
    before = get_json(api, deploy_path)["metadata"]["generation"]
    assert before == created["metadata"]["generation"] + 1

    manifest = write(tmp_path, "app2.yaml", APP_FILE.format(ns=ns, image="nginx:1.28"))
    out = kubectl("apply", "-f", manifest)
    assert out.splitlines() == [
        f"namespace/{ns} unchanged",
        "deployment.apps/web configured",
        "service/web unchanged",
        "configmap/web-config unchanged",
    ], out

    deploy = get_json(api, deploy_path)
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["nginx"]
    assert containers[0]["image"] == "nginx:1.28"
    assert containers[0]["ports"][0]["containerPort"] == 80
    assert deploy["spec"]["replicas"] == 2
    assert deploy["metadata"]["labels"] == {"app": "web", "tier": "frontend", "extra": "kept"}
    annotations = deploy["metadata"]["annotations"]
    assert annotations["example.com/owner"] == "team-a"
    last_applied = json.loads(annotations["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert deploy["metadata"]["generation"] == before + 1

    out = kubectl("apply", "-f", manifest)
    assert out.splitlines() == [
        f"namespace/{ns} unchanged",
        "deployment.apps/web unchanged",
        "service/web unchanged",
        "configmap/web-config unchanged",
    ], out
    assert get_json(api, deploy_path)["metadata"]["resourceVersion"] == deploy["metadata"]["resourceVersion"]


# --- get ---------------------------------------------------------------------------------------------


@pytest.fixture
def three_pods(api, namespace) -> str:
    # created out of name order; "rank" sorts the other way round from the names
    for name, app, rank in (("pod-b", "beta", "2"), ("pod-c", "alpha", "1"), ("pod-a", "alpha", "3")):
        create(api, f"/api/v1/namespaces/{namespace}/pods", pod_manifest(name, {"app": app, "rank": rank}))
    return namespace


def test_get_default_and_wide_columns(kubectl, three_pods):
    header, rows = table_rows(kubectl("get", "pods", "-n", three_pods))
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], header
    assert [r[0] for r in rows] == ["pod-a", "pod-b", "pod-c"]
    assert rows[0][1:4] == ["0/1", "Pending", "0"], rows[0]

    header, rows = table_rows(kubectl("get", "pods", "-n", three_pods, "-o", "wide"))
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                      "READINESS GATES"], header
    assert rows[0][0] == "pod-a" and rows[0][2] == "Pending"
    assert rows[0][5:] == ["<none>", "<none>", "<none>", "<none>"], rows[0]


def test_get_yaml_and_json(kubectl, three_pods):
    as_yaml = yaml.safe_load(kubectl("get", "pods", "-n", three_pods, "-o", "yaml"))
    assert as_yaml["kind"] == "List"
    assert [p["metadata"]["name"] for p in as_yaml["items"]] == ["pod-a", "pod-b", "pod-c"]
    assert all(p["kind"] == "Pod" and p["apiVersion"] == "v1" for p in as_yaml["items"])

    one = json.loads(kubectl("get", "pod", "pod-b", "-n", three_pods, "-o", "json"))
    assert one["kind"] == "Pod" and one["metadata"]["name"] == "pod-b"
    assert one["metadata"]["namespace"] == three_pods
    assert one["metadata"]["labels"] == {"app": "beta", "rank": "2"}
    assert one["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert one["status"]["phase"] == "Pending"
    meta = one["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"], meta


def test_get_all_namespaces(kubectl, three_pods):
    header, rows = table_rows(kubectl("get", "pods", "-A"))
    assert header[:2] == ["NAMESPACE", "NAME"], header
    ours = [r[1] for r in rows if r[0] == three_pods]
    assert ours == ["pod-a", "pod-b", "pod-c"], rows


def test_get_with_label_and_field_selectors(kubectl, three_pods):
    _, rows = table_rows(kubectl("get", "pods", "-n", three_pods, "-l", "app=alpha"))
    assert [r[0] for r in rows] == ["pod-a", "pod-c"]
    _, rows = table_rows(kubectl("get", "pods", "-n", three_pods, "-l", "app in (beta),rank!=9"))
    assert [r[0] for r in rows] == ["pod-b"]
    _, rows = table_rows(kubectl("get", "pods", "-n", three_pods, "--field-selector", "metadata.name=pod-c"))
    assert [r[0] for r in rows] == ["pod-c"]
    result = kubectl.run("get", "pods", "-n", three_pods, "-l", "app=nothing")
    assert result.stdout == "" and "No resources found" in result.stderr, result


def test_get_show_labels_and_sort_by(kubectl, three_pods):
    header, rows = table_rows(kubectl("get", "pods", "-n", three_pods, "--show-labels"))
    assert header[-1] == "LABELS", header
    assert {r[0]: r[-1] for r in rows} == {"pod-a": "app=alpha,rank=3", "pod-b": "app=beta,rank=2",
                                           "pod-c": "app=alpha,rank=1"}

    _, rows = table_rows(kubectl("get", "pods", "-n", three_pods, "--sort-by=.metadata.name"))
    assert [r[0] for r in rows] == ["pod-a", "pod-b", "pod-c"]
    _, rows = table_rows(kubectl("get", "pods", "-n", three_pods, "--sort-by=.metadata.labels.rank"))
    assert [r[0] for r in rows] == ["pod-c", "pod-b", "pod-a"]


def test_get_watch_prints_changes(kubectl, api, namespace):
    create(api, f"/api/v1/namespaces/{namespace}/configmaps",
           {"metadata": {"name": "first"}, "data": {"k": "v"}})
    proc = kubectl_popen(kubectl, "get", "configmaps", "-n", namespace, "-w")
    try:
        out = LineReader(proc.stdout)
        header = out.next_line()
        assert header.split()[:2] == ["NAME", "DATA"], header
        assert out.next_line().split()[:2] == ["first", "1"]
        create(api, f"/api/v1/namespaces/{namespace}/configmaps",
               {"metadata": {"name": "second"}, "data": {"a": "1", "b": "2"}})
        line = out.next_line()
        assert line.split()[:2] == ["second", "2"], line
        resp = api.patch(f"/api/v1/namespaces/{namespace}/configmaps/first",
                         json={"data": {"k": "v", "x": "y"}},
                         headers={"Content-Type": "application/merge-patch+json"})
        assert resp.status_code == 200, resp.text
        line = out.next_line()
        assert line.split()[:2] == ["first", "2"], line
        assert proc.poll() is None, "kubectl get -w exited while watching"
    finally:
        proc.kill()
        proc.wait()


# --- describe ----------------------------------------------------------------------------------------


def describe_fields(output: str) -> dict[str, str]:
    fields = {}
    for line in output.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            fields.setdefault(key, value.strip())
    return fields


def test_describe_pod(kubectl, api, namespace):
    create(api, f"/api/v1/namespaces/{namespace}/pods", pod_manifest("described", {"app": "d"}))
    out = kubectl("describe", "pod", "described", "-n", namespace)
    fields = describe_fields(out)
    assert fields["Name"] == "described", out
    assert fields["Namespace"] == namespace, out
    assert fields["Labels"] == "app=d", out
    assert fields["Status"] == "Pending", out
    assert "Containers" in fields and "Events" in fields, out
    assert "  main:" in out and "nginx:1.27" in out, out


def test_describe_deployment(kubectl, api, namespace):
    create(api, f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment_manifest("shown", replicas=3))
    out = kubectl("describe", "deployment", "shown", "-n", namespace)
    fields = describe_fields(out)
    assert fields["Name"] == "shown", out
    assert fields["Namespace"] == namespace, out
    assert fields["Selector"] == "app=shown", out
    assert fields["Replicas"].startswith("3 desired"), out
    assert "Pod Template" in fields and "Events" in fields, out
    assert "  Containers:" in out and "nginx:1.27" in out, out


# --- patch, label, annotate, scale ------------------------------------------------------------------


def test_patch_strategic_merge_is_the_default(kubectl, api, namespace):
    containers = [{"name": "web", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox:1.36"}]
    create(api, f"/apis/apps/v1/namespaces/{namespace}/deployments",
           deployment_manifest("patched", containers=containers))
    patch = '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}'
    out = kubectl("patch", "deployment", "patched", "-n", namespace, "-p", patch)
    assert out.strip() == "deployment.apps/patched patched", out
    got = get_json(api, f"/apis/apps/v1/namespaces/{namespace}/deployments/patched")
    # strategic merge merges the containers list by name: the sidecar stays
    assert [(c["name"], c["image"]) for c in got["spec"]["template"]["spec"]["containers"]] == [
        ("web", "nginx:1.28"), ("sidecar", "busybox:1.36")]


def test_patch_merge_and_json(kubectl, api, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps/cfg"
    create(api, f"/api/v1/namespaces/{namespace}/configmaps",
           {"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}})

    out = kubectl("patch", "configmap", "cfg", "-n", namespace, "--type=merge",
                  "-p", '{"data":{"a":null,"c":"3"}}')
    assert out.strip() == "configmap/cfg patched", out
    assert get_json(api, path)["data"] == {"b": "2", "c": "3"}

    out = kubectl("patch", "configmap", "cfg", "-n", namespace, "--type=json",
                  "-p", '[{"op":"replace","path":"/data/b","value":"20"},'
                        '{"op":"add","path":"/data/d","value":"4"}]')
    assert out.strip() == "configmap/cfg patched", out
    assert get_json(api, path)["data"] == {"b": "20", "c": "3", "d": "4"}

    # a JSON patch that changes nothing is reported as such
    out = kubectl("patch", "configmap", "cfg", "-n", namespace, "--type=merge", "-p", '{"data":{"b":"20"}}')
    assert out.strip() == "configmap/cfg patched (no change)", out


def test_label_and_annotate(kubectl, api, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps/tagged"
    create(api, f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "tagged"}})

    out = kubectl("label", "configmap", "tagged", "-n", namespace, "env=prod")
    assert out.strip() == "configmap/tagged labeled", out
    assert get_json(api, path)["metadata"]["labels"] == {"env": "prod"}
    result = kubectl.run("label", "configmap", "tagged", "-n", namespace, "env=dev", check=False)
    assert result.returncode != 0 and "already has a value (prod)" in result.stderr, result
    kubectl("label", "configmap", "tagged", "-n", namespace, "env=dev", "--overwrite")
    assert get_json(api, path)["metadata"]["labels"] == {"env": "dev"}
    kubectl("label", "configmap", "tagged", "-n", namespace, "env-")
    assert not get_json(api, path)["metadata"].get("labels")

    out = kubectl("annotate", "configmap", "tagged", "-n", namespace, "example.com/note=hello world")
    assert out.strip() == "configmap/tagged annotated", out
    assert get_json(api, path)["metadata"]["annotations"] == {"example.com/note": "hello world"}
    kubectl("annotate", "configmap", "tagged", "-n", namespace, "example.com/note-")
    assert not get_json(api, path)["metadata"].get("annotations")


def test_scale_deployment(kubectl, api, namespace):
    create(api, f"/apis/apps/v1/namespaces/{namespace}/deployments",
           deployment_manifest("scaled", replicas=1))
    out = kubectl("scale", "deployment", "scaled", "-n", namespace, "--replicas=4")
    assert out.strip() == "deployment.apps/scaled scaled", out
    assert kubectl("get", "deployment", "scaled", "-n", namespace, "-o", "jsonpath={.spec.replicas}") == "4"
    # with a precondition on the current size (GET + PUT on /scale, no Content-Type)
    kubectl("scale", "deployment", "scaled", "-n", namespace, "--current-replicas=4", "--replicas=2")
    assert kubectl("get", "deployment", "scaled", "-n", namespace, "-o", "jsonpath={.spec.replicas}") == "2"
    result = kubectl.run("scale", "deployment", "scaled", "-n", namespace, "--current-replicas=7",
                         "--replicas=1", check=False)
    assert result.returncode != 0, result
    assert kubectl("get", "deployment", "scaled", "-n", namespace, "-o", "jsonpath={.spec.replicas}") == "2"


# --- delete ------------------------------------------------------------------------------------------


def test_delete_returns_once_the_object_is_gone(kubectl, api, namespace):
    create(api, f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "doomed"}})
    create(api, f"/api/v1/namespaces/{namespace}/pods", pod_manifest("doomed-pod"))

    out = kubectl("delete", "configmap", "doomed", "-n", namespace, timeout=30)
    assert out.strip() == 'configmap "doomed" deleted', out
    assert api.get(f"/api/v1/namespaces/{namespace}/configmaps/doomed").status_code == 404

    # an unscheduled pod has nothing to stop: deletion is immediate, so kubectl's wait ends at once
    out = kubectl("delete", "pod", "doomed-pod", "-n", namespace, timeout=30)
    assert out.strip() == 'pod "doomed-pod" deleted', out
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/doomed-pod").status_code == 404

    result = kubectl.run("delete", "configmap", "doomed", "-n", namespace, check=False)
    assert result.returncode == 1
    assert 'Error from server (NotFound): configmaps "doomed" not found' in result.stderr, result


def test_delete_waits_for_finalizers(kubectl, api, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps/held"
    create(api, f"/api/v1/namespaces/{namespace}/configmaps",
           {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    proc = kubectl_popen(kubectl, "delete", "configmap", "held", "-n", namespace)
    try:
        wait_for(lambda: get_json(api, path)["metadata"].get("deletionTimestamp"), 15,
                 message="deletionTimestamp to be set")
        assert proc.poll() is None, f"kubectl delete returned before the finalizer went: {proc.communicate()}"
        assert get_json(api, path)["metadata"]["finalizers"] == ["example.com/hold"]

        resp = api.patch(path, json={"metadata": {"finalizers": None}},
                         headers={"Content-Type": "application/merge-patch+json"})
        assert resp.status_code == 200, resp.text
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert stdout.strip() == 'configmap "held" deleted', (stdout, stderr)
    assert api.get(path).status_code == 404


# --- errors ------------------------------------------------------------------------------------------


def test_create_existing_name_says_already_exists(kubectl, namespace, tmp_path):
    manifest = write(tmp_path, "cm.yaml", textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: dup
          namespace: {namespace}
        data:
          k: v
        """))
    assert kubectl("create", "-f", manifest).strip() == "configmap/dup created"
    result = kubectl.run("create", "-f", manifest, check=False)
    assert result.returncode == 1, result
    assert "Error from server (AlreadyExists)" in result.stderr, result.stderr
    assert 'configmaps "dup" already exists' in result.stderr, result.stderr


def test_invalid_pod_without_containers(kubectl, api, namespace, tmp_path):
    manifest = write(tmp_path, "pod.yaml", textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: inv
          namespace: {namespace}
        spec:
          containers: []
        """))
    result = kubectl.run("create", "-f", manifest, check=False)
    assert result.returncode == 1, result
    assert 'The Pod "inv" is invalid' in result.stderr, result.stderr
    assert "spec.containers: Required value" in result.stderr, result.stderr
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/inv").status_code == 404


def test_invalid_deployment_name(kubectl, api, namespace, tmp_path):
    body = deployment_manifest("Bad_Name")
    body["metadata"]["namespace"] = namespace
    manifest = write(tmp_path, "deploy.yaml", yaml.safe_dump(body))
    result = kubectl.run("apply", "-f", manifest, check=False)
    assert result.returncode == 1, result
    assert 'The Deployment "Bad_Name" is invalid' in result.stderr, result.stderr
    assert 'metadata.name: Invalid value: "Bad_Name"' in result.stderr, result.stderr
    assert api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").json()["items"] == []


def test_unknown_field_is_rejected_by_default(kubectl, api, namespace, tmp_path):
    manifest = write(tmp_path, "pod.yaml", textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: strict
          namespace: {namespace}
        spec:
          containers:
          - name: main
            image: nginx:1.27
            bogusField: 1
        """))
    for verb in ("apply", "create"):
        result = kubectl.run(verb, "-f", manifest, check=False)
        assert result.returncode == 1, result
        assert "strict decoding error" in result.stderr, result.stderr
        assert 'unknown field "spec.containers[0].bogusField"' in result.stderr, result.stderr
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/strict").status_code == 404

    # the user can opt out: --validate=false sends fieldValidation=Ignore and the pod is created
    assert kubectl("create", "-f", manifest, "--validate=false").strip() == "pod/strict created"
    pod = get_json(api, f"/api/v1/namespaces/{namespace}/pods/strict")
    assert "bogusField" not in pod["spec"]["containers"][0]


def test_kubectl_exit_code_is_nonzero_for_missing_object(kubectl, namespace):
    result = kubectl.run("get", "pod", "nope", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): pods "nope" not found', result.stderr



def test_create_generators_that_send_protobuf(kubectl, namespace):
    """kubectl create namespace|configmap|secret|serviceaccount|deployment POST protobuf bodies."""
    name = namespace + "-gen"
    assert f"namespace/{name} created" in kubectl("create", "namespace", name)
    assert "configmap/cm created" in kubectl("-n", name, "create", "configmap", "cm", "--from-literal=a=b")
    assert kubectl("-n", name, "get", "cm", "cm", "-o", "jsonpath={.data.a}") == "b"
    assert "secret/s created" in kubectl("-n", name, "create", "secret", "generic", "s", "--from-literal=u=admin")
    assert kubectl("-n", name, "get", "secret", "s", "-o", "jsonpath={.data.u}") == "YWRtaW4="
    assert "serviceaccount/sa created" in kubectl("-n", name, "create", "serviceaccount", "sa")
    assert "deployment.apps/web created" in kubectl("-n", name, "create", "deployment", "web", "--image=nginx:1.27",
                                                     "--replicas=3", "--port=8080")
    spec = kubectl("-n", name, "get", "deployment", "web", "-o",
                   "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} "
                   "{.spec.template.spec.containers[0].image} "
                   "{.spec.template.spec.containers[0].ports[0].containerPort}")
    assert spec == "3 web nginx:1.27 8080"
    assert "service/web created" in kubectl("-n", name, "create", "service", "clusterip", "web", "--tcp=80:8080")
    assert "service/named created" in kubectl("-n", name, "create", "service", "nodeport", "named", "--tcp=81:82")
    assert "service/ext created" in kubectl("-n", name, "create", "service", "externalname", "ext",
                                            "--external-name=example.com")
    services = kubectl("-n", name, "get", "svc", "-o",
                       "jsonpath={range .items[*]}{.metadata.name} {.spec.type} {.spec.selector.app} "
                       "{.spec.ports[0].port}:{.spec.ports[0].targetPort} {.spec.externalName};{end}")
    assert services == "ext ExternalName ext : example.com;named NodePort named 81:82 ;web ClusterIP web 80:8080 ;"
    assert "job.batch/j created" in kubectl("-n", name, "create", "job", "j", "--image=busybox", "--", "echo", "hi")
    assert kubectl("-n", name, "get", "job", "j", "-o", "jsonpath={.spec.template.spec.containers[0].command} "
                   "{.spec.template.spec.restartPolicy}") == '["echo","hi"] Never'
    assert "cronjob.batch/c created" in kubectl("-n", name, "create", "cronjob", "c", "--image=busybox",
                                                "--schedule=*/5 * * * *", "--", "date")
    assert kubectl("-n", name, "get", "cronjob", "c", "-o",
                   "jsonpath={.spec.schedule} {.spec.jobTemplate.spec.template.spec.containers[0].image}") == \
        "*/5 * * * * busybox"
    refused = kubectl.run("-n", name, "create", "quota", "q", "--hard=pods=1", check=False)
    assert refused.returncode != 0 and "kubectl create -f" in refused.stderr

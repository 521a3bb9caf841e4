"""Server-side Table printing: the cells `kubectl get` shows for each built-in kind.

Expected cells are what a real v1.35 cluster prints for the same objects.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta

import pytest

from apiserver.registry.humanize import human_duration, short_human_duration, since
from apiserver.registry.printers import (
    DEFAULT_PRINTER,
    column_definitions,
    format_label_selector,
    printer_for,
    selector_string,
    table,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(group: str, kind: str, obj: dict) -> list:
    printer = printer_for(group, kind)
    row = printer.row(obj, NOW)
    assert len(row) == len(printer.columns)
    return row


def headers(group: str, kind: str, *, wide: bool = False) -> list[str]:
    return [c.name for c in printer_for(group, kind).columns if wide or c.priority == 0]


def by_header(group: str, kind: str, obj: dict) -> dict:
    return dict(zip(headers(group, kind, wide=True), cells(group, kind, obj), strict=True))


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-3, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (-1, "0s"),
        (0, "0s"),
        (0.9, "0s"),
        (45, "45s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (123, "2m3s"),
        (310, "5m10s"),
        (599, "9m59s"),
        (600, "10m"),
        (659, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600 - 60, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400 - 3600, "7d23h"),
        (8 * 86400, "8d"),
        (45 * 86400, "45d"),
        (730 * 86400 - 1, "729d"),
        (730 * 86400, "2y"),
        (760 * 86400, "2y30d"),
        (8 * 365 * 86400 - 86400, "7y364d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ],
)
def test_human_duration(seconds, expected):
    assert human_duration(timedelta(seconds=seconds)) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-2, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (86399, "23h"),
        (86400, "1d"),
        (364 * 86400, "364d"),
        (365 * 86400, "1y"),
        (800 * 86400, "2y"),
    ],
)
def test_short_human_duration(seconds, expected):
    assert short_human_duration(timedelta(seconds=seconds)) == expected


def test_since_handles_missing_future_and_fractional_timestamps():
    assert since(None, NOW) == "<unknown>"
    assert since("", NOW) == "<unknown>"
    assert since("not-a-time", NOW) == "<unknown>"
    assert since((NOW + timedelta(seconds=10)).isoformat(), NOW) == "<invalid>"
    assert since((NOW + timedelta(seconds=1)).isoformat(), NOW) == "0s"
    assert since("2025-06-01T11:59:30.123456Z", NOW) == "29s"
    assert since(ago(minutes=5, seconds=10), NOW) == "5m10s"


# --- selectors ------------------------------------------------------------------------------


def test_selector_string_sorts_requirements_and_values():
    sel = {
        "matchLabels": {"tier": "web", "app": "shop"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zone", "operator": "NotIn", "values": ["b", "a"]},
            {"key": "canary", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(sel) == "app=shop,canary,env in (dev,prod),!legacy,tier=web,zone notin (a,b)"


def test_format_label_selector_empty_and_invalid():
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"
    assert format_label_selector({"matchLabels": {}}) == "<none>"
    assert (
        format_label_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
        == "<error>"
    )
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Near"}]}) == "<error>"
    assert format_label_selector({"matchLabels": {"app": "web"}}) == "app=web"


# --- pods -----------------------------------------------------------------------------------


def pod(
    name="web-0",
    *,
    containers=("app",),
    init=(),
    sidecars=(),
    phase="Running",
    statuses=None,
    init_statuses=None,
    conditions=None,
    **extra,
) -> dict:
    spec = {
        "containers": [{"name": c, "image": f"registry.local/{c}:1"} for c in containers],
        "nodeName": "node-1",
    }
    if init or sidecars:
        spec["initContainers"] = [{"name": c, "image": "busybox"} for c in init] + [
            {"name": c, "image": "envoy", "restartPolicy": "Always"} for c in sidecars
        ]
    status = {"phase": phase, "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}]}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = conditions
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "u-1",
            "creationTimestamp": ago(minutes=60),
            "labels": {"app": "web"},
        },
        "spec": spec,
        "status": status,
    }
    for key, value in extra.items():
        if key in ("metadata", "spec", "status"):
            obj[key].update(value)
        else:
            obj[key] = value
    return obj


def running(name="app", *, ready=True, restarts=0, last_finished=None) -> dict:
    cs = {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "started": True,
        "state": {"running": {"startedAt": ago(minutes=59)}},
    }
    if last_finished is not None:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}}
    return cs


def waiting(name="app", reason="ContainerCreating", *, restarts=0, last_finished=None) -> dict:
    cs = {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}
    if last_finished is not None:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}}
    return cs


def terminated(name="app", *, code=0, reason=None, signal=None) -> dict:
    term = {"exitCode": code, "finishedAt": ago(minutes=30)}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}}


READY = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]


def test_pod_columns_match_kube_apiserver():
    assert headers("", "Pod") == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert headers("", "Pod", wide=True)[5:] == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    defs = column_definitions(printer_for("", "Pod"))
    assert defs[0] == {**defs[0], "name": "Name", "type": "string", "format": "name", "priority": 0}
    assert [d["priority"] for d in defs] == [0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_pod_running():
    p = pod(statuses=[running()], conditions=READY)
    assert cells("", "Pod", p) == [
        "web-0",
        "1/1",
        "Running",
        "0",
        "60m",
        "10.244.1.7",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_pod_pending_unscheduled_shows_none_for_wide_cells():
    p = pod(phase="Pending", statuses=None)
    del p["spec"]["nodeName"]
    del p["status"]["podIP"], p["status"]["podIPs"]
    assert cells("", "Pod", p)[1:] == ["0/1", "Pending", "0", "60m", "<none>", "<none>", "<none>", "<none>"]


@pytest.mark.parametrize(
    "reason", ["ContainerCreating", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"]
)
def test_pod_waiting_reason_is_the_status(reason):
    p = pod(phase="Pending", statuses=[waiting(reason=reason)])
    assert cells("", "Pod", p)[1:4] == ["0/1", reason, "0"]


def test_pod_crash_loop_back_off_shows_restarts_with_last_restart_age():
    p = pod(statuses=[waiting(reason="CrashLoopBackOff", restarts=2, last_finished=ago(seconds=30))])
    assert cells("", "Pod", p)[1:4] == ["0/1", "CrashLoopBackOff", "2 (30s ago)"]


def test_pod_restarts_use_latest_termination_across_containers():
    p = pod(
        containers=("a", "b"),
        statuses=[
            running("a", restarts=1, last_finished=ago(hours=5)),
            running("b", restarts=3, last_finished=ago(minutes=5, seconds=10)),
        ],
        conditions=READY,
    )
    assert cells("", "Pod", p)[1:4] == ["2/2", "Running", "4 (5m10s ago)"]


def test_pod_restarts_without_last_state_is_plain_number():
    p = pod(statuses=[running(restarts=3)], conditions=READY)
    assert cells("", "Pod", p)[3] == "3"


def test_pod_init_progress():
    p = pod(
        phase="Pending",
        init=("migrate", "seed"),
        statuses=[waiting(reason="PodInitializing")],
        init_statuses=[terminated("migrate", reason="Completed"), running("seed", ready=False)],
        conditions=[{"type": "Initialized", "status": "False"}],
    )
    assert cells("", "Pod", p)[1:4] == ["0/1", "Init:1/2", "0"]


def test_pod_init_waiting_with_pod_initializing_counts_as_progress():
    p = pod(
        phase="Pending",
        init=("migrate",),
        statuses=[waiting(reason="PodInitializing")],
        init_statuses=[waiting("migrate", reason="PodInitializing")],
    )
    assert cells("", "Pod", p)[2] == "Init:0/1"


def test_pod_init_crash_loop_counts_init_restarts():
    p = pod(
        phase="Pending",
        init=("migrate",),
        statuses=[waiting(reason="PodInitializing")],
        init_statuses=[waiting("migrate", "CrashLoopBackOff", restarts=4, last_finished=ago(minutes=2))],
        conditions=[{"type": "Initialized", "status": "False"}],
    )
    assert cells("", "Pod", p)[1:4] == ["0/1", "Init:CrashLoopBackOff", "4 (2m ago)"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        (terminated("migrate", code=1, reason="Error"), "Init:Error"),
        (terminated("migrate", code=2), "Init:ExitCode:2"),
        (terminated("migrate", code=137, signal=9), "Init:Signal:9"),
    ],
)
def test_pod_init_failure(term, expected):
    p = pod(
        phase="Pending", init=("migrate",), statuses=[waiting(reason="PodInitializing")], init_statuses=[term]
    )
    assert cells("", "Pod", p)[2] == expected


def test_pod_initializing_after_init_containers_finished():
    p = pod(
        phase="Pending",
        init=("migrate",),
        statuses=[waiting(reason="PodInitializing")],
        init_statuses=[terminated("migrate", reason="Completed")],
        conditions=[{"type": "Initialized", "status": "True"}],
    )
    assert cells("", "Pod", p)[1:3] == ["0/1", "PodInitializing"]


def test_pod_sidecar_counts_towards_ready_and_restarts():
    sidecar = running("proxy", restarts=1, last_finished=ago(minutes=7))
    p = pod(sidecars=("proxy",), statuses=[running("app")], init_statuses=[sidecar], conditions=READY)
    assert cells("", "Pod", p)[1:4] == ["2/2", "Running", "1 (7m ago)"]


def test_pod_sidecar_not_started_blocks_initialisation():
    p = pod(
        phase="Pending",
        sidecars=("proxy",),
        statuses=[waiting(reason="PodInitializing")],
        init_statuses=[
            {
                "name": "proxy",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"running": {"startedAt": ago(seconds=5)}},
            }
        ],
        conditions=[{"type": "Initialized", "status": "False"}],
    )
    assert cells("", "Pod", p)[1:3] == ["0/2", "Init:0/1"]


def test_pod_completed_has_row_condition():
    p = pod(phase="Succeeded", statuses=[terminated(reason="Completed")])
    assert cells("", "Pod", p)[1:4] == ["0/1", "Completed", "0"]
    t = table(printer_for("", "Pod"), [p], now=NOW)
    assert t["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_pod_error_exit_without_reason():
    p = pod(phase="Failed", statuses=[terminated(code=3)])
    assert cells("", "Pod", p)[2] == "ExitCode:3"
    p = pod(phase="Failed", statuses=[terminated(code=143, signal=15)])
    assert cells("", "Pod", p)[2] == "Signal:15"


def test_pod_completed_container_with_another_running_is_running_or_not_ready():
    statuses = [running("server"), terminated("job", reason="Completed")]
    p = pod(containers=("server", "job"), statuses=statuses, conditions=READY)
    assert cells("", "Pod", p)[1:3] == ["1/2", "Running"]
    p = pod(
        containers=("server", "job"), statuses=statuses, conditions=[{"type": "Ready", "status": "False"}]
    )
    assert cells("", "Pod", p)[2] == "NotReady"


def test_pod_evicted_shows_status_reason():
    p = pod(phase="Failed", status={"reason": "Evicted", "message": "low on memory"})
    assert cells("", "Pod", p)[2] == "Evicted"


def test_pod_terminating():
    p = pod(statuses=[running()], conditions=READY, metadata={"deletionTimestamp": ago(seconds=3)})
    assert cells("", "Pod", p)[1:3] == ["1/1", "Terminating"]


def test_terminal_pod_being_deleted_keeps_its_status():
    p = pod(
        phase="Succeeded",
        statuses=[terminated(reason="Completed")],
        metadata={"deletionTimestamp": ago(seconds=3)},
    )
    assert cells("", "Pod", p)[2] == "Completed"


def test_pod_on_lost_node_being_deleted_is_unknown():
    p = pod(
        statuses=[running()], metadata={"deletionTimestamp": ago(seconds=3)}, status={"reason": "NodeLost"}
    )
    assert cells("", "Pod", p)[2] == "Unknown"


def test_pod_scheduling_gated():
    p = pod(
        phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    )
    assert cells("", "Pod", p)[2] == "SchedulingGated"


def test_pod_readiness_gates_and_nominated_node():
    p = pod(
        statuses=[running()],
        conditions=[
            *READY,
            {"type": "example.com/lb", "status": "True"},
            {"type": "example.com/dns", "status": "False"},
        ],
    )
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]
    p["status"]["nominatedNodeName"] = "node-2"
    assert cells("", "Pod", p)[5:] == ["10.244.1.7", "node-1", "node-2", "1/2"]


def test_pod_ip_falls_back_to_pod_ip_field():
    p = pod(statuses=[running()])
    del p["status"]["podIPs"]
    assert cells("", "Pod", p)[5] == "10.244.1.7"


# --- nodes ----------------------------------------------------------------------------------


def node(name="node-1", *, ready="True", unschedulable=False, labels=None) -> dict:
    obj = {
        "metadata": {"name": name, "creationTimestamp": ago(days=2, hours=3), "labels": labels or {}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.35.0",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-18-amd64",
                "containerRuntimeVersion": "kubemini://0.1.0",
            },
        },
    }
    if ready is not None:
        obj["status"]["conditions"] = [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": ready},
        ]
    return obj


def test_node_not_ready_scheduling_disabled_with_roles():
    n = node(
        ready="False",
        unschedulable=True,
        labels={
            "node-role.kubernetes.io/control-plane": "",
            "node-role.kubernetes.io/worker": "",
            "kubernetes.io/role": "infra",
            "node-role.kubernetes.io/": "",
            "kubernetes.io/hostname": "node-1",
        },
    )
    assert cells("", "Node", n) == [
        "node-1",
        "NotReady,SchedulingDisabled",
        "control-plane,infra,worker",
        "2d3h",
        "v1.35.0",
        "172.18.0.2",
        "<none>",
        "Debian GNU/Linux 12 (bookworm)",
        "6.1.0-18-amd64",
        "kubemini://0.1.0",
    ]


def test_node_ready_unknown_and_roles_none():
    assert cells("", "Node", node())[1:3] == ["Ready", "<none>"]
    assert cells("", "Node", node(ready="Unknown"))[1] == "NotReady"
    assert cells("", "Node", node(ready=None))[1] == "Unknown"
    bare = {"metadata": {"name": "n"}, "status": {}}
    assert cells("", "Node", bare) == [
        "n",
        "Unknown",
        "<none>",
        "<unknown>",
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]


def test_node_headers():
    assert headers("", "Node") == ["Name", "Status", "Roles", "Age", "Version"]
    assert headers("", "Node", wide=True)[5:] == [
        "Internal-IP",
        "External-IP",
        "OS-Image",
        "Kernel-Version",
        "Container-Runtime",
    ]


# --- services and endpoints -------------------------------------------------------------------


def service(svc_type="ClusterIP", **spec) -> dict:
    base = {
        "type": svc_type,
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": "web", "tier": "front"},
    }
    base.update(spec)
    return {
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(hours=3, minutes=5)},
        "spec": base,
        "status": {},
    }


def test_service_cluster_ip():
    assert cells("", "Service", service()) == [
        "web",
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "80/TCP",
        "3h5m",
        "app=web,tier=front",
    ]


def test_service_node_port():
    svc = service(
        "NodePort",
        ports=[
            {"port": 80, "nodePort": 30080, "protocol": "TCP"},
            {"port": 53, "nodePort": 30053, "protocol": "UDP"},
        ],
    )
    assert cells("", "Service", svc)[1:5] == ["NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53:30053/UDP"]


def test_service_load_balancer_pending_and_assigned():
    svc = service("LoadBalancer", ports=[{"port": 443, "nodePort": 31443}])
    assert cells("", "Service", svc)[3:5] == ["<pending>", "443:31443/TCP"]
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}
    assert cells("", "Service", svc)[3] == "203.0.113.9,lb.example.com"
    svc["spec"]["externalIPs"] = ["198.51.100.1"]
    assert cells("", "Service", svc)[3] == "203.0.113.9,lb.example.com,198.51.100.1"


def test_service_headless_external_name_and_no_ports():
    assert cells("", "Service", service(clusterIP="None", clusterIPs=["None"]))[2] == "None"
    ext = service(
        "ExternalName", externalName="db.example.com", clusterIP="", clusterIPs=[], ports=[], selector=None
    )
    assert cells("", "Service", ext)[1:] == [
        "ExternalName",
        "<none>",
        "db.example.com",
        "<none>",
        "3h5m",
        "<none>",
    ]


def test_service_external_ips_on_cluster_ip():
    assert cells("", "Service", service(externalIPs=["1.2.3.4", "5.6.7.8"]))[3] == "1.2.3.4,5.6.7.8"


def test_endpoints_truncated_after_three():
    ep = {
        "metadata": {"name": "web", "creationTimestamp": ago(seconds=45)},
        "subsets": [
            {
                "addresses": [{"ip": f"10.244.0.{i}"} for i in range(1, 6)],
                "ports": [{"name": "http", "port": 8080}],
            }
        ],
    }
    assert cells("", "Endpoints", ep) == [
        "web",
        "10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 2 more...",
        "45s",
    ]


def test_endpoints_none_headless_and_ipv6():
    assert cells("", "Endpoints", {"metadata": {"name": "x"}})[1] == "<none>"
    ep = {
        "metadata": {"name": "x"},
        "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]},
            {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]},
        ],
    }
    assert cells("", "Endpoints", ep)[1] == "10.0.0.1,10.0.0.2,[fd00::1]:53"


def test_endpointslice():
    es = {
        "metadata": {"name": "web-abc12", "creationTimestamp": ago(minutes=3)},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9090}],
        "endpoints": [
            {"addresses": ["10.0.0.1"]},
            {"addresses": ["10.0.0.2", "10.0.0.3"]},
            {"addresses": ["10.0.0.4"]},
        ],
    }
    assert cells("discovery.k8s.io", "EndpointSlice", es) == [
        "web-abc12",
        "IPv4",
        "80,metrics,* + 1 more...",
        "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
        "3m",
    ]
    empty = {"metadata": {"name": "e"}, "addressType": "IPv6"}
    assert cells("discovery.k8s.io", "EndpointSlice", empty)[2:4] == ["<unset>", "<unset>"]


# --- simple core kinds ------------------------------------------------------------------------


def test_namespace_configmap_secret_serviceaccount():
    meta = {"name": "x", "creationTimestamp": ago(days=45)}
    assert cells("", "Namespace", {"metadata": meta, "status": {"phase": "Terminating"}}) == [
        "x",
        "Terminating",
        "45d",
    ]
    assert cells(
        "", "ConfigMap", {"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}
    ) == ["x", 3, "45d"]
    assert cells("", "ConfigMap", {"metadata": meta}) == ["x", 0, "45d"]
    secret = {"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert cells("", "Secret", secret) == ["x", "kubernetes.io/tls", 2, "45d"]
    assert headers("", "ServiceAccount") == ["Name", "Age"]
    assert cells("", "ServiceAccount", {"metadata": meta, "secrets": [{"name": "t"}]}) == ["x", "45d"]


def test_resource_quota_splits_requests_and_limits():
    rq = {
        "metadata": {"name": "compute", "creationTimestamp": ago(minutes=10)},
        "status": {
            "hard": {
                "pods": "10",
                "requests.cpu": "1",
                "limits.memory": "2Gi",
                "limits.cpu": "2",
                "requests.memory": "1Gi",
            },
            "used": {"pods": "3", "requests.cpu": "500m", "limits.cpu": "1"},
        },
    }
    assert headers("", "ResourceQuota") == ["Name", "Request", "Limit", "Age"]
    assert cells("", "ResourceQuota", rq) == [
        "compute",
        "pods: 3/10, requests.cpu: 500m/1, requests.memory: 0/1Gi",
        "limits.cpu: 1/2, limits.memory: 0/2Gi",
        "10m",
    ]


def test_limit_range_uses_default_convertor():
    lr = {"metadata": {"name": "limits", "creationTimestamp": "2025-05-01T08:00:00Z"}}
    assert printer_for("", "LimitRange") is DEFAULT_PRINTER
    assert headers("", "LimitRange") == ["Name", "Created At"]
    assert printer_for("", "LimitRange").columns[1].type == "date"
    assert cells("", "LimitRange", lr) == ["limits", "2025-05-01T08:00:00Z"]
    assert printer_for("example.com", "Widget") is DEFAULT_PRINTER


def test_persistent_volume_and_claim():
    pv = {
        "metadata": {"name": "pv-1", "creationTimestamp": ago(hours=1)},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "standard",
            "claimRef": {"namespace": "default", "name": "data"},
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }
    assert cells("", "PersistentVolume", pv) == [
        "pv-1",
        "10Gi",
        "RWO,RWX",
        "Retain",
        "Bound",
        "default/data",
        "standard",
        "<unset>",
        "",
        "60m",
        "Filesystem",
    ]
    pv["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert cells("", "PersistentVolume", pv)[4] == "Terminating"

    pvc = {
        "metadata": {"name": "data", "creationTimestamp": ago(hours=1)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
            "storageClassName": "standard",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Pending"},
    }
    assert cells("", "PersistentVolumeClaim", pvc) == [
        "data",
        "Pending",
        "",
        "",
        "",
        "standard",
        "<unset>",
        "60m",
        "Filesystem",
    ]
    pvc["spec"]["volumeName"] = "pv-1"
    pvc["status"] = {
        "phase": "Bound",
        "accessModes": ["ReadWriteOnce", "ReadWriteOncePod"],
        "capacity": {"storage": "10Gi"},
    }
    pvc["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "legacy"}
    assert cells("", "PersistentVolumeClaim", pvc)[1:7] == [
        "Bound",
        "pv-1",
        "10Gi",
        "RWO,RWOP",
        "legacy",
        "<unset>",
    ]


# --- events -----------------------------------------------------------------------------------


def test_core_event_cells_and_wide_columns():
    ev = {
        "metadata": {"name": "web-0.17f1", "namespace": "default"},
        "type": "Warning",
        "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
        "source": {"component": "kubelet", "host": "node-1"},
        "message": "Back-off restarting failed container\n",
        "firstTimestamp": ago(minutes=10),
        "lastTimestamp": ago(seconds=20),
        "count": 7,
    }
    assert headers("", "Event") == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert headers("", "Event", wide=True) == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Subobject",
        "Source",
        "Message",
        "First Seen",
        "Count",
        "Name",
    ]
    assert cells("", "Event", ev) == [
        "20s",
        "Warning",
        "BackOff",
        "pod/web-0",
        "spec.containers{app}",
        "kubelet, node-1",
        "Back-off restarting failed container",
        "10m",
        7,
        "web-0.17f1",
    ]


def test_core_event_new_style_fields():
    ev = {
        "metadata": {"name": "e"},
        "type": "Normal",
        "reason": "Scheduled",
        "eventTime": ago(seconds=90),
        "involvedObject": {"kind": "Node"},
        "reportingComponent": "default-scheduler",
        "message": "ok",
    }
    assert cells("", "Event", ev) == [
        "90s",
        "Normal",
        "Scheduled",
        "node",
        "",
        "default-scheduler",
        "ok",
        "90s",
        1,
        "e",
    ]


def test_events_k8s_io_event_maps_its_field_names():
    ev = {
        "metadata": {"name": "web-0.1"},
        "type": "Normal",
        "reason": "Pulled",
        "note": "Pulled image",
        "regarding": {"kind": "Pod", "name": "web-0"},
        "eventTime": ago(minutes=30),
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
        "series": {"count": 4, "lastObservedTime": ago(minutes=1)},
    }
    assert cells("events.k8s.io", "Event", ev) == [
        "60s",
        "Normal",
        "Pulled",
        "pod/web-0",
        "",
        "kubelet, node-1",
        "Pulled image",
        "30m",
        4,
        "web-0.1",
    ]


# --- apps -------------------------------------------------------------------------------------

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "fluent-bit:3"}]
    },
}


def test_deployment():
    d = {
        "metadata": {"name": "web", "creationTimestamp": ago(days=2)},
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable"]}],
            },
            "template": TEMPLATE,
        },
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert headers("apps", "Deployment") == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert cells("apps", "Deployment", d) == [
        "web",
        "2/3",
        3,
        2,
        "2d",
        "app,log",
        "nginx:1.27,fluent-bit:3",
        "app=web,track in (stable)",
    ]
    d["status"] = {}
    del d["spec"]["replicas"]
    assert cells("apps", "Deployment", d)[1:4] == ["0/1", 0, 0]


def test_replicaset_statefulset_daemonset():
    rs = {
        "metadata": {"name": "web-5d8f", "creationTimestamp": ago(hours=9)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
            "template": TEMPLATE,
        },
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    assert cells("apps", "ReplicaSet", rs) == [
        "web-5d8f",
        3,
        3,
        1,
        "9h",
        "app,log",
        "nginx:1.27,fluent-bit:3",
        "app=web,pod-template-hash=5d8f",
    ]
    sts = {
        "metadata": {"name": "db", "creationTimestamp": ago(minutes=4)},
        "spec": {"replicas": 3, "template": TEMPLATE},
        "status": {"readyReplicas": 3},
    }
    assert headers("apps", "StatefulSet", wide=True) == ["Name", "Ready", "Age", "Containers", "Images"]
    assert cells("apps", "StatefulSet", sts) == ["db", "3/3", "4m", "app,log", "nginx:1.27,fluent-bit:3"]
    ds = {
        "metadata": {"name": "agent", "creationTimestamp": ago(days=9)},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "agent", "image": "agent:2"}],
                }
            },
        },
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert cells("apps", "DaemonSet", ds) == [
        "agent",
        3,
        3,
        2,
        3,
        2,
        "kubernetes.io/os=linux",
        "9d",
        "agent",
        "agent:2",
        "app=agent",
    ]
    ds["spec"]["template"]["spec"].pop("nodeSelector")
    assert cells("apps", "DaemonSet", ds)[6] == "<none>"


def test_controller_revision():
    cr = {
        "metadata": {
            "name": "db-7c9",
            "creationTimestamp": ago(minutes=4),
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": True}
            ],
        },
        "revision": 2,
        "data": {},
    }
    assert cells("apps", "ControllerRevision", cr) == ["db-7c9", "statefulset.apps/db", 2, "4m"]
    cr["metadata"]["ownerReferences"][0]["controller"] = False
    assert cells("apps", "ControllerRevision", cr)[1] == "<none>"
    cr["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": True}]
    assert cells("apps", "ControllerRevision", cr)[1] == "pod/p"


# --- batch ------------------------------------------------------------------------------------


def job(**status) -> dict:
    return {
        "metadata": {"name": "pi", "creationTimestamp": ago(minutes=5)},
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}},
        },
        "status": status,
    }


def test_job_complete():
    j = job(
        succeeded=1,
        startTime=ago(minutes=5),
        completionTime=ago(minutes=4, seconds=21),
        conditions=[{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
    )
    assert headers("batch", "Job") == ["Name", "Status", "Completions", "Duration", "Age"]
    assert cells("batch", "Job", j) == [
        "pi",
        "Complete",
        "1/1",
        "39s",
        "5m",
        "pi",
        "perl:5.34",
        "batch.kubernetes.io/controller-uid=abc",
    ]


def test_job_running_failed_suspended_and_parallel():
    running_job = job(active=1, startTime=ago(minutes=3, seconds=2))
    assert cells("batch", "Job", running_job)[1:4] == ["Running", "0/1", "3m2s"]
    failed = job(
        failed=6,
        startTime=ago(minutes=5),
        conditions=[{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}],
    )
    assert cells("batch", "Job", failed)[1] == "Failed"
    suspended = job(conditions=[{"type": "Suspended", "status": "True"}])
    assert cells("batch", "Job", suspended)[1:4] == ["Suspended", "0/1", ""]
    parallel = job(succeeded=2)
    parallel["spec"] = {**parallel["spec"], "parallelism": 3}
    del parallel["spec"]["completions"]
    assert cells("batch", "Job", parallel)[2] == "2/1 of 3"
    deleting = job()
    deleting["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert cells("batch", "Job", deleting)[1] == "Terminating"


def test_cronjob():
    cj = {
        "metadata": {"name": "backup", "creationTimestamp": ago(days=3)},
        "spec": {
            "schedule": "*/5 * * * *",
            "suspend": False,
            "jobTemplate": {
                "spec": {"template": {"spec": {"containers": [{"name": "backup", "image": "backup:1"}]}}}
            },
        },
        "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": ago(minutes=2, seconds=30)},
    }
    assert headers("batch", "CronJob") == [
        "Name",
        "Schedule",
        "Timezone",
        "Suspend",
        "Active",
        "Last Schedule",
        "Age",
    ]
    assert cells("batch", "CronJob", cj) == [
        "backup",
        "*/5 * * * *",
        "<none>",
        "False",
        1,
        "2m30s",
        "3d",
        "backup",
        "backup:1",
        "<none>",
    ]
    cj["spec"].update(timeZone="Europe/Paris", suspend=True)
    cj["status"] = {}
    assert cells("batch", "CronJob", cj)[2:6] == ["Europe/Paris", "True", 0, "<none>"]


# --- other groups -----------------------------------------------------------------------------


def test_lease_pdb_priorityclass():
    lease = {
        "metadata": {"name": "kube-scheduler", "creationTimestamp": ago(hours=2)},
        "spec": {"holderIdentity": "host-a_1234"},
    }
    assert cells("coordination.k8s.io", "Lease", lease) == ["kube-scheduler", "host-a_1234", "120m"]
    assert cells("coordination.k8s.io", "Lease", {"metadata": {"name": "l"}, "spec": {}})[1] == ""

    pdb = {
        "metadata": {"name": "web", "creationTimestamp": ago(minutes=1)},
        "spec": {"minAvailable": 2},
        "status": {"disruptionsAllowed": 1},
    }
    assert cells("policy", "PodDisruptionBudget", pdb) == ["web", "2", "N/A", 1, "60s"]
    pdb["spec"] = {"maxUnavailable": "25%"}
    assert cells("policy", "PodDisruptionBudget", pdb)[1:3] == ["N/A", "25%"]

    pc = {
        "metadata": {"name": "high", "creationTimestamp": ago(days=1)},
        "value": 1000000,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    assert headers("scheduling.k8s.io", "PriorityClass") == [
        "Name",
        "Value",
        "Global-Default",
        "Age",
        "PreemptionPolicy",
    ]
    assert cells("scheduling.k8s.io", "PriorityClass", pc) == [
        "high",
        1000000,
        False,
        "24h",
        "PreemptLowerPriority",
    ]


# --- table assembly ---------------------------------------------------------------------------


def test_table_metadata_rows_carry_partial_object_metadata():
    p = pod(statuses=[running()], conditions=READY)
    t = table(printer_for("", "Pod"), [p], now=NOW)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1" and t["metadata"] == {}
    assert [c["name"] for c in t["columnDefinitions"]] == headers("", "Pod", wide=True)
    row = t["rows"][0]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": p["metadata"],
    }
    assert "conditions" not in row
    assert table(printer_for("", "Pod"), [p], now=NOW, include_object="")["rows"][0]["object"]["kind"] == (
        "PartialObjectMetadata"
    )


def test_table_include_object_object_and_none():
    p = pod(statuses=[running()])
    assert table(printer_for("", "Pod"), [p], now=NOW, include_object="Object")["rows"][0]["object"] is p
    assert "object" not in table(printer_for("", "Pod"), [p], now=NOW, include_object="None")["rows"][0]
    bare = {"metadata": {"name": "x"}, "spec": {}}
    obj = table(
        printer_for("", "Pod"), [bare], now=NOW, include_object="Object", api_version_kind=("v1", "Pod")
    )["rows"][0]["object"]
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Pod" and obj["metadata"] is bare["metadata"]
    assert "kind" not in bare
    with pytest.raises(ValueError, match="includeObject"):
        table(printer_for("", "Pod"), [p], now=NOW, include_object="Everything")


def test_table_accepts_naive_now_and_default_clock():
    p = pod(statuses=[running()])
    assert table(printer_for("", "Pod"), [p], now=NOW.replace(tzinfo=None))["rows"][0]["cells"][4] == "60m"
    assert table(printer_for("", "Pod"), [], now=None)["rows"] == []


def test_column_definitions_are_fresh_json():
    defs = column_definitions(printer_for("apps", "Deployment"))
    defs[0]["name"] = "changed"
    assert column_definitions(printer_for("apps", "Deployment"))[0] == {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": printer_for("apps", "Deployment").columns[0].description,
        "priority": 0,
    }


ALL_KINDS = [
    ("", "Pod"),
    ("", "Node"),
    ("", "Namespace"),
    ("", "Service"),
    ("", "Endpoints"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("", "Event"),
    ("events.k8s.io", "Event"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ControllerRevision"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("coordination.k8s.io", "Lease"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("policy", "PodDisruptionBudget"),
    ("scheduling.k8s.io", "PriorityClass"),
]


@pytest.mark.parametrize(("group", "kind"), ALL_KINDS)
def test_every_printer_handles_a_bare_object(group, kind):
    printer = printer_for(group, kind)
    assert printer.columns[0].name in ("Name", "Last Seen")
    assert sum(1 for c in printer.columns if c.format == "name") == 1
    row = printer.row({"metadata": {"name": "bare"}}, NOW)
    assert len(row) == len(printer.columns)
    assert "bare" in row


def test_printing_does_not_mutate_objects():
    objs = [
        pod(statuses=[waiting(reason="CrashLoopBackOff", restarts=2, last_finished=ago(seconds=30))]),
        pod(phase="Succeeded", statuses=[terminated(reason="Completed")]),
    ]
    before = copy.deepcopy(objs)
    table(printer_for("", "Pod"), objs, now=NOW, include_object="Object", api_version_kind=("v1", "Pod"))
    assert objs == before


def test_ten_thousand_pods_print_quickly():
    objs = [
        pod(
            f"web-{i}",
            statuses=[running(restarts=i % 3, last_finished=ago(minutes=i % 50 + 1))],
            conditions=READY,
        )
        for i in range(10_000)
    ]
    start = time.perf_counter()
    t = table(printer_for("", "Pod"), objs, now=NOW)
    elapsed = time.perf_counter() - start
    assert len(t["rows"]) == 10_000
    assert t["rows"][1]["cells"][3] == "1 (2m ago)"
    assert elapsed < 2.0, f"printing 10,000 pods took {elapsed:.2f}s"

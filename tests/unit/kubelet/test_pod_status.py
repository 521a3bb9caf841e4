"""The status the kubelet reports (kubelet.pods.status.compute_pod_status), fed exact runtime views."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from kubelet.pods.status import StatusInputs, compute_pod_status
from tests.unit.kubelet.podfixtures import container, pod, rec, sidecar, view

NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
NOW_TEXT = "2026-01-01T00:05:00Z"


def inputs(**kw) -> StatusInputs:
    return StatusInputs(runtime_name="fakecri", host_ip="192.168.1.10", now=NOW, qos_class="BestEffort", **kw)


def conditions(status: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def named(status: dict, name: str, key: str = "containerStatuses") -> dict:
    return next(s for s in status[key] if s["name"] == name)


# --- a pod coming up ---------------------------------------------------------------------------------


def test_a_pod_without_sandbox_is_pending_with_containers_creating():
    status = compute_pod_status(pod(), view(sandbox=False), inputs())
    assert status["phase"] == "Pending"
    assert named(status, "app")["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert named(status, "app")["ready"] is False and named(status, "app")["restartCount"] == 0
    assert conditions(status) == {"PodScheduled": "True", "PodReadyToStartContainers": "False",
                                  "Initialized": "True", "ContainersReady": "False", "Ready": "False"}
    assert condition(status, "Ready")["reason"] == "ContainersNotReady"
    assert condition(status, "Ready")["message"] == "containers with unready status: [app]"
    assert status["startTime"] == NOW_TEXT
    assert status["hostIP"] == "192.168.1.10" and status["hostIPs"] == [{"ip": "192.168.1.10"}]
    assert "podIP" not in status
    assert status["qosClass"] == "BestEffort" and status["observedGeneration"] == 1


def test_a_running_container_makes_the_pod_running_and_ready():
    record = rec("app", started=30)
    status = compute_pod_status(pod(), view(record), inputs())
    app = named(status, "app")
    assert status["phase"] == "Running"
    assert app["state"] == {"running": {"startedAt": "2026-01-01T00:00:30Z"}}
    assert app["ready"] is True and app["started"] is True and app["lastState"] == {}
    assert app["containerID"] == f"fakecri://{record.id}" and app["imageID"] == "sha256:abc"
    assert app["image"] == "busybox:1.36"
    assert set(conditions(status).values()) == {"True"}
    assert status["podIP"] == "10.88.0.7" and status["podIPs"] == [{"ip": "10.88.0.7"}]


def test_readiness_and_startup_verdicts_decide_ready_and_started():
    unready = compute_pod_status(pod(), view(rec("app")), inputs(ready=lambda name: False))
    assert named(unready, "app")["ready"] is False and named(unready, "app")["started"] is True
    assert conditions(unready)["ContainersReady"] == conditions(unready)["Ready"] == "False"
    assert unready["phase"] == "Running"
    starting = compute_pod_status(pod(), view(rec("app")), inputs(started=lambda name: False))
    assert named(starting, "app")["started"] is False and named(starting, "app")["ready"] is False


def test_a_readiness_gate_that_is_not_true_keeps_the_pod_unready():
    spec = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    status = compute_pod_status(spec, view(rec("app")), inputs())
    assert conditions(status)["ContainersReady"] == "True"
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Ready")["reason"] == "ReadinessGatesNotReady"
    spec["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"}]
    assert conditions(compute_pod_status(spec, view(rec("app")), inputs()))["Ready"] == "True"


# --- exits -------------------------------------------------------------------------------------------


def test_crash_loop_back_off_shows_as_waiting_with_the_last_termination():
    crashed = rec("app", "exited", attempt=2, exit_code=1, started=10, finished=11)
    waiting = {"app": ("CrashLoopBackOff", "back-off 20s restarting failed container=app pod=web_default(uid-1)")}
    status = compute_pod_status(pod(), view(crashed), inputs(waiting=waiting))
    app = named(status, "app")
    assert app["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": waiting["app"][1]}}
    assert app["lastState"]["terminated"]["exitCode"] == 1
    assert app["lastState"]["terminated"]["reason"] == "Error"
    assert app["lastState"]["terminated"]["finishedAt"] == "2026-01-01T00:00:11Z"
    assert app["restartCount"] == 2
    assert status["phase"] == "Running"  # restartPolicy Always: it is restarting


def test_a_restarted_container_shows_its_previous_instance_as_last_state():
    status = compute_pod_status(pod(), view(rec("app", "exited", exit_code=137, reason="OOMKilled"),
                                             rec("app", attempt=1)), inputs())
    app = named(status, "app")
    assert "running" in app["state"] and app["restartCount"] == 1
    assert app["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert app["lastState"]["terminated"]["exitCode"] == 137


def test_terminated_reasons_and_termination_message():
    ok = rec("app", "exited")
    status = compute_pod_status(pod(restart_policy="Never"), view(ok),
                                inputs(termination_messages={ok.id: "all done"}))
    terminated = named(status, "app")["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["message"] == "all done"
    assert terminated["containerID"] == f"fakecri://{ok.id}"


def test_phases_by_restart_policy():
    def phase(policy: str, *records) -> str:
        return compute_pod_status(pod(container("a"), container("b"), restart_policy=policy), view(*records),
                                  inputs())["phase"]

    assert phase("Never", rec("a", "exited"), rec("b", "exited")) == "Succeeded"
    assert phase("Never", rec("a", "exited"), rec("b", "exited", exit_code=2)) == "Failed"
    assert phase("Never", rec("a", "exited", exit_code=2), rec("b")) == "Running"
    assert phase("OnFailure", rec("a", "exited"), rec("b", "exited")) == "Succeeded"
    assert phase("OnFailure", rec("a", "exited"), rec("b", "exited", exit_code=1)) == "Running"
    assert phase("Always", rec("a", "exited"), rec("b", "exited")) == "Running"
    assert phase("Always", rec("a")) == "Pending"  # b has not been created yet


def test_a_succeeded_pod_is_not_ready_because_it_completed():
    status = compute_pod_status(pod(restart_policy="Never"), view(rec("app", "exited")), inputs())
    assert status["phase"] == "Succeeded"
    assert condition(status, "Ready")["reason"] == condition(status, "ContainersReady")["reason"] == "PodCompleted"


# --- init containers and sidecars --------------------------------------------------------------------


def test_init_containers_keep_the_pod_pending_and_uninitialized():
    spec = pod(container("main"), init=[container("init1"), container("init2")])
    status = compute_pod_status(spec, view(rec("init1", "exited")), inputs())
    assert status["phase"] == "Pending"
    assert condition(status, "Initialized")["reason"] == "ContainersNotInitialized"
    assert condition(status, "Initialized")["message"] == "containers with incomplete status: [init2]"
    assert named(status, "main")["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert named(status, "init1", "initContainerStatuses")["state"]["terminated"]["reason"] == "Completed"
    assert named(status, "init2", "initContainerStatuses")["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_a_failed_init_container_fails_the_pod_under_restart_policy_never():
    spec = pod(container("main"), init=[container("init1")], restart_policy="Never")
    status = compute_pod_status(spec, view(rec("init1", "exited", exit_code=3)), inputs())
    assert status["phase"] == "Failed"
    retried = compute_pod_status(pod(container("main"), init=[container("init1")]),
                                 view(rec("init1", "exited", exit_code=3)), inputs())
    assert retried["phase"] == "Pending"


def test_a_sidecar_counts_as_initialized_once_started_and_its_readiness_counts():
    spec = pod(container("main"), init=[sidecar("proxy")])
    starting = compute_pod_status(spec, view(rec("proxy")), inputs(started=lambda name: name != "proxy"))
    assert conditions(starting)["Initialized"] == "False"
    running = compute_pod_status(spec, view(rec("proxy"), rec("main")), inputs(ready=lambda name: name != "proxy"))
    assert conditions(running)["Initialized"] == "True"
    assert condition(running, "ContainersReady")["message"] == "containers with unready status: [proxy]"
    assert named(running, "proxy", "initContainerStatuses")["state"].keys() == {"running"}


def test_a_restarting_sidecar_does_not_send_an_initialized_pod_back_to_pending():
    spec = pod(container("main"), init=[sidecar("proxy")])
    runtime = view(rec("proxy", "exited", exit_code=1), rec("main"))
    status = compute_pod_status(spec, runtime, inputs(waiting={"proxy": ("CrashLoopBackOff", "back-off 10s")}))
    assert conditions(status)["Initialized"] == "True"
    assert status["phase"] == "Running"
    assert conditions(status)["Ready"] == "False"  # the sidecar is not ready


# --- terminal, carried-over fields ---------------------------------------------------------------------


def test_a_stopped_pod_ends_failed_unless_every_container_succeeded():
    killed = compute_pod_status(pod(), view(rec("app", "exited", exit_code=137), ready=False), inputs(),
                                terminal=True)
    assert killed["phase"] == "Failed"
    clean = compute_pod_status(pod(), view(rec("app", "exited"), ready=False), inputs(), terminal=True)
    assert clean["phase"] == "Succeeded"
    never_started = compute_pod_status(pod(), view(ready=False), inputs(), terminal=True)
    assert never_started["phase"] == "Failed"


def test_a_terminal_phase_is_never_changed_and_keeps_its_reason():
    spec = pod()
    spec["status"] = {"phase": "Failed", "reason": "OutOfcpu", "message": "Pod was rejected: ..."}
    status = compute_pod_status(spec, view(sandbox=False), inputs())
    assert (status["phase"], status["reason"], status["message"]) == ("Failed", "OutOfcpu", "Pod was rejected: ...")


def test_transition_times_move_only_when_a_condition_flips():
    spec = pod()
    first = compute_pod_status(spec, view(rec("app")), inputs())
    spec["status"] = copy.deepcopy(first)
    later = StatusInputs(runtime_name="fakecri", now=NOW + timedelta(minutes=1))
    same = compute_pod_status(spec, view(rec("app")), later)
    assert condition(same, "Ready")["lastTransitionTime"] == NOW_TEXT
    assert same["startTime"] == NOW_TEXT
    flipped = compute_pod_status(spec, view(rec("app")), StatusInputs(now=later.now, ready=lambda name: False))
    assert condition(flipped, "Ready")["lastTransitionTime"] == "2026-01-01T00:06:00Z"
    assert condition(flipped, "PodReadyToStartContainers")["lastTransitionTime"] == NOW_TEXT


def test_conditions_set_by_others_are_kept():
    spec = pod()
    spec["status"]["conditions"] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "then"},
                                    {"type": "DisruptionTarget", "status": "True"}]
    status = compute_pod_status(spec, view(rec("app")), inputs())
    assert [c["type"] for c in status["conditions"][:2]] == ["PodScheduled", "DisruptionTarget"]
    assert condition(status, "PodScheduled")["lastTransitionTime"] == "then"


def test_pod_ip_comes_from_the_sandbox_or_the_host_and_survives_a_stopped_sandbox():
    host = compute_pod_status(pod(hostNetwork=True), view(rec("app"), ip=""), inputs())
    assert host["podIP"] == "192.168.1.10"
    spec = pod()
    spec["status"]["podIP"] = "10.88.0.7"
    stopped = compute_pod_status(spec, view(rec("app", "exited"), ready=False), inputs())
    assert stopped["podIP"] == "10.88.0.7"


def test_the_pod_is_not_changed():
    spec = pod(container("main"), init=[sidecar("proxy")])
    before = copy.deepcopy(spec)
    compute_pod_status(spec, view(rec("proxy"), rec("main")), inputs())
    assert spec == before

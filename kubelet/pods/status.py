"""The pod status a user sees, computed from the runtime's view of the pod (pure).

Given the pod, its :class:`~kubelet.pods.runtimestate.PodRuntime`, the probe verdicts and the waiting
reasons the last sync left (CrashLoopBackOff, ErrImagePull, CreateContainerConfigError, ...), this module
builds ``status`` the way the kubelet's generateAPIPodStatus does: phase, the five conditions,
containerStatuses / initContainerStatuses with state, lastState, restartCount, ready and started, the pod
and host IPs, startTime, qosClass and observedGeneration. Nothing here talks to anything; unit tests feed
it records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelet.pods import podspec
from kubelet.pods.runtimestate import NANO, ContainerRecord, PodRuntime
from machinery.meta import format_rfc3339

TERMINAL_PHASES = ("Succeeded", "Failed")
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
RESIZE_CONDITIONS = ("PodResizePending", "PodResizeInProgress")
OWNED_CONDITIONS = frozenset(KUBELET_CONDITIONS + RESIZE_CONDITIONS)  # every other condition is someone else's


@dataclass
class StatusInputs:
    """Everything besides the pod and its runtime view that the status depends on."""

    runtime_name: str = "kubemini"
    host_ip: str = ""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    ready: Callable[[str], bool] = lambda name: True        # readiness verdict of a running container
    started: Callable[[str], bool] = lambda name: True      # startup verdict of a running container
    waiting: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # name → (reason, message)
    termination_messages: Mapping[str, str] = field(default_factory=dict)  # container id → message
    qos_class: str = ""
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name → resources in effect
    allocated: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name → allocatedResources
    extra_conditions: list[dict[str, Any]] = field(default_factory=list)      # e.g. resize conditions
    previous: Mapping[str, Any] | None = None  # the status last computed (fresher than the pod's, which lags)
    failure: tuple[str, str] | None = None     # (reason, message) of a pod failed for good, e.g. DeadlineExceeded


def _time(nanos: int) -> str | None:
    return format_rfc3339(datetime.fromtimestamp(nanos / NANO, UTC)) if nanos else None


def terminated_state(record: ContainerRecord, runtime_name: str, message: str = "") -> dict[str, Any]:
    reason = record.reason or ("Completed" if record.exit_code == 0 else "Error")
    state: dict[str, Any] = {"exitCode": record.exit_code, "reason": reason, "startedAt": _time(record.started_at),
                             "finishedAt": _time(record.finished_at), "containerID": f"{runtime_name}://{record.id}"}
    if message or record.message:
        state["message"] = message or record.message
    return state


def container_status(pod: Any, container: Any, runtime: PodRuntime, inputs: StatusInputs,
                     default_waiting: str) -> dict[str, Any]:
    name = container["name"]
    latest, previous = runtime.latest(name), runtime.previous(name)
    status: dict[str, Any] = {"name": name, "image": container.get("image", ""), "imageID": "",
                              "ready": False, "restartCount": 0, "started": False, "state": {}, "lastState": {}}
    waiting = inputs.waiting.get(name)
    if latest is not None:
        status["restartCount"] = latest.restart_count
        status["imageID"] = latest.image_ref
        status["containerID"] = f"{inputs.runtime_name}://{latest.id}"
    if latest is not None and latest.running:
        status["state"] = {"running": {"startedAt": _time(latest.started_at)}}
        status["started"] = inputs.started(name)
        status["ready"] = status["started"] and inputs.ready(name)
        if previous is not None and previous.exited:
            status["lastState"] = {"terminated": _terminated(previous, inputs)}
    elif latest is not None and latest.exited:
        # A regular init container that completed counts as ready, as in the kubelet.
        status["ready"] = _is_init(pod, name) and latest.exit_code == 0
        if waiting is not None:
            status["state"] = {"waiting": _waiting(*waiting)}
            status["lastState"] = {"terminated": _terminated(latest, inputs)}
        else:
            status["state"] = {"terminated": _terminated(latest, inputs)}
            if previous is not None and previous.exited:
                status["lastState"] = {"terminated": _terminated(previous, inputs)}
    else:
        reason, message = waiting or (default_waiting, "")
        status["state"] = {"waiting": _waiting(reason, message)}
        if previous is not None and previous.exited:
            status["lastState"] = {"terminated": _terminated(previous, inputs)}
    if name in inputs.allocated:
        status["allocatedResources"] = dict(inputs.allocated[name].get("requests") or {})
    if name in inputs.resources:
        status["resources"] = dict(inputs.resources[name])
    return status


def _is_init(pod: Any, name: str) -> bool:
    return any(c.get("name") == name and not podspec.is_sidecar(c) for c in podspec.init_containers(pod))


def _terminated(record: ContainerRecord, inputs: StatusInputs) -> dict[str, Any]:
    return terminated_state(record, inputs.runtime_name, inputs.termination_messages.get(record.id, ""))


def _waiting(reason: str, message: str) -> dict[str, Any]:
    return {"reason": reason, "message": message} if message else {"reason": reason}


# --- phase -------------------------------------------------------------------------------------------


def init_progress(pod: Any, runtime: PodRuntime, started: Callable[[str], bool]) -> tuple[list[str], bool]:
    """(init containers not yet done, whether a regular init container failed for good)."""
    incomplete: list[str] = []
    failed = False
    # Like the kubelet: once a regular container has started the pod stays initialized, so a sidecar
    # restarting later sends it back neither to Pending nor to Initialized=False.
    if any((r := runtime.latest(c["name"])) is not None and (r.running or r.exited)
           for c in podspec.regular_containers(pod)):
        return incomplete, failed
    for container in podspec.init_containers(pod):
        name = container["name"]
        latest = runtime.latest(name)
        if podspec.is_sidecar(container):
            if latest is None or not latest.running or not started(name):
                incomplete.append(name)
        elif latest is None or not latest.exited or latest.exit_code != 0:
            incomplete.append(name)
            if latest is not None and latest.exited and podspec.restart_policy(pod) == "Never":
                failed = True
    return incomplete, failed


def pod_phase(pod: Any, statuses: list[dict[str, Any]], incomplete_init: list[str], init_failed: bool,
              sidecars_running: int = 0) -> str:
    """The kubelet's getPhase over the regular containers' statuses; running sidecars keep a pod whose
    regular containers all finished Running until they are stopped."""
    if init_failed:
        return "Failed"
    if incomplete_init:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state, last = status["state"], status.get("lastState") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        elif "waiting" in state:
            if "terminated" in last:
                stopped += 1
            else:
                waiting += 1
    policy = podspec.restart_policy(pod)
    if waiting:
        return "Pending"
    if running or (sidecars_running and stopped):
        return "Running"
    if stopped and stopped == len(statuses):
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


# --- conditions --------------------------------------------------------------------------------------


def _condition(kind: str, ok: bool, now: str, reason: str = "", message: str = "",
               generation: int | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now}
    if generation is not None:
        cond["observedGeneration"] = generation
    if not ok and reason:
        cond["reason"] = reason
    if not ok and message:
        cond["message"] = message
    return cond


def pod_conditions(pod: Any, runtime: PodRuntime, phase: str, incomplete_init: list[str],
                   statuses: list[dict[str, Any]], init_statuses: list[dict[str, Any]],
                   now: str) -> list[dict[str, Any]]:
    generation = (pod.get("metadata") or {}).get("generation")
    sandbox = runtime.sandbox
    sandbox_ok = sandbox is not None and sandbox.ready
    conds = [_condition("PodReadyToStartContainers", sandbox_ok, now, generation=generation)]
    conds.append(_condition("Initialized", not incomplete_init, now, "ContainersNotInitialized",
                            f"containers with incomplete status: [{' '.join(incomplete_init)}]", generation))
    sidecar_names = {c["name"] for c in podspec.sidecars(pod)}
    unready = [s["name"] for s in init_statuses if s["name"] in sidecar_names and not s["ready"]]
    unready += [s["name"] for s in statuses if not s["ready"]]
    if phase == "Succeeded":
        ready, reason, message = False, "PodCompleted", ""
    else:
        ready, reason = not unready, "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    conds.append(_condition("ContainersReady", ready, now, reason, message, generation))
    gates = [g.get("conditionType") for g in (podspec.spec(pod).get("readinessGates") or [])]
    current = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
    missing = [g for g in gates if current.get(g) != "True"]
    if ready and missing:
        conds.append(_condition("Ready", False, now, "ReadinessGatesNotReady",
                                f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist.",
                                generation))
    else:
        conds.append(_condition("Ready", ready, now, reason, message, generation))
    return conds


def _keep_transition_times(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> None:
    before = {c.get("type"): c for c in old}
    for cond in new:
        prior = before.get(cond["type"])
        if prior is not None and prior.get("status") == cond["status"] and prior.get("lastTransitionTime"):
            cond["lastTransitionTime"] = prior["lastTransitionTime"]


# --- the whole status --------------------------------------------------------------------------------


def compute_pod_status(pod: Any, runtime: PodRuntime, inputs: StatusInputs, *,
                       terminal: bool = False) -> dict[str, Any]:
    """The status the kubelet reports for ``pod`` now (a new dict; ``pod`` is not changed). ``terminal``: the
    pod has been stopped for good (deleted or finished), so its phase is Succeeded or Failed."""
    old = pod.get("status") or {}
    previous = inputs.previous or old
    now = format_rfc3339(inputs.now)
    incomplete, init_failed = init_progress(pod, runtime, inputs.started)
    # Like the kubelet: with init containers, everything not yet created waits as PodInitializing.
    default_waiting = "PodInitializing" if podspec.init_containers(pod) else "ContainerCreating"
    init_statuses = [container_status(pod, c, runtime, inputs, default_waiting) for c in podspec.init_containers(pod)]
    statuses = [container_status(pod, c, runtime, inputs, default_waiting) for c in podspec.regular_containers(pod)]
    sidecars_running = sum(1 for c in podspec.sidecars(pod)
                           if (r := runtime.latest(c["name"])) is not None and r.running)
    phase = old.get("phase") if old.get("phase") in TERMINAL_PHASES else \
        pod_phase(pod, statuses, incomplete, init_failed, sidecars_running)
    if inputs.failure is not None:
        phase = "Failed"
    elif terminal and phase not in TERMINAL_PHASES:
        phase = "Succeeded" if statuses and all(
            (s["state"].get("terminated") or {}).get("exitCode") == 0 for s in statuses) else "Failed"
    conditions = pod_conditions(pod, runtime, phase, incomplete, statuses, init_statuses, now)
    conditions += inputs.extra_conditions
    _keep_transition_times(conditions, previous.get("conditions") or [])
    owned = OWNED_CONDITIONS | {c["type"] for c in inputs.extra_conditions}
    kept = [c for c in old.get("conditions") or [] if c.get("type") not in owned]
    if not any(c.get("type") == "PodScheduled" for c in kept):
        kept.insert(0, {"type": "PodScheduled", "status": "True", "lastTransitionTime": now})
    status: dict[str, Any] = {"phase": phase, "conditions": kept + conditions,
                              "startTime": old.get("startTime") or previous.get("startTime") or now,
                              "containerStatuses": statuses}
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    generation = (pod.get("metadata") or {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    if inputs.host_ip:
        status["hostIP"] = inputs.host_ip
        status["hostIPs"] = [{"ip": inputs.host_ip}]
    sandbox = runtime.sandbox
    pod_ip = (inputs.host_ip if podspec.host_network(pod) else sandbox.ip) if sandbox is not None else ""
    pod_ip = pod_ip or old.get("podIP") or ""
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    qos = inputs.qos_class or old.get("qosClass")
    if qos:
        status["qosClass"] = qos
    if inputs.failure is not None:
        status["reason"], status["message"] = inputs.failure
    for key in ("nominatedNodeName", "reason", "message"):
        if old.get(key) and key not in status and phase in TERMINAL_PHASES:
            status[key] = old[key]
    return status

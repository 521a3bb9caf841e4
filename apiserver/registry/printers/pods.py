"""The ``kubectl get pods`` columns, and the STATUS / READY / RESTARTS logic behind them.

Pods are the kind users list most and the one whose cells take real work: ``printPod`` walks init
containers, sidecars and containers to decide the STATUS reason (``Init:0/2``, ``CrashLoopBackOff``,
``Terminating``), counts ready containers and restarts and finds the last restart time, and finished
pods carry a ``Completed`` row condition. That logic is kept here on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from apiserver.registry.humanize import human_duration, parse_time
from apiserver.registry.printers.base import (
    NONE,
    Printer,
    age_cell,
    age_col,
    col,
    int_or_zero,
    name_cell,
    name_col,
    wide,
)


def _any_cond_true(conditions: Iterable[dict] | None, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions or ())


_POD_DONE_MESSAGES = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}

POD_COLUMNS = [
    name_col(),
    col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "The aggregate status of the containers in this pod."),
    col("Restarts", "The number of times the containers in this pod have been restarted and when the "
                    "last container in this pod has restarted."),
    age_col(),
    wide("IP", "podIP address allocated to the pod."),
    wide("Node", "NodeName indicates in which node this pod is scheduled."),
    wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node."),
    wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
]


def _terminated_reason(term: dict, prefix: str) -> str:
    reason = term.get("reason")
    if reason:
        return prefix + reason
    signal = term.get("signal") or 0
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{term.get('exitCode') or 0}"


def _last_termination(cs: dict) -> datetime | None:
    term = (cs.get("lastState") or {}).get("terminated")
    if term is None:
        return None
    return parse_time(term.get("finishedAt"))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if b is None:
        return a
    if a is None or a < b:
        return b
    return a


def pod_status_reason(pod: dict) -> tuple[str, int, int, datetime | None]:
    """The ``STATUS`` reason, ready containers, restarts and last restart time, like ``printPod``."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    conditions = status.get("conditions") or ()
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = spec.get("initContainers") or ()
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    ready = 0
    restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or ()):
        count = int_or_zero(cs.get("restartCount"))
        finished = _last_termination(cs)
        restarts += count
        last_restart = _later(last_restart, finished)
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and not term.get("exitCode"):
            continue
        if is_sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _any_cond_true(conditions, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or ()):
            restarts += int_or_zero(cs.get("restartCount"))
            last_restart = _later(last_restart, _last_termination(cs))
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                reason = _terminated_reason(term, "")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A pod whose last container completed but another still runs is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _any_cond_true(conditions, "Ready") else "NotReady"

    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, restarts, last_restart


def _pod_row(pod: dict, now: datetime) -> list:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    reason, ready, restarts, last_restart = pod_status_reason(pod)
    total = len(spec.get("containers") or ()) + sum(
        1 for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always")
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = status.get("podIPs") or ()
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or NONE
    gates = spec.get("readinessGates") or ()
    gates_cell = NONE
    if gates:
        by_type: dict[str, str] = {}
        for cond in status.get("conditions") or ():
            by_type.setdefault(cond.get("type"), cond.get("status"))
        true_count = sum(1 for g in gates if by_type.get(g.get("conditionType")) == "True")
        gates_cell = f"{true_count}/{len(gates)}"
    return [
        name_cell(pod), f"{ready}/{total}", reason, restarts_cell, age_cell(pod, now),
        pod_ip, spec.get("nodeName") or NONE, status.get("nominatedNodeName") or NONE, gates_cell,
    ]


def _pod_conditions(pod: dict) -> list[dict] | None:
    """Finished pods carry a ``Completed`` row condition, as kube-apiserver sends."""
    phase = (pod.get("status") or {}).get("phase")
    message = _POD_DONE_MESSAGES.get(phase)
    if message is None:
        return None
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


PRINTERS = {("", "Pod"): Printer(POD_COLUMNS, _pod_row, _pod_conditions)}

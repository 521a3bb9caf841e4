"""Container lifecycle hooks, postStart and preStop, run the way the Kubernetes kubelet runs them.

postStart runs right after the container started; the container is not Running (for the kubelet's status) until
it returns, and a failure means the kubelet kills the container (event ``FailedPostStartHook``) and lets the
restart policy decide. preStop runs before the stop signal, bounded by the termination grace period; whatever
time it uses is taken from that period, leaving at least 2 seconds for the container to stop, and its failure is
only reported (event ``FailedPreStopHook``), never raised. Handlers are the ones probes use (exec, httpGet) plus
``sleep``; an HTTP hook succeeds on any response (Kubernetes looks only at transport errors).

Callers must pass the pod with ``status.podIP`` set when a hook uses httpGet without a host.
Simplification: Kubernetes does not cancel a preStop hook that outlives the grace period (it just stops waiting);
we cancel our side of it (the CRI call, the HTTP request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from kubelet.cri.client import RuntimeClient
from kubelet.prober.handlers import run_action
from machinery.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

MINIMUM_GRACE_SECONDS = 2.0  # Kubernetes always leaves a container this long to stop after its preStop hook

EventSink = Callable[[Mapping, str, str, str], None]  # pod, type, reason, message


class HookError(Exception):
    """A postStart hook failed; ``message`` is the event text (reason ``FailedPostStartHook``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def run_post_start(pod: Mapping, container: Mapping, container_id: str, runtime: RuntimeClient, *,
                         clock: Clock = REAL_CLOCK, timeout: float = 0) -> None:
    """Run ``container``'s postStart handler, if any; raise :class:`HookError` when it fails.

    ``timeout`` seconds bound it (0: unbounded, like Kubernetes; the kubelet may cancel the call instead).
    """
    handler = _handler(container, "postStart")
    if handler is None:
        return
    succeeded, message = await _run(handler, pod, container, container_id, runtime, clock, timeout)
    if not succeeded:
        raise HookError(failure_message(handler, pod, container, message))


async def run_pre_stop(pod: Mapping, container: Mapping, container_id: str, runtime: RuntimeClient,
                       grace_seconds: float, *, clock: Clock = REAL_CLOCK,
                       on_event: EventSink | None = None) -> float:
    """Run ``container``'s preStop handler, if any, for at most ``grace_seconds``; return the grace left for
    the stop that follows (never less than 2 s). Failures are logged and sent to ``on_event``; never raised."""
    handler = _handler(container, "preStop")
    if handler is None or grace_seconds <= 0:
        return max(grace_seconds, MINIMUM_GRACE_SECONDS)
    started = clock.monotonic()
    hook = asyncio.ensure_future(_run(handler, pod, container, container_id, runtime, clock, 0))
    deadline = asyncio.ensure_future(clock.sleep(grace_seconds))
    try:
        await asyncio.wait((hook, deadline), return_when=asyncio.FIRST_COMPLETED)
    finally:
        deadline.cancel()
        if not hook.done():
            hook.cancel()
    if hook.done() and not hook.cancelled():
        succeeded, message = hook.result()
        if not succeeded:
            text = failure_message(handler, pod, container, message)
            log.warning("%s", text)
            if on_event is not None:
                _send(on_event, pod, "FailedPreStopHook", text)
    else:
        log.info("preStop hook of container %r in pod %s did not complete within the grace period (%gs)",
                 container.get("name"), pod_label(pod), grace_seconds)
    return max(grace_seconds - (clock.monotonic() - started), MINIMUM_GRACE_SECONDS)


def failure_message(handler: Mapping, pod: Mapping, container: Mapping, error: str) -> str:
    """The event text, in Kubernetes' words: ``Exec lifecycle hook ([sh -c x]) for Container "c" in Pod
    "name_namespace(uid)" failed - error: ...``."""
    target = f'for Container "{container.get("name", "")}" in Pod "{pod_label(pod)}" failed - error: {error}'
    if not isinstance(handler, Mapping):
        return f"Lifecycle hook {target}"
    if isinstance(handler.get("exec"), Mapping):
        command = handler["exec"].get("command") or []
        return f"Exec lifecycle hook ([{' '.join(map(str, command))}]) {target}"
    if isinstance(handler.get("httpGet"), Mapping):
        return f"HTTP lifecycle hook ({handler['httpGet'].get('path') or ''}) {target}"
    if isinstance(handler.get("sleep"), Mapping):
        return f"Sleep lifecycle hook ({handler['sleep'].get('seconds')}) {target}"
    return f"Lifecycle hook {target}"


def pod_label(pod: Mapping) -> str:
    """``name_namespace(uid)``, how the kubelet names a pod in messages."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def _handler(container: Mapping, field: str) -> Mapping | None:
    lifecycle = container.get("lifecycle")
    handler = lifecycle.get(field) if isinstance(lifecycle, Mapping) else None
    return handler if handler else None


async def _run(handler: Mapping, pod: Mapping, container: Mapping, container_id: str, runtime: RuntimeClient,
               clock: Clock, timeout: float) -> tuple[bool, str]:
    try:
        return await run_action(handler, pod=pod, container=container, container_id=container_id,
                                runtime=runtime, timeout=timeout, clock=clock, for_hook=True)
    except asyncio.CancelledError:
        raise
    except Exception as err:  # a runtime/transport surprise is a failed hook, not a kubelet crash
        log.debug("lifecycle hook raised", exc_info=True)
        return False, str(err) or type(err).__name__


def _send(on_event: EventSink, pod: Mapping, reason: str, message: str) -> None:
    try:
        on_event(pod, "Warning", reason, message)
    except Exception:
        log.exception("recording event %s failed", reason)

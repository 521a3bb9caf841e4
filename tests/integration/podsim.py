"""A stand-in kubelet for integration tests: pods in a namespace become Running and Ready.

No kubelet runs in the integration environment, so pods created by workload controllers would stay
Pending forever and nothing would ever be available. :class:`PodSimulator` watches one namespace's
pods and, ``ready_after`` seconds after a pod appears (0: at once), writes what a kubelet would
report for a healthy pod through ``pods/status``: phase Running, the Initialized /
ContainersReady / Ready / PodScheduled conditions True, a ready ``running`` status per container.
Pods being deleted are left alone; unscheduled pods are deleted at once by the API server anyway.

Use it as a context manager around the part of a test that needs ready pods::

    with PodSimulator(api.base_url, namespace):
        kubectl("apply", "-f", "-", input=manifest)
        ...

Two threads: one follows the watch (re-listing when it ends or expires), one writes statuses when
they are due. :meth:`hold` / :meth:`release` stop and resume marking, so a test can freeze a rollout.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class PodSimulator:
    def __init__(self, base_url: str | httpx.URL, namespace: str, *, ready_after: float = 0.0) -> None:
        self.base_url = str(base_url)
        self.namespace = namespace
        self.ready_after = ready_after
        self.marked: set[str] = set()  # names of pods this simulator made ready
        self._stop = threading.Event()
        self._held = threading.Event()
        self._due: list[tuple[float, int, str]] = []  # (when, seq, pod name)
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._response: httpx.Response | None = None  # the open watch, interrupted by stop()
        self._client = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(10.0, read=30.0))

    # --- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> PodSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for target, name in ((self._watch_loop, "podsim-watch"), (self._mark_loop, "podsim-mark")):
            thread = threading.Thread(target=target, name=f"{name}-{self.namespace}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._response is not None:
            interrupt(self._response)
        for thread in self._threads:
            thread.join(timeout=5)
        self._client.close()

    def hold(self) -> None:
        """Stop making pods ready (pods that appear meanwhile are marked after :meth:`release`)."""
        self._held.set()

    def release(self) -> None:
        self._held.clear()
        with self._wake:
            self._wake.notify_all()

    # --- watching ------------------------------------------------------------------------------------

    def _pods_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                listing = self._client.get(self._pods_path())
                listing.raise_for_status()
                body = listing.json()
                for pod in body.get("items") or ():
                    self._consider(pod)
                self._follow(body["metadata"]["resourceVersion"])
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
                if self._stop.is_set():
                    return
                log.debug("podsim %s: watch restarts after %r", self.namespace, exc)
                time.sleep(0.1)

    def _follow(self, resource_version: str) -> None:
        params = {"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": "30"}
        with self._client.stream("GET", self._pods_path(), params=params) as resp:
            resp.raise_for_status()
            self._response = resp
            if self._stop.is_set():
                return
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    self._consider(event["object"])
                elif event.get("type") == "ERROR":
                    return  # expired: relist

    def _consider(self, pod: Obj) -> None:
        if _needs_marking(pod):
            with self._wake:
                heapq.heappush(self._due, (time.monotonic() + self.ready_after, next(self._seq),
                                           pod["metadata"]["name"]))
                self._wake.notify_all()

    # --- marking -------------------------------------------------------------------------------------

    def _mark_loop(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._stop.is_set():
                    now = time.monotonic()
                    if self._due and self._due[0][0] <= now and not self._held.is_set():
                        _, _, name = heapq.heappop(self._due)
                        break
                    timeout = None if not self._due or self._held.is_set() else self._due[0][0] - now
                    self._wake.wait(timeout if timeout is None else max(timeout, 0.001))
                else:
                    return
            try:
                self._mark_ready(name)
            except httpx.HTTPError as exc:
                if not self._stop.is_set():
                    log.debug("podsim %s: marking %s failed: %r", self.namespace, name, exc)

    def _mark_ready(self, name: str) -> None:
        """GET, set a healthy running status, PUT pods/status; retried on conflicts."""
        path = f"{self._pods_path()}/{name}"
        for _ in range(10):
            resp = self._client.get(path)
            if resp.status_code == 404:
                return
            resp.raise_for_status()
            pod = resp.json()
            if not _needs_marking(pod):
                return
            pod["status"] = running_status(pod)
            put = self._client.put(f"{path}/status", json=pod)
            if put.status_code == 409:
                continue
            if put.status_code == 404:
                return
            put.raise_for_status()
            self.marked.add(name)
            return


def interrupt(response: httpx.Response) -> None:
    """Unblock a thread reading a streamed response: closing an httpx client from another thread does
    not interrupt a read in progress, shutting the socket down does."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _needs_marking(pod: Obj) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    return not (ready and status.get("phase") == "Running")


def running_status(pod: Obj) -> Obj:
    """What a kubelet reports for a pod whose containers all started and passed readiness."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec = pod.get("spec") or {}
    conditions = [{"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                  for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                               "PodScheduled")]
    containers = [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "started": True,
                   "restartCount": 0, "state": {"running": {"startedAt": now}}}
                  for c in spec.get("containers") or ()]
    return {**(pod.get("status") or {}), "phase": "Running", "conditions": conditions,
            "containerStatuses": containers, "startTime": (pod.get("status") or {}).get("startTime") or now,
            "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}], "hostIP": "10.0.0.100",
            "qosClass": (pod.get("status") or {}).get("qosClass") or "BestEffort"}

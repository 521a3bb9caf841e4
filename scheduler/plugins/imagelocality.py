"""ImageLocality: prefer nodes that already have the pod's container images, so pods start sooner.

Score, as kube-scheduler: for each container and init container whose image the node lists in
``status.images``, add ``int(size * nodes_with_image / all_nodes)`` (the spread factor keeps one node that
happens to hold a big image from attracting every pod); clamp the sum to [23 MiB, 1000 MiB * number of
containers] and map that range linearly onto 0..100 with integer division.

Image names: Kubernetes only appends ":latest" to an untagged, undigested name before looking it up.
Container runtimes report fully qualified names (``docker.io/library/nginx:1.27``), so when the
Kubernetes-normalized name is not on the node, kubemini also tries the Docker-normalized reference
(``nginx`` → ``docker.io/library/nginx:latest``); the first match counts, once per container. Per-pod
work (names, node counts from the snapshot) happens in PreScore.
"""

from __future__ import annotations

from typing import Any

from scheduler.framework import CycleState, Handle, NodeInfo, PodInfo, Status, skip

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB
MAX_NODE_SCORE = 100
PRE_SCORE_KEY = "PreScoreImageLocality"
DEFAULT_DOMAIN = "docker.io"


def normalized_image_name(name: str) -> str:
    """Kubernetes' normalizedImageName: add the ":latest" tag when the name has neither tag nor digest."""
    if name.rfind(":") <= name.rfind("/"):
        name += ":latest"
    return name


def docker_reference(name: str) -> str:
    """The fully qualified form container runtimes report: ``docker.io/library/`` for Docker Hub names."""
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = "library/" + remainder
    return normalized_image_name(f"{domain}/{remainder}")


def image_candidates(image: str) -> tuple[str, ...]:
    """The names to look an image up by, in order."""
    kube = normalized_image_name(image)
    full = docker_reference(image)
    return (kube,) if full == kube else (kube, full)


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    if max_threshold <= MIN_THRESHOLD:  # no containers: nothing to prefer
        return 0
    sum_scores = min(max(sum_scores, MIN_THRESHOLD), max_threshold)
    return MAX_NODE_SCORE * (sum_scores - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


class _ImageState:
    """Per pod: for each container, its candidate names with how many nodes have them; the node count."""

    __slots__ = ("containers", "num_containers", "total_nodes")

    def __init__(self, containers: tuple[tuple[tuple[str, int], ...], ...], num_containers: int,
                 total_nodes: int) -> None:
        self.containers = containers
        self.num_containers = num_containers
        self.total_nodes = total_nodes


class ImageLocality:
    NAME = "ImageLocality"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        self.handle = handle

    def _image_state(self, pod_info: PodInfo) -> _ImageState:
        snapshot = self.handle.snapshot() if self.handle is not None else None
        counts = snapshot.image_node_counts if snapshot is not None else {}
        spec = pod_info.pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
        per_container = []
        for container in containers:
            image = container.get("image") or ""
            # names no node has cannot score; dropping them keeps Score to dict lookups that may hit
            candidates = tuple((name, counts[name]) for name in image_candidates(image) if counts.get(name))
            if candidates:
                per_container.append(candidates)
        return _ImageState(tuple(per_container), len(containers), len(snapshot) if snapshot is not None else 0)

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        image_state = self._image_state(pod_info)
        if not image_state.containers:
            return skip()  # no node has any of the pod's images: every node would score the same
        state.write(PRE_SCORE_KEY, image_state)
        return None

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int:
        image_state: _ImageState | None = state.get(PRE_SCORE_KEY)
        if image_state is None:
            image_state = self._image_state(pod_info)
        total = image_state.total_nodes
        sizes = node_info.image_sizes
        total_score = 0
        if total:
            for candidates in image_state.containers:
                for name, num_nodes in candidates:
                    size = sizes.get(name)
                    if size is not None:
                        total_score += int(float(size) * (float(num_nodes) / float(total)))
                        break
        return calculate_priority(total_score, image_state.num_containers)

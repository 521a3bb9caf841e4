"""ImageLocality: image sizes scaled by spread, clamped to [23 MiB, 1000 MiB * containers], mapped to 0..100.

The cluster: three nodes; n1 has gcr.io/40 (40 MiB), gcr.io/300 (300 MiB) and gcr.io/common (500 MiB),
n2 has gcr.io/250 (250 MiB) and gcr.io/common, n3 has nginx (2000 MiB) under its fully qualified names.
Expected scores follow Kubernetes: sum of int(size * nodes_with_image / 3), then
100 * (sum - 23 MiB) // (1000 MiB * containers - 23 MiB).
"""

from __future__ import annotations

import pytest

from scheduler.framework import CycleState, Handle, NodeInfo, PodInfo, Snapshot
from scheduler.plugins.imagelocality import (
    MIN_THRESHOLD,
    PRE_SCORE_KEY,
    ImageLocality,
    calculate_priority,
    docker_reference,
    image_candidates,
    normalized_image_name,
)

Mi = 1024 * 1024


def image(size_mib: int, *names: str) -> dict:
    return {"names": list(names), "sizeBytes": size_mib * Mi}


def node(name: str, *images: dict) -> NodeInfo:
    return NodeInfo({"metadata": {"name": name}, "status": {"allocatable": {"pods": "110"}, "images": list(images)}})


def pod(*images: str, init: tuple[str, ...] = ()) -> PodInfo:
    spec: dict = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": im} for i, im in enumerate(init)]
    return PodInfo({"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": spec})


SNAPSHOT = Snapshot([
    node("n1", image(40, "gcr.io/40:latest", "gcr.io/40:v1"), image(300, "gcr.io/300:latest"),
         image(500, "gcr.io/common:latest")),
    node("n2", image(250, "gcr.io/250:latest"), image(500, "gcr.io/common:latest")),
    node("n3", image(2000, "docker.io/library/nginx:latest", "nginx:latest", "docker.io/library/nginx@sha256:abc")),
])


def plugin() -> ImageLocality:
    return ImageLocality({}, Handle(client=None, informers=None, clock=None, snapshot=lambda: SNAPSHOT))


CASES = [
    ("two images on n1", pod("gcr.io/40", "gcr.io/300"), {"n1": 4, "n2": 0, "n3": 0}),
    ("one image on n2", pod("gcr.io/250"), {"n1": 0, "n2": 6, "n3": 0}),
    ("spread 2/3", pod("gcr.io/common"), {"n1": 31, "n2": 31, "n3": 0}),
    ("spread and a second image", pod("gcr.io/common", "gcr.io/40"), {"n1": 16, "n2": 15, "n3": 0}),
    ("init containers count", pod("gcr.io/300", init=("gcr.io/40:v1",)), {"n1": 4, "n2": 0, "n3": 0}),
    ("docker.io/library form found, counted once", pod("nginx"), {"n1": 0, "n2": 0, "n3": 65}),
    ("docker.io/nginx normalizes too", pod("docker.io/nginx"), {"n3": 65}),
    ("digest is used as is", pod("docker.io/library/nginx@sha256:abc"), {"n3": 65}),
    ("other tag is another image", pod("gcr.io/40:v2"), {"n1": 0}),
    ("no image on any node", pod("example.com/none:1"), {"n1": 0, "n2": 0, "n3": 0}),
]


@pytest.mark.parametrize(("pod_info", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_score(pod_info, expected):
    pl = plugin()
    state = CycleState()
    status = pl.pre_score(state, pod_info, SNAPSHOT.node_infos)
    # PreScore skips the plugin when no node has any of the pod's images (every node would score 0)
    assert (status is not None and status.is_skip()) == (not any(expected.values()))
    for name, score in expected.items():
        node_info = SNAPSHOT.get(name)
        assert pl.score(state, pod_info, node_info) == score, name
        assert pl.score(CycleState(), pod_info, node_info) == score, name  # without PreScore


def test_pre_score_state_drops_images_no_node_has():
    state = CycleState()
    plugin().pre_score(state, pod("nginx", "example.com/none", "gcr.io/common"), [])
    image_state = state.read(PRE_SCORE_KEY)
    assert image_state.containers == ((("nginx:latest", 1), ("docker.io/library/nginx:latest", 1)),
                                      (("gcr.io/common:latest", 2),))
    assert (image_state.num_containers, image_state.total_nodes) == (3, 3)


@pytest.mark.parametrize(("total", "containers", "expected"), [
    (0, 1, 0),
    (MIN_THRESHOLD, 1, 0),
    (1000 * Mi, 1, 100),
    (5000 * Mi, 1, 100),  # clamped at 1000 MiB per container
    (5000 * Mi, 2, 100),
    (1000 * Mi, 2, 100 * (1000 * Mi - MIN_THRESHOLD) // (2000 * Mi - MIN_THRESHOLD)),  # 48
    (100 * Mi, 1, 7),
    (100 * Mi, 0, 0),  # a pod without containers cannot prefer anything
])
def test_calculate_priority(total, containers, expected):
    assert calculate_priority(total, containers) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("nginx", "nginx:latest"),
    ("nginx:1.27", "nginx:1.27"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("gcr.io/x/y@sha256:abc", "gcr.io/x/y@sha256:abc"),
])
def test_normalized_image_name(name, expected):
    assert normalized_image_name(name) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("user/app:1", "docker.io/user/app:1"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("gcr.io/x/y@sha256:abc", "gcr.io/x/y@sha256:abc"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
])
def test_docker_reference(name, expected):
    assert docker_reference(name) == expected


def test_candidates_put_the_kubernetes_name_first():
    assert image_candidates("nginx") == ("nginx:latest", "docker.io/library/nginx:latest")
    assert image_candidates("gcr.io/x:1") == ("gcr.io/x:1",)

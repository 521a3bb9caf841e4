"""pull() against an in-memory registry (httpx.MockTransport): auth flows, platform choice, errors, digests."""

from __future__ import annotations

import base64
import gzip
import re

import httpx
import pytest

from kubelet.runtime.errors import InvalidArgument, NotFound, RuntimeFailure, Unavailable
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.registry import pull
from kubelet.runtime.images.store import host_platform
from tests.unit.runtime.imagefixtures import OCI_INDEX, OCI_MANIFEST, BuiltIndex, build_image, file, layer_tar

ARCH = host_platform()[1]
REALM = "https://auth.example.com/token"


class FakeRegistry:
    """Serves manifests and blobs for one host, with bearer, basic or no auth, and records every request."""

    def __init__(self, host="reg.example.com", auth="bearer", user=("alice", "secret")):
        self.host, self.auth, self.user = host, auth, user
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[httpx.Request] = []
        self.fail_with: httpx.Response | Exception | None = None

    def push(self, repo, tag, item):
        images = item.images if isinstance(item, BuiltIndex) else [item]
        for image in images:
            self.blobs.update(image.blobs())
            self.manifests[(repo, image.manifest_digest)] = (image.manifest, OCI_MANIFEST)
        if isinstance(item, BuiltIndex):
            self.manifests[(repo, item.digest)] = (item.index, OCI_INDEX)
            top = (item.index, OCI_INDEX)
        else:
            top = (item.manifest, OCI_MANIFEST)
        self.manifests[(repo, tag)] = top

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.fail_with, Exception):
            raise self.fail_with
        if self.fail_with is not None:
            return self.fail_with
        if str(request.url).startswith(REALM):
            return self.token(request)
        if not self.authorized(request):
            scope = "repository:" + request.url.path.split("/v2/")[1].rsplit("/", 2)[0] + ":pull"
            challenge = (f'Bearer realm="{REALM}",service="{self.host}",scope="{scope}"' if self.auth == "bearer"
                         else 'Basic realm="registry"')
            return httpx.Response(401, headers={"WWW-Authenticate": challenge},
                                  json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        repo, kind, ref = request.url.path.removeprefix("/v2/").rsplit("/", 2)
        if kind == "manifests" and (repo, ref) in self.manifests:
            body, media = self.manifests[(repo, ref)]
            return httpx.Response(200, content=body, headers={"Content-Type": media})
        if kind == "blobs" and ref in self.blobs:
            return httpx.Response(200, content=self.blobs[ref])
        code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
        return httpx.Response(404, json={"errors": [{"code": code, "message": "unknown"}]})

    def authorized(self, request):
        header = request.headers.get("authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            return header == "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        return header == "Bearer good-token"

    def token(self, request):
        expected = "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        if request.headers.get("authorization") != expected:
            return httpx.Response(401, json={"details": "bad credentials"})
        return httpx.Response(200, json={"token": "good-token"})


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "images")


@pytest.fixture
def image():
    return build_image(layer_tar(file("etc/motd", "hi\n")), layer_tar(file("app", "app", 0o755)),
                       config={"Cmd": ["/app"]})


async def do_pull(store, registry, ref, auth=None, **kwargs):
    async with httpx.AsyncClient(transport=registry.transport()) as client:
        return await pull(store, ref, auth, client=client, **kwargs)


async def test_bearer_token_flow_with_username_and_password(store, image):
    registry = FakeRegistry()
    registry.push("team/app", "v1", image)
    pulled = await do_pull(store, registry, "reg.example.com/team/app:v1", {"username": "alice", "password": "secret"})
    assert pulled.id == image.id
    assert pulled.repo_tags == ["reg.example.com/team/app:v1"]
    assert pulled.repo_digests == [f"reg.example.com/team/app@{image.manifest_digest}"]
    assert pulled.layers == image.diff_ids and pulled.config == {"Cmd": ["/app"]}
    token_requests = [r for r in registry.requests if str(r.url).startswith(REALM)]
    assert len(token_requests) == 1
    assert token_requests[0].url.params["scope"] == "repository:team/app:pull"
    assert token_requests[0].url.params["service"] == "reg.example.com"
    assert all(r.url.scheme == "https" for r in registry.requests)
    assert (store.layer_dirs(pulled)[0] / "etc/motd").read_text() == "hi\n"
    assert store.get(f"reg.example.com/team/app@{image.manifest_digest}").id == image.id


async def test_auth_field_and_registry_token(store, image):
    registry = FakeRegistry()
    registry.push("app", "1", image)
    encoded = base64.b64encode(b"alice:secret").decode()
    assert (await do_pull(store, registry, "reg.example.com/app:1", {"auth": encoded})).id == image.id
    registry.requests.clear()
    await do_pull(store, registry, "reg.example.com/app:1", {"registry_token": "good-token"})
    assert not any(str(r.url).startswith(REALM) for r in registry.requests)


async def test_anonymous_token_and_bad_credentials(store, image):
    registry = FakeRegistry()
    registry.push("app", "1", image)
    with pytest.raises(RuntimeFailure, match="refused"):
        await do_pull(store, registry, "reg.example.com/app:1", {"username": "alice", "password": "wrong"})
    with pytest.raises(RuntimeFailure, match="refused"):
        await do_pull(store, registry, "reg.example.com/app:1")
    assert store.list() == []


async def test_basic_challenge(store, image):
    registry = FakeRegistry(auth="basic")
    registry.push("app", "1", image)
    assert (await do_pull(store, registry, "reg.example.com/app:1", {"username": "alice", "password": "secret"})).id \
        == image.id
    with pytest.raises(RuntimeFailure, match="requires credentials"):
        await do_pull(store, registry, "reg.example.com/app:1")


async def test_manifest_list_chooses_this_platform(store, image):
    other = build_image(layer_tar(file("other", "x")), arch="s390x" if ARCH != "s390x" else "amd64")
    index = BuiltIndex([other, image])
    registry = FakeRegistry(auth="none")
    registry.push("multi", "latest", index)
    pulled = await do_pull(store, registry, "reg.example.com/multi")
    assert pulled.id == image.id
    assert pulled.repo_digests == [f"reg.example.com/multi@{index.digest}"]
    fetched = {r.url.path for r in registry.requests}
    assert f"/v2/multi/blobs/{other.layer_digests[0]}" not in fetched
    assert store.has_blob(index.digest) and store.has_blob(image.manifest_digest)


async def test_pull_by_digest_gets_no_tag(store, image):
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    pulled = await do_pull(store, registry, f"reg.example.com/app@{image.manifest_digest}")
    assert pulled.repo_tags == [] and pulled.repo_digests == [f"reg.example.com/app@{image.manifest_digest}"]


async def test_manifest_that_does_not_match_the_requested_digest(store, image):
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    wrong = "sha256:" + "e" * 64
    registry.manifests[("app", wrong)] = (image.manifest, OCI_MANIFEST)
    with pytest.raises(InvalidArgument, match="does not match digest"):
        await do_pull(store, registry, f"reg.example.com/app@{wrong}")


async def test_tampered_blob_is_rejected_and_leaves_nothing(store, image):
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    registry.blobs[image.layer_digests[1]] = gzip.compress(layer_tar(file("evil", "x")))
    with pytest.raises(InvalidArgument, match=r"larger than|does not match|bytes"):
        await do_pull(store, registry, "reg.example.com/app:1")
    assert store.list() == []
    assert not store.has_blob(image.layer_digests[1])
    assert list(store.temp_dir.iterdir()) == []


async def test_blob_of_the_declared_size_but_wrong_content(store):
    blob = gzip.compress(layer_tar(file("a", "1")), mtime=0)
    image = build_image(layer_tar(file("a", "1")))
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    registry.blobs[image.layer_digests[0]] = bytes(b ^ 0xFF if i == 20 else b for i, b in enumerate(blob))
    with pytest.raises(InvalidArgument, match="does not match its digest"):
        await do_pull(store, registry, "reg.example.com/app:1")


async def test_unknown_tag_and_repository(store, image):
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    with pytest.raises(NotFound, match=re.escape('failed to pull image "reg.example.com/app:2": not found')):
        await do_pull(store, registry, "reg.example.com/app:2")
    with pytest.raises(NotFound, match="not found"):
        await do_pull(store, registry, "reg.example.com/nope/nothing")


async def test_missing_blob(store, image):
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    del registry.blobs[image.config_digest]
    with pytest.raises(NotFound, match=f"blob {image.config_digest} not found"):
        await do_pull(store, registry, "reg.example.com/app:1")


async def test_server_errors_and_connection_failures_are_unavailable(store):
    registry = FakeRegistry(auth="none")
    registry.fail_with = httpx.Response(503, text="down for maintenance")
    with pytest.raises(Unavailable, match=re.escape("reg.example.com answered 503")):
        await do_pull(store, registry, "reg.example.com/app:1")
    registry.fail_with = httpx.ConnectError("connection refused")
    with pytest.raises(Unavailable, match=re.escape("cannot reach registry reg.example.com")):
        await do_pull(store, registry, "reg.example.com/app:1")


async def test_transport_choice(store, image):
    for host, scheme, insecure in [("localhost:5000", "http", None), ("127.0.0.1:9999", "http", None),
                                   ("reg.example.com", "https", None), ("reg.example.com", "http", ["reg.example.com"]),
                                   ("myreg:8443", "http", ["myreg:8443"]), ("localhost:5000", "https", [])]:
        registry = FakeRegistry(host=host, auth="none")
        registry.push("app", "1", image)
        kwargs = {} if insecure is None else {"insecure_registries": insecure}
        await do_pull(store, registry, f"{host}/app:1", **kwargs)
        assert {r.url.scheme for r in registry.requests} == {scheme}, host


async def test_docker_hub_names(store, image):
    registry = FakeRegistry(host="registry-1.docker.io", auth="none")
    registry.push("library/busybox", "latest", image)
    pulled = await do_pull(store, registry, "busybox")
    assert registry.requests[0].url.host == "registry-1.docker.io"
    assert pulled.repo_tags == ["docker.io/library/busybox:latest"]
    assert store.get("busybox").id == image.id


async def test_second_pull_downloads_nothing_new(store, image):
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    registry.push("app", "2", image)
    await do_pull(store, registry, "reg.example.com/app:1")
    registry.requests.clear()
    pulled = await do_pull(store, registry, "reg.example.com/app:2")
    assert [r.url.path for r in registry.requests] == ["/v2/app/manifests/2"]
    assert pulled.repo_tags == ["reg.example.com/app:1", "reg.example.com/app:2"]


async def test_invalid_reference(store):
    with pytest.raises(InvalidArgument):
        await pull(store, "Not/Valid!")


async def test_manifest_request_accepts_all_manifest_kinds(store, image):
    registry = FakeRegistry(auth="none")
    registry.push("app", "1", image)
    await do_pull(store, registry, "reg.example.com/app:1")
    accept = registry.requests[0].headers["accept"]
    for media in ("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json",
                  "application/vnd.docker.distribution.manifest.v2+json"):
        assert media in accept

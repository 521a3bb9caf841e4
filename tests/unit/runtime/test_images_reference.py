"""Image reference parsing: the normalisation table docker and containerd agree on, and clear errors."""

from __future__ import annotations

import pytest

from kubelet.runtime.errors import InvalidArgument
from kubelet.runtime.images.reference import Reference, is_image_id, parse, parse_image_id

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(("ref", "registry", "repository", "tag", "digest", "full"), [
    ("busybox", "docker.io", "library/busybox", "latest", None, "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "docker.io/library/busybox:1.36"),
    ("foo/bar", "docker.io", "foo/bar", "latest", None, "docker.io/foo/bar:latest"),
    ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest"),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", "latest", None,
     "docker.io/library/nginx:latest"),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("localhost:5000/x:1", "localhost:5000", "x", "1", None, "localhost:5000/x:1"),
    ("localhost/x", "localhost", "x", "latest", None, "localhost/x:latest"),
    ("127.0.0.1:5000/a/b/c:v2.0-rc_1", "127.0.0.1:5000", "a/b/c", "v2.0-rc_1", None,
     "127.0.0.1:5000/a/b/c:v2.0-rc_1"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io", "pause", "3.10", None, "registry.k8s.io/pause:3.10"),
    ("kubemini.local/pause", "kubemini.local", "pause", "latest", None, "kubemini.local/pause:latest"),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", None, "[::1]:5000/x:latest"),
    (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST, f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", "docker.io", "library/busybox", "1", DIGEST, f"docker.io/library/busybox:1@{DIGEST}"),
    (f"localhost:5000/x@{DIGEST}", "localhost:5000", "x", None, DIGEST, f"localhost:5000/x@{DIGEST}"),
    ("my-org/my__app.v2", "docker.io", "my-org/my__app.v2", "latest", None, "docker.io/my-org/my__app.v2:latest"),
])
def test_parse_normalises(ref, registry, repository, tag, digest, full):
    parsed = parse(ref)
    assert parsed == Reference(registry, repository, tag, digest)
    assert parsed.string() == full
    assert parsed.name == f"{registry}/{repository}"


def test_api_host_maps_docker_hub_only():
    assert parse("busybox").api_host == "registry-1.docker.io"
    assert parse("localhost:5000/x").api_host == "localhost:5000"
    assert parse("quay.io/a/b").api_host == "quay.io"


def test_tagged_and_digested_spellings():
    ref = parse(f"busybox:1@{DIGEST}")
    assert ref.tagged() == "docker.io/library/busybox:1"
    assert ref.digested() == f"docker.io/library/busybox@{DIGEST}"
    assert parse("busybox").digested() is None
    assert parse(f"busybox@{DIGEST}").tagged() is None


@pytest.mark.parametrize(("ref", "message"), [
    ("", "empty"),
    ("   ", "empty"),
    ("Busybox", "lowercase"),
    ("foo/Bar", "lowercase"),
    ("busybox:", "invalid tag"),
    ("busybox:-x", "invalid tag"),
    ("busybox:" + "t" * 129, "invalid tag"),
    ("busybox@sha256:abc", "64"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@", "malformed digest"),
    ("foo//bar", "invalid repository component"),
    ("foo/bar/", "invalid repository component"),
    ("-foo", "invalid repository component"),
    ("foo bar", "invalid repository component"),
    ("bad_host.io:x/y", "invalid registry host"),
    (HEX, "image id"),
    ("a/" + "b" * 260, "longer than"),
])
def test_invalid_references_are_rejected_with_a_reason(ref, message):
    with pytest.raises(InvalidArgument, match=message):
        parse(ref)


def test_image_ids():
    assert parse_image_id(DIGEST) == DIGEST
    assert parse_image_id(HEX) == DIGEST
    assert is_image_id(DIGEST) and is_image_id(HEX)
    assert parse_image_id("busybox") is None
    assert parse_image_id("sha256:" + "a" * 63) is None
    assert parse_image_id("A" * 64) is None  # ids are lower-case hex

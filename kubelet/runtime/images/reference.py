"""Image references: parse and normalise them the way docker and containerd do.

The kubelet hands the runtime whatever the user wrote in ``spec.containers[].image`` (``busybox``,
``nginx:1.27``, ``localhost:5000/app@sha256:…``) or an image id it got back earlier. Tags and digests must be
compared in one canonical spelling (``docker.io/library/busybox:latest``), and a puller needs the registry host,
the repository path and the tag or digest separately. This module does that parsing, nothing else:

* :func:`parse` - a reference to a :class:`Reference` (``busybox`` → ``docker.io/library/busybox:latest``);
* :func:`parse_image_id` - ``sha256:<64 hex>`` or a bare 64-hex id to the canonical ``sha256:<hex>`` form.

The grammar is docker's distribution/reference grammar (lower-case path components separated by ``.``, ``_``,
``__`` or dashes; a domain is recognised by a ``.``, a ``:`` or the name ``localhost``; official images live
under ``library/``). Only ``sha256`` digests are accepted: it is the only algorithm the store keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubelet.runtime.errors import InvalidArgument

__all__ = ["DEFAULT_REGISTRY", "Reference", "is_image_id", "parse", "parse_image_id"]

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# docker.io is a name, not a host: the registry API for it is served here.
_DOCKER_HUB_API_HOST = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io"}
_NAME_MAX = 255

_HEX64 = re.compile(r"[a-f0-9]{64}")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference. ``tag`` and ``digest`` may both be set (``name:tag@sha256:…``)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository``: what repo tags and repo digests are prefixed with."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host (and port) serving the registry v2 API for this reference."""
        return _DOCKER_HUB_API_HOST if self.registry == DEFAULT_REGISTRY else self.registry

    def string(self) -> str:
        """The full normalised reference: ``docker.io/library/busybox:latest``, ``name@sha256:…``."""
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def tagged(self) -> str | None:
        """``name:tag`` (the repo-tag spelling), or None for a digest-only reference."""
        return f"{self.name}:{self.tag}" if self.tag else None

    def digested(self) -> str | None:
        """``name@digest`` (the repo-digest spelling), or None for a reference without a digest."""
        return f"{self.name}@{self.digest}" if self.digest else None

    def __str__(self) -> str:
        return self.string()


def parse_image_id(value: str) -> str | None:
    """``sha256:<hex>`` for a full image id (``sha256:<64 hex>`` or a bare 64-hex id), else None."""
    value = value.strip()
    if value.startswith("sha256:"):
        value = value[len("sha256:"):]
    return f"sha256:{value}" if _HEX64.fullmatch(value) else None


def is_image_id(value: str) -> bool:
    """Whether ``value`` is a full image id rather than a reference."""
    return parse_image_id(value) is not None


def parse(ref: str) -> Reference:
    """Parse and normalise ``ref``; raise :class:`InvalidArgument` saying what is wrong with it.

    ``busybox`` → ``docker.io/library/busybox:latest``; ``foo/bar`` → ``docker.io/foo/bar:latest``;
    ``localhost:5000/x:1`` keeps its registry; a reference without tag or digest gets the ``latest`` tag.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidArgument("invalid image reference: empty")
    original = ref
    ref = ref.strip()
    name, digest = _split_digest(ref, original)
    name, tag = _split_tag(name, original)
    if _HEX64.fullmatch(name):
        raise InvalidArgument(
            f"invalid image reference {original!r}: a 64-character hex string is an image id, not a repository name"
        )
    registry, repository = _split_domain(name, original)
    if len(f"{registry}/{repository}") > _NAME_MAX:
        raise InvalidArgument(f"invalid image reference {original!r}: repository name longer than {_NAME_MAX}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def _split_digest(ref: str, original: str) -> tuple[str, str | None]:
    if "@" not in ref:
        return ref, None
    name, _, digest = ref.partition("@")
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise InvalidArgument(f"invalid image reference {original!r}: malformed digest {digest!r}")
    algorithm, encoded = match.groups()
    if algorithm != "sha256":
        raise InvalidArgument(f"invalid image reference {original!r}: unsupported digest algorithm {algorithm!r}")
    if not _HEX64.fullmatch(encoded):
        raise InvalidArgument(f"invalid image reference {original!r}: a sha256 digest needs 64 lower-case hex digits")
    return name, digest


def _split_tag(name: str, original: str) -> tuple[str, str | None]:
    colon = name.rfind(":")
    if colon < 0 or "/" in name[colon + 1:]:
        return name, None  # no colon, or the colon belongs to a registry port
    tag = name[colon + 1:]
    if not _TAG.fullmatch(tag):
        raise InvalidArgument(f"invalid image reference {original!r}: invalid tag {tag!r}")
    return name[:colon], tag


def _split_domain(name: str, original: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.fullmatch(first):
            raise InvalidArgument(f"invalid image reference {original!r}: invalid registry host {first!r}")
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry in _DOCKER_HUB_ALIASES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not path:
        raise InvalidArgument(f"invalid image reference {original!r}: empty repository name")
    for component in path.split("/"):
        if _PATH_COMPONENT.fullmatch(component):
            continue
        if component.lower() != component and _PATH_COMPONENT.fullmatch(component.lower()):
            raise InvalidArgument(f"invalid image reference {original!r}: repository name must be lowercase")
        raise InvalidArgument(f"invalid image reference {original!r}: invalid repository component {component!r}")
    return registry, path

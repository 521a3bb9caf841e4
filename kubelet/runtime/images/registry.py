"""Pull images from a registry (distribution API v2) into the store: the heart of CRI PullImage.

The kubelet asks the runtime to pull ``spec.containers[].image`` with optional credentials from an image pull
secret. :func:`pull` resolves the reference to a manifest (choosing this machine's platform from a manifest list
or OCI index), downloads the config and layers concurrently (a bounded number at a time) while hashing them,
verifies every digest and size, then registers the image through :class:`ImageStore` (unpacking in a thread).

Transport: HTTPS, except plain HTTP for registries named in ``insecure_registries`` (by default ``localhost`` and
``127.0.0.1``, any port). Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Bearer`` (a
token from the realm, asked for with the pull scope and basic credentials or an identity token) or ``Basic``.
``auth`` takes the CRI AuthConfig fields: ``username``/``password``, ``auth`` (base64 ``user:pass``),
``identity_token`` or ``registry_token``.

Errors: an unknown repository, tag, digest or platform → NotFound (``failed to pull image "x": not found``);
a registry that cannot be reached (or answers 5xx/429) → Unavailable naming the host; content that does not
match its digest or size → InvalidArgument; refused credentials → RuntimeFailure.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Iterable

import httpx

from kubelet.runtime.errors import InvalidArgument, NotFound, RuntimeFailure, Unavailable
from kubelet.runtime.images.reference import Reference, parse
from kubelet.runtime.images.store import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    ImageStore,
    choose_platform,
    digest_hex,
    load_json_object,
    manifest_parts,
    media_type_of,
    sha256_digest,
)

__all__ = ["DEFAULT_INSECURE_REGISTRIES", "pull"]

DEFAULT_INSECURE_REGISTRIES = ("localhost", "127.0.0.1")
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
_MAX_MANIFEST = 4 << 20
_NOT_FOUND_CODES = {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"}
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_USER_AGENT = "kubemini/0.1"


async def pull(store: ImageStore, ref: str, auth: dict[str, str] | None = None, *,
               insecure_registries: Iterable[str] = DEFAULT_INSECURE_REGISTRIES,
               client: httpx.AsyncClient | None = None, max_concurrent_downloads: int = 3) -> Image:
    """Pull ``ref`` into ``store`` and return the image. Its repo tags get the normalised ``name:tag`` (not for a
    digest reference) and its repo digests ``name@<digest of the manifest or index the reference named>``.
    ``client`` lets tests inject a transport; without it a client is made and closed here."""
    reference = parse(ref)
    own_client = client is None
    if client is None:
        client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0),
                                   headers={"User-Agent": _USER_AGENT})
    try:
        session = _Session(client, reference, ref, auth, tuple(insecure_registries))
        return await _pull(store, session, reference, max(1, max_concurrent_downloads))
    except httpx.TransportError as err:
        raise Unavailable(f'failed to pull image "{ref}": cannot reach registry {reference.api_host}: '
                          f"{err or type(err).__name__}") from err
    finally:
        if own_client:
            await client.aclose()


async def _pull(store: ImageStore, session: _Session, reference: Reference, concurrency: int) -> Image:
    top_digest, data, media = await session.manifest(reference.digest or reference.tag or "latest",
                                                     expected=reference.digest)
    manifests = [(top_digest, data)]
    doc = load_json_object(data, f'image "{session.ref}" manifest')
    if media_type_of(doc, media) in INDEX_MEDIA_TYPES:
        desc = choose_platform(doc, f'image "{session.ref}"')
        digest, data, media = await session.manifest(desc.get("digest", ""), expected=desc.get("digest", ""))
        manifests.append((digest, data))
        doc = load_json_object(data, f'image "{session.ref}" manifest {digest}')
        if media_type_of(doc, desc.get("mediaType") or media) in INDEX_MEDIA_TYPES:
            raise InvalidArgument(f'failed to pull image "{session.ref}": nested image indexes are not supported')
    config, layers = manifest_parts(doc, f'image "{session.ref}"')
    sizes = {config: doc["config"].get("size")} | {d["digest"]: d.get("size") for d in doc["layers"]}
    with store.hold(*sizes, *(d for d, _ in manifests)):
        await _download_all(store, session, sizes, concurrency)
        for digest, blob in manifests:
            store.add_blob(blob, digest)
        tags = [reference.tagged()] if reference.tag and not reference.digest else []
        return await asyncio.to_thread(
            store.commit_image, config, layers, repo_tags=tags, repo_digests=[f"{reference.name}@{top_digest}"],
            blobs=[d for d, _ in manifests])


async def _download_all(store: ImageStore, session: _Session, sizes: dict[str, int | None], limit: int) -> None:
    """Fetch the blobs the store lacks, at most ``limit`` at a time; the first failure cancels the rest."""
    bound = asyncio.Semaphore(limit)

    async def fetch(digest: str, size: int | None) -> None:
        async with bound:
            await _download(store, session, digest, size)

    tasks = [asyncio.ensure_future(fetch(d, s)) for d, s in sizes.items() if not store.has_blob(d)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _download(store: ImageStore, session: _Session, digest: str, size: int | None) -> None:
    sink = _BlobSink(store, digest, size, session.ref)
    try:
        async with session.stream(f"/blobs/{digest}", what=f"blob {digest}") as response:
            async for chunk in response.aiter_bytes():
                sink.write(chunk)
        sink.commit()
    finally:
        sink.discard()


class _BlobSink:
    """A download in progress: written to the store's temp dir and hashed as it arrives."""

    def __init__(self, store: ImageStore, digest: str, size: int | None, ref: str) -> None:
        digest_hex(digest)
        self._store, self._digest, self._size, self._ref = store, digest, size, ref
        self._path = store.new_temp_path()
        self._file = open(self._path, "wb")  # noqa: SIM115 - closed by commit() or discard()
        self._hasher = hashlib.sha256()
        self._count = 0

    def write(self, chunk: bytes) -> None:
        self._count += len(chunk)
        if self._size is not None and self._count > self._size:
            raise InvalidArgument(f'failed to pull image "{self._ref}": blob {self._digest} is larger than '
                                  f"its declared {self._size} bytes")
        self._hasher.update(chunk)
        self._file.write(chunk)

    def commit(self) -> None:
        self._file.close()
        if self._size is not None and self._count != self._size:
            raise InvalidArgument(f'failed to pull image "{self._ref}": blob {self._digest} has {self._count} '
                                  f"bytes, its descriptor says {self._size}")
        actual = "sha256:" + self._hasher.hexdigest()
        if actual != self._digest:
            raise InvalidArgument(f'failed to pull image "{self._ref}": blob {self._digest} does not match its '
                                  f"digest (content is {actual})")
        self._store.add_blob_file(self._path, self._digest, actual=actual)

    def discard(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


class _Session:
    """One repository on one registry: URLs, the transport choice and the authorization to send."""

    def __init__(self, client: httpx.AsyncClient, reference: Reference, ref: str, auth: dict[str, str] | None,
                 insecure: tuple[str, ...]) -> None:
        self.client = client
        self.ref = ref
        self.host = reference.api_host
        scheme = "http" if _is_insecure(self.host, insecure) else "https"
        self.base = f"{scheme}://{self.host}/v2/{reference.repository}"
        self.scope = f"repository:{reference.repository}:pull"
        self.username, self.password, self.identity_token, registry_token = _credentials(auth or {})
        self.authorization = f"Bearer {registry_token}" if registry_token else None

    async def manifest(self, tag_or_digest: str, expected: str | None) -> tuple[str, bytes, str | None]:
        """``(digest, body, media type)`` of a manifest or index, its digest checked against ``expected``."""
        what = f"manifest {tag_or_digest}"
        async with self.stream(f"/manifests/{tag_or_digest}", what=what, accept=MANIFEST_ACCEPT) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > _MAX_MANIFEST:
                    raise InvalidArgument(f'failed to pull image "{self.ref}": {what} is too large')
            media = response.headers.get("content-type", "").split(";")[0].strip() or None
            served = response.headers.get("docker-content-digest")
        digest = sha256_digest(bytes(body))
        for claimed in (expected, served):
            if claimed and claimed != digest:
                raise InvalidArgument(f'failed to pull image "{self.ref}": {what} does not match digest {claimed} '
                                      f"(content is {digest})")
        return digest, bytes(body), media

    def stream(self, path: str, *, what: str, accept: str | None = None) -> _Streamed:
        return _Streamed(self, path, what, accept)

    async def open(self, path: str, what: str, accept: str | None) -> httpx.Response:
        """Send a GET (authenticating once if challenged) and return the streaming response, status 200."""
        response = await self._send(path, accept)
        if response.status_code == 401:
            challenge = response.headers.get("www-authenticate", "")
            await response.aclose()
            await self._authenticate(challenge)
            response = await self._send(path, accept)
        if response.status_code != 200:
            try:
                await response.aread()
            finally:
                await response.aclose()
            self._raise_for(response, what)
        return response

    async def _send(self, path: str, accept: str | None) -> httpx.Response:
        headers = {"User-Agent": _USER_AGENT}
        if accept:
            headers["Accept"] = accept
        if self.authorization:
            headers["Authorization"] = self.authorization
        request = self.client.build_request("GET", self.base + path, headers=headers)
        return await self.client.send(request, stream=True, follow_redirects=True)

    async def _authenticate(self, challenge: str) -> None:
        scheme = challenge.split(" ", 1)[0].lower()
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        if scheme == "basic" and self.username is not None:
            user_pass = f"{self.username}:{self.password or ''}".encode()
            self.authorization = "Basic " + base64.b64encode(user_pass).decode()
            return
        if scheme != "bearer" or not params.get("realm"):
            raise RuntimeFailure(f'failed to pull image "{self.ref}": registry {self.host} requires credentials '
                                 f"({challenge or 'no challenge'})")
        query = {"scope": params.get("scope") or self.scope}
        if params.get("service"):
            query["service"] = params["service"]
        if self.identity_token:
            response = await self.client.post(params["realm"], data={
                **query, "grant_type": "refresh_token", "refresh_token": self.identity_token,
                "client_id": "kubemini"})
        else:
            basic = (self.username, self.password or "") if self.username is not None else None
            response = await self.client.get(params["realm"], params=query, auth=basic)
        if response.status_code != 200:
            raise RuntimeFailure(f'failed to pull image "{self.ref}": token server {params["realm"]} refused '
                                 f"(HTTP {response.status_code}): {response.text[:200]}")
        body = load_json_object(response.content, f"token from {params['realm']}")
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RuntimeFailure(f'failed to pull image "{self.ref}": token server {params["realm"]} sent no token')
        self.authorization = f"Bearer {token}"

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        codes, messages = _registry_errors(response)
        detail = "; ".join(messages) or response.reason_phrase
        if status == 404 or codes & _NOT_FOUND_CODES:
            if what.startswith("manifest"):
                raise NotFound(f'failed to pull image "{self.ref}": not found')
            raise NotFound(f'failed to pull image "{self.ref}": {what} not found')
        if status in (401, 403):
            raise RuntimeFailure(f'failed to pull image "{self.ref}": pull access denied by {self.host}, the '
                                 f"repository does not exist or needs authorization: {detail}")
        if status == 429 or status >= 500:
            raise Unavailable(f'failed to pull image "{self.ref}": registry {self.host} answered {status} '
                              f"for {what}: {detail}")
        raise RuntimeFailure(f'failed to pull image "{self.ref}": registry {self.host} answered {status} '
                             f"for {what}: {detail}")


class _Streamed:
    """``async with session.stream(path) as response``: an authenticated 200 response, closed on exit."""

    def __init__(self, session: _Session, path: str, what: str, accept: str | None) -> None:
        self._args = (path, what, accept)
        self._session = session
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        self._response = await self._session.open(*self._args)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            await self._response.aclose()


def _is_insecure(host: str, insecure: tuple[str, ...]) -> bool:
    hostname = host[: host.index("]") + 1] if host.startswith("[") else host.split(":")[0]
    return host in insecure or hostname in insecure


def _credentials(auth: dict[str, str]) -> tuple[str | None, str | None, str | None, str | None]:
    """``(username, password, identity token, registry token)`` from CRI AuthConfig-shaped fields."""
    username, password = auth.get("username") or None, auth.get("password") or None
    if auth.get("auth") and username is None:
        try:
            decoded = base64.b64decode(auth["auth"], validate=True).decode()
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidArgument(f"auth is not base64 'user:password': {err}") from err
        username, _, password = decoded.partition(":")
    identity = auth.get("identity_token") or auth.get("identitytoken") or None
    registry = auth.get("registry_token") or auth.get("registrytoken") or None
    return username, password, identity, registry


def _registry_errors(response: httpx.Response) -> tuple[set[str], list[str]]:
    try:
        errors = json.loads(response.content).get("errors") or []
    except (ValueError, AttributeError):
        return set(), []
    codes = {str(e.get("code", "")) for e in errors if isinstance(e, dict)}
    messages = [f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    return codes, messages

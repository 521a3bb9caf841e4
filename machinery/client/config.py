"""How every kubemini component finds and authenticates to the API server.

Controllers, the scheduler, the kubelet and the CLI all need the same three answers: which URL to
talk to, which certificate authority to trust, and which credentials to present. They get them the
way client-go does, so the kubeconfig files and service-account mounts that work with kubectl work
here too:

* :func:`load_kubeconfig` reads a kubeconfig (``--kubeconfig``, ``$KUBECONFIG`` or
  ``~/.kube/config``) and resolves one context into its cluster, user and namespace;
* :func:`in_cluster_config` builds the config a pod gets from its service account;
* :func:`load_config` picks between them.

The result is a :class:`ClientConfig`, whose :meth:`~ClientConfig.ssl_context` and
:meth:`~ClientConfig.auth_headers` plug straight into ``httpx`` (``verify=`` and ``headers=``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class ConfigError(Exception):
    """The client configuration is missing or unusable; the message says what to do about it."""


@dataclass(frozen=True)
class ClientConfig:
    """Where the API server is and how to authenticate to it. ``*_data`` fields win over ``*_file``."""

    server: str
    ca_file: str | None = None
    ca_data: bytes | None = field(default=None, repr=False)
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False
    # ssl contexts cannot carry a server name; callers pass it per request (httpx: extensions={"sni_hostname": ...}).
    tls_server_name: str | None = None
    namespace: str = "default"
    qps: float = 50.0
    burst: int = 100
    user_agent: str = "kubemini"
    timeout: float = 30.0

    def with_overrides(self, **changes: Any) -> ClientConfig:
        return dataclasses.replace(self, **changes)

    def bearer_token(self) -> str | None:
        """The token, or the current contents of ``token_file`` (re-read on every call, as it rotates)."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as e:
                raise ConfigError(f"cannot read token file {self.token_file}: {e.strerror}") from e
        return None

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header: bearer token first, else basic auth, else none."""
        token = self.bearer_token()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username is not None or self.password is not None:
            pair = f"{self.username or ''}:{self.password or ''}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}
        return {}

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify=`` takes: ``True`` for plain http, else a context for this server."""
        if not self.server.startswith("https://"):
            return True
        try:
            if self.insecure_skip_tls_verify:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif self.ca_data:
                # ssl takes PEM as text and DER as bytes
                pem = b"-----BEGIN" in self.ca_data
                ctx = ssl.create_default_context(cadata=self.ca_data.decode("ascii") if pem else self.ca_data)
            elif self.ca_file:
                ctx = ssl.create_default_context(cafile=self.ca_file)
            else:
                ctx = ssl.create_default_context()  # the system's trust store
            self._load_client_cert(ctx)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise ConfigError(f"cannot load TLS certificates for {self.server}: {e}") from e
        return ctx

    def _load_client_cert(self, ctx: ssl.SSLContext) -> None:
        cert, key = self.cert_data or self.cert_file, self.key_data or self.key_file
        if cert is None and key is None:
            return
        if cert is None or key is None:
            raise ConfigError("client certificate and client key must be given together")
        if isinstance(cert, str) and isinstance(key, str):
            ctx.load_cert_chain(cert, key)
            return
        # ssl loads certificates only from files: stage in-memory ones in a private directory (0700),
        # as files only we can read (0600), removed as soon as they are loaded.
        with tempfile.TemporaryDirectory(prefix="kubemini-tls-") as tmp:
            ctx.load_cert_chain(_staged(cert, Path(tmp, "tls.crt")), _staged(key, Path(tmp, "tls.key")))


def _staged(source: str | bytes, dest: Path) -> str:
    if isinstance(source, str):
        return source
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(source)
    return str(dest)


# --- kubeconfig ------------------------------------------------------------------------------------------------------


@dataclass
class _Kubeconfig:
    """Named clusters/users/contexts of one or more merged files; relative paths already resolved."""

    source: str
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_context: str | None = None

    def merge(self, other: _Kubeconfig) -> None:
        """kubectl's rule: the first file that defines a name (or current-context) wins."""
        for mine, theirs in ((self.clusters, other.clusters), (self.users, other.users),
                             (self.contexts, other.contexts)):
            for name, body in theirs.items():
                mine.setdefault(name, body)
        self.current_context = self.current_context or other.current_context


_PATH_FIELDS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


def _read_kubeconfig(path: Path) -> _Kubeconfig:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"kubeconfig {path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"kubeconfig {path}: invalid YAML: {' '.join(str(e).split())}") from e
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path}: expected a mapping at the top level")
    config = _Kubeconfig(source=str(path), current_context=doc.get("current-context") or None)
    for section, kind, target in (("clusters", "cluster", config.clusters), ("users", "user", config.users),
                                  ("contexts", "context", config.contexts)):
        for entry in doc.get(section) or []:
            if not isinstance(entry, dict) or not entry.get("name"):
                raise ConfigError(f"kubeconfig {path}: every entry of {section} needs a name")
            body = dict(entry.get(kind) or {})
            for key in _PATH_FIELDS.get(kind, ()):
                if body.get(key):
                    body[key] = str(path.parent / str(body[key]))  # absolute paths stay as they are
            target.setdefault(str(entry["name"]), body)
    return config


def _kubeconfig_paths(path: str | os.PathLike[str] | None) -> list[Path]:
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise ConfigError(f"kubeconfig {explicit}: file not found")
        return [explicit]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        listed = [Path(p) for p in env.split(os.pathsep) if p]
        found = [p for p in listed if p.is_file()]
        if not found:
            raise ConfigError(f"no kubeconfig found: none of the KUBECONFIG files exist ({env}); "
                              "fix KUBECONFIG or pass --kubeconfig")
        return found
    default = Path.home() / ".kube" / "config"
    if not default.is_file():
        raise ConfigError("no kubeconfig found: pass --kubeconfig or set KUBECONFIG")
    return [default]


def load_kubeconfig(path: str | os.PathLike[str] | None = None, *, context: str | None = None) -> ClientConfig:
    """Resolve ``context`` (default: current-context) of a kubeconfig into a :class:`ClientConfig`.

    ``path`` defaults to the files listed in ``$KUBECONFIG`` (merged, first definition wins), then
    ``~/.kube/config``.
    """
    paths = _kubeconfig_paths(path)
    kc = _read_kubeconfig(paths[0])
    for extra in paths[1:]:
        kc.merge(_read_kubeconfig(extra))
    kc.source = os.pathsep.join(str(p) for p in paths)

    name = context or kc.current_context
    if not name:
        raise ConfigError(f"kubeconfig {kc.source}: no current-context is set: pass --context "
                          "or run kubectl config use-context")
    if name not in kc.contexts:
        raise ConfigError(f'context "{name}" not found in {kc.source}')
    ctx = kc.contexts[name]

    cluster_name = ctx.get("cluster")
    if not cluster_name:
        raise ConfigError(f'kubeconfig {kc.source}: context "{name}" names no cluster')
    if cluster_name not in kc.clusters:
        raise ConfigError(f'kubeconfig {kc.source}: cluster "{cluster_name}" referenced by context "{name}" is missing')
    cluster = kc.clusters[cluster_name]
    if not cluster.get("server"):
        raise ConfigError(f'kubeconfig {kc.source}: cluster "{cluster_name}" has no server')

    user_name = ctx.get("user")
    user: dict[str, Any] = {}  # a context without a user talks to the server anonymously
    if user_name:
        if user_name not in kc.users:
            raise ConfigError(f'kubeconfig {kc.source}: user "{user_name}" referenced by context "{name}" is missing')
        user = kc.users[user_name]
        for plugin in ("exec", "auth-provider"):
            if user.get(plugin):
                raise ConfigError(f'kubeconfig {kc.source}: user "{user_name}" uses an {plugin} credential plugin, '
                                  "which kubemini does not support: use a token or a client certificate")

    def data(body: dict[str, Any], key: str) -> bytes | None:
        value = body.get(key)
        if not value:
            return None
        try:
            return base64.b64decode(str(value), validate=True)
        except binascii.Error as e:
            raise ConfigError(f"kubeconfig {kc.source}: {key} is not valid base64") from e

    def text(body: dict[str, Any], key: str) -> str | None:
        value = body.get(key)
        return None if value is None or value == "" else str(value)

    return ClientConfig(
        server=str(cluster["server"]),
        ca_file=text(cluster, "certificate-authority"),
        ca_data=data(cluster, "certificate-authority-data"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=text(cluster, "tls-server-name"),
        cert_file=text(user, "client-certificate"),
        key_file=text(user, "client-key"),
        cert_data=data(user, "client-certificate-data"),
        key_data=data(user, "client-key-data"),
        token=text(user, "token"),
        token_file=text(user, "tokenFile"),
        username=text(user, "username"),
        password=text(user, "password"),
        namespace=text(ctx, "namespace") or "default",
    )


# --- in-cluster ------------------------------------------------------------------------------------------------------


def in_cluster_config(service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR) -> ClientConfig:
    """The config of a pod: the ``kubernetes`` service from the environment, credentials from its service account."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    sa = Path(service_account_dir)
    token = sa / "token"
    if not token.is_file():
        raise ConfigError(f"in-cluster config: service account token {token} is missing: "
                          "is automountServiceAccountToken disabled for this pod?")
    ca = sa / "ca.crt"
    namespace_file = sa / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else ""
    return ClientConfig(
        server=f"https://{host}:{port}",
        token_file=str(token),
        ca_file=str(ca) if ca.is_file() else None,
        namespace=namespace or "default",
    )


def load_config(kubeconfig: str | os.PathLike[str] | None = None, *, context: str | None = None) -> ClientConfig:
    """The config a component should use.

    An explicit kubeconfig, a ``context`` or ``$KUBECONFIG`` means a kubeconfig (as with kubectl);
    otherwise the in-cluster config when running in a pod; otherwise ``~/.kube/config``.
    """
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("KUBERNETES_SERVICE_PORT"))
    if kubeconfig is None and context is None and not os.environ.get("KUBECONFIG") and in_cluster:
        return in_cluster_config()
    return load_kubeconfig(kubeconfig, context=context)

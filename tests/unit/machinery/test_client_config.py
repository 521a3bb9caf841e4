"""Client configuration: kubeconfig resolution, in-cluster config, auth headers and TLS contexts."""

from __future__ import annotations

import base64
import functools
import json
import os
import ssl
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubemini.apiserverproc import write_kubeconfig
from machinery.client.config import ClientConfig, ConfigError, in_cluster_config, load_config, load_kubeconfig


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No test may see the developer's kubeconfig or a real cluster."""
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(path: Path, *, clusters=(), users=(), contexts=(), current: str | None = None) -> Path:
    """Write a kubeconfig from (name, body) pairs, JSON being valid YAML."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": b} for n, b in clusters],
        "users": [{"name": n, "user": b} for n, b in users],
        "contexts": [{"name": n, "context": b} for n, b in contexts],
    }
    if current:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


# --- certificates, made with the openssl CLI (the venv has no `cryptography`) -----------------------------------------


@dataclass
class Pki:
    ca_crt: Path
    server_crt: Path
    server_key: Path
    client_crt: Path
    client_key: Path
    other_ca_crt: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)


def _leaf(d: Path, name: str, ca: str, extensions: str) -> None:
    (d / f"{name}.ext").write_text(extensions + "\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:kubemini.test\nextendedKeyUsage=serverAuth")
    _leaf(d, "client", "ca", "extendedKeyUsage=clientAuth")
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key", d / "other-ca.crt")


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str) -> ssl.SSLObject:
    """Run a TLS handshake in memory between the two contexts; return the server's side of it."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {c: False, s: False}
    for _ in range(20):
        for obj in (c, s):
            if not done[obj]:
                try:
                    obj.do_handshake()
                    done[obj] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return s
    raise AssertionError("handshake did not finish")


def server_context(pki: Pki, *, require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_crt, pki.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca_crt)
    return ctx


# --- kubeconfig ------------------------------------------------------------------------------------------------------


def test_reads_the_kubeconfig_kubemini_writes(tmp_path):
    path = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:4321", token="s3cret")
    config = load_kubeconfig(path)
    assert config.server == "http://127.0.0.1:4321"
    assert config.token == "s3cret"
    assert config.namespace == "default"
    assert config.auth_headers() == {"Authorization": "Bearer s3cret"}
    assert config.ssl_context() is True
    assert config.ca_file is None and config.cert_file is None and not config.insecure_skip_tls_verify


def test_base64_data_fields_are_decoded(tmp_path):
    path = kubeconfig(
        tmp_path / "config",
        clusters=[("c", {"server": "https://k:6443", "certificate-authority-data": b64(b"CA PEM"),
                         "tls-server-name": "kubernetes", "insecure-skip-tls-verify": False})],
        users=[("u", {"client-certificate-data": b64(b"CERT PEM"), "client-key-data": b64(b"KEY PEM")})],
        contexts=[("x", {"cluster": "c", "user": "u", "namespace": "team"})],
        current="x",
    )
    config = load_kubeconfig(path)
    assert (config.ca_data, config.cert_data, config.key_data) == (b"CA PEM", b"CERT PEM", b"KEY PEM")
    assert config.tls_server_name == "kubernetes"
    assert config.namespace == "team"
    assert config.auth_headers() == {}


def test_invalid_base64_is_a_config_error(tmp_path):
    path = kubeconfig(tmp_path / "config",
                      clusters=[("c", {"server": "https://k", "certificate-authority-data": "@@"})],
                      contexts=[("x", {"cluster": "c"})], current="x")
    with pytest.raises(ConfigError, match="certificate-authority-data is not valid base64"):
        load_kubeconfig(path)


def test_relative_paths_resolve_against_the_kubeconfig_directory(tmp_path):
    path = kubeconfig(
        tmp_path / "dir" / "config",
        clusters=[("c", {"server": "https://k:6443", "certificate-authority": "pki/ca.crt"})],
        users=[("u", {"client-certificate": "pki/client.crt", "client-key": "/abs/client.key",
                      "tokenFile": "token"})],
        contexts=[("x", {"cluster": "c", "user": "u"})],
        current="x",
    )
    config = load_kubeconfig(str(path))
    assert config.ca_file == str(tmp_path / "dir" / "pki" / "ca.crt")
    assert config.cert_file == str(tmp_path / "dir" / "pki" / "client.crt")
    assert config.key_file == "/abs/client.key"
    assert config.token_file == str(tmp_path / "dir" / "token")


def two_contexts(path: Path) -> Path:
    return kubeconfig(
        path,
        clusters=[("a", {"server": "https://a:6443"}), ("b", {"server": "http://b:8080"})],
        users=[("ua", {"token": "ta"}), ("ub", {"username": "admin", "password": "pw"})],
        contexts=[("ctx-a", {"cluster": "a", "user": "ua"}),
                  ("ctx-b", {"cluster": "b", "user": "ub", "namespace": "nb"})],
        current="ctx-a",
    )


def test_context_selection(tmp_path):
    path = two_contexts(tmp_path / "config")
    assert load_kubeconfig(path).server == "https://a:6443"
    chosen = load_kubeconfig(path, context="ctx-b")
    assert (chosen.server, chosen.username, chosen.password, chosen.namespace) == ("http://b:8080", "admin", "pw", "nb")
    assert chosen.token is None


def test_missing_context(tmp_path):
    path = two_contexts(tmp_path / "config")
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(path, context="nope")
    assert str(err.value) == f'context "nope" not found in {path}'


def test_missing_current_context(tmp_path):
    path = kubeconfig(tmp_path / "config", clusters=[("c", {"server": "http://c"})], contexts=[("x", {"cluster": "c"})])
    with pytest.raises(ConfigError, match="no current-context is set: pass --context"):
        load_kubeconfig(path)
    assert load_kubeconfig(path, context="x").server == "http://c"


def test_missing_cluster(tmp_path):
    path = kubeconfig(tmp_path / "config", contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(path)
    assert str(err.value) == f'kubeconfig {path}: cluster "c" referenced by context "x" is missing'


def test_cluster_without_server(tmp_path):
    path = kubeconfig(tmp_path / "config", clusters=[("c", {})], contexts=[("x", {"cluster": "c"})], current="x")
    with pytest.raises(ConfigError, match='cluster "c" has no server'):
        load_kubeconfig(path)


def test_missing_user(tmp_path):
    path = kubeconfig(tmp_path / "config", clusters=[("c", {"server": "http://c"})],
                      contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(path)
    assert str(err.value) == f'kubeconfig {path}: user "u" referenced by context "x" is missing'


def test_context_without_user_is_anonymous(tmp_path):
    path = kubeconfig(tmp_path / "config", clusters=[("c", {"server": "http://c"})],
                      contexts=[("x", {"cluster": "c"})], current="x")
    assert load_kubeconfig(path).auth_headers() == {}


@pytest.mark.parametrize("plugin", ["exec", "auth-provider"])
def test_credential_plugins_are_rejected(tmp_path, plugin):
    path = kubeconfig(tmp_path / "config", clusters=[("c", {"server": "http://c"})],
                      users=[("u", {plugin: {"command": "aws"} if plugin == "exec" else {"name": "gcp"}})],
                      contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    with pytest.raises(ConfigError, match=f'user "u" uses an {plugin} credential plugin.*not support'):
        load_kubeconfig(path)


def test_malformed_files(tmp_path):
    bad_yaml = tmp_path / "bad"
    bad_yaml.write_text("clusters: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_kubeconfig(bad_yaml)
    not_a_map = tmp_path / "list"
    not_a_map.write_text("- a\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_kubeconfig(not_a_map)
    with pytest.raises(ConfigError, match="file not found"):
        load_kubeconfig(tmp_path / "absent")


# --- which file ------------------------------------------------------------------------------------------------------


def home_kubeconfig(tmp_path: Path, server: str) -> Path:
    (tmp_path / "home" / ".kube").mkdir(parents=True)
    return write_kubeconfig(tmp_path / "home" / ".kube" / "config", server)


def test_no_kubeconfig_anywhere():
    with pytest.raises(ConfigError, match=r"^no kubeconfig found: pass --kubeconfig or set KUBECONFIG$"):
        load_kubeconfig()


def test_home_kubeconfig_is_the_default(tmp_path):
    home_kubeconfig(tmp_path, "http://home:1")
    assert load_kubeconfig().server == "http://home:1"


def test_kubeconfig_env_beats_home_and_skips_missing_entries(tmp_path, monkeypatch):
    home_kubeconfig(tmp_path, "http://home:1")
    env_file = write_kubeconfig(tmp_path / "env-config", "http://env:2")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), "", str(env_file)]))
    assert load_kubeconfig().server == "http://env:2"


def test_kubeconfig_env_with_no_existing_file_is_an_error(tmp_path, monkeypatch):
    home_kubeconfig(tmp_path, "http://home:1")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="none of the KUBECONFIG files exist"):
        load_kubeconfig()


def test_kubeconfig_env_files_are_merged_first_wins(tmp_path, monkeypatch):
    first = kubeconfig(tmp_path / "one" / "config", clusters=[("shared", {"server": "https://first"})],
                       contexts=[("only-first", {"cluster": "shared"})])
    second = kubeconfig(
        tmp_path / "two" / "config",
        clusters=[("shared", {"server": "https://second"}), ("own", {"server": "https://own",
                                                                       "certificate-authority": "ca.crt"})],
        users=[("u", {"token": "t2"})],
        contexts=[("only-first", {"cluster": "own"}), ("from-second", {"cluster": "own", "user": "u"})],
        current="from-second",
    )
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second)]))
    current = load_kubeconfig()  # current-context comes from the second file, the first one sets none
    assert (current.server, current.token) == ("https://own", "t2")
    assert current.ca_file == str(tmp_path / "two" / "ca.crt")  # relative to the file that defined it
    assert load_kubeconfig(context="only-first").server == "https://first"


def test_kubeconfig_env_current_context_from_the_first_file_that_sets_it(tmp_path, monkeypatch):
    one = two_contexts(tmp_path / "one")  # current-context: ctx-a
    two = kubeconfig(tmp_path / "two", clusters=[("c", {"server": "https://two"})],
                     contexts=[("ctx-two", {"cluster": "c"})], current="ctx-two")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(one), str(two)]))
    assert load_kubeconfig().server == "https://a:6443"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(two), str(one)]))
    assert load_kubeconfig().server == "https://two"


# --- in-cluster ------------------------------------------------------------------------------------------------------


@pytest.fixture
def service_account(tmp_path) -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("tok-1\n")
    (sa / "ca.crt").write_text("CA")
    (sa / "namespace").write_text("kube-system")
    return sa


def test_in_cluster_config(service_account, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    config = in_cluster_config(service_account)
    assert config.server == "https://10.96.0.1:443"
    assert config.ca_file == str(service_account / "ca.crt")
    assert config.token_file == str(service_account / "token") and config.token is None
    assert config.namespace == "kube-system"
    assert config.auth_headers() == {"Authorization": "Bearer tok-1"}
    (service_account / "token").write_text("tok-2")  # the kubelet rotates projected tokens
    assert config.auth_headers() == {"Authorization": "Bearer tok-2"}


def test_in_cluster_ipv6_host_is_bracketed(service_account, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert in_cluster_config(service_account).server == "https://[fd00::1]:6443"


def test_in_cluster_optional_files(service_account, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (service_account / "ca.crt").unlink()
    (service_account / "namespace").unlink()
    config = in_cluster_config(service_account)
    assert (config.ca_file, config.namespace) == (None, "default")
    (service_account / "token").unlink()
    with pytest.raises(ConfigError, match=r"service account token .* is missing"):
        in_cluster_config(service_account)


def test_not_in_cluster(service_account, monkeypatch):
    with pytest.raises(ConfigError, match=r"^not running in a cluster: KUBERNETES_SERVICE_HOST and "
                                          r"KUBERNETES_SERVICE_PORT must be set$"):
        in_cluster_config(service_account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(ConfigError, match="not running in a cluster"):
        in_cluster_config(service_account)


# --- load_config -----------------------------------------------------------------------------------------------------


def test_load_config_prefers_an_explicit_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    path = two_contexts(tmp_path / "config")
    assert load_config(path).server == "https://a:6443"
    assert load_config(path, context="ctx-b").server == "http://b:8080"


def test_load_config_in_cluster_beats_home_but_not_kubeconfig_env(tmp_path, monkeypatch, service_account):
    import machinery.client.config as config_module

    monkeypatch.setattr(config_module, "in_cluster_config", functools.partial(in_cluster_config, service_account))
    home_kubeconfig(tmp_path, "http://home:1")
    assert load_config().server == "http://home:1"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert load_config().server == "https://10.0.0.1:443"
    assert load_config(context="kubemini").server == "http://home:1"  # contexts live in kubeconfigs
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "env-config", "http://env:2")))
    assert load_config().server == "http://env:2"  # as with kubectl, an explicit KUBECONFIG wins


def test_load_config_with_nothing_to_load():
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        load_config()


# --- auth headers ----------------------------------------------------------------------------------------------------


def test_auth_headers():
    assert ClientConfig("http://x", token="abc").auth_headers() == {"Authorization": "Bearer abc"}
    basic = ClientConfig("http://x", username="admin", password="p:w").auth_headers()
    assert basic == {"Authorization": "Basic " + b64(b"admin:p:w")}
    assert ClientConfig("http://x", token="abc", username="a", password="b").auth_headers()["Authorization"] == (
        "Bearer abc")
    assert ClientConfig("http://x").auth_headers() == {}


def test_token_file_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read token file"):
        ClientConfig("http://x", token_file=str(tmp_path / "gone")).bearer_token()


def test_secrets_stay_out_of_repr():
    text = repr(ClientConfig("http://x", token="tok-secret", password="pw-secret", key_data=b"key-secret"))
    assert "secret" not in text


def test_with_overrides():
    base = ClientConfig("http://x", token="t")
    changed = base.with_overrides(qps=5.0, namespace="ns")
    assert (changed.qps, changed.namespace, changed.token) == (5.0, "ns", "t")
    assert (base.qps, base.namespace) == (50.0, "default")


# --- TLS -------------------------------------------------------------------------------------------------------------


def test_ssl_context_trusts_the_ca_file(pki):
    ctx = ClientConfig("https://127.0.0.1:6443", ca_file=str(pki.ca_crt)).ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    handshake(ctx, server_context(pki), "127.0.0.1")
    handshake(ctx, server_context(pki), "kubemini.test")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(ctx, server_context(pki), "elsewhere.test")


def test_ssl_context_trusts_ca_data_only(pki):
    ctx = ClientConfig("https://127.0.0.1:6443", ca_data=pki.ca_crt.read_bytes()).ssl_context()
    handshake(ctx, server_context(pki), "127.0.0.1")
    other = ClientConfig("https://127.0.0.1:6443", ca_data=pki.other_ca_crt.read_bytes()).ssl_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(other, server_context(pki), "127.0.0.1")


def test_ssl_context_without_ca_uses_the_system_store(pki):
    ctx = ClientConfig("https://127.0.0.1:6443").ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLCertVerificationError):  # our test CA is not in the system store
        handshake(ctx, server_context(pki), "127.0.0.1")


def test_insecure_skip_tls_verify_turns_verification_off(pki):
    ctx = ClientConfig("https://127.0.0.1:6443", insecure_skip_tls_verify=True).ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    handshake(ctx, server_context(pki), "elsewhere.test")


def test_client_certificate_from_files(pki):
    ctx = ClientConfig("https://127.0.0.1:6443", ca_file=str(pki.ca_crt), cert_file=str(pki.client_crt),
                       key_file=str(pki.client_key)).ssl_context()
    server_side = handshake(ctx, server_context(pki, require_client_cert=True), "127.0.0.1")
    assert dict(x[0] for x in server_side.getpeercert()["subject"])["commonName"] == "client"


def test_client_certificate_from_data_leaves_no_files(pki, tmp_path, monkeypatch):
    staging = tmp_path / "tmp"
    staging.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(staging))
    modes: list[int] = []
    real_load = ssl.SSLContext.load_cert_chain

    def spying_load(self, certfile, keyfile=None, password=None):
        modes.extend(stat.S_IMODE(os.stat(f).st_mode) for f in (certfile, keyfile))
        modes.append(stat.S_IMODE(os.stat(os.path.dirname(certfile)).st_mode))
        return real_load(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spying_load)
    ctx = ClientConfig("https://127.0.0.1:6443", ca_data=pki.ca_crt.read_bytes(),
                       cert_data=pki.client_crt.read_bytes(), key_data=pki.client_key.read_bytes()).ssl_context()
    assert modes == [0o600, 0o600, 0o700]
    assert list(staging.iterdir()) == []
    server_side = handshake(ctx, server_context(pki, require_client_cert=True), "127.0.0.1")
    assert server_side.getpeercert() is not None


def test_server_requiring_a_client_cert_rejects_a_client_without_one(pki):
    ctx = ClientConfig("https://127.0.0.1:6443", ca_file=str(pki.ca_crt)).ssl_context()
    with pytest.raises(ssl.SSLError):
        handshake(ctx, server_context(pki, require_client_cert=True), "127.0.0.1")


def test_bad_tls_material_is_a_config_error(pki, tmp_path):
    with pytest.raises(ConfigError, match="cannot load TLS certificates for https://k"):
        ClientConfig("https://k", ca_file=str(tmp_path / "absent.crt")).ssl_context()
    with pytest.raises(ConfigError, match="client certificate and client key must be given together"):
        ClientConfig("https://k", cert_file=str(pki.client_crt)).ssl_context()
    with pytest.raises(ConfigError, match="cannot load TLS certificates"):  # key does not match the certificate
        ClientConfig("https://k", cert_file=str(pki.client_crt), key_file=str(pki.server_key)).ssl_context()


def test_plain_http_needs_no_tls():
    assert ClientConfig("http://127.0.0.1:8080", ca_file="/does/not/matter").ssl_context() is True

"""Start and stop the real components of the end-to-end tests and the demo.

OpenBao (``bao server -dev``), moto's server (the AWS stand-in, verifying every SigV4
signature after a fixed number of set-up calls) and Envoy with the grant-sigv4 filter, all on
127.0.0.1 with free ports picked at run time. Every process started here is stopped by
``Stack.stop()``, also when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "grant_sigv4.wasm"
# Test-only build that aborts on a marked request (`make wasm-crash-test`).
CRASH_TEST_WASM = ROOT / "target" / "grant_sigv4_crash_test.wasm"
ENVOY_LOCAL = ROOT / "envoy" / "local.yaml"
ENVOY_LOCAL_RETRY = ROOT / "envoy" / "local-retry.yaml"
# The native host: the dynamic module (`make dynamic-module`) and its local config.
DYNAMIC_MODULE = ROOT / "target" / "dynamic-module" / "libgrant_sigv4_dynamic_module.so"
ENVOY_DYNAMIC_MODULE_LOCAL = ROOT / "envoy" / "dynamic-module-local.yaml"
ENVOY_DYNAMIC_MODULE_LOCAL_RETRY = ROOT / "envoy" / "dynamic-module-local-retry.yaml"
# Test-only build that panics on a marked request (`make dynamic-module-panic-test`).
PANIC_TEST_DYNAMIC_MODULE = ROOT / "target" / "grant_sigv4_dynamic_module_panic_test.so"
HOSTS = ("wasm", "native")
# Where each host's plugin metrics appear in /stats?format=json.
STAT_NAMESPACE = {"wasm": "wasmcustom", "native": "dynamicmodulescustom"}
TOKEN_ENV = "GRANT_SIGV4_VAULT_TOKEN"
SECRET_ID_ENV = "GRANT_SIGV4_VAULT_SECRET_ID"
# The least-privilege Vault policies shipped for the filter and for grantctl.
VAULT_POLICIES = ROOT / "vault" / "policies"
FILTER_POLICY = "grant-sigv4-filter"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template: str, values: dict) -> str:
    """Fill ``${UPPER_CASE}`` placeholders; a missing value is an error."""

    def sub(m):
        if m.group(1) not in values:
            raise KeyError(f"no value for placeholder {m.group(1)}")
        return str(values[m.group(1)])

    return re.sub(r"\$\{([A-Z_]+)\}", sub, template)


def wait_until(check, what: str, timeout: float = 30.0, proc: "Proc | None" = None):
    """Poll ``check`` (a readiness probe, not a sleep for time) until it returns truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - any failure means not ready yet
            last = e
        time.sleep(0.05)
    tail = proc.log_tail() if proc else ""
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last})\n{tail}")


def http_get(url: str, headers: dict | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Proc:
    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict | None = None):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
        )

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self, sig=signal.SIGTERM):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._log.close()


class OpenBao:
    """``bao server -dev``. ``token`` is the root token, for set-up only; the filter gets
    ``filter_token``, bound to the shipped least-privilege policy (``vault/policies``)."""

    def __init__(self, logdir: Path):
        self.port = free_port()
        self.token = "root-" + secrets.token_hex(12)
        self.addr = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(
            "openbao",
            [
                str(VENV_BIN / "bao"),
                "server",
                "-dev",
                f"-dev-root-token-id={self.token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
            ],
            logdir,
            env={"HOME": str(logdir), "BAO_ADDR": self.addr, "VAULT_ADDR": self.addr},
        )
        wait_until(
            lambda: http_get(f"{self.addr}/v1/sys/health")[0] == 200,
            "OpenBao",
            proc=self.proc,
        )
        # The dev server mounts KV version 2 at secret/.
        wait_until(
            lambda: self.request("GET", "/v1/sys/mounts/secret")[0] == 200, "OpenBao KV mount", proc=self.proc
        )
        for name in (FILTER_POLICY, "grantctl"):
            self.write_policy(name, (VAULT_POLICIES / f"{name}.hcl").read_text())
        self.filter_token = self.create_token([FILTER_POLICY])

    def write_policy(self, name: str, hcl: str):
        status, body = self.request("PUT", f"/v1/sys/policies/acl/{name}", {"policy": hcl})
        assert status in (200, 204), (status, body)

    def create_token(self, policies: list[str], **params) -> str:
        """A new token with ``policies`` (and OpenBao's ``default`` policy: lookup-self,
        renew-self)."""
        status, body = self.request("POST", "/v1/auth/token/create", {"policies": policies, **params})
        assert status == 200, (status, body)
        return body["auth"]["client_token"]

    def request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.addr + path, data=data, method=method, headers={"X-Vault-Token": self.token}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, raw

    def put_grant(self, grant: str, data: dict, mount: str = "secret", prefix: str = "aws/grants/"):
        status, body = self.request("POST", f"/v1/{mount}/data/{prefix}{grant}", {"data": data})
        assert status == 200, (status, body)
        return body

    def stop(self):
        self.proc.stop()


class BaoProxy:
    """The real OpenBao Proxy (``bao proxy``) in front of ``bao``: AppRole auto-auth and
    ``api_proxy { use_auto_auth_token = "force" }``, so that its clients need no token. Its
    current token is also written to a file sink (``token()``), for the tests only."""

    ROLE = "grant-sigv4"

    def __init__(self, logdir: Path, bao: "OpenBao", token_ttl: str = "1h", token_max_ttl: str = "4h",
                 port: int | None = None):
        self.bao = bao
        self.logdir = logdir
        self.port = port or free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        role_id, self.secret_id = approle_role(bao, self.ROLE, token_ttl=token_ttl, token_max_ttl=token_max_ttl)
        self.role_id_file = logdir / "approle-role-id"
        self.role_id_file.write_text(role_id)
        self.secret_id_file = logdir / "approle-secret-id"
        self.secret_id_file.write_text(self.secret_id)
        self.sink = logdir / "bao-proxy-token"
        self.config_path = logdir / f"bao-proxy-{self.port}.hcl"
        self.config_path.write_text(proxy_config(bao.addr, self.role_id_file, self.secret_id_file, self.sink,
                                                 f"127.0.0.1:{self.port}"))
        self.start()

    def start(self):
        self.proc = Proc(f"bao-proxy-{self.port}", [str(VENV_BIN / "bao"), "proxy", f"-config={self.config_path}"],
                         self.logdir, env={"HOME": str(self.logdir)})
        # Ready once it answers and has logged in (the sink holds its token).
        wait_until(lambda: http_get(f"{self.addr}/v1/sys/health")[0] == 200, "OpenBao Proxy", proc=self.proc)
        wait_until(lambda: self.sink.exists() and self.sink.read_text().strip(), "OpenBao Proxy auto-auth",
                   proc=self.proc)

    def token(self) -> str:
        return self.sink.read_text().strip()

    def stop(self):
        self.proc.stop()


PROXY_HCL = ROOT / "vault" / "proxy-approle.hcl"


def approle_role(bao: OpenBao, role: str, **params) -> tuple[str, str]:
    """An AppRole role bound to the filter's policy (``params``: ``token_ttl``,
    ``token_max_ttl``...), with AppRole enabled at ``approle/``: its role id and a new
    secret id."""
    status, body = bao.request("GET", "/v1/sys/auth")
    if "approle/" not in (body.get("data", body) if isinstance(body, dict) else {}):
        status, body = bao.request("POST", "/v1/sys/auth/approle", {"type": "approle"})
        assert status in (200, 204), (status, body)
    status, body = bao.request("POST", f"/v1/auth/approle/role/{role}", {"token_policies": [FILTER_POLICY], **params})
    assert status in (200, 204), (status, body)
    status, body = bao.request("GET", f"/v1/auth/approle/role/{role}/role-id")
    assert status == 200, (status, body)
    role_id = body["data"]["role_id"]
    status, body = bao.request("POST", f"/v1/auth/approle/role/{role}/secret-id", {})
    assert status == 200, (status, body)
    return role_id, body["data"]["secret_id"]


def proxy_config(bao_addr: str, role_id_file: Path, secret_id_file: Path, sink: Path, listen: str) -> str:
    """The shipped ``vault/proxy-approle.hcl`` pointed at the local OpenBao, plus a file sink
    that shows the tests the proxy's current token."""
    text = PROXY_HCL.read_text()
    for old, new in [
        ('"https://vault.internal.example:8200"', json.dumps(bao_addr)),
        ('  ca_cert = "/etc/ssl/certs/ca-certificates.crt"\n', ""),
        ('"/etc/grant-sigv4/role-id"', json.dumps(str(role_id_file))),
        ('"/etc/grant-sigv4/secret-id"', json.dumps(str(secret_id_file))),
        ('"127.0.0.1:8100"', json.dumps(listen)),
        ("auto_auth {\n", "auto_auth {\n" + f"  sink \"file\" {{ config = {{ path = {json.dumps(str(sink))} }} }}\n"),
    ]:
        assert old in text, f"{PROXY_HCL} has changed: no {old!r}"
        text = text.replace(old, new, 1)
    return text


class Moto:
    """moto's server; it verifies SigV4 on every request after ``no_auth`` AWS actions."""

    def __init__(self, logdir: Path, no_auth: int):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(
            "moto",
            # moto_server, keeping a request target that starts with "//" (moto_keep_path.py).
            [str(VENV_BIN / "python"), str(Path(__file__).with_name("moto_keep_path.py")), "-H", "127.0.0.1",
             "-p", str(self.port)],
            logdir,
            env={"INITIAL_NO_AUTH_ACTION_COUNT": str(no_auth), "AWS_DEFAULT_REGION": "us-east-1"},
        )
        wait_until(lambda: http_get(f"{self.endpoint}/moto-api/")[0] == 200, "moto", proc=self.proc)

    def direct_client(self, service: str):
        """A client talking straight to moto with dummy keys (counts as a no-auth action)."""
        import boto3

        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.endpoint,
            aws_access_key_id="AKIDSETUPONLY0000000",
            aws_secret_access_key="setup-only",
        )

    SETUP_CALLS = 3

    def create_user_key(self, user: str) -> dict:
        """Three set-up actions: CreateUser, PutUserPolicy (allow all) and CreateAccessKey."""
        iam = self.direct_client("iam")
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="allow-all",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}

    def stop(self):
        self.proc.stop()


class Envoy:
    def __init__(self, logdir: Path, config_text: str, log_level: str = "info", concurrency: int = 2,
                 env: dict | None = None, envoy_bin: Path | None = None, component: str = "wasm"):
        """``component``: the filter's log component (``wasm``, or ``dynamic_modules`` for the
        native host), logged at debug when ``log_level`` is info."""
        self.config_path = logdir / f"envoy-{secrets.token_hex(4)}.yaml"
        self.config_path.write_text(config_text)
        self.proc = Proc(
            "envoy",
            [
                str(envoy_bin or VENV_BIN / "envoy"),
                "-c",
                str(self.config_path),
                "--use-dynamic-base-id",
                "--concurrency",
                str(concurrency),
                "--log-level",
                log_level,
                "--component-log-level",
                f"{component}:debug" if log_level == "info" else f"{component}:{log_level}",
            ],
            logdir,
            env=env,
        )

    def wait_ready(self, admin_port: int):
        self.admin = f"http://127.0.0.1:{admin_port}"
        wait_until(
            lambda: http_get(f"{self.admin}/ready")[0] == 200, "Envoy /ready", timeout=60, proc=self.proc
        )

    def stats(self) -> dict:
        status, body = http_get(f"{self.admin}/stats?format=json")
        assert status == 200
        out = {}
        for s in json.loads(body)["stats"]:
            if "name" in s and "value" in s:
                out[s["name"]] = s["value"]
        return out

    def counter(self, name: str) -> int:
        return int(self.stats().get(name, 0))

    def stop(self):
        self.proc.stop()


def plugin_config(vault_token: str, **overrides) -> dict:
    cfg = {
        "grant_header": "x-grant-id",
        "vault": {
            "cluster": "vault",
            "authority": "vault",
            "token": vault_token,
            "kv_mount": "secret",
            "path_prefix": "aws/grants/",
            "timeout_ms": 2000,
        },
        "cache": {"ttl_seconds": 300},
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            # A value of None removes the key (e.g. ``vault.token`` for another source).
            cfg[k] = {kk: vv for kk, vv in {**cfg[k], **v}.items() if vv is not None}
        else:
            cfg[k] = v
    return cfg


def precheck_config(cfg: dict) -> dict:
    """The precheck instance's configuration: the signing one's, without the vault."""
    return {**{k: v for k, v in cfg.items() if k != "vault"}, "mode": "precheck"}


class Stack:
    """OpenBao + moto + Envoy with the filter, wired together on free local ports."""

    def __init__(self, no_auth: int = Moto.SETUP_CALLS, plugin_overrides: dict | None = None, vault_port: int | None = None,
                 log_level: str = "info", concurrency: int = 2, aws_port: int | None = None,
                 envoy_config: Path | None = None, token_via_env: bool = False, wasm: Path = WASM,
                 vault_proxy: dict | None = None, host: str = "wasm", envoy_bin: Path | None = None,
                 dynamic_module: Path = DYNAMIC_MODULE, approle: dict | None = None,
                 filter_token: dict | None = None):
        """``aws_port``: send AWS traffic to this local port instead of starting moto.
        ``vault_port``: point the vault cluster elsewhere (OpenBao is started anyway).
        ``vault_proxy``: put the real OpenBao Proxy (``BaoProxy``, with these keyword
        arguments) between Envoy and OpenBao; the filter then holds no token
        (``vault.auth.method`` ``proxy``).
        ``host``: ``wasm`` (the proxy-wasm filter, ``envoy/local.yaml``) or ``native`` (the
        dynamic module, ``envoy/dynamic-module-local.yaml``, built as ``dynamic_module``);
        ``envoy_bin``: another Envoy.
        ``approle``: the filter logs in with AppRole (``vault.auth.method`` ``approle``, the
        secret id in Envoy's environment, ``SECRET_ID_ENV``); the role is made with these
        parameters (``token_ttl``, ``token_max_ttl``...). ``approle_secret_id`` is the secret id.
        ``filter_token``: the filter's token is created with these parameters (``period``,
        ``ttl``...), still bound to the filter's policy."""
        if host not in HOSTS:
            raise ValueError(f"host must be one of {HOSTS}")
        self.host = host
        if envoy_config is None:
            envoy_config = ENVOY_LOCAL if host == "wasm" else ENVOY_DYNAMIC_MODULE_LOCAL
        self.logdir = Path(tempfile.mkdtemp(prefix="grant-sigv4-"))
        self.procs = []
        try:
            self.bao = OpenBao(self.logdir)
            self.procs.append(self.bao)
            self.bao_proxy = None
            if vault_proxy is not None:
                self.bao_proxy = BaoProxy(self.logdir, self.bao, **vault_proxy)
                self.procs.append(self.bao_proxy)
                vault_port = self.bao_proxy.port
            self.moto = None
            if aws_port is None:
                self.moto = Moto(self.logdir, no_auth)
                self.procs.append(self.moto)
                aws_port = self.moto.port
            self.listen_port = free_port()
            self.admin_port = free_port()
            if filter_token is not None:
                self.bao.filter_token = self.bao.create_token([FILTER_POLICY], **filter_token)
            cfg = plugin_config(self.bao.filter_token, **(plugin_overrides or {}))
            envoy_env = {}
            self.approle_secret_id = None
            if approle is not None:
                role_id, self.approle_secret_id = approle_role(self.bao, "grant-sigv4-filter", **approle)
                del cfg["vault"]["token"]
                cfg["vault"]["auth"] = {"method": "approle", "role_id": role_id, "secret_id_env": SECRET_ID_ENV}
                envoy_env[SECRET_ID_ENV] = self.approle_secret_id
            elif vault_proxy is not None:
                del cfg["vault"]["token"]
                cfg["vault"]["auth"] = {"method": "proxy"}
            elif token_via_env:
                # The token reaches the VM through Envoy's environment, not the config.
                del cfg["vault"]["token"]
                cfg["vault"]["token_env"] = TOKEN_ENV
                envoy_env[TOKEN_ENV] = self.bao.filter_token
            self.plugin_config = cfg
            text = render(
                envoy_config.read_text(),
                {
                    "ADMIN_PORT": self.admin_port,
                    "LISTEN_PORT": self.listen_port,
                    "WASM": wasm,
                    "DYNAMIC_MODULE": dynamic_module,
                    "PLUGIN_CONFIG": json.dumps(cfg),
                    "PRECHECK_CONFIG": json.dumps(precheck_config(cfg)),
                    "AWS_PORT": aws_port,
                    "VAULT_PORT": vault_port or self.bao.port,
                },
            )
            self.envoy = Envoy(self.logdir, text, log_level=log_level, concurrency=concurrency, env=envoy_env,
                               envoy_bin=envoy_bin, component="wasm" if host == "wasm" else "dynamic_modules")
            self.procs.append(self.envoy)
            self.envoy.wait_ready(self.admin_port)
            self.proxy = f"http://127.0.0.1:{self.listen_port}"
            if cfg["vault"].get("auth", {}).get("method", "token") == "token" and cfg.get("mode") != "precheck":
                # The filter looks its token up at its first tick (the dynamic module's on the
                # main thread, as its configuration loads): wait for that callout's outcome, so
                # that no test counts it among its own vault calls.
                wait_until(lambda: "grant-sigv4 vault token" in self.envoy.proc.log_text(),
                           "the filter's vault token lookup", proc=self.envoy.proc)
        except BaseException:
            self.stop()
            raise

    def client(self, service: str, grant: str | None, region: str = "us-east-1", host: str | None = None,
               extra_headers: dict | None = None):
        """A boto3 client that sends unsigned requests through Envoy, with the grant header."""
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        host = host or f"{service}.{region}.amazonaws.com"
        c = boto3.client(
            service,
            region_name=region,
            endpoint_url=f"http://{host}",
            config=Config(
                signature_version=UNSIGNED,
                proxies={"http": self.proxy},
                retries={"max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

        def add_headers(request, **_):
            if grant is not None:
                request.headers["x-grant-id"] = grant
            for k, v in (extra_headers or {}).items():
                request.headers[k] = v

        c.meta.events.register("before-send.*.*", add_headers)
        return c

    def raw(self, method: str, url: str, headers: dict | None = None, body: bytes | None = None,
            chunks: list[bytes] | None = None):
        """A raw request through Envoy as an HTTP proxy (absolute-form); with ``chunks``, the
        body is sent with ``transfer-encoding: chunked`` and no content-length."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=10)
        try:
            if chunks is not None:
                conn.request(method, url, body=iter(chunks), headers=headers or {}, encode_chunked=True)
            else:
                conn.request(method, url, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def upstream_requests(self) -> int:
        """Requests Envoy sent to the AWS stand-in."""
        return self.envoy.counter("cluster.aws.upstream_rq_total")

    def vault_requests(self) -> int:
        """Callouts Envoy sent to the vault."""
        return self.envoy.counter("cluster.vault.upstream_rq_total")

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass
        self.procs = []

    def cleanup(self):
        shutil.rmtree(self.logdir, ignore_errors=True)


def main_stack(host: str = "wasm", user: str = "app-user", grant: str = "grant-main-1", **stack):
    """The stack most tests share, as a fixture's body: moto user ``user``'s key stored as
    grant ``grant`` (``s.creds``, ``s.grant``); ``stack``: more arguments of ``Stack``. Stopped
    and removed when the fixture ends."""
    s = Stack(host=host, **stack)
    try:
        s.creds = s.moto.create_user_key(user)
        s.grant = grant
        s.bao.put_grant(s.grant, s.creds)
        yield s
    finally:
        s.stop()
        s.cleanup()

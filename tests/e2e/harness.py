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
TOKEN_ENV = "GRANT_SIGV4_VAULT_TOKEN"


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
                 env: dict | None = None):
        self.config_path = logdir / f"envoy-{secrets.token_hex(4)}.yaml"
        self.config_path.write_text(config_text)
        self.proc = Proc(
            "envoy",
            [
                str(VENV_BIN / "envoy"),
                "-c",
                str(self.config_path),
                "--use-dynamic-base-id",
                "--concurrency",
                str(concurrency),
                "--log-level",
                log_level,
                "--component-log-level",
                "wasm:debug" if log_level == "info" else f"wasm:{log_level}",
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
            cfg[k].update(v)
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
                 envoy_config: Path = ENVOY_LOCAL, token_via_env: bool = False, wasm: Path = WASM):
        """``aws_port``: send AWS traffic to this local port instead of starting moto.
        ``vault_port``: point the vault cluster elsewhere (OpenBao is started anyway)."""
        self.logdir = Path(tempfile.mkdtemp(prefix="grant-sigv4-"))
        self.procs = []
        try:
            self.bao = OpenBao(self.logdir)
            self.procs.append(self.bao)
            self.moto = None
            if aws_port is None:
                self.moto = Moto(self.logdir, no_auth)
                self.procs.append(self.moto)
                aws_port = self.moto.port
            self.listen_port = free_port()
            self.admin_port = free_port()
            cfg = plugin_config(self.bao.token, **(plugin_overrides or {}))
            envoy_env = {}
            if token_via_env:
                # The token reaches the VM through Envoy's environment, not the config.
                del cfg["vault"]["token"]
                cfg["vault"]["token_env"] = TOKEN_ENV
                envoy_env[TOKEN_ENV] = self.bao.token
            self.plugin_config = cfg
            text = render(
                envoy_config.read_text(),
                {
                    "ADMIN_PORT": self.admin_port,
                    "LISTEN_PORT": self.listen_port,
                    "WASM": wasm,
                    "PLUGIN_CONFIG": json.dumps(cfg),
                    "PRECHECK_CONFIG": json.dumps(precheck_config(cfg)),
                    "AWS_PORT": aws_port,
                    "VAULT_PORT": vault_port or self.bao.port,
                },
            )
            self.envoy = Envoy(self.logdir, text, log_level=log_level, concurrency=concurrency, env=envoy_env)
            self.procs.append(self.envoy)
            self.envoy.wait_ready(self.admin_port)
        except BaseException:
            self.stop()
            raise
        self.proxy = f"http://127.0.0.1:{self.listen_port}"

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

    def raw(self, method: str, url: str, headers: dict | None = None, body: bytes | None = None):
        """A raw request through Envoy as an HTTP proxy (absolute-form)."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=10)
        try:
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

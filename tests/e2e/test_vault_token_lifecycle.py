"""The filter keeps its own Vault token alive, against the real OpenBao dev server.

Three stacks side by side (three Envoys, each with its own OpenBao and moto):

- ``periodic``: ``vault.auth.method`` ``token`` with a periodic token (15 s period) bound to
  the filter's policy: the filter looks it up and renews it with ``renew-self``;
- ``approle``: ``vault.auth.method`` ``approle`` with a 10 s token TTL and a 30 s max TTL: the
  filter logs in, renews, and logs in again before the max TTL;
- ``approle-native``: the same with the dynamic module (the same engine on the other host);
- ``proxied``: ``vault.auth.method`` ``proxy`` behind the real OpenBao Proxy, whose own token
  (10 s TTL, 30 s max TTL) the proxy renews and replaces.

All carry 60 s of steady traffic at the same time (one window, not several): the first three
with a 5 s grant cache (so the token is used for background refreshes all along) and a new
grant every second (a read with the current token each time), the proxied one with a new grant
for every request (a vault read through the proxy each time). Then the tokens are revoked in
the middle of traffic.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from harness import STAT_NAMESPACE, Stack, wait_until

STS_URL = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
WINDOW_SECONDS = 60
CACHE = {"cache": {"ttl_seconds": 5, "refresh_ahead_seconds": 2}}


@pytest.fixture(scope="module")
def stacks():
    made = {}
    try:
        # First, so that the time it takes to start does not count in the periodic token's
        # renewals. A new grant for every request is faster than the default limit on
        # new-grant fetches (50/s): that limit is tested in test_vault_load.py.
        made["proxied"] = Stack(vault_proxy={"token_ttl": "10s", "token_max_ttl": "30s"},
                                plugin_overrides={"new_grant_fetches": {"per_second": 100000, "burst": 100000}})
        made["periodic"] = Stack(filter_token={"period": "15s"}, plugin_overrides=CACHE)
        made["approle"] = Stack(approle={"token_ttl": "10s", "token_max_ttl": "30s"}, plugin_overrides=CACHE)
        made["approle-native"] = Stack(host="native", approle={"token_ttl": "10s", "token_max_ttl": "30s"},
                                       plugin_overrides=CACHE)
        for s in made.values():
            s.creds = s.moto.create_user_key("lifecycle-user")
            s.bao.put_grant("g-steady", s.creds)
        yield made
    finally:
        for s in made.values():
            s.stop()
            s.cleanup()


def sts(s: Stack, grant: str):
    return s.raw("GET", STS_URL, headers={"x-grant-id": grant})


class Traffic:
    """Steady requests through one stack, in a thread: the cached grant, and a new grant
    every ``new_every`` seconds (stored in OpenBao with the root token, then read by the
    filter)."""

    def __init__(self, s: Stack, name: str, new_every: float = 1.0):
        self.s, self.name, self.new_every = s, name, new_every
        self.results: list[tuple[float, str, int, bytes]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        n, next_new = 0, time.monotonic()
        while not self.stop.is_set():
            grant = "g-steady"
            if time.monotonic() >= next_new:
                n += 1
                grant = f"g-{self.name}-{n}"
                self.s.bao.put_grant(grant, self.s.creds)
                next_new += self.new_every
            try:
                status, _, body = sts(self.s, grant)
            except OSError as e:
                status, body = 0, str(e).encode()
            self.results.append((time.monotonic(), grant, status, body))

    def failures(self, since: float = 0.0):
        return [(g, st, b[:200]) for t, g, st, b in self.results if st != 200 and t >= since]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def token_lookup(s: Stack, token: str) -> dict:
    status, body = s.bao.request("POST", "/v1/auth/token/lookup", {"token": token})
    assert status == 200, (status, body)
    return body["data"]


def approle_accessors(s: Stack) -> list[str]:
    """Accessors of the live tokens issued by AppRole logins."""
    status, body = s.bao.request("LIST", "/v1/auth/token/accessors")
    assert status == 200, (status, body)
    out = []
    for a in body["data"]["keys"]:
        st, info = s.bao.request("POST", "/v1/auth/token/lookup-accessor", {"accessor": a})
        if st == 200 and info["data"].get("path") == "auth/approle/login":
            out.append(a)
    return out


def revoke_approle_tokens(s: Stack) -> list[str]:
    """Revoke every live token of an AppRole login; their accessors."""
    revoked = approle_accessors(s)
    for a in revoked:
        st, body = s.bao.request("POST", "/v1/auth/token/revoke-accessor", {"accessor": a})
        assert st in (200, 204), (st, body)
    return revoked


def test_tokens_are_renewed_and_replaced_under_60s_of_traffic(stacks):
    periodic, approle = stacks["periodic"], stacks["approle"]
    created = token_lookup(periodic, periodic.bao.filter_token)
    assert created["period"] == 15 and created["renewable"], created
    start = time.monotonic()
    native, proxied = stacks["approle-native"], stacks["proxied"]
    proxy_token = proxied.bao_proxy.token()
    with (Traffic(periodic, "p") as tp, Traffic(approle, "a") as ta, Traffic(native, "n") as tn,
          Traffic(proxied, "x", new_every=0.0) as tx):
        time.sleep(WINDOW_SECONDS)  # the traffic window itself, not a synchronization
    elapsed = time.monotonic() - start
    # Behind the proxy: a new grant for every request, read through the proxy, none failed,
    # and the max TTL made the proxy log in again.
    assert len(tx.results) >= 30 and all(g != "g-steady" for _, g, _, _ in tx.results), len(tx.results)
    assert tx.failures() == [], tx.failures()[:3]
    assert proxied.bao_proxy.token() != proxy_token, "the max TTL should have made the proxy log in again"
    assert proxied.bao_proxy.proc.log_text().count("authentication successful") >= 2
    p_stats, a_stats, n_stats = periodic.envoy.stats(), approle.envoy.stats(), native.envoy.stats()
    n_ns = STAT_NAMESPACE["native"]
    figures = {
        "seconds": round(elapsed, 1),
        "periodic": {"requests": len(tp.results), "failed": len(tp.failures()),
                     "renewals": p_stats.get("wasmcustom.grant_sigv4.vault_token_renewals", 0),
                     "auth_failures": p_stats.get("wasmcustom.grant_sigv4.vault_auth_failures", 0),
                     "ttl_gauge": p_stats.get("wasmcustom.grant_sigv4.vault_token_ttl_seconds")},
        "approle": {"requests": len(ta.results), "failed": len(ta.failures()),
                    "logins": a_stats.get("wasmcustom.grant_sigv4.vault_logins", 0),
                    "renewals": a_stats.get("wasmcustom.grant_sigv4.vault_token_renewals", 0),
                    "auth_failures": a_stats.get("wasmcustom.grant_sigv4.vault_auth_failures", 0),
                    "ttl_gauge": a_stats.get("wasmcustom.grant_sigv4.vault_token_ttl_seconds")},
        "approle-native": {"requests": len(tn.results), "failed": len(tn.failures()),
                           "logins": n_stats.get(f"{n_ns}.grant_sigv4.vault_logins", 0),
                           "renewals": n_stats.get(f"{n_ns}.grant_sigv4.vault_token_renewals", 0),
                           "auth_failures": n_stats.get(f"{n_ns}.grant_sigv4.vault_auth_failures", 0),
                           "ttl_gauge": n_stats.get(f"{n_ns}.grant_sigv4.vault_token_ttl_seconds")},
    }
    print("vault token lifecycle:", json.dumps(figures))
    assert tp.failures() == [] and ta.failures() == [] and tn.failures() == [], (
        tp.failures()[:3], ta.failures()[:3], tn.failures()[:3])
    assert len(tp.results) > 100 and len(ta.results) > 100 and len(tn.results) > 100
    # Periodic token: alive 60 s after its creation with a 15 s period, so renewed, and by
    # the filter (one process: one renewal every ~10 s, not one per worker).
    after = token_lookup(periodic, periodic.bao.filter_token)
    assert 0 < after["ttl"] <= 15, after
    assert after.get("last_renewal_time"), after
    assert 4 <= figures["periodic"]["renewals"] <= 9, figures
    # AppRole, 30 s max TTL over 60 s: several logins, renewals between them, on both hosts.
    for name in ("approle", "approle-native"):
        assert figures[name]["logins"] >= 2, figures
        assert figures[name]["renewals"] >= 2, figures
    for name in ("periodic", "approle", "approle-native"):
        assert figures[name]["auth_failures"] == 0, figures
        assert 0 < figures[name]["ttl_gauge"] <= 15, figures


def test_approle_token_revoked_mid_traffic_signing_resumes(stacks):
    s = stacks["approle"]
    logins = s.envoy.counter("wasmcustom.grant_sigv4.vault_logins")
    with Traffic(s, "rev", new_every=0.3) as t:
        wait_until(lambda: len(t.results) > 20, "traffic before the revocation")
        assert revoke_approle_tokens(s)
        cut = time.monotonic()
        # Signing resumes: new grants (read with a new token) succeed after the revocation.
        wait_until(lambda: len([r for r in t.results if r[0] > cut and r[1] != "g-steady" and r[2] == 200]) >= 5,
                   "new grants signed after the revocation", timeout=30)
        resumed = time.monotonic()
        wait_until(lambda: len([r for r in t.results if r[0] > resumed]) > 20, "traffic after the revocation")
    failed = t.failures(since=cut)
    print("approle revoked:", json.dumps({"failed": len(failed), "requests": len(t.results)}))
    # At most one failed request per worker (2); normally none (the read is retried).
    assert len(failed) <= 2, failed
    assert t.failures(since=resumed) == []
    wait_until(lambda: s.envoy.counter("wasmcustom.grant_sigv4.vault_logins") > logins, "a new login counted")
    assert s.envoy.counter("wasmcustom.grant_sigv4.vault_auth_failures") >= 1


def test_static_token_revoked_cached_grants_stale_new_grants_503(stacks):
    s = stacks["periodic"]
    status, _, body = sts(s, "g-steady")
    assert status == 200, body
    stale_before = s.envoy.counter("wasmcustom.grant_sigv4.cache_stale_serves")
    failures_before = s.envoy.counter("wasmcustom.grant_sigv4.vault_auth_failures")
    st, body = s.bao.request("POST", "/v1/auth/token/revoke", {"token": s.bao.filter_token})
    assert st in (200, 204), (st, body)
    s.bao.put_grant("g-after-revoke", s.creds)
    status, _, body = sts(s, "g-after-revoke")
    reply = json.loads(body)
    assert (status, reply["error"]) == (503, "VaultUnavailable"), body
    assert "refused the filter's token" in reply["message"], reply
    # The cached grant is served past its 5 s TTL, stale, while the vault refuses the token.
    wait_until(lambda: sts(s, "g-steady")[0] == 200
               and s.envoy.counter("wasmcustom.grant_sigv4.cache_stale_serves") > stale_before,
               "the cached grant served stale", timeout=30)
    wait_until(lambda: s.envoy.counter("wasmcustom.grant_sigv4.vault_auth_failures") > failures_before,
               "the refusal counted as an auth failure")


def test_approle_login_refused_answers_503_naming_it(stacks):
    """The secret id destroyed and the token revoked: the new login is refused, and a new
    grant's request gets a 503 that says so (last: the stack cannot log in again)."""
    s = stacks["approle"]
    failures = s.envoy.counter("wasmcustom.grant_sigv4.vault_auth_failures")
    st, body = s.bao.request("POST", "/v1/auth/approle/role/grant-sigv4-filter/secret-id/destroy",
                             {"secret_id": s.approle_secret_id})
    assert st in (200, 204), (st, body)
    revoke_approle_tokens(s)
    s.bao.put_grant("g-after-secret-id", s.creds)
    status, _, body = sts(s, "g-after-secret-id")
    reply = json.loads(body)
    assert (status, reply["error"]) == (503, "VaultUnavailable"), body
    assert "the filter's vault login failed" in reply["message"], reply
    assert "invalid role or secret ID" in reply["message"], reply
    assert s.approle_secret_id not in body.decode()
    wait_until(lambda: s.envoy.counter("wasmcustom.grant_sigv4.vault_auth_failures") > failures,
               "the refused login counted")

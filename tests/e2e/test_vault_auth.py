"""The filter's Vault credential: the shipped least-privilege policy, and no Vault secret in
Envoy at all behind the real OpenBao Proxy (AppRole auto-auth, ``use_auto_auth_token =
"force"``, ``vault.auth.method`` ``proxy``)."""

import json

import pytest

from harness import Stack, http_get, wait_until

STS_URL = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"

ADMIN_PATHS = ["/config_dump", "/config_dump?include_eds", "/stats", "/stats?format=json",
               "/stats/prometheus", "/clusters", "/server_info"]


def vault_call(bao, token: str, method: str, path: str, body: dict | None = None) -> int:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(bao.addr + path, data=data, method=method, headers={"X-Vault-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_filter_token_reads_grants_and_nothing_else(stack):
    """``vault/policies/grant-sigv4-filter.hcl``: read under the grant prefix, nothing more."""
    t = stack.bao.filter_token
    stack.bao.request("POST", "/v1/secret/data/elsewhere/x", {"data": {"a": "b"}})
    assert vault_call(stack.bao, t, "GET", f"/v1/secret/data/aws/grants/{stack.grant}") == 200
    assert vault_call(stack.bao, t, "LIST", "/v1/secret/metadata/aws/grants") == 403
    assert vault_call(stack.bao, t, "GET", "/v1/secret/metadata/aws/grants?list=true") == 403
    assert vault_call(stack.bao, t, "GET", f"/v1/secret/metadata/aws/grants/{stack.grant}") == 403
    assert vault_call(stack.bao, t, "POST", "/v1/secret/data/aws/grants/new-one", {"data": {"x": "y"}}) == 403
    assert vault_call(stack.bao, t, "POST", f"/v1/secret/data/aws/grants/{stack.grant}", {"data": {}}) == 403
    assert vault_call(stack.bao, t, "DELETE", f"/v1/secret/metadata/aws/grants/{stack.grant}") == 403
    assert vault_call(stack.bao, t, "GET", "/v1/secret/data/elsewhere/x") == 403
    assert vault_call(stack.bao, t, "GET", "/v1/sys/policies/acl/grant-sigv4-filter") == 403
    # ... and the filter signs with it: the default stack's plugin token is this one.
    assert stack.plugin_config["vault"]["token"] == t
    assert stack.client("sts", stack.grant).get_caller_identity()["Arn"].endswith(":user/app-user")


@pytest.fixture(scope="module")
def proxied():
    s = Stack(vault_proxy={"token_ttl": "10s", "token_max_ttl": "30s"}, log_level="trace")
    try:
        s.creds = s.moto.create_user_key("proxied-user")
        s.bao.put_grant("g-proxied", s.creds)
        yield s
    finally:
        s.stop()
        s.cleanup()


def sts(s, grant: str):
    return s.raw("GET", STS_URL, headers={"x-grant-id": grant})


def test_proxy_signs_with_no_vault_secret_in_envoy(proxied):
    status, _, body = sts(proxied, "g-proxied")
    assert status == 200, body
    assert "token" not in proxied.plugin_config["vault"] and "token_env" not in proxied.plugin_config["vault"]
    secrets_ = {"proxy token": proxied.bao_proxy.token(), "secret id": proxied.bao_proxy.secret_id,
                "filter token": proxied.bao.filter_token, "root token": proxied.bao.token}
    for path in ADMIN_PATHS:
        st, text = http_get(proxied.envoy.admin + path)
        assert st == 200, path
        for what, value in secrets_.items():
            assert value not in text.decode(), f"{what} in {path}"
    log = proxied.envoy.proc.log_text()
    assert "router decoding headers" in log, "the trace log should show what Envoy sent"
    for what, value in secrets_.items():
        assert value not in log, f"{what} in Envoy's trace log"
    # The callouts carried no token at all: the filter sends none, the proxy adds its own.
    assert "x-vault-token" not in log
    environ = open(f"/proc/{proxied.envoy.proc.popen.pid}/environ", "rb").read().decode(errors="replace")
    for what, value in secrets_.items():
        assert value not in environ, f"{what} in Envoy's environment"
    assert "vault auth proxy" in log


def test_proxy_reauthenticates_after_its_token_is_revoked(proxied):
    status, _, _ = sts(proxied, "g-proxied")
    assert status == 200
    old = proxied.bao_proxy.token()
    assert proxied.bao.request("POST", "/v1/auth/token/revoke", {"token": old})[0] == 204
    failures = []

    def reauthenticated():
        st, _, body = sts(proxied, "g-proxied")  # cached: signs all the while
        if st != 200:
            failures.append((st, body))
        return proxied.bao_proxy.token() != old

    wait_until(reauthenticated, "OpenBao Proxy re-authentication", timeout=30, proc=proxied.bao_proxy.proc)
    assert failures == []
    proxied.bao.put_grant("g-after-revoke", proxied.creds)
    status, _, body = sts(proxied, "g-after-revoke")
    assert status == 200, body


# The proxy keeping its token alive under 60 s of steady traffic (a new grant for every request)
# is tested in test_vault_token_lifecycle.py, in the traffic window of the filter's own tokens.


def test_proxy_down_names_the_proxy_and_recovers(proxied):
    proxied.bao.put_grant("g-before-outage", proxied.creds)
    assert sts(proxied, "g-before-outage")[0] == 200
    proxied.bao_proxy.stop()
    try:
        proxied.bao.put_grant("g-during-outage", proxied.creds)
        status, _, body = sts(proxied, "g-during-outage")
        assert status == 503, body
        doc = json.loads(body)
        assert doc["error"] == "VaultUnavailable"
        assert "through the Vault/OpenBao Proxy (cluster vault)" in doc["message"], doc
        assert sts(proxied, "g-before-outage")[0] == 200, "a cached grant keeps signing"
    finally:
        proxied.bao_proxy.start()
    # The negative cache does not hold failures: the same grant works once the proxy is back.
    wait_until(lambda: sts(proxied, "g-during-outage")[0] == 200, "signing after the proxy restarted")

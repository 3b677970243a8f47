"""No leaks: the grant's secret access key, its session token and the Vault token appear only
where they must.

One stack at Envoy's most verbose log level (``trace``), with the Vault token passed through
Envoy's environment (``vault.token_env``), a recording relay in front of OpenBao (it sees
every vault callout, and answers some grants itself with a 500, a reset or HTML), and an
echo server as AWS (it records every forwarded request; any key "works" there, so no moto).
A module fixture drives signed requests that succeed (GET, a POST whose body is hashed,
a cached grant) and requests that fail (unknown grant, policy denied, non-AWS host, a body
without hash, bad records holding the secret, vault 500 / reset / HTML), then the tests look
for the three values in Envoy's log, in the admin endpoints, in every local reply (headers
and body) and in every forwarded request:

- the secret access key: nowhere at all (only the signature derived from it is forwarded);
- the session token: only as ``x-amz-security-token`` on signed requests;
- the Vault token: only as ``X-Vault-Token`` on the vault callouts (checked at the relay).

Found: at ``trace`` (or ``debug``) level Envoy's own router logs every header of every request
it sends upstream ("router decoding headers:"), so the session token (``x-amz-security-token``
to AWS) and the Vault token (``x-vault-token`` on the callout) are in Envoy's log. The filter
itself never logs them (``test_filter_log_lines_hold_no_secret``); the whole-log check is an
``xfail(strict=True)`` that documents this: do not run Envoy's ``router`` component at debug or
trace level in production.

A second, default stack (inline ``vault.token``) shows that ``/config_dump`` then holds the
Vault token, which is why ``token_env`` is the advice.

A third stack logs in with AppRole (``vault.auth.method`` ``approle``, ``secret_id_env``),
at trace level behind the relay: the secret id is only in the login's body, and the token
the login gave only on the vault callouts (and, like any upstream header, in Envoy's router
header dumps).
"""

from __future__ import annotations

import json

import pytest

from echo import Echo
from fakes import FakeVault
from harness import HOSTS, Stack, http_get, wait_until

SECRET = "LeakCanarySecretKey/0123456789+abcdefXYZqrs"
SESSION = "LeakCanarySessionToken-IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMQ=="
AKID = "AKIALEAKCANARY000001"
STS = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
ADMIN_PATHS = [
    "/config_dump",
    "/config_dump?include_eds",
    "/stats",
    "/stats?format=json",
    "/stats/prometheus",
    "/clusters",
    "/clusters?format=json",
    "/server_info",
    "/listeners",
    "/runtime",
]


def VaultRelay(answers: dict) -> FakeVault:  # noqa: N802 - reads as the class it was
    """Forwards vault callouts to OpenBao and records them; some grants are answered here."""
    return FakeVault(answers, relay_unknown=True)


def dump(obj) -> str:
    """Everything recorded about a request or reply, as one string to search."""
    return json.dumps(obj, default=lambda b: b.decode("latin-1"))


# (name, method, url, grant, extra headers, body, expected status)
TRAFFIC = [
    ("signed-get", "GET", STS, "g-leak", {}, None, 200),
    ("signed-get-cached", "GET", STS, "g-leak", {"x-amz-target": "X.Y"}, None, 200),
    ("signed-post-hashed", "POST", "http://sts.us-east-1.amazonaws.com/", "g-leak",
     {"content-type": "application/x-www-form-urlencoded"}, b"Action=GetCallerIdentity&Version=2011-06-15", 200),
    ("signed-s3-put", "PUT", "http://s3.us-east-1.amazonaws.com/b/k", "g-leak", {}, b"object body", 200),
    ("unknown-grant", "GET", STS, "g-never-stored", {}, None, 403),
    ("policy-denied", "GET", STS, "g-deny", {}, None, 403),
    ("non-aws-host", "GET", "http://example.com/", "g-leak", {}, None, 403),
    ("lookalike-host", "GET", "http://s3.amazonaws.com.evil.example/", "g-leak", {}, None, 403),
    ("no-body-hash", "GET", "http://sqs.us-east-1.amazonaws.com/", "g-leak", {}, b"payload", 400),
    ("presigned", "GET", "http://sts.us-east-1.amazonaws.com/?X-Amz-Signature=abc", "g-leak", {}, None, 400),
    ("record-bad-akid", "GET", STS, "g-bad-akid", {}, None, 502),
    ("record-bad-session", "GET", STS, "g-bad-session", {}, None, 502),
    ("vault-500", "GET", STS, "g-500", {}, None, 503),
    ("vault-reset", "GET", STS, "g-reset", {}, None, 503),
    ("vault-html", "GET", STS, "g-html", {}, None, 503),
]


# Where the native host answers otherwise: it hashes a body itself (and forwards it signed).
NATIVE_STATUS = {"no-body-hash": 200}
# How each host's own log lines are told apart from Envoy's.
OWN_LOG_MARK = {"wasm": "wasm log", "native": "[dynamic_modules]"}


@pytest.fixture(scope="module", params=HOSTS)
def leaky(request):
    relay = VaultRelay({
        "g-500": (500, "application/json", b'{"errors":["internal"]}'),
        "g-reset": "reset",
        "g-html": (200, "text/html", b"<html>sealed</html>"),
    })
    echo = Echo()
    s = None
    try:
        s = Stack(aws_port=echo.port, vault_port=relay.port, concurrency=1, log_level="trace", token_via_env=True,
                  host=request.param)
        relay.upstream = s.bao.addr
        key = {"access_key_id": AKID, "secret_access_key": SECRET, "session_token": SESSION}
        s.bao.put_grant("g-leak", key)
        s.bao.put_grant("g-deny", {**key, "allowed_services": ["s3"]})
        s.bao.put_grant("g-bad-akid", {**key, "access_key_id": "not-an-akid"})
        s.bao.put_grant("g-bad-session", {**key, "session_token": SESSION + " " + SECRET})
        replies = {}
        for name, method, url, grant, headers, body, expected in TRAFFIC:
            status, hdrs, reply = s.raw(method, url, headers={"x-grant-id": grant, **headers}, body=body)
            if s.host == "native":
                expected = NATIVE_STATUS.get(name, expected)
            assert status == expected, (name, status, reply)
            replies[name] = {"status": status, "headers": hdrs, "body": reply}
        s.replies = replies
        s.relay = relay
        s.echo = echo
        s.admin_outputs = {p: http_get(s.envoy.admin + p)[1].decode("latin-1") for p in ADMIN_PATHS}
        s.log = s.envoy.proc.log_text()
        yield s
    finally:
        if s is not None:
            s.stop()
            s.cleanup()
        echo.stop()
        relay.stop()


def test_traffic_was_signed_with_the_session_token(leaky):
    signed = [r for r in leaky.echo.requests]
    assert len(signed) == 4 + (1 if leaky.host == "native" else 0)
    for req in signed:
        h = {k.lower(): v for k, v in req["headers"].items()}
        assert h["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")
        assert "x-amz-security-token" in h["authorization"]  # signed
        assert h["x-amz-security-token"] == SESSION
    # The log really is at trace level, with the filter's own lines in it.
    if leaky.host == "wasm":
        assert "[trace][wasm]" in leaky.log and "wasm log grant_sigv4" in leaky.log
    else:
        assert "[trace][router]" in leaky.log and "[debug][dynamic_modules] [:] signed" in leaky.log


def test_secret_appears_nowhere(leaky):
    assert SECRET not in leaky.log, "secret in Envoy's log"
    for path, text in leaky.admin_outputs.items():
        assert SECRET not in text, f"secret in admin {path}"
    for name, reply in leaky.replies.items():
        assert SECRET not in dump(reply), f"secret in the reply to {name}"
    for req in leaky.echo.requests:
        assert SECRET not in dump(req), "secret forwarded upstream (headers, Authorization or body)"
    for req in leaky.relay.requests:
        assert SECRET not in dump(req), "secret sent to the vault"


def test_session_token_only_in_x_amz_security_token(leaky):
    for path, text in leaky.admin_outputs.items():
        assert SESSION not in text, f"session token in admin {path}"
    for name, reply in leaky.replies.items():
        assert SESSION not in dump(reply), f"session token in the reply to {name}"
    for req in leaky.echo.requests:
        others = {k: v for k, v in req["headers"].items() if k.lower() != "x-amz-security-token"}
        assert SESSION not in dump({**req, "headers": others}), "session token forwarded outside x-amz-security-token"


def test_vault_token_only_on_the_vault_callout(leaky):
    token = leaky.bao.filter_token
    assert token not in json.dumps(leaky.plugin_config)
    for path, text in leaky.admin_outputs.items():
        assert token not in text, f"vault token in admin {path}"
    for name, reply in leaky.replies.items():
        assert token not in dump(reply), f"vault token in the reply to {name}"
    for req in leaky.echo.requests:
        assert token not in dump(req), "vault token forwarded to AWS"
    # ... but every callout carried it (through the environment, token_env).
    assert len(leaky.relay.requests) >= 8
    for req in leaky.relay.requests:
        h = {k.lower(): v for k, v in req["headers"].items()}
        assert h["x-vault-token"] == token


def test_filter_log_lines_hold_no_secret(leaky):
    """What the filter itself logs (``wasm log ...`` lines, or the module's ``[dynamic_modules]``
    lines, every level up to trace)."""
    own = [line for line in leaky.log.splitlines() if OWN_LOG_MARK[leaky.host] in line]
    assert any("local reply" in line for line in own), "debug lines of the filter expected"
    for value in (SECRET, SESSION, leaky.bao.filter_token, leaky.bao.token):
        assert not [line for line in own if value in line]


def log_entries(log: str) -> list[str]:
    """Envoy log entries (an entry starts with ``[20..-..-..``; header dumps span lines)."""
    entries: list[str] = []
    for line in log.splitlines():
        if line.startswith("[20") or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return entries


@pytest.mark.parametrize("which", ["session-token", "vault-token"])
def test_tokens_in_envoy_log_only_in_the_routers_header_dumps(leaky, which):
    """Where the tokens do show up in the trace log: only in Envoy's router header dumps."""
    value = SESSION if which == "session-token" else leaky.bao.filter_token
    entries = log_entries(leaky.log)
    dumps = [e for e in entries if "router decoding headers:" in e.split("\n", 1)[0]]
    assert any(value in e for e in dumps)
    assert not [e for e in entries if value in e and e not in dumps]


@pytest.mark.xfail(
    strict=True,
    reason="Envoy's router logs every upstream request header at debug level ('router decoding "
    "headers:'), including x-amz-security-token on signed AWS requests and x-vault-token on the "
    "filter's vault callout; Envoy has no redaction for it. Not the filter's own logging: keep "
    "Envoy's router component below debug in production",
)
@pytest.mark.parametrize("which", ["session-token", "vault-token"])
def test_tokens_never_in_envoy_trace_log(leaky, which):
    value = SESSION if which == "session-token" else leaky.bao.filter_token
    assert value not in leaky.log


@pytest.mark.parametrize("host", HOSTS)
def test_inline_token_is_visible_in_config_dump(host):
    """The default (inline ``vault.token``) puts the token into Envoy's /config_dump: this backs
    the advice of docs/security.md to use ``vault.token_env``."""
    echo = Echo()
    s = None
    try:
        s = Stack(aws_port=echo.port, concurrency=1, host=host)
        assert s.plugin_config["vault"]["token"] == s.bao.filter_token
        status, body = http_get(s.envoy.admin + "/config_dump")
        assert status == 200
        assert s.bao.filter_token in body.decode()
    finally:
        if s is not None:
            s.stop()
            s.cleanup()
        echo.stop()


@pytest.fixture(scope="module")
def approle_leaky():
    """A trace-level stack whose filter logs in with AppRole (secret id from Envoy's
    environment), behind the recording relay: the login, a renewal and signed requests."""
    relay = VaultRelay({})
    echo = Echo()
    s = None
    try:
        s = Stack(aws_port=echo.port, vault_port=relay.port, concurrency=1, log_level="trace",
                  approle={"token_ttl": "6s", "token_max_ttl": "1h"})
        relay.upstream = s.bao.addr
        s.bao.put_grant("g-leak", {"access_key_id": AKID, "secret_access_key": SECRET})
        for _ in range(3):
            status, _, body = s.raw("GET", STS, headers={"x-grant-id": "g-leak"})
            assert status == 200, body
        wait_until(lambda: any(r["path"] == "/v1/auth/token/renew-self" for r in relay.requests),
                   "a renewal of the logged-in token", timeout=20)
        s.relay = relay
        s.admin_outputs = {p: http_get(s.envoy.admin + p)[1].decode("latin-1") for p in ADMIN_PATHS}
        s.log = s.envoy.proc.log_text()
        yield s
    finally:
        if s is not None:
            s.stop()
            s.cleanup()
        echo.stop()
        relay.stop()


def test_approle_secret_id_only_in_the_login_body(approle_leaky):
    s = approle_leaky
    sid = s.approle_secret_id
    assert sid not in json.dumps(s.plugin_config), "secret_id_env keeps it out of the configuration"
    assert sid not in s.log, "secret id in Envoy's trace log"
    for path, text in s.admin_outputs.items():
        assert sid not in text, f"secret id in admin {path}"
    logins = [r for r in s.relay.requests if r["path"] == "/v1/auth/approle/login"]
    assert len(logins) == 1, "one login for the process"
    assert json.loads(logins[0]["body"])["secret_id"] == sid
    assert not [r for r in s.relay.requests if r not in logins and sid in dump(r)]


def test_approle_token_only_on_the_vault_callouts(approle_leaky):
    s = approle_leaky
    tokens = {r["headers"].get("X-Vault-Token") or r["headers"].get("x-vault-token")
              for r in s.relay.requests if r["path"] != "/v1/auth/approle/login"}
    assert len(tokens) == 1 and None not in tokens, tokens
    token = tokens.pop()
    for path, text in s.admin_outputs.items():
        assert token not in text, f"logged-in token in admin {path}"
    own = [line for line in s.log.splitlines() if "wasm log" in line]
    assert any("vault login" in line for line in own)
    assert not [line for line in own if token in line], "the filter logged its token"
    # As with a configured token, only Envoy's router header dumps show it (see above).
    entries = log_entries(s.log)
    dumps = [e for e in entries if "router decoding headers:" in e.split("\n", 1)[0]]
    assert not [e for e in entries if token in e and e not in dumps]

"""Bad input, one table row per case: every refusal is a local JSON reply
``{"error": CODE, "message": ...}`` with the documented status, a message naming the cause,
``content-type: application/json``, and NOTHING forwarded to AWS (and, where the request is
refused before the grant is needed, no vault call either). A few positive rows are controls:
the same grant policy rule, satisfied, lets the request through to moto, which verifies the
signature.

Two stacks serve the whole table (``STACKS`` below):

- ``moto_stack``: OpenBao with the grant records of the rows, moto as AWS.
- ``fake_stack``: a small fake vault (``FakeVault``) in place of OpenBao, answering per grant
  id with a 500, a timeout, HTML, 70 KiB of JSON, a reset, a valid record, or relaying to the
  stack's real OpenBao with the plugin's (wrong) token so that OpenBao itself answers 403;
  and an echo server as AWS, to see exactly what is forwarded.

Requests are written as raw HTTP/1.1 bytes over a socket, so that rows can send duplicate
headers, non-ASCII bytes, an origin-form request with an odd Host, an absolute-form URL that
disagrees with the Host header, or a content-length without the body.

Absolute-form URL vs Host header: Envoy (``allow_absolute_url``) takes ``:authority`` from
the URL and drops the Host header. ``GET http://sts.us-east-1.amazonaws.com/`` with
``Host: evil.example`` is therefore signed for, and forwarded to, the STS host (row
``absolute-url-wins-over-host``: evil.example is nowhere in what is forwarded), and
``GET http://evil.example/`` with ``Host: sts.us-east-1.amazonaws.com`` is refused as a
non-AWS host (row ``absolute-evil-url-aws-host``). Nothing is ever signed for evil.example.

The table in docs/errors.md lists the same rows, in the same order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import pytest

from echo import Echo
from fakes import FakeVault, exchange, kv2
from harness import HOSTS, Stack

STS = "sts.us-east-1.amazonaws.com"
STS_GET = f"http://{STS}/?Action=GetCallerIdentity&Version=2011-06-15"
VAULT_TIMEOUT_MS = 300
ECHO_KEY = {"access_key_id": "AKIAECHOEXAMPLE00001", "secret_access_key": "echo-secret-value"}


# ---------------------------------------------------------------------------------------------
# Fake vault


# ---------------------------------------------------------------------------------------------
# Raw HTTP/1.1 exchange


def b(v) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("latin-1")


# ---------------------------------------------------------------------------------------------
# The table


@dataclass
class Row:
    id: str
    stack: str  # fixture name
    url: str  # request target: absolute-form URL, or origin-form with `host`
    status: int
    code: str | None  # None: a positive control, forwarded and answered upstream
    phrase: str | None = None  # must appear in the message
    case: str = ""  # the table's "case" column
    method: str = "GET"
    grant: str | None = "g-ok"  # x-grant-id value (None: no header)
    headers: list = field(default_factory=list)  # extra (name, value) pairs, duplicates allowed
    host: str | None = None  # Host header (default: the URL's host)
    body: bytes = b""
    content_length: int | None = None  # declared length when the body is not all sent
    record: dict | None = None  # grant record put into OpenBao (moto_stack)
    creds: bool = True  # merge the moto user's key into `record`
    vault_calls: int | None = 0  # expected vault callouts (None: not checked)
    check: Callable | None = None  # extra checks of a forwarded request
    xfail: str | None = None


def _echo_checks_absolute(stack, forwarded, reply):
    [req] = forwarded
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert h["host"] == STS
    assert "/us-east-1/sts/aws4_request" in h["authorization"]
    assert "SignedHeaders=host;" in h["authorization"]
    assert "evil.example" not in json.dumps({**req, "body": req["body"].decode("latin-1")}), "evil.example reached AWS"


def _echo_checks_dropped(stack, forwarded, reply):
    [req] = forwarded
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert "x-grant-id" not in h
    assert h["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ECHO_KEY['access_key_id']}/")
    assert "CLIENT/forged" not in h["authorization"]
    assert h["x-amz-date"] != "19990101T000000Z"
    assert re.fullmatch(r"\d{8}T\d{6}Z", h["x-amz-date"])
    assert "x-amz-security-token" not in h, "a client-sent session token was forwarded"
    assert "client-token" not in json.dumps(req["headers"])
    assert ECHO_KEY["secret_access_key"] not in json.dumps(req["headers"])


def _moto_ok(stack, forwarded, reply):
    assert b":user/bad-input-user" in reply.body, reply.body


def policy_rows():
    rows = []
    # (rule, denying value, allowing value, phrase of the denial)
    cases = [
        ("allowed_services", ["s3"], ["sts", "s3"], "allowed_services rule: service sts is not allowed"),
        ("allowed_regions", ["eu-west-1"], ["us-east-1"], "allowed_regions rule: region us-east-1 is not allowed"),
        ("allowed_methods", ["HEAD"], ["GET", "HEAD"], "allowed_methods rule: method GET is not allowed"),
        ("allowed_principals", ["spiffe://cluster.local/ns/app/*"], None, "needs an mTLS caller identity"),
        ("allowed_source_cidrs", ["10.0.0.0/8"], ["127.0.0.0/8"], "allowed_source_cidrs rule"),
    ]
    for rule, deny, allow, phrase in cases:
        short = rule.removeprefix("allowed_")
        rows.append(Row(
            f"deny-{short}", "moto_stack", STS_GET, 403, "GrantPolicyDenied", phrase,
            case=f"grant policy `{rule}: {json.dumps(deny)}` refuses the request",
            grant=f"g-deny-{short}", record={rule: deny}, vault_calls=1,
        ))
        if rule == "allowed_principals":
            # No mTLS on this listener: even a match-all pattern cannot be satisfied.
            rows.append(Row(
                "deny-principals-wildcard", "moto_stack", STS_GET, 403, "GrantPolicyDenied",
                "allowed_principals rule: this grant needs an mTLS caller identity",
                case='grant policy `allowed_principals: ["*"]`, caller without mTLS',
                grant="g-deny-principals-any", record={rule: ["*"]}, vault_calls=1,
            ))
        if allow is not None:
            rows.append(Row(
                f"allow-{short}", "moto_stack", STS_GET, 200, None,
                case=f"control: grant policy `{rule}: {json.dumps(allow)}` allows it",
                grant=f"g-allow-{short}", record={rule: allow}, vault_calls=1, check=_moto_ok,
            ))
    return rows


ROWS = [
    # --- the grant header -------------------------------------------------------------------
    Row("missing-grant", "moto_stack", STS_GET, 401, "GrantMissing", "has no x-grant-id header",
        case="no `x-grant-id` header", grant=None),
    Row("empty-grant", "moto_stack", STS_GET, 400, "GrantInvalid", "the grant id is empty",
        case="empty grant id", grant=""),
    Row("long-grant", "moto_stack", STS_GET, 400, "GrantInvalid", "longer than 128 characters",
        case="grant id of 129 characters", grant="g" * 129),
    Row("tab-in-grant", "moto_stack", STS_GET, 400, "GrantInvalid", "only letters, digits",
        case="non-printable character (tab) in the grant id", grant="g\tx"),
    Row("non-ascii-grant", "moto_stack", STS_GET, 400, "GrantInvalid", "only letters, digits",
        case="non-ASCII grant id (UTF-8 `gé`)", grant="gé".encode()),
    Row("slash-grant", "moto_stack", STS_GET, 400, "GrantInvalid", "only letters, digits",
        case="grant id with `/` (`a/b`)", grant="a/b"),
    Row("dotdot-grant", "moto_stack", STS_GET, 400, "GrantInvalid", "(not only dots)",
        case="grant id `..`", grant=".."),
    Row("two-grant-headers", "moto_stack", STS_GET, 400, "GrantAmbiguous", "has 2 x-grant-id headers",
        case="two `x-grant-id` headers", headers=[("x-grant-id", "g-ok")]),
    # --- the grant record ----------------------------------------------------------------------
    Row("unknown-grant", "moto_stack", STS_GET, 403, "GrantNotFound", "no AWS credential is stored",
        case="grant id with no record in the vault", grant="g-never-stored", vault_calls=1),
    Row("record-no-akid", "moto_stack", STS_GET, 502, "GrantRecordInvalid", "access_key_id is missing",
        case="record without `access_key_id`", grant="g-rec-no-akid",
        record={"secret_access_key": "some-secret"}, creds=False, vault_calls=1),
    Row("record-bad-akid", "moto_stack", STS_GET, 502, "GrantRecordInvalid",
        "access_key_id is not 16 to 128 upper-case letters and digits",
        case="record with a malformed `access_key_id` (`akid-lower-case`)", grant="g-rec-bad-akid",
        record={"access_key_id": "akid-lower-case"}, vault_calls=1),
    Row("record-static-and-role", "moto_stack", STS_GET, 502, "GrantRecordInvalid",
        "both a static key and aws_role",
        case="record with both a static key and `aws_role`", grant="g-rec-both",
        record={"aws_role": "reader"}, vault_calls=1),
    Row("record-bad-policy", "moto_stack", STS_GET, 502, "GrantRecordInvalid",
        "allowed_methods holds a value that is not an upper-case HTTP method",
        case='record with a malformed policy field (`allowed_methods: ["get"]`)', grant="g-rec-bad-policy",
        record={"allowed_methods": ["get"]}, vault_calls=1),
    # --- the vault ------------------------------------------------------------------------------
    Row("vault-403", "fake_stack", STS_GET, 503, "VaultUnavailable", "refused the filter's token (403)",
        case="vault refuses the filter's token (OpenBao, plugin token `wrong`)", grant="g-403", vault_calls=1),
    Row("vault-500", "fake_stack", STS_GET, 503, "VaultUnavailable", "the vault answered 500",
        case="vault answers 500", grant="g-500", vault_calls=1),
    Row("vault-timeout", "fake_stack", STS_GET, 503, "VaultUnavailable", "timed out",
        case=f"vault answers after the callout timeout ({VAULT_TIMEOUT_MS} ms)", grant="g-slow", vault_calls=1),
    Row("vault-html", "fake_stack", STS_GET, 503, "VaultUnavailable", "not a KV version 2 JSON document",
        case="vault answers 200 `text/html`", grant="g-html", vault_calls=1),
    Row("vault-huge", "fake_stack", STS_GET, 503, "VaultUnavailable", "larger than 64 KiB",
        case="vault answers 200 with 70 KiB of JSON", grant="g-huge", vault_calls=1),
    Row("vault-reset", "fake_stack", STS_GET, 503, "VaultUnavailable", "reset",
        case="vault closes the connection without answering (RST)", grant="g-reset", vault_calls=1),
    # --- the host --------------------------------------------------------------------------------
    Row("non-aws-host", "moto_stack", "http://example.com/", 403, "NotAwsEndpoint",
        "example.com is not an AWS endpoint host name", case="non-AWS host `example.com`"),
    Row("lookalike-host", "moto_stack", "http://s3.amazonaws.com.evil.example/", 403, "NotAwsEndpoint",
        "s3.amazonaws.com.evil.example is not an AWS endpoint host name",
        case="look-alike host `s3.amazonaws.com.evil.example`"),
    Row("ip-literal-host", "moto_stack", "http://127.0.0.1/", 403, "NotAwsEndpoint",
        "127.0.0.1 is not an AWS endpoint host name", case="IP literal host `127.0.0.1`"),
    Row("bad-port-host", "moto_stack", "/", 403, "NotAwsEndpoint", ":99999 is not usable",
        case="unparseable host (origin-form, `Host: sts.us-east-1.amazonaws.com:99999`)",
        host=f"{STS}:99999"),
    Row("absolute-url-wins-over-host", "fake_stack", STS_GET, 200, None,
        case="absolute-form `GET http://sts.us-east-1.amazonaws.com/` with `Host: evil.example`: "
             "Envoy uses the URL's host; signed and forwarded for STS, evil.example dropped",
        grant="g-echo", host="evil.example", vault_calls=None, check=_echo_checks_absolute),
    Row("absolute-evil-url-aws-host", "fake_stack", "http://evil.example/", 403, "NotAwsEndpoint",
        "evil.example is not an AWS endpoint host name",
        case="absolute-form `GET http://evil.example/` with `Host: sts.us-east-1.amazonaws.com`",
        grant="g-echo", host=STS),
    Row("sigv4a-mrap-host", "moto_stack", "http://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com/k",
        400, "NotSigV4", "not signed with SigV4",
        case="S3 Multi-Region Access Point host (SigV4A only)"),
    Row("s3-accelerate-host", "moto_stack", "http://bucket.s3-accelerate.amazonaws.com/k", 400, "RegionUnknown",
        "the signing region of bucket.s3-accelerate.amazonaws.com is not in its name",
        case="S3 Transfer Acceleration host `bucket.s3-accelerate.amazonaws.com`"),
    # --- the body and its hash ---------------------------------------------------------------------
    Row("body-too-large", "moto_stack", "http://dynamodb.us-east-1.amazonaws.com/", 413, "BodyTooLarge",
        "more than max_body_bytes (8388608)", method="POST",
        case="`content-length: 8388609` (over `max_body_bytes`), body not sent",
        headers=[("content-type", "application/x-amz-json-1.0")], body=b"{" * 1024,
        content_length=8 * 1024 * 1024 + 1),
    Row("get-with-body", "moto_stack", "http://sqs.us-east-1.amazonaws.com/", 400, "PayloadHashRequired",
        "a body whose SHA-256 is unknown", case="GET with a body (route without body hasher)",
        body=b"payload"),
    Row("bad-content-sha256", "moto_stack", STS_GET, 400, "BadContentSha256", "must be 64 hex digits",
        case="`x-amz-content-sha256: not-a-hash`", headers=[("x-amz-content-sha256", "not-a-hash")]),
    Row("chunk-signed-upload", "moto_stack", "http://s3.us-east-1.amazonaws.com/b/k", 400,
        "ChunkSignedPayloadUnsupported", "per-chunk signed uploads", method="PUT",
        case="`x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`",
        headers=[("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")], body=b"0\r\n\r\n"),
    Row("presigned-query", "moto_stack", f"http://{STS}/?Action=GetCallerIdentity&X-Amz-Signature=abc", 400,
        "QuerySignatureNotAllowed", "already carries SigV4 parameters",
        case="`X-Amz-Signature` in the query (presigned URL)"),
    # --- header values -------------------------------------------------------------------------
    Row("signed-header-not-utf8", "moto_stack", STS_GET, 400, "BadHeader",
        "header x-amz-meta-note has a value that cannot be signed",
        case="a signed header whose value is not UTF-8 (`x-amz-meta-note: caf\\xe9`, Latin-1)",
        grant="g-bad-header", record={}, vault_calls=1, headers=[("x-amz-meta-note", b"caf\xe9")]),
    # --- audit and override headers --------------------------------------------------------------
    Row("context-not-json", "moto_stack", STS_GET, 400, "BadAuditContext", "must be a JSON object",
        case="`x-grant-context: {job` (not JSON)", headers=[("x-grant-context", "{job")]),
    Row("context-not-object", "moto_stack", STS_GET, 400, "BadAuditContext", "must be a JSON object",
        case="`x-grant-context: [1]` (JSON, not an object)", headers=[("x-grant-context", "[1]")]),
    Row("reason-control-char", "moto_stack", STS_GET, 400, "BadAuditReason", "without control characters",
        case="`x-grant-reason` with a control character (tab)", headers=[("x-grant-reason", "nightly\texport")]),
    Row("region-override-malformed", "moto_stack", STS_GET, 400, "BadOverride",
        "x-grant-region must be lowercase letters, digits and '-'",
        case="`x-grant-region: EU_WEST_1` (not lowercase letters, digits and `-`)",
        headers=[("x-grant-region", "EU_WEST_1")]),
    Row("region-override-off", "moto_stack", STS_GET, 400, "OverrideNotAllowed", "request_overrides",
        case="`x-grant-region` while `request_overrides` is off", headers=[("x-grant-region", "eu-west-1")]),
    # --- grant policy, one denial per rule, and controls -----------------------------------------
    *policy_rows(),
    # --- client-sent signing headers --------------------------------------------------------------
    Row("client-signing-headers-dropped", "fake_stack", f"http://{STS}/?Action=GetCallerIdentity", 200, None,
        case="client-sent `Authorization`, `X-Amz-Date`, `X-Amz-Security-Token`: dropped, the filter's own sent",
        grant="g-echo", headers=[("authorization", "AWS4-HMAC-SHA256 Credential=CLIENT/forged"),
                                 ("x-amz-date", "19990101T000000Z"), ("x-amz-security-token", "client-token")],
        vault_calls=None, check=_echo_checks_dropped),
]

STACKS = ("moto_stack", "fake_stack")
# Rows that only one host answers as the row says, and why.
ONLY = {
    "get-with-body": ("wasm", "the native host hashes a body itself instead of refusing it"),
}


@pytest.fixture(scope="module", params=HOSTS)
def host(request):
    return request.param


# ---------------------------------------------------------------------------------------------
# Stacks


@pytest.fixture(scope="module")
def moto_stack(host):
    s = Stack(concurrency=1, host=host)
    try:
        s.creds = s.moto.create_user_key("bad-input-user")  # the Moto.SETUP_CALLS set-up calls
        s.bao.put_grant("g-ok", s.creds)
        for row in ROWS:
            if row.stack == "moto_stack" and row.record is not None:
                s.bao.put_grant(row.grant, {**(s.creds if row.creds else {}), **row.record})
        s.echo = None
        yield s
    finally:
        s.stop()
        s.cleanup()


@pytest.fixture(scope="module")
def fake_stack(host):
    fake = FakeVault({
        "g-403": "relay",
        "g-500": (500, "application/json", b'{"errors":["internal error"]}'),
        "g-slow": "slow",
        "g-html": (200, "text/html", b"<html><body>Vault is sealed</body></html>"),
        "g-huge": kv2({**ECHO_KEY, "padding": "x" * (70 * 1024)}),
        "g-reset": "reset",
        "g-echo": kv2(ECHO_KEY),
    })
    echo = Echo()
    s = None
    try:
        s = Stack(
            host=host,
            concurrency=1,
            aws_port=echo.port,
            vault_port=fake.port,
            plugin_overrides={"vault": {"token": "wrong", "timeout_ms": VAULT_TIMEOUT_MS}},
        )
        fake.upstream = s.bao.addr  # "relay" answers come from the real OpenBao
        s.echo = echo
        s.fake = fake
        yield s
    finally:
        if s is not None:
            s.stop()
            s.cleanup()
        echo.stop()
        fake.stop()


# ---------------------------------------------------------------------------------------------
# The test


def request_bytes(row: Row) -> tuple[bytes, bytes]:
    parts = urlsplit(row.url)
    host = row.host if row.host is not None else parts.netloc
    lines = [f"{row.method} {row.url} HTTP/1.1".encode(), b"host: " + b(host)]
    if row.grant is not None:
        lines.append(b"x-grant-id: " + b(row.grant))
    for k, v in row.headers:
        lines.append(b(k) + b": " + b(v))
    if row.body or row.content_length is not None:
        n = row.content_length if row.content_length is not None else len(row.body)
        lines.append(f"content-length: {n}".encode())
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n", row.body


def _param(row: Row):
    marks = [pytest.mark.xfail(strict=True, reason=row.xfail)] if row.xfail else []
    return pytest.param(row, id=row.id, marks=marks)


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
def test_bad_input(row: Row, host, request):
    if row.id in ONLY and ONLY[row.id][0] != host:
        pytest.skip(ONLY[row.id][1])
    stack = request.getfixturevalue(row.stack)
    upstream_before = stack.upstream_requests()
    vault_before = stack.vault_requests()
    echo_before = len(stack.echo.requests) if stack.echo else 0

    head, body = request_bytes(row)
    reply = exchange(stack.listen_port, head, body)

    assert reply.status == row.status, reply.body
    if row.code is None:
        # A positive control: forwarded once, answered by the upstream.
        assert stack.upstream_requests() == upstream_before + 1
        if row.vault_calls is not None:
            assert stack.vault_requests() == vault_before + row.vault_calls
        forwarded = stack.echo.requests[echo_before:] if stack.echo else []
        if row.check:
            row.check(stack, forwarded, reply)
        return

    assert reply.header("content-type") == "application/json", reply.headers
    doc = json.loads(reply.body)
    assert set(doc) == {"error", "message"}, doc
    assert doc["error"] == row.code, doc
    assert isinstance(doc["message"], str) and doc["message"]
    # Nothing reached AWS.
    assert stack.upstream_requests() == upstream_before, "a refused request reached AWS"
    if stack.echo:
        assert len(stack.echo.requests) == echo_before
    if row.vault_calls is not None:
        assert stack.vault_requests() == vault_before + row.vault_calls, "unexpected vault callouts"
    assert row.phrase in doc["message"], doc["message"]


def test_table_shape():
    """At least 30 rows, unique ids, and every row served by a stack of this file."""
    assert len(ROWS) >= 30
    assert len({r.id for r in ROWS}) == len(ROWS)
    assert {r.stack for r in ROWS} <= set(STACKS)

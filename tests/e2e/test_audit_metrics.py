"""The audit trail and the metrics operators expect: one audit record per request (log line
and access-log filter state), and counters in /stats/prometheus, asserted by value."""

import json
import re

import pytest

from harness import HOSTS, Stack, http_get, wait_until

STS_GET = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"


@pytest.fixture(scope="module", params=HOSTS)
def astack(request):
    s = Stack(concurrency=1, host=request.param, plugin_overrides={"audit": {"log": True, "filter_state": True}})
    try:
        s.creds = s.moto.create_user_key("audit-user")
        s.bao.put_grant("grant-audit", s.creds)
        s.bao.put_grant("grant-s3-only", {**s.creds, "allowed_services": ["s3"]})
        sts = s.client(
            "sts", "grant-audit", extra_headers={"x-grant-reason": "quarterly report", "x-grant-context": '{"ticket": "OPS-7", "n": 3}'}
        )
        for _ in range(3):
            sts.get_caller_identity()
        s.raw("GET", STS_GET, headers={"x-grant-id": "grant-missing-in-vault"})
        s.raw("GET", STS_GET, headers={"x-grant-id": "grant-s3-only"})
        s.raw("GET", STS_GET, headers={"x-grant-id": "grant-audit", "x-grant-context": "[1]"})
        yield s
    finally:
        s.stop()
        s.cleanup()


def audit_records(stack):
    out = []
    for line in stack.envoy.proc.log_text().splitlines():
        m = re.search(r"grant_sigv4\.audit (\{.*\})$", line)
        if m:
            out.append(json.loads(m.group(1)))
    return out


def access_records(stack):
    out = []
    for line in stack.envoy.proc.log_text().splitlines():
        if line.startswith("{") and '"grant_sigv4"' in line:
            entry = json.loads(line)
            out.append((entry, json.loads(entry["grant_sigv4"]) if entry["grant_sigv4"] else None))
    return out


def test_signed_requests_have_full_audit_records(astack):
    signed = [r for r in audit_records(astack) if r["outcome"] == "signed"]
    assert len(signed) == 3
    r = signed[0]
    assert r["grant_id"] == "grant-audit"
    assert (r["service"], r["region"], r["method"], r["path"]) == ("sts", "us-east-1", "POST", "/")
    assert r["reason"] == "quarterly report"
    assert r["context"] == {"ticket": "OPS-7", "n": 3}
    assert r["status"] == 200
    assert r["aws_request_id"]
    assert r["source"] == "127.0.0.1"
    assert r["duration_ms"] >= 0
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["time"])
    text = json.dumps(audit_records(astack))
    assert astack.creds["secret_access_key"] not in text
    assert "Signature=" not in text and astack.bao.filter_token not in text


def test_refusals_are_audited_with_their_code(astack):
    by_outcome = {r["outcome"]: r for r in audit_records(astack)}
    nf = by_outcome["GrantNotFound"]
    assert (nf["grant_id"], nf["status"], nf["path"]) == ("grant-missing-in-vault", 403, "/?Action=&Version=")
    assert by_outcome["GrantPolicyDenied"]["grant_id"] == "grant-s3-only"
    assert by_outcome["BadAuditContext"]["status"] == 400


def test_access_log_carries_the_audit_record(astack):
    # Envoy flushes access logs in batches: wait for all six lines.
    def all_six():
        r = access_records(astack)
        return r if len(r) >= 6 else None

    records = wait_until(all_six, "access log", timeout=20)
    outcomes = sorted(a["outcome"] for _, a in records if a)
    assert outcomes.count("signed") == 3
    assert {"GrantNotFound", "GrantPolicyDenied", "BadAuditContext"} <= set(outcomes)
    for entry, a in records:
        assert entry["source"] == "127.0.0.1"
        if a and a["outcome"] == "signed":
            # Envoy adds what it knows: AWS's status and request id.
            assert int(entry["status"]) == 200 and entry["aws_request_id"] not in ("", "-", None)
            assert a["grant_id"] == "grant-audit" and a["service"] == "sts"
            assert a["context"] == {"ticket": "OPS-7", "n": 3}
        elif a:
            assert int(entry["status"]) == a["status"]


def prometheus(stack):
    status, body = http_get(f"{stack.envoy.admin}/stats/prometheus")
    assert status == 200
    values = {}
    for line in body.decode().splitlines():
        m = re.match(r"^(grant_sigv4_[a-zA-Z_]+)\{\} (\d+)$", line)
        if m:
            values[m.group(1)] = int(m.group(2))
    return values


def test_metrics_count_what_happened(astack):
    # Counts are added to Envoy's counters on the filter's tick (every second).
    def flushed():
        m = prometheus(astack)
        return m if m.get("grant_sigv4_requests_signed") == 3 and m.get("grant_sigv4_cache_hits") == 2 else None

    m = wait_until(flushed, "metrics flushed", timeout=10)
    assert m["grant_sigv4_requests_signed"] == 3
    assert m["grant_sigv4_local_errors_GrantNotFound"] == 1
    assert m["grant_sigv4_local_errors_GrantPolicyDenied"] == 1
    assert m["grant_sigv4_local_errors_BadAuditContext"] == 1
    assert m["grant_sigv4_policy_denials"] == 1
    assert m["grant_sigv4_vault_callouts"] == 3  # grant-audit, the missing grant, grant-s3-only
    assert m["grant_sigv4_vault_failures"] == 0
    assert m["grant_sigv4_cache_misses"] == 3
    assert m["grant_sigv4_cache_hits"] == 2  # the second and third signed request
    assert m["grant_sigv4_key_refusals"] == 0

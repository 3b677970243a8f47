"""Hosts whose name does not tell the signing name or region: the operator's
host_overrides map, and (when enabled) the request's x-grant-service / x-grant-region."""

import json

import pytest

from harness import HOSTS, Stack


@pytest.fixture(scope="module", params=HOSTS)
def ostack(request):
    s = Stack(
        host=request.param,
        concurrency=1,
        plugin_overrides={
            "request_overrides": True,
            "host_overrides": {"aws-api.internal.example": {"service": "sts", "region": "us-east-1"}},
        },
    )
    try:
        s.creds = s.moto.create_user_key("override-user")
        s.bao.put_grant("grant-o", s.creds)
        yield s
    finally:
        s.stop()
        s.cleanup()


def test_custom_domain_signed_with_the_configured_scope(ostack):
    ident = ostack.client("sts", "grant-o", host="aws-api.internal.example").get_caller_identity()
    assert ident["Arn"].endswith(":user/override-user")


def test_request_level_region_override(ostack):
    sts = ostack.client("sts", "grant-o", extra_headers={"x-grant-region": "eu-west-1"})
    assert sts.get_caller_identity()["Arn"].endswith(":user/override-user")


def test_override_values_are_checked_and_never_open_non_aws_hosts(ostack):
    before = ostack.upstream_requests()
    status, _, body = ostack.raw(
        "GET", "http://sts.us-east-1.amazonaws.com/", headers={"x-grant-id": "grant-o", "x-grant-region": "../x"}
    )
    assert (status, json.loads(body)["error"]) == (400, "BadOverride")
    status, _, body = ostack.raw(
        "GET", "http://unlisted.internal.example/", headers={"x-grant-id": "grant-o", "x-grant-service": "sts"}
    )
    assert (status, json.loads(body)["error"]) == (403, "NotAwsEndpoint")
    assert ostack.upstream_requests() == before


def test_sigv4a_host_is_a_clear_400(ostack):
    before = ostack.upstream_requests()
    status, _, body = ostack.raw(
        "GET",
        "http://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com/key",
        headers={"x-grant-id": "grant-o"},
    )
    assert status == 400
    assert json.loads(body)["error"] == "NotSigV4"
    assert ostack.upstream_requests() == before

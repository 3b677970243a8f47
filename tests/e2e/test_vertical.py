"""The vertical slice: boto3 with signing turned off sends plain requests with a grant id
through Envoy; the filter fetches the key from OpenBao, signs, and moto verifies SigV4."""

import json

import pytest
from botocore.exceptions import ClientError

from echo import Echo
from harness import Stack, free_port

S3_KEY = "dir/a b+c@d=e&f~(g)[h]$;é,!'.txt"


def test_s3_roundtrip_with_key_that_needs_escaping(stack):
    s3 = stack.client("s3", stack.grant)
    s3.create_bucket(Bucket="grant-bucket")
    s3.put_object(Bucket="grant-bucket", Key=S3_KEY, Body=b"hello through envoy")
    got = s3.get_object(Bucket="grant-bucket", Key=S3_KEY)
    assert got["Body"].read() == b"hello through envoy"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="grant-bucket")["Contents"]]
    assert keys == [S3_KEY]


def test_dynamodb_through_the_same_grant(stack):
    ddb = stack.client("dynamodb", stack.grant)
    ddb.create_table(
        TableName="grants",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="grants", Item={"id": {"S": "k1"}, "v": {"S": "value one"}})
    item = ddb.get_item(TableName="grants", Key={"id": {"S": "k1"}})["Item"]
    assert item["v"]["S"] == "value one"


def test_sts_caller_identity_is_the_grant_user(stack):
    ident = stack.client("sts", stack.grant).get_caller_identity()
    assert ident["Arn"].endswith(":user/app-user")


def test_wrong_secret_gets_aws_signature_error(stack):
    stack.bao.put_grant("grant-bad-secret", {**stack.creds, "secret_access_key": "x" * 40})
    with pytest.raises(ClientError) as e:
        stack.client("sts", "grant-bad-secret").get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def _local_error(stack, status_expected, code_expected, url, headers):
    before = stack.upstream_requests()
    status, hdrs, body = stack.raw("GET", url, headers=headers)
    assert status == status_expected, body
    doc = json.loads(body)
    assert doc["error"] == code_expected
    assert doc["message"]
    assert hdrs.get("content-type") == "application/json"
    assert stack.upstream_requests() == before, "a refused request reached AWS"
    return doc


def test_missing_grant_is_401(stack):
    doc = _local_error(stack, 401, "GrantMissing", "http://sts.us-east-1.amazonaws.com/", {})
    assert "x-grant-id" in doc["message"]


def test_unknown_grant_is_403(stack):
    _local_error(stack, 403, "GrantNotFound", "http://sts.us-east-1.amazonaws.com/", {"x-grant-id": "no-such-grant"})


def test_non_aws_host_is_refused_before_any_vault_call(stack):
    vault_before = stack.vault_requests()
    _local_error(stack, 403, "NotAwsEndpoint", "http://example.com/", {"x-grant-id": stack.grant})
    _local_error(stack, 403, "NotAwsEndpoint", "http://s3.amazonaws.com.evil.example/", {"x-grant-id": stack.grant})
    assert stack.vault_requests() == vault_before


def test_body_without_known_hash_is_refused(stack):
    # GET routes skip the body hasher; a GET with a body therefore has no known hash.
    before = stack.upstream_requests()
    status, _, body = stack.raw(
        "GET", "http://sqs.us-east-1.amazonaws.com/", headers={"x-grant-id": stack.grant}, body=b"payload"
    )
    assert status == 400, body
    assert json.loads(body)["error"] == "PayloadHashRequired"
    assert stack.upstream_requests() == before


def test_cached_grant_is_fetched_at_most_once_per_worker(stack):
    stack.bao.put_grant("grant-cache", stack.creds)
    before = stack.vault_requests()
    sts = stack.client("sts", "grant-cache")
    for _ in range(30):
        assert sts.get_caller_identity()["Arn"].endswith(":user/app-user")
    fetched = stack.vault_requests() - before
    assert 1 <= fetched <= 2, f"{fetched} vault calls for 30 requests on 2 workers"


def test_vault_down_is_503_and_nothing_forwarded():
    dead = free_port()  # nothing listens here
    s = Stack(no_auth=0, vault_port=dead, concurrency=1)
    try:
        before = s.upstream_requests()
        status, _, body = s.raw("GET", "http://sts.us-east-1.amazonaws.com/", headers={"x-grant-id": "any-grant"})
        assert status == 503, body
        assert json.loads(body)["error"] == "VaultUnavailable"
        assert s.upstream_requests() == before
    finally:
        s.stop()
        s.cleanup()


def test_forwarded_headers_are_signed_and_grant_is_gone():
    echo = Echo()
    s = Stack(aws_port=echo.port, concurrency=1)
    try:
        s.bao.put_grant("grant-echo", {"access_key_id": "AKIAECHOEXAMPLE00001", "secret_access_key": "echo-secret-x"})
        status, _, body = s.raw(
            "GET",
            "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            headers={
                "x-grant-id": "grant-echo",
                "authorization": "AWS4-HMAC-SHA256 Credential=CLIENT/forged",
                "x-amz-date": "19990101T000000Z",
                "x-amz-security-token": "client-token",
            },
        )
        assert status == 200, body
        [req] = echo.requests
        h = {k.lower(): v for k, v in req["headers"].items()}
        assert "x-grant-id" not in h
        assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAECHOEXAMPLE00001/")
        assert "/us-east-1/sts/aws4_request" in h["authorization"]
        assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in h["authorization"]
        assert h["x-amz-date"] != "19990101T000000Z"
        assert "x-amz-security-token" not in h
        assert "echo-secret-x" not in json.dumps(req["headers"])
    finally:
        s.stop()
        s.cleanup()
        echo.stop()

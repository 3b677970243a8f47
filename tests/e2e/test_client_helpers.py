"""End to end: the Python client helpers (clients/python) against real Envoy + OpenBao + moto."""

import hashlib
import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from botocore.exceptions import ClientError  # noqa: E402

from grant_sigv4_client import GrantSigV4Error, boto3_client, request  # noqa: E402
from grant_sigv4_client._core import body_sha256, parse_filter_error  # noqa: E402
from harness import Stack  # noqa: E402

GRANT = "client-helpers-1"


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    try:
        s.creds = s.moto.create_user_key("client-helpers-user")
        s.bao.put_grant(GRANT, s.creds)
        yield s
    finally:
        s.stop()
        s.cleanup()


def client(stack, service, grant=GRANT, **kw):
    kw.setdefault("timeout", 10)
    return boto3_client(service, grant, proxy=stack.proxy, **kw)


def capture_headers(c):
    """Headers of every prepared request, as sent (hook registered after the helper's)."""
    seen = []
    c.meta.events.register("before-send", lambda request, **_: seen.append(dict(request.headers)))
    return seen


def test_endpoint_comes_from_botocore_with_http():
    c = boto3_client("dynamodb", GRANT, region_name="eu-west-1")
    assert c.meta.endpoint_url == "http://dynamodb.eu-west-1.amazonaws.com"
    assert c.meta.config.proxies == {"http": "http://127.0.0.1:15080"}
    c = boto3_client("sts", GRANT, region_name="us-west-2", proxy=None, timeout=3)
    assert c.meta.endpoint_url == "http://sts.us-west-2.amazonaws.com"
    assert c.meta.config.proxies is None
    assert c.meta.config.connect_timeout == 3 and c.meta.config.read_timeout == 3


def test_sts_get_caller_identity(stack):
    arn = client(stack, "sts").get_caller_identity()["Arn"]
    assert arn.endswith(":user/client-helpers-user")


def test_s3_put_get_path_and_virtual_style(stack):
    from botocore.config import Config

    s3 = client(stack, "s3")
    seen = capture_headers(s3)
    s3.create_bucket(Bucket="helpers-bucket")
    s3.put_object(Bucket="helpers-bucket", Key="a b/c.txt", Body=b"hello helpers")
    assert s3.get_object(Bucket="helpers-bucket", Key="a b/c.txt")["Body"].read() == b"hello helpers"
    put = [h for h in seen if h.get("x-amz-content-sha256") == hashlib.sha256(b"hello helpers").hexdigest()]
    assert put, "PutObject carried the body's SHA-256"

    virt = client(stack, "s3", config=Config(s3={"addressing_style": "virtual"}))
    urls = []
    virt.meta.events.register("before-send", lambda request, **_: urls.append(request.url))
    virt.put_object(Bucket="helpers-bucket", Key="v.txt", Body=io.BytesIO(b"virtual host"))
    assert virt.get_object(Bucket="helpers-bucket", Key="v.txt")["Body"].read() == b"virtual host"
    assert urls[0].startswith("http://helpers-bucket.s3.amazonaws.com/"), urls


def test_dynamodb_put_get_sets_content_sha256(stack):
    ddb = client(stack, "dynamodb")
    ddb.create_table(
        TableName="helpers",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    bodies = []
    ddb.meta.events.register("before-send", lambda request, **_: bodies.append(
        (dict(request.headers), request.body)))
    ddb.put_item(TableName="helpers", Item={"id": {"S": "1"}, "msg": {"S": "héllo"}})
    headers, body = bodies[-1]
    raw = body if isinstance(body, bytes) else body.encode()
    assert headers["x-amz-content-sha256"] == hashlib.sha256(raw).hexdigest()
    assert headers["x-grant-id"] == GRANT
    item = ddb.get_item(TableName="helpers", Key={"id": {"S": "1"}})["Item"]
    assert item["msg"]["S"] == "héllo"


def test_aws_errors_stay_client_errors(stack):
    with pytest.raises(ClientError) as e:
        client(stack, "s3").get_object(Bucket="no-such-bucket-helpers", Key="x")
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
    # AWS JSON-protocol errors ({"__type": ...}) are not mistaken for the filter's.
    with pytest.raises(ClientError) as e:
        client(stack, "dynamodb").get_item(TableName="no-such-table", Key={"id": {"S": "1"}})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_unknown_grant_raises_grant_not_found(stack):
    upstream = stack.upstream_requests()
    with pytest.raises(GrantSigV4Error) as e:
        client(stack, "sts", grant="no-such-grant").get_caller_identity()
    assert (e.value.status, e.value.code) == (403, "GrantNotFound")
    assert not isinstance(e.value, ClientError)
    assert stack.upstream_requests() == upstream


def test_missing_grant_header_is_the_filters_grant_missing(stack):
    sts = client(stack, "sts")

    def drop_grant(request, **_):
        del request.headers["x-grant-id"]  # (returning a value would replace the response)

    sts.meta.events.register("before-send", drop_grant)
    with pytest.raises(GrantSigV4Error) as e:
        sts.get_caller_identity()
    assert (e.value.status, e.value.code) == (401, "GrantMissing")
    assert "x-grant-id" in e.value.message


def test_empty_or_absent_grant_refused_client_side(stack):
    # Decision: refused before sending, with the code the filter would answer.
    with pytest.raises(GrantSigV4Error) as e:
        boto3_client("sts", "")
    assert (e.value.code, e.value.status) == ("GrantInvalid", None)
    with pytest.raises(GrantSigV4Error) as e:
        request("GET", "http://sts.us-east-1.amazonaws.com/", None, proxy=stack.proxy)
    assert (e.value.code, e.value.status) == ("GrantMissing", None)
    # The filter refuses an empty header too (in case another client sends one).
    status, headers, body = stack.raw("GET", "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity",
                                      headers={"x-grant-id": ""})
    err = parse_filter_error(status, headers, body)
    assert err is not None and err.code in ("GrantInvalid", "GrantMissing"), (status, body)


def test_reason_and_context_headers(stack):
    sts = client(stack, "sts", reason="quarterly audit", context={"ticket": "OPS-1", "n": 2})
    seen = capture_headers(sts)
    assert sts.get_caller_identity()["Arn"].endswith("client-helpers-user")
    assert seen[-1]["x-grant-reason"] == "quarterly audit"
    assert seen[-1]["x-grant-context"] == '{"n":2,"ticket":"OPS-1"}'
    with pytest.raises(ValueError):
        boto3_client("sts", GRANT, reason="line\nbreak")


def test_request_streams_s3_object(stack):
    s3 = client(stack, "s3")
    s3.create_bucket(Bucket="helpers-stream")
    blob = bytes(range(256)) * 12288  # 3 MiB
    s3.put_object(Bucket="helpers-stream", Key="big.bin", Body=blob)
    url = "http://s3.amazonaws.com/helpers-stream/big.bin"
    with request("GET", url, GRANT, proxy=stack.proxy, stream=True, timeout=10) as r:
        assert r.status == 200
        chunks = list(r.stream(256 * 1024))
    assert len(chunks) > 1 and b"".join(chunks) == blob
    # Not streamed: read() returns the whole body.
    r = request("GET", url, GRANT, proxy=stack.proxy, reason="copy", context={"k": "v"})
    assert r.status == 200 and r.read() == blob


def test_request_errors(stack):
    # AWS errors are responses; the filter's are exceptions.
    r = request("GET", "http://s3.amazonaws.com/helpers-stream/missing", GRANT, proxy=stack.proxy)
    assert r.status == 404 and b"NoSuchKey" in r.read()
    with pytest.raises(GrantSigV4Error) as e:
        request("GET", "http://s3.amazonaws.com/helpers-stream/big.bin", "nope-grant", proxy=stack.proxy,
                stream=True)
    assert (e.value.status, e.value.code) == (403, "GrantNotFound")
    with pytest.raises(GrantSigV4Error) as e:
        request("GET", "http://example.com/", GRANT, proxy=stack.proxy)
    assert (e.value.status, e.value.code) == (403, "NotAwsEndpoint")
    with pytest.raises(ValueError):
        request("GET", "https://s3.amazonaws.com/", GRANT, proxy=stack.proxy)


def test_request_post_sets_content_sha256(stack):
    body = json.dumps({"TableName": "helpers", "Key": {"id": {"S": "1"}}}).encode()
    r = request("POST", "http://dynamodb.us-east-1.amazonaws.com/", GRANT, proxy=stack.proxy,
                headers={"content-type": "application/x-amz-json-1.0",
                         "x-amz-target": "DynamoDB_20120810.GetItem"}, body=body)
    assert r.status == 200, r.read()
    assert json.loads(r.read())["Item"]["id"]["S"] == "1"


def test_body_sha256_and_error_parsing_units():
    empty = hashlib.sha256(b"").hexdigest()
    assert body_sha256(None) == empty and body_sha256(b"") == empty
    assert body_sha256("é") == hashlib.sha256("é".encode()).hexdigest()
    f = io.BytesIO(b"xxabc")
    f.seek(2)
    assert body_sha256(f) == hashlib.sha256(b"abc").hexdigest() and f.tell() == 2

    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

    assert body_sha256(Pipe()) is None
    js = {"content-type": "application/json"}
    ok = parse_filter_error(403, js, b'{"error":"GrantNotFound","message":"m"}')
    assert ok.code == "GrantNotFound" and ok.status == 403
    assert parse_filter_error(200, js, b'{"error":"X","message":"m"}') is None
    assert parse_filter_error(400, js, b'{"__type":"ValidationException","message":"m"}') is None
    assert parse_filter_error(403, {**js, "x-amzn-requestid": "r"}, b'{"error":"Forbidden","message":"m"}') is None
    assert parse_filter_error(403, {"content-type": "text/plain"}, b'{"error":"A","message":"m"}') is None

"""End to end: unmodified AWS clients with the grant id as their access key id
(``"grant_from_access_key_id": true``), against real Envoy + OpenBao + moto.

boto3 and the AWS CLI sign with a placeholder key (access key id = the grant id, any secret);
the filter reads the grant from ``Credential=``, drops that signature and signs with the
grant's key. moto verifies every signature after its set-up calls, so a request that reached
it with the placeholder signature would fail. Only the endpoint (``http://``) and the proxy
are set, as docs/clients.md says.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, Stack, wait_until  # noqa: E402

GRANT = "cli-grant-1"
USER = "unmodified-user"
AWS_CLI = ROOT / ".venv" / "bin" / "aws"
STS_GET = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"


@pytest.fixture(scope="module")
def stack():
    s = Stack(plugin_overrides={"grant_from_access_key_id": True, "audit": {"log": True}})
    try:
        s.creds = s.moto.create_user_key(USER)
        s.bao.put_grant(GRANT, s.creds)
        yield s
    finally:
        s.stop()
        s.cleanup()


def boto3_client(stack, service, key_id=GRANT, region="us-east-1", host=None, **config):
    """boto3 exactly as an application has it, but for the endpoint and the proxy."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key="unused",
        endpoint_url=f"http://{host or f'{service}.{region}.amazonaws.com'}",
        config=Config(proxies={"http": stack.proxy}, retries={"max_attempts": 1}, **config),
    )


def audit_records(stack):
    out = []
    for line in stack.envoy.proc.log_text().splitlines():
        m = re.search(r"grant_sigv4\.audit (\{.*\})$", line)
        if m:
            out.append(json.loads(m.group(1)))
    return out


def test_boto3_sts_is_the_grants_user(stack):
    arn = boto3_client(stack, "sts").get_caller_identity()["Arn"]
    assert arn.endswith(f":user/{USER}")


def test_moto_refuses_the_placeholder_signature_itself(stack):
    # The control: the same client straight to moto, with its placeholder signature.
    import boto3
    from botocore.exceptions import ClientError

    direct = boto3.client("sts", region_name="us-east-1", endpoint_url=stack.moto.endpoint,
                          aws_access_key_id=GRANT, aws_secret_access_key="unused")
    with pytest.raises(ClientError) as e:
        direct.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_boto3_s3_put_get_list(stack):
    s3 = boto3_client(stack, "s3", s3={"addressing_style": "path"})
    sent = []
    s3.meta.events.register("before-send", lambda request, **_: sent.append(
        {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}))
    s3.create_bucket(Bucket="unmodified")
    s3.put_object(Bucket="unmodified", Key="a b.txt", Body=b"from boto3")
    big = os.urandom(3 * 1024 * 1024)
    s3.put_object(Bucket="unmodified", Key="big.bin", Body=big)
    assert s3.get_object(Bucket="unmodified", Key="a b.txt")["Body"].read() == b"from boto3"
    assert s3.get_object(Bucket="unmodified", Key="big.bin")["Body"].read() == big
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="unmodified")["Contents"]]
    assert sorted(keys) == ["a b.txt", "big.bin"]
    # What boto3 sends by default over http: its placeholder signature, the body's SHA-256
    # and a CRC32 checksum header (no aws-chunked trailer), all accepted as they are.
    put = next(h for h in sent if h.get("x-amz-content-sha256") == hashlib.sha256(b"from boto3").hexdigest())
    assert put["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={GRANT}/20")
    assert put["x-amz-sdk-checksum-algorithm"] == "CRC32" and "x-amz-checksum-crc32" in put, put


def test_boto3_dynamodb_and_sqs(stack):
    ddb = boto3_client(stack, "dynamodb")
    ddb.create_table(
        TableName="unmodified",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="unmodified", Item={"id": {"S": "1"}, "v": {"S": "héllo"}})
    assert ddb.get_item(TableName="unmodified", Key={"id": {"S": "1"}})["Item"]["v"]["S"] == "héllo"
    sqs = boto3_client(stack, "sqs")
    url = sqs.create_queue(QueueName="unmodified")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello queue")
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert msgs[0]["Body"] == "hello queue"


def test_audit_records_say_where_the_grant_came_from(stack):
    boto3_client(stack, "sts").get_caller_identity()
    status, _, _ = stack.raw("GET", STS_GET, headers={"x-grant-id": GRANT})
    assert status == 200
    records = wait_until(
        lambda: (lambda rs: rs if {"access_key_id", "header"} <= {r.get("grant_from") for r in rs} else None)(
            [r for r in audit_records(stack) if r["grant_id"] == GRANT and r["outcome"] == "signed"]),
        "audit records of both kinds")
    assert all(r["grant_from"] in ("access_key_id", "header") for r in records)


def test_wrong_region_is_refused_naming_both(stack):
    upstream = stack.upstream_requests()
    # boto3 cannot parse the filter's JSON as STS's XML; its error shows the reply.
    with pytest.raises(Exception, match="CredentialScopeMismatch"):
        boto3_client(stack, "sts", region="eu-west-1", host="sts.us-east-1.amazonaws.com").get_caller_identity()
    # The filter's own reply, as any HTTP client sees it.
    auth = ("AWS4-HMAC-SHA256 Credential=" + GRANT + "/20260101/eu-west-1/sts/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=00")
    status, headers, body = stack.raw("GET", STS_GET, headers={"Authorization": auth})
    doc = json.loads(body)
    assert (status, doc["error"]) == (400, "CredentialScopeMismatch"), body
    for part in ("eu-west-1", "us-east-1", "service sts"):
        assert part in doc["message"], doc["message"]
    assert stack.upstream_requests() == upstream


def test_grant_header_wins_and_bad_access_key_ids_are_refused(stack):
    # The header names the grant; the access key id is ignored.
    sts = boto3_client(stack, "sts", key_id="not-a-stored-grant")
    sts.meta.events.register("before-send", lambda request, **_: request.headers.__setitem__("x-grant-id", GRANT))
    assert sts.get_caller_identity()["Arn"].endswith(f":user/{USER}")
    # Without it, that access key id is the grant: not found.
    status, _, body = stack.raw("GET", STS_GET, headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=not-a-stored-grant/20260101/us-east-1/sts/aws4_request, "
                         "SignedHeaders=host, Signature=00"})
    assert (status, json.loads(body)["error"]) == (403, "GrantNotFound")
    for auth, code in [
        ("AWS4-HMAC-SHA256 Credential=a%2Fb/20260101/us-east-1/sts/aws4_request, Signature=0", "GrantInvalid"),
        ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=0", "BadAuthorization"),
        ("AWS AKIDEXAMPLE:c2lnbmF0dXJl", "BadAuthorization"),
    ]:
        status, _, body = stack.raw("GET", STS_GET, headers={"Authorization": auth})
        assert (status, json.loads(body)["error"]) == (400, code), (auth, body)
    status, _, body = stack.raw("GET", STS_GET)
    doc = json.loads(body)
    assert (status, doc["error"]) == (401, "GrantMissing") and "Credential=" in doc["message"]


def test_chunk_signed_uploads_are_refused_with_the_setting_to_change(stack):
    status, _, body = stack.raw(
        "PUT", "http://s3.us-east-1.amazonaws.com/unmodified/chunked",
        headers={"Authorization": "AWS4-HMAC-SHA256 Credential=" + GRANT
                 + "/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
                 "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                 "content-encoding": "aws-chunked", "x-amz-decoded-content-length": "5"},
        body=b"5;chunk-signature=00\r\nhello\r\n0;chunk-signature=00\r\n\r\n")
    doc = json.loads(body)
    assert (status, doc["error"]) == (400, "ChunkSignedPayloadUnsupported"), body
    assert "chunkedEncodingEnabled" in doc["message"], doc["message"]


def test_forwarded_requests_carry_nothing_of_the_placeholder():
    """With an echo server as AWS: what the filter forwards for a boto3 client with a
    placeholder key and session token, on the hashed route (DynamoDB POST: precheck, body
    hasher, signing) and the direct one (S3 GET)."""
    from echo import Echo

    echo = Echo()
    s = None
    try:
        s = Stack(aws_port=echo.port, plugin_overrides={"grant_from_access_key_id": True})
        key = {"access_key_id": "AKIAECHOEXAMPLE00001", "secret_access_key": "echo-secret-value"}
        s.bao.put_grant(GRANT, key)
        import boto3
        from botocore.config import Config

        def client(service):
            return boto3.client(service, region_name="us-east-1", aws_access_key_id=GRANT,
                                aws_secret_access_key="unused", aws_session_token="placeholder-token",
                                endpoint_url=f"http://{service}.us-east-1.amazonaws.com",
                                config=Config(proxies={"http": s.proxy}, retries={"max_attempts": 1},
                                              s3={"addressing_style": "path"}))

        client("dynamodb").list_tables()
        client("s3").get_object(Bucket="b", Key="k")
        assert len(echo.requests) == 2
        for req, scope in zip(echo.requests, ("us-east-1/dynamodb/", "us-east-1/s3/")):
            h = {k.lower(): v for k, v in req["headers"].items()}
            auth = h["authorization"]
            assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAECHOEXAMPLE00001/") and scope in auth, auth
            assert GRANT not in str(req["headers"]), req["headers"]
            assert "placeholder-token" not in str(req["headers"])
            assert "x-amz-security-token" not in h and "x-grant-sigv4-credential" not in h
            assert not any(k.startswith("x-grant") for k in h)
    finally:
        if s is not None:
            s.stop()
            s.cleanup()
        echo.stop()


def test_off_by_default():
    s = Stack()
    try:
        s.creds = s.moto.create_user_key("off-user")
        s.bao.put_grant(GRANT, s.creds)
        # (boto3 shows the filter's JSON reply in a parse error for STS's XML, and its
        # message for DynamoDB's JSON protocol.)
        with pytest.raises(Exception, match="GrantMissing"):
            boto3_client(s, "sts").get_caller_identity()
        # ... also on the hashed route (a POST with a body), refused by the precheck.
        with pytest.raises(Exception, match="no x-grant-id header"):
            boto3_client(s, "dynamodb").list_tables()
        assert s.upstream_requests() == 0
    finally:
        s.stop()
        s.cleanup()


# ---------------------------------------------------------------------------------------------
# The AWS CLI


def aws(stack, tmp_path, *args):
    """The AWS CLI with only environment settings: the grant as access key id, the proxy, an
    http:// endpoint per service, and no shared configuration files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "no_proxy")}
    env.update({
        "AWS_ACCESS_KEY_ID": GRANT,
        "AWS_SECRET_ACCESS_KEY": "unused",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "HTTP_PROXY": stack.proxy,
        "AWS_ENDPOINT_URL_STS": "http://sts.us-east-1.amazonaws.com",
        "AWS_ENDPOINT_URL_S3": "http://s3.us-east-1.amazonaws.com",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://dynamodb.us-east-1.amazonaws.com",
        "HOME": str(tmp_path),
    })
    p = subprocess.run([str(AWS_CLI), *args, "--output", "json"], env=env, capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-4000:])
    return p.stdout


def aws_json(stack, tmp_path, *args):
    return json.loads(aws(stack, tmp_path, *args))


def test_aws_cli_sts_s3_dynamodb(stack, tmp_path):
    assert AWS_CLI.exists(), "the AWS CLI is installed into .venv by `make setup`"
    assert aws_json(stack, tmp_path, "sts", "get-caller-identity")["Arn"].endswith(f":user/{USER}")

    up = tmp_path / "up.bin"
    data = os.urandom(9 * 1024 * 1024)  # above the CLI's 8 MiB multipart threshold
    up.write_bytes(data)
    small = tmp_path / "small.txt"
    small.write_text("from the cli")
    aws(stack, tmp_path, "s3", "mb", "s3://cli-bucket")
    aws(stack, tmp_path, "s3", "cp", str(small), "s3://cli-bucket/small.txt")
    aws(stack, tmp_path, "s3", "cp", str(up), "s3://cli-bucket/big.bin")
    aws(stack, tmp_path, "s3", "cp", "s3://cli-bucket/big.bin", str(tmp_path / "down.bin"))
    aws(stack, tmp_path, "s3", "cp", "s3://cli-bucket/small.txt", str(tmp_path / "small-down.txt"))
    assert (tmp_path / "down.bin").read_bytes() == data
    assert (tmp_path / "small-down.txt").read_text() == "from the cli"

    aws(stack, tmp_path, "dynamodb", "create-table", "--table-name", "cli-table",
        "--attribute-definitions", "AttributeName=id,AttributeType=S",
        "--key-schema", "AttributeName=id,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST")
    aws(stack, tmp_path, "dynamodb", "put-item", "--table-name", "cli-table",
        "--item", json.dumps({"id": {"S": "1"}, "v": {"S": "cli"}}))
    item = aws_json(stack, tmp_path, "dynamodb", "get-item", "--table-name", "cli-table",
               "--key", json.dumps({"id": {"S": "1"}}))
    assert item["Item"]["v"]["S"] == "cli"

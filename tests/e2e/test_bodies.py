"""Every body shape, against moto through Envoy: the payload hash signed must be the one AWS
recomputes (moto verifies SigV4 after the set-up calls)."""

import base64
import hashlib
import io
import json
import os
import zipfile

import pytest
from botocore.exceptions import ClientError

from fakes import exchange
from harness import HOSTS, Stack, main_stack

STS_FORM = b"Action=GetCallerIdentity&Version=2011-06-15"


@pytest.fixture(scope="module", params=HOSTS)
def stack(request):
    """The wasm filter behind its body hasher, and the native module hashing bodies itself."""
    yield from main_stack(request.param)


def test_dynamodb_request_with_1_mib_body(stack):
    ddb = stack.client("dynamodb", stack.grant)
    ddb.create_table(
        TableName="big",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    blob = "x" * (44 * 1024)
    items = [{"PutRequest": {"Item": {"id": {"S": f"k{i}"}, "v": {"S": blob}}}} for i in range(24)]
    body_size = len(json.dumps({"RequestItems": {"big": items}}))
    assert body_size > 1024 * 1024
    out = ddb.batch_write_item(RequestItems={"big": items})
    assert out["UnprocessedItems"] == {}
    got = ddb.get_item(TableName="big", Key={"id": {"S": "k23"}})["Item"]
    assert got["v"]["S"] == blob


def test_lambda_request_with_5_mib_payload(stack):
    iam = stack.client("iam", stack.grant, host="iam.amazonaws.com")
    role = iam.create_role(
        RoleName="fn-role",
        AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        ),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("blob.bin", os.urandom(5 * 1024 * 1024))
        z.writestr("index.py", "def handler(e, c):\n    return 1\n")
    code = buf.getvalue()
    assert len(base64.b64encode(code)) > 5 * 1024 * 1024
    lam = stack.client("lambda", stack.grant)
    fn = lam.create_function(
        FunctionName="big-fn", Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": code}
    )
    assert fn["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert fn["CodeSize"] == len(code)


def test_body_over_the_limit_is_413_before_buffering(stack):
    before = stack.upstream_requests()
    size = 8 * 1024 * 1024 + 1
    head = (
        "POST http://dynamodb.us-east-1.amazonaws.com/ HTTP/1.1\r\n"
        "Host: dynamodb.us-east-1.amazonaws.com\r\n"
        f"x-grant-id: {stack.grant}\r\n"
        "content-type: application/x-amz-json-1.0\r\n"
        f"content-length: {size}\r\n\r\n"
    ).encode()
    reply = exchange(stack.listen_port, head, b"{" * 1024)
    status, body = reply.status, reply.body
    assert status == 413
    doc = json.loads(body)
    assert doc["error"] == "BodyTooLarge"
    assert "max_body_bytes" in doc["message"]
    assert stack.upstream_requests() == before


def test_chunked_client_body_is_hashed_and_signed(stack):
    status, _, body = stack.raw(
        "POST",
        "http://sts.us-east-1.amazonaws.com/",
        headers={"x-grant-id": stack.grant, "content-type": "application/x-www-form-urlencoded"},
        chunks=[STS_FORM[:10], STS_FORM[10:]],
    )
    assert status == 200, body
    assert b":user/app-user" in body


def test_client_sent_hash_is_used(stack):
    status, _, body = stack.raw(
        "POST",
        "http://sts.us-east-1.amazonaws.com/",
        headers={
            "x-grant-id": stack.grant,
            "content-type": "application/x-www-form-urlencoded",
            "x-amz-content-sha256": hashlib.sha256(STS_FORM).hexdigest(),
        },
        body=STS_FORM,
    )
    assert status == 200, body


def test_s3_unsigned_trailer_upload_passes(stack):
    s3 = stack.client("s3", stack.grant)
    s3.create_bucket(Bucket="chunked-bucket")
    payload = b"hello aws-chunked"
    import zlib

    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    body = (
        f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n" + f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    )
    status, _, reply = stack.raw(
        "PUT",
        "http://s3.us-east-1.amazonaws.com/chunked-bucket/obj",
        headers={
            "x-grant-id": stack.grant,
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(payload)),
            "x-amz-trailer": "x-amz-checksum-crc32",
        },
        body=body,
    )
    assert status == 200, reply
    assert s3.get_object(Bucket="chunked-bucket", Key="obj")["Body"].read() == payload


def test_per_chunk_signed_upload_is_refused(stack):
    before = stack.upstream_requests()
    status, _, reply = stack.raw(
        "PUT",
        "http://s3.us-east-1.amazonaws.com/b/k",
        headers={"x-grant-id": stack.grant, "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
        body=b"0\r\n\r\n",
    )
    assert status == 400
    doc = json.loads(reply)
    assert doc["error"] == "ChunkSignedPayloadUnsupported"
    assert "UNSIGNED" in doc["message"]
    assert stack.upstream_requests() == before


@pytest.mark.parametrize("host", HOSTS)
def test_session_token_credentials_are_signed(host):
    # Set-up calls made straight to moto (no signature check): CreateRole, PutRolePolicy, AssumeRole.
    s = Stack(no_auth=3, concurrency=1, host=host)
    try:
        iam = s.moto.direct_client("iam")
        role = iam.create_role(
            RoleName="session-role",
            AssumeRolePolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
            ),
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName="session-role",
            PolicyName="all",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        )
        c = s.moto.direct_client("sts").assume_role(RoleArn=role, RoleSessionName="grant-session")["Credentials"]
        assert c["AccessKeyId"].startswith("ASIA")
        s.bao.put_grant(
            "grant-session",
            {"access_key_id": c["AccessKeyId"], "secret_access_key": c["SecretAccessKey"], "session_token": c["SessionToken"]},
        )
        ident = s.client("sts", "grant-session").get_caller_identity()
        assert ":assumed-role/session-role/grant-session" in ident["Arn"]
        s3 = s.client("s3", "grant-session")
        s3.create_bucket(Bucket="session-bucket")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["session-bucket"]
        # A wrong token is refused by AWS, proving the token is part of what is checked.
        s.bao.put_grant(
            "grant-bad-token",
            {"access_key_id": c["AccessKeyId"], "secret_access_key": c["SecretAccessKey"], "session_token": "bogus"},
        )
        with pytest.raises(ClientError):
            s.client("sts", "grant-bad-token").get_caller_identity()
    finally:
        s.stop()
        s.cleanup()

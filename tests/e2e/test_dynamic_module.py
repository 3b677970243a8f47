"""The native host: grant-sigv4 as an Envoy dynamic module (envoy/dynamic-module-local.yaml),
against the real Envoy 1.40, OpenBao and moto. No other filter is in the chain: bodies whose
hash is not known at headers time are buffered, hashed and signed by the module itself."""

import base64
import hashlib
import io
import json
import os
import zipfile

import pytest

from echo import Echo
from harness import DYNAMIC_MODULE, Stack, main_stack

STS_FORM = b"Action=GetCallerIdentity&Version=2011-06-15"
# Smaller than the default (8 MiB) so that the over-limit tests send little.
MAX_BODY = 6 * 1024 * 1024


@pytest.fixture(scope="module")
def native():
    if not DYNAMIC_MODULE.exists():
        raise RuntimeError(f"{DYNAMIC_MODULE} is missing: run `make dynamic-module` (or `make test`)")
    yield from main_stack("native", user="native-user", grant="grant-native-1",
                          plugin_overrides={"max_body_bytes": MAX_BODY})


def http_filters(config_text: str) -> list[tuple[str, str]]:
    """(name, type) of each HTTP filter of the config's first listener."""
    import yaml

    doc = yaml.safe_load(config_text)
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return [(f["name"], f["typed_config"]["@type"].rsplit(".", 1)[-1]) for f in hcm["http_filters"]]


def test_the_module_is_the_only_filter(native):
    assert http_filters(native.envoy.config_path.read_text()) == [
        ("grant_sigv4", "DynamicModuleFilter"),
        ("envoy.filters.http.router", "Router"),
    ]
    assert "grant-sigv4 configured (dynamic module)" in native.envoy.proc.log_text()


def test_sts_get_is_signed_and_accepted(native):
    ident = native.client("sts", native.grant).get_caller_identity()
    assert ident["Arn"].endswith(":user/native-user")


def test_sts_post_form_body_is_hashed_and_signed(native):
    status, _, body = native.raw(
        "POST",
        "http://sts.us-east-1.amazonaws.com/",
        headers={"x-grant-id": native.grant, "content-type": "application/x-www-form-urlencoded"},
        body=STS_FORM,
    )
    assert status == 200, body
    assert b":user/native-user" in body


def test_chunked_body_without_length_is_hashed_and_signed(native):
    status, _, body = native.raw(
        "POST",
        "http://sts.us-east-1.amazonaws.com/",
        headers={"x-grant-id": native.grant, "content-type": "application/x-www-form-urlencoded"},
        chunks=[STS_FORM[:10], STS_FORM[10:]],
    )
    assert status == 200, body
    assert b":user/native-user" in body


def test_lambda_5_mib_payload_is_signed_with_its_real_hash(native):
    iam = native.client("iam", native.grant, host="iam.amazonaws.com")
    role = iam.create_role(
        RoleName="native-fn-role",
        AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        ),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("blob.bin", os.urandom(4 * 1024 * 1024))
        z.writestr("index.py", "def handler(e, c):\n    return 1\n")
    code = buf.getvalue()
    # The JSON body carries the zip in base64: more than 5 MiB.
    assert len(base64.b64encode(code)) > 5 * 1024 * 1024
    lam = native.client("lambda", native.grant)
    fn = lam.create_function(
        FunctionName="native-big-fn", Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": code}
    )
    assert fn["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()


def test_s3_put_streams_unsigned(native):
    s3 = native.client("s3", native.grant)
    s3.create_bucket(Bucket="native-bucket")
    payload = os.urandom(1024 * 1024)
    s3.put_object(Bucket="native-bucket", Key="obj", Body=payload)
    assert s3.get_object(Bucket="native-bucket", Key="obj")["Body"].read() == payload


def test_grant_not_found_is_the_wasm_filters_reply(native):
    before = native.upstream_requests()
    status, headers, body = native.raw(
        "GET", "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        headers={"x-grant-id": "grant-that-does-not-exist"},
    )
    assert status == 403, body
    assert headers.get("content-type") == "application/json"
    # Byte for byte the body the wasm filter answers (errors::LocalError::grant_not_found).
    assert body == b'{"error":"GrantNotFound","message":"no AWS credential is stored for this grant id"}'
    assert native.upstream_requests() == before


def test_not_aws_endpoint_is_refused_without_a_vault_call(native):
    before_vault, before_aws = native.vault_requests(), native.upstream_requests()
    status, _, body = native.raw("GET", "http://example.com/", headers={"x-grant-id": native.grant})
    assert status == 403, body
    assert json.loads(body) == {
        "error": "NotAwsEndpoint",
        "message": "refusing to sign: example.com is not an AWS endpoint host name",
    }
    assert (native.vault_requests(), native.upstream_requests()) == (before_vault, before_aws)


def test_missing_grant_is_401(native):
    status, _, body = native.raw("GET", "http://sts.us-east-1.amazonaws.com/")
    assert status == 401
    assert json.loads(body)["error"] == "GrantMissing"


def test_body_over_the_limit_by_content_length_is_413_before_buffering(native):
    from fakes import exchange

    before = native.upstream_requests()
    head = (
        "POST http://dynamodb.us-east-1.amazonaws.com/ HTTP/1.1\r\n"
        "Host: dynamodb.us-east-1.amazonaws.com\r\n"
        f"x-grant-id: {native.grant}\r\n"
        "content-type: application/x-amz-json-1.0\r\n"
        f"content-length: {MAX_BODY + 1}\r\n\r\n"
    ).encode()
    # Only 1 KiB of the announced body is sent: the answer comes before the body.
    reply = exchange(native.listen_port, head, b"{" * 1024)
    assert reply.status == 413
    doc = json.loads(reply.body)
    assert doc["error"] == "BodyTooLarge" and str(MAX_BODY) in doc["message"]
    assert native.upstream_requests() == before


def test_chunked_body_over_the_limit_is_413_once_it_passes(native):
    import http.client

    before = native.upstream_requests()
    chunk = b"x" * (1024 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", native.listen_port, timeout=20)
    try:
        try:
            conn.request(
                "POST",
                "http://dynamodb.us-east-1.amazonaws.com/",
                body=iter([chunk] * 7),
                headers={"x-grant-id": native.grant, "content-type": "application/x-amz-json-1.0"},
                encode_chunked=True,
            )
        except (BrokenPipeError, ConnectionResetError):
            pass  # Envoy may answer and close while the rest is still being sent.
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    assert r.status == 413, body
    assert json.loads(body)["error"] == "BodyTooLarge"
    assert native.upstream_requests() == before


def test_dynamodb_5_mib_body_reaches_aws_with_its_sha256():
    """With a recording upstream: the hash signed and sent is the SHA-256 of the bytes that
    arrive, and the body arrives whole."""
    echo = Echo()
    s = Stack(host="native", aws_port=echo.port, concurrency=1)
    try:
        s.bao.put_grant("grant-echo", {"access_key_id": "AKIDNATIVEECHO000000", "secret_access_key": "native-echo-secret"})
        body = json.dumps({"TableName": "t", "Item": {"id": {"S": "k"}, "v": {"S": "y" * (5 * 1024 * 1024)}}}).encode()
        status, _, reply = s.raw(
            "POST",
            "http://dynamodb.us-east-1.amazonaws.com/",
            headers={
                "x-grant-id": "grant-echo",
                "content-type": "application/x-amz-json-1.0",
                "x-amz-target": "DynamoDB_20120810.PutItem",
            },
            body=body,
        )
        assert status == 200, reply
        [got] = echo.requests
        h = {k.lower(): v for k, v in got["headers"].items()}
        assert got["body"] == body
        assert h["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
        assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDNATIVEECHO000000/")
        assert "x-amz-content-sha256" in h["authorization"].split("SignedHeaders=")[1].split(",")[0]
        assert "x-grant-id" not in h
    finally:
        s.stop()
        s.cleanup()
        echo.stop()


@pytest.mark.parametrize(
    "bad, line",
    [
        ({"vault": {"timeout_ms": 0}}, 'grant-sigv4: invalid plugin configuration: key "vault.timeout_ms"'),
        ({"cach": {}}, 'grant-sigv4: invalid plugin configuration: key "cach": unknown key'),
    ],
    ids=["out-of-range", "unknown-key"],
)
def test_invalid_plugin_configuration_is_refused_at_load(bad, line, tmp_path):
    """Envoy refuses the filter configuration, and the log line names the key at fault."""
    import subprocess

    from harness import ENVOY_DYNAMIC_MODULE_LOCAL, VENV_BIN, plugin_config, render

    text = render(
        ENVOY_DYNAMIC_MODULE_LOCAL.read_text(),
        {
            "ADMIN_PORT": 9901,
            "LISTEN_PORT": 15080,
            "AWS_PORT": 4566,
            "VAULT_PORT": 8200,
            "DYNAMIC_MODULE": DYNAMIC_MODULE,
            "PLUGIN_CONFIG": json.dumps(plugin_config("validate-token", **bad)),
        },
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = subprocess.run(
        [str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-2000:]
    assert line in out, out[-2000:]
    assert "validate-token" not in out


def test_a_panicking_hook_is_answered_500_and_envoy_keeps_serving():
    """The test-only build panics in the request headers hook on a marked request: the panic
    is caught at the hook (panic = "unwind"), the request is answered 500 InternalError and
    not forwarded, and Envoy goes on signing."""
    from harness import PANIC_TEST_DYNAMIC_MODULE

    if not PANIC_TEST_DYNAMIC_MODULE.exists():
        raise RuntimeError(f"{PANIC_TEST_DYNAMIC_MODULE} is missing: run `make dynamic-module-panic-test`")
    s = Stack(host="native", dynamic_module=PANIC_TEST_DYNAMIC_MODULE, concurrency=1)
    try:
        creds = s.moto.create_user_key("panic-user")
        s.bao.put_grant("grant-panic", creds)
        before = s.upstream_requests()
        status, _, body = s.raw(
            "GET", "http://sts.us-east-1.amazonaws.com/",
            headers={"x-grant-id": "grant-panic", "x-grant-sigv4-panic-test": "1"},
        )
        assert status == 500, body
        assert json.loads(body) == {
            "error": "InternalError",
            "message": "the request could not be signed: the filter failed unexpectedly",
        }
        assert s.upstream_requests() == before
        assert "a panic was caught in request_headers" in s.envoy.proc.log_text()
        assert s.envoy.proc.popen.poll() is None
        ident = s.client("sts", "grant-panic").get_caller_identity()
        assert ident["Arn"].endswith(":user/panic-user")
    finally:
        s.stop()
        s.cleanup()


def test_through_the_openbao_proxy_the_module_sends_no_token():
    """vault.auth.method proxy (the production default): the real OpenBao Proxy adds its own
    token; the module holds none and sends none."""
    s = Stack(host="native", vault_proxy={}, concurrency=1)
    try:
        assert "vault auth proxy" in s.envoy.proc.log_text()
        assert "token" not in s.plugin_config["vault"] and "token_env" not in s.plugin_config["vault"]
        creds = s.moto.create_user_key("proxied-user")
        s.bao.put_grant("grant-proxied", creds)
        ident = s.client("sts", "grant-proxied").get_caller_identity()
        assert ident["Arn"].endswith(":user/proxied-user")
        # A proxy that cannot be reached is named in the reply.
        s.bao_proxy.stop()
        status, _, body = s.raw("GET", "http://sts.us-east-1.amazonaws.com/", headers={"x-grant-id": "grant-other"})
        assert status == 503, body
        doc = json.loads(body)
        assert doc["error"] == "VaultUnavailable" and "through the Vault/OpenBao Proxy (cluster vault)" in doc["message"]
    finally:
        s.stop()
        s.cleanup()


def test_unmodified_boto3_with_the_grant_as_access_key_id():
    """grant_from_access_key_id: boto3 signs with the grant id as its access key id and a
    placeholder secret; the module takes the grant from that signature (no hand-off header:
    nothing sits between the client and the module), hashes the DynamoDB bodies and re-signs."""
    import boto3
    from botocore.config import Config

    s = Stack(host="native", plugin_overrides={"grant_from_access_key_id": True}, concurrency=1)
    try:
        creds = s.moto.create_user_key("unmodified-native-user")
        s.bao.put_grant("GRANTNATIVE0000001", creds)

        def client(service):
            return boto3.session.Session().client(
                service, region_name="us-east-1", aws_access_key_id="GRANTNATIVE0000001",
                aws_secret_access_key="unused", endpoint_url=f"http://{service}.us-east-1.amazonaws.com",
                config=Config(proxies={"http": s.proxy}, retries={"max_attempts": 1}),
            )

        assert client("sts").get_caller_identity()["Arn"].endswith(":user/unmodified-native-user")
        ddb = client("dynamodb")
        ddb.create_table(
            TableName="native-unmodified",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="native-unmodified", Item={"id": {"S": "1"}, "v": {"S": "héllo"}})
        got = ddb.get_item(TableName="native-unmodified", Key={"id": {"S": "1"}})["Item"]
        assert got["v"]["S"] == "héllo"
    finally:
        s.stop()
        s.cleanup()

"""Every AWS host-name form the filter parses, end to end through Envoy: the filter signs a
request for that exact ``Host`` and moto recomputes the SigV4 signature (with the key of
the partition named by the credential scope) and answers. Between Envoy and moto sits a
small recording relay (``Relay`` below) so each test also asserts the ``Host`` that was
really sent and the credential scope (``REGION/SERVICE``) the filter signed with: moto
recomputes the signature from the scope it is given, so without this a wrong region would
go unnoticed. Each form is also sent with a grant holding a wrong secret, and moto must
refuse it with a signature error: that proves moto verified this form and did not let it
through unchecked.

Forms served and verified here (host, what runs there):

- standard ``sts.us-east-1.amazonaws.com``, ``sqs.eu-west-1.amazonaws.com``; a non-default
  port ``sts.us-east-1.amazonaws.com:8080`` (signed with the port); an upper-case host
  (lower-cased, signed and forwarded lower-case);
- hyphenated and renamed services: ``cognito-idp.us-east-1`` (signs ``cognito-idp``),
  ``email.us-east-1`` (signs ``ses``), ``resource-groups.eu-central-1``;
- S3 path-style ``s3.us-west-2.amazonaws.com/BUCKET``; virtual-hosted
  ``BUCKET.s3.us-west-2.amazonaws.com``, also with a dotted bucket name; the legacy global
  ``s3.amazonaws.com`` and ``BUCKET.s3.amazonaws.com`` (us-east-1); the legacy dash form
  ``s3-us-west-2.amazonaws.com``; ``s3-external-1.amazonaws.com``;
- dualstack ``s3.dualstack.us-west-2.amazonaws.com``, ``BUCKET.s3.dualstack.REGION``,
  ``sts.us-east-1.api.aws``;
- FIPS ``sts-fips.us-east-1.amazonaws.com``, ``s3-fips.us-east-1.amazonaws.com``,
  ``BUCKET.s3-fips.dualstack.us-east-1.amazonaws.com``, ``fips.eks.us-east-1.amazonaws.com``
  (the ``fips.SERVICE`` form exists for batch and eks), ``sts-fips.us-east-1.api.aws``,
  the global ``iam-fips.amazonaws.com``;
- S3 Control ``ACCOUNT.s3-control.us-west-2.amazonaws.com`` (signs ``s3``; moto's s3control
  creates an access point) and that access point's host
  ``NAME-ACCOUNT.s3-accesspoint.us-west-2.amazonaws.com`` (an object read through it);
- account and resource hosts: Kinesis ``ACCOUNT.control-kinesis.us-east-1`` (a stream made
  there), ``ACCOUNT.data-kinesis[-fips].us-east-1`` and the stream-id form
  ``PREFIX20.SUF.data-kinesis.us-east-1`` (records put through each and read back);
  DynamoDB ``ACCOUNT.ddb.eu-west-1`` (a table made and an item written and read there);
- PrivateLink: regional ``vpce-0abc-def.sts.us-east-1.vpce.amazonaws.com``, zonal
  ``vpce-0abc-def-us-east-1a.sts.us-east-1.vpce.amazonaws.com`` and the S3 form
  ``BUCKET.vpce-0abc-def.s3.us-east-1.vpce.amazonaws.com`` (moto takes everything before
  ``.s3`` as the bucket name, so the bucket there is literally named ``data.vpce-0abc-def``);
- global ``iam.amazonaws.com`` and ``sts.amazonaws.com`` (us-east-1);
- GovCloud ``sts.us-gov-west-1.amazonaws.com`` and the partition's global
  ``iam.us-gov.amazonaws.com``; China ``sts.cn-north-1.amazonaws.com.cn``,
  ``iam.cn-north-1.amazonaws.com.cn`` and S3 ``s3.cn-north-1.amazonaws.com.cn``. moto keeps
  IAM users per partition, so a user and key are created in each partition with a direct
  client whose region is us-gov-west-1 / cn-north-1 (3 set-up calls each), and the
  aws-partition key is shown to be unknown there;
- API Gateway ``APIID.execute-api.us-east-1.amazonaws.com``: only the WebSocket
  ``@connections`` management API (moto's server sends every other ``execute-api`` signed
  request to its IoT backend, see below);
- Lambda function URL host ``ID.lambda-url.eu-west-1.on.aws`` (signs ``lambda``): the
  signature over that host is verified, with a ``ListFunctions`` call sent to it;
- OpenSearch domain host ``search-DOMAIN-ID.us-east-1.es.amazonaws.com`` (signs ``es``): the
  signature is verified (right secret passes, wrong secret gets ``SignatureDoesNotMatch``) on
  the 2021 API's ``ListDomainNames`` sent to it, but moto's answer after the check is a 500
  (below).

Forms moto cannot serve (and why):

- ``s3-website`` (``BUCKET.s3-website-us-west-2.amazonaws.com``,
  ``BUCKET.s3-website.REGION.amazonaws.com``): real website endpoints serve only anonymous
  ``GET``/``HEAD`` of public content with index/error documents and redirects, not the
  authenticated REST API; moto has no website endpoint at all (it picks the backend from the
  credential scope and answers as the S3 REST API). The test below only shows the filter
  signs the host (s3, REGION) and moto's check of that signature passes; website behaviour is
  not served.
- API Gateway invocation of a deployed API (``APIID.execute-api.REGION.amazonaws.com/STAGE/...``):
  moto's server maps the ``execute-api`` signing name to its IoT backend (``SIGNING_ALIASES``
  in ``moto/moto_server/werkzeug_app.py``) unless the path starts with ``/@connections``, so a
  signed call to a deployed stage never reaches moto's API Gateway.
- Lambda function URL invocation (``ID.lambda-url.REGION.on.aws/``): moto's Lambda routes
  only match the Lambda API paths (``/2015-03-31/functions/...``); ``/`` on a function URL is
  not routed (and invoking needs Docker). Shown instead: a ``ListFunctions`` call to that host.
- OpenSearch domains (``search-DOMAIN-ID.REGION.es.amazonaws.com``): moto emulates only the
  OpenSearch/ES control plane, no domain endpoint (``/_search``, indices). Even control-plane
  calls sent to the domain host fail after the signature check with a 500: moto reads the
  region from the URL with ``\\.([^.]+)\\.amazonaws\\.com``, which gives ``es``, and has no
  backend for region "es". The test asserts exactly that.
- ``iam.us-gov.amazonaws.com``: signed (us-gov-west-1/iam) and verified with the GovCloud
  key, but moto answers from the aws partition's IAM (it reads the region "us-gov" from the
  URL, which it does not map to a partition); the test asserts that.
- S3 Transfer Acceleration ``BUCKET.s3-accelerate.amazonaws.com``: the signing region is the
  bucket's and is not in the host, so the filter refuses it (400 ``RegionUnknown``, asserted
  below; an operator ``host_overrides`` entry is the way to sign one); nothing to send to moto.
- S3 Multi-Region Access Points ``ALIAS.mrap.accesspoint.s3-global.amazonaws.com``: SigV4A
  only; the filter refuses it (400 ``NotSigV4``, asserted below).

Refused forms (403 ``NotAwsEndpoint``, nothing forwarded, Envoy's upstream counter unchanged,
nothing reached the relay): look-alike suffixes ``s3.amazonaws.com.evil.example``,
``evilamazonaws.com``, IPv4 and IPv6 literals, a trailing dot; and the two S3 forms above
with their 400s. An absolute URL with userinfo (``http://user:pw@sts...``) never shows its
userinfo to the filter: Envoy takes ``:authority`` from the URL without it, so the request is
signed for the bare host and the userinfo is forwarded nowhere (asserted).
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness import Moto, Stack

ACCOUNT = "123456789012"  # moto's default account
SIG_ERRORS = {"SignatureDoesNotMatch", "AuthFailure"}
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})

# (partition, region for the direct set-up client, user name)
PARTITIONS = [("aws", "us-east-1", "hosts-user"), ("aws-us-gov", "us-gov-west-1", "gov-user"),
              ("aws-cn", "cn-north-1", "cn-user")]
SETUP_CALLS = 3 * len(PARTITIONS)  # CreateUser, PutUserPolicy, CreateAccessKey per partition


class Relay:
    """A recording HTTP relay in front of moto: keeps each request's method, path, Host and
    Authorization, and passes the request on unchanged (headers byte for byte)."""

    def __init__(self, target_port: int):
        self.seen: list[dict] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _read_body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("content-length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._read_body()
                relay.seen.append({
                    "method": self.command,
                    "path": self.path,
                    "host": self.headers.get("host"),
                    "authorization": self.headers.get("authorization", ""),
                    "headers": dict(self.headers.items()),
                })
                conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in ("transfer-encoding", "connection", "keep-alive", "content-length"):
                            conn.putheader(k, v)
                    if body or "content-length" in self.headers or "transfer-encoding" in self.headers:
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body or None)
                    r = conn.getresponse()
                    data = r.read()
                    self.send_response_only(r.status, r.reason)
                    for k, v in r.getheaders():
                        if k.lower() in ("transfer-encoding", "connection", "keep-alive", "date", "server"):
                            continue
                        if k.lower() == "content-length" and self.command != "HEAD":
                            continue
                        self.send_header(k, v)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Hosts:
    """The shared environment: one Stack whose AWS traffic goes through the relay to moto."""

    def __init__(self):
        self.logdir = Path(tempfile.mkdtemp(prefix="grant-sigv4-hosts-"))
        self.moto = self.relay = self.stack = None
        try:
            self.moto = Moto(self.logdir, no_auth=SETUP_CALLS)
            self.relay = Relay(self.moto.port)
            self.stack = Stack(aws_port=self.relay.port, concurrency=1)
            self.grants = {}
            self.creds = {}
            for partition, region, user in PARTITIONS:
                creds = self._create_user_key(region, user)
                self.creds[partition] = creds
                self.grants[partition] = f"grant-{partition}"
                self.stack.bao.put_grant(self.grants[partition], creds)
                # The right key id with a wrong secret: moto must refuse the signature.
                self.grants[partition + "/bad"] = f"grant-{partition}-bad-secret"
                self.stack.bao.put_grant(self.grants[partition + "/bad"], {**creds, "secret_access_key": "w" * 40})
        except BaseException:
            self.stop()
            raise

    def _create_user_key(self, region: str, user: str) -> dict:
        """Three unsigned-verified set-up calls in the partition of ``region``."""
        import boto3

        iam = boto3.client("iam", region_name=region, endpoint_url=self.moto.endpoint,
                           aws_access_key_id="AKIDSETUPONLY0000000", aws_secret_access_key="setup-only")
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="allow-all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}

    def stop(self):
        for part in (self.stack, self.relay, self.moto):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001 - keep stopping the others
                    pass
        if self.stack is not None:
            self.stack.cleanup()
        shutil.rmtree(self.logdir, ignore_errors=True)

    # --- clients and checks ---

    def grant(self, partition: str = "aws", bad: bool = False) -> str:
        return self.grants[partition + ("/bad" if bad else "")]

    def client(self, service: str, host: str, region: str, partition: str = "aws", bad: bool = False,
               addressing: str = "path"):
        """A boto3 client sending unsigned requests to ``http://host`` through Envoy, with a grant."""
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        grant = self.grant(partition, bad)
        c = boto3.client(
            service,
            region_name=region,
            endpoint_url=f"http://{host}",
            aws_access_key_id="AKIDUNUSED0000000000",
            aws_secret_access_key="unused",
            config=Config(
                signature_version=UNSIGNED,
                proxies={"http": self.stack.proxy},
                retries={"max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": addressing},
            ),
        )
        c.meta.events.register("before-send.*.*", lambda request, **_: request.headers.__setitem__("x-grant-id", grant))
        return c

    def mark(self) -> int:
        return len(self.relay.seen)

    def sent_since(self, mark: int) -> list[dict]:
        return self.relay.seen[mark:]

    def assert_signed(self, mark: int, host: str, region: str, service: str):
        """Every request since ``mark`` went to ``host``, signed for ``region``/``service``."""
        sent = self.sent_since(mark)
        assert sent, "nothing reached moto"
        for req in sent:
            assert req["host"] == host, req
            m = re.match(r"AWS4-HMAC-SHA256 Credential=[A-Z0-9]+/\d{8}/([^/]+)/([^/]+)/aws4_request,", req["authorization"])
            assert m, req
            assert (m.group(1), m.group(2)) == (region, service), req

    @staticmethod
    def expect_sig_error(call):
        """``call(bad=True)`` must fail with moto's signature error. (For JSON-protocol
        services moto answers the error in XML, which botocore leaves in the message.)"""
        with pytest.raises(ClientError) as e:
            call(True)
        err = e.value.response["Error"]
        if not err.get("Code"):  # s3control's <ErrorResponse><Error> shape
            err = e.value.response.get("Errors", {}).get("Error", {})
        assert err.get("Code") in SIG_ERRORS or (
            err["Code"] == "403" and "<Code>SignatureDoesNotMatch</Code>" in err.get("Message", "")
        ), e.value.response

    def raw(self, method: str, url: str, partition: str = "aws", bad: bool = False, headers=None, body=None):
        h = {"x-grant-id": self.grant(partition, bad), **(headers or {})}
        return self.stack.raw(method, url, headers=h, body=body)


@pytest.fixture(scope="module")
def env():
    h = Hosts()
    try:
        yield h
    finally:
        h.stop()


def check_form(env, host, region, service, call):
    """Run ``call(bad)`` with the good grant (returns its result) and the wrong-secret grant
    (must get a signature error); every request must be signed for ``host``/``region``/``service``."""
    mark = env.mark()
    result = call(False)
    env.expect_sig_error(call)
    env.assert_signed(mark, host, region, service)
    return result


# --------------------------------------------------------------------------- standard forms


@pytest.mark.parametrize(
    "host,region",
    [
        ("sts.us-east-1.amazonaws.com", "us-east-1"),
        ("sts.amazonaws.com", "us-east-1"),  # global endpoint
        ("sts.us-east-1.api.aws", "us-east-1"),  # dualstack
        ("sts-fips.us-east-1.amazonaws.com", "us-east-1"),  # FIPS
        ("sts-fips.us-east-1.api.aws", "us-east-1"),  # FIPS + dualstack
        ("vpce-0abc-def.sts.us-east-1.vpce.amazonaws.com", "us-east-1"),  # PrivateLink regional
        ("vpce-0abc-def-us-east-1a.sts.us-east-1.vpce.amazonaws.com", "us-east-1"),  # PrivateLink zonal
        ("sts.eu-west-1.amazonaws.com", "eu-west-1"),
    ],
)
def test_sts_forms(env, host, region):
    ident = check_form(env, host, region, "sts",
                       lambda bad: env.client("sts", host, region, bad=bad).get_caller_identity())
    assert ident["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/hosts-user"


def test_non_default_port_is_signed(env):
    host = "sts.us-east-1.amazonaws.com:8080"
    ident = check_form(env, host, "us-east-1", "sts",
                       lambda bad: env.client("sts", host, "us-east-1", bad=bad).get_caller_identity())
    assert ident["Arn"].endswith(":user/hosts-user")


def test_upper_case_host_is_signed_lower_case(env):
    url = "http://STS.US-East-1.AmazonAWS.com/?Action=GetCallerIdentity&Version=2011-06-15"
    mark = env.mark()
    status, _, body = env.raw("GET", url)
    assert status == 200, body
    assert b":user/hosts-user" in body
    status, _, body = env.raw("GET", url, bad=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    env.assert_signed(mark, "sts.us-east-1.amazonaws.com", "us-east-1", "sts")


def test_sqs_regional(env):
    host = "sqs.eu-west-1.amazonaws.com"

    def call(bad):
        return env.client("sqs", host, "eu-west-1", bad=bad).create_queue(QueueName="hosts-q")

    url = check_form(env, host, "eu-west-1", "sqs", call)["QueueUrl"]
    assert url.endswith(f"/{ACCOUNT}/hosts-q")
    attrs = env.client("sqs", host, "eu-west-1").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    assert attrs["Attributes"]["QueueArn"] == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:hosts-q"


def test_hyphenated_service_cognito_idp(env):
    host = "cognito-idp.us-east-1.amazonaws.com"

    def call(bad):
        return env.client("cognito-idp", host, "us-east-1", bad=bad).create_user_pool(PoolName="hosts-pool")

    pool = check_form(env, host, "us-east-1", "cognito-idp", call)["UserPool"]
    assert pool["Id"].startswith("us-east-1_")
    pools = env.client("cognito-idp", host, "us-east-1").list_user_pools(MaxResults=10)["UserPools"]
    assert "hosts-pool" in [p["Name"] for p in pools]


def test_hyphenated_service_resource_groups(env):
    host = "resource-groups.eu-central-1.amazonaws.com"
    query = {"Type": "TAG_FILTERS_1_0",
             "Query": json.dumps({"ResourceTypeFilters": ["AWS::AllSupported"], "TagFilters": [{"Key": "k", "Values": ["v"]}]})}

    def call(bad):
        return env.client("resource-groups", host, "eu-central-1", bad=bad).create_group(
            Name="hosts-group", ResourceQuery=query)

    group = check_form(env, host, "eu-central-1", "resource-groups", call)["Group"]
    assert group["GroupArn"].startswith("arn:aws:resource-groups:eu-central-1:")


def test_endpoint_prefix_differs_from_signing_name_ses(env):
    host = "email.us-east-1.amazonaws.com"  # endpoint prefix "email", signing name "ses"

    def call(bad):
        return env.client("ses", host, "us-east-1", bad=bad).verify_email_identity(EmailAddress="a@example.com")

    check_form(env, host, "us-east-1", "ses", call)
    ids = env.client("ses", host, "us-east-1").list_identities()["Identities"]
    assert "a@example.com" in ids


# --------------------------------------------------------------------------- S3


def s3(env, host, region, bad=False, addressing="path", partition="aws"):
    return env.client("s3", host, region, partition=partition, bad=bad, addressing=addressing)


def test_s3_path_style_and_virtual_hosted(env):
    host = "s3.us-west-2.amazonaws.com"
    check_form(env, host, "us-west-2", "s3", lambda bad: s3(env, host, "us-west-2", bad).create_bucket(
        Bucket="hosts-west", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}))
    vhost = "hosts-west.s3.us-west-2.amazonaws.com"
    check_form(env, vhost, "us-west-2", "s3", lambda bad: s3(env, host, "us-west-2", bad, "virtual").put_object(
        Bucket="hosts-west", Key="k1", Body=b"virtual"))
    # read back path-style what was written virtual-hosted
    got = s3(env, host, "us-west-2").get_object(Bucket="hosts-west", Key="k1")["Body"].read()
    assert got == b"virtual"
    loc = s3(env, host, "us-west-2").get_bucket_location(Bucket="hosts-west")["LocationConstraint"]
    assert loc == "us-west-2"


def test_s3_virtual_hosted_dotted_bucket(env):
    s3(env, "s3.us-west-2.amazonaws.com", "us-west-2").create_bucket(
        Bucket="hosts.dotted.bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    host = "hosts.dotted.bucket.s3.us-west-2.amazonaws.com"
    base = "http://" + host
    mark = env.mark()
    status, _, body = env.raw("PUT", base + "/dotted-key", body=b"dots")
    assert status == 200, body
    status, _, body = env.raw("GET", base + "/dotted-key")
    assert (status, body) == (200, b"dots")
    status, _, body = env.raw("GET", base + "/dotted-key", bad=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    env.assert_signed(mark, host, "us-west-2", "s3")
    got = s3(env, "s3.us-west-2.amazonaws.com", "us-west-2").get_object(Bucket="hosts.dotted.bucket", Key="dotted-key")
    assert got["Body"].read() == b"dots"


def test_s3_legacy_global_endpoint_signs_us_east_1(env):
    host = "s3.amazonaws.com"
    check_form(env, host, "us-east-1", "s3", lambda bad: s3(env, host, "us-east-1", bad).create_bucket(
        Bucket="hosts-global"))
    vhost = "hosts-global.s3.amazonaws.com"
    check_form(env, vhost, "us-east-1", "s3", lambda bad: s3(env, host, "us-east-1", bad, "virtual").put_object(
        Bucket="hosts-global", Key="g", Body=b"global"))
    got = s3(env, "s3.us-east-1.amazonaws.com", "us-east-1").get_object(Bucket="hosts-global", Key="g")
    assert got["Body"].read() == b"global"


def test_s3_external_1(env):
    host = "s3-external-1.amazonaws.com"
    s3(env, "s3.us-east-1.amazonaws.com", "us-east-1").create_bucket(Bucket="hosts-ext")
    check_form(env, host, "us-east-1", "s3", lambda bad: s3(env, host, "us-east-1", bad).put_object(
        Bucket="hosts-ext", Key="e", Body=b"ext"))
    assert s3(env, host, "us-east-1").get_object(Bucket="hosts-ext", Key="e")["Body"].read() == b"ext"


def test_s3_legacy_dash_region(env):
    host = "s3-us-west-2.amazonaws.com"
    check_form(env, host, "us-west-2", "s3", lambda bad: s3(env, host, "us-west-2", bad).create_bucket(
        Bucket="hosts-dash", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}))
    s3(env, host, "us-west-2").put_object(Bucket="hosts-dash", Key="d", Body=b"dash")
    got = s3(env, "s3.us-west-2.amazonaws.com", "us-west-2").get_object(Bucket="hosts-dash", Key="d")
    assert got["Body"].read() == b"dash"


def test_s3_dualstack(env):
    host = "s3.dualstack.us-west-2.amazonaws.com"
    check_form(env, host, "us-west-2", "s3", lambda bad: s3(env, host, "us-west-2", bad).create_bucket(
        Bucket="hosts-dual", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}))
    vhost = "hosts-dual.s3.dualstack.us-west-2.amazonaws.com"
    check_form(env, vhost, "us-west-2", "s3", lambda bad: s3(env, host, "us-west-2", bad, "virtual").put_object(
        Bucket="hosts-dual", Key="x", Body=b"dual"))
    got = s3(env, "s3.us-west-2.amazonaws.com", "us-west-2").get_object(Bucket="hosts-dual", Key="x")
    assert got["Body"].read() == b"dual"


def test_s3_fips(env):
    host = "s3-fips.us-east-1.amazonaws.com"
    check_form(env, host, "us-east-1", "s3", lambda bad: s3(env, host, "us-east-1", bad).create_bucket(
        Bucket="hosts-fips"))
    base = "http://hosts-fips.s3-fips.dualstack.us-east-1.amazonaws.com"
    mark = env.mark()
    status, _, body = env.raw("PUT", base + "/f", body=b"fips")
    assert status == 200, body
    status, _, body = env.raw("GET", base + "/f", bad=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    env.assert_signed(mark, "hosts-fips.s3-fips.dualstack.us-east-1.amazonaws.com", "us-east-1", "s3")
    assert s3(env, host, "us-east-1").get_object(Bucket="hosts-fips", Key="f")["Body"].read() == b"fips"


def test_s3_website_host_is_signed_but_served_as_rest_api(env):
    # Not a website test: moto has no website endpoint (see the module docstring).
    s3(env, "s3.us-west-2.amazonaws.com", "us-west-2").create_bucket(
        Bucket="hosts-web", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3(env, "s3.us-west-2.amazonaws.com", "us-west-2").put_object(Bucket="hosts-web", Key="index.html", Body=b"<p>")
    for host in ("hosts-web.s3-website-us-west-2.amazonaws.com", "hosts-web.s3-website.us-west-2.amazonaws.com"):
        mark = env.mark()
        status, _, body = env.raw("GET", f"http://{host}/index.html")
        assert (status, body) == (200, b"<p>")
        status, _, body = env.raw("GET", f"http://{host}/index.html", bad=True)
        assert status == 403 and b"SignatureDoesNotMatch" in body, body
        env.assert_signed(mark, host, "us-west-2", "s3")


def test_s3_privatelink(env):
    # moto takes everything before ".s3" as the bucket name: "data.vpce-0abc-def".
    bucket = "data.vpce-0abc-def"
    s3(env, "s3.us-east-1.amazonaws.com", "us-east-1").create_bucket(Bucket=bucket)
    host = f"{bucket}.s3.us-east-1.vpce.amazonaws.com"  # = data.vpce-0abc-def.s3.us-east-1.vpce...
    mark = env.mark()
    status, _, body = env.raw("PUT", f"http://{host}/p", body=b"private")
    assert status == 200, body
    status, _, body = env.raw("GET", f"http://{host}/p")
    assert (status, body) == (200, b"private")
    status, _, body = env.raw("GET", f"http://{host}/p", bad=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    env.assert_signed(mark, host, "us-east-1", "s3")


def test_s3_control_and_access_point(env):
    region = "us-west-2"
    s3(env, f"s3.{region}.amazonaws.com", region).create_bucket(
        Bucket="hosts-ap-bucket", CreateBucketConfiguration={"LocationConstraint": region})
    s3(env, f"s3.{region}.amazonaws.com", region).put_object(Bucket="hosts-ap-bucket", Key="a", Body=b"through ap")
    ctl_host = f"{ACCOUNT}.s3-control.{region}.amazonaws.com"

    def call(bad):
        return env.client("s3control", f"s3-control.{region}.amazonaws.com", region, bad=bad).create_access_point(
            AccountId=ACCOUNT, Name="hosts-ap", Bucket="hosts-ap-bucket")

    check_form(env, ctl_host, region, "s3", call)
    ap = env.client("s3control", f"s3-control.{region}.amazonaws.com", region).get_access_point(
        AccountId=ACCOUNT, Name="hosts-ap")
    assert ap["Bucket"] == "hosts-ap-bucket"
    ap_host = f"hosts-ap-{ACCOUNT}.s3-accesspoint.{region}.amazonaws.com"
    mark = env.mark()
    status, _, body = env.raw("GET", f"http://{ap_host}/a")
    assert (status, body) == (200, b"through ap")
    status, _, body = env.raw("GET", f"http://{ap_host}/a", bad=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    env.assert_signed(mark, ap_host, region, "s3")


# --------------------------------------------------------------------------- account and resource hosts


def test_kinesis_account_and_stream_hosts(env):
    """Kinesis's account-based hosts (``ACCOUNT.control-kinesis.REGION``, for an account id or
    a ``StreamARN``; ``ACCOUNT.data-kinesis[-fips].REGION``) and the stream-id form
    (``PREFIX20.SUF.data-kinesis.REGION``): each signs ``kinesis`` in the region and moto's
    Kinesis answers for the stream made through the first."""
    region = "us-east-1"
    ctl = f"{ACCOUNT}.control-kinesis.{region}.amazonaws.com"

    def create(bad):
        return env.client("kinesis", ctl, region, bad=bad).create_stream(StreamName="hosts-stream", ShardCount=1)

    check_form(env, ctl, region, "kinesis", create)
    arn = env.client("kinesis", ctl, region).describe_stream_summary(
        StreamName="hosts-stream")["StreamDescriptionSummary"]["StreamARN"]
    assert arn == f"arn:aws:kinesis:{region}:{ACCOUNT}:stream/hosts-stream"
    for data in (f"{ACCOUNT}.data-kinesis.{region}.amazonaws.com",
                 f"{ACCOUNT}.data-kinesis-fips.{region}.amazonaws.com",
                 f"abcdefghij0123456789.abc.data-kinesis.{region}.amazonaws.com"):
        put = check_form(env, data, region, "kinesis", lambda bad, data=data: env.client(
            "kinesis", data, region, bad=bad).put_record(StreamARN=arn, Data=b"through " + data.encode(),
                                                         PartitionKey="k"))
        assert put["ShardId"].startswith("shardId-"), put
    shard = env.client("kinesis", ctl, region).list_shards(StreamARN=arn)["Shards"][0]["ShardId"]
    data = f"{ACCOUNT}.data-kinesis.{region}.amazonaws.com"
    it = env.client("kinesis", data, region).get_shard_iterator(
        StreamARN=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = env.client("kinesis", data, region).get_records(ShardIterator=it, StreamARN=arn)["Records"]
    assert [r["Data"] for r in records] == [
        b"through " + h.encode() for h in (f"{ACCOUNT}.data-kinesis.{region}.amazonaws.com",
                                          f"{ACCOUNT}.data-kinesis-fips.{region}.amazonaws.com",
                                          f"abcdefghij0123456789.abc.data-kinesis.{region}.amazonaws.com")]


def test_dynamodb_account_based_host(env):
    """DynamoDB's account-based endpoint ``ACCOUNT.ddb.REGION.amazonaws.com`` (current SDKs'
    default when they know the account) signs ``dynamodb`` in the region."""
    region = "eu-west-1"
    host = f"{ACCOUNT}.ddb.{region}.amazonaws.com"

    def create(bad):
        return env.client("dynamodb", host, region, bad=bad).create_table(
            TableName="hosts-table", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])

    table = check_form(env, host, region, "dynamodb", create)["TableDescription"]
    assert table["TableArn"] == f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/hosts-table"
    check_form(env, host, region, "dynamodb", lambda bad: env.client("dynamodb", host, region, bad=bad).put_item(
        TableName="hosts-table", Item={"id": {"S": "1"}, "v": {"S": "account host"}}))
    item = env.client("dynamodb", host, region).get_item(TableName="hosts-table", Key={"id": {"S": "1"}})["Item"]
    assert item["v"] == {"S": "account host"}


# --------------------------------------------------------------------------- global, FIPS, other


def test_iam_global_endpoints(env):
    for host in ("iam.amazonaws.com", "iam-fips.amazonaws.com"):
        users = check_form(env, host, "us-east-1", "iam",
                           lambda bad: env.client("iam", host, "us-east-1", bad=bad).list_users())["Users"]
        assert [u["UserName"] for u in users] == ["hosts-user"]


def test_fips_dot_service_form(env):
    host = "fips.eks.us-east-1.amazonaws.com"
    got = check_form(env, host, "us-east-1", "eks",
                     lambda bad: env.client("eks", host, "us-east-1", bad=bad).list_clusters())
    assert got["clusters"] == []


def test_execute_api_connections(env):
    host = "abc123.execute-api.us-east-1.amazonaws.com"

    def call(bad):
        return env.client("apigatewaymanagementapi", host, "us-east-1", bad=bad).post_to_connection(
            ConnectionId="conn1", Data=b"hello")

    check_form(env, host, "us-east-1", "execute-api", call)
    conn = env.client("apigatewaymanagementapi", host, "us-east-1").get_connection(ConnectionId="conn1")
    assert "ConnectedAt" in conn


def test_lambda_function_url_host(env):
    host = "abcdefghijklmnop.lambda-url.eu-west-1.on.aws"
    got = check_form(env, host, "eu-west-1", "lambda",
                     lambda bad: env.client("lambda", host, "eu-west-1", bad=bad).list_functions())
    assert got["Functions"] == []


def test_opensearch_domain_host(env):
    """moto verifies the signature, then fails with 500: it reads the region from the URL with
    ``\\.([^.]+)\\.amazonaws\\.com``, which gives "es" for NAME.REGION.es.amazonaws.com. A 500
    from the backend after the check (and a signature error with the wrong secret) is what
    this host form can show."""
    host = "search-hosts-abc123.us-east-1.es.amazonaws.com"
    # ListDomainNames of the 2021 OpenSearch API: moto checks the signature first (its 2015 ES
    # routes skip the check, so they would prove nothing).
    url = f"http://{host}/2021-01-01/domain"
    mark = env.mark()
    status, _, body = env.raw("GET", url)
    assert status == 500 and b"Internal Server Error" in body, body
    status, _, body = env.raw("GET", url, bad=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    env.assert_signed(mark, host, "us-east-1", "es")
    assert "KeyError: 'es'" in env.moto.proc.log_text()


# --------------------------------------------------------------------------- GovCloud and China


@pytest.mark.parametrize(
    "partition,host,region,user",
    [
        ("aws-us-gov", "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", "gov-user"),
        ("aws-cn", "sts.cn-north-1.amazonaws.com.cn", "cn-north-1", "cn-user"),
    ],
)
def test_other_partitions_sts(env, partition, host, region, user):
    ident = check_form(env, host, region, "sts",
                       lambda bad: env.client("sts", host, region, partition=partition, bad=bad).get_caller_identity())
    assert ident["Arn"] == f"arn:{partition}:iam::{ACCOUNT}:user/{user}"
    # The aws-partition key does not exist in this partition.
    with pytest.raises(ClientError) as e:
        env.client("sts", host, region).get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"


@pytest.mark.parametrize(
    "partition,host,region,user",
    [
        ("aws-us-gov", "iam.us-gov.amazonaws.com", "us-gov-west-1", "gov-user"),
        ("aws-cn", "iam.cn-north-1.amazonaws.com.cn", "cn-north-1", "cn-user"),
    ],
)
def test_other_partitions_iam(env, partition, host, region, user):
    users = check_form(env, host, region, "iam",
                       lambda bad: env.client("iam", host, region, partition=partition, bad=bad).list_users())["Users"]
    with pytest.raises(ClientError) as e:
        env.client("iam", host, region).list_users()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    if host == "iam.us-gov.amazonaws.com":
        # The signature was checked with the aws-us-gov key (the scope says us-gov-west-1), but
        # moto answers from the partition of the region it reads from the URL, "us-gov", which
        # it does not know as a region: the aws partition's users.
        assert [u["Arn"] for u in users] == [f"arn:aws:iam::{ACCOUNT}:user/hosts-user"]
    else:
        assert [(u["UserName"], u["Arn"]) for u in users] == [(user, f"arn:{partition}:iam::{ACCOUNT}:user/{user}")]


def test_china_s3(env):
    host = "s3.cn-north-1.amazonaws.com.cn"

    def client(bad=False):
        return env.client("s3", host, "cn-north-1", partition="aws-cn", bad=bad)

    check_form(env, host, "cn-north-1", "s3", lambda bad: client(bad).create_bucket(
        Bucket="hosts-cn", CreateBucketConfiguration={"LocationConstraint": "cn-north-1"}))
    client().put_object(Bucket="hosts-cn", Key="c", Body=b"china")
    assert client().get_object(Bucket="hosts-cn", Key="c")["Body"].read() == b"china"


# --------------------------------------------------------------------------- refused forms


@pytest.mark.parametrize(
    "url",
    [
        "http://s3.amazonaws.com.evil.example/",
        "http://sts.us-east-1.amazonaws.com.evil.example/",
        "http://10.0.0.1/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://sts.us-east-1.amazonaws.com./",  # trailing dot
        "http://evilamazonaws.com/",
    ],
)
def test_refused_hosts(env, url):
    refused(env, url, 403, "NotAwsEndpoint")


@pytest.mark.parametrize(
    "url,code",
    [
        ("http://hosts-bucket.s3-accelerate.amazonaws.com/k", "RegionUnknown"),  # bucket's region
        ("http://alias.mrap.accesspoint.s3-global.amazonaws.com/k", "NotSigV4"),  # SigV4A only
    ],
)
def test_aws_hosts_that_cannot_be_signed(env, url, code):
    refused(env, url, 400, code)


def refused(env, url, status_expected, code):
    before = env.stack.upstream_requests()
    mark = env.mark()
    status, hdrs, body = env.raw("GET", url)
    assert status == status_expected, body
    doc = json.loads(body)
    assert doc["error"] == code, doc
    assert hdrs.get("content-type") == "application/json"
    assert env.stack.upstream_requests() == before, "a refused request reached AWS"
    assert env.sent_since(mark) == []


def test_userinfo_in_absolute_url_is_dropped_by_envoy(env):
    """Envoy takes :authority from the absolute URL without its userinfo, so the filter never
    sees it: the request is signed for the bare host and the userinfo goes nowhere."""
    mark = env.mark()
    url = "http://someone:s3cr3t-pw@sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
    status, _, body = env.raw("GET", url)
    assert status == 200, body
    assert b":user/hosts-user" in body
    env.assert_signed(mark, "sts.us-east-1.amazonaws.com", "us-east-1", "sts")
    [req] = env.sent_since(mark)
    assert "s3cr3t-pw" not in json.dumps(req["headers"]) and "someone" not in json.dumps(req["headers"])

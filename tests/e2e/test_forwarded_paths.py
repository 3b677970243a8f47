"""What leaves Envoy is what the filter signed: every path form through every shipped
configuration, judged by moto (which verifies each signature; ``moto_keep_path.py`` keeps a
target that starts with ``//`` as it was sent, as AWS does).

Where the path or authority that leaves Envoy can differ from what the filter saw, and what
is done about it (docs/forwarded-paths.md):

- The connection manager's ``normalize_path``, ``merge_slashes`` and
  ``path_with_escaped_slashes_action`` rewrite the path before any HTTP filter runs, so the
  filter signs their result (``test_hcm_path_normalization_is_signed_as_forwarded``). The
  shipped configurations set them, to keep the path as sent: each would change which S3
  object a request names.
- A leading ``//`` is not touched by Envoy 1.40 (without ``merge_slashes``); the key
  ``/leading-slash-key`` round-trips in both addressing styles.
- An S3 path that is not spelled as the canonical URI that is signed (``%7E``, ``%2f``, a raw
  ``\\`` or ``!``) leaves Envoy respelled canonically: the same key, and the bytes AWS
  receives are the bytes that were signed.
- Absolute-form targets: Envoy takes the path and authority from the URL before the filters.
- A ``#fragment`` is refused by Envoy itself (400) before any filter, so is a target whose path
  does not start with ``/`` (404): nothing is forwarded.
- A route ``prefix_rewrite`` / ``host_rewrite_literal`` is applied by the router after the HTTP
  filters and before the upstream filters: with the filter in the connection manager's chain
  (``envoy/local.yaml``, ``envoy/envoy.yaml``, Istio) AWS refuses the rewritten request
  (the shipped configurations have no rewrite, and say so); with the filter as an upstream
  filter (``envoy/local-retry.yaml``) the rewritten request is signed and accepted.

``envoy/envoy.yaml`` reaches the real AWS over TLS; its connection manager's path options
are checked to be the ones of ``envoy/local.yaml`` (test_configs.py), whose chain runs here.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest
import yaml

from harness import ENVOY_LOCAL, ENVOY_LOCAL_RETRY, Stack
from test_istio_manifests import ISTIO, istio_like_envoy_config, load_docs

BUCKET = "paths"
VHOST = f"{BUCKET}.s3.us-east-1.amazonaws.com"
S3 = "s3.us-east-1.amazonaws.com"
STS = "sts.us-east-1.amazonaws.com"
STS_QUERY = "?Action=GetCallerIdentity&Version=2011-06-15"

# (id, host, path as sent, the key it names in BUCKET)
S3_PATHS = [
    ("leading-double-slash", VHOST, "//leading-slash-key", "/leading-slash-key"),
    ("leading-triple-slash", VHOST, "///triple", "//triple"),
    ("inner-double-slash", VHOST, "/a//b", "a//b"),
    ("dot-segment", VHOST, "/a/./b", "a/./b"),
    ("dot-dot-segment", VHOST, "/a/../b", "a/../b"),
    ("escaped-slash", VHOST, "/c%2Fd", "c/d"),
    ("escaped-slash-lower-case", VHOST, "/e%2ff", "e/f"),
    ("escaped-backslash", VHOST, "/g%5Ch", "g\\h"),
    ("raw-backslash", VHOST, "/i\\j", "i\\j"),
    ("escaped-tilde", VHOST, "/%7Etilde", "~tilde"),
    ("escaped-space", VHOST, "/sp%20ace", "sp ace"),
    ("raw-bang", VHOST, "/bang!", "bang!"),
    ("trailing-slash", VHOST, "/dir/", "dir/"),
    ("path-style-leading-slash", S3, f"/{BUCKET}//path-style-key", "/path-style-key"),
    ("path-style-dot-dot", S3, f"/{BUCKET}/x/../y", "x/../y"),
]
STS_PATHS = [("sts-root", "/"), ("sts-double-slash", "//")]


def exchange(port: int, method: str, target: str, host: str, grant: str = "g-paths", body: bytes = b""):
    """One raw HTTP/1.1 request (the target exactly as given); returns (status, body)."""
    head = (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nx-grant-id: {grant}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def istio_template() -> Path:
    """The Istio sidecar's chain from istio/ as a harness template (placeholders for the ports)."""
    cfg = load_docs(ISTIO / "wasmplugin.yaml")[0]["spec"]["pluginConfig"]
    doc = istio_like_envoy_config(cfg, "${LISTEN_PORT}", "${ADMIN_PORT}", "${AWS_PORT}", "${VAULT_PORT}")
    path = Path(tempfile.mkdtemp(prefix="grant-sigv4-istio-")) / "istio-like.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start(config: str, template_text: str | None = None, create_bucket: bool = True) -> Stack:
    if config == "local":
        kw = {"envoy_config": ENVOY_LOCAL}
    elif config == "local-retry":
        kw = {"envoy_config": ENVOY_LOCAL_RETRY, "plugin_overrides": {"upstream_filter": True}}
    else:
        # The WasmPlugin's pluginConfig reads grants through the pod's OpenBao Proxy.
        kw = {"envoy_config": istio_template(), "vault_proxy": {}}
    if template_text is not None:
        path = Path(tempfile.mkdtemp(prefix="grant-sigv4-cfg-")) / "envoy.yaml"
        path.write_text(template_text)
        kw["envoy_config"] = path
    s = Stack(concurrency=1, **kw)
    try:
        s.paths_creds = s.moto.create_user_key("paths-user")
        s.bao.put_grant("g-paths", s.paths_creds)
        if create_bucket:
            status, body = exchange(s.listen_port, "PUT", "/", VHOST)
            assert status == 200, body
    except BaseException:
        s.stop()
        s.cleanup()
        raise
    return s


def signature_refused(status: int, body: bytes) -> bool:
    return status == 403 and b"SignatureDoesNotMatch" in body


@pytest.fixture(scope="module", params=["local", "local-retry", "istio"])
def stack(request):
    s = start(request.param)
    yield s
    s.stop()
    s.cleanup()


@pytest.mark.parametrize("form", ["origin", "absolute"])
@pytest.mark.parametrize("case", S3_PATHS, ids=[c[0] for c in S3_PATHS])
def test_s3_path_names_the_key_sent_and_is_signed_as_forwarded(stack, case, form):
    name, host, path, key = case
    target = path if form == "origin" else f"http://{host}{path}"
    body = f"{name} {form}".encode()
    status, reply = exchange(stack.listen_port, "PUT", target, host, body=body)
    assert status == 200, (status, reply[:300])
    status, reply = exchange(stack.listen_port, "GET", target, host)
    assert (status, reply) == (200, body), reply[:300]
    # The object is the one the client named: the path was not normalized on the way.
    listed = stack.client("s3", "g-paths").list_objects_v2(Bucket=BUCKET, Prefix=key)
    assert key in [o["Key"] for o in listed.get("Contents", [])], listed.get("Contents")


@pytest.mark.parametrize("case", STS_PATHS, ids=[c[0] for c in STS_PATHS])
def test_other_services_paths_are_signed_as_forwarded(stack, case):
    _, path = case
    for target in (path + STS_QUERY, f"http://{STS}{path}{STS_QUERY}"):
        status, reply = exchange(stack.listen_port, "GET", target, STS)
        assert status == 200 and b":user/paths-user" in reply, (target, status, reply[:300])


@pytest.mark.parametrize("style", ["virtual", "path"])
def test_leading_slash_key_round_trips_with_boto3(stack, style):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    c = boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://{S3}", config=Config(
        signature_version=UNSIGNED, proxies={"http": stack.proxy}, retries={"max_attempts": 1},
        s3={"addressing_style": style}))
    c.meta.events.register("before-send.*.*", lambda request, **_: request.headers.__setitem__("x-grant-id", "g-paths"))
    c.put_object(Bucket=BUCKET, Key="/leading-slash-key", Body=style.encode())
    assert c.get_object(Bucket=BUCKET, Key="/leading-slash-key")["Body"].read() == style.encode()
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET, Prefix="/lead")["Contents"]]
    assert keys == ["/leading-slash-key"]
    c.delete_object(Bucket=BUCKET, Key="/leading-slash-key")


def test_the_stand_in_judges_a_leading_double_slash_as_aws_does(stack):
    """Control: boto3 signing by itself (no filter), straight to moto, a key that starts with
    '/' in virtual-hosted style, whose path starts with '//'."""
    import boto3
    from botocore.config import Config

    creds = stack.paths_creds
    c = boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://{S3}",
                     aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
                     config=Config(proxies={"http": stack.moto.endpoint}, retries={"max_attempts": 1},
                                   s3={"addressing_style": "virtual"}))
    c.put_object(Bucket=BUCKET, Key="/control-key", Body=b"c")
    assert c.get_object(Bucket=BUCKET, Key="/control-key")["Body"].read() == b"c"


def aws_upstream_requests(stack) -> int:
    return sum(stack.envoy.counter(f"cluster.{c}.upstream_rq_total") for c in ("aws", "aws_s3"))


@pytest.mark.parametrize("target,status", [("/k#frag", 400), (f"http://{VHOST}?x=1", 404)],
                         ids=["fragment", "absolute-url-without-path"])
def test_targets_envoy_refuses_itself_are_not_forwarded(stack, target, status):
    before = aws_upstream_requests(stack)
    assert exchange(stack.listen_port, "GET", target, VHOST)[0] == status
    assert aws_upstream_requests(stack) == before


# ---------------------------------------------------------------------------------------------
# Options and routes that the shipped configurations do not use, as an operator might set them


HCM_OPTIONS = {
    "normalize_path": "true",
    "merge_slashes": "true",
    "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD",
}


def with_hcm_options(text: str, options: dict) -> str:
    for k, v in options.items():
        lines = [line for line in text.splitlines() if line.strip().startswith(f"{k}:")]
        assert len(lines) == 1, (k, lines)
        indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
        text = text.replace(lines[0], f"{indent}{k}: {v}")
    return text


@pytest.mark.parametrize("config", ["local", "local-retry"])
def test_hcm_path_normalization_is_signed_as_forwarded(config):
    """Envoy normalizes before any HTTP filter (and before the router): the filter signs the
    normalized path, which is the one forwarded. The object named changes (``/a/../b`` is
    ``b``), which is why the shipped configurations keep the path as sent."""
    template = ENVOY_LOCAL if config == "local" else ENVOY_LOCAL_RETRY
    s = start(config, with_hcm_options(template.read_text(), HCM_OPTIONS))
    try:
        for name, host, path, _ in S3_PATHS:
            status, reply = exchange(s.listen_port, "PUT", path, host, body=name.encode())
            assert status == 200, (name, status, reply[:300])
        # Normalized on the way in: the key is the normalized path's.
        c = s.client("s3", "g-paths")
        assert c.get_object(Bucket=BUCKET, Key="b")["Body"].read() == b"dot-dot-segment"
        assert c.get_object(Bucket=BUCKET, Key="a/b")["Body"].read() == b"dot-segment"
        assert c.get_object(Bucket=BUCKET, Key="leading-slash-key")["Body"].read() == b"leading-double-slash"
        for name, path in STS_PATHS:
            status, reply = exchange(s.listen_port, "GET", path + STS_QUERY, STS)
            assert status == 200, (name, status, reply[:300])
    finally:
        s.stop()
        s.cleanup()


def with_route_rewrite(text: str) -> str:
    """Every route rewrites its path into BUCKET (path-style) and its host to the S3 host."""
    rewrite = f'prefix_rewrite: "/{BUCKET}/", host_rewrite_literal: "{S3}"'
    assert text.count("timeout: 120s }") >= 2
    return text.replace("timeout: 120s }", f"timeout: 120s, {rewrite} }}")


def test_route_rewrite_is_signed_by_the_upstream_filter():
    s = start("local-retry", with_route_rewrite(ENVOY_LOCAL_RETRY.read_text()))
    try:
        status, reply = exchange(s.listen_port, "PUT", "/rewritten-key", "s3.us-west-2.amazonaws.com", body=b"rw")
        assert status == 200, reply[:300]
        status, reply = exchange(s.listen_port, "GET", "/rewritten-key", "s3.us-west-2.amazonaws.com")
        assert (status, reply) == (200, b"rw")
    finally:
        s.stop()
        s.cleanup()


def test_route_rewrite_after_the_filter_is_refused_by_aws():
    """With the filter in the connection manager's chain a route rewrite happens after the
    signature: AWS refuses the request (never unsigned); the shipped configurations have none."""
    s = start("local", with_route_rewrite(ENVOY_LOCAL.read_text()), create_bucket=False)
    try:
        status, reply = exchange(s.listen_port, "GET", "/rewritten-key", "s3.us-west-2.amazonaws.com")
        assert signature_refused(status, reply), (status, reply[:300])
    finally:
        s.stop()
        s.cleanup()


def test_istio_route_rewrite_after_the_filter_is_refused_by_aws():
    cfg = load_docs(ISTIO / "wasmplugin.yaml")[0]["spec"]["pluginConfig"]
    doc = istio_like_envoy_config(cfg, "${LISTEN_PORT}", "${ADMIN_PORT}", "${AWS_PORT}", "${VAULT_PORT}",
                                  route_extra={"prefix_rewrite": f"/{BUCKET}/", "host_rewrite_literal": S3})
    s = start("istio", yaml.safe_dump(doc), create_bucket=False)
    try:
        status, reply = exchange(s.listen_port, "GET", "/rewritten-key", "s3.us-west-2.amazonaws.com")
        assert signature_refused(status, reply), (status, reply[:300])
    finally:
        s.stop()
        s.cleanup()

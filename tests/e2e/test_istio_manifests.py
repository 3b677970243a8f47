"""The Istio manifests in istio/: schema-valid against the Istio CRDs (istio/schemas), the
generator's output is what is shipped, and the Envoy pieces they inject (WasmPlugin
pluginConfig, body-hasher EnvoyFilter) load in the real Envoy and sign through moto."""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ISTIO = ROOT / "istio"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import VENV_BIN, WASM, BaoProxy, Envoy, Moto, OpenBao, free_port  # noqa: E402

try:
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def manifest_files():
    """Istio objects (validated against the CRDs); istio/kubernetes/ holds core Kubernetes ones."""
    return sorted(p for p in ISTIO.rglob("*.yaml") if not {"schemas", "kubernetes"} & set(p.parts))


def load_docs(path):
    return [d for d in yaml.load_all(path.read_text(), Loader=Loader) if d]


def strip_k8s(node):
    """Drop Kubernetes-only OpenAPI extensions (x-kubernetes-*): not JSON Schema."""
    if isinstance(node, dict):
        return {k: strip_k8s(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [strip_k8s(v) for v in node]
    return node


@pytest.fixture(scope="module")
def crds():
    if jsonschema is None:
        pytest.fail("the jsonschema package is needed (it comes with moto[server]: pip install jsonschema)")
    out = {}
    for d in load_docs(ISTIO / "schemas" / "istio-crds.yaml"):
        spec = d["spec"]
        out[(spec["group"], spec["names"]["kind"])] = spec
    assert {k for _, k in out} == {"WasmPlugin", "ServiceEntry", "DestinationRule", "EnvoyFilter"}
    return out


def validate(doc, crds):
    """Errors of one manifest, as strings (empty: valid)."""
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    if "/" not in api:
        return [f"apiVersion {api!r} has no group"]
    group, version = api.split("/", 1)
    crd = crds.get((group, kind))
    if crd is None:
        return [f"no CRD for {group} {kind}"]
    versions = {v["name"]: v for v in crd["versions"]}
    v = versions.get(version)
    if v is None or not v.get("served"):
        return [f"{kind} {version} is not a served version ({sorted(versions)})"]
    meta = doc.get("metadata") or {}
    errors = []
    if not meta.get("name"):
        errors.append("metadata.name missing")
    schema = strip_k8s(v["schema"]["openAPIV3Schema"])
    body = {k: doc[k] for k in ("spec",) if k in doc}
    validator = jsonschema.Draft7Validator(schema)
    errors += [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    return errors


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(ISTIO)))
def test_manifest_is_valid(path, crds):
    docs = load_docs(path)
    assert docs, f"{path} holds no manifest"
    for doc in docs:
        assert validate(doc, crds) == [], (path.name, doc.get("kind"), doc.get("metadata", {}).get("name"))


def test_broken_manifests_fail(crds):
    wasm = load_docs(ISTIO / "wasmplugin.yaml")[0]
    assert validate(wasm, crds) == []
    bad = copy.deepcopy(wasm)
    bad["spec"]["failStrategy"] = "FAIL_SOMETIMES"
    assert any("failStrategy" in e for e in validate(bad, crds))
    bad = copy.deepcopy(wasm)
    bad["spec"]["sha256"] = "not-a-digest"
    assert validate(bad, crds)
    bad = copy.deepcopy(wasm)
    del bad["spec"]["url"]
    assert validate(bad, crds)
    bad = copy.deepcopy(wasm)
    bad["apiVersion"] = "extensions.istio.io/v1beta9"
    assert "not a served version" in validate(bad, crds)[0]
    se = load_docs(ISTIO / "aws-service-entries.example.yaml")[0]
    bad = copy.deepcopy(se)
    bad["spec"]["resolution"] = "MAGIC"
    bad["spec"]["ports"][0]["number"] = "eighty"  # (CEL range rules are not evaluated)
    assert len(validate(bad, crds)) == 2
    bad["kind"] = "ServiceEntree"
    assert validate(bad, crds) == ["no CRD for networking.istio.io ServiceEntree"]


def test_wasmplugin_shape():
    wasm = load_docs(ISTIO / "wasmplugin.yaml")[0]["spec"]
    assert wasm["match"] == [{"mode": "CLIENT", "ports": [{"number": 80}]}]
    assert wasm["failStrategy"] == "FAIL_CLOSE"
    assert wasm["selector"]["matchLabels"] == {"aws-egress": "enabled"}
    # No Vault secret in the sidecar: the pod's OpenBao Proxy, through its ServiceEntry's cluster.
    assert wasm["pluginConfig"]["vault"]["cluster"] == "outbound|8100||grant-sigv4-vault-proxy.local"
    assert wasm["pluginConfig"]["vault"]["auth"] == {"method": "proxy"}
    assert "vmConfig" not in wasm and "token" not in json.dumps(wasm["pluginConfig"])
    se, dr = load_docs(ISTIO / "vault-proxy.yaml")
    assert se["spec"]["hosts"] == ["grant-sigv4-vault-proxy.local"]
    assert se["spec"]["ports"][0]["number"] == 8100 and se["spec"]["endpoints"] == [{"address": "127.0.0.1"}]
    assert dr["spec"]["trafficPolicy"]["tls"]["mode"] == "DISABLE"
    for name in ("body-hasher-envoyfilter.yaml", "path-options-envoyfilter.yaml"):
        ef = load_docs(ISTIO / name)[0]["spec"]
        assert ef["workloadSelector"]["labels"] == {"aws-egress": "enabled"}, name
    assert path_options() == {"normalize_path": False, "merge_slashes": False,
                              "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}


def test_vault_proxy_container_runs_the_shipped_proxy_config():
    (cm,) = load_docs(ISTIO / "kubernetes" / "vault-proxy.yaml")
    assert cm["kind"] == "ConfigMap"
    assert cm["data"]["proxy.hcl"] == (ROOT / "vault" / "proxy-kubernetes.hcl").read_text()
    hcl = cm["data"]["proxy.hcl"]
    assert 'use_auto_auth_token = "force"' in hcl and 'address     = "127.0.0.1:8100"' in hcl
    assert 'method "kubernetes"' in hcl
    (patch,) = load_docs(ISTIO / "kubernetes" / "vault-proxy-patch.yaml")
    pod = patch["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == ["proxy", "-config=/etc/grant-sigv4/proxy.hcl"]
    assert c["volumeMounts"][0]["mountPath"] == "/etc/grant-sigv4"
    assert pod["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
    assert patch["spec"]["template"]["metadata"]["labels"] == {"aws-egress": "enabled"}


def run_gen(*args):
    return subprocess.run([sys.executable, str(ISTIO / "gen-service-entries.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_generator_output_is_what_is_shipped():
    r = run_gen("-s", "sts", "-s", "s3", "-s", "dynamodb", "-r", "us-east-1", "s3.us-east-1.amazonaws.com")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ISTIO / "aws-service-entries.example.yaml").read_text()
    hosts = [d["spec"]["hosts"][0] for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "ServiceEntry"]
    assert hosts == ["s3.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com", "s3.amazonaws.com",
                     "dynamodb.us-east-1.amazonaws.com"]
    for bad in ("*.amazonaws.com", "evil.example.com", "a..amazonaws.com"):
        r = run_gen(bad)
        assert r.returncode == 2 and bad in r.stderr


def path_options():
    """The HCM path options that istio/path-options-envoyfilter.yaml merges into the sidecar's
    outbound port-80 connection manager."""
    [patch] = load_docs(ISTIO / "path-options-envoyfilter.yaml")[0]["spec"]["configPatches"]
    assert patch["applyTo"] == "NETWORK_FILTER" and patch["patch"]["operation"] == "MERGE"
    assert patch["match"]["context"] == "SIDECAR_OUTBOUND" and patch["match"]["listener"]["portNumber"] == 80
    return {k: v for k, v in patch["patch"]["value"]["typed_config"].items() if k != "@type"}


def istio_like_envoy_config(plugin_config, listen_port, admin_port, aws_port, vault_port, route_extra=None):
    """What the sidecar gets from istio/: the EnvoyFilter's hasher first, the WasmPlugin's filter
    (pluginConfig as a JSON string), the router, the path options merged into the connection
    manager; the vault cluster named as Istio names it. ``route_extra``: more route options
    (as a VirtualService would add)."""
    ef = load_docs(ISTIO / "body-hasher-envoyfilter.yaml")[0]["spec"]["configPatches"]
    hasher = next(p for p in ef if p["applyTo"] == "HTTP_FILTER")["patch"]["value"]
    listener_merge = next(p for p in ef if p["applyTo"] == "LISTENER")["patch"]["value"]
    vault_cluster = plugin_config["vault"]["cluster"]
    # The WasmPlugin's vmConfig.env entries with valueFrom HOST become host_env_keys.
    spec = load_docs(ISTIO / "wasmplugin.yaml")[0]["spec"]
    host_env = [e["name"] for e in spec.get("vmConfig", {}).get("env", []) if e.get("valueFrom") == "HOST"]

    def cluster(name, port):
        return {"name": name, "type": "STATIC", "connect_timeout": "2s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}

    wasm = {"name": "apps.grant-sigv4", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "apps.grant-sigv4", "root_id": "grant_sigv4", "fail_open": False,
                   "vm_config": {"vm_id": "grant_sigv4", "runtime": "envoy.wasm.runtime.v8",
                                 "environment_variables": {"host_env_keys": host_env},
                                 "code": {"local": {"filename": str(WASM)}}},
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": json.dumps(plugin_config)}}}}
    hcm = {"stat_prefix": "outbound_0.0.0.0_80",
           "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "http_protocol_options": {"allow_absolute_url": True},
           "route_config": {"name": "80", "virtual_hosts": [{"name": "aws", "domains": ["*"], "routes": [
               {"match": {"prefix": "/"}, "route": {"cluster": "aws", "timeout": "30s", **(route_extra or {})}}]}]},
           "http_filters": [hasher, wasm, {"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
           **path_options()}
    listener = {"name": "0.0.0.0_80", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}], **listener_merge}
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
            "static_resources": {"listeners": [listener],
                                 "clusters": [cluster("aws", aws_port), cluster(vault_cluster, vault_port)]}}


def test_istio_filter_pieces_validate_in_envoy(tmp_path):
    cfg = load_docs(ISTIO / "wasmplugin.yaml")[0]["spec"]["pluginConfig"]
    path = tmp_path / "istio-like.yaml"
    path.write_text(yaml.safe_dump(istio_like_envoy_config(cfg, 1, 2, 3, 4)))
    env = dict(os.environ)
    r = subprocess.run([str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id",
                        "--log-level", "warn"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # A bad key in pluginConfig is refused by the filter's parser when the plugin starts.
    bad = copy.deepcopy(cfg)
    bad["vault"]["timeout_ms"] = 0
    path.write_text(yaml.safe_dump(istio_like_envoy_config(bad, 1, 2, 3, 4)))
    r = subprocess.run([str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id",
                        "--log-level", "warn"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0


def test_istio_filter_chain_signs_through_moto():
    """The sidecar's chain from istio/ (hasher skipped or not by its matcher, then the filter)
    against OpenBao and moto: a DynamoDB body hashed by the hasher, S3 streamed unhashed."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    logdir = Path(tempfile.mkdtemp(prefix="grant-sigv4-istio-"))
    procs = []
    try:
        bao = OpenBao(logdir)
        procs.append(bao)
        moto = Moto(logdir, Moto.SETUP_CALLS)
        procs.append(moto)
        bao.put_grant("istio-grant", moto.create_user_key("istio-user"))
        # The pod's OpenBao Proxy (AppRole here; the Kubernetes auth method needs a cluster).
        proxy = BaoProxy(logdir, bao)
        procs.append(proxy)
        cfg = load_docs(ISTIO / "wasmplugin.yaml")[0]["spec"]["pluginConfig"]
        listen, admin = free_port(), free_port()
        envoy = Envoy(logdir, yaml.safe_dump(istio_like_envoy_config(cfg, listen, admin, moto.port, proxy.port)))
        procs.append(envoy)
        envoy.wait_ready(admin)

        def client(service):
            c = boto3.client(service, region_name="us-east-1", endpoint_url=f"http://{service}.us-east-1.amazonaws.com",
                             config=Config(signature_version=UNSIGNED, proxies={"http": f"http://127.0.0.1:{listen}"},
                                           retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
            c.meta.events.register("before-send", lambda request, **_: request.headers.__setitem__(
                "x-grant-id", "istio-grant"))
            return c

        ddb = client("dynamodb")  # no x-amz-content-sha256 from this client: the hasher sets it
        ddb.create_table(TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        ddb.put_item(TableName="t", Item={"id": {"S": "1"}})
        assert ddb.get_item(TableName="t", Key={"id": {"S": "1"}})["Item"]["id"]["S"] == "1"
        s3 = client("s3")
        s3.create_bucket(Bucket="istio-b")
        s3.put_object(Bucket="istio-b", Key="k", Body=b"x" * 100_000)
        assert s3.get_object(Bucket="istio-b", Key="k")["Body"].read() == b"x" * 100_000
        assert envoy.counter("cluster.outbound|8100||grant-sigv4-vault-proxy.local.upstream_rq_total") >= 1
    finally:
        for p in reversed(procs):
            try:
                p.stop()
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(logdir, ignore_errors=True)

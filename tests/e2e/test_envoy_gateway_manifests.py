"""The Envoy Gateway example in envoy-gateway/: schema-valid against the Envoy Gateway CRDs
(envoy-gateway/schemas), the plugin configuration it attaches is accepted by the dynamic module
in the real Envoy, and the bootstrap patch defines the cluster that configuration calls."""

import copy
import json
import os
import subprocess

import pytest

from harness import DYNAMIC_MODULE, ENVOY_DYNAMIC_MODULE_LOCAL, ROOT, VENV_BIN, render
from test_istio_manifests import jsonschema, load_docs, strip_k8s

EG = ROOT / "envoy-gateway"
SCHEMAS = EG / "schemas"


def manifests():
    return sorted(EG.glob("*.yaml"))


@pytest.fixture(scope="module")
def crds():
    if jsonschema is None:
        pytest.fail("the jsonschema package is needed (it comes with moto[server]: pip install jsonschema)")
    out = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for d in load_docs(path):
            spec = d["spec"]
            out[(spec["group"], spec["names"]["kind"])] = spec
    assert {k for _, k in out} == {"EnvoyProxy", "EnvoyExtensionPolicy"}
    return out


def validate(doc, crds):
    """Errors of one manifest, as strings (empty: valid)."""
    group, _, version = doc.get("apiVersion", "").partition("/")
    crd = crds.get((group, doc.get("kind", "")))
    if crd is None:
        return [f"no CRD for {group} {doc.get('kind')}"]
    v = {v["name"]: v for v in crd["versions"]}.get(version)
    if v is None or not v.get("served"):
        return [f"{doc['kind']} {version} is not a served version"]
    errors = [] if (doc.get("metadata") or {}).get("name") else ["metadata.name missing"]
    schema = strip_k8s(v["schema"]["openAPIV3Schema"])
    validator = jsonschema.Draft7Validator(schema)
    body = {"spec": doc["spec"]} if "spec" in doc else {}
    return errors + [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


def doc_of(kind):
    [doc] = [d for p in manifests() for d in load_docs(p) if d["kind"] == kind]
    return doc


def test_both_manifests_are_shipped():
    assert sorted(d["kind"] for p in manifests() for d in load_docs(p)) == ["EnvoyExtensionPolicy", "EnvoyProxy"]


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_manifest_is_valid(path, crds):
    for doc in load_docs(path):
        assert validate(doc, crds) == [], (path.name, doc["kind"])


def test_broken_manifests_fail(crds):
    proxy = doc_of("EnvoyProxy")
    bad = copy.deepcopy(proxy)
    bad["spec"]["dynamicModules"][0]["name"] = "Grant_SigV4"
    assert any("dynamicModules/0/name" in e for e in validate(bad, crds))
    bad = copy.deepcopy(proxy)
    del bad["spec"]["dynamicModules"][0]["source"]
    assert any("'source' is a required property" in e for e in validate(bad, crds))
    bad = copy.deepcopy(proxy)
    bad["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["imag"] = "x"
    assert validate(bad, crds), "a field outside the trimmed schema must be refused"
    policy = doc_of("EnvoyExtensionPolicy")
    bad = copy.deepcopy(policy)
    del bad["spec"]["dynamicModule"][0]["name"]
    assert any("'name' is a required property" in e for e in validate(bad, crds))
    bad = copy.deepcopy(policy)
    bad["spec"]["dynamicModule"][0]["terminalFilter"] = "no"
    assert validate(bad, crds)


def test_policy_names_a_registered_module():
    registered = {m["name"] for m in doc_of("EnvoyProxy")["spec"]["dynamicModules"]}
    used = {m["name"] for m in doc_of("EnvoyExtensionPolicy")["spec"]["dynamicModule"]}
    assert used <= registered


def test_policy_config_loads_in_envoy_and_its_cluster_is_defined(tmp_path):
    [module] = doc_of("EnvoyExtensionPolicy")["spec"]["dynamicModule"]
    cfg = module["config"]
    clusters = [p["value"]["name"] for p in doc_of("EnvoyProxy")["spec"]["bootstrap"]["jsonPatches"]
                if p["path"] == "/static_resources/clusters/-"]
    assert cfg["vault"]["cluster"] in clusters
    text = render(
        ENVOY_DYNAMIC_MODULE_LOCAL.read_text(),
        {"ADMIN_PORT": 9901, "LISTEN_PORT": 15080, "AWS_PORT": 4566, "VAULT_PORT": 8200,
         "DYNAMIC_MODULE": DYNAMIC_MODULE, "PLUGIN_CONFIG": json.dumps(cfg)},
    )
    path = tmp_path / "eg.yaml"
    path.write_text(text)
    r = subprocess.run(
        [str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        env={**os.environ, "GRANT_SIGV4_VAULT_TOKEN": "validate-token"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "grant-sigv4 configured (dynamic module): grant header x-grant-id" in out, out[-3000:]


def test_no_vault_secret_in_the_proxy_the_openbao_proxy_container_holds_the_login():
    """The module uses vault.auth.method "proxy" (no token anywhere in Envoy Gateway's
    objects); the OpenBao Proxy container added by the Deployment patch runs the ConfigMap's
    configuration, and the "vault" cluster is that container on loopback."""
    [module] = doc_of("EnvoyExtensionPolicy")["spec"]["dynamicModule"]
    vault = module["config"]["vault"]
    assert vault["auth"] == {"method": "proxy"}
    assert not {"token", "token_env"} & set(vault)
    proxy = doc_of("EnvoyProxy")
    deployment = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]
    assert "env" not in deployment["container"], "no Vault token in the proxy's environment"
    pod = deployment["patch"]["value"]["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["args"] == ["proxy", "-config=/etc/grant-sigv4/proxy.hcl"]
    [cm] = load_docs(EG / "kubernetes" / "vault-proxy.yaml")
    assert cm["kind"] == "ConfigMap"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert volumes[mount["/etc/grant-sigv4"]]["configMap"]["name"] == cm["metadata"]["name"]
    hcl = cm["data"]["proxy.hcl"]
    assert 'use_auto_auth_token = "force"' in hcl and 'method "kubernetes"' in hcl
    assert 'address     = "127.0.0.1:8100"' in hcl
    [cluster] = [p["value"] for p in proxy["spec"]["bootstrap"]["jsonPatches"]
                 if p["path"] == "/static_resources/clusters/-" and p["value"]["name"] == vault["cluster"]]
    addr = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (addr["address"], addr["port_value"]) == ("127.0.0.1", 8100)
    text = "\n".join(p.read_text() for p in [*manifests(), EG / "kubernetes" / "vault-proxy.yaml"])
    assert "GRANT_SIGV4_VAULT_TOKEN" not in text and "secretKeyRef" not in text


def test_trimmed_schema_keeps_only_trim_py_list():
    """The trimmed CRD holds the fields trim.py keeps, and refuses others."""
    [crd] = load_docs(SCHEMAS / "gateway.envoyproxy.io_envoyproxies.trimmed.yaml")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert sorted(spec["properties"]) == ["bootstrap", "dynamicModules", "provider"]
    assert spec["additionalProperties"] is False
    container = spec["properties"]["provider"]["properties"]["kubernetes"]["properties"]["envoyDeployment"][
        "properties"]["container"]
    assert sorted(container["properties"]) == ["env", "image"]

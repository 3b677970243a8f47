"""Every Envoy config shipped in envoy/ loads in Envoy 1.40 (`--mode validate`) with the
built wasm (or, for the dynamic-module configs, the built module), and the plugin
configuration inside it is accepted by the filter."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import DYNAMIC_MODULE, ROOT, VENV_BIN, WASM, plugin_config, precheck_config, render

ALL_CONFIGS = sorted((ROOT / "envoy").glob("*.yaml"))
# The native host's configs (the dynamic module); the others load the wasm filter.
NATIVE_CONFIGS = [p for p in ALL_CONFIGS if p.name.startswith("dynamic-module")]
CONFIGS = [p for p in ALL_CONFIGS if p not in NATIVE_CONFIGS]
PLACEHOLDERS = {
    "ADMIN_PORT": 9901,
    "LISTEN_PORT": 15080,
    "AWS_PORT": 4566,
    "VAULT_PORT": 8200,
    "WASM": WASM,
    "DYNAMIC_MODULE": DYNAMIC_MODULE,
    "PLUGIN_CONFIG": json.dumps(plugin_config("validate-token")),
    "PRECHECK_CONFIG": json.dumps(precheck_config(plugin_config("validate-token"))),
}


def validate(text: str, tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return subprocess.run(
        [str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        env={**os.environ, "GRANT_SIGV4_VAULT_TOKEN": "validate-token"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_configs_are_shipped():
    names = {p.name for p in ALL_CONFIGS}
    assert {"envoy.yaml", "local.yaml", "dynamic-module.yaml", "dynamic-module-local.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_validates(config, tmp_path):
    text = render(config.read_text().replace("/etc/envoy/grant_sigv4.wasm", str(WASM)), PLACEHOLDERS)
    r = validate(text, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "OK" in out, out[-3000:]
    assert "grant-sigv4 configured: grant header" in out, "the signing configuration was not accepted"
    assert "grant-sigv4 configured: precheck" in out, "the precheck configuration was not accepted"
    if config.name == "envoy.yaml":
        # Production holds no Vault secret: a local Vault/OpenBao Proxy adds its token.
        assert "vault auth proxy" in out


def test_proxy_method_with_a_token_fails_start_naming_the_key(tmp_path):
    cfg = plugin_config("t")
    cfg["vault"]["auth"] = {"method": "proxy"}
    text = render((ROOT / "envoy" / "local.yaml").read_text(), {**PLACEHOLDERS, "PLUGIN_CONFIG": json.dumps(cfg)})
    r = validate(text, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-2000:]
    assert 'key "vault.token": must not be set with vault.auth.method "proxy"' in out, out[-2000:]


@pytest.mark.parametrize("config", NATIVE_CONFIGS, ids=lambda p: p.name)
def test_dynamic_module_config_validates(config, tmp_path):
    text = render(
        config.read_text().replace("/etc/envoy/libgrant_sigv4_dynamic_module.so", str(DYNAMIC_MODULE)), PLACEHOLDERS
    )
    r = validate(text, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "OK" in out, out[-3000:]
    assert "grant-sigv4 configured (dynamic module): grant header" in out, out[-3000:]
    if config.name == "dynamic-module.yaml":
        # Production holds no Vault secret: a local Vault/OpenBao Proxy adds its token.
        assert "vault auth proxy" in out
    # No body hasher and no precheck in front: the module is the first filter, the only signer
    # (in the retry config, of each AWS cluster's upstream filters).
    from test_dynamic_module import http_filters

    if "retry" in config.name:
        import yaml

        for cluster in yaml.safe_load(text)["static_resources"]["clusters"]:
            if cluster["name"].startswith("aws"):
                opts = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                names = [f["typed_config"]["@type"].rsplit(".", 1)[-1] for f in opts["http_filters"]]
                assert names == ["DynamicModuleFilter", "UpstreamCodec"], names
        return
    names = [t for _, t in http_filters(text)]
    assert names[0] == "DynamicModuleFilter" and names[-1] == "Router", names
    assert "AwsRequestSigning" not in names and "Wasm" not in names, names


PATH_OPTIONS = {"normalize_path": False, "merge_slashes": False, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}


def connection_managers(node):
    if isinstance(node, dict):
        if node.get("name") == "envoy.filters.network.http_connection_manager":
            yield node["typed_config"]
        for v in node.values():
            yield from connection_managers(v)
    elif isinstance(node, list):
        for v in node:
            yield from connection_managers(v)


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda p: p.name)
def test_config_sets_the_path_options_explicitly(config):
    """The path leaves Envoy as the client sent it (test_forwarded_paths.py runs the chains of
    local.yaml and local-retry.yaml; envoy.yaml, which needs the real AWS, has the same options)."""
    import yaml

    hcms = list(connection_managers(yaml.safe_load(render(config.read_text(), PLACEHOLDERS))))
    assert hcms
    for hcm in hcms:
        assert {k: hcm.get(k) for k in PATH_OPTIONS} == PATH_OPTIONS, hcm["stat_prefix"]


def test_missing_token_environment_fails_start(tmp_path):
    cfg = plugin_config("t")
    del cfg["vault"]["token"]
    cfg["vault"]["token_env"] = "GRANT_SIGV4_UNSET_FOR_TEST"
    text = render((ROOT / "envoy" / "local.yaml").read_text(), {**PLACEHOLDERS, "PLUGIN_CONFIG": json.dumps(cfg)})
    r = validate(text, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-2000:]
    assert 'key "vault.token_env"' in out and "host_env_keys" in out


def test_bad_plugin_configuration_fails_start_naming_the_key(tmp_path):
    bad = plugin_config("t")
    bad["vault"]["timeout_ms"] = 0
    text = render(
        (ROOT / "envoy" / "local.yaml").read_text(), {**PLACEHOLDERS, "PLUGIN_CONFIG": json.dumps(bad)}
    )
    r = validate(text, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-2000:]
    assert 'key "vault.timeout_ms"' in out


def test_bench_configs_validate(tmp_path):
    """The benchmark's own Envoys (bench/): (a) without and (b) with the native signer, both with
    the shipped access log, and the upstream."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import run as bench  # noqa: E402

    values = {**PLACEHOLDERS, "ACCESS_LOG": bench.access_log_block((ROOT / "envoy" / "local.yaml").read_text())}
    proxy = (ROOT / "bench" / "proxy.yaml").read_text()
    for signing in ("", bench.NATIVE_FILTER.format(unsigned="true")):
        r = validate(render(proxy, {**values, "SIGNING_FILTER": signing}), tmp_path)
        assert r.returncode == 0 and "OK" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    r = validate(render((ROOT / "bench" / "upstream.yaml").read_text(), values), tmp_path)
    assert r.returncode == 0 and "OK" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]

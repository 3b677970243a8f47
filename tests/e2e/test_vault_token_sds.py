"""vault.token_sds: the filter's Vault token from a generic secret of Envoy's SDS, with the
real Envoy 1.40 and OpenBao. The dynamic module reads it; the proxy-wasm filter refuses the
key at load (a wasm VM cannot read Envoy's secrets)."""

import json
import os
import subprocess

from harness import (
    DYNAMIC_MODULE,
    ENVOY_DYNAMIC_MODULE_LOCAL,
    ENVOY_LOCAL,
    FILTER_POLICY,
    VENV_BIN,
    WASM,
    Envoy,
    Stack,
    free_port,
    http_get,
    plugin_config,
    precheck_config,
    render,
    wait_until,
)

# Token ids chosen by the test (the dev server's root token may pick them), so that the SDS
# file can hold the token before Envoy starts.
TOKEN_ONE = "sds-token-one-000000000000001"
TOKEN_TWO = "sds-token-two-000000000000002"
TOKEN_STATIC = "sds-token-static-0000000000003"
SECRET = "vault-token"


def write_sds(path, token):
    """The SDS file (a DiscoveryResponse with one generic secret), replaced atomically as
    Envoy's path_config_source wants (it watches for the file being moved into place)."""
    doc = {"resources": [{
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": SECRET,
        "generic_secret": {"secret": {"inline_string": token}},
    }]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def test_the_token_comes_from_sds_follows_its_rotation_and_from_a_static_secret(tmp_path):
    sds = tmp_path / "sds.json"
    write_sds(sds, TOKEN_ONE)
    template = tmp_path / "sds.yaml"
    # An SDS subscription needs the node's id and cluster.
    template.write_text("node: { id: grant-sigv4-e2e, cluster: grant-sigv4-e2e }\n" + ENVOY_DYNAMIC_MODULE_LOCAL.read_text())
    source = {"path_config_source": {"path": str(sds)}, "resource_api_version": "V3"}
    s = Stack(host="native", envoy_config=template, filter_token={"id": TOKEN_ONE}, concurrency=1,
              plugin_overrides={"vault": {"token": None, "token_sds": {"name": SECRET, "config_source": source}}})
    static = None
    try:
        creds = s.moto.create_user_key("sds-user")
        s.bao.put_grant("grant-sds-1", creds)
        assert s.client("sts", "grant-sds-1").get_caller_identity()["Arn"].endswith(":user/sds-user")

        # Rotation: a new token written into the SDS file, the old one revoked: a new grant is
        # read with the new token, with no restart.
        s.bao.create_token([FILTER_POLICY], id=TOKEN_TWO)
        updates = s.envoy.counter(f"sds.{SECRET}.update_success")
        write_sds(sds, TOKEN_TWO)
        wait_until(lambda: s.envoy.counter(f"sds.{SECRET}.update_success") > updates, "the SDS file update",
                   proc=s.envoy.proc)
        status, body = s.bao.request("POST", "/v1/auth/token/revoke", {"token": TOKEN_ONE})
        assert status == 204, body
        s.bao.put_grant("grant-sds-2", creds)
        assert s.client("sts", "grant-sds-2").get_caller_identity()["Arn"].endswith(":user/sds-user")
        assert "the vault token from SDS changed" in s.envoy.proc.log_text()

        # A static secret of the bootstrap (static_resources.secrets), in a second Envoy.
        s.bao.create_token([FILTER_POLICY], id=TOKEN_STATIC)
        cfg = plugin_config("unused", vault={"token": None, "token_sds": "vault-token-static"})
        secrets = ("static_resources:\n  secrets:\n  - name: vault-token-static\n    generic_secret:\n"
                   f"      secret: {{ inline_string: {TOKEN_STATIC} }}\n")
        listen, admin = free_port(), free_port()
        text = render(ENVOY_DYNAMIC_MODULE_LOCAL.read_text().replace("static_resources:\n", secrets, 1), {
            "ADMIN_PORT": admin, "LISTEN_PORT": listen, "AWS_PORT": s.moto.port, "VAULT_PORT": s.bao.port,
            "DYNAMIC_MODULE": DYNAMIC_MODULE, "PLUGIN_CONFIG": json.dumps(cfg),
        })
        static = Envoy(s.logdir, text, concurrency=1, component="dynamic_modules")
        static.wait_ready(admin)
        s.bao.put_grant("grant-sds-3", creds)
        main_proxy, s.proxy = s.proxy, f"http://127.0.0.1:{listen}"
        try:
            assert s.client("sts", "grant-sds-3").get_caller_identity()["Arn"].endswith(":user/sds-user")
        finally:
            s.proxy = main_proxy

        # No token in the filter's configuration, its log lines, or the config dump.
        for envoy in (s.envoy, static):
            logs = "\n".join(l for l in envoy.proc.log_text().splitlines() if "grant-sigv4" in l)
            status, dump = http_get(f"{envoy.admin}/config_dump")
            assert status == 200
            dump = dump.decode() if isinstance(dump, bytes) else dump
            for t in (TOKEN_ONE, TOKEN_TWO, TOKEN_STATIC):
                assert t not in logs and t not in dump
        assert TOKEN_ONE not in json.dumps(s.plugin_config)
    finally:
        if static is not None:
            static.stop()
        s.stop()
        s.cleanup()


def test_the_wasm_filter_refuses_token_sds_at_load(tmp_path):
    cfg = plugin_config("unused", vault={"token": None, "token_sds": SECRET})
    text = render(ENVOY_LOCAL.read_text(), {
        "ADMIN_PORT": 9901, "LISTEN_PORT": 15080, "AWS_PORT": 4566, "VAULT_PORT": 8200, "WASM": WASM,
        "PLUGIN_CONFIG": json.dumps(cfg), "PRECHECK_CONFIG": json.dumps(precheck_config(cfg)),
    })
    path = tmp_path / "wasm-sds.yaml"
    path.write_text(text)
    r = subprocess.run([str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-2000:]
    assert 'grant-sigv4: invalid plugin configuration: key "vault.token_sds": needs the dynamic module' in out, out[-2000:]

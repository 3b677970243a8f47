#!/usr/bin/env python3
"""Render envoy/local.yaml for the compose demo: the same template and the same placeholder
rules as tests/e2e/harness.py (``${UPPER_CASE}``, a missing value is an error), with the
compose demo's fixed values. All compose services share one network namespace (the ``pod``
service), so the template's 127.0.0.1 clusters reach OpenBao and moto unchanged and the
filter chain is byte for byte the one the tests run.

    render_envoy.py TEMPLATE OUTPUT        (VAULT_TOKEN and WASM from the environment)

Standard library only (it runs in the envoy image). tests/e2e/test_compose.py checks that it
renders exactly what harness.render/harness.plugin_config would.
"""

import json
import os
import re
import sys

# Fixed ports inside the shared network namespace (see docker-compose.yml).
PORTS = {"ADMIN_PORT": 9901, "LISTEN_PORT": 15080, "AWS_PORT": 5000, "VAULT_PORT": 8200}


def render(template: str, values: dict) -> str:
    def sub(m):
        if m.group(1) not in values:
            raise KeyError(f"no value for placeholder {m.group(1)}")
        return str(values[m.group(1)])

    return re.sub(r"\$\{([A-Z_]+)\}", sub, template)


def plugin_config(vault_token: str) -> dict:
    return {
        "grant_header": "x-grant-id",
        "vault": {
            "cluster": "vault",
            "authority": "vault",
            "token": vault_token,
            "kv_mount": "secret",
            "path_prefix": "aws/grants/",
            "timeout_ms": 2000,
        },
        "cache": {"ttl_seconds": 300},
    }


def precheck_config(cfg: dict) -> dict:
    return {**{k: v for k, v in cfg.items() if k != "vault"}, "mode": "precheck"}


def values(vault_token: str, wasm: str) -> dict:
    cfg = plugin_config(vault_token)
    return {**PORTS, "WASM": wasm, "PLUGIN_CONFIG": json.dumps(cfg),
            "PRECHECK_CONFIG": json.dumps(precheck_config(cfg))}


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    token = os.environ.get("VAULT_TOKEN")
    if not token:
        print("render_envoy: VAULT_TOKEN is not set", file=sys.stderr)
        return 2
    wasm = os.environ.get("WASM", "/etc/envoy/grant_sigv4.wasm")
    with open(argv[1]) as f:
        text = render(f.read(), values(token, wasm))
    with open(argv[2], "w") as f:
        f.write(text)
    print(f"render_envoy: wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

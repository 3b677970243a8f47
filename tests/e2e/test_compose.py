"""docker-compose.yml (validated, not run by make test): its structure, the files it uses, and the Envoy
config it renders — the same template and rendering as the tests — accepted by Envoy."""

import importlib.util
import json
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ENVOY_LOCAL, VENV_BIN, WASM, Moto, plugin_config, precheck_config, render  # noqa: E402

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def renderer():
    spec = importlib.util.spec_from_file_location("render_envoy", ROOT / "compose" / "render_envoy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_services(compose):
    s = compose["services"]
    assert {"pod", "openbao", "moto", "envoy", "client"} <= set(s)
    for name, svc in s.items():
        if name != "pod":
            assert svc.get("network_mode") == "service:pod", name
            assert "ports" not in svc, f"{name}: publish ports on `pod` only"
    assert "-dev" in s["openbao"]["command"]
    assert s["moto"]["image"].startswith("motoserver/moto:")
    assert s["moto"]["environment"]["INITIAL_NO_AUTH_ACTION_COUNT"] == str(Moto.SETUP_CALLS)
    assert "func-e run -c /etc/envoy/local-compose.yaml" in " ".join(s["envoy"]["command"])
    token = s["envoy"]["environment"]["VAULT_TOKEN"]
    assert f"-dev-root-token-id={token}" in s["openbao"]["command"]
    assert s["client"]["environment"]["VAULT_TOKEN"] == token


def test_ports_bound_to_localhost(compose):
    for name, svc in compose["services"].items():
        for p in svc.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), (name, p)


def test_referenced_files_exist(compose):
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            ctx = ROOT / build["context"]
            dockerfile = ctx / build["dockerfile"]
            assert dockerfile.is_file(), dockerfile
            for line in dockerfile.read_text().splitlines():
                m = re.match(r"COPY\s+(?!--from)(\S+)\s+\S+", line)
                if m:
                    assert (ctx / m.group(1)).exists(), (dockerfile.name, m.group(1))
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), (name, v)
    envoy = compose["services"]["envoy"]
    assert "./envoy/local.yaml:/etc/envoy/template/local.yaml:ro" in envoy["volumes"], \
        "the demo must render the tests' own envoy/local.yaml"
    py_compile.compile(str(ROOT / "compose" / "demo_client.py"), doraise=True)


def test_render_matches_harness(renderer):
    token = "compose-token"
    cfg = plugin_config(token)
    assert renderer.plugin_config(token) == cfg
    assert renderer.precheck_config(cfg) == precheck_config(cfg)
    template = ENVOY_LOCAL.read_text()
    ours = renderer.render(template, renderer.values(token, "/etc/envoy/grant_sigv4.wasm"))
    theirs = render(template, {**renderer.PORTS, "WASM": "/etc/envoy/grant_sigv4.wasm",
                               "PLUGIN_CONFIG": json.dumps(cfg), "PRECHECK_CONFIG": json.dumps(precheck_config(cfg))})
    assert ours == theirs
    with pytest.raises(KeyError):
        renderer.render("${NOPE}", {})


def test_rendered_config_validates_in_envoy(renderer, tmp_path, compose):
    out = tmp_path / "local-compose.yaml"
    env = {"VAULT_TOKEN": compose["services"]["envoy"]["environment"]["VAULT_TOKEN"], "WASM": str(WASM), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, str(ROOT / "compose" / "render_envoy.py"), str(ENVOY_LOCAL), str(out)],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(out.read_text())
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 15080
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    ports = {n: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"]
             for n, c in clusters.items()}
    assert ports == {"aws": 5000, "vault": 8200}
    r = subprocess.run([str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(out), "--use-dynamic-base-id",
                        "--log-level", "warn"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

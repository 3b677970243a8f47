"""grantctl against a real OpenBao dev server: create, show, rotate, policy, list, revoke.

The records grantctl writes are read back straight from the KV API, so these tests check
exactly what the filter will find in the vault.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import ROOT, OpenBao, free_port

GRANTCTL = ROOT / "target" / "debug" / "grantctl"
AKID = "AKIAIOSFODNN7EXAMPLE"
AKID2 = "AKIAI44QH8DHBEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRET2 = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLE-session-token-" + "x" * 40
ID_RE = re.compile(r"^g-[a-z2-7]{26}$")


@pytest.fixture(scope="session")
def grantctl_bin() -> Path:
    # With the test targets, so that the dependencies have the features `cargo test --workspace`
    # (make unit) built them with: after it only the binary is linked (`-p grantctl` alone
    # resolves other features and compiles ring, rustls and a dozen more again).
    subprocess.run(["cargo", "build", "--workspace", "--bins", "--tests", "-j", "2"], cwd=ROOT, check=True)
    assert GRANTCTL.exists()
    return GRANTCTL


@pytest.fixture(scope="module")
def bao(request):
    logdir = Path(tempfile.mkdtemp(prefix="grantctl-e2e-"))
    b = OpenBao(logdir)
    request.addfinalizer(b.stop)
    return b


@pytest.fixture(scope="module")
def aws_engine(bao):
    """An AWS secrets engine at aws/ with role r1 (iam_user).

    OpenBao builds without the AWS engine answer "plugin not found in the catalog: aws";
    then a KV version 1 mount at aws/ stands in: it answers GET /v1/aws/roles/<role> the way
    the engine does (200 with the role's data, 404 for a missing role), which is all that
    grantctl's role check reads.
    """
    status, body = bao.request("POST", "/v1/sys/mounts/aws", {"type": "aws"})
    if status not in (200, 204):
        assert b"plugin not found" in body, (status, body)
        status, body = bao.request("POST", "/v1/sys/mounts/aws", {"type": "kv", "options": {"version": "1"}})
        assert status in (200, 204), (status, body)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    status, body = bao.request(
        "POST",
        "/v1/aws/roles/r1",
        {"credential_type": "iam_user", "policy_document": json.dumps(policy)},
    )
    assert status in (200, 204), (status, body)
    return "aws"


@pytest.fixture()
def run(grantctl_bin, bao, tmp_path):
    def run(*args, stdin: str | None = None, env: dict | None = None):
        full = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "VAULT_", "BAO_"))
        }
        # A HOME without ~/.vault-token: the token comes from VAULT_TOKEN only.
        full.update({"HOME": str(tmp_path), "VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token})
        full.update(env or {})
        full = {k: v for k, v in full.items() if v is not None}
        return subprocess.run(
            [str(grantctl_bin), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=full,
            timeout=60,
        )

    return run


def kv(bao, grant: str):
    """(status, data.data, data.metadata) of the latest version of a grant."""
    status, body = bao.request("GET", f"/v1/secret/data/aws/grants/{grant}")
    if status != 200:
        return status, None, None
    return status, body["data"]["data"], body["data"]["metadata"]


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


def create_static(run, *extra, secret=SECRET, akid=AKID) -> str:
    r = run("create", "--access-key-id", akid, "--secret-access-key-stdin", *extra, stdin=secret + "\n")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# --- create ---------------------------------------------------------------------------------


def test_create_static_prints_a_fresh_id_and_stores_exactly_the_fields(run, bao):
    r = run(
        "create",
        "--access-key-id",
        AKID,
        "--secret-access-key-stdin",
        "--allow-services",
        "s3,sts",
        "--allow-regions",
        "us-east-1",
        "--allow-methods",
        "get,HEAD",
        "--allow-principals",
        "spiffe://cluster.local/ns/app/sa/web,spiffe://cluster.local/ns/ci/*",
        "--allow-source-cidrs",
        "10.0.0.0/8,127.0.0.1/32,::1/128",
        "--description",
        "CI uploads",
        stdin=SECRET + "\n",
    )
    assert r.returncode == 0, r.stderr
    grant = r.stdout.strip()
    assert r.stdout == grant + "\n", "stdout holds only the grant id"
    assert ID_RE.match(grant), grant
    assert SECRET not in r.stdout + r.stderr

    status, data, meta = kv(bao, grant)
    assert status == 200
    assert meta["version"] == 1
    assert data == {
        "access_key_id": AKID,
        "secret_access_key": SECRET,
        "allowed_services": ["s3", "sts"],
        "allowed_regions": ["us-east-1"],
        "allowed_methods": ["GET", "HEAD"],
        "allowed_principals": ["spiffe://cluster.local/ns/app/sa/web", "spiffe://cluster.local/ns/ci/*"],
        "allowed_source_cidrs": ["10.0.0.0/8", "127.0.0.1/32", "::1/128"],
        "description": "CI uploads",
    }

    other = create_static(run)
    assert ID_RE.match(other) and other != grant
    assert kv(bao, other)[1] == {"access_key_id": AKID, "secret_access_key": SECRET}


def test_create_with_session_token_from_stdin_and_given_id(run, bao):
    grant = unique("sess")
    r = run(
        "create",
        "--grant-id",
        grant,
        "--access-key-id",
        "ASIAIOSFODNN7EXAMPLE",
        "--secret-access-key-stdin",
        "--session-token-stdin",
        stdin=f"{SECRET}\n{TOKEN}\n",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == grant + "\n"
    assert kv(bao, grant)[1] == {
        "access_key_id": "ASIAIOSFODNN7EXAMPLE",
        "secret_access_key": SECRET,
        "session_token": TOKEN,
    }


def test_create_takes_the_secret_from_the_environment(run, bao):
    grant = unique("env")
    r = run("create", "--grant-id", grant, "--access-key-id", AKID, env={"AWS_SECRET_ACCESS_KEY": SECRET2})
    assert r.returncode == 0, r.stderr
    assert kv(bao, grant)[1] == {"access_key_id": AKID, "secret_access_key": SECRET2}
    # The operator's own key in the environment is never paired with another key id.
    r = run(
        "create",
        "--access-key-id",
        AKID,
        env={"AWS_SECRET_ACCESS_KEY": SECRET2, "AWS_ACCESS_KEY_ID": AKID2},
    )
    assert r.returncode == 2
    assert "AWS_ACCESS_KEY_ID" in r.stderr and SECRET2 not in r.stderr


def test_secret_on_the_command_line_works_with_a_warning(run, bao):
    grant = unique("flag")
    r = run("create", "--grant-id", grant, "--access-key-id", AKID, "--secret-access-key", SECRET)
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "shell history" in r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert kv(bao, grant)[1]["secret_access_key"] == SECRET


BAD_CREATES = [
    # (args, stdin, words the message must hold)
    (["--access-key-id", "akiaiosfodnn7example", "--secret-access-key-stdin"], SECRET, ["--access-key-id"]),
    (["--access-key-id", "AKIA123", "--secret-access-key-stdin"], SECRET, ["--access-key-id"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin"], "has a space inside", ["secret access key"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin"], "x" * 129, ["secret access key"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin"], "", ["secret access key"]),
    (["--access-key-id", AKID], None, ["missing secret"]),
    (["--secret-access-key-stdin"], SECRET, ["--access-key-id"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--allow-regions", "EU-West-1"], SECRET, ["--allow-regions", "EU-West-1"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--allow-services", "s3,S3!"], SECRET, ["--allow-services"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--allow-source-cidrs", "10.0.0.0/33"], SECRET, ["--allow-source-cidrs", "10.0.0.0/33"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--allow-methods", "GET,FETCH"], SECRET, ["unknown method", "FETCH"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--allow-principals", "spiffe://a/*/b"], SECRET, ["--allow-principals"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--aws-role", "r1"], SECRET, ["--aws-role", "exclude each other"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--credential-type", "sts"], SECRET, ["needs --aws-role"]),
    (["--access-key-id", AKID, "--secret-access-key-stdin", "--frobnicate"], SECRET, ["unknown flag --frobnicate"]),
]


@pytest.mark.parametrize("args,stdin,words", BAD_CREATES)
def test_create_refuses_bad_input_and_writes_nothing(run, bao, args, stdin, words):
    grant = unique("bad")
    r = run("create", "--grant-id", grant, *args, stdin=stdin)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    for w in words:
        assert w in r.stderr, r.stderr
    assert SECRET not in r.stderr
    if stdin and stdin.strip():
        assert stdin not in r.stderr
    assert kv(bao, grant)[0] == 404, "nothing was written"


@pytest.mark.parametrize("grant", ["a/b", "..", "a b", "x" * 129, "g?x"])
def test_create_refuses_bad_grant_ids(run, bao, grant):
    before = run("list").stdout
    r = run("create", "--grant-id", grant, "--access-key-id", AKID, "--secret-access-key-stdin", stdin=SECRET)
    assert r.returncode == 2
    assert "grant id" in r.stderr
    assert run("list").stdout == before


def test_create_never_overwrites_an_existing_grant(run, bao):
    grant = unique("dup")
    create_static(run, "--grant-id", grant)
    r = run(
        "create", "--grant-id", grant, "--access-key-id", AKID2, "--secret-access-key-stdin", stdin=SECRET2
    )
    assert r.returncode == 1
    assert "already exists" in r.stderr
    _, data, meta = kv(bao, grant)
    assert meta["version"] == 1 and data["access_key_id"] == AKID


# --- show -----------------------------------------------------------------------------------


def test_show_never_prints_the_secret_or_token(run, bao):
    grant = unique("show")
    r = run(
        "create",
        "--grant-id",
        grant,
        "--access-key-id",
        AKID,
        "--secret-access-key-stdin",
        "--session-token-stdin",
        "--allow-services",
        "s3",
        "--description",
        "shown",
        stdin=f"{SECRET}\n{TOKEN}\n",
    )
    assert r.returncode == 0, r.stderr

    r = run("show", grant)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert SECRET not in out and TOKEN not in out
    assert "secret:" in r.stdout and "(stored, not shown)" in r.stdout
    for expected in (grant, "static", AKID, "s3", "shown", "version:", "created:"):
        assert expected in r.stdout, (expected, r.stdout)

    r = run("show", grant, "--json")
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr and TOKEN not in r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["grant_id"] == grant
    assert doc["kind"] == "static"
    assert doc["access_key_id"] == AKID
    assert doc["secret_access_key"] == "(stored, not shown)"
    assert doc["session_token"] == "(stored, not shown)"
    assert doc["policy"]["allowed_services"] == ["s3"]
    assert doc["policy"]["allowed_regions"] is None
    assert doc["description"] == "shown"
    assert doc["version"] == 1
    assert doc["created_time"]
    assert doc["problem"] is None


def test_show_names_a_record_the_filter_would_refuse(run, bao):
    grant = unique("broken")
    bao.put_grant(grant, {"access_key_id": AKID, "secret_access_key": SECRET, "allowed_methods": "get", "x": SECRET2})
    r = run("show", grant, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "allowed_methods" in doc["problem"]
    assert doc["other_fields"] == ["x"]
    assert SECRET not in r.stdout and SECRET2 not in r.stdout


def test_show_of_a_missing_grant(run):
    r = run("show", unique("absent"))
    assert r.returncode == 1
    assert "no such grant" in r.stderr


# --- rotate ---------------------------------------------------------------------------------


def test_rotate_writes_version_2_and_keeps_policy(run, bao):
    grant = unique("rot")
    create_static(run, "--grant-id", grant, "--allow-methods", "GET", "--description", "keep me")
    r = run("rotate", grant, "--access-key-id", AKID2, "--secret-access-key-stdin", stdin=SECRET2 + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2\n"
    assert SECRET2 not in r.stdout + r.stderr
    status, data, meta = kv(bao, grant)
    assert meta["version"] == 2
    assert data == {
        "access_key_id": AKID2,
        "secret_access_key": SECRET2,
        "allowed_methods": ["GET"],
        "description": "keep me",
    }
    doc = json.loads(run("show", grant, "--json").stdout)
    assert doc["version"] == 2 and doc["access_key_id"] == AKID2


def test_rotate_drops_an_old_session_token(run, bao):
    grant = unique("rot-tok")
    r = run(
        "create", "--grant-id", grant, "--access-key-id", AKID, "--secret-access-key-stdin",
        "--session-token-stdin", stdin=f"{SECRET}\n{TOKEN}\n",
    )
    assert r.returncode == 0, r.stderr
    r = run("rotate", grant, "--access-key-id", AKID2, "--secret-access-key-stdin", stdin=SECRET2)
    assert r.returncode == 0, r.stderr
    assert kv(bao, grant)[1] == {"access_key_id": AKID2, "secret_access_key": SECRET2}


def test_rotate_refusals(run, bao, aws_engine):
    r = run("rotate", unique("absent"), "--access-key-id", AKID2, "--secret-access-key-stdin", stdin=SECRET2)
    assert r.returncode == 1 and "no such grant" in r.stderr

    grant = unique("rot-bad")
    create_static(run, "--grant-id", grant)
    r = run("rotate", grant, "--access-key-id", "short", "--secret-access-key-stdin", stdin=SECRET2)
    assert r.returncode == 2 and "--access-key-id" in r.stderr
    assert kv(bao, grant)[2]["version"] == 1

    dyn = unique("rot-dyn")
    assert run("create", "--grant-id", dyn, "--aws-role", "r1").returncode == 0
    r = run("rotate", dyn, "--access-key-id", AKID2, "--secret-access-key-stdin", stdin=SECRET2)
    assert r.returncode == 2 and "dynamic" in r.stderr
    assert kv(bao, dyn)[2]["version"] == 1


# --- policy ---------------------------------------------------------------------------------


def test_policy_set_and_clear_keep_the_key(run, bao):
    grant = unique("pol")
    create_static(run, "--grant-id", grant, "--allow-services", "s3", "--description", "d")

    r = run("policy", grant, "--allow-methods", "GET,HEAD", "--allow-source-cidrs", "127.0.0.1/32,::1/128")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2\n"
    _, data, _ = kv(bao, grant)
    assert data == {
        "access_key_id": AKID,
        "secret_access_key": SECRET,
        "allowed_services": ["s3"],
        "allowed_methods": ["GET", "HEAD"],
        "allowed_source_cidrs": ["127.0.0.1/32", "::1/128"],
        "description": "d",
    }

    r = run("policy", grant, "--clear-services", "--allow-regions", "eu-west-1")
    assert r.returncode == 0, r.stderr
    _, data, meta = kv(bao, grant)
    assert meta["version"] == 3
    assert "allowed_services" not in data and data["allowed_regions"] == ["eu-west-1"]

    r = run("policy", grant, "--clear-all")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "4\n"
    assert kv(bao, grant)[1] == {"access_key_id": AKID, "secret_access_key": SECRET, "description": "d"}

    # Nothing left to clear: nothing written.
    r = run("policy", grant, "--clear-all")
    assert r.returncode == 0 and r.stdout == "4\n"
    assert kv(bao, grant)[2]["version"] == 4


def test_policy_refusals(run, bao):
    grant = unique("pol-bad")
    create_static(run, "--grant-id", grant)
    for args, word in [
        (["--allow-source-cidrs", "10.0.0.0/99"], "--allow-source-cidrs"),
        (["--allow-methods", "BREW"], "unknown method"),
        (["--allow-regions", ""], "empty list"),
        ([], "nothing to change"),
    ]:
        r = run("policy", grant, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert word in r.stderr
    assert kv(bao, grant)[2]["version"] == 1
    r = run("policy", unique("absent"), "--allow-services", "s3")
    assert r.returncode == 1 and "no such grant" in r.stderr


# --- list and revoke ------------------------------------------------------------------------


def test_list_shows_the_grants(run):
    a, b = unique("list-a"), unique("list-b")
    create_static(run, "--grant-id", a)
    create_static(run, "--grant-id", b)
    r = run("list")
    assert r.returncode == 0, r.stderr
    ids = r.stdout.split()
    assert a in ids and b in ids
    assert ids == sorted(ids)
    # An empty prefix folder lists nothing, successfully.
    r = run("list", "--path-prefix", "nothing/here/")
    assert r.returncode == 0 and r.stdout == ""


def test_revoke_then_show_says_no_such_grant(run, bao):
    grant = unique("rev")
    create_static(run, "--grant-id", grant)
    assert run("rotate", grant, "--access-key-id", AKID2, "--secret-access-key-stdin", stdin=SECRET2).returncode == 0

    r = run("revoke", grant)
    assert r.returncode == 0, r.stderr
    assert grant in r.stdout
    assert bao.request("GET", f"/v1/secret/metadata/aws/grants/{grant}")[0] == 404
    assert grant not in run("list").stdout.split()

    r = run("show", grant)
    assert r.returncode == 1
    assert "no such grant" in r.stderr

    # Revoking again changes nothing and says so.
    r = run("revoke", grant)
    assert r.returncode == 0
    assert "no such grant" in r.stderr


# --- vault errors ---------------------------------------------------------------------------


def test_bad_token_is_a_clear_403(run, bao):
    grant = create_static(run)
    bad = "s.not-a-real-token-" + secrets.token_hex(8)
    for args, stdin in [
        (["show", grant], None),
        (["list"], None),
        (["revoke", grant], None),
        (["create", "--access-key-id", AKID, "--secret-access-key-stdin"], SECRET),
    ]:
        r = run(*args, stdin=stdin, env={"VAULT_TOKEN": bad})
        assert r.returncode == 1, (args, r.stderr)
        assert "VAULT_TOKEN refused (403)" in r.stderr
        assert bad not in r.stdout + r.stderr and bao.token not in r.stdout + r.stderr
        assert SECRET not in r.stderr
    assert kv(bao, grant)[0] == 200, "the bad-token revoke deleted nothing"


def test_unreachable_vault(run):
    r = run("list", env={"VAULT_ADDR": f"http://127.0.0.1:{free_port()}"})
    assert r.returncode == 1
    assert "VAULT_ADDR" in r.stderr and "unreachable" in r.stderr


def test_missing_environment(run):
    r = run("list", env={"VAULT_ADDR": None})
    assert r.returncode == 2 and "VAULT_ADDR" in r.stderr
    r = run("list", env={"VAULT_TOKEN": None})
    assert r.returncode == 2 and "VAULT_TOKEN" in r.stderr
    r = run("list", env={"VAULT_ADDR": "vault.example:8200"})
    assert r.returncode == 2 and "https://" in r.stderr
    r = run("list", env={"VAULT_CACERT": "/nonexistent/ca.pem"})
    assert r.returncode == 2 and "VAULT_CACERT" in r.stderr


def test_token_from_the_vault_token_file(run, bao, tmp_path):
    (tmp_path / ".vault-token").write_text(bao.token + "\n")
    r = run("list", env={"VAULT_TOKEN": None})
    assert r.returncode == 0, r.stderr


def test_bao_variables_are_accepted(run, bao):
    r = run("list", env={"VAULT_ADDR": None, "VAULT_TOKEN": None, "BAO_ADDR": bao.addr, "BAO_TOKEN": bao.token})
    assert r.returncode == 0, r.stderr


def test_kv_version_1_mount_is_refused(run, bao):
    status, body = bao.request("POST", "/v1/sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    assert status in (200, 204), (status, body)
    grant = unique("v1")
    r = run(
        "create", "--kv-mount", "kv1", "--grant-id", grant, "--access-key-id", AKID,
        "--secret-access-key-stdin", stdin=SECRET,
    )
    assert r.returncode == 2
    assert "KV version 1" in r.stderr
    assert bao.request("GET", f"/v1/kv1/data/aws/grants/{grant}")[0] == 404


# --- dynamic grants -------------------------------------------------------------------------


def test_create_dynamic_grant_checks_the_role(run, bao, aws_engine):
    r = run("create", "--aws-role", "r1", "--allow-services", "s3", "--description", "dyn")
    assert r.returncode == 0, r.stderr
    grant = r.stdout.strip()
    assert ID_RE.match(grant)
    assert kv(bao, grant)[1] == {
        "aws_role": "r1",
        "aws_mount": "aws",
        "aws_credential_type": "creds",
        "allowed_services": ["s3"],
        "description": "dyn",
    }
    doc = json.loads(run("show", grant, "--json").stdout)
    assert doc["kind"] == "dynamic" and doc["aws_role"] == "r1" and "secret_access_key" not in doc

    missing = unique("m")
    r = run("create", "--grant-id", missing, "--aws-role", "missing-role")
    assert r.returncode == 1
    assert 'no role "missing-role"' in r.stderr
    assert kv(bao, missing)[0] == 404

    r = run("create", "--grant-id", missing, "--aws-role", "r1", "--aws-mount", "no-such-mount")
    assert r.returncode == 1
    assert "no AWS secrets engine" in r.stderr and "no-such-mount" in r.stderr
    assert kv(bao, missing)[0] == 404

    # An iam_user role cannot be read through the sts endpoint.
    r = run("create", "--grant-id", missing, "--aws-role", "r1", "--credential-type", "sts")
    assert r.returncode == 2
    assert "--credential-type creds" in r.stderr
    assert kv(bao, missing)[0] == 404

    # Without the check (a token that may not read roles), the grant is stored as given.
    r = run("create", "--grant-id", missing, "--aws-role", "later", "--skip-role-check")
    assert r.returncode == 0, r.stderr
    assert kv(bao, missing)[1]["aws_role"] == "later"


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["create", "rotate", "policy", "show", "list", "revoke"])
def test_help(run, cmd):
    r = run(cmd, "--help", env={"VAULT_ADDR": None, "VAULT_TOKEN": None})
    assert r.returncode == 0
    assert f"grantctl {cmd}" in r.stdout


def test_top_level_help_and_no_command(run):
    r = run("--help")
    assert r.returncode == 0 and "Usage:" in r.stdout
    r = run()
    assert r.returncode == 2 and "Usage:" in r.stderr
    r = run("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr


# --- least privilege ------------------------------------------------------------------------


def test_the_shipped_grantctl_policy_is_enough_and_the_filters_is_not(run, bao, aws_engine):
    """``vault/policies/grantctl.hcl`` covers every command; the filter's policy writes nothing."""
    env = {"VAULT_TOKEN": bao.create_token(["grantctl"])}
    grant = create_static(run_as(run, env))
    dyn = run("create", "--aws-role", "r1", env=env)
    assert dyn.returncode == 0, dyn.stderr
    for args in (["show", grant], ["policy", grant, "--allow-services", "s3"], ["list"],
                 ["rotate", grant, "--access-key-id", AKID, "--secret-access-key-stdin"]):
        r = run(*args, env=env, stdin=SECRET + "\n")
        assert r.returncode == 0, (args, r.stderr)
    assert grant in run("list", env=env).stdout
    r = run("revoke", grant, env=env)
    assert r.returncode == 0, r.stderr
    assert kv(bao, grant)[0] == 404
    # The filter's token (read only) cannot create a grant: grantctl says the vault refused it.
    r = run("create", "--access-key-id", AKID, "--secret-access-key-stdin",
            env={"VAULT_TOKEN": bao.filter_token}, stdin=SECRET + "\n")
    assert r.returncode != 0
    assert "403" in r.stderr or "permission" in r.stderr.lower(), r.stderr
    assert bao.filter_token not in r.stdout + r.stderr


def run_as(run, env):
    return lambda *args, **kw: run(*args, env={**env, **kw.pop("env", {})}, **kw)

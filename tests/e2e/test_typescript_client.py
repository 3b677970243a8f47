"""End to end: the TypeScript package (clients/typescript) and the unmodified AWS SDK for
JavaScript v3, run with ``node --test`` against real Envoy + OpenBao + moto.

``make test`` installs the npm packages (``npm ci``) and compiles the package and its tests
(``tsc``) first. The stack is started here; the tests get its addresses in the environment.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Stack  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "clients" / "typescript"
TEST_FILES = ["dist/test/helpers.test.js", "dist/test/sdk-placeholder.test.js"]
# test(...) cases in those files: a test that went missing must fail this check.
EXPECTED = {"dist/test/helpers.test.js": 10, "dist/test/sdk-placeholder.test.js": 5}
GRANT = "ts-client-1"
USER = "ts-client-user"


@pytest.fixture(scope="module")
def stack():
    s = Stack(plugin_overrides={"grant_from_access_key_id": True})
    try:
        s.creds = s.moto.create_user_key(USER)
        s.bao.put_grant(GRANT, s.creds)
        yield s
    finally:
        s.stop()
        s.cleanup()


def run_node_tests(stack, files):
    node = shutil.which("node")
    assert node, "Node.js (node) is not on the PATH"
    missing = [f for f in files if not (TS / f).exists()]
    assert not missing, f"{missing} not built: run `make ts-client`"
    env = dict(os.environ)
    for k in ("HTTP_PROXY", "http_proxy", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    env.update({
        "GRANT_SIGV4_PROXY": stack.proxy,
        "GRANT_SIGV4_ADMIN": stack.envoy.admin,
        "GRANT_SIGV4_GRANT": GRANT,
        "GRANT_SIGV4_USER": USER,
        # No shared config or credentials of the machine's user.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    p = subprocess.run(
        [node, "--test", "--test-reporter=tap", "--test-concurrency=1", *files],
        cwd=TS, env=env, capture_output=True, text=True, timeout=300,
    )
    counts = {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|skipped|todo|cancelled) (\d+)$",
                                                p.stdout, re.M)}
    return p, counts


def test_node_tests_pass_against_the_stack(stack):
    p, counts = run_node_tests(stack, TEST_FILES)
    report = p.stdout[-6000:] + p.stderr[-3000:]
    assert p.returncode == 0, report
    want = sum(EXPECTED.values())
    assert counts.get("pass") == want, (counts, report)
    assert counts.get("fail") == 0 and counts.get("skipped") == 0 and counts.get("cancelled") == 0, counts
    assert counts.get("todo") == 0 and counts.get("tests") == want, counts
    # Every request those tests made upstream was signed by the filter: moto verified each
    # signature after its set-up calls, and the SDK's placeholder keys were never accepted.
    assert stack.envoy.counter("cluster.aws.upstream_rq_total") > 20


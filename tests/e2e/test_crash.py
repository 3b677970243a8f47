"""Panic safety: when the filter's VM fails anyway, Envoy fails closed (nothing unsigned or
half-signed goes out) and reloads the VM for the next requests (failure_policy:
FAIL_RELOAD). Uses the test-only module built by `make wasm-crash-test`, which aborts on a
request carrying x-grant-sigv4-crash-test."""

import time

import pytest

from harness import CRASH_TEST_WASM, Stack

STS_GET = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"


def test_a_crashed_vm_fails_closed_and_is_reloaded():
    if not CRASH_TEST_WASM.exists():
        pytest.fail(f"{CRASH_TEST_WASM} is missing: run `make wasm-crash-test` (make test does)")
    s = Stack(concurrency=1, wasm=CRASH_TEST_WASM)
    try:
        s.bao.put_grant("grant-crash", s.moto.create_user_key("crash-user"))
        assert s.raw("GET", STS_GET, headers={"x-grant-id": "grant-crash"})[0] == 200
        before = s.upstream_requests()
        status, _, body = s.raw(
            "GET", STS_GET, headers={"x-grant-id": "grant-crash", "x-grant-sigv4-crash-test": "1"}
        )
        assert status >= 500, (status, body)
        assert s.upstream_requests() == before, "a request went upstream from a crashed VM"
        # The VM is reloaded: requests are signed again, with no restart of Envoy.
        deadline = time.monotonic() + 20
        while True:
            status, _, body = s.raw("GET", STS_GET, headers={"x-grant-id": "grant-crash"})
            if status == 200 or time.monotonic() > deadline:
                break
            assert status >= 500 and s.upstream_requests() == before, (status, body)
            time.sleep(0.2)
        assert status == 200, body
        reloads = {k: v for k, v in s.envoy.stats().items() if "reload_success" in k}
        assert any(v >= 1 for v in reloads.values()), reloads
    finally:
        s.stop()
        s.cleanup()

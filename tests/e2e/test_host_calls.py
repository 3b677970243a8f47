"""The host calls a signed GET costs Envoy, held to their number.

Each proxy-wasm host call is a trip across the wasm boundary, the largest part of what the
filter costs Envoy per request (docs/performance.md). `bench/vm.mjs` drives the built module
behind a mock host through the callbacks Envoy calls for a GET whose grant is cached, and
counts the host calls per request; a change that adds one fails here, on purpose.
"""

import re
import shutil
import subprocess

import pytest

from harness import ROOT, WASM

# One read of the clock and of the header map; the grant header removed; Authorization,
# X-Amz-Date and X-Amz-Content-Sha256 added (the request has none of them: an add costs
# Envoy less than a replace); the audit record into the filter state; the answer's :status
# read (an AWS refusal of the key drops it from the caches).
EXPECTED = {
    "get_current_time": 1.0,
    "get_header_map_pairs": 1.0,
    "remove_header_map_value": 1.0,
    "add_header_map_value": 3.0,
    "set_property": 1.0,
    "get_header_map_value": 1.0,
}


def vm_line(prefix: str, node_flags: list[str], args: list[str]) -> str:
    """Run the module in Node's V8 behind bench/vm.mjs's mock host; its output line that
    starts with ``prefix``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (bench/vm.mjs runs the module in its V8)")
    out = subprocess.run(
        [node, *node_flags, "--no-warnings", str(ROOT / "bench" / "vm.mjs"), str(WASM), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return next(l for l in out.stdout.splitlines() if l.startswith(prefix))


def test_a_cached_get_costs_eight_host_calls():
    line = vm_line("host calls per request: ", ["--no-liftoff"], ["--requests", "200"])
    calls = {name: float(n) for name, n in re.findall(r"(\w+) ([\d.]+)", line.split(": ", 1)[1])}
    assert calls == EXPECTED, line


def test_no_clock_means_no_signature():
    """A host that cannot tell the time gets a local 500, never a request signed in 1970."""
    line = vm_line("no clock: ", [], ["--no-clock"])
    assert "action 1," in line, line  # paused: not forwarded
    assert "header writes 0," in line, line
    assert '"status":500' in line and "InternalError" in line and "current time" in line, line


def test_a_stream_the_module_never_saw_is_refused_not_forwarded():
    """Request headers for a context the module has no state for (it should not happen in
    Envoy): a local 500, never a request let through unsigned."""
    line = vm_line("unknown context: ", [], ["--unknown-context"])
    assert "action 1," in line, line  # paused: not forwarded
    assert "header writes 0," in line, line
    assert '"status":500' in line and "InternalError" in line and "no filter state" in line, line

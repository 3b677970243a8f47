#!/usr/bin/env python3
"""`make bench-instructions`: instructions Envoy executes per request, counted by valgrind.

The machines these benchmarks run on are noisy: CPU time per request moves by ±10 µs from run
to run. Instruction counts do not: valgrind's callgrind counts every instruction Envoy
executes (its C++ code, V8's JIT-compiled wasm, libc), the same for the same binaries and
requests whatever else the machine does. This runs each Envoy of `make bench` under callgrind,
sends a warm-up and then a counted run of requests of one workload of `make bench` (wrk, 4
connections; GET unless BENCH_IR_WORKLOAD says otherwise), and prints the instructions per
request of (a) no signing, (b) the native signer, (c) grant-sigv4 as shipped (envoy/local.yaml),
(d) grant-sigv4 as a native dynamic module (envoy/dynamic-module-local.yaml), and each one's
difference with (a). (c) and (d) write the same audit record into the access log. For the
hashed POST, (b) is the native signer that hashes the body (`use_unsigned_payload: false`),
as in `make bench`; "b_hash" names it in BENCH_IR_CONFIGS for the other workloads.

Envoy also runs instructions while idle (timers, stats, the filter's tick). Before the
counted run the Envoy idles for BENCH_IR_IDLE_SECONDS, and that rate, times the counted run's
length, is subtracted: on a loaded machine the counted run completes fewer requests, and
without this each would carry more of the idle work. A counted run in which no request
completes stops the run with a message saying so (the machine is too busy to count).

Instructions are not time: a cache miss costs more than an add, and under valgrind the native
signer's SHA-256 cannot use the CPU's SHA extensions (so (b) counts more instructions than it
runs natively). Use it to compare builds of grant-sigv4 with each other; use `make bench` for
the verdict on time.

Environment: BENCH_IR_WORKLOAD (GET): a workload of bench/run.py ("GET", "PUT 64 KiB S3",
"POST 64 KiB SQS"; its first word is enough); BENCH_IR_SECONDS (8): length of the counted run;
BENCH_IR_IDLE_SECONDS (4): length of the idle window; BENCH_IR_KEEP: a directory that keeps the
callgrind output of each counted run (callgrind-NAME.counted, for callgrind_annotate, with
callgrind-NAME.json: its requests and idle share, for bench/cycles.py) and the rendered Envoy
configs; BENCH_IR_CALLGRIND_ARGS: more callgrind options, for example
"--cache-sim=yes" (cache misses of the counted run, in the kept files); BENCH_IR_WASM: another .wasm
for (c) (default: the built one); BENCH_IR_MODULE: another .so for (d); BENCH_IR_CONFIGS
(a,b,c,d); BENCH_IR_PLUGIN: a JSON object of plugin configuration overrides for (c) and (d), for
example '{"audit": {"filter_state": false}}' (what an option saves).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402
import run as bench  # noqa: E402

SECONDS = int(os.environ.get("BENCH_IR_SECONDS", "8"))
IDLE_SECONDS = int(os.environ.get("BENCH_IR_IDLE_SECONDS", "4"))
WASM = Path(os.environ.get("BENCH_IR_WASM", str(harness.WASM)))
MODULE = Path(os.environ.get("BENCH_IR_MODULE", str(harness.DYNAMIC_MODULE)))
CONFIGS = os.environ.get("BENCH_IR_CONFIGS", "a,b,c,d").split(",")
KEEP = os.environ.get("BENCH_IR_KEEP")
CALLGRIND_ARGS = os.environ.get("BENCH_IR_CALLGRIND_ARGS", "").split()


def workload_name(given: str) -> str:
    """The bench/run.py workload BENCH_IR_WORKLOAD names (in full or by its first word)."""
    for name in bench.WORKLOADS:
        if given.lower() in (name.lower(), name.split()[0].lower()):
            return name
    sys.exit(f"BENCH_IR_WORKLOAD={given!r}: not one of {', '.join(bench.WORKLOADS)}")


WORKLOAD = workload_name(os.environ.get("BENCH_IR_WORKLOAD", "GET"))
# The hashed POST compares with the native signer that hashes the body, as make bench does.
B_HASHES = WORKLOAD.startswith("POST")


def envoy_binary() -> str:
    """The real envoy binary (.venv/bin/envoy is a Python shim that execs it)."""
    out = subprocess.run([str(harness.VENV_BIN / "python"), "-c",
                          "import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / '_bin' / 'envoy')"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if not Path(out).exists():
        raise RuntimeError(f"envoy binary not found at {out}")
    return out


def wrk_requests(port: int, script: Path, seconds: int, check: bool = True) -> int:
    path = bench.WORKLOADS[WORKLOAD][2]
    # Under valgrind the first requests are slow (JIT compilation): a long timeout.
    r = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", "--timeout", "60s", "-s", str(script),
                        f"http://127.0.0.1:{port}{path}"],
                       capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            res = json.loads(line[len("BENCHJSON "):])
            errors = res["status"] + res["connect"] + res["read"] + res["write"] + res["timeout"]
            if errors and check:
                raise RuntimeError(f"{errors} failed requests during the counted run")
            return int(res["requests"])
    raise RuntimeError(f"wrk gave no result:\n{r.stdout}{r.stderr}")


def count(name: str, template: str, values: dict, logdir: Path, envoy: str) -> float:
    admin, port = harness.free_port(), harness.free_port()
    cfg = logdir / f"{name}.yaml"
    cfg.write_text(harness.render(template, {"ADMIN_PORT": admin, "LISTEN_PORT": port, **values}))
    out = logdir / f"callgrind-{name}.out"
    if KEEP:
        Path(KEEP).mkdir(parents=True, exist_ok=True)
    proc = harness.Proc(name, ["valgrind", "--tool=callgrind", "--smc-check=all-non-file", *CALLGRIND_ARGS,
                               f"--callgrind-out-file={out}", envoy, "-c", str(cfg),
                               "--use-dynamic-base-id", "--concurrency", "1", "--log-level", "warn"], logdir)
    try:
        harness.wait_until(lambda: harness.http_get(f"http://127.0.0.1:{admin}/ready")[0] == 200,
                           f"{name} /ready", timeout=300, proc=proc)
        script = logdir / f"{name}.lua"
        grant = bench.GRANT if name in ("c", "d") else None
        bench.wrk_script(script, WORKLOAD, grant=grant is not None)
        # The first answered GET: for (c) and (d) the grant is cached from then on.
        harness.wait_until(lambda: bench.one_request(port, "GET", grant)[0] == 200, f"{name} first GET",
                           timeout=300, proc=proc)
        check_signed(name, port, grant)
        wrk_requests(port, script, 3, check=False)  # warm-up: JIT, connection pools

        def dump(keep_as: str | None = None) -> int:
            """Dump (and zero) the counters; the instructions since the last dump (the dump
            file copied to BENCH_IR_KEEP as ``keep_as`` when both are given)."""
            before = set(logdir.glob(f"callgrind-{name}.out*"))
            subprocess.run(["callgrind_control", "-d", str(proc.popen.pid)], capture_output=True, timeout=120)
            new = harness.wait_until(lambda: set(logdir.glob(f"callgrind-{name}.out*")) - before,
                                     f"{name} callgrind dump", timeout=120)
            path = sorted(new)[0]
            # The dump file is written completely before callgrind_control returns; its
            # "totals:" line comes last.
            for _ in range(50):
                for line in path.read_text(errors="replace").splitlines():
                    if line.startswith("totals:"):
                        if KEEP and keep_as:
                            shutil.copy(path, Path(KEEP) / keep_as)
                        return int(line.split()[1])
                time.sleep(0.2)
            raise RuntimeError(f"no totals in {path}")

        dump()
        t0 = time.monotonic()
        # An idle window (a measurement, not a wait for anything): the idle instruction rate.
        time.sleep(IDLE_SECONDS)
        idle = dump()
        t1 = time.monotonic()
        requests = wrk_requests(port, script, SECONDS)
        total = dump(f"callgrind-{name}.counted")
        t2 = time.monotonic()
        idle_rate = idle / (t1 - t0)
        seconds = t2 - t1
        if requests == 0:
            raise RuntimeError(f"({name}): no request completed in the {SECONDS} s counted run under "
                               "valgrind; the machine is too busy to count (retry, or raise BENCH_IR_SECONDS)")
        idle_part = idle_rate * seconds
        print(f"  {name}: {requests} requests counted; idle work subtracted: {idle_part / total:.1%} of the count",
              flush=True)
        if KEEP:
            # What bench/cycles.py needs to turn the kept dump into figures per request.
            (Path(KEEP) / f"callgrind-{name}.json").write_text(
                json.dumps({"requests": requests, "idle_fraction": idle_part / total, "workload": WORKLOAD}))
        return (total - idle_part) / requests
    finally:
        proc.stop()
        if KEEP:
            shutil.copy(cfg, Path(KEEP) / cfg.name)


def check_signed(name: str, port: int, grant: str | None):
    """One request of the workload before counting: answered 200, and signed (or not) as
    ``name`` should sign it, with the payload hash ``make bench`` expects."""
    status, h, body, _ = bench.one_request(port, WORKLOAD, grant, path="/__preflight")
    authz = h.get("x-echo-authorization", "")
    sha = h.get("x-echo-content-sha256", "")
    problems = [f"status {status}: {body[:200]!r}"] if status != 200 else []
    if name == "a" and authz:
        problems.append("signed")
    if name != "a" and not authz.startswith("AWS4-HMAC-SHA256 "):
        problems.append(f"not signed: {authz!r}")
    hashed = name == "b_hash" or (name == "b" and B_HASHES)
    if hashed or (name in ("c", "d") and WORKLOAD != "GET"):
        body = bench.WORKLOADS[WORKLOAD][4] or b""
        want = "UNSIGNED-PAYLOAD" if WORKLOAD.startswith("PUT") and not hashed else hashlib.sha256(body).hexdigest()
        if sha != want:
            problems.append(f"x-amz-content-sha256 {sha!r}, expected {want!r}")
    if problems:
        raise RuntimeError(f"({name}) {WORKLOAD}: " + "; ".join(problems))


def main():
    for tool in ("valgrind", "callgrind_control"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"{tool} is missing (Debian package valgrind)")
    bench.ensure_wrk()
    envoy = envoy_binary()
    logdir = Path(tempfile.mkdtemp(prefix="grant-sigv4-ir-"))
    procs = []
    try:
        bao, _, common = bench.start_backends(logdir, procs)
        overrides = json.loads(os.environ.get("BENCH_IR_PLUGIN", "{}"))
        plugin = harness.plugin_config(bao.filter_token, **overrides)
        # Under valgrind a vault callout can take seconds: a long timeout, so that the first
        # GET caches the grant.
        plugin["vault"]["timeout_ms"] = 60000
        configs = bench.envoy_configs(bao, plugin, WASM, MODULE)
        if B_HASHES:
            configs["b"] = configs["b_hash"]
        ir = {}
        for name in CONFIGS:
            template, values = configs[name]
            ir[name] = count(name, template, {**common, **values}, logdir, envoy)
            print(f"  {name}: {ir[name]:,.0f} instructions per {WORKLOAD}", flush=True)
        print()
        if overrides:
            print(f"Plugin configuration overrides for (c) and (d): {json.dumps(overrides)}")
        b_note = "; (b) hashes the body" if B_HASHES else ""
        print(f"Instructions per {WORKLOAD} (callgrind, {SECONDS} s counted run{b_note}; (c) = {WASM.name}, "
              f"{WASM.stat().st_size:,} bytes; (d) = {MODULE.name}, {MODULE.stat().st_size:,} bytes):")
        for name in CONFIGS:
            added = f" ({ir[name] - ir['a']:+,.0f} over (a))" if name != "a" and "a" in ir else ""
            print(f"  ({name}) {ir[name]:>10,.0f}{added}")
    finally:
        bench.stop_all(procs)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`make bench-ab`: Envoy CPU per GET of builds or configurations of the filter, side by side.

Each variant is ``LABEL=MODULE.wasm`` or ``LABEL=MODULE.wasm:JSON``, JSON being overrides of
the plugin configuration (for example ``'nofs=target/wasm32-wasip1/release/grant_sigv4.wasm:
{"audit": {"filter_state": false}}'``). Every variant runs in its own Envoy exactly as
`make bench` runs (c) (``envoy/local.yaml``, ``--concurrency 1``, the grant cached), next to
(a), Envoy with no signing filter, all on the same CPU. wrk sends the GET of `make bench` to
each in turn, round after round (a, v1, v2, ..., a, v1, v2, ...). Printed: per variant the
median Envoy CPU µs per GET, its median added over (a), and the median over rounds of its
difference with the first variant within the same round (paired, so that what the rest of the
machine does cancels out as far as it can).

Environment: BENCH_ROUNDS (8), BENCH_SECONDS (2), BENCH_CONNECTIONS (16), BENCH_ENVOY_CPU (0),
BENCH_LOAD_CPU (1).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402
import run as bench  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "2"))


def parse_variant(arg: str) -> tuple[str, Path, dict]:
    label, sep, rest = arg.partition("=")
    if not sep or not label:
        sys.exit(f"variant {arg!r}: expected LABEL=MODULE.wasm[:JSON]")
    path, _, overrides = rest.partition(":")
    wasm = Path(path)
    if not wasm.is_file():
        sys.exit(f"variant {label}: no module at {wasm}")
    try:
        cfg = json.loads(overrides) if overrides else {}
    except json.JSONDecodeError as e:
        sys.exit(f"variant {label}: the overrides are not JSON: {e}")
    if not isinstance(cfg, dict):
        sys.exit(f"variant {label}: the overrides must be a JSON object")
    return label, wasm, cfg


def main():
    variants = [parse_variant(a) for a in sys.argv[1:]]
    if not variants:
        sys.exit(__doc__)
    if len({v[0] for v in variants}) != len(variants):
        sys.exit("variant labels must differ")
    bench.ensure_wrk()
    try:
        os.sched_setaffinity(0, {int(bench.LOAD_CPU)})
    except OSError:
        pass
    logdir = Path(tempfile.mkdtemp(prefix="grant-sigv4-ab-"))
    procs = []
    try:
        bao, _, common = bench.start_backends(logdir, procs)
        envoys = {}
        template, values = bench.envoy_configs(bao, harness.plugin_config(bao.filter_token))["a"]
        a = bench.BenchEnvoy("a", template, {**common, **values}, logdir, bench.ENVOY_CPU)
        procs.append(a)
        envoys["a"] = a
        for label, wasm, overrides in variants:
            copy = logdir / f"{label}.wasm"  # a rebuild during the run changes nothing here
            shutil.copyfile(wasm, copy)
            plugin = harness.plugin_config(bao.filter_token, **overrides)
            template, values = bench.shipped_config(bao, plugin, copy)
            e = bench.BenchEnvoy(f"v-{label}", template, {**common, **values}, logdir, bench.ENVOY_CPU)
            procs.append(e)
            envoys[label] = e
        for e in envoys.values():
            e.wait_ready()
        scripts = {}
        for key, e in envoys.items():
            grant = None if key == "a" else bench.GRANT
            status, _, body, _ = bench.one_request(e.listen_port, "GET", grant)
            if status != 200:
                raise RuntimeError(f"{key}: the first GET answered {status}: {body[:300]!r}")
            scripts[key] = logdir / f"{key}.lua"
            bench.wrk_script(scripts[key], "GET", grant=grant is not None)
            bench.run_wrk(e.listen_port, "GET", scripts[key], 1)  # warm-up
        cpu: dict[str, list[float]] = {k: [] for k in envoys}
        for rnd in range(1, ROUNDS + 1):
            line = []
            for key, e in envoys.items():
                c0 = e.cpu_seconds()
                r = bench.run_wrk(e.listen_port, "GET", scripts[key], SECONDS)
                c1 = e.cpu_seconds()
                if r["errors"] or not r["requests"]:
                    raise RuntimeError(f"round {rnd} {key}: {r['errors']} errors, {r['requests']} requests")
                cpu[key].append((c1 - c0) * 1e6 / r["requests"])
                line.append(f"{key} {cpu[key][-1]:.1f}")
            bench.log(f"  round {rnd}/{ROUNDS}: " + " | ".join(line) + " µs/GET")
        first = variants[0][0]
        bench.log("")
        bench.log(f"Envoy CPU µs per GET, medians of {ROUNDS} interleaved rounds of {SECONDS} s "
                  f"(wrk -c{bench.CONNECTIONS}):")
        bench.log(f"  {'(a) no signing':32} {statistics.median(cpu['a']):7.1f}")
        for label, wasm, overrides in variants:
            added = [v - x for v, x in zip(cpu[label], cpu["a"])]
            diff = [v - x for v, x in zip(cpu[label], cpu[first])]
            name = f"{label} ({wasm.name}{', ' + json.dumps(overrides) if overrides else ''})"
            paired = "" if label == first else f", paired vs {first} {statistics.median(diff):+.1f}"
            bench.log(f"  {name[:60]:60} {statistics.median(cpu[label]):7.1f}, added over (a) "
                      f"{statistics.median(added):+.1f}{paired}")
    finally:
        bench.stop_all(procs)
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()

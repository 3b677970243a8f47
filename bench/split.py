#!/usr/bin/env python3
"""`make bench-split`: where each Envoy of `make bench` spends its CPU per GET.

Instruction counts (`make bench-instructions`) show grant-sigv4 (c) adding about what Envoy's
native signer (b) adds, while `make bench` times (c) at more than twice (b). This finds where
that time goes, with what works on a VM without hardware counters:

* user and system time per GET of the whole Envoy (``/proc/PID/stat``), in interleaved
  rounds, and per thread (``/proc/PID/task/*/stat``, summed by thread name): which thread
  pays, and whether any of it is kernel time;
* system calls per GET (``strace -f -c`` attached during a run of the same load);
* a sampled profile (``perf record -e cpu-clock``, a software clock, so no PMU needed): µs per
  GET in Envoy's binary, in JIT code (V8's compiled wasm and its wrappers), in the kernel and
  in libc; Envoy's binary further split, by the function ranges of its ``.eh_frame`` (the
  binary is stripped), into functions (a) never runs (V8, proxy-wasm, the filters) and
  functions (a) runs too (Envoy's own request path), whose time should not grow with a filter
  that does not add to that path.

Every figure is CPU time per completed GET, so a loaded machine slows the run but moves the
figures less than throughput; the profile's split is a share of samples and needs no quiet
machine, though a quiet one gives steadier figures.

Environment: BENCH_SPLIT_CONFIGS (a,b,c,d), BENCH_SPLIT_ROUNDS (5), BENCH_SPLIT_SECONDS (3),
BENCH_SPLIT_VARIANTS: more grant-sigv4 Envoys, ``LABEL=MODULE.wasm`` or
``LABEL=MODULE.wasm:JSON`` (plugin configuration overrides), separated by ``;``.
"""

from __future__ import annotations

import bisect
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402
import instructions  # noqa: E402
import run as bench  # noqa: E402

CONFIGS = os.environ.get("BENCH_SPLIT_CONFIGS", "a,b,c,d").split(",")
ROUNDS = int(os.environ.get("BENCH_SPLIT_ROUNDS", "5"))
SECONDS = int(os.environ.get("BENCH_SPLIT_SECONDS", "3"))
VARIANTS = [v for v in os.environ.get("BENCH_SPLIT_VARIANTS", "").split(";") if v]
PERF_HZ = 4000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> dict:
    """Per thread name: utime and stime (clock ticks) and time on CPU (ns, schedstat: finer
    than the ticks)."""
    out = collections.defaultdict(lambda: [0, 0, 0])
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            st = (task / "stat").read_text()
            on_cpu = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        f = st[st.rindex(")") + 2:].split()
        out[name][0] += int(f[11])
        out[name][1] += int(f[12])
        out[name][2] += on_cpu
    return out


def timed_run(e: bench.BenchEnvoy, script: Path) -> dict:
    t0 = threads(e.pid)
    r = bench.run_wrk(e.listen_port, "GET", script, SECONDS)
    t1 = threads(e.pid)
    n = max(r["requests"], 1)
    d = {k: [a - b for a, b in zip(v, t0.get(k, [0, 0, 0]))] for k, v in t1.items()}
    return {"n": r["requests"], "errors": r["errors"],
            "user": sum(v[0] for v in d.values()) / CLK_TCK * 1e6 / n,
            "sys": sum(v[1] for v in d.values()) / CLK_TCK * 1e6 / n,
            "worker": sum(v[2] for k, v in d.items() if k.startswith("wrk:")) / 1e3 / n,
            "others": sum(v[2] for k, v in d.items() if not k.startswith("wrk:")) / 1e3 / n}


def attached(tool: list[str], e: bench.BenchEnvoy, script: Path, seconds: int = SECONDS) -> int:
    """Run `tool` attached to the Envoy during one run of the load; the GETs completed."""
    p = subprocess.Popen(tool + ["-p", str(e.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # attaching takes a moment; the load starts after it (not a synchronization)
        r = bench.run_wrk(e.listen_port, "GET", script, seconds)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=120)
    return r["requests"]


def syscalls(e: bench.BenchEnvoy, script: Path, logdir: Path) -> dict:
    out = logdir / f"strace-{e.name}.txt"
    n = attached(["strace", "-f", "-c", "-o", str(out)], e, script)
    counts = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    return {k: v / max(n, 1) for k, v in counts.items()}


def function_starts(binary: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Function ranges of a stripped binary, from its .eh_frame."""
    text = subprocess.run(["readelf", "--debug-dump=frames", binary], capture_output=True, text=True).stdout
    ranges = sorted((int(a, 16), int(b, 16)) for a, b in re.findall(r"pc=([0-9a-f]+)\.\.([0-9a-f]+)", text))
    return [a for a, _ in ranges], ranges


def profile(e: bench.BenchEnvoy, script: Path, logdir: Path, fns) -> dict:
    data = logdir / f"perf-{e.name}.data"
    # (a) is the baseline of "functions (a) runs too": a longer profile, so that few of its
    # functions go unsampled.
    seconds = SECONDS * (3 if e.name == CONFIGS[0] else 1)
    n = attached(["perf", "record", "-e", "cpu-clock", "-F", str(PERF_HZ), "-o", str(data)], e, script, seconds)
    us = 1e6 / PERF_HZ / max(n, 1)
    rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,sym",
                          "-F", "sample,dso,sym"], capture_output=True, text=True).stdout
    regions = collections.Counter()
    by_fn = collections.Counter()
    starts, ranges = fns
    for line in rep.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+(?: tid \d+)?)\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        samples, dso, sym = int(m[1]), m[2], m[4]
        if dso == "envoy":
            regions["envoy"] += samples
            if sym.startswith("0x"):
                a = int(sym, 16)
                i = bisect.bisect_right(starts, a) - 1
                by_fn[ranges[i][0] if i >= 0 and a < ranges[i][1] else -1] += samples * us
        elif dso.startswith("[JIT]"):
            regions["jit"] += samples
        elif dso.startswith("[kernel"):
            regions["kernel"] += samples
        else:
            regions["libc"] += samples
    return {"regions": {k: v * us for k, v in regions.items()}, "by_fn": by_fn, "n": n}


def main():
    for tool in ("strace", "perf", "readelf"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (Debian packages strace, linux-perf, binutils)")
    bench.ensure_wrk()
    logdir = Path(tempfile.mkdtemp(prefix="grant-sigv4-split-"))
    procs: list = []
    try:
        bao, _, common = bench.start_backends(logdir, procs)
        bench.pin_all_threads(bao.proc.popen.pid, {int(bench.LOAD_CPU)})
        configs = bench.envoy_configs(bao, harness.plugin_config(bao.filter_token))
        names = list(CONFIGS)
        for v in VARIANTS:
            label, _, rest = v.partition("=")
            wasm, _, js = rest.partition(":")
            plugin = harness.plugin_config(bao.filter_token, **(json.loads(js) if js else {}))
            configs[label] = bench.shipped_config(bao, plugin, wasm)
            names.append(label)
        envoys, scripts = {}, {}
        for k in names:
            template, values = configs[k]
            e = bench.BenchEnvoy(k, template, {**common, **values}, logdir, bench.ENVOY_CPU)
            procs.append(e)
            envoys[k] = e
        for k, e in envoys.items():
            e.wait_ready()
            grant = None if k in ("a", "b") else bench.GRANT
            status = bench.one_request(e.listen_port, "GET", grant)[0]
            if status != 200:
                raise RuntimeError(f"({k}): a GET answered {status}")
            scripts[k] = logdir / f"{k}.lua"
            bench.wrk_script(scripts[k], "GET", grant=grant is not None)
            bench.run_wrk(e.listen_port, "GET", scripts[k], 1)  # warm-up: JIT, connection pools

        runs = collections.defaultdict(list)
        for rnd in range(1, ROUNDS + 1):
            for k, e in envoys.items():
                r = timed_run(e, scripts[k])
                runs[k].append(r)
                print(f"  round {rnd}/{ROUNDS} ({k}): {r['n']} GETs, {r['errors']} errors, "
                      f"user {r['user']:.1f} µs, sys {r['sys']:.1f} µs per GET", flush=True)
        sys_calls = {k: syscalls(e, scripts[k], logdir) for k, e in envoys.items()}
        fns = function_starts(instructions.envoy_binary())
        profiles = {k: profile(e, scripts[k], logdir, fns) for k, e in envoys.items()}

        med = statistics.median
        print("\nCPU per GET, median of rounds (µs); added: paired with (a) in each round")
        print("| config | user | system | added user | added system | worker thread (on CPU) | other threads (on CPU) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for k in names:
            rs, ra = runs[k], runs[names[0]]
            worker = [r["worker"] for r in rs]
            others = [r["others"] for r in rs]
            print(f"| ({k}) | {med(r['user'] for r in rs):.1f} | {med(r['sys'] for r in rs):.1f} | "
                  f"{med(x['user'] - y['user'] for x, y in zip(rs, ra)):+.1f} | "
                  f"{med(x['sys'] - y['sys'] for x, y in zip(rs, ra)):+.1f} | {med(worker):.1f} | {med(others):.1f} |")
        calls = sorted({c for s in sys_calls.values() for c, v in s.items() if v >= 0.005})
        print("\nSystem calls per GET (strace -f -c)")
        print("| config | " + " | ".join(calls) + " |")
        print("|---|" + "---:|" * len(calls))
        for k in names:
            print(f"| ({k}) | " + " | ".join(f"{sys_calls[k].get(c, 0):.3f}" for c in calls) + " |")
        base = profiles[names[0]]["by_fn"]
        print("\nProfile (perf cpu-clock), µs per GET")
        print("| config | Envoy binary | of it: functions with no sample in (a) | of it: functions (a) runs too "
              "| JIT code | kernel | libc, vdso |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for k in names:
            p = profiles[k]
            new = sum(v for f, v in p["by_fn"].items() if base.get(f, 0) == 0)
            reg = p["regions"]
            print(f"| ({k}) | {reg.get('envoy', 0):.1f} | {new:.1f} | {reg.get('envoy', 0) - new:.1f} | "
                  f"{reg.get('jit', 0):.1f} | {reg.get('kernel', 0):.1f} | {reg.get('libc', 0):.1f} |")
        print(f"\nlogs, strace and perf data in {logdir}")
    finally:
        bench.stop_all(procs)


if __name__ == "__main__":
    main()

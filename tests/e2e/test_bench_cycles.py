"""bench/cycles.py reads callgrind files right: a function's own cost, not the inclusive cost
of the calls it makes; compressed names; SHA-256 set apart; figures per request."""

import json
import subprocess
import sys

from harness import ROOT

EVENTS = "Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim"


def write(dir_, name: str, body: str, requests: int, idle: float = 0.0):
    (dir_ / f"callgrind-{name}.counted").write_text(f"version: 1\ncreator: test\nevents: {EVENTS}\n{body}")
    (dir_ / f"callgrind-{name}.json").write_text(
        json.dumps({"requests": requests, "idle_fraction": idle, "workload": "GET"}))


def cost(ir=0, i1=0, il=0, bcm=0) -> str:
    # Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
    return f"{ir} 0 0 {i1} 0 0 {il} 0 0 0 {bcm} 0 0"


def run(dir_) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "cycles.py"), str(dir_)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def row(text: str, config: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| ({config}) |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_own_costs_per_request_with_sha_set_apart(tmp_path):
    # (a): main 1000 instructions, calling f; the call line's cost (inclusive, 500) is not
    # main's own. f: 500 and 2 L1 misses. 10 requests.
    write(tmp_path, "a", "\n".join([
        "ob=(1) /x/envoy",
        "fn=(1) main",
        f"0 {cost(ir=1000)}",
        "cfn=(2) f",
        "calls=1 0",
        f"0 {cost(ir=500, i1=2)}",
        "",  # callgrind separates functions with blank lines
        "fn=(2)",
        f"0 {cost(ir=500, i1=2)}",
        "",
    ]), requests=10)
    # (d): the same, plus a module whose SHA-256 compression costs 300 and 1 last-level miss,
    # and other module code 200 with a mispredicted branch; 10 requests, 50% idle.
    write(tmp_path, "d", "\n".join([
        "ob=(1) /x/envoy",
        "fn=(1) main",
        f"0 {cost(ir=1000)}",
        "fn=(2) f",
        f"0 {cost(ir=500, i1=2)}",
        "ob=(2) /y/libgrant_sigv4_dynamic_module.so",
        "fn=(3) sha2::sha256::compress256",
        f"0 {cost(ir=300, il=1)}",
        "fn=(4) grant_sigv4_core::request::plan",
        f"0 {cost(ir=200, bcm=1)}",
        "",
    ]), requests=10, idle=0.5)
    text = run(tmp_path)
    # (a): (1000 + 500 + 12 × 2) / 10 requests.
    assert row(text, "a")[1:3] == ["150", "152"]
    # (d): half of (1000 + 500 + 24 + 300 + 40 + 200 + 15) / 10.
    d = row(text, "d")
    assert d[1:3] == ["100", "104"], d
    assert d[3] == "-48"  # added over (a)
    assert d[4] == "17"  # SHA-256: (300 + 40) / 2 / 10
    assert d[5] == "-65"


def test_a_count_without_cache_simulation_is_refused(tmp_path):
    (tmp_path / "callgrind-a.counted").write_text("events: Ir\nob=(1) envoy\nfn=(1) main\n0 100\n")
    (tmp_path / "callgrind-a.json").write_text(json.dumps({"requests": 1, "idle_fraction": 0, "workload": "GET"}))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "cycles.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "--cache-sim=yes" in out.stderr

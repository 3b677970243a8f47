"""The vault's load under faults and floods, in one Envoy with 2 workers and short TTLs, with
a recording fake vault (``FakeVault``) relaying to OpenBao, so that every vault call is
counted per grant with its time:

1. soak: 10 grants under steady traffic from both workers: at most one refresh per grant
   per refresh period for the whole Envoy (one worker refreshes, the other takes the key
   from shared data);
2. flood, at the same time: 5,000 distinct unknown grant ids in about 10 s cost at most
   100 + 50 per second vault calls (the new-grant fetch limit; the rest get 503
   ``VaultBusy`` with ``retry-after``), and the soak's clients on cached grants see no
   failure;
3. freeze: the vault stops answering for 8 s, past the keys' TTL: no request fails and no
   request on a cached grant takes more than 0.5 s (stale keys are served at once while
   one background fetch per grant probes the vault, backing off); a new grant gets 503
   ``VaultUnavailable``; everything recovers when the vault answers again.

The figures (vault calls, latencies, refreshes per grant) are printed (``pytest -s``)."""

import http.client
import json
import threading
import time

import pytest

from fakes import GRANT_PREFIX, FakeVault
from harness import HOSTS, STAT_NAMESPACE, Stack, http_get, wait_until

STS_GET = "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
GRANTS = [f"grant-soak-{i}" for i in range(10)]
TTL, AHEAD = 4, 2  # a used key is refreshed 2 s after it was fetched
PERIOD = TTL - AHEAD
SOAK_SECONDS = 12
FLOOD_IDS, FLOOD_SECONDS, FLOOD_THREADS = 5000, 10.0, 10
FREEZE_SECONDS = 8
VAULT_TIMEOUT_MS = 500
RATE, BURST = 50, 100  # the defaults of new_grant_fetches


def vault_calls(fake, grant, t0=0.0, t1=float("inf")):
    return [r["t"] for r in fake.requests if r["path"] == GRANT_PREFIX + grant and t0 <= r["t"] < t1]


# The filter's stats in /stats, per host (Envoy's custom stat namespace of each extension).


@pytest.mark.parametrize("host", HOSTS)
def test_soak_flood_and_freeze_keep_the_vault_load_bounded_and_lose_no_request(host):
    gauge = f"{STAT_NAMESPACE[host]}.grant_sigv4.vault_failing_seconds"
    stale_serves = f"{STAT_NAMESPACE[host]}.grant_sigv4.cache_stale_serves"
    fake = FakeVault({}, relay_unknown=True)
    s = None
    stop = threading.Event()
    threads = []
    try:
        s = Stack(
            host=host,
            concurrency=2,
            vault_port=fake.port,
            plugin_overrides={
                "vault": {"timeout_ms": VAULT_TIMEOUT_MS},
                "cache": {"ttl_seconds": TTL, "refresh_ahead_seconds": AHEAD, "max_stale_seconds": 60},
            },
        )
        fake.upstream = s.bao.addr
        creds = s.moto.create_user_key("load-user")
        for g in GRANTS + ["grant-later"]:
            s.bao.put_grant(g, creds)

        # Steady traffic on the 10 grants, one new connection per request (so both workers
        # serve every grant): (start, grant, status, seconds).
        traffic = []

        def client(offset):
            i = offset
            while not stop.is_set():
                g = GRANTS[i % len(GRANTS)]
                i += 1
                t0 = time.monotonic()
                try:
                    status = s.raw("GET", STS_GET, headers={"x-grant-id": g})[0]
                except Exception as e:  # noqa: BLE001 - counted as a failure
                    status = repr(e)
                traffic.append((t0, g, status, time.monotonic() - t0))

        for i in range(4):
            threads.append(threading.Thread(target=client, args=(i * 3,), daemon=True))
            threads[-1].start()
        # Warm: every grant signed several times (both workers have seen them).
        wait_until(lambda: all(sum(1 for t in traffic if t[1] == g and t[2] == 200) >= 6 for g in GRANTS),
                   "every grant warm", timeout=30)
        soak_t0 = time.monotonic()
        memory_before = int(json.loads(http_get(f"{s.envoy.admin}/memory")[1])["allocated"])

        # The flood: 5,000 distinct unknown ids, paced over about 10 s.
        flood = []

        def flooder(k):
            conn = http.client.HTTPConnection("127.0.0.1", s.listen_port, timeout=10)
            try:
                n = FLOOD_IDS // FLOOD_THREADS
                start = time.monotonic()
                for j in range(n):
                    wait = start + j * FLOOD_SECONDS / n - time.monotonic()
                    if wait > 0:
                        stop.wait(wait)
                    conn.request("GET", STS_GET, headers={"x-grant-id": f"flood-{k}-{j}"})
                    r = conn.getresponse()
                    body = r.read()
                    code = json.loads(body).get("error") if body.startswith(b"{") else None
                    flood.append((time.monotonic(), r.status, code, r.getheader("retry-after")))
            finally:
                conn.close()

        flood_threads = [threading.Thread(target=flooder, args=(k,), daemon=True) for k in range(FLOOD_THREADS)]
        flood_t0 = time.monotonic()
        for t in flood_threads:
            t.start()
        for t in flood_threads:
            t.join(60)
        flood_t1 = time.monotonic()
        memory_after = int(json.loads(http_get(f"{s.envoy.admin}/memory")[1])["allocated"])
        wait_until(lambda: time.monotonic() >= soak_t0 + SOAK_SECONDS, "the soak's end", timeout=SOAK_SECONDS + 1)

        # The freeze: the vault stops answering, past the keys' TTL.
        stale_before = s.envoy.counter(stale_serves)
        freeze_t0 = time.monotonic()
        fake.freeze()
        try:
            t_later = time.monotonic()
            status, _, body = s.raw("GET", STS_GET, headers={"x-grant-id": "grant-later"})
            later = (status, json.loads(body)["error"], time.monotonic() - t_later)
            wait_until(lambda: time.monotonic() >= freeze_t0 + FREEZE_SECONDS - 1.5, "the freeze's last seconds",
                       timeout=FREEZE_SECONDS)
            # The gauge and the counter are flushed on the tick (every second).
            failing = wait_until(lambda: s.envoy.counter(gauge) >= 4 and
                                 s.envoy.counter(gauge), "vault_failing_seconds", 3)
            wait_until(lambda: time.monotonic() >= freeze_t0 + FREEZE_SECONDS, "the freeze's end",
                       timeout=FREEZE_SECONDS)
        finally:
            fake.thaw()
        freeze_t1 = time.monotonic()
        stale_served = s.envoy.counter(stale_serves) - stale_before
        # Back: a new grant works, with no restart of Envoy, and the gauge drops to 0.
        wait_until(lambda: s.raw("GET", STS_GET, headers={"x-grant-id": "grant-later"})[0] == 200,
                   "a new grant signed once the vault is back", timeout=10)
        wait_until(lambda: s.envoy.counter(gauge) == 0, "the gauge back to 0", 5)
        stop.set()
        for t in threads:
            t.join(15)

        # --- what the clients on cached grants saw -----------------------------------------
        failures = [t for t in traffic if t[2] != 200]
        assert failures == [], failures[:5]
        during = lambda t0, t1: [t for t in traffic if t0 <= t[0] < t1]  # noqa: E731
        soak_lat = sorted(t[3] for t in during(soak_t0, freeze_t0))
        freeze_reqs = during(freeze_t0, freeze_t1)
        freeze_max = max(t[3] for t in freeze_reqs)

        # --- the flood ------------------------------------------------------------------------
        flood_calls = sum(1 for r in fake.requests if r["path"].startswith(GRANT_PREFIX + "flood-"))
        flood_elapsed = flood_t1 - flood_t0
        codes = {}
        for _, status, code, _ in flood:
            codes[(status, code)] = codes.get((status, code), 0) + 1
        busy_retry_after = {ra for _, status, code, ra in flood if code == "VaultBusy"}

        # --- refreshes per grant during the soak, and probes during the freeze ---------------
        refreshes = {g: vault_calls(fake, g, soak_t0, freeze_t0) for g in GRANTS}
        min_gap = min(b - a for ts in refreshes.values() for a, b in zip(ts, ts[1:]))
        probes = {g: len(vault_calls(fake, g, freeze_t0, freeze_t1)) for g in GRANTS}

        print(
            f"\nsoak {freeze_t0 - soak_t0:.1f} s: refreshes per grant {sorted(len(v) for v in refreshes.values())}, "
            f"closest two refreshes of a grant {min_gap:.2f} s apart; "
            f"client p50 {soak_lat[len(soak_lat) // 2] * 1000:.0f} ms, "
            f"p99 {soak_lat[int(len(soak_lat) * 0.99)] * 1000:.0f} ms, max {soak_lat[-1] * 1000:.0f} ms "
            f"over {len(soak_lat)} requests\n"
            f"flood: {len(flood)} unknown ids in {flood_elapsed:.1f} s, {flood_calls} vault calls "
            f"(bound {BURST + RATE * flood_elapsed:.0f}), answers {codes}, "
            f"Envoy memory {(memory_after - memory_before) / 2**20:+.1f} MiB\n"
            f"freeze {freeze_t1 - freeze_t0:.1f} s: {len(freeze_reqs)} requests, 0 failed, "
            f"max {freeze_max * 1000:.0f} ms, {stale_served} served stale, "
            f"vault probes per grant {sorted(probes.values())}, vault_failing_seconds {failing}, "
            f"new grant {later[0]} {later[1]} in {later[2] * 1000:.0f} ms"
        )

        assert len(flood) == FLOOD_IDS
        assert flood_calls <= BURST + RATE * flood_elapsed, (flood_calls, flood_elapsed)
        assert set(codes) <= {(403, "GrantNotFound"), (503, "VaultBusy")}, codes
        assert codes.get((503, "VaultBusy"), 0) > 0 and busy_retry_after == {"1"}, (codes, busy_retry_after)

        for g, ts in refreshes.items():
            assert len(ts) >= 3, (g, ts)  # refreshed all along
            assert len(ts) <= (freeze_t0 - soak_t0) / PERIOD + 2, (g, len(ts))
        assert min_gap > 1.0, f"a grant refreshed twice within {min_gap:.2f} s"

        assert freeze_max < 0.5, f"a request on a cached grant took {freeze_max:.2f} s during the freeze"
        assert len(freeze_reqs) > 50
        assert stale_served > 0
        assert max(probes.values()) <= 6, probes  # backing off: 1 s, 2 s, 4 s (the TTL cap)
        assert later[:2] == (503, "VaultUnavailable"), later
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        if s is not None:
            s.stop()
            s.cleanup()
        fake.stop()

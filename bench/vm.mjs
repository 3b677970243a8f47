// `make bench-vm`: the filter's own work in V8, without Envoy.
//
// Loads a grant-sigv4 module in Node's V8 (TurboFan only, as Envoy runs it) behind a mock
// proxy-wasm host, configures it, and drives cached-grant GETs through the same callbacks
// Envoy calls (context create, request headers, response headers, delete). It prints:
//   - the host calls per request (what Envoy would be asked to do);
//   - time per request (best of 7 runs);
//   - with --profile: the module's functions by share of samples (node --cpu-prof; needs a
//     module with its name section, which `make bench-vm` builds);
//   - with --instructions: instructions per request under valgrind (deterministic).
// Mock host functions run in JavaScript, so absolute figures include their cost; compare
// builds with each other, and Envoy with `make bench` / `make bench-instructions`.
//
// usage: node bench/vm.mjs MODULE.wasm [--profile] [--instructions] [--requests N] [--plugin JSON]
//   --plugin: overrides of the plugin configuration, e.g. '{"audit": {"filter_state": false}}'.

import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WASI } from 'node:wasi';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const wasmPath = args[0];
const flag = (f) => args.includes(f);
const option = (f, d) => (args.includes(f) ? Number(args[args.indexOf(f) + 1]) : d);
if (!wasmPath) {
  console.error('usage: node bench/vm.mjs MODULE.wasm [--profile] [--instructions] [--requests N] [--no-clock] [--unknown-context] [--plugin JSON]');
  process.exit(2);
}

// The GET of `make bench`, as Envoy hands it to the filter, and a vault answer for its grant.
const PLUGIN = {
  grant_header: 'x-grant-id',
  vault: { cluster: 'vault', authority: 'vault', token: 'bench-token', kv_mount: 'secret', path_prefix: 'aws/grants/' },
  cache: { ttl_seconds: 300 },
};
const overrides = args.includes('--plugin') ? JSON.parse(args[args.indexOf('--plugin') + 1]) : {};
for (const [k, v] of Object.entries(overrides)) {
  PLUGIN[k] = v && typeof v === 'object' && typeof PLUGIN[k] === 'object' ? { ...PLUGIN[k], ...v } : v;
}
const CONFIG = JSON.stringify(PLUGIN);
const REQUEST = [[':authority', 'sts.us-east-1.amazonaws.com'], [':path', '/?Action=GetCallerIdentity&Version=2011-06-15'],
  [':method', 'GET'], [':scheme', 'http'], ['user-agent', 'wrk'], ['x-grant-id', 'bench-grant'],
  ['x-forwarded-proto', 'http'], ['x-request-id', '5b1c3c4e-9a51-4c39-9d1f-1f0e2c1f7a11']];
const VAULT_ANSWER = JSON.stringify({ data: { data: { access_key_id: 'AKIABENCHGRANT000001', secret_access_key: 'bench/secret/0123456789abcdefghijklmnop' } } });

// Child mode: run N requests after a warm-up, nothing else (for valgrind and --cpu-prof).
export async function drive(path, n, timed) {
  const te = new TextEncoder();
  const td = new TextDecoder();
  const mod = await WebAssembly.compile(readFileSync(path));
  let inst;
  const u8 = () => new Uint8Array(inst.exports.memory.buffer);
  const dv = () => new DataView(inst.exports.memory.buffer);
  const give = (bytes, pPtr, pSize) => {
    const p = inst.exports.proxy_on_memory_allocate(bytes.length);
    u8().set(bytes, p);
    dv().setUint32(pPtr, p, true);
    dv().setUint32(pSize, bytes.length, true);
  };
  const serialize = (pairs) => {
    const enc = pairs.map(([k, v]) => [te.encode(k), te.encode(v)]);
    let size = 4 + enc.length * 8;
    for (const [k, v] of enc) size += k.length + v.length + 2;
    const out = new Uint8Array(size);
    const d = new DataView(out.buffer);
    d.setUint32(0, enc.length, true);
    let o = 4;
    for (const [k, v] of enc) { d.setUint32(o, k.length, true); d.setUint32(o + 4, v.length, true); o += 8; }
    for (const [k, v] of enc) { out.set(k, o); o += k.length + 1; out.set(v, o); o += v.length + 1; }
    return out;
  };
  const config = te.encode(CONFIG);
  const request = serialize(REQUEST);
  const answer = te.encode(VAULT_ANSWER);
  const now = BigInt(Date.now()) * 1_000_000n;
  const calls = {};
  const count = (name) => { calls[name] = (calls[name] || 0) + 1; };
  let pendingToken = 0;
  // --no-clock: the host cannot tell the time (the call fails); the filter must refuse locally.
  const noClock = flag('--no-clock');
  // --unknown-context: request headers for a stream the module never saw created; it must
  // refuse locally, never let the request go on unsigned.
  const unknownContext = flag('--unknown-context');
  const replies = [];
  const env = {
    proxy_get_header_map_pairs(map, pPtr, pSize) { count('get_header_map_pairs'); give(map === 0 ? request : serialize([[':status', '200']]), pPtr, pSize); return 0; },
    proxy_replace_header_map_value() { count('replace_header_map_value'); return 0; },
    proxy_add_header_map_value() { count('add_header_map_value'); return 0; },
    proxy_remove_header_map_value() { count('remove_header_map_value'); return 0; },
    proxy_get_header_map_value(map, k, ks, pPtr, pSize) {
      count('get_header_map_value');
      if (td.decode(u8().slice(k, k + ks)) === ':status') { give(te.encode('200'), pPtr, pSize); return 0; }
      return 1;
    },
    proxy_set_tick_period_milliseconds() { return 0; },
    proxy_get_log_level(p) { dv().setUint32(p, 3, true); return 0; },
    proxy_set_property() { count('set_property'); return 0; },
    proxy_get_property() { count('get_property'); return 1; },
    proxy_define_metric(t, n, ns, p) { dv().setUint32(p, 1, true); return 0; },
    proxy_increment_metric() { count('increment_metric'); return 0; },
    proxy_record_metric() { count('record_metric'); return 0; },
    proxy_get_buffer_bytes(buf, start, max, pPtr, pSize) {
      if (buf === 7) { give(config, pPtr, pSize); return 0; } // plugin configuration
      if (buf === 4) { give(answer, pPtr, pSize); return 0; } // callout answer body
      return 1;
    },
    proxy_continue_stream() { count('continue_stream'); return 0; },
    proxy_send_local_response(status, d, ds, b, bs) {
      if (!noClock && !unknownContext) throw new Error('the filter answered locally');
      replies.push({ status, body: td.decode(u8().slice(b, b + bs)) });
      return 0;
    },
    proxy_set_effective_context() { return 0; },
    proxy_get_shared_data() { count('get_shared_data'); return 1; },
    proxy_set_shared_data() { count('set_shared_data'); return 0; },
    proxy_get_current_time_nanoseconds(p) {
      count('get_current_time');
      if (noClock) return 2; // BadArgument: no time
      dv().setBigUint64(p, now, true);
      return 0;
    },
    proxy_log() { count('log'); return 0; },
    proxy_http_call(up, us, h, hs, b, bs, t, ts, timeout, pTok) { count('http_call'); pendingToken = 77; dv().setUint32(pTok, 77, true); return 0; },
  };
  const wasi = new WASI({ version: 'preview1', returnOnExit: true });
  const missing = (name) => () => { throw new Error(`mock host lacks ${name}`); };
  inst = await WebAssembly.instantiate(mod, { ...wasi.getImportObject(), env: new Proxy(env, { get: (t, k) => t[k] ?? missing(k) }) });
  wasi.initialize(inst);
  const e = inst.exports;
  const ROOT = 1;
  e.proxy_on_context_create(ROOT, 0);
  e.proxy_on_vm_start(ROOT, 0);
  if (!e.proxy_on_configure(ROOT, config.length)) throw new Error('the module refused its configuration');
  let ctx = 2;
  if (unknownContext) {
    const action = e.proxy_on_request_headers(99, REQUEST.length, 1);
    return { action, replies, calls };
  }
  if (noClock) {
    e.proxy_on_context_create(ctx, ROOT);
    const action = e.proxy_on_request_headers(ctx, REQUEST.length, 1);
    e.proxy_on_delete(ctx);
    return { action, replies, calls };
  }
  const one = () => {
    e.proxy_on_context_create(ctx, ROOT);
    if (e.proxy_on_request_headers(ctx, REQUEST.length, 1) !== 0 && !pendingToken) throw new Error('request paused');
    if (pendingToken) { pendingToken = 0; e.proxy_on_http_call_response(ROOT, 77, 1, answer.length, 0); }
    e.proxy_on_response_headers(ctx, 1, 0);
    e.proxy_on_delete(ctx);
    ctx += 1;
  };
  for (let i = 0; i < 2000; i++) one(); // fetch the grant, warm up
  for (const k of Object.keys(calls)) delete calls[k];
  if (!timed) { for (let i = 0; i < n; i++) one(); return { calls, n }; }
  let best = Infinity;
  for (let r = 0; r < 7; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) one();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / n);
  }
  return { calls, n: 7 * n, ns: best };
}

const self = fileURLToPath(import.meta.url);
const plugin = args.includes('--plugin') ? ['--plugin', args[args.indexOf('--plugin') + 1]] : [];
const NODE = [process.execPath, '--no-liftoff', '--no-warnings'];

if (flag('--no-clock') || flag('--unknown-context')) {
  const r = await drive(wasmPath, 1, false);
  const written = (r.calls.replace_header_map_value || 0) + (r.calls.add_header_map_value || 0)
    + (r.calls.remove_header_map_value || 0);
  console.log(`${flag('--no-clock') ? 'no clock' : 'unknown context'}: action ${r.action}, header writes ${written}, local replies ${JSON.stringify(r.replies)}`);
} else if (args.includes('--child')) {
  await drive(wasmPath, option('--requests', 0), false);
} else {
  const n = option('--requests', 20000);
  const r = await drive(wasmPath, n, true);
  console.log(`module: ${wasmPath}${plugin.length ? `, plugin overrides ${plugin[1]}` : ''}`);
  console.log('host calls per request: ' + Object.entries(r.calls).map(([k, v]) => `${k} ${(v / r.n).toFixed(2)}`).join(', '));
  console.log(`time per request in V8 with the mock host: ${r.ns.toFixed(0)} ns (best of 7 x ${n})`);
  if (flag('--instructions')) {
    const count = (requests) => {
      const out = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', '--smc-check=all-non-file',
        ...NODE, '--single-threaded', self, wasmPath, '--child', '--requests', String(requests), ...plugin], { encoding: 'utf8' });
      const m = /Collected : (\d+)/.exec(out.stderr);
      if (!m) throw new Error(`valgrind gave no count:\n${out.stderr.slice(-2000)}`);
      return Number(m[1]);
    };
    const k = 10000;
    console.log(`instructions per request (valgrind, ${k} requests less none): ${Math.round((count(k) - count(0)) / k)}`);
  }
  if (flag('--profile')) {
    const dir = mkdtempSync(join(tmpdir(), 'grant-sigv4-vm-'));
    spawnSync(NODE[0], [...NODE.slice(1), '--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval', '50',
      self, wasmPath, '--child', '--requests', '300000', ...plugin], { stdio: 'inherit' });
    const p = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]), 'utf8'));
    rmSync(dir, { recursive: true, force: true });
    const time = {};
    p.samples.forEach((id, i) => { time[id] = (time[id] || 0) + (p.timeDeltas[i] || 0); });
    const byName = {};
    let total = 0;
    for (const node of p.nodes) {
      const t = time[node.id] || 0;
      total += t;
      // Rust's mangled names, shortened to their path: _ZN11grant_sigv45sigv44sign17h...E -> grant_sigv4::sigv4::sign
      let name = node.callFrame.functionName || '(program)';
      const m = /^_ZN((?:\d+[^\d][^E]*?)+)17h[0-9a-f]{16}E$/.exec(name);
      if (m) {
        const parts = [];
        let s = m[1];
        while (s.length) { const l = /^(\d+)/.exec(s); if (!l) break; const len = Number(l[1]); parts.push(s.slice(l[1].length, l[1].length + len)); s = s.slice(l[1].length + len); }
        name = parts.join('::');
      }
      byName[name] = (byName[name] || 0) + t;
    }
    console.log('share of samples (wasm functions by name; JavaScript ones are the mock host):');
    for (const [name, t] of Object.entries(byName).sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.VM_TOP || 30))) {
      console.log(`  ${(100 * t / total).toFixed(1).padStart(5)}%  ${name.slice(0, 110)}`);
    }
  }
}

// A minimal proxy-wasm host (ABI 0.2.1) in Node.js, for one measurement: the CPU a filter
// module costs per HTTP stream in V8 itself, without Envoy. V8 runs as Envoy runs it
// (`node --no-liftoff`: proxy-wasm-cpp-host turns Liftoff off, so every function is
// TurboFan-compiled). Host calls do the least they can: header maps are plain arrays, stats
// and shared data are Maps.
//
//   node --no-liftoff host.mjs MODULE CONFIG_FILE PATH CALLER STREAMS ROUNDS COLD_STREAMS
//
// CONFIG_FILE "-" is an empty plugin config; CALLER "-" sends no `x-caller`. Prints one JSON
// line: configure times (ms, each a fresh VM), ns per stream of each round (context create,
// request headers, response headers and body, done, log, delete), the same for rounds of
// COLD_STREAMS streams with the CPU's caches evicted before each (a write to every line of
// EVICT_BYTES, then a run through EVICT_CODE_OPS steps of straight-line machine code; only
// the streams are timed), the host calls one stream makes, and what the last stream got
// (the cluster header, or the local reply's status).
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';

const [modulePath, configPath, path, caller, streamsArg, roundsArg, coldArg] =
  process.argv.slice(2);
const streams = Number(streamsArg);
const rounds = Number(roundsArg);
const coldStreams = Number(coldArg);
/** Larger than this machine's L1 and L2 together (a core has 48 KiB L1d and 2 MiB L2). */
const EVICT_BYTES = 8 << 20;
/** ≈ 130 KB of machine code, twice a core's 64 KiB L1i. */
const EVICT_CODE_OPS = 10_000;
/** Streams the host-call census counts (after as many untimed ones). */
const CENSUS = 10;
const config = configPath === '-' ? new Uint8Array() : readFileSync(configPath);
const module = new WebAssembly.Module(readFileSync(modulePath));
const enc = new TextEncoder();
const dec = new TextDecoder();

const OK = 0;
const NOT_FOUND = 1;
const PLUGIN_CONFIGURATION = 7;
const REQUEST_HEADERS = 0;
const RESPONSE_HEADERS = 2;
const ROOT = 1;

function requestHeaders() {
  const h = [
    [':authority', 'bench.local'],
    [':path', path],
    [':method', 'GET'],
    [':scheme', 'http'],
    ['user-agent', 'wrk'],
  ];
  if (caller !== '-') h.push(['x-caller', caller]);
  h.push(['x-forwarded-proto', 'http'], ['x-request-id', '7d7b5f3c-2a7e-4b0e-9b4c-3f3e2a7e4b0e']);
  return h.map(([k, v]) => [k, enc.encode(k), enc.encode(v)]);
}

/** A wasm function of `ops` multiply-xor steps on its argument, which TurboFan cannot fold:
 * a call runs every line of its machine code once. */
function codeEvictor(ops) {
  const leb = (n) => {
    const out = [];
    do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n);
    return out;
  };
  const sleb = (n) => {
    const out = [];
    for (;;) {
      const b = n & 0x7f;
      n >>= 7;
      if ((n === 0 && !(b & 0x40)) || (n === -1 && (b & 0x40))) { out.push(b); return out; }
      out.push(b | 0x80);
    }
  };
  const body = [0]; // no locals
  for (let i = 0; i < ops; i++) {
    // local.get 0; i32.const; i32.mul; i32.const; i32.xor; local.set 0
    body.push(0x20, 0, 0x41, ...sleb((i * 2654435761) | 1), 0x6c, 0x41, ...sleb(i * 40503), 0x73, 0x21, 0);
  }
  body.push(0x20, 0, 0x0b);
  const section = (id, bytes) => [id, ...leb(bytes.length), ...bytes];
  const bytes = new Uint8Array([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 1, 0x7f, 1, 0x7f]), // type: (i32) -> i32
    ...section(3, [1, 0]),
    ...section(7, [1, 1, 0x66, 0, 0]), // export "f"
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
  return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.f;
}

/** One VM: the module instantiated with this host's imports; `calls`, when given, counts
 * each `env` import the module calls, by name. */
function vm(calls) {
  let inst;
  const maps = { [REQUEST_HEADERS]: [], [RESPONSE_HEADERS]: [] };
  const shared = new Map();
  let metrics = 0;
  let reply = null;
  const u8 = () => new Uint8Array(inst.exports.memory.buffer);
  const dv = () => new DataView(inst.exports.memory.buffer);
  const bytes = (ptr, len) => u8().slice(ptr, ptr + len);
  const str = (ptr, len) => dec.decode(u8().subarray(ptr, ptr + len));
  // Hands `data` to the module in memory it allocates, as Envoy does.
  const give = (data, ptrPtr, sizePtr) => {
    const ptr = inst.exports.proxy_on_memory_allocate(data.length);
    u8().set(data, ptr);
    dv().setUint32(ptrPtr, ptr, true);
    dv().setUint32(sizePtr, data.length, true);
    return OK;
  };
  // A header map: [name, name bytes, value bytes] triples, and its ABI bytes once asked.
  const serialize = (pairs) => {
    let size = 4 + pairs.length * 8;
    for (const [, k, v] of pairs) size += k.length + v.length + 2;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    view.setUint32(0, pairs.length, true);
    let at = 4 + pairs.length * 8;
    pairs.forEach(([, k, v], i) => {
      view.setUint32(4 + i * 8, k.length, true);
      view.setUint32(8 + i * 8, v.length, true);
      out.set(k, at); at += k.length + 1;
      out.set(v, at); at += v.length + 1;
    });
    return out;
  };
  const wire = {};
  const set = (map, pairs) => { maps[map] = pairs; wire[map] = null; };
  const find = (map, key) => maps[map].findIndex(([k]) => k === key);
  const env = {
    proxy_log: () => OK,
    proxy_get_log_level: (ptr) => { dv().setUint32(ptr, 2, true); return OK; },
    proxy_get_buffer_bytes: (type, start, len, ptrPtr, sizePtr) =>
      type === PLUGIN_CONFIGURATION ? give(config.subarray(start, start + len), ptrPtr, sizePtr) : NOT_FOUND,
    proxy_get_header_map_pairs: (map, ptrPtr, sizePtr) =>
      give((wire[map] ??= serialize(maps[map] ?? [])), ptrPtr, sizePtr),
    proxy_get_header_map_value: (map, kp, kl, ptrPtr, sizePtr) => {
      const i = find(map, str(kp, kl));
      return i < 0 ? NOT_FOUND : give(maps[map][i][2], ptrPtr, sizePtr);
    },
    proxy_replace_header_map_value: (map, kp, kl, vp, vl) => {
      const key = str(kp, kl);
      const i = find(map, key);
      const pair = [key, enc.encode(key), bytes(vp, vl)];
      const pairs = maps[map].slice();
      if (i < 0) pairs.push(pair); else pairs[i] = pair;
      set(map, pairs);
      return OK;
    },
    proxy_add_header_map_value: (map, kp, kl, vp, vl) => {
      set(map, [...maps[map], [str(kp, kl), bytes(kp, kl), bytes(vp, vl)]]);
      return OK;
    },
    proxy_remove_header_map_value: (map, kp, kl) => {
      const key = str(kp, kl);
      set(map, maps[map].filter(([k]) => k !== key));
      return OK;
    },
    proxy_define_metric: (type, np, nl, idPtr) => { dv().setUint32(idPtr, ++metrics, true); return OK; },
    proxy_increment_metric: () => OK,
    proxy_record_metric: () => OK,
    proxy_get_property: () => NOT_FOUND,
    proxy_set_property: () => OK,
    proxy_set_tick_period_milliseconds: () => OK,
    proxy_get_current_time_nanoseconds: (ptr) => { dv().setBigUint64(ptr, process.hrtime.bigint(), true); return OK; },
    proxy_get_shared_data: (kp, kl, ptrPtr, sizePtr, casPtr) => {
      const entry = shared.get(str(kp, kl));
      if (!entry) return NOT_FOUND;
      dv().setUint32(casPtr, entry.cas, true);
      return give(entry.value, ptrPtr, sizePtr);
    },
    proxy_set_shared_data: (kp, kl, vp, vl, cas) => {
      const key = str(kp, kl);
      const entry = shared.get(key);
      shared.set(key, { value: bytes(vp, vl), cas: (entry?.cas ?? 0) + 1 });
      return OK;
    },
    proxy_send_local_response: (status) => { reply = status; return OK; },
    proxy_call_foreign_function: () => NOT_FOUND,
    proxy_http_call: (up, ul, hp, hl, bp, bl, tp, tl, timeout, tokenPtr) => { dv().setUint32(tokenPtr, 1, true); return OK; },
  };
  const wasi = {
    random_get: (ptr, len) => { webcrypto.getRandomValues(u8().subarray(ptr, ptr + len)); return 0; },
    environ_sizes_get: (countPtr, sizePtr) => { dv().setUint32(countPtr, 0, true); dv().setUint32(sizePtr, 0, true); return 0; },
    environ_get: () => 0,
    fd_write: (fd, iovs, n, writtenPtr) => {
      let total = 0;
      for (let i = 0; i < n; i++) total += dv().getUint32(iovs + i * 8 + 4, true);
      dv().setUint32(writtenPtr, total, true);
      return 0;
    },
    proc_exit: (code) => { throw new Error(`proc_exit(${code})`); },
  };
  const imports = { env: {}, wasi_snapshot_preview1: {} };
  for (const imp of WebAssembly.Module.imports(module)) {
    const table = imp.module === 'env' ? env : wasi;
    const f = table[imp.name] ?? (() => OK);
    imports[imp.module][imp.name] = calls && imp.module === 'env'
      ? (...args) => { calls.set(imp.name, (calls.get(imp.name) ?? 0) + 1); return f(...args); }
      : f;
  }
  inst = new WebAssembly.Instance(module, imports);
  inst.exports._initialize?.();
  const x = inst.exports;
  const started = process.hrtime.bigint();
  x.proxy_on_context_create(ROOT, 0);
  x.proxy_on_vm_start(ROOT, 0);
  if (!x.proxy_on_configure(ROOT, config.length)) throw new Error('configure failed');
  const configureMs = Number(process.hrtime.bigint() - started) / 1e6;

  const request = requestHeaders();
  const response = [[':status', enc.encode(':status'), enc.encode('200')],
    ['content-length', enc.encode('content-length'), enc.encode('2')]];
  const requestWire = serialize(request);
  const responseWire = serialize(response);
  let next = ROOT + 1;
  /** One stream through every callback Envoy makes; returns what it got. */
  const stream = () => {
    const id = next++;
    reply = null;
    maps[REQUEST_HEADERS] = request;
    wire[REQUEST_HEADERS] = requestWire;
    x.proxy_on_context_create(id, ROOT);
    x.proxy_on_request_headers(id, request.length, 1);
    if (reply === null) {
      maps[RESPONSE_HEADERS] = response;
      wire[RESPONSE_HEADERS] = responseWire;
      x.proxy_on_response_headers(id, response.length, 0);
      x.proxy_on_response_body(id, 2, 1);
    }
    x.proxy_on_done(id);
    x.proxy_on_log(id);
    x.proxy_on_delete(id);
  };
  const got = () => reply ?? maps[REQUEST_HEADERS].find(([k]) => k === 'x-xcluster-cluster')?.[2];
  return { configureMs, stream, got };
}

const configure = [];
for (let i = 0; i < 3; i++) configure.push(vm().configureMs);
const v = vm();
const perStream = [];
for (let r = 0; r < rounds; r++) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < streams; i++) v.stream();
  perStream.push(Number(process.hrtime.bigint() - t) / streams);
}
const evict = new Uint8Array(EVICT_BYTES);
const evictCode = codeEvictor(EVICT_CODE_OPS);
let evicted = 1;
const coldPerStream = [];
for (let r = 0; r < rounds; r++) {
  let spent = 0n;
  for (let i = 0; i < coldStreams; i++) {
    for (let j = 0; j < evict.length; j += 64) evict[j]++;
    evicted = evictCode(evicted);
    const t = process.hrtime.bigint();
    v.stream();
    spent += process.hrtime.bigint() - t;
  }
  coldPerStream.push(Number(spent) / coldStreams);
}
const got = v.got();
const calls = new Map();
const census = vm(calls);
for (let i = 0; i < CENSUS; i++) census.stream();
calls.clear();
for (let i = 0; i < CENSUS; i++) census.stream();
console.log(JSON.stringify({
  configure_ms: configure,
  ns_per_stream: perStream,
  cold_ns_per_stream: coldPerStream,
  host_calls: Object.fromEntries([...calls].map(([name, n]) => [name, n / CENSUS])),
  got: typeof got === 'number' ? { status: got } : { cluster: got ? dec.decode(got) : null },
}));

// The Mcs layer against the core it runs on and against node:crypto:
// - 1 MiB AES-128-GCM sent to a <cipher> in 4 KiB UPDATEs, then RETRIEVE
//   <encrypt>, against the core's one-shot over the same MiB;
// - one small operation (UPDATE 1 KiB, then RETRIEVE <encrypt>,
//   <calculateHash> or HMAC <calculateSignature>) against one core call and
//   one node:crypto call, in-process (binary) and with base64 bytes;
// - the base64 codec of serialized byte attributes against Node's Buffer;
// - memory with 10,000 live resources and 1,000,000 operations, printed.
// The engine is asynchronous: its cases are measured per resolved request.
import nodeCrypto from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { aesKey, coreMemoryStats, gcm, hmac, sha256, initSync, McsEngine, type McsRequest, type McsResponse } from '../src/index.ts';
import { selects, type BenchCase, type BenchGroup, type BenchModule, type BenchOptions } from './harness.ts';
import { fromBase64, toBase64 } from '../src/mcs/codec.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Rig {
  engine: McsEngine;
  seId: string;
  /** The engine's own promise (no wrapper: an async layer per request would be measured as the engine's). */
  send(op: McsRequest['op'], to: string, pc?: Record<string, unknown>, ty?: number, binary?: boolean): Promise<McsResponse>;
}

const BINARY = { binary: true };
const TEXT = { binary: false };

/** Fails the benchmark on an error response. */
function ok(r: McsResponse): void {
  if (r.rsc >= 4000) throw new Error(`Mcs ${r.rsc} ${JSON.stringify(r)}`);
}

async function rig(): Promise<Rig> {
  const engine = await McsEngine.create();
  const seId = engine.seIds[0]!;
  let rqi = 0;
  const send: Rig['send'] = (op, to, pc, ty, binary = true) =>
    engine.send({ op, to, fr: 'CBENCH', rqi: String(++rqi), ty, pc } as McsRequest, binary ? BINARY : TEXT);
  ok(await send(1, seId, { 'senv:Senv': { rn: 'reg', sID: seId, seL: 1 } }, 20011));
  return { engine, seId, send };
}

/** The bytes a RETRIEVE of an operation answers (base64 text when serialized), for the probe's comparison. */
function answered(res: unknown): Uint8Array | undefined {
  for (const attrs of Object.values((res as McsResponse).pc as Record<string, Record<string, unknown>>)) {
    for (const [sn, v] of Object.entries(attrs)) {
      if (sn === 'ri') continue;
      if (v instanceof Uint8Array) return v;
      if (typeof v === 'string') return fromBase64(v);
    }
  }
  return undefined;
}

async function gcmCipher(r: Rig, rn: string, key: Uint8Array, nonce: Uint8Array, mbs: number): Promise<string> {
  ok(await r.send(1, r.seId, { 'senv:Cph': { rn, Calg: 1001, mbs, kDt: key } }, 20002));
  ok(await r.send(1, `${r.seId}/reg/${rn}`, { 'senv:algP': { nc: nonce } }, 20001));
  return `${r.seId}/reg/${rn}`;
}

/** As the AES table's node:crypto row: its three parts, not joined (a join would slow the peer down). */
function nodeGcm(key: Uint8Array, nonce: Uint8Array, data: Uint8Array): Buffer[] {
  const c = nodeCrypto.createCipheriv('aes-128-gcm', key, nonce);
  return [c.update(data), c.final(), c.getAuthTag()];
}

const MEMORY_REPORT = 'Mcs memory: 10,000 resources and their operations';

/** Heap and WASM figures with 10,000 live resources, before and after `ops` operations. */
async function memoryReport(ops: number, opts: BenchOptions): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const figures = () => {
    gc();
    const wasm = coreMemoryStats();
    return { heap: process.memoryUsage().heapUsed, wasm: wasm.memoryBytes, inUse: wasm.inUseBytes };
  };
  const r = await rig();
  const before = figures();
  const key = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(12);
  const kinds = 4;
  const live = 10_000;
  for (let i = 0; i < live; i++) {
    switch (i % kinds) {
      case 0: await gcmCipher(r, `c${i}`, key, nonce, 4 * KiB); break;
      case 1: ok(await r.send(1, r.seId, { 'senv:Hsh': { rn: `h${i}`, Halg: 4 } }, 20004)); break;
      case 2: ok(await r.send(1, r.seId, { 'senv:Sgn': { rn: `s${i}`, Salg: 25, kDt: key } }, 20012)); break;
      default: ok(await r.send(1, r.seId, { 'senv:Sdo': { rn: `d${i}`, msg: key } }, 20009));
    }
  }
  const loaded = figures();
  const msg = nodeCrypto.randomBytes(256);
  const step = async (i: number) => {
    // A step of 7 (prime to 4 and to 10,000) visits every resource, of each of the four kinds in turn.
    const n = (i * 7) % live;
    const k = n % kinds;
    const target = k === 0 ? `c${n}` : k === 1 ? `h${n}` : k === 2 ? `s${n}` : `d${n}`;
    const root = ['senv:Cph', 'senv:Hsh', 'senv:Sgn', 'senv:Sdo'][k]!;
    ok(await r.send(3, `${r.seId}/reg/${target}`, { [root]: { msg } }));
    ok(await r.send(2, k === 3 ? `${r.seId}/reg/${target}` : `${r.seId}/reg/${target}/${['encrypt', 'calculateHash', 'calculateSignature'][k]}`));
  };
  // Each operation is an UPDATE plus a RETRIEVE: ops / 2 rounds.
  for (let i = 0; i < ops / 2; i++) await step(i);
  const after = figures();
  const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  console.log(`\nMcs memory: ${live} live resources, ${ops} operations (UPDATE and RETRIEVE requests, in pairs)`);
  console.log(`  JS heap   empty ${mb(before.heap)}, with resources ${mb(loaded.heap)} (${((loaded.heap - before.heap) / live).toFixed(0)} B each), after operations ${mb(after.heap)} (${after.heap >= loaded.heap ? '+' : ''}${mb(after.heap - loaded.heap)})`);
  console.log(`  WASM      empty ${mb(before.wasm)}, with resources ${mb(loaded.wasm)}, after operations ${mb(after.wasm)} (${after.wasm >= loaded.wasm ? '+' : ''}${mb(after.wasm - loaded.wasm)}; expanded keys are cached on first use)`);
  console.log(`  WASM in use (contexts and blocks) empty ${mb(before.inUse)}, with resources ${mb(loaded.inUse)}, after operations ${mb(after.inUse)}`);
  opts.finding?.('mcs', { check: 'memory', liveResources: live, operations: ops, empty: before, withResources: loaded, afterOperations: after });
  await r.engine.close();
}

export const mcsBench: BenchModule = async (opts) => {
  initSync();
  if (selects(opts, MEMORY_REPORT)) await memoryReport(opts.quick ? 100_000 : 1_000_000, opts);
  const r = await rig();
  const key = new Uint8Array(nodeCrypto.randomBytes(16)), nonce = new Uint8Array(nodeCrypto.randomBytes(12));
  const groups: BenchGroup[] = [];

  const big = new Uint8Array(nodeCrypto.randomBytes(MiB));
  const bulk = await gcmCipher(r, 'bulk', key, nonce, MiB);
  const chunks = Array.from({ length: MiB / (4 * KiB) }, (_, i) => big.subarray(i * 4 * KiB, (i + 1) * 4 * KiB));
  groups.push({
    algorithm: 'Mcs <cipher> AES-128-GCM, 4 KiB UPDATEs + encrypt', size: MiB, cases: [
      {
        impl: 'senv Mcs', async: true, output: answered, fn: async () => {
          for (const c of chunks) ok(await r.send(3, bulk, { 'senv:Cph': { msg: c } }));
          const res = await r.send(2, `${bulk}/encrypt`);
          ok(res);
          return res;
        },
      },
      { impl: 'core one-shot', fn: () => gcm(key, nonce).encrypt(big) },
      { impl: 'node:crypto', fn: () => nodeGcm(key, nonce, big) },
    ],
  });

  const small = new Uint8Array(nodeCrypto.randomBytes(KiB));
  const smallB64 = toBase64(small);
  const one = await gcmCipher(r, 'one', key, nonce, 4 * KiB);
  ok(await r.send(1, r.seId, { 'senv:Hsh': { rn: 'h', Halg: 4 } }, 20004));
  ok(await r.send(1, r.seId, { 'senv:Sgn': { rn: 's', Salg: 25, kDt: key } }, 20012));
  const mcsCases = (to: string, root: string, virtual: string): BenchCase[] => {
    // Fixed addresses and a prebuilt content shape, as a caller repeating one operation has them: a
    // computed-key literal costs over 100 ns per request in V8, the harness's cost, not the engine's.
    const op = `${to}/${virtual}`;
    const content = (msg: unknown) => {
      const pc: Record<string, unknown> = {};
      pc[root] = { msg };
      return pc;
    };
    return [
      {
        impl: 'senv Mcs', async: true, output: answered, fn: async () => {
          ok(await r.send(3, to, content(small)));
          const res = await r.send(2, op);
          ok(res);
          return res;
        },
      },
      {
        impl: 'senv Mcs base64', async: true, output: answered, fn: async () => {
          ok(await r.send(3, to, content(smallB64), undefined, false));
          const res = await r.send(2, op, undefined, undefined, false);
          ok(res);
          return res;
        },
      },
    ];
  };
  // The <cipher> keeps its key expanded (the software SE caches it), so the like-for-like core
  // call takes an AesKey; the key-as-bytes row is what a caller without one pays.
  const expanded = aesKey(key);
  groups.push({
    algorithm: 'Mcs <cipher> AES-128-GCM, UPDATE + encrypt', size: KiB, cases: [
      ...mcsCases(one, 'senv:Cph', 'encrypt'),
      { impl: 'core one-shot AesKey', fn: () => gcm(expanded, nonce).encrypt(small) },
      { impl: 'core one-shot', fn: () => gcm(key, nonce).encrypt(small) },
      { impl: 'node:crypto', fn: () => nodeGcm(key, nonce, small) },
    ],
  });
  groups.push({
    algorithm: 'Mcs <hash> SHA-256, UPDATE + calculateHash', size: KiB, cases: [
      ...mcsCases(`${r.seId}/reg/h`, 'senv:Hsh', 'calculateHash'),
      { impl: 'core one-shot', fn: () => sha256(small) },
      // node's fastest form of a one-shot digest, as in the SHA-2 table.
      { impl: 'node:crypto', fn: () => nodeCrypto.hash('sha256', small, 'buffer') },
    ],
  });
  groups.push({
    algorithm: 'Mcs <signature> HMAC-SHA-256, UPDATE + calculateSignature', size: KiB, cases: [
      ...mcsCases(`${r.seId}/reg/s`, 'senv:Sgn', 'calculateSignature'),
      { impl: 'core one-shot', fn: () => hmac('SHA-256', key, small) },
      { impl: 'node:crypto', fn: () => nodeCrypto.createHmac('sha256', key).update(small).digest() },
    ],
  });
  // Serialized byte attributes are base64 both ways: the layer's own codec (portable, no Buffer)
  // against Node's Buffer, at a small result and at a large message.
  for (const size of [KiB, MiB]) {
    const bytes = size === KiB ? small : big;
    const text = toBase64(bytes);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    groups.push({
      algorithm: 'base64 encode (serialized byte attributes)', size, cases: [
        { impl: 'senv codec', fn: () => toBase64(bytes) },
        { impl: 'node Buffer', fn: () => buf.toString('base64') },
      ],
    });
    groups.push({
      algorithm: 'base64 decode (serialized byte attributes)', size, cases: [
        { impl: 'senv codec', fn: () => fromBase64(text) },
        { impl: 'node Buffer', fn: () => Buffer.from(text, 'base64') },
      ],
    });
  }
  return groups;
};

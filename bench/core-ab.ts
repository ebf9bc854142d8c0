// Side by side throughput of two core modules (two builds of the same core,
// before and after a change to a block loop) in one process, on the raw
// exports, so that the comparison sees neither the facade nor the machine's
// drift between separate runs:
//   node dist/bench/core-ab.js a.wasm b.wasm [bytes per message] [rounds] [--out file]
// Each round times every operation on A and on B, in alternating order; the
// table gives each module's median MB/s and the ratio B/A, and --out writes
// the same as JSON. Build the "before" module with
// `npx asc assembly/index.ts --config asconfig.json --target simd -o a.wasm`
// at the old commit (add --experimental-wasm-relaxed-simd to node for
// Relaxed SIMD builds on Node 20).
import { readFileSync, writeFileSync } from 'node:fs';
import type { CoreExports } from '../src/core/exports.ts';
import type { AesExports } from '../src/core/aes.ts';
import { CBC_PADDING_IDS } from '../src/core/cbc.ts';
import { median } from './harness.ts';

type Exports = CoreExports & AesExports;

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = outAt >= 0 ? args.splice(outAt, 2)[1] : undefined;
const [fileA, fileB, bytesArg = '32704', roundsArg = '12'] = args;
if (!fileA || !fileB) {
  console.error('usage: node dist/bench/core-ab.js a.wasm b.wasm [bytes per message] [rounds] [--out file]');
  process.exit(2);
}
// The message lies at io + 64, its output at io + 32768: at most 32704 bytes keep them apart.
const MAX_LEN = 32768 - 64;
const asked = Number(bytesArg), ROUNDS = Number(roundsArg);
if (!Number.isInteger(asked) || asked < 16 || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(`core-ab: bytes per message must be a whole number from 16 (a block) and rounds from 1, got ${bytesArg} and ${roundsArg}`);
  process.exit(2);
}
const LEN = Math.min(asked, MAX_LEN) & ~15;
const CMAC = 49;

interface Module { x: Exports; io: number; key: number }

const modules: Module[] = await Promise.all([fileA, fileB].map(async (file) => {
  const x = (await WebAssembly.instantiate(readFileSync(file), {})).instance.exports as unknown as Exports;
  const io = x.io_ptr();
  const mem = new Uint8Array(x.memory.buffer);
  mem.fill(7, io, io + 32);
  for (let i = 0; i < LEN; i++) mem[io + 64 + i] = (i * 31) & 0xff;
  return { x, io, key: x.aes_key_create(io, 16, 0) };
}));

/** A call's status: a negative one is an error, never timed as if it had done the work. */
function st(v: number): void {
  if (v < 0) throw new Error(`core-ab: a call failed with status ${v}`);
}

// Each runs one message: the nonce or IV and the key are the window's first bytes, the message at io + 64.
const operations: Record<string, (m: Module) => void> = {
  'AES-128-GCM encrypt': ({ x, io, key }) => {
    const op = x.gcm_create(key, io, 12, 16, 0, 0);
    st(x.gcm_update(op, io + 64, io + 32768, LEN));
    st(x.gcm_final(op, io + 32));
    x.ctx_free(op);
  },
  'AES-128-CCM encrypt': ({ x, io, key }) => ccm(x, io, key, 0),
  'AES-128-CCM decrypt': ({ x, io, key }) => ccm(x, io, key, 1),
  'AES-128-CBC encrypt': ({ x, io, key }) => {
    const op = x.cbc_create(key, io, CBC_PADDING_IDS.none, 0, 0);
    st(x.cbc_update(op, io + 64, io + 32768, LEN));
    st(x.cbc_final(op, io + 32768 + LEN));
    x.ctx_free(op);
  },
  'AES-128-CMAC': ({ x, io, key }) => {
    const op = x.mac_create(key, CMAC, 0);
    st(x.mac_update(op, io + 64, LEN));
    st(x.mac_final(op, io + 32));
    x.ctx_free(op);
  },
};

function ccm(x: Exports, io: number, key: number, decrypt: number): void {
  const op = x.ccm_create(key, io, 13, 16, 0n, BigInt(LEN), decrypt, 0);
  st(x.ccm_update(op, io + 64, io + 32768, LEN));
  // Decryption compares the tag, which fails here: the work is the same.
  if (decrypt) x.ccm_verify(op, io + 32);
  else st(x.ccm_final(op, io + 32));
  x.ctx_free(op);
}

// A and B must compute the same bytes (tag or MAC at io + 32, output at io + 32768), or B/A compares
// two different computations.
for (const [name, run] of Object.entries(operations)) {
  const outputs = modules.map((m) => {
    run(m);
    const mem = new Uint8Array(m.x.memory.buffer);
    return Buffer.concat([mem.subarray(m.io + 32, m.io + 48), mem.subarray(m.io + 32768, m.io + 32768 + LEN)]);
  });
  if (!outputs[0]!.equals(outputs[1]!)) {
    console.error(`core-ab: ${name}: A and B compute different bytes`);
    process.exit(1);
  }
}

// About 40 ms of work per timing, whatever the message size.
const perTiming = Math.max(4, Math.round(1_300_000 / LEN));
const rates: Record<string, [number[], number[]]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(operations)) {
    for (const i of round % 2 ? [1, 0] : [0, 1]) {
      const m = modules[i]!;
      for (let w = 0; w < 3; w++) run(m);
      const t0 = process.hrtime.bigint();
      for (let n = 0; n < perTiming; n++) run(m);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      (rates[name] ??= [[], []])[i]!.push((LEN * perTiming) / s / 1e6);
    }
  }
}

// As the harness: the median of the per-round ratios (each round's A and B measured side by side), with their range.
const rows = Object.entries(rates).map(([operation, [a, b]]) => {
  const perRound = b.map((v, k) => v / a[k]!);
  return { operation, a: median(a), b: median(b), ratio: median(perRound), range: [Math.min(...perRound), Math.max(...perRound)] };
});
console.log(`A ${fileA}\nB ${fileB}\n${LEN}-byte messages, ${ROUNDS} alternating rounds, medians`);
for (const r of rows) {
  console.log(`  ${r.operation.padEnd(22)} A ${r.a.toFixed(0).padStart(5)} MB/s   B ${r.b.toFixed(0).padStart(5)} MB/s   B/A ${r.ratio.toFixed(2)}x [${r.range[0]!.toFixed(2)}-${r.range[1]!.toFixed(2)}]`);
}
if (out) writeFileSync(out, JSON.stringify({ a: fileA, b: fileB, bytes: LEN, rounds: ROUNDS, rows }, null, 2));

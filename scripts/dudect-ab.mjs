// Side-by-side dudect check of two core modules (two builds of the bitsliced
// AES, before and after a change) in one process:
//   node scripts/dudect-ab.mjs a.wasm b.wasm [encrypt|decrypt] [fixed byte, hex] [samples]
// Every sample picks the module and the class (fixed vs random 8 blocks) at
// random, so both modules see the same host state. bench/dudect-aes.ts runs
// one probe for seconds at a time, and on this shared VM the tails of the
// timing (the cropped |t|) drift with the host: runs of unchanged code there
// went from below 2 to 20-40 and back. Comparing two versions by separate
// bench runs confounds the change with that drift; this does not.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

const [fileA, fileB, mode = 'decrypt', fixedHex = '5a', samplesArg = '400000'] = process.argv.slice(2);
if (!fileA || !fileB || !['encrypt', 'decrypt'].includes(mode)) {
  console.error('usage: node scripts/dudect-ab.mjs a.wasm b.wasm [encrypt|decrypt] [fixed byte, hex] [samples]');
  process.exit(2);
}
const fixed = parseInt(fixedHex, 16), samples = Number(samplesArg);
const BYTES = 128, REPEAT = 8, KEY_AT = 1024, OUT_AT = 2048;

const modules = await Promise.all([fileA, fileB].map(async (file) => {
  const x = (await WebAssembly.instantiate(readFileSync(file), {})).instance.exports;
  const io = x.io_ptr();
  new Uint8Array(x.memory.buffer).fill(0x5a, io + KEY_AT, io + KEY_AT + 16);
  const key = x.aes_key_create(io + KEY_AT, 16, 0);
  const run = mode === 'decrypt' ? x.aes_decrypt_blocks : x.aes_encrypt_blocks;
  return { x, io, call: () => run(key, io, io + OUT_AT, BYTES) };
}));

function welch(a, b) {
  const mean = (v) => v.reduce((s, y) => s + y, 0) / v.length;
  const ma = mean(a), mb = mean(b);
  const va = a.reduce((s, y) => s + (y - ma) ** 2, 0) / (a.length - 1);
  const vb = b.reduce((s, y) => s + (y - mb) ** 2, 0) / (b.length - 1);
  return Math.abs((ma - mb) / Math.sqrt(va / a.length + vb / b.length));
}

// Inputs made before any timing, as in bench/dudect-aes.ts: one pool, the fixed class's slices filled.
const pick = randomBytes(samples);
const pool = randomBytes(samples * BYTES);
for (let i = 0; i < samples; i++) if (!(pick[i] & 1)) pool.fill(fixed, i * BYTES, (i + 1) * BYTES);
const times = [[[], []], [[], []]];
for (let i = 0; i < samples; i++) {
  const m = (pick[i] >> 1) & 1, cls = pick[i] & 1, { x, io, call } = modules[m];
  new Uint8Array(x.memory.buffer).set(pool.subarray(i * BYTES, (i + 1) * BYTES), io);
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < REPEAT; r++) call();
  times[m][cls].push(Number(process.hrtime.bigint() - t0));
}
for (const m of [0, 1]) {
  const [a, b] = times[m];
  const sorted = [...a, ...b].sort((p, q) => p - q);
  const cropped = [0.5, 0.75, 0.9].map((p) => {
    const limit = sorted[Math.floor(p * (sorted.length - 1))];
    return welch(a.filter((v) => v <= limit), b.filter((v) => v <= limit)).toFixed(2);
  });
  console.log(`${'AB'[m]} ${[fileA, fileB][m]}: ${mode}, fixed 0x${fixed.toString(16).padStart(2, '0')}, median ${sorted[sorted.length >> 1]} ns, |t| = ${welch(a, b).toFixed(2)}  cropped ${cropped.join(' / ')}`);
}

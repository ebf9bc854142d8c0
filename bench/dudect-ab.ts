// Side by side dudect check of two core modules (two builds of the core,
// before and after a change) in one process, with the probes of
// dudect-aes.ts and dudect-ec.ts:
//   node dist/bench/dudect-ab.js a.wasm b.wasm [probe regex] [fixed byte, hex] [samples]
// (samples: twice the probe's own for a full run by default, as each module gets half.)
// Every sample picks the module and the class at random, so both modules see
// the same host state. `senv bench --only dudect-aes` runs one probe for
// seconds at a time, and on this shared VM the tails of the timing (the
// cropped |t|) drift with the host: runs of unchanged code there went from
// below 2 to 20-40 and back. Comparing two versions by separate bench runs
// confounds the change with that drift; this does not.
import { readFileSync } from 'node:fs';
import { Core } from '../src/core/loader.ts';
import type { CoreExports } from '../src/core/exports.ts';
import { classInputs, tStatistics } from './dudect.ts';
import { probes as aesProbes } from './dudect-aes.ts';
import { probes as ecProbes } from './dudect-ec.ts';

const [fileA, fileB, probeArg = 'decryption', fixedHex = '5a', samplesArg] = process.argv.slice(2);
if (!fileA || !fileB) {
  console.error('usage: node dist/bench/dudect-ab.js a.wasm b.wasm [probe regex] [fixed byte, hex] [samples]');
  process.exit(2);
}
const files = [fileA, fileB];
const fixed = parseInt(fixedHex, 16), pattern = new RegExp(probeArg);

const cores = await Promise.all(files.map(async (file) => {
  const bytes = readFileSync(file);
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new Core(instance.exports as unknown as CoreExports, { build: 'simd', abiVersion: 0, moduleBytes: bytes.length, instantiateMs: 0 });
}));
const chosen = cores.map((c) => {
  const p = [...aesProbes(c).list, ...ecProbes(c).list].find((q) => pattern.test(q.name));
  if (!p) throw new Error(`no probe matches /${probeArg}/`);
  return p;
});
const probe = chosen[0]!;
const samples = samplesArg === undefined ? 2 * probe.samples : Number(samplesArg);

const { classes, input } = classInputs(samples, probe, fixed);
const times: [number[], number[]][] = [[[], []], [[], []]];
for (let i = 0; i < samples; i++) {
  const m = (classes[i]! >> 1) & 1, cls = classes[i]! & 1;
  const run = chosen[m]!.prepare(cores[m]!, input(i));
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < probe.repeat; r++) run();
  times[m]![cls]!.push(Number(process.hrtime.bigint() - t0));
}
for (const m of [0, 1]) {
  const { all, cropped } = tStatistics(times[m]!);
  const sorted = [...times[m]![0], ...times[m]![1]].sort((p, q) => p - q);
  console.log(`${'AB'[m]} ${files[m]}: ${probe.name}, fixed 0x${fixed.toString(16).padStart(2, '0')}, median ${sorted[sorted.length >> 1]} ns, ` +
    `|t| = ${Math.abs(all).toFixed(2)}  cropped ${cropped.map((t) => Math.abs(t).toFixed(2)).join(' / ')}`);
}

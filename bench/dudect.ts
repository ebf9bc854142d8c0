// A dudect-style timing-leak check (Reparaz, Balasch, Verbauwhede 2017), the
// part every group of probes shares (dudect-aes.ts, dudect-ec.ts):
// measurements of two classes of secret input (fixed vs random) are
// interleaved at random, and Welch's t statistic compares their means, on
// all samples and below several percentiles (cropping the noisy tail).
// |t| stays small (below 4.5 is the usual bar) when timing does not depend
// on the secret. A tool, not a CI gate; the figures also go to the bench JSON
// under `findings`.
import nodeCrypto from 'node:crypto';
import { initSync, type CoreBuild } from '../src/index.ts';
import { core, type Core } from '../src/core/loader.ts';
import type { BenchOptions } from './harness.ts';

export interface Probe {
  name: string;
  /** Bytes of secret input per measurement. */
  size: number;
  /** Calls per measurement, so that one sample spans a few microseconds at least. */
  repeat: number;
  /** Measurements in a full run (a quick run takes a tenth). */
  samples: number;
  /**
   * Makes one measurement's input of its class from random bytes, in place.
   * Left out: the fixed class's bytes all set to the fixed byte, the random
   * class's left random.
   */
  shape?(input: Uint8Array, fixedClass: boolean, fixed: number): void;
  /** Installs the secret (the same work for either class) and returns the timed call. */
  prepare(c: Core, secret: Uint8Array): () => unknown;
}

export interface ProbeSet {
  list: Probe[];
  release(): void;
}

/** A probe whose name starts so must leak: where it does not, the measurement was too coarse to show a leak. */
const CONTROL = 'control';

// Welch's t; a class with fewer than two samples under a crop means the
// classes separate completely there, reported as an infinite |t|.
function welch(a: number[], b: number[]): number {
  if (a.length < 2 || b.length < 2) return Infinity;
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(a), mb = mean(b);
  const va = a.reduce((s, v) => s + (v - ma) ** 2, 0) / (a.length - 1);
  const vb = b.reduce((s, v) => s + (v - mb) ** 2, 0) / (b.length - 1);
  return (ma - mb) / Math.sqrt(va / a.length + vb / b.length);
}

export interface TStatistics {
  all: number;
  cropped: number[];
}

/** Welch's t over all samples and below the 50th, 75th and 90th percentiles of both classes together. */
export function tStatistics(times: [number[], number[]]): TStatistics {
  const sorted = [...times[0], ...times[1]].sort((x, y) => x - y);
  const cropped = [0.5, 0.75, 0.9].map((p) => {
    const limit = sorted[Math.floor(p * (sorted.length - 1))]!;
    return welch(times[0].filter((v) => v <= limit), times[1].filter((v) => v <= limit));
  });
  return { all: welch(times[0], times[1]), cropped };
}

/**
 * The class of every measurement (bit 0 of its byte: 0 fixed, 1 random; the
 * other bits are random too, for callers that pick more) and its input, made
 * before any timing so that nothing but the secret differs between the
 * classes while the clock runs. Every measurement takes its input from its
 * own slice of one pool: the classes differ in the bytes alone, not in the
 * path or the memory they came from. (A fixed class reading one small array,
 * the random class fresh slices of a large one, put cache and TLB misses and
 * a different copy routine just before the timed call on one class only:
 * about a timer tick of bias, which the fastest probes showed as cropped |t|
 * far above 4.5.)
 */
export function classInputs(samples: number, probe: Pick<Probe, 'size' | 'shape'>, fixed = 0x5a): { classes: Uint8Array; input(i: number): Uint8Array } {
  const { size } = probe;
  const shape = probe.shape ?? ((input: Uint8Array, fixedClass: boolean, byte: number) => void (fixedClass && input.fill(byte)));
  const classes = nodeCrypto.randomBytes(samples);
  const pool = nodeCrypto.randomBytes(samples * size);
  const input = (i: number) => pool.subarray(i * size, (i + 1) * size);
  for (let i = 0; i < samples; i++) shape(input(i), !(classes[i]! & 1), fixed);
  return { classes, input };
}

function measure(c: Core, probe: Probe, samples: number): TStatistics {
  const times: [number[], number[]] = [[], []];
  const { classes, input } = classInputs(samples, probe);
  for (let i = 0; i < samples; i++) {
    const run = probe.prepare(c, input(i));
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < probe.repeat; r++) run();
    times[classes[i]! & 1]!.push(Number(process.hrtime.bigint() - t0));
  }
  return tStatistics(times);
}

const BAR = 4.5;

const worst = (r: TStatistics) => Math.max(Math.abs(r.all), ...r.cropped.map(Math.abs));
const figures = (r: TStatistics) => `|t| = ${Math.abs(r.all).toFixed(2)}  cropped ${r.cropped.map((t) => Math.abs(t).toFixed(2)).join(' / ')}`;

/**
 * Runs a group's probes on each build and prints and records the figures. A
 * probe at or above the bar is measured once more with fresh samples: a
 * timing difference that comes from the code shows again, while this VM's
 * host (its speed drifts over seconds) puts single probes of unchanged code
 * above 4.5 now and then. Both runs are printed and recorded.
 */
export function runDudect(module: string, opts: BenchOptions, builds: readonly CoreBuild[], probes: (c: Core) => ProbeSet, afterBuild?: (c: Core) => void): void {
  console.log(`\n${module}: dudect-style timing check, ${opts.quick ? 'a tenth of ' : ''}each probe's measurements; Welch |t| over all samples and below the 50/75/90th percentiles; a probe at |t| >= ${BAR} is measured again`);
  let flagged = 0;
  const controlsSilent: string[] = [];
  for (const build of builds) {
    initSync({ build });
    const c = core();
    const { list, release } = probes(c);
    // The control runs whenever a probe of its list does, whatever --filter says: without it, a
    // filtered run's rows could not tell "no leak" from a measurement too coarse to show one.
    const selected = list.filter((p) => !opts.filter || opts.filter.test(p.name));
    const run = selected.some((p) => !p.name.startsWith(CONTROL)) ? list.filter((p) => selected.includes(p) || p.name.startsWith(CONTROL)) : selected;
    for (const p of run) {
      const samples = opts.quick ? Math.ceil(p.samples / 10) : p.samples;
      const first = measure(c, p, samples);
      const again = worst(first) >= BAR ? measure(c, p, samples) : undefined;
      const replicated = again !== undefined && worst(again) >= BAR;
      const verdict = !again ? 'no evidence of leakage' : replicated ? `LEAKS: |t| >= ${BAR} twice` : 'not replicated';
      const control = p.name.startsWith(CONTROL);
      if (replicated && !control) flagged++;
      if (control && !replicated) controlsSilent.push(build);
      console.log(`  ${build.padEnd(7)} ${p.name.padEnd(68)} ${samples} x ${p.repeat}  ${figures(first)}  ${again ? `again ${figures(again)}  ` : ''}${verdict}`);
      opts.finding?.(module, { build, probe: p.name, samples, repeat: p.repeat, t: first.all, cropped: first.cropped, ...(again ? { again: { t: again.all, cropped: again.cropped } } : {}), verdict });
    }
    release();
    afterBuild?.(c);
  }
  // The control must leak: where it did not, the rows above show nothing either way.
  if (controlsSilent.length) {
    console.log(`  the positive control did not leak (${controlsSilent.join(', ')}): the measurement was too coarse there, its rows prove nothing`);
    opts.finding?.(module, { controlSilent: controlsSilent });
  }
  // This VM's drift can make unchanged code flag twice in a row (docs/aes.md, Timing-leak check).
  if (flagged) console.log('  a flag on changed code: compare the old and new builds side by side, node dist/bench/dudect-ab.js old.wasm new.wasm [probe regex]');
}

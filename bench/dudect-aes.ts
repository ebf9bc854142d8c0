// A dudect-style timing-leak check (Reparaz, Balasch, Verbauwhede 2017) of
// the AES block function, the key schedule, GHASH and the serial modes'
// chains (CBC encryption, CMAC, CCM), on every core build:
// measurements of two classes of secret input (fixed vs random) are
// interleaved at random, and Welch's t statistic compares their means, on
// all samples and below several percentiles (cropping the noisy tail).
// |t| stays small (below 4.5 is the usual bar) when timing does not depend
// on the secret. A tool, not a CI gate: `senv bench --only dudect-aes`; the
// figures also go to the bench JSON under `findings`.
import nodeCrypto from 'node:crypto';
import { initSync } from '../src/index.ts';
import { core, type Core } from '../src/core/loader.ts';
import type { BenchModule } from './harness.ts';
import { AES_BUILDS } from './builds.ts';

export const REPEAT = 8; // calls per measurement, so one sample spans a few microseconds

export interface Probe {
  name: string;
  /** Bytes of secret input per measurement. */
  size: number;
  /** Installs the secret (the same work for either class) and returns the timed call. */
  prepare(c: Core, secret: Uint8Array): () => void;
}

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

/** Welch's t over all samples and below the 50th, 75th and 90th percentiles of both classes together. */
export function tStatistics(times: [number[], number[]]): { all: number; cropped: number[] } {
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
 * own slice of one pool, the fixed class's slices filled with `fixed`: the
 * classes differ in the bytes alone, not in the path or the memory they came
 * from. (A fixed class reading one small array, the random class fresh
 * slices of a large one, put cache and TLB misses and a different copy
 * routine just before the timed call on one class only: about a timer tick
 * of bias, which the fastest probes showed as cropped |t| far above 4.5.)
 */
export function classInputs(samples: number, size: number, fixed = 0x5a): { classes: Uint8Array; input(i: number): Uint8Array } {
  const classes = nodeCrypto.randomBytes(samples);
  const pool = nodeCrypto.randomBytes(samples * size);
  for (let i = 0; i < samples; i++) if (!(classes[i]! & 1)) pool.fill(fixed, i * size, (i + 1) * size);
  return { classes, input: (i) => pool.subarray(i * size, (i + 1) * size) };
}

function measure(c: Core, probe: Probe, samples: number): { all: number; cropped: number[] } {
  const times: [number[], number[]] = [[], []];
  const { classes, input } = classInputs(samples, probe.size);
  for (let i = 0; i < samples; i++) {
    const run = probe.prepare(c, input(i));
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < REPEAT; r++) run();
    times[classes[i]! & 1]!.push(Number(process.hrtime.bigint() - t0));
  }
  return tStatistics(times);
}

const KEY_AT = 1024, OUT_AT = 2048, NONCE_AT = 4096;

export function probes(c: Core): { list: Probe[]; release: () => void } {
  c.mem().fill(0x5a, c.io + KEY_AT, c.io + KEY_AT + 16);
  const fixedKey = c.x.aes_key_create(c.io + KEY_AT, 16, 0);
  const list: Probe[] = [
    {
      name: 'AES-128 8 blocks, fixed vs random plaintext', size: 128,
      prepare(c, secret) {
        c.mem().set(secret, c.io);
        return () => c.x.aes_encrypt_blocks(fixedKey, c.io, c.io + OUT_AT, 128);
      },
    },
    {
      // One block: the SIMD build's swizzle path (aes-vperm.ts).
      name: 'AES-128 one block, fixed vs random plaintext', size: 16,
      prepare(c, secret) {
        c.mem().set(secret, c.io);
        return () => c.x.aes_encrypt_blocks(fixedKey, c.io, c.io + OUT_AT, 16);
      },
    },
    {
      name: 'AES-128 decryption, fixed vs random ciphertext', size: 128,
      prepare(c, secret) {
        c.mem().set(secret, c.io);
        return () => c.x.aes_decrypt_blocks(fixedKey, c.io, c.io + OUT_AT, 128);
      },
    },
    {
      name: 'AES-128 key schedule + one block, fixed vs random key', size: 16,
      prepare(c, secret) {
        c.mem().set(secret, c.io + KEY_AT);
        return () => c.x.aes_encrypt_blocks(c.x.aes_key_create(c.io + KEY_AT, 16, 1), c.io, c.io + OUT_AT, 16);
      },
    },
    {
      // gcm_aad runs GHASH only; H = E(K, 0) comes from the secret key.
      name: 'GHASH, fixed vs random hash subkey', size: 16,
      prepare(c, secret) {
        c.mem().set(secret, c.io + KEY_AT);
        const key = c.x.aes_key_create(c.io + KEY_AT, 16, 1);
        const op = c.x.gcm_create(key, c.io + NONCE_AT, 12, 16, 0, 1);
        return () => c.x.gcm_aad(op, c.io, 512);
      },
    },
    {
      name: 'GHASH, fixed vs random input', size: 512,
      prepare(c, secret) {
        const op = c.x.gcm_create(fixedKey, c.io + NONCE_AT, 12, 16, 0, 1);
        c.mem().set(secret, c.io);
        return () => c.x.gcm_aad(op, c.io, 512);
      },
    },
    {
      // The serial modes' chain (CBC encryption, CMAC, CBC-MAC): its own one-block loop on the
      // SIMD builds (chainVperm), apart from the block function the rows above time.
      name: 'AES-128 CBC encryption chain, fixed vs random plaintext', size: 256,
      prepare(c, secret) {
        const op = c.x.cbc_create(fixedKey, c.io + NONCE_AT, 13, 0, 1);
        c.mem().set(secret, c.io);
        return () => c.x.cbc_update(op, c.io, c.io + OUT_AT, 256);
      },
    },
    {
      name: 'AES-CMAC chain, fixed vs random key', size: 16,
      prepare(c, secret) {
        c.mem().set(secret, c.io + KEY_AT);
        const op = c.x.mac_create(c.x.aes_key_create(c.io + KEY_AT, 16, 1), 49, 1);
        return () => c.x.mac_update(op, c.io, 256);
      },
    },
    {
      // CCM's two chains side by side (ccmVperm, the Relaxed SIMD build) or its batched counter mode.
      name: 'AES-128-CCM encryption, fixed vs random plaintext', size: 256,
      prepare(c, secret) {
        const op = c.x.ccm_create(fixedKey, c.io + NONCE_AT, 12, 16, 0n, BigInt(256 * REPEAT), 0, 1);
        c.mem().set(secret, c.io);
        return () => c.x.ccm_update(op, c.io, c.io + OUT_AT, 256);
      },
    },
    {
      // Positive control: an early-exit comparison must show a large |t|,
      // or the measurement is too coarse to trust the rows above.
      name: 'control: early-exit compare (should leak)', size: 64,
      prepare(_c, secret) {
        const reference = new Uint8Array(64).fill(0x5a);
        return () => {
          for (let i = 0; i < 64; i++) if (secret[i] !== reference[i]) return false;
          return true;
        };
      },
    },
  ];
  return { list, release: () => c.x.ctx_free(fixedKey) };
}

const BAR = 4.5;

const worst = (r: { all: number; cropped: number[] }) => Math.max(Math.abs(r.all), ...r.cropped.map(Math.abs));
const figures = (r: { all: number; cropped: number[] }) =>
  `|t| = ${Math.abs(r.all).toFixed(2)}  cropped ${r.cropped.map((t) => Math.abs(t).toFixed(2)).join(' / ')}`;

// A probe at or above the bar is measured once more with fresh samples: a
// timing difference that comes from the code shows again, while this VM's
// host (its speed drifts over seconds) puts single probes of unchanged code
// above 4.5 now and then. Both runs are printed and recorded.
export const dudectAesBench: BenchModule = (opts) => {
  const samples = opts.quick ? 20_000 : 200_000;
  console.log(`\ndudect-style timing check, ${samples} measurements of ${REPEAT} calls each; Welch |t| over all samples and below the 50/75/90th percentiles; a probe at |t| >= ${BAR} is measured again`);
  let flagged = 0;
  const controlsSilent: string[] = [];
  for (const build of AES_BUILDS) {
    initSync({ build });
    const c = core();
    const { list, release } = probes(c);
    for (const p of list) {
      if (opts.filter && !opts.filter.test(p.name)) continue;
      const first = measure(c, p, samples);
      const again = worst(first) >= BAR ? measure(c, p, samples) : undefined;
      const replicated = again !== undefined && worst(again) >= BAR;
      const verdict = !again ? 'no evidence of leakage' : replicated ? `LEAKS: |t| >= ${BAR} twice` : 'not replicated';
      if (replicated && !p.name.startsWith('control')) flagged++;
      if (p.name.startsWith('control') && !replicated) controlsSilent.push(build);
      console.log(`  ${build.padEnd(7)} ${p.name.padEnd(56)} ${figures(first)}  ${again ? `again ${figures(again)}  ` : ''}${verdict}`);
      opts.finding?.('dudect-aes', { build, probe: p.name, samples, t: first.all, cropped: first.cropped, ...(again ? { again: { t: again.all, cropped: again.cropped } } : {}), verdict });
    }
    release();
    c.x.aes_scratch_clear();
  }
  // The control must leak: where it did not, the rows above show nothing either way.
  if (controlsSilent.length) {
    console.log(`  the positive control did not leak (${controlsSilent.join(', ')}): the measurement was too coarse there, its rows prove nothing`);
    opts.finding?.('dudect-aes', { controlSilent: controlsSilent });
  }
  // This VM's drift can make unchanged code flag twice in a row (docs/aes.md, Timing-leak check).
  if (flagged) console.log('  a flag on changed code: compare the old and new builds side by side, node dist/bench/dudect-ab.js old.wasm new.wasm');
  return [];
};

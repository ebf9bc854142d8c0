// The dudect-style timing-leak probes of the core's ECDSA (bench/dudect.ts
// runs them): the fixed-base scalar multiplication of key generation, signing
// with a given nonce (fixed vs random, and the Minerva shape: short vs full
// length, whose leak recovers keys from a few thousand signatures) and RFC
// 6979 signing, for each curve, on every core build that differs in it.
// `senv bench --only dudect-ec`.
import { type Core } from '../src/core/loader.ts';
import { hashId } from '../src/core/hash.ts';
import type { BenchModule } from './harness.ts';
import { BUILDS } from './builds.ts';
import { runDudect, type Probe, type ProbeSet } from './dudect.ts';

const CURVES = [
  // samples: 3 to 5 s of measurements a probe in a full run (P-256 to P-521, measured: both builds in about 2 min 20 s)
  { name: 'P-256', id: 256, bytes: 32, hash: 'SHA-256', samples: 40_000 },
  { name: 'P-384', id: 384, bytes: 48, hash: 'SHA-384', samples: 20_000 },
  { name: 'P-521', id: 521, bytes: 66, hash: 'SHA-512', samples: 10_000 },
] as const;

// I/O window layout: the secret scalar, the digest, the nonce, the output, a public key, a signature.
const AT_KEY = 0, AT_DIGEST = 256, AT_K = 384, AT_OUT = 512, AT_PK = 768, AT_SIG = 1024, USED = 1280;

/** A scalar below the group order: P-256 and P-384 lose their top bit, P-521 its top seven (n is just below 2^521). */
function inRange(scalar: Uint8Array, curveBytes: number): void {
  scalar[0]! &= curveBytes === 66 ? 0x01 : 0x7f;
}

/** Fails the run where a timed call failed: the probe would time an error path instead. */
function ok(status: number): number {
  if (status < 0) throw new Error(`dudect-ec: a call failed with status ${status}`);
  return status;
}

export function probes(c: Core): ProbeSet {
  const list: Probe[] = [];
  for (const curve of CURVES) {
    const { name, id, bytes, samples } = curve;
    const hash = hashId(curve.hash);
    const run = { repeat: 1, samples };
    // The tables are built before any timing (the first call of a curve builds them).
    ok(c.x.ec_precompute(id));
    const fixedKey = new Uint8Array(bytes).fill(0x3c);
    inRange(fixedKey, bytes);
    const digest = new Uint8Array(64).fill(0xa7).subarray(0, bytes === 66 ? 64 : bytes);
    const scalar = (input: Uint8Array, fixedClass: boolean, fixed: number) => {
      if (fixedClass) input.fill(fixed);
      inRange(input, bytes);
    };
    list.push(
      {
        name: `${name} public key d*G, fixed vs random d`, size: bytes, ...run, shape: scalar,
        prepare(c, secret) {
          c.mem().set(secret, c.io + AT_KEY);
          return () => ok(c.x.ec_public_key(id, c.io + AT_KEY, c.io + AT_OUT, 0));
        },
      },
      {
        name: `${name} signing, fixed vs random nonce k`, size: bytes, ...run, shape: scalar,
        prepare(c, secret) {
          c.mem().set(fixedKey, c.io + AT_KEY);
          c.mem().set(digest, c.io + AT_DIGEST);
          c.mem().set(secret, c.io + AT_K);
          return () => ok(c.x.ec_sign_with_k(id, c.io + AT_KEY, c.io + AT_DIGEST, digest.length, c.io + AT_K, c.io + AT_OUT));
        },
      },
      {
        // Minerva (Jancar et al. 2020): signing time that follows the nonce's bit length.
        name: `${name} signing, half-length vs full-length nonce k`, size: bytes, ...run,
        shape(input, fixedClass) {
          if (fixedClass) input.fill(0, 0, bytes >> 1);
          inRange(input, bytes);
        },
        prepare(c, secret) {
          c.mem().set(fixedKey, c.io + AT_KEY);
          c.mem().set(digest, c.io + AT_DIGEST);
          c.mem().set(secret, c.io + AT_K);
          return () => ok(c.x.ec_sign_with_k(id, c.io + AT_KEY, c.io + AT_DIGEST, digest.length, c.io + AT_K, c.io + AT_OUT));
        },
      },
      {
        name: `${name} RFC 6979 signing, fixed vs random private key`, size: bytes, ...run, shape: scalar,
        prepare(c, secret) {
          c.mem().set(secret, c.io + AT_KEY);
          c.mem().set(digest, c.io + AT_DIGEST);
          return () => ok(c.x.ec_sign(id, hash, c.io + AT_KEY, c.io + AT_DIGEST, digest.length, c.io + AT_OUT, 0, c.io + AT_OUT));
        },
      },
    );
  }
  // Positive control: verification works on public data in variable time (wNAF digits, the
  // binary inversion of s), so a fixed signature against random ones must show a large |t|.
  const p256 = CURVES[0];
  c.mem().set(new Uint8Array(32).fill(0x3c), c.io + AT_KEY);
  const pkLength = ok(c.x.ec_public_key(p256.id, c.io + AT_KEY, c.io + AT_PK, 0));
  list.push({
    name: 'control: P-256 verification, fixed vs random signature (should leak)', size: 64, repeat: 1, samples: p256.samples,
    shape(input, fixedClass, fixed) {
      if (fixedClass) input.fill(fixed);
      inRange(input.subarray(0, 32), 32);
      inRange(input.subarray(32), 32);
    },
    prepare(c, secret) {
      c.mem().fill(0xa7, c.io + AT_DIGEST, c.io + AT_DIGEST + 32);
      c.mem().set(secret, c.io + AT_SIG);
      return () => ok(c.x.ec_verify(p256.id, c.io + AT_PK, pkLength, c.io + AT_DIGEST, 32, c.io + AT_SIG));
    },
  });
  // The window held private keys and nonces.
  return { list, release: () => c.mem().fill(0, c.io, c.io + USED) };
}

export const dudectEcBench: BenchModule = (opts) => {
  runDudect('dudect-ec', opts, BUILDS, probes);
  return [];
};

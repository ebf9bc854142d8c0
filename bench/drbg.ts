// randomBytes (the shared HMAC_DRBG) and HMAC_DRBG instances with SHA-256
// and SHA-512 against the runtime's CSPRNG: crypto.getRandomValues and node:crypto.
import nodeCrypto from 'node:crypto';
import { randomBytes, HmacDrbg, initSync } from '../src/index.ts';
import type { BenchGroup, BenchModule } from './harness.ts';
import { senvCases, BUILDS } from './builds.ts';

const SIZES = [32, 64 * 1024];

export const drbgBench: BenchModule = () => {
  const groups: BenchGroup[] = [];
  for (const size of SIZES) {
    groups.push({
      algorithm: 'randomBytes', size, randomized: true, valid: (r) => r instanceof Uint8Array && r.length === size, cases: [
        ...senvCases(() => randomBytes(size)),
        { impl: 'crypto.getRandomValues', fn: () => globalThis.crypto.getRandomValues(new Uint8Array(size)) },
        { impl: 'node:crypto.randomBytes', fn: () => nodeCrypto.randomBytes(size) },
      ],
    });
    for (const hash of ['SHA-256', 'SHA-512'] as const) {
      // An instance per build, created after that build is loaded.
      let drbg: HmacDrbg | undefined;
      groups.push({
        algorithm: `HMAC_DRBG ${hash} generate`, size, randomized: true, valid: (r) => r instanceof Uint8Array && r.length === size, cases: [
          ...BUILDS.map((build) => ({
            impl: `senv ${build}`,
            setup: () => {
              initSync({ build });
              drbg?.destroy();
              drbg = new HmacDrbg({ hash });
            },
            fn: () => drbg!.generate(size),
          })),
          { impl: 'crypto.getRandomValues', fn: () => globalThis.crypto.getRandomValues(new Uint8Array(size)) },
        ],
      });
    }
  }
  return groups;
};

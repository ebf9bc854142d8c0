// SHA-256/512 and HMAC-SHA-256 against node:crypto, @noble/hashes and hash-wasm,
// plus batch SHA-256 of 64-byte messages.
import nodeCrypto from 'node:crypto';
import { sha256 as nobleSha256, sha512 as nobleSha512 } from '@noble/hashes/sha2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { createSHA256, createSHA512, createHMAC } from 'hash-wasm';
import { sha256, sha512, hmac, sha256Many } from '../src/index.ts';
import type { BenchGroup, BenchModule } from './harness.ts';
import { senvCases } from './builds.ts';

const SIZES = [16, 1024, 64 * 1024, 1024 * 1024];

export const sha2Bench: BenchModule = async () => {
  const hw256 = await createSHA256();
  const hw512 = await createSHA512();
  const key = nodeCrypto.randomBytes(32);
  // hash-wasm's HMAC is keyed once here (createHMAC is asynchronous, so it cannot be made per call
  // in a synchronous case): its rows skip preparing the key's pads (a 64-byte XOR and copy; its
  // init() still runs the compressions), which the others pay on every call. Not measured.
  const hwHmac = await createHMAC(createSHA256(), key);
  const groups: BenchGroup[] = [];
  for (const size of SIZES) {
    const data = new Uint8Array(nodeCrypto.randomBytes(size));
    groups.push({
      algorithm: 'SHA-256', size, cases: [
        ...senvCases(() => sha256(data)),
        { impl: 'node:crypto', fn: () => nodeCrypto.createHash('sha256').update(data).digest() },
        { impl: 'node:crypto.hash', fn: () => nodeCrypto.hash('sha256', data, 'buffer') },
        { impl: '@noble/hashes', fn: () => nobleSha256(data) },
        { impl: 'hash-wasm', fn: () => { hw256.init(); hw256.update(data); return hw256.digest('binary'); } },
      ],
    });
    groups.push({
      algorithm: 'SHA-512', size, cases: [
        ...senvCases(() => sha512(data)),
        { impl: 'node:crypto', fn: () => nodeCrypto.createHash('sha512').update(data).digest() },
        { impl: 'node:crypto.hash', fn: () => nodeCrypto.hash('sha512', data, 'buffer') },
        { impl: '@noble/hashes', fn: () => nobleSha512(data) },
        { impl: 'hash-wasm', fn: () => { hw512.init(); hw512.update(data); return hw512.digest('binary'); } },
      ],
    });
    groups.push({
      algorithm: 'HMAC-SHA-256', size, cases: [
        ...senvCases(() => hmac('SHA-256', key, data)),
        { impl: 'node:crypto', fn: () => nodeCrypto.createHmac('sha256', key).update(data).digest() },
        { impl: '@noble/hashes', fn: () => nobleHmac(nobleSha256, key, data) },
        { impl: 'hash-wasm', fn: () => { hwHmac.init(); hwHmac.update(data); return hwHmac.digest('binary'); } },
      ],
    });
  }
  const batch = Array.from({ length: 256 }, () => new Uint8Array(nodeCrypto.randomBytes(64)));
  groups.push({
    algorithm: 'SHA-256 batch', size: 64, batch: batch.length, cases: [
      ...senvCases(() => sha256Many(batch)),
      // Each returns its list of digests, as sha256Many does, so that they are compared with senv's.
      { impl: 'node:crypto', fn: () => batch.map((m) => nodeCrypto.hash('sha256', m, 'buffer')) },
      { impl: '@noble/hashes', fn: () => batch.map((m) => nobleSha256(m)) },
      { impl: 'hash-wasm', fn: () => batch.map((m) => { hw256.init(); hw256.update(m); return hw256.digest('binary'); }) },
    ],
  });
  return groups;
};

// <hash> algorithms 4, 5, 6 (TS-0016 table 9.8-1) on the core's SHA-2.
import { createHash, hash, type HashName } from '../../core/hash.ts';
import type { DigestStream, HashAlgorithm } from '../backend.ts';
import { LazyStream } from './stream.ts';

export const HASH_NAMES: Readonly<Record<HashAlgorithm, HashName>> = { 4: 'SHA-256', 5: 'SHA-384', 6: 'SHA-512' };

export const HASH_ALGORITHMS: readonly HashAlgorithm[] = [4, 5, 6];

export function openDigest(algorithm: HashAlgorithm): DigestStream {
  const name = HASH_NAMES[algorithm];
  const s = new LazyStream(() => {
    const h = createHash(name);
    return { update: (d: Uint8Array) => void h.update(d), finish: () => h.digest(), destroy: () => h.destroy() };
  }, (data) => hash(name, data));
  return {
    update: async (data) => void s.update(data),
    final: (last) => s.finish(last),
    abort: () => s.abort(),
  };
}

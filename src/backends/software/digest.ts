// <hash> algorithms 4, 5, 6 (TS-0016 table 9.8-1) on the core's SHA-2.
import { createHash, hash } from '../../core/hash.ts';
import { HASHES, valuesOf } from '../algorithms.ts';
import { frozen } from '../../core/frozen.ts';
import type { DigestStream, HashAlgorithm } from '../backend.ts';
import { LazyStream } from './stream.ts';

export const HASH_ALGORITHMS: readonly HashAlgorithm[] = frozen(valuesOf(HASHES));

export function openDigest(algorithm: HashAlgorithm): DigestStream {
  const name = HASHES[algorithm].coreName;
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

// ECDSA signature algorithms 33, 34, 38 (TS-0016 table 9.9-1) on the core:
// the message streams into the algorithm's hash (unless the caller sends the
// digest itself), and the digest is signed or verified at the end.
import { concatBytes, secretBytes, secretCopyArg } from '../../core/bytes.ts';
import { createHash, hash } from '../../core/hash.ts';
import { ecdsa } from '../../core/ecdsa.ts';
import { type SignatureAlgorithm, type SignatureOptions, type SignatureStream } from '../backend.ts';
import { checkSignatureArg, checkSigningKey } from '../checks.ts';
import { HASHES, SIGNATURES } from '../algorithms.ts';
import { frozen } from '../../core/frozen.ts';
import type { SoftwareKey } from './keys.ts';
import { LazyStream } from './stream.ts';

export const ECDSA_ALGORITHMS: readonly SignatureAlgorithm[] = frozen([33, 34, 38]);

function curveOf(algorithm: SignatureAlgorithm) {
  const info = SIGNATURES[algorithm];
  return { curve: ecdsa(info.curve!), hashName: HASHES[info.hash!].coreName };
}

export function ecdsaKeygen(algorithm: SignatureAlgorithm): Uint8Array {
  const pair = curveOf(algorithm).curve.keygen();
  return pair.secretKey;
}

/** The uncompressed SEC1 point of a key (throws InvalidValueError for a scalar outside [1, n-1]). */
export function ecdsaPublicKey(algorithm: SignatureAlgorithm, key: SoftwareKey): Uint8Array {
  return key.kind === 'public' ? key.bytes.slice() : curveOf(algorithm).curve.getPublicKey(key.bytes);
}

export function openEcdsa(algorithm: SignatureAlgorithm, key: SoftwareKey, options: SignatureOptions): SignatureStream {
  const { curve, hashName } = curveOf(algorithm);
  const s = options.prehashed
    ? collect()
    : new LazyStream(() => {
      const h = createHash(hashName);
      return { update: (d: Uint8Array) => void h.update(d), finish: () => h.digest(), destroy: () => h.destroy() };
    }, (data) => hash(hashName, data));
  const opts = { hash: hashName, prehashed: true, format: options.format } as const;
  return {
    update: async (data) => void s.update(data),
    sign: (last) => {
      checkSigningKey(key.kind);
      return withDigest(s.finish(last), (d) => curve.sign(d, key.bytes, opts));
    },
    verify: (signature, last) => {
      const candidate = checkSignatureArg(signature);
      return withDigest(s.finish(last), (d) => curve.verify(candidate, d, ecdsaPublicKey(algorithm, key), opts));
    },
    abort: () => s.abort(),
  };
}

/** The digest (of the message, or the caller's own) used, then zeroized: it stands for the message. */
function withDigest<T>(digest: Uint8Array, use: (d: Uint8Array) => T): T {
  try {
    return use(digest);
  } finally {
    digest.fill(0);
  }
}

/** A prehashed message is the digest itself: the stream only collects it, outside the JS heap. */
function collect(): LazyStream {
  const parts: Uint8Array[] = [];
  return new LazyStream(() => ({
    update: (d: Uint8Array) => void parts.push(secretCopyArg(d, 'data')),
    finish: () => concatBytes(parts, secretBytes),
    destroy: () => parts.splice(0).forEach((p) => p.fill(0)),
  }), (data) => secretCopyArg(data, 'data'));
}

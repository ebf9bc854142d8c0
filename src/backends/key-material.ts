// What a backend checks of the key material it is given, whatever keeps the
// key: the same typed errors from the software SE and from a card, before
// anything is stored or sent.
import type { KeyKind, KeySpec } from './backend.ts';
import { InvalidInputError, InvalidValueError, LengthError, UnknownAlgorithmError } from '../core/errors.ts';
import { bytesArg, shown } from '../core/args.ts';
import { ecdsa } from '../core/ecdsa.ts';
import { CIPHERS, describeKeyLengths, keyLengthAllowed, PUBLIC_KEY_LENGTHS, SIGNATURES, type CipherInfo, type SignatureInfo } from './algorithms.ts';

/** The rules of a key's algorithm; an algorithm the SE does not know is an UnknownAlgorithmError, not a TypeError later. */
export function specInfo(spec: KeySpec): CipherInfo | SignatureInfo {
  if (typeof spec !== 'object' || spec === null) throw new InvalidInputError(`a key spec is an object { use, algorithm }, got ${shown(spec)}`);
  const { use, algorithm } = spec;
  if (use !== 'cipher' && use !== 'signature') throw new InvalidInputError(`a key's use is 'cipher' or 'signature', got ${shown(use)}`);
  const table: Readonly<Record<number, CipherInfo | SignatureInfo>> = use === 'cipher' ? CIPHERS : SIGNATURES;
  if (!Object.hasOwn(table, algorithm)) throw new UnknownAlgorithmError(`no ${use} algorithm ${shown(algorithm)}`);
  return table[algorithm]!;
}

/** Key material of the type and length the algorithm takes (a wrong one would fail only at first use, or not at all). */
export function checkMaterial(spec: KeySpec, kind: KeyKind, bytes: Uint8Array): Uint8Array {
  const info = specInfo(spec);
  const material = bytesArg(bytes, 'key material');
  if (kind !== 'secret' && kind !== 'public') throw new InvalidInputError("key kind must be 'secret' or 'public'");
  if (kind === 'public') {
    const curve = 'curve' in info ? info.curve : undefined;
    if (!curve) throw new InvalidInputError(`algorithm ${spec.algorithm} has no public key`);
    if (material.length !== PUBLIC_KEY_LENGTHS[curve]) throw new LengthError(`public key must be ${PUBLIC_KEY_LENGTHS[curve]} bytes (uncompressed SEC1 point)`);
    // Checked here like a secret scalar, not at the first verification.
    if (!ecdsa(curve).isPublicKey(material)) throw new InvalidValueError(`public key is not a point of ${curve}`);
  } else if (!keyLengthAllowed(info.keyLengths, material.length)) {
    throw new LengthError(`key for algorithm ${spec.algorithm} must be ${describeKeyLengths(info.keyLengths)}`);
  }
  return material;
}

// Secrets at rest: AES-256-GCM under the master key, a fresh 12-byte nonce
// each time and the resource ID (`<ri>/<attr>` for an appended chunk) as
// associated data, so that sealed data moved to another resource does not
// open.
import { concatBytes, secretBytes } from '../../core/bytes.ts';
import { gcm } from '../../core/gcm.ts';
import { randomBytes } from '../../core/drbg.ts';
import { AuthenticationError } from '../../core/errors.ts';
import { fromBase64, toBase64 } from '../codec.ts';

const enc = new TextEncoder();

/** One sealed chunk holding the data of `parts` in order; the plaintext copies are zeroized. */
export function joinSealed(key: Uint8Array, aad: string, parts: string[]): string {
  const plain = parts.map((p) => open(key, p, aad));
  // Outside the JS heap however short: a garbage collection that moved it would leave the plaintext behind.
  const joined = concatBytes(plain, secretBytes);
  for (const p of plain) p.fill(0);
  return wiping(joined, (bytes) => seal(key, bytes, aad));
}

export function seal(key: Uint8Array, data: Uint8Array, ri: string): string {
  const nonce = randomBytes(12);
  const ct = gcm(key, nonce, enc.encode(ri)).encrypt(data);
  return toBase64(concatBytes([nonce, ct]));
}

/**
 * `use(bytes)`, then `bytes` zeroized whether it returned or threw: for the
 * plaintext copies of secrets (keys, sealed attributes) the store makes on
 * the way to or from the disk. (The JSON text of sealed attributes is a
 * string, which no one can zeroize: its bytes are.)
 */
export function wiping<T>(bytes: Uint8Array, use: (bytes: Uint8Array) => T): T {
  try {
    return use(bytes);
  } finally {
    bytes.fill(0);
  }
}

export function open(key: Uint8Array, sealed: string, ri: string): Uint8Array {
  const b = fromBase64(sealed);
  if (!b || b.length < 28) throw new AuthenticationError('sealed record is damaged');
  return gcm(key, b.subarray(0, 12), enc.encode(ri)).decrypt(b.subarray(12));
}

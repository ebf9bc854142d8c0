// Wrappers of the software SE that break one rule of the backend contract as a
// third party's backend might (src/backends/backend.ts, docs/mcs.md "Writing a
// backend"), and the published error table: shared by the portable contract
// suite and the Node tests that need a data directory or read the docs.
import {
  AuthenticationError, DeviceFullError, InvalidValueError, LengthError, PaddingError, SoftwareBackend, StateError, UnknownAlgorithmError,
  type DigestStream, type HashAlgorithm, type KeyHandle, type SignatureAlgorithm, type SignatureOptions, type SignatureStream,
} from '../../src/index.ts';

/** Changes a software SE before an engine takes it. */
export type Patch = (b: SoftwareBackend) => void;

/** Digest streams whose final() is `final`, given the real stream to call or not. */
export function patchDigest(b: SoftwareBackend, final: (s: DigestStream, last?: Uint8Array) => unknown): void {
  const orig = b.digest.bind(b);
  b.digest = (a: HashAlgorithm) => {
    const s = orig(a) as DigestStream;
    return { update: (d) => s.update(d), final: (last) => final(s, last) as Uint8Array, abort: () => s.abort() };
  };
}

/** Signature streams with the members of `m` in place of the real ones. */
export function patchSignature(b: SoftwareBackend, m: Partial<SignatureStream>): void {
  const orig = b.signature.bind(b);
  b.signature = (a: SignatureAlgorithm, k: KeyHandle, o: SignatureOptions) => ({ ...(orig(a, k, o) as SignatureStream), ...m });
}

/** A view of `n` bytes whose buffer was transferred away: what a worker that pools its results leaves. */
export function detached(n: number): Uint8Array {
  const a = new Uint8Array(n).fill(1);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

/**
 * The error classes a backend may throw, the rsc each answers and its m2m:dbg when thrown with the
 * message 'slot 3': the table of docs/mcs.md.
 */
export const backendErrors: readonly (readonly [new (m: string) => Error, number, string])[] = [
  [AuthenticationError, 4102, 'authentication failed: tag or MAC does not verify'],
  [PaddingError, 4102, 'invalid padding'],
  [LengthError, 4102, 'slot 3'],
  [InvalidValueError, 4102, 'slot 3'],
  [StateError, 4005, 'slot 3'],
  [UnknownAlgorithmError, 5001, 'slot 3'],
  [DeviceFullError, 5207, 'not enough memory on this SE: slot 3'],
];

// The checks of a backend call's arguments that senv's own backends (the software SE and the
// PC/SC SE) run alike, so that a wrong argument fails the same way, with the same error, on
// every SE; and the unique-ID and stored-key rules the engine applies to what a backend gives.
// @internal, all of them, and not re-exported by the root: a backend author needs none, since the
// engine checks what it passes before a backend sees it (src/mcs/handed.ts).
import { InvalidInputError, LengthError } from '../core/errors.ts';
import { bytesArg, shown } from '../core/args.ts';
import { ALL_REBOOT_TYPES, REBOOT_TYPES_TEXT } from './algorithms.ts';
import type { BackendCapabilities, CipherParams, KeyKind, KeySpec, RebootType, SignatureOptions, StoredKey } from './backend.ts';

/**
 * @internal
 * A unique ID the M2M-SE-ID can carry into every address (the first segment of `to`): 1 to 64
 * characters a path segment keeps as they are.
 */
export const UNIQUE_ID = /^[A-Za-z0-9._~-]{1,64}$/;

/**
 * @internal
 * Refuses a unique ID that is not one (UNIQUE_ID).
 */
export function checkUniqueId(value: unknown, name: string): asserts value is string {
  if (!(typeof value === 'string' && UNIQUE_ID.test(value))) {
    throw new InvalidInputError(`${name} must be 1 to 64 of A-Z a-z 0-9 . _ ~ - (it is part of every address), got ${shown(value)}`);
  }
}

/** @internal random()'s length, checked alike by every backend: a whole number of bytes up to the backend's maxRandomLength. */
export function checkRandomLength(length: unknown, capabilities: BackendCapabilities): number {
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) throw new InvalidInputError(`byte count must be a non-negative integer, got ${shown(length)}`);
  if (length > capabilities.maxRandomLength) throw new LengthError(`${length} random bytes exceed this SE's largest request (${capabilities.maxRandomLength})`);
  return length;
}

/** @internal reboot()'s type, checked alike by every backend and by McsClient.reboot (TS-0016 table 9.4-1). */
export function checkRebootType(type: unknown): RebootType {
  if (!(ALL_REBOOT_TYPES as readonly unknown[]).includes(type)) throw new InvalidInputError(`rebootType must be ${REBOOT_TYPES_TEXT}; got ${shown(type)}`);
  return type as RebootType;
}

/** @internal signature()'s options, checked alike by every backend: a caller outside TypeScript may pass anything. */
export function checkSignatureOptions(options: unknown): SignatureOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidInputError(`signature options must be an object, got ${shown(options)}`);
  const { format, prehashed } = options as Record<string, unknown>;
  if (format !== 'der' && format !== 'raw') throw new InvalidInputError(`signature format must be 'der' or 'raw', got ${shown(format)}`);
  if (typeof prehashed !== 'boolean') throw new InvalidInputError(`prehashed must be a boolean, got ${shown(prehashed)}`);
  return { format, prehashed };
}

/** @internal A key serves the use and algorithm it was made for only, checked alike by every backend: an AES key does not become an HMAC key. */
export function checkKeyUse(spec: KeySpec, use: KeySpec['use'], algorithm: number): void {
  if (spec.use !== use || spec.algorithm !== algorithm) throw new InvalidInputError(`the key was made for ${spec.use} algorithm ${spec.algorithm}, not ${use} algorithm ${algorithm}`);
}

/** @internal sign() needs the secret half, checked alike by every backend before the message is taken: a public key only verifies. */
export function checkSigningKey(kind: KeyKind): void {
  if (kind !== 'secret') throw new InvalidInputError('a public key only verifies: sign() needs a secret key');
}

/** @internal verify()'s signature, checked alike by every backend before the message is taken. */
export function checkSignatureArg(signature: unknown): Uint8Array {
  return bytesArg(signature, 'signature');
}

/** @internal cipher()'s direction, checked alike by every backend: any other text would be taken for one of the two. */
export function checkDirection(direction: unknown): 'encrypt' | 'decrypt' {
  if (direction !== 'encrypt' && direction !== 'decrypt') throw new InvalidInputError(`direction must be 'encrypt' or 'decrypt', got ${shown(direction)}`);
  return direction;
}

/** @internal cipher()'s params, checked alike by every backend: an object (its members are checked by the mode). */
export function checkCipherParams(params: unknown): CipherParams {
  if (typeof params !== 'object' || params === null) throw new InvalidInputError(`cipher params must be an object ({ iv } or { nonce, aad? }), got ${shown(params)}`);
  return params as CipherParams;
}

/**
 * What is wrong with a stored key's form, as a noun phrase ('a stored key of form …'), or undefined:
 * the one rule for loadKey()'s argument and the engine's check of what storeKey gave.
 * @internal
 */
export function storedKeyFault(stored: unknown): string | undefined {
  if (typeof stored !== 'object' || stored === null) return `a stored key that is ${shown(stored)}, an object expected`;
  const { form, kind, ref } = stored as Record<string, unknown>;
  if (form !== 'material' && form !== 'reference') return `a stored key of form ${shown(form)}, 'material' or 'reference' expected`;
  if (kind !== 'secret' && kind !== 'public') return `a stored key of kind ${shown(kind)}, 'secret' or 'public' expected`;
  if (form === 'reference' && !(typeof ref === 'string' && ref !== '')) return `a stored key reference that is ${shown(ref)}, a non-empty string expected`;
  return undefined;
}

/** @internal loadKey()'s stored key, checked alike by every backend: what storeKey gives (storedKeyFault's rules). */
export function checkStoredKey(stored: unknown): StoredKey {
  const fault = storedKeyFault(stored);
  if (fault !== undefined) throw new InvalidInputError(`loadKey() takes what storeKey gave, not ${fault}`);
  return stored as StoredKey;
}

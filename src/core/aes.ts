// AES keys for the mode facades (gcm.ts, ccm.ts, cbc.ts, cmac.ts): raw key
// bytes are expanded per call into the core's one-shot slot, wiped after the
// call; an AesKey keeps its expanded schedule (and GCM's hash subkey) in the
// core for many operations.
import { core, type Core } from './loader.ts';
import { CoreContext, coreOf, isCoreContext } from './context.ts';
import { CoreError, InvalidInputError, LengthError, statusError } from './errors.ts';
import { bytesArg, isBytes, shown } from './args.ts';

/** The AES family's exports (docs/wasm-abi-aes.md). */
export interface AesExports {
  aes_key_create(key: number, keyLen: number, scratch: number): number;
  aes_key_copy(k: number): number;
  aes_scratch_clear(): void;
  aes_encrypt_blocks(k: number, src: number, dst: number, len: number): number;
  aes_decrypt_blocks(k: number, src: number, dst: number, len: number): number;
  gcm_create(k: number, nonce: number, nonceLen: number, tagLen: number, decrypt: number, scratch: number): number;
  gcm_aad(op: number, src: number, len: number): number;
  gcm_update(op: number, src: number, dst: number, len: number): number;
  gcm_final(op: number, out: number): number;
  gcm_verify(op: number, tag: number): number;
  ccm_create(k: number, nonce: number, nonceLen: number, tagLen: number, aadLen: bigint, msgLen: bigint, decrypt: number, scratch: number): number;
  ccm_aad(op: number, src: number, len: number): number;
  ccm_update(op: number, src: number, dst: number, len: number): number;
  ccm_final(op: number, out: number): number;
  ccm_verify(op: number, tag: number): number;
  cbc_create(k: number, iv: number, padding: number, decrypt: number, scratch: number): number;
  cbc_update(op: number, src: number, dst: number, len: number): number;
  cbc_final(op: number, dst: number): number;
  mac_create(k: number, alg: number, scratch: number): number;
  mac_update(op: number, src: number, len: number): number;
  mac_final(op: number, out: number): number;
}

/** Input chunk of the streaming loops: half the I/O window, output goes to the other half. */
export const CHUNK = 32768 - 16;

/** Longest nonce accepted (it passes through the input half of the I/O window). */
export const MAX_NONCE = CHUNK;

/** Key bytes as the plain view bytesArg makes (it sees later writes to the caller's array), 16 or 32 bytes long. */
function keyBytes(key: unknown): Uint8Array {
  const k = bytesArg(key, 'key');
  if (k.length !== 16 && k.length !== 32) throw new LengthError(`AES key must be 16 or 32 bytes, got ${k.length}`);
  return k;
}

/** An expanded AES key kept in the core, for many operations under one key. */
// The facade's own access to a key: the context handle, its core, a private
// copy for a stream and the constructor stay off the public surface, so no
// caller can wrap a handle it does not own (a freed or another's context).
const MADE_HERE = Symbol('AesKey');
let internals!: {
  make(handle: number, keyLength: number, c: Core): AesKey;
  handle(k: AesKey): number;
};

/** An expanded AES key in the core's memory (from aesKey()); `destroy()` zeroizes and frees it. */
export class AesKey extends CoreContext {
  /** Length of the key it was expanded from, in bytes: 16 or 32. */
  readonly keyLength: number;

  private constructor(token: symbol, handle: number, keyLength: number, c: Core) {
    // `private` binds TypeScript callers only: a JavaScript caller without the token gets nothing.
    if (token !== MADE_HERE) throw new InvalidInputError('AesKey: use aesKey(bytes)');
    super(handle, 'AES key', c);
    this.keyLength = keyLength;
  }

  static {
    internals = {
      make: (handle, keyLength, c) => new AesKey(MADE_HERE, handle, keyLength, c),
      handle: (k) => k.live(),
    };
  }
}

/** The key context handle of a live AesKey (StateError once destroyed). */
export const keyHandle = (k: AesKey): number => internals.handle(k);

/** The core an AesKey lives in. */
export const keyCore: (k: AesKey) => Core = coreOf;

/** A private copy of an AesKey for a streaming operation that may outlive it. */
function copyKey(k: AesKey): AesKey {
  const c = keyCore(k);
  const h = c.x.aes_key_copy(keyHandle(k));
  if (h === 0) throw new CoreError('AES key: copy failed');
  return internals.make(h, k.keyLength, c);
}

/** Expands `key` (16 or 32 bytes) once; pass the result wherever a key is taken. */
export function aesKey(key: Uint8Array): AesKey {
  const k = keyBytes(key);
  const c = core();
  return internals.make(expand(c, k, 0), k.length, c);
}

/** An AES key: its bytes (16 or 32) or an AesKey expanded from them. */
export type KeyInput = Uint8Array | AesKey;

/** `key` checked: a live AesKey as it is, key bytes as keyBytes() views them. */
export function checkKeyInput(key: KeyInput): KeyInput {
  // The private brand first: `instanceof` runs a Proxy's getPrototypeOf trap, whose own error would escape.
  if (isCoreContext(key) && key instanceof AesKey) {
    keyHandle(key);
    return key;
  }
  // Bytes, or a typed refusal (an object made from AesKey.prototype by another hand has none of a key's private state).
  if (isBytes(key)) return keyBytes(key);
  throw new InvalidInputError(`key must be a Uint8Array or an AesKey from aesKey(), got ${shown(key)}`);
}

// gcm(), ccm() and cbc() objects hold keyBytes()'s view of the caller's array
// and read it when each operation starts (docs/aes.md), by which time it may
// have been detached: its length is all that can have changed.
function expand(c: Core, key: Uint8Array, scratch: number): number {
  if (key.length !== 16 && key.length !== 32) keyBytes(key);
  const ptr = c.io + c.ioSize - 32;
  c.mem().set(key, ptr);
  let k: number;
  try {
    k = c.x.aes_key_create(ptr, key.length, scratch);
  } finally {
    // Also when the core traps (no memory left for the key context).
    c.x.zeroize(ptr, 32);
  }
  if (k === 0) throw new CoreError('AES key: expansion failed');
  return k;
}

/**
 * Runs fn with a key context for a one-shot call: an AesKey's own, or the
 * raw key expanded into the one-shot slot. The slot and the static
 * operation context are wiped afterwards, whatever happened.
 */
export function withKey<T>(key: KeyInput, fn: (c: Core, k: number) => T): T {
  if (key instanceof AesKey) {
    const c = keyCore(key);
    try {
      return fn(c, keyHandle(key));
    } finally {
      c.x.aes_scratch_clear();
      wipeIo(c);
    }
  }
  const c = core();
  try {
    return fn(c, expand(c, key, 1));
  } finally {
    c.x.aes_scratch_clear();
    wipeIo(c);
  }
}

/** A heap key context owned by a streaming operation (freed with it). */
export function ownedKey(key: KeyInput): AesKey {
  if (key instanceof AesKey) return copyKey(key);
  return aesKey(key);
}

/**
 * A streaming operation's context, made by `make` under a private copy of
 * `key`: when making it fails (the core's memory full after the copy fit, a
 * parameter refused), the copy is released at once, not left, key schedule
 * and all, to the garbage collector. The I/O window (nonce, IV, associated
 * data) is wiped either way.
 */
export function underOwnedKey(key: KeyInput, make: (c: Core, k: number) => number): { k: AesKey; op: number } {
  const k = ownedKey(key);
  const c = keyCore(k);
  try {
    const op = make(c, keyHandle(k));
    // 0: the core refused what the facade checked already (a check missed): typed, and the key copy goes.
    if (op === 0) throw new CoreError('the core refused to create the operation context');
    return { k, op };
  } catch (e) {
    k.destroy();
    throw e;
  } finally {
    wipeIo(c);
  }
}

/** Throws the typed error for a negative status. */
export function check(status: number, what: string): number {
  if (status < 0) throw statusError(status, what);
  return status;
}

/** Copies a nonce or IV to the I/O window; it is consumed when the operation is created. */
export function param(c: Core, bytes: Uint8Array): number {
  return input(c, bytes);
}

// How much of each half of the I/O window holds data since the last wipe.
let ioUsed = 0;

/** Copies up to CHUNK bytes to the input half of the I/O window. */
export function input(c: Core, data: Uint8Array): number {
  c.mem().set(data, c.io);
  ioUsed = Math.max(ioUsed, data.length);
  return c.io;
}

/** Feeds `data` through the input half of the I/O window in chunks. */
export function pump(c: Core, data: Uint8Array, step: (ptr: number, len: number) => void): void {
  if (data.length <= CHUNK) {
    if (data.length) step(input(c, data), data.length);
    return;
  }
  for (let off = 0; off < data.length; off += CHUNK) {
    const n = Math.min(CHUNK, data.length - off);
    step(input(c, data.subarray(off, off + n)), n);
  }
}

/**
 * Zeroizes what plaintext, keystream or parameters the I/O window received,
 * and the output half as far: with no input at all (a MAC over empty data)
 * a call still wrote its 16-byte tag or block there.
 */
export function wipeIo(c: Core): void {
  if (ioUsed) c.x.zeroize(c.io, ioUsed);
  c.x.zeroize(outPtr(c), Math.min(ioUsed + 16, 32768));
  ioUsed = 0;
}

/** Copies `n` bytes of output from the output half of the I/O window into `dst` at `at`. */
export function copyOutput(c: Core, n: number, dst: Uint8Array, at: number): void {
  dst.set(c.mem().subarray(outPtr(c), outPtr(c) + n), at);
}

/** Output half of the I/O window. */
export function outPtr(c: Core): number {
  return c.io + 32768;
}

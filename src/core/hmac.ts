// HMAC over SHA-256/384/512: one-shot and streaming (a keyed context that can
// be reused for many messages without redoing the key schedule).
import type { Bytes } from './bytes.ts';
import { core } from './loader.ts';
import { CoreContext, coreOf, takeOutput, type Destroyable } from './context.ts';
import { statusError } from './errors.ts';
import { bytesArg } from './args.ts';
import { secretDigest, hashId, DIGEST_LENGTHS, BLOCK_LENGTHS, type HashName } from './hash.ts';

/**
 * Writes `key` to the end of the I/O window and runs `fn(ptr, len)`. A key longer than the hash's
 * block is its digest (RFC 2104): one that does not fit beside `reserved` bytes is hashed first,
 * through the window; so any key fits, and none needs a block of the core (whose blocks stop at
 * 256 MiB). hmac() reserves room only for data that fits the window with the key.
 */
function withKey<T>(name: HashName, key: Uint8Array, reserved: number, fn: (ptr: number, len: number) => T): T {
  const c = core();
  if (key.length + reserved > c.ioSize) {
    const digest = secretDigest(name, key);
    try {
      return withKey(name, digest, 0, fn);
    } finally {
      digest.fill(0);
    }
  }
  const ptr = c.io + c.ioSize - key.length;
  c.mem().set(key, ptr);
  try {
    return fn(ptr, key.length);
  } finally {
    c.x.zeroize(ptr, key.length);
  }
}

/**
 * HMAC (RFC 2104) of `message` under `keyBytes` (any length), with `hash`: as many bytes as its digest.
 * The key comes first, as in node:crypto's createHmac. Compare the result with constantTimeEqual.
 * @throws UnknownAlgorithmError for an unknown hash; InvalidInputError when the key or message is not a Uint8Array.
 */
export function hmac(hash: HashName, keyBytes: Uint8Array, message: Uint8Array): Bytes {
  const id = hashId(hash);
  const key = bytesArg(keyBytes, 'key');
  const data = bytesArg(message, 'data');
  const c = core();
  const dl = DIGEST_LENGTHS[hash];
  if (data.length + key.length <= c.ioSize) {
    return withKey(hash, key, data.length, (k, kl) => {
      c.mem().set(data, c.io);
      c.x.hmac_oneshot(id, k, kl, c.io, data.length, c.io);
      return takeOutput(c, c.io, dl, Math.max(dl, data.length));
    });
  }
  return createHmac(hash, key).update(data).digest();
}

/** A streaming HMAC: update() as often as needed, then digest() once. */
export interface Hmac extends Destroyable {
  /** Length of the MAC in bytes: the hash's digest, 32, 48 or 64. */
  readonly outputLen: number;
  /** Length of the hash's block in bytes: 64 (SHA-256) or 128. */
  readonly blockLen: number;
  /**
   * Absorbs `data`; returns the object, for chaining.
   * @throws InvalidInputError when `data` is not a Uint8Array; StateError after digest() or destroy().
   */
  update(data: Uint8Array): this;
  /**
   * The MAC of everything absorbed; the state (and the key in it) is zeroized and the object finished.
   * @throws StateError when called again, or after destroy().
   */
  digest(): Bytes;
  /** Zeroizes the state (and the key in it) without producing a MAC. */
  destroy(): void;
}

class HmacContext extends CoreContext implements Hmac {
  readonly outputLen: number;
  readonly blockLen: number;

  constructor(hash: HashName, keyBytes: Uint8Array) {
    const id = hashId(hash);
    const key = bytesArg(keyBytes, 'key');
    const c = core();
    super(withKey(hash, key, 0, (k, kl) => c.x.hmac_create(id, k, kl)), 'hmac', c);
    this.outputLen = DIGEST_LENGTHS[hash];
    this.blockLen = BLOCK_LENGTHS[hash];
  }

  update(data: Uint8Array): this {
    const x = coreOf(this).x;
    this.feed(data, (ctx, p, n) => x.hmac_update(ctx, p, n));
    return this;
  }

  digest(): Bytes {
    return this.#finish(false);
  }

  /** The MAC of `data` in secretBytes memory: a key derived from `key` (the journal's MAC key). */
  static secretMac(hash: HashName, key: Uint8Array, data: Uint8Array): Bytes {
    return new HmacContext(hash, key).update(data).#finish(true);
  }

  #finish(secret: boolean): Bytes {
    const ctx = this.live();
    const c = coreOf(this);
    const status = c.x.hmac_final(ctx, c.io);
    if (status < 0) throw statusError(status, 'hmac');
    const out = takeOutput(c, c.io, this.outputLen, this.outputLen, secret);
    this.destroy();
    return out;
  }
}

export const secretHmac = (hash: HashName, key: Uint8Array, data: Uint8Array): Bytes => HmacContext.secretMac(hash, key, data);

/**
 * A streaming HMAC with `hash` under `key` (any length).
 * @throws UnknownAlgorithmError for an unknown hash; InvalidInputError when the key is not a Uint8Array.
 */
export function createHmac(hash: HashName, key: Uint8Array): Hmac {
  return new HmacContext(hash, key);
}

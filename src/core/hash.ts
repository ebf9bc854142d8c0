// SHA-256, SHA-384 and SHA-512: one-shot, streaming and batch forms.
import { core } from './loader.ts';
import type { Bytes } from './bytes.ts';
import { CoreContext, coreOf, takeOutput, type Destroyable } from './context.ts';
import { InvalidInputError, statusError, UnknownAlgorithmError } from './errors.ts';
import { assertBytes, bytesArg, fixedBytes, isArraySafe, isBytes, slotLength, shown } from './args.ts';

/** The hashes senv offers (SHA-2, FIPS 180-4). */
export type HashName = 'SHA-256' | 'SHA-384' | 'SHA-512';

/** Core algorithm ids: TS-0016 table 9.8-1 (Java Card) values. */
const HASH_IDS: Readonly<Record<HashName, number>> = Object.freeze({ 'SHA-256': 4, 'SHA-384': 5, 'SHA-512': 6 });
export const DIGEST_LENGTHS: Readonly<Record<HashName, number>> = Object.freeze({ 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 });
export const BLOCK_LENGTHS: Readonly<Record<HashName, number>> = Object.freeze({ 'SHA-256': 64, 'SHA-384': 128, 'SHA-512': 128 });

/** Validates a hash name and returns its core id. */
export function hashId(hash: unknown): number {
  const id = typeof hash === 'string' ? HASH_IDS[hash as HashName] : undefined;
  if (id === undefined || !Object.hasOwn(HASH_IDS, hash as string)) {
    throw new UnknownAlgorithmError(`unknown hash (got ${shown(hash)}): expected one of ${Object.keys(HASH_IDS).join(', ')}`);
  }
  return id;
}

function oneshot(name: HashName, input: Uint8Array): Bytes {
  const id = hashId(name), dl = DIGEST_LENGTHS[name];
  const data = bytesArg(input, 'data');
  const c = core();
  if (data.length <= c.ioSize) {
    c.mem().set(data, c.io);
    c.x.hash_oneshot(id, c.io, data.length, c.io);
    return takeOutput(c, c.io, dl, Math.max(dl, data.length));
  }
  return new HashContext(name).update(data).digest();
}

/**
 * The 32-byte SHA-256 digest of `data`.
 * @throws InvalidInputError when `data` is not a Uint8Array.
 */
export function sha256(data: Uint8Array): Bytes {
  return oneshot('SHA-256', data);
}

/**
 * The 48-byte SHA-384 digest of `data`.
 * @throws InvalidInputError when `data` is not a Uint8Array.
 */
export function sha384(data: Uint8Array): Bytes {
  return oneshot('SHA-384', data);
}

/**
 * The 64-byte SHA-512 digest of `data`.
 * @throws InvalidInputError when `data` is not a Uint8Array.
 */
export function sha512(data: Uint8Array): Bytes {
  return oneshot('SHA-512', data);
}

/** One-shot digest with the hash named at run time. */
export function hash(name: HashName, data: Uint8Array): Bytes {
  return oneshot(name, data);
}

/** A streaming hash: update() as often as needed, then digest() once. */
export interface Hash extends Destroyable {
  /** Length of the digest in bytes: 32, 48 or 64. */
  readonly outputLen: number;
  /** Length of the hash's block in bytes: 64 (SHA-256) or 128. */
  readonly blockLen: number;
  /**
   * Absorbs `data`; returns the object, for chaining.
   * @throws InvalidInputError when `data` is not a Uint8Array; StateError after digest() or destroy().
   */
  update(data: Uint8Array): this;
  /**
   * The digest of everything absorbed; the state is zeroized and the object finished.
   * @throws StateError when called again, or after destroy().
   */
  digest(): Bytes;
  /** Zeroizes the state without producing a digest. */
  destroy(): void;
}

class HashContext extends CoreContext implements Hash {
  readonly outputLen: number;
  readonly blockLen: number;

  constructor(name: HashName) {
    const c = core();
    super(c.x.hash_create(hashId(name)), 'hash', c);
    this.outputLen = DIGEST_LENGTHS[name];
    this.blockLen = BLOCK_LENGTHS[name];
  }

  update(data: Uint8Array): this {
    const x = coreOf(this).x;
    this.feed(data, (ctx, p, n) => x.hash_update(ctx, p, n));
    return this;
  }

  digest(): Bytes {
    return this.#finish(false);
  }

  /** The digest of `data` in secretBytes memory: a long HMAC key's, which stands for the key. */
  static secretDigest(name: HashName, data: Uint8Array): Bytes {
    return new HashContext(name).update(data).#finish(true);
  }

  #finish(secret: boolean): Bytes {
    const ctx = this.live();
    const c = coreOf(this);
    const status = c.x.hash_final(ctx, c.io);
    if (status < 0) throw statusError(status, 'hash');
    const out = takeOutput(c, c.io, this.outputLen, this.outputLen, secret);
    this.destroy();
    return out;
  }
}

export const secretDigest = (name: HashName, data: Uint8Array): Bytes => HashContext.secretDigest(name, data);

/**
 * A streaming hash of `name`.
 * @throws UnknownAlgorithmError for a name other than 'SHA-256', 'SHA-384' or 'SHA-512'.
 */
export function createHash(name: HashName): Hash {
  return new HashContext(name);
}

/**
 * Hashes many independent messages in one call into the core. The SIMD build
 * runs four equal-length SHA-256 messages per step; other hashes and mixed
 * lengths are still one crossing per window-full of messages.
 */
export function hashMany(name: HashName, list: readonly Uint8Array[]): Bytes[] {
  const id = hashId(name);
  const dl = DIGEST_LENGTHS[name];
  if (!isArraySafe(list)) throw new InvalidInputError('messages must be an array of Uint8Array');
  // Each element read once by index, and all of them before any is measured (a getter of the list is
  // caller code that could resize a buffer): what is packed is what was measured.
  // Read once and not converted: a length object's valueOf would be caller code run at every use.
  const total: unknown = list.length;
  if (!Number.isSafeInteger(total) || (total as number) < 0) throw new InvalidInputError('messages must be an array of Uint8Array');
  const messages: Uint8Array[] = [];
  for (let k = 0; k < (total as number); k++) {
    const m = list[k];
    if (!isBytes(m)) assertBytes(m, `messages[${k}]`);
    messages.push(m);
  }
  const lengths: number[] = new Array(messages.length);
  for (let k = 0; k < messages.length; k++) {
    messages[k] = fixedBytes(messages[k], () => `messages[${k}]`);
    lengths[k] = slotLength(messages[k]!);
  }
  const c = core();
  // Each digest its own array, taken straight from the core (at most 64 bytes, on V8's heap: a slice
  // cost 0.05 us against 0.04 us for a view), so no result's .buffer exposes the others.
  const result: Bytes[] = new Array(messages.length);
  let i = 0;
  while (i < messages.length) {
    // Pack as many messages as fit in the window: [offsets (count + 1) u32][data] ... [digests] at its end.
    let count = 0, bytes = 0;
    while (i + count < messages.length) {
      const need = 4 * (count + 2) + bytes + lengths[i + count]! + (count + 1) * dl;
      if (need > c.ioSize) break;
      bytes += lengths[i + count]!;
      count++;
    }
    if (count === 0) {
      result[i] = oneshot(name, messages[i]!);
      i++;
      continue;
    }
    const mem = c.mem();
    const offsets = new Uint32Array(mem.buffer, c.io, count + 1);
    const data = c.io + 4 * (count + 1);
    const dst = c.io + c.ioSize - count * dl;
    let status: number;
    try {
      let pos = 0;
      for (let k = 0; k < count; k++) {
        offsets[k] = pos;
        mem.set(messages[i + k]!, data + pos);
        pos += lengths[i + k]!;
      }
      offsets[count] = pos;
      status = c.x.hash_many(id, data, c.io, count, dst);
    } finally {
      c.x.zeroize(c.io, data - c.io + bytes);
    }
    if (status < 0) throw statusError(status, 'hashMany');
    for (let k = 0; k < count; k++) result[i + k] = c.read(dst + k * dl, dl);
    c.x.zeroize(dst, count * dl);
    i += count;
  }
  return result;
}

/** `hashMany('SHA-256', messages)`: the 32-byte digest of each message, in order, each an array of its own. */
export function sha256Many(messages: readonly Uint8Array[]): Bytes[] {
  return hashMany('SHA-256', messages);
}

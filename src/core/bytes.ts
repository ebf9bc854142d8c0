// Byte-array helpers shared by every layer.
import { assertBytes, bytesArg, slotLength, stillReadable, unreadableView } from './args.ts';

/**
 * A fresh array senv hands out: over an ArrayBuffer of its own, never shared
 * memory. Spelt through slice() so that one declaration reads on every
 * TypeScript the README names: 5.7 and later, where Uint8Array is generic,
 * see a Uint8Array over ArrayBuffer (which the DOM's BufferSource and
 * BlobPart take, and a plain Uint8Array, over ArrayBuffer or
 * SharedArrayBuffer, is not); 5.4 sees Uint8Array.
 */
export type Bytes = ReturnType<Uint8Array['slice']>;

/**
 * The one empty array, for defaults and results that stay inside senv (in a
 * micro-benchmark V8 11 took about 0.2 µs to create a zero-length typed
 * array, as long as a 1 KiB copy). Never handed to a caller: one that
 * transferred it to a worker would detach it for every module.
 */
// Typed, not inferred: the inferred type would be declared generic, which TypeScript 5.4 cannot read.
export const EMPTY: Bytes = new Uint8Array(0);

/**
 * A zeroed array for secret bytes (keys), its memory outside the JS heap: V8
 * keeps an array of up to 64 bytes made with `new Uint8Array(n)` inside its
 * heap, and a garbage collection that moves it leaves the old bytes behind
 * where zeroization cannot reach them (a review found key images so).
 */
export function secretBytes(n: number): Bytes {
  return new Uint8Array(new ArrayBuffer(n));
}

/** A private copy of secret bytes in memory secretBytes gives. */
export function secretCopy(src: Uint8Array): Bytes {
  const out = secretBytes(src.length);
  out.set(src);
  return out;
}

/**
 * Secret bytes appended piece by piece: one secretBytes array that doubles when
 * full (the outgrown one zeroized), so that a stream fed a byte at a time holds
 * about the message's size rather than an array (and its bookkeeping) per piece.
 */
export class SecretBuffer {
  #buf: Bytes = EMPTY;
  #n = 0;

  get length(): number {
    return this.#n;
  }

  /** The next `n` bytes of the buffer, counted as held, for the caller to write. */
  reserve(n: number): Uint8Array {
    const need = this.#n + n;
    if (need > this.#buf.length) {
      const grown = secretBytes(this.#buf.length === 0 ? need : Math.max(need, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#n));
      this.#buf.fill(0);
      this.#buf = grown;
    }
    const view = this.#buf.subarray(this.#n, need);
    this.#n = need;
    return view;
  }

  append(data: Uint8Array): void {
    this.reserve(data.length).set(data);
  }

  /** Everything held, in an array of its own of exactly that length (secretBytes memory); the buffer is emptied. */
  take(): Bytes {
    // Never EMPTY itself (see written()).
    const out = this.#buf.length === this.#n && this.#buf !== EMPTY ? this.#buf : secretCopy(this.#buf.subarray(0, this.#n));
    if (out !== this.#buf) this.#buf.fill(0);
    this.#buf = EMPTY;
    this.#n = 0;
    return out;
  }

  /** Zeroizes what is held and empties the buffer. */
  wipe(): void {
    this.#buf.fill(0);
    this.#buf = EMPTY;
    this.#n = 0;
  }
}

/**
 * A private copy of a caller's Uint8Array that may be secret (a key, a
 * message, a command carrying either), in memory secretBytes gives: never
 * inside the JS heap, where a small array's bytes stay behind when V8 moves
 * it. Its length is read from the typed-array slot and its bytes by
 * TypedArray.prototype.set, neither of which reads the source's `buffer`:
 * that read alone moves a small array out of the heap and leaves its bytes
 * behind (bytesArg's view would, for the caller's own array).
 */
export function secretCopyArg(value: unknown, name: string): Bytes {
  assertBytes(value, name);
  const out = secretBytes(slotLength(value));
  try {
    out.set(value);
  } catch {
    throw unreadableView(value, name);
  }
  // A fixed-length view its resizable buffer shrank below measures 0: refused, not read as no data.
  if (out.length === 0) stillReadable(value, name);
  return out;
}

/**
 * A private copy of a caller's Uint8Array (EMPTY for EMPTY), made by the
 * constructor, which reads the source's internal slots: a Buffer's slice()
 * would be a view, and a subclass could lie about its length (see bytesArg).
 */
export function copyArg(value: unknown, name: string): Uint8Array {
  if (value === EMPTY) return EMPTY;
  assertBytes(value, name);
  try {
    return new Uint8Array(value);
  } catch {
    throw unreadableView(value, name);
  }
}

/** Lowercase hex of `b` (identifiers, serials, stamps: never secret bytes, which no message may show). */
export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Concatenates `parts` into a new array (`alloc`'s: secretBytes for secret parts). */
export function concatBytes(parts: readonly Uint8Array[], alloc: (n: number) => Uint8Array = (n) => new Uint8Array(n)): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = alloc(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Where a streaming call writes up to `max` bytes of output: the caller's
 * `into` when it has room for them (no allocation), else a new array
 * (secretBytes memory for plaintext).
 */
export function outputTarget(into: Uint8Array | undefined, max: number, secret = false): Uint8Array {
  const made = () => (secret ? secretBytes(max) : new Uint8Array(max));
  if (into === undefined) return made();
  const target = bytesArg(into, 'into');
  return target.length >= max ? target : made();
}

/** Whether a streaming call wrote `result` into `into` (from its start) rather than a new array. */
export function wroteInto(result: Uint8Array, into: Uint8Array | undefined): boolean {
  return into !== undefined && result.buffer === into.buffer && result.byteOffset === into.byteOffset;
}

/**
 * The first `n` bytes written to `target` (a caller's `into`, or an array of
 * the call's own): never EMPTY, even for nothing, since a caller that
 * transfers a result would detach the empty array every module shares.
 */
export function written(target: Bytes, n: number): Bytes;
export function written(target: Uint8Array, n: number): Uint8Array;
export function written(target: Uint8Array, n: number): Uint8Array {
  return n === target.length ? target : target.subarray(0, n);
}

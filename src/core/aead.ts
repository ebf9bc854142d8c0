// The AEAD driver shared by GCM and CCM: one-shot encrypt/decrypt and the
// streaming objects, over a mode's five core calls. Decryption never
// releases plaintext before the tag verified: the one-shot form wipes its
// output on failure, the streaming form holds everything until final().
import { concatBytes, EMPTY, outputTarget, SecretBuffer, written, type Bytes } from './bytes.ts';
import type { Core } from './loader.ts';
import { CoreContext, coreOf, takeOutput, type Destroyable } from './context.ts';
import { AuthenticationError, LengthError, StateError } from './errors.ts';
import { bytesArg } from './args.ts';
import { withKey, ownedKey, underOwnedKey, keyCore, check, copyOutput, input, pump, outPtr, wipeIo, CHUNK, type AesKey, type KeyInput } from './aes.ts';

/** What a mode supplies to the driver; lengths are known when create() runs. */
export interface AeadMode {
  readonly name: string;
  readonly tagLength: number;
  /** CCM: the payload length must be declared before any data. */
  readonly needsLength: boolean;
  /** CCM: the longest payload its nonce allows, and the error naming a longer one (a collecting stream refuses it as it arrives). */
  readonly maxMessage?: number;
  tooLong?(msgLen: number): Error;
  create(c: Core, k: number, decrypt: boolean, scratch: boolean, msgLen: number): number;
  aad(c: Core, op: number, src: number, len: number): number;
  update(c: Core, op: number, src: number, dst: number, len: number): number;
  final(c: Core, op: number, out: number): number;
  verify(c: Core, op: number, tag: number): number;
}

/** An AEAD under one key, nonce and associated data (from gcm() or ccm()): one-shot and streaming, either direction. */
export interface Aead {
  /** Length of the tag in bytes (16 unless `tagLength` was given). */
  readonly tagLength: number;
  /** Returns ciphertext followed by the tag. */
  encrypt(plaintext: Uint8Array): Bytes;
  /** Takes ciphertext followed by the tag; throws AuthenticationError (and releases nothing) when the tag is wrong. */
  decrypt(ciphertext: Uint8Array): Bytes;
  /** Streaming encryption: update() returns ciphertext as it is produced, final() the rest and the tag. */
  encryptStream(): AeadEncryptStream;
  /** Streaming decryption: update() only absorbs; final() verifies the tag, then returns all plaintext. */
  decryptStream(): AeadDecryptStream;
}

/**
 * `into` (optional, on the calls that return output as it is produced: an
 * encryption stream's update and a decryption stream's final; the encryption
 * stream's final, which returns the tag, takes none): an array the output is
 * written to, from its start, when it has room for it; the result is then a
 * view of `into` and nothing is allocated. Without `into` the result is an
 * array of its own (Bytes); with it, a view of `into` or, where `into` was too
 * short, an array of its own, so typed as the caller's Uint8Array.
 */
export interface AeadEncryptStream extends Destroyable {
  /**
   * The ciphertext of `plaintext`, as long as it (CCM without `messageLength`: empty, all comes from final()).
   * @throws StateError after final() or destroy(); LengthError beyond the mode's or the declared length.
   */
  update(plaintext: Uint8Array): Bytes;
  /** update() writing into `into` when it has plaintext.length bytes: a view of it, else an array of its own. */
  update(plaintext: Uint8Array, into?: Uint8Array): Uint8Array;
  /** The ciphertext not yet returned followed by the tag; the stream is finished (StateError afterwards). */
  final(): Bytes;
  /** Zeroizes the stream's state and key copy without finishing; further use throws StateError. */
  destroy(): void;
}

/** An AEAD decryption stream: update() absorbs, final() verifies the tag and only then returns the plaintext. */
export interface AeadDecryptStream extends Destroyable {
  /**
   * Absorbs `ciphertext` (the tag is its last bytes); returns the stream, for chaining, and no plaintext.
   * @throws StateError after final() or destroy(); LengthError beyond the mode's or the declared length.
   */
  update(ciphertext: Uint8Array): this;
  /**
   * All plaintext, once the tag verified; the stream is finished (StateError afterwards).
   * @throws AuthenticationError when the tag is wrong (nothing released; the stream is ended and zeroized);
   * LengthError when less than the tag (or than `messageLength`) arrived, and more may follow.
   */
  final(): Bytes;
  /** final() writing the plaintext into `into` when it has room for all of it: a view of it, else an array of its own. */
  final(into?: Uint8Array): Uint8Array;
  /** Zeroizes the stream's state, key copy and the plaintext it held; further use throws StateError. */
  destroy(): void;
}

function absorbAad(c: Core, mode: AeadMode, op: number, aad: Uint8Array): void {
  pump(c, aad, (p, n) => check(mode.aad(c, op, p, n), mode.name));
}

/** Runs `data` through the mode, writing its output (as long as the input) to `out`. */
function transform(c: Core, mode: AeadMode, op: number, data: Uint8Array, out: Uint8Array): void {
  let off = 0;
  pump(c, data, (p, n) => {
    check(mode.update(c, op, p, outPtr(c), n), mode.name);
    copyOutput(c, n, out, off);
    off += n;
  });
}

/** The refusal of a decryption given less than a tag (a card's SE says it in the same words). */
export function shorterThanTag(mode: Pick<AeadMode, 'name' | 'tagLength'>, n: number): LengthError {
  return new LengthError(`${mode.name}: input of ${n} bytes is shorter than the ${mode.tagLength}-byte tag`);
}

/** Checks the tag at `tagPtr` in the core; on failure wipes `plaintext` and throws. */
function verified(c: Core, mode: AeadMode, op: number, tagPtr: number, plaintext: Uint8Array[]): void {
  const status = mode.verify(c, op, tagPtr);
  if (status < 0) {
    for (const p of plaintext) p.fill(0);
    if (status === -5) throw new AuthenticationError(`${mode.name}: authentication failed (wrong key, nonce, associated data, ciphertext or tag)`);
    check(status, mode.name);
  }
}

// A message of up to CHUNK bytes takes one pass through the I/O window: its
// output and tag land side by side in the output half and leave it in one
// slice (no zero-filled array, no views: each costs about as much as
// encrypting a few hundred bytes).
function oneShotEncrypt(mode: AeadMode, key: KeyInput, aad: Uint8Array, data: Uint8Array): Bytes {
  data = bytesArg(data, 'plaintext');
  return withKey(key, (c, k) => {
    const n = data.length, out = outPtr(c);
    const op = mode.create(c, k, false, true, n);
    absorbAad(c, mode, op, aad);
    if (n > CHUNK) {
      const result = new Uint8Array(n + mode.tagLength);
      transform(c, mode, op, data, result);
      check(mode.final(c, op, out), mode.name);
      copyOutput(c, mode.tagLength, result, n);
      return result;
    }
    if (n) check(mode.update(c, op, input(c, data), out, n), mode.name);
    check(mode.final(c, op, out + n), mode.name);
    return c.read(out, n + mode.tagLength);
  });
}

function oneShotDecrypt(mode: AeadMode, key: KeyInput, aad: Uint8Array, data: Uint8Array): Bytes {
  data = bytesArg(data, 'ciphertext');
  const t = mode.tagLength;
  if (data.length < t) throw shorterThanTag(mode, data.length);
  return withKey(key, (c, k) => {
    const n = data.length - t;
    const op = mode.create(c, k, true, true, n);
    absorbAad(c, mode, op, aad);
    if (n > CHUNK) {
      const result = new Uint8Array(n);
      transform(c, mode, op, data.subarray(0, n), result);
      c.mem().set(data.subarray(n), outPtr(c));
      verified(c, mode, op, outPtr(c), [result]);
      return result;
    }
    // ciphertext and tag in the input half, plaintext in the output half
    const src = input(c, data);
    if (n) check(mode.update(c, op, src, outPtr(c), n), mode.name);
    verified(c, mode, op, src + n, []);
    return c.read(outPtr(c), n, true);
  });
}

/** A stream's mode and the payload length declared up front (CCM's messageLength; 0 where the mode needs none). */
interface StreamSpec {
  readonly mode: AeadMode;
  readonly declared: number;
}

/**
 * The spec of a stream, for this module's stream classes: an ES private field, as CoreContext
 * keeps its core (a writable `mode` property would let a caller's object run with the core, or
 * answer "verified").
 */
let specOf!: (s: AeadStream) => StreamSpec;

// A streaming operation: the core context of the operation, and a private
// key context it points to (freed together).
abstract class AeadStream extends CoreContext {
  readonly #spec: StreamSpec;
  readonly #key: AesKey;

  constructor(mode: AeadMode, key: KeyInput, aad: Uint8Array, decrypt: boolean, msgLen: number) {
    const { k, op } = startStream(mode, key, aad, decrypt, msgLen);
    super(op, `${mode.name} ${decrypt ? 'decryption' : 'encryption'} stream`, keyCore(k));
    this.#spec = { mode, declared: msgLen };
    this.#key = k;
  }

  static {
    specOf = (s) => s.#spec;
  }

  /**
   * transform(), then the I/O window is wiped. A chunk the core rejects half
   * way leaves a state no later call can continue from: the stream is then
   * destroyed, so that any further call throws StateError.
   */
  protected step(data: Uint8Array, out: Uint8Array): void {
    const c = coreOf(this);
    try {
      transform(c, this.#spec.mode, this.live(), data, out);
    } catch (e) {
      this.destroy();
      throw e;
    } finally {
      wipeIo(c);
    }
  }

  override destroy(): void {
    super.destroy();
    this.#key.destroy();
  }
}

function startStream(mode: AeadMode, key: KeyInput, aad: Uint8Array, decrypt: boolean, msgLen: number): { k: AesKey; op: number } {
  return underOwnedKey(key, (c, k) => {
    const op = mode.create(c, k, decrypt, false, msgLen);
    try {
      absorbAad(c, mode, op, aad);
    } catch (e) {
      c.x.ctx_free(op);
      throw e;
    }
    return op;
  });
}

class EncryptStream extends AeadStream implements AeadEncryptStream {
  #seen = 0;

  update(plaintext: Uint8Array): Bytes;
  update(plaintext: Uint8Array, into?: Uint8Array): Uint8Array;
  update(plaintext: Uint8Array, into?: Uint8Array): Uint8Array {
    plaintext = bytesArg(plaintext, 'plaintext');
    // `into` is checked with the other argument, before the state (as a collecting CCM stream's is).
    const out = outputTarget(into, plaintext.length);
    this.live();
    const { mode, declared } = specOf(this);
    if (mode.needsLength && this.#seen + plaintext.length > declared) {
      throw new LengthError(`${mode.name}: more plaintext than the declared messageLength of ${declared}`);
    }
    this.#seen += plaintext.length;
    this.step(plaintext, out);
    return written(out, plaintext.length);
  }

  final(): Bytes {
    const c = coreOf(this), op = this.live();
    const { mode, declared } = specOf(this);
    if (mode.needsLength && this.#seen !== declared) {
      throw new LengthError(`${mode.name}: ${this.#seen} bytes of plaintext, ${declared} declared`);
    }
    check(mode.final(c, op, outPtr(c)), mode.name);
    const tag = takeOutput(c, outPtr(c), mode.tagLength);
    this.destroy();
    return tag;
  }
}

class DecryptStream extends AeadStream implements AeadDecryptStream {
  #tail = EMPTY; // the last tagLength bytes seen: possibly the tag
  /** The plaintext, unverified until final(): in one buffer outside the JS heap, zeroized unless released. */
  readonly #held = new SecretBuffer();

  update(ciphertext: Uint8Array): this {
    ciphertext = bytesArg(ciphertext, 'ciphertext');
    this.live();
    const { mode, declared } = specOf(this);
    const t = mode.tagLength;
    const all = this.#tail.length ? concatBytes([this.#tail, ciphertext]) : ciphertext;
    const ready = Math.max(0, all.length - t);
    // Checked before any state changes, so that a rejected chunk leaves the stream usable.
    if (mode.needsLength && this.#held.length + ready > declared) {
      throw new LengthError(`${mode.name}: more ciphertext than the declared messageLength of ${declared} plus the ${t}-byte tag`);
    }
    this.#tail = all.slice(ready);
    if (ready > 0) this.step(all.subarray(0, ready), this.#held.reserve(ready));
    return this;
  }

  final(): Bytes;
  final(into?: Uint8Array): Uint8Array;
  final(into?: Uint8Array): Uint8Array {
    if (into !== undefined) into = bytesArg(into, 'into');
    const c = coreOf(this), op = this.live();
    const { mode, declared } = specOf(this);
    const t = mode.tagLength, n = this.#held.length;
    // Refused before the stream ends, as a rejected call changes nothing (more input may follow).
    if (this.#tail.length < t) throw shorterThanTag(mode, this.#tail.length);
    if (mode.needsLength && n !== declared) throw new LengthError(`${mode.name}: ${n} bytes of ciphertext before the tag, ${declared} declared`);
    try {
      c.mem().set(this.#tail, outPtr(c));
      verified(c, mode, op, outPtr(c), []);
      if (!into) return this.#held.take();
      const out = outputTarget(into, n, true), plain = this.#held.take();
      out.set(plain);
      plain.fill(0);
      return written(out, n);
    } finally {
      c.x.zeroize(outPtr(c), t);
      this.destroy();
    }
  }

  override destroy(): void {
    this.#held.wipe();
    super.destroy();
  }
}

// CCM without a declared length: the stream collects its input and runs the
// one-shot operation in final(), because B0 carries the payload length. Like
// every stream it expands its key when it is created (a private copy of an
// AesKey), so what the caller does to its key afterwards changes nothing.
abstract class CollectingStream {
  readonly #mode: AeadMode;
  readonly #aad: Uint8Array;
  readonly #key: AesKey;
  readonly #parts = new SecretBuffer();
  #done = false;

  constructor(mode: AeadMode, key: KeyInput, aad: Uint8Array) {
    this.#mode = mode;
    this.#aad = aad;
    this.#key = ownedKey(key);
  }

  protected add(data: Uint8Array, name: string, decrypt = false): void {
    const bytes = bytesArg(data, name);
    if (this.#done) throw new StateError(`${this.#mode.name} stream already finished or destroyed`);
    // More than the nonce allows is refused when it arrives, not collected up to final(); the stream takes no part of it.
    const total = this.#parts.length + bytes.length - (decrypt ? this.#mode.tagLength : 0);
    if (total > (this.#mode.maxMessage ?? Infinity)) throw this.#mode.tooLong!(total);
    this.#parts.append(bytes);
  }

  /**
   * Runs `fn` over everything collected with the stream's mode, key and AAD, then destroys the
   * stream. A decryption given less than a tag is refused first and changes nothing, as
   * DecryptStream's is: more input may follow.
   */
  protected finish<T>(fn: (mode: AeadMode, key: AesKey, aad: Uint8Array, all: Uint8Array) => T, decrypt = false): T {
    if (this.#done) throw new StateError(`${this.#mode.name} stream already finished or destroyed`);
    if (decrypt && this.#parts.length < this.#mode.tagLength) throw shorterThanTag(this.#mode, this.#parts.length);
    const all = this.#parts.take();
    try {
      return fn(this.#mode, this.#key, this.#aad, all);
    } finally {
      all.fill(0);
      this.destroy();
    }
  }

  destroy(): void {
    if (this.#done) return;
    this.#done = true;
    this.#parts.wipe();
    this.#key.destroy();
  }

  /** destroy(), for `using x = ...`. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}

class CollectingEncryptStream extends CollectingStream implements AeadEncryptStream {
  update(plaintext: Uint8Array): Bytes;
  update(plaintext: Uint8Array, into?: Uint8Array): Uint8Array;
  update(plaintext: Uint8Array, into?: Uint8Array): Uint8Array {
    const target = into === undefined ? undefined : bytesArg(into, 'into');
    this.add(plaintext, 'plaintext');
    // Nothing yet: an empty result of this call's own (see EMPTY).
    return target ? target.subarray(0, 0) : new Uint8Array(0);
  }

  final(): Bytes {
    return this.finish(oneShotEncrypt);
  }
}

class CollectingDecryptStream extends CollectingStream implements AeadDecryptStream {
  update(ciphertext: Uint8Array): this {
    this.add(ciphertext, 'ciphertext', true);
    return this;
  }

  final(): Bytes;
  final(into?: Uint8Array): Uint8Array;
  final(into?: Uint8Array): Uint8Array {
    if (into !== undefined) into = bytesArg(into, 'into');
    return this.finish((mode, key, aad, all) => {
      const plain = oneShotDecrypt(mode, key, aad, all);
      if (into === undefined || into.length < plain.length) return plain;
      into.set(plain);
      plain.fill(0);
      return written(into, plain.length);
    }, true);
  }
}

/**
 * The object gcm() and ccm() return. `messageLength` lets CCM stream for
 * real. A class rather than a literal of arrow functions: a one-shot call
 * creates it every time, and each closure is an allocation.
 */
class AeadImpl implements Aead {
  readonly tagLength: number;
  readonly #mode: AeadMode;
  readonly #key: KeyInput;
  readonly #aad: Uint8Array;
  readonly #messageLength: number | undefined;

  constructor(mode: AeadMode, key: KeyInput, aad: Uint8Array, messageLength: number | undefined) {
    this.tagLength = mode.tagLength;
    this.#mode = mode;
    this.#key = key;
    this.#aad = aad;
    this.#messageLength = messageLength;
  }

  encrypt(data: Uint8Array): Bytes {
    if (this.#messageLength !== undefined) this.#declared(bytesArg(data, 'plaintext').length, 'plaintext');
    return oneShotEncrypt(this.#mode, this.#key, this.#aad, data);
  }

  decrypt(data: Uint8Array): Bytes {
    if (this.#messageLength !== undefined) this.#declared(bytesArg(data, 'ciphertext').length - this.tagLength, 'ciphertext');
    return oneShotDecrypt(this.#mode, this.#key, this.#aad, data);
  }

  /** A one-shot call holds to the declared messageLength as the streams do: a message of another length is a mistake. */
  #declared(length: number, what: string): void {
    if (length !== this.#messageLength) {
      const tag = what === 'ciphertext' ? ` plus the ${this.tagLength}-byte tag` : '';
      throw new LengthError(`${this.#mode.name}: ${what} of ${length + (tag ? this.tagLength : 0)} bytes, not the declared messageLength of ${this.#messageLength}${tag}`);
    }
  }

  encryptStream(): AeadEncryptStream {
    if (this.#mode.needsLength && this.#messageLength === undefined) return new CollectingEncryptStream(this.#mode, this.#key, this.#aad);
    return new EncryptStream(this.#mode, this.#key, this.#aad, false, this.#messageLength ?? 0);
  }

  decryptStream(): AeadDecryptStream {
    if (this.#mode.needsLength && this.#messageLength === undefined) return new CollectingDecryptStream(this.#mode, this.#key, this.#aad);
    return new DecryptStream(this.#mode, this.#key, this.#aad, true, this.#messageLength ?? 0);
  }
}

export function aead(mode: AeadMode, key: KeyInput, aad: Uint8Array, messageLength?: number): Aead {
  return new AeadImpl(mode, key, aad, messageLength);
}

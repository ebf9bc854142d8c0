// The AEAD driver shared by GCM and CCM: one-shot encrypt/decrypt and the
// streaming objects, over a mode's five core calls. Decryption never
// releases plaintext before the tag verified: the one-shot form wipes its
// output on failure, the streaming form holds everything until final().
import { concatBytes, EMPTY, outputTarget, written } from './bytes.ts';
import type { Core } from './loader.ts';
import { CoreContext } from './context.ts';
import { assertBytes, AuthenticationError, LengthError, StateError } from './errors.ts';
import { withKey, ownedKey, check, pump, outPtr, wipeIo, type AesKey, type KeyInput } from './aes.ts';

/** What a mode supplies to the driver; lengths are known when create() runs. */
export interface AeadMode {
  readonly name: string;
  readonly tagLength: number;
  /** CCM: the payload length must be declared before any data. */
  readonly needsLength: boolean;
  create(c: Core, k: number, decrypt: boolean, scratch: boolean, msgLen: number): number;
  aad(c: Core, op: number, src: number, len: number): number;
  update(c: Core, op: number, src: number, dst: number, len: number): number;
  final(c: Core, op: number, out: number): number;
  verify(c: Core, op: number, tag: number): number;
}

export interface Aead {
  readonly tagLength: number;
  /** Returns ciphertext followed by the tag. */
  encrypt(plaintext: Uint8Array): Uint8Array;
  /** Takes ciphertext followed by the tag; throws AuthenticationError (and releases nothing) when the tag is wrong. */
  decrypt(ciphertext: Uint8Array): Uint8Array;
  /** Streaming encryption: update() returns ciphertext as it is produced, final() the rest and the tag. */
  encryptStream(): AeadEncryptStream;
  /** Streaming decryption: update() only absorbs; final() verifies the tag, then returns all plaintext. */
  decryptStream(): AeadDecryptStream;
}

/**
 * `into` (optional, on every streaming update and final): an array the output
 * is written to, from its start, when it has room for it; the result is then
 * a view of `into` and nothing is allocated.
 */
export interface AeadEncryptStream {
  update(plaintext: Uint8Array, into?: Uint8Array): Uint8Array;
  final(): Uint8Array;
  destroy(): void;
}

export interface AeadDecryptStream {
  update(ciphertext: Uint8Array): this;
  final(into?: Uint8Array): Uint8Array;
  destroy(): void;
}

function runOp(c: Core, mode: AeadMode, op: number, aad: Uint8Array, data: Uint8Array, out: Uint8Array): void {
  pump(c, aad, (p, n) => check(mode.aad(c, op, p, n), mode.name));
  let off = 0;
  pump(c, data, (p, n) => {
    check(mode.update(c, op, p, outPtr(c), n), mode.name);
    out.set(c.mem().subarray(outPtr(c), outPtr(c) + n), off);
    off += n;
  });
}

function verified(c: Core, mode: AeadMode, op: number, tag: Uint8Array, plaintext: Uint8Array[]): void {
  const ptr = outPtr(c);
  c.mem().set(tag, ptr);
  const status = mode.verify(c, op, ptr);
  if (status < 0) {
    for (const p of plaintext) p.fill(0);
    if (status === -5) throw new AuthenticationError(`${mode.name}: authentication failed (wrong key, nonce, associated data, ciphertext or tag)`);
    check(status, mode.name);
  }
}

export function oneShotEncrypt(mode: AeadMode, key: KeyInput, aad: Uint8Array, data: Uint8Array): Uint8Array {
  assertBytes(data, 'plaintext');
  return withKey(key, (c, k) => {
    const op = mode.create(c, k, false, true, data.length);
    const out = new Uint8Array(data.length + mode.tagLength);
    runOp(c, mode, op, aad, data, out);
    check(mode.final(c, op, outPtr(c)), mode.name);
    out.set(c.mem().subarray(outPtr(c), outPtr(c) + mode.tagLength), data.length);
    return out;
  });
}

export function oneShotDecrypt(mode: AeadMode, key: KeyInput, aad: Uint8Array, data: Uint8Array): Uint8Array {
  assertBytes(data, 'ciphertext');
  const t = mode.tagLength;
  if (data.length < t) throw new LengthError(`${mode.name}: input of ${data.length} bytes is shorter than the ${t}-byte tag`);
  return withKey(key, (c, k) => {
    const n = data.length - t;
    const op = mode.create(c, k, true, true, n);
    const out = new Uint8Array(n);
    runOp(c, mode, op, aad, data.subarray(0, n), out);
    verified(c, mode, op, data.subarray(n), [out]);
    return out;
  });
}

// A streaming operation: the core context of the operation, and a private
// key context it points to (freed together).
abstract class AeadStream extends CoreContext {
  protected readonly mode: AeadMode;
  readonly #key: AesKey;

  constructor(mode: AeadMode, key: AesKey, op: number, what: string) {
    super(op, what, key.owner());
    this.mode = mode;
    this.#key = key;
  }

  /** Runs `data` through the mode, writing its output (as long as the input) to `out`. */
  protected step(data: Uint8Array, out: Uint8Array): void {
    const c = this.core, op = this.live();
    let off = 0;
    pump(c, data, (p, n) => {
      check(this.mode.update(c, op, p, outPtr(c), n), this.mode.name);
      out.set(c.mem().subarray(outPtr(c), outPtr(c) + n), off);
      off += n;
    });
    wipeIo(c);
  }

  override destroy(): void {
    super.destroy();
    this.#key.destroy();
  }
}

function startStream(mode: AeadMode, key: KeyInput, aad: Uint8Array, decrypt: boolean, msgLen: number): { k: AesKey; op: number } {
  const k = ownedKey(key);
  const c = k.owner();
  try {
    const op = mode.create(c, k.handle(), decrypt, false, msgLen);
    try {
      pump(c, aad, (p, n) => check(mode.aad(c, op, p, n), mode.name));
    } catch (e) {
      c.x.ctx_free(op);
      throw e;
    }
    return { k, op };
  } catch (e) {
    k.destroy();
    throw e;
  }
}

class EncryptStream extends AeadStream implements AeadEncryptStream {
  readonly #declared: number;
  #seen = 0;

  constructor(mode: AeadMode, key: KeyInput, aad: Uint8Array, msgLen: number) {
    const { k, op } = startStream(mode, key, aad, false, msgLen);
    super(mode, k, op, `${mode.name} encryption stream`);
    this.#declared = msgLen;
  }

  update(plaintext: Uint8Array, into?: Uint8Array): Uint8Array {
    assertBytes(plaintext, 'plaintext');
    this.live();
    if (this.mode.needsLength && this.#seen + plaintext.length > this.#declared) {
      throw new LengthError(`${this.mode.name}: more plaintext than the declared messageLength of ${this.#declared}`);
    }
    this.#seen += plaintext.length;
    const out = outputTarget(into, plaintext.length);
    this.step(plaintext, out);
    return written(out, plaintext.length);
  }

  final(): Uint8Array {
    const c = this.core, op = this.live();
    if (this.mode.needsLength && this.#seen !== this.#declared) {
      throw new LengthError(`${this.mode.name}: ${this.#seen} bytes of plaintext, ${this.#declared} declared`);
    }
    check(this.mode.final(c, op, outPtr(c)), this.mode.name);
    const tag = c.read(outPtr(c), this.mode.tagLength);
    this.destroy();
    return tag;
  }
}

class DecryptStream extends AeadStream implements AeadDecryptStream {
  #tail = EMPTY; // the last tagLength bytes seen: possibly the tag
  readonly #held: Uint8Array[] = [];
  #heldBytes = 0;

  constructor(mode: AeadMode, key: KeyInput, aad: Uint8Array, msgLen: number) {
    const { k, op } = startStream(mode, key, aad, true, msgLen);
    super(mode, k, op, `${mode.name} decryption stream`);
  }

  update(ciphertext: Uint8Array): this {
    assertBytes(ciphertext, 'ciphertext');
    this.live();
    const t = this.mode.tagLength;
    const all = this.#tail.length ? concatBytes([this.#tail, ciphertext]) : ciphertext;
    const ready = Math.max(0, all.length - t);
    this.#tail = all.slice(ready);
    if (ready > 0) {
      const out = new Uint8Array(ready);
      this.#held.push(out);
      this.step(all.subarray(0, ready), out);
      this.#heldBytes += ready;
    }
    return this;
  }

  final(into?: Uint8Array): Uint8Array {
    const op = this.live();
    const t = this.mode.tagLength;
    try {
      if (this.#tail.length < t) throw new LengthError(`${this.mode.name}: input of ${this.#tail.length} bytes is shorter than the ${t}-byte tag`);
      verified(this.core, this.mode, op, this.#tail, this.#held);
      if (this.#held.length === 1 && !into) return this.#held.pop()!;
      const out = outputTarget(into, this.#heldBytes);
      concatBytes(this.#held, out.subarray(0, this.#heldBytes));
      return written(out, this.#heldBytes);
    } finally {
      for (const p of this.#held) p.fill(0);
      this.#held.length = 0;
      this.destroy();
    }
  }

  override destroy(): void {
    for (const p of this.#held) p.fill(0);
    this.#held.length = 0;
    super.destroy();
  }
}

// CCM without a declared length: the stream collects its input and runs the
// one-shot operation in final(), because B0 carries the payload length.
class Collector {
  readonly #parts: Uint8Array[] = [];
  #bytes = 0;
  #done = false;

  add(data: Uint8Array, name: string): void {
    assertBytes(data, name);
    if (this.#done) throw new StateError('stream already finished or destroyed');
    this.#parts.push(data.slice());
    this.#bytes += data.length;
  }

  take(): Uint8Array {
    if (this.#done) throw new StateError('stream already finished or destroyed');
    const all = concatBytes(this.#parts);
    this.wipe();
    return all;
  }

  wipe(): void {
    this.#done = true;
    for (const p of this.#parts) p.fill(0);
    this.#parts.length = 0;
  }
}

class CollectingEncryptStream implements AeadEncryptStream {
  readonly #c = new Collector();
  readonly #run: (data: Uint8Array) => Uint8Array;

  constructor(run: (data: Uint8Array) => Uint8Array) {
    this.#run = run;
  }

  update(plaintext: Uint8Array): Uint8Array {
    this.#c.add(plaintext, 'plaintext');
    return EMPTY;
  }

  final(): Uint8Array {
    const all = this.#c.take();
    try {
      return this.#run(all);
    } finally {
      all.fill(0);
    }
  }

  destroy(): void {
    this.#c.wipe();
  }
}

class CollectingDecryptStream implements AeadDecryptStream {
  readonly #c = new Collector();
  readonly #run: (data: Uint8Array) => Uint8Array;

  constructor(run: (data: Uint8Array) => Uint8Array) {
    this.#run = run;
  }

  update(ciphertext: Uint8Array): this {
    this.#c.add(ciphertext, 'ciphertext');
    return this;
  }

  final(): Uint8Array {
    return this.#run(this.#c.take());
  }

  destroy(): void {
    this.#c.wipe();
  }
}

/** The object gcm() and ccm() return. `messageLength` lets CCM stream for real. */
export function aead(mode: AeadMode, key: KeyInput, aad: Uint8Array, messageLength?: number): Aead {
  return {
    tagLength: mode.tagLength,
    encrypt: (data) => oneShotEncrypt(mode, key, aad, data),
    decrypt: (data) => oneShotDecrypt(mode, key, aad, data),
    encryptStream: () => {
      if (mode.needsLength && messageLength === undefined) return new CollectingEncryptStream((d) => oneShotEncrypt(mode, key, aad, d));
      return new EncryptStream(mode, key, aad, messageLength ?? 0);
    },
    decryptStream: () => {
      if (mode.needsLength && messageLength === undefined) return new CollectingDecryptStream((d) => oneShotDecrypt(mode, key, aad, d));
      return new DecryptStream(mode, key, aad, messageLength ?? 0);
    },
  };
}

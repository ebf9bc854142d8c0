// AES-CBC (SP 800-38A) with the paddings of TS-0016 table 9.6-1:
// cbc(key, iv, { padding }) with 'none' (13), 'iso9797-m1' (22),
// 'iso9797-m2' (23) or 'pkcs5' (24, PKCS#7 to 16 bytes). CBC is not
// authenticated: decryption releases plaintext as it goes, and whether the
// padding was valid is visible to the caller (docs/aes.md).
import { copyArg, outputTarget, written, type Bytes } from './bytes.ts';
import type { Core } from './loader.ts';
import { CoreContext, coreOf, type Destroyable } from './context.ts';
import { LengthError, PaddingError, UnknownAlgorithmError } from './errors.ts';
import { bytesArg, optionsArg, shown, type OptionNames } from './args.ts';
import { checkKeyInput, withKey, underOwnedKey, keyCore, check, copyOutput, param, input, pump, outPtr, wipeIo, CHUNK, type AesKey, type KeyInput } from './aes.ts';

/** How CBC pads: 'pkcs5' (PKCS#7), ISO/IEC 9797-1 method 1 (zeros) or 2 (0x80 then zeros), or 'none'. */
export type CbcPadding = 'none' | 'pkcs5' | 'iso9797-m1' | 'iso9797-m2';

/** Core padding ids = TS-0016 cipher algorithm values. */
export const CBC_PADDING_IDS: Readonly<Record<CbcPadding, number>> = Object.freeze({ none: 13, 'iso9797-m1': 22, 'iso9797-m2': 23, pkcs5: 24 });

/** Options of cbc(). */
export interface CbcOptions {
  /** Default 'pkcs5'. */
  padding?: CbcPadding | undefined;
}

const CBC_OPTIONS: OptionNames<CbcOptions> = { padding: true };

/** A CBC encryption or decryption stream: update() as often as needed, then final() once. */
export interface CbcStream extends Destroyable {
  /**
   * Returns the output ready so far (whole blocks; decryption keeps the last
   * block back). With `into` of at least data.length + 16 bytes the output is
   * written there and the result is a view of it (nothing allocated); with a
   * shorter `into`, an array of its own, so typed as the caller's Uint8Array.
   */
  update(data: Uint8Array): Bytes;
  /** update() writing into `into` when it has data.length + 16 bytes: a view of it, else an array of its own. */
  update(data: Uint8Array, into?: Uint8Array): Uint8Array;
  /** Returns the rest: padding added (encryption) or checked and removed (decryption). */
  final(): Bytes;
  /** Zeroizes the stream's state and key copy without finishing; further use throws StateError. */
  destroy(): void;
}

/** AES-CBC under one key and IV (from cbc()): one-shot and streaming, either direction. */
export interface Cbc {
  /**
   * The ciphertext of `plaintext`, padded.
   * @throws LengthError when the padding is 'none' and `plaintext` is not a multiple of 16 bytes.
   */
  encrypt(plaintext: Uint8Array): Bytes;
  /**
   * The plaintext of `ciphertext`, its padding checked and removed. Method 1 ('iso9797-m1') cannot
   * be undone: its zero bytes stay in the output.
   * @throws LengthError when `ciphertext` is not a multiple of 16 bytes (or empty, with padding);
   * PaddingError when the padding is wrong.
   */
  decrypt(ciphertext: Uint8Array): Bytes;
  /** Streaming encryption: update() returns whole blocks as they are ready, final() the padded rest. */
  encryptStream(): CbcStream;
  /** Streaming decryption: update() returns whole blocks but the last, final() the rest, its padding removed. */
  decryptStream(): CbcStream;
}

const NAMES: Record<CbcPadding, string> = { none: 'no', pkcs5: 'PKCS#7', 'iso9797-m1': 'ISO 9797-1 method 1', 'iso9797-m2': 'ISO 9797-1 method 2' };

function status(s: number, padding: CbcPadding, decrypt: boolean, sinks: Uint8Array[]): number {
  if (s >= 0) return s;
  for (const p of sinks) p.fill(0);
  if (s === -6) throw new PaddingError(`AES-CBC: invalid ${NAMES[padding]} padding`);
  if (s === -2) throw cbcLengthError(padding, decrypt);
  return check(s, 'AES-CBC');
}

/** The refusal of a message length the padding cannot take (a card's SE says it in the same words). */
export function cbcLengthError(padding: CbcPadding, decrypt: boolean): LengthError {
  return new LengthError(decrypt
    ? `AES-CBC: ciphertext length must be a ${padding === 'none' ? '' : 'non-zero '}multiple of 16 bytes`
    : 'AES-CBC without padding: plaintext length must be a multiple of 16 bytes');
}

// Up to CHUNK bytes take one pass through the I/O window and leave it in one
// slice. Longer input is written straight into one array of the largest size
// the output can have (the input plus a padding block): no array per pumped
// chunk and no join.
function run(c: Core, op: number, data: Uint8Array, padding: CbcPadding, decrypt: boolean): Bytes {
  if (data.length <= CHUNK) {
    const dst = outPtr(c);
    const w = data.length ? status(c.x.cbc_update(op, input(c, data), dst, data.length), padding, decrypt, []) : 0;
    return c.read(dst, w + status(c.x.cbc_final(op, dst + w), padding, decrypt, []), decrypt);
  }
  const out = new Uint8Array(data.length + 16);
  const total = update(c, op, data, out, padding, decrypt);
  const w = status(c.x.cbc_final(op, outPtr(c)), padding, decrypt, [out]);
  copyOutput(c, w, out, total);
  return written(out, total + w);
}

/**
 * Runs `data` through the operation, its output written to `out` from the
 * start; returns how many bytes. A failure wipes what it had written.
 */
function update(c: Core, op: number, data: Uint8Array, out: Uint8Array, padding: CbcPadding, decrypt: boolean): number {
  let total = 0;
  pump(c, data, (p, n) => {
    const w = status(c.x.cbc_update(op, p, outPtr(c), n), padding, decrypt, [out.subarray(0, total)]);
    copyOutput(c, w, out, total);
    total += w;
  });
  return total;
}

function checkLength(n: number, padding: CbcPadding, decrypt: boolean): void {
  if (decrypt) {
    const ok = n % 16 === 0 && (n > 0 || padding === 'none');
    if (!ok) status(-2, padding, true, []);
  } else if (padding === 'none' && n % 16 !== 0) {
    status(-2, padding, false, []);
  }
}

class CbcStreamImpl extends CoreContext implements CbcStream {
  readonly #key: AesKey;
  readonly #padding: CbcPadding;
  readonly #decrypt: boolean;
  /** Input taken so far, for final()'s length check (the one the one-shot calls make). */
  #seen = 0;

  constructor(key: KeyInput, iv: Uint8Array, padding: CbcPadding, decrypt: boolean) {
    const { k, op } = underOwnedKey(key, (c, h) => c.x.cbc_create(h, param(c, iv), CBC_PADDING_IDS[padding], decrypt ? 1 : 0, 0));
    super(op, `AES-CBC ${decrypt ? 'decryption' : 'encryption'} stream`, keyCore(k));
    this.#key = k;
    this.#padding = padding;
    this.#decrypt = decrypt;
  }

  update(data: Uint8Array): Bytes;
  update(data: Uint8Array, into?: Uint8Array): Uint8Array;
  update(data: Uint8Array, into?: Uint8Array): Uint8Array {
    data = bytesArg(data, this.#decrypt ? 'ciphertext' : 'plaintext');
    // At most the input and the (up to 16) bytes held back from earlier updates. Checked before the state.
    const out = outputTarget(into, data.length + 16, this.#decrypt);
    const c = coreOf(this), op = this.live();
    try {
      const n = update(c, op, data, out, this.#padding, this.#decrypt);
      this.#seen += data.length;
      return written(out, n);
    } finally {
      wipeIo(c);
    }
  }

  final(): Bytes {
    const c = coreOf(this), op = this.live();
    // Refused before the core, whose final ends the operation whatever it answers: a length short of a
    // whole block (or no ciphertext at all) changes nothing, as a CBC-MAC digest()'s does (more may follow).
    checkLength(this.#seen, this.#padding, this.#decrypt);
    try {
      const w = status(c.x.cbc_final(op, outPtr(c)), this.#padding, this.#decrypt, []);
      return c.read(outPtr(c), w, this.#decrypt);
    } finally {
      c.x.zeroize(outPtr(c), 16);
      this.destroy();
    }
  }

  override destroy(): void {
    super.destroy();
    this.#key.destroy();
  }
}

/** AES-CBC under `key` (16 or 32 bytes, or an AesKey) with a 16-byte IV. */
export function cbc(key: KeyInput, iv: Uint8Array, opts?: CbcOptions | null): Cbc {
  key = checkKeyInput(key);
  iv = copyArg(iv, 'iv');
  if (iv.length !== 16) throw new LengthError(`AES-CBC IV must be 16 bytes, got ${iv.length}`);
  const padding = optionsArg(opts, 'cbc options', CBC_OPTIONS)?.padding ?? 'pkcs5';
  // A string only: another value would pass Object.hasOwn through its string conversion, and read differently later.
  if (typeof padding !== 'string' || !Object.hasOwn(CBC_PADDING_IDS, padding)) {
    throw new UnknownAlgorithmError(`unknown CBC padding (got ${shown(padding)}): expected one of ${Object.keys(CBC_PADDING_IDS).join(', ')}`);
  }
  return new CbcImpl(key, iv, padding);
}

// A class, not a literal of closures: a one-shot call creates one every time.
class CbcImpl implements Cbc {
  readonly #key: KeyInput;
  readonly #iv: Uint8Array;
  readonly #padding: CbcPadding;

  constructor(key: KeyInput, iv: Uint8Array, padding: CbcPadding) {
    this.#key = key;
    this.#iv = iv;
    this.#padding = padding;
  }

  encrypt(data: Uint8Array): Bytes {
    return this.#oneShot(data, false);
  }

  decrypt(data: Uint8Array): Bytes {
    return this.#oneShot(data, true);
  }

  encryptStream(): CbcStream {
    return new CbcStreamImpl(this.#key, this.#iv, this.#padding, false);
  }

  decryptStream(): CbcStream {
    return new CbcStreamImpl(this.#key, this.#iv, this.#padding, true);
  }

  #oneShot(data: Uint8Array, decrypt: boolean): Bytes {
    const padding = this.#padding;
    data = bytesArg(data, decrypt ? 'ciphertext' : 'plaintext');
    checkLength(data.length, padding, decrypt);
    return withKey(this.#key, (c, k) => run(c, c.x.cbc_create(k, param(c, this.#iv), CBC_PADDING_IDS[padding], decrypt ? 1 : 0, 1), data, padding, decrypt));
  }
}

// AES-CCM (SP 800-38C, RFC 3610): ccm(key, nonce, aad?, { tagLength?, messageLength? }).
// TS-0016 ciphers 1003/1004 (AEAD_AES_128/256_CCM, RFC 5116: 12-byte nonce,
// 16-byte tag) and 1018/1019 (the CCM_8 variants of RFC 6655: 8-byte tag).
// Nonces of 7 to 13 bytes and even tags of 4 to 16 bytes are accepted.
import type { Core } from './loader.ts';
import { copyArg, EMPTY } from './bytes.ts';
import { LengthError } from './errors.ts';
import { optionsArg, shown, type OptionNames } from './args.ts';
import { checkKeyInput, param, type KeyInput } from './aes.ts';
import { aead, type Aead, type AeadMode } from './aead.ts';

/** Options of ccm(). */
export interface CcmOptions {
  /** Tag length in bytes: 4, 6, 8, 10, 12, 14 or 16 (default). */
  tagLength?: number | undefined;
  /**
   * Plaintext length, when known before streaming: CCM authenticates it
   * first, so without it the streaming forms collect their input and
   * produce everything in final(). One-shot calls do not need it, and refuse
   * a message of another length when it is given.
   */
  messageLength?: number | undefined;
}

const CCM_OPTIONS: OptionNames<CcmOptions> = { tagLength: true, messageLength: true };

// A class, not a literal of closures: a one-shot call creates one every time.
class CcmMode implements AeadMode {
  readonly name = 'AES-CCM';
  readonly needsLength = true;
  readonly #nonce: Uint8Array;
  readonly #aadLength: number;
  readonly tagLength: number;
  /** The longest payload the nonce leaves room for: its length field is 15 - nonce length bytes (beyond any array from 8 up). */
  readonly maxMessage: number;

  constructor(nonce: Uint8Array, aadLength: number, tagLength: number) {
    this.#nonce = nonce;
    this.#aadLength = aadLength;
    this.tagLength = tagLength;
    this.maxMessage = nonce.length > 8 ? 2 ** (8 * (15 - nonce.length)) - 1 : Number.MAX_SAFE_INTEGER;
  }

  tooLong(msgLen: number): LengthError {
    const n = this.#nonce.length;
    return new LengthError(`AES-CCM: a ${n}-byte nonce leaves room for messages below 2^${8 * (15 - n)} bytes, got ${msgLen}`);
  }

  create(c: Core, k: number, decrypt: boolean, scratch: boolean, msgLen: number): number {
    const n = this.#nonce;
    const op = c.x.ccm_create(k, param(c, n), n.length, this.tagLength, BigInt(this.#aadLength), BigInt(msgLen), decrypt ? 1 : 0, scratch ? 1 : 0);
    if (op === 0) throw this.tooLong(msgLen);
    return op;
  }

  aad(c: Core, op: number, src: number, len: number): number {
    return c.x.ccm_aad(op, src, len);
  }

  update(c: Core, op: number, src: number, dst: number, len: number): number {
    return c.x.ccm_update(op, src, dst, len);
  }

  final(c: Core, op: number, out: number): number {
    return c.x.ccm_final(op, out);
  }

  verify(c: Core, op: number, tag: number): number {
    return c.x.ccm_verify(op, tag);
  }
}

/** AES-CCM under `key` (16 or 32 bytes, or an AesKey) and a 7- to 13-byte nonce. */
export function ccm(key: KeyInput, nonce: Uint8Array, aad: Uint8Array = EMPTY, opts?: CcmOptions | null): Aead {
  key = checkKeyInput(key);
  nonce = copyArg(nonce, 'nonce');
  aad = copyArg(aad, 'aad');
  if (nonce.length < 7 || nonce.length > 13) throw new LengthError(`AES-CCM nonce must be 7 to 13 bytes, got ${nonce.length}`);
  const o = optionsArg(opts, 'ccm options', CCM_OPTIONS);
  const tagLength = o?.tagLength ?? 16;
  if (!Number.isInteger(tagLength) || tagLength < 4 || tagLength > 16 || tagLength % 2) {
    throw new LengthError(`AES-CCM tag length must be an even number of bytes from 4 to 16, got ${shown(tagLength)}`);
  }
  const m = o?.messageLength ?? undefined;
  if (m !== undefined && (!Number.isSafeInteger(m) || m < 0)) throw new LengthError(`AES-CCM messageLength must be a non-negative integer, got ${shown(m)}`);
  const mode = new CcmMode(nonce, aad.length, tagLength);
  // Known now: refused now, not at the first use of the object.
  if (m !== undefined && m > mode.maxMessage) throw mode.tooLong(m);
  return aead(mode, key, aad, m);
}

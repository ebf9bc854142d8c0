// AES-GCM (SP 800-38D): gcm(key, nonce, aad?, { tagLength? }). TS-0016
// ciphers 1001 and 1002 are AEAD_AES_128_GCM and AEAD_AES_256_GCM of RFC 5116:
// 12-byte nonce, 16-byte tag (the defaults); other nonce lengths and the
// tag lengths SP 800-38D allows (12-16 bytes, and 8 or 4) are accepted.
import type { Core } from './loader.ts';
import { copyArg, EMPTY } from './bytes.ts';
import { LengthError } from './errors.ts';
import { optionsArg, shown, type OptionNames } from './args.ts';
import { checkKeyInput, param, MAX_NONCE, type KeyInput } from './aes.ts';
import { aead, type Aead, type AeadMode } from './aead.ts';

/** Options of gcm(). */
export interface GcmOptions {
  /** Tag length in bytes: 16 (default), 15, 14, 13, 12, 8 or 4. */
  tagLength?: number | undefined;
}

const GCM_OPTIONS: OptionNames<GcmOptions> = { tagLength: true };
const TAG_LENGTHS = [16, 15, 14, 13, 12, 8, 4];

// A class, not a literal of closures: a one-shot call creates one every time.
class GcmMode implements AeadMode {
  readonly name = 'AES-GCM';
  readonly needsLength = false;
  readonly #nonce: Uint8Array;
  readonly tagLength: number;

  constructor(nonce: Uint8Array, tagLength: number) {
    this.#nonce = nonce;
    this.tagLength = tagLength;
  }

  create(c: Core, k: number, decrypt: boolean, scratch: boolean): number {
    const op = c.x.gcm_create(k, param(c, this.#nonce), this.#nonce.length, this.tagLength, decrypt ? 1 : 0, scratch ? 1 : 0);
    if (op === 0) throw new LengthError('AES-GCM: parameters rejected by the core');
    return op;
  }

  aad(c: Core, op: number, src: number, len: number): number {
    return c.x.gcm_aad(op, src, len);
  }

  update(c: Core, op: number, src: number, dst: number, len: number): number {
    return c.x.gcm_update(op, src, dst, len);
  }

  final(c: Core, op: number, out: number): number {
    return c.x.gcm_final(op, out);
  }

  verify(c: Core, op: number, tag: number): number {
    return c.x.gcm_verify(op, tag);
  }
}

/**
 * AES-GCM under `key` (16 or 32 bytes, or an AesKey) and `nonce`. Never
 * encrypt two messages with the same key and nonce.
 */
export function gcm(key: KeyInput, nonce: Uint8Array, aad: Uint8Array = EMPTY, opts?: GcmOptions | null): Aead {
  key = checkKeyInput(key);
  nonce = copyArg(nonce, 'nonce');
  aad = copyArg(aad, 'aad');
  if (nonce.length < 1 || nonce.length > MAX_NONCE) throw new LengthError(`AES-GCM nonce must be 1 to ${MAX_NONCE} bytes (12 recommended), got ${nonce.length}`);
  const tagLength = optionsArg(opts, 'gcm options', GCM_OPTIONS)?.tagLength ?? 16;
  if (!TAG_LENGTHS.includes(tagLength)) throw new LengthError(`AES-GCM tag length must be one of ${TAG_LENGTHS.join(', ')} bytes, got ${shown(tagLength)}`);
  return aead(new GcmMode(nonce, tagLength), key, aad);
}

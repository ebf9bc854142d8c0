// The AES MACs of TS-0016 table 9.9-1: cmac(key, data) is AES-CMAC (49;
// SP 800-38B, RFC 4493) and cbcMac(key, data) is CBC-MAC with a zero IV over
// a non-empty whole number of blocks (18, ALG_AES_MAC_128_NOPAD). Both give
// 16 bytes; createCmac/createCbcMac take the data in pieces.
import type { Bytes } from './bytes.ts';
import { CoreContext, coreOf, takeOutput, type Destroyable } from './context.ts';
import { LengthError } from './errors.ts';
import { bytesArg } from './args.ts';
import { checkKeyInput, withKey, underOwnedKey, keyCore, check, pump, outPtr, wipeIo, type AesKey, type KeyInput } from './aes.ts';

const CMAC = 49;
const CBC_MAC = 18;

/** A streaming AES-CMAC or CBC-MAC (createCmac(), createCbcMac()): update() as often as needed, then digest() once. */
export interface Mac extends Destroyable {
  /** 16: the MAC's length (as Hash.outputLen). */
  readonly outputLen: number;
  /** 16: the AES block. */
  readonly blockLen: number;
  /**
   * Absorbs `data`; returns the object, for chaining.
   * @throws InvalidInputError when `data` is not a Uint8Array; StateError after digest() or destroy().
   */
  update(data: Uint8Array): this;
  /**
   * The 16-byte MAC; the object is finished afterwards.
   * @throws LengthError for CBC-MAC when what was absorbed is not a non-empty multiple of 16 bytes (more may follow).
   */
  digest(): Bytes;
  /** Zeroizes the state and key copy without producing a MAC; further use throws StateError. */
  destroy(): void;
}

/** What CBC-MAC without padding takes, said alike by every SE that computes it. */
export const CBC_MAC_LENGTH = 'AES CBC-MAC (no padding): data must be a non-empty multiple of 16 bytes';

function final(status: number, alg: number): number {
  if (status === -2) throw new LengthError(CBC_MAC_LENGTH);
  return check(status, alg === CMAC ? 'AES-CMAC' : 'AES CBC-MAC');
}

function oneShot(alg: number, key: KeyInput, data: Uint8Array): Bytes {
  key = checkKeyInput(key);
  data = bytesArg(data, 'data');
  if (alg === CBC_MAC && (data.length === 0 || data.length % 16 !== 0)) final(-2, alg);
  return withKey(key, (c, k) => {
    const op = c.x.mac_create(k, alg, 1);
    pump(c, data, (p, n) => check(c.x.mac_update(op, p, n), 'AES MAC'));
    final(c.x.mac_final(op, outPtr(c)), alg);
    return c.read(outPtr(c), 16);
  });
}

class MacContext extends CoreContext implements Mac {
  readonly outputLen = 16;
  readonly blockLen = 16;
  readonly #key: AesKey;
  readonly #alg: number;

  constructor(alg: number, key: KeyInput) {
    const { k, op } = underOwnedKey(checkKeyInput(key), (c, h) => c.x.mac_create(h, alg, 0));
    super(op, alg === CMAC ? 'AES-CMAC' : 'AES CBC-MAC', keyCore(k));
    this.#key = k;
    this.#alg = alg;
  }

  update(data: Uint8Array): this {
    data = bytesArg(data, 'data');
    const c = coreOf(this), op = this.live();
    try {
      pump(c, data, (p, n) => check(c.x.mac_update(op, p, n), 'AES MAC'));
    } finally {
      wipeIo(c);
    }
    return this;
  }

  digest(): Bytes {
    const c = coreOf(this), op = this.live();
    const status = c.x.mac_final(op, outPtr(c));
    // A CBC-MAC short of a whole block changed nothing in the core: the rest of the data may follow.
    if (status === -2) throw new LengthError(CBC_MAC_LENGTH);
    try {
      final(status, this.#alg);
      return takeOutput(c, outPtr(c), 16);
    } finally {
      this.destroy();
    }
  }

  override destroy(): void {
    super.destroy();
    this.#key.destroy();
  }
}

/** AES-CMAC (RFC 4493) of `data` under a 16- or 32-byte key (or an AesKey). */
export function cmac(key: KeyInput, data: Uint8Array): Bytes {
  return oneShot(CMAC, key, data);
}

/** CBC-MAC with a zero IV; `data` must be a non-empty multiple of 16 bytes. */
export function cbcMac(key: KeyInput, data: Uint8Array): Bytes {
  return oneShot(CBC_MAC, key, data);
}

/**
 * A streaming AES-CMAC (RFC 4493) under a 16- or 32-byte key (or an AesKey).
 * @throws LengthError for a key of another length.
 */
export function createCmac(key: KeyInput): Mac {
  return new MacContext(CMAC, key);
}

/**
 * A streaming CBC-MAC with a zero IV under a 16- or 32-byte key (or an AesKey); digest() needs a non-empty multiple of 16 bytes.
 * @throws LengthError for a key of another length.
 */
export function createCbcMac(key: KeyInput): Mac {
  return new MacContext(CBC_MAC, key);
}

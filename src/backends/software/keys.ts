// Keys of the software SE: the bytes live in JS memory owned by this module
// and are zeroized on release; WASM contexts derived from them are short-lived
// and zeroized by the core when they are destroyed.
import { markKeyHandle, type KeyHandle, type KeyKind, type KeySpec } from '../backend.ts';
import { StateError } from '../../core/errors.ts';
import { aesKey, type AesKey } from '../../core/aes.ts';
import { secretCopy } from '../../core/bytes.ts';

export class SoftwareKey implements KeyHandle {
  readonly spec: KeySpec;
  readonly kind: KeyKind;
  readonly size: number;
  #bytes: Uint8Array | undefined;
  /** The expanded AES schedule (and GCM hash subkey), built on first use and kept for every later operation. */
  #aes: AesKey | undefined;

  /** Takes a private copy of `bytes`, outside the JS heap (secretCopy; a Buffer's slice() would share its memory). */
  constructor(spec: KeySpec, kind: KeyKind, bytes: Uint8Array) {
    this.spec = spec;
    this.kind = kind;
    this.size = bytes.length;
    this.#bytes = secretCopy(bytes);
    markKeyHandle(this);
  }

  get bytes(): Uint8Array {
    if (!this.#bytes) throw new StateError('key was released');
    return this.#bytes;
  }

  aes(): AesKey {
    return (this.#aes ??= aesKey(this.bytes));
  }

  release(): void {
    this.#bytes?.fill(0);
    this.#bytes = undefined;
    this.#aes?.destroy();
    this.#aes = undefined;
  }
}

export function asSoftwareKey(key: KeyHandle): SoftwareKey {
  if (!(key instanceof SoftwareKey)) throw new StateError('key handle belongs to another backend');
  return key;
}

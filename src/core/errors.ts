// Typed errors of the core. Messages name the problem and the parameter, and
// never include key, nonce or data bytes.

/** The `code` of every error senv throws; each error class has one (README, Errors). */
export type SenvErrorCode =
  | 'ERR_INVALID_INPUT'
  | 'ERR_UNKNOWN_ALGORITHM'
  | 'ERR_BAD_LENGTH'
  | 'ERR_STATE'
  | 'ERR_AUTH'
  | 'ERR_PADDING'
  | 'ERR_INVALID_VALUE'
  | 'ERR_CORE'
  | 'ERR_OUT_OF_MEMORY'
  // PC/SC bridge and APDU transport (src/pcsc/errors.ts, src/apdu/errors.ts)
  | 'ERR_PCSC'
  | 'ERR_PCSC_UNAVAILABLE'
  | 'ERR_APDU'
  | 'ERR_CARD_STATUS'
  // A refused Mcs request (McsError, with its rsc)
  | 'ERR_MCS';

/** The base of every error senv throws: its subclasses say what went wrong, `code` says it as a string. */
export class SenvError extends Error {
  /** What went wrong, as a string that stays the same across versions and bundlers (each subclass has its own). */
  readonly code: SenvErrorCode;
  constructor(code: SenvErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  /**
   * The code and what refines it (a PC/SC return code, a card's status word): never data, so the
   * Mcs layer may show it to a remote originator where the message could say too much.
   */
  get kind(): string {
    return this.code;
  }
}

/**
 * Gives an error class its `name` on the prototype, as a string: a bundler's
 * minifier renames classes, and `err.name` (and the head of its stack) must
 * stay `InvalidInputError`, not `h`.
 */
export function errorName(cls: abstract new (...args: never[]) => Error, name: string): void {
  Object.defineProperty(cls.prototype, 'name', { value: name, writable: true, configurable: true });
}

/** An argument has the wrong type (e.g. a string where a Uint8Array is required). */
export class InvalidInputError extends SenvError {
  declare readonly code: 'ERR_INVALID_INPUT';
  constructor(message: string) {
    super('ERR_INVALID_INPUT', message);
  }
}

/** An algorithm, curve or mode name that the core does not implement. */
export class UnknownAlgorithmError extends SenvError {
  declare readonly code: 'ERR_UNKNOWN_ALGORITHM';
  constructor(message: string) {
    super('ERR_UNKNOWN_ALGORITHM', message);
  }
}

/** A key, nonce, IV, tag or data length that the algorithm does not allow. */
export class LengthError extends SenvError {
  declare readonly code: 'ERR_BAD_LENGTH';
  constructor(message: string) {
    super('ERR_BAD_LENGTH', message);
  }
}

/** An object used after digest(), final() or destroy(). */
export class StateError extends SenvError {
  declare readonly code: 'ERR_STATE';
  constructor(message: string) {
    super('ERR_STATE', message);
  }
}

/** A tag or MAC did not verify; no plaintext is released. */
export class AuthenticationError extends SenvError {
  declare readonly code: 'ERR_AUTH';
  constructor(message: string) {
    super('ERR_AUTH', message);
  }
}

/** Padding that does not match the chosen padding method on decryption. */
export class PaddingError extends SenvError {
  declare readonly code: 'ERR_PADDING';
  constructor(message: string) {
    super('ERR_PADDING', message);
  }
}

/** A value of the right length but outside its range (scalar 0, point off the curve …). */
export class InvalidValueError extends SenvError {
  declare readonly code: 'ERR_INVALID_VALUE';
  constructor(message: string) {
    super('ERR_INVALID_VALUE', message);
  }
}

/** The WASM core could not be loaded, or failed in a way no input explains. */
export class CoreError extends SenvError {
  declare readonly code: 'ERR_CORE';
  constructor(message: string) {
    super('ERR_CORE', message);
  }
}

/** The core's known-answer self test failed; the message names the tests that did. */
export class SelfTestError extends CoreError {
  override get kind(): string {
    return 'ERR_CORE self test';
  }
}

/**
 * The core's memory (at most 4 GiB) cannot hold what a call needs: a context,
 * a block or a curve's tables. Nothing was changed; the call can succeed once
 * contexts or keys are released.
 */
export class OutOfMemoryError extends SenvError {
  declare readonly code: 'ERR_OUT_OF_MEMORY';
  constructor(message: string) {
    super('ERR_OUT_OF_MEMORY', message);
  }
}

/**
 * A secure element's own storage has no room (a card's key slots, data
 * objects or non-volatile memory): as for the core's memory, nothing was
 * changed, and the call can succeed once something there is deleted.
 */
export class DeviceFullError extends OutOfMemoryError {}

/**
 * What failed, for a message: an errno-style code, else the error's name (Deno's permission errors
 * have no code), never its message, which may carry a path or data. Any value may have been thrown
 * (an anchor's or a file layer's): one whose inspection throws (a revoked proxy, a getter) is 'error'.
 */
export function failureKind(e: unknown): string {
  try {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,31}$/.test(code)) return code;
    const name = e instanceof Error ? e.name : undefined;
    return typeof name === 'string' && /^\w{1,40}$/.test(name) ? name : 'error';
  } catch {
    return 'error';
  }
}

// Status codes of docs/wasm-abi.md, mapped to the error a caller can act on.
export function statusError(status: number, what: string): SenvError {
  switch (status) {
    case -1: return new UnknownAlgorithmError(`${what}: unknown algorithm`);
    case -2: return new LengthError(`${what}: length not allowed`);
    case -3: return new StateError(`${what}: invalid or released context`);
    case -4: return new OutOfMemoryError(`${what}: out of WASM memory`);
    case -5: return new AuthenticationError(`${what}: authentication failed`);
    case -6: return new PaddingError(`${what}: invalid padding`);
    case -7: return new StateError(`${what}: not allowed in the current state`);
    case -8: return new InvalidValueError(`${what}: value out of range`);
    default: return new CoreError(`${what}: core returned status ${status}`);
  }
}

errorName(SenvError, 'SenvError');
errorName(InvalidInputError, 'InvalidInputError');
errorName(UnknownAlgorithmError, 'UnknownAlgorithmError');
errorName(LengthError, 'LengthError');
errorName(StateError, 'StateError');
errorName(AuthenticationError, 'AuthenticationError');
errorName(PaddingError, 'PaddingError');
errorName(InvalidValueError, 'InvalidValueError');
errorName(CoreError, 'CoreError');
errorName(SelfTestError, 'SelfTestError');
errorName(OutOfMemoryError, 'OutOfMemoryError');
errorName(DeviceFullError, 'DeviceFullError');

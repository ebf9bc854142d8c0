// The boundary between the engine and what a backend hands back (docs/mcs.md "Writing a backend").
// A backend may be anyone's code: a WASM library's result is often a view of its memory, reused by
// the next call or detached when that memory grows, and a pool's random bytes are refilled. So the
// engine keeps nothing of a backend's arrays: each byte result is checked here once, copied into
// the engine's own memory and the handed array zeroized; a result that fails the check answers
// 5000, naming what was wrong (never the bytes), before anything changed.
import { isKeyHandle, type KeyHandle, type SecureEnvironmentBackend } from '../backends/backend.ts';
import { secretBytes } from '../core/bytes.ts';
import { InvalidInputError, isBytes, shown, stillReadable } from '../core/errors.ts';
import { McsError, RSC } from './rsc.ts';

/** The 5000 of a result that breaks the contract: `what` says what it was, never its bytes. */
export const broken = (what: string) => new McsError(RSC.INTERNAL_SERVER_ERROR, `internal error (backend gave ${what})`);

/** Zeroizes an array the engine is done with; one that cannot be written (detached, frozen by a proxy) is left as it is. */
export function zeroize(bytes: Uint8Array): void {
  try {
    bytes.fill(0);
  } catch {
    // nothing left to zeroize, or nothing the engine can reach
  }
}

/**
 * `v` when it is a readable Uint8Array of `min` to `max` bytes; else the 5000 naming `what` (a noun
 * with its article: 'a digest'). The array stays the backend's: for a value the engine reads at
 * once and lets go (an exported key it encodes, then zeroizes).
 */
export function checked(v: unknown, what: string, min: number, max: number): Uint8Array {
  if (!isBytes(v)) throw broken(`${what} that is ${shown(v)}, a Uint8Array expected`);
  try {
    stillReadable(v, what);
  } catch (e) {
    throw e instanceof InvalidInputError ? broken(`${what} that is a view of a detached or shrunk buffer`) : e;
  }
  if (v.length < min || v.length > max) throw broken(`${what} of ${v.length} bytes, ${min === max ? min : max === Infinity ? `at least ${min}` : `${min} to ${max}`} expected`);
  return v;
}

/** A byte result the engine keeps: checked, copied into memory of its own (secretBytes), the backend's array zeroized. */
export function ownCopy(v: unknown, what: string, min: number, max = min): Uint8Array {
  const bytes = checked(v, what, min, max);
  const own = secretBytes(bytes.length);
  own.set(bytes);
  zeroize(bytes);
  return own;
}

/** verify()'s answer: a boolean, nothing that merely looks like one ("false" is truthy). */
export function verdict(v: unknown): boolean {
  if (typeof v !== 'boolean') throw broken(`a verification result that is ${shown(v)}, a boolean expected`);
  return v;
}

/**
 * A key importKey, generateKey or loadKey gave: a handle registered with markKeyHandle, whose size
 * the memory quota can count. Anything else is released (the backend may hold something for it)
 * and answers 5000: an unregistered object would be kept and shown as a plain value.
 */
export function keyHandle(backend: SecureEnvironmentBackend, v: unknown): KeyHandle {
  let wrong: string | undefined;
  if (!isKeyHandle(v)) wrong = `a key handle not made with markKeyHandle (${shown(v)})`;
  else if (!(Number.isSafeInteger(v.size) && v.size >= 0)) wrong = `a key whose size is ${shown(v.size)}, a non-negative integer expected`;
  if (wrong === undefined) return v as KeyHandle;
  try {
    backend.releaseKey(v as KeyHandle);
  } catch {
    // the backend's to clean up: the engine keeps nothing of it
  }
  throw broken(wrong);
}

/** memoryInfo()'s answer: two non-negative integers; else `wrong(what it was)`, by default the 5000. */
export function memoryFigures(v: unknown, wrong: (what: string) => Error = broken): { total: number; available: number } {
  const m = v as { total?: unknown; available?: unknown } | null;
  const ok = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (typeof m !== 'object' || m === null || !ok(m.total) || !ok(m.available)) {
    throw wrong(`memory figures that are not two non-negative integers (total ${shown(m?.total)}, available ${shown(m?.available)})`);
  }
  return { total: m.total, available: m.available };
}

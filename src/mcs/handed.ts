// The boundary between the engine and what a backend hands back (docs/mcs.md "Writing a backend").
// A backend may be anyone's code. Each byte result is checked here once (a readable Uint8Array of
// the length the algorithm or request fixes) and then taken over as it is: the contract says a
// result is a fresh array the backend no longer uses, and copying every result into memory of the
// engine's own (an ArrayBuffer per result: 0.34 us for a digest, 0.65 us for 1 KiB, 7-13 % of an
// UPDATE + RETRIEVE pair) would not pay for a backend that broke it. A result that fails the check
// answers 5000, naming what was wrong (never the bytes), before anything changed.
import { describeKeyLengths, keyLengthAllowed, PUBLIC_KEY_LENGTHS } from '../backends/algorithms.ts';
import { isKeyHandle, type BackendCapabilities, type KeyHandle, type KeyKind, type KeySpec, type StoredKey } from '../backends/backend.ts';
import { storedKeyFault } from '../backends/checks.ts';
import { specInfo } from '../backends/key-material.ts';
import { InvalidInputError } from '../core/errors.ts';
import { isBytes, shown, stillReadable } from '../core/args.ts';
import type { SeHost } from './host.ts';
import { McsError, RSC } from './rsc.ts';
import { unawaited } from './settle.ts';

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
 * with its article: 'a digest'), an array of the wrong length zeroized.
 */
export function checked(v: unknown, what: string, min: number, max = min): Uint8Array {
  if (!isBytes(v)) throw broken(`${what} that is ${shown(v)}, a Uint8Array expected`);
  try {
    stillReadable(v, what);
  } catch (e) {
    throw e instanceof InvalidInputError ? broken(`${what} that is a view of a detached or shrunk buffer`) : e;
  }
  if (v.length < min || v.length > max) {
    // Handed over all the same: a refused plaintext or random bytes are the engine's to zeroize.
    zeroize(v);
    throw broken(`${what} of ${v.length} bytes, ${min === max ? min : max === Infinity ? `at least ${min}` : `${min} to ${max}`} expected`);
  }
  return v;
}

/** The methods each stream a backend opens must have (backend.ts). */
const STREAM_METHODS = {
  'cipher stream': ['update', 'final', 'abort'],
  'digest stream': ['update', 'final', 'abort'],
  'signature stream': ['update', 'sign', 'verify', 'abort'],
} as const;

/**
 * A stream cipher(), digest() or signature() opened: an object with the contract's methods. Anything
 * else answers 5000 naming what it was or the method it lacks, where calling it would have thrown
 * the runtime's TypeError (reported as nothing more than `internal error (TypeError)`).
 */
export function opened<T>(v: T, what: keyof typeof STREAM_METHODS): T {
  if (typeof v !== 'object' || v === null) throw broken(`a ${what} that is ${shown(v)}, an object expected`);
  const missing = STREAM_METHODS[what].find((m) => typeof (v as Record<string, unknown>)[m] !== 'function');
  if (missing === undefined) return v;
  try {
    const abort = (v as { abort?: unknown }).abort;
    if (typeof abort === 'function') abort.call(v);
  } catch {
    // abort() must not throw; the engine keeps nothing of this stream either way
  }
  throw broken(`a ${what} without ${missing}()`);
}

/** verify()'s answer: a boolean, nothing that merely looks like one ("false" is truthy). */
export function verdict(v: unknown): boolean {
  if (typeof v !== 'boolean') throw broken(`a verification result that is ${shown(v)}, a boolean expected`);
  return v;
}

/**
 * A key importKey, generateKey or loadKey gave: a handle registered with markKeyHandle, whose size
 * the memory quota can count. Anything else answers 5000 (an unregistered object would be kept and
 * shown as a plain value), or for a key loaded at open fails the create naming the backend; a key
 * just made is deleted (a device would keep it in a slot nothing names), one loaded only released
 * (the directory still names it).
 */
export function keyHandle(host: SeHost, v: unknown, origin: 'made' | 'loaded'): KeyHandle {
  let what: string | undefined;
  if (!isKeyHandle(v)) what = `a key handle not made with markKeyHandle (${shown(v)})`;
  else if (!(Number.isSafeInteger(v.size) && v.size >= 0)) what = `a key whose size is ${shown(v.size)}, a non-negative integer expected`;
  if (what === undefined) return v as KeyHandle;
  try {
    if (origin === 'made') host.deleteKey(v as KeyHandle);
    else unawaited(host.backend.releaseKey(v as KeyHandle));
  } catch {
    // the backend's to clean up: the engine keeps nothing of it
  }
  throw origin === 'made' ? broken(what) : new InvalidInputError(`SE backend '${host.backend.description.uniqueId}': loadKey() gave ${what}`);
}

/**
 * What storeKey gave for `key`, checked before the journal seals it: a record that loadKey or the
 * next open cannot read would fail McsEngine.create for every SE of the directory. Its form is the
 * one keyStorage names, its kind the key's, its material as keyBytes() takes it. Refused material
 * is zeroized.
 */
export function storedKey(key: KeyHandle, keyStorage: BackendCapabilities['keyStorage'], v: unknown): StoredKey {
  const material = (v as { bytes?: unknown } | null)?.bytes;
  try {
    const fault = storedKeyFault(v);
    if (fault !== undefined) throw broken(fault);
    const s = v as StoredKey;
    if (s.kind !== key.kind) throw broken(`a stored key of kind '${s.kind}' for a key of another kind`);
    const form = keyStorage === 'host' ? 'material' : 'reference';
    if (s.form !== form) throw broken(`a stored key of form '${s.form}', '${form}' expected (keyStorage '${keyStorage}')`);
    if (s.form === 'material') keyBytes(s.bytes, "a stored key's material", key.spec, s.kind);
    return s;
  } catch (e) {
    if (isBytes(material)) zeroize(material);
    throw e;
  }
}

/**
 * Key material a backend gave (a stored key's, an exported key): a readable array of a length the
 * key's algorithm takes for its kind (the table's rule: validating a public point on every write
 * would cost more than it finds).
 */
export function keyBytes(v: unknown, what: string, spec: KeySpec, kind: KeyKind): Uint8Array {
  const bytes = checked(v, what, 0, Infinity);
  const info = specInfo(spec);
  const curve = 'curve' in info ? info.curve : undefined;
  if (kind === 'public' ? !curve || bytes.length !== PUBLIC_KEY_LENGTHS[curve] : !keyLengthAllowed(info.keyLengths, bytes.length)) {
    throw broken(`${what} of ${bytes.length} bytes, ${kind === 'public' ? (curve ? `${PUBLIC_KEY_LENGTHS[curve]} bytes` : 'none (no public key)') : describeKeyLengths(info.keyLengths)} expected`);
  }
  return bytes;
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

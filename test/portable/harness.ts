// A runtime-neutral test harness: the vector suites are plain data and
// functions, run by vitest on Node (test/node), Deno.test (test/deno) and a
// page in headless Chromium (test/browser). No runner API is used here.

/** Reads a file below test/vectors/ as text (fs, Deno.readTextFile or fetch). */
export type ReadVector = (path: string) => Promise<string>;

export interface PortableCase {
  name: string;
  run(read: ReadVector): void | Promise<void>;
}

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function unhex(s: string): Uint8Array {
  if (s.length % 2) throw new Error(`odd-length hex: ${s.length}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const v = parseInt(s.slice(2 * i, 2 * i + 2), 16);
    if (Number.isNaN(v)) throw new Error('bad hex');
    out[i] = v;
  }
  return out;
}

export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function ok(cond: unknown, message: string): asserts cond {
  if (!cond) throw new AssertionError(message);
}

export function equal<T>(actual: T, expected: T, message: string): void {
  if (actual !== expected) throw new AssertionError(`${message}: expected ${String(expected)}, got ${String(actual)}`);
}

export function equalHex(actual: Uint8Array, expectedHex: string, message: string): void {
  const got = hex(actual);
  if (got !== expectedHex.toLowerCase()) throw new AssertionError(`${message}: expected ${expectedHex}, got ${got}`);
}

export function equalBytes(actual: Uint8Array, expected: Uint8Array, message: string): void {
  equalHex(actual, hex(expected), message);
}

/** Asserts that fn throws an instance of `type` whose message matches `pattern` (if given). */
export function throws(fn: () => unknown, type: abstract new (...a: never[]) => Error, message: string, pattern?: RegExp): Error {
  try {
    fn();
  } catch (e) {
    ok(e instanceof type, `${message}: expected ${type.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    if (pattern) ok(pattern.test((e as Error).message), `${message}: message '${(e as Error).message}' does not match ${pattern}`);
    return e as Error;
  }
  throw new AssertionError(`${message}: expected ${type.name} to be thrown`);
}

/** Deterministic pseudo-random bytes (xorshift) so failures reproduce on every runtime. */
export function prng(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13; s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5; s >>>= 0;
      out[i] = s & 0xff;
    }
    return out;
  };
}

/** A deterministic choice in [0, n). */
export type Chooser = (n: number) => number;

/** A Chooser from the seed's byte stream (the fuzz and campaign tests' picker). */
export function chooser(seed: number): Chooser {
  const bytes = prng(seed);
  return (n) => ((bytes(4)[0]! << 16) | (bytes(1)[0]! << 8) | bytes(1)[0]!) % n;
}

/** Whether `haystack` holds `needle` as a run of bytes. */
export function holds(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

// A request's content as it is at one moment. A caller may change or wipe
// what it passed as soon as the call returned, while the request still waits
// to be read (behind another request, an expiration or a store write): the
// byte values are copied (and listed, to be zeroized once the request was
// served), objects and arrays too; strings and numbers are immutable.
import { isBytes } from '../core/errors.ts';

/** Deeper than any content the resource types accept; what lies below is refused when read, not copied. */
const MAX_DEPTH = 16;

export function snapshot<T>(value: T, copies: Uint8Array[], depth = 0): T {
  if (isBytes(value)) {
    const c = new Uint8Array(value);
    copies.push(c);
    return c as T;
  }
  if (typeof value !== 'object' || value === null || depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v: unknown) => snapshot(v, copies, depth + 1)) as T;
  // A spread keeps own members named like Object.prototype's (__proto__ from JSON.parse) as members.
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const k in out) out[k] = snapshot(out[k], copies, depth + 1);
  return out as T;
}

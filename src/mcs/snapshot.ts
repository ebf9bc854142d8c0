// A request's content as it is at one moment. A caller may change or wipe
// what it passed as soon as the call returned, while the request still waits
// to be read (behind another request, an expiration or a store write): the
// byte values are copied (and listed, to be zeroized once the request was
// served), objects and arrays too; strings and numbers are immutable.
import { isBytes } from '../core/errors.ts';
import { badRequest } from './rsc.ts';

/** Deeper than any content the resource types accept; what lies below is refused when read, not copied. */
const MAX_DEPTH = 16;
/**
 * Far more values than any content the types accept (a policy of 64 rules of
 * 256 originators is some 16,000): content shared many times over, or
 * cyclic, is refused here in bounded time instead of being copied as a tree.
 */
const MAX_VALUES = 100_000;

/** The copy; a BAD_REQUEST (4000) when the content holds more than MAX_VALUES values. */
export function snapshot<T>(value: T, copies: Uint8Array[]): T {
  const budget = { left: MAX_VALUES };
  return copy(value, copies, 0, budget);
}

function copy<T>(value: T, copies: Uint8Array[], depth: number, budget: { left: number }): T {
  if (--budget.left < 0) throw badRequest('request content too large to be read (shared or cyclic values?)');
  if (isBytes(value)) {
    const c = new Uint8Array(value);
    copies.push(c);
    return c as T;
  }
  if (typeof value !== 'object' || value === null || depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v: unknown) => copy(v, copies, depth + 1, budget)) as T;
  // A spread keeps own members named like Object.prototype's (__proto__ from JSON.parse) as members.
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const k in out) out[k] = copy(out[k], copies, depth + 1, budget);
  return out as T;
}

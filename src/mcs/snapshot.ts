// A request's content as it is at one moment. A caller may change or wipe
// what it passed as soon as the call returned, while the request still waits
// to be read (behind another request, an expiration or a store write): the
// byte values are copied (and listed, to be zeroized once the request was
// served), objects and arrays too; strings and numbers are immutable.
import { secretCopyArg } from '../core/bytes.ts';
import { isBytes } from '../core/args.ts';
import { badRequest } from './rsc.ts';

/**
 * Levels of objects and arrays a request's content may nest, pc at level 0:
 * deeper than any content the resource types accept. The copy does not read
 * below it (what it left would be read later than it was sent): an object
 * there becomes TOO_DEEP, which the checks refuse where they refuse the
 * content of a request read at once (decodeRequestValue: any object this deep,
 * naming its attribute), so both paths answer the same 4000.
 */
export const MAX_DEPTH = 16;

/** An object or array nested deeper than MAX_DEPTH, not read: no data object (isDataObject), so no check can take it for one. */
const TOO_DEEP: object = Object.freeze({ [Symbol.toStringTag]: 'nested deeper than the request content may be' });
/**
 * Far more values than any content the types accept (a policy of 64 rules of
 * 256 originators is some 16,000): content shared many times over, or
 * cyclic, is refused here in bounded time instead of being copied as a tree.
 */
const MAX_VALUES = 100_000;

/**
 * The copy (own enumerable members only, each read once; TOO_DEEP below
 * MAX_DEPTH). Throws a BAD_REQUEST (4000) for content with more than
 * MAX_VALUES values, InvalidInputError for a byte value that is a view
 * of a detached buffer (named by its member), and whatever a getter or proxy
 * trap of the content throws.
 */
export function snapshot<T>(value: T, copies: Uint8Array[]): T {
  const budget = { left: MAX_VALUES };
  return copy(value, copies, 0, budget, 'content');
}

function copy<T>(value: T, copies: Uint8Array[], depth: number, budget: { left: number }, name: string): T {
  if (--budget.left < 0) throw tooMuch();
  if (isBytes(value)) {
    // Outside the JS heap, as any byte value may be a key or a message: a garbage collection that moves a
    // small array leaves its old bytes where the zeroization after the request cannot reach.
    const c = secretCopyArg(value, name);
    copies.push(c);
    return c as T;
  }
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) return TOO_DEEP as T;
  if (Array.isArray(value)) {
    // Its length read once, and bounded before the walk (a sparse array may claim billions of members).
    const n = value.length;
    if (!(n <= budget.left)) throw tooMuch();
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(copy(value[i] as unknown, copies, depth + 1, budget, name));
    return out as T;
  }
  // Any other kind of object (a Date, a boxed string, another typed array) no attribute takes: it stays
  // as it is for the checks to refuse, as they refuse it in a request read at once (a copy of its
  // members would be a plain object they take).
  if (!isDataObject(value)) return value;
  // A spread keeps own members named like Object.prototype's (__proto__ from JSON.parse) as members.
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const k of Object.keys(out)) out[k] = copy(out[k], copies, depth + 1, budget, k);
  return out as T;
}

/**
 * An object JSON reads member by member (a class instance too): not a Date, boxed value, Map,
 * typed array or other object with internal slots, and without a toJSON of its own or inherited.
 */
export function isDataObject(v: object): boolean {
  return Object.prototype.toString.call(v) === '[object Object]' && typeof (v as { toJSON?: unknown }).toJSON !== 'function';
}

const tooMuch = () => badRequest('request content too large to be read (shared or cyclic values?)');

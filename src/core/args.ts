// Argument validators of the public entry points: what a caller gave, checked
// through internal slots no property can fake, refused with an InvalidInputError
// that names the parameter; and a caller's value as a message may show it
// (never key, nonce or data bytes).
import { failureKind, InvalidInputError } from './errors.ts';

// The getters of %TypedArray%.prototype read a typed array's internal slots
// (also for one from another realm) and throw or answer undefined for
// anything else: unlike `constructor.name`, `length` or `instanceof`, no
// object can claim them.
const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array.prototype) as object;
const slot = <T>(key: PropertyKey) => Object.getOwnPropertyDescriptor(TYPED_ARRAY, key)!.get! as (this: unknown) => T;
const typedArrayName = slot<string | undefined>(Symbol.toStringTag);
const bufferOf = slot<ArrayBufferLike>('buffer');
const byteOffsetOf = slot<number>('byteOffset');
const byteLengthOf = slot<number>('byteLength');

export function isBytes(x: unknown): x is Uint8Array {
  return typedArrayName.call(x) === 'Uint8Array';
}

/**
 * A caller's value as an error message may show it: numbers, booleans and
 * nullish values as they are, anything else by its type (and a string by its
 * length) only, so that a secret passed by mistake (a key as `tagLength`, a
 * passphrase or a hex key as the hash name) never reaches a message or a
 * log. The messages name the values that are accepted instead.
 */
export function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'bigint') return value >= -(2n ** 32n) && value <= 2n ** 32n ? `${value}n` : 'a bigint of more than 32 bits';
  if (typeof value === 'string') return `a string of ${value.length} character${value.length === 1 ? '' : 's'}`;
  return `a value of type ${typeName(value)}`;
}

/**
 * Array.isArray that answers false where it would throw: for a revoked Proxy it throws a
 * TypeError, which would escape in place of the typed refusal of what was given.
 */
export function isArraySafe(value: unknown): boolean {
  try {
    return Array.isArray(value);
  } catch {
    return false;
  }
}

/** The type of a value for a message: its own name for built-ins and classes, never text the value carries. */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (isArraySafe(value)) return 'array';
  if (typeof value !== 'object') return typeof value;
  const typed = typedArrayName.call(value);
  if (typed) return typed;
  let name: unknown;
  try {
    name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  } catch {
    // a getter or a proxy that throws: the type is all there is to say
  }
  // An object that only inherits from a typed array's prototype is no typed array (the slot said so).
  return typeof name === 'string' && /^[A-Za-z_$][\w$]{0,39}$/.test(name) && !/^(Big)?(Int|Uint|Float)\d+(Clamped)?Array$/.test(name) ? name : 'object';
}

/** The names an options argument may carry, declared once beside its type: every key of `T` and no other. */
export type OptionNames<T> = { readonly [K in keyof Required<T>]: true };

const hasOwn = Object.hasOwn;

/**
 * An options argument: undefined or null (none), or an object. Anything else
 * would be read as no options at all, so that `cbc(k, iv, 'none')` padded.
 * Binary data is no object of options either: `cbc(k, iv, aad)`,
 * `hmacDrbg(personalization)` or `sign(m, k, extraEntropy)` would otherwise
 * drop the bytes unread. A name the function does not know is refused too: a
 * misspelt option (`{ datadir }`, `{ tagLenght: 8 }`) would otherwise be
 * ignored and its default taken in silence (an engine in memory, a 16-byte tag).
 */
export function optionsArg<T extends object>(opts: T | null | undefined, name: string, known: { readonly [K in keyof T]?: true }): T | undefined {
  if (opts === undefined || opts === null) return undefined;
  let names: string[] | undefined;
  try {
    // Own names only: inherited ones would take a walk up the prototype chain (a Proxy's trap).
    if (typeof opts === 'object' && !Array.isArray(opts) && !isBinary(opts)) names = Object.keys(opts);
  } catch (e) {
    // A revoked Proxy, or one whose ownKeys trap throws: the runtime's TypeError or the trap's own error otherwise.
    throw new InvalidInputError(`${name} cannot be read (${failureKind(e)})`);
  }
  if (!names) throw new InvalidInputError(`${name} must be an object of options, got ${typeName(opts)}`);
  for (const k of names) {
    if (!hasOwn(known, k)) throw new InvalidInputError(`unknown option ${optionName(k)} in ${name} (known: ${Object.keys(known).join(', ')})`);
  }
  return opts;
}

/** An unknown option's name for a message: a name as code spells one, else only its length (it may be anything). */
function optionName(k: string): string {
  return /^[A-Za-z_$][\w$]{0,39}$/.test(k) ? `'${k}'` : `named by ${shown(k)}`;
}

// ArrayBuffer.prototype's byteLength getter reads the internal slot (no Proxy trap runs), and throws for anything else.
const arrayBufferLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!;
const sharedBufferLength = typeof SharedArrayBuffer === 'function' ? Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, 'byteLength')?.get : undefined;

const tagOf = Object.prototype.toString;

/**
 * Whether `x` is a typed array, a DataView or an (Shared)ArrayBuffer: read through internal slots.
 * The buffers' getters throw for anything else, and a throw costs microseconds (its stack): only an
 * object whose tag says buffer is asked, so options objects, on every request's path, never throw.
 */
function isBinary(x: object): boolean {
  if (ArrayBuffer.isView(x)) return true;
  const tag = tagOf.call(x);
  if (tag !== '[object ArrayBuffer]' && tag !== '[object SharedArrayBuffer]') return false;
  for (const length of [arrayBufferLength, sharedBufferLength]) {
    try {
      length?.call(x);
      return true;
    } catch {
      // not this kind of buffer
    }
  }
  return false;
}

/** A yes/no option: absent (undefined or null) is `absent`; anything but true or false is refused, not read as truthy. */
export function flagArg(value: unknown, name: string, absent: boolean): boolean {
  if (value === undefined || value === null) return absent;
  if (typeof value !== 'boolean') throw new InvalidInputError(`${name} must be true or false, got ${shown(value)}`);
  return value;
}

/** Throws InvalidInputError unless `value` is a Uint8Array. */
export function assertBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!isBytes(value)) {
    throw new InvalidInputError(`${name} must be a Uint8Array, got ${typeName(value)}`);
  }
}

// Present where the runtime has resizable ArrayBuffers and growable SharedArrayBuffers.
const resizableOf = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get;
const growableOf = typeof SharedArrayBuffer === 'function' ? Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, 'growable')?.get : undefined;

/** The byte length in a Uint8Array's internal slot (its `length` may lie). */
export function slotLength(b: Uint8Array): number {
  return byteLengthOf.call(b);
}

/**
 * A caller's Uint8Array whose bytes and length stay as they are while the
 * facade uses it without running caller code: the array itself when its
 * buffer has a fixed size (for a loop that reads it only through slotLength
 * and TypedArray.prototype.set, which no property can change), else a
 * fixed-length view (bytesArg; a length-tracking view of a resizable buffer,
 * or of a growable one another thread may grow, could outgrow its measure).
 * Refuses as bytesArg does, naming `name()`; makes no view in the common
 * case (hashMany's per-message cost).
 */
export function fixedBytes(value: unknown, name: () => string): Uint8Array {
  if (!isBytes(value)) assertBytes(value, name());
  return variableSize(bufferOf.call(value)) || byteLengthOf.call(value) === 0 ? bytesArg(value, name()) : value;
}

/** Whether a buffer can change its size (the getters tell an ArrayBuffer from a SharedArrayBuffer by throwing, also across realms). */
function variableSize(buffer: ArrayBufferLike): boolean {
  try {
    return resizableOf?.call(buffer) === true;
  } catch {
    // a SharedArrayBuffer
  }
  try {
    return growableOf?.call(buffer) === true;
  } catch {
    return false;
  }
}

/**
 * A caller's Uint8Array as a plain one over the same bytes, built from its
 * internal slots; InvalidInputError for anything else and for a view of a
 * detached buffer (which would read as empty, or throw from deep inside). The
 * facade reads and copies only this view: a Buffer's slice() is a view, not
 * a copy, and a subclass or an own property can lie about length, slice,
 * subarray or set, which would make the core read past the data or write
 * past the I/O window. About 35 ns a view on Node 20 (a micro-benchmark, docs/performance-log.md).
 */
export function bytesArg(value: unknown, name: string): Uint8Array {
  assertBytes(value, name);
  const buffer = bufferOf.call(value), offset = byteOffsetOf.call(value), length = byteLengthOf.call(value);
  // A detached buffer reports offset and length 0, and no view of it can be made.
  let view: Uint8Array;
  try {
    view = new Uint8Array(buffer, offset, length);
  } catch {
    throw unreadableView(value as Uint8Array, name);
  }
  // So does a fixed-length view its resizable buffer shrank below: refused, not read as no data.
  if (length === 0 && outOfBounds(value)) throw unreadableView(value as Uint8Array, name);
  return view;
}

/**
 * Throws InvalidInputError when a view bytesArg gave has since lost its bytes
 * (the caller's code, an entropy source say, detached or shrank its buffer).
 */
export function stillReadable(view: Uint8Array, name: string): void {
  if (outOfBounds(view)) throw unreadableView(view, name);
}

const atOf = (TYPED_ARRAY as { at?: (this: unknown, index: number) => unknown }).at;

/** Whether a typed array lies outside its buffer (detached, or a resizable buffer shrank below it): at() refuses such a one. */
function outOfBounds(value: unknown): boolean {
  try {
    atOf?.call(value, 0);
    return false;
  } catch {
    return true;
  }
}

/** The refusal of a view that cannot be read, saying why: its buffer was detached, or shrank below it. */
export function unreadableView(value: Uint8Array, name: string): InvalidInputError {
  try {
    // A live buffer, resizable or not, takes an empty view at 0; a detached one takes none.
    new Uint8Array(bufferOf.call(value), 0, 0);
  } catch {
    return new InvalidInputError(`${name} is a view of a detached ArrayBuffer`);
  }
  return new InvalidInputError(`${name} is a view past the end of its resized ArrayBuffer`);
}

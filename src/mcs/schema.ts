// How a resource type is declared: its attributes with their access (RO, WO
// write-once, RW), create/update optionality (M, O, NP), data type and short
// name; its children and virtual resources. One generic engine
// (src/mcs/engine.ts) enforces these declarations for every type; a type's
// module adds only what is special to it through the hooks below.
import { badRequest, McsError, RSC } from './rsc.ts';
import { base64Length, fromBase64, keyFromBase64, parseTimestamp } from './codec.ts';
import type { Resource } from './resource.ts';
import type { Context } from './context.ts';
import type { Change } from './change.ts';
import type { MaybePromise } from '../backends/backend.ts';
import { bytesArg, isBytes, unreadableView } from '../core/args.ts';
import { secretCopy } from '../core/bytes.ts';
import { isDataObject, MAX_DEPTH } from './snapshot.ts';

export type Access = 'RO' | 'WO' | 'RW';
export type Optionality = 'M' | 'O' | 'NP';

export type ValueType =
  | { kind: 'bytes' }
  | { kind: 'uint' }
  | { kind: 'enum'; values: readonly number[]; table: string }
  | { kind: 'bool' }
  | { kind: 'string'; values?: readonly string[]; pattern?: { re: RegExp; text: string } }
  | { kind: 'time' }
  | { kind: 'ids' }
  | { kind: 'uints'; unique?: boolean }
  /** JSON; `object` names the complex data type the value must be an object of. */
  | { kind: 'any'; object?: string };

export interface AttributeDef {
  /** Long name (TS-0016 clause 7); the key of Resource.attrs. */
  name: string;
  /** Short name (clause 10.1 or TS-0004), unique within the type. */
  sn: string;
  access: Access;
  create: Optionality;
  update: Optionality;
  type: ValueType;
  /** 'exportable': shown only when the resource was created with keyExportable; default: shown. */
  read?: 'exportable';
  /**
   * Multiplicity 1, and filled in by the SE at CREATE when the client gives
   * none: an UPDATE may change the value but not remove it (null is a 4000).
   */
  always?: boolean;
  /** Sealed at rest (AES-256-GCM) by the persistent store. */
  secret?: boolean;
  /** A key's bytes: its base64 text is read and written in constant time (codec.ts). */
  key?: boolean;
  /** UPDATE appends to the value (clause 7.5.1.1.3); the data is streamed to the backend. */
  append?: boolean;
  /** The value's byte length may not exceed the number held in this attribute (maxByteSize). */
  maxFrom?: string;
  /** Computed: the byte length of that attribute's value (currentByteSize); never stored. */
  sizeOf?: string;
  /**
   * A CREATE may give it as null, which asks the SE to fill it in (TS-0004's
   * creator); any other value there is still refused.
   */
  nullAsksAtCreate?: boolean;
  /**
   * Computed by the SE (RO), yet a table lists it in requests (currentByteSize M at CREATE of
   * <sensitiveDataObject>, SEType O of <SE>): a request may state it where its optionality
   * permits, and is refused (4000) unless the value is the one the SE computes. Nothing is
   * stored from it.
   */
  stated?: boolean;
}

/** A virtual child (clause 7.5: encrypt, decrypt, generateKey, ...): a RETRIEVE that acts on its parent. */
export interface VirtualDef {
  name: string;
  sn: string;
  /** Attributes of the parent returned in the response. */
  result: readonly string[];
  /**
   * Runs the operation and writes what it changes in the parent (its
   * results, the end of the message held) into `change`, never into the
   * resource: the engine applies the change once it fits the quota and is
   * durable. A run that fails may leave a change too (a failed decryption
   * still consumed the message), which is applied before the error is
   * answered; it must leave nothing else. It finishes without a promise when
   * the backend answered without one, and fails by throwing or rejecting.
   */
  run(ctx: Context, res: Resource, change: Change): MaybePromise<void>;
}

export interface ResourceType {
  ty: number;
  name: string;
  /** JSON root element, e.g. 'senv:Cph'; `longRoot` ('senv:cipher') is accepted too. */
  root: string;
  longRoot: string;
  /** Whether the type has et, acpi, lbl, cr beyond the universal ty, ri, rn, pi, ct, lt. */
  common: readonly ('et' | 'acpi' | 'lbl' | 'cr')[];
  attributes: readonly AttributeDef[];
  /** The child resource types its table lists, implemented or not (registry.ts NOT_IMPLEMENTED): any other is 4108. */
  children: readonly number[];
  /** Most instances under one parent (e.g. 0..1 in the spec's child tables). */
  maxPerParent?: number;
  /** Created by the engine only (deviceInfo, memory). */
  systemOnly?: boolean;
  /**
   * Created without acpi, it takes a copy of its parent's (the tables of
   * <cipher>, <rand>, <hash>, <signature>: "the accessControlPolicyIDs of the
   * parent resource is linked to this attribute"). A resource without acpi
   * is checked against its parent's at each request (access.ts).
   */
  acpiFromParent?: boolean;
  virtuals?: readonly VirtualDef[];
  hooks?: TypeHooks;
}

// Hooks run before the request's change is durable and applied, so they
// change nothing but the resource being created or the `changes` they are
// given; an effect on anything else (dropping a stream, rebooting) goes to
// ctx.effects and runs only once the change took effect. The exception is
// data a device must hold before the record says so (<sensitiveDataObject>
// on an objectStore; docs/mcs.md "Failed writes").
export interface TypeHooks {
  /** After generic validation, before the resource is linked: check the rules of the type, set computed attributes, import keys. */
  create?(ctx: Context, res: Resource): Promise<void>;
  /**
   * Before `changes` (validated, internal values; null removes an
   * attribute) are applied; may rewrite them (delete, add, replace).
   * Synchronous where it can be: UPDATE is the hot path.
   */
  update?(ctx: Context, res: Resource, changes: Map<string, unknown>): Promise<void> | void;
  /**
   * Refreshes computed attributes before a representation is built; may
   * return values to show instead of the stored ones (zeroized after the
   * response is built).
   */
  retrieve?(ctx: Context, res: Resource): Promise<ReadonlyMap<string, Uint8Array> | void>;
  /**
   * Cleans up outside the host before the resource is deleted (data kept on
   * the device), and when its CREATE failed after create(); must be
   * idempotent (a DELETE whose write failed is repeated).
   */
  delete?(ctx: Context, res: Resource): Promise<void>;
  /** The resource left the tree (DELETE, expiration, deregistration): effects on others, such as its parent's stream. Never throws. */
  removed?(ctx: Context, res: Resource): void;
  /** Opens the backend stream that UPDATE chunks of the append attribute are fed to; undefined when it cannot stream now. */
  stream?(ctx: Context, res: Resource): Promise<StreamSink | undefined>;
}

/** Where the engine feeds coalesced UPDATE chunks; `tag` tells the type what the stream was opened for. */
export interface StreamSink {
  readonly tag: string;
  /** Whether it gives output (a cipher's): only then is room for it made, which the quota does not count. */
  readonly output?: true;
  /** Output, if any, may be written to `into` (see CipherStream). */
  update(data: Uint8Array, into: Uint8Array): Promise<Uint8Array | void>;
  abort(): void;
}

/** creator (TS-0004): set by the SE at every CREATE; a CREATE may ask for it with null. */
export const CREATOR: AttributeDef = { name: 'creator', sn: 'cr', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'string' }, nullAsksAtCreate: true };

// Universal and common attributes (TS-0001 clause 9.6.1.3, short names of TS-0004).
const COMMON: Readonly<Record<string, AttributeDef>> = {
  ty: { name: 'resourceType', sn: 'ty', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'uint' } },
  ri: { name: 'resourceID', sn: 'ri', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'string' } },
  rn: { name: 'resourceName', sn: 'rn', access: 'WO', create: 'O', update: 'NP', type: { kind: 'string', pattern: { re: /^(?!\.\.?$)[A-Za-z0-9._~-]{1,64}$/, text: '1 to 64 of A-Z a-z 0-9 . _ ~ -, not . or ..' } } },
  pi: { name: 'parentID', sn: 'pi', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'string' } },
  ct: { name: 'creationTime', sn: 'ct', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'time' } },
  lt: { name: 'lastModifiedTime', sn: 'lt', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'time' } },
  et: { name: 'expirationTime', sn: 'et', access: 'RW', create: 'O', update: 'O', type: { kind: 'time' } },
  acpi: { name: 'accessControlPolicyIDs', sn: 'acpi', access: 'RW', create: 'O', update: 'O', type: { kind: 'ids' } },
  lbl: { name: 'labels', sn: 'lbl', access: 'RW', create: 'O', update: 'O', type: { kind: 'ids' } },
  cr: CREATOR,
};

const UNIVERSAL = ['ty', 'ri', 'rn', 'pi', 'ct', 'lt'] as const;

/** Every attribute of a type, universal and common first, with lookups by long and short name. */
export interface CompiledType {
  type: ResourceType;
  all: readonly AttributeDef[];
  bySn: ReadonlyMap<string, AttributeDef>;
  byName: ReadonlyMap<string, AttributeDef>;
  virtuals: ReadonlyMap<string, VirtualDef>;
  /** What a virtual resource's response shows: resourceID and its result attributes. */
  results: ReadonlyMap<VirtualDef, readonly AttributeDef[]>;
  /** The computed size attribute (currentByteSize) of a byte attribute. */
  sizeOf: ReadonlyMap<string, AttributeDef>;
  /** Attributes whose length another attribute limits (maxFrom). */
  limited: readonly AttributeDef[];
  /** Computed attributes a request may state (AttributeDef.stated). */
  stated: readonly AttributeDef[];
  /** What an UPDATE of these attributes (names joined) answers with: filled as UPDATEs come. */
  replies: Map<string, AttributeDef[]>;
  appendAttr?: AttributeDef;
}

export function compile(type: ResourceType): CompiledType {
  const all = [...UNIVERSAL.map((k) => COMMON[k]!), ...type.common.map((k) => COMMON[k]!), ...type.attributes];
  const bySn = new Map<string, AttributeDef>();
  const byName = new Map<string, AttributeDef>();
  for (const a of all) {
    if (bySn.has(a.sn) || byName.has(a.name)) throw new Error(`${type.name}: duplicate attribute ${a.name}/${a.sn}`);
    bySn.set(a.sn, a);
    byName.set(a.name, a);
  }
  const virtuals = new Map<string, VirtualDef>();
  for (const v of type.virtuals ?? []) {
    virtuals.set(v.name, v);
    virtuals.set(v.sn, v);
  }
  const results = new Map<VirtualDef, AttributeDef[]>();
  for (const v of type.virtuals ?? []) results.set(v, [byName.get('resourceID')!, ...v.result.map((n) => byName.get(n)!)]);
  const sizeOf = new Map(all.filter((a) => a.sizeOf).map((a) => [a.sizeOf!, a]));
  const appends = type.attributes.filter((a) => a.append);
  if (appends.length > 1) throw new Error(`${type.name}: at most one append attribute`);
  return { type, all, bySn, byName, virtuals, results, sizeOf, limited: all.filter((a) => a.maxFrom), stated: all.filter((a) => a.stated), replies: new Map(), appendAttr: appends[0] };
}

const MAX_STRING = 1024;
const MAX_LIST = 256;
/**
 * An attribute's value sits two levels below pc (the root element, then the
 * attribute): an 'any' value may nest objects as deep as a queued request's
 * copy reads below it (snapshot.ts), so both paths refuse the same content,
 * here, with the same text.
 */
const ANY_DEPTH = MAX_DEPTH - 2;

/**
 * Converts a request value to its internal form, or throws 4000 naming the
 * attribute. Given bytes are read through their typed-array internal slots
 * (bytesArg: not their own `length`, `slice` or `set`, which a subclass or an
 * own property can make lie) and become a private copy; with `copy` false,
 * a plain view of the caller's bytes (for a caller that copies them itself).
 */
export function decodeRequestValue(a: AttributeDef, v: unknown, maxBytes: number, copy = true): unknown {
  const bad = (what: string) => badRequest(`${a.sn} (${a.name}) must be ${what}`);
  const t = a.type;
  switch (t.kind) {
    case 'bytes': {
      // Refused before copying or decoding: an oversized value (a key, data) leaves no copy behind, and costs no decode.
      if (typeof v === 'string') {
        if (base64Length(v) > maxBytes) throw tooLarge(a, maxBytes);
        const b = a.key ? keyFromBase64(v) : fromBase64(v, a.secret ? 'secret' : 'public');
        if (!b) throw bad('base64 (RFC 4648, padded)');
        return b;
      }
      let view: Uint8Array;
      try {
        view = bytesArg(v, a.sn);
      } catch {
        // A Uint8Array refused is a view that cannot be read: the message says why.
        throw isBytes(v) ? badRequest(unreadableView(v, `${a.sn} (${a.name})`).message) : bad('bytes (base64 string)');
      }
      if (view.length > maxBytes) throw tooLarge(a, maxBytes);
      return !copy ? view : a.secret ? secretCopy(view) : view.slice();
    }
    case 'uint':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad('a non-negative integer of at most 2^53 - 1');
      return v;
    case 'enum':
      if (typeof v !== 'number' || !t.values.includes(v)) throw bad(`one of ${t.values.join(', ')} (${t.table})`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw bad('a boolean');
      return v;
    case 'string':
      if (t.values) {
        if (typeof v !== 'string' || !t.values.includes(v)) throw bad(`one of ${t.values.map((x) => `'${x}'`).join(', ')}`);
      } else if (t.pattern) {
        if (typeof v !== 'string' || !t.pattern.re.test(v)) throw bad(t.pattern.text);
      } else if (typeof v !== 'string' || v.length === 0 || v.length > MAX_STRING) throw bad(`a string of 1 to ${MAX_STRING} characters`);
      return v;
    case 'time': {
      const ms = typeof v === 'string' ? parseTimestamp(v) : undefined;
      if (ms === undefined) throw bad('a timestamp like 20261122T120000,000000');
      return ms;
    }
    case 'ids': {
      const list = listCopy(v);
      if (!list || !list.every((x) => typeof x === 'string' && x.length > 0 && x.length <= MAX_STRING)) {
        throw bad(`a list of at most ${MAX_LIST} non-empty strings`);
      }
      return list;
    }
    case 'uints': {
      const list = listCopy(v);
      if (!list || !list.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
        throw bad(`a list of at most ${MAX_LIST} non-negative integers of at most 2^53 - 1`);
      }
      const twice = t.unique ? list.find((x, i) => list.indexOf(x) !== i) : undefined;
      if (twice !== undefined) throw bad(`a list without repetitions (${String(twice)} is given twice)`);
      return list;
    }
    case 'any': {
      const value = jsonData(v, a, { left: MAX_JSON });
      if (t.object && (typeof value !== 'object' || value === null || Array.isArray(value))) throw bad(`an object (${t.object})`);
      if (JSON.stringify(value).length > MAX_JSON) throw bad('a JSON value of at most 64 KiB');
      return value;
    }
  }
}

/** What JSON.stringify leaves out of an object (null in an array). */
const omitted = (x: unknown) => x === undefined || typeof x === 'function' || typeof x === 'symbol';

/** A JSON attribute's text, and so its values (each at least one character), at most. */
const MAX_JSON = 65536;

/**
 * A JSON attribute's value as data of its own: objects (own enumerable members), arrays, strings,
 * finite numbers, booleans and null, each member read once and no toJSON called, so that the
 * request read at once and a queued one's copy (snapshot.ts, which copies data objects only) give
 * the same value or the same refusal. As JSON.stringify does, a member that is undefined, a function
 * or a symbol is left out of an object and null in an array.
 */
function jsonData(v: unknown, a: AttributeDef, budget: { left: number }, depth = 0): unknown {
  const bad = (what: string) => badRequest(`${a.sn} (${a.name}) must be JSON: ${what}`);
  if (--budget.left < 0) throw badRequest(`${a.sn} (${a.name}) must be a JSON value of at most 64 KiB`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw bad(`${v} is no JSON number`);
    // JSON has no -0: the value read back after a restart is 0, so it is 0 from the start.
    return v === 0 ? 0 : v;
  }
  if (typeof v !== 'object') throw bad(`a ${typeof v} is no JSON value`);
  if (isBytes(v) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) throw bad('bytes inside it go as base64 text');
  if (depth >= ANY_DEPTH) throw badRequest(`${a.sn} (${a.name}) is nested too deep (request content nests at most ${MAX_DEPTH} levels)`);
  if (Array.isArray(v)) {
    const n = v.length;
    if (!(n <= budget.left)) throw badRequest(`${a.sn} (${a.name}) must be a JSON value of at most 64 KiB`);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) {
      const x: unknown = v[i];
      out.push(omitted(x) ? null : jsonData(x, a, budget, depth + 1));
    }
    return out;
  }
  if (!isDataObject(v)) throw bad('objects, arrays, strings, numbers, booleans and null (no Date, boxed value, Map, object with toJSON or a toStringTag of its own)');
  const entries: [string, unknown][] = [];
  for (const k of Object.keys(v)) {
    const x: unknown = (v as Record<string, unknown>)[k];
    if (!omitted(x)) entries.push([k, jsonData(x, a, budget, depth + 1)]);
  }
  // fromEntries defines members: one named __proto__ (JSON.parse makes those) stays a member.
  return Object.fromEntries(entries);
}

/**
 * A copy of a caller's list, each member read once (the copy is what is
 * checked and kept: a getter or a proxy could answer the check one value and
 * the copy another); undefined for anything but a list of at most MAX_LIST.
 */
function listCopy(v: unknown): unknown[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const n = v.length;
  if (!(n <= MAX_LIST)) return undefined;
  const list: unknown[] = [];
  for (let i = 0; i < n; i++) list.push(v[i]);
  return list;
}

export function tooLarge(a: AttributeDef, max: number): McsError {
  return new McsError(RSC.NOT_ACCEPTABLE, `${a.sn} (${a.name}) exceeds ${max} bytes`);
}

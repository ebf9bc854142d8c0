// Resource representations as they go into a response: short names, bytes
// as base64 (or, for in-process callers who ask for it, as Uint8Array
// copies), oneM2M timestamps, and never a secret the caller may not see.
import { isKeyHandle, type KeyHandle, type SecureEnvironmentBackend } from '../backends/backend.ts';
import { formatTimestamp, toBase64 } from './codec.ts';
import { DeviceData, type Resource } from './resource.ts';
import { Accumulator } from './accumulator.ts';
import type { AttributeDef } from './schema.ts';
import { keyBytes, zeroize } from './handed.ts';
import { secretCopy } from '../core/bytes.ts';
import { isBytes } from '../core/args.ts';

export interface ReprOptions {
  /** Byte attributes as Uint8Array instead of base64 strings. */
  binary: boolean;
  /** Only these attributes; all readable ones when absent. */
  only?: readonly AttributeDef[];
  /** Values to show instead of the stored ones (data a retrieve hook read from the device). */
  values?: ReadonlyMap<string, unknown>;
  /** Byte values the response takes without a copy (fresh results nothing else holds; binary only). */
  owned?: ReadonlyMap<string, Uint8Array>;
}

/**
 * The representation; a promise only when an exportable key has to be read
 * from the backend (asynchronous), so the common case costs no extra tick.
 */
export function represent(seId: string, res: Resource, backend: SecureEnvironmentBackend, opts: ReprOptions): Record<string, unknown> | Promise<Record<string, unknown>> {
  const body: Record<string, unknown> = {};
  let pending: Promise<void>[] | undefined;
  for (const a of opts.only ?? res.def.all) {
    const own = opts.owned?.get(a.name);
    const raw = own ?? opts.values?.get(a.name) ?? res.attrs.get(a.name);
    if (isKeyHandle(raw)) {
      (pending ??= []).push(exported(res, a, raw, backend, opts.binary).then((v) => {
        if (v !== undefined) body[a.sn] = v;
      }));
      continue;
    }
    const v = value(seId, res, a, raw, opts.binary, own !== undefined);
    if (v !== undefined) body[a.sn] = v;
  }
  // Not a computed-key literal: V8 builds that several times slower than an empty object and a store.
  const out: Record<string, unknown> = {};
  out[res.def.type.root] = body;
  return pending ? Promise.all(pending).then(() => out) : out;
}

async function exported(res: Resource, a: AttributeDef, key: KeyHandle, backend: SecureEnvironmentBackend, binary: boolean): Promise<unknown> {
  if (a.read !== 'exportable' || res.attrs.get('keyExportable') !== true || key.kind !== 'secret') return undefined;
  const given = await backend.exportKey(key);
  try {
    const bytes = keyBytes(given, 'an exported key', key.spec, 'secret');
    return binary ? secretCopy(bytes) : toBase64(bytes, true);
  } finally {
    // Handed over (backend.ts exportKey): the engine's to zeroize, even when refused.
    if (isBytes(given)) zeroize(given);
  }
}

function value(seId: string, res: Resource, a: AttributeDef, raw: unknown, binary: boolean, owned = false): unknown {
  switch (a.name) {
    case 'resourceType': return res.ty;
    case 'resourceID': return res.ri;
    case 'resourceName': return res.rn;
    case 'parentID': return res.parent ? res.parent.ri : seId;
    case 'creationTime': return formatTimestamp(res.created);
    case 'lastModifiedTime': return formatTimestamp(res.modified);
  }
  if (a.sizeOf) return byteSize(res.attrs.get(a.sizeOf));
  if (raw instanceof DeviceData) return undefined;
  // A key is shown through exported() only: a value there that is no registered handle stays unseen.
  if (a.key) return undefined;
  let v = raw;
  if (v === undefined) return undefined;
  if (v instanceof Accumulator) {
    // No data held is no attribute, however it came to be empty (never written, msg: null, cbs: 0).
    if (v.size === 0) return undefined;
    v = v.bytes();
  }
  if (v instanceof Uint8Array) return binary ? (owned ? v : v.slice()) : toBase64(v);
  if (a.type.kind === 'time') return formatTimestamp(v as number);
  // A list of objects (kInf, esi ...) is copied whole: the caller must not reach the values the resource and the store hold.
  if (Array.isArray(v)) return v.some((e) => typeof e === 'object' && e !== null) ? structuredClone(v) : [...v];
  if (typeof v === 'object' && v !== null) return structuredClone(v);
  return v;
}

/** currentByteSize: the bytes held (in the host, a stream or on the device), 0 when none. */
export function byteSize(v: unknown): number {
  return v instanceof Accumulator || v instanceof DeviceData ? v.size : v instanceof Uint8Array ? v.length : 0;
}

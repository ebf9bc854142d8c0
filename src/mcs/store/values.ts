// Attribute values as a record's JSON holds them: bytes, device data and keys
// (stored through their backend) as tagged objects, and a client's own JSON
// object wrapped so that it never reads back as one. Accumulated data (a
// message) is the record's appends; the `$acc` an earlier format wrote in a
// sealed part is still read.
import { isKeyHandle, type KeySpec, type StoredKey } from '../../backends/backend.ts';
import { fromBase64, keyFromBase64, toBase64 } from '../codec.ts';
import type { SeHost } from '../host.ts';
import { BackendFailure } from '../persist.ts';
import { DeviceData } from '../resource.ts';
import { Accumulator } from '../accumulator.ts';
import type { Json } from './records.ts';
import { wiping } from './sealing.ts';
import { keyHandle, storedKey } from '../handed.ts';

/** An attribute's internal value as a record keeps it (a key through its backend's storeKey). */
export async function encodeStoredValue(host: SeHost, v: unknown): Promise<Json> {
  if (v instanceof Uint8Array) return { $b: toBase64(v) };
  if (v instanceof DeviceData) return { $device: v.size };
  if (isKeyHandle(v)) {
    let s: StoredKey;
    try {
      s = storedKey(v, host.backend.capabilities.keyStorage, await host.backend.storeKey(v));
    } catch (e) {
      throw new BackendFailure(e);
    }
    return { $key: { spec: v.spec as unknown as Json, kind: s.kind, ...(s.form === 'material' ? { bytes: wiping(s.bytes, (b) => toBase64(b, true)) } : { ref: s.ref }) } };
  }
  // A client's own JSON object (esi, kInf, pv ...) is wrapped, so that no
  // member it has can pass for one of the tags above when it is read back.
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return { $j: v as Json };
  return v as Json;
}

/** A record's value back in internal form (a key through its backend's loadKey): encodeStoredValue undone. */
export async function decodeStoredValue(host: SeHost, v: Json): Promise<unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  if ('$j' in v) return v.$j;
  if (typeof v.$b === 'string') return fromBase64(v.$b);
  if (typeof v.$device === 'number') return new DeviceData(v.$device);
  if (typeof v.$acc === 'string') {
    const acc = new Accumulator();
    wiping(fromBase64(v.$acc)!, (data) => acc.append(data));
    acc.consumed = v.consumed === true;
    return acc;
  }
  const k = v.$key as { spec: KeySpec; kind: 'secret' | 'public'; bytes?: string; ref?: string } | undefined;
  if (k) {
    // Checked before the backend sees it: what it would make of another form is its own error, not damage.
    const spec = k.spec as Partial<KeySpec> | null;
    if (typeof spec !== 'object' || spec === null || typeof spec.use !== 'string' || typeof spec.algorithm !== 'number' || (k.kind !== 'secret' && k.kind !== 'public')
      || (typeof k.bytes !== 'string' && typeof k.ref !== 'string')) {
      throw new TypeError('a key record of another form');
    }
    const stored: StoredKey = k.bytes !== undefined ? { form: 'material', kind: k.kind, bytes: keyFromBase64(k.bytes)! } : { form: 'reference', kind: k.kind, ref: k.ref! };
    let loaded: unknown;
    try {
      loaded = await host.backend.loadKey(k.spec, stored);
    } catch (e) {
      // The backend's failure as it is (a device gone), never taken for a damaged record.
      throw new BackendFailure(e);
    } finally {
      if (stored.form === 'material') stored.bytes.fill(0);
    }
    // Named like the other failures of McsEngine.create: the answer goes to the engine's owner.
    return keyHandle(host, loaded, 'loaded');
  }
  return v;
}

// A resource instance, and the stand-in for data a device keeps.
import { isKeyHandle, type KeyHandle } from '../backends/backend.ts';
import type { CompiledType } from './schema.ts';
import { Accumulator } from './accumulator.ts';

export class Resource {
  readonly def: CompiledType;
  readonly ri: string;
  readonly rn: string;
  readonly parent: Resource | undefined;
  readonly created: number;
  modified: number;
  /** Attribute values by long name, in internal form (bytes, numbers, ms timestamps, KeyHandle, Accumulator). */
  readonly attrs = new Map<string, unknown>();
  readonly children = new Map<string, Resource>();
  /** What the next speculative stream is opened for (e.g. the direction of the last <cipher> operation). */
  hint: string | undefined;

  constructor(def: CompiledType, ri: string, rn: string, parent: Resource | undefined, now: number) {
    this.def = def;
    this.ri = ri;
    this.rn = rn;
    this.parent = parent;
    this.created = now;
    this.modified = now;
  }

  get ty(): number {
    return this.def.type.ty;
  }

  get creator(): string {
    return this.attrs.get('creator') as string;
  }

  /** The registration <SE> this resource lives under (itself for an <SE>). */
  get registration(): Resource {
    let r: Resource = this;
    while (r.parent) r = r.parent;
    return r;
  }

  bytes(name: string): Uint8Array | undefined {
    const v = this.attrs.get(name);
    return v instanceof Uint8Array ? v : v instanceof Accumulator ? v.bytes() : undefined;
  }

  key(): KeyHandle | undefined {
    const v = this.attrs.get('keyData');
    return isKeyHandle(v) ? v : undefined;
  }

  /** Whether `v`, as attribute `name`'s value, is one a store seals: a key, or a value of an attribute declared secret. */
  seals(name: string, v: unknown): boolean {
    return isKeyHandle(v) || this.def.byName.get(name)?.secret === true;
  }
}

/** Stands for sensitive data the device keeps itself (backend objectStore): only its size is on the host. */
export class DeviceData {
  readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
}

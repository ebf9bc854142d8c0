// What counts against an SE's memory quota, the [memory] mgmtObj's memTotal
// and memAvailable (docs/mcs.md "Memory quota"): what the host keeps for the
// SE's clients. A byte value counts its length (data, parameters, results,
// the message held in an append attribute), a key the material the host
// keeps for it, any other value a client writes (a string, a list, a
// policy) the UTF-8 length of its JSON text. Numbers, booleans, times and
// the strings of a fixed list (an enumeration spelt out) have a fixed size
// that every resource has anyway, and so have the SE's own read-only values
// (creator, the management attributes): they count nothing, nor does data a
// device keeps itself.
import { isKeyHandle } from '../backends/backend.ts';
import { Borrowed, type Change } from './change.ts';
import { type Resource } from './resource.ts';
import { Accumulator } from './accumulator.ts';
import type { AttributeDef } from './schema.ts';

function valueSize(a: AttributeDef | undefined, v: unknown): number {
  if (a === undefined || v === undefined || v === null) return 0;
  if (a.type.kind === 'bytes') {
    if (v instanceof Uint8Array) return v.length;
    if (v instanceof Accumulator) return v.size;
    if (v instanceof Borrowed) return v.bytes.length;
    // Otherwise data the device keeps (DeviceData): nothing on the host.
    return isKeyHandle(v) ? v.size : 0;
  }
  if (a.access === 'RO' || typeof v === 'number' || typeof v === 'boolean' || (a.type.kind === 'string' && a.type.values)) return 0;
  return utf8Length(JSON.stringify(v));
}

export function resourceSize(res: Resource): number {
  let n = 0;
  for (const [name, v] of res.attrs) n += valueSize(res.def.byName.get(name), v);
  return n;
}

/** A resource with everything below it (a registration with its management objects). */
export function treeSize(res: Resource): number {
  let n = resourceSize(res);
  for (const c of res.children.values()) n += treeSize(c);
  return n;
}

/** How much applying the change adds (negative: frees). */
export function changeSize(res: Resource, change: Change): number {
  const append = res.def.appendAttr?.name;
  let delta = 0;
  for (const [name, v] of change.attrs) {
    const a = res.def.byName.get(name);
    const old = res.attrs.get(name);
    if (name !== append) delta += valueSize(a, v) - valueSize(a, old);
    else {
      // A chunk after a consumed message, or null, replaces the data held (Accumulator.receive).
      if (old instanceof Accumulator && (old.consumed || v === null)) delta -= old.size;
      delta += valueSize(a, v);
    }
  }
  return delta;
}

function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // U+0080 to U+07FF take 2 bytes, the rest of the BMP 3, a surrogate pair (2 units) 4.
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

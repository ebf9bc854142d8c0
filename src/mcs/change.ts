// What one request changes in one resource (an UPDATE, or the operation of a
// virtual resource), collected before anything is applied. The engine checks
// it against the SE's memory quota, makes it durable when there is a store,
// and only then applies it to the resource: a request refused at either step
// leaves the resource, its data and its keys exactly as they were.
import { Resource } from './resource.ts';
import { Accumulator } from './accumulator.ts';
import { secretBytes } from '../core/bytes.ts';

/**
 * A byte result the change only borrows (a view of the output a cipher
 * stream wrote into its accumulator, which owns and zeroizes it): copied
 * when the change is applied, into the array stage() chose.
 */
export class Borrowed {
  readonly bytes: Uint8Array;
  /** The array applying the change copies the bytes into (stage()). */
  into: Uint8Array | undefined;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
}

/** What applying a change to the append attribute takes, allocated by stage(). */
export interface Staged {
  /** The accumulator the attribute will hold (a new one for a first chunk). */
  readonly acc: Accumulator | undefined;
  /** The buffer the chunk goes into (Accumulator.spaceFor). */
  readonly space: Uint8Array | undefined;
}

/**
 * Allocates everything that applying `change` to `res` needs, and changes
 * nothing: the engine stages a change before the store writes it, so that
 * once it is durable, applying it cannot fail for want of memory (the
 * journal would hold a chunk or a result that memory refused).
 */
export function stage(res: Resource, change: Change): Staged {
  for (const [name, v] of change.attrs) {
    if (!(v instanceof Borrowed)) continue;
    const old = res.attrs.get(name);
    // The array held when the length is the same: a stream of equal-sized operations allocates no result.
    v.into = old instanceof Uint8Array && old.length === v.bytes.length ? old : secretBytes(v.bytes.length);
  }
  const append = res.def.appendAttr?.name;
  if (append === undefined) return { acc: undefined, space: undefined };
  const chunk = change.attrs.get(append) as Uint8Array | null | undefined;
  const acc = (res.attrs.get(append) as Accumulator | undefined) ?? (chunk ? new Accumulator() : undefined);
  return { acc, space: acc?.spaceFor(chunk) };
}

export class Change {
  /**
   * New attribute values by long name, in internal form (the change owns
   * them until it is applied); null removes one. For the append attribute:
   * a chunk to append, or null to discard the data held.
   */
  readonly attrs: Map<string, unknown>;
  /** An operation ended the message held in the append attribute: the next chunk starts a new one. */
  consumed = false;
  /** What the resource's next speculative stream is opened for (Resource.hint). */
  hint: string | undefined;

  constructor(attrs = new Map<string, unknown>()) {
    this.attrs = attrs;
  }

  get empty(): boolean {
    return this.attrs.size === 0 && !this.consumed && this.hint === undefined;
  }
}

/** A resource as a change will leave it, and what of its stored values the change leaves as they were (PersistedResource.unchangedMessages, unchangedSecrets). */
export class Prospect extends Resource {
  unchangedMessages: ReadonlySet<string> | undefined;
  unchangedSecrets = false;
}

/**
 * The resource as the change will leave it, for a store to write before the
 * change is applied: a copy that shares every value the change leaves alone.
 * `dispose()` zeroizes what only the copy holds (a borrowed result, the copied
 * data of the append attribute).
 */
export function prospect(res: Resource, change: Change, now: number): { res: Prospect; dispose(): void } {
  const next = new Prospect(res.def, res.ri, res.rn, res.parent, res.created);
  next.modified = now;
  next.hint = change.hint ?? res.hint;
  for (const [name, v] of res.attrs) next.attrs.set(name, v);
  const own: Uint8Array[] = [];
  const append = res.def.appendAttr?.name;
  next.unchangedSecrets = true;
  for (const [name, v] of change.attrs) {
    if (name === append) continue;
    // A secret value set, replaced or removed (a generated key, a result, new sensitive data) must be written; the message is told apart below.
    if (res.seals(name, v) || res.seals(name, res.attrs.get(name))) next.unchangedSecrets = false;
    if (v === null) next.attrs.delete(name);
    else if (v instanceof Borrowed) {
      const copy = v.bytes.slice();
      own.push(copy);
      next.attrs.set(name, copy);
    } else next.attrs.set(name, v);
  }
  let held: Accumulator | undefined;
  const acc = append === undefined ? undefined : (res.attrs.get(append) as Accumulator | undefined);
  const chunk = append === undefined ? undefined : (change.attrs.get(append) as Uint8Array | null | undefined);
  // As the engine applies it: the data held changes with a chunk, ends with an operation, and exists once a chunk came.
  if (chunk !== undefined && (acc || chunk)) {
    held = acc ? acc.copy() : new Accumulator();
    held.receive(chunk, change.consumed);
    next.attrs.set(append!, held);
  } else if (acc) {
    next.unchangedMessages = new Set([append!]);
    if (change.consumed) next.attrs.set(append!, acc.consumedView());
  }
  return {
    res: next,
    dispose() {
      for (const b of own) b.fill(0);
      held?.clear();
    },
  };
}

// What the store keeps of each SE's resources: the journal's records, the
// state they build (what a snapshot holds), and what a compaction does to
// that state before writing it. From format 5 a message (the append
// attribute's data) is only ever in a record's appends, never in its sealed
// part: a put that leaves it as it was keeps it (`kept`) instead of writing
// it again, and the first chunk after a consumed message drops the old one
// from the state. moveMessages() brings an earlier format's state there.
// From format 6 a put whose change left every secret value as it was keeps
// the sealed part of the record before it (`keptSealed`) instead.
import { base64Length, fromBase64 } from '../codec.ts';
import { compiledType, TYPES } from '../registry.ts';
import { joinSealed, open, seal, wiping } from './sealing.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface ResourceRecord {
  ri: string;
  rn: string;
  /** Parent ri, '' for a registration. */
  pi: string;
  root: string;
  ct: number;
  lt: number;
  hint?: string;
  attrs: Record<string, Json>;
  /** base64(nonce || AES-256-GCM(JSON of the secret attributes)) with the ri as associated data. */
  sealed?: string;
  /**
   * The message, in chunks each sealed with `<ri>/<attr>` as associated data: what the put wrote,
   * then the chunks appended since. (Before format 5 a put wrote it in the sealed part, as `$acc`.)
   */
  appends?: { attr: string; sealed: string }[];
  /**
   * The message was consumed: the next chunk replaces it (not secret: tells the store that chunk
   * supersedes it). Before format 5, the consumed message of the sealed part.
   */
  consumed?: true;
  /**
   * In a put only: the attributes whose message is the one the state's record of this ri holds,
   * carried over by apply() (the state's records never have it). Written from format 5 on.
   */
  kept?: string[];
  /**
   * In a put only, instead of `sealed`: the sealed part is the one the state's record of this ri
   * holds (the change left every secret value as it was), carried over by apply(). Written from
   * format 6 on, only where that record has a sealed part.
   */
  keptSealed?: true;
}

export type JournalRecord =
  | { seq: number; op: 'put'; se: string; res: ResourceRecord[] }
  | { seq: number; op: 'append'; se: string; ri: string; attr: string; sealed: string; lt?: number }
  | { seq: number; op: 'remove'; se: string; ris: string[] };

export interface Snapshot { seq: number; resources: Record<string, Record<string, ResourceRecord>> }

/**
 * A map from IDs read from the store to their records, with no prototype: an
 * ID such as `__proto__` or `constructor` in a record (which only a holder of
 * the master key can write) names an entry, never Object.prototype.
 */
export function table<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/**
 * Whether record `r` makes sealed data of `state` obsolete: a deleted resource, a value replaced, a
 * chunk after a consumed message. What it replaces stays readable in the journal, under the master
 * key, until a compaction: a clean close makes one.
 */
export function supersedes(state: Snapshot, r: JournalRecord): boolean {
  const se = state.resources[r.se];
  return r.op === 'remove'
    // A put replaces the record's sealed part and its message (a message discarded, say), unless it keeps them
    // (or writes the same sealed part again: a directory not yet format 6).
    || (r.op === 'put' && r.res.some((rec) => {
      const prior = se?.[rec.ri];
      return (prior?.sealed !== undefined && !rec.keptSealed && rec.sealed !== prior.sealed) || (prior?.appends ?? []).some((a) => !rec.kept?.includes(a.attr));
    }))
    || (r.op === 'append' && se?.[r.ri]?.consumed === true);
}

/**
 * What `r` keeps that no record before it holds, named (damage: apply() would make a resource
 * without its message, or without its keys and secrets): a message of a resource the state holds
 * no record of, a sealed part of one whose record has none.
 */
export function keptWithoutPrior(state: Snapshot, r: JournalRecord): string | undefined {
  if (r.op !== 'put') return undefined;
  for (const rec of r.res) {
    const prior = state.resources[r.se]?.[rec.ri];
    if (rec.kept?.length && !prior) return `the message of resource ${rec.ri}`;
    if (rec.keptSealed && prior?.sealed === undefined) return `the secret values of resource ${rec.ri}`;
  }
  return undefined;
}

export function apply(state: Snapshot, r: JournalRecord): void {
  const se = (state.resources[r.se] ??= table());
  state.seq = Math.max(state.seq, r.seq);
  if (r.op === 'put') {
    for (const rec of r.res) {
      if (rec.keptSealed) {
        // There is one: keptWithoutPrior() at open, put() when written.
        rec.sealed = se[rec.ri]!.sealed;
        delete rec.keptSealed;
      }
      const kept = rec.kept;
      if (kept) {
        // The message first, as it came; the record's own `consumed` says whether it still is.
        const carried = se[rec.ri]?.appends?.filter((a) => kept.includes(a.attr)) ?? [];
        rec.appends = [...carried, ...(rec.appends ?? [])];
        delete rec.kept;
      }
      se[rec.ri] = rec;
    }
  } else if (r.op === 'remove') for (const ri of r.ris) delete se[ri];
  else {
    const rec = se[r.ri];
    if (!rec) return;
    // The first chunk after a consumed message starts a new one: the old one's chunks are superseded, and the next chunk supersedes nothing.
    if (rec.consumed) rec.appends = rec.appends?.filter((a) => a.attr !== r.attr);
    (rec.appends ??= []).push({ attr: r.attr, sealed: r.sealed });
    delete rec.consumed;
    if (r.lt !== undefined) rec.lt = r.lt;
  }
}

/**
 * Joins each resource's appended chunks into a few sealed chunks, so that
 * what a snapshot holds grows with the data, not with the number of UPDATEs
 * that brought it (every chunk sealed alone took some 70 bytes of snapshot,
 * an empty one included). Chunks join from the end while the last is at least
 * half the one before it (sizes counted from 1 KiB), so the chunks left shrink
 * geometrically, about log2 of the data in KiB of them, and a compaction
 * re-seals what is new and what it joins, not a whole large message again.
 * The same bytes in the same order: replaying the joined chunks does what
 * replaying the run did (a record's appends are one message: the chunk that
 * started a new one dropped the chunks before it, apply()).
 */
export function mergeAppends(state: Snapshot, key: Uint8Array): void {
  // Plain length of a sealed chunk: base64 of a 12-byte nonce, the data and a 16-byte tag. A
  // group weighs its data, at least 1 KiB (so that many tiny chunks still join), never the sum of
  // its chunks' floors (one-byte UPDATEs would weigh a KiB each and pull a large message in).
  const plain = (sealed: string) => base64Length(sealed) - 28;
  const weight = (bytes: number) => Math.max(1024, bytes);
  for (const se of Object.values(state.resources)) {
    for (const rec of Object.values(se)) {
      const runs = rec.appends;
      if (!runs || runs.length < 2) continue;
      const groups: { attr: string; parts: string[]; bytes: number }[] = [];
      for (const a of runs) {
        groups.push({ attr: a.attr, parts: [a.sealed], bytes: plain(a.sealed) });
        for (;;) {
          const last = groups[groups.length - 1]!, before = groups[groups.length - 2];
          if (!before || before.attr !== last.attr || weight(last.bytes) * 2 < weight(before.bytes)) break;
          groups.pop();
          before.parts.push(...last.parts);
          before.bytes += last.bytes;
        }
      }
      if (groups.length === runs.length) continue;
      rec.appends = groups.map((g) => (g.parts.length === 1 ? { attr: g.attr, sealed: g.parts[0]! } : { attr: g.attr, sealed: joinSealed(key, `${rec.ri}/${g.attr}`, g.parts) }));
    }
  }
}

/**
 * Moves the messages an earlier format held in a record's sealed part (`$acc`) out into the record's
 * appends, before the chunks appended since (format 5 holds them nowhere else); one consumed and
 * replaced by those chunks is dropped instead, as a snapshot dropped it before. Answers whether
 * there was any. A record whose sealed part does not open is left for load() to report.
 */
export function moveMessages(state: Snapshot, key: Uint8Array): boolean {
  let moved = false;
  for (const se of Object.values(state.resources)) {
    for (const rec of Object.values(se)) {
      if (!rec.sealed) continue;
      const secret = openSecrets(key, rec.sealed, rec.ri);
      if (!secret) continue;
      const messages: { attr: string; sealed: string }[] = [];
      let found = false;
      for (const [attr, held] of Object.entries(secret)) {
        const acc = held as { $acc?: unknown; consumed?: unknown } | null;
        if (typeof acc !== 'object' || acc === null || typeof acc.$acc !== 'string') continue;
        delete secret[attr];
        const replaced = acc.consumed === true && rec.appends?.some((a) => a.attr === attr);
        const bytes = fromBase64(acc.$acc);
        // Not base64: left in place, for load() to report as the damage it is.
        if (!bytes) {
          secret[attr] = held;
          continue;
        }
        wiping(bytes, (data) => {
          if (!replaced) messages.push({ attr, sealed: seal(key, data, `${rec.ri}/${attr}`) });
        });
        if (!replaced && acc.consumed === true) rec.consumed = true;
        found = true;
      }
      if (!found) continue;
      moved = true;
      rec.appends = [...messages, ...(rec.appends ?? [])];
      if (Object.keys(secret).length) rec.sealed = sealSecrets(key, secret, rec.ri);
      else delete rec.sealed;
    }
  }
  return moved;
}

/**
 * Seals what an earlier version kept in the clear and this one declares
 * secret (`<hash>`'s hashValue from format 3, `<signature>`'s signature
 * since), so that the next snapshot holds none of it; answers whether there
 * was any. A record whose sealed part does not open is left for load() to report.
 */
export function sealClearSecrets(state: Snapshot, key: Uint8Array): boolean {
  let sealed = false;
  const types = typesByRoot();
  for (const se of Object.values(state.resources)) {
    for (const rec of Object.values(se)) {
      const def = types.get(rec.root);
      const names = Object.keys(rec.attrs).filter((name) => def?.byName.get(name)?.secret === true);
      if (!names.length) continue;
      const secret = rec.sealed ? openSecrets(key, rec.sealed, rec.ri) : {};
      if (!secret) continue;
      for (const name of names) secret[name] = rec.attrs[name]!;
      rec.sealed = sealSecrets(key, secret, rec.ri);
      for (const name of names) delete rec.attrs[name];
      sealed = true;
    }
  }
  return sealed;
}

/**
 * The state with every sealed value (a record's sealed part, each chunk of its messages) opened
 * under `from` and sealed again under `to`, a fresh nonce each and the same associated data, for a
 * master key rotation; `state` is left as it is. `unopened` names a resource whose sealed data does
 * not open under `from` (only the key's holder could have made its record verify: damage).
 */
export function resealed(state: Snapshot, from: Uint8Array, to: Uint8Array): { state: Snapshot; unopened: string | undefined } {
  let unopened: string | undefined;
  const reseal = (sealed: string, ri: string, ad: string) => {
    try {
      return wiping(open(from, sealed, ad), (plain) => seal(to, plain, ad));
    } catch {
      unopened ??= ri;
      return sealed;
    }
  };
  const resources = table<Record<string, ResourceRecord>>();
  for (const [se, records] of Object.entries(state.resources)) {
    const out = (resources[se] = table<ResourceRecord>());
    for (const [ri, rec] of Object.entries(records)) {
      const copy: ResourceRecord = { ...rec };
      if (rec.sealed !== undefined) copy.sealed = reseal(rec.sealed, rec.ri, rec.ri);
      if (rec.appends) copy.appends = rec.appends.map((a) => ({ attr: a.attr, sealed: reseal(a.sealed, rec.ri, `${rec.ri}/${a.attr}`) }));
      out[ri] = copy;
    }
  }
  return { state: { seq: state.seq, resources }, unopened };
}

export const typesByRoot = () => new Map(TYPES.map((t) => [t.root, compiledType(t)]));

/** A record's sealed secret attributes, or undefined where they do not open (left for load() to report). */
function openSecrets(key: Uint8Array, sealed: string, ri: string): Record<string, Json> | undefined {
  try {
    return wiping(open(key, sealed, ri), (plain) => JSON.parse(dec.decode(plain)) as Record<string, Json>);
  } catch {
    return undefined;
  }
}

export const sealSecrets = (key: Uint8Array, secret: Record<string, Json>, ri: string): string => wiping(enc.encode(JSON.stringify(secret)), (plain) => seal(key, plain, ri));

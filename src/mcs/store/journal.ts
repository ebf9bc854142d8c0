// Persistence of SE-resources in a data directory (Node and Deno):
//
//   lock             pid and start time of the process that has the directory
//                    open: a second opener is refused, a stale lock taken over
//   meta.json        format (4 to 6 once the directory has a snapshot), unique IDs
//                    of the software SEs, a sealed check value that tells a
//                    wrong master key from a damaged file, and a MAC over them
//   snapshot.json    a header line (format, MAC, the chain value its journal
//                    started from), then the full state up to sequence `seq`;
//                    the MAC covers meta.json's check value too (format 3),
//                    so another directory's snapshot does not verify here
//   journal.log      records after the snapshot:
//                    [length u32][crc32 u32][JSON][MAC 32 bytes]
//   snapshot.json.rotated
//                    a master key rotation's new snapshot, until it is renamed
//                    over snapshot.json (rotateMasterKey: the open finishes or
//                    drops a rotation a crash cut short)
//
// Every request's change is one journal record (a registration with its
// children included), appended and flushed (fdatasync) before the engine
// answers, so an acknowledged write survives kill -9. Records are written one
// at a time even when several SEs write at once: each gets the next sequence
// number, and a compaction or a cut never removes one acknowledged meanwhile.
//
// The CRC tells a torn record from a whole one; the MAC tells a record this
// store wrote from one written by someone without the master key. A torn
// record at the very end (a crash mid-append, or a file that grew before its
// data reached the disk: never acknowledged) is cut off when the store opens;
// damage that valid records follow is not a torn end, and the store refuses
// to open, leaving the file as it is. Each MAC is HMAC-SHA-256 under a key
// derived from the master key, over the previous record's MAC and the
// record: the chain starts from the snapshot's MAC (or, with no snapshot, a
// value bound to meta.json's check), so an edited, inserted, duplicated,
// reordered or removed record breaks it, and the store refuses to open. Not
// records cut off its end, nor an older copy of the whole directory: nothing
// in the directory tells how far the chain went. With a rollback anchor
// (anchor.ts) the store writes the chain's head there after each record and
// snapshot, before the engine answers, and refuses a directory that does not
// end where the anchor says.
//
// A write that fails (ENOSPC, EIO, a read-only directory, the anchor) is cut
// off at once (with an anchor, once it names the last good head again: it may
// have taken the failed one), or before the next record if that fails, and
// the store's state stays as it was: the engine applies nothing, and no later
// record ever follows the debris of one that failed. When the journal grows,
// the state is written to snapshot.json.tmp, flushed, renamed over
// snapshot.json (then the directory is flushed) and the journal truncated.
// A journal that a crash left behind the new snapshot holds records the
// snapshot covers: they verify from the chain value the snapshot names, and
// are not applied again.
//
// Secrets (keys, sensitive data, messages, results: attributes declared
// `secret`, and every key) are sealed with AES-256-GCM under the master key,
// a fresh 12-byte nonce per record and the resource ID as associated data.
// A message is sealed apart, in chunks (`<ri>/<attr>`), and written once:
// a chunk UPDATE records the chunk, and a put whose change left the message
// as it was (PersistedResource.unchangedMessages) keeps the one the state
// holds (ResourceRecord.kept) from format 5 on. An earlier format's state is
// moved to that shape at open and written as a snapshot at once; until a
// snapshot has been written (meta.json says 5), nothing is kept. Likewise
// the secret values (PersistedResource.unchangedSecrets): from format 6 the
// record keeps the sealed part the state holds (ResourceRecord.keptSealed),
// and they are not even encoded (no storeKey); before it, that sealed part
// is written again as it is.
//
// This file is the store itself (writes, cuts, compactions, the anchor's
// writes); the rest is beside it: lock.ts (the lock), format.ts (what each
// file holds and the checks it passes), read-dir.ts (the directory read at
// open), records.ts (the records and the state they build), sealing.ts and
// values.ts (secrets and attribute values as records hold them).
import { constantTimeEqual } from '../../core/compare.ts';
import { secretHmac } from '../../core/hmac.ts';
import { randomBytes } from '../../core/drbg.ts';
import { AuthenticationError, InvalidInputError, SenvError, StateError } from '../../core/errors.ts';
import { refusalOf } from '../../core/permissions.ts';
import { secretCopy, toHex } from '../../core/bytes.ts';
import type { SeHost } from '../host.ts';
import { BackendFailure, type Persistence, type PersistedResource } from '../persist.ts';
import { Resource } from '../resource.ts';
import { Accumulator } from '../accumulator.ts';
import { anchorFailed, encodeHead, readHead, type Head, type RollbackAnchor } from './anchor.ts';
import { DataDirDamagedError, MasterKeyRotationError } from './errors.ts';
import { openFiles, parentOf, StoreFileError, trimSlashes, writeAtomic, type Files } from './files.ts';
import { crc32, freshMeta, KEEPS, KEEPS_SEALED, mac, MAC_LEN, newMeta, openMeta, ROTATED, snapshotFile, type Meta, UNBOUND } from './format.ts';
import { releaseLock, takeLock, type Lock } from './lock.ts';
import { readDir, type Opened } from './read-dir.ts';
import { apply, mergeAppends, moveMessages, resealed, sealClearSecrets, sealSecrets, supersedes, typesByRoot, type Json, type JournalRecord, type ResourceRecord, type Snapshot } from './records.ts';
import { open, seal, wiping } from './sealing.ts';
import { decodeStoredValue, encodeStoredValue } from './values.ts';

export interface JournalOptions {
  /** The data directory (created if missing). */
  dir: string;
  /** 32-byte AES-256 master key. */
  masterKey: Uint8Array;
  /**
   * Journal size (bytes) that triggers a snapshot. By default 8 MiB or the last snapshot's size,
   * whichever is larger: each rewrite of the whole state is then paid for by as many bytes of new
   * records (a fixed 8 MiB rewrote a 48 MiB state for every 8 MiB written).
   */
  compactAt?: number;
  /** The file operations (default: node:fs or Deno). */
  files?: Files;
  /** Where the chain's head is kept out of reach of whoever can write the directory (anchor.ts); checked at open. */
  rollbackAnchor?: RollbackAnchor | undefined;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/** A message a put's change left as it was: its record keeps it, or, before format 5, seals it again. */
interface Unchanged { rec: ResourceRecord; attr: string; acc: Accumulator }
/** The journal size that triggers a snapshot at least, by default (JournalOptions.compactAt). */
const COMPACT_AT = 8 * 1024 * 1024;

export class JournalStore implements Persistence {
  readonly #files: Files;
  readonly #dir: string;
  /** Replaced, and the old one zeroized, by a master key rotation's commit. */
  #key: Uint8Array;
  #macKey: Uint8Array;
  #closed = false;
  /** Whether the journal holds sealed data a later record made obsolete (see #appendRecord). */
  #superseded = false;
  #closing: Promise<void> | undefined;
  readonly #compactAt: number | undefined;
  #snapshotBytes: number;
  readonly #lock: Lock;
  #meta: Meta;
  /** The state as stored: per SE, records by ri (what a snapshot writes). */
  #state: Snapshot;
  /** Length of the journal up to its last good record. */
  #journalBytes: number;
  /**
   * Where the journal stood when a compaction did not complete (the snapshot, its anchor write or
   * meta.json's format 5 failed), so the journal was not cut (0 once it is): the next compaction
   * waits for as many bytes again, or close. Otherwise every record would rebuild the whole state
   * while the disk keeps refusing.
   */
  #compactFrom = 0;
  /** Where the journal must be cut before the next record: a failed write (or compaction) not cut yet (the cut, or the anchor's rewrite before it, failed). */
  #cutAt: number | undefined;
  /** The MAC of snapshot.json (without one, the chain's first value): an empty journal's chain starts there. */
  #snapMac: Uint8Array;
  /** Where the chain of the records in journal.log starts: the next snapshot names it. */
  #journalStart: Uint8Array;
  /** The MAC of the journal's last record (#journalStart without one): the next record's MAC covers it. */
  #lastMac: Uint8Array;
  /** Writes, compactions and cuts, one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #anchor: RollbackAnchor | undefined;
  /** The last write of the anchor failed: it may hold a head the directory does not (a write that timed out yet took), until one succeeds. */
  #anchorUnsure = false;
  /** An anchor write of this run failed: close() reads the anchor back (#settleAnchor), since such a write may still land. */
  #anchorFailed = false;
  /** A rotation committed whose new snapshot (ROTATED) is not renamed over snapshot.json yet: the open would roll it forward. */
  #rotatedPending = false;
  /**
   * A rotation's commit (meta.json's rename) not yet known to be on the disk: no file may change after it
   * until a directory flush succeeded, or a power loss could keep the old meta.json beside a record or
   * snapshot under the new key, which neither key opens.
   */
  #commitUnflushed = false;
  /** A rotation whose commit neither key can be told to have: every write refused (#flushCommit), ROTATED kept for the next open. */
  #unsettled: MasterKeyRotationError | undefined;

  private constructor(files: Files, options: JournalOptions, lock: Lock, macKey: Uint8Array, opened: Opened) {
    this.#files = files;
    this.#dir = options.dir;
    this.#key = secretCopy(options.masterKey);
    this.#macKey = macKey;
    this.#compactAt = options.compactAt;
    this.#snapshotBytes = opened.snapshotBytes;
    this.#lock = lock;
    this.#meta = opened.meta;
    this.#state = opened.state;
    this.#journalBytes = opened.journalBytes;
    this.#snapMac = opened.snapMac;
    this.#journalStart = opened.journalStart;
    this.#lastMac = opened.lastMac;
    this.#superseded = opened.superseded;
    this.#anchor = options.rollbackAnchor;
  }

  static async open(options: JournalOptions): Promise<JournalStore> {
    if (!(options.masterKey instanceof Uint8Array) || options.masterKey.length !== 32) throw new StateError('the master key must be 32 bytes (AES-256)');
    try {
      return await JournalStore.#open(options);
    } catch (e) {
      throw openFailure(options.dir, e);
    }
  }

  static async #open(options: JournalOptions): Promise<JournalStore> {
    const files = options.files ?? (await openFiles());
    // A directory just made exists for good only once the one above it is flushed, for each level
    // made. Best effort: a parent this process may search but not read cannot be opened to flush.
    const made = await files.mkdir(options.dir);
    if (made !== undefined) {
      const top = trimSlashes(made);
      for (let d = trimSlashes(options.dir); ; d = parentOf(d)) {
        await files.syncDir(parentOf(d)).catch(() => undefined);
        if (d === top || parentOf(d) === d) break;
      }
    }
    const lock = await takeLock(files, options.dir);
    let macKey: Uint8Array | undefined;
    let store: JournalStore | undefined;
    try {
      // Not the sealing key: a MAC never shows a value computed under the key that encrypts.
      macKey = secretHmac('SHA-256', options.masterKey, enc.encode('senv journal mac'));
      const anchor = options.rollbackAnchor;
      const anchored = anchor && { head: await readHead(anchor, options.dir), trustOnFirstUse: anchor.trustOnFirstUse === true };
      store = new JournalStore(files, options, lock, macKey, await readDir(files, options.dir, options.masterKey, macKey, anchored));
      // A new directory's first head, a directory trusted on first use, or one whose anchor names the
      // same state by another MAC (a snapshot and the records a crash left behind it): the anchor
      // names the head the next record follows, as the one-record-past check at the next open needs.
      const head = store.#head(), was = anchored?.head;
      if (anchor && !(was && was.seq === head.seq && constantTimeEqual(was.mac, head.mac))) {
        await store.#anchorHead(head).catch((e: unknown) => {
          throw anchorFailed(options.dir, 'write', e);
        });
      }
      // Upgrades a format 2 directory: its meta.json says format 5 once a bound snapshot holds
      // everything. Should that fail, the store goes on in format 2 and tries at its next snapshot.
      // The same snapshot seals what an earlier version kept in the clear (format 2's Hv, a Sgn before
      // it was sealed), and holds the messages an earlier format kept in sealed parts in appends: until
      // it is written, no record may keep a message (a replay would find it in the sealed part).
      const moved = store.#meta.format < KEEPS && moveMessages(store.#state, store.#key);
      if (sealClearSecrets(store.#state, store.#key) || moved || store.#meta.format === UNBOUND) await store.#compact();
      // Format 5 holds no record that keeps a sealed part: meta.json alone says 6. Should its write fail,
      // the directory stays 5 (sealed parts are written again, never kept) until a compaction writes 6.
      else if (store.#meta.format === KEEPS) await store.#writeMeta(KEEPS_SEALED).catch(() => undefined);
      return store;
    } catch (e) {
      macKey?.fill(0);
      // Its copy of the master key: the anchor's write at open can fail once the store is made.
      if (store) store.#key.fill(0);
      await releaseLock(files, options.dir, lock).catch(() => undefined);
      throw e;
    }
  }

  uniqueId(kind: string): Promise<string> {
    return this.#serial(async () => {
      let id = this.#meta.uniqueIds[kind];
      if (!id) {
        id = toHex(randomBytes(16));
        // Part of an SE's first open (McsEngine.create asks before it loads anything): refused as the open is.
        await this.#writeMeta(this.#meta.format, { ...this.#meta.uniqueIds, [kind]: id }).catch((e: unknown) => {
          throw openFailure(this.#dir, e);
        });
      }
      return id;
    });
  }

  /** Writes meta.json saying `format` (and the unique IDs given), and takes it once written. */
  async #writeMeta(format: number, uniqueIds = this.#meta.uniqueIds): Promise<void> {
    const meta = newMeta(this.#macKey, this.#meta.check, uniqueIds, format);
    await writeAtomic(this.#files, this.#dir, 'meta.json', enc.encode(JSON.stringify(meta)));
    this.#meta = meta;
  }

  async load(host: SeHost): Promise<void> {
    // Its key is zeroized: sealed data would not open, which would read as a damaged directory.
    if (this.#closed) throw new StateError(`the store of ${this.#dir} is closed`);
    const records = Object.values(this.#state.resources[host.seId] ?? {});
    const built = new Map<string, Resource>();
    const types = typesByRoot();
    // The MACs keep out anyone without the master key; this names the resource should sealed data still not open.
    const unseal = (sealed: string, ri: string, ad: string) => {
      try {
        return open(this.#key, sealed, ad);
      } catch (e) {
        if (e instanceof AuthenticationError) throw new DataDirDamagedError(this.#dir, `holds sealed data of resource ${ri} that does not open under that resource's ID (moved from another resource, or altered)`);
        throw e;
      }
    };
    // Every resource made, finished or not: a load that fails part way releases their keys and secrets.
    const made: Resource[] = [];
    // Parents before children: a record's parent is built first by recursion.
    const building = new Set<string>();
    const build = async (rec: ResourceRecord): Promise<Resource | undefined> => {
      const have = built.get(rec.ri);
      if (have) return have;
      // Records verified under the master key yet forming a cycle: only its holder could write them.
      if (building.has(rec.ri)) throw new DataDirDamagedError(this.#dir, `holds resources that are their own ancestors (${rec.ri})`);
      building.add(rec.ri);
      const def = types.get(rec.root);
      const parentRec = rec.pi ? this.#state.resources[host.seId]?.[rec.pi] : undefined;
      const parent = parentRec ? await build(parentRec) : undefined;
      if (!def || (rec.pi && !parent)) return undefined;
      const res = new Resource(def, rec.ri, rec.rn, parent, rec.ct);
      made.push(res);
      res.modified = rec.lt;
      res.hint = rec.hint;
      const secret = rec.sealed ? wiping(unseal(rec.sealed, rec.ri, rec.ri), (plain) => JSON.parse(dec.decode(plain)) as Record<string, Json>) : {};
      for (const [name, v] of Object.entries({ ...rec.attrs, ...secret })) res.attrs.set(name, await decodeStoredValue(host, v));
      for (const a of rec.appends ?? []) {
        let acc = res.attrs.get(a.attr);
        if (!(acc instanceof Accumulator)) res.attrs.set(a.attr, (acc = new Accumulator()));
        wiping(unseal(a.sealed, rec.ri, `${rec.ri}/${a.attr}`), (chunk) => (acc as Accumulator).receive(chunk, false));
      }
      // Once all of it is in: a chunk taken after it was marked would start a new message.
      if (rec.consumed) for (const a of rec.appends ?? []) (res.attrs.get(a.attr) as Accumulator).consumed = true;
      if (parent) parent.children.set(res.rn, res);
      built.set(rec.ri, res);
      return res;
    };
    try {
      for (const rec of records) await build(rec);
    } catch (e) {
      for (const res of made) host.releaseResource(res, true);
      // A backend's own failure to load a key (a device gone, a TypeError of its own) stays what it is. A
      // record of the right MAC but not of a resource's shape (a TypeError or RangeError reading it): damage,
      // named so.
      if (BackendFailure.is(e)) throw e.cause;
      if (e instanceof TypeError || e instanceof RangeError) throw new DataDirDamagedError(this.#dir, `holds a record that is not a resource's (${e.name})`);
      throw e;
    }
    for (const res of built.values()) if (!res.parent) host.link(res);
  }

  async put(host: SeHost, res: Resource & Pick<PersistedResource, 'unchangedMessages' | 'unchangedSecrets'>, withChildren: boolean): Promise<void> {
    const recs: ResourceRecord[] = [];
    const unchanged: Unchanged[] = [];
    const walk = async (r: Resource, keep: ReadonlySet<string> | undefined, keepSealed: boolean) => {
      recs.push(await this.#record(host, r, keep, unchanged, keepSealed));
      if (withChildren) for (const c of r.children.values()) await walk(c, undefined, false);
    };
    // What the state holds of the resource is its secret values (the engine applies only what was written,
    // one request of an SE at a time): left out of the record, not encoded.
    const keepSealed = res.unchangedSecrets === true && this.#state.resources[host.seId]?.[res.ri] !== undefined;
    await walk(res, res.unchangedMessages, keepSealed);
    await this.#serial(async () => {
      // The first message or sealed part a directory of an earlier format could keep: the snapshot that makes
      // it format 6 first (not while an earlier snapshot is waiting for the journal to grow, nor while the
      // anchor may name another head).
      if ((unchanged.length || keepSealed) && this.#meta.format < KEEPS && this.#compactFrom === 0 && this.#cutAt === undefined && !this.#anchorUnsure) await this.#compact();
      const se = this.#state.resources[host.seId];
      // What the state holds of the resource is the message (the engine applies only what was written).
      for (const { rec, attr, acc } of unchanged) {
        if (this.#meta.format >= KEEPS && se?.[rec.ri]) (rec.kept ??= []).push(attr);
        else (rec.appends ??= []).push({ attr, sealed: seal(this.#key, acc.bytes(), `${rec.ri}/${attr}`) });
      }
      if (keepSealed) {
        // Looked up again in the queue: a master key rotation may have sealed the state again meanwhile.
        const prior = se?.[res.ri];
        if (!prior) throw new StateError(`the store of ${this.#dir} lost its record of resource ${res.ri} while a change of it was written`);
        if (prior.sealed !== undefined) {
          if (this.#meta.format === KEEPS_SEALED) recs[0]!.keptSealed = true;
          else recs[0]!.sealed = prior.sealed;
        }
      }
      await this.#appendRecord({ seq: 0, op: 'put', se: host.seId, res: recs });
    });
  }

  async append(host: SeHost, res: Resource, attr: string, chunk: Uint8Array, modified: number): Promise<void> {
    await this.#write({ seq: 0, op: 'append', se: host.seId, ri: res.ri, attr, sealed: seal(this.#key, chunk, `${res.ri}/${attr}`), lt: modified });
  }

  async remove(host: SeHost, ris: readonly string[]): Promise<void> {
    await this.#write({ seq: 0, op: 'remove', se: host.seId, ris: [...ris] });
  }

  /** Resolves once the lock is released and the keys zeroized: for a second call too. */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    // The last task queued: writes queued before it still run, later ones are refused.
    const last = this.#serial(async () => {
      // An anchor write that failed (a record's, a snapshot's) may have taken its head: the anchor names the store's head again.
      if (this.#anchorFailed) await this.#settleAnchor().catch(() => undefined);
      // A record whose write failed must not be replayed by the next run: cut now, once the anchor no longer names it, if the disk lets us.
      if (!this.#anchorUnsure) await this.#takeBack().catch(() => undefined);
      // A snapshot must not replace the one an unsure anchor may name: the journal stays as it is.
      if (this.#superseded && this.#cutAt === undefined && !this.#anchorUnsure) await this.#compact();
      // A rotation's snapshot whose rename failed: put in place now if the disk lets us (the open would do it otherwise).
      if (this.#rotatedPending) await this.#finishRotation().catch(() => undefined);
      // What a crashed or refused write of this run or an earlier one left: sealed state no file refers to
      // (a rotation's snapshot only once no open needs it).
      for (const name of ['snapshot.json.tmp', 'meta.json.tmp', ...(this.#rotatedPending || this.#unsettled ? [] : [ROTATED])]) await this.#files.remove(`${this.#dir}/${name}`).catch(() => undefined);
    });
    this.#closed = true;
    await last;
    // A lock that cannot be removed (a read-only disk) names a process that is gone: the next opener takes it over.
    await releaseLock(this.#files, this.#dir, this.#lock).catch(() => undefined);
    this.#key.fill(0);
    this.#macKey.fill(0);
  }

  /**
   * The record of `res`, its messages as sealed chunks but those of `keep` (left as they were by
   * the change), which go to `unchanged`: put() decides whether the record keeps them. With
   * `keepSealed`, its secret values are left out: put() keeps or copies the state's sealed part.
   */
  async #record(host: SeHost, res: Resource, keep: ReadonlySet<string> | undefined, unchanged: Unchanged[], keepSealed: boolean): Promise<ResourceRecord> {
    const attrs: Record<string, Json> = {};
    const secret: Record<string, Json> = {};
    const rec: ResourceRecord = { ri: res.ri, rn: res.rn, pi: res.parent?.ri ?? '', root: res.def.type.root, ct: res.created, lt: res.modified, attrs };
    for (const [name, v] of res.attrs) {
      if (v instanceof Accumulator) {
        if (v.consumed) rec.consumed = true;
        if (keep?.has(name)) unchanged.push({ rec, attr: name, acc: v });
        else (rec.appends ??= []).push({ attr: name, sealed: seal(this.#key, v.bytes(), `${res.ri}/${name}`) });
        continue;
      }
      const isSecret = res.seals(name, v);
      if (isSecret && keepSealed) continue;
      (isSecret ? secret : attrs)[name] = await encodeStoredValue(host, v);
    }
    if (res.hint) rec.hint = res.hint;
    if (Object.keys(secret).length) rec.sealed = sealSecrets(this.#key, secret, res.ri);
    return rec;
  }

  /**
   * Runs `task` once every earlier one has settled. The SEs of one engine
   * write concurrently: a record's sequence number and MAC follow from the
   * one before it, and a compaction's snapshot must hold every record its
   * cut removes.
   */
  #serial<T>(task: () => Promise<T>): Promise<T> {
    // After close() the keys are zeroized and the lock is another's to take: nothing may be written.
    if (this.#closed) return Promise.reject(new StateError(`the store of ${this.#dir} is closed`));
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #write(r: JournalRecord): Promise<void> {
    return this.#serial(() => this.#appendRecord(r));
  }

  /**
   * Appends one record, flushes it and writes its head to the anchor; the
   * store's state takes the record only once that succeeded. A failed append
   * may have left part of the record (or all of it, when only the flush or
   * the anchor failed) in the file: it was never acknowledged, so it is taken
   * back (#takeBack) before anything follows it.
   */
  async #appendRecord(r: JournalRecord): Promise<void> {
    await this.#takeBack();
    // Before anything is appended: a request whose flush fails here fails with nothing written.
    await this.#flushCommit();
    r.seq = this.#state.seq + 1;
    const payload = enc.encode(JSON.stringify(r));
    const recordMac = mac(this.#macKey, 'record', this.#lastMac, payload);
    const frame = new Uint8Array(8 + payload.length + MAC_LEN);
    frame.set(payload, 8);
    frame.set(recordMac, 8 + payload.length);
    const view = new DataView(frame.buffer);
    view.setUint32(0, payload.length + MAC_LEN, true);
    view.setUint32(4, crc32(frame.subarray(8)), true);
    try {
      await this.#files.append(`${this.#dir}/journal.log`, frame);
      // The first record may have created the file: its directory entry is flushed before the write
      // is acknowledged (a power loss could otherwise take the whole journal). Once per emptied journal.
      if (this.#journalBytes === 0) await this.#files.syncDir(this.#dir);
      if (this.#anchor) await this.#anchorHead({ seq: r.seq, mac: recordMac });
    } catch (e) {
      // Now if the anchor and the disk let us; otherwise the next write takes it back first (and fails while it cannot).
      this.#cutAt = this.#journalBytes;
      await this.#takeBack().catch(() => undefined);
      throw e;
    }
    this.#journalBytes += frame.length;
    this.#lastMac = recordMac;
    this.#superseded ||= supersedes(this.#state, r);
    apply(this.#state, r);
    if (this.#journalBytes - this.#compactFrom >= (this.#compactAt ?? Math.max(COMPACT_AT, this.#snapshotBytes))) await this.#compact();
  }

  /** Where the chain ends: the next record's MAC covers this one. */
  #head(): Head {
    return { seq: this.#state.seq, mac: this.#lastMac };
  }

  async #anchorHead(head: Head): Promise<void> {
    this.#anchorUnsure = true;
    try {
      await this.#anchor!.write(encodeHead(head));
    } catch (e) {
      this.#anchorFailed = true;
      throw e;
    }
    this.#anchorUnsure = false;
  }

  /**
   * Reads the anchor back at close and writes the store's head again unless
   * it names it. A write that reported a failure and landed later all the
   * same (against RollbackAnchor's contract, yet what a client's timeout
   * does) undoes the store's rewrite: left so, the next open would find the
   * directory behind its anchor, or at a head it never named. One that lands
   * after close() is beyond the store's reach.
   */
  async #settleAnchor(): Promise<void> {
    const head = this.#head();
    const held = await readHead(this.#anchor!, this.#dir).catch(() => undefined);
    if (held?.seq === head.seq && constantTimeEqual(held.mac, head.mac)) this.#anchorUnsure = false;
    else await this.#anchorHead(head);
  }

  /**
   * Takes back a failed write still in the journal (#cutAt). An anchor that
   * reported a failure may have taken its head all the same (a timeout), so
   * the anchor names the last good head again first, and only once it did is
   * the record cut: a crash between the two leaves the anchor one record
   * behind the journal (that record is cut at open), never ahead of it (which
   * the open refuses as a rollback). While the anchor refuses, the record
   * stays where it is.
   */
  async #takeBack(): Promise<void> {
    if (this.#cutAt === undefined) return;
    if (this.#anchorUnsure) await this.#anchorHead(this.#head());
    await this.#cut(this.#cutAt);
  }

  /** Cuts the journal to `length`, remembering the cut until it succeeded. */
  async #cut(length: number): Promise<void> {
    this.#cutAt = length;
    await this.#files.truncate(`${this.#dir}/journal.log`, length);
    this.#journalBytes = length;
    if (length === 0) {
      this.#journalStart = this.#lastMac = this.#snapMac;
      this.#compactFrom = 0;
    }
    this.#cutAt = undefined;
  }

  /**
   * Writes the snapshot and empties the journal. The record that triggered
   * it is durable in the journal already, so a failure here does not fail
   * the write: a snapshot that was not written is tried again once the
   * journal has grown by as much again (or at close), and a journal that
   * could not be emptied only replays records the snapshot holds (until the
   * next write cuts it). A snapshot renamed into
   * place whose directory flush failed counts as not written: the journal
   * goes on from its last record, which verifies after either snapshot (an
   * empty one from the snapshot replaced, whose MAC the new one names as
   * its `from`: read-dir.ts takes a record chained from there). So
   * does one whose head the anchor did not take: the anchor still names the
   * journal's last record, which names the same state (the next open takes
   * either).
   */
  async #compact(strict = false): Promise<void> {
    let snapMac: Uint8Array;
    try {
      await this.#flushCommit();
      mergeAppends(this.#state, this.#key);
      // Building the snapshot can fail too (memory, V8's longest string): everything is in the try.
      // Nothing in it may vary between two builds of one state (a time, a fresh nonce): a snapshot
      // written again for the same state, whose anchor write then failed, is still the one the anchor
      // names (the first one's meta.json write had failed).
      let file: Uint8Array;
      ({ file, snapMac } = snapshotFile(this.#macKey, this.#meta.check, this.#journalStart, this.#state));
      await writeAtomic(this.#files, this.#dir, 'snapshot.json', file);
      // A rotation's snapshot still waiting for its rename holds an older state than this one: no longer to be put in place.
      this.#rotatedPending = false;
      this.#snapshotBytes = file.length;
      // With no record in the journal (a compaction at open) the snapshot just renamed is the chain's head,
      // the one it replaced gone: the next record, and the anchor's rewrite should this write fail, name it.
      if (this.#journalBytes === 0) this.#snapMac = this.#journalStart = this.#lastMac = snapMac;
      // Before the journal is cut: the anchor must name a head the directory holds at every moment.
      if (this.#anchor) await this.#anchorHead({ seq: this.#state.seq, mac: snapMac });
    } catch (e) {
      // Tried again once the journal has grown by as much again (or at close): while the disk refuses
      // it, a retry after every record would rebuild the whole state for each.
      this.#compactFrom = this.#journalBytes;
      if (strict) throw e;
      return;
    }
    this.#snapMac = snapMac;
    this.#superseded = false;
    // Only now that a bound snapshot replaced an unbound one: meta.json's format 5 refuses an unbound one.
    // And before the journal is cut: until meta.json says there is a snapshot, the journal keeps the
    // records it holds, so removing the snapshot loses none (the first one's journal chains from the start).
    // From format 5 on records may keep messages: the snapshot holds every message in appends (and from 6 sealed parts).
    if (this.#meta.format !== KEEPS_SEALED) {
      try {
        await this.#writeMeta(KEEPS_SEALED);
      } catch (e) {
        // Format 5's meta.json says there is a snapshot already: it stays 5 (nothing kept sealed) and the journal is cut
        // all the same. Format 2 or 3 goes on (2 reads bound snapshots too), the journal uncut: a later compaction, or
        // close, tries again; so does 4, which would keep no message.
        if (this.#meta.format < KEEPS) {
          this.#superseded = true;
          this.#compactFrom = this.#journalBytes;
          if (strict) throw e;
          return;
        }
      }
    }
    const cut = this.#cut(0);
    await (strict ? cut : cut.catch(() => undefined));
  }

  /**
   * Moves the directory to `masterKey` (docs/mcs.md "Rotating the master key"), in the write queue:
   * the engine calls it with no write of its own under way. The journal is first emptied by a
   * compaction under the old key; then the state, every sealed value opened and sealed again, is
   * written as the new key's snapshot under a name of its own (ROTATED), and the new meta.json (a
   * new check value) renamed into place: that rename is the commit point. The open tells a rotation
   * cut short by the snapshot in place (read-dir.ts settleRotation): one that verifies under
   * meta.json means the rename did not happen (ROTATED is removed), one that does not means it did
   * (ROTATED, which does verify, is renamed over it). The new snapshot names the old head as the
   * chain value its journal starts from, so that an anchor still naming it is taken at the next open,
   * as after a compaction whose anchor write did not happen.
   */
  rotateMasterKey(masterKey: Uint8Array): Promise<void> {
    return this.#serial(() => this.#rotate(masterKey));
  }

  async #rotate(newKey: Uint8Array): Promise<void> {
    if (this.#unsettled) throw this.#unsettled;
    // An operator's mistake (the old key file given again): a "rotation" that leaves a leaked key in use.
    if (constantTimeEqual(newKey, this.#key)) throw new InvalidInputError('the new master key is the one the data directory is under already: give another key');
    try {
      // An earlier rotation's snapshot not renamed yet: its name is about to be reused, and the open needs it in place.
      if (this.#rotatedPending) await this.#finishRotation();
      // The old key's journal emptied, a failed record taken back first (the anchor naming the head again).
      if (this.#anchorUnsure) await this.#anchorHead(this.#head());
      await this.#takeBack();
      if (this.#journalBytes > 0 || this.#meta.format !== KEEPS_SEALED) await this.#compact(true);
    } catch (e) {
      throw new MasterKeyRotationError(this.#dir, false, e);
    }
    const key = secretCopy(newKey);
    const macKey = secretHmac('SHA-256', key, enc.encode('senv journal mac'));
    // Unknown (undefined) when the commit's rename failed and meta.json, read back, opens under neither key.
    let committed: boolean | undefined = false;
    try {
      const { state, unopened } = resealed(this.#state, this.#key, key);
      if (unopened !== undefined) throw new DataDirDamagedError(this.#dir, `holds sealed data of resource ${unopened} that does not open under that resource's ID (moved from another resource, or altered)`);
      const meta = freshMeta(key, macKey, this.#meta.uniqueIds, KEEPS_SEALED);
      const { file, snapMac } = snapshotFile(macKey, meta.check, this.#lastMac, state);
      await this.#files.writeDurable(`${this.#dir}/${ROTATED}`, file);
      await this.#files.syncDir(this.#dir);
      await this.#files.writeDurable(`${this.#dir}/meta.json.tmp`, enc.encode(JSON.stringify(meta)));
      try {
        await this.#files.rename(`${this.#dir}/meta.json.tmp`, `${this.#dir}/meta.json`);
      } catch (e) {
        // A rename that reports a failure may have happened all the same (a network file system that
        // retried it, a Files whose rename timed out after it): meta.json, read back, tells.
        committed = await this.#metaUnder(key, macKey);
        if (!committed) throw e;
      }
      // Committed: meta.json opens with the new key only, and the open puts ROTATED in place.
      committed = true;
      this.#commitUnflushed = true;
      this.#key.fill(0);
      this.#macKey.fill(0);
      this.#key = key;
      this.#macKey = macKey;
      this.#meta = meta;
      this.#state = state;
      this.#snapMac = this.#journalStart = this.#lastMac = snapMac;
      this.#snapshotBytes = file.length;
      this.#superseded = false;
      this.#rotatedPending = true;
      await this.#finishRotation();
      if (this.#anchor) await this.#anchorHead(this.#head());
    } catch (e) {
      if (committed) throw new MasterKeyRotationError(this.#dir, true, e);
      key.fill(0);
      macKey.fill(0);
      if (committed === undefined) {
        // Neither key may write now (a record under the wrong one would be damage): the next open, with the key
        // meta.json opens under, settles the rotation by its MACs, so ROTATED stays.
        this.#unsettled = new MasterKeyRotationError(this.#dir, undefined, e);
        throw this.#unsettled;
      }
      // The new key's files of a rotation that did not happen (the open, or close, removes them otherwise).
      for (const name of [ROTATED, 'meta.json.tmp']) await this.#files.remove(`${this.#dir}/${name}`).catch(() => undefined);
      throw e instanceof DataDirDamagedError ? e : new MasterKeyRotationError(this.#dir, false, e);
    }
  }

  /**
   * Renames a committed rotation's snapshot over the old key's, which leaves the directory. The
   * commit is flushed first: the new meta.json's rename must be on the disk before the new
   * snapshot's, or a power loss could keep the old meta.json with the new snapshot, which neither key opens.
   */
  async #finishRotation(): Promise<void> {
    await this.#flushCommit();
    await this.#files.rename(`${this.#dir}/${ROTATED}`, `${this.#dir}/snapshot.json`);
    this.#rotatedPending = false;
    await this.#files.syncDir(this.#dir);
  }

  /** Whether meta.json opens under the new key (true) or the old one (false); undefined when it opens under neither or cannot be read. */
  async #metaUnder(key: Uint8Array, macKey: Uint8Array): Promise<boolean | undefined> {
    const bytes = await this.#files.read(`${this.#dir}/meta.json`).catch(() => undefined);
    if (!bytes) return undefined;
    const opens = (k: Uint8Array, m: Uint8Array) => {
      try {
        openMeta(this.#dir, bytes, k, m);
        return true;
      } catch {
        return false;
      }
    };
    return opens(key, macKey) ? true : opens(this.#key, this.#macKey) ? false : undefined;
  }

  async #flushCommit(): Promise<void> {
    if (this.#unsettled) throw this.#unsettled;
    if (!this.#commitUnflushed) return;
    await this.#files.syncDir(this.#dir);
    this.#commitUnflushed = false;
  }
}

/** What the open of `dir` throws for `e`: the file system's refusal, or the store's own, as unopenable; anything else as it is. */
function openFailure(dir: string, e: unknown): unknown {
  return e instanceof StoreFileError || fileSystemError(e) ? unopenable(dir, e) : e;
}

/**
 * A data directory the file operations refused (no permission, a parent that is no directory, a full
 * disk): a StateError naming what failed, by its code or name and the file in the directory it was
 * about, and on Deno or under Node's --permission the grants the directory needs; a refusal of the store's own keeps its words
 * (a planted link or FIFO).
 */
function unopenable(dir: string, e: unknown): StateError {
  // A file in the directory the refusal is about (Node's errors name it): the one to chown or put back, where
  // the directory itself opens (a meta.json root copied in, 0600, refuses the service's user).
  const path = (e as { path?: unknown } | null)?.path;
  const file = typeof path === 'string' && path.startsWith(`${trimSlashes(dir)}/`) ? ` on ${path}` : '';
  const err = new StateError(e instanceof StoreFileError ? e.message
    : `the data directory ${dir} cannot be opened (${refusalOf(e, `--allow-read=${dir} --allow-write=${dir}`, nodeGrants(dir))}${file})`);
  err.cause = e;
  return err;
}

/**
 * Node's grants for a data directory: a grant of a path that does not exist yet covers that path alone, not
 * the files made in it, so the directory is named with its contents (which covers it too, made or not).
 */
function nodeGrants(dir: string): string {
  const all = `${trimSlashes(dir)}/*`;
  return `--allow-fs-read=${all} --allow-fs-write=${all}`;
}

/** Whether `e` is the file system's refusal (an errno code on Node, one of Deno.errors), not a defect's error, which passes on as it is. */
function fileSystemError(e: unknown): boolean {
  if (e instanceof SenvError) return false;
  if (typeof (e as { code?: unknown } | null)?.code === 'string') return true;
  const errors = (globalThis as { Deno?: { errors?: Record<string, unknown> } }).Deno?.errors;
  return errors !== undefined && Object.values(errors).some((C) => typeof C === 'function' && e instanceof (C as abstract new () => Error));
}

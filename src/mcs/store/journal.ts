// Persistence of SE-resources in a data directory (Node and Deno):
//
//   lock             pid and start time of the process that has the directory
//                    open: a second opener is refused, a stale lock taken over
//   meta.json        format (4 once the directory has a snapshot), unique IDs
//                    of the software SEs, a sealed check value that tells a
//                    wrong master key from a damaged file, and a MAC over them
//   snapshot.json    a header line (format, MAC, the chain value its journal
//                    started from), then the full state up to sequence `seq`;
//                    the MAC covers meta.json's check value too (format 3),
//                    so another directory's snapshot does not verify here
//   journal.log      records after the snapshot:
//                    [length u32][crc32 u32][JSON][MAC 32 bytes]
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
// A write that fails (ENOSPC, EIO, a read-only directory) is cut off at once,
// or before the next record if the cut fails too, and the store's state stays
// as it was: the engine applies nothing, and no later record ever follows the
// debris of one that failed. When the journal grows, the state is written to
// snapshot.json.tmp, flushed, renamed over snapshot.json (then the directory
// is flushed) and the journal truncated. A journal that a crash left behind
// the new snapshot holds records the snapshot covers: they verify from the
// chain value the snapshot names, and are not applied again.
//
// Secrets (keys, sensitive data, messages, results: attributes declared
// `secret`, and every key) are sealed with AES-256-GCM under the master key,
// a fresh 12-byte nonce per record and the resource ID as associated data.
import { constantTimeEqual } from '../../core/compare.ts';
import { gcm } from '../../core/gcm.ts';
import { hmac, secretHmac } from '../../core/hmac.ts';
import { randomBytes } from '../../core/drbg.ts';
import { AuthenticationError, SenvError, shown, StateError } from '../../core/errors.ts';
import { refusalOf } from '../../core/permissions.ts';
import { isKeyHandle, type KeySpec, type StoredKey } from '../../backends/backend.ts';
import { base64Length, fromBase64, keyFromBase64, toBase64 } from '../codec.ts';
import { secretCopy, toHex } from '../../core/bytes.ts';
import type { SeHost } from '../host.ts';
import { BackendFailure, type Persistence } from '../persist.ts';
import { compiledType, TYPES } from '../registry.ts';
import { Accumulator, DeviceData, Resource } from '../resource.ts';
import { anchoredRecords, anchorFailed, encodeHead, readHead, type Head, type RollbackAnchor } from './anchor.ts';
import { DataDirDamagedError, DataDirFormatError, DataDirLockedError, DataDirRolledBackError } from './errors.ts';
import { openFiles, parentOf, StoreFileError, trimSlashes, type Files } from './files.ts';

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

/**
 * The layouts (meta.json and snapshot.json say which they have). Format 3 binds a snapshot to its
 * directory; a format 2 directory (snapshots not bound) is read, and upgraded by a snapshot written
 * at open. A snapshot is format 3. meta.json says format 4 from the directory's first snapshot on:
 * under its MAC, the directory has a snapshot.json. Without that, a removed snapshot (with the
 * journal a compaction emptied, or with the journal too) would open as an empty directory: with no
 * snapshot the chain starts from the check value, which an empty journal matches. A format number,
 * not a member added to format 3: a version before it refuses the directory as a format it does not
 * read, not as one altered without the master key (its MAC would not cover the member).
 */
const UNBOUND = 2;
const BOUND = 3;
const MARKED = 4;

interface Meta { format: number; uniqueIds: Record<string, string>; check: string; mac: string }

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface ResourceRecord {
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
  /** Chunks appended since the record was put, each sealed with `<ri>/<attr>` as associated data. */
  appends?: { attr: string; sealed: string }[];
  /** Its sealed part holds a consumed message, which the next chunk replaces (not secret: tells the store that chunk supersedes it). */
  consumed?: true;
}

type JournalRecord =
  | { seq: number; op: 'put'; se: string; res: ResourceRecord[] }
  | { seq: number; op: 'append'; se: string; ri: string; attr: string; sealed: string; lt?: number }
  | { seq: number; op: 'remove'; se: string; ris: string[] };

interface Snapshot { seq: number; resources: Record<string, Record<string, ResourceRecord>> }

/** What open() found: the state, and where the MAC chain stands. */
interface Opened {
  meta: Meta;
  state: Snapshot;
  journalBytes: number;
  /** The size of snapshot.json (0 without one). */
  snapshotBytes: number;
  snapMac: Uint8Array;
  journalStart: Uint8Array;
  lastMac: Uint8Array;
  /** The journal holds sealed data a later record made obsolete (a run that ended without close(), or whose compaction failed). */
  superseded: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const CHECK = 'senv master key check';
const MAC_LEN = 32;
/** The shortest frame body: `{}` and a MAC. Anything shorter (8 zero bytes: length 0, CRC 0) is no record. */
const MIN_BODY = 2 + MAC_LEN;
const LOCK = 'lock';
/** The journal size that triggers a snapshot at least, by default (JournalOptions.compactAt). */
const COMPACT_AT = 8 * 1024 * 1024;
/** Tokens of the locks this process holds: a lock naming this pid is its own only if it is one of them. */
const held = new Set<string>();

export class JournalStore implements Persistence {
  readonly #files: Files;
  readonly #dir: string;
  readonly #key: Uint8Array;
  readonly #macKey: Uint8Array;
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
   * meta.json's format 4 failed), so the journal was not cut (0 once it is): the next compaction
   * waits for as many bytes again, or close. Otherwise every record would rebuild the whole state
   * while the disk keeps refusing.
   */
  #compactFrom = 0;
  /** Where the journal must be cut before the next record: a failed write (or compaction) could not cut it yet. */
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
      throw e instanceof StoreFileError || fileSystemError(e) ? unopenable(options.dir, e) : e;
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
      // Upgrades a format 2 directory: its meta.json says format 4 once a bound snapshot holds
      // everything. Should that fail, the store goes on in format 2 and tries at its next snapshot.
      // The same snapshot seals what an earlier version kept in the clear (format 2's Hv, a Sgn before it was sealed).
      if (sealClearSecrets(store.#state, store.#key) || store.#meta.format === UNBOUND) await store.#compact();
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
        const meta = newMeta(this.#macKey, this.#meta.check, { ...this.#meta.uniqueIds, [kind]: id }, this.#meta.format);
        await writeAtomic(this.#files, this.#dir, 'meta.json', enc.encode(JSON.stringify(meta)));
        this.#meta = meta;
      }
      return id;
    });
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
      for (const [name, v] of Object.entries({ ...rec.attrs, ...secret })) res.attrs.set(name, await decodeValue(host, v));
      for (const a of rec.appends ?? []) {
        let acc = res.attrs.get(a.attr);
        if (!(acc instanceof Accumulator)) res.attrs.set(a.attr, (acc = new Accumulator()));
        wiping(unseal(a.sealed, rec.ri, `${rec.ri}/${a.attr}`), (chunk) => (acc as Accumulator).receive(chunk, false));
      }
      if (parent) parent.children.set(res.rn, res);
      built.set(rec.ri, res);
      return res;
    };
    try {
      for (const rec of records) await build(rec);
    } catch (e) {
      for (const res of made) host.releaseResource(res, true);
      // A record of the right MAC but not of a resource's shape (a TypeError or RangeError reading it): damage,
      // named so. A backend's own failure to load a key (a device gone) stays what it is.
      if (e instanceof TypeError || e instanceof RangeError) throw new DataDirDamagedError(this.#dir, `holds a record that is not a resource's (${e.name})`);
      throw e;
    }
    for (const res of built.values()) if (!res.parent) host.link(res);
  }

  async put(host: SeHost, res: Resource, withChildren: boolean): Promise<void> {
    const recs: ResourceRecord[] = [];
    const walk = async (r: Resource) => {
      recs.push(await this.#record(host, r));
      if (withChildren) for (const c of r.children.values()) await walk(c);
    };
    await walk(res);
    await this.#write({ seq: 0, op: 'put', se: host.seId, res: recs });
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
      // A record whose write failed must not be replayed by the next run: cut it now if the disk lets us.
      if (this.#cutAt !== undefined) await this.#cut(this.#cutAt).catch(() => undefined);
      if (this.#anchorUnsure) await this.#anchorHead(this.#head()).catch(() => undefined);
      // A snapshot must not replace the one an unsure anchor may name: the journal stays as it is.
      if (this.#superseded && this.#cutAt === undefined && !this.#anchorUnsure) await this.#compact();
      // What a crashed or refused write of this run or an earlier one left: sealed state no file refers to.
      for (const name of ['snapshot.json.tmp', 'meta.json.tmp']) await this.#files.remove(`${this.#dir}/${name}`).catch(() => undefined);
    });
    this.#closed = true;
    await last;
    // A lock that cannot be removed (a read-only disk) names a process that is gone: the next opener takes it over.
    await releaseLock(this.#files, this.#dir, this.#lock).catch(() => undefined);
    this.#key.fill(0);
    this.#macKey.fill(0);
  }

  async #record(host: SeHost, res: Resource): Promise<ResourceRecord> {
    const attrs: Record<string, Json> = {};
    const secret: Record<string, Json> = {};
    let consumed = false;
    for (const [name, v] of res.attrs) {
      const isSecret = isKeyHandle(v) || res.def.byName.get(name)?.secret === true;
      (isSecret ? secret : attrs)[name] = await encodeValue(host, v);
      if (isSecret && v instanceof Accumulator && v.consumed && v.size > 0) consumed = true;
    }
    const rec: ResourceRecord = { ri: res.ri, rn: res.rn, pi: res.parent?.ri ?? '', root: res.def.type.root, ct: res.created, lt: res.modified, attrs };
    if (consumed) rec.consumed = true;
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
   * the anchor failed) in the file: it was never acknowledged, so it is cut
   * off before anything follows it.
   */
  async #appendRecord(r: JournalRecord): Promise<void> {
    if (this.#cutAt !== undefined) await this.#cut(this.#cutAt);
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
      // Cut now if the disk lets us; otherwise the next write cuts first (and fails while it cannot).
      await this.#cut(this.#journalBytes).catch(() => undefined);
      // An anchor that reported a failure may have taken the head all the same (a timeout): with the
      // record cut, the next open would find the journal behind it. It names the last good head
      // again, now if it lets us, else at the next write or close.
      if (this.#anchorUnsure) await this.#anchorHead(this.#head()).catch(() => undefined);
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
    await this.#anchor!.write(encodeHead(head));
    this.#anchorUnsure = false;
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
   * goes on from its last record, which verifies after either snapshot. So
   * does one whose head the anchor did not take: the anchor still names the
   * journal's last record, which names the same state (the next open takes
   * either).
   */
  async #compact(): Promise<void> {
    let snapMac: Uint8Array;
    try {
      dropReplacedMessages(this.#state, this.#key);
      mergeAppends(this.#state, this.#key);
      // Building the snapshot can fail too (memory, V8's longest string): everything is in the try.
      const body = enc.encode(JSON.stringify(this.#state));
      snapMac = snapshotMac(this.#macKey, BOUND, this.#meta.check, this.#journalStart, body);
      const header = enc.encode(`${JSON.stringify({ format: BOUND, from: toBase64(this.#journalStart), mac: toBase64(snapMac) })}\n`);
      const file = new Uint8Array(header.length + body.length);
      file.set(header);
      file.set(body, header.length);
      await writeAtomic(this.#files, this.#dir, 'snapshot.json', file);
      this.#snapshotBytes = file.length;
      // With no record in the journal (a compaction at open) the snapshot just renamed is the chain's head,
      // the one it replaced gone: the next record, and the anchor's rewrite should this write fail, name it.
      if (this.#journalBytes === 0) this.#snapMac = this.#journalStart = this.#lastMac = snapMac;
      // Before the journal is cut: the anchor must name a head the directory holds at every moment.
      if (this.#anchor) await this.#anchorHead({ seq: this.#state.seq, mac: snapMac });
    } catch {
      // Tried again once the journal has grown by as much again (or at close): while the disk refuses
      // it, a retry after every record would rebuild the whole state for each.
      this.#compactFrom = this.#journalBytes;
      return;
    }
    this.#snapMac = snapMac;
    this.#superseded = false;
    // Only now that a bound snapshot replaced an unbound one: meta.json's format 4 refuses an unbound one.
    // And before the journal is cut: until meta.json says there is a snapshot, the journal keeps the
    // records it holds, so removing the snapshot loses none (the first one's journal chains from the start).
    if (this.#meta.format !== MARKED) {
      const meta = newMeta(this.#macKey, this.#meta.check, this.#meta.uniqueIds, MARKED);
      try {
        await writeAtomic(this.#files, this.#dir, 'meta.json', enc.encode(JSON.stringify(meta)));
        this.#meta = meta;
      } catch {
        // Format 2 or 3 goes on (2 reads bound snapshots too), the journal uncut: a later compaction, or close, tries again.
        this.#superseded = true;
        this.#compactFrom = this.#journalBytes;
        return;
      }
    }
    await this.#cut(0).catch(() => undefined);
  }
}

/**
 * Reads meta.json, snapshot.json and journal.log, verifying every MAC and,
 * given the rollback anchor's head, that the chain ends there; cuts a torn
 * record off the end of the journal, and a record past the anchored head.
 */
async function readDir(files: Files, dir: string, key: Uint8Array, macKey: Uint8Array, anchor: { head: Head | undefined; trustOnFirstUse: boolean } | undefined): Promise<Opened> {
  const metaBytes = await files.read(`${dir}/meta.json`);
  const snapBytes = await files.read(`${dir}/snapshot.json`);
  const journal = (await files.read(`${dir}/journal.log`)) ?? new Uint8Array(0);
  let meta: Meta;
  if (metaBytes) meta = openMeta(dir, metaBytes, key, macKey);
  else if (snapBytes || journal.length) throw new DataDirDamagedError(dir, 'holds records but no meta.json', 'meta.json');
  // A directory made now cannot be at a head its anchor names: refused before anything is written.
  else if (anchor?.head) throw new DataDirRolledBackError(dir, 0, anchor.head.seq);
  else {
    meta = newMeta(macKey, seal(key, enc.encode(CHECK), 'meta'), {}, BOUND);
    await writeAtomic(files, dir, 'meta.json', enc.encode(JSON.stringify(meta)));
  }
  // Bound to this directory's check value: a journal copied from another directory does not verify.
  let snapMac = mac(macKey, 'start', enc.encode(meta.check));
  let from = snapMac;
  let state: Snapshot = { seq: 0, resources: table() };
  if (meta.format === MARKED && !snapBytes) throw new DataDirDamagedError(dir, 'is missing, though meta.json says the directory has one: removed (with or without the journal)', 'snapshot.json');
  if (snapBytes) ({ state, snapMac, from } = openSnapshot(dir, snapBytes, macKey, meta));
  let journalStart = snapMac;
  let last = snapMac;
  let off = 0;
  // Verified first, applied once the anchor said how many to keep.
  const records: { r: JournalRecord; at: number; mac: Uint8Array }[] = [];
  while (off < journal.length) {
    const frame = frameAt(journal, off);
    const r = frame && parseRecord(frame.payload);
    if (!frame || !r) {
      // Only the last append can be torn: a bad record that something was written after was whole once.
      if (endsBeforeTheFile(journal, off) || frameAfter(journal, off + 1)) {
        throw new DataDirDamagedError(dir, 'a record fails its check and more was written after it: damage, not a record torn by a crash (the file was left as it is)', 'journal.log', off);
      }
      break;
    }
    // A journal a crash left behind its snapshot holds the records the snapshot covers, chained from where the snapshot says.
    if (off === 0 && snapBytes && r.seq <= state.seq) journalStart = last = from;
    const recordMac = mac(macKey, 'record', last, frame.payload);
    if (!constantTimeEqual(recordMac, frame.mac)) {
      throw new DataDirDamagedError(dir, 'a record does not verify: records were altered, inserted, reordered or removed without the master key, or damaged', 'journal.log', off);
    }
    records.push({ r, at: off, mac: recordMac });
    last = recordMac;
    off = frame.next;
  }
  const keep = anchor ? anchoredRecords(dir, anchor.head, anchor.trustOnFirstUse, [{ seq: state.seq, mac: snapMac }, ...records.map(({ r, mac }) => ({ seq: r.seq, mac }))]) : records.length;
  let superseded = false;
  for (const { r } of records.slice(0, keep)) {
    if (r.seq > state.seq) {
      superseded ||= supersedes(state, r);
      apply(state, r);
    } else {
      // A record the snapshot covers (a crash came between the snapshot's rename and the journal's cut):
      // its sealed data may be a key deleted since, which a clean close's compaction removes.
      superseded = true;
    }
  }
  // A torn tail, or a record the anchor does not name, was never acknowledged: cut off so new records follow good ones.
  const end = keep < records.length ? records[keep]!.at : off;
  if (end < journal.length) await files.truncate(`${dir}/journal.log`, end);
  const lastMac = keep > 0 ? records[keep - 1]!.mac : journalStart;
  return { meta, state, journalBytes: end, snapshotBytes: snapBytes?.length ?? 0, snapMac, journalStart, lastMac, superseded };
}

/**
 * A data directory the file operations refused (no permission, a parent that is no directory, a full
 * disk): a StateError naming what failed, by its code or name only, and on Deno the permissions the
 * directory needs; a refusal of the store's own keeps its words (a planted link or FIFO).
 */
function unopenable(dir: string, e: unknown): StateError {
  const err = new StateError(e instanceof StoreFileError ? e.message
    : `the data directory ${dir} cannot be opened (${refusalOf(e, `--allow-read=${dir} --allow-write=${dir}`)})`);
  err.cause = e;
  return err;
}

/** Whether `e` is the file system's refusal (an errno code on Node, one of Deno.errors), not a defect's error, which passes on as it is. */
function fileSystemError(e: unknown): boolean {
  if (e instanceof SenvError) return false;
  if (typeof (e as { code?: unknown } | null)?.code === 'string') return true;
  const errors = (globalThis as { Deno?: { errors?: Record<string, unknown> } }).Deno?.errors;
  return errors !== undefined && Object.values(errors).some((C) => typeof C === 'function' && e instanceof (C as abstract new () => Error));
}

function openMeta(dir: string, bytes: Uint8Array, key: Uint8Array, macKey: Uint8Array): Meta {
  const meta = parseJson(bytes) as Partial<Meta> | undefined;
  if (!meta) throw new DataDirDamagedError(dir, 'is not a JSON object', 'meta.json');
  if (meta.format === undefined) {
    throw new DataDirFormatError(dir, 'was written by an earlier version of senv, whose records carry no MAC; this version does not read it: start from an empty data directory');
  }
  if (meta.format !== UNBOUND && meta.format !== BOUND && meta.format !== MARKED) {
    throw new DataDirFormatError(dir, `has format ${shown(meta.format)}; this version of senv reads formats ${UNBOUND} to ${MARKED}`);
  }
  if (typeof meta.check !== 'string' || typeof meta.mac !== 'string' || typeof meta.uniqueIds !== 'object' || meta.uniqueIds === null) {
    throw new DataDirDamagedError(dir, 'lacks its check value, MAC or unique IDs', 'meta.json');
  }
  try {
    open(key, meta.check, 'meta');
  } catch (e) {
    if (e instanceof AuthenticationError) throw new StateError(`the master key does not open the data directory ${dir} (a wrong master key, or meta.json's check value damaged)`);
    throw e;
  }
  const stored = fromBase64(meta.mac);
  const verified = newMeta(macKey, meta.check, meta.uniqueIds, meta.format);
  if (!stored || !constantTimeEqual(fromBase64(verified.mac)!, stored)) {
    throw new DataDirDamagedError(dir, 'does not verify: altered without the master key, or damaged', 'meta.json');
  }
  return verified;
}

function newMeta(macKey: Uint8Array, check: string, uniqueIds: Record<string, string>, format: number): Meta {
  // From format 3 the MAC covers the format: set back to 2, meta.json would let an unbound snapshot
  // in; set back from 4 to 3, a removed snapshot.
  const covered = format === UNBOUND ? [check, uniqueIds] : [format, check, uniqueIds];
  return { format, uniqueIds, check, mac: toBase64(mac(macKey, 'meta', enc.encode(JSON.stringify(covered)))) };
}

/**
 * A snapshot's MAC. Format 3 covers the directory's check value (a random
 * nonce sealed at creation): another directory's snapshot, written under the
 * same master key, does not verify here.
 */
function snapshotMac(macKey: Uint8Array, format: number, check: string, from: Uint8Array, body: Uint8Array): Uint8Array {
  return format === UNBOUND ? mac(macKey, 'snapshot', from, body) : mac(macKey, 'boundSnapshot', enc.encode(check), from, body);
}

/**
 * snapshot.json: a header line `{"format","from","mac"}`, then the state's JSON, which the MAC covers with `from`
 * (and the check value from format 3). A format 2 directory may have either kind: its upgrade writes the bound one first.
 */
function openSnapshot(dir: string, bytes: Uint8Array, macKey: Uint8Array, meta: Meta): { state: Snapshot; snapMac: Uint8Array; from: Uint8Array } {
  const nl = bytes.indexOf(0x0a);
  const header = nl > 0 ? parseJson(bytes.subarray(0, nl)) as { format?: unknown; from?: unknown; mac?: unknown } | undefined : undefined;
  const from = typeof header?.from === 'string' ? fromBase64(header.from) : undefined;
  const stored = typeof header?.mac === 'string' ? fromBase64(header.mac) : undefined;
  const format = header?.format;
  if ((format !== BOUND && !(format === UNBOUND && meta.format === UNBOUND)) || from?.length !== MAC_LEN || !stored) {
    throw new DataDirDamagedError(dir, 'has no valid header', 'snapshot.json');
  }
  const body = bytes.subarray(nl + 1);
  const snapMac = snapshotMac(macKey, format, meta.check, from, body);
  if (!constantTimeEqual(snapMac, stored)) throw new DataDirDamagedError(dir, 'does not verify: altered without the master key, or damaged', 'snapshot.json');
  const parsed = parseJson(body) as Partial<Snapshot> | undefined;
  if (!parsed || !Number.isSafeInteger(parsed.seq) || parsed.seq! < 0 || parsed.seq! >= MAX_SEQ || !isObject(parsed.resources) || !Object.values(parsed.resources).every(isObject)) {
    throw new DataDirDamagedError(dir, 'verifies but holds no state of the shape this version writes', 'snapshot.json');
  }
  const resources = table<Record<string, ResourceRecord>>();
  for (const [se, records] of Object.entries(parsed.resources)) resources[se] = Object.assign(table<ResourceRecord>(), records);
  return { state: { seq: parsed.seq!, resources }, snapMac, from };
}

/**
 * A map from IDs read from the store to their records, with no prototype: an
 * ID such as `__proto__` or `constructor` in a record (which only a holder of
 * the master key can write) names an entry, never Object.prototype.
 */
function table<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** The record at `off` if its length and CRC hold: [length u32][crc32 u32][JSON][MAC], length and CRC over JSON and MAC. */
function frameAt(buf: Uint8Array, off: number): { payload: Uint8Array; mac: Uint8Array; next: number } | undefined {
  if (off + 8 > buf.length) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset + off, 8);
  const len = view.getUint32(0, true);
  if (len < MIN_BODY || off + 8 + len > buf.length) return undefined;
  const body = buf.subarray(off + 8, off + 8 + len);
  if (crc32(body) !== view.getUint32(4, true)) return undefined;
  return { payload: body.subarray(0, len - MAC_LEN), mac: body.subarray(len - MAC_LEN), next: off + 8 + len };
}

/**
 * Whether the record at `off` declares a length that ends before the end of
 * the file: bytes were appended after it (a torn append ends the file, and
 * a file that grew before its data reached the disk reads as zeros).
 */
function endsBeforeTheFile(buf: Uint8Array, off: number): boolean {
  if (off + 8 > buf.length) return false;
  const len = new DataView(buf.buffer, buf.byteOffset + off, 4).getUint32(0, true);
  return len >= MIN_BODY && off + 8 + len < buf.length;
}

/**
 * Whether a whole record starts anywhere from `from` on: then the bad one
 * before it is damage, not a torn end. The JSON's braces are tested before
 * a CRC, which would otherwise run at every offset of a damaged journal, and
 * the CRCs together may read the file a few times over at most: a file
 * crafted to need more (braces planted at every offset) counts as damage
 * rather than make the open take hours.
 */
function frameAfter(buf: Uint8Array, from: number): boolean {
  let budget = 4 * buf.length;
  for (let o = from; o + 8 + MIN_BODY <= buf.length; o++) {
    if (buf[o + 8] !== 0x7b) continue;
    const len = new DataView(buf.buffer, buf.byteOffset + o, 4).getUint32(0, true);
    if (len < MIN_BODY || o + 8 + len > buf.length || buf[o + 8 + len - MAC_LEN - 1] !== 0x7d) continue;
    if ((budget -= len) < 0 || frameAt(buf, o)) return true;
  }
  return false;
}

/** Sequence numbers stay below this, so the next one is always a safe integer. */
const MAX_SEQ = 2 ** 52;

/**
 * The record a payload holds, when it has a record's shape: the MAC says who
 * wrote it, this says it is something apply() can take (a record of another
 * shape, or a sequence number at the end of the safe integers, which would
 * make the next acknowledged write unreadable, is damage).
 */
function parseRecord(payload: Uint8Array): JournalRecord | undefined {
  const r = parseJson(payload) as Record<string, unknown> | undefined;
  if (!r || !Number.isSafeInteger(r.seq) || (r.seq as number) < 1 || (r.seq as number) >= MAX_SEQ || typeof r.se !== 'string') return undefined;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const shaped = r.op === 'put' ? Array.isArray(r.res) && r.res.every((x) => typeof x === 'object' && x !== null && typeof (x as ResourceRecord).ri === 'string')
    : r.op === 'remove' ? strings(r.ris)
      : r.op === 'append' && typeof r.ri === 'string' && typeof r.attr === 'string' && typeof r.sealed === 'string' && (r.lt === undefined || Number.isSafeInteger(r.lt));
  return shaped ? (r as unknown as JournalRecord) : undefined;
}

/** The JSON object in `bytes`, or undefined for anything else. */
function parseJson(bytes: Uint8Array): object | undefined {
  try {
    const v = JSON.parse(dec.decode(bytes)) as unknown;
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `v` is a JSON object (not null, not an array). */
function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const LABELS = {
  meta: enc.encode('meta\0'), start: enc.encode('start\0'), snapshot: enc.encode('snapshot\0'), boundSnapshot: enc.encode('bound snapshot\0'), record: enc.encode('record\0'),
};

/** HMAC-SHA-256 over a label (one per kind of thing authenticated, so that none passes for another) and the parts. */
function mac(macKey: Uint8Array, label: keyof typeof LABELS, ...parts: Uint8Array[]): Uint8Array {
  const l = LABELS[label];
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, l.length));
  data.set(l);
  let at = l.length;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return hmac('SHA-256', macKey, data);
}

interface LockHolder { pid: number; since: string; token: string; osLocked: boolean; stamp?: string }

/** A lock this store holds. */
interface Lock { token: string; release: () => Promise<void> }

/**
 * Takes the directory's lock: a file created only where none exists, naming
 * this process. A lock whose process is gone (a crash, kill -9) is taken
 * over; one whose process runs, or of which the platform cannot tell,
 * refuses the open.
 */
async function takeLock(files: Files, dir: string): Promise<Lock> {
  const path = `${dir}/${LOCK}`;
  const token = toHex(randomBytes(16));
  const mine = enc.encode(JSON.stringify({ pid: files.pid, since: new Date().toISOString(), token, osLocked: files.osLocks, ...(files.stamp ? { stamp: files.stamp } : {}) } satisfies LockHolder));
  // Held before the file can be seen: an opener in this module that reads it meanwhile finds it live.
  held.add(token);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const release = await files.createLock(path, mine);
      if (release) return { token, release };
      await takeOver(files, dir, path, mine);
    }
  } catch (e) {
    held.delete(token);
    throw e;
  }
  held.delete(token);
  // Or the name is there and reads as missing: a symbolic link to nothing.
  throw new StateError(`the lock of the data directory ${dir} keeps changing: other processes are opening it, or ${path} is a link to nothing`);
}

/** After a failed create: refuses a live lock, or removes a stale one for the next attempt. */
async function takeOver(files: Files, dir: string, path: string, mine: Uint8Array): Promise<void> {
  const found = await files.read(path, 'lock');
  if (!found) return;
  // A lock appears with its content whole and flushed (Files.createLock): one that does not parse, or
  // names no process (pid 0), is damage, whose holder cannot be told. Refused, as a live one is: taking
  // it over could open the directory beside the engine that has it.
  const holder = lockHolder(found);
  if (!holder) throw new DataDirDamagedError(dir, `names no process it could belong to (damage): if no engine has the directory open, remove ${path}`, LOCK);
  const alive = await holderAlive(files, path, holder);
  if (alive !== false) {
    const unknown = alive === undefined ? 'whether it still runs cannot be told here' : 'a process of that pid runs';
    throw new DataDirLockedError(dir, holder.pid, ` (since ${holder.since}; ${unknown}: if no engine has it open, remove ${path})`);
  }
  await removeIfUnchanged(files, path, found, mine);
}

/** Guards above the lock's own: one more each time a taker died holding the one below. */
const MAX_GUARDS = 4;

/**
 * Removes the stale file at `path` if it still holds `found`. Only the holder
 * of its takeover guard (itself a lock file) removes it, after reading it
 * again, so two openers taking over at once never remove each other's fresh
 * file. A guard left by a taker that died is stale in turn and goes the same
 * way, one level up (a removal judged by a separate read, unguarded, could
 * remove a live guard). The caller tries its lock again afterwards.
 */
async function removeIfUnchanged(files: Files, path: string, found: Uint8Array, mine: Uint8Array, level = 0): Promise<void> {
  const guard = `${path}.takeover`;
  const release = await files.createLock(guard, mine);
  if (!release) {
    const other = await files.read(guard, 'lock');
    if (!other) return;
    // Guards appear whole, like locks: one that does not parse is damage, and stale.
    const taker = lockHolder(other);
    if (taker && (await holderAlive(files, guard, taker)) !== false) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    } else if (level + 1 < MAX_GUARDS) {
      await removeIfUnchanged(files, guard, other, mine, level + 1);
    } else {
      throw new StateError(`stale takeover guards pile up beside ${path}: remove ${path}.takeover* if no engine has the directory open`);
    }
    return;
  }
  // The guard names the lock's token, which takeLock keeps in `held` until it has the lock or gives
  // up, both after the guard is gone: until then an opener in this process sees the guard live.
  try {
    const again = await files.read(path, 'lock');
    if (again && constantTimeEqual(again, found)) await files.remove(path);
  } finally {
    try {
      await files.remove(guard);
    } finally {
      await release();
    }
  }
}

/**
 * Whether the process that wrote the lock at `path` still has it: one this
 * module holds is. One naming this pid may be another instance of senv in
 * this process (a worker thread, a second copy of the package: each has its
 * own `held`) or a pid reused after a crash (a container's restart): the
 * start time tells them apart (Linux); else the OS lock (Deno) or nothing
 * (undefined: refused, never taken from a live holder). Any other pid: the
 * platform tells.
 */
async function holderAlive(files: Files, path: string, holder: LockHolder): Promise<boolean | undefined> {
  if (held.has(holder.token)) return true;
  if (holder.pid === files.pid && holder.stamp !== undefined && files.stamp !== undefined) return holder.stamp === files.stamp;
  return files.lockHeld(path, holder.pid, holder.osLocked, holder.stamp);
}

function lockHolder(bytes: Uint8Array): LockHolder | undefined {
  const h = parseJson(bytes) as Partial<LockHolder> | undefined;
  const valid = Number.isSafeInteger(h?.pid) && h!.pid! > 0 && typeof h!.token === 'string' && typeof h!.osLocked === 'boolean'
    && typeof h!.since === 'string' && /^[\dT:.Z-]{1,30}$/.test(h!.since);
  return valid ? (h as LockHolder) : undefined;
}

/**
 * Removes the lock file if it is still this store's, then lets go of it. The
 * token stays in `held` until the file is gone: an opener in this process
 * meanwhile sees a live lock (same pid), never a stale one it could take over
 * between the read and the remove.
 */
async function releaseLock(files: Files, dir: string, lock: Lock): Promise<void> {
  try {
    const found = await files.read(`${dir}/${LOCK}`, 'lock');
    if (found && lockHolder(found)?.token === lock.token) await files.remove(`${dir}/${LOCK}`);
  } finally {
    held.delete(lock.token);
    await lock.release();
  }
}


/**
 * Whether record `r` makes sealed data of `state` obsolete: a deleted resource, a value replaced, a
 * chunk after a consumed message. What it replaces stays readable in the journal, under the master
 * key, until a compaction: a clean close makes one.
 */
function supersedes(state: Snapshot, r: JournalRecord): boolean {
  const se = state.resources[r.se];
  return r.op === 'remove'
    // A put replaces the record's sealed part and the chunks appended to it (a message discarded, say).
    || (r.op === 'put' && r.res.some((rec) => se?.[rec.ri]?.sealed !== undefined || (se?.[rec.ri]?.appends?.length ?? 0) > 0))
    || (r.op === 'append' && se?.[r.ri]?.consumed === true);
}

function apply(state: Snapshot, r: JournalRecord): void {
  const se = (state.resources[r.se] ??= table());
  state.seq = Math.max(state.seq, r.seq);
  if (r.op === 'put') for (const rec of r.res) se[rec.ri] = rec;
  else if (r.op === 'remove') for (const ri of r.ris) delete se[ri];
  else {
    const rec = se[r.ri];
    if (!rec) return;
    (rec.appends ??= []).push({ attr: r.attr, sealed: r.sealed });
    // The first chunk after a consumed message starts a new one: the next supersedes nothing.
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
 * replaying the run did (only a run's first chunk can start a new message,
 * and what it joins into still comes first).
 */
function mergeAppends(state: Snapshot, key: Uint8Array): void {
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
 * A message an operation consumed, held in a record's sealed part, that chunks appended since
 * replace (the first chunk after a consumed message starts a new one: Accumulator.receive) is
 * emptied there, so that a snapshot does not carry it on; replaying the chunks gives the same
 * message. A record whose sealed part does not open is left for load() to report.
 */
function dropReplacedMessages(state: Snapshot, key: Uint8Array): void {
  for (const se of Object.values(state.resources)) {
    for (const rec of Object.values(se)) {
      if (!rec.appends?.length || !rec.sealed) continue;
      const secret = openSecrets(key, rec.sealed, rec.ri);
      if (!secret) continue;
      let replaced = false;
      for (const attr of new Set(rec.appends.map((a) => a.attr))) {
        const held = secret[attr] as { $acc?: unknown; consumed?: unknown } | undefined;
        if (typeof held === 'object' && held !== null && typeof held.$acc === 'string' && held.consumed === true) {
          secret[attr] = { $acc: '', consumed: false };
          replaced = true;
        }
      }
      if (replaced) rec.sealed = sealSecrets(key, secret, rec.ri);
    }
  }
}

/**
 * Seals what an earlier version kept in the clear and this one declares
 * secret (`<hash>`'s hashValue from format 3, `<signature>`'s signature
 * since), so that the next snapshot holds none of it; answers whether there
 * was any. A record whose sealed part does not open is left for load() to report.
 */
function sealClearSecrets(state: Snapshot, key: Uint8Array): boolean {
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

const typesByRoot = () => new Map(TYPES.map((t) => [t.root, compiledType(t)]));

/** A record's sealed secret attributes, or undefined where they do not open (left for load() to report). */
function openSecrets(key: Uint8Array, sealed: string, ri: string): Record<string, Json> | undefined {
  try {
    return wiping(open(key, sealed, ri), (plain) => JSON.parse(dec.decode(plain)) as Record<string, Json>);
  } catch {
    return undefined;
  }
}

const sealSecrets = (key: Uint8Array, secret: Record<string, Json>, ri: string): string => wiping(enc.encode(JSON.stringify(secret)), (plain) => seal(key, plain, ri));

/** One sealed chunk holding the data of `parts` in order; the plaintext copies are zeroized. */
function joinSealed(key: Uint8Array, aad: string, parts: string[]): string {
  const plain = parts.map((p) => open(key, p, aad));
  const joined = new Uint8Array(plain.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of plain) {
    joined.set(p, at);
    at += p.length;
    p.fill(0);
  }
  return wiping(joined, (bytes) => seal(key, bytes, aad));
}

/** Temp file, flush, rename over the old one, flush the directory. */
async function writeAtomic(files: Files, dir: string, name: string, data: Uint8Array): Promise<void> {
  await files.writeDurable(`${dir}/${name}.tmp`, data);
  await files.rename(`${dir}/${name}.tmp`, `${dir}/${name}`);
  await files.syncDir(dir);
}

function seal(key: Uint8Array, data: Uint8Array, ri: string): string {
  const nonce = randomBytes(12);
  const ct = gcm(key, nonce, enc.encode(ri)).encrypt(data);
  const out = new Uint8Array(12 + ct.length);
  out.set(nonce);
  out.set(ct, 12);
  return toBase64(out);
}

/**
 * `use(bytes)`, then `bytes` zeroized whether it returned or threw: for the
 * plaintext copies of secrets (keys, sealed attributes) the store makes on
 * the way to or from the disk. (The JSON text of sealed attributes is a
 * string, which no one can zeroize: its bytes are.)
 */
function wiping<T>(bytes: Uint8Array, use: (bytes: Uint8Array) => T): T {
  try {
    return use(bytes);
  } finally {
    bytes.fill(0);
  }
}

function open(key: Uint8Array, sealed: string, ri: string): Uint8Array {
  const b = fromBase64(sealed);
  if (!b || b.length < 28) throw new AuthenticationError('sealed record is damaged');
  return gcm(key, b.subarray(0, 12), enc.encode(ri)).decrypt(b.subarray(12));
}

async function encodeValue(host: SeHost, v: unknown): Promise<Json> {
  if (v instanceof Uint8Array) return { $b: toBase64(v) };
  if (v instanceof Accumulator) return { $acc: toBase64(v.bytes()), consumed: v.consumed };
  if (v instanceof DeviceData) return { $device: v.size };
  if (isKeyHandle(v)) {
    let s: StoredKey;
    try {
      s = await host.backend.storeKey(v);
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

async function decodeValue(host: SeHost, v: Json): Promise<unknown> {
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
    try {
      return await host.backend.loadKey(k.spec, stored);
    } finally {
      if (stored.form === 'material') stored.bytes.fill(0);
    }
  }
  return v;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// Persistence of SE-resources in a data directory (Node and Deno):
//
//   meta.json        unique IDs of the software SEs, and a sealed check value
//                    that tells a wrong master key from a damaged file
//   snapshot.json    the full state up to sequence number `seq`
//   journal.log      records after the snapshot: [length u32][crc32 u32][JSON]
//
// Every request's change is one journal record (a registration with its
// children included), appended and flushed (fdatasync) before the engine
// answers, so an acknowledged write survives kill -9. A torn record at the
// end (a crash mid-append: never acknowledged) fails its length or CRC check
// and is cut off when the store opens. A write that fails (ENOSPC, EIO, a
// read-only directory) is cut off at once, or before the next record if the
// cut fails too, and the store's state stays as it was: the engine applies
// nothing, and no later record ever follows the debris of one that failed.
// When the journal grows, the state is written to snapshot.json.tmp,
// flushed, renamed over snapshot.json (then the directory is flushed) and
// the journal truncated; records carry sequence numbers, so replaying a
// journal that a crash left behind the new snapshot is harmless.
//
// Secrets (keys, sensitive data, messages, results: attributes declared
// `secret`, and every key) are sealed with AES-256-GCM under the master key,
// a fresh 12-byte nonce per record and the resource ID as associated data.
import { gcm } from '../../core/gcm.ts';
import { randomBytes } from '../../core/drbg.ts';
import { AuthenticationError, StateError } from '../../core/errors.ts';
import { isKeyHandle, type KeySpec, type StoredKey } from '../../backends/backend.ts';
import { fromBase64, toBase64 } from '../codec.ts';
import type { SeHost } from '../host.ts';
import type { Persistence } from '../persist.ts';
import { compiledType, TYPES } from '../registry.ts';
import { Accumulator, DeviceData, Resource } from '../resource.ts';
import { openFiles, type Files } from './files.ts';

export interface JournalOptions {
  /** The data directory (created if missing). */
  dir: string;
  /** 32-byte AES-256 master key. */
  masterKey: Uint8Array;
  /** Journal size (bytes) that triggers a snapshot; default 8 MiB. */
  compactAt?: number;
  /** The file operations (default: node:fs or Deno). */
  files?: Files;
}

interface Meta { uniqueIds: Record<string, string>; check: string }

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
}

type JournalRecord =
  // One resource per 'put' in journals written before a record held a whole request.
  | { seq: number; op: 'put'; se: string; res: ResourceRecord[] | ResourceRecord }
  | { seq: number; op: 'append'; se: string; ri: string; attr: string; sealed: string; lt?: number }
  | { seq: number; op: 'remove'; se: string; ris: string[] };

interface Snapshot { seq: number; resources: Record<string, Record<string, ResourceRecord>> }

const enc = new TextEncoder();
const dec = new TextDecoder();
const CHECK = 'senv master key check';

export class JournalStore implements Persistence {
  readonly #files: Files;
  readonly #dir: string;
  readonly #key: Uint8Array;
  readonly #compactAt: number;
  #meta: { uniqueIds: Record<string, string>; check: string };
  /** The state as stored: per SE, records by ri (what a snapshot writes). */
  #state: Snapshot;
  /** Length of the journal up to its last good record. */
  #journalBytes: number;
  /** Where the journal must be cut before the next record: a failed write (or compaction) could not cut it yet. */
  #cutAt: number | undefined;

  private constructor(files: Files, options: JournalOptions, meta: Meta, state: Snapshot, journalBytes: number) {
    this.#files = files;
    this.#dir = options.dir;
    this.#key = new Uint8Array(options.masterKey);
    this.#compactAt = options.compactAt ?? 8 * 1024 * 1024;
    this.#meta = meta;
    this.#state = state;
    this.#journalBytes = journalBytes;
  }

  static async open(options: JournalOptions): Promise<JournalStore> {
    if (!(options.masterKey instanceof Uint8Array) || options.masterKey.length !== 32) throw new StateError('the master key must be 32 bytes (AES-256)');
    const files = options.files ?? (await openFiles());
    await files.mkdir(options.dir);
    const path = (n: string) => `${options.dir}/${n}`;
    const metaBytes = await files.read(path('meta.json'));
    let meta: Meta;
    if (metaBytes) {
      meta = JSON.parse(dec.decode(metaBytes)) as Meta;
      try {
        open(options.masterKey, meta.check, 'meta');
      } catch (e) {
        if (e instanceof AuthenticationError) throw new StateError(`the master key does not open the data directory ${options.dir}`);
        throw e;
      }
    } else {
      meta = { uniqueIds: {}, check: seal(options.masterKey, enc.encode(CHECK), 'meta') };
      await writeAtomic(files, options.dir, 'meta.json', enc.encode(JSON.stringify(meta)));
    }
    const snapBytes = await files.read(path('snapshot.json'));
    const state: Snapshot = snapBytes ? (JSON.parse(dec.decode(snapBytes)) as Snapshot) : { seq: 0, resources: {} };
    const journal = (await files.read(path('journal.log'))) ?? new Uint8Array(0);
    let off = 0;
    for (;;) {
      const rec = readRecord(journal, off);
      if (!rec) break;
      off = rec.next;
      const r = JSON.parse(dec.decode(rec.payload)) as JournalRecord;
      if (r.seq > state.seq) apply(state, r);
    }
    // A torn tail was never acknowledged: cut it off so new records follow good ones.
    if (off < journal.length) await files.truncate(path('journal.log'), off);
    return new JournalStore(files, options, meta, state, off);
  }

  async uniqueId(kind: string): Promise<string> {
    let id = this.#meta.uniqueIds[kind];
    if (!id) {
      id = Array.from(randomBytes(16), (b) => b.toString(16).padStart(2, '0')).join('');
      this.#meta = { ...this.#meta, uniqueIds: { ...this.#meta.uniqueIds, [kind]: id } };
      await writeAtomic(this.#files, this.#dir, 'meta.json', enc.encode(JSON.stringify(this.#meta)));
    }
    return id;
  }

  async load(host: SeHost): Promise<void> {
    const records = Object.values(this.#state.resources[host.seId] ?? {});
    const built = new Map<string, Resource>();
    const types = new Map(TYPES.map((t) => [t.root, compiledType(t)]));
    // Parents before children: a record's parent is built first by recursion.
    const build = async (rec: ResourceRecord): Promise<Resource | undefined> => {
      const have = built.get(rec.ri);
      if (have) return have;
      const def = types.get(rec.root);
      const parentRec = rec.pi ? this.#state.resources[host.seId]?.[rec.pi] : undefined;
      const parent = parentRec ? await build(parentRec) : undefined;
      if (!def || (rec.pi && !parent)) return undefined;
      const res = new Resource(def, rec.ri, rec.rn, parent, rec.ct);
      res.modified = rec.lt;
      res.hint = rec.hint;
      const secret = rec.sealed ? (JSON.parse(dec.decode(open(this.#key, rec.sealed, rec.ri))) as Record<string, Json>) : {};
      for (const [name, v] of Object.entries({ ...rec.attrs, ...secret })) res.attrs.set(name, await decodeValue(host, v));
      for (const a of rec.appends ?? []) {
        let acc = res.attrs.get(a.attr);
        if (!(acc instanceof Accumulator)) res.attrs.set(a.attr, (acc = new Accumulator()));
        const chunk = open(this.#key, a.sealed, `${rec.ri}/${a.attr}`);
        (acc as Accumulator).receive(chunk, false);
        chunk.fill(0);
      }
      if (parent) parent.children.set(res.rn, res);
      built.set(rec.ri, res);
      return res;
    };
    for (const rec of records) await build(rec);
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

  async close(): Promise<void> {
    // A record whose write failed must not be replayed by the next run: cut it now if the disk lets us.
    if (this.#cutAt !== undefined) await this.#cut(this.#cutAt).catch(() => undefined);
    this.#key.fill(0);
  }

  async #record(host: SeHost, res: Resource): Promise<ResourceRecord> {
    const attrs: Record<string, Json> = {};
    const secret: Record<string, Json> = {};
    for (const [name, v] of res.attrs) {
      const isSecret = isKeyHandle(v) || res.def.byName.get(name)?.secret === true;
      (isSecret ? secret : attrs)[name] = await encodeValue(host, v);
    }
    const rec: ResourceRecord = { ri: res.ri, rn: res.rn, pi: res.parent?.ri ?? '', root: res.def.type.root, ct: res.created, lt: res.modified, attrs };
    if (res.hint) rec.hint = res.hint;
    if (Object.keys(secret).length) rec.sealed = seal(this.#key, enc.encode(JSON.stringify(secret)), res.ri);
    return rec;
  }

  /**
   * Appends one record and flushes it; the store's state takes the record
   * only once that succeeded. A failed append may have left part of the
   * record (or all of it, when only the flush failed) in the file: it was
   * never acknowledged, so it is cut off before anything follows it.
   */
  async #write(r: JournalRecord): Promise<void> {
    const journal = `${this.#dir}/journal.log`;
    if (this.#cutAt !== undefined) await this.#cut(this.#cutAt);
    r.seq = this.#state.seq + 1;
    const payload = enc.encode(JSON.stringify(r));
    const frame = new Uint8Array(8 + payload.length);
    const view = new DataView(frame.buffer);
    view.setUint32(0, payload.length, true);
    view.setUint32(4, crc32(payload), true);
    frame.set(payload, 8);
    try {
      await this.#files.append(journal, frame);
    } catch (e) {
      // Cut now if the disk lets us; otherwise the next write cuts first (and fails while it cannot).
      await this.#cut(this.#journalBytes).catch(() => undefined);
      throw e;
    }
    this.#journalBytes += frame.length;
    apply(this.#state, r);
    if (this.#journalBytes >= this.#compactAt) await this.#compact();
  }

  /** Cuts the journal to `length`, remembering the cut until it succeeded. */
  async #cut(length: number): Promise<void> {
    this.#cutAt = length;
    await this.#files.truncate(`${this.#dir}/journal.log`, length);
    this.#journalBytes = length;
    this.#cutAt = undefined;
  }

  /**
   * Writes the snapshot and empties the journal. The record that triggered
   * it is durable in the journal already, so a failure here does not fail
   * the write: a snapshot that was not written is tried again after the next
   * record, and a journal that could not be emptied only replays records the
   * snapshot holds (until the next write cuts it).
   */
  async #compact(): Promise<void> {
    try {
      await writeAtomic(this.#files, this.#dir, 'snapshot.json', enc.encode(JSON.stringify(this.#state)));
    } catch {
      return;
    }
    await this.#cut(0).catch(() => undefined);
  }
}

function apply(state: Snapshot, r: JournalRecord): void {
  const se = (state.resources[r.se] ??= {});
  state.seq = Math.max(state.seq, r.seq);
  if (r.op === 'put') for (const rec of [r.res].flat()) se[rec.ri] = rec;
  else if (r.op === 'remove') for (const ri of r.ris) delete se[ri];
  else {
    const rec = se[r.ri];
    if (!rec) return;
    (rec.appends ??= []).push({ attr: r.attr, sealed: r.sealed });
    if (r.lt !== undefined) rec.lt = r.lt;
  }
}

/** Temp file, flush, rename over the old one, flush the directory. */
async function writeAtomic(files: Files, dir: string, name: string, data: Uint8Array): Promise<void> {
  await files.writeDurable(`${dir}/${name}.tmp`, data);
  await files.rename(`${dir}/${name}.tmp`, `${dir}/${name}`);
  await files.syncDir(dir);
}

function readRecord(buf: Uint8Array, off: number): { payload: Uint8Array; next: number } | undefined {
  if (off + 8 > buf.length) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset + off, 8);
  const len = view.getUint32(0, true);
  if (off + 8 + len > buf.length) return undefined;
  const payload = buf.subarray(off + 8, off + 8 + len);
  if (crc32(payload) !== view.getUint32(4, true)) return undefined;
  return { payload, next: off + 8 + len };
}

function seal(key: Uint8Array, data: Uint8Array, ri: string): string {
  const nonce = randomBytes(12);
  const ct = gcm(key, nonce, enc.encode(ri)).encrypt(data);
  const out = new Uint8Array(12 + ct.length);
  out.set(nonce);
  out.set(ct, 12);
  return toBase64(out);
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
    const s = await host.backend.storeKey(v);
    return { $key: { spec: v.spec as unknown as Json, kind: s.kind, ...(s.form === 'material' ? { bytes: toBase64(s.bytes) } : { ref: s.ref }) } };
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
    const data = fromBase64(v.$acc)!;
    acc.append(data);
    data.fill(0);
    acc.consumed = v.consumed === true;
    return acc;
  }
  const k = v.$key as { spec: KeySpec; kind: 'secret' | 'public'; bytes?: string; ref?: string } | undefined;
  if (k) {
    const stored: StoredKey = k.bytes !== undefined ? { form: 'material', kind: k.kind, bytes: fromBase64(k.bytes)! } : { form: 'reference', kind: k.kind, ref: k.ref! };
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

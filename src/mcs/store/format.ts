// The files of a data directory as they are on disk, and the checks each
// passes when read: meta.json and its MAC, snapshot.json's header and MAC,
// journal.log's frames (length, CRC, record, MAC), and the labelled MAC that
// keeps one kind of thing from passing for another.
import { concatBytes } from '../../core/bytes.ts';
import { constantTimeEqual } from '../../core/compare.ts';
import { hmac } from '../../core/hmac.ts';
import { AuthenticationError, StateError } from '../../core/errors.ts';
import { shown } from '../../core/args.ts';
import { fromBase64, toBase64 } from '../codec.ts';
import { DataDirDamagedError, DataDirFormatError } from './errors.ts';
import { table, type JournalRecord, type ResourceRecord, type Snapshot } from './records.ts';
import { open, seal } from './sealing.ts';

/**
 * The layouts (meta.json and snapshot.json say which they have). Format 3 binds a snapshot to its
 * directory; a format 2 directory (snapshots not bound) is read, and upgraded by a snapshot written
 * at open. A snapshot is format 3. meta.json says format 4 from the directory's first snapshot on:
 * under its MAC, the directory has a snapshot.json. Without that, a removed snapshot (with the
 * journal a compaction emptied, or with the journal too) would open as an empty directory: with no
 * snapshot the chain starts from the check value, which an empty journal matches. A format number,
 * not a member added to format 3: a version before it refuses the directory as a format it does not
 * read, not as one altered without the master key (its MAC would not cover the member).
 *
 * Format 5 says what 4 says, and that every message is in its record's appends, none in a sealed
 * part, so that a record may keep the message of the one before it (ResourceRecord.kept): a version
 * before it, which would read such a record as one without its message, refuses the directory.
 *
 * Format 6 says what 5 says, and that a record may keep the sealed part of the one before it
 * (ResourceRecord.keptSealed): a version before it would read such a record as a resource without
 * its keys and secrets. It needs no snapshot of its own: a format 5 directory holds no such record,
 * so meta.json says 6 from the open on; an earlier format becomes 6 with the snapshot that makes it 5.
 */
export const UNBOUND = 2;
export const BOUND = 3;
export const MARKED = 4;
export const KEEPS = 5;
export const KEEPS_SEALED = 6;

export interface Meta { format: number; uniqueIds: Record<string, string>; check: string; mac: string }

const enc = new TextEncoder();
const dec = new TextDecoder();
const CHECK = 'senv master key check';
/** A master key rotation's new snapshot until it is renamed over snapshot.json (journal.ts rotateMasterKey). */
export const ROTATED = 'snapshot.json.rotated';
export const MAC_LEN = 32;
/** The shortest frame body: `{}` and a MAC. Anything shorter (8 zero bytes: length 0, CRC 0) is no record. */
const MIN_BODY = 2 + MAC_LEN;

export function openMeta(dir: string, bytes: Uint8Array, key: Uint8Array, macKey: Uint8Array): Meta {
  const meta = parseJson(bytes) as Partial<Meta> | undefined;
  if (!meta) throw new DataDirDamagedError(dir, 'is not a JSON object', 'meta.json');
  if (meta.format === undefined) {
    throw new DataDirFormatError(dir, 'was written by an earlier version of senv, whose records carry no MAC; this version does not read it: start from an empty data directory');
  }
  if (meta.format !== UNBOUND && meta.format !== BOUND && meta.format !== MARKED && meta.format !== KEEPS && meta.format !== KEEPS_SEALED) {
    throw new DataDirFormatError(dir, `has format ${shown(meta.format)}; this version of senv reads formats ${UNBOUND} to ${KEEPS_SEALED}`);
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

/** meta.json for a directory made, or a master key rotated into, under `key`: a new check value sealed under it. */
export function freshMeta(key: Uint8Array, macKey: Uint8Array, uniqueIds: Record<string, string>, format: number): Meta {
  return newMeta(macKey, seal(key, enc.encode(CHECK), 'meta'), uniqueIds, format);
}

export function newMeta(macKey: Uint8Array, check: string, uniqueIds: Record<string, string>, format: number): Meta {
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
export function snapshotMac(macKey: Uint8Array, format: number, check: string, from: Uint8Array, body: Uint8Array): Uint8Array {
  return format === UNBOUND ? mac(macKey, 'snapshot', from, body) : mac(macKey, 'boundSnapshot', enc.encode(check), from, body);
}

/** snapshot.json's bytes for `state` (format 3, bound to the check value), and its MAC. */
export function snapshotFile(macKey: Uint8Array, check: string, from: Uint8Array, state: Snapshot): { file: Uint8Array; snapMac: Uint8Array } {
  const body = enc.encode(JSON.stringify(state));
  const snapMac = snapshotMac(macKey, BOUND, check, from, body);
  const header = enc.encode(`${JSON.stringify({ format: BOUND, from: toBase64(from), mac: toBase64(snapMac) })}\n`);
  return { file: concatBytes([header, body]), snapMac };
}

/**
 * snapshot.json: a header line `{"format","from","mac"}`, then the state's JSON, which the MAC covers with `from`
 * (and the check value from format 3). A format 2 directory may have either kind: its upgrade writes the bound one first.
 */
export function openSnapshot(dir: string, bytes: Uint8Array, macKey: Uint8Array, meta: Meta): { state: Snapshot; snapMac: Uint8Array; from: Uint8Array } {
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

/** The record at `off` if its length and CRC hold: [length u32][crc32 u32][JSON][MAC], length and CRC over JSON and MAC. */
export function frameAt(buf: Uint8Array, off: number): { payload: Uint8Array; mac: Uint8Array; next: number } | undefined {
  if (off + 8 > buf.length) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset + off, 8);
  const len = view.getUint32(0, true);
  // Down to a bare MAC: a body shorter than `{}` and its MAC that the chain verifies was still written
  // whole by the master key's holder, damage rather than a torn end to cut (read-dir.ts).
  if (len < MAC_LEN || off + 8 + len > buf.length) return undefined;
  const body = buf.subarray(off + 8, off + 8 + len);
  if (crc32(body) !== view.getUint32(4, true)) return undefined;
  return { payload: body.subarray(0, len - MAC_LEN), mac: body.subarray(len - MAC_LEN), next: off + 8 + len };
}

/**
 * Whether the record at `off` declares a length that ends before the end of
 * the file: bytes were appended after it (a torn append ends the file, and
 * a file that grew before its data reached the disk reads as zeros).
 */
export function endsBeforeTheFile(buf: Uint8Array, off: number): boolean {
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
export function frameAfter(buf: Uint8Array, from: number): boolean {
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
export function parseRecord(payload: Uint8Array): JournalRecord | undefined {
  const r = parseJson(payload) as Record<string, unknown> | undefined;
  if (!r || !Number.isSafeInteger(r.seq) || (r.seq as number) < 1 || (r.seq as number) >= MAX_SEQ || typeof r.se !== 'string') return undefined;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const shaped = r.op === 'put' ? Array.isArray(r.res) && r.res.every((x) => typeof x === 'object' && x !== null && typeof (x as ResourceRecord).ri === 'string' && ((x as ResourceRecord).kept === undefined || strings((x as ResourceRecord).kept))
    // A record keeps the sealed part or holds its own, never both.
    && ((x as ResourceRecord).keptSealed === undefined || ((x as ResourceRecord).keptSealed === true && (x as ResourceRecord).sealed === undefined)))
    : r.op === 'remove' ? strings(r.ris)
      : r.op === 'append' && typeof r.ri === 'string' && typeof r.attr === 'string' && typeof r.sealed === 'string' && (r.lt === undefined || Number.isSafeInteger(r.lt));
  return shaped ? (r as unknown as JournalRecord) : undefined;
}

/** The JSON object in `bytes`, or undefined for anything else. */
export function parseJson(bytes: Uint8Array): object | undefined {
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
export function mac(macKey: Uint8Array, label: keyof typeof LABELS, ...parts: Uint8Array[]): Uint8Array {
  return hmac('SHA-256', macKey, concatBytes([LABELS[label], ...parts]));
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

export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

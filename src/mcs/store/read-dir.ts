// A data directory read at open: every file verified, from meta.json to the
// journal's last record, against the rollback anchor's head when there is one,
// and the state rebuilt from them; a new directory gets its meta.json.
import { constantTimeEqual } from '../../core/compare.ts';
import { anchoredRecords, type Head } from './anchor.ts';
import { DataDirDamagedError, DataDirRolledBackError } from './errors.ts';
import { writeAtomic, type Files } from './files.ts';
import { BOUND, endsBeforeTheFile, frameAfter, frameAt, freshMeta, mac, MARKED, openMeta, openSnapshot, parseRecord, ROTATED, type Meta } from './format.ts';
import { apply, keptWithoutPrior, supersedes, table, type JournalRecord, type Snapshot } from './records.ts';

const enc = new TextEncoder();

/** What open() found: the state, and where the MAC chain stands. */
export interface Opened {
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

/**
 * Reads meta.json, snapshot.json and journal.log, verifying every MAC and,
 * given the rollback anchor's head, that the chain ends there; cuts a torn
 * record off the end of the journal, and a record past the anchored head.
 */
export async function readDir(files: Files, dir: string, key: Uint8Array, macKey: Uint8Array, anchor: { head: Head | undefined; trustOnFirstUse: boolean } | undefined): Promise<Opened> {
  const metaBytes = await files.read(`${dir}/meta.json`);
  let snapBytes = await files.read(`${dir}/snapshot.json`);
  const journal = (await files.read(`${dir}/journal.log`)) ?? new Uint8Array(0);
  let meta: Meta;
  if (metaBytes) meta = openMeta(dir, metaBytes, key, macKey);
  // The message is about the file named: the directory's records are there, the file that keys them is not.
  else if (snapBytes || journal.length) throw new DataDirDamagedError(dir, 'is missing, though snapshot.json or journal.log holds records: removed or lost (the records do not open without it)', 'meta.json');
  // A directory made now cannot be at a head its anchor names: refused before anything is written.
  else if (anchor?.head) throw new DataDirRolledBackError(dir, 0, anchor.head.seq);
  else {
    meta = freshMeta(key, macKey, {}, BOUND);
    await writeAtomic(files, dir, 'meta.json', enc.encode(JSON.stringify(meta)));
  }
  const rotated = await files.read(`${dir}/${ROTATED}`);
  if (rotated) snapBytes = await settleRotation(files, dir, macKey, meta, snapBytes, rotated);
  // Bound to this directory's check value: a journal copied from another directory does not verify.
  let snapMac = mac(macKey, 'start', enc.encode(meta.check));
  let from = snapMac;
  let state: Snapshot = { seq: 0, resources: table() };
  if (meta.format >= MARKED && !snapBytes) throw new DataDirDamagedError(dir, 'is missing, though meta.json says the directory has one: removed (with or without the journal)', 'snapshot.json');
  if (snapBytes) ({ state, snapMac, from } = openSnapshot(dir, snapBytes, macKey, meta));
  let journalStart = snapMac;
  let last = snapMac;
  let off = 0;
  const verifies = (f: { payload: Uint8Array; mac: Uint8Array }, prev: Uint8Array) => constantTimeEqual(mac(macKey, 'record', prev, f.payload), f.mac);
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
      // Nor is a whole one the chain verifies: only the master key's holder wrote it, in a shape this version does not write.
      if (frame && (verifies(frame, last) || (off === 0 && snapBytes !== undefined && verifies(frame, from)))) {
        throw new DataDirDamagedError(dir, 'a record that verifies is not of a shape this version writes (the file was left as it is)', 'journal.log', off);
      }
      break;
    }
    // The first record chains from the snapshot's MAC, or from the chain value the snapshot names: a
    // journal a crash left behind its snapshot holds records the snapshot covers, and one that went on
    // after an empty journal's compaction whose directory flush failed (the store, not sure which snapshot
    // the disk keeps, went on from the one replaced, of the same state) its record seq + 1. Only a head of
    // sequence n is followed by record n + 1: `from` then names the state this snapshot holds.
    let recordMac = mac(macKey, 'record', last, frame.payload);
    if (off === 0 && snapBytes && (r.seq <= state.seq || (r.seq === state.seq + 1 && !constantTimeEqual(recordMac, frame.mac)))) {
      journalStart = last = from;
      recordMac = mac(macKey, 'record', last, frame.payload);
    }
    if (!constantTimeEqual(recordMac, frame.mac)) {
      throw new DataDirDamagedError(dir, 'a record does not verify: records were altered, inserted, reordered or removed without the master key, or damaged', 'journal.log', off);
    }
    records.push({ r, at: off, mac: recordMac });
    last = recordMac;
    off = frame.next;
  }
  const chain = [{ seq: state.seq, mac: snapMac }, ...records.map(({ r, mac }) => ({ seq: r.seq, mac }))];
  const keep = anchor ? anchoredRecords(dir, anchor.head, anchor.trustOnFirstUse, chain, from) : records.length;
  let superseded = false;
  for (const { r, at } of records.slice(0, keep)) {
    if (r.seq > state.seq) {
      // Never an empty message, nor a resource without its key: the record names what a record before it holds.
      const orphan = keptWithoutPrior(state, r);
      if (orphan !== undefined) throw new DataDirDamagedError(dir, `holds a record that keeps ${orphan}, which no record before it holds`, 'journal.log', at);
      try {
        superseded ||= supersedes(state, r);
        apply(state, r);
      } catch (e) {
        // A record (or the snapshot's record it changes) of the right MAC but not of a resource's shape:
        // appends that are no list, say. Only the master key's holder could write it; damage, named so.
        if (e instanceof TypeError || e instanceof RangeError) throw new DataDirDamagedError(dir, `holds a record that is not a resource's (${e.name})`, 'journal.log');
        throw e;
      }
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
 * A master key rotation cut short (journal.ts rotateMasterKey) left its new snapshot under ROTATED:
 * rolled back or forward by what meta.json, which opened with the key given, says. A snapshot in
 * place that verifies under it means meta.json is the old key's (the commit, its rename, did not
 * happen): ROTATED is removed. One that does not, with a ROTATED that does, means meta.json is the
 * new key's: ROTATED is renamed over it. Neither verifying is left for the checks that follow, which
 * report snapshot.json damaged. Answers the snapshot now in place.
 */
async function settleRotation(files: Files, dir: string, macKey: Uint8Array, meta: Meta, snapBytes: Uint8Array | undefined, rotated: Uint8Array): Promise<Uint8Array | undefined> {
  const verifies = (bytes: Uint8Array) => {
    try {
      openSnapshot(dir, bytes, macKey, meta);
      return true;
    } catch (e) {
      if (e instanceof DataDirDamagedError) return false;
      throw e;
    }
  };
  if (snapBytes && verifies(snapBytes)) {
    await files.remove(`${dir}/${ROTATED}`);
    return snapBytes;
  }
  if (!verifies(rotated)) return snapBytes;
  await files.rename(`${dir}/${ROTATED}`, `${dir}/snapshot.json`);
  await files.syncDir(dir);
  return rotated;
}

// The journal's MAC chain refuses any change inside it, but nothing in the
// data directory tells how far it went: records cut off its end, or an older
// copy of the whole directory, verify as well as the directory did then. A
// rollback anchor keeps the chain's head where whoever can write the
// directory cannot set it back (a TPM NV index, a smart card's data object, a
// remote service), and the store checks the chain against it at open.
//
// The head is public: the sequence number of the last record (or snapshot)
// and its MAC, which journal.log or snapshot.json hold in the clear anyway.
// Its holder learns nothing the directory does not show, and can forge
// nothing: a record needs the master key.
import { constantTimeEqual } from '../../core/compare.ts';
import { failureKind } from '../../core/errors.ts';
import { bytesArg, isBytes, shown } from '../../core/args.ts';
import { DataDirRolledBackError, RollbackAnchorError } from './errors.ts';

/**
 * Storage for the journal's head that whoever can write the data directory
 * cannot set back. write() must store the token whole or not at all, and
 * durably before it resolves: the engine answers a write once it did. A
 * write() that rejects must not land later: cancel it, or wait for it to
 * settle, before rejecting, or make the storage's writes conditional on the
 * version they replace. The store sets the anchor back to its head after a
 * rejected write; one landing after that leaves the anchor ahead of the
 * directory (refused at the next open as a rollback) or, the store's own
 * rewrite landing late, behind a write it answered (cut at the next open).
 * close() reads the anchor back after any failed write of its run and sets it
 * right, so only a write landing after close() does that harm.
 *
 * The store writes one thing at a time: every later write, and close(),
 * waits for write() (and close(), after a failed write, for read()) to
 * settle, so one that never settles holds them all for ever. Give the
 * storage a timeout of its own, within the contract above.
 */
export interface RollbackAnchor {
  /** The token last written, or undefined when none was. */
  read(): Promise<Uint8Array | undefined> | Uint8Array | undefined;
  /** Replaces the token (`head` is the store's own copy: keep it or copy it). */
  write(head: Uint8Array): Promise<void> | void;
  /**
   * A directory that holds records while read() gives undefined is anchored
   * as it is, instead of refused: for the first open with an anchor, or after
   * its storage was lost. Whatever was rolled back before that open goes
   * unnoticed, so set it for that open only.
   */
  trustOnFirstUse?: boolean | undefined;
}

/** A position of the MAC chain: the record (or snapshot) of sequence number `seq` and its MAC. */
export interface Head {
  seq: number;
  mac: Uint8Array;
}

/** Token layout: format byte, seq as u64 big-endian, MAC. A later layout takes another format byte. */
const TOKEN_FORMAT = 1;
const TOKEN_LENGTH = 1 + 8 + 32;
/** As the journal's: the next sequence number stays a safe integer. */
const MAX_SEQ = 2 ** 52;

export function encodeHead(head: Head): Uint8Array {
  const token = new Uint8Array(TOKEN_LENGTH);
  const view = new DataView(token.buffer);
  token[0] = TOKEN_FORMAT;
  view.setUint32(1, Math.floor(head.seq / 2 ** 32));
  view.setUint32(5, head.seq >>> 0);
  token.set(head.mac, 9);
  return token;
}

/** The head the anchor holds (undefined: none yet). A token of another form is refused: read as none, it would let anything in. */
export async function readHead(anchor: RollbackAnchor, dir: string): Promise<Head | undefined> {
  let token: unknown;
  try {
    token = await anchor.read();
  } catch (e) {
    throw anchorFailed(dir, 'read', e);
  }
  if (token === undefined) return undefined;
  // Any realm's Uint8Array (an anchor in a vm context or a binding), read through its own slots as every byte argument is.
  let bytes: Uint8Array | undefined;
  try {
    bytes = isBytes(token) ? bytesArg(token, 'token') : undefined;
  } catch {
    // A view of a detached buffer: no token either.
  }
  if (!bytes) throw new RollbackAnchorError(dir, `answered read() with ${shown(token)}, not a readable Uint8Array or undefined`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const seq = bytes.length === TOKEN_LENGTH ? view.getUint32(1) * 2 ** 32 + view.getUint32(5) : -1;
  if (bytes[0] !== TOKEN_FORMAT || seq < 0 || seq >= MAX_SEQ) {
    throw new RollbackAnchorError(dir, `holds ${bytes.length} bytes that are no head this version of senv writes (format ${TOKEN_FORMAT}, ${TOKEN_LENGTH} bytes)`);
  }
  return { seq, mac: bytes.slice(9) };
}

/** An anchor that cannot be read or written at open fails the open, named, with its own error as the cause. */
export function anchorFailed(dir: string, op: 'read' | 'write', e: unknown): RollbackAnchorError {
  const err = new RollbackAnchorError(dir, `could not be ${op === 'read' ? 'read' : 'written'} (${failureKind(e)})`);
  err.cause = e;
  return err;
}

/**
 * How many of the journal's verified records the anchor lets the store keep,
 * `chain` being every position the directory's chain went through, in order:
 * the snapshot (or the chain's start), then each record. The chain must end
 * at the anchored head (a snapshot and the records it covers that a crash
 * left behind it are one state: either's MAC names it) or one record past it:
 * a record flushed whose anchor write did not happen (a crash) or failed, so
 * never acknowledged. That record is dropped, as a torn one is: the anchor,
 * not the journal, says what was acknowledged, so a request answered 5000
 * never comes back. Anything else is refused. `from`, the chain value the
 * snapshot names, names its state too when the anchor gives it the snapshot's
 * sequence number: the snapshot then replaced one of the same state (an empty
 * journal's compaction), and the anchor still names the one replaced (a crash
 * before its write, or a directory flush that failed).
 */
export function anchoredRecords(dir: string, anchored: Head | undefined, trustOnFirstUse: boolean, chain: readonly Head[], from?: Uint8Array): number {
  const records = chain.length - 1;
  const last = chain[records]!;
  // Records a crash left behind their snapshot come first and are not past it: the chain ends at the later of the two.
  const end = Math.max(chain[0]!.seq, last.seq);
  if (anchored === undefined) {
    // No record ever written: nothing was acknowledged that a rollback could take, and a crash may come between meta.json and the first head.
    if (end === 0 || trustOnFirstUse) return records;
    throw new DataDirRolledBackError(dir, end, undefined);
  }
  const named = (seq: number) => chain.some((p) => p.seq === seq && constantTimeEqual(p.mac, anchored.mac)) || (from !== undefined && seq === chain[0]!.seq && constantTimeEqual(from, anchored.mac));
  if (anchored.seq === end && named(end)) return records;
  if (last.seq > chain[0]!.seq && anchored.seq === end - 1 && named(end - 1)) return records - 1;
  throw new DataDirRolledBackError(dir, end, anchored.seq);
}

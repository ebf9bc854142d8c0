// Why a data directory cannot be opened. Each is a StateError (the store is
// in no state to be used), with the directory and what a person needs to
// look at; never a key, a secret or record content.
import { StateError, errorName, failureKind } from '../../core/errors.ts';

/** Another engine (this process or another one) has the data directory open. */
export class DataDirLockedError extends StateError {
  /** The data directory, as the engine was given it. */
  readonly dir: string;
  /** The process holding the lock. */
  readonly pid: number;
  constructor(dir: string, pid: number, detail: string) {
    super(`the data directory ${dir} is in use by process ${pid}${detail}`);
    this.dir = dir;
    this.pid = pid;
  }
}

/**
 * A file of the data directory is damaged or was altered: a record whose
 * MAC does not verify, damage followed by further records, sealed data that
 * does not open. Nothing was changed on disk.
 */
export class DataDirDamagedError extends StateError {
  /** The data directory, as the engine was given it. */
  readonly dir: string;
  /** The file, when the damage is in one. */
  readonly file: string | undefined;
  /** Byte offset of the damaged record in `file`, when there is one. */
  readonly offset: number | undefined;
  constructor(dir: string, what: string, file?: string, offset?: number) {
    super(file === undefined ? `the data directory ${dir} ${what}` : `${file} in the data directory ${dir} ${offset === undefined ? '' : `is damaged at offset ${offset}: `}${what}`);
    this.dir = dir;
    this.file = file;
    this.offset = offset;
  }
}

/** The data directory was written by a version of senv whose format this one does not read. */
export class DataDirFormatError extends StateError {
  /** The data directory, as the engine was given it. */
  readonly dir: string;
  constructor(dir: string, what: string) {
    super(`the data directory ${dir} ${what}`);
    this.dir = dir;
  }
}

/**
 * The data directory's MAC chain does not end where its rollback anchor says
 * (McsEngineOptions.rollbackAnchor): records were cut off the end of the
 * journal, an older copy of the directory was put back, the directory or the
 * anchor is another engine's, or an anchor write that reported a failure
 * landed after the store had set the anchor back (RollbackAnchor's contract
 * forbids it). Nothing was changed, on disk or in the anchor.
 */
export class DataDirRolledBackError extends StateError {
  /** The data directory, as the engine was given it. */
  readonly dir: string;
  /** The sequence number of the last record (or snapshot) the directory holds. */
  readonly found: number;
  /** The one the anchor names; undefined when it holds none. */
  readonly anchored: number | undefined;
  constructor(dir: string, found: number, anchored: number | undefined) {
    super(`the data directory ${dir} ends at record ${found}, ${
      anchored === undefined ? 'but its rollback anchor holds no head: its storage was lost or cleared, or it was never used with this directory (to anchor the directory as it is, open it once with trustOnFirstUse)'
        : anchored > found ? `but its rollback anchor names record ${anchored}: records were cut off the journal, an older copy of the directory was put back, or an anchor write that reported a failure landed later`
          : `which its rollback anchor (at record ${anchored}) never named: an older copy of the directory, another engine's directory or anchor, writes made without the anchor, or an anchor write that reported a failure landed later`}`);
    this.dir = dir;
    this.found = found;
    this.anchored = anchored;
  }
}

/** The rollback anchor could not be read or written at open, or holds a token that is no head senv writes. */
export class RollbackAnchorError extends StateError {
  /** The data directory, as the engine was given it. */
  readonly dir: string;
  constructor(dir: string, what: string) {
    super(`the rollback anchor of the data directory ${dir} ${what}`);
    this.dir = dir;
  }
}

/**
 * A master key rotation (McsEngine.rotateMasterKey) whose writes failed. `committed` says which key
 * the data directory is under, and the engine goes on with: the old one (false: the failure came
 * before the commit point, meta.json's rename, and nothing of the rotation counts), or the new one
 * (true: a write after it failed, and what it left, the new snapshot's rename or the anchor's head,
 * is finished by the next write, close or open). Undefined when the commit's rename failed and
 * meta.json, read back, could not be told to open under either key: the store then writes nothing
 * more (every write answers 5000), and the next open, with the key meta.json opens under, settles
 * the rotation. The message names the failure by its code only.
 */
export class MasterKeyRotationError extends StateError {
  /** The data directory, as the engine was given it. */
  readonly dir: string;
  /** Which key the directory is under: false the old, true the new, undefined neither can be told (see above). */
  readonly committed: boolean | undefined;
  constructor(dir: string, committed: boolean | undefined, cause: unknown) {
    super(committed
      ? `the data directory ${dir} is under the new master key, but a write after the rotation's commit failed (${failureKind(cause)}): the old key no longer opens it`
      : committed === false
        ? `the master key of the data directory ${dir} was not rotated (${failureKind(cause)}): it is still under the old key`
        : `the rotation's commit in the data directory ${dir} failed (${failureKind(cause)}) and meta.json, read back, could not be told to open under either key: nothing more is written; reopen the directory with the key meta.json opens under`);
    this.dir = dir;
    this.committed = committed;
    this.cause = cause;
  }
}

errorName(DataDirLockedError, 'DataDirLockedError');
errorName(DataDirDamagedError, 'DataDirDamagedError');
errorName(DataDirFormatError, 'DataDirFormatError');
errorName(DataDirRolledBackError, 'DataDirRolledBackError');
errorName(RollbackAnchorError, 'RollbackAnchorError');
errorName(MasterKeyRotationError, 'MasterKeyRotationError');

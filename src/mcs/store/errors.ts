// Why a data directory cannot be opened. Each is a StateError (the store is
// in no state to be used), with the directory and what a person needs to
// look at; never a key, a secret or record content.
import { StateError, errorName } from '../../core/errors.ts';

/** Another engine (this process or another one) has the data directory open. */
export class DataDirLockedError extends StateError {
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
  readonly dir: string;
  constructor(dir: string, what: string) {
    super(`the data directory ${dir} ${what}`);
    this.dir = dir;
  }
}

errorName(DataDirLockedError, 'DataDirLockedError');
errorName(DataDirDamagedError, 'DataDirDamagedError');
errorName(DataDirFormatError, 'DataDirFormatError');

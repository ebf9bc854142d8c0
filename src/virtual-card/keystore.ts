// The virtual card's non-volatile memory: key slots and sensitive data
// objects, written through to one JSON file (mode 0600) so that keys survive a
// restart of `senv virtual-card`, like a real card's EEPROM. Without a path
// the store lives in memory only (tests, throw-away cards).
//
// One card process owns a store file at a time (`<store>.lock`): each writes
// the whole file from its own copy, so two on one file would undo each
// other's keys. The file is the one the path resolves to at open, whatever
// name (a symbolic link) a card was given for it.
import { closeSync, constants, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KEY_STAMP_LENGTH } from '../apdu/profile.ts';
import { failureKind, InvalidInputError, SenvError, StateError } from '../core/errors.ts';
import { systemRandom } from '../core/drbg.ts';
import { granted, refusalOf } from '../core/permissions.ts';
import { keyFromHex, keyToHex } from '../mcs/codec.ts';
import { stampFrom } from '../mcs/store/files.ts';

export interface KeyRecord {
  /** TS-0016 algorithm value the key was created for (clause 9.6 / 9.9). */
  algorithm: number;
  /** 'secret': symmetric key or ECDSA private scalar; 'public': an ECDSA public point only. */
  kind: 'secret' | 'public';
  /** Secret material: never leaves the card through any command. */
  secret?: Uint8Array;
  /** ECDSA public point (uncompressed SEC1). */
  publicKey?: Uint8Array;
  /**
   * Drawn at random each time the slot is written: a host that keeps it with its reference tells
   * the key it stored from one written into the slot since (GET DATA 01: tag 83).
   */
  stamp: Uint8Array;
}

interface FileFormat {
  serial: string;
  keys: Record<string, { algorithm: number; kind: 'secret' | 'public'; secret?: string; publicKey?: string; stamp?: string }>;
  objects: Record<string, string>;
}

/** A key stamp: random, so that no two keys a slot held share one (a broken source is a CoreError, not a stamp of zeros each time). */
export function newStamp(): Uint8Array {
  return systemRandom(KEY_STAMP_LENGTH);
}

/** Capacity reported by GET DATA DF02 and enforced on writes. */
export const NVM_CAPACITY = 256 * 1024;

export class KeyStore {
  readonly keys = new Map<number, KeyRecord>();
  readonly objects: Map<number, Uint8Array> = new Map();
  serial: Uint8Array;
  private unlock: (() => void) | undefined;
  /** The store's file, resolved at open: its lock, temp files and renames are all beside it. */
  private readonly path: string | undefined;

  constructor(path?: string, newSerial: () => Uint8Array = () => new Uint8Array(8)) {
    this.serial = newSerial();
    if (!path) return;
    let file = path;
    try {
      // A name ending in / (or . or ..) names a directory, which the store would become a file in place of.
      if (/(^|\/)(\.\.?)?\/*$/.test(path)) throw new InvalidInputError(`virtual card store ${path} cannot be read (EISDIR: the name of a directory, not of a file)`);
      denoGrants(dirname(path));
      makeDir(dirname(path));
      file = resolve(path);
      denoGrants(dirname(file));
      this.unlock = lockStore(file);
    } catch (e) {
      throw refused(file, e);
    }
    this.path = file;
    try {
      sweepTemps(file);
      this.load(file);
    } catch (e) {
      this.close();
      throw refused(file, e);
    }
  }

  /** Gives the store file up to another card process; this store writes no more. */
  close(): void {
    // Closed even when the lock cannot be removed: it then names this process, taken over once it is gone.
    const unlock = this.unlock;
    this.unlock = undefined;
    unlock?.();
  }

  private load(path: string): void {
    const text = readStore(path);
    if (text === undefined) {
      this.save();
      return;
    }
    // The file holds secrets: a damaged one is reported by field, never by content, and its hex is
    // read as a key's text is (codec.ts): a regular expression and parseInt branch on each digit.
    const bytes = (v: unknown, what: string): Uint8Array => {
      if (typeof v !== 'string') throw new InvalidInputError(`virtual card store ${path}: ${what} is not a string`);
      const b = keyFromHex(v);
      if (!b) throw new InvalidInputError(`virtual card store ${path}: ${what} is not hex text of whole bytes (${v.length} characters)`);
      return b;
    };
    const damaged = (what: string) => new InvalidInputError(`virtual card store ${path}: ${what}`);
    const record = (v: unknown, what: string): Record<string, unknown> => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw damaged(`${what} is not an object`);
      return v as Record<string, unknown>;
    };
    // The card addresses keys and objects with one byte and keeps 0 and 0xFF out; one number
    // written two ways ("1", "001") would let a record overwrite another.
    const slot = (key: string, what: string): number => {
      if (!/^[1-9]\d{0,2}$/.test(key) || Number(key) > 254) throw damaged(`${what} is not numbered 1 to 254 (${key.length > 12 ? 'a long name' : JSON.stringify(key)})`);
      return Number(key);
    };
    let unstamped = false;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // V8's SyntaxError quotes the text around the fault, which may be key material.
      throw new InvalidInputError(`virtual card store ${path} is not valid JSON`);
    }
    const f = record(parsed, 'the file');
    this.serial = bytes(f.serial, 'serial');
    if (this.serial.length !== 8) throw damaged(`serial is not 8 bytes`);
    for (const [ref, v] of Object.entries(record(f.keys, 'keys'))) {
      const n = slot(ref, 'a key');
      const k = record(v, `key ${n}`);
      if (!Number.isInteger(k.algorithm) || (k.algorithm as number) < 0 || (k.algorithm as number) > 0xffff) throw damaged(`key ${ref} algorithm is not a TS-0016 algorithm number`);
      if (k.kind !== 'secret' && k.kind !== 'public') throw damaged(`key ${ref} kind is not 'secret' or 'public'`);
      if (k.kind === 'secret' ? !k.secret : !k.publicKey || k.secret !== undefined) throw damaged(`key ${ref} does not hold what a ${k.kind} key holds`);
      // A store of an earlier version has no stamps: each key gets one now, kept from then on.
      const stamp = k.stamp === undefined ? newStamp() : bytes(k.stamp, `key ${ref} stamp`);
      if (stamp.length !== KEY_STAMP_LENGTH) throw damaged(`key ${ref} stamp is not ${KEY_STAMP_LENGTH} bytes`);
      if (k.stamp === undefined) unstamped = true;
      this.keys.set(n, {
        algorithm: k.algorithm as number, kind: k.kind, stamp,
        ...(k.secret ? { secret: bytes(k.secret, `key ${ref} secret`) } : {}),
        ...(k.publicKey ? { publicKey: bytes(k.publicKey, `key ${ref} public key`) } : {}),
      });
    }
    for (const [id, v] of Object.entries(record(f.objects, 'objects'))) this.objects.set(slot(id, 'an object'), bytes(v, `object ${id}`));
    if (unstamped) this.save();
  }

  used(): number {
    let n = 0;
    for (const k of this.keys.values()) n += 8 + (k.secret?.length ?? 0) + (k.publicKey?.length ?? 0);
    for (const o of this.objects.values()) n += 4 + o.length;
    return n;
  }

  /**
   * Writes the whole store atomically and durably (temp file, fsync, rename, directory fsync): a
   * crash never leaves half a file, and a write the card acknowledged survives a power cut, as
   * EEPROM does.
   */
  save(): void {
    this.write();
    this.sync();
  }

  /** The first steps of save(), up to the rename: when it throws, the file is as it was. */
  write(): void {
    if (!this.path) return;
    if (this.unlock === undefined) throw new StateError(`virtual card store ${this.path} was closed`);
    const f: FileFormat = { serial: keyToHex(this.serial), keys: {}, objects: {} };
    for (const [ref, k] of this.keys) {
      f.keys[ref] = {
        algorithm: k.algorithm, kind: k.kind, stamp: keyToHex(k.stamp),
        ...(k.secret ? { secret: keyToHex(k.secret) } : {}),
        ...(k.publicKey ? { publicKey: keyToHex(k.publicKey) } : {}),
      };
    }
    for (const [id, v] of this.objects) f.objects[id] = keyToHex(v);
    const tmp = `${this.path}.${process.pid}.tmp`;
    const data = Buffer.from(JSON.stringify(f));
    try {
      // Made afresh (wx), so it has mode 0600 and is no file or symlink someone left at that name.
      try {
        unlinkSync(tmp);
      } catch {
        // none there
      }
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        // A disk that fills up takes part of a write and refuses the next: what it took is no store.
        for (let o = 0; o < data.length; ) o += writeSync(fd, data, o, data.length - o);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
    } catch (e) {
      // No partial copy of the keys is left beside the store.
      try {
        unlinkSync(tmp);
      } catch {
        // never created
      }
      throw refused(this.path, e);
    } finally {
      data.fill(0);
    }
  }

  /** The last step of save(): flushes the rename. When it throws, the file holds the new content already. */
  sync(): void {
    if (!this.path) return;
    const dir = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}

interface LockHolder { pid: number; stamp?: string }

const code = (e: unknown) => (e as { code?: string }).code;
const unreadable = (path: string, e: unknown) => new InvalidInputError(`virtual card store ${path} cannot be read (${code(e) ?? 'read error'})`);

/**
 * Makes the store's directory and those above it (0700). Node's recursive mkdir answers EEXIST
 * where the directory's own name is taken by a file, or by a symbolic link to nothing: stat says
 * which (ENOTDIR, ENOENT).
 */
function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    if (code(e) !== 'EEXIST' || statSync(dir).isDirectory()) throw e;
    throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
  }
}

/**
 * The file `path` names, as the file system names it (symbolic links followed, of the file and of
 * the directories above it): the lock is taken on that name, so that a card given another name
 * for one file is refused as in use, and the writes rename over the file itself, not over a link
 * to it. A file not there yet is its directory's real path and its name; a symbolic link to
 * nothing is refused, as writing there would replace the link.
 */
function resolve(path: string): string {
  try {
    return realpathSync(path);
  } catch (e) {
    if (code(e) !== 'ENOENT') throw unreadable(path, e);
  }
  try {
    lstatSync(path);
  } catch (e) {
    if (code(e) !== 'ENOENT') throw unreadable(path, e);
    return join(realpathSync(dirname(path)), basename(path));
  }
  throw new InvalidInputError(`virtual card store ${path} cannot be read (ENOENT: a symbolic link to nothing)`);
}

/**
 * The store's text, or undefined when there is no file: only a missing file starts an empty store,
 * as one that cannot be read (permissions, an I/O error) would be overwritten by an empty one, its
 * keys lost. Checked before it is read, on a descriptor opened without blocking: a FIFO would hold
 * the read for ever and a device answer anything; a file with a second hard link would keep, under
 * the other name, the keys that each write (a new file renamed over this one) replaces.
 */
function readStore(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if (code(e) === 'ENOENT') return undefined;
    throw unreadable(path, e);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw unreadable(path, { code: 'EISDIR' });
    if (!st.isFile()) throw new InvalidInputError(`virtual card store ${path} is not a regular file`);
    if (st.nlink > 1) throw new InvalidInputError(`virtual card store ${path} has ${st.nlink} links: a card keeps no file another name reaches (EMLINK)`);
    return readFileSync(fd, 'utf8');
  } catch (e) {
    throw e instanceof SenvError ? e : unreadable(path, e);
  } finally {
    closeSync(fd);
  }
}

/**
 * Removes the temp files of earlier card processes that died in a save (`<store>.<pid>.tmp`): each
 * holds a whole copy of the keys it was writing, deleted ones included. The lock is this
 * process's by now, so no other process is writing one. Also what a process that died taking the
 * lock left (`<store>.lock.<pid>.<random>.tmp` or `.stale`: a holder's pid and start time, no
 * keys), when that pid no longer runs: a live one may be taking the lock this moment, and is refused.
 */
function sweepTemps(path: string): void {
  const dir = dirname(path), base = basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const temp = new RegExp(`^${base}\\.\\d+\\.tmp$`);
  const lockTemp = new RegExp(`^${base}\\.lock\\.(\\d+)\\.[0-9a-z]+\\.(?:tmp|stale)$`);
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    const taker = lockTemp.exec(name)?.[1];
    if (!(temp.test(name) || (taker !== undefined && gone(Number(taker)))) || !lstatSync(file).isFile()) continue;
    try {
      unlinkSync(file);
    } catch (e) {
      throw new InvalidInputError(`virtual card store temp file ${file} cannot be removed (${(e as { code?: string }).code ?? 'error'})`);
    }
  }
}

/** Whether no process of this pid runs; one this process may not check (EPERM, Deno without --allow-run) may. */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as { code?: string }).code === 'ESRCH';
  }
}

/**
 * The file system's refusal (an errno code, Deno's permission error) as a StateError naming the
 * store, the code and, on Deno, the permissions; senv's own errors as they are.
 */
function refused(path: string, e: unknown): unknown {
  if (e instanceof SenvError) return e;
  const dir = dirname(path);
  return new StateError(`virtual card store ${path} cannot be used (${refusalOf(e, `--allow-read=${dir} --allow-write=${dir}`)})`);
}

/** On Deno, refuses (as Deno does without a terminal) what is not granted: in a terminal Deno would prompt for it. */
function denoGrants(dir: string): void {
  for (const name of ['read', 'write'] as const) {
    if (!granted({ name, path: dir })) throw Object.assign(new Error(`Requires ${name} access to "${dir}"`), { name: 'NotCapable' });
  }
}

/** A file's text, on Deno only where reading it is granted. */
function readGranted(file: string): string {
  if (!granted({ name: 'read', path: file })) throw new StateError(`no read permission for ${file}`);
  return readFileSync(file, 'utf8');
}

/**
 * Takes `<path>.lock` for this process and answers its release (also run at
 * exit). A lock whose holder is gone (its pid not running, or running under
 * another start time: pids are reused) is taken over; a live holder's is a
 * StateError naming the process.
 */
function lockStore(path: string): () => void {
  const lock = `${path}.lock`;
  const stamp = (pid: number) => stampFrom(readGranted, pid);
  const mine = JSON.stringify({ pid: process.pid, stamp: stamp(process.pid) } satisfies LockHolder);
  const unique = `${lock}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  const read = (file: string): string | undefined => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      if (code(e) === 'ENOENT') return undefined;
      // As the store itself: a lock that is there but cannot be read (a directory, permissions) is named.
      throw new InvalidInputError(`virtual card store lock ${file} cannot be read (${code(e) ?? 'read error'})`);
    }
  };
  const alive = (text: string): LockHolder | undefined => {
    let h: LockHolder;
    try {
      h = JSON.parse(text) as LockHolder;
    } catch {
      return undefined; // not a lock this code wrote whole: nobody holds it
    }
    if (!Number.isInteger(h.pid) || h.pid <= 0) return undefined;
    try {
      process.kill(h.pid, 0);
    } catch (e) {
      // Only "no such process" says the holder is gone. EPERM: it runs, as another user. Anything
      // else is a check this process may not make (Deno without --allow-run): never a stale lock.
      if (code(e) === 'ESRCH') return undefined;
      if (code(e) !== 'EPERM') {
        throw new StateError(`virtual card store ${path} is locked by process ${h.pid}, which this process cannot check (${failureKind(e)}; on Deno: --allow-run)`);
      }
    }
    const now = stamp(h.pid);
    return h.stamp === undefined || now === undefined || now === h.stamp ? h : undefined;
  };
  // Written whole under a private name, then linked in: the lock never exists without its holder.
  writeFileSync(`${unique}.tmp`, mine, { mode: 0o600, flag: 'wx' });
  try {
    for (;;) {
      try {
        linkSync(`${unique}.tmp`, lock);
        break;
      } catch (e) {
        if (code(e) !== 'EEXIST') throw e;
      }
      const found = read(lock);
      if (found === undefined) continue;
      const holder = alive(found);
      if (holder) throw new StateError(`virtual card store ${path} is in use by process ${holder.pid} (${lock})`);
      // A stale lock is moved aside before it is removed, so that two processes taking it over at
      // once cannot remove the lock the faster one has just taken.
      try {
        renameSync(lock, `${unique}.stale`);
      } catch (e) {
        if (code(e) === 'ENOENT') continue;
        throw e;
      }
      if (read(`${unique}.stale`) !== found) {
        try {
          linkSync(`${unique}.stale`, lock);
        } catch (e) {
          if (code(e) !== 'EEXIST') throw e;
        }
      }
      unlinkSync(`${unique}.stale`);
    }
  } finally {
    unlinkSync(`${unique}.tmp`);
  }
  const release = () => {
    process.off('exit', atExit);
    if (read(lock) !== mine) return;
    try {
      unlinkSync(lock);
    } catch (e) {
      throw new StateError(`virtual card store lock ${lock} cannot be removed (${refusalOf(e, `--allow-write=${dirname(lock)}`)})`);
    }
  };
  // At exit no caller is left to take the failure: it is said on stderr, and an exit that went well fails.
  const atExit = () => {
    try {
      release();
    } catch (e) {
      process.stderr.write(`senv: ${(e as Error).message}\n`);
      process.exitCode ||= 1;
    }
  };
  process.on('exit', atExit);
  return release;
}

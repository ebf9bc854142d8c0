// The few file operations the journal needs, on Node (node:fs) and Deno
// (Deno.*), loaded only when a data directory is used, so the engine stays
// importable in browsers. They are one small interface so that a caller can
// put its own in between (McsEngineOptions.files): to watch the I/O, or to
// make writes fail the way a full or failing disk does (the tests of
// docs/mcs.md "Failed writes").
//
// What they create is private to the user: a directory 0700, files 0600,
// whatever the umask (which could leave a secret-holding file readable, or a
// file its own writer cannot reopen). A file the store keeps is its own alone:
// one it finds with a second link, or owned by another user, could be written
// or read through a name outside the directory, and is refused.

import { StateError } from '../../core/errors.ts';
import { secretCopy } from '../../core/bytes.ts';
import { granted } from '../../core/permissions.ts';

/** The file operations a data directory's store makes (McsEngineOptions.files): node:fs's or Deno's by default. */
export interface Files {
  /**
   * The whole file, or undefined when it does not exist. By default a file
   * the store keeps: regular (a FIFO would block the open for ever), not a
   * symbolic link, with one link, owned by this user, made 0600. `'lock'`: a
   * lock file, links followed and two links allowed (createLock links it in
   * from a second name). `'key'` reads what the path names, as a key file may
   * be a pipe or a link.
   */
  read(path: string, as?: 'lock' | 'key'): Promise<Uint8Array | undefined>;
  /** Appends and flushes to stable storage before resolving; the file is checked as read() checks one the store keeps. */
  append(path: string, data: Uint8Array): Promise<void>;
  /** Writes a new file and flushes it (the caller renames it into place): whatever has the name is removed first, and the file made afresh. */
  writeDurable(path: string, data: Uint8Array): Promise<void>;
  /**
   * Creates a lock file holding `data` unless one exists (then undefined),
   * and flushes it. The file appears with its content whole (written under
   * another name and linked into place), never empty. Where the platform has OS file locks (Deno) the file
   * stays locked until the returned release: they end with the process, so
   * lockHeld can tell a crashed holder without looking for its pid.
   */
  createLock(path: string, data: Uint8Array): Promise<(() => Promise<void>) | undefined>;
  /** Whether createLock keeps an OS lock on the file. */
  readonly osLocks: boolean;
  /**
   * Whether the process that created the lock file `path` still has it:
   * `pid` is the holder's, `osLocked` says whether it kept an OS lock on it.
   * Undefined when this platform cannot tell.
   */
  lockHeld(path: string, pid: number, osLocked: boolean, stamp?: string): Promise<boolean | undefined>;
  /**
   * When this process started, as the platform can tell it (Linux: boot ID and
   * start time from /proc), so that a lock names its holder even after its pid
   * was given to another process; undefined where it cannot.
   */
  readonly stamp: string | undefined;
  /** Renames `from` to `to`, replacing what `to` names (atomic on one file system). */
  rename(from: string, to: string): Promise<void>;
  /** Cuts the file to `length` bytes and flushes it, checked as append() checks it; a missing file has nothing to cut. */
  truncate(path: string, length: number): Promise<void>;
  /** Removes the file; a missing file is no error. */
  remove(path: string): Promise<void>;
  /**
   * Makes the directory and any missing above it; answers the topmost one it
   * made, as the path was given (undefined when the directory was there, or
   * when the platform cannot tell).
   */
  mkdir(path: string): Promise<string | undefined>;
  /** Flushes a directory entry change (rename, create) to stable storage. */
  syncDir(path: string): Promise<void>;
  /** The ID of this process. */
  readonly pid: number;
}

/** `path` without trailing slashes ('/' stays '/'). */
export function trimSlashes(path: string): string {
  return path.replace(/(.)\/+$/, '$1');
}

/** The directory holding `path` ('/' for the root, '.' for a relative name without one). */
export function parentOf(path: string): string {
  const trimmed = trimSlashes(path);
  const cut = trimmed.lastIndexOf('/');
  return cut > 0 ? trimSlashes(trimmed.slice(0, cut)) : cut === 0 ? '/' : '.';
}

/** Temp file, flush, rename over the old one, flush the directory. */
export async function writeAtomic(files: Files, dir: string, name: string, data: Uint8Array): Promise<void> {
  await files.writeDurable(`${dir}/${name}.tmp`, data);
  await files.rename(`${dir}/${name}.tmp`, `${dir}/${name}`);
  await files.syncDir(dir);
}

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

interface DenoFileInfo { isSymlink: boolean; isFile: boolean; nlink: number | null; mode: number | null }
interface DenoFile {
  write(p: Uint8Array): Promise<number>;
  sync(): Promise<void>;
  truncate(n: number): Promise<void>;
  tryLock(exclusive: boolean): Promise<boolean>;
  close(): void;
}
interface DenoApi {
  pid: number;
  readFile(p: string): Promise<Uint8Array>;
  open(p: string, o: Record<string, boolean | number>): Promise<DenoFile>;
  rename(a: string, b: string): Promise<void>;
  remove(p: string): Promise<void>;
  mkdir(p: string, o: { recursive: boolean; mode?: number }): Promise<void>;
  chmod(p: string, mode: number): Promise<void>;
  stat(p: string): Promise<{ isFile: boolean }>;
  lstat(p: string): Promise<DenoFileInfo>;
  link(a: string, b: string): Promise<void>;
  errors: { NotFound: new () => Error; AlreadyExists: new () => Error; NotCapable?: new (message: string) => Error; PermissionDenied: new (message: string) => Error };
}

export async function openFiles(): Promise<Files> {
  const deno = (globalThis as { Deno?: DenoApi }).Deno;
  if (deno) return denoFiles(deno);
  if (!(globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node) {
    throw new StateError('a data directory needs Node or Deno (files); in a browser the state is in memory: leave out dataDir');
  }
  return nodeFiles();
}

/** A refusal of the store's own, worded alike on Node and Deno, with an errno-style code as the file system's have. */
export class StoreFileError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

// A level of the data directory that is there and yet reads as missing: ENOENT, as the file system says of it.
const linkToNothing = (path: string) => Object.assign(new Error(`${path} is a symbolic link to nothing`), { code: 'ENOENT' });

// The refusals of a planted file.
const symbolicLink = (path: string) => new StoreFileError(`${path} is a symbolic link: the store writes no file through one`, 'ELOOP');
const notRegular = (path: string) => new StoreFileError(`${path} is not a regular file`, 'EFTYPE');

/**
 * Refuses a file the store keeps that another name reaches (a second link: outside the directory,
 * the store's writes would reach it, or it keeps them readable). Answers whether its mode must be
 * set to 0600.
 */
function mustChmod(path: string, info: { nlink: number | null; mode: number | null }): boolean {
  if ((info.nlink ?? 1) > 1) throw new StoreFileError(`${path} has ${info.nlink} links: the store keeps no file another name reaches`, 'EMLINK');
  return info.mode !== null && (info.mode & 0o7777) !== FILE_MODE;
}

/** Runs op; a file that does not exist counts as done (truncating or removing it). */
async function unlessMissing(missing: (e: unknown) => boolean, op: () => Promise<unknown>): Promise<void> {
  try {
    await op();
  } catch (e) {
    if (!missing(e)) throw e;
  }
}

/**
 * A Node built-in, got in a way bundlers do not follow: a dynamic import of
 * a literal node: specifier is taken by esbuild and webpack into a browser
 * bundle (a build error there), though it only runs with a data directory.
 * process.getBuiltinModule (Node 20.16+) is a plain call; before it, an
 * import of a specifier in a variable.
 */
async function builtin<T>(id: string): Promise<T> {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (proc?.getBuiltinModule?.(id) ?? (await import(/* webpackIgnore: true */ /* @vite-ignore */ id))) as T;
}

async function nodeFiles(): Promise<Files> {
  const fs = await builtin<typeof import('node:fs/promises')>('node:fs/promises');
  const { constants: c, readFileSync } = await builtin<typeof import('node:fs')>('node:fs');
  const readText = (path: string) => readFileSync(path, 'utf8');
  const processStamp = (pid: number) => stampFrom(readText, pid);
  const code = (e: unknown) => (e as { code?: string }).code;
  const missing = (e: unknown) => code(e) === 'ENOENT';
  type Handle = Awaited<ReturnType<typeof fs.open>>;
  const use = async (f: Handle, fn: (f: Handle) => Promise<void>) => {
    try {
      await fn(f);
    } finally {
      await f.close();
    }
  };
  const withFile = async (path: string, flags: string, fn: (f: Handle) => Promise<void>) => use(await fs.open(path, flags), fn);
  const uid = process.geteuid?.();
  /**
   * Takes a file of another user than this process's effective uid only if it is the directory's
   * owner's, who can replace any file there anyway: a service moved from its own user to root, a
   * backup restored by another user, a uid-mapped mount, NFS with root_squash. A third user's file
   * is what someone allowed to write the directory could have swapped in, reading and steering
   * the store's later writes.
   */
  const ownedByDirOwner = async (path: string, owner: number, euid: number) => {
    const dirOwner = (await fs.stat(parentOf(path))).uid;
    if (owner !== dirOwner) {
      throw new StoreFileError(`${path} is owned by user ${owner}, neither this process's ${euid} nor the data directory's owner ${dirOwner}: chown it (or the whole directory) to the user the engine runs as`, 'EPERM');
    }
  };
  /**
   * Opens a regular file, never blocking on a FIFO (O_NONBLOCK, then fstat)
   * and never through a symbolic link (O_NOFOLLOW): a link planted in the
   * data directory would have the store overwrite or cut the file it points
   * to. A lock is read through links, as before (`follow`). One the store
   * keeps (`keep`) is checked by that fstat and made 0600.
   */
  const regular = async (path: string, flags: number, follow = false, mode?: number, keep = !follow) => {
    let f: Handle;
    try {
      f = await fs.open(path, flags | c.O_NONBLOCK | (follow ? 0 : c.O_NOFOLLOW), mode);
    } catch (e) {
      if (code(e) === 'ELOOP') throw symbolicLink(path);
      // A FIFO no one reads, opened to write without blocking (or a device without its driver).
      if (code(e) === 'ENXIO') throw notRegular(path);
      throw e;
    }
    try {
      const info = await f.stat();
      if (!info.isFile()) throw notRegular(path);
      if (keep) {
        const chmod = mustChmod(path, info);
        if (uid !== undefined && info.uid !== uid) await ownedByDirOwner(path, info.uid, uid);
        if (chmod) await f.chmod(FILE_MODE);
      }
      return f;
    } catch (e) {
      await f.close();
      throw e;
    }
  };
  /**
   * Opens a file it creates (or finds, without O_EXCL) with mode 0600 exactly. Root making one in a
   * directory another user owns gives it to that user: the service that runs as the owner opens the
   * directory again after an operator ran an engine or `senv rotate-master-key` as root there, where a
   * meta.json or snapshot.json of root's, 0600, would refuse it (EACCES).
   */
  const create = async (path: string, flags: number) => {
    const f = await regular(path, flags | c.O_CREAT, false, FILE_MODE);
    if (uid !== 0) return f;
    try {
      const [dir, info] = await Promise.all([fs.stat(parentOf(path)), f.stat()]);
      // Best effort: where the owner cannot be given (root of a user namespace, the directory's uid unmapped:
      // EINVAL), the file stays root's, as before, and an open by the owner names it (EACCES on …).
      if (dir.uid !== 0 && info.uid === 0) await f.chown(dir.uid, dir.gid).catch(() => undefined);
      return f;
    } catch (e) {
      await f.close();
      throw e;
    }
  };
  /**
   * Linux: whether any process holds an OS lock on the file at `path`, as /proc/locks lists them (by
   * device and inode); undefined where it cannot be read. Node takes no flock itself, but can tell
   * a Deno holder's, which ends with its process. By inode alone: /proc/locks names the file system's
   * own device, which stat reports otherwise on btrfs subvolumes and overlayfs, and matching it there
   * would take a live lock; another device's file of the same inode number only keeps a lock held.
   */
  const osLockOn = async (path: string): Promise<boolean | undefined> => {
    try {
      const [{ ino }, locks] = await Promise.all([fs.stat(path, { bigint: true }), fs.readFile('/proc/locks', 'utf8')]);
      return locks.split('\n').some((line) => / [0-9a-f]+:[0-9a-f]+:(\d+) /.exec(line)?.[1] === String(ino));
    } catch {
      return undefined;
    }
  };
  return {
    pid: process.pid,
    read: async (path, as) => {
      try {
        let b: Buffer;
        if (as === 'key') b = await fs.readFile(path);
        else {
          const f = await regular(path, c.O_RDONLY, as === 'lock');
          try {
            b = await f.readFile();
          } finally {
            await f.close();
          }
        }
        // A plain Uint8Array of its own (a Buffer's slice() shares memory), outside the JS heap as a key file's
        // bytes must be (a small array there may be moved, its old bytes left); the Buffer is zeroized.
        try {
          return secretCopy(b);
        } finally {
          b.fill(0);
        }
      } catch (e) {
        if (missing(e)) return undefined;
        throw e;
      }
    },
    // The hot path opens an existing journal without the chmod a creation needs.
    append: async (path, data) => {
      let f: Handle;
      try {
        f = await regular(path, c.O_WRONLY | c.O_APPEND);
      } catch (e) {
        if (!missing(e)) throw e;
        f = await create(path, c.O_WRONLY | c.O_APPEND);
      }
      await use(f, async () => {
        await f.writeFile(data);
        await f.datasync();
      });
    },
    // Removed and made exclusively: a hard link planted under the name would have its file overwritten and chmodded.
    writeDurable: async (path, data) => {
      await unlessMissing(missing, () => fs.unlink(path));
      await use(await create(path, c.O_WRONLY | c.O_EXCL), async (f) => {
        await f.writeFile(data);
        await f.sync();
      });
    },
    // Written whole under a private name, then linked in: the lock never exists without its content,
    // and link() fails where the name exists, as an exclusive create does.
    createLock: async (path, data) => {
      const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      try {
        await use(await create(tmp, c.O_WRONLY | c.O_EXCL), async (f) => {
          await f.writeFile(data);
          await f.sync();
        });
        await fs.link(tmp, path);
      } catch (e) {
        if (code(e) === 'EEXIST') return undefined;
        throw e;
      } finally {
        await unlessMissing(missing, () => fs.unlink(tmp));
      }
      return async () => undefined;
    },
    osLocks: false,
    rename: (a, b) => fs.rename(a, b),
    truncate: (path, n) => unlessMissing(missing, async () => use(await regular(path, c.O_RDWR), async (f) => {
      await f.truncate(n);
      await f.sync();
    })),
    remove: (path) => unlessMissing(missing, () => fs.unlink(path)),
    // Level by level, not `recursive: true`, which loops for ever where a level exists but mkdir in it
    // answers ENOENT (below /proc/self): a level that is no directory is ENOTDIR, as on Deno.
    mkdir: async (path) => {
      const missingLevels: string[] = [];
      for (let p = trimSlashes(path); ; p = parentOf(p)) {
        try {
          if (!(await fs.stat(p)).isDirectory()) throw Object.assign(new Error(`${p} is not a directory`), { code: 'ENOTDIR' });
          break;
        } catch (e) {
          // Node's permission model (--permission) refuses a level above the directory its grants do not
          // name: the walk stops there, as Deno's does where reading is not granted, and a level missing
          // above it fails at mkdir, by its own code.
          if (code(e) === 'ERR_ACCESS_DENIED' && missingLevels.length) break;
          if (code(e) !== 'ENOENT' || parentOf(p) === p) throw e;
          missingLevels.unshift(p);
        }
      }
      for (const p of missingLevels) {
        try {
          await fs.mkdir(p, { mode: DIR_MODE });
        } catch (e) {
          if (code(e) !== 'EEXIST') throw e;
          // Made meanwhile by another opener: a directory is as good as one made here.
          const made = await fs.stat(p).catch(() => undefined);
          if (!made) throw linkToNothing(p);
          if (!made.isDirectory()) throw Object.assign(new Error(`${p} is not a directory`), { code: 'ENOTDIR' });
        }
      }
      if (missingLevels.length) await fs.chmod(path, DIR_MODE);
      return missingLevels[0];
    },
    syncDir: (path) => withFile(path, 'r', (f) => f.sync()),
    lockHeld: async (path, pid, osLocked, stamp) => {
      try {
        process.kill(pid, 0);
      } catch (e) {
        // EPERM: it runs, as another user (after a reboot, often a system daemon that got the pid).
        if (code(e) !== 'EPERM') return false;
      }
      // A zombie has exited and holds nothing: a holder killed whose parent has not reaped it yet (or never
      // will, an orphan under a PID 1 that does not reap), which kill(pid, 0) still finds.
      if (exitedFrom(readText, pid)) return false;
      // A process of that pid runs: the holder only if it started when the holder did (pids are reused).
      const now = processStamp(pid);
      if (stamp !== undefined && now !== undefined) return now === stamp;
      // No start time (a Deno holder records none): one that kept an OS lock has it while the lock is there.
      return !osLocked || ((await osLockOn(path)) ?? true);
    },
    stamp: processStamp(process.pid),
  };
}

function denoFiles(deno: DenoApi): Files {
  const missing = (e: unknown) => e instanceof deno.errors.NotFound;
  const use = async (f: DenoFile, fn: (f: DenoFile) => Promise<void>) => {
    try {
      await fn(f);
    } finally {
      f.close();
    }
  };
  const withFile = async (path: string, o: Record<string, boolean>, fn: (f: DenoFile) => Promise<void>) => use(await deno.open(path, o), fn);
  const writeAll = async (f: DenoFile, data: Uint8Array) => {
    for (let off = 0; off < data.length;) off += await f.write(data.subarray(off));
  };
  /** Opens a file it creates with mode 0600 exactly (Deno's FsFile has no chmod: by path, before any data). */
  const create = async (path: string, o: Record<string, boolean>) => {
    await notLink(path);
    const f = await deno.open(path, { ...o, create: true, mode: FILE_MODE });
    try {
      await deno.chmod(path, FILE_MODE);
    } catch (e) {
      f.close();
      throw e;
    }
    return f;
  };
  // Deno opens no file with O_NOFOLLOW or O_NONBLOCK: the kind is checked by path first (as on Node,
  // no write through a symbolic link planted in the data directory, and no open of a FIFO, which
  // would block for ever, writing as reading), and so are the links and mode of a file the store keeps.
  // The owner is not: Deno tells this process's uid only with --allow-sys.
  const notLink = async (path: string) => {
    let info: DenoFileInfo;
    try {
      info = await deno.lstat(path);
    } catch (e) {
      if (missing(e)) return;
      throw e;
    }
    if (info.isSymlink) throw symbolicLink(path);
    if (!info.isFile) throw notRegular(path);
    if (mustChmod(path, info)) await deno.chmod(path, FILE_MODE);
  };
  const readable = (path: string) => granted({ name: 'read', path });
  const Refused = deno.errors.NotCapable ?? deno.errors.PermissionDenied;
  /**
   * Refuses, as Deno itself does without a terminal, what the permissions do not grant: with one, Deno
   * would stop at an interactive prompt and wait for an answer no engine can give.
   */
  const need = (path: string, ...names: ('read' | 'write')[]) => {
    for (const name of names) if (!granted({ name, path })) throw new Refused(`Requires ${name} access to "${path}", run again with the --allow-${name} flag`);
  };
  const exists = async (path: string) => {
    try {
      await deno.stat(path);
      return true;
    } catch (e) {
      if (missing(e)) return false;
      throw e;
    }
  };
  /**
   * Deno's errors name the file in their message only, where Node's carry it as `path`: given it, so
   * that a refusal at open names the file to chown or put back on Deno too (journal.ts, unopenable).
   * A permission Deno does not grant names its flags instead, and the store's own refusals their file.
   */
  const about = <A extends unknown[], R>(op: (path: string, ...rest: A) => Promise<R>) => async (path: string, ...rest: A): Promise<R> => {
    try {
      return await op(path, ...rest);
    } catch (e) {
      if (!(e instanceof StoreFileError) && !(e instanceof Refused) && e instanceof Error && !('path' in e)) Object.assign(e, { path });
      throw e;
    }
  };
  return {
    pid: deno.pid,
    read: about(async (path, as) => {
      need(path, 'read');
      try {
        if (as === undefined) await notLink(path);
        else if (as === 'lock' && !(await deno.stat(path)).isFile) throw notRegular(path);
        return await deno.readFile(path);
      } catch (e) {
        if (missing(e)) return undefined;
        throw e;
      }
    }),
    append: about(async (path, data) => {
      need(path, 'read', 'write');
      let f: DenoFile;
      try {
        await notLink(path);
        f = await deno.open(path, { append: true });
      } catch (e) {
        if (!missing(e)) throw e;
        f = await create(path, { append: true });
      }
      await use(f, async () => {
        await writeAll(f, data);
        await f.sync();
      });
    }),
    writeDurable: about(async (path, data) => {
      need(path, 'read', 'write');
      await unlessMissing(missing, () => deno.remove(path));
      await use(await create(path, { write: true, createNew: true }), async (f) => {
        await writeAll(f, data);
        await f.sync();
      });
    }),
    // As on Node, written whole and linked in; the OS lock is taken on the file before the link,
    // so whoever finds the lock finds it locked.
    createLock: about(async (path, data) => {
      const tmp = `${path}.${deno.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      need(path, 'read', 'write');
      need(tmp, 'read', 'write');
      const f = await create(tmp, { write: true, createNew: true });
      let linked = false;
      try {
        if (!(await f.tryLock(true))) throw new StoreFileError(`cannot lock ${tmp}`, 'EAGAIN');
        await writeAll(f, data);
        await f.sync();
        await deno.link(tmp, path);
        linked = true;
      } catch (e) {
        if (!(e instanceof deno.errors.AlreadyExists)) {
          f.close();
          throw e;
        }
      } finally {
        await unlessMissing(missing, () => deno.remove(tmp));
      }
      if (!linked) {
        f.close();
        return undefined;
      }
      return async () => f.close();
    }),
    osLocks: true,
    rename: about(async (a, b) => {
      need(a, 'read', 'write');
      need(b, 'write');
      await deno.rename(a, b);
    }),
    truncate: about((path, n: number) => unlessMissing(missing, async () => {
      need(path, 'read', 'write');
      await notLink(path);
      await withFile(path, { read: true, write: true }, async (f) => {
        await f.truncate(n);
        await f.sync();
      });
    })),
    remove: about(async (path) => {
      need(path, 'write');
      await unlessMissing(missing, () => deno.remove(path));
    }),
    // The topmost missing level is looked for only where reading is granted already (asking for
    // more would stop at a prompt): above that, a level it made goes unreported.
    mkdir: about(async (path) => {
      need(path, 'read', 'write');
      if (await exists(path)) return undefined;
      let top = trimSlashes(path);
      for (let up = parentOf(top); up !== top && readable(up) && !(await exists(up)); up = parentOf(up)) top = up;
      try {
        await deno.mkdir(path, { recursive: true, mode: DIR_MODE });
      } catch (e) {
        // The topmost level that reads as missing is the link (below it, nothing can be there), as Node names it.
        if (e instanceof deno.errors.AlreadyExists && !(await exists(path))) throw linkToNothing(top);
        throw e;
      }
      await deno.chmod(path, DIR_MODE);
      return top;
    }),
    // Only where reading is granted already: opening a directory the permissions do not name would
    // stop at an interactive prompt (the journal flushes the data directory's parent, best effort).
    syncDir: about(async (path) => {
      if (!readable(path)) throw new StoreFileError(`no read permission for ${path}`, 'EACCES');
      await withFile(path, { read: true }, (f) => f.sync());
    }),
    stamp: undefined,
    // Deno.kill (--allow-run) takes no signal 0, and /proc needs --allow-all: only the OS lock tells.
    lockHeld: about(async (path, _pid, osLocked) => {
      if (!osLocked) return undefined;
      need(path, 'read');
      let f: DenoFile;
      try {
        f = await deno.open(path, { read: true });
      } catch (e) {
        if (missing(e)) return false;
        throw e;
      }
      try {
        return !(await f.tryLock(true));
      } finally {
        f.close();
      }
    }),
  };
}

/**
 * Linux: the fields of a process's /proc/<pid>/stat from field 3 on, counted after the command name's
 * closing parenthesis (the name may hold spaces); undefined where there is none to read.
 */
function statFields(read: (path: string) => string, pid: number): string[] | undefined {
  try {
    const stat = read(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Linux: whether the process of that pid has exited and waits only to be reaped (state Z or X, field 3); false where it cannot be told. */
function exitedFrom(read: (path: string) => string, pid: number): boolean {
  const state = statFields(read, pid)?.[0];
  return state === 'Z' || state === 'X';
}

/** Linux: `<boot id>:<start time in clock ticks (field 22)>` of a process, from /proc; undefined elsewhere. */
export function stampFrom(read: (path: string) => string, pid: number): string | undefined {
  try {
    const boot = read('/proc/sys/kernel/random/boot_id').trim();
    const start = statFields(read, pid)?.[19];
    return start ? `${boot}:${start}` : undefined;
  } catch {
    return undefined;
  }
}

// The data directory's lock: a file naming the process that has the directory
// open (pid and start time), so that a second opener is refused and a stale
// lock, left by a process that is gone, is taken over.
import { constantTimeEqual } from '../../core/compare.ts';
import { randomBytes } from '../../core/drbg.ts';
import { StateError } from '../../core/errors.ts';
import { toHex } from '../../core/bytes.ts';
import { DataDirDamagedError, DataDirLockedError } from './errors.ts';
import type { Files } from './files.ts';
import { parseJson } from './format.ts';

const enc = new TextEncoder();
const LOCK = 'lock';
/** Tokens of the locks this process holds: a lock naming this pid is its own only if it is one of them. */
const held = new Set<string>();

interface LockHolder { pid: number; since: string; token: string; osLocked: boolean; stamp?: string }

/** A lock this store holds. */
export interface Lock { token: string; release: () => Promise<void> }

/**
 * Takes the directory's lock: a file created only where none exists, naming
 * this process. A lock whose process is gone (a crash, kill -9) is taken
 * over; one whose process runs, or of which the platform cannot tell,
 * refuses the open.
 */
export async function takeLock(files: Files, dir: string): Promise<Lock> {
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
  if (alive === 'this process' || alive === 'this pid') {
    // The holder is known: removing the lock by hand would put a second engine on the journal of this
    // process's own (open, or still closing: a restart that did not await close()).
    const who = alive === 'this pid' ? 'that is this process (or one of that pid in another PID namespace), and its OS lock is held' : 'that is this process';
    throw new DataDirLockedError(dir, holder.pid, ` (since ${holder.since}; ${who}: an McsEngine it opened, in this thread or another, has it open (or is opening or closing it): await that engine's close() before opening the directory again)`);
  }
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
 * Whether the process that wrote the lock at `path` still has it. One this module holds is 'this
 * process'. One naming this pid may be another instance of senv in this process (a worker thread, a
 * second copy of the package: each has its own `held`) or a pid reused after a crash (a container's
 * restart): the start time tells them apart (Linux: 'this process' or false). Without a start time
 * (Deno) a held OS lock on a lock naming this pid is 'this pid': such an instance, or a process of
 * that pid in another PID namespace sharing the directory (the OS lock holds across them), live
 * either way. Else the OS lock or nothing (undefined: refused, never taken from a live holder); any
 * other pid: the platform tells.
 */
async function holderAlive(files: Files, path: string, holder: LockHolder): Promise<boolean | 'this process' | 'this pid' | undefined> {
  if (held.has(holder.token)) return 'this process';
  const ownPid = holder.pid === files.pid;
  if (ownPid && holder.stamp !== undefined && files.stamp !== undefined) return holder.stamp === files.stamp && 'this process';
  const alive = await files.lockHeld(path, holder.pid, holder.osLocked, holder.stamp);
  return alive === true && ownPid && holder.osLocked ? 'this pid' : alive;
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
export async function releaseLock(files: Files, dir: string, lock: Lock): Promise<void> {
  try {
    const found = await files.read(`${dir}/${LOCK}`, 'lock');
    if (found && lockHolder(found)?.token === lock.token) await files.remove(`${dir}/${LOCK}`);
  } finally {
    held.delete(lock.token);
    await lock.release();
  }
}

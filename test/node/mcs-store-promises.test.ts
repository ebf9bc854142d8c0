// What the data directory's store promises and the other tests left open:
// every file operation flushes what it wrote before it resolves, a closed
// store writes nothing, debris of a crashed write is not read as part of the
// next file, a wrong master key is told from damage, a record whose write
// failed is cut at close, a journal of one record left behind its snapshot
// verifies, close() zeroizes the keys (a second close() waits for the first),
// and a lock names its holder by the start time of the process (/proc field
// 22), whatever its name holds.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { McsEngine } from '../../src/index.ts';
import { JournalStore } from '../../src/mcs/store/journal.ts';
import type { SeHost } from '../../src/mcs/host.ts';
import { openFiles, parentOf, stampFrom, type Files } from '../../src/mcs/store/files.ts';
import { Session, fails, ok } from '../portable/mcs-kit.ts';

const KEY = new Uint8Array(32).fill(7);
const tempDir = () => mkdtempSync(join(tmpdir(), 'senv-store-'));

/** The real file operations; `broken` makes appends write all and fail (EIO), and every truncate fail. */
function breakable(real: Files, log?: string[], dir = ''): Files & { broken: boolean } {
  const rel = (p: string) => p.replace(dir, '<dir>');
  const eio = () => Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
  const files = {
    ...real,
    pid: real.pid,
    stamp: real.stamp,
    osLocks: real.osLocks,
    broken: false,
    append: async (p: string, d: Uint8Array) => {
      log?.push(`append ${rel(p)}`);
      await real.append(p, d);
      if (files.broken) throw eio();
    },
    truncate: async (p: string, n: number) => {
      log?.push(`truncate ${rel(p)} ${n}`);
      if (files.broken) throw eio();
      await real.truncate(p, n);
    },
    rename: async (a: string, b: string) => {
      log?.push(`rename ${rel(a)} ${rel(b)}`);
      await real.rename(a, b);
    },
    syncDir: async (p: string) => {
      log?.push(`syncDir ${rel(p)}`);
      await real.syncDir(p);
    },
  };
  return files;
}

describe('Mcs data directory: what the store promises, pinned', () => {
  it('on Node, append, writeDurable, truncate and createLock flush what they wrote before they resolve', async () => {
    const dir = tempDir();
    const probe = await fsp.open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as Record<string, (...a: unknown[]) => Promise<unknown>>;
    await probe.close();
    const log: string[] = [];
    const names = ['writeFile', 'truncate', 'sync', 'datasync'] as const;
    const saved = names.map((n) => proto[n]!);
    names.forEach((n, i) => {
      proto[n] = async function (this: unknown, ...a: unknown[]) {
        log.push(n);
        return saved[i]!.apply(this, a);
      };
    });
    try {
      const files = await openFiles();
      /** Whether a flush followed the last `op` of the operation. */
      const flushed = async (op: 'writeFile' | 'truncate', run: () => Promise<unknown>) => {
        log.length = 0;
        await run();
        const at = log.lastIndexOf(op);
        return at >= 0 && log.slice(at + 1).some((c) => c === 'sync' || c === 'datasync');
      };
      const data = new Uint8Array(100).fill(1);
      expect(await flushed('writeFile', () => files.append(join(dir, 'journal.log'), data)), 'append (creating)').toBe(true);
      expect(await flushed('writeFile', () => files.append(join(dir, 'journal.log'), data)), 'append').toBe(true);
      expect(await flushed('writeFile', () => files.writeDurable(join(dir, 'snapshot.json.tmp'), data)), 'writeDurable').toBe(true);
      expect(await flushed('truncate', () => files.truncate(join(dir, 'journal.log'), 10)), 'truncate').toBe(true);
      expect(await flushed('writeFile', () => files.createLock(join(dir, 'lock'), data)), 'createLock').toBe(true);
    } finally {
      names.forEach((n, i) => (proto[n] = saved[i]!));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a closed store refuses every write: its lock may be another opener's by then", async () => {
    const dir = tempDir();
    try {
      const store = await JournalStore.open({ dir, masterKey: KEY });
      await store.close();
      const host = { seId: 'se' } as unknown as SeHost;
      await expect(store.remove(host, ['x'])).rejects.toMatchObject({ name: 'StateError', message: expect.stringContaining('closed') });
      await expect(store.uniqueId('software')).rejects.toMatchObject({ name: 'StateError' });
      expect(existsSync(join(dir, 'journal.log'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a longer temp file a crash left behind is overwritten whole, not read as part of the next meta.json', async () => {
    const dir = tempDir();
    try {
      // A crash between writing meta.json.tmp and its rename; the next write of the file is shorter.
      writeFileSync(join(dir, 'meta.json.tmp'), 'x'.repeat(10_000));
      await (await JournalStore.open({ dir, masterKey: KEY })).close();
      expect(() => JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'))).not.toThrow();
      await (await JournalStore.open({ dir, masterKey: KEY })).close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a wrong master key is refused as such (StateError), not reported as a damaged directory', async () => {
    const dir = tempDir();
    try {
      await (await JournalStore.open({ dir, masterKey: KEY })).close();
      const refused = await JournalStore.open({ dir, masterKey: new Uint8Array(32).fill(8) }).then(() => undefined, (e: Error) => e);
      expect(refused).toMatchObject({ name: 'StateError', message: expect.stringContaining('the master key does not open the data directory') });
      // The directory was left as it was: the right key opens it.
      await (await JournalStore.open({ dir, masterKey: KEY })).close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a record whose write failed and whose cut failed too is cut at close: the next run does not replay it', async () => {
    const dir = tempDir();
    try {
      const files = breakable(await openFiles());
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY, files });
      const s = new Session(e1, 'CAE1');
      await s.register();
      files.broken = true;
      fails(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1 } }), 5000, 'the write fails and its cut too');
      files.broken = false;
      await e1.close();
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      fails(await new Session(e2, 'CAE1').retrieve(s.path('reg', 'r')), 4004, 'the refused CREATE stays refused');
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a journal of a single record left behind its snapshot (the cut failing to the end) verifies at the next start', async () => {
    const dir = tempDir();
    try {
      const files = breakable(await openFiles());
      // Every record triggers a snapshot.
      const e1 = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, files, compactAt: 1 }) });
      const s = new Session(e1, 'CAE1');
      await s.register();
      files.broken = true;
      // Appends work (then fail only when broken): let this one through and fail the snapshot's cut.
      const append = files.append;
      files.append = async (p, d) => {
        files.broken = false;
        await append(p, d);
        files.broken = true;
      };
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1 } }), 2001, 'acknowledged; the snapshot is written, the journal not cut');
      await e1.close();
      expect(readFileSync(join(dir, 'journal.log')).length).toBeGreaterThan(0);
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      ok(await new Session(e2, 'CAE1').retrieve(s.path('reg', 'r')), 2000, 'after the restart');
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a second close() made while the first runs resolves only once the lock is released', async () => {
    const dir = tempDir();
    try {
      const store = await JournalStore.open({ dir, masterKey: KEY });
      const first = store.close();
      await store.close();
      expect(existsSync(join(dir, 'lock'))).toBe(false);
      await first;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("close() zeroizes the store's copy of the master key and its MAC key", async () => {
    const dir = tempDir();
    const fill = Uint8Array.prototype.fill;
    const zeroed: Buffer[] = [];
    try {
      const store = await JournalStore.open({ dir, masterKey: KEY });
      const macKey = createHmac('sha256', KEY).update('senv journal mac').digest();
      Uint8Array.prototype.fill = function (this: Uint8Array, ...a: Parameters<Uint8Array['fill']>) {
        if (a[0] === 0 && this.length === 32) zeroed.push(Buffer.from(this));
        return fill.apply(this, a);
      } as Uint8Array['fill'];
      await store.close();
      Uint8Array.prototype.fill = fill;
      expect(zeroed.some((z) => z.equals(Buffer.from(KEY))), 'the master key copy').toBe(true);
      expect(zeroed.some((z) => z.equals(macKey)), 'the MAC key').toBe(true);
    } finally {
      Uint8Array.prototype.fill = fill;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a lock names its holder by the start time in /proc/<pid>/stat (field 22), also where the process name holds ") " and spaces', () => {
    // Fields 3 to 52 after the name, each holding its own number.
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3)).join(' ');
    const files: Record<string, string> = {
      '/proc/sys/kernel/random/boot_id': 'boot-1\n',
      '/proc/42/stat': `42 (a) b (c d) ${fields}\n`,
    };
    const read = (p: string) => {
      const v = files[p];
      if (v === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return v;
    };
    expect(stampFrom(read, 42)).toBe('boot-1:22');
    expect(stampFrom(read, 43)).toBeUndefined();
    // (coverage gap) A stat line cut short before field 22 has no start time to tell.
    files['/proc/44/stat'] = `44 (a) ${fields.split(' ').slice(0, 10).join(' ')}\n`;
    expect(stampFrom(read, 44)).toBeUndefined();
    // And this process's own, as /proc has it.
    const own = readFileSync('/proc/self/stat', 'utf8');
    const start = own.slice(own.lastIndexOf(')') + 2).split(' ')[22 - 3];
    expect(stampFrom((p) => readFileSync(p, 'utf8'), process.pid)).toBe(`${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${start}`);
  });
  it('parentOf: the directory holding a path, \'/\' for one at the root, \'.\' for a relative name without one; trailing slashes ignored (coverage gap)', () => {
    expect(parentOf('/a/b/c')).toBe('/a/b');
    expect(parentOf('/a/b//')).toBe('/a');
    expect(parentOf('a/b')).toBe('a');
    expect(parentOf('/a')).toBe('/');
    expect(parentOf('/a/')).toBe('/');
    expect(parentOf('/')).toBe('/');
    expect(parentOf('a')).toBe('.');
    expect(parentOf('a/')).toBe('.');
  });
  it('createLock answers "held" only where the lock exists: any other failure is thrown, and leaves no temp file', async () => {
    const dir = tempDir();
    try {
      const files = await openFiles();
      const data = new TextEncoder().encode('holder');
      const release = await files.createLock(join(dir, 'lock'), data);
      expect(release, 'the first lock').toBeTypeOf('function');
      expect(await files.createLock(join(dir, 'lock'), data), 'a second one, held').toBeUndefined();
      // A name whose private temp name is too long (ENAMETOOLONG) and a missing directory (ENOENT) are no holder.
      await expect(files.createLock(join(dir, 'l'.repeat(250)), data)).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
      await expect(files.createLock(join(dir, 'gone', 'lock'), data)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await fsp.readdir(dir)).sort()).toEqual(['lock']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('append refuses what is no regular file of its own, named: a FIFO no one reads (never blocking), a symbolic link, a directory; the file behind is left as it was (coverage gap)', async () => {
    const dir = tempDir();
    try {
      const files = await openFiles();
      const data = new TextEncoder().encode('record');
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      await expect(files.append(join(dir, 'fifo'), data)).rejects.toMatchObject({ code: 'EFTYPE', message: `${join(dir, 'fifo')} is not a regular file` });
      writeFileSync(join(dir, 'target'), 'kept');
      symlinkSync(join(dir, 'target'), join(dir, 'link'));
      await expect(files.append(join(dir, 'link'), data)).rejects.toMatchObject({ code: 'ELOOP', message: `${join(dir, 'link')} is a symbolic link: the store writes no file through one` });
      expect(readFileSync(join(dir, 'target'), 'utf8')).toBe('kept');
      mkdirSync(join(dir, 'sub'));
      await expect(files.append(join(dir, 'sub'), data)).rejects.toMatchObject({ code: 'EISDIR' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

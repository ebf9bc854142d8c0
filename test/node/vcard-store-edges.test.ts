// The virtual card's key store (its "EEPROM" file, lock, capacity) and its
// vpcd client, driven in process: the store through createVirtualCard and raw
// APDUs, vpcd through a local net.Server that speaks vpcd's framing (2-byte
// big-endian length, then the body; a 1-byte body is a control byte), and
// `senv virtual-card` against that server. No pcscd. Each test pins a rule of
// docs/pcsc.md ("The virtual card") or docs/apdu-profile.md that a one-token
// change to src/virtual-card/ (keystore, vpcd, index, cli) left unnoticed.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, fstatSync, linkSync, lstatSync, readlinkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChild, runInTerminal, runModule } from './run-child.ts';
import { encodeCommand, hex } from '../../src/apdu/apdu.ts';
import { DO, INS, SENV_AID, TAG } from '../../src/apdu/profile.ts';
import { decodeTlvs, findTlv, tlvs, u16 } from '../../src/apdu/tlv.ts';
import { initSync } from '../../src/core/index.ts';
import { CoreError, InvalidInputError, StateError } from '../../src/core/errors.ts';
import { stampFrom } from '../../src/mcs/store/files.ts';
import { runVirtualCard } from '../../src/virtual-card/cli.ts';
import { SenvApplet } from '../../src/virtual-card/applet.ts';
import { EXTENDED_LIMITS, VirtualCardOs } from '../../src/virtual-card/card.ts';
import { createVirtualCard, VpcdCard, type CardHandler, type VirtualCard } from '../../src/virtual-card/index.ts';
import { KeyStore, newStamp, NVM_CAPACITY } from '../../src/virtual-card/keystore.ts';

initSync();

const enc = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (seed + i * 37) & 0xff || 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls until `cond()`; the cap (20 s) only bounds a failure: what these waits guard against never comes. */
async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'senv-vstore-'));
  const done = () => rmSync(dir, { recursive: true, force: true });
  let r: T;
  try {
    r = fn(dir);
  } catch (e) {
    done();
    throw e;
  }
  if (r instanceof Promise) return r.finally(done) as T;
  done();
  return r;
}

/** One raw APDU to the card OS: [data hex, SW hex]. */
function apdu(card: VirtualCard, cmd: Parameters<typeof encodeCommand>[0]): [string, string] {
  const r = card.os.apdu(encodeCommand(cmd));
  return [hex(r.subarray(0, r.length - 2)), hex(r.subarray(r.length - 2))];
}
function selected(store?: string): VirtualCard {
  const card = createVirtualCard({ ...(store ? { store } : {}) });
  card.os.power('cold');
  expect(apdu(card, { cla: 0, ins: 0xa4, p1: 4, p2: 0, data: SENV_AID, ne: 256 })[1]).toBe('9000');
  return card;
}
const putKey = (ref: number, alg: number, kind: number, material: Uint8Array) =>
  ({ cla: 0, ins: INS.PUT_DATA, p1: DO.KEY, p2: ref, data: tlvs([TAG.ALGORITHM, u16(alg)], [TAG.KEY_KIND, [kind]], [TAG.KEY_MATERIAL, material]) });
const keyInfo = (ref: number) => ({ cla: 0, ins: INS.GET_DATA, p1: DO.KEY, p2: ref, ne: 256 });

/** The error a card refuses `store` with. */
function refusal(store: string): Error {
  try {
    createVirtualCard({ store });
  } catch (e) {
    return e as Error;
  }
  throw new Error(`store ${store} was not refused`);
}

/** node:fs with some functions wrapped; the store's named imports see the wrappers (syncBuiltinESMExports). */
function patchFs(wrap: Record<string, (orig: (...a: any[]) => any) => (...a: any[]) => any>): () => void {
  const fs = createRequire(import.meta.url)('node:fs') as Record<string, (...a: any[]) => any>;
  const saved = Object.fromEntries(Object.keys(wrap).map((k) => [k, fs[k]!]));
  for (const [k, w] of Object.entries(wrap)) fs[k] = w(saved[k]!);
  syncBuiltinESMExports();
  return () => {
    Object.assign(fs, saved);
    syncBuiltinESMExports();
  };
}

describe('virtual card key store (its file, its lock)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a key stamp comes from the checked OS source: one that returns zeros is a CoreError, not the same stamp for every key', () => {
    expect(newStamp()).not.toEqual(newStamp());
    vi.spyOn(globalThis.crypto, 'getRandomValues').mockImplementation((a) => a);
    expect(() => newStamp()).toThrow(CoreError);
  });

  it('on Deno without write permission: a StateError naming the permission, also in a terminal (no prompt)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-vcard-deno-'));
    try {
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-card-store.ts', import.meta.url));
      const store = join(dir, 'vc', 'store.json');
      const args = ['run', `--allow-read=${fileURLToPath(new URL('../../', import.meta.url))},${dir}`, fixture, store];
      const expected = `StateError: virtual card store ${store} cannot be used (NotCapable; on Deno: --allow-read=${join(dir, 'vc')} --allow-write=${join(dir, 'vc')})`;
      expect((await runChild(deno, args, { killMs: 20_000 })).out.trim()).toBe(expected);
      const tty = await runInTerminal(deno, args, { killMs: 20_000 });
      expect(tty.out.replace(/\r/g, '').trim(), 'in a terminal').toBe(expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 45_000);

  // The default store was computed even with --store, so a card given its file still needed --allow-env and --allow-sys.
  it('on Deno, `senv virtual-card --store FILE` needs no env or sys access; the default store without them is refused naming the flag, also in a terminal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-vcard-deno-'));
    try {
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const root = fileURLToPath(new URL('../../', import.meta.url));
      const senv = [join(root, 'bin/senv.js'), 'virtual-card', '--port', '1'];
      // A directory as the store: refused once opened, so the command ends there.
      mkdirSync(join(dir, 'store'));
      const given = await runChild(deno, ['run', `--allow-read=${root},${dir}`, `--allow-write=${dir}`, '--allow-net', ...senv, '--store', join(dir, 'store')], { killMs: 20_000 });
      expect([given.code, given.err]).toEqual([1, `senv: virtual card store ${join(dir, 'store')} cannot be read (EISDIR)\n`]);
      const refusal = (flag: string) => `senv: virtual-card: the default store cannot be found (NotCapable; on Deno: ${flag}); or give --store FILE`;
      const noEnv = ['run', `--allow-read=${root}`, ...senv];
      expect(await runChild(deno, noEnv, { killMs: 20_000 })).toMatchObject({ code: 1, err: `${refusal('--allow-env=XDG_DATA_HOME')}\n` });
      const tty = await runInTerminal(deno, noEnv, { killMs: 20_000 });
      expect(tty.out.replace(/\r/g, '').trim(), 'in a terminal').toBe(refusal('--allow-env=XDG_DATA_HOME'));
      // An empty $XDG_DATA_HOME is ignored: the home directory is what it needs then.
      const noSys = await runChild(deno, ['run', `--allow-read=${root}`, '--allow-env', ...senv], { env: { XDG_DATA_HOME: '' }, killMs: 20_000 });
      expect([noSys.code, noSys.err]).toEqual([1, `${refusal('--allow-sys=homedir')}\n`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  // docs/pcsc.md: default `$XDG_DATA_HOME/senv/virtual-card-<slot>.json`; a fresh user has no senv directory.
  it('a save leaves no copy of the keys in memory: the file text it wrote is zeroized once written', () => withDir((dir) => {
    const store = new KeyStore(join(dir, 'card.json'));
    try {
      const secret = pattern(32, 5);
      store.keys.set(1, { algorithm: 25, kind: 'secret', secret, stamp: new Uint8Array(8) });
      const from = vi.spyOn(Buffer, 'from');
      let made: Buffer[];
      try {
        store.save();
      } finally {
        // Read before the restore, which clears them.
        made = from.mock.results.map((r) => r.value as Buffer);
        from.mockRestore();
      }
      expect(made.length, 'the file text went through a Buffer').toBeGreaterThan(0);
      for (const b of made) expect(b.every((x) => x === 0), `a buffer of ${b.length} bytes`).toBe(true);
      expect(JSON.parse(readFileSync(join(dir, 'card.json'), 'utf8')).keys['1'].secret, 'the file holds the key').toBe(hex(secret));
    } finally {
      store.close();
    }
  }));

  it('a store whose directories do not exist yet is created, directories private (0700), the file written at once (0600)', () => withDir((dir) => {
    const store = join(dir, 'a', 'b', 'card.json');
    const card = createVirtualCard({ store });
    try {
      expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
      expect(statSync(store).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(store, 'utf8')).serial).toMatch(/^[0-9A-Fa-f]{16}$/);
    } finally {
      void card.close();
    }
  }));

  // Node's recursive mkdir answered EEXIST for a directory whose name a file holds.
  it('a store below a regular file is refused with ENOTDIR, one level down or more', () => withDir((dir) => {
    writeFileSync(join(dir, 'file'), '');
    for (const store of [join(dir, 'file', 'card.json'), join(dir, 'file', 'a', 'card.json')]) {
      const e = refusal(store);
      expect(e, store).toBeInstanceOf(StateError);
      expect(e.message).toBe(`virtual card store ${store} cannot be used (ENOTDIR)`);
    }
    expect(readdirSync(dir)).toEqual(['file']);
  }));

  it('a store named as a directory (ending in /, . or ..) that is not there is refused, not made a file under the directory\'s name', () => withDir((dir) => {
    for (const store of [`${dir}/newdir/`, `${dir}/newdir/.`, `${dir}/newdir/..`]) {
      const e = refusal(store);
      expect(e, store).toBeInstanceOf(InvalidInputError);
      expect(e.message, store).toContain('EISDIR');
    }
    expect(readdirSync(dir)).toEqual([]);
  }));

  it('a store refused at open (damaged) gives its lock up: repaired, it opens in the same process', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    writeFileSync(store, '{"serial":');
    expect(refusal(store)).toBeInstanceOf(InvalidInputError);
    expect(existsSync(`${store}.lock`)).toBe(false);
    writeFileSync(store, JSON.stringify({ serial: '0102030405060708', keys: {}, objects: {} }));
    const card = selected(store);
    expect(apdu(card, { cla: 0, ins: INS.GET_DATA, p1: 0xdf, p2: 0x03, ne: 8 })).toEqual(['0102030405060708', '9000']);
    await card.close();
  }));

  // docs/pcsc.md: "A file that is there but cannot be read (permissions, an I/O error) is refused the same way;
  // only a missing file starts an empty store." ELOOP stands for the errors other than EISDIR (root reads 0000 files).
  it('a store path that cannot be read for another reason than EISDIR (a symlink loop) is refused and left alone', () => withDir((dir) => {
    const store = join(dir, 'card.json');
    symlinkSync('card.json', store);
    const e = refusal(store);
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toBe(`virtual card store ${store} cannot be read (ELOOP)`);
    expect(lstatSync(store).isSymbolicLink() && readlinkSync(store)).toBe('card.json'); // still the loop, not a new file
    expect(readdirSync(dir)).toEqual(['card.json']);
  }));

  // docs/pcsc.md: the store is the file its path resolves to at open.
  it('a store named through a symbolic link (to the file, or to a directory above it) is that file: a second card is refused as in use, and a write replaces the file, never the link', () => withDir(async (dir) => {
    const store = join(dir, 'real', 'card.json');
    mkdirSync(join(dir, 'real'));
    writeFileSync(store, JSON.stringify({ serial: '0102030405060708', keys: {}, objects: {} }));
    symlinkSync('real/card.json', join(dir, 'link.json'));
    symlinkSync('real', join(dir, 'linkdir'));
    const first = selected(join(dir, 'link.json'));
    for (const other of [store, join(dir, 'linkdir', 'card.json')]) {
      const e = refusal(other);
      expect(e, other).toBeInstanceOf(StateError);
      expect(e.message).toBe(`virtual card store ${store} is in use by process ${process.pid} (${store}.lock)`);
    }
    expect(apdu(first, putKey(1, 25, 1, pattern(32, 1)))[1]).toBe('9000');
    await first.close();
    expect(readlinkSync(join(dir, 'link.json')), 'still the link').toBe('real/card.json');
    expect(Object.keys(JSON.parse(readFileSync(store, 'utf8')).keys), 'the key in the file it names').toEqual(['1']);
    expect(readdirSync(dir).sort()).toEqual(['link.json', 'linkdir', 'real']);
    expect(readdirSync(join(dir, 'real'))).toEqual(['card.json']);
    // A store not there yet, below a linked directory: made in the real one, locked there.
    const fresh = selected(join(dir, 'linkdir', 'new.json'));
    expect(refusal(join(dir, 'real', 'new.json'))).toBeInstanceOf(StateError);
    await fresh.close();
    expect(lstatSync(join(dir, 'real', 'new.json')).isFile()).toBe(true);
  }));

  it('a store that is a symbolic link to nothing, or a file with a second hard link, is refused and left as it was', () => withDir((dir) => {
    const store = join(dir, 'card.json');
    symlinkSync('gone.json', store);
    const dangling = refusal(store);
    expect(dangling).toBeInstanceOf(InvalidInputError);
    expect(dangling.message).toBe(`virtual card store ${store} cannot be read (ENOENT: a symbolic link to nothing)`);
    expect(readdirSync(dir), 'no file made at the link\'s target, the link kept').toEqual(['card.json']);
    rmSync(store);
    const content = JSON.stringify({ serial: '0102030405060708', keys: {}, objects: {} });
    writeFileSync(store, content);
    linkSync(store, join(dir, 'copy.json'));
    const linked = refusal(store);
    expect(linked).toBeInstanceOf(InvalidInputError);
    expect(linked.message).toBe(`virtual card store ${store} has 2 links: a card keeps no file another name reaches (EMLINK)`);
    expect(readFileSync(store, 'utf8')).toBe(content);
    expect(statSync(store).nlink).toBe(2);
    expect(readdirSync(dir).sort(), 'no lock left').toEqual(['card.json', 'copy.json']);
  }));

  // A FIFO held the read for ever (readFileSync blocks until a writer comes and goes): run as a child, killed if it hangs.
  it('a store that is not a regular file (a FIFO) is refused before it is read', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    execFileSync('mkfifo', [store]);
    const r = await runChild(process.execPath, [fileURLToPath(new URL('../../bin/senv.js', import.meta.url)), 'virtual-card', '--port', '1', '--store', store], { killMs: 10_000 });
    expect(r.signal, 'not held by the FIFO').toBe(null);
    expect([r.code, r.err]).toEqual([1, `senv: virtual card store ${store} is not a regular file\n`]);
    expect(readdirSync(dir)).toEqual(['card.json']);
  }), 15_000);

  it('the temp file of a card process killed in a save (a whole copy of its keys), and those of one killed taking the lock, are removed by the next card to open the store', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    await createVirtualCard({ store }).close();
    writeFileSync(`${store}.4242.tmp`, '{"keys":"of a card killed mid-save"}', { mode: 0o600 });
    writeFileSync(join(dir, 'other.json.4242.tmp'), 'not this store\'s');
    // A directory of such a name is no temp file: left, and no reason to refuse the store.
    mkdirSync(`${store}.4243.tmp`);
    // What a process that died taking the lock left goes; a live process's (this one's pid) may be
    // taking it this moment, and stays. 2^22 + 1 is above Linux's largest pid: no process has it.
    const dead = 4194305;
    for (const end of ['tmp', 'stale']) {
      writeFileSync(`${store}.lock.${dead}.k3x9.${end}`, JSON.stringify({ pid: dead }));
      writeFileSync(`${store}.lock.${process.pid}.q7.${end}`, JSON.stringify({ pid: process.pid }));
    }
    const card = createVirtualCard({ store });
    expect(readdirSync(dir).sort()).toEqual(['card.json', 'card.json.4243.tmp', 'card.json.lock', `card.json.lock.${process.pid}.q7.stale`, `card.json.lock.${process.pid}.q7.tmp`, 'other.json.4242.tmp']);
    await card.close();
  }));

  it('a lock path that cannot be read (a directory there) is refused by name, not a raw EISDIR, and left alone', () => withDir((dir) => {
    const store = join(dir, 'card.json');
    mkdirSync(`${store}.lock`);
    const e = refusal(store);
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toBe(`virtual card store lock ${store}.lock cannot be read (EISDIR)`);
    expect(statSync(`${store}.lock`).isDirectory()).toBe(true);
    expect(readdirSync(dir).sort(), 'no temp file of the lock left').toEqual(['card.json.lock']);
  }));

  // index.ts: close() "gives its store file up (another card process may then open it)"; keystore.ts: "this store writes no more".
  it('a closed card writes its file no more: a command to it cannot undo the next owner\'s keys', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const first = selected(store);
    expect(apdu(first, putKey(1, 25, 1, pattern(32, 1)))[1]).toBe('9000');
    await first.close();
    const second = selected(store);
    expect(apdu(second, putKey(2, 25, 1, pattern(32, 2)))[1]).toBe('9000');
    const before = readFileSync(store, 'utf8');
    // The closed card refuses the write as its internal error instead of rewriting the file from its copy.
    expect(apdu(first, putKey(3, 25, 1, pattern(32, 3)))[1]).toBe('6F00');
    expect(readFileSync(store, 'utf8')).toBe(before);
    expect(Object.keys(JSON.parse(before).keys).sort()).toEqual(['1', '2']);
    await second.close();
  }));

  // docs/pcsc.md: "each write is flushed (temp file, fsync, rename, directory fsync) before the card answers".
  it('every write goes to a temp file, fsynced and closed, renamed over the store, then the directory is fsynced', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const card = selected(store);
    const log: string[] = [];
    const fds = new Map<number, string>();
    const name = (p: unknown) => (String(p) === store ? 'store' : String(p) === dir ? 'dir' : String(p).startsWith(`${store}.`) && String(p).endsWith('.tmp') ? 'tmp' : String(p));
    const restore = patchFs({
      openSync: (o) => (p, ...a) => { const fd = o(p, ...a); fds.set(fd, name(p)); log.push(`open ${name(p)}`); return fd; },
      writeSync: (o) => (fd, ...a) => { log.push(`write ${fds.get(fd)}`); return o(fd, ...a); },
      writeFileSync: (o) => (p, ...a) => { log.push(`writeFile ${name(p)}`); return o(p, ...a); },
      fsyncSync: (o) => (fd) => { log.push(`fsync ${fds.get(fd)}`); return o(fd); },
      closeSync: (o) => (fd) => { log.push(`close ${fds.get(fd)}`); return o(fd); },
      renameSync: (o) => (a, b) => { log.push(`rename ${name(a)} ${name(b)}`); return o(a, b); },
    });
    let sw: string;
    try {
      sw = apdu(card, putKey(1, 25, 1, pattern(32, 1)))[1];
    } finally {
      restore();
    }
    expect(sw).toBe('9000');
    expect(log).toEqual(['open tmp', 'write tmp', 'fsync tmp', 'close tmp', 'rename tmp store', 'open dir', 'fsync dir', 'close dir']);
    expect(readdirSync(dir).sort()).toEqual(['card.json', 'card.json.lock']);
    await card.close();
  }));

  it('the temp file is made afresh: one left at its name with another mode, or a symlink planted there, never becomes the store or is followed', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const card = selected(store);
    const tmp = `${store}.${process.pid}.tmp`;
    writeFileSync(tmp, 'left over', { mode: 0o644 });
    expect(apdu(card, putKey(1, 25, 1, pattern(32, 1)))[1]).toBe('9000');
    expect(statSync(store).mode & 0o777, 'the store stays private').toBe(0o600);
    const target = join(dir, 'elsewhere');
    symlinkSync(target, tmp);
    expect(apdu(card, putKey(2, 25, 1, pattern(32, 2)))[1]).toBe('9000');
    expect(existsSync(target), 'the symlink was not followed').toBe(false);
    expect(lstatSync(store).isSymbolicLink()).toBe(false);
    expect(statSync(store).mode & 0o777).toBe(0o600);
    await card.close();
  }));

  // A change the card answered 6F00 to is undone: were it kept in memory, the host would see the key in DF04,
  // a retry would get 6A89, and the next restart would lose it (or bring a deleted key back).
  it('a write the store could not make (6F00) is undone in memory too, for additions and deletions, and leaves no temp file', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const card = selected(store);
    const full = () => () => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    };
    const object = { cla: 0, ins: INS.PUT_DATA, p1: DO.OBJECT, p2: 4 };
    try {
      expect(apdu(card, putKey(6, 25, 1, pattern(32, 6)))[1]).toBe('9000');
      expect(apdu(card, { ...object, data: pattern(40, 1) })[1]).toBe('9000');
      const restore = patchFs({ writeSync: full });
      const answers: string[] = [];
      try {
        answers.push(apdu(card, putKey(5, 25, 1, pattern(32, 5)))[1]);
        answers.push(apdu(card, { ...object, data: pattern(40, 2) })[1]);
        answers.push(apdu(card, { cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_KEY, p2: 6 })[1]);
        answers.push(apdu(card, { cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_OBJECT, p2: 4 })[1]);
      } finally {
        restore();
      }
      expect(answers).toEqual(['6F00', '6F00', '6F00', '6F00']);
      expect(apdu(card, keyInfo(5))[1], 'the key the card could not store').toBe('6A88');
      expect(apdu(card, keyInfo(6))[1], 'the key the card could not delete').toBe('9000');
      expect(hex(enc(apdu(card, { cla: 0, ins: INS.GET_DATA, p1: DO.OBJECT, p2: 4, ne: 40 })[0])), 'the object as it was').toBe(hex(pattern(40, 1)));
      expect(readdirSync(dir).sort()).toEqual(['card.json', 'card.json.lock']);
      // A failed flush of the rename comes after the file took the change: the card keeps it as the file does.
      const unsynced = patchFs({ fsyncSync: (o) => (fd: number) => (fstatSync(fd).ino === statSync(dir).ino ? full()() : o(fd)) });
      let sw: string;
      try {
        sw = apdu(card, putKey(7, 25, 1, pattern(32, 7)))[1];
      } finally {
        unsynced();
      }
      expect(sw).toBe('6F00');
      expect(apdu(card, keyInfo(7))[1], 'a key the file holds').toBe('9000');
    } finally {
      await card.close();
    }
    const again = selected(store);
    expect([5, 6, 7].map((ref) => apdu(again, keyInfo(ref))[1]), 'after a restart: as the card answered from memory').toEqual(['6A88', '9000', '9000']);
    await again.close();
  }));

  // A disk that fills up takes part of a write and refuses the next: the part must not replace the store.
  it('a short write never replaces the store with a truncated file', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const card = selected(store);
    expect(apdu(card, putKey(1, 25, 1, pattern(32, 1)))[1]).toBe('9000');
    // the disk takes half of what each write asks for
    const restore = patchFs({
      writeSync: (o) => (fd, data, ...a) => (typeof data === 'string'
        ? o(fd, data.slice(0, Math.ceil(data.length / 2)))
        : o(fd, data, a[0] ?? 0, Math.ceil((a[1] ?? data.length - (a[0] ?? 0)) / 2))),
    });
    try {
      apdu(card, putKey(2, 25, 1, pattern(32, 2)));
    } finally {
      restore();
    }
    await card.close();
    const again = selected(store);
    expect(apdu(again, keyInfo(1))[1]).toBe('9000');
    expect(apdu(again, keyInfo(2))[1], 'written whole, in several writes').toBe('9000');
    await again.close();
  }));

  it('a key store keeps data objects and public-only ECDSA keys (their points, counted in DF02) across a restart', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const first = selected(store);
    const point = enc('04' + '6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296' + '4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5');
    const available = () => new DataView(enc(apdu(first, { cla: 0, ins: INS.GET_DATA, p1: 0xdf, p2: 0x02, ne: 8 })[0]).buffer).getUint32(4);
    const empty = available();
    expect(apdu(first, putKey(9, 33, 2, point))[1]).toBe('9000');
    // a public key takes its point (65 bytes) and the 8 bytes of any key record
    expect(empty - available()).toBe(8 + 65);
    expect(apdu(first, { cla: 0, ins: INS.PUT_DATA, p1: DO.OBJECT, p2: 4, data: pattern(300, 7) })[1]).toBe('9000');
    const free = apdu(first, { cla: 0, ins: INS.GET_DATA, p1: 0xdf, p2: 0x02, ne: 8 });
    await first.close();
    const again = selected(store);
    const info = decodeTlvs(enc(apdu(again, keyInfo(9))[0]));
    expect(hex(findTlv(info, TAG.EC_POINT)!)).toBe(hex(point));
    expect(apdu(again, { cla: 0, ins: INS.GET_DATA, p1: DO.OBJECT, p2: 4, ne: 65536 })).toEqual([hex(pattern(300, 7)), '9000']);
    expect(apdu(again, { cla: 0, ins: INS.GET_DATA, p1: 0xdf, p2: 0x02, ne: 8 })).toEqual(free);
    // deletions are written through as well: gone after the next restart too
    expect(apdu(again, { cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_KEY, p2: 9 })[1]).toBe('9000');
    expect(apdu(again, { cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_OBJECT, p2: 4 })[1]).toBe('9000');
    await again.close();
    const third = selected(store);
    expect(apdu(third, keyInfo(9))[1]).toBe('6A88');
    expect(apdu(third, { cla: 0, ins: INS.GET_DATA, p1: DO.OBJECT, p2: 4, ne: 256 })[1]).toBe('6A88');
    expect(JSON.parse(readFileSync(store, 'utf8'))).toMatchObject({ keys: {}, objects: {} });
    await third.close();
  }));

  it('each key keeps its stamp across restarts; a store of an earlier version (no stamps) gets one per key at open, written at once', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const first = selected(store);
    expect(apdu(first, putKey(9, 25, 1, pattern(32, 3)))[1]).toBe('9000');
    const stampOf = (card: ReturnType<typeof selected>) => hex(findTlv(decodeTlvs(enc(apdu(card, keyInfo(9))[0])), TAG.KEY_STAMP)!);
    const stamp = stampOf(first);
    expect(stamp).toMatch(/^[0-9A-F]{16}$/);
    await first.close();
    const again = selected(store);
    expect(stampOf(again), 'kept across a restart').toBe(stamp);
    // Deleted and written again: another key, another stamp.
    expect(apdu(again, { cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_KEY, p2: 9 })[1]).toBe('9000');
    expect(apdu(again, putKey(9, 25, 1, pattern(32, 3)))[1]).toBe('9000');
    expect(stampOf(again)).not.toBe(stamp);
    await again.close();
    const f = JSON.parse(readFileSync(store, 'utf8'));
    delete f.keys['9'].stamp;
    writeFileSync(store, JSON.stringify(f));
    const old = selected(store);
    const given = stampOf(old);
    expect(JSON.parse(readFileSync(store, 'utf8')).keys['9'].stamp, 'written at open').toBe(given);
    await old.close();
    const later = selected(store);
    expect(stampOf(later), 'the same from then on').toBe(given);
    await later.close();
  }));

  // docs/apdu-profile.md PUT DATA 03/04: deleted keys are zeroized; key material the card refuses to store is
  // dropped the same way, never left for the garbage collector.
  it('a generated secret the card refuses to store (6A89 occupied slot, 6A84 memory full) is zeroized', () => {
    const drawn: Uint8Array[] = [];
    const store = new KeyStore();
    const applet = new SenvApplet({ store, random: (n) => { const b = pattern(n, drawn.length + 1); drawn.push(b); return b; }, limits: EXTENDED_LIMITS });
    const os = new VirtualCardOs([applet], { limits: EXTENDED_LIMITS });
    os.power('cold');
    const send = (cmd: Parameters<typeof encodeCommand>[0]) => { const r = os.apdu(encodeCommand(cmd)); return hex(r.subarray(r.length - 2)); };
    const generate = (ref: number) => ({ cla: 0, ins: INS.GENERATE_KEY_PAIR, p1: 0x80, p2: 0, ne: 256, data: tlvs([TAG.ALGORITHM, u16(25)], [TAG.KEY_REF, [ref]]) });
    expect(send({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: SENV_AID, ne: 256 })).toBe('9000');
    expect(send(generate(1))).toBe('9000');
    expect(drawn[0]!.every((b) => b === 0)).toBe(false); // the stored key is its own bytes
    expect(send(generate(1))).toBe('6A89');
    expect(hex(drawn[1]!), 'refused for an occupied slot').toBe(hex(new Uint8Array(32)));
    store.objects.set(200, new Uint8Array(NVM_CAPACITY - store.used() - 4 - 39)); // 39 bytes left: 8 + 32 do not fit
    expect(send(generate(2))).toBe('6A84');
    expect(hex(drawn[2]!), 'refused for memory').toBe(hex(new Uint8Array(32)));
    expect(drawn[0]!.every((b) => b === 0)).toBe(false);
  });

  it('a damaged store is refused by field: a public key without its point, an algorithm past 16 bits, no serial, a secret not a string or not hex, another kind', () => withDir((dir) => {
    const cases: [object, RegExp][] = [
      [{ serial: '0102030405060708', keys: { 1: { algorithm: 33, kind: 'public' } }, objects: {} }, /key 1 does not hold what a public key holds/],
      [{ serial: '0102030405060708', keys: { 1: { algorithm: 0x10000, kind: 'secret', secret: '00' } }, objects: {} }, /key 1 algorithm is not a TS-0016 algorithm number/],
      [{ keys: {}, objects: {} }, /serial is not a string/],
      [{ serial: '0102030405060708', keys: { 1: { algorithm: 33, kind: 'private', publicKey: '04' } }, objects: {} }, /key 1 kind is not 'secret' or 'public'/],
      [{ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret: 12345 } }, objects: {} }, /key 1 secret is not a string/],
      // Hex is read as a key's text: the refusal gives the length, never a digit or where it stands.
      [{ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret: '00112233445566778899aabbccddeeG' } }, objects: {} }, /^virtual card store .*: key 1 secret is not hex text of whole bytes \(31 characters\)$/],
      [{ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret: '00112233445566778899aabbccddeeZf' } }, objects: {} }, /^virtual card store .*: key 1 secret is not hex text of whole bytes \(32 characters\)$/],
      [{ serial: '0102030405060708', keys: {}, objects: { 2: '0a 0b' } }, /object 2 is not hex text of whole bytes \(5 characters\)$/],
    ];
    for (const [i, [content, message]] of cases.entries()) {
      const store = join(dir, `card-${i}.json`);
      writeFileSync(store, JSON.stringify(content));
      const e = refusal(store);
      expect(e, JSON.stringify(content)).toBeInstanceOf(InvalidInputError);
      expect(e.message).toMatch(message);
      expect(readFileSync(store, 'utf8')).toBe(JSON.stringify(content));
    }
  }));

  it('the lock: pid 0 holds nothing; a holder that cannot be signalled (EPERM), cannot be checked at all (Deno without --allow-run) or wrote no start time is alive', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const lock = `${store}.lock`;
    writeFileSync(lock, JSON.stringify({ pid: 0 }));
    await createVirtualCard({ store }).close();
    expect(existsSync(lock)).toBe(false);
    // A live process of another user: kill(pid, 0) answers EPERM.
    const other = 2 ** 22 + 17;
    const kill = process.kill.bind(process);
    vi.spyOn(process, 'kill').mockImplementation((pid: number, sig?: string | number) => {
      if (pid === other) throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
      return kill(pid, sig);
    });
    writeFileSync(lock, JSON.stringify({ pid: other }));
    expect(refusal(store)).toBeInstanceOf(StateError);
    // A check this process may not make (Deno without --allow-run: NotCapable, no code) is no stale lock.
    const unchecked = 2 ** 22 + 19;
    vi.mocked(process.kill).mockImplementation((pid: number, sig?: string | number) => {
      if (pid === unchecked) throw Object.assign(new Error('Requires run access'), { name: 'NotCapable' });
      return kill(pid, sig);
    });
    writeFileSync(lock, JSON.stringify({ pid: unchecked }));
    const denied = refusal(store);
    expect(denied).toBeInstanceOf(StateError);
    expect(denied.message).toBe(`virtual card store ${store} is locked by process ${unchecked}, which this process cannot check (NotCapable; on Deno: --allow-run)`);
    expect(readFileSync(lock, 'utf8'), 'the lock left as it was').toBe(JSON.stringify({ pid: unchecked }));
    // A lock written without a start time (not Linux, or an older senv) by a process that runs.
    writeFileSync(lock, JSON.stringify({ pid: process.ppid }));
    const e = refusal(store);
    expect(e).toBeInstanceOf(StateError);
    expect(e.message).toBe(`virtual card store ${store} is in use by process ${process.ppid} (${lock})`);
  }));

  // At exit nobody is left to catch the failure: Node printed the exception's stack from the exit hook.
  it('a lock the exit hook cannot give up (a directory in its place) is one line on stderr and exit status 1', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const index = new URL('../../dist/src/virtual-card/index.js', import.meta.url).href;
    const r = await runModule(`
      import { mkdirSync, rmSync } from 'node:fs';
      const { createVirtualCard } = await import(${JSON.stringify(index)});
      createVirtualCard({ store: ${JSON.stringify(store)} });
      rmSync(${JSON.stringify(`${store}.lock`)});
      mkdirSync(${JSON.stringify(`${store}.lock`)});
    `, { killMs: 10_000 });
    expect([r.code, r.err]).toEqual([1, `senv: virtual card store lock ${store}.lock cannot be read (EISDIR)\n`]);
  }));

  it('the lock goes with close() or at exit, once; a lock that is no longer this card\'s stays', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const lock = `${store}.lock`;
    const exits = process.listeners('exit');
    const card = createVirtualCard({ store });
    const added = process.listeners('exit').filter((l) => !exits.includes(l));
    expect(added).toHaveLength(1);
    // The exit hook releases the lock (a card never closed)...
    (added[0] as () => void)();
    expect(existsSync(lock)).toBe(false);
    expect(process.listeners('exit')).toEqual(exits);
    // ...and close() afterwards leaves a lock some other card took meanwhile.
    const other = JSON.stringify({ pid: process.ppid, stamp: stampFrom((p) => readFileSync(p, 'utf8'), process.ppid) });
    writeFileSync(lock, other);
    await card.close();
    expect(readFileSync(lock, 'utf8')).toBe(other);
    rmSync(lock);
    // Open and close leave no listener behind.
    for (let i = 0; i < 3; i++) await createVirtualCard({ store }).close();
    expect(process.listeners('exit')).toEqual(exits);
  }));
});

/** A stand-in for vpcd: a TCP server that frames messages as vpcd does. */
class FakeVpcd {
  readonly server: Server;
  readonly sockets: Socket[] = [];
  private buf = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  frames: Uint8Array[] = [];
  constructor(host = '127.0.0.1') {
    this.server = createServer((s) => {
      this.sockets.push(s);
      this.buf = Buffer.alloc(0);
      s.setNoDelay(true);
      s.on('data', (c: Buffer) => {
        if (s !== this.socket) return;
        this.buf = Buffer.concat([this.buf, c]);
        while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
          const n = this.buf.readUInt16BE(0);
          this.frames.push(new Uint8Array(this.buf.subarray(2, 2 + n)));
          this.buf = this.buf.subarray(2 + n);
        }
        this.waiting?.();
      });
      s.on('error', () => undefined);
    });
    this.host = host;
  }
  readonly host: string;
  get socket(): Socket | undefined {
    return this.sockets[this.sockets.length - 1];
  }
  listen(): Promise<number> {
    return new Promise((r) => this.server.listen(0, this.host, () => r((this.server.address() as AddressInfo).port)));
  }
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  static frame(body: Uint8Array | number[]): Buffer {
    const b = Buffer.alloc(2 + body.length);
    b.writeUInt16BE(body.length, 0);
    b.set(body, 2);
    return b;
  }
  async connected(n = 1): Promise<Socket> {
    await until(`connection ${n}`, () => this.sockets.length >= n);
    return this.sockets[n - 1]!;
  }
  write(bytes: Buffer | Uint8Array): void {
    this.socket!.write(bytes);
  }
  /** Sends bytes one write at a time, waiting between them so that each arrives as a chunk of its own. */
  async trickle(bytes: Buffer): Promise<void> {
    for (const b of bytes) {
      this.socket!.write(Uint8Array.of(b));
      await sleep(1);
    }
  }
  async next(ms = 2000): Promise<Uint8Array> {
    const end = Date.now() + ms;
    while (this.frames.length === 0) {
      if (Date.now() > end) throw new Error('no answer from the card');
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 20);
      });
    }
    return this.frames.shift()!;
  }
  /** No frame arrives within `ms`. */
  async silent(ms = 100): Promise<void> {
    await sleep(ms);
    expect(this.frames.map(hex)).toEqual([]);
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const ATR = Uint8Array.of(0x3b, 0x80, 0x80, 0x01, 0x01);
/** A card handler that records power events and answers an APDU with its bytes reversed + 9000. */
function recorder(apdu?: (c: Uint8Array) => Uint8Array | Promise<Uint8Array>) {
  const events: string[] = [];
  const handler: CardHandler = {
    atr: () => ATR,
    power: (e) => void events.push(e),
    apdu: apdu ?? ((c) => Uint8Array.of(...c.slice().reverse(), 0x90, 0x00)),
  };
  return { events, handler };
}

describe('vpcd client (against a local stand-in for vpcd)', () => {
  const open: { vpcd: FakeVpcd; card: VpcdCard }[] = [];
  afterEach(async () => {
    for (const { vpcd, card } of open.splice(0)) {
      await card.remove();
      await vpcd.close();
    }
  });
  async function setup(handler: CardHandler) {
    const vpcd = new FakeVpcd();
    await vpcd.listen();
    const card = new VpcdCard(handler, { port: vpcd.port, keepAlive: false });
    open.push({ vpcd, card });
    return { vpcd, card };
  }
  async function inserted(handler: CardHandler) {
    const s = await setup(handler);
    const p = s.card.insert(2000);
    await s.vpcd.connected();
    s.vpcd.write(FakeVpcd.frame([0x04]));
    await p;
    expect(await s.vpcd.next()).toEqual(ATR);
    return s;
  }

  it('insert() waits for vpcd to speak: a silent server times it out and the card is not inserted', async () => {
    const { vpcd, card } = await setup(recorder().handler);
    await expect(card.insert(300)).rejects.toThrow(/did not poll the card within 300 ms/);
    expect(card.inserted).toBe(false);
    expect(vpcd.sockets).toHaveLength(1);
    // A second try is a new connection, which vpcd's first poll inserts.
    const p = card.insert(2000);
    await vpcd.connected(2);
    vpcd.write(FakeVpcd.frame([0x04]));
    await p;
    expect(card.inserted).toBe(true);
    expect(await vpcd.next()).toEqual(ATR);
  });

  // A card that timed out (vpcd's slot held by another card) and stayed connected would wait, deaf, in vpcd's
  // backlog, one more at each retry of `senv virtual-card`.
  it('a timed-out insert() closes its connection', async () => {
    const { vpcd, card } = await setup(recorder().handler);
    await expect(card.insert(200)).rejects.toThrow(/did not poll/);
    await until('the server to see the card go', () => vpcd.sockets[0]!.readableEnded || vpcd.sockets[0]!.destroyed);
  });

  it('frames are cut from the stream: coalesced, split byte by byte, lengths above 255; answers carry a 2-byte big-endian length', async () => {
    const { events, handler } = recorder();
    const { vpcd, card } = await inserted(handler);
    // power on, ATR, two APDUs, all in one chunk
    vpcd.write(Buffer.concat([FakeVpcd.frame([0x01]), FakeVpcd.frame([0x04]), FakeVpcd.frame([1, 2, 3, 4]), FakeVpcd.frame([5, 6, 7, 8, 9])]));
    expect(await vpcd.next()).toEqual(ATR);
    expect(await vpcd.next()).toEqual(Uint8Array.of(4, 3, 2, 1, 0x90, 0));
    expect(await vpcd.next()).toEqual(Uint8Array.of(9, 8, 7, 6, 5, 0x90, 0));
    // a 300-byte APDU (length 01 2C) and a control byte, one byte per chunk
    const long = pattern(300, 3);
    await vpcd.trickle(Buffer.concat([FakeVpcd.frame(long), FakeVpcd.frame([0x02])]));
    const answer = await vpcd.next();
    expect(hex(answer)).toBe(hex(Uint8Array.of(...long.slice().reverse(), 0x90, 0)));
    await until('the warm reset', () => events.length === 2);
    expect(events).toEqual(['cold', 'warm']);
    expect(card.counters).toEqual({ cold: 1, warm: 1, off: 0, apdus: 3 });
    // the raw bytes of an answer: 01 2E, then the body
    const raw: Buffer[] = [];
    vpcd.socket!.prependListener('data', (c: Buffer) => void raw.push(c));
    vpcd.write(FakeVpcd.frame(long));
    await vpcd.next();
    expect(hex(Buffer.concat(raw).subarray(0, 2))).toBe('012E');
    // An empty frame is whole once its header is in: answered at once, not left waiting for the next message.
    vpcd.write(FakeVpcd.frame([]));
    expect(await vpcd.next()).toEqual(Uint8Array.of(0x90, 0));
  });

  it('answers leave in request order even when the card answers the first APDU last', async () => {
    const { vpcd } = await inserted(recorder(async (c) => {
      await sleep(c[0] === 1 ? 60 : 0);
      return Uint8Array.of(c[0]!, 0x90, 0);
    }).handler);
    vpcd.write(Buffer.concat([FakeVpcd.frame([1, 0, 0, 0]), FakeVpcd.frame([2, 0, 0, 0]), FakeVpcd.frame([0x04])]));
    expect(await vpcd.next()).toEqual(Uint8Array.of(1, 0x90, 0));
    expect(await vpcd.next()).toEqual(Uint8Array.of(2, 0x90, 0));
    expect(await vpcd.next()).toEqual(ATR);
  });

  it('control bytes: off counts only when powered; unknown ones are ignored, never answered as APDUs; a failing card answers 6F00', async () => {
    let fail = true;
    const { events, handler } = recorder((c) => {
      if (fail) throw new Error('emulator fault');
      return Uint8Array.of(c.length, 0x90, 0);
    });
    const { vpcd, card } = await inserted(handler);
    vpcd.write(Buffer.concat([FakeVpcd.frame([0x00]), FakeVpcd.frame([0x03]), FakeVpcd.frame([0x01]), FakeVpcd.frame([0x00])]));
    await until('power events', () => events.length === 3);
    await vpcd.silent(50);
    expect(events).toEqual(['off', 'cold', 'off']);
    expect(card.counters).toEqual({ cold: 1, warm: 0, off: 1, apdus: 0 });
    vpcd.write(FakeVpcd.frame([0, 0xa4, 4, 0]));
    expect(await vpcd.next()).toEqual(Uint8Array.of(0x6f, 0x00));
    fail = false;
    vpcd.write(FakeVpcd.frame([0, 0xa4, 4, 0, 0]));
    expect(await vpcd.next()).toEqual(Uint8Array.of(5, 0x90, 0));
    expect(card.counters.apdus).toBe(2);
  });

  it('a response longer than a vpcd frame is 6F00, the longest one (FFFF bytes) goes whole; a card whose power() throws is one that failed: vpcd sees it removed, the process goes on', async () => {
    const { handler } = recorder((c) => new Uint8Array(c[0] === 1 ? 0xffff : 0x10000).fill(0x5a));
    const { vpcd } = await inserted(handler);
    vpcd.write(FakeVpcd.frame([0, 0xa4, 4, 0]));
    expect(await vpcd.next()).toEqual(Uint8Array.of(0x6f, 0x00));
    vpcd.write(FakeVpcd.frame([1, 0xa4, 4, 0]));
    expect(await vpcd.next()).toEqual(new Uint8Array(0xffff).fill(0x5a));
    handler.power = () => {
      throw new Error('power fault');
    };
    vpcd.write(FakeVpcd.frame([0x01]));
    await until('the card to be removed', () => vpcd.sockets[0]!.destroyed || vpcd.sockets[0]!.readableEnded);
  });

  it('vpcd closing the connection removes a powered card (power off, once) and leaves nothing of a partial frame for the next insert', async () => {
    const { events, handler } = recorder();
    const { vpcd, card } = await inserted(handler);
    vpcd.write(FakeVpcd.frame([0x01]));
    await until('power on', () => events.length === 1);
    // half of a frame, then vpcd goes
    vpcd.write(Uint8Array.of(0x00, 0x10, 0xaa, 0xbb));
    await sleep(20);
    vpcd.socket!.destroy();
    await until('the card to see vpcd go', () => !card.inserted);
    expect(events).toEqual(['cold', 'off']);
    // inserted again: the new connection's ATR poll is answered as such
    const p = card.insert(2000);
    await vpcd.connected(2);
    vpcd.write(FakeVpcd.frame([0x04]));
    await p;
    expect(await vpcd.next()).toEqual(ATR);
    // and an off from vpcd, then the end of the connection, powers it off once
    vpcd.write(Buffer.concat([FakeVpcd.frame([0x01]), FakeVpcd.frame([0x00])]));
    await until('power events', () => events.length === 4);
    await card.remove();
    expect(events).toEqual(['cold', 'off', 'cold', 'off']);
  });

  // A benchmark that tears the stack down at exit would otherwise wait for good on a card vpcd keeps polling.
  it('keepAlive: false lets the process end while the card is inserted; by default the card keeps it running', async () => {
    const vpcd = new FakeVpcd();
    await vpcd.listen();
    const index = new URL('../../dist/src/virtual-card/vpcd.js', import.meta.url).href;
    try {
      const runs = [false, undefined].map(async (keepAlive, i) => {
        const child = runModule(`
          const { VpcdCard } = await import(${JSON.stringify(index)});
          const card = new VpcdCard({ atr: () => Uint8Array.of(0x3b, 0), power: () => undefined, apdu: () => Uint8Array.of(0x90, 0) },
            { port: ${vpcd.port}, keepAlive: ${String(keepAlive)} });
          await card.insert(5000);
          console.log('inserted', card.inserted);
        `, { killMs: 3000 });
        (await vpcd.connected(i + 1)).write(FakeVpcd.frame([0x04]));
        return child;
      });
      const [unref, kept] = [await runs[0]!, await runs[1]!];
      expect([unref.code, unref.signal, unref.out]).toEqual([0, null, 'inserted true\n']);
      expect([kept.signal, kept.out]).toEqual(['SIGKILL', 'inserted true\n']);
    } finally {
      await vpcd.close();
    }
  });

  it('insert() while inserted keeps the one connection; remove() powers the card off', async () => {
    const { events, handler } = recorder();
    const { vpcd, card } = await inserted(handler);
    await card.insert(500);
    await sleep(50);
    expect(vpcd.sockets).toHaveLength(1);
    vpcd.write(FakeVpcd.frame([0x01]));
    await until('power on', () => events.length === 1);
    await card.remove();
    expect(card.inserted).toBe(false);
    expect(events).toEqual(['cold', 'off']);
  });
});

describe('createVirtualCard and `senv virtual-card`', () => {
  afterEach(() => vi.restoreAllMocks());

  it('createVirtualCard: extended length by default, port 35963 + slot, kept alive, 256 KiB free, a random serial, the log option used', async () => {
    const lines: string[] = [];
    const a = createVirtualCard({ slot: 1, log: (l) => void lines.push(l) });
    const b = createVirtualCard();
    a.os.power('cold');
    b.os.power('cold');
    expect(lines).toContain('power cold');
    const fci = (c: VirtualCard) => decodeTlvs(findTlv(decodeTlvs(enc(apdu(c, { cla: 0, ins: 0xa4, p1: 4, p2: 0, data: SENV_AID, ne: 256 })[0])), 0x6f)!);
    const prop = findTlv(fci(a), 0xa5)!;
    expect(hex(findTlv(decodeTlvs(prop), 0x81)!)).toBe('FF00');
    expect(a.vpcd.address).toBe('127.0.0.1:35964');
    expect(b.vpcd.address).toBe('127.0.0.1:35963');
    expect(a.vpcd.opts.keepAlive).toBe(true);
    const serial = (c: VirtualCard) => hex(findTlv(decodeTlvs(findTlv(fci(c), 0xa5)!), 0x83)!);
    expect(serial(a)).not.toBe('0000000000000000');
    expect(serial(a)).not.toBe(serial(b));
    // an empty card: 256 KiB of non-volatile memory, all of it available (DF02)
    expect(apdu(b, { cla: 0, ins: INS.GET_DATA, p1: 0xdf, p2: 0x02, ne: 8 })).toEqual(['0004000000040000', '9000']);
    await a.close();
    await b.close();
  });

  it('createVirtualCard refuses options of the wrong kind, and names it does not know, before a store is opened', () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-vc-opts-'));
    try {
      const store = join(dir, 'card.json');
      const bad: [Record<string, unknown>, RegExp][] = [
        [{ store: '' }, /^createVirtualCard: store must be a file path, got a string of 0 characters$/],
        [{ slot: -1 }, /^createVirtualCard: slot must be a non-negative integer, got -1$/],
        [{ port: 1.5 }, /^createVirtualCard: port must be a non-negative integer, got 1.5$/],
        [{ host: 1 }, /^createVirtualCard: host must be a string, got 1$/],
        [{ keepAlive: 'yes' }, /^createVirtualCard: keepAlive must be a boolean, got a string of 3 characters$/],
        // A misspelt store would give a card whose keys vanish at exit.
        [{ stor: store }, /^unknown option 'stor' in createVirtualCard options \(known: slot, host, port, store, extended, log, keepAlive\)$/],
      ];
      for (const [opts, msg] of bad) expect(() => createVirtualCard({ store, ...opts } as never), JSON.stringify(opts)).toThrow(msg);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Runs `senv virtual-card argv` until `stop` is sent; what it printed, its exit code. */
  async function cli(argv: string[], during: (out: () => string) => Promise<void>, stop: 'SIGINT' | 'SIGTERM' = 'SIGINT') {
    let out = '';
    vi.spyOn(console, 'log').mockImplementation((s: unknown) => void (out += `${String(s)}\n`));
    vi.spyOn(console, 'error').mockImplementation((s: unknown) => void (out += `${String(s)}\n`));
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const before = Object.fromEntries(signals.map((sig) => [sig, process.listeners(sig)]));
    const running = runVirtualCard(argv);
    try {
      await during(() => out);
    } finally {
      process.emit(stop as 'SIGINT');
    }
    // A command that ignores the signal never ends: 20 s only bound that failure on a loaded machine.
    const code = await Promise.race([running.catch((e: Error) => e), sleep(20_000).then(() => 'still running')]);
    if (code === 'still running') {
      process.emit('SIGINT');
      process.emit('SIGTERM');
      await Promise.race([running, sleep(2000)]);
    }
    // the run's listeners for the other signals stay registered (once): the next run must not see them
    for (const sig of signals) {
      for (const l of process.listeners(sig)) if (!before[sig]!.includes(l)) process.off(sig, l);
    }
    return { code, out };
  }

  // The card's close() at SIGINT rejected unhandled (Node printed its stack) and the command exited 0.
  it('a store the card cannot give up when stopped (its lock unreadable) is the command\'s failure, naming the lock', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const r = await cli(['--port', '1', '--store', store], async () => {
      await until('the lock', () => existsSync(`${store}.lock`));
      rmSync(`${store}.lock`);
      mkdirSync(`${store}.lock`);
    });
    expect(r.code).toBeInstanceOf(InvalidInputError);
    expect((r.code as Error).message).toBe(`virtual card store lock ${store}.lock cannot be read (EISDIR)`);
  }));

  // The terminal the card runs in closing (SIGHUP) killed it, its lock left and the card never removed from vpcd.
  it('SIGHUP stops `senv virtual-card` as SIGINT and SIGTERM do: exit 0, the card removed from vpcd, the store given up', () => withDir(async (dir) => {
    const store = join(dir, 'card.json');
    const vpcd = new FakeVpcd();
    await vpcd.listen();
    const child = spawn(process.execPath, [fileURLToPath(new URL('../../bin/senv.js', import.meta.url)), 'virtual-card', '--port', String(vpcd.port), '--store', store], { stdio: 'ignore' });
    const exited = new Promise<[number | null, string | null]>((r) => child.on('exit', (code, signal) => r([code, signal])));
    try {
      const socket = await vpcd.connected(1);
      vpcd.write(FakeVpcd.frame([0x04]));
      await vpcd.next();
      child.kill('SIGHUP');
      expect(await Promise.race([exited, sleep(20_000).then(() => 'still running')])).toEqual([0, null]);
      await until('vpcd to see the card go', () => socket.destroyed || socket.readableEnded);
      expect(readdirSync(dir)).toEqual(['card.json']);
    } finally {
      child.kill('SIGKILL');
      await vpcd.close();
    }
  }), 15_000);

  it('serves the card in a vpcd slot: default store under $XDG_DATA_HOME/senv, --no-extended, --host, re-insert after vpcd drops it, SIGTERM/SIGINT stop it', () => withDir(async (dir) => {
    const env = { XDG_DATA_HOME: process.env.XDG_DATA_HOME, HOME: process.env.HOME };
    process.env.XDG_DATA_HOME = join(dir, 'data');
    process.env.HOME = join(dir, 'home'); // where a card that ignored XDG_DATA_HOME would write
    const vpcd = new FakeVpcd('127.0.0.2');
    await vpcd.listen();
    try {
      const select = FakeVpcd.frame(encodeCommand({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: SENV_AID, ne: 256 }));
      const limit = async () => {
        vpcd.write(select);
        const r = await vpcd.next();
        expect(hex(r.subarray(r.length - 2))).toBe('9000');
        return hex(findTlv(decodeTlvs(findTlv(decodeTlvs(findTlv(decodeTlvs(r.subarray(0, r.length - 2)), 0x6f)!), 0xa5)!), 0x81)!);
      };
      const store = join(dir, 'data', 'senv', 'virtual-card-3.json');
      const first = await cli(['--slot', '3', '--host', '127.0.0.2', '--port', String(vpcd.port)], async (out) => {
        await vpcd.connected(1);
        vpcd.write(Buffer.concat([FakeVpcd.frame([0x04]), FakeVpcd.frame([0x01])]));
        expect(await vpcd.next()).toEqual(enc('3b84800173656e760b'));
        expect(await limit()).toBe('FF00');
        expect(out()).toContain(`key store ${store};`);
        expect(existsSync(store)).toBe(true);
        // vpcd drops the card: it comes back on a new connection
        vpcd.socket!.destroy();
        await vpcd.connected(2);
        vpcd.write(FakeVpcd.frame([0x01]));
        expect(await limit()).toBe('FF00');
      }, 'SIGTERM');
      expect(first.code).toBe(0);
      await until('the lock to go', () => !existsSync(`${store}.lock`));
      // --no-extended, --slot 0 given, and a --port that makes any slot number usable
      for (const argv of [['--no-extended', '--slot', '0'], ['--no-extended', '--slot', '40000']]) {
        const n = vpcd.sockets.length;
        const r = await cli([...argv, '--host', '127.0.0.2', '--port', String(vpcd.port), '--store', join(dir, 'x.json')], async () => {
          await vpcd.connected(n + 1);
          vpcd.write(Buffer.concat([FakeVpcd.frame([0x04]), FakeVpcd.frame([0x01])]));
          await vpcd.next();
          expect(await limit()).toBe('00FF');
        });
        expect(r.code, argv.join(' ')).toBe(0);
      }
      // The bounds of --slot and --port, and the per-slot default store, are cli-bench-edges.test.ts's.
    } finally {
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await vpcd.close();
    }
  }));
});

describe('createVirtualCard and McsClient refuse malformed arguments with typed errors', () => {
  it('options of the wrong type are an InvalidInputError naming the option, before any store is opened', () => {
    for (const [what, opts] of [
      ['an array', []], ['store 5', { store: 5 }], ['slot 1n', { slot: 1n }], ['slot -1', { slot: -1 }], ['port 1.5', { port: 1.5 }],
      ['host 7', { host: 7 }], ['extended "no"', { extended: 'no' }], ['log 3', { log: 3 }],
    ] as const) {
      expect(() => createVirtualCard(opts as never), what).toThrow(InvalidInputError);
    }
  });
});

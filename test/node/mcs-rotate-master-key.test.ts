// Master key rotation of the data directory (docs/mcs.md "Rotating the master
// key"): after engine.rotateMasterKey the directory opens with the new key only,
// holding everything it held (keys, secret values, messages in progress, several
// SEs), and no file holds anything sealed under the old key. A crash before any
// step of the rotation (a copy of the directory taken there) and a write that
// fails at any step leave a directory that opens with exactly one of the two keys,
// with every acknowledged write; a SIGKILL at random moments of rotations too, and
// before each write of one by Deno or Node, the other runtime opening what it left.
// On Deno with narrowed permissions, and a directory moved between the runtimes.
import { describe, expect, it } from 'vitest';
import nodeCrypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidInputError, LengthError, MasterKeyRotationError, McsEngine, SoftwareBackend, StateError, type Persistence, type RollbackAnchor } from '../../src/index.ts';
import { openFiles, type Files } from '../../src/mcs/store/files.ts';
import { open } from '../../src/mcs/store/sealing.ts';
import { Session, b64, body, ok, unb64 } from '../portable/mcs-kit.ts';
import { holds } from '../portable/harness.ts';
import { RealUint8Array, spyUint8Arrays } from './uint8array-spy.ts';
import { onLines, runChild } from './run-child.ts';
import { ROTATOR, runSteps, spawnIn, type Runtime } from './mcs-runtimes.ts';

const OLD = new Uint8Array(32).fill(7);
const NEW = new Uint8Array(32).fill(9);
const tempDir = () => mkdtempSync(join(tmpdir(), 'senv-mcs-rotate-'));
const WRONG_KEY = /master key does not open the data directory/;

const GCM_KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0x10 + i);
const AAD = Uint8Array.of(0xfe, 0xed, 0xfa, 0xce);
const te = new TextEncoder();

/** An anchor in memory (a TPM NV index, a card's data object); `failing` makes the next writes throw. */
class MemoryAnchor implements RollbackAnchor {
  token: Uint8Array | undefined;
  failing = 0;
  trustOnFirstUse?: boolean | undefined;
  onWrite: (() => void) | undefined;

  read() {
    return this.token?.slice();
  }

  write(head: Uint8Array) {
    this.onWrite?.();
    if (this.failing > 0) {
      this.failing--;
      throw Object.assign(new Error('EIO: anchor i/o error'), { code: 'EIO' });
    }
    this.token = head.slice();
  }
}

const WRITES = new Set(['append', 'writeDurable', 'rename', 'truncate', 'remove', 'syncDir']);

/**
 * The real file operations, counting each write (and the anchor's writes, through `step`) once
 * armed: `before(i, what)` runs before the i-th, and with `failAt` that one throws EIO without
 * doing anything (a refused write: the process goes on).
 */
class Steps {
  armed = false;
  steps: string[] = [];
  failAt: number | undefined;
  /** Fails the first write of this label instead. */
  failOn: string | undefined;
  before: ((i: number, what: string) => void) | undefined;
  files!: Files;

  static async make(): Promise<Steps> {
    const s = new Steps();
    const real = await openFiles();
    s.files = new Proxy(real, {
      get(t, k) {
        const v = Reflect.get(t, k) as unknown;
        if (typeof v !== 'function') return v;
        if (!WRITES.has(k as string)) return (v as (...a: unknown[]) => unknown).bind(t);
        return (...a: string[]) => {
          s.step(k === 'syncDir' ? 'syncDir' : `${String(k)} ${a[0]!.replace(/.*\//, '')}${k === 'rename' ? ` ${a[1]!.replace(/.*\//, '')}` : ''}`);
          return (v as (...a: unknown[]) => unknown).apply(t, a);
        };
      },
    });
    return s;
  }

  step(what: string): void {
    if (!this.armed) return;
    const i = this.steps.length;
    this.steps.push(what);
    this.before?.(i, what);
    if (what === this.failOn) this.failAt = i;
    if (i === this.failAt) throw Object.assign(new Error(`EIO: injected at ${what}`), { code: 'EIO' });
  }

  /** The index of the rotation's commit: the rename of its new meta.json, after its new snapshot was written. */
  commit(): number {
    const from = this.steps.indexOf('writeDurable snapshot.json.rotated');
    return this.steps.findIndex((w, i) => i > from && w === 'rename meta.json.tmp meta.json');
  }
}

/** An anchor whose writes are steps of `steps`; `adopt` for an open that trusts the directory as it is. */
function anchorOf(steps: Steps, adopt = false): MemoryAnchor {
  const a = new MemoryAnchor();
  a.trustOnFirstUse = adopt;
  a.onWrite = () => steps.step('anchor');
  return a;
}

async function start(dir: string, masterKey: Uint8Array, extra: { files?: Files; rollbackAnchor?: RollbackAnchor } = {}): Promise<McsEngine> {
  return McsEngine.create({ dataDir: dir, masterKey, backends: [new SoftwareBackend(), new SoftwareBackend()], ...extra });
}

/** The resources `seed` makes, by path under each SE. */
const PATHS = [['reg', 'reg/gcm', 'reg/gcm/params', 'reg/gen', 'reg/gen/params', 'reg/mac', 'reg/sha', 'reg/secret', 'reg/rng'], ['reg2', 'reg2/sha2', 'reg2/secret2', 'reg2/later']] as const;

/**
 * On the first SE: a <cipher> with its key given (not exportable) and a message in two chunks not
 * yet consumed, one with a generated exportable key (answered: the key), an HMAC <signature> with
 * its message, a <hash> mid-stream, a <sensitiveDataObject> and a <rand> holding random data; on
 * the second a <hash> and a <sensitiveDataObject>. Answers the exported key.
 */
async function seed(e: McsEngine): Promise<Uint8Array> {
  const [a, b] = [new Session(e, 'CAE1', e.seIds[0]), new Session(e, 'CAE2', e.seIds[1])];
  await a.register();
  ok(await a.create(a.seId, 20002, { 'senv:Cph': { rn: 'gcm', Calg: 1001, mbs: 65536, kDt: b64(GCM_KEY) } }), 2001, 'gcm');
  ok(await a.create(a.path('reg', 'gcm'), 20001, { 'senv:algP': { rn: 'params', nc: b64(NONCE), aD: b64(AAD) } }), 2001, 'params');
  ok(await a.update(a.path('reg', 'gcm'), { 'senv:Cph': { msg: b64(te.encode('Hello, ')) } }), 2004, 'chunk 1');
  ok(await a.update(a.path('reg', 'gcm'), { 'senv:Cph': { msg: b64(te.encode('Mcs!')) } }), 2004, 'chunk 2');
  ok(await a.create(a.seId, 20002, { 'senv:Cph': { rn: 'gen', Calg: 1001, mbs: 1024, kExp: true } }), 2001, 'gen');
  const exported = unb64(body(ok(await a.retrieve(a.path('reg', 'gen', 'generateKey')), 2000, 'generateKey'), 'senv:Cph').kDt);
  ok(await a.create(a.path('reg', 'gen'), 20001, { 'senv:algP': { rn: 'params', nc: b64(NONCE), aD: b64(AAD) } }), 2001, 'gen params');
  ok(await a.update(a.path('reg', 'gen'), { 'senv:Cph': { msg: b64(te.encode('xyz')) } }), 2004, 'gen message');
  ok(await a.create(a.seId, 20012, { 'senv:Sgn': { rn: 'mac', Salg: 25, kDt: b64(te.encode('Jefe')), msg: b64(te.encode('what do ya want for nothing?')) } }), 2001, 'mac');
  ok(await a.create(a.seId, 20004, { 'senv:Hsh': { rn: 'sha', Halg: 4, msg: b64(te.encode('ab')) } }), 2001, 'sha');
  ok(await a.update(a.path('reg', 'sha'), { 'senv:Hsh': { msg: b64(te.encode('c')) } }), 2004, 'sha chunk');
  ok(await a.create(a.seId, 20009, { 'senv:Sdo': { rn: 'secret', msg: b64(te.encode('secret data')) } }), 2001, 'sdo');
  ok(await a.create(a.seId, 20007, { 'senv:Rnd': { rn: 'rng', rgT: 1, Dsz: 16 } }), 2001, 'rng');
  ok(await a.retrieve(a.path('reg', 'rng', 'generateRand')), 2000, 'generateRand');
  await b.register('reg2');
  ok(await b.create(b.seId, 20004, { 'senv:Hsh': { rn: 'sha2', Halg: 4, msg: b64(te.encode('second SE')) } }), 2001, 'sha2');
  ok(await b.create(b.seId, 20009, { 'senv:Sdo': { rn: 'secret2', msg: b64(te.encode('second secret')) } }), 2001, 'sdo2');
  return exported;
}

/** RETRIEVE of every resource `seed` made, as JSON. */
async function contents(e: McsEngine): Promise<string> {
  const out: unknown[] = [];
  for (const [n, paths] of PATHS.entries()) {
    const s = new Session(e, n === 0 ? 'CAE1' : 'CAE2', e.seIds[n]);
    for (const p of paths) out.push(ok(await s.retrieve(s.path(...p.split('/'))), 2000, p).pc);
  }
  return JSON.stringify(out);
}

/** An operation with each key, checked against node:crypto (each consumes what it works on). */
async function cryptoChecks(e: McsEngine, exported: Uint8Array): Promise<void> {
  const s = new Session(e, 'CAE1', e.seIds[0]);
  const gcm = (key: Uint8Array, text: string) => {
    const c = nodeCrypto.createCipheriv('aes-128-gcm', key, NONCE);
    c.setAAD(AAD);
    return Buffer.concat([c.update(text), c.final(), c.getAuthTag()]).toString('base64');
  };
  expect(body(ok(await s.retrieve(s.path('reg', 'gcm', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD).toBe(gcm(GCM_KEY, 'Hello, Mcs!'));
  expect(body(ok(await s.retrieve(s.path('reg', 'gen', 'encrypt')), 2000, 'encrypt (generated key)'), 'senv:Cph').cD).toBe(gcm(exported, 'xyz'));
  expect(body(ok(await s.retrieve(s.path('reg', 'mac', 'calculateSignature')), 2000, 'HMAC'), 'senv:Sgn').Sgn)
    .toBe(nodeCrypto.createHmac('sha256', 'Jefe').update('what do ya want for nothing?').digest('base64'));
  expect(body(ok(await s.retrieve(s.path('reg', 'sha', 'calculateHash')), 2000, 'hash'), 'senv:Hsh').Hv).toBe(nodeCrypto.createHash('sha256').update('abc').digest('base64'));
}

/**
 * Opens `dir` with the old key, then the new (`newFirst`: the other way round): exactly one opens
 * (the other is refused as a wrong key), and it holds `expected`. Answers which.
 */
async function opensWithOne(dir: string, expected: string, anchor?: RollbackAnchor, newFirst = false): Promise<'old' | 'new'> {
  const opened: ('old' | 'new')[] = [];
  const keys = [['old', OLD], ['new', NEW]] as const;
  for (const [name, key] of newFirst ? [...keys].reverse() : keys) {
    try {
      const e = await start(dir, key, anchor ? { rollbackAnchor: anchor } : {});
      try {
        expect(await contents(e), `${dir} with the ${name} key`).toBe(expected);
      } finally {
        await e.close();
      }
      opened.push(name);
    } catch (err) {
      if (!(err instanceof StateError) || !WRONG_KEY.test(err.message)) throw err;
    }
  }
  expect(opened, dir).toHaveLength(1);
  return opened[0]!;
}

/** A directory seeded under the old key and closed, and what it holds. */
async function template(): Promise<{ dir: string; expected: string; exported: Uint8Array }> {
  const dir = tempDir();
  let e = await start(dir, OLD);
  const exported = await seed(e);
  await e.close();
  // A record in the journal beside the snapshot (a clean close left it): the rotation compacts it first.
  e = await start(dir, OLD);
  const b = new Session(e, 'CAE2', e.seIds[1]);
  ok(await b.create(b.seId, 20009, { 'senv:Sdo': { rn: 'later', msg: b64(te.encode('later')) } }), 2001, 'later');
  const expected = await contents(e);
  await e.close();
  expect(readFileSync(join(dir, 'journal.log')).length).toBeGreaterThan(0);
  return { dir, expected, exported };
}

/** Every sealed value of the directory's files (snapshot.json's records and meta.json's check), with its associated data. */
function sealedValues(dir: string): { sealed: string; ad: string }[] {
  const out: { sealed: string; ad: string }[] = [{ sealed: JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).check, ad: 'meta' }];
  const text = readFileSync(join(dir, 'snapshot.json'), 'utf8');
  const state = JSON.parse(text.slice(text.indexOf('\n') + 1)) as { resources: Record<string, Record<string, { ri: string; sealed?: string; appends?: { attr: string; sealed: string }[] }>> };
  for (const se of Object.values(state.resources)) {
    for (const rec of Object.values(se)) {
      if (rec.sealed) out.push({ sealed: rec.sealed, ad: rec.ri });
      for (const a of rec.appends ?? []) out.push({ sealed: a.sealed, ad: `${rec.ri}/${a.attr}` });
    }
  }
  return out;
}

const opens = (key: Uint8Array, v: { sealed: string; ad: string }) => {
  try {
    open(key, v.sealed, v.ad).fill(0);
    return true;
  } catch {
    return false;
  }
};

describe('master key rotation', () => {
  it('keeps keys, secret values, messages in progress and several SEs; the old key is refused; no file opens under it', async () => {
    const { dir, expected, exported } = await template();
    try {
      const e = await start(dir, OLD);
      await e.rotateMasterKey({ masterKey: NEW });
      // Served as before by the engine that rotated, then across a restart with the new key.
      expect(await contents(e)).toBe(expected);
      await e.close();
      expect(readdirSync(dir).sort()).toEqual(['journal.log', 'meta.json', 'snapshot.json']);
      expect(readFileSync(join(dir, 'journal.log')).length).toBe(0);
      const values = sealedValues(dir);
      expect(values.length).toBeGreaterThan(10);
      expect(values.filter((v) => opens(OLD, v))).toEqual([]);
      expect(values.every((v) => opens(NEW, v))).toBe(true);
      await expect(start(dir, OLD)).rejects.toThrow(WRONG_KEY);
      const e2 = await start(dir, NEW);
      expect(await contents(e2)).toBe(expected);
      await cryptoChecks(e2, exported);
      // And on: a write after the rotation, a second rotation back, a restart.
      ok(await new Session(e2, 'CAE1', e2.seIds[0]).update(`${e2.seIds[0]}/reg/secret`, { 'senv:Sdo': { msg: b64(te.encode('after')) } }), 2004, 'write under the new key');
      await e2.rotateMasterKey({ masterKey: OLD });
      await e2.close();
      await expect(start(dir, NEW)).rejects.toThrow(WRONG_KEY);
      const e3 = await start(dir, OLD);
      expect(body(ok(await new Session(e3, 'CAE1', e3.seIds[0]).retrieve(`${e3.seIds[0]}/reg/secret`), 2000, 'after'), 'senv:Sdo').msg).toBe(b64(te.encode('after')));
      await e3.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([false, true])('a crash before any step of the rotation (anchor: %s) leaves a directory that opens with exactly one key, the old before the commit, holding everything', async (anchored) => {
    const { dir, expected } = await template();
    const crashes = tempDir();
    try {
      const steps = await Steps.make();
      // Adopted as the directory is at this open.
      const anchor = anchored ? anchorOf(steps, true) : undefined;
      const tokens: (Uint8Array | undefined)[] = [];
      const e = await start(dir, OLD, { files: steps.files, ...(anchor ? { rollbackAnchor: anchor } : {}) });
      if (anchor) anchor.trustOnFirstUse = undefined;
      // A copy of the directory before each write of the rotation: what a kill -9 there leaves.
      steps.before = (i) => {
        cpSync(dir, join(crashes, String(i)), { recursive: true, filter: (src) => !src.endsWith('/lock') });
        tokens[i] = anchor?.token?.slice();
      };
      steps.armed = true;
      await e.rotateMasterKey({ masterKey: NEW });
      steps.armed = false;
      const commit = steps.commit();
      expect(commit).toBeGreaterThan(0);
      // After the commit: its directory flush, the new snapshot put in place, the anchor's new head.
      expect(steps.steps.slice(commit)).toEqual(['rename meta.json.tmp meta.json', 'syncDir', 'rename snapshot.json.rotated snapshot.json', 'syncDir', ...(anchor ? ['anchor'] : [])]);
      await e.close();
      for (let i = 0; i < steps.steps.length; i++) {
        const copy = join(crashes, String(i));
        const at = anchor ? Object.assign(new MemoryAnchor(), { token: tokens[i] }) : undefined;
        // The wrong key tried first: its refusal leaves the directory as it is, for the right one.
        expect(await opensWithOne(copy, expected, at, i <= commit), `a crash before step ${i} (${steps.steps[i]})`).toBe(i <= commit ? 'old' : 'new');
        // Opened once, it is settled: no rotation's file is left behind.
        expect(readdirSync(copy).filter((f) => f.includes('rotated')), `step ${i}`).toEqual([]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(crashes, { recursive: true, force: true });
    }
  });

  it('a write that fails at any step of the rotation rejects with MasterKeyRotationError saying which key the directory is under; the engine goes on with that key', async () => {
    const { dir: base, expected } = await template();
    const dirs: string[] = [];
    try {
      // How many steps a rotation with an anchor takes.
      const count = await Steps.make();
      const probe = tempDir();
      dirs.push(probe);
      cpSync(base, probe, { recursive: true });
      const pa = anchorOf(count, true);
      const ep = await start(probe, OLD, { files: count.files, rollbackAnchor: pa });
      count.armed = true;
      await ep.rotateMasterKey({ masterKey: NEW });
      count.armed = false;
      await ep.close();
      const commit = count.commit();
      console.log(`rotation steps (with an anchor): ${count.steps.join(', ')}; commit at ${commit}`);
      let committedSeen = 0;
      for (let i = 0; i < count.steps.length; i++) {
        const dir = tempDir();
        dirs.push(dir);
        cpSync(base, dir, { recursive: true });
        const steps = await Steps.make();
        const anchor = anchorOf(steps, true);
        const e = await start(dir, OLD, { files: steps.files, rollbackAnchor: anchor });
        anchor.trustOnFirstUse = undefined;
        steps.failAt = i;
        steps.armed = true;
        const err = await e.rotateMasterKey({ masterKey: NEW }).then(() => undefined, (x: unknown) => x);
        steps.armed = false;
        expect(steps.steps[i], `step ${i}`).toBe(count.steps[i]);
        expect(err, `a failure at step ${i} (${count.steps[i]})`).toBeInstanceOf(MasterKeyRotationError);
        const committed = (err as MasterKeyRotationError).committed;
        expect(committed, `step ${i} (${count.steps[i]})`).toBe(i > commit);
        if (committed) committedSeen++;
        // A rotation that did not happen takes its new key's files away at once, not only at close or the next open (a
        // meta.json.tmp of the compaction before it, under the old key, waits for close as any refused write's).
        else if (i >= count.steps.indexOf('writeDurable snapshot.json.rotated')) {
          expect(readdirSync(dir).filter((f) => f === 'snapshot.json.rotated' || f === 'meta.json.tmp'), `step ${i} (${count.steps[i]}): the new key's files`).toEqual([]);
        }
        // Served on with the key the directory is under: a write, acknowledged, survives the restart.
        const s = new Session(e, 'CAE1', e.seIds[0]);
        ok(await s.update(s.path('reg', 'secret'), { 'senv:Sdo': { msg: b64(te.encode(`after ${i}`)) } }), 2004, `write after a failure at step ${i}`);
        const now = await contents(e);
        expect(now).not.toBe(expected);
        await e.close();
        expect(await opensWithOne(dir, now, anchor), `after a failure at step ${i}`).toBe(committed ? 'new' : 'old');
      }
      expect(committedSeen).toBeGreaterThan(0);
    } finally {
      for (const d of [base, ...dirs]) rmSync(d, { recursive: true, force: true });
    }
  });

  it('a committed rotation whose new snapshot could not be renamed: a crash then rolls it forward, and the next rotation puts it in place first', async () => {
    const { dir, expected } = await template();
    const other = tempDir();
    cpSync(dir, other, { recursive: true });
    /** An engine on `d` whose rotation to NEW committed, its new snapshot's rename refused. */
    const renameRefused = async (d: string) => {
      const steps = await Steps.make();
      const e = await start(d, OLD, { files: steps.files });
      steps.armed = true;
      steps.failOn = 'rename snapshot.json.rotated snapshot.json';
      const err = await e.rotateMasterKey({ masterKey: NEW }).then(() => undefined, (x: unknown) => x);
      expect((err as MasterKeyRotationError).committed).toBe(true);
      steps.failAt = steps.failOn = undefined;
      expect(readdirSync(d)).toContain('snapshot.json.rotated');
      return { e, steps };
    };
    try {
      // A record under the new key, then a crash (a copy of the directory): the open renames the new snapshot into
      // place, and the record verifies from it.
      const { e: e1 } = await renameRefused(other);
      const b = new Session(e1, 'CAE2', e1.seIds[1]);
      ok(await b.update(b.path('reg2', 'later'), { 'senv:Sdo': { msg: b64(te.encode('after the commit')) } }), 2004, 'a write after the commit');
      const written = await contents(e1);
      const crashed = tempDir();
      cpSync(other, crashed, { recursive: true, filter: (src) => !src.endsWith('/lock') });
      await e1.close();
      try {
        expect(await opensWithOne(crashed, written)).toBe('new');
      } finally {
        rmSync(crashed, { recursive: true, force: true });
      }
      // The next rotation, with the journal still empty, fails before its commit: the directory stays under the
      // first one's key, whole.
      const { e, steps } = await renameRefused(dir);
      steps.failOn = 'rename meta.json.tmp meta.json';
      const second = await e.rotateMasterKey({ masterKey: new Uint8Array(32).fill(11) }).then(() => undefined, (x: unknown) => x);
      expect((second as MasterKeyRotationError).committed).toBe(false);
      steps.armed = false;
      expect(await contents(e)).toBe(expected);
      await e.close();
      expect(await opensWithOne(dir, expected)).toBe('new');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('a commit whose directory flush failed: no record is appended, and the new snapshot not renamed into place, before a later flush succeeded', async () => {
    const { dir, expected } = await template();
    try {
      const steps = await Steps.make();
      const e = await start(dir, OLD, { files: steps.files });
      steps.before = (i, what) => {
        if (what === 'syncDir' && steps.steps[i - 1] === 'rename meta.json.tmp meta.json' && steps.steps.includes('writeDurable snapshot.json.rotated')) steps.failAt = i;
      };
      steps.armed = true;
      const err = await e.rotateMasterKey({ masterKey: NEW }).then(() => undefined, (x: unknown) => x);
      expect((err as MasterKeyRotationError).committed).toBe(true);
      const failed = steps.steps.length;
      steps.before = undefined;
      steps.failAt = undefined;
      // A power loss keeps the old meta.json unless that flush happened: a record under the new key beside it,
      // or the new snapshot in place, would open with neither key.
      const s = new Session(e, 'CAE1', e.seIds[0]);
      const create = () => s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'after', msg: b64(te.encode('after')) } });
      steps.failOn = 'syncDir';
      const refused = await create();
      expect([refused.rsc, refused.pc?.['m2m:dbg']], 'a write while the flush still fails').toEqual([5000, 'storage write failed (EIO): nothing was changed']);
      expect(steps.steps.slice(failed), 'nothing appended').toEqual(['syncDir']);
      steps.failOn = steps.failAt = undefined;
      ok(await create(), 2001, 'a write once the flush succeeds');
      expect(steps.steps.slice(failed + 1, failed + 3)).toEqual(['syncDir', 'append journal.log']);
      const written = steps.steps.length;
      await e.close();
      expect(steps.steps.slice(written)).toContain('rename snapshot.json.rotated snapshot.json');
      expect(await opensWithOne(dir, expected)).toBe('new');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a commit whose rename reports a failure: meta.json read back says whether it landed; when that cannot be told, nothing more is written and the next open settles it', async () => {
    // [the rename happened, meta.json readable afterwards, what the store tells: true is a rotation that completed];
    // 'garbled': what meta.json holds afterwards opens under neither key (a rename a network file system half did).
    for (const [landed, readable, told] of [[true, true, true], [false, true, false], [true, false, undefined], ['garbled', true, undefined]] as const) {
      const { dir, expected } = await template();
      try {
        const real = await openFiles();
        // Armed once the rotation's snapshot is written: the compaction before it renames a meta.json.tmp too.
        let armed = false, unreadable = false;
        const eio = () => Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
        const files: Files = {
          ...real,
          writeDurable: async (path, bytes) => {
            armed ||= path.endsWith('/snapshot.json.rotated');
            return real.writeDurable(path, bytes);
          },
          rename: async (from, to) => {
            if (!armed || !from.endsWith('/meta.json.tmp')) return real.rename(from, to);
            armed = false;
            if (landed === 'garbled') await real.writeDurable(to, te.encode('{"format":6}'));
            else if (landed) await real.rename(from, to);
            unreadable = !readable;
            throw eio();
          },
          read: async (path, as) => (unreadable && path.endsWith('/meta.json') ? Promise.reject(eio()) : real.read(path, as)),
        };
        const e = await start(dir, OLD, { files });
        const err = await e.rotateMasterKey({ masterKey: NEW }).then(() => undefined, (x: unknown) => x);
        // One that landed and reads back is a rotation like any other: it resolves.
        if (told === true) expect(err, 'landed and read back').toBeUndefined();
        else expect([err instanceof MasterKeyRotationError, (err as MasterKeyRotationError).committed], (err as Error).message).toEqual([true, told]);
        unreadable = false;
        if (told === undefined) {
          // Nor another rotation: it would write its new snapshot over the one the next open needs to settle this one.
          const rotated = readFileSync(join(dir, 'snapshot.json.rotated'));
          await expect(e.rotateMasterKey({ masterKey: new Uint8Array(32).fill(0x33) }), 'a second rotation').rejects.toBeInstanceOf(MasterKeyRotationError);
          expect(readFileSync(join(dir, 'snapshot.json.rotated')).equals(rotated), 'the new snapshot left as it was').toBe(true);
        }
        const s = new Session(e, 'CAE1', e.seIds[0]);
        const r = await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'after', msg: b64(te.encode('after')) } });
        expect(r.rsc, 'a write after it').toBe(told === undefined ? 5000 : 2001);
        await e.close();
        if (landed !== 'garbled') expect(await opensWithOne(dir, expected), 'the key the directory is under').toBe(landed ? 'new' : 'old');
        // Settled by the next open, with meta.json put right: the new snapshot was kept for it.
        else expect(readdirSync(dir), 'garbled').toContain('snapshot.json.rotated');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('a rotation refused before its commit zeroizes its copies of the new key and of the MAC key derived from it', async () => {
    const { dir } = await template();
    const newMac = nodeCrypto.createHmac('sha256', NEW).update('senv journal mac').digest();
    const copies: Uint8Array[] = [];
    const set = RealUint8Array.prototype.set;
    RealUint8Array.prototype.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
      set.call(this, src, offset);
      if (src instanceof RealUint8Array && src.length >= 32 && (holds(src, NEW) || holds(src, newMac))) copies.push(this);
    } as typeof set;
    try {
      const real = await openFiles();
      // The new snapshot's write refused: the rotation's keys were made, and the commit never came.
      const files: Files = {
        ...real,
        writeDurable: async (path, bytes) => {
          if (path.endsWith('/snapshot.json.rotated')) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
          return real.writeDurable(path, bytes);
        },
      };
      const e = await start(dir, OLD, { files });
      const err = await e.rotateMasterKey({ masterKey: NEW }).then(() => undefined, (x: unknown) => x);
      expect([err instanceof MasterKeyRotationError, (err as MasterKeyRotationError).committed]).toEqual([true, false]);
      expect(copies.length, 'the new key and its MAC key were copied').toBeGreaterThan(0);
      // Before close(): the engine runs on, under the old key.
      expect(copies.filter((c) => holds(c, NEW) || holds(c, newMac)).length, 'copies of the new key or its MAC key').toBe(0);
      await e.close();
    } finally {
      RealUint8Array.prototype.set = set;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the old key and the MAC key derived from it are zeroized at the commit; the new key is copied outside the JS heap only', async () => {
    const { dir } = await template();
    const macKey = (k: Uint8Array) => nodeCrypto.createHmac('sha256', k).update('senv journal mac').digest();
    const [oldMac, newMac] = [macKey(OLD), macKey(NEW)];
    // Every array a key or MAC key is copied into by set() (secretCopy; the core's results), and every copy of one the
    // Uint8Array constructor makes (inside the JS heap).
    const copies: Uint8Array[] = [];
    const set = RealUint8Array.prototype.set;
    const old = { key: OLD.slice(), mac: oldMac };
    RealUint8Array.prototype.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
      set.call(this, src, offset);
      if (src instanceof RealUint8Array && src.length >= 32 && [old.key, oldMac, NEW, newMac].some((k) => holds(src, k))) copies.push(this);
    } as typeof set;
    const onHeap: Uint8Array[] = [];
    const spy = spyUint8Arrays((copy, from) => {
      if (copy.length <= 64 && !(from instanceof ArrayBuffer) && (holds(copy, NEW) || holds(copy, newMac))) onHeap.push(copy);
    });
    try {
      const e = await start(dir, old.key);
      const held = (k: Uint8Array) => copies.filter((c) => holds(c, k)).length;
      expect(held(old.key) + held(oldMac), 'the store holds the old key and its MAC key').toBeGreaterThan(0);
      await e.rotateMasterKey({ masterKey: NEW });
      // Before close(): the engine runs on, under the new key.
      expect(held(old.key), 'copies of the old key').toBe(0);
      expect(held(oldMac), 'copies of its MAC key').toBe(0);
      expect(held(NEW) + held(newMac), 'the store holds the new key and its MAC key').toBeGreaterThan(0);
      expect(onHeap, 'copies of the new key, or its MAC key, inside the JS heap').toEqual([]);
      await e.close();
      // The engine's own copy of the key it read for the rotation included, not only the store's.
      expect(held(NEW) + held(newMac), 'copies of the new key or its MAC key after close()').toBe(0);
    } finally {
      RealUint8Array.prototype.set = set;
      spy.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('requests sent during the rotation wait for it and are served; close() during a rotation waits for it', async () => {
    const { dir, expected } = await template();
    try {
      const e = await start(dir, OLD);
      const s = new Session(e, 'CAE1', e.seIds[0]);
      const t = new Session(e, 'CAE2', e.seIds[1]);
      const chunks = Array.from({ length: 20 }, (_, i) => `chunk ${i};`);
      const rotation = e.rotateMasterKey({ masterKey: NEW });
      const requests = [
        ...chunks.map((c) => s.update(s.path('reg', 'sha'), { 'senv:Hsh': { msg: b64(te.encode(c)) } })),
        ...chunks.map((_, i) => t.create(t.seId, 20009, { 'senv:Sdo': { rn: `d${i}`, msg: b64(te.encode(`d${i}`)) } })),
      ];
      await rotation;
      for (const r of await Promise.all(requests)) expect([2001, 2004]).toContain(r.rsc);
      // A second rotation, with close() called while it runs; its key read from a file, so that close() comes
      // while the rotation still awaits the read.
      const keyFile = join(dir, '..', `${dir.replace(/.*\//, '')}.key`);
      writeFileSync(keyFile, Buffer.from(OLD).toString('hex'));
      const back = e.rotateMasterKey({ masterKeyFile: keyFile });
      const closing = e.close();
      await back;
      await closing;
      rmSync(keyFile);
      await expect(start(dir, NEW)).rejects.toThrow(WRONG_KEY);
      const e2 = await start(dir, OLD);
      const s2 = new Session(e2, 'CAE1', e2.seIds[0]);
      const t2 = new Session(e2, 'CAE2', e2.seIds[1]);
      for (let i = 0; i < chunks.length; i++) expect(body(ok(await t2.retrieve(t2.path('reg2', `d${i}`)), 2000, `d${i}`), 'senv:Sdo').msg).toBe(b64(te.encode(`d${i}`)));
      expect(body(ok(await s2.retrieve(s2.path('reg', 'sha', 'calculateHash')), 2000, 'hash'), 'senv:Hsh').Hv)
        .toBe(nodeCrypto.createHash('sha256').update(`abc${chunks.join('')}`).digest('base64'));
      expect(expected).toContain('senv:Hsh');
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refused with a typed error: no data directory, a store that cannot rotate, the same key, an unreadable or missing key file, a key of the wrong length', async () => {
    const memory = await McsEngine.create();
    await expect(memory.rotateMasterKey({ masterKey: NEW })).rejects.toThrow(StateError);
    await expect(memory.rotateMasterKey({ masterKey: NEW })).rejects.toThrow(/no data directory/);
    await memory.close();
    const store: Persistence = { uniqueId: async () => 'u', load: async () => undefined, put: async () => undefined, append: async () => undefined, remove: async () => undefined, close: async () => undefined };
    const custom = await McsEngine.create({ store });
    await expect(custom.rotateMasterKey({ masterKey: NEW })).rejects.toThrow(/cannot rotate a master key/);
    await custom.close();
    const { dir, expected } = await template();
    try {
      const e = await start(dir, OLD);
      await expect(e.rotateMasterKey({ masterKey: OLD.slice() })).rejects.toThrow(InvalidInputError);
      await expect(e.rotateMasterKey({ masterKeyFile: dir })).rejects.toThrow(/master key file .* cannot be read/);
      await expect(e.rotateMasterKey({ masterKeyFile: join(dir, 'none') })).rejects.toThrow(`the master key file ${join(dir, 'none')} does not exist`);
      await expect(e.rotateMasterKey({ masterKey: new Uint8Array(16) })).rejects.toThrow(LengthError);
      await expect(e.rotateMasterKey(7 as never)).rejects.toThrow(InvalidInputError);
      // Two sources, or one misspelt: refused before anything is read, not the first found taken.
      await expect(e.rotateMasterKey({ masterKey: NEW, masterKeyFile: join(dir, 'none') })).rejects.toThrow(/^give one master key, not masterKey and masterKeyFile$/);
      await expect(e.rotateMasterKey({ masterkey: NEW } as never)).rejects.toThrow(/^unknown option 'masterkey' in rotateMasterKey options/);
      // (coverage gap) No options, or a variable that is not set: a StateError naming the variable read.
      const saved = process.env.SENV_MASTER_KEY;
      delete process.env.SENV_MASTER_KEY;
      delete process.env.SENV_ROTATE_UNSET;
      try {
        const refusal = (options: unknown) => e.rotateMasterKey(options as never).then(() => 'rotated', (x: unknown) => x);
        for (const [options, name] of [[null, 'SENV_MASTER_KEY'], [undefined, 'SENV_MASTER_KEY'], [{ masterKeyEnv: 'SENV_ROTATE_UNSET' }, 'SENV_ROTATE_UNSET']] as const) {
          const x = await refusal(options);
          expect(x, String(options)).toBeInstanceOf(StateError);
          expect((x as Error).message).toBe(`a data directory needs a master key: pass masterKey or masterKeyFile, or set ${name}`);
        }
      } finally {
        if (saved !== undefined) process.env.SENV_MASTER_KEY = saved;
      }
      await expect(e.rotateMasterKey({ masterKeyEnv: 'A=B' })).rejects.toThrow(InvalidInputError);
      // The same key from a file, as hex: refused too, and the engine goes on under the old key.
      const file = join(dir, '..', `${dir.replace(/.*\//, '')}.key`);
      writeFileSync(file, Buffer.from(OLD).toString('hex'));
      await expect(e.rotateMasterKey({ masterKeyFile: file })).rejects.toThrow(/the new master key is the one/);
      writeFileSync(file, Buffer.from(NEW).toString('hex'));
      process.env.SENV_ROTATE_TEST_KEY = Buffer.from(NEW).toString('base64');
      await e.rotateMasterKey({ masterKeyEnv: 'SENV_ROTATE_TEST_KEY' });
      await e.rotateMasterKey({ masterKeyFile: file }).then(() => expect.unreachable(), (x: unknown) => expect(x).toBeInstanceOf(InvalidInputError));
      rmSync(file);
      delete process.env.SENV_ROTATE_TEST_KEY;
      await e.close();
      await expect(e.rotateMasterKey({ masterKey: OLD })).rejects.toThrow(/engine closed/);
      expect(await opensWithOne(dir, expected)).toBe('new');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGKILL at random moments of rotations: the directory opens with exactly one key, holding every acknowledged write', async () => {
    const dir = tempDir();
    const acked = new Set<number>();
    let rotations = 0;
    let next = 0;
    try {
      for (let round = 0; round < 4; round++) {
        const child = spawnIn('deno', ROTATOR, [dir, String(next), Buffer.from(OLD).toString('hex'), Buffer.from(NEW).toString('hex')], { write: [dir] });
        await new Promise<void>((resolve) => {
          let killing = false;
          // At a random moment 300-1500 ms after 'ready', but not before this run acknowledged two rotations
          // (a loaded machine's rotator may finish none by then, and the counts checked below would fail
          // with the store right): then at the next line. 20 s past the moment, killed all the same.
          let due = false;
          let killed = false;
          let mine = 0;
          const kill = (now: boolean) => {
            if (killed || !due || !(now || mine >= 2)) return;
            killed = true;
            child.kill('SIGKILL');
          };
          onLines(child, ([kind, n]) => {
            if (kind === 'ready' && !killing) {
              killing = true;
              setTimeout(() => {
                due = true;
                kill(false);
                setTimeout(() => kill(true), 20_000).unref();
              }, 300 + Math.floor(Math.random() * 1200));
            } else if (kind === 'sdo') acked.add(Number(n));
            else if (kind === 'rotated') {
              rotations++;
              mine++;
            }
            kill(false);
          });
          child.on('exit', () => resolve());
        });
        next = Math.max(next, ...acked) + 1;
      }
      expect(rotations).toBeGreaterThan(4);
      expect(acked.size).toBeGreaterThan(4);
      let opened = 0;
      for (const key of [OLD, NEW]) {
        let e: McsEngine;
        try {
          e = await McsEngine.create({ dataDir: dir, masterKey: key });
        } catch (err) {
          expect((err as Error).message).toMatch(WRONG_KEY);
          continue;
        }
        opened++;
        const s = new Session(e, 'CROT');
        try {
          for (const i of acked) expect(body(ok(await s.retrieve(s.path('reg', `d${i}`)), 2000, `d${i}`), 'senv:Sdo').msg).toBe(b64(te.encode(`d${i}`)));
        } finally {
          await e.close();
        }
      }
      expect(opened).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a rotation killed (SIGKILL) before each of its writes, by Deno with its permissions narrowed to the directory and opened by Node, by Node and opened by Deno, with a rollback anchor: one key opens, the old one until the commit, holding every acknowledged write', async () => {
    const top = tempDir();
    const keys = [OLD, NEW].map((k) => Buffer.from(k).toString('hex'));
    const at = (name: string) => ({ dir: join(top, name, 'data'), anchor: join(top, name, 'anchor') });
    /** The writer in `runtime` from record `start` on, killed before its stopAt-th write: what it printed last, and which key it opened with. */
    const write = (runtime: Runtime, name: string, start: number, stopAt: number) => new Promise<{ last: string; opened: number }>((resolve, reject) => {
      const { dir, anchor } = at(name);
      const child = spawnIn(runtime, ROTATOR, [dir, String(start), ...keys, `stopAt=${stopAt}`, `anchor=${anchor}`], { write: [dir, anchor, `${anchor}.tmp`] });
      let last = '';
      let opened = -1;
      onLines(child, (words) => {
        last = words.join(' ');
        if (words[0] === 'ready') opened = Number(words[1]);
        if (words[0] === 'at') child.kill('SIGKILL');
      });
      child.on('exit', (code, signal) => (code === 0 || signal === 'SIGKILL' ? resolve({ last, opened }) : reject(new Error(`the ${runtime} writer exited ${code} after ${last}`))));
    });
    /** For each key, what the directory holds opened by `runtime` (d0 and d1), or the open's refusal. */
    const opensAs = async (runtime: Runtime, name: string) => {
      const { dir, anchor } = at(name);
      const lines = await runSteps(runtime, dir, [`anchor:${anchor}`, 'from:CROT', ...keys.flatMap((key) => [`open:hex:${key}`, 'get:d0', 'get:d1', 'close'])], { write: [anchor, `${anchor}.tmp`] });
      return keys.map((_, i) => {
        const [open, ...gets] = lines.slice(2 + 4 * i, 5 + 4 * i);
        return open!.startsWith('ok open') ? gets.map((l) => l.replace(/^ok get:\S+ /, '')).join(' ') : open!.replace(/^\S+ /, '');
      });
    };
    const wrongKey = (name: string) => `StateError: the master key does not open the data directory ${at(name).dir} (a wrong master key, or meta.json's check value damaged)`;
    let kills = 0;
    try {
      for (const [writer, opener] of [['deno', 'node'], ['node', 'deno']] as const) {
        // The template: d0 written and the directory rotated once, then closed.
        const template = `${writer}-template`;
        expect((await write(writer, template, 0, Infinity)).last).toBe('done');
        const committed: boolean[] = [];
        for (let n = 1; ; n++) {
          const name = `${writer}-${n}`;
          cpSync(join(top, template), join(top, name), { recursive: true });
          const { last, opened } = await write(writer, name, 1, n);
          if (last === 'done') break;
          kills++;
          expect(last, `${writer} stopped at write ${n}`).toMatch(new RegExp(`^at ${n} `));
          if (opener === 'deno') {
            // A Node holder's lock: Deno cannot tell that it is gone (docs/mcs.md "Concurrency"), so it is removed by hand.
            if (n === 1) expect(await opensAs(opener, name)).toEqual(keys.map(() => expect.stringMatching(/^DataDirLockedError: .* whether it still runs cannot be told here/)));
            rmSync(join(at(name).dir, 'lock'));
          }
          const found = await opensAs(opener, name);
          const under = found.indexOf('d0 d1');
          expect(found, `${writer} killed before ${last}, opened by ${opener}`).toEqual(keys.map((_, i) => (i === under ? 'd0 d1' : wrongKey(name))));
          // The key the writer opened with until the commit (meta.json's rename), then the other one for good.
          committed.push(under !== opened);
          if (last.endsWith('rename meta.json.tmp meta.json')) expect(under, 'killed before the commit').toBe(opened);
        }
        expect(committed.indexOf(true), `${writer}: the old key until the commit`).toBe(committed.lastIndexOf(false) + 1);
      }
      expect(kills, 'the compaction\'s 5 writes, the rotation\'s 8, each runtime').toBe(26);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  }, 180_000);

  it('on Deno with permissions naming only the data directory: a new key from a variable or a file it may not read is a StateError naming the permission, the directory untouched; granted the variable alone, a key file, a link to one or a pipe, the rotation goes through', async () => {
    const top = tempDir();
    const dir = join(top, 'data');
    const keyDir = join(top, 'keys');
    const [K3, K4, K5] = [0x33, 0x44, 0x55].map((b) => Buffer.alloc(32, b));
    const hex = (k: Uint8Array) => Buffer.from(k).toString('hex');
    try {
      mkdirSync(keyDir);
      writeFileSync(join(keyDir, 'k4'), `${K4!.toString('base64')}\r\n`);
      symlinkSync(join(keyDir, 'k4'), join(keyDir, 'link'));
      execFileSync('mkfifo', [join(keyDir, 'pipe')]);
      expect(await runSteps('deno', dir, [`open:hex:${hex(OLD)}`, 'sdo:a', 'close'])).toEqual([`ok open:hex:${hex(OLD)}`, 'ok sdo:a 2001', 'ok close']);
      const files = () => readdirSync(dir).map((f) => `${f} ${readFileSync(join(dir, f)).toString('base64')}`);
      const before = files();
      const env = { SENV_ROTATE_KEY: hex(NEW) };
      expect(await runSteps('deno', dir, [`open:hex:${hex(OLD)}`, 'rotate:env:SENV_ROTATE_KEY', `rotate:file:${join(keyDir, 'k4')}`, `rotate:file:${join(keyDir, 'link')}`, 'get:a', 'close'], {}, env)).toEqual([
        `ok open:hex:${hex(OLD)}`,
        'rotate:env:SENV_ROTATE_KEY StateError: the master key variable SENV_ROTATE_KEY cannot be read (NotCapable; on Deno: --allow-env=SENV_ROTATE_KEY)',
        `rotate:file:${join(keyDir, 'k4')} StateError: the master key file ${join(keyDir, 'k4')} cannot be read (NotCapable; on Deno: --allow-read=${join(keyDir, 'k4')})`,
        `rotate:file:${join(keyDir, 'link')} StateError: the master key file ${join(keyDir, 'link')} cannot be read (NotCapable; on Deno: --allow-read=${join(keyDir, 'link')})`,
        'ok get:a data of a',
        'ok close',
      ]);
      expect(files(), 'the directory untouched').toEqual(before);
      // Granted: the variable alone (no other), then the key files; the pipe's key is written as Deno reads it.
      const piped = writeFile(join(keyDir, 'pipe'), hex(K5!));
      const rotated = await runSteps('deno', dir, [`open:hex:${hex(OLD)}`, 'rotate:env:SENV_ROTATE_KEY', `rotate:file:${join(keyDir, 'k4')}`, `rotate:hex:${hex(K3!)}`, `rotate:file:${join(keyDir, 'link')}`, `rotate:file:${join(keyDir, 'pipe')}`, 'get:a', 'close'], { read: [keyDir], env: ['SENV_ROTATE_KEY'] }, env);
      await piped;
      expect(rotated).toEqual([
        `ok open:hex:${hex(OLD)}`, 'ok rotate:env:SENV_ROTATE_KEY', `ok rotate:file:${join(keyDir, 'k4')}`, `ok rotate:hex:${hex(K3!)}`, `ok rotate:file:${join(keyDir, 'link')}`, `ok rotate:file:${join(keyDir, 'pipe')}`, 'ok get:a data of a', 'ok close',
      ]);
      for (const key of [OLD, NEW, K3!, K4!]) await expect(McsEngine.create({ dataDir: dir, masterKey: key }), hex(key)).rejects.toThrow(WRONG_KEY);
      const e = await McsEngine.create({ dataDir: dir, masterKey: K5! });
      expect(Buffer.from(unb64(body(ok(await new Session(e, 'CAE1').retrieve(`${e.seIds[0]}/reg/a`), 2000, 'a'), 'senv:Sdo').msg)).toString()).toBe('data of a');
      await e.close();
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('senv rotate-master-key on a directory it may not read names the refusal (on Deno, the flags), never a meta.json the directory holds as missing', async () => {
    const top = tempDir();
    const dir = join(top, 'data');
    try {
      await (await McsEngine.create({ dataDir: dir, masterKey: OLD })).close();
      writeFileSync(join(top, 'old'), Buffer.from(OLD).toString('hex'));
      writeFileSync(join(top, 'new'), Buffer.from(NEW).toString('hex'));
      const before = readdirSync(dir).map((f) => `${f} ${readFileSync(join(dir, f)).toString('base64')}`);
      // The command's sources and the key files may be read, the data directory not.
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const repo = fileURLToPath(new URL('../../', import.meta.url));
      const { code, err } = await runChild(deno, ['run', '--no-prompt', `--allow-read=${repo},${top}/old,${top}/new`, join(repo, 'bin/senv.js'),
        'rotate-master-key', '--data-dir', dir, '--key-file', join(top, 'old'), '--new-key-file', join(top, 'new')], { killMs: 20_000 });
      expect({ code, err: err.trim() }).toEqual({
        code: 1, err: `rotate-master-key: StateError: the data directory ${dir} cannot be opened (NotCapable; on Deno: --allow-read=${dir} --allow-write=${dir})`,
      });
      expect(readdirSync(dir).map((f) => `${f} ${readFileSync(join(dir, f)).toString('base64')}`), 'the directory untouched').toEqual(before);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('a directory moves between runtimes with its anchor: written and rotated by Node, then opened, written and rotated by Deno, then by Node again, each finding every write', async () => {
    const top = tempDir();
    const dir = join(top, 'data');
    const anchor = join(top, 'anchor');
    const keys = [0x01, 0x02, 0x03, 0x04].map((b) => Buffer.alloc(32, b).toString('hex'));
    const grants = { write: [anchor, `${anchor}.tmp`] };
    try {
      const run = (runtime: Runtime, key: number, made: string, gets: string[]) => runSteps(runtime, dir, [`anchor:${anchor}`, `open:hex:${keys[key - 1]}`, `open:hex:${keys[key]}`, ...gets.map((n) => `get:${n}`), `sdo:${made}`, `acpi:${made}`, `rotate:hex:${keys[key + 1]}`, `sdo:${made}2`, 'close'], grants);
      const expected = (key: number, made: string, gets: string[]) => [
        `ok anchor:${anchor}`,
        `open:hex:${keys[key - 1]} StateError: the master key does not open the data directory ${dir} (a wrong master key, or meta.json's check value damaged)`,
        `ok open:hex:${keys[key]}`, ...gets.map((n) => `ok get:${n} data of ${n}`), `ok sdo:${made} 2001`, `ok acpi:${made} 2004`, `ok rotate:hex:${keys[key + 1]}`, `ok sdo:${made}2 2001`, 'ok close',
      ];
      expect(await runSteps('node', dir, [`anchor:${anchor}`, `open:hex:${keys[0]}`, 'sdo:a', 'acpi:a', `rotate:hex:${keys[1]}`, 'sdo:a2', 'close'], grants)).toEqual([
        `ok anchor:${anchor}`, `ok open:hex:${keys[0]}`, 'ok sdo:a 2001', 'ok acpi:a 2004', `ok rotate:hex:${keys[1]}`, 'ok sdo:a2 2001', 'ok close',
      ]);
      expect(await run('deno', 1, 'b', ['a', 'a2'])).toEqual(expected(1, 'b', ['a', 'a2']));
      expect(await run('node', 2, 'c', ['a', 'a2', 'b', 'b2'])).toEqual(expected(2, 'c', ['a', 'a2', 'b', 'b2']));
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });
});

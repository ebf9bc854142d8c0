// A write to the data directory that fails (a full disk that takes part of
// the record, a failing disk that takes all of it but cannot flush or cut it,
// a read-only directory) changes nothing: for every kind of mutating request
// the response is 5000 with a short m2m:dbg, RETRIEVE shows the old state,
// the WASM memory in use is what it was, the same request then succeeds, and
// a restart opens a store that holds exactly the acknowledged writes, also
// when two SEs write at once or a snapshot was only half done.
import { describe, expect, it } from 'vitest';
import nodeCrypto from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreMemoryStats, gcm, McsEngine, SoftwareBackend, StateError, type McsResponse, type ObjectStore } from '../../src/index.ts';
import { openFiles, type Files } from '../../src/mcs/store/files.ts';
import { JournalStore } from '../../src/mcs/store/journal.ts';
import { prng } from '../portable/harness.ts';
import { Session, b64, ok } from '../portable/mcs-kit.ts';

const KEY = new Uint8Array(32).fill(7);
type Mode = 'ENOSPC' | 'EIO' | 'EROFS';
type Op = 'append' | 'writeDurable' | 'rename' | 'truncate' | 'remove' | 'mkdir' | 'syncDir';

/**
 * The real file operations, with writes that fail as a disk does: ENOSPC
 * writes part of the data and fails (cutting a file still works), EIO writes
 * all of it and fails to flush (and every other write fails too), EROFS
 * writes nothing. From the write after the next `after` ones, `times`
 * writes fail; with `ops`, only writes of those operations count.
 */
class FlakyFiles implements Files {
  readonly #real: Files;
  #plan: { mode: Mode; after: number; times: number; ops: readonly Op[] | undefined } | undefined;
  failed = 0;

  constructor(real: Files) {
    this.#real = real;
  }

  fail(mode: Mode, after = 0, times = Infinity, ops?: readonly Op[]): void {
    this.#plan = { mode, after, times, ops };
  }

  heal(): void {
    this.#plan = undefined;
  }

  read(path: string, as?: 'lock' | 'key') {
    return this.#real.read(path, as);
  }

  async append(path: string, data: Uint8Array) {
    const mode = this.#next('append');
    if (mode === 'ENOSPC') await this.#real.append(path, data.subarray(0, data.length >> 1));
    if (mode === 'EIO') await this.#real.append(path, data);
    if (mode) throw this.#error(mode);
    await this.#real.append(path, data);
  }

  async writeDurable(path: string, data: Uint8Array) {
    const mode = this.#next('writeDurable');
    if (mode === 'ENOSPC') await this.#real.writeDurable(path, data.subarray(0, data.length >> 1));
    if (mode === 'EIO') await this.#real.writeDurable(path, data);
    if (mode) throw this.#error(mode);
    await this.#real.writeDurable(path, data);
  }

  createLock(path: string, data: Uint8Array) {
    return this.#real.createLock(path, data);
  }

  get osLocks() {
    return this.#real.osLocks;
  }

  lockHeld(path: string, pid: number, osLocked: boolean) {
    return this.#real.lockHeld(path, pid, osLocked);
  }

  get pid() {
    return this.#real.pid;
  }

  get stamp() {
    return this.#real.stamp;
  }

  rename(from: string, to: string) {
    return this.#other('rename', () => this.#real.rename(from, to));
  }

  truncate(path: string, length: number) {
    return this.#other('truncate', () => this.#real.truncate(path, length));
  }

  remove(path: string) {
    return this.#other('remove', () => this.#real.remove(path));
  }

  mkdir(path: string) {
    return this.#other('mkdir', () => this.#real.mkdir(path));
  }

  syncDir(path: string) {
    return this.#other('syncDir', () => this.#real.syncDir(path));
  }

  /** A write that needs no space: a full disk still does it. */
  async #other<T>(op: Op, write: () => Promise<T>): Promise<T> {
    const mode = this.#next(op);
    if (mode && mode !== 'ENOSPC') throw this.#error(mode);
    return write();
  }

  #next(op: Op): Mode | undefined {
    const plan = this.#plan;
    if (!plan || (plan.ops && !plan.ops.includes(op))) return undefined;
    if (plan.after > 0) {
      plan.after--;
      return undefined;
    }
    if (plan.times <= 0) return undefined;
    plan.times--;
    return plan.mode;
  }

  #error(mode: Mode): Error {
    this.failed++;
    const text = { ENOSPC: 'no space left on device', EIO: 'i/o error', EROFS: 'read-only file system' }[mode];
    return Object.assign(new Error(`${mode}: ${text}, write`), { code: mode });
  }
}

const inUse = () => coreMemoryStats().inUseBytes;

/** An engine snapshotting every 4 KiB with a registered CAE1 and its <hash> 'h'; `at`: what to compare across restarts. */
async function compactingHash(dir: string, files: FlakyFiles, clock: { now: number }): Promise<{ engine: McsEngine; s: Session; at: [string, string][] }> {
  const engine = await rig(dir, files, clock, 4096);
  const s = new Session(engine, 'CAE1');
  await s.register();
  ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
  return { engine, s, at: [['CAE1', s.path('reg', 'h')], ['CAE1', s.path('reg', 'memory')]] };
}

async function rig(dir: string, files: FlakyFiles, clock: { now: number }, compactAt?: number): Promise<McsEngine> {
  // The clock moves on by a second per reading: a failed request that touched lastModifiedTime would show.
  const tick = () => (clock.now += 1000);
  if (compactAt === undefined) return McsEngine.create({ dataDir: dir, masterKey: KEY, files, clock: tick });
  return McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, files, compactAt }), clock: tick });
}

/** What RETRIEVE shows at these addresses (status and content), as [originator, address] pairs. */
async function look(engine: McsEngine, at: readonly (readonly [string, string])[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [fr, to] of at) {
    const r = await new Session(engine, fr).retrieve(to);
    out[`${fr} ${to}`] = { rsc: r.rsc, pc: r.pc };
  }
  return out;
}

interface Step {
  what: string;
  /** Acknowledged requests that set the stage (not failed). */
  before?: () => Promise<void>;
  send: () => Promise<McsResponse>;
  /** The status code once the disk works. */
  ok: number;
  /** Runs with the failing and the succeeding request (the clock for an expiration), and is undone after the failing one. */
  arm?: () => void;
  disarm?: () => void;
}

async function scenario(mode: Mode): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
  const files = new FlakyFiles(await openFiles());
  const clock = { now: Date.UTC(2026, 10, 22, 12) };
  const rnd = prng(mode.length);
  try {
    const engine = await rig(dir, files, clock);
    const seId = engine.seIds[0]!;
    const s = new Session(engine, 'CAE1');
    const t = new Session(engine, 'CAE2');
    const at: [string, string][] = [
      ['CAE1', seId], ['CAE2', seId],
      ...['memory', 'warmReset', 'c', 'c/p', 'g', 'e', 'h', 'r', 's', 'x', 'd'].map((p): [string, string] => ['CAE1', `${seId}/reg/${p}`]),
      ['CAE2', `${seId}/two/h`],
    ];
    const aesKey = rnd(16), nonce = rnd(12);
    const secrets = [b64(aesKey)];
    const later = (ms: number) => {
      const d = new Date(clock.now + ms);
      const p = (n: number, w = 2) => String(n).padStart(w, '0');
      return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
    };
    const steps: Step[] = [
      { what: 'CREATE <SE> (a registration with its management objects)', send: () => s.create(seId, 20011, { 'senv:Senv': { rn: 'reg', sID: seId, seL: 1 } }), ok: 2001 },
      { what: 'CREATE <cipher> importing a key', send: () => s.create(seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1 << 20, kDt: b64(aesKey), kExp: true } }), ok: 2001 },
      { what: 'CREATE <algorithmSpecificParameter>', send: () => s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { rn: 'p', nc: b64(nonce) } }), ok: 2001 },
      { what: 'UPDATE <cipher>: a chunk (an append record)', send: () => s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(1000)) } }), ok: 2004 },
      {
        what: 'RETRIEVE <encrypt>: calculatedData and the end of the message',
        // The key's expanded schedule is cached in the core at its first use: use it once first.
        before: async () => {
          ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'first encrypt');
          ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(500)) } }), 2004, 'next message');
        },
        send: () => s.retrieve(s.path('reg', 'c', 'encrypt')),
        ok: 2000,
      },
      { what: 'UPDATE <cipher>: a 40 KiB chunk (it would open a stream)', send: () => s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(40000)) } }), ok: 2004 },
      { what: 'UPDATE <algorithmSpecificParameter> (it drops the open stream once it took effect)', send: () => s.update(s.path('reg', 'c', 'p'), { 'senv:algP': { aD: b64(rnd(7)) } }), ok: 2004 },
      { what: 'UPDATE <cipher> cbs 0 (discard the data)', send: () => s.update(s.path('reg', 'c'), { 'senv:Cph': { cbs: 0 } }), ok: 2004 },
      {
        what: 'RETRIEVE <decrypt> of a tampered message: 4102, and the end of the message is a change too',
        before: async () => {
          const ct = gcm(aesKey, nonce).encrypt(rnd(100));
          ct[0]! ^= 1;
          ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(ct) } }), 2004, 'tampered');
        },
        send: () => s.retrieve(s.path('reg', 'c', 'decrypt')),
        ok: 4102,
      },
      {
        what: 'RETRIEVE <generateRand>',
        // The SE's DRBG is instantiated in the core at its first use (and never rewound: random output is not reused).
        before: async () => {
          ok(await s.create(seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 16 } }), 2001, 'rand');
          ok(await s.retrieve(s.path('reg', 'r', 'gnR')), 2000, 'first random bytes');
        },
        send: () => s.retrieve(s.path('reg', 'r', 'gnR')),
        ok: 2000,
      },
      {
        what: 'RETRIEVE <generateKey> of a <cipher>',
        before: async () => void ok(await s.create(seId, 20002, { 'senv:Cph': { rn: 'g', Calg: 24, mbs: 64, kExp: true } }), 2001, 'keyless cipher'),
        send: () => s.retrieve(s.path('reg', 'g', 'generateKey')),
        ok: 2000,
      },
      {
        what: 'RETRIEVE <generateKey> of an ECDSA <signature>',
        before: async () => void ok(await s.create(seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: 33, kExp: true } }), 2001, 'ecdsa'),
        send: () => s.retrieve(s.path('reg', 'e', 'gnK')),
        ok: 2000,
      },
      { what: 'CREATE <hash> with a message', send: () => s.create(seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(rnd(10)), et: later(86400_000) } }), ok: 2001 },
      { what: 'UPDATE <hash>: a chunk and expirationTime (one record of the whole resource)', send: () => s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(20)), et: later(2 * 86400_000) } }), ok: 2004 },
      { what: 'RETRIEVE <calculateHash>', send: () => s.retrieve(s.path('reg', 'h', 'cHsh')), ok: 2000 },
      {
        what: 'UPDATE <signature>: a chunk after a verification (with the stale verificationResult: one record)',
        before: async () => {
          ok(await s.create(seId, 20012, { 'senv:Sgn': { rn: 's', Salg: 25, kDt: b64(rnd(32)), msg: b64(rnd(40)) } }), 2001, 'hmac');
          ok(await s.update(s.path('reg', 's'), { 'senv:Sgn': { Sgn: b64(rnd(32)) } }), 2004, 'a signature to verify');
          ok(await s.retrieve(s.path('reg', 's', 'vSgn')), 2000, 'verify');
        },
        send: () => s.update(s.path('reg', 's'), { 'senv:Sgn': { msg: b64(rnd(30)) } }),
        ok: 2004,
      },
      {
        what: 'RETRIEVE <calculateSignature> (it removes the verificationResult)',
        before: async () => void ok(await s.retrieve(s.path('reg', 's', 'vSgn')), 2000, 'verify'),
        send: () => s.retrieve(s.path('reg', 's', 'cSgn')),
        ok: 2000,
      },
      { what: 'UPDATE <SE>', send: () => s.update(seId, { 'senv:Senv': { hal: ['CAE1', 'CAE3'] } }), ok: 2004 },
      {
        what: 'UPDATE [SEReboot]: the reboot waits for the write (open streams and the DRBG stay)',
        before: async () => void ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(40000)) } }), 2004, 'open a stream'),
        send: () => s.update(s.path('reg', 'warmReset'), { 'senv:Srbt': { rb: true } }),
        ok: 2004,
      },
      { what: 'CREATE <sensitiveDataObject>', send: () => s.create(seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(rnd(300)) } }), ok: 2001 },
      { what: 'DELETE <sensitiveDataObject>', send: () => s.delete(s.path('reg', 'd')), ok: 2002 },
      {
        what: 'expiration of a <cipher> whose key the core holds',
        before: async () => {
          ok(await s.create(seId, 20002, { 'senv:Cph': { rn: 'x', Calg: 1002, mbs: 64, kDt: b64(rnd(32)), et: later(60_000) } }), 2001, 'expiring');
          ok(await s.create(s.path('reg', 'x'), 20001, { 'senv:algP': { nc: b64(rnd(12)) } }), 2001, 'nonce');
          ok(await s.retrieve(s.path('reg', 'x', 'encrypt')), 2000, 'key in use');
        },
        arm: () => void (clock.now += 120_000),
        disarm: () => void (clock.now -= 120_000),
        send: () => s.retrieve(seId),
        ok: 2000,
      },
      {
        what: 'DELETE <SE> (deregistration)',
        before: async () => {
          ok(await t.create(seId, 20011, { 'senv:Senv': { rn: 'two', sID: seId, seL: 1 } }), 2001, 'CAE2');
          ok(await t.create(seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 5, msg: b64(rnd(50)) } }), 2001, 'CAE2 hash');
        },
        send: () => t.delete(seId),
        ok: 2002,
      },
    ];
    for (const step of steps) {
      await step.before?.();
      const was = await look(engine, at);
      const memory = inUse();
      const failedBefore = files.failed;
      files.fail(mode);
      step.arm?.();
      const r = await step.send();
      files.heal();
      step.disarm?.();
      expect(files.failed, step.what).toBeGreaterThan(failedBefore);
      expect(r.rsc, `${step.what}: ${JSON.stringify(r.pc)}`).toBe(5000);
      const dbg = String(r.pc?.['m2m:dbg']);
      expect(dbg, step.what).toBe(`storage write failed (${mode}): nothing was changed`);
      for (const secret of secrets) expect(dbg).not.toContain(secret);
      expect(await look(engine, at), step.what).toEqual(was);
      expect(inUse(), step.what).toBe(memory);
      step.arm?.();
      expect((await step.send()).rsc, `${step.what} once the disk works`).toBe(step.ok);
    }
    expect((await look(engine, at))[`CAE1 ${seId}/reg/x`]).toMatchObject({ rsc: 4004 });
    const acknowledged = await look(engine, at);
    await engine.close();

    const again = await rig(dir, files, clock);
    expect(await look(again, at)).toEqual(acknowledged);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Mcs: a failed write changes nothing', () => {
  for (const mode of ['ENOSPC', 'EIO', 'EROFS'] as const) {
    it(`${mode}: every kind of mutating request answers 5000 and leaves state, WASM memory and the store as they were`, () => scenario(mode), 60_000);
  }

  it('a best-effort step that fails changes no outcome: a new directory\'s parent flush at open, the lock\'s removal at close and after a failed open (coverage gaps)', async () => {
    const top = mkdtempSync(join(tmpdir(), 'senv-best-effort-'));
    try {
      const files = new FlakyFiles(await openFiles());
      // The first flush of an open of a new directory is its parent's: it fails, and the open goes on.
      const dir = join(top, 'new', 'data');
      files.fail('EIO', 0, 1, ['syncDir']);
      const store = await JournalStore.open({ dir, masterKey: KEY, files });
      expect(files.failed).toBe(1);
      const engine = await McsEngine.create({ store });
      await new Session(engine, 'CAE1').register();
      // At close the lock cannot be removed (nor the temp files): close() resolves all the same, the lock left for the next opener.
      files.fail('EROFS', 0, Infinity, ['remove']);
      await expect(engine.close()).resolves.toBeUndefined();
      expect(files.failed).toBeGreaterThan(1);
      expect(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')).pid).toBe(process.pid);
      files.heal();
      rmSync(join(dir, 'lock'));
      // An open refused (a damaged meta.json) whose lock then cannot be removed: the refusal is the open's own.
      writeFileSync(join(dir, 'meta.json'), '[6]');
      files.fail('EROFS', 0, Infinity, ['remove']);
      const failedBefore = files.failed;
      await expect(JournalStore.open({ dir, masterKey: KEY, files })).rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'meta.json' });
      expect(files.failed).toBe(failedBefore + 1);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('a binary generateRand whose write fails: 5000, and the random bytes the backend handed over (lent to the answer) are zeroized (coverage gap)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
    const handed: Uint8Array[] = [];
    class Watched extends SoftwareBackend {
      override async random(type: 1 | 2, length: number): Promise<Uint8Array> {
        const r = await super.random(type, length);
        handed.push(r);
        return r;
      }
    }
    try {
      const files = new FlakyFiles(await openFiles());
      const engine = await McsEngine.create({ dataDir: dir, masterKey: KEY, files, backends: [new Watched()] });
      const s = new Session(engine, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 100 } }), 2001, '<rand>');
      const gnR = { op: 2, to: s.path('reg', 'r', 'generateRand'), fr: 'CAE1' } as const;
      files.fail('EROFS', 0, Infinity, ['append']);
      const r = await engine.send({ ...gnR, rqi: 'failing' }, { binary: true });
      expect(r.rsc).toBe(5000);
      expect(handed.length).toBe(1);
      expect(handed[0]!.length).toBe(100);
      expect(handed[0]!.every((b) => b === 0), 'the handed random bytes zeroized').toBe(true);
      files.heal();
      const good = await engine.send({ ...gnR, rqi: 'ok' }, { binary: true });
      expect(good.rsc).toBe(2000);
      expect((good.pc!['senv:Rnd'] as { rndD: Uint8Array }).rndD.length).toBe(100);
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a CREATE of a <sensitiveDataObject> whose write fails after its data went to the device: the write\'s failure is the answer, also when taking the data back off the device fails too; close() removes that data, or names it when it still cannot', async () => {
    for (const healed of [true, false]) {
      const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
      const objects = new Map<string, Uint8Array>();
      let removals = 0;
      let removable = false;
      const device: ObjectStore = {
        write: async (id, d) => void objects.set(id, d.slice()),
        read: async (id) => objects.get(id)!.slice(),
        remove: async (id) => {
          removals++;
          if (!removable) throw new Error('card gone');
          objects.delete(id);
        },
      };
      try {
        const files = new FlakyFiles(await openFiles());
        const engine = await McsEngine.create({ dataDir: dir, masterKey: KEY, files, backends: [Object.assign(new SoftwareBackend(), { objectStore: device })] });
        const s = new Session(engine, 'CAE1');
        await s.register();
        await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'kept', msg: b64(new Uint8Array([9])) } });
        files.fail('EROFS', 0, Infinity, ['append']);
        const r = await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(new Uint8Array([1, 2, 3])) } });
        files.heal();
        expect([r.rsc, r.pc?.['m2m:dbg']]).toEqual([5000, 'storage write failed (EROFS): nothing was changed']);
        expect(removals, 'taking the data back was tried').toBe(1);
        expect((await s.retrieve(s.path('reg', 'd'))).rsc).toBe(4004);
        // The stray, named by no resource: the data of the resource that stands stays with the store.
        const [kept, stray] = [...objects.keys()] as [string, string];
        expect(objects.size).toBe(2);
        removable = healed;
        if (healed) {
          await engine.close();
          expect([...objects.keys()], 'the stray removed at close, the stored resource\'s data kept').toEqual([kept]);
        } else {
          await expect(engine.close()).rejects.toThrow(new RegExp(`^1 data object of <sensitiveDataObject>s stays on the device \\(resource ID ${stray}\\): removing it failed`));
          expect([...objects.keys()]).toEqual([kept, stray]);
        }
        expect(removals, 'close() tried the stray only').toBe(2);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('the Nth write of a snapshot or of a journal cut fails: the write that triggered it stands, the store stays consistent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
    const files = new FlakyFiles(await openFiles());
    const clock = { now: Date.UTC(2026, 10, 22, 12) };
    const rnd = prng(5);
    try {
      const { engine, s, at } = await compactingHash(dir, files, clock);
      // Each chunk's record is ~1.4 KiB: a snapshot is due every third one. Each of its steps (the
      // temp file written and flushed, the rename, the directory flush, the journal cut) fails once
      // in each way a disk can fail it, and the test makes sure that failure happened.
      const steps: [Op, Mode][] = [['writeDurable', 'ENOSPC'], ['writeDurable', 'EIO'], ['writeDurable', 'EROFS'], ['rename', 'EIO'], ['rename', 'EROFS'], ['syncDir', 'EIO'], ['truncate', 'EIO'], ['truncate', 'EROFS']];
      let i = 0;
      for (const [op, mode] of steps) {
        const before = files.failed;
        files.fail(mode, 0, 1, [op]);
        for (let tries = 0; files.failed === before && tries < 6; tries++, i++) {
          // A snapshot's failure leaves the write that triggered it standing (2004); a journal cut
          // still pending from an earlier failure is retried before the next record, and when
          // that fails, so does the request, changing nothing (5000).
          const r = await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(1000)) } });
          expect([2004, 5000], `chunk ${i} (${op} ${mode}): ${JSON.stringify(r.pc)}`).toContain(r.rsc);
        }
        expect(files.failed, `${op} failed with ${mode}`).toBe(before + 1);
        files.heal();
      }
      const acknowledged = await look(engine, at);
      await engine.close();
      const again = await rig(dir, files, clock, 4096);
      expect(await look(again, at)).toEqual(acknowledged);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('two SEs write at once while writes fail: a failed write\'s cut never takes the other SE\'s acknowledged record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
    const files = new FlakyFiles(await openFiles());
    const rnd = prng(9);
    try {
      const open = async () => McsEngine.create({
        store: await JournalStore.open({ dir, masterKey: KEY, files, compactAt: 8192 }),
        backends: [new SoftwareBackend({ uniqueId: 'aa'.repeat(16) }), new SoftwareBackend({ uniqueId: 'bb'.repeat(16) })],
      });
      const engine = await open();
      const ses = engine.seIds.map((id) => new Session(engine, 'CAE1', id));
      await Promise.all(ses.map((s) => s.register()));
      const acked: [Session, string][] = [];
      const refused: [Session, string][] = [];
      for (let i = 0; i < 30; i++) {
        files.fail((['ENOSPC', 'EIO', 'EROFS'] as const)[i % 3]!, i % 3, 1, ['append']);
        await Promise.all(ses.flatMap((s) => [0, 1].map(async (k) => {
          const rn = `d${i}-${k}`;
          const r = await s.create(s.seId, 20009, { 'senv:Sdo': { rn, msg: b64(rnd(200)) } });
          expect([2001, 5000]).toContain(r.rsc);
          (r.rsc === 2001 ? acked : refused).push([s, rn]);
        })));
        files.heal();
      }
      expect(refused.length).toBe(30);
      await engine.close();
      const again = await open();
      for (const [s, rn] of acked) ok(await new Session(again, 'CAE1', s.seId).retrieve(s.path('reg', rn)), 2000, `acknowledged ${s.seId} ${rn}`);
      for (const [s, rn] of refused) ok(await new Session(again, 'CAE1', s.seId).retrieve(s.path('reg', rn)), 4004, `refused ${s.seId} ${rn}`);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a snapshot half done (its journal cut failing up to the end, or its directory flush failing): the next run verifies the journal and keeps every acknowledged write', async () => {
    for (const op of ['truncate', 'syncDir'] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
      const files = new FlakyFiles(await openFiles());
      const clock = { now: Date.UTC(2026, 10, 22, 12) };
      const rnd = prng(7);
      try {
        const { engine, s, at } = await compactingHash(dir, files, clock);
        const chunk = () => s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(1000)) } });
        // A snapshot that works first: the journal's records then chain from a snapshot's MAC.
        for (let i = 0; i < 6; i++) ok(await chunk(), 2004, `${op}: chunk ${i}`);
        files.fail('EIO', 0, Infinity, [op]);
        const codes: number[] = [];
        for (let i = 0; i < 8 && !codes.includes(5000); i++) codes.push((await chunk()).rsc);
        expect(files.failed, op).toBeGreaterThan(0);
        // A journal that cannot be cut refuses the next write; a failed directory flush fails no write.
        expect(codes.includes(5000), op).toBe(op === 'truncate');
        const acknowledged = await look(engine, at);
        await engine.close();
        files.heal();
        const again = await rig(dir, files, clock, 4096);
        expect(await look(again, at), op).toEqual(acknowledged);
        for (let i = 0; i < 6; i++) ok(await new Session(again, 'CAE1').update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(1000)) } }), 2004, `${op}: after the restart ${i}`);
        const later = await look(again, at);
        await again.close();
        const third = await rig(dir, files, clock, 4096);
        expect(await look(third, at), op).toEqual(later);
        await third.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }, 60_000);
  it('a snapshot that replaced one of the same state (at open, its journal empty) whose directory flush failed: the next record verifies after either snapshot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
    const fixture = join(import.meta.dirname, 'fixtures', 'format2-snapshot');
    const masterKey = () => new Uint8Array(32).fill(0x4c);
    try {
      // A format 2 directory as an earlier senv leaves it after a compaction, upgraded by a snapshot at open.
      cpSync(fixture, dir, { recursive: true });
      truncateSync(join(dir, 'journal.log'), 0);
      const real = await openFiles();
      let renamed = false;
      let failed = 0;
      const files: Files = {
        ...real,
        rename: async (from, to) => {
          await real.rename(from, to);
          if (to.endsWith('/snapshot.json')) renamed = true;
        },
        syncDir: async (path) => {
          if (renamed && failed++ === 0) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
          return real.syncDir(path);
        },
      };
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: masterKey(), files });
      expect(failed, 'the flush after the snapshot\'s rename failed').toBe(1);
      const s1 = new Session(e1, 'CAE1');
      ok(await s1.create(s1.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'acknowledged after the failed flush');
      await e1.close();
      const reopened = async (what: string) => {
        const e = await McsEngine.create({ dataDir: dir, masterKey: masterKey() });
        const s = new Session(e, 'CAE1');
        ok(await s.retrieve(s.path('reg', 'd0')), 2000, `${what}: the fixture's data`);
        ok(await s.retrieve(s.path('reg', 'h')), 2000, `${what}: the acknowledged write`);
        await e.close();
      };
      // The new snapshot on disk, as the rename left it; and the one it replaced, as a power cut that lost the rename would.
      const journal = readFileSync(join(dir, 'journal.log'));
      expect(JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8').split('\n')[0]!).format, 'the new snapshot is in place').toBe(3);
      const upgraded = readFileSync(join(dir, 'snapshot.json'));
      await reopened('the new snapshot');
      rmSync(dir, { recursive: true });
      cpSync(fixture, dir, { recursive: true });
      writeFileSync(join(dir, 'journal.log'), journal);
      await reopened('the snapshot it replaced');
      // And the new one with the same journal once more, before the reopens above compacted it.
      writeFileSync(join(dir, 'snapshot.json'), upgraded);
      writeFileSync(join(dir, 'journal.log'), journal);
      await reopened('the new snapshot, its journal as the failed flush left it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(['meta.json', 'snapshot.json'])('a snapshot whose %s cannot be written: the journal stays uncut, and the next snapshot waits for as much journal again, not for the next record', async (failing) => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-mcs-fail-'));
    const real = await openFiles();
    let failMeta = false;
    let snapshots = 0;
    const files: Files = {
      ...real,
      writeDurable: async (path, data) => {
        if (path.endsWith('/snapshot.json.tmp')) snapshots++;
        if (failMeta && path.endsWith(`/${failing}.tmp`)) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        return real.writeDurable(path, data);
      },
    };
    const clock = { now: Date.UTC(2026, 10, 22, 12) };
    const rnd = prng(11);
    const chunks: Uint8Array[] = [];
    try {
      // A new directory: its first snapshot is the one that writes format 6.
      const engine = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, files, compactAt: 4096 }), clock: () => (clock.now += 1000) });
      const s = new Session(engine, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      failMeta = true;
      for (let i = 0; i < 40; i++) {
        chunks.push(rnd(500));
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(chunks[i]!) } }), 2004, `chunk ${i}`);
      }
      const journal = statSync(join(dir, 'journal.log')).size;
      expect(journal, 'the journal kept every record').toBeGreaterThan(8 * 4096);
      // One snapshot per 4096 bytes of journal at most (before, one after every record past the first: 38).
      expect(snapshots, `snapshots while ${failing} cannot be written`).toBeGreaterThan(0);
      expect(snapshots).toBeLessThanOrEqual(Math.ceil(journal / 4096));
      expect(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).format).toBe(3);
      // An et UPDATE could keep the message, which takes the snapshot that makes format 6 first: not while one that
      // failed waits for the journal to grow (five records of a small message cross 4096 bytes once at most).
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'small', Halg: 4, msg: 'AAAA' } }), 2001, 'a hash of a small message');
      const before = snapshots;
      for (let i = 0; i < 5; i++) ok(await s.update(s.path('reg', 'small'), { 'senv:Hsh': { et: `2098010${i + 1}T000000` } }), 2004, `et ${i}`);
      expect(snapshots - before, 'snapshots tried for five et UPDATEs').toBeLessThanOrEqual(1);
      // Once it can be written: a snapshot whose mark is missing is made again at close() (format 6, the
      // journal emptied); one that was never written waits for the next compaction. The data survives.
      failMeta = false;
      await engine.close();
      if (failing === 'meta.json') {
        expect(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).format).toBe(6);
        expect(statSync(join(dir, 'journal.log')).size).toBe(0);
      }
      const again = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const hv = (await new Session(again, 'CAE1').retrieve(s.path('reg', 'h', 'calculateHash'))).pc as Record<string, { Hv?: string }>;
      expect(hv['senv:Hsh']?.Hv).toBe(nodeCrypto.createHash('sha256').update(Buffer.concat(chunks)).digest('base64'));
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('a failure of the backend while a record is made is the backend\'s, not the disk\'s', () => {
  it('a storeKey that fails answers as any backend failure (no "storage write failed"), and nothing is created', async () => {
    for (const [error, rsc, dbg] of [
      [new StateError('card removed'), 4005, 'card removed'],
      [new Error('unplugged'), 5000, 'internal error (Error)'],
    ] as const) {
      class Failing extends SoftwareBackend {
        override async storeKey(): Promise<never> {
          throw error;
        }
      }
      const dir = mkdtempSync(join(tmpdir(), 'senv-storekey-'));
      try {
        const engine = await McsEngine.create({ backends: [new Failing()], dataDir: dir, masterKey: KEY });
        const s = new Session(engine, 'CAE1');
        await s.register();
        const r = await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(new Uint8Array(32).fill(1)) } });
        expect([r.rsc, r.pc?.['m2m:dbg']], error.message).toEqual([rsc, dbg]);
        expect((await s.retrieve(s.path('reg', 'm'))).rsc, 'nothing created').toBe(4004);
        await engine.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

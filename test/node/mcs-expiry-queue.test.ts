// The expiry queue against a plain map scanned whole (what the engine did before the queue), on
// random runs of times set, moved, removed and swept, and through the engine: resources falling
// due among many that are not, a sweep whose removal the store refused.
import { describe, it, expect, vi } from 'vitest';
import nodeCrypto from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ExpiryQueue } from '../../src/mcs/expiry.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McsEngine, SoftwareBackend } from '../../src/index.ts';
import { openFiles, type Files } from '../../src/mcs/store/files.ts';
import { Session, b64, fails, ok } from '../portable/mcs-kit.ts';

/** The engine clock's start in the cases on an injected clock, and the oneM2M timestamp `ms` after it. */
const START = Date.UTC(2026, 10, 22, 12);
const et = (ms: number) => new Date(START + ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');

/**
 * Lets what a sweep started run (its writes are real file operations; setImmediate is not faked): until `done`
 * (for at most 10 s of real time: a loaded machine's fsync can outlast any count of turns), or without one for
 * 2,000 turns of the event loop.
 */
async function settle(done?: () => boolean): Promise<void> {
  const until = Date.now() + 10_000;
  for (let i = 0; done ? !done() && Date.now() < until : i < 2000; i++) await new Promise((r) => setImmediate(r));
}

/**
 * An engine on a fresh data directory through `files`, its clock `clock.now` (START at first) and its timers faked,
 * registered as CAE1 for `body`; closed, and the directory removed, after it.
 */
async function onInjectedClock(files: Files, body: (s: Session, clock: { now: number }) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'senv-expiry-'));
  const clock = { now: START };
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  try {
    const engine = await McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(7), files, clock: () => clock.now });
    try {
      const s = new Session(engine, 'CAE1');
      await s.register();
      await body(s, clock);
    } finally {
      await engine.close();
    }
  } finally {
    vi.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('ExpiryQueue', () => {
  it('agrees with a scan of every time on 25 random runs of 3,000 operations (sets, moves, removals, sweeps)', () => {
    for (let run = 0; run < 25; run++) {
      const q = new ExpiryQueue<number>();
      const model = new Map<number, number>();
      let now = 0;
      const items = 1 + nodeCrypto.randomInt(200);
      for (let op = 0; op < 3000; op++) {
        const r = nodeCrypto.randomInt(100);
        const item = nodeCrypto.randomInt(items);
        if (r < 45) {
          // Times close together (ties) and far apart; some already past.
          const at = now + nodeCrypto.randomInt(-5, r < 30 ? 20 : 5000);
          q.set(item, at);
          model.set(item, at);
        } else if (r < 55) {
          q.set(item, undefined);
          model.delete(item);
        } else if (r < 65) {
          q.delete(item);
          model.delete(item);
        } else {
          now += nodeCrypto.randomInt(30);
          const due = q.due(now);
          const expected = [...model].filter(([, at]) => at <= now).sort((a, b) => a[1] - b[1]);
          expect(due.map((i) => model.get(i)), `run ${run} op ${op}: earliest first`).toEqual(expected.map(([, at]) => at));
          expect(new Set(due), `run ${run} op ${op}`).toEqual(new Set(expected.map(([i]) => i)));
          for (const i of due) model.delete(i);
          // After a sweep the queue names the earliest live time exactly.
          expect(q.next, `run ${run} op ${op}: next`).toBe(Math.min(Infinity, ...model.values()));
        }
        expect(q.size).toBe(model.size);
        // Never later than the earliest live time (a removed one may stand in front: a sweep for nothing).
        expect(q.next).toBeLessThanOrEqual(Math.min(Infinity, ...model.values()));
      }
    }
  });

  it('items removed before their time are not kept alive by the queue (deleted resources: their old entries go)', async () => {
    const q = new ExpiryQueue<object>();
    const refs: WeakRef<object>[] = [];
    for (let i = 0; i < 1000; i++) {
      const item = {};
      refs.push(new WeakRef(item));
      q.set(item, 86_400_000 + i);
    }
    for (const r of refs) q.delete(r.deref()!);
    // A WeakRef's target stays until the job that deref'd it ends: collected in later tasks.
    let alive = refs.length;
    for (let round = 0; round < 50 && alive > 64; round++) {
      await new Promise((r) => setTimeout(r, 0));
      gc();
      alive = refs.filter((r) => r.deref() !== undefined).length;
    }
    expect(alive, 'items still reachable after their removal').toBeLessThanOrEqual(64);
    // The few entries left name removed items: a sweep finds nothing and clears them.
    expect(q.due(Infinity)).toEqual([]);
    expect(q.next).toBe(Infinity);
  });

  it('a time moved 100,000 times (the old entries rebuilt away): sweeps stay right', () => {
    const q = new ExpiryQueue<string>();
    for (let i = 0; i < 100_000; i++) q.set('kept alive', 1_000_000 + i);
    q.set('soon', 10);
    expect(q.due(10)).toEqual(['soon']);
    expect(q.next).toBe(1_000_000 + 99_999);
    expect(q.due(2_000_000)).toEqual(['kept alive']);
    expect(q.next).toBe(Infinity);
    expect(q.size).toBe(0);
  });
});

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('expirations through the engine', () => {
  it('resources falling due one at a time among many that are not: each goes at its time, the others stay', async () => {
    let now = Date.parse('2026-11-22T12:00:00Z');
    const engine = await McsEngine.create({ backends: [new SoftwareBackend()], clock: () => now });
    try {
      const s = new Session(engine, 'CAE1');
      await s.register();
      const et = (ms: number) => new Date(now + ms).toISOString().replace(/[-:]/g, '').replace('.', ',').replace('Z', '');
      for (let i = 0; i < 300; i++) ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: `far${i}`, Halg: 4, et: et(86_400_000 + i) } }), 2001, 'far');
      for (let i = 0; i < 20; i++) ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: `soon${i}`, Halg: 4, et: et(1000 * (i + 1)) } }), 2001, 'soon');
      for (let i = 0; i < 20; i++) {
        now += 1000;
        expect((await s.retrieve(s.path('reg', `soon${i}`))).rsc, `soon${i} at its time`).toBe(4004);
        if (i + 1 < 20) ok(await s.retrieve(s.path('reg', `soon${i + 1}`)), 2000, `soon${i + 1} before its time`);
      }
      ok(await s.retrieve(s.path('reg', 'far299')), 2000, 'far');
    } finally {
      await engine.close();
    }
  });

  it('close() takes the expiry timer down: no timer keeps a closed engine reachable until the next expirationTime', async () => {
    const engine = await McsEngine.create({ backends: [new SoftwareBackend()] });
    const s = new Session(engine, 'CAE1');
    await s.register();
    const et = new Date(Date.now() + 3_600_000).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
    // Fake timers count the engine's (which are unref'd, and so not among the process's active resources).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, et } }), 2001, 'due in an hour');
      expect(vi.getTimerCount(), 'armed for it').toBe(1);
      await engine.close();
      expect(vi.getTimerCount(), 'after close()').toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a clock stepped a day forward with no traffic: the timer reads it again within a minute and removes what fell due, not an hour later', async () => {
    const real = await openFiles();
    let written = 0;
    const files: Files = { ...real, append: async (path, data) => {
      await real.append(path, data);
      written++;
    } };
    await onInjectedClock(files, async (s, clock) => {
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 16, kDt: b64(new Uint8Array(16).fill(1)), et: et(3_600_000) } }), 2001, 'due in an hour');
      const before = written;
      // The wall clock steps forward (NTP, a host resumed from suspend); the timers' clock does not.
      clock.now += 86_400_000;
      await vi.advanceTimersByTimeAsync(60_000);
      await settle(() => written > before);
      expect(written - before, 'the removal written by the timer, with no request').toBe(1);
      fails(await s.retrieve(s.path('reg', 'c')), 4004, 'gone');
      expect(written - before, 'that RETRIEVE found nothing left to remove').toBe(1);
    });
  });

  it('the expiry timer\'s sweep that the store refuses is tried again a second later, not at once (no busy loop on a failing disk), and goes through once the disk works (coverage gap)', async () => {
    const real = await openFiles();
    let failing = false, refused = 0, written = 0;
    const files: Files = { ...real, append: async (path, data) => {
      if (failing) {
        refused++;
        throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
      }
      await real.append(path, data);
      written++;
    } };
    await onInjectedClock(files, async (s, clock) => {
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, et: et(5_000) } }), 2001, 'due in 5 s');
      failing = true;
      clock.now = START + 5_000;
      await vi.advanceTimersByTimeAsync(5_000);
      await settle(() => refused === 1 && vi.getTimerCount() === 1);
      expect(refused, 'the sweep at its time, refused').toBe(1);
      // Not before a second has passed, however long the disk keeps failing.
      clock.now += 999;
      await vi.advanceTimersByTimeAsync(999);
      await settle();
      expect(refused, 'no retry within the second').toBe(1);
      clock.now += 1;
      await vi.advanceTimersByTimeAsync(1);
      await settle(() => refused === 2 && vi.getTimerCount() === 1);
      expect(refused, 'retried a second later').toBe(2);
      failing = false;
      const before = written;
      clock.now += 1_000;
      await vi.advanceTimersByTimeAsync(1_000);
      await settle(() => written > before);
      await settle();
      expect(`${refused},${written - before}`, 'the removal written').toBe('2,1');
      expect(vi.getTimerCount(), 'nothing left to wait for').toBe(0);
      failing = true;
      try {
        fails(await s.retrieve(s.path('reg', 'h')), 4004, 'gone, with no request to remove it');
        expect(refused, 'and that RETRIEVE wrote nothing').toBe(2);
      } finally {
        failing = false;
      }
    });
  });

  it('the expiry timer\'s sweep waits for a request that holds the SE; close() called meanwhile, it removes nothing (coverage gap)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-expiry-'));
    /** A software SE whose RNG stops answering while `stuck`, until released. */
    class Stuck extends SoftwareBackend {
      stuck = false;
      #release: (() => void)[] = [];
      override async random(type: 1 | 2, length: number): Promise<Uint8Array> {
        if (this.stuck) await new Promise<void>((r) => this.#release.push(r));
        return super.random(type, length);
      }
      release(): void {
        this.stuck = false;
        for (const r of this.#release.splice(0)) r();
      }
    }
    const real = await openFiles();
    let removals = 0;
    const files: Files = { ...real, append: async (path, data) => {
      if (Buffer.from(data).includes('"op":"remove"')) removals++;
      return real.append(path, data);
    } };
    let now = START;
    const b = new Stuck();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const engine = await McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(7), files, backends: [b], clock: () => now });
      const s = new Session(engine, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 8 } }), 2001, '<rand>');
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, et: et(5_000) } }), 2001, 'due in 5 s');
      b.stuck = true;
      const hung = s.retrieve(s.path('reg', 'r', 'generateRand'));
      now = START + 5_000;
      await vi.advanceTimersByTimeAsync(5_000);
      expect(vi.getTimerCount(), 'the sweep waits for its turn').toBe(0);
      const closing = engine.close();
      b.release();
      ok(await hung, 2000, 'the request that held the SE');
      await closing;
      expect(removals, 'no removal written once close() was called').toBe(0);
    } finally {
      vi.useRealTimers();
    }
    // The next run finds it, and removes it at the first request past its time.
    try {
      const again = await McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(7), files, clock: () => now });
      fails(await new Session(again, 'CAE1').retrieve(`${again.seIds[0]}/reg/h`), 4004, 'expired');
      expect(removals).toBe(1);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a sweep the store refused leaves every due resource due, a child that went with its parent too: the parent kept (its et moved on), the child goes at its time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-expiry-'));
    try {
      const real = await openFiles();
      let failing = false;
      const files: Files = { ...real, append: async (path, data) => {
        if (failing) throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
        return real.append(path, data);
      } };
      let now = START;
      const engine = await McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(7), files, clock: () => now });
      try {
        const s = new Session(engine, 'CAE1');
        await s.register();
        ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, et: et(60_000) } }), 2001, 'a cipher');
        ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { rn: 'p', nc: b64(new Uint8Array(12)), et: et(30_000) } }), 2001, 'its parameters, due first');
        now = START + 120_000;
        failing = true;
        fails(await s.retrieve(s.seId), 5000, 'both due, the store refuses');
        failing = false;
        // Back before either was due: the cipher's et moves on, its parameters' stays.
        now = START;
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { et: et(86_400_000) } }), 2004, 'cipher kept');
        ok(await s.retrieve(s.path('reg', 'c', 'p')), 2000, 'parameters before their time');
        now = START + 31_000;
        fails(await s.retrieve(s.path('reg', 'c', 'p')), 4004, 'parameters at their time');
        ok(await s.retrieve(s.path('reg', 'c')), 2000, 'cipher');
      } finally {
        await engine.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

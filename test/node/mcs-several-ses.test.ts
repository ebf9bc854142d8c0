// An engine hosting several SEs: one busy with a long request (or a card that
// stopped answering) delays neither another SE's expirations nor its closing.
import { describe, expect, it, vi } from 'vitest';
import { McsEngine, SelfTestError, SoftwareBackend, StateError } from '../../src/index.ts';
import type { KeyHandle, RngType } from '../../src/backends/backend.ts';
import { formatTimestamp } from '../../src/mcs/codec.ts';
import { Session, ok } from '../portable/mcs-kit.ts';

/** A software SE whose random() waits until release() is called. */
class Held extends SoftwareBackend {
  #release!: () => void;
  readonly #gate = new Promise<void>((resolve) => (this.#release = resolve));
  release(): void {
    this.#release();
  }
  override async random(type: RngType, length: number): Promise<Uint8Array> {
    await this.#gate;
    return super.random(type, length);
  }
}

/** A software SE that counts the keys it lets go of. */
class Watched extends SoftwareBackend {
  released = 0;
  closed = false;
  override releaseKey(key: KeyHandle): void {
    this.released++;
    super.releaseKey(key);
  }
  override async close(): Promise<void> {
    this.closed = true;
    await super.close();
  }
}

/** A software SE whose reboot, or random(), can be made to fail. */
class Flaky extends SoftwareBackend {
  /** What reboot() throws, if anything. */
  rebootFails: Error | undefined;
  randomRefused = false;
  override async reboot(type: Parameters<SoftwareBackend['reboot']>[0]): Promise<void> {
    if (this.rebootFails) throw this.rebootFails;
    await super.reboot(type);
  }
  override async random(type: RngType, length: number): Promise<Uint8Array> {
    if (this.randomRefused) throw new StateError('the generator is not ready');
    return super.random(type, length);
  }
}

const KEY = 'AAECAwQFBgcICQoLDA0ODw==';
// The caps are no measure of "on time": what they guard against (a wake-up or close() that waits for the
// busy SE, which the test holds until after the wait) never comes, so they are generous for a loaded machine.
const until = async (what: () => boolean, ms: number) => {
  for (const end = Date.now() + ms; !what() && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
  return what();
};

async function twoSes() {
  const busy = new Held({ uniqueId: '11'.repeat(16) });
  const idle = new Watched({ uniqueId: '22'.repeat(16) });
  const engine = await McsEngine.create({ backends: [busy, idle] });
  const [se1, se2] = engine.seIds as [string, string];
  const s1 = new Session(engine, 'CAE1', se1), s2 = new Session(engine, 'CAE1', se2);
  await s1.register();
  await s2.register();
  ok(await s1.create(se1, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 16 } }), 2001, 'rand');
  // A request that holds SE 1 until the test lets it go.
  const stuck = s1.retrieve(`${se1}/reg/r/generateRand`);
  return { engine, busy, idle, s2, se2, stuck };
}

describe('an engine with several SEs', () => {
  it('expires an idle SE\'s resources on time (keys released) while another SE serves a long request', async () => {
    const { engine, busy, idle, s2, se2, stuck } = await twoSes();
    // The timer's next wake-up, after the first expiration, must not wait for SE 1 either.
    for (const [rn, ms] of [['c1', 300], ['c2', 600]] as const) {
      ok(await s2.create(se2, 20002, { 'senv:Cph': { rn, Calg: 1001, mbs: 64, kDt: KEY, et: formatTimestamp(Date.now() + ms) } }), 2001, `cipher ${rn} with et`);
    }
    expect(await until(() => idle.released === 2, 20_000), 'both keys released by the timer while SE 1 is busy').toBe(true);
    busy.release();
    ok(await stuck, 2000, 'the long request');
    await engine.close();
  });

  it('close() releases an idle SE\'s keys and closes its backend at once, while another SE finishes its request', async () => {
    const { engine, busy, idle, s2, se2, stuck } = await twoSes();
    ok(await s2.create(se2, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: KEY } }), 2001, 'cipher');
    let closed = false;
    const closing = engine.close().then(() => void (closed = true));
    expect(await until(() => idle.closed && idle.released === 1, 20_000), 'SE 2 closed with its key released').toBe(true);
    expect(closed, 'close() waits for the request under way on SE 1').toBe(false);
    busy.release();
    ok(await stuck, 2000, 'the request under way is served');
    await closing;
  });

  it('an SE out of service answers 5000 to all but an UPDATE of an [SEReboot], registered or not, while the other serves; a reboot brings it back; a backend StateError is 4005', async () => {
    const flaky = new Flaky({ uniqueId: '33'.repeat(16) });
    const engine = await McsEngine.create({ backends: [flaky, new SoftwareBackend({ uniqueId: '44'.repeat(16) })] });
    const [se1, se2] = engine.seIds as [string, string];
    const s1 = new Session(engine, 'CAE1', se1), s2 = new Session(engine, 'CAE1', se2), stranger = new Session(engine, 'CAE9', se1);
    await s1.register();
    await s2.register();
    ok(await s1.create(se1, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 16 } }), 2001, 'rand');
    flaky.randomRefused = true;
    const refused = await s1.retrieve(`${se1}/reg/r/generateRand`);
    expect([refused.rsc, (refused.pc as Record<string, unknown>)['m2m:dbg']]).toEqual([4005, 'the generator is not ready']);
    flaky.randomRefused = false;
    flaky.rebootFails = new SelfTestError('self test failed: AES-128-GCM');
    const reboot = () => s1.update(`${se1}/reg/warmReset`, { 'senv:Srbt': { rb: true } });
    const dbg = (r: { pc?: Record<string, unknown> }) => r.pc?.['m2m:dbg'];
    const failed = await reboot();
    expect([failed.rsc, dbg(failed)]).toEqual([5000, "SE reboot failed (ERR_CORE self test): the request's change took effect, the SE is out of service"]);
    // Out of service comes first, also for an originator that is not registered (not 4106).
    for (const r of [await s1.retrieve(`${se1}/reg/r/generateRand`), await stranger.retrieve(se1), await stranger.create(se1, 20004, { 'senv:Hsh': { Halg: 4 } })]) {
      expect([r.rsc, dbg(r)]).toEqual([5000, 'SE out of service (ERR_CORE self test): UPDATE an [SEReboot] (rb: true) to bring it back']);
    }
    // Of the [SEReboot] it takes an UPDATE only: reading or deleting it is refused like any other request.
    for (const r of [await s1.retrieve(`${se1}/reg/warmReset`), await s1.delete(`${se1}/reg/warmReset`)]) {
      expect([r.rsc, dbg(r)]).toEqual([5000, 'SE out of service (ERR_CORE self test): UPDATE an [SEReboot] (rb: true) to bring it back']);
    }
    // Only the kind of what failed, as for every 5000: a backend's own message may say more than a remote originator should read.
    flaky.rebootFails = new Error(`card 4-${'ab'.repeat(16)} lost key 00112233445566778899aabbccddeeff`);
    expect(dbg(await reboot())).toBe("SE reboot failed (Error): the request's change took effect, the SE is out of service");
    expect(dbg(await stranger.retrieve(se1))).toBe('SE out of service (Error): UPDATE an [SEReboot] (rb: true) to bring it back');
    ok(await s2.create(se2, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'the other SE serves');
    expect((await reboot()).rsc, 'an [SEReboot] is still taken').toBe(5000);
    flaky.rebootFails = undefined;
    expect((await reboot()).rsc).toBe(2004);
    ok(await s1.retrieve(`${se1}/reg/r/generateRand`), 2000, 'back in service');
    expect((await stranger.retrieve(se1)).rsc, 'and an unregistered originator is told so again').toBe(4106);
    await engine.close();
  });

  it('a CREATE of an [SEReboot] whose reboot fails answers 5000 saying its change took effect: the resource stands, with its et armed on a timer', async () => {
    const flaky = new Flaky({ uniqueId: '55'.repeat(16) });
    const engine = await McsEngine.create({ backends: [flaky] });
    const s = new Session(engine, 'CAE1');
    await s.register();
    flaky.rebootFails = new SelfTestError('self test failed: AES-128-GCM');
    // Fake timers count the engine's (which are unref'd, and so not among the process's active resources).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let failed;
    try {
      failed = await s.create(s.seId, 20010, { 'senv:Srbt': { rn: 'mine', rbT: 2, rb: true, et: formatTimestamp(Date.now() + 60_000) } });
      expect(vi.getTimerCount(), 'its expirationTime is on a timer, as for a CREATE whose effect succeeded').toBe(1);
    } finally {
      vi.useRealTimers();
    }
    expect([failed.rsc, failed.pc?.['m2m:dbg']]).toEqual([5000, "SE reboot failed (ERR_CORE self test): the request's change took effect, the SE is out of service"]);
    flaky.rebootFails = undefined;
    ok(await s.update(s.path('reg', 'mine'), { 'senv:Srbt': { rb: true } }), 2004, 'the [SEReboot] created brings the SE back');
    ok(await s.retrieve(s.path('reg', 'mine')), 2000, 'and is there');
    await engine.close();
  });
});

// An engine hosting several SEs: one busy with a long request (or a card that
// stopped answering) delays neither another SE's expirations nor its closing.
import { describe, expect, it } from 'vitest';
import { McsEngine, SoftwareBackend } from '../../src/index.ts';
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

const KEY = 'AAECAwQFBgcICQoLDA0ODw==';
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
    expect(await until(() => idle.released === 2, 3000), 'both keys released by the timer while SE 1 is busy').toBe(true);
    busy.release();
    ok(await stuck, 2000, 'the long request');
    await engine.close();
  });

  it('close() releases an idle SE\'s keys and closes its backend at once, while another SE finishes its request', async () => {
    const { engine, busy, idle, s2, se2, stuck } = await twoSes();
    ok(await s2.create(se2, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: KEY } }), 2001, 'cipher');
    let closed = false;
    const closing = engine.close().then(() => void (closed = true));
    expect(await until(() => idle.closed && idle.released === 1, 3000), 'SE 2 closed with its key released').toBe(true);
    expect(closed, 'close() waits for the request under way on SE 1').toBe(false);
    busy.release();
    ok(await stuck, 2000, 'the request under way is served');
    await closing;
  });
});

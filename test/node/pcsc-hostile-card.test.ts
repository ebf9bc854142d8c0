// A card that answers wrong: the PC/SC SE with a share of the card's answers
// mangled (bits flipped, cut short, bytes added, status words replaced, among
// them the 61xx and 6Cxx that ask for another round, noise, no answer, the
// card gone) while valid Mcs requests run, one to four sent at once. Every
// request must still get a response (send() never throws or hangs) with a
// known code and a short m2m:dbg without key bytes; once the card answers
// right again (and a reboot ended an out-of-service state a spoiled reboot
// left), every registration can be deleted, the SE serves correctly, and
// resources made before (their keys and data on the card) still give the
// results node:crypto gives. Three forms: campaigns on the virtual card
// in-process, restarts of an engine with a data directory, and a campaign
// through pcscd and vpcd with the native bridge (one-byte and oversized
// answers too). SENV_HOSTILE_SEED, _CAMPAIGNS, _COUNT (requests a campaign),
// _RESTARTS and _WIRE_COUNT run others, more or longer.
import { createCipheriv, createHash, createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PcscBackend } from '../../src/backends/pcsc/index.ts';
import { McsEngine, randomBytes } from '../../src/index.ts';
import { PcscError } from '../../src/pcsc/index.ts';
import { SenvApplet } from '../../src/virtual-card/applet.ts';
import { EXTENDED_LIMITS, VirtualCardOs } from '../../src/virtual-card/card.ts';
import { KeyStore } from '../../src/virtual-card/keystore.ts';
import { VpcdCard } from '../../src/virtual-card/vpcd.ts';
import { chooser, type Chooser } from '../portable/harness.ts';
import { Session, b64, body, ok, unb64 } from '../portable/mcs-kit.ts';
import { InProcessReader, setupPcsc, type PcscTestEnv } from './pcsc-helpers.ts';

const setup = await setupPcsc();

const SEED = Number(process.env.SENV_HOSTILE_SEED ?? 61);
const CAMPAIGNS = Number(process.env.SENV_HOSTILE_CAMPAIGNS ?? 6);
const COUNT = Number(process.env.SENV_HOSTILE_COUNT ?? 8000);
const RESTARTS = Number(process.env.SENV_HOSTILE_RESTARTS ?? 40);
const WIRE_COUNT = Number(process.env.SENV_HOSTILE_WIRE_COUNT ?? 1200);

const KEY16 = new Uint8Array(16).fill(0x3c);
const KEY_B64 = b64(KEY16);
const MSG = new TextEncoder().encode('answered by a card that lies');
const KNOWN = new Set([2000, 2001, 2002, 2004, 4000, 4001, 4004, 4005, 4008, 4102, 4103, 4105, 4106, 4108, 4117, 5000, 5001, 5206, 5207]);

/** The card's answer as a card gone wrong might give it. */
function mangle(answer: Uint8Array, rand: Chooser): Uint8Array {
  const noise = (n: number) => Uint8Array.from({ length: n }, () => rand(256));
  const withSw = (sw: number) => Uint8Array.of(...answer.subarray(0, Math.max(0, answer.length - 2)), sw >> 8, sw & 0xff);
  switch (rand(9)) {
    case 0: {
      const a = answer.slice();
      if (a.length) a[rand(a.length)]! ^= 1 << rand(8);
      return a;
    }
    case 1: return answer.slice(0, rand(answer.length + 1));
    case 2: return Uint8Array.of(...answer, ...noise(1 + rand(40)));
    case 3: return withSw([0x6100 | rand(256), 0x6c00 | rand(256), 0x6a80, 0x6982, 0x6f00, 0x6700, 0x6d00, 0x6b00, 0x63c0, 0x9000][rand(10)]!);
    case 4: return withSw(rand(0x10000));
    case 5: return noise(rand(300));
    case 6: return Uint8Array.of(...noise(rand(64)), 0x90, 0x00);
    case 7: throw new PcscError('SCardTransmit', 0x8010000a); // SCARD_E_TIMEOUT: no answer
    // The card gone once it had the command: pcsc-lite's transmit to the reader fails (SCARD_E_NO_SMARTCARD).
    // Its SCARD_W_REMOVED_CARD comes from a check before anything is sent: campaign() throws that one.
    default: throw new PcscError('SCardTransmit', 0x8010000c);
  }
}

function gcmEncrypt(key: Uint8Array, nonce: Uint8Array, data: Uint8Array): Buffer {
  const c = createCipheriv('aes-128-gcm', key, nonce);
  return Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
}

/** The requests of a campaign: each kind of operation the card serves, all valid. */
function requests(s: Session): { make(): Promise<void>; run: (() => Promise<{ rsc: number; pc?: Record<string, unknown> }>)[] } {
  const p = (...names: string[]) => s.path('bad', ...names);
  return {
    async make() {
      await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 4096, kDt: KEY_B64 } });
      await s.create(p('c'), 20001, { 'senv:algP': { nc: b64(new Uint8Array(12)), aD: 'AAAA' } });
      await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'b', Calg: 24, mbs: 4096, kDt: KEY_B64 } });
      await s.create(p('b'), 20001, { 'senv:algP': { iV: b64(new Uint8Array(16)) } });
      await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } });
      await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 's', Salg: 26, kDt: KEY_B64 } });
      await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: 33, sgF: 'raw' } });
      await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 32 } });
    },
    run: [
      () => s.update(p('c'), { 'senv:Cph': { msg: b64(MSG) } }),
      () => s.retrieve(p('c', 'encrypt')),
      () => s.retrieve(p('c', 'decrypt')),
      () => s.update(p('b'), { 'senv:Cph': { msg: b64(new Uint8Array(40)) } }),
      () => s.retrieve(p('b', 'Enc')),
      () => s.update(p('h'), { 'senv:Hsh': { msg: b64(MSG) } }),
      () => s.retrieve(p('h', 'cHsh')),
      () => s.update(p('s'), { 'senv:Sgn': { msg: b64(MSG) } }),
      () => s.retrieve(p('s', 'cSgn')),
      () => s.retrieve(p('e', 'gnK')),
      () => s.update(p('e'), { 'senv:Sgn': { msg: b64(MSG) } }),
      () => s.retrieve(p('e', 'cSgn')),
      () => s.retrieve(p('e', 'vSgn')),
      () => s.retrieve(p('r', 'gnR')),
      () => s.retrieve(p('memory')),
      () => s.create(s.seId, 20002, { 'senv:Cph': { rn: 'n', Calg: 1002, mbs: 64, kDt: b64(new Uint8Array(32).fill(1)) } }),
      () => s.delete(p('n')),
      () => s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'k', Salg: 33, sgF: 'raw' } }),
      () => s.retrieve(p('k', 'gnK')),
      () => s.delete(p('k')),
      () => s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(MSG) } }),
      () => s.update(p('d'), { 'senv:Sdo': { msg: KEY_B64 } }),
      () => s.retrieve(p('d')),
      () => s.delete(p('d')),
      () => s.update(p('warmReset'), { 'senv:Srbt': { rb: true } }),
    ],
  };
}

/** What resources made before the card went wrong still compute, against node:crypto. */
async function stillRight(s: Session): Promise<void> {
  const p = (...names: string[]) => s.path('good', ...names);
  ok(await s.update(p('c'), { 'senv:Cph': { msg: b64(MSG) } }), 2004, 'cipher chunk');
  const sealed = unb64(body(await s.retrieve(p('c', 'encrypt')), 'senv:Cph').cD as string);
  expect(Buffer.from(sealed).equals(gcmEncrypt(KEY16, new Uint8Array(12), MSG))).toBe(true);
  ok(await s.update(p('s'), { 'senv:Sgn': { msg: b64(MSG) } }), 2004, 'signature message');
  const mac = unb64(body(await s.retrieve(p('s', 'cSgn')), 'senv:Sgn').Sgn as string);
  expect(Buffer.from(mac).equals(createHmac('sha384', KEY16).update(MSG).digest())).toBe(true);
  expect(unb64(body(ok(await s.retrieve(p('d')), 2000, 'data object'), 'senv:Sdo').msg as string)).toEqual(MSG);
}

/** The resources stillRight() checks, made while the card answers right: keys and a data object on the card. */
async function makeGood(good: Session): Promise<void> {
  await good.register('good');
  ok(await good.create(good.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 4096, kDt: KEY_B64 } }), 2001, 'cipher');
  ok(await good.create(good.path('good', 'c'), 20001, { 'senv:algP': { nc: b64(new Uint8Array(12)) } }), 2001, 'parameters');
  ok(await good.create(good.seId, 20012, { 'senv:Sgn': { rn: 's', Salg: 26, kDt: KEY_B64 } }), 2001, 'hmac');
  ok(await good.create(good.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(MSG) } }), 2001, 'data object');
  await stillRight(good);
}

/**
 * Whether the card carried out a key write (PUT DATA of a key, GENERATE KEY PAIR) and `answer` then
 * says it changed nothing: ISO/IEC 7816-4's 62xx and 64xx ("non-volatile memory unchanged") and
 * checking errors 67xx to 6Exx (6A89 and 6Cxx among them). Such a card breaks the profile, and the
 * host takes it at its word: the key may stay on the card.
 */
function deniedKeyWrite(apdu: Uint8Array, right: Uint8Array, answer: Uint8Array): boolean {
  const keyWrite = (apdu[1] === 0xda && apdu[2] === 0x01) || apdu[1] === 0x47;
  const ran = right.length >= 2 && (right[right.length - 2] === 0x90 || right[right.length - 2] === 0x61);
  const c = answer.length >= 2 ? answer[answer.length - 2]! : 0;
  return keyWrite && ran && (c === 0x62 || c === 0x64 || (c >= 0x67 && c <= 0x6e));
}

/**
 * Four rounds of valid requests, each by a new registration, while `setWrong` has a share of the
 * card's answers (from `card`) mangled; every response is checked. Then the card answers right,
 * a reboot ends any out-of-service state, and the registration is deleted. Returns how many key
 * writes the card carried out and denied (deniedKeyWrite).
 */
async function campaign(engine: McsEngine, rand: Chooser, count: number, card: (apdu: Uint8Array) => Uint8Array,
  setWrong: (answer: ((apdu: Uint8Array) => Uint8Array | undefined) | undefined) => void, wrong: (answer: Uint8Array, rand: Chooser) => Uint8Array): Promise<number> {
  const codes = new Map<number, number>();
  let mangled = 0, denied = 0;
  for (let round = 0; round < 4; round++) {
    const bad = new Session(engine, `CBAD${round}`);
    await bad.register('bad');
    const r = requests(bad);
    // One answer in 1 to 8 goes wrong, from round to round.
    const share = 1 + rand(8);
    setWrong((apdu) => {
      if (rand(share)) return undefined;
      mangled++;
      // A connection a removal or another application's reset made stale: pcsc-lite refuses the command before it
      // sends it, so the card never sees it (SCARD_W_REMOVED_CARD, SCARD_W_RESET_CARD).
      if (rand(10) === 0) throw new PcscError('SCardTransmit', rand(2) ? 0x80100069 : 0x80100068);
      const right = card(apdu);
      const answer = wrong(right, rand);
      if (deniedKeyWrite(apdu, right, answer)) denied++;
      return answer;
    });
    await r.make();
    for (let i = 0; i < count / 4; ) {
      // One to four requests sent at once (the SE serves them one by one, in order).
      const group = Array.from({ length: Math.min(1 + rand(4), count / 4 - i) }, () => r.run[rand(r.run.length)]!());
      i += group.length;
      for (const res of await Promise.all(group)) {
        codes.set(res.rsc, (codes.get(res.rsc) ?? 0) + 1);
        if (!KNOWN.has(res.rsc)) throw new Error(`rsc ${res.rsc}: ${JSON.stringify(res.pc)}`);
        if (res.rsc >= 4000) {
          const dbg = res.pc?.['m2m:dbg'];
          expect(typeof dbg === 'string' && dbg.length > 0 && dbg.length <= 200, String(dbg)).toBe(true);
          expect(String(dbg)).not.toContain(KEY_B64);
        }
      }
    }
    setWrong(undefined);
    // A reboot the card spoiled leaves the SE out of service (5000) until one completes (docs/mcs.md).
    ok(await bad.update(bad.path('bad', 'warmReset'), { 'senv:Srbt': { rb: true } }), 2004, 'reboot');
    ok(await bad.delete(bad.seId), 2002, 'deregister');
  }
  // The campaign did test something: mangled answers, failures and successes alike.
  expect(mangled).toBeGreaterThan(count / 20);
  expect(codes.get(5000) ?? 0).toBeGreaterThan(0);
  expect([...codes.keys()].some((c) => c < 3000)).toBe(true);
  return denied;
}

/** After a campaign: the resources made before still right, and a new registration served right. */
async function servesRight(engine: McsEngine, good: Session): Promise<void> {
  await stillRight(good);
  const fresh = new Session(engine, 'CFRESH');
  await fresh.register('fresh');
  ok(await fresh.create(fresh.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(MSG) } }), 2001, 'hash');
  const digest = unb64(body(await fresh.retrieve(fresh.path('fresh', 'h', 'cHsh')), 'senv:Hsh').Hv as string);
  expect(Buffer.from(digest).equals(createHash('sha256').update(MSG).digest())).toBe(true);
}

describe('a card that answers wrong', () => {
  for (let k = 0; k < CAMPAIGNS; k++) it(`seed ${SEED + k}: every valid request gets a response with a known code and a short dbg without key bytes; afterwards the SE serves correctly`, async () => {
    const reader = new InProcessReader();
    const engine = await McsEngine.create({ backends: [reader.backend(undefined, { commandTimeoutMs: 2_000 })] });
    const good = new Session(engine, 'CGOOD');
    await makeGood(good);
    const denied = await campaign(engine, chooser(SEED + k), COUNT, (a) => reader.os.apdu(a), (w) => (reader.intercept = w), mangle);
    await servesRight(engine, good);
    await engine.close();
    // No PSO context is left open on the card. Without a data directory close() deletes every key, so
    // a key left on the card is one whose write the card carried out and denied (breaking the profile):
    // a lost or garbled answer must send its slot to the orphan sweep.
    expect(reader.streamsOpen()).toBe(0);
    expect(reader.store.keys.size).toBeLessThanOrEqual(denied);
  }, Math.max(60_000, COUNT * 20));

  it('restarts with a data directory while the card answers wrong: a start fails or serves, none loses a resource or an acknowledged write; the next start with the card right serves them all', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'senv-hostile-'));
    const masterKey = randomBytes(32);
    const reader = new InProcessReader();
    // The engine zeroizes the master key it is given: each start gets a copy.
    const start = () => McsEngine.create({ backends: [reader.backend(undefined, { commandTimeoutMs: 2_000 })], dataDir, masterKey: masterKey.slice() });
    try {
      let engine = await start();
      const seId = engine.seIds[0]!;
      await makeGood(new Session(engine, 'CGOOD'));
      await engine.close();
      const rand = chooser(SEED + 100);
      let started = 0, failed = 0;
      const acknowledged: number[] = [];
      for (let i = 0; i < RESTARTS; i++) {
        const share = 1 + rand(6);
        reader.intercept = (apdu) => (rand(share) ? undefined : mangle(reader.os.apdu(apdu), rand));
        const e = await start().catch(() => undefined);
        if (e) {
          started++;
          const s = new Session(e, 'CGOOD', e.seIds[0]);
          for (const to of [s.path('good', 'c'), s.path('good', 'd'), s.path('good', 's'), s.path('good', 'memory')]) expect(KNOWN.has((await s.retrieve(to)).rsc)).toBe(true);
          // Writes too, each by an originator of its own: a <hash> whose CREATE was acknowledged must be there after the restarts.
          const w = new Session(e, `CW${i}`, e.seIds[0]);
          if ((await w.create(w.seId, 20011, { 'senv:Senv': { rn: `w${i}`, sID: w.seId, seL: 3 } })).rsc === 2001) {
            const msg = b64(new TextEncoder().encode(`written at start ${i}`));
            // Counted on this SE only: a serial the card garbled at start makes another M2M-SE-ID, as another card would.
            if ((await w.create(w.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg } })).rsc === 2001 && w.seId === seId) acknowledged.push(i);
          }
          await e.close().catch(() => undefined);
        } else {
          failed++;
        }
        reader.intercept = undefined;
      }
      expect(started, 'starts that served').toBeGreaterThan(0);
      expect(failed, 'starts that failed').toBeGreaterThan(0);
      engine = await start();
      expect(engine.seIds).toEqual([seId]);
      await stillRight(new Session(engine, 'CGOOD'));
      expect(acknowledged.length, 'writes acknowledged while the card answered wrong').toBeGreaterThan(0);
      for (const i of acknowledged) {
        const w = new Session(engine, `CW${i}`);
        const digest = unb64(body(ok(await w.retrieve(w.path(`w${i}`, 'h', 'cHsh')), 2000, `hash written at start ${i}`), 'senv:Hsh').Hv as string);
        expect(Buffer.from(digest).equals(createHash('sha256').update(`written at start ${i}`).digest())).toBe(true);
      }
      await engine.close();
      expect(reader.store.keys.size, 'the two keys, kept on the card for the next start').toBe(2);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});

/**
 * Over the wire, a card can also send what no in-process stand-in would: a lone byte, or up to
 * vpcd's largest frame (65,535 bytes) for a command that allows far less. (Not an empty frame:
 * vpcd then never answers the command at all, the no-answer case pcsc-timeouts covers.)
 */
function wrongOnTheWire(answer: Uint8Array, rand: Chooser): Uint8Array {
  const noise = (n: number) => Uint8Array.from({ length: n }, () => rand(256));
  switch (rand(5)) {
    case 0: return noise(1);
    case 1: return Uint8Array.of(...noise(257 + rand(50)), 0x90, 0x00);
    case 2: return Uint8Array.of(...noise(65_533), 0x90, 0x00);
    case 3: return Uint8Array.of(...noise(4096), 0x61, 0x00);
    default: {
      const a = mangle(answer, rand);
      return a.length ? a : noise(1);
    }
  }
}

describe.skipIf(!setup.ok)(`a card that answers wrong, through pcscd and vpcd${setup.ok ? '' : ` (skipped: ${setup.reason})`}`, () => {
  let env: PcscTestEnv;
  beforeAll(() => {
    if (setup.ok) env = setup.env;
  });
  afterAll(async () => {
    if (setup.ok) await env.teardown();
  });

  it('the native bridge and the backend take one-byte and oversized answers as the card\'s failure; afterwards the SE serves correctly', async () => {
    const store = new KeyStore(undefined, () => randomBytes(8));
    const applet = new SenvApplet({ store, random: randomBytes, limits: EXTENDED_LIMITS });
    const os = new VirtualCardOs([applet], { limits: EXTENDED_LIMITS });
    let wrong: ((apdu: Uint8Array) => Uint8Array | undefined) | undefined;
    const card = new VpcdCard({ atr: () => os.atr(), power: (e) => os.power(e), apdu: (a) => wrong?.(a) ?? os.apdu(a) }, { port: env.slot.port });
    await card.insert();
    await env.waitFor((st) => st.present);
    const engine = await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader, commandTimeoutMs: 5_000 })] });
    let denied = 0;
    try {
      const good = new Session(engine, 'CGOOD');
      await makeGood(good);
      denied = await campaign(engine, chooser(SEED + 200), WIRE_COUNT, (a) => os.apdu(a), (w) => (wrong = w), wrongOnTheWire);
      await servesRight(engine, good);
    } finally {
      wrong = undefined;
      await engine.close();
      await card.remove();
    }
    // As in-process: the keys left are those whose write the card carried out and denied.
    expect(store.keys.size).toBeLessThanOrEqual(denied);
  }, 300_000);
});

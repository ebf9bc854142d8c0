// Thousands of random and mutated primitives, to the software SE and to the
// PC/SC SE over the virtual card in-process: every one gets a response with
// a client-error code (never 5000), a short m2m:dbg without key bytes, and
// the engine keeps serving correctly. On the software SE also: the memory
// usage it counts returns to what a fresh registration holds, and the bytes
// the core holds for contexts and blocks return exactly to their baseline
// once the resources are gone (no leak per request, not even one the
// garbage collector would reclaim). On an SE with a data directory, a restart
// after each phase must answer every resource as before it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { coreMemoryStats, McsEngine, randomBytes, sha256 } from '../../src/index.ts';
import { chooser } from '../portable/harness.ts';
import { Session, b64, body, ok, unb64 } from '../portable/mcs-kit.ts';
import { InProcessReader } from './pcsc-helpers.ts';

const KEY16 = new Uint8Array(16).fill(0x5a);
const KEY_B64 = b64(KEY16);
const ALLOWED = new Set([2000, 2001, 2002, 2004, 4000, 4001, 4004, 4005, 4008, 4102, 4103, 4105, 4106, 4108, 4117, 5001, 5206, 5207]);

type Req = Record<string, unknown>;

const ORIGINATORS = ['CAE1', 'CAE2', 'CAE9', '', 'C'.repeat(2000)];

function corpus(seId: string): Req[] {
  const r = (op: number, to: string, pc?: unknown, ty?: number, fr = 'CAE1'): Req => ({ op, to, fr, rqi: 'q', ty, pc });
  const reg = `${seId}/reg`;
  return [
    r(1, seId, { 'senv:Senv': { rn: 'reg', sID: seId, seL: 1 } }, 20011),
    r(1, seId, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 4096, kDt: KEY_B64 } }, 20002),
    r(1, `${reg}/c`, { 'senv:algP': { nc: b64(new Uint8Array(12)), aD: 'AAAA' } }, 20001),
    r(3, `${reg}/c`, { 'senv:Cph': { msg: b64(new Uint8Array(100)) } }),
    r(2, `${reg}/c/encrypt`), r(2, `${reg}/c/decrypt`), r(2, `${reg}/c/generateKey`), r(2, `${reg}/c`),
    r(1, seId, { 'senv:Cph': { rn: 'b', Calg: 24, mbs: 4096, kDt: KEY_B64 } }, 20002),
    r(1, `${reg}/b`, { 'senv:algP': { iV: b64(new Uint8Array(16)) } }, 20001),
    r(3, `${reg}/b`, { 'senv:Cph': { msg: 'QUJD' } }), r(2, `${reg}/b/Dec`), r(2, `${reg}/b/Enc`),
    r(1, seId, { 'senv:Hsh': { rn: 'h', Halg: 5, msg: 'QUJD' } }, 20004), r(3, `${reg}/h`, { 'senv:Hsh': { msg: 'QUJD' } }), r(2, `${reg}/h/cHsh`),
    r(1, seId, { 'senv:Sgn': { rn: 's', Salg: 26, kDt: KEY_B64, msg: 'QUJD' } }, 20012), r(2, `${reg}/s/cSgn`), r(2, `${reg}/s/vSgn`),
    r(1, seId, { 'senv:Sgn': { rn: 'e', Salg: 33, sgF: 'raw' } }, 20012), r(2, `${reg}/e/gnK`), r(2, `${reg}/e/cSgn`),
    r(1, seId, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 32 } }, 20007), r(2, `${reg}/r/gnR`), r(3, `${reg}/r`, { 'senv:Rnd': { Dsz: 8 } }),
    r(1, seId, { 'senv:Sdo': { rn: 'd', msg: KEY_B64 } }, 20009), r(3, `${reg}/d`, { 'senv:Sdo': { msg: null } }),
    r(1, seId, { 'm2m:acp': { rn: 'a', pv: { acr: [{ acor: ['CAE2'], acop: 3 }] }, pvs: { acr: [{ acor: ['CAE1'], acop: 63 }] } } }, 1),
    r(3, reg, { 'senv:Senv': { acpi: ['a'] } }), r(2, `${reg}/c`, undefined, undefined, 'CAE2'),
    r(3, `${reg}/warmReset`, { 'senv:Srbt': { rb: true } }), r(2, `${reg}/memory`), r(2, `${reg}/deviceInfo`),
    r(4, `${reg}/h`), r(4, `${reg}/c`), r(2, seId, undefined, undefined, 'CAE9'),
  ];
}

const WEIRD: unknown[] = [null, undefined, -1, 0, 1.5, 2 ** 53, Number.NaN, Infinity, '', 'x'.repeat(5000), 'QUJD', '====', 'A', [], [1, 'a'], {}, { a: { b: [] } }, true, false,
  new Uint8Array(3), '20261122T120000', '20991232T000000', 20002, 1001, 'senv:Cph', '../..', '\u0000\ud800', { acr: [{ acor: 'x', acop: 99 }] }];

// A mutation may put any string of WEIRD in `fr`; the engine takes every
// non-empty one up to 1024 characters as an originator, so each phase ends
// by deregistering all of them.
const EVERY_ORIGINATOR = [...ORIGINATORS, ...WEIRD.filter((v): v is string => typeof v === 'string')];

function mutate(req: Req, rand: (n: number) => number, seId: string): unknown {
  const pick = <T>(a: readonly T[]) => a[rand(a.length)]!;
  const m: Req = structuredClone(req);
  const content = () => {
    const pc = m.pc as Record<string, Record<string, unknown>> | undefined;
    const root = pc && Object.keys(pc)[0];
    return root && typeof pc[root] === 'object' && pc[root] !== null ? pc[root] : undefined;
  };
  const steps = 1 + rand(3);
  for (let i = 0; i < steps; i++) {
    switch (rand(10)) {
      case 0: delete m[pick(Object.keys(m))]; break;
      case 1: m[pick(['op', 'to', 'fr', 'rqi', 'ty', 'pc', 'rvi', 'zz'])] = pick(WEIRD); break;
      case 2: m.op = rand(7); break;
      case 3: m.to = pick([seId, `${seId}/reg`, `/${seId}/reg/c`, `${seId}/reg/c/encrypt/x`, `${seId}//c`, `${seId}/reg/memory/encrypt`, '4-x/reg', `${seId}/Cph1`, `${seId}/reg/${'n'.repeat(70)}`, `${seId}/reg/c/${pick(['Enc', 'Dec', 'gnK', 'cHsh', 'cSgn', 'vSgn', 'gnR', 'la'])}`]); break;
      case 4: m.ty = pick([1, 13, 20001, 20002, 20003, 20004, 20005, 20006, 20007, 20008, 20009, 20010, 20011, 20012, 99999, -5]); break;
      case 5: { const c = content(); if (c) c[pick(['msg', 'kDt', 'Calg', 'mbs', 'cbs', 'Halg', 'Salg', 'rgT', 'Dsz', 'sID', 'seL', 'srt', 'acpi', 'et', 'rn', 'nc', 'iV', 'aD', 'Sgn', 'kInf', 'sgF', 'prH', 'kExp', 'pv', 'rb', 'rbT', 'cD', 'ri', 'ty', 'qq'])] = pick(WEIRD); break; }
      case 6: { const c = content(); if (c) delete c[pick(Object.keys(c))]; break; }
      case 7: if (m.pc && typeof m.pc === 'object') m.pc = { [pick(['senv:Cph', 'senv:Hsh', 'senv:Sgn', 'm2m:acp', 'senv:Senv', 'senv:X', 'm2m:cin'])]: Object.values(m.pc as object)[0] }; break;
      case 8: m.fr = pick(ORIGINATORS); break;
      default: return pick([null, 'text', 42, [m], { ...m, pc: [m.pc] }, m]);
    }
  }
  return m;
}

// CI runs one fixed campaign; a longer or different one locally:
// SENV_FUZZ_SEED=7 SENV_FUZZ_COUNT=20000 npx vitest run test/node/mcs-fuzz.test.ts
const SEED = Number(process.env.SENV_FUZZ_SEED ?? 99);
const COUNT = Number(process.env.SENV_FUZZ_COUNT ?? 1500);

const inUse = () => coreMemoryStats().inUseBytes;
const pages = () => coreMemoryStats().memoryBytes;

/**
 * One campaign on a fresh or cleaned-up SE: the valid corpus (so mutations hit real resources),
 * then `count` mutated primitives, each answered with an allowed code and, for an error, a short
 * m2m:dbg without key bytes; then every originator a mutation may have registered deregisters,
 * which releases every resource and key of the campaign.
 */
async function campaign(engine: McsEngine, seId: string, count: number, rand: (n: number) => number, cleanUp = true): Promise<void> {
  const seeds = corpus(seId);
  for (const s of seeds) await engine.send({ ...s, fr: s.fr });
  await engine.send({ op: 1, to: seId, fr: 'CAE2', rqi: 'r2', ty: 20011, pc: { 'senv:Senv': { rn: 'reg2', sID: seId, seL: 1 } } });
  for (let i = 0; i < count; i++) {
    const req = mutate(seeds[rand(seeds.length)]!, rand, seId);
    // Half the primitives ask for binary responses (byte attributes as Uint8Array).
    const r = await engine.send(req, { binary: rand(2) === 0 });
    expect(typeof r.rsc).toBe('number');
    if (!ALLOWED.has(r.rsc)) throw new Error(`rsc ${r.rsc} for ${JSON.stringify(req)?.slice(0, 300)}: ${JSON.stringify(r.pc)}`);
    if (r.rsc >= 4000) {
      const dbg = r.pc?.['m2m:dbg'];
      expect(typeof dbg === 'string' && dbg.length > 0 && dbg.length <= 200).toBe(true);
      expect(String(dbg)).not.toContain(KEY_B64);
    }
  }
  if (cleanUp) await deregisterAll(engine, seId);
}

async function deregisterAll(engine: McsEngine, seId: string): Promise<void> {
  for (const fr of EVERY_ORIGINATOR) await engine.send({ op: 4, to: seId, fr, rqi: 'end' });
}

/**
 * What plain RETRIEVEs (none that runs an operation) of the corpus's resources answer, for each
 * originator: under 'reg' and under the registrations snap0 .. snap<phases> (fuzz-persist).
 */
async function snapshot(engine: McsEngine, seId: string, phases = -1): Promise<unknown[]> {
  const regs = ['reg', ...Array.from({ length: phases + 1 }, (_, i) => `snap${i}`)];
  const paths = ['reg2', ...regs.flatMap((reg) => [reg, ...['c', 'b', 'h', 's', 'e', 'r', 'd', 'a', 'memory', 'deviceInfo'].map((n) => `${reg}/${n}`)])];
  const out: unknown[] = [];
  for (const fr of ['CAE1', 'CAE2', 'CAE9', ...regs.slice(1).map((r) => `C${r}`)]) {
    for (const path of paths) {
      const r = await engine.send({ op: 2, to: `${seId}/${path}`, fr, rqi: 'snap' });
      out.push({ fr, path, rsc: r.rsc, pc: r.pc });
    }
  }
  return out;
}


/** After a campaign the SE still computes right. */
async function stillServes(engine: McsEngine, fr: string): Promise<void> {
  const s = new Session(engine, fr);
  await s.register('final');
  ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: 'QUJD' } }), 2001, 'hash');
  expect(Buffer.from(unb64(body(await s.retrieve(s.path('final', 'h', 'cHsh')), 'senv:Hsh').Hv)).equals(Buffer.from(sha256(new TextEncoder().encode('ABC'))))).toBe(true);
}

describe('Mcs fuzz', () => {
  it('random and mutated primitives: client errors only, short dbg, no key bytes, WASM memory in use back to its baseline', async () => {
    const engine = await McsEngine.create();
    const seId = engine.seIds[0]!;
    const rand = chooser(SEED);
    const phase = async (count: number) => {
      await campaign(engine, seId, count, rand);
      // A reboot drops what the SE keeps between requests (the DRBG of rngType 1).
      const end = new Session(engine, 'CEND');
      const se = body(await end.register('end'), 'senv:Senv');
      // Whatever the phase's requests did, the memory usage went back with them: only this registration counts.
      const mem = body(await end.retrieve(end.path('end', 'memory')), 'm2m:mem');
      expect(mem.mma).toBe((mem.mmt as number) - JSON.stringify(se.sID).length - JSON.stringify(se.srt).length);
      ok(await end.update(end.path('end', 'warmReset'), { 'senv:Srbt': { rb: true } }), 2004, 'reboot');
      ok(await end.delete(end.seId), 2002, 'deregister');
    };
    const baseline = inUse();
    await phase(COUNT);
    await phase(COUNT);
    expect(inUse()).toBe(baseline);
    const settled = pages();
    await phase(COUNT);
    await phase(COUNT);
    expect(inUse()).toBe(baseline);
    expect(pages()).toBe(settled);
    await stillServes(engine, 'CFINAL');
  }, Math.max(300_000, COUNT * 200));

  it('the same primitives against the PC/SC SE (the virtual card in-process): client errors only, short dbg, no key bytes', async () => {
    const engine = await McsEngine.create({ backends: [new InProcessReader().backend()] });
    const seId = engine.seIds[0]!;
    const rand = chooser(SEED + 1);
    await campaign(engine, seId, COUNT, rand);
    await campaign(engine, seId, COUNT, rand);
    await stillServes(engine, 'CFINAL');
    await engine.close();
  }, Math.max(300_000, COUNT * 200));

  it('the same primitives on an SE with a data directory: after each phase a restart answers every resource as before it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'senv-fuzz-'));
    const masterKey = randomBytes(32);
    // The engine zeroizes the master key it is given: each start gets a copy.
    const start = () => McsEngine.create({ dataDir, masterKey: masterKey.slice() });
    try {
      let engine = await start();
      const seId = engine.seIds[0]!;
      const rand = chooser(SEED + 2);
      for (let phase = 0; phase < 3; phase++) {
        // A clean 'reg' for the campaign; the registrations of earlier phases (snap0 ..) stay.
        await deregisterAll(engine, seId);
        await campaign(engine, seId, COUNT, rand, false);
        // The corpus's CREATEs and UPDATEs again under a registration of this phase's own (the
        // mutations may have taken 'reg' from CAE1), so that the state compared holds every kind of
        // resource, and those of the earlier phases must come back through every later restart.
        const own = `snap${phase}`;
        for (const q of corpus(seId)) {
          if (q.op !== 1 && q.op !== 3) continue;
          const moved = JSON.parse(JSON.stringify(q).replaceAll('/reg', `/${own}`).replace('"rn":"reg"', `"rn":"${own}"`)) as Req;
          await engine.send({ ...moved, fr: `C${own}` });
        }
        const before = await snapshot(engine, seId, phase);
        await engine.close();
        engine = await start();
        expect(engine.seIds).toEqual([seId]);
        expect(await snapshot(engine, seId, phase), `phase ${phase}`).toEqual(before);
      }
      await stillServes(engine, 'CFINAL');
      await engine.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, Math.max(300_000, COUNT * 200));

  it('create, stream, use and delete cycles give back every byte of WASM memory (keys, expanded keys and open streams are freed)', async () => {
    const engine = await McsEngine.create();
    const s = new Session(engine, 'CAE1');
    await s.register();
    const big = new Uint8Array(40000);
    const cycle = async (i: number) => {
      const rn = `x${i}`;
      const kinds = [
        { ty: 20002, pc: { 'senv:Cph': { rn, Calg: 1002, mbs: 1 << 17, kDt: b64(new Uint8Array(32).fill(i)) } }, root: 'senv:Cph', op: 'encrypt' },
        { ty: 20012, pc: { 'senv:Sgn': { rn, Salg: 49, kDt: KEY_B64 } }, root: 'senv:Sgn', op: 'cSgn' },
        { ty: 20012, pc: { 'senv:Sgn': { rn, Salg: 27, kDt: KEY_B64 } }, root: 'senv:Sgn', op: 'cSgn' },
        { ty: 20004, pc: { 'senv:Hsh': { rn, Halg: 6 } }, root: 'senv:Hsh', op: 'cHsh' },
      ];
      const k = kinds[i % kinds.length]!;
      ok(await s.create(s.seId, k.ty, k.pc), 2001, 'create');
      if (k.ty === 20002) ok(await s.create(s.path('reg', rn), 20001, { 'senv:algP': { nc: b64(new Uint8Array(12)) } }), 2001, 'nonce');
      // Big enough to open a backend stream; every other cycle deletes with the stream still open.
      ok(await s.send(3, s.path('reg', rn), { [k.root]: { msg: big } }, undefined, true), 2004, 'stream');
      if (i % 2) ok(await s.retrieve(s.path('reg', rn, k.op)), 2000, 'use');
      ok(await s.delete(s.path('reg', rn)), 2002, 'delete');
    };
    const baseline = inUse();
    let settled = 0;
    for (let i = 0; i < 1600; i++) {
      await cycle(i);
      if (inUse() !== baseline) throw new Error(`cycle ${i}: ${inUse() - baseline} bytes of WASM memory still in use`);
      if (i === 399) settled = pages();
    }
    expect(pages()).toBe(settled);
  }, 300_000);
});

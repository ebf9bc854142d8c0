// Claims of README.md, docs/aes.md, docs/drbg.md and docs/mcs.md that a
// caller relies on and that no other test pinned down: each case quotes the
// sentence it holds the code to.
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { aesKey, createHash, gcm, HmacDrbg, InvalidInputError, LengthError, McsClient, McsEngine, McsError, SoftwareBackend, StateError, UnknownAlgorithmError } from '../../src/index.ts';
import { body, fails, ok, Session } from '../portable/mcs-kit.ts';

async function registered(options: Parameters<typeof McsEngine.create>[0] = {}): Promise<Session> {
  const s = new Session(await McsEngine.create(options), 'CAE1');
  await s.register();
  return s;
}

describe('docs/aes.md', () => {
  it('"GCM nonces: any length from 1 byte up to 32 752 bytes is accepted"', () => {
    const key = new Uint8Array(16).fill(1);
    const longest = new Uint8Array(32752).fill(2);
    const sealed = gcm(key, longest).encrypt(new Uint8Array(5));
    expect(gcm(key, longest).decrypt(sealed)).toEqual(new Uint8Array(5));
    gcm(key, new Uint8Array(1)).encrypt(new Uint8Array(5));
    expect(() => gcm(key, new Uint8Array(32753))).toThrow(LengthError);
    expect(() => gcm(key, new Uint8Array(0))).toThrow(LengthError);
  });
});

describe('docs/drbg.md', () => {
  it('"Options are checked before anything is drawn": a refused HmacDrbg never calls its entropy source', () => {
    let calls = 0;
    const entropy = (n: number) => {
      calls++;
      return new Uint8Array(n);
    };
    expect(() => new HmacDrbg({ entropy, predictionResistance: 'false' as unknown as boolean })).toThrow(InvalidInputError);
    expect(() => new HmacDrbg({ entropy, reseedInterval: 0 })).toThrow(InvalidInputError);
    expect(() => new HmacDrbg({ entropy, hash: 'SHA-1' as never })).toThrow(UnknownAlgorithmError);
    expect(() => new HmacDrbg({ entropy, personalization: 'p' as unknown as Uint8Array })).toThrow(InvalidInputError);
    expect(calls).toBe(0);
    // Instantiation then takes 32 bytes of entropy input and a 16-byte nonce, a reseed 32.
    const asked: number[] = [];
    new HmacDrbg({ entropy: (n) => (asked.push(n), new Uint8Array(n)) }).reseed();
    expect(asked).toEqual([32, 16, 32]);
  });
});

describe('README.md', () => {
  it('"McsClient throws them as McsError (ERR_MCS, with .rsc; no stack trace, a refusal is an answer)"', async () => {
    const engine = await McsEngine.create();
    const err = await new McsClient(engine, 'CAE1').hash({ algorithm: 4 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(McsError);
    const e = err as McsError;
    expect(e.code).toBe('ERR_MCS');
    expect(e.rsc).toBe(4106);
    expect(e.name).toBe('McsError');
    expect(e.stack ?? '').not.toMatch(/\n\s*at /);
    await engine.close();
  });

  // The syntax itself, not TypeScript's lowering of it: Node 24 parses both forms by default; Node 20 and 22 do
  // not (22 only `using`, behind --js-explicit-resource-management), so this runs where the runtime has it.
  const AsyncFunction = (async () => undefined).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<Record<string, unknown>>;
  const parsesUsing = (() => {
    try {
      return !!new AsyncFunction('{ using a = null; await using b = null; }');
    } catch {
      return false;
    }
  })();
  it.skipIf(!parsesUsing)('"`using key = aesKey(bytes)` destroys it at the end of the block ... and `await using` closes an McsEngine, a backend", in the runtime\'s own syntax', async () => {
    const run = new AsyncFunction('aesKey', 'createHash', 'McsEngine', 'SoftwareBackend', `
      const held = {};
      { using key = aesKey(new Uint8Array(16)); using hash = createHash('SHA-256'); held.key = key; held.hash = hash; }
      { await using backend = new SoftwareBackend(); await using engine = await McsEngine.create({ backends: [backend] }); held.engine = engine; held.backend = backend; }
      return held;`);
    const held = await run(aesKey, createHash, McsEngine, SoftwareBackend);
    expect(() => gcm(held.key as ReturnType<typeof aesKey>, new Uint8Array(12)).encrypt(new Uint8Array(1))).toThrow(StateError);
    expect(() => (held.hash as ReturnType<typeof createHash>).update(new Uint8Array(1))).toThrow(StateError);
    expect(await (held.engine as McsEngine).send({ op: 2, to: '/x', fr: 'C', rqi: '1' })).toMatchObject({ rsc: 5000, pc: { 'm2m:dbg': 'engine closed' } });
    await expect((held.backend as SoftwareBackend).random(1, 4)).rejects.toThrow(/software SE is closed/);
  });
});

describe('docs/mcs.md', () => {
  it('"maxDataSize (largest byte value and largest accumulated data; default 16 MiB)"', async () => {
    const s = await registered();
    const MiB16 = 16 * 1024 * 1024;
    fails(await s.send(1, s.seId, { 'senv:Sdo': { msg: new Uint8Array(MiB16 + 1) } }, 20009, true), 5207, 'a value of 16 MiB + 1', /16777216/);
    ok(await s.send(1, s.seId, { 'senv:Sdo': { msg: new Uint8Array(MiB16) } }, 20009, true), 2001, 'a value of 16 MiB');
    // "maxByteSize ... at most maxDataSize"
    fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 24, mbs: MiB16 + 1 } }), 5207, 'mbs beyond maxDataSize', /mbs/);
    ok(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 24, mbs: MiB16 } }), 2001, 'mbs at maxDataSize');
    await s.engine.close();
  });

  it('"Resource names are 1 to 64 of A-Z a-z 0-9 . _ ~ -, not . or .. (4000 otherwise)"', async () => {
    const s = await registered();
    const hash = (rn: string) => s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, rn } });
    ok(await hash('A'.repeat(64)), 2001, '64 characters');
    ok(await hash('az.AZ_09~-'), 2001, 'every kind of character');
    ok(await hash('...'), 2001, 'dots, three of them');
    // One message for every wrong name, a value that is not a string too.
    for (const rn of ['B'.repeat(65), '', 'a b', 'a/b', 'ä', 'a:b', 5, '.', '..']) {
      fails(await hash(rn as string), 4000, `rn ${JSON.stringify(rn)}`, /^rn \(resourceName\) must be 1 to 64 of A-Z a-z 0-9 \. _ ~ -, not \. or \.\.$/);
    }
    await s.engine.close();
  });

  it('"Virtual resources ... cannot be resource names of children" (by long or short name: 4105)', async () => {
    const s = await registered();
    const c = body(ok(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 24, mbs: 64, kDt: 'AAAAAAAAAAAAAAAAAAAAAA==' } }), 2001, 'cipher'), 'senv:Cph').ri as string;
    for (const rn of ['encrypt', 'Enc', 'decrypt', 'Dec', 'generateKey', 'gnK']) {
      fails(await s.create(s.path(c), 20001, { 'senv:algP': { rn, iV: 'AAAAAAAAAAAAAAAAAAAAAA==' } }), 4105, `algP named ${rn}`);
    }
    ok(await s.create(s.path(c), 20001, { 'senv:algP': { rn: 'params', iV: 'AAAAAAAAAAAAAAAAAAAAAA==' } }), 2001, 'algP under another name');
    // The virtual resource is still what the address names.
    ok(await s.retrieve(s.path(c, 'Enc')), 2000, 'encrypt by its short name');
    await s.engine.close();
  });

  it('"20006 is unassigned (CREATE: 4000 ...)", unlike the types the <SE>\'s table lists that are not implemented (5001); 20003 belongs below a <secureConnection> (4108)', async () => {
    const s = await registered();
    fails(await s.create(s.seId, 20006, { 'senv:x': {} }), 4000, '20006', /unknown resource type/);
    fails(await s.create(s.seId, 3, { 'm2m:cnt': {} }), 4000, '<container>', /unknown resource type 3/);
    for (const ty of [20005, 20008]) fails(await s.create(s.seId, ty, { 'senv:x': {} }), 5001, `${ty}`, /not implemented/);
    fails(await s.create(s.seId, 20003, { 'senv:x': {} }), 4108, '20003', /<connectionInstance> cannot be a child of <SE>/);
    await s.engine.close();
  });

  it('"`Dsz: 0` is a valid size": generateRand answers `rndD: ""`, a RETRIEVE shows it, and a <rand> that never generated has no rndD', async () => {
    const s = await registered();
    const r = body(ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 0 } }), 2001, 'Dsz 0'), 'senv:Rnd');
    expect(r.rndD).toBeUndefined();
    expect(body(ok(await s.retrieve(s.path('reg', 'r', 'generateRand')), 2000, 'generateRand'), 'senv:Rnd').rndD).toBe('');
    expect(body(ok(await s.retrieve(s.path('reg', 'r')), 2000, 'retrieve'), 'senv:Rnd').rndD).toBe('');
    expect(body(ok(await s.send(2, s.path('reg', 'r', 'gnR'), undefined, undefined, true), 2000, 'binary'), 'senv:Rnd').rndD).toEqual(new Uint8Array(0));
    await s.engine.close();
  });

  it('"<subscription> 23 and <semanticDescriptor> 24 below an [SEReboot]" answer 5001, and 4108 anywhere else', async () => {
    const s = await registered();
    fails(await s.create(s.path('reg', 'coldReset'), 24, { 'm2m:smd': {} }), 5001, '<semanticDescriptor>', /<semanticDescriptor> is not implemented/);
    fails(await s.create(s.path('reg', 'coldReset'), 23, { 'm2m:sub': { nu: ['CAE1'] } }), 5001, '<subscription>', /<subscription> is not implemented/);
    fails(await s.create(s.seId, 23, { 'm2m:sub': { nu: ['CAE1'] } }), 4108, '<subscription> at the <SE>', /cannot be a child of <SE>/);
    fails(await s.create(s.path('reg', 'coldReset'), 13, { 'm2m:mem': {} }), 4108, '<mgmtObj> below an [SEReboot]');
    await s.engine.close();
  });

  it('"Originators sharing an SE": what one learns of another\'s resources and does with a grant', async () => {
    let now = Date.UTC(2026, 10, 22, 12);
    const a = await registered({ memoryQuota: 10000, clock: () => now });
    const b = new Session(a.engine, 'CAE2');
    await b.register('reg2');
    const p = body(ok(await a.create(a.seId, 1, { 'm2m:acp': { pv: { acr: [{ acor: ['CAE2'], acop: 4 }] }, pvs: { acr: [{ acor: ['CAE1'], acop: 63 }] } } }), 2001, 'policy'), 'm2m:acp').ri as string;
    ok(await a.create(a.seId, 20002, { 'senv:Cph': { rn: 'gcm', Calg: 1001, mbs: 64, acpi: [p] } }), 2001, 'cipher');
    // 4004 where the address names nothing, 4103 where it names a resource: its name, type and parameters show.
    fails(await b.retrieve(a.path('reg', 'nothing')), 4004, 'no such name');
    fails(await b.retrieve(a.path('reg', 'gcm')), 4103, 'the name of a resource');
    fails(await b.retrieve(a.path('reg', 'gcm', 'calculateHash')), 4004, 'a virtual resource of another type');
    fails(await b.retrieve(a.path('reg', 'gcm', 'parameters')), 4004, 'no parameters yet');
    ok(await a.create(a.path('reg', 'gcm'), 20001, { 'senv:algP': { rn: 'parameters', nc: 'AAAAAAAAAAAAAAAA' } }), 2001, 'parameters');
    fails(await b.retrieve(a.path('reg', 'gcm', 'parameters')), 4103, 'parameters');
    // The quota is the SE's: what A holds shows in B's [memory].
    const available = async () => body(ok(await b.retrieve(b.path('reg2', 'memory')), 2000, '[memory]'), 'm2m:mem').mma as number;
    const before = await available();
    ok(await a.create(a.seId, 20009, { 'senv:Sdo': { msg: 'AAAAAAAAAAAAAAAAAAAAAA==' } }), 2001, 'sensitive data');
    expect(before - (await available())).toBe(16);
    // An UPDATE grant sets et, which deletes the resource when it falls due: as good as DELETE.
    fails(await b.delete(a.path('reg', 'gcm')), 4103, 'DELETE without the privilege');
    ok(await b.update(a.path('reg', 'gcm'), { 'senv:Cph': { et: '20261122T120001' } }), 2004, 'et by an UPDATE grant');
    now += 1000;
    fails(await a.retrieve(a.path('reg', 'gcm')), 4004, 'the cipher, expired');
    await a.engine.close();
  });

  it('"nor is the host memory their bookkeeping takes": a digest makes no output room, and discarded data gives its buffers back', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const held = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 5));
      }
      return process.memoryUsage().arrayBuffers;
    };
    const s = await registered();
    const big = new Uint8Array(2 << 20);
    const send = (op: 1 | 2 | 3, to: string, pc?: Record<string, unknown>, ty?: number) => s.send(op, to, pc, ty, true);
    const before = await held();
    for (let i = 0; i < 4; i++) {
      const h = s.path('reg', `h${i}`);
      ok(await send(1, s.seId, { 'senv:Hsh': { rn: `h${i}`, Halg: 4 } }, 20004), 2001, 'hash');
      ok(await send(3, h, { 'senv:Hsh': { msg: big } }), 2004, 'a large message, streamed as it arrives');
      ok(await send(2, `${h}/calculateHash`), 2000, 'hashed, and held (the quota counts it)');
      const c = s.path('reg', `c${i}`);
      ok(await send(1, s.seId, { 'senv:Cph': { rn: `c${i}`, Calg: 1001, mbs: 4 << 20, kDt: new Uint8Array(16) } }, 20002), 2001, 'cipher');
      ok(await send(1, c, { 'senv:algP': { rn: 'parameters', nc: new Uint8Array(12) } }, 20001), 2001, 'parameters');
      ok(await send(3, c, { 'senv:Cph': { msg: big } }), 2004, 'streamed: the encryption\'s output is made as it goes');
      ok(await send(3, c, { 'senv:Cph': { msg: null } }), 2004, 'discarded');
    }
    // Left: the hashes' messages, 8 MiB, which the quota counts. Before: besides them, each hash's 2 MiB of
    // output room its digest never used, and each cipher's data and output buffers, 32 MiB in all.
    expect((await held()) - before - 4 * big.length).toBeLessThan(1 << 20);
    await s.engine.close();
  });
});

// The [memory] mgmtObj as a quota (docs/mcs.md "Memory quota"): usage goes
// up and down exactly as documented as resources are created, updated, used,
// deleted, expire and deregister; at the boundary the limit itself fits and
// one byte more answers 5207 and changes nothing (WASM memory included). An
// in-memory engine here; with a data directory in test/node/mcs-persist.
import { coreMemoryStats, InvalidInputError, McsEngine, SoftwareBackend } from '../../src/index.ts';
import { equal, ok as assert, prng, type PortableCase } from './harness.ts';
import { b64, body, fails, ok, Session } from './mcs-kit.ts';

/** What a list, string or policy counts: the length of its JSON text (UTF-8; these are ASCII). */
const json = (v: unknown) => JSON.stringify(v).length;

async function memory(s: Session): Promise<{ mma: number; mmt: number }> {
  return body(ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory'), 'm2m:mem') as { mma: number; mmt: number };
}

/** A registered session on an engine with this quota; `used` starts with what the registration counts (sID, srt). */
async function withQuota(quota: number, clock?: () => number): Promise<{ s: Session; used: number }> {
  const s = new Session(await McsEngine.create({ memoryQuota: quota, clock }), 'CAE1');
  const se = body(await s.register(), 'senv:Senv');
  return { s, used: json(se.sID) + json(se.srt) };
}

export const mcsQuotaCases: PortableCase[] = [
  {
    name: 'memory quota: memAvailable counts data, results, keys, held messages and client-written lists and policies, exactly, up and down',
    async run() {
      const Q = 1_000_000;
      let now = Date.UTC(2026, 10, 22, 12);
      const rnd = prng(61);
      const q = await withQuota(Q, () => now);
      const s = q.s;
      let used = q.used;
      const expect = async (what: string, delta: number) => {
        used += delta;
        const m = await memory(s);
        equal(m.mmt, Q, 'memTotal is the quota');
        equal(m.mma, Q - used, what);
      };
      await expect('a registration counts its sID and srt (its management objects are the SE\'s own: nothing)', 0);

      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(rnd(1000)) } }), 2001, 'sdo');
      await expect('sensitive data: its bytes', 1000);
      ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: b64(rnd(10)) } }), 2004, 'replace');
      await expect('replaced by a shorter value', -990);

      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      await expect('an algorithm is a number: nothing', 0);
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(300)) } }), 2004, 'chunk');
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(200)) } }), 2004, 'chunk');
      await expect('chunks held', 500);
      ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'hash');
      await expect('the hash value', 32);
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(50)) } }), 2004, 'new message');
      await expect('a chunk after a consumed message replaces it', 50 - 500);
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { et: '20991231T000000' } }), 2004, 'et');
      await expect('a time is a number: nothing', 0);

      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 4096, kDt: b64(rnd(16)) } }), 2001, 'cipher');
      await expect('an imported key: its material', 16);
      ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { nc: b64(rnd(12)), aD: b64(rnd(5)) } }), 2001, 'params');
      await expect('parameters: their bytes', 17);
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(100)) } }), 2004, 'data');
      ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt');
      await expect('data held and calculatedData (ciphertext and tag)', 100 + 116);
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { cbs: 0 } }), 2004, 'discard');
      await expect('cbs 0 frees the data held', -100);

      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'g', Calg: 24, mbs: 64 } }), 2001, 'keyless');
      ok(await s.retrieve(s.path('reg', 'g', 'generateKey')), 2000, 'generate');
      await expect('a generated AES-256 key', 32);
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: 33, sgF: 'raw' } }), 2001, 'ecdsa');
      await expect('a string from a fixed list (sgF) counts nothing, as an enumeration number', 0);
      const kInf = body(ok(await s.retrieve(s.path('reg', 'e', 'gnK')), 2000, 'generate'), 'senv:Sgn').kInf;
      await expect('a P-256 scalar and the public key in kInf', 32 + json(kInf));

      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(rnd(4)), msg: b64(rnd(28)) } }), 2001, 'hmac');
      ok(await s.retrieve(s.path('reg', 'm', 'cSgn')), 2000, 'sign');
      ok(await s.retrieve(s.path('reg', 'm', 'vSgn')), 2000, 'verify');
      await expect('key, message, signature; a verification result is a boolean', 4 + 28 + 32);

      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 16 } }), 2001, 'rand');
      ok(await s.retrieve(s.path('reg', 'r', 'gnR')), 2000, 'random');
      await expect('random data', 16);
      ok(await s.update(s.path('reg', 'r'), { 'senv:Rnd': { Dsz: 4 } }), 2004, 'Dsz');
      ok(await s.retrieve(s.path('reg', 'r', 'gnR')), 2000, 'random');
      await expect('shorter random data replaces it', -12);

      const pv = { acr: [{ acor: ['CAE2'], acop: 3 }] }, pvs = { acr: [{ acor: ['CAE1'], acop: 63 }] };
      const acp = body(ok(await s.create(s.seId, 1, { 'm2m:acp': { rn: 'a', pv, pvs } }), 2001, 'acp'), 'm2m:acp');
      await expect('policies: their JSON text', json(pv) + json(pvs));
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { acpi: [acp.ri] } }), 2004, 'acpi');
      await expect('a list of policy IDs', json([acp.ri]));
      ok(await s.update(s.seId, { 'senv:Senv': { hal: ['CAE1', 'CAE3'] } }), 2004, 'hal');
      ok(await s.update(s.path('reg', 'warmReset'), { 'senv:Srbt': { lbl: ['x'], dc: 'nightly' } }), 2004, 'labels');
      await expect('lists and strings of other resources', json(['CAE1', 'CAE3']) + json(['x']) + json('nightly'));
      // UTF-8 bytes, not UTF-16 units: 2 for U+0080 to U+07FF, 3 from U+0800, 4 for a surrogate pair.
      const wide = ['\u0080\u07ff\u0800\uffff\u{1f600}\u{10ffff}'];
      ok(await s.update(s.path('reg', 'warmReset'), { 'senv:Srbt': { lbl: wide } }), 2004, 'labels beyond ASCII');
      await expect('labels counted in UTF-8 bytes', new TextEncoder().encode(JSON.stringify(wide)).length - json(['x']));

      ok(await s.delete(s.path('reg', 'c')), 2002, 'delete cipher');
      await expect('DELETE frees the resource and its children: key, parameters, calculatedData', -(16 + 17 + 116));
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'x', msg: b64(rnd(500)) } }), 2001, 'sdo');
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'y', Halg: 4, msg: b64(rnd(70)), et: '20261122T120100' } }), 2001, 'expiring');
      await expect('created', 570);
      now += 120_000;
      await expect('expiration frees what the expired resource held', -70);
      ok(await s.delete(s.seId), 2002, 'deregister');
      const again = new Session(s.engine, 'CAE1');
      await again.register();
      equal((await memory(again)).mma, Q - q.used, 'deregistration frees everything');
    },
  },
  {
    name: 'memory quota: the limit itself fits, one byte more answers 5207 and changes nothing, and freeing always fits',
    async run() {
      const Q = 50_000;
      const rnd = prng(62);
      const { s, used } = await withQuota(Q);
      const avail = Q - used;
      const mma = async () => (await memory(s)).mma;
      const inUse = () => coreMemoryStats().inUseBytes;

      fails(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'big', msg: b64(rnd(avail + 1)) } }), 5207, 'CREATE one byte over', /not enough memory/);
      fails(await s.retrieve(s.path('reg', 'big')), 4004, 'nothing created');
      equal(await mma(), avail, 'nothing counted');
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'big', msg: b64(rnd(avail)) } }), 2001, 'CREATE at the limit');
      equal(await mma(), 0, 'full');
      fails(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'one', msg: 'AA==' } }), 5207, 'one byte when full');
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'what counts nothing fits when full');
      ok(await s.delete(s.path('reg', 'big')), 2002, 'delete');
      equal(await mma(), avail, 'freed');

      // A chunk big enough to open a backend stream: refused before anything is applied or streamed.
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(avail - 40000)) } }), 2004, 'fill');
      const held = async () => JSON.stringify((await s.retrieve(s.path('reg', 'h'))).pc);
      const before = await held();
      const memory0 = inUse();
      fails(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(40001)) } }), 5207, 'UPDATE one byte over', /40001 bytes needed, 40000 available/);
      equal(await held(), before, 'refused chunk not appended');
      equal(inUse(), memory0, 'no stream opened for it');
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(rnd(40000)) } }), 2004, 'UPDATE at the limit');
      equal(await mma(), 0, 'full');

      // An operation's result must fit too; refused, it consumes nothing: a chunk still appends (and does not fit).
      fails(await s.retrieve(s.path('reg', 'h', 'cHsh')), 5207, 'hash value does not fit', /32 bytes needed, 0 available/);
      equal(body(await s.retrieve(s.path('reg', 'h')), 'senv:Hsh').Hv, undefined, 'no hash value');
      fails(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: 'AA==' } }), 5207, 'the message was not consumed');
      // Whatever frees memory is accepted when full.
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: null } }), 2004, 'discard the message');
      equal(await mma(), avail, 'freed');
      ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'now it fits');
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: avail - 32 + 1 } }), 2001, 'rand');
      fails(await s.retrieve(s.path('reg', 'r', 'gnR')), 5207, 'random data one byte over');
      equal(body(await s.retrieve(s.path('reg', 'r')), 'senv:Rnd').rndD, undefined, 'none stored');
      ok(await s.update(s.path('reg', 'r'), { 'senv:Rnd': { Dsz: avail - 32 } }), 2004, 'Dsz');
      ok(await s.retrieve(s.path('reg', 'r', 'gnR')), 2000, 'random data at the limit');
      equal(await mma(), 0, 'full');
      ok(await s.update(s.path('reg', 'r'), { 'senv:Rnd': { Dsz: 1 } }), 2004, 'Dsz');
      ok(await s.retrieve(s.path('reg', 'r', 'gnR')), 2000, 'shorter random data fits when full');
      equal(await mma(), avail - 33, 'freed');
    },
  },
  {
    name: 'memory quota: a result over 64 bytes that a binary caller takes as it is (not copied for the response) counts as one answered in base64',
    async run() {
      const Q = 100_000;
      const rnd = prng(63);
      const { s, used } = await withQuota(Q);
      const c = s.path('reg', 'c');
      ok(await s.send(1, s.seId, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 4096, kDt: rnd(16) } }, 20002, true), 2001, 'cipher');
      ok(await s.send(1, c, { 'senv:algP': { nc: rnd(12) } }, 20001, true), 2001, 'nonce');
      ok(await s.send(3, c, { 'senv:Cph': { msg: rnd(100) } }, undefined, true), 2004, 'data');
      const r = ok(await s.send(2, `${c}/encrypt`, undefined, undefined, true), 2000, 'encrypt, binary');
      equal((body(r, 'senv:Cph').cD as Uint8Array).length, 116, 'ciphertext and tag');
      equal((await memory(s)).mma, Q - used - (16 + 12 + 100 + 116), 'key, nonce, data held and the 116-byte result');
    },
  },
  {
    name: 'memory quota: a resource and its child falling due in the same sweep free what they held once',
    async run() {
      const Q = 100_000;
      let now = Date.UTC(2026, 10, 22, 12);
      const rnd = prng(64);
      const { s, used } = await withQuota(Q, () => now);
      const et = '20261122T120100';
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: b64(rnd(16)), et } }), 2001, 'cipher');
      ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { nc: b64(rnd(12)), aD: b64(rnd(5)), et } }), 2001, 'parameters due with it');
      equal((await memory(s)).mma, Q - used - 33, 'key and parameters');
      now += 120_000;
      equal((await memory(s)).mma, Q - used, 'both gone, each counted off once');
      fails(await s.retrieve(s.path('reg', 'c')), 4004, 'expired');
    },
  },
  {
    name: 'memory quota: memoryQuota overrides what the backend reports (software SE: storageQuota, 64 MiB by default); a bad value is refused',
    async run() {
      const mmt = async (engine: McsEngine) => {
        const s = new Session(engine, 'CAE1');
        await s.register();
        return (await memory(s)).mmt;
      };
      equal(await mmt(await McsEngine.create()), 64 * 1024 * 1024, 'default');
      equal(await mmt(await McsEngine.create({ backends: [new SoftwareBackend({ storageQuota: 123456 })] })), 123456, 'the backend\'s');
      equal(await mmt(await McsEngine.create({ memoryQuota: 4096, backends: [new SoftwareBackend({ storageQuota: 123456 })] })), 4096, 'the option\'s');
      for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) {
        let error: unknown;
        try {
          await McsEngine.create({ memoryQuota: bad });
        } catch (e) {
          error = e;
        }
        assert(error instanceof InvalidInputError && /memoryQuota/.test(error.message), `memoryQuota ${bad}: ${String(error)}`);
      }
      for (const bad of [-1, 1.5, 'x', 2 ** 53]) {
        let error: unknown;
        try {
          new SoftwareBackend({ storageQuota: bad as never });
        } catch (e) {
          error = e;
        }
        assert(error instanceof InvalidInputError && /storageQuota/.test(error.message), `storageQuota ${String(bad)}: ${String(error)}`);
      }
      // A quota smaller than what a registration counts refuses the registration itself.
      const s = new Session(await McsEngine.create({ memoryQuota: 10 }), 'CAE1');
      fails(await s.create(s.seId, 20011, { 'senv:Senv': { rn: 'reg', sID: s.seId, seL: 1 } }), 5207, 'registration beyond the quota', /not enough memory/);
      fails(await s.retrieve(s.seId), 4106, 'not registered');
    },
  },
];

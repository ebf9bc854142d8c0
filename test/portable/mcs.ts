// Mcs conformance (TS-0016 clauses 7.2 to 7.5) through request and response
// primitives: registration and addressing, every procedure with its success
// and failure codes, results checked against known answers and the core.
import { ecdsa, gcm, hash, hmac, InvalidInputError, McsClient, McsError, McsEngine, CipherResource, SignatureResource, SoftwareBackend, StateError, type HashName, type McsResponse, type ObjectStore } from '../../src/index.ts';
import { equal, equalBytes, equalHex, ok as assert, prng, utf8, type PortableCase } from './harness.ts';
import { fromBase64, hexValue, keyFromBase64, keyFromHex, keyToHex, toBase64 } from '../../src/mcs/codec.ts';
import { b64, body, createExportable, exportsKeys, fails, ok, Session, softwareSe, engineWith, unb64, type BackendFactory } from './mcs-kit.ts';

const HASH: Record<number, HashName> = { 4: 'SHA-256', 5: 'SHA-384', 6: 'SHA-512' };
const ABC: Record<number, string> = {
  4: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  5: 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7',
  6: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
};
// RFC 4231 test case 2.
const JEFE: Record<number, string> = {
  25: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  26: 'af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649',
  27: '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737',
};
const ECDSA: Record<number, { curve: 'P-256' | 'P-384' | 'P-521'; hash: HashName; key: number }> = {
  33: { curve: 'P-256', hash: 'SHA-256', key: 32 },
  34: { curve: 'P-384', hash: 'SHA-384', key: 48 },
  38: { curve: 'P-521', hash: 'SHA-512', key: 66 },
};

/**
 * An engine whose SE holds its turn: its random source waits for `open()`, and `slow`, a generateRand of the
 * <rand> 'rng', is under way. The SE also has a <sensitiveDataObject> 'd' holding 'ABC' (QUJD).
 */
async function heldTurn(backend: BackendFactory, clock?: () => number): Promise<{ engine: McsEngine; s: Session; slow: Promise<McsResponse>; open: () => void }> {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const engine = await engineWith(() => {
    const b = backend();
    const random = b.random.bind(b);
    b.random = async (type, length) => {
      await gate;
      return random(type, length);
    };
    return b;
  }, clock ? { clock } : {});
  try {
    const s = new Session(engine, 'CAE1');
    await s.register();
    ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'rng', rgT: 1, Dsz: 16 } }), 2001, 'rand');
    ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: 'QUJD' } }), 2001, 'sdo');
    return { engine, s, slow: s.retrieve(s.path('reg', 'rng', 'generateRand')), open };
  } catch (e) {
    await engine.close();
    throw e;
  }
}

async function registered(backend: BackendFactory, fr = 'CAE1'): Promise<Session> {
  const s = new Session(await engineWith(backend), fr);
  await s.register();
  return s;
}

export function mcsCases(backend: BackendFactory = softwareSe): PortableCase[] {
  return [
    {
      name: 'registration: CREATE <SE> fills SEType, srt and the mgmtObjs; M2M-SE-ID is type-uniqueID',
      async run() {
        const engine = await engineWith(backend);
        const s = new Session(engine, 'CAE1');
        const info = engine.describe(s.seId)!.description;
        assert(s.seId.startsWith(`${info.seType}-`) && s.seId.length > 2, `M2M-SE-ID ${s.seId}`);
        const se = body(await s.register('reg'), 'senv:Senv');
        equal(se.seT, info.seType, 'seT');
        equal(se.sID, s.seId, 'sID');
        equal(se.pi, s.seId, 'pi of a registration');
        equal(se.cr, 'CAE1', 'cr');
        assert(Array.isArray(se.srt) && (se.srt as number[]).includes(20004), 'srt lists hash');
        const dvi = body(ok(await s.retrieve(s.path('reg', 'deviceInfo')), 2000, 'deviceInfo'), 'm2m:dvi');
        equal(dvi.mgd, 1007, 'deviceInfo mgd');
        // TS-0001 D.8's identification attributes (label, manufacturer, model, type, firmware, software and hardware versions): every one present, as text.
        for (const sn of ['dlb', 'man', 'mod', 'dty', 'fwv', 'swv', 'hwv']) assert(typeof dvi[sn] === 'string' && (dvi[sn] as string).length > 0, `deviceInfo ${sn}`);
        equal(dvi.hwv, info.hardwareVersion, 'deviceInfo hwv: what the backend runs on');
        assert(typeof dvi.dc === 'string' && /rngType/.test(dvi.dc), 'deviceInfo says where random bytes come from');
        const mem = body(ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory'), 'm2m:mem');
        assert(typeof mem.mmt === 'number' && typeof mem.mma === 'number', 'memory figures');
        // The M2M-SE-ID alone addresses the originator's own registration.
        equal(body(ok(await s.retrieve(s.seId), 2000, 'retrieve SE'), 'senv:Senv').ri, se.ri, 'registration by M2M-SE-ID');
        equal(body(ok(await s.retrieve(s.path(se.ri as string)), 2000, 'by ri'), 'senv:Senv').rn, 'reg', 'registration by ri');
      },
    },
    {
      name: 'a client value shaped like a key handle stays plain data (shown, stored, counted, deleted)',
      async run() {
        const engine = await engineWith(backend);
        const s = new Session(engine, 'CAE1');
        const fake = { spec: { use: 'cipher', algorithm: 1001 }, kind: 'secret', size: 16 };
        const level = engine.describe(s.seId)!.description.securityLevel;
        const se = body(ok(await s.create(s.seId, 20011, { 'senv:Senv': { rn: 'reg', sID: s.seId, seL: level, esi: fake } }), 2001, 'register'), 'senv:Senv');
        equal(JSON.stringify(se.esi), JSON.stringify(fake), 'esi in the CREATE response');
        const other = { ...fake, kind: 'public', size: 1 };
        ok(await s.update(s.path('reg'), { 'senv:Senv': { esi: other } }), 2004, 'update esi');
        equal(JSON.stringify(body(ok(await s.retrieve(s.path('reg')), 2000, 'retrieve'), 'senv:Senv').esi), JSON.stringify(other), 'esi retrieved');
        ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory');
        ok(await s.delete(s.path('reg')), 2002, 'deregister');
      },
    },
    {
      name: 'registration failures: 4117 twice, 4000 wrong sID/seL/srt, 4106 unregistered, 4004 unknown SE',
      async run() {
        const engine = await engineWith(backend);
        const s = new Session(engine, 'CAE1');
        const level = engine.describe(s.seId)!.description.securityLevel;
        fails(await s.create(s.seId, 20011, { 'senv:Senv': { sID: 'nope', seL: level } }), 4000, 'wrong sID', /sID/);
        fails(await s.create(s.seId, 20011, { 'senv:Senv': { sID: s.seId, seL: level === 3 ? 1 : 3 } }), 4000, 'wrong seL', /seL/);
        // Table 9.3-1 defines 1, 2 and 3 only.
        for (const seL of [0, 4]) fails(await s.create(s.seId, 20011, { 'senv:Senv': { sID: s.seId, seL } }), 4000, `seL ${seL}`, /one of 1, 2, 3 \(table 9\.3-1\)/);
        fails(await s.create(s.seId, 20011, { 'senv:Senv': { sID: s.seId } }), 4000, 'missing seL', /seL.*mandatory/);
        fails(await s.create(s.seId, 20011, { 'senv:Senv': { sID: s.seId, seL: level, srt: [20004, 99999] } }), 4000, 'srt widening', /srt/);
        const seT = engine.describe(s.seId)!.description.seType === 4 ? 1 : 4;
        fails(await s.create(s.seId, 20011, { 'senv:Senv': { sID: s.seId, seL: level, seT } }), 4000, 'another SE\'s seT', /seT \(SEType\) is computed by the SE/);
        fails(await s.retrieve(s.seId), 4106, 'unregistered retrieve');
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4 } }), 4106, 'unregistered create');
        await s.register();
        fails(await s.create(s.seId, 20011, { 'senv:Senv': { sID: s.seId, seL: level } }), 4117, 'second registration');
        // Caller text in an m2m:dbg is quoted by its start (fails() checks the dbg is short).
        const wordy = new Session(engine, `C${'x'.repeat(1023)}`);
        await wordy.register('wordy');
        fails(await wordy.create(s.seId, 20011, { 'senv:Senv': { sID: s.seId, seL: level } }), 4117, 'second registration, a long originator', /^Cx{63}… is already registered/);
        fails(await s.retrieve('4-nosuchse'), 4004, 'unknown SE');
        fails(await s.retrieve(s.path('reg', 'nothing')), 4004, 'unknown resource');
        fails(await s.create(s.path('reg', 'memory'), 20011, { 'senv:Senv': { sID: s.seId, seL: level } }), 4108, '<SE> below the root');
        // A registration's name never equals a resource ID: both stand first in an address.
        const ri = body(ok(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4 } }), 2001, 'hash'), 'senv:Hsh').ri as string;
        // The same text as for another registration's name: an originator not registered learns only that the name is taken.
        const taken = async (rn: string) => fails(await new Session(engine, 'CAE9').create(s.seId, 20011, { 'senv:Senv': { rn, sID: s.seId, seL: level } }), 4105, `registration named ${rn}`, new RegExp(`^the name '${rn}' is taken on this SE$`));
        await taken(ri);
        await taken('reg');
        // Deregistration removes everything and the originator is unknown again.
        ok(await s.delete(s.seId), 2002, 'deregister');
        fails(await s.retrieve(s.seId), 4106, 'after deregistration');
      },
    },
    {
      name: 'primitive envelope: 4000 for malformed requests, 4001 for an unknown rvi, 4005 for NOTIFY',
      async run() {
        const engine = await engineWith(backend);
        const seId = engine.seIds[0]!;
        const base = { op: 2, to: seId, fr: 'CAE1', rqi: 'x' };
        const bad: [unknown, number][] = [
          [null, 4000], ['text', 4000], [[], 4000], [{ ...base, rqi: undefined }, 4000], [{ ...base, rqi: 7 }, 4000],
          [{ ...base, op: 0 }, 4000], [{ ...base, op: '2' }, 4000], [{ ...base, op: 5 }, 4005], [{ ...base, to: '' }, 4000],
          [{ ...base, fr: undefined }, 4000], [{ ...base, rvi: '9' }, 4001], [{ ...base, rvi: 3 }, 4000], [{ ...base, extra: 1 }, 4000],
          // names of Object.prototype's members are unknown parameters too
          [{ ...base, toString: 1 }, 4000], [{ ...base, constructor: 1 }, 4000], [JSON.parse(`{"op":2,"to":"${seId}","fr":"CAE1","rqi":"x","__proto__":1}`), 4000],
          [{ ...base, op: 1 }, 4000], [{ ...base, op: 1, ty: 20004 }, 4000], [{ ...base, op: 3 }, 4000], [{ ...base, op: 3, pc: [] }, 4000],
        ];
        for (const [req, rsc] of bad) {
          const r = await engine.send(req);
          fails(r, rsc, `request ${JSON.stringify(req)}`);
        }
        equal((await engine.send({ ...base, rqi: 'echo-me', op: 9 })).rqi, 'echo-me', 'rqi echoed on failure');
        // ty and pc absent, or present but of the wrong kind, are told apart (a CSE that sent ty as a string did send it).
        const named: [Record<string, unknown>, string][] = [
          [{ op: 1, pc: {} }, 'ty (resource type) is mandatory for CREATE'],
          [{ op: 1, ty: '20004', pc: {} }, 'ty (resource type) must be a whole number (table 9.1-1), got a string of 5 characters'],
          [{ op: 1, ty: 20004.5, pc: {} }, 'ty (resource type) must be a whole number (table 9.1-1), got 20004.5'],
          [{ op: 1, ty: 20004 }, 'pc (content) is mandatory for CREATE and UPDATE'],
          [{ op: 3, pc: 'senv:Hsh' }, 'pc (content) must be an object holding one element, got a string of 8 characters'],
          [{ op: 3, pc: [] }, 'pc (content) must be an object holding one element, got a value of type array'],
          [{ op: 3, pc: null }, 'pc (content) must be an object holding one element, got null'],
        ];
        for (const [extra, message] of named) fails(await engine.send({ ...base, ...extra }), 4000, `request ${JSON.stringify(extra)}`, new RegExp(`^${message.replace(/[().]/g, '\\$&')}$`));
        const longRqi = await engine.send({ ...base, rqi: 'q'.repeat(1025) });
        fails(longRqi, 4000, 'an rqi of 1025 characters', /rqi \(request identifier\) must be a string of 1 to 1024 characters/);
        equal(longRqi.rqi, '', 'an rqi refused for its length is not echoed');
        equal((await engine.send({ ...base, rqi: 'q'.repeat(1024), op: 9 })).rqi, 'q'.repeat(1024), 'an rqi of 1024 characters is echoed');
        // A supported rvi is echoed whatever refused the request: the envelope, or no SE at the address.
        const refused: [Record<string, unknown>, number][] = [
          [{ ...base, op: 9 }, 4000], [{ ...base, op: 5 }, 4005], [{ ...base, fr: '' }, 4000], [{ ...base, to: 'nope-1' }, 4004],
          [{ ...base, extra: 1 }, 4000], [{ ...base, op: 2 }, 4106],
        ];
        for (const [req, rsc] of refused) {
          for (const [name, v] of [['rvi', '3'], ['releaseVersionIndicator', '5']] as const) {
            const r = await engine.send({ ...req, [name]: v });
            fails(r, rsc, `${name} ${JSON.stringify(req)}`);
            equal(r.rvi, v, `rvi echoed: ${name} ${JSON.stringify(req)}`);
          }
        }
        equal((await engine.send({ ...base, rvi: '9' })).rvi, undefined, 'an unsupported rvi is not echoed');
        // Request parameters of TS-0001 table 8.1.2-3 this layer reads: rt, rcn, ot, rqet; others are refused by name.
        const parameters: [Record<string, unknown>, number, RegExp?][] = [
          // TS-0004's responseType: 1 and 2 non-blocking (synchronous, asynchronous), 5 noResponse; 3 blocking, 4 flexBlocking.
          [{ rt: { rtv: 1 } }, 5206, /blocking.*not 1/], [{ rt: { rtv: 2, nu: ['x'] } }, 5206], [{ rt: { rtv: 5 } }, 5206], [{ rt: { responseTypeValue: 1 } }, 5206],
          [{ rt: 1 }, 4000, /rt/], [{ rt: { rtv: 9 } }, 4000], [{ rt: { rtv: 0 } }, 4000], [{ rt: { rtv: '3' } }, 4000], [{ rt: {} }, 4000],
          [{ rcn: 0 }, 4000, /rcn.*RETRIEVE/], [{ rcn: 4 }, 4000, /rcn/], [{ rcn: '1' }, 4000], [{ op: 4, rcn: 1 }, 4000, /DELETE/],
          [{ ot: 'yesterday' }, 4000, /ot/], [{ rqet: -5 }, 4000, /rqet/], [{ rqet: '2020' }, 4000],
          [{ fc: { lbl: ['x'] } }, 4000, /'fc' is not supported/], [{ drt: 1 }, 4000],
        ];
        for (const [extra, rsc, message] of parameters) fails(await engine.send({ ...base, ...extra }), rsc, `request ${JSON.stringify(extra)}`, message);
        // Long names are accepted.
        const s = new Session(engine, 'CAE1');
        await s.register();
        const r = await engine.send({ operation: 2, to: seId, from: 'CAE1', requestIdentifier: 'L1', releaseVersionIndicator: '4' });
        ok(r, 2000, 'long names');
        equal(r.rvi, '4', 'rvi echoed');
        ok(await engine.send({ ...base, rt: { rtv: 3 }, rcn: 1, ot: '20261122T120000', rqet: '29991231T000000' }), 2000, 'rt, rcn, ot, rqet');
        ok(await engine.send({ operation: 2, to: seId, from: 'CAE1', requestIdentifier: 'L2', responseType: { responseTypeValue: 4 }, resultContent: 1, originatingTimestamp: '20261122T120000', requestExpirationTimestamp: 60000 }), 2000, 'their long names; flexBlocking is served blocking');
        fails(await engine.send({ ...base, rqet: '20200101T000000' }), 4008, 'expired rqet', /rqet/);
        fails(await engine.send({ ...base, rqet: 0 }), 4008, 'rqet of 0 ms');
        const quiet = await engine.send({ op: 1, to: seId, fr: 'CAE1', rqi: 'q', ty: 20004, rcn: 0, pc: { 'senv:Hsh': { rn: 'quiet', Halg: 4 } } });
        ok(quiet, 2001, 'rcn 0');
        equal(quiet.pc, undefined, 'rcn 0: no content');
        equal((await engine.send({ op: 3, to: `${seId}/reg/quiet`, fr: 'CAE1', rqi: 'q2', rcn: 0, pc: { 'senv:Hsh': { msg: 'QUJD' } } })).pc, undefined, 'rcn 0 on UPDATE');
        assert((await engine.send({ op: 3, to: `${seId}/reg/quiet`, fr: 'CAE1', rqi: 'q3', rcn: 1, pc: { 'senv:Hsh': { msg: 'QUJD' } } })).pc !== undefined, 'rcn 1 on UPDATE');
        // TS-0004's modifiedAttributes (9) is what an UPDATE answers: asked for by name, it is served, the same content as rcn 1.
        const modified = await engine.send({ op: 3, to: `${seId}/reg/quiet`, fr: 'CAE1', rqi: 'q4', rcn: 9, pc: { 'senv:Hsh': { msg: 'QUJD' } } });
        ok(modified, 2004, 'rcn 9 on UPDATE');
        equal(Object.keys((modified.pc as Record<string, Record<string, unknown>>)['senv:Hsh']!).sort().join(), 'lt,ri', 'rcn 9: ri and lt, the message not echoed');
        for (const [op, extra] of [[1, { ty: 20004, pc: { 'senv:Hsh': { rn: 'nine', Halg: 4 } } }], [2, {}], [4, {}]] as const) {
          fails(await engine.send({ op, to: `${seId}/reg/quiet`, fr: 'CAE1', rqi: 'q5', rcn: 9, ...extra }), 4000, `rcn 9 on op ${op}`, /rcn \(resultContent\) 9 is not supported/);
        }
        // Only own members are parameters: what a prototype holds is not read, with short names or long.
        const inherited = { fr: 'CAE1', pc: { 'senv:Sdo': { rn: 'proto', msg: 'c2VjcmV0' } } };
        for (const own of [{ op: 1, to: seId, rqi: 'p1', ty: 20009 }, { op: 1, to: seId, requestIdentifier: 'p2', ty: 20009 }]) {
          fails(await engine.send(Object.assign(Object.create(inherited), own)), 4000, `inherited fr and pc, own ${Object.keys(own).join(' ')}`, /fr|pc/);
        }
        fails(await s.retrieve(`${seId}/reg/proto`), 4004, 'nothing created from inherited content');
        ok(await engine.send(Object.assign(Object.create({ unrelated: 1 }), base)), 2000, 'a prototype of its own, every parameter own');
      },
    },
    {
      name: 'CREATE content errors: unknown type 4000, not implemented 5001, wrong root 4000, unknown attribute 4000, bad child 4108',
      async run() {
        const s = await registered(backend);
        fails(await s.create(s.seId, 29999, { 'senv:X': {} }), 4000, 'unknown ty', /unknown resource type/);
        fails(await s.create(s.seId, 20008, { 'senv:Sc': {} }), 5001, 'secureConnection');
        fails(await s.create(s.seId, 13, { 'm2m:mem': {} }), 4005, 'mgmtObj by client');
        fails(await s.create(s.seId, 20004, { 'senv:Cph': { Halg: 4 } }), 4000, 'wrong root', /senv:Hsh/);
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4 }, extra: {} }), 4000, 'two roots');
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, zzz: 1 } }), 4000, 'unknown attribute', /zzz/);
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 7 } }), 4000, 'unknown algorithm', /Halg.*table 9\.8-1/);
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, msg: 'not base64!' } }), 4000, 'bad base64', /base64/);
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, msg: 'QUJD' }, }).then(async () => s.create(s.path('reg', 'memory'), 20004, { 'senv:Hsh': { Halg: 4 } })), 4108, 'hash under memory');
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, rn: 'bad/name' } }), 4000, 'bad rn', /rn/);
        ok(await s.create(s.seId, 20004, { 'senv:hash': { algorithm: 4, resourceName: 'long' } }), 2001, 'long names in content');
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, rn: 'long' } }), 4105, 'duplicate rn');
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, et: '20200101T000000' } }), 4000, 'et in the past', /et/);
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, acpi: ['nope'] } }), 4000, 'acpi to nothing', /acpi/);
      },
    },
    {
      name: 'CREATE under every parent: a type its table does not list 4108, one it lists that senv does not implement 5001, a number no spec has 4000',
      async run() {
        const s = await registered(backend);
        const made = async (ty: number, pc: Record<string, unknown>, to = s.seId) => s.path(body(ok(await s.create(to, ty, pc), 2001, `parent ${ty}`), Object.keys(pc)[0]!).ri as string);
        const cipher = await made(20002, { 'senv:Cph': { Calg: 1001, mbs: 64 } });
        const parents: Record<string, { to: string; lists: Record<number, number> }> = {
          // Table 7.3.0-1 (with [deviceInfo] and [memory], the SE's own <mgmtObj>s: 4005).
          SE: { to: s.seId, lists: { 13: 4005, 20008: 5001, 20005: 5001 } },
          // Table 7.3.1-1.
          SEReboot: { to: s.path('reg', 'coldReset'), lists: { 23: 5001, 24: 5001 } },
          deviceInfo: { to: s.path('reg', 'deviceInfo'), lists: {} },
          memory: { to: s.path('reg', 'memory'), lists: {} },
          accessControlPolicy: { to: await made(1, { 'm2m:acp': { pv: { acr: [{ acor: ['CAE1'], acop: 63 }] }, pvs: { acr: [{ acor: ['CAE1'], acop: 63 }] } } }), lists: {} },
          sensitiveDataObject: { to: await made(20009, { 'senv:Sdo': {} }), lists: {} },
          cipher: { to: cipher, lists: {} },
          algorithmSpecificParameter: { to: await made(20001, { 'senv:algP': { nc: b64(new Uint8Array(12)) } }, cipher), lists: {} },
          rand: { to: await made(20007, { 'senv:Rnd': { rgT: 1 } }), lists: {} },
          hash: { to: await made(20004, { 'senv:Hsh': { Halg: 4 } }), lists: {} },
          signature: { to: await made(20012, { 'senv:Sgn': { Salg: 25, kDt: 'a2V5' } }), lists: {} },
        };
        // Implemented children where their parent takes them go on to the content (tested elsewhere).
        const takes: Record<string, number[]> = { SE: [1, 20010, 20009, 20002, 20007, 20004, 20012], cipher: [20001] };
        let n = 0;
        for (const [parent, { to, lists }] of Object.entries(parents)) {
          for (const ty of [1, 13, 23, 24, 20001, 20002, 20003, 20004, 20005, 20007, 20008, 20009, 20010, 20012]) {
            if (takes[parent]?.includes(ty)) continue;
            const want = lists[ty] ?? 4108;
            fails(await s.create(to, ty, { 'm2m:x': {} }), want, `ty ${ty} under ${parent}`, want === 4108 ? new RegExp(`cannot be a child of <${parent}>`) : want === 5001 ? /not implemented/ : undefined);
            n++;
          }
          for (const ty of [0, 20000, 20006, 20013, 29999]) fails(await s.create(to, ty, { 'm2m:x': {} }), 4000, `ty ${ty} under ${parent}`, /unknown resource type/);
        }
        // The SE's answer to a <SE> below anything stays its own.
        fails(await s.create(s.path('reg', 'coldReset'), 20011, { 'senv:Senv': {} }), 4108, '<SE> below an [SEReboot]', /M2M-SE-ID only/);
        assert(n > 140, `covered ${n}`);
      },
    },
    {
      name: 'cbs and cr of a <sensitiveDataObject> (M at CREATE in table 7.4.1-2) and seT of an <SE> (O/O in table 7.3.0-3) are served when they state the true value, refused (4000) otherwise, and a refused one leaves nothing',
      async run() {
        const engine = await engineWith(backend);
        const s = new Session(engine, 'CAE1');
        const seT = engine.describe(s.seId)!.description.seType;
        const seL = engine.describe(s.seId)!.description.securityLevel;
        fails(await s.create(s.seId, 20011, { 'senv:Senv': { rn: 'reg', sID: s.seId, seL, seT: seT === 4 ? 1 : 4 } }), 4000, 'another SEType', /seT \(SEType\) is computed by the SE/);
        fails(await s.retrieve(s.seId), 4106, 'no registration left');
        equal(body(ok(await s.create(s.seId, 20011, { 'senv:Senv': { rn: 'reg', sID: s.seId, seL, seT } }), 2001, 'the true SEType'), 'senv:Senv').seT, seT, 'seT');
        // Nothing is written from a stated value: the reply names no attribute beyond ri and lt.
        equal(Object.keys(body(ok(await s.update(s.seId, { 'senv:Senv': { seT } }), 2004, 'seT stated at UPDATE'), 'senv:Senv')).sort().join(), 'lt,ri', 'seT stated at UPDATE: the reply');
        // A card keeps the directory of its data objects (object FE, docs/apdu-profile.md) once it has one: made before the count.
        ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(utf8('ABC')) } }), 2001, 'a first data object');
        ok(await s.delete(s.path('reg', 'd')), 2002, 'deleted');
        const before = body(ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory'), 'm2m:mem').mma;
        fails(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(utf8('ABC')), cbs: 4 } }), 4000, 'cbs not the size', /cbs \(currentByteSize\) is computed by the SE: 3 here, not 4/);
        fails(await s.retrieve(s.path('reg', 'd')), 4004, 'nothing created');
        equal(body(ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory'), 'm2m:mem').mma, before, 'no memory held');
        const d = body(ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(utf8('ABC')), cbs: 3, cr: null } }), 2001, 'cbs the size'), 'senv:Sdo');
        equal(d.cbs, 3, 'cbs');
        equal(body(ok(await s.retrieve(s.path('reg', 'd')), 2000, 'read'), 'senv:Sdo').msg, b64(utf8('ABC')), 'the data');
        ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'e', cbs: 0 } }), 2001, 'cbs 0 without data');
        // Table 7.4.1-2 marks creator M too: the originator's own ID is served as null is.
        equal(body(ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'f', cr: 'CAE1', cbs: 0 } }), 2001, 'cr stated'), 'senv:Sdo').cr, 'CAE1', 'cr');
        fails(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'g', cr: 'CAE2' } }), 4000, 'another creator', /cr \(creator\) is computed by the SE/);
        fails(await s.create(s.seId, 20004, { 'senv:Hsh': { Halg: 4, cr: 'CAE1' } }), 4000, 'cr of a type whose table does not list it', /cr \(creator\) is read-only/);
        fails(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { cbs: 3 } }), 4000, 'cbs at UPDATE (NP)', /not permitted at UPDATE/);
      },
    },
    ...[4, 5, 6].map((alg): PortableCase => ({
      name: `<hash> ${HASH[alg]} (Halg ${alg}): calculateHash over streamed UPDATEs equals the core`,
      async run() {
        const s = await registered(backend);
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: alg, msg: b64(utf8('abc')) } }), 2001, 'create');
        equalHex(unb64(body(ok(await s.retrieve(s.path('reg', 'h', 'calculateHash')), 2000, 'calc'), 'senv:Hsh').Hv), ABC[alg]!, 'abc');
        // Same again without new data; then a new message replaces the consumed one.
        equalHex(unb64(body(await s.retrieve(s.path('reg', 'h', 'cHsh')), 'senv:Hsh').Hv), ABC[alg]!, 'idempotent');
        const rnd = prng(alg);
        const chunks = [0, 1, 63, 64, 65, 1000, 40000, 70000, 3].map((n) => rnd(n));
        for (const c of chunks) ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(c) } }), 2004, 'update');
        const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let o = 0;
        for (const c of chunks) { all.set(c, o); o += c.length; }
        const got = unb64(body(await s.retrieve(s.path('reg', 'h', 'cHsh')), 'senv:Hsh').Hv);
        equalBytes(got, hash(HASH[alg]!, all), 'chunked equals core one-shot');
        const rep = body(ok(await s.retrieve(s.path('reg', 'h')), 2000, 'retrieve'), 'senv:Hsh');
        equalBytes(unb64(rep.msg), all, 'message readable');
        equalBytes(unb64(rep.Hv), got, 'hashValue readable');
        fails(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { Halg: 5 } }), 4000, 'Halg is write-once', /write-once/);
        fails(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { Hv: 'AAAA' } }), 4000, 'Hv is read-only', /read-only/);
        fails(await s.update(s.path('reg', 'h', 'cHsh'), { 'senv:Hsh': {} }), 4005, 'UPDATE on a virtual resource');
        fails(await s.delete(s.path('reg', 'h', 'cHsh')), 4005, 'DELETE on a virtual resource');
        fails(await s.retrieve(`${s.path('reg', 'h', 'cHsh')}/x`), 4004, 'nothing below a virtual resource');
        ok(await s.delete(s.path('reg', 'h')), 2002, 'delete');
        fails(await s.retrieve(s.path('reg', 'h', 'cHsh')), 4004, 'gone');
      },
    })),
    ...[25, 26, 27].map((alg): PortableCase => ({
      name: `<signature> HMAC (Salg ${alg}): RFC 4231, verify, generateKey, exportability`,
      async run() {
        const s = await registered(backend);
        const hashName = HASH[alg - 21]!;
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: alg, kDt: b64(utf8('Jefe')), msg: b64(utf8('what do ya want for nothing?')) } }), 2001, 'create');
        const sig = body(ok(await s.retrieve(s.path('reg', 'm', 'calculateSignature')), 2000, 'sign'), 'senv:Sgn');
        equalHex(unb64(sig.Sgn), JEFE[alg]!, 'RFC 4231 case 2');
        equal(body(await s.retrieve(s.path('reg', 'm')), 'senv:Sgn').kDt, undefined, 'keyData not readable');
        equal(body(ok(await s.retrieve(s.path('reg', 'm', 'verifySignature')), 2000, 'verify'), 'senv:Sgn').vR, true, 'verifies');
        const bad = unb64(sig.Sgn);
        bad[0]! ^= 1;
        ok(await s.update(s.path('reg', 'm'), { 'senv:Sgn': { Sgn: b64(bad) } }), 2004, 'wrong signature');
        equal(body(await s.retrieve(s.path('reg', 'm', 'vSgn')), 'senv:Sgn').vR, false, 'wrong signature fails');
        fails(await s.retrieve(s.path('reg', 'm', 'generateKey')), 4005, 'key is write-once', /write-once/);
        // Generated key: exportable, read back and the MAC checked with the core; on a card it stays there.
        const exportable = await createExportable(s, 20012, 'senv:Sgn', { rn: 'g', Salg: alg }, 'create without key');
        fails(await s.retrieve(s.path('reg', 'g', 'cSgn')), 4005, 'no key yet', /no secret key/);
        const gen = body(ok(await s.retrieve(s.path('reg', 'g', 'gnK')), 2000, 'generateKey'), 'senv:Sgn');
        const m = prng(alg)(300);
        ok(await s.update(s.path('reg', 'g'), { 'senv:Sgn': { msg: b64(m) } }), 2004, 'message');
        const mac = unb64(body(ok(await s.retrieve(s.path('reg', 'g', 'cSgn')), 2000, 'sign'), 'senv:Sgn').Sgn);
        if (exportable) {
          const key = unb64(gen.kDt);
          equal(key.length, { 25: 32, 26: 48, 27: 64 }[alg]!, 'generated key length');
          equalBytes(mac, hmac(hashName, key, m), 'core HMAC');
        } else {
          equal(gen.kDt, undefined, 'a device key is never shown');
          equal(mac.length, { 25: 32, 26: 48, 27: 64 }[alg]!, 'MAC length');
          equal(body(await s.retrieve(s.path('reg', 'g', 'vSgn')), 'senv:Sgn').vR, true, 'the device verifies its MAC');
        }
        fails(await s.create(s.seId, 20012, { 'senv:Sgn': { Salg: alg, kDt: '' } }), 4000, 'empty key', /kDt/);
        fails(await s.create(s.seId, 20012, { 'senv:Sgn': { Salg: alg, sgF: 'raw' } }), 4000, 'sgF is ECDSA only', /ECDSA/);
        fails(await s.update(s.path('reg', 'm'), { 'senv:Sgn': { kDt: b64(utf8('x')) } }), 4000, 'kDt write-once', /write-once/);
        fails(await s.update(s.path('reg', 'm'), { 'senv:Sgn': { vR: true } }), 4000, 'vR read-only', /read-only/);
      },
    })),
    ...[33, 34, 38].map((alg): PortableCase => ({
      name: `<signature> ECDSA (Salg ${alg}): generateKey, DER and raw, prehashed, verification-only resources`,
      async run() {
        const s = await registered(backend);
        const { curve, hash: hashName, key: keyLen } = ECDSA[alg]!;
        const ec = ecdsa(curve);
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: alg } }), 2001, 'create');
        // A key of another length (a PKCS#8 or SEC1 DER key, say) is refused with the form wanted.
        fails(await s.create(s.seId, 20012, { 'senv:Sgn': { Salg: alg, kDt: b64(new Uint8Array(keyLen + 1).fill(1)) } }), 4000, 'kDt of another length', /^kDt \(keyData\) must be \d+ bytes for ALG_ECDSA_SHA_\d+ \(the private scalar, big-endian: a PKCS#8, SEC1 or JWK key is converted first\)$/);
        const pub = unb64(body(ok(await s.retrieve(s.path('reg', 'e', 'gnK')), 2000, 'gnK'), 'senv:Sgn').kInf);
        equal(pub.length, 1 + 2 * keyLen, 'uncompressed public key');
        const m = prng(alg)(1000);
        for (const part of [m.subarray(0, 10), m.subarray(10, 600), m.subarray(600)]) ok(await s.update(s.path('reg', 'e'), { 'senv:Sgn': { msg: b64(part) } }), 2004, 'chunk');
        const der = unb64(body(ok(await s.retrieve(s.path('reg', 'e', 'cSgn')), 2000, 'sign'), 'senv:Sgn').Sgn);
        assert(der[0] === 0x30, 'DER by default');
        assert(ec.verify(der, m, pub, { hash: hashName }), 'core verifies the Mcs signature');
        equal(body(await s.retrieve(s.path('reg', 'e', 'vSgn')), 'senv:Sgn').vR, true, 'Mcs verifies its own');
        // Verification-only resource: public key in kInf, raw format, prehashed digest.
        const pair = ec.keygen();
        const digest = hash(hashName, m);
        const raw = ec.sign(m, pair.secretKey, { format: 'raw' });
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'v', Salg: alg, kInf: b64(pair.publicKey), sgF: 'raw', prH: true, msg: b64(digest), Sgn: b64(raw) } }), 2001, 'verify-only');
        equal(body(ok(await s.retrieve(s.path('reg', 'v', 'vSgn')), 2000, 'verify'), 'senv:Sgn').vR, true, 'raw prehashed verifies');
        fails(await s.retrieve(s.path('reg', 'v', 'cSgn')), 4005, 'cannot sign with a public key');
        // A verification result holds for its key: another verifying key, or one generated, clears it.
        const another = b64(ec.keygen().publicKey);
        ok(await s.update(s.path('reg', 'v'), { 'senv:Sgn': { kInf: another } }), 2004, 'another public key');
        equal(body(await s.retrieve(s.path('reg', 'v')), 'senv:Sgn').vR, undefined, 'no stale vR after a new kInf');
        // A kInf in the form of that public key but off the curve is refused when written, and changes nothing.
        const offCurve = pair.publicKey.slice();
        offCurve[offCurve.length - 1]! ^= 1;
        fails(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'bad', Salg: alg, kInf: b64(offCurve), Sgn: b64(raw) } }), 4000, 'off-curve kInf at CREATE', /kInf.*not a point/);
        fails(await s.retrieve(s.path('reg', 'bad')), 4004, 'nothing created');
        fails(await s.update(s.path('reg', 'v'), { 'senv:Sgn': { kInf: b64(offCurve) } }), 4000, 'off-curve kInf at UPDATE', /kInf.*not a point/);
        equal(body(await s.retrieve(s.path('reg', 'v')), 'senv:Sgn').kInf, another, 'the refused UPDATE left kInf as it was');
        // Only 04 and two coordinates is that form: the same length behind another first byte is free-form information, and no key.
        const notAPoint = pair.publicKey.slice();
        notAPoint[0] = 5;
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'info', Salg: alg, kInf: b64(notAPoint), Sgn: b64(raw) } }), 2001, 'kInf of a point\'s length without 04');
        fails(await s.retrieve(s.path('reg', 'info', 'vSgn')), 4005, 'free-form kInf is no key', /^no key/);
        // Nor is the compressed point of the same key (WebCrypto, node and OpenSSL all make one): the refusal names the form kInf must have.
        const compressed = ec.getPublicKey(pair.secretKey, true);
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'compressed', Salg: alg, kInf: b64(compressed), Sgn: b64(raw) } }), 2001, 'a compressed point in kInf');
        fails(await s.retrieve(s.path('reg', 'compressed', 'vSgn')), 4005, 'a compressed kInf is no key', /^no key: .*kInf as base64 of its uncompressed SEC1 point/);
        // Beside a secret key kInf is information only (docs/mcs.md): even an off-curve point is kept as written, and the secret key still verifies.
        ok(await s.update(s.path('reg', 'e'), { 'senv:Sgn': { kInf: b64(offCurve) } }), 2004, 'off-curve kInf beside a secret key');
        equal(body(await s.retrieve(s.path('reg', 'e')), 'senv:Sgn').kInf, b64(offCurve), 'kept as written');
        equal(body(ok(await s.retrieve(s.path('reg', 'e', 'vSgn')), 2000, 'verify with the secret key'), 'senv:Sgn').vR, true, 'the secret key verifies, not kInf');
        ok(await s.update(s.path('reg', 'v'), { 'senv:Sgn': { kInf: b64(pair.publicKey) } }), 2004, 'the right public key again');
        equal(body(ok(await s.retrieve(s.path('reg', 'v', 'vSgn')), 2000, 'verify again'), 'senv:Sgn').vR, true, 'verifies again');
        // A message long enough to stream (past the backend's batch) into a verification under one kInf:
        // a new kInf restarts it, so the old key's signature does not verify under the new one.
        const long = prng(alg + 100)(40_000);
        const longSig = ec.sign(long, pair.secretKey, { format: 'raw' });
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'w', Salg: alg, kInf: b64(pair.publicKey), sgF: 'raw' } }), 2001, 'verify-only, streamed');
        for (let at = 0; at < long.length; at += 8192) ok(await s.update(s.path('reg', 'w'), { 'senv:Sgn': { msg: b64(long.subarray(at, at + 8192)) } }), 2004, 'streamed chunk');
        ok(await s.update(s.path('reg', 'w'), { 'senv:Sgn': { kInf: another, Sgn: b64(longSig) } }), 2004, 'another key after the message streamed');
        equal(body(ok(await s.retrieve(s.path('reg', 'w', 'vSgn')), 2000, 'verify streamed'), 'senv:Sgn').vR, false, 'the old key\'s signature fails under the new kInf');
        ok(await s.update(s.path('reg', 'w'), { 'senv:Sgn': { kInf: b64(pair.publicKey) } }), 2004, 'the signing key again');
        equal(body(ok(await s.retrieve(s.path('reg', 'w', 'vSgn')), 2000, 'verify streamed again'), 'senv:Sgn').vR, true, 'verifies under its own key');
        ok(await s.retrieve(s.path('reg', 'v', 'gnK')), 2000, 'a key generated over it');
        equal(body(await s.retrieve(s.path('reg', 'v')), 'senv:Sgn').vR, undefined, 'no stale vR after generateKey');
        raw[raw.length - 1]! ^= 1;
        ok(await s.update(s.path('reg', 'v'), { 'senv:Sgn': { Sgn: b64(raw) } }), 2004, 'tampered');
        equal(body(await s.retrieve(s.path('reg', 'v', 'vSgn')), 'senv:Sgn').vR, false, 'tampered fails');
        // A DER signature with a superfluous leading zero is not canonical: rejected.
        const sig = ec.sign(m, pair.secretKey, { format: 'der' });
        const padded = new Uint8Array([0x30, sig[1]! + 1, 0x02, sig[3]! + 1, 0x00, ...sig.subarray(4)]);
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'n', Salg: alg, kInf: b64(pair.publicKey), msg: b64(m), Sgn: b64(padded) } }), 2001, 'non-canonical');
        equal(body(await s.retrieve(s.path('reg', 'n', 'vSgn')), 'senv:Sgn').vR, false, 'non-canonical DER rejected');
        // Imported private key: wrong length 4000, out-of-range scalar 4000, a good one signs.
        fails(await s.create(s.seId, 20012, { 'senv:Sgn': { Salg: alg, kDt: b64(new Uint8Array(keyLen - 1).fill(1)) } }), 4000, 'key length', /kDt/);
        fails(await s.create(s.seId, 20012, { 'senv:Sgn': { Salg: alg, kDt: b64(new Uint8Array(keyLen)) } }), 4000, 'zero scalar', /kDt/);
        const imp = body(ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'i', Salg: alg, kDt: b64(pair.secretKey), msg: b64(digest), prH: true } }), 2001, 'import'), 'senv:Sgn');
        equalBytes(unb64(imp.kInf), pair.publicKey, 'kInf from the imported key');
        const s2 = unb64(body(await s.retrieve(s.path('reg', 'i', 'cSgn')), 'senv:Sgn').Sgn);
        assert(ec.verify(s2, m, pair.publicKey, { hash: hashName }), 'prehashed signature verifies over the message');
        ok(await s.update(s.path('reg', 'i'), { 'senv:Sgn': { msg: b64(digest.subarray(1)) } }), 2004, 'short digest');
        fails(await s.retrieve(s.path('reg', 'i', 'cSgn')), 4102, 'digest of the wrong length');
      },
    })),
    {
      name: '<rand>: both rngTypes, requestedDataSize bounds, generateRand',
      async run() {
        const s = await registered(backend);
        const caps = s.engine.describe(s.seId)!.capabilities;
        for (const rgT of [1, 2]) {
          if (!caps.rngTypes.includes(rgT as 1 | 2)) {
            fails(await s.create(s.seId, 20007, { 'senv:Rnd': { rgT } }), 5001, `rngType ${rgT}`);
            continue;
          }
          ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: `r${rgT}`, rgT } }), 2001, 'create');
          fails(await s.retrieve(s.path('reg', `r${rgT}`, 'generateRand')), 4005, 'no Dsz', /Dsz/);
          const seen = new Set<string>();
          for (const n of [0, 1, 32, 100, Math.min(70000, caps.maxRandomLength)]) {
            ok(await s.update(s.path('reg', `r${rgT}`), { 'senv:Rnd': { Dsz: n } }), 2004, 'Dsz');
            const r = unb64(body(ok(await s.retrieve(s.path('reg', `r${rgT}`, 'gnR')), 2000, 'gnR'), 'senv:Rnd').rndD);
            equal(r.length, n, 'length');
            if (n >= 32) {
              assert(!seen.has(b64(r)), 'fresh bytes');
              seen.add(b64(r));
            }
          }
          fails(await s.update(s.path('reg', `r${rgT}`), { 'senv:Rnd': { Dsz: caps.maxRandomLength + 1 } }), 5207, 'too large');
          fails(await s.update(s.path('reg', `r${rgT}`), { 'senv:Rnd': { rgT: 1 } }), 4000, 'rgT write-once');
          fails(await s.update(s.path('reg', `r${rgT}`), { 'senv:Rnd': { rndD: 'AAAA' } }), 4000, 'rndD read-only');
        }
        fails(await s.create(s.seId, 20007, { 'senv:Rnd': { rgT: 3 } }), 4000, 'rngType 3', /table 9\.7-1/);
        // An engine holding smaller values than the backend generates bounds Dsz by its maxDataSize.
        const small = new Session(await engineWith(backend, { maxDataSize: 1000 }), 'CAE1');
        await small.register();
        const rgT = caps.rngTypes[0]!;
        fails(await small.create(small.seId, 20007, { 'senv:Rnd': { rgT, Dsz: 1001 } }), 5207, 'Dsz beyond maxDataSize at CREATE', /1000 bytes/);
        ok(await small.create(small.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT, Dsz: 1000 } }), 2001, 'Dsz at maxDataSize');
        fails(await small.update(small.path('reg', 'r'), { 'senv:Rnd': { Dsz: 1001 } }), 5207, 'Dsz beyond maxDataSize at UPDATE');
        fails(await s.create(s.seId, 20007, { 'senv:Rnd': { Dsz: 3 } }), 4000, 'rgT mandatory', /rgT.*mandatory/);
      },
    },
    {
      name: 'rqet: a request still waiting for its turn when its deadline passes answers 4008 then and changes nothing; the queue goes on in order',
      async run() {
        const { engine, s, slow, open } = await heldTurn(backend);
        try {
          const t0 = Date.now();
          const late = await engine.send({ op: 3, to: s.path('reg', 'd'), fr: 'CAE1', rqi: 'late', rqet: 50, pc: { 'senv:Sdo': { msg: 'REVG' } } });
          fails(late, 4008, 'rqet passed while waiting for the turn', /rqet/);
          equal(late.rqi, 'late', 'rqi');
          assert(Date.now() - t0 >= 40, 'answered at its deadline, not before');
          const stamp = new Date(Date.now() + 80).toISOString().replace(/[-:]/g, '').replace('.', ',').replace('Z', '000');
          const lateByTimestamp = engine.send({ op: 2, to: s.path('reg', 'd'), fr: 'CAE1', rqi: 'stamp', rqet: stamp });
          const queued = s.retrieve(s.path('reg', 'd'));
          const far = engine.send({ op: 2, to: s.path('reg', 'd'), fr: 'CAE1', rqi: 'far', rqet: 600_000 });
          fails(await lateByTimestamp, 4008, 'rqet as a timestamp', /rqet/);
          let first = '';
          void queued.then(() => (first ||= 'queued'));
          open();
          equal(unb64(body(ok(await slow, 2000, 'the held request'), 'senv:Rnd').rndD).length, 16, 'random data');
          first ||= 'slow';
          equal(body(ok(await queued, 2000, 'queued after'), 'senv:Sdo').msg, 'QUJD', 'the expired UPDATE changed nothing');
          equal(first, 'slow', 'served in order');
          ok(await far, 2000, 'a deadline further off is served');
        } finally {
          open();
          await engine.close();
        }
      },
    },
    {
      name: 'rqet on an injected clock: milliseconds are timed in real time while a request waits, a timestamp is read on the engine\'s clock at its turn',
      async run() {
        let now = Date.UTC(2026, 10, 22, 12);
        const { engine, s, slow, open } = await heldTurn(backend, () => now);
        try {
          const relative = engine.send({ op: 3, to: s.path('reg', 'd'), fr: 'CAE1', rqi: 'ms', rqet: 60_000, pc: { 'senv:Sdo': { msg: 'REVG' } } });
          const stamp = engine.send({ op: 2, to: s.path('reg', 'd'), fr: 'CAE1', rqi: 'stamp', rqet: '20261122T120100' });
          // Two minutes pass on the engine's clock, a few milliseconds in real time.
          now += 120_000;
          open();
          ok(await slow, 2000, 'the held request');
          ok(await relative, 2004, 'a 60 s rqet served within real time, though the injected clock moved 120 s');
          fails(await stamp, 4008, 'a timestamp the engine\'s clock passed', /rqet/);
          equal(body(ok(await s.retrieve(s.path('reg', 'd')), 2000, 'after'), 'senv:Sdo').msg, 'REVG', 'the UPDATE took effect');
        } finally {
          open();
          await engine.close();
        }
      },
    },
    {
      name: '<sensitiveDataObject>: stored, read back by its creator, replaced by UPDATE; cbs computed',
      async run() {
        const s = await registered(backend);
        const data = prng(9)(1000);
        const mma = async () => body(await s.retrieve(s.path('reg', 'memory')), 'm2m:mem').mma as number;
        const free = await mma();
        const c = body(ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(data) } }), 2001, 'create'), 'senv:Sdo');
        equal(c.cbs, 1000, 'cbs');
        if (s.engine.describe(s.seId)!.description.seType === 4) equal(await mma(), free - 1000, 'memAvailable counts stored data');
        equalBytes(unb64(body(await s.retrieve(s.path('reg', 'd')), 'senv:Sdo').msg), data, 'read back');
        const r = body(ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: b64(data.subarray(0, 10)) } }), 2004, 'replace'), 'senv:Sdo');
        equal(r.cbs, 10, 'cbs after replace');
        fails(await s.create(s.seId, 20009, { 'senv:Sdo': { cbs: 3 } }), 4000, 'cbs of no data', /cbs \(currentByteSize\) is computed by the SE: 0 here, not 3/);
        fails(await s.create(s.seId, 20009, { 'senv:Sdo': { cr: 'CAE9' } }), 4000, 'another creator', /cr \(creator\) is computed by the SE: 'CAE1' here, not 'CAE9'/);
        ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: null } }), 2004, 'delete attribute');
        equal(body(await s.retrieve(s.path('reg', 'd')), 'senv:Sdo').cbs, 0, 'empty');
      },
    },
    {
      name: '[SEReboot]: UPDATE rb=true reboots (self test) and the SE keeps serving with the same results',
      async run() {
        const s = await registered(backend);
        const types = s.engine.describe(s.seId)!.capabilities.rebootTypes;
        assert(types.length > 0, 'at least one reboot type');
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        const big = prng(3)(200000);
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(big) } }), 2004, 'streamed data');
        const name = types[0] === 1 ? 'coldReset' : 'warmReset';
        const rb = body(ok(await s.retrieve(s.path('reg', name)), 2000, 'SEReboot'), 'senv:Srbt');
        equal(rb.rbT, types[0], 'rbT');
        equal(rb.mgd, 'seReboot', 'mgd');
        equal(body(ok(await s.update(s.path('reg', name), { 'senv:Srbt': { rb: true } }), 2004, 'reboot'), 'senv:Srbt').rb, false, 'action resets');
        equalBytes(unb64(body(await s.retrieve(s.path('reg', 'h', 'cHsh')), 'senv:Hsh').Hv), hash('SHA-256', big), 'data survives, stream replayed');
        fails(await s.update(s.path('reg', name), { 'senv:Srbt': { rbT: 2 } }), 4000, 'rbT write-once');
        fails(await s.create(s.seId, 20010, { 'senv:Srbt': { rbT: 7 } }), 4000, 'unknown rebootType');
        // rb true at CREATE reboots too (assigning true is the trigger), once the resource exists.
        let reboots = 0;
        const counted: BackendFactory = () => {
          const b = backend();
          const reboot = b.reboot.bind(b);
          b.reboot = (t) => (reboots++, reboot(t));
          return b;
        };
        const t = await registered(counted);
        ok(await t.update(t.path('reg', name), { 'senv:Srbt': { rb: true } }), 2004, 'reboot by UPDATE');
        equal(reboots, 1, 'UPDATE rb true reboots');
        equal(body(ok(await t.create(t.seId, 20010, { 'senv:Srbt': { rn: 'again', rbT: types[0], rb: true } }), 2001, 'CREATE rb true'), 'senv:Srbt').rb, false, 'reads false');
        equal(reboots, 2, 'CREATE rb true reboots');
        ok(await t.create(t.seId, 20010, { 'senv:Srbt': { rn: 'quiet', rbT: types[0], rb: false } }), 2001, 'CREATE rb false');
        equal(reboots, 2, 'CREATE rb false does not');
        // [deviceInfo] and [memory] are the SE's: no DELETE, as no CREATE.
        fails(await t.delete(t.path('reg', 'memory')), 4005, 'DELETE [memory]', /maintained by the SE/);
        fails(await t.delete(t.path('reg', 'deviceInfo')), 4005, 'DELETE [deviceInfo]', /maintained by the SE/);
        ok(await t.retrieve(t.path('reg', 'memory')), 2000, '[memory] still there');
      },
    },
    {
      name: 'expirationTime: an expired resource is gone (4004) and a later et can be set by UPDATE',
      async run() {
        let now = Date.UTC(2026, 10, 22, 12, 0, 0);
        const s = new Session(await engineWith(backend, { clock: () => now }), 'CAE1');
        await s.register();
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'k', Salg: 25, kDt: b64(utf8('key')), et: '20261122T120010' } }), 2001, 'create');
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, et: '20261122T120010' } }), 2001, 'create hash');
        equal(body(ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { et: '20261122T130000,5' } }), 2004, 'extend'), 'senv:Hsh').et, '20261122T130000,500000', 'et echoed');
        now += 9000;
        ok(await s.retrieve(s.path('reg', 'k')), 2000, 'still there');
        now += 2000;
        fails(await s.retrieve(s.path('reg', 'k')), 4004, 'expired');
        ok(await s.retrieve(s.path('reg', 'h')), 2000, 'extended one still there');
        fails(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { et: 'tomorrow' } }), 4000, 'bad timestamp', /timestamp/);
      },
    },
    {
      name: 'binary mode: byte attributes come back as Uint8Array copies; Uint8Array accepted in requests',
      async run() {
        const s = await registered(backend);
        const r = await s.send(1, s.seId, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: utf8('abc') } }, 20004, true);
        ok(r, 2001, 'create');
        const calc = await s.send(2, s.path('reg', 'h', 'cHsh'), undefined, undefined, true);
        const hv = body(calc, 'senv:Hsh').Hv;
        assert(hv instanceof Uint8Array, 'Uint8Array');
        equalHex(hv as Uint8Array, ABC[4]!, 'value');
        (hv as Uint8Array).fill(0);
        equalHex(unb64(body(await s.retrieve(s.path('reg', 'h')), 'senv:Hsh').Hv), ABC[4]!, 'internal value not aliased');
        // A binary response takes an operation's fresh result and the resource keeps a copy
        // (one-shot path), or gets a copy of the stream's output (streamed path): neither aliases.
        const key = prng(41)(16), nonce = prng(42)(12);
        ok(await s.send(1, s.seId, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1 << 17, kDt: key } }, 20002, true), 2001, 'cipher');
        ok(await s.send(1, s.path('reg', 'c'), { 'senv:algP': { nc: nonce } }, 20001, true), 2001, 'nonce');
        // A result shorter than the one before it (80 after 70,000) gets an array of its own length, not the tail of the last.
        for (const size of [100, 100, 70_000, 70_000, 80]) {
          const data = prng(size)(size);
          ok(await s.send(3, s.path('reg', 'c'), { 'senv:Cph': { msg: data } }, undefined, true), 2004, `data ${size}`);
          const cd = body(ok(await s.send(2, s.path('reg', 'c', 'encrypt'), undefined, undefined, true), 2000, `encrypt ${size}`), 'senv:Cph').cD as Uint8Array;
          const want = gcm(key, nonce).encrypt(data);
          equalBytes(cd, want, `result ${size}`);
          cd.fill(0);
          equalBytes(unb64(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').cD), want, `stored result of ${size} bytes not aliased`);
        }
        // Bytes inside a JSON attribute have no JSON form: refused by name, never dropped on the way.
        for (const esi of [{ cert: utf8('abc'), n: 1 }, [new Uint16Array(2)], { b: new ArrayBuffer(4) }]) {
          fails(await s.send(3, s.seId, { 'senv:Senv': { esi } }, undefined, true), 4000, 'bytes in esi', /esi.*base64/);
        }
        fails(await s.send(1, s.seId, { 'senv:Sgn': { Salg: 33, kInf: [new Uint8Array(65)] } }, 20012, true), 4000, 'bytes in kInf', /kInf/);
        equal(body(await s.retrieve(s.seId), 'senv:Senv').esi, undefined, 'esi unchanged by the refusals');
        ok(await s.send(3, s.seId, { 'senv:Senv': { esi: { cert: 'YWJj', n: 1 } } }, undefined, true), 2004, 'the same as base64 text');
      },
    },
    {
      name: '<sensitiveDataObject> on a backend with an objectStore: the data lives on the device, the host keeps its size',
      async run() {
        const objects = new Map<string, Uint8Array>();
        const device: ObjectStore = {
          write: async (id, d) => void objects.set(id, d.slice()),
          read: async (id) => objects.get(id)!.slice(),
          remove: async (id) => void objects.delete(id),
        };
        const se = Object.assign(new SoftwareBackend(), { objectStore: device });
        const s = new Session(await McsEngine.create({ backends: [se] }), 'CAE1');
        await s.register();
        const data = prng(12)(300);
        const ri = body(ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(data) } }), 2001, 'create'), 'senv:Sdo').ri as string;
        equalBytes(objects.get(ri)!, data, 'on the device');
        const rep = body(await s.retrieve(s.path('reg', 'd')), 'senv:Sdo');
        equalBytes(unb64(rep.msg), data, 'read from the device');
        equal(rep.cbs, 300, 'size on the host');
        ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: b64(data.subarray(0, 5)) } }), 2004, 'replace');
        equalBytes(objects.get(ri)!, data.subarray(0, 5), 'replaced on the device');
        // An UPDATE of other attributes leaves the data on the device alone.
        ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { acpi: [] } }), 2004, 'acpi only');
        equalBytes(objects.get(ri)!, data.subarray(0, 5), 'still on the device');
        equalBytes(unb64(body(ok(await s.retrieve(s.path('reg', 'd')), 2000, 'read again'), 'senv:Sdo').msg), data.subarray(0, 5), 'read back');
        ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: null } }), 2004, 'remove the data');
        equal(objects.has(ri), false, 'removed from the device');
        ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'e', msg: b64(data) } }), 2001, 'another');
        ok(await s.delete(s.seId), 2002, 'deregister');
        equal(objects.size, 0, 'deregistration removes device data');
      },
    },
    {
      name: 'a request that waits for its turn is read as it was sent, whatever the caller does to its arrays meanwhile',
      async run() {
        const s = await registered(backend);
        const rnd = prng(91);
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        const chunk = rnd(1000), key = rnd(16), data = rnd(300);
        const want = { chunk: chunk.slice(), key: key.slice(), data: data.slice() };
        // The first request holds the SE; the others queue behind it with the caller's arrays.
        const busy = s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'first', msg: b64(rnd(10)) } });
        const queued = [
          s.send(3, s.path('reg', 'h'), { 'senv:Hsh': { msg: chunk } }, undefined, true),
          s.send(1, s.seId, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: key, kExp: exportsKeys(s) } }, 20002, true),
          s.send(1, s.seId, { 'senv:Sdo': { rn: 'd', msg: data } }, 20009, true),
        ];
        chunk.fill(9);
        key.fill(0);
        data.fill(0);
        ok(await busy, 2001, 'first');
        for (const [i, r] of (await Promise.all(queued)).entries()) assert(r.rsc < 4000, `queued request ${i}: ${r.rsc}`);
        equalBytes(unb64(body(await s.retrieve(s.path('reg', 'h', 'cHsh')), 'senv:Hsh').Hv), hash('SHA-256', want.chunk), 'the chunk as sent');
        if (exportsKeys(s)) equalBytes(unb64(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').kDt), want.key, 'the key as sent');
        equalBytes(unb64(body(await s.retrieve(s.path('reg', 'd')), 'senv:Sdo').msg), want.data, 'the data as sent');

        // No turn to wait for, but an expiration due first: the request is read after that await too.
        let now = Date.UTC(2026, 10, 22, 12, 0, 0);
        const t = new Session(await engineWith(backend, { clock: () => now }), 'CAE1');
        await t.register();
        ok(await t.create(t.seId, 20004, { 'senv:Hsh': { rn: 'short', Halg: 4, et: '20261122T120001' } }), 2001, 'expiring');
        ok(await t.create(t.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(rnd(4)) } }), 2001, 'data object');
        now += 5000;
        const sent = rnd(40), as = sent.slice();
        const update = t.send(3, t.path('reg', 'd'), { 'senv:Sdo': { msg: sent } }, undefined, true);
        sent.fill(0);
        ok(await update, 2004, 'update after the expiry');
        fails(await t.retrieve(t.path('reg', 'short')), 4004, 'expired');
        equalBytes(unb64(body(await t.retrieve(t.path('reg', 'd')), 'senv:Sdo').msg), as, 'the data as sent, not as wiped');

        // Not only byte values: a request object the caller reuses while its request waits.
        ok(await t.create(t.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        const hold = t.create(t.seId, 20009, { 'senv:Sdo': { rn: 'busy', msg: b64(rnd(10)) } });
        const body1 = { msg: b64(utf8('abc')) }, reused = { 'senv:Hsh': body1 };
        const chunks = ['abc', 'def', 'ghi'].map((m) => {
          body1.msg = b64(utf8(m));
          return t.send(3, t.path('reg', 'h'), reused);
        });
        ok(await hold, 2001, 'busy');
        for (const r of await Promise.all(chunks)) ok(r, 2004, 'chunk');
        equalBytes(unb64(body(await t.retrieve(t.path('reg', 'h', 'cHsh')), 'senv:Hsh').Hv), hash('SHA-256', utf8('abcdefghi')), 'each request as sent');

        // Content that cannot be copied while the request waits (a getter that throws; values shared
        // or cyclic beyond any type's size) is that request's answer; the SE serves the next one.
        const busy2 = t.create(t.seId, 20009, { 'senv:Sdo': { rn: 'busy2', msg: b64(rnd(10)) } });
        const throwing = t.send(3, t.path('reg', 'h'), { 'senv:Hsh': { get msg(): string { throw new Error('getter'); } } });
        const cyclic: unknown[] = [];
        for (let i = 0; i < 8; i++) cyclic.push(cyclic);
        const looping = t.send(3, t.path('reg', 'h'), { 'senv:Hsh': { lbl: cyclic } });
        ok(await busy2, 2001, 'busy');
        assert((await throwing).rsc >= 4000, 'a throwing getter is an answer');
        fails(await looping, 4000, 'cyclic content', /too large|deeper than 16 levels/);
        ok(await t.retrieve(t.path('reg', 'h')), 2000, 'the SE serves the next request');

        // McsClient reads its arguments when called, as send() does, also for calls it queues.
        const c = new McsClient(t.engine, 'CAE1');
        const ch = await c.hash({ algorithm: 4 });
        const buf = utf8('abc');
        const pending = [ch.update(buf)];
        buf.set(utf8('xyz'));
        pending.push(ch.update(buf));
        buf.fill(0);
        await Promise.all(pending);
        equalBytes(await ch.calculate(), hash('SHA-256', utf8('abcxyz')), 'client arguments as given');
        const ckey = rnd(16), cnonce = rnd(12), plain = rnd(100);
        const sealed = gcm(ckey.slice(), cnonce.slice()).encrypt(plain);
        const made = c.cipher({ algorithm: 1001, maxByteSize: 4096, key: ckey, nonce: cnonce });
        ckey.fill(0);
        cnonce.fill(0);
        const cph = await made;
        await cph.update(plain);
        equalBytes(await cph.encrypt(), sealed, 'cipher key and nonce as given');
      },
    },
    {
      name: 'concurrent requests to one SE are served one at a time, in the order sent',
      async run() {
        const s = await registered(backend);
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        const rnd = prng(31);
        const parts = Array.from({ length: 60 }, (_, i) => rnd(i * 997 % 5000));
        const sent = parts.map((p) => s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(p) } }));
        const calc = s.retrieve(s.path('reg', 'h', 'cHsh'));
        for (const r of await Promise.all(sent)) ok(r, 2004, 'append');
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) { all.set(p, o); o += p.length; }
        equalBytes(unb64(body(ok(await calc, 2000, 'calc'), 'senv:Hsh').Hv), hash('SHA-256', all), 'in order');
      },
    },
    {
      name: 'typed convenience layer: the same procedures as methods, failures as McsError with the rsc',
      async run() {
        const c = new McsClient(await engineWith(backend), 'CAE1');
        try {
          await c.hash({ algorithm: 4 });
          throw new Error('expected McsError');
        } catch (e) {
          assert(e instanceof McsError && e.rsc === 4106, `unregistered: ${String(e)}`);
        }
        await c.register('me');
        const h = await c.hash({ algorithm: 6, name: 'h' });
        await (await h.update(utf8('a'))).update(utf8('bc'));
        equalHex(await h.calculate(), ABC[6]!, 'hash');
        const key = prng(5)(16), nonce = prng(6)(12), data = prng(7)(5000);
        const cph = await c.cipher({ algorithm: 1001, maxByteSize: 8192, key, nonce });
        await cph.update(data.subarray(0, 100));
        await cph.update(data.subarray(100));
        const ct = await cph.encrypt();
        equalBytes(ct, gcm(key, nonce).encrypt(data), 'encrypt');
        await cph.update(ct);
        equalBytes(await cph.decrypt(), data, 'decrypt');
        const sig = await c.signature({ algorithm: 34 });
        const pub = (await sig.generateKey()).publicKey!;
        await sig.update(data);
        const signature = await sig.sign();
        assert(ecdsa('P-384').verify(signature, data, pub), 'signature verifies');
        await sig.update(data);
        equal(await sig.verify(signature), true, 'verify');
        equal((await (await c.rand({ rngType: 1 })).generate(48)).length, 48, 'rand');
        const sdo = await c.sensitiveData(utf8('secret'));
        equalBytes(await sdo.read(), utf8('secret'), 'sdo');
        await sdo.delete();
        // Calls on one resource object run in call order, each to its end: two-request methods never interleave.
        const r = await c.rand({ rngType: 1 });
        equal((await Promise.all([r.generate(4), r.generate(32), r.generate(7)])).map((x) => x.length).join(), '4,32,7', 'concurrent generate');
        await sig.update(data);
        const bad = signature.slice();
        bad[bad.length - 1]! ^= 1;
        const verdicts = await Promise.all([sig.verify(signature), sig.update(data), sig.verify(bad)]);
        equal(`${verdicts[0]},${verdicts[2]}`, 'true,false', 'concurrent verify');
        // A cipher whose parameters are refused is deleted again; set later, they complete it.
        try {
          await c.cipher({ algorithm: 1001, maxByteSize: 64, key, nonce: new Uint8Array(8), name: 'orphan' });
          throw new Error('expected McsError');
        } catch (e) {
          assert(e instanceof McsError && e.rsc === 4000, `bad nonce: ${String(e)}`);
        }
        const late = await c.cipher({ algorithm: 1001, maxByteSize: 64, key, name: 'orphan' });
        await late.update(data.subarray(0, 10));
        await late.setParameters({ nonce });
        equalBytes(await late.encrypt(), gcm(key, nonce).encrypt(data.subarray(0, 10)), 'parameters set later');
        await late.setParameters({ aad: data.subarray(0, 3) });
        await late.update(data.subarray(0, 20));
        await late.discard();
        await late.update(data.subarray(0, 10));
        equalBytes(await late.encrypt(), gcm(key, nonce, data.subarray(0, 3)).encrypt(data.subarray(0, 10)), 'parameters updated, data discarded');
        // Another object for the same <cipher> (a restart's, say) replaces the nonce rather than failing to add a second child.
        const fresh = data.subarray(40, 52);
        const same = new CipherResource(c, late.address);
        await same.setParameters({ nonce: fresh });
        await same.update(data.subarray(0, 10));
        equalBytes(await same.encrypt(), gcm(key, fresh, data.subarray(0, 3)).encrypt(data.subarray(0, 10)), 'a new nonce through another object');
        equal((await c.request(2, `${late.address}/parameters`, 'senv:algP')).rn, 'parameters', 'the child has the name every client uses');
        // A <sensitiveDataObject> with no data reads as empty, however it came to be so.
        for (const empty of [await c.sensitiveData(new Uint8Array(0)), await c.sensitiveData(utf8('x'))]) {
          await empty.write(new Uint8Array(0));
          equalBytes(await empty.read(), new Uint8Array(0), 'no data: empty');
          equal((await empty.retrieve()).msg, undefined, 'no msg shown');
        }
        // An exportable HMAC key comes back from generateKey (where the SE exports keys at all).
        const exportable = c.engine.describe(c.seId)!.capabilities.keyStorage !== 'device';
        const mac = await c.signature({ algorithm: 25, exportable });
        const { key: macKey, publicKey } = await mac.generateKey();
        equal(publicKey, undefined, 'HMAC has no public key');
        // A MAC's keyInformation is whatever the client wrote there, never a public key; the publicKey option is ECDSA's.
        // A hybrid point (06) has the uncompressed length: the SE would keep it as free-form keyInformation.
        for (const [what, publicKey, algorithm] of [['publicKey on an HMAC', utf8('cert'), 25], ['a compressed point', new Uint8Array(33).fill(2), 33], ['a point of 65 bytes not starting with 04', new Uint8Array(65).fill(6), 33]] as const) {
          const e = await c.signature({ algorithm, publicKey }).then(() => undefined, (x: unknown) => x);
          assert(e instanceof InvalidInputError && /publicKey/.test(e.message), `${what}: ${String(e)}`);
        }
        const described = await c.signature({ algorithm: 25 });
        await described.set({ kInf: 'cert' });
        equal((await described.generateKey()).publicKey, undefined, 'a client\'s kInf on an HMAC is no public key');
        await mac.update(data);
        const tag = await mac.sign();
        if (exportable) equalBytes(tag, hmac('SHA-256', macKey!, data), 'exported HMAC key');
        else equal(macKey, undefined, 'a device key is never returned');
        // The registration, its mgmtObjs, reboot and policies.
        equal((await c.registration()).sID, c.seId, 'registration');
        equal(JSON.stringify((await c.updateRegistration({ hal: ['CAE1'] })).hal), '["CAE1"]', 'updateRegistration');
        equal((await c.deviceInfo()).mgd, 1007, 'deviceInfo');
        const mem = await c.memory();
        assert(mem.total > 0 && mem.available <= mem.total, 'memory');
        for (const bad of [0, 3, 'cold', Uint8Array.of(0xde, 0xad)]) {
          const refused = await c.reboot(bad as never).then(() => undefined, (e: unknown) => e);
          assert(refused instanceof InvalidInputError, `reboot(${String(bad)}) is refused, nothing reset`);
          assert(!/222|173/.test(refused.message), `reboot(bytes) shows their type, not their values: ${refused.message}`);
        }
        await c.reboot(1);
        equalHex(await (await h.update(utf8('abc'))).calculate(), ABC[6]!, 'after reboot');
        const other = await new McsClient(c.engine, 'CAE2').register('them');
        const acp = await c.accessControlPolicy({ privileges: [{ originators: ['CAE2'], operations: 2 }], selfPrivileges: [{ originators: ['CAE1'], operations: 63 }], name: 'p' });
        const shared = await c.hash({ algorithm: 4, name: 'shared', policies: [acp.address] });
        const seen = await other.request(2, shared.address, 'senv:Hsh');
        equal(seen.Halg, 4, 'granted by the policy');
        await acp.update({ privileges: [{ originators: ['CAE2'], operations: 0 + 16 }] });
        try {
          await other.request(2, shared.address, 'senv:Hsh');
          throw new Error('expected McsError');
        } catch (e) {
          assert(e instanceof McsError && e.rsc === 4103, `privilege taken back: ${String(e)}`);
        }
        await shared.set({ et: '20991231T000000' });
        equal((await shared.retrieve()).et, '20991231T000000,000000', 'set() of a common attribute');
        // Options are an object: anything else is an InvalidInputError, never read as none.
        const refusals: [string, () => Promise<unknown>][] = [
          ['hash(null)', () => c.hash(null as never)], ['cipher(42)', () => c.cipher(42 as never)],
          ['sensitiveData(data, 42)', () => c.sensitiveData(utf8('x'), 42 as never)], ['rand(undefined)', () => c.rand(undefined as never)],
        ];
        for (const [what, call] of refusals) {
          const e = await call().then(() => undefined, (x: unknown) => x);
          assert(e instanceof InvalidInputError && /options must be an object/.test(e.message), `${what}: ${String(e)}`);
        }
        // Arguments of the wrong form are InvalidInputErrors too, not TypeErrors from inside the client.
        const typed: [string, () => Promise<unknown>][] = [
          ['accessControlPolicy without privileges', () => c.accessControlPolicy({ selfPrivileges: [] } as never)],
          ['privileges not a list', () => c.accessControlPolicy({ privileges: 'CAE2' as never, selfPrivileges: [] })],
          ['a rule that is null', () => c.accessControlPolicy({ privileges: [null as never], selfPrivileges: [] })],
          ['policy.update(null)', () => acp.update(null as never)], ['setParameters(null)', () => late.setParameters(null as never)],
          ['a SignatureResource of no algorithm', async () => new SignatureResource(c, mac.address, undefined as never)],
        ];
        for (const [what, call] of typed) {
          const e = await call().then(() => undefined, (x: unknown) => x);
          assert(e instanceof InvalidInputError, `${what}: ${String(e)}`);
        }
        equalBytes(await (await c.sensitiveData(utf8('n'), null)).read(), utf8('n'), 'sensitiveData(data, null): no options');
        // The mgmtObjs follow a registration made again through another client.
        const again = new McsClient(c.engine, 'CAE2');
        await again.deregister();
        await again.register('them2');
        equal((await other.deviceInfo()).mgd, 1007, 'deviceInfo after the registration was made again elsewhere');
        assert((await other.memory()).total > 0, 'memory after the registration was made again elsewhere');
        const empty = await again.deregister().then(() => new McsClient(c.engine, 'CAE2').register('').then(() => undefined, (x: unknown) => x));
        assert(empty instanceof McsError && empty.rsc === 4000, `register('') is sent as rn '' and refused: ${String(empty)}`);
        await c.deregister();
      },
    },
  ];
}

/** The base64 of serialized byte attributes (RFC 4648 section 4, strict), on every runtime. */
const codecCases: PortableCase[] = [
  {
    name: 'base64: RFC 4648 section 10 vectors both ways, every length to 300 round trips, non-canonical text refused; a key\'s hex both ways',
    run() {
      // Each way of reading: by table ('public', 'secret') and by arithmetic, for keys (keyFromBase64).
      for (const use of ['public', 'secret', 'key'] as const) {
        const key = use === 'key';
        const decode = (text: string) => (key ? keyFromBase64(text) : fromBase64(text, use));
        const vectors: [string, string][] = [['', ''], ['f', 'Zg=='], ['fo', 'Zm8='], ['foo', 'Zm9v'], ['foob', 'Zm9vYg=='], ['fooba', 'Zm9vYmE='], ['foobar', 'Zm9vYmFy']];
        for (const [plain, text] of vectors) {
          equal(toBase64(utf8(plain), key), text, `${use}: encode "${plain}"`);
          equalBytes(decode(text)!, utf8(plain), `${use}: decode "${text}"`);
        }
        const data = prng(4648)(300);
        for (let n = 0; n <= 300; n++) {
          const text = toBase64(data.subarray(0, n), key);
          equal(text.length, Math.ceil(n / 3) * 4, `${use}: length of ${n} bytes`);
          equalBytes(decode(text)!, data.subarray(0, n), `${use}: round trip of ${n} bytes`);
        }
        // Every byte value in every position of a group.
        const all = Uint8Array.from({ length: 768 }, (_, i) => (i * 85 + (i >> 8)) & 255);
        equal(toBase64(all, key), toBase64(all), `${use}: every byte value encoded alike`);
        equalBytes(decode(toBase64(all))!, all, `${use}: every byte value`);
        // Padding alone (a length below 0 if the length were not checked first), and '=' before the end of the text.
        for (const bad of ['Zg', 'Zh==', 'Zm9=', 'Zm9v\n', 'Z===', 'Zm 9v', 'Zm9v====', '====', 'Zm-v', 'Zm_v', '=', '==', 'ZA=v'])
          equal(decode(bad), undefined, `${use}: refused: ${JSON.stringify(bad)}`);
      }
      // Every character code a string can hold, in every place of a group: the arithmetic reads it as the table does.
      const differ: number[] = [];
      for (let c = 0; c < 0x10000; c++) {
        const ch = String.fromCharCode(c);
        for (const text of [`${ch}AAA`, `A${ch}AA`, `AA${ch}A`, `AAA${ch}`]) {
          const a = fromBase64(text), b = keyFromBase64(text);
          if ((a === undefined) !== (b === undefined) || (a && b && a.join() !== b.join())) differ.push(c);
        }
      }
      equal(differ.length, 0, `characters read otherwise by arithmetic: ${differ.slice(0, 8).join(', ')}`);
      // A hex digit's value (a master key file may be hex), against parseInt, for every character code.
      const wrongHex: number[] = [];
      for (let c = 0; c < 0x10000; c++) {
        const ch = String.fromCharCode(c);
        if (hexValue(c) !== (/^[0-9a-fA-F]$/.test(ch) ? parseInt(ch, 16) : -1)) wrongHex.push(c);
      }
      equal(wrongHex.length, 0, `hex digits read wrong: ${wrongHex.slice(0, 8).join(', ')}`);
      // A key's hex both ways (the virtual card's store): every byte value, either case, and a text
      // with one character that is no hex digit, at each place, refused.
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      const upper = Array.from(all, (b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
      equal(keyToHex(all), upper, 'every byte value as hex');
      equal(keyToHex(new Uint8Array(0)), '', 'no bytes');
      for (const t of [upper, upper.toLowerCase()]) equal(Array.from(keyFromHex(t)!).join(), Array.from(all).join(), 'every byte value read back');
      equal(keyFromHex('')!.length, 0, 'no text, no bytes');
      equal(keyFromHex('abc'), undefined, 'an odd count');
      for (const bad of ['g', ' ', '\u0660', '\0', ':', '@', '`', 'G']) {
        for (let at = 0; at < 4; at++) equal(keyFromHex(`${'0a1B'.slice(0, at)}${bad}${'0a1B'.slice(at + 1)}`), undefined, `${JSON.stringify(bad)} at ${at}`);
      }
    },
  },
];

/** Where a data directory cannot be: a runtime with neither Node's nor Deno's files (browsers). */
/** What a software SE is given at construction, and what the engine takes from any backend. */
const backendOptionCases: PortableCase[] = [
  {
    name: 'SE unique IDs: 1 to 64 characters a path segment keeps (it is part of every address); SoftwareBackend options are an object',
    async run() {
      const refused = async (what: string, make: () => unknown, pattern: RegExp) => {
        let error: unknown;
        try {
          await make();
        } catch (e) {
          error = e;
        }
        assert(error instanceof InvalidInputError && pattern.test(error.message), `${what}: ${String(error)}`);
        assert(!String(error).includes('secret'), `${what}: the message shows no long value`);
      };
      for (const bad of ['', 'a/b', 'a b', 'é', 'x'.repeat(65), 42]) {
        await refused(`uniqueId ${JSON.stringify(bad)}`, () => new SoftwareBackend({ uniqueId: bad as never }), /uniqueId must be 1 to 64/);
      }
      await refused('options as a string', () => new SoftwareBackend('uniqueId' as never), /SoftwareBackend options must be an object/);
      // The engine holds any backend to the same rule: a card's, or one of the caller's own.
      const se = new SoftwareBackend();
      se.description.uniqueId = `secret/${'9'.repeat(40)}`;
      await refused('a backend whose unique ID has a slash', () => McsEngine.create({ backends: [se] }), /unique ID of SE backend 1 must be 1 to 64/);
      for (const good of ['0', 'A-b.c_d~e', 'x'.repeat(64)]) {
        const engine = await McsEngine.create({ backends: [new SoftwareBackend({ uniqueId: good }), new SoftwareBackend(null)] });
        equal(engine.seIds[0], `4-${good}`, `uniqueId ${good}`);
        const s = new Session(engine, 'CAE1');
        await s.register();
        ok(await s.retrieve(s.seId), 2000, `addressed at 4-${good}`);
        await engine.close();
      }
    },
  },
];

const browserOnlyCases: PortableCase[] = [
  {
    name: 'a data directory where there are no files (browsers): StateError saying so, not a failed import',
    async run() {
      const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
      const hasFiles = g.Deno !== undefined || g.process?.versions?.node !== undefined;
      if (hasFiles) return; // Node and Deno: the persistence tests cover them.
      // With a master key, and without one: the missing files come first, not advice to set SENV_MASTER_KEY.
      for (const options of [{ masterKey: new Uint8Array(32).fill(1) }, {}]) {
        let err: unknown;
        await McsEngine.create({ dataDir: 'senv-data', ...options }).then((e) => e.close(), (e: unknown) => (err = e));
        assert(err instanceof StateError, `StateError, got ${String(err)}`);
        assert(/needs Node or Deno/.test((err as Error).message), (err as Error).message);
      }
    },
  },
];

export const mcsSuite = [...codecCases, ...backendOptionCases, ...browserOnlyCases, ...mcsCases()];

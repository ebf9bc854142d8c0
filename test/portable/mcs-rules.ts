// The attribute-rule matrix, derived from the declared resource type tables
// (every attribute: RO, WO, RW and M/O/NP at CREATE and UPDATE), and the
// access-control matrix (creator, granted per acop bit, denied, unregistered,
// inheritance, a resource's own policy, selfPrivileges).
import { ecdsa, hmac } from '../../src/index.ts';
import { TYPES, compiledType } from '../../src/mcs/registry.ts';
import { formatTimestamp } from '../../src/mcs/codec.ts';
import { equal, ok as assert, prng, type PortableCase } from './harness.ts';
import { b64, body, engineWith, exportsKeys, fails, ok, Session, softwareSe, unb64, type BackendFactory } from './mcs-kit.ts';

const rnd = prng(4242);
const FUTURE = '20991231T000000';
const ACP = (acor: string[], acop: number) => ({ acr: [{ acor, acop }] });

interface Setup {
  /** A fresh parent for one CREATE, when it is not the originator's registration. */
  parent?: () => Promise<string>;
  base: Record<string, unknown>;
}

/** Per attribute: a value that passes every rule of the type (not just the table's), by short name or type.shortName. */
function samples(s: Session, acpRi: string): Record<string, unknown> {
  return {
    // kExp: true where the SE can export keys; a card refuses it (createExportable in the other suites checks that).
    et: FUTURE, acpi: [acpRi], lbl: ['x'], msg: b64(rnd(16)), kDt: b64(rnd(16)), kExp: exportsKeys(s), cbs: 0, mbs: 64,
    Calg: 1001, Halg: 4, Salg: 33, rgT: 1, Dsz: 16, kInf: 'certificate', Sgn: b64(rnd(64)), sgF: 'raw', prH: true,
    nc: b64(rnd(12)), aD: b64(rnd(5)), Clab: 1, pv: ACP(['CAE1'], 63), pvs: ACP(['CAE1'], 63),
    'SEReboot.mgd': 'seReboot', obis: ['o'], obps: ['p'], dc: 'reset', rbT: 1, rb: false, sID: s.seId, seL: 1, srt: [20004], esi: { x: 1 }, hcl: 'CSE1', hal: ['AE1'],
  };
}

// Attributes whose table-valid writes other rules of the type refuse, and where that is tested instead.
const EXEMPT: Record<string, string> = {
  'algorithmSpecificParameter.iV': 'an IV does not apply to the AEAD parent used here (mcs-cipher.ts)',
};

export function mcsRuleCases(backend: BackendFactory = softwareSe): PortableCase[] {
  return [
    {
      name: 'attribute rules of every declared type: RO, WO, M/O/NP at CREATE and UPDATE',
      async run() {
        const engine = await engineWith(backend);
        const s = new Session(engine, 'CAE1');
        await s.register();
        const level = engine.describe(s.seId)!.description.securityLevel;
        // Its pvs lets anyone retrieve it: a new registration may name it in acpi.
        const pvs = { acr: [{ acor: ['CAE1'], acop: 63 }, { acor: ['all'], acop: 2 }] };
        const acpRi = body(ok(await s.create(s.seId, 1, { 'm2m:acp': { rn: 'acp', pv: ACP(['CAE1'], 63), pvs } }), 2001, 'acp'), 'm2m:acp').ri as string;
        const freshCipher = async () => s.path(body(ok(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 1001, mbs: 64 } }), 2001, 'parent cipher'), 'senv:Cph').ri as string);
        const sample = samples(s, acpRi);
        const ecKey = b64(ecdsa('P-256').keygen().secretKey);
        sample['signature.kDt'] = ecKey;
        // The true values of what the SE computes: its SEType, the size of no data.
        sample['SE.seT'] = engine.describe(s.seId)!.description.seType;
        sample['sensitiveDataObject.cbs'] = 0;
        sample['sensitiveDataObject.cr'] = s.fr;
        const setups: Record<string, Setup> = {
          hash: { base: { Halg: 4 } },
          signature: { base: { Salg: 33, kDt: ecKey } },
          rand: { base: { rgT: 1 } },
          sensitiveDataObject: { base: {} },
          cipher: { base: { Calg: 1001, mbs: 64 } },
          algorithmSpecificParameter: { parent: freshCipher, base: {} },
          accessControlPolicy: { base: { pv: ACP(['CAE1'], 63), pvs: ACP(['CAE1'], 63) } },
          SEReboot: { base: { rbT: 1 } },
          SE: { base: { sID: s.seId, seL: level } },
        };
        let n = 0;
        let checked = 0;
        for (const type of TYPES.filter((t) => !t.systemOnly)) {
          const def = compiledType(type);
          const setup = setups[type.name];
          assert(setup, `no setup for ${type.name}`);
          const root = type.root;
          // Each CREATE of an <SE> needs its own originator.
          const actor = () => (type.name === 'SE' ? new Session(engine, `CX${++n}`) : s);
          const create = async (who: Session, extra: Record<string, unknown>, omit?: string) => {
            const content: Record<string, unknown> = { rn: `r${++n}`, ...setup.base, ...extra };
            if (omit) delete content[omit];
            return who.create(setup.parent ? await setup.parent() : who.seId, type.ty, { [root]: content });
          };
          for (const a of def.all) {
            const what = `${type.name}.${a.sn}`;
            const value = a.sn === 'rn' ? `v${++n}` : sample[`${type.name}.${a.sn}`] ?? sample[a.sn] ?? 'x';
            // A value the SE computes that a table lists in requests is served when it is the true one (value here).
            const other = a.type.kind === 'enum' ? a.type.values.find((x) => x !== value) : typeof value === 'string' ? `${value}-other` : (value as number) + 1;
            // CREATE
            if (a.stated && a.create !== 'NP') {
              ok(await create(actor(), { [a.sn]: value }), 2001, `${what} stated at CREATE`);
              fails(await create(actor(), { [a.sn]: other }), 4000, `${what} stated wrong at CREATE`, /computed by the SE/);
            } else if (a.access === 'RO') fails(await create(actor(), { [a.sn]: value }), 4000, `${what} at CREATE`, /read-only/);
            else if (a.create === 'NP') fails(await create(actor(), { [a.sn]: value }), 4000, `${what} at CREATE`, /not permitted at CREATE/);
            else if (a.create === 'M') fails(await create(actor(), {}, a.sn), 4000, `${what} missing`, /mandatory at CREATE/);
            else if (!EXEMPT[what]) ok(await create(actor(), { [a.sn]: value }), 2001, `${what} at CREATE`);
            // null at CREATE: only an attribute the SE fills in on request (creator) takes it, and shows the originator.
            const asker = actor();
            const askedNull = await create(asker, { [a.sn]: null });
            if (a.nullAsksAtCreate) equal(body(ok(askedNull, 2001, `${what} null at CREATE`), root)[a.sn], asker.fr, `${what} filled in`);
            else fails(askedNull, 4000, `${what} null at CREATE`);
            // UPDATE of a fresh resource
            const who = actor();
            const made = body(ok(await create(who, {}), 2001, `${type.name} base`), root);
            const to = type.name === 'SE' ? who.seId : s.path(made.ri as string);
            const upd = () => who.update(to, { [root]: { [a.sn]: value } });
            if (a.stated && a.update !== 'NP') {
              ok(await upd(), 2004, `${what} stated at UPDATE`);
              fails(await who.update(to, { [root]: { [a.sn]: other } }), 4000, `${what} stated wrong at UPDATE`, /computed by the SE/);
            } else if (a.stated) fails(await upd(), 4000, `${what} at UPDATE`, /not permitted at UPDATE/);
            else if (a.access === 'RO') fails(await upd(), 4000, `${what} at UPDATE`, /read-only/);
            else if (a.access === 'WO') fails(await upd(), 4000, `${what} at UPDATE`, /write-once/);
            else if (a.update === 'NP') fails(await upd(), 4000, `${what} at UPDATE`, /not permitted at UPDATE/);
            else if (!EXEMPT[what]) ok(await upd(), 2004, `${what} at UPDATE`);
            // null removes an optional attribute, except one that always has a value: a mandatory one (pv) too.
            if (a.access === 'RW' && a.update !== 'NP' && !a.sizeOf) {
              const cleared = await who.update(to, { [root]: { [a.sn]: null } });
              if (a.always || a.create === 'M') fails(cleared, 4000, `${what} set to null`, /always has a value: it can be changed, not removed/);
              else ok(cleared, 2004, `${what} set to null`);
              const after = body(ok(await who.retrieve(to), 2000, `${what} after null`), root);
              if (a.always || a.create === 'M') assert(after[a.sn] !== undefined, `${what} kept after a refused null`);
              // (an append attribute's data is discarded: it reads empty)
              else assert(after[a.sn] === undefined || (a.append && after[a.sn] === ''), `${what} removed by null: ${JSON.stringify(after[a.sn])}`);
            }
            checked++;
          }
        }
        assert(checked > 80, `matrix covered ${checked} attributes`);
      },
    },
    {
      name: 'access control: creator, acop bits 1/2/4/8 granted and denied, 4106 unregistered, inheritance, own policy, selfPrivileges',
      async run() {
        const engine = await engineWith(backend);
        const owner = new Session(engine, 'CAE1');
        const other = new Session(engine, 'CAE2');
        const stranger = new Session(engine, 'CAE3');
        const outsider = new Session(engine, 'CAE4');
        await owner.register();
        await other.register('reg2');
        await stranger.register('reg3');
        const acp = body(ok(await owner.create(owner.seId, 1, { 'm2m:acp': { rn: 'acp', pv: ACP(['CAE2'], 0 + 1), pvs: ACP(['CAE1'], 63) } }), 2001, 'acp'), 'm2m:acp').ri as string;
        ok(await owner.update(owner.seId, { 'senv:Senv': { acpi: [acp] } }), 2004, 'policy on the registration');
        const h = () => owner.path('reg', 'h');
        ok(await owner.create(owner.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'owned resource');
        for (const mask of [0, 1, 2, 4, 8, 15]) {
          ok(await owner.update(owner.path('reg', 'acp'), { 'm2m:acp': { pv: ACP(['CAE2'], mask || 16) } }), 2004, `acop ${mask}`);
          const expect = (bit: number, success: number) => (mask & bit ? success : 4103);
          const c = await other.create(owner.path('reg'), 20004, { 'senv:Hsh': { Halg: 4 } });
          ok(c, expect(1, 2001), `CREATE with acop ${mask}`);
          ok(await other.retrieve(h()), expect(2, 2000), `RETRIEVE with acop ${mask}`);
          ok(await other.retrieve(`${h()}/calculateHash`), expect(2, 2000), `RETRIEVE virtual with acop ${mask}`);
          ok(await other.update(h(), { 'senv:Hsh': { msg: 'QUJD' } }), expect(4, 2004), `UPDATE with acop ${mask}`);
          ok(await other.delete(h()), expect(8, 2002), `DELETE with acop ${mask}`);
          if (mask & 8) ok(await owner.create(owner.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'recreate');
          fails(await stranger.retrieve(h()), 4103, 'registered stranger');
          fails(await outsider.retrieve(h()), 4106, 'unregistered');
          ok(await owner.retrieve(h()), 2000, 'creator always');
          if (c.rsc === 2001) {
            const ri = body(c, 'senv:Hsh').ri as string;
            ok(await other.retrieve(owner.path(ri)), 2000, 'the grantee owns what it created');
            ok(await owner.delete(owner.path(ri)), 2002, 'the owner of the parent too');
          }
        }
        // 'all' grants every registered originator, never an unregistered one.
        ok(await owner.update(owner.path('reg', 'acp'), { 'm2m:acp': { pv: ACP(['all'], 2) } }), 2004, 'all');
        ok(await stranger.retrieve(h()), 2000, 'all: registered stranger');
        fails(await outsider.retrieve(h()), 4106, 'all: unregistered');
        // A resource's own policy replaces the inherited one.
        const none = body(ok(await owner.create(owner.seId, 1, { 'm2m:acp': { rn: 'none', pv: ACP(['CAE1'], 2), pvs: ACP(['CAE1'], 63) } }), 2001, 'acp2'), 'm2m:acp').ri as string;
        ok(await owner.update(h(), { 'senv:Hsh': { acpi: [none] } }), 2004, 'own policy');
        fails(await stranger.retrieve(h()), 4103, 'own policy wins');
        // acpi may name the policy by any address of this SE; it is kept as the resource ID.
        for (const form of [owner.path('reg', 'none'), `/${owner.path('reg', 'none')}`, owner.path(none), `/${owner.path(none)}`]) {
          ok(await owner.update(h(), { 'senv:Hsh': { acpi: [form] } }), 2004, `acpi as ${form}`);
          equal(JSON.stringify(body(await owner.retrieve(h()), 'senv:Hsh').acpi), JSON.stringify([none]), `acpi ${form} stored as the resource ID`);
        }
        for (const bad of [owner.path('reg'), owner.path('reg', 'h'), owner.path('reg', 'none', 'x'), `other-SE/reg/none`, owner.path('reg', 'h', 'calculateHash')]) {
          fails(await owner.update(h(), { 'senv:Hsh': { acpi: [bad] } }), 4000, `acpi ${bad}`, /not an <accessControlPolicy>/);
        }
        fails(await stranger.retrieve(h()), 4103, 'the policy is unchanged after refused acpi');
        fails(await stranger.retrieve(`${h()}/cHsh`), 4103, 'virtual resources use the parent policy');
        // selfPrivileges govern the policy itself.
        fails(await other.update(owner.path('reg', 'acp'), { 'm2m:acp': { pv: ACP(['CAE2'], 63) } }), 4103, 'not in pvs');
        ok(await owner.update(owner.path('reg', 'acp'), { 'm2m:acp': { pvs: ACP(['CAE2'], 4) } }), 2004, 'grant pvs');
        ok(await other.update(owner.path('reg', 'acp'), { 'm2m:acp': { pv: ACP(['CAE2'], 63) } }), 2004, 'in pvs');
        fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: { acr: [{ acor: [], acop: 2 }] }, pvs: ACP(['CAE1'], 1) } }), 4000, 'empty acor', /pv/);
        fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: { acr: [{ acor: ['CAE2', ''], acop: 2 }] }, pvs: ACP(['CAE1'], 1) } }), 4000, 'an empty originator in acor', /pv/);
        fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: ACP(['CAE1'], 64), pvs: ACP(['CAE1'], 1) } }), 4000, 'acop range', /pv/);
        equal((await other.retrieve(other.seId)).rsc, 2000, 'each originator sees its own registration at the M2M-SE-ID');
        // Rule parts this SE does not evaluate are refused, never dropped (the rule would grant more).
        for (const part of ['acco', 'acod', 'acaf']) {
          fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: { acr: [{ acor: ['CAE2'], acop: 2, [part]: [] }] }, pvs: ACP(['CAE1'], 63) } }), 5001, `rule with ${part}`, new RegExp(part));
          fails(await owner.update(owner.path('reg', 'acp'), { 'm2m:acp': { pvs: { acr: [{ acor: ['CAE1'], acop: 63, [part]: true }] } } }), 5001, `pvs rule with ${part}`);
        }
        fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: { acr: [{ acor: ['CAE2'], acop: 2, zz: 1 }] }, pvs: ACP(['CAE1'], 63) } }), 4000, 'unknown rule member', /pv/);
        fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: { ...ACP(['CAE2'], 2), zz: 1 }, pvs: ACP(['CAE1'], 63) } }), 4000, 'unknown privileges member', /pv/);
        // <cipher>, <rand>, <hash> and <signature> created without acpi take a copy of their parent's
        // (their tables in TS-0016); a <sensitiveDataObject> follows its parent's at each request.
        ok(await owner.update(owner.seId, { 'senv:Senv': { acpi: [acp] } }), 2004, 'registration policy');
        const kinds: [number, string, Record<string, unknown>][] = [
          [20004, 'senv:Hsh', { Halg: 4 }], [20007, 'senv:Rnd', { rgT: 1 }], [20012, 'senv:Sgn', { Salg: 25, kDt: 'a2V5' }],
          [20002, 'senv:Cph', { Calg: 1001, mbs: 64, kDt: 'AAAAAAAAAAAAAAAAAAAAAA==' }], [20009, 'senv:Sdo', { msg: 'QUJD' }],
        ];
        for (const [ty, root, content] of kinds) {
          ok(await owner.create(owner.seId, ty, { [root]: { rn: `k${ty}`, ...content } }), 2001, `create ${root}`);
        }
        ok(await owner.update(owner.seId, { 'senv:Senv': { acpi: [none] } }), 2004, 'registration policy changed');
        for (const [ty, root] of kinds) {
          const acpi = body(await owner.retrieve(owner.path('reg', `k${ty}`)), root).acpi;
          const copies = ty !== 20009;
          equal(JSON.stringify(acpi), copies ? JSON.stringify([acp]) : undefined, `${root}: acpi ${copies ? 'copied at CREATE' : 'absent'}`);
          ok(await other.retrieve(owner.path('reg', `k${ty}`)), copies ? 2000 : 4103, `${root}: ${copies ? 'the copy still grants' : 'the parent\'s new policy applies'}`);
        }
        // <algorithmSpecificParameter> has no policy of its own (clause 7.5.1.5): its creator loses it with the cipher.
        const params = owner.path('reg', 'k20002', 'p');
        ok(await other.create(owner.path('reg', 'k20002'), 20001, { 'senv:algP': { rn: 'p', nc: 'AAAAAAAAAAAAAAAA' } }), 2001, 'grantee creates the parameters');
        ok(await other.update(params, { 'senv:algP': { aD: 'AAAA' } }), 2004, 'while the cipher\'s policy grants it');
        ok(await owner.update(owner.path('reg', 'k20002'), { 'senv:Cph': { acpi: [none] } }), 2004, 'cipher policy narrowed');
        fails(await other.update(params, { 'senv:algP': { nc: 'BBBBBBBBBBBBBBBB' } }), 4103, 'parameters: UPDATE by their creator');
        fails(await other.retrieve(params), 4103, 'parameters: RETRIEVE by their creator');
        fails(await other.delete(params), 4103, 'parameters: DELETE by their creator');
        ok(await owner.retrieve(params), 2000, 'the cipher\'s creator keeps them');
        // Privilege is checked before what the parent accepts: no privilege, 4103 whatever the type.
        fails(await stranger.create(owner.path('reg', 'k20004'), 20004, { 'senv:Hsh': { Halg: 4 } }), 4103, 'no privilege, type not allowed there');
      },
    },
    {
      name: 'access control: a grant gives its bits only: acpi changed only with UPDATE in pvs, 4103 before every other refusal, 4106 for a registration elsewhere, 4117 for a retried one',
      async run() {
        const engine = await engineWith(backend);
        const owner = new Session(engine, 'CAE1');
        const grantee = new Session(engine, 'CAE2');
        const outsider = new Session(engine, 'CAE9');
        await owner.register();
        await grantee.register('reg2');
        const policy = (rn: string, pv: number, pvs: string[]) =>
          owner.create(owner.seId, 1, { 'm2m:acp': { rn, pv: ACP(['CAE2'], pv), pvs: ACP(['CAE1', ...pvs], 63) } });
        const updateOnly = body(ok(await policy('upd', 4, []), 2001, 'UPDATE-only policy'), 'm2m:acp').ri as string;
        const sdo = owner.path('reg', 'sdo');
        ok(await owner.create(owner.seId, 20009, { 'senv:Sdo': { rn: 'sdo', msg: 'c2VjcmV0', acpi: [updateOnly] } }), 2001, 'data under the UPDATE-only policy');
        // The grantee's own policy would give it everything; repointing or clearing acpi is not an UPDATE of the data.
        const mine = body(ok(await grantee.create(grantee.seId, 1, { 'm2m:acp': { rn: 'mine', pv: ACP(['CAE2'], 63), pvs: ACP(['CAE2'], 63) } }), 2001, 'grantee policy'), 'm2m:acp').ri as string;
        for (const acpi of [[mine], null, []]) {
          fails(await grantee.update(sdo, { 'senv:Sdo': { acpi } }), 4103, `acpi ${JSON.stringify(acpi)} by an UPDATE grantee`, /pvs/);
        }
        ok(await grantee.update(sdo, { 'senv:Sdo': { msg: 'bmV3' } }), 2004, 'UPDATE of the data itself');
        fails(await grantee.retrieve(sdo), 4103, 'still no RETRIEVE');
        fails(await grantee.delete(sdo), 4103, 'still no DELETE');
        equal(JSON.stringify(body(await owner.retrieve(sdo), 'senv:Sdo').acpi), JSON.stringify([updateOnly]), 'acpi unchanged');
        // Inherited: an <sdo> without acpi follows the registration's; the grantee cannot give it one.
        ok(await owner.update(owner.seId, { 'senv:Senv': { acpi: [updateOnly] } }), 2004, 'registration policy');
        ok(await owner.create(owner.seId, 20009, { 'senv:Sdo': { rn: 'bare', msg: 'c2VjcmV0' } }), 2001, 'data following its parent');
        fails(await grantee.update(owner.path('reg', 'bare'), { 'senv:Sdo': { acpi: [mine] } }), 4103, 'acpi on a resource that had none');
        // UPDATE in the pvs of the policy in force is what TS-0001 asks for a change of acpi.
        const trusted = body(ok(await policy('trusted', 4, ['CAE2']), 2001, 'policy whose pvs names the grantee'), 'm2m:acp').ri as string;
        ok(await owner.update(sdo, { 'senv:Sdo': { acpi: [trusted] } }), 2004, 'the creator repoints');
        ok(await grantee.update(sdo, { 'senv:Sdo': { acpi: [mine] } }), 2004, 'UPDATE in pvs: the grantee may repoint');
        ok(await grantee.retrieve(sdo), 2000, 'and then reads under its own policy');
        // No privilege: 4103 before the type, the target or the state says anything.
        ok(await owner.update(owner.seId, { 'senv:Senv': { acpi: [] } }), 2004, 'no registration policy');
        fails(await grantee.delete(owner.path('reg', 'deviceInfo')), 4103, 'DELETE [deviceInfo] without privilege');
        fails(await owner.delete(owner.path('reg', 'deviceInfo')), 4005, 'DELETE [deviceInfo] by its owner');
        fails(await grantee.create(owner.path('reg'), 20008, { 'senv:x': {} }), 4103, 'type not implemented, no privilege');
        fails(await grantee.create(owner.path('reg'), 13, { 'm2m:dvi': {} }), 4103, 'mgmtObj, no privilege');
        fails(await grantee.create(owner.path('reg'), 99, { x: {} }), 4103, 'unknown type, no privilege');
        ok(await owner.create(owner.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        fails(await grantee.create(owner.path('reg', 'h', 'calculateHash'), 20004, { 'senv:Hsh': { Halg: 4 } }), 4103, 'CREATE on a virtual resource, no privilege');
        fails(await grantee.update(owner.path('reg', 'h', 'calculateHash'), { 'senv:Hsh': {} }), 4103, 'UPDATE on a virtual resource, no privilege');
        fails(await grantee.delete(owner.path('reg', 'h', 'calculateHash')), 4103, 'DELETE of a virtual resource, no privilege');
        fails(await owner.update(owner.path('reg', 'h', 'calculateHash'), { 'senv:Hsh': {} }), 4005, 'UPDATE on a virtual resource by its owner');
        fails(await owner.delete(owner.path('reg', 'h', 'calculateHash')), 4005, 'DELETE of a virtual resource by its owner');
        // Of [deviceInfo] its owner may set acpi (TS-0001's common attribute), nothing else.
        ok(await owner.update(owner.path('reg', 'deviceInfo'), { 'm2m:dvi': { acpi: [trusted] } }), 2004, '[deviceInfo] acpi');
        fails(await owner.update(owner.path('reg', 'deviceInfo'), { 'm2m:dvi': { fwv: 'x' } }), 4000, '[deviceInfo] fwv', /read-only/);
        // By TS-0001's long names too (fwVersion, not firmwareVersion): a known attribute, refused as read-only.
        for (const name of ['fwVersion', 'swVersion', 'hwVersion']) fails(await owner.update(owner.path('reg', 'deviceInfo'), { 'm2m:deviceInfo': { [name]: 'x' } }), 4000, `[deviceInfo] ${name}`, new RegExp(`${name}.*read-only|read-only.*${name}`));
        // Registering is a CREATE <SE> at the M2M-SE-ID: anywhere else an unregistered originator learns nothing.
        const reg = { 'senv:Senv': { sID: owner.seId, seL: engine.describe(owner.seId)!.description.securityLevel } };
        // A policy the originator may not retrieve is answered as an address that holds none, registered or not:
        // acpi tells no one which addresses are policies, nor their resource IDs.
        ok(await grantee.create(grantee.seId, 20004, { 'senv:Hsh': { rn: 'gh', Halg: 4 } }), 2001, 'grantee hash');
        const hidden = /^acpi: '[^']+' is not an <accessControlPolicy> of this SE the originator may retrieve$/;
        for (const id of [updateOnly, owner.path('reg', 'upd'), owner.path('reg', 'nothing'), owner.path('reg', 'sdo')]) {
          fails(await grantee.update(grantee.path('reg2', 'gh'), { 'senv:Hsh': { acpi: [id] } }), 4000, `acpi ${id}, not the grantee's to retrieve`, hidden);
          fails(await outsider.create(owner.seId, 20011, { 'senv:Senv': { ...reg['senv:Senv'], rn: 'probe', acpi: [id] } }), 4000, `registration with acpi ${id}`, hidden);
        }
        ok(await grantee.update(grantee.path('reg2', 'gh'), { 'senv:Hsh': { acpi: [trusted] } }), 2004, 'a policy whose pvs lets the grantee retrieve it');
        for (const to of [owner.path('reg'), owner.path('reg', 'sdo'), owner.path('nothing'), owner.path('reg', 'h', 'calculateHash')]) {
          fails(await outsider.create(to, 20011, reg), 4106, `unregistered CREATE <SE> at ${to}`);
        }
        // A registered originator without the privilege is not told that an <SE> does not go there either.
        for (const to of [owner.path('reg'), owner.path('reg', 'h'), owner.path('reg', 'h', 'calculateHash')]) {
          fails(await grantee.create(to, 20011, reg), 4103, `CREATE <SE> at ${to}, no privilege`);
        }
        fails(await owner.create(owner.path('reg', 'h'), 20011, reg), 4108, 'CREATE <SE> below the root by its owner', /M2M-SE-ID only/);
        ok(await outsider.create(`/${owner.seId}`, 20011, { 'senv:Senv': { ...reg['senv:Senv'], rn: 'regO' } }), 2001, 'registration at /M2M-SE-ID');
        // A retry of a registration that succeeded: 4117, not a name conflict; a malformed one stays 4000.
        fails(await outsider.create(owner.seId, 20011, { 'senv:Senv': { ...reg['senv:Senv'], rn: 'regO' } }), 4117, 'retried registration');
        fails(await outsider.create(owner.seId, 20011, { 'senv:Senv': { rn: 'regO' } }), 4000, 'malformed second registration');
        fails(await outsider.create(owner.path('regO'), 20011, reg), 4108, 'registered: <SE> elsewhere is a wrong place');
      },
    },
    {
      name: 'rules no earlier case pinned (found by mutation testing): a parameter named twice, srt narrowing, an empty acpi, negative numbers, rcn 0 on a refusal, size limits at and past the limit',
      async run() {
        const engine = await engineWith(backend);
        const owner = new Session(engine, 'CAE1');
        const other = new Session(engine, 'CAE2');
        await owner.register();
        await other.register('reg2');
        // A parameter given by its short and its long name is refused, whichever would win: with
        // fr, a gateway that checked one name would be bypassed by the other.
        const named: [Record<string, unknown>, string][] = [
          [{ op: 2, fr: 'CAE2', from: 'CAE1' }, 'fr'], [{ op: 2, operation: 3, fr: 'CAE1' }, 'op'], [{ op: 2, fr: 'CAE1', rqi: 'a', requestIdentifier: 'b' }, 'rqi'],
        ];
        for (const [req, name] of named) fails(await engine.send({ to: owner.seId, rqi: 'twice', ...req }), 4000, `${name} twice`, new RegExp(`${name} given twice`));
        // A registration's srt narrows what may be created below it.
        const narrow = new Session(engine, 'CAE3');
        ok(await narrow.create(narrow.seId, 20011, { 'senv:Senv': { rn: 'reg3', sID: narrow.seId, seL: engine.describe(narrow.seId)!.description.securityLevel, srt: [20004] } }), 2001, 'narrow registration');
        ok(await narrow.create(narrow.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, '<hash> in srt');
        fails(await narrow.create(narrow.seId, 20007, { 'senv:Rnd': { rgT: 1 } }), 4108, '<rand> not in srt', /srt/);
        // An empty acpi is no policy: the nearest non-empty one upwards applies.
        const acp = body(ok(await owner.create(owner.seId, 1, { 'm2m:acp': { rn: 'acp', pv: ACP(['CAE2'], 2), pvs: ACP(['CAE1'], 63) } }), 2001, 'acp'), 'm2m:acp').ri as string;
        ok(await owner.update(owner.seId, { 'senv:Senv': { acpi: [acp] } }), 2004, 'policy on the registration');
        ok(await owner.create(owner.seId, 20004, { 'senv:Hsh': { rn: 'open', Halg: 4, acpi: [] } }), 2001, 'acpi []');
        ok(await other.retrieve(owner.path('reg', 'open')), 2000, 'an empty acpi falls back on the parent\'s policy');
        // Unsigned numbers are refused below zero at CREATE and UPDATE, before anything is stored.
        fails(await owner.create(owner.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: -1 } }), 4000, 'Dsz -1', /Dsz/);
        fails(await owner.create(owner.seId, 20002, { 'senv:Cph': { Calg: 1001, mbs: -1 } }), 4000, 'mbs -1', /mbs/);
        ok(await owner.create(owner.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 8 } }), 2001, '<rand>');
        fails(await owner.update(owner.path('reg', 'r'), { 'senv:Rnd': { Dsz: -1 } }), 4000, 'UPDATE Dsz -1', /Dsz/);
        equal(unb64(body(ok(await owner.retrieve(owner.path('reg', 'r', 'generateRand')), 2000, 'generateRand'), 'senv:Rnd').rndD).length, 8, 'Dsz unchanged');
        // rcn 0 asks for no content on success; a refusal still explains itself.
        const refused = await engine.send({ op: 3, to: owner.path('reg', 'r'), fr: 'CAE1', rqi: 'rcn0', rcn: 0, pc: { 'senv:Rnd': { Dsz: 'many' } } });
        fails(refused, 4000, 'rcn 0 refusal');
        assert(typeof (refused.pc as Record<string, unknown> | undefined)?.['m2m:dbg'] === 'string', 'rcn 0: the refusal keeps its m2m:dbg');
        // Size limits, at the limit and one past it: rqi and fr 1,024 characters, to 4,096; strings
        // 1 to 1,024 characters, lists up to 256 entries, free-form JSON up to 64 KiB of text.
        const at = (n: number) => 'x'.repeat(n);
        ok(await engine.send({ op: 2, to: owner.seId, fr: 'CAE1', rqi: at(1024) }), 2000, 'rqi of 1024');
        fails(await engine.send({ op: 2, to: owner.seId, fr: 'CAE1', rqi: at(1025) }), 4000, 'rqi of 1025', /rqi/);
        fails(await engine.send({ op: 2, to: `${owner.seId}/${at(4096 - owner.seId.length - 1)}`, fr: 'CAE1', rqi: 'to' }), 4004, 'to of 4096');
        fails(await engine.send({ op: 2, to: `${owner.seId}/${at(4096 - owner.seId.length)}`, fr: 'CAE1', rqi: 'to' }), 4000, 'to of 4097', /to/);
        fails(await engine.send({ op: 2, to: owner.seId, fr: `C${at(1023)}`, rqi: 'fr' }), 4106, 'fr of 1024: an unregistered originator');
        fails(await engine.send({ op: 2, to: owner.seId, fr: `C${at(1024)}`, rqi: 'fr' }), 4000, 'fr of 1025', /fr/);
        const labels = owner.path('reg', 'warmReset');
        for (const [lbl, rsc] of [[[at(1024)], 2004], [[at(1025)], 4000], [[''], 4000], [Array(256).fill('l'), 2004], [Array(257).fill('l'), 4000]] as const) {
          const r = await owner.update(labels, { 'senv:Srbt': { lbl } });
          if (rsc === 2004) ok(r, rsc, `lbl ${lbl.length} x ${lbl[0]!.length}`);
          else fails(r, rsc, `lbl ${lbl.length} x ${lbl[0]!.length}`, /lbl/);
        }
        const esi = (n: number) => ({ x: at(n - '{"x":""}'.length) });
        ok(await owner.update(owner.seId, { 'senv:Senv': { esi: esi(65536) } }), 2004, 'esi of 64 KiB of JSON');
        fails(await owner.update(owner.seId, { 'senv:Senv': { esi: esi(65537) } }), 4000, 'esi one byte more', /esi/);
        // An HMAC verifies only at its own length: the MAC with a byte appended is no match.
        const macKey = rnd(32), m = rnd(40);
        const mac = hmac('SHA-256', macKey, m);
        for (const [sig, vR] of [[mac, true], [new Uint8Array([...mac, 0xff]), false], [mac.subarray(0, 31), false]] as const) {
          ok(await owner.create(owner.seId, 20012, { 'senv:Sgn': { rn: `mac${sig.length}`, Salg: 25, kDt: b64(macKey), msg: b64(m), Sgn: b64(sig) } }), 2001, `HMAC of ${sig.length} bytes`);
          equal(body(ok(await owner.retrieve(owner.path('reg', `mac${sig.length}`, 'vSgn')), 2000, 'verify'), 'senv:Sgn').vR, vR, `HMAC of ${sig.length} bytes verifies: ${vR}`);
        }
        // A verification result holds for the message it was reached on: a new message, or a signature calculated, clears it.
        const verified = owner.path('reg', 'mac32');
        ok(await owner.update(verified, { 'senv:Sgn': { msg: b64(m) } }), 2004, 'a new message');
        equal(body(await owner.retrieve(verified), 'senv:Sgn').vR, undefined, 'no vR after a new message');
        ok(await owner.update(verified, { 'senv:Sgn': { Sgn: b64(mac) } }), 2004, 'the signature again');
        equal(body(ok(await owner.retrieve(`${verified}/vSgn`), 2000, 'verify'), 'senv:Sgn').vR, true, 'verified');
        ok(await owner.retrieve(`${verified}/cSgn`), 2000, 'sign right after');
        equal(body(await owner.retrieve(verified), 'senv:Sgn').vR, undefined, 'no vR after a signature');
        // Values checked in full: an srt naming a type this SE does not support, timestamps with
        // trailing text, a 60th second or minute, a rule granting nothing (acop 0), 65 rules.
        fails(await owner.update(owner.seId, { 'senv:Senv': { srt: [20004, 20008] } }), 4000, 'srt with an unsupported type', /srt/);
        for (const et of ['20991231T000000xyz', '20991231T120060', '20991231T126000']) fails(await owner.update(owner.path('reg', 'r'), { 'senv:Rnd': { et } }), 4000, `et ${et}`, /et/);
        fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: ACP(['CAE2'], 0), pvs: ACP(['CAE1'], 63) } }), 4000, 'acop 0', /pv/);
        // (coverage gap) A rule that is no object: a number, null, a list.
        for (const rule of [5, null, [{ acor: ['CAE2'], acop: 2 }]]) {
          fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: { acr: [rule] }, pvs: ACP(['CAE1'], 63) } }), 4000, `rule ${JSON.stringify(rule)}`, /^pv must be \{ "acr": \[\{ "acor": \[originator, \.\.\.\], "acop": 1\.\.63 \}\] \}$/);
        }
        const rules = (n: number) => ({ acr: Array.from({ length: n }, (_, i) => ({ acor: [`C${i}`], acop: 2 })) });
        ok(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: rules(64), pvs: ACP(['CAE1'], 63) } }), 2001, '64 rules');
        fails(await owner.create(owner.seId, 1, { 'm2m:acp': { pv: rules(65), pvs: ACP(['CAE1'], 63) } }), 4000, '65 rules', /^pv holds at most 64 rules \(acr\), got 65$/);
        // (coverage gaps) An attribute given by its short and its long name is refused, as a parameter is;
        // a timestamp given as a number or a list holding one (not read as its text), an srt entry that is no non-negative integer, and a JSON value of
        // more than 64 Ki values (an array counted before it is walked, members one by one) are refused;
        // so is an rcn that is no number, shown as shown() shows it (a string by its length); a CREATE addressed to a virtual resource is 4005.
        fails(await owner.update(owner.path('reg', 'r'), { 'senv:Rnd': { et: FUTURE, expirationTime: FUTURE } }), 4000, 'et and expirationTime', /^et \(expirationTime\) given twice$/);
        equal(body(ok(await owner.retrieve(owner.path('reg', 'r')), 2000, 'after et twice'), 'senv:Rnd').et, undefined, 'nothing applied of the refused UPDATE');
        for (const et of [20991231, [FUTURE]]) fails(await owner.update(owner.path('reg', 'r'), { 'senv:Rnd': { et } }), 4000, `et ${JSON.stringify(et)}`, /^et \(expirationTime\) must be a timestamp like/);
        for (const srt of [[-1], ['20004'], [1.5]]) fails(await owner.update(owner.seId, { 'senv:Senv': { srt } }), 4000, `srt ${JSON.stringify(srt)}`, /^srt \(supportedResourceType\) must be a list of at most 256 non-negative integers/);
        // The walk of a JSON value stops at its budget: members past it are never read, an array too long is not walked.
        let reads = 0;
        const members: Record<string, unknown> = {};
        for (let i = 0; i < 70000; i++) Object.defineProperty(members, `m${i}`, { enumerable: true, get: () => (reads++, 0) });
        fails(await owner.update(owner.seId, { 'senv:Senv': { esi: members } }), 4000, 'esi of 70000 members', /^esi \(e2eSecInfo\) must be a JSON value of at most 64 KiB$/);
        assert(reads <= 65536, `members read past the budget: ${reads}`);
        reads = 0;
        const long = new Proxy(new Array(70000).fill(0), { get: (t, k) => (typeof k === 'string' && /^\d+$/.test(k) && reads++, Reflect.get(t, k)) });
        fails(await owner.update(owner.seId, { 'senv:Senv': { esi: { a: long } } }), 4000, 'esi holding an array of 70000', /^esi \(e2eSecInfo\) must be a JSON value of at most 64 KiB$/);
        equal(reads, 0, 'an array longer than the budget is not walked');
        fails(await engine.send({ op: 2, to: owner.seId, fr: 'CAE1', rqi: 'rcn', rcn: '1' }), 4000, 'rcn as a string', /^rcn \(resultContent\) a string of 1 character is not supported for RETRIEVE/);
        fails(await engine.send({ op: 3, to: owner.path('reg', 'r'), fr: 'CAE1', rqi: 'rcn', rcn: 2, pc: { 'senv:Rnd': { Dsz: 8 } } }), 4000, 'rcn 2 on UPDATE', /^rcn \(resultContent\) 2 is not supported for UPDATE: 0 \(nothing\), 1 \(attributes\) or 9 \(modified attributes\)$/);
        fails(await owner.create(owner.path('reg', 'r', 'generateRand'), 20004, { 'senv:Hsh': { Halg: 4 } }), 4005, 'CREATE on a virtual resource', /^CREATE is not allowed on virtual resource generateRand$/);
        // The attributes an UPDATE answers with are remembered per order of attribute names, at most 64 orders a type:
        // a client sending ever new orders grows nothing, and each still answers with what it changed.
        const values: Record<string, unknown> = { acpi: [], srt: [20004], esi: { x: 1 }, hcl: 'CSE1', hal: ['AE1'] };
        const orders: string[][] = [];
        for (const a of Object.keys(values)) for (const b of Object.keys(values)) if (a !== b) {
          orders.push([a, b]);
          for (const c of Object.keys(values)) if (c !== a && c !== b) orders.push([a, b, c]);
        }
        for (const order of orders) {
          const r = body(ok(await owner.update(owner.seId, { 'senv:Senv': Object.fromEntries(order.map((k) => [k, values[k]])) }), 2004, `UPDATE ${order}`), 'senv:Senv');
          equal(Object.keys(r).filter((k) => k in values).sort().join(), [...order].sort().join(), `UPDATE ${order} answers with what it changed`);
        }
        assert(orders.length === 80 && compiledType(TYPES.find((t) => t.root === 'senv:Senv')!).replies.size <= 64, `replies remembered: ${compiledType(TYPES.find((t) => t.root === 'senv:Senv')!).replies.size}`);
        // expirationTime must lie after the request's time: equal to it is already past.
        const now = Date.UTC(2026, 10, 22, 12);
        const timed = new Session(await engineWith(backend, { clock: () => now }), 'CAE1');
        await timed.register();
        fails(await timed.create(timed.seId, 20004, { 'senv:Hsh': { Halg: 4, et: formatTimestamp(now) } }), 4000, 'et = now', /et/);
        ok(await timed.create(timed.seId, 20004, { 'senv:Hsh': { Halg: 4, et: formatTimestamp(now + 1) } }), 2001, 'et 1 ms later');
      },
    },
    {
      name: 'rules a second mutation review found unpinned: RETRIEVE in pvs is no repointing, any policy of an acpi grants, acpi given at CREATE kept, no child named as a virtual resource, hcl and rn lengths, . and .., rn write-once, rqet -1, cr null, booleans, bytes as bytes up to maxDataSize, a long name quoted',
      async run() {
        const engine = await engineWith(backend, { maxDataSize: 1000 });
        const owner = new Session(engine, 'CAE1');
        const grantee = new Session(engine, 'CAE2');
        await owner.register();
        await grantee.register('reg2');
        // pvs granting the grantee RETRIEVE (it may name the policy in an acpi) but not UPDATE: no repointing by it.
        const readable = body(ok(await owner.create(owner.seId, 1, {
          'm2m:acp': { rn: 'readable', pv: ACP(['CAE2'], 63), pvs: { acr: [{ acor: ['CAE1'], acop: 63 }, { acor: ['CAE2'], acop: 2 }] } },
        }), 2001, 'policy readable by the grantee'), 'm2m:acp').ri as string;
        const mine = body(ok(await grantee.create(grantee.seId, 1, { 'm2m:acp': { rn: 'mine', pv: ACP(['CAE2'], 63), pvs: ACP(['CAE2'], 63) } }), 2001, 'grantee policy'), 'm2m:acp').ri as string;
        ok(await owner.create(owner.seId, 20009, { 'senv:Sdo': { rn: 'sdo', msg: 'c2VjcmV0', acpi: [readable] } }), 2001, 'data under that policy');
        fails(await grantee.update(owner.path('reg', 'sdo'), { 'senv:Sdo': { acpi: [mine] } }), 4103, 'acpi changed with RETRIEVE only in pvs', /pvs/);
        ok(await grantee.update(owner.path('reg', 'sdo'), { 'senv:Sdo': { msg: 'bmV3' } }), 2004, 'UPDATE of the data, which pv grants');
        // Of several policies in an acpi, one that grants is enough.
        const none = body(ok(await owner.create(owner.seId, 1, { 'm2m:acp': { rn: 'none', pv: ACP(['CAE1'], 2), pvs: ACP(['CAE1'], 63) } }), 2001, 'policy granting the grantee nothing'), 'm2m:acp').ri as string;
        const reads = body(ok(await owner.create(owner.seId, 1, { 'm2m:acp': { rn: 'reads', pv: ACP(['CAE2'], 2), pvs: ACP(['CAE1'], 63) } }), 2001, 'policy granting RETRIEVE'), 'm2m:acp').ri as string;
        ok(await owner.create(owner.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, acpi: [none, reads] } }), 2001, 'hash under two policies');
        ok(await grantee.retrieve(owner.path('reg', 'h')), 2000, 'the second policy grants RETRIEVE');
        fails(await grantee.delete(owner.path('reg', 'h')), 4103, 'and neither grants DELETE');
        // acpi given at CREATE is the resource's own: a parent's is copied only when none is given.
        ok(await owner.update(owner.seId, { 'senv:Senv': { acpi: [reads] } }), 2004, 'registration policy');
        ok(await owner.create(owner.seId, 20004, { 'senv:Hsh': { rn: 'own', Halg: 4, acpi: [none] } }), 2001, 'hash with a policy of its own');
        equal(JSON.stringify(body(await owner.retrieve(owner.path('reg', 'own')), 'senv:Hsh').acpi), JSON.stringify([none]), 'its own acpi kept');
        fails(await grantee.retrieve(owner.path('reg', 'own')), 4103, 'its own policy applies, not the parent\'s');
        // A child may not take the name of a virtual resource of its parent (by long or short name): the address would mean both.
        ok(await owner.create(owner.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64 } }), 2001, 'cipher');
        for (const rn of ['encrypt', 'Enc']) fails(await owner.create(owner.path('reg', 'c'), 20001, { 'senv:algP': { rn, nc: b64(rnd(12)) } }), 4105, `parameters named ${rn}`, /exists/);
        // A string without a pattern or a fixed list (hcl): 1 to 1,024 characters.
        for (const [hcl, rsc] of [['', 4000], ['c'.repeat(1024), 2004], ['c'.repeat(1025), 4000]] as const) {
          const r = await owner.update(owner.seId, { 'senv:Senv': { hcl } });
          if (rsc === 2004) ok(r, rsc, `hcl of ${hcl.length}`);
          else fails(r, rsc, `hcl of ${hcl.length}`, /hcl/);
        }
        // Bytes given as a Uint8Array (an in-process caller) have the limit of base64 text: maxDataSize fits, one byte more is 5207.
        ok(await owner.create(owner.seId, 20009, { 'senv:Sdo': { rn: 'full', msg: new Uint8Array(1000) } }), 2001, 'bytes of maxDataSize');
        fails(await owner.create(owner.seId, 20009, { 'senv:Sdo': { rn: 'over', msg: new Uint8Array(1001) } }), 5207, 'bytes one past maxDataSize', /exceeds 1000 bytes/);
        // A resourceName is one path segment of 1 to 64 characters, and neither . nor .. (which would read as a step of a path).
        for (const [rn, rsc] of [['.', 4000], ['..', 4000], ['...', 2001], ['n'.repeat(64), 2001], ['n'.repeat(65), 4000]] as const) {
          const r = await owner.create(owner.seId, 20004, { 'senv:Hsh': { rn, Halg: 4 } });
          if (rsc === 2001) ok(r, rsc, `rn of ${rn.length}`);
          else fails(r, rsc, `rn '${rn.slice(0, 8)}' (${rn.length})`, /rn/);
        }
        fails(await owner.update(owner.path('reg', 'n'.repeat(64)), { 'senv:Hsh': { rn: 'renamed' } }), 4000, 'rn at UPDATE', /rn.*write-once/);
        // rqet in milliseconds counts from 0: -1 is no deadline but a malformed one (4000, not an expired request's 4008).
        fails(await engine.send({ op: 2, to: owner.seId, fr: 'CAE1', rqi: 'neg', rqet: -1 }), 4000, 'rqet -1', /rqet/);
        // cr null at CREATE asks the SE to fill in the creator (TS-0004), named here rather than read from the declarations.
        equal(body(ok(await grantee.create(grantee.seId, 20004, { 'senv:Hsh': { Halg: 4, cr: null } }), 2001, 'cr null'), 'senv:Hsh').cr, 'CAE2', 'cr filled in');
        // A boolean is true or false, not a value JavaScript would take as one.
        for (const kExp of [1, 'true']) fails(await owner.create(owner.seId, 20002, { 'senv:Cph': { Calg: 1001, mbs: 64, kExp } }), 4000, `kExp ${JSON.stringify(kExp)}`, /kExp.*boolean/);
        // A caller's text in an m2m:dbg: at most 64 characters of it, then an ellipsis.
        fails(await owner.update(owner.seId, { 'senv:Senv': { [`a${'b'.repeat(63)}`]: 1 } }), 4000, 'unknown name of 64', new RegExp(`'ab{63}' for`));
        fails(await owner.update(owner.seId, { 'senv:Senv': { [`a${'b'.repeat(64)}`]: 1 } }), 4000, 'unknown name of 65', new RegExp(`'ab{63}…' for`));
      },
    },
  ];
}

export const mcsRuleSuite = mcsRuleCases();

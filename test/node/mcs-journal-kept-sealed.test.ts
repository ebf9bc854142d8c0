// A resource's secret values are written to the data directory only when a
// change sets them (format 6): a change that leaves them as they were (an `et`
// or `acpi` UPDATE, an operation whose result is no secret) records the
// resource without its sealed part and without asking the backend to store
// its keys, and a restart, a compaction, a master key rotation or an upgrade
// from format 5 gives back every key and value; on the PC/SC SE (an
// in-process card) too, whose card keeps the keys and the sensitive data.
import { describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodeCrypto from 'node:crypto';
import { McsEngine, SoftwareBackend, gcm } from '../../src/index.ts';
import { JournalStore } from '../../src/mcs/store/journal.ts';
import { openFiles, type Files } from '../../src/mcs/store/files.ts';
import type { SecureEnvironmentBackend } from '../../src/backends/backend.ts';
import { Session, b64, body, ok, unb64 } from '../portable/mcs-kit.ts';
import { InProcessReader } from './pcsc-helpers.ts';
import { runSteps } from './mcs-runtimes.ts';

const KEY = new Uint8Array(32).fill(11);
const MIB = 1 << 20;
const tempDir = () => mkdtempSync(join(tmpdir(), 'senv-kept-sealed-'));
const sha256 = (b: Uint8Array) => new Uint8Array(nodeCrypto.createHash('sha256').update(b).digest());
const hmac = (k: Uint8Array, b: Uint8Array) => new Uint8Array(nodeCrypto.createHmac('sha256', k).update(b).digest());
const format = (dir: string) => (JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { format: number }).format;

type Rec = { ri: string; rn: string; sealed?: string; keptSealed?: true };

/**
 * An engine on `dir` whose store counts the bytes it appends to journal.log and whose SE (the
 * software SE unless `backend` is given) counts storeKey calls and data objects written to the device.
 */
async function open(dir: string, compactAt: number, options: { masterKey?: Uint8Array; files?: Partial<Files>; backend?: SecureEnvironmentBackend } = {}) {
  const real = await openFiles();
  const written = { journal: 0, storeKey: 0, objects: 0 };
  const files: Files = {
    ...real,
    append: async (path, data) => {
      if (path.endsWith('/journal.log')) written.journal += data.length;
      return real.append(path, data);
    },
    ...options.files,
  };
  const se: SecureEnvironmentBackend = options.backend ?? new SoftwareBackend();
  const storeKey = se.storeKey.bind(se);
  se.storeKey = (k) => {
    written.storeKey++;
    return storeKey(k);
  };
  const device = se.objectStore;
  if (device) {
    const write = device.write.bind(device);
    device.write = (id, data) => {
      written.objects++;
      return write(id, data);
    };
  }
  const engine = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: options.masterKey ?? KEY, files, compactAt }), backends: [se] });
  return { engine, s: new Session(engine, 'CAE1', engine.seIds[0]), written };
}

/** The master key of fixtures/format5-secrets. */
const FORMAT5_KEY = new Uint8Array(32).fill(0x5e);

/** `dir` made afresh as a copy of fixtures/format5-secrets. */
function format5(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  cpSync(fileURLToPath(new URL('./fixtures/format5-secrets', import.meta.url)), dir, { recursive: true });
}

/** Checks the values fixtures/format5-secrets/README.md's script wrote (write number `seed` of `n` bytes); answers c2's generated key. */
async function format5Values(s: Session): Promise<Uint8Array> {
  const data = (seed: number, n: number) => Uint8Array.from({ length: n }, (_, k) => (seed * 31 + k * 17) & 0xff);
  const reg = (...p: string[]) => s.path('reg', ...p);
  expect(unb64(body(ok(await s.retrieve(reg('c1')), 2000, 'c1'), 'senv:Cph').cD)).toEqual(gcm(data(7, 16), data(8, 12)).encrypt(data(9, 4000)));
  expect(unb64(body(ok(await s.retrieve(reg('s1')), 2000, 's1'), 'senv:Sgn').Sgn)).toEqual(hmac(data(11, 32), data(12, 100)));
  expect(unb64(body(ok(await s.retrieve(reg('h')), 2000, 'h'), 'senv:Hsh').Hv)).toEqual(sha256(data(13, 5000)));
  expect(unb64(body(ok(await s.retrieve(reg('sdo')), 2000, 'sdo'), 'senv:Sdo').msg)).toEqual(data(14, 3000));
  return unb64(body(ok(await s.retrieve(reg('c2')), 2000, 'c2'), 'senv:Cph').kDt);
}

/** The records of resources in journal.log's puts ([length u32][CRC-32 u32][JSON][MAC 32 bytes]). */
function puts(dir: string): Rec[] {
  const buf = readFileSync(join(dir, 'journal.log'));
  const out: Rec[] = [];
  for (let at = 0; at < buf.length;) {
    const len = buf.readUInt32LE(at);
    const r = JSON.parse(buf.subarray(at + 8, at + 8 + len - 32).toString()) as { op: string; res?: Rec[] };
    if (r.op === 'put') out.push(...r.res!);
    at += 8 + len;
  }
  return out;
}

/** snapshot.json's records. */
function snapshotRecords(dir: string): Rec[] {
  const text = readFileSync(join(dir, 'snapshot.json'), 'utf8');
  const state = JSON.parse(text.slice(text.indexOf('\n') + 1)) as { resources: Record<string, Record<string, Rec>> };
  return Object.values(state.resources).flatMap((se) => Object.values(se));
}

/** An ECDSA P-256 signature (raw r||s) of SHA-256(msg) checked against the uncompressed public key `kInf`. */
function ecdsaVerifies(kInf: Uint8Array, msg: Uint8Array, sgn: Uint8Array): boolean {
  const jwk = { kty: 'EC', crv: 'P-256', x: Buffer.from(kInf.subarray(1, 33)).toString('base64url'), y: Buffer.from(kInf.subarray(33)).toString('base64url') };
  return nodeCrypto.verify('sha256', msg, { key: nodeCrypto.createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, sgn);
}

describe('secret values are written when a change sets them, not again', () => {
  it.each([['a restart', 1 << 30], ['a compaction after every record', 1]])('an et or acpi UPDATE of resources holding keys and secret values adds a small record, calls no storeKey, and %s gives back every key and value', async (_, compactAt) => {
    const dir = tempDir();
    try {
      let { engine, s, written } = await open(dir, 1 << 30);
      await s.register();
      const message = nodeCrypto.randomBytes(MIB), sdoData = nodeCrypto.randomBytes(MIB), short = nodeCrypto.randomBytes(1000);
      const aesKey = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(12), macKey = nodeCrypto.randomBytes(32);
      const reg = (...p: string[]) => s.path('reg', ...p);
      // c1: a key given (not exportable) and 1 MiB of cD; c2: a generated exportable key; c3: a generated key kept inside.
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c1', Calg: 1001, mbs: 2 * MIB, kDt: b64(aesKey) } }), 2001, 'c1');
      ok(await s.create(reg('c1'), 20001, { 'senv:algP': { nc: b64(nonce) } }), 2001, 'c1 nonce');
      for (let off = 0; off < MIB; off += 256 * 1024) ok(await s.update(reg('c1'), { 'senv:Cph': { msg: b64(message.subarray(off, off + 256 * 1024)) } }), 2004, 'c1 chunk');
      const cD = gcm(aesKey, nonce).encrypt(message);
      expect(unb64(body(ok(await s.retrieve(reg('c1', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD)).toEqual(cD);
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c2', Calg: 1001, mbs: 1024, kExp: true } }), 2001, 'c2');
      const c2Key = unb64(body(ok(await s.retrieve(reg('c2', 'generateKey')), 2000, 'c2 key'), 'senv:Cph').kDt);
      expect(c2Key.length).toBe(16);
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c3', Calg: 1001, mbs: 1024, msg: b64(short) } }), 2001, 'c3');
      ok(await s.retrieve(reg('c3', 'generateKey')), 2000, 'c3 key');
      ok(await s.create(reg('c3'), 20001, { 'senv:algP': { nc: b64(nonce) } }), 2001, 'c3 nonce');
      // Under a key nobody outside the SE knows: the same ciphertext after the restarts is the same key.
      const c3Cd = unb64(body(ok(await s.retrieve(reg('c3', 'encrypt')), 2000, 'c3 encrypt'), 'senv:Cph').cD);
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'sdo', msg: b64(sdoData) } }), 2001, 'sdo');
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(short) } }), 2001, 'h');
      expect(unb64(body(ok(await s.retrieve(reg('h', 'calculateHash')), 2000, 'Hv'), 'senv:Hsh').Hv)).toEqual(sha256(short));
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'mac', Salg: 25, kDt: b64(macKey), msg: b64(short) } }), 2001, 'mac');
      expect(unb64(body(ok(await s.retrieve(reg('mac', 'calculateSignature')), 2000, 'Sgn'), 'senv:Sgn').Sgn)).toEqual(hmac(macKey, short));
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'ec', Salg: 33, sgF: 'raw', msg: b64(short) } }), 2001, 'ec');
      const kInf = unb64(body(ok(await s.retrieve(reg('ec', 'generateKey')), 2000, 'ec key'), 'senv:Sgn').kInf);
      const ecSgn = unb64(body(ok(await s.retrieve(reg('ec', 'calculateSignature')), 2000, 'ec Sgn'), 'senv:Sgn').Sgn);
      expect(ecdsaVerifies(kInf, short, ecSgn)).toBe(true);

      const et: Record<string, string> = {};
      // What the <sensitiveDataObject> holds and the <hash> hashed, as a restart must give them back.
      const held = { sdo: sdoData as Uint8Array, hashed: short as Uint8Array };
      const reopen = async () => {
        await engine.close();
        ({ engine, s, written } = await open(dir, compactAt));
        const got = async (rn: string, root: string) => body(ok(await s.retrieve(reg(rn)), 2000, `${rn} after the restart`), root);
        const c1 = await got('c1', 'senv:Cph');
        expect(Buffer.from(unb64(c1.cD)).equals(Buffer.from(cD)), 'c1 cD').toBe(true);
        expect(unb64((await got('c2', 'senv:Cph')).kDt), 'c2 kDt').toEqual(c2Key);
        expect(unb64((await got('c3', 'senv:Cph')).cD), 'c3 cD').toEqual(c3Cd);
        expect(Buffer.from(unb64((await got('sdo', 'senv:Sdo')).msg)).equals(held.sdo), 'sdo data').toBe(true);
        expect(unb64((await got('h', 'senv:Hsh')).Hv), 'Hv').toEqual(sha256(held.hashed));
        expect(unb64((await got('mac', 'senv:Sgn')).Sgn), 'HMAC Sgn').toEqual(hmac(macKey, short));
        const ec = await got('ec', 'senv:Sgn');
        expect([unb64(ec.kInf), unb64(ec.Sgn)], 'ec kInf and Sgn').toEqual([kInf, ecSgn]);
        for (const [rn, v] of Object.entries(et)) expect((await got(rn, rn === 'h' ? 'senv:Hsh' : rn === 'mac' || rn === 'ec' ? 'senv:Sgn' : 'senv:Cph')).et, `${rn}'s et`).toBe(`${v},000000`);
      };
      await reopen();
      const figures: string[] = [];
      const roots: Record<string, string> = { c1: 'senv:Cph', c2: 'senv:Cph', c3: 'senv:Cph', h: 'senv:Hsh', mac: 'senv:Sgn', ec: 'senv:Sgn', sdo: 'senv:Sdo' };
      for (const [i, rn] of Object.keys(roots).entries()) {
        const before = { ...written };
        // A <sensitiveDataObject> has no et: its acpi, the one attribute an UPDATE may set beside its data.
        const pc = rn === 'sdo' ? { acpi: [] } : { et: (et[rn] = `2099010${i + 1}T000000`) };
        ok(await s.update(reg(rn), { [roots[rn]!]: pc }), 2004, `${rn} UPDATE`);
        figures.push(`${rn}: ${written.journal - before.journal} bytes`);
        expect(written.journal - before.journal, `${rn}: journal bytes`).toBeLessThan(1024);
        expect(written.storeKey - before.storeKey, `${rn}: storeKey calls`).toBe(0);
        if (compactAt > 1) {
          const last = puts(dir).at(-1)!;
          expect([last.rn, last.keptSealed, last.sealed], `${rn}: the record keeps the sealed part`).toEqual([rn, true, undefined]);
        }
        await reopen();
      }
      expect(format(dir)).toBe(6);
      // What a snapshot holds is whole: every sealed part in place.
      await engine.close();
      ({ engine, s, written } = await open(dir, 1));
      ok(await s.update(reg('c1'), { 'senv:Cph': { et: (et.c1 = '20990201T000000') } }), 2004, 'a compaction');
      const snap = snapshotRecords(dir);
      expect(snap.some((r) => 'keptSealed' in r), 'no kept record in the snapshot').toBe(false);
      expect(snap.filter((r) => r.sealed !== undefined).map((r) => r.rn).sort()).toEqual(['c1', 'c2', 'c3', 'ec', 'h', 'mac', 'sdo']);
      await reopen();

      // Changes that do set a secret write it: a new message's result, new sensitive data, a key generated.
      await engine.close();
      ({ engine, s, written } = await open(dir, 1 << 30));
      const next = (held.hashed = nodeCrypto.randomBytes(300));
      ok(await s.update(reg('h'), { 'senv:Hsh': { msg: b64(next) } }), 2004, 'a new message');
      expect(unb64(body(ok(await s.retrieve(reg('h', 'calculateHash')), 2000, 'Hv'), 'senv:Hsh').Hv)).toEqual(sha256(next));
      const hv = puts(dir).at(-1)!;
      expect([hv.rn, hv.keptSealed, typeof hv.sealed], 'the new Hv written').toEqual(['h', undefined, 'string']);
      const sdoNext = (held.sdo = nodeCrypto.randomBytes(500));
      ok(await s.update(reg('sdo'), { 'senv:Sdo': { msg: b64(sdoNext) } }), 2004, 'sdo data replaced');
      expect(puts(dir).at(-1)!.keptSealed, 'the new data written').toBeUndefined();
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c4', Calg: 1001, mbs: 1024, kExp: true } }), 2001, 'c4');
      ok(await s.update(reg('c4'), { 'senv:Cph': { et: '20990301T000000' } }), 2004, 'c4 et, no secret yet');
      const bare = puts(dir).at(-1)!;
      expect([bare.keptSealed, bare.sealed], 'nothing sealed to keep').toEqual([undefined, undefined]);
      const storeKeys = written.storeKey;
      const c4Key = unb64(body(ok(await s.retrieve(reg('c4', 'generateKey')), 2000, 'c4 key'), 'senv:Cph').kDt);
      expect(written.storeKey - storeKeys, 'the new key stored once').toBe(1);
      expect(typeof puts(dir).at(-1)!.sealed, 'the new key written').toBe('string');
      ok(await s.update(reg('c4'), { 'senv:Cph': { et: '20990302T000000' } }), 2004, 'c4 et');
      expect(puts(dir).at(-1)!.keptSealed).toBe(true);
      await reopen();
      expect(unb64(body(ok(await s.retrieve(reg('h', 'calculateHash')), 2000, 'Hv'), 'senv:Hsh').Hv)).toEqual(sha256(next));
      expect(unb64(body(ok(await s.retrieve(reg('sdo')), 2000, 'sdo'), 'senv:Sdo').msg)).toEqual(new Uint8Array(sdoNext));
      expect(unb64(body(ok(await s.retrieve(reg('c4')), 2000, 'c4'), 'senv:Cph').kDt)).toEqual(c4Key);
      console.log(`journal written per change leaving the secrets (compactAt ${compactAt}):\n  ${figures.join('\n  ')}`);

      // A master key rotation of a directory whose journal holds kept records: every value under the new key.
      if (compactAt > 1) {
        ok(await s.update(reg('c1'), { 'senv:Cph': { et: (et.c1 = '20990401T000000') } }), 2004, 'c1 et');
        expect(puts(dir).filter((r) => r.keptSealed).length, 'kept records in the journal').toBeGreaterThan(0);
        const newKey = new Uint8Array(32).fill(12);
        await engine.rotateMasterKey({ masterKey: newKey });
        await engine.close();
        ({ engine, s } = await open(dir, 1 << 30, { masterKey: newKey }));
        expect(Buffer.from(unb64(body(ok(await s.retrieve(reg('c1')), 2000, 'c1'), 'senv:Cph').cD)).equals(Buffer.from(cD))).toBe(true);
        expect(unb64(body(ok(await s.retrieve(reg('c2')), 2000, 'c2'), 'senv:Cph').kDt)).toEqual(c2Key);
        expect(unb64(body(ok(await s.retrieve(reg('mac', 'calculateSignature')), 2000, 'Sgn'), 'senv:Sgn').Sgn)).toEqual(hmac(macKey, short));
        ok(await s.update(reg('c1'), { 'senv:Cph': { et: '20990402T000000' } }), 2004, 'et under the new key');
        expect(puts(dir).at(-1)!.keptSealed).toBe(true);
        await engine.close();
        ({ engine, s } = await open(dir, 1 << 30, { masterKey: newKey }));
        // The key given at CREATE, kept through every record: encrypting again gives node:crypto's ciphertext.
        ok(await s.update(reg('c1'), { 'senv:Cph': { msg: b64(short) } }), 2004, 'c1 new message');
        expect(unb64(body(ok(await s.retrieve(reg('c1', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD)).toEqual(gcm(aesKey, nonce).encrypt(short));
      }
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('on the PC/SC SE, whose card holds the keys and the sensitive data: an et or acpi UPDATE writes a record that keeps the sealed part and sends the card nothing, and after a restart the keys and the data still work', async () => {
    const dir = tempDir();
    // The senv virtual card in-process, no pcscd: each run's backend connects to the same card.
    const reader = new InProcessReader();
    try {
      let { engine, s, written } = await open(dir, 1 << 30, { backend: reader.backend() });
      await s.register();
      const aesKey = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(12), macKey = nodeCrypto.randomBytes(32);
      const message = nodeCrypto.randomBytes(2000), sdoData = nodeCrypto.randomBytes(3000);
      const aesGcm = (data: Uint8Array) => {
        const c = nodeCrypto.createCipheriv('aes-128-gcm', aesKey, nonce);
        return new Uint8Array(Buffer.concat([c.update(data), c.final(), c.getAuthTag()]));
      };
      const reg = (...p: string[]) => s.path('reg', ...p);
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 4096, kDt: b64(aesKey), msg: b64(message) } }), 2001, 'cipher');
      ok(await s.create(reg('c'), 20001, { 'senv:algP': { nc: b64(nonce) } }), 2001, 'nonce');
      expect(unb64(body(ok(await s.retrieve(reg('c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD)).toEqual(aesGcm(message));
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(macKey), msg: b64(message) } }), 2001, 'HMAC');
      expect(unb64(body(ok(await s.retrieve(reg('m', 'cSgn')), 2000, 'Sgn'), 'senv:Sgn').Sgn)).toEqual(hmac(macKey, message));
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'sdo', msg: b64(sdoData) } }), 2001, 'sdo');
      const card = () => ({ keys: [...reader.store.keys.keys()], objects: [...reader.store.objects.entries()].map(([n, v]) => [n, Buffer.from(v).toString('hex')]) });
      const held = card();
      expect([held.keys.length, held.objects.some(([, v]) => v === sdoData.toString('hex'))], 'two keys and the data on the card').toEqual([2, true]);

      const et = { c: '20990101T000000', m: '20990102T000000' };
      const changes: [string, string, Record<string, unknown>][] = [
        ['c', 'senv:Cph', { et: et.c }], ['sdo', 'senv:Sdo', { acpi: [] }], ['m', 'senv:Sgn', { et: et.m }], ['c', 'senv:Cph', { acpi: [] }], ['m', 'senv:Sgn', { acpi: [] }],
      ];
      for (const [rn, root, pc] of changes) {
        const before = { ...written, apdus: reader.sent.length };
        ok(await s.update(reg(rn), { [root]: pc }), 2004, `${rn} UPDATE of ${Object.keys(pc)[0]}`);
        expect([written.storeKey - before.storeKey, written.objects - before.objects, reader.sent.length - before.apdus], `${rn}: storeKey calls, data objects written, APDUs`).toEqual([0, 0, 0]);
        const last = puts(dir).at(-1)!;
        expect([last.rn, last.keptSealed, last.sealed], `${rn}: the record keeps the sealed part`).toEqual([rn, true, undefined]);
      }
      expect(card(), 'the card as it was').toEqual(held);
      await engine.close();
      expect(card(), 'a persisted engine leaves its keys and data on the card').toEqual(held);

      ({ engine, s } = await open(dir, 1 << 30, { backend: reader.backend() }));
      const c = body(ok(await s.retrieve(reg('c')), 2000, 'c after the restart'), 'senv:Cph');
      expect([unb64(c.cD), c.et, c.acpi], 'c: cD, et, acpi').toEqual([aesGcm(message), `${et.c},000000`, []]);
      const m = body(ok(await s.retrieve(reg('m')), 2000, 'm after the restart'), 'senv:Sgn');
      expect([unb64(m.Sgn), m.et], 'm: Sgn, et').toEqual([hmac(macKey, message), `${et.m},000000`]);
      expect(unb64(body(ok(await s.retrieve(reg('sdo')), 2000, 'sdo after the restart'), 'senv:Sdo').msg), 'the data read from the card').toEqual(new Uint8Array(sdoData));
      // The keys on the card, through the references the kept records carried: new results are node:crypto's.
      const next = nodeCrypto.randomBytes(500);
      ok(await s.update(reg('c'), { 'senv:Cph': { msg: b64(next) } }), 2004, 'c: a new message');
      expect(unb64(body(ok(await s.retrieve(reg('c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD), 'encrypted on the card again').toEqual(aesGcm(next));
      ok(await s.update(reg('m'), { 'senv:Sgn': { msg: b64(next) } }), 2004, 'm: a new message');
      expect(unb64(body(ok(await s.retrieve(reg('m', 'cSgn')), 2000, 'Sgn'), 'senv:Sgn').Sgn), 'MAC on the card again').toEqual(hmac(macKey, next));
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a store of another kind is told whether a put leaves every secret value as it was', async () => {
    const puts: [string, boolean | undefined][] = [];
    const engine = await McsEngine.create({
      store: {
        uniqueId: async () => 'u', load: async () => undefined, append: async () => undefined, remove: async () => undefined, close: async () => undefined,
        put: async (_, res) => void puts.push([res.rn, res.unchangedSecrets]),
      },
    });
    const s = new Session(engine, 'CAE1');
    await s.register();
    ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kExp: true } }), 2001, 'cipher');
    ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { et: '20990101T000000' } }), 2004, 'et');
    ok(await s.retrieve(s.path('reg', 'c', 'generateKey')), 2000, 'a new key');
    ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { acpi: [] } }), 2004, 'acpi');
    ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(new Uint8Array(10)) } }), 2001, 'sdo');
    ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: b64(new Uint8Array(20)) } }), 2004, 'new data');
    ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: null } }), 2004, 'data removed');
    expect(puts.filter(([rn]) => rn !== 'reg')).toEqual([['c', undefined], ['c', true], ['c', false], ['c', true], ['d', undefined], ['d', false], ['d', false]]);
    await engine.close();
  });

  it('a format 5 directory opens with every value, says format 6 without a snapshot, and keeps sealed parts from then on; a failed meta.json write leaves it format 5, the sealed part written again as it was', async () => {
    const dir = tempDir();
    const key = FORMAT5_KEY;
    const fixture = () => format5(dir);
    try {
      fixture();
      expect(format(dir)).toBe(5);
      const snapshot = readFileSync(join(dir, 'snapshot.json'));
      let { engine, s, written } = await open(dir, 1 << 30, { masterKey: key });
      expect(format(dir), 'upgraded at open').toBe(6);
      expect(readFileSync(join(dir, 'snapshot.json')).equals(snapshot), 'no snapshot written').toBe(true);
      const check = () => format5Values(s);
      const c2Key = await check();
      expect(c2Key.length).toBe(16);
      for (const rn of ['c1', 'c2']) ok(await s.update(s.path('reg', rn), { 'senv:Cph': { et: '20980101T000000' } }), 2004, `${rn} et`);
      expect(puts(dir).slice(-2).map((r) => [r.rn, r.keptSealed]), 'kept after the format 5 records').toEqual([['c1', true], ['c2', true]]);
      expect(written.storeKey).toBe(0);
      await engine.close();
      ({ engine, s } = await open(dir, 1 << 30, { masterKey: key }));
      expect(await check()).toEqual(c2Key);
      await engine.close();

      // meta.json cannot be written: format 5 goes on, and a change leaving the secrets writes the sealed part the state holds, not encoded again.
      fixture();
      const refused: Partial<Files> = { writeDurable: async () => Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })) };
      ({ engine, s, written } = await open(dir, 1 << 30, { masterKey: key, files: refused }));
      expect(format(dir), 'not upgraded').toBe(5);
      ok(await s.update(s.path('reg', 'c1'), { 'senv:Cph': { et: '20980102T000000' } }), 2004, 'c1 et');
      const [before, last] = puts(dir).filter((r) => r.rn === 'c1').slice(-2);
      expect(last!.keptSealed, 'nothing kept').toBeUndefined();
      expect(last!.sealed, 'the sealed part of the record before, as it was').toBe(before!.sealed);
      expect(written.storeKey).toBe(0);
      await engine.close();
      ({ engine, s } = await open(dir, 1 << 30, { masterKey: key }));
      expect(format(dir), 'upgraded by the next open').toBe(6);
      expect(await check()).toEqual(c2Key);
      await engine.close();

      // Only meta.json refused: compactions still cut the journal, so a clean close leaves no deleted key in it.
      fixture();
      const real = await openFiles();
      const metaRefused: Partial<Files> = {
        writeDurable: async (path, bytes) => path.endsWith('/meta.json.tmp') ? Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })) : real.writeDurable(path, bytes),
      };
      ({ engine, s } = await open(dir, 1 << 30, { masterKey: key, files: metaRefused }));
      ok(await s.delete(s.path('reg', 's1')), 2002, 'delete s1');
      await engine.close();
      expect([format(dir), statSync(join(dir, 'journal.log')).size], 'format 5, the journal emptied by the compaction at close').toEqual([5, 0]);
      ({ engine, s } = await open(dir, 1 << 30, { masterKey: key }));
      ok(await s.retrieve(s.path('reg', 'c1')), 2000, 'c1 after');
      expect((await s.retrieve(s.path('reg', 's1'))).rsc, 's1 stays deleted').toBe(4004);
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a format 5 directory opened by Deno, its permissions narrowed to it: format 6 without a snapshot, a change keeps the sealed part, and rotated there, Node opens it with every value under the new key', async () => {
    const dir = tempDir();
    const hex = (k: Uint8Array) => Buffer.from(k).toString('hex');
    const next = new Uint8Array(32).fill(0x6f);
    try {
      format5(dir);
      const snapshot = readFileSync(join(dir, 'snapshot.json'));
      // Ended without close(): the journal stays as the open and the UPDATE left it (the lock, Deno's, is taken over below).
      expect(await runSteps('deno', dir, [`open:hex:${hex(FORMAT5_KEY)}`, 'acpi:sdo'])).toEqual([`ok open:hex:${hex(FORMAT5_KEY)}`, 'ok acpi:sdo 2004']);
      expect(format(dir), 'upgraded at open').toBe(6);
      expect(readFileSync(join(dir, 'snapshot.json')).equals(snapshot), 'no snapshot written').toBe(true);
      expect(puts(dir).slice(-1).map((r) => [r.rn, r.keptSealed, r.sealed]), 'kept by Deno\'s record').toEqual([['sdo', true, undefined]]);
      expect(await runSteps('deno', dir, [`open:hex:${hex(FORMAT5_KEY)}`, 'acpi:sdo', `rotate:hex:${hex(next)}`, 'acpi:sdo', 'close'])).toEqual([
        `ok open:hex:${hex(FORMAT5_KEY)}`, 'ok acpi:sdo 2004', `ok rotate:hex:${hex(next)}`, 'ok acpi:sdo 2004', 'ok close',
      ]);
      await expect(McsEngine.create({ dataDir: dir, masterKey: FORMAT5_KEY })).rejects.toThrow(/master key does not open/);
      const { engine, s } = await open(dir, 1 << 30, { masterKey: next });
      expect((await format5Values(s)).length).toBe(16);
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A backend written from the published contract by someone else (backend.ts, docs/mcs.md "Writing a
// backend"): the engine takes a backend's results over as handed, refuses results that break
// the contract (5000, named, nothing kept), survives a stream's abort() that throws, checks the
// description and capabilities at create, and lets one engine at a time use a backend instance.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as nc from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AuthenticationError, DeviceFullError, InvalidInputError, InvalidValueError, LengthError, markKeyHandle, McsEngine, PaddingError, SoftwareBackend, StateError, UnknownAlgorithmError,
  type DigestStream, type HashAlgorithm, type KeyHandle, type KeyKind, type KeySpec, type ObjectStore, type RngType, type SignatureAlgorithm, type SignatureOptions, type SignatureStream, type StoredKey,
} from '../../src/index.ts';

type Patch = (b: SoftwareBackend) => void;

let rqi = 0;

/** An engine over one software SE patched as a third party's backend would behave, with C1 registered. */
async function setup(patch: Patch = () => {}) {
  const be = new SoftwareBackend();
  patch(be);
  const engine = await McsEngine.create({ backends: [be] });
  const [seId] = engine.seIds as [string];
  const send = (r: Record<string, unknown>, binary = true) => engine.send({ rqi: String(++rqi), fr: 'C1', ...r }, { binary });
  const reg = await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 1 } } });
  expect(reg.rsc).toBe(2001);
  return { be, engine, seId, send };
}

const pc = (r: { pc?: unknown }, root: string) => (r.pc as Record<string, Record<string, unknown>>)[root]!;
const dbg = (r: { pc?: unknown }) => (r.pc as Record<string, unknown>)['m2m:dbg'];
const hex = (v: unknown) => Buffer.from(v as Uint8Array).toString('hex');
const sha256 = (m: string) => nc.createHash('sha256').update(m).digest('hex');

function patchDigest(b: SoftwareBackend, final: (s: DigestStream, last?: Uint8Array) => unknown): void {
  const orig = b.digest.bind(b);
  b.digest = (a: HashAlgorithm) => {
    const s = orig(a) as DigestStream;
    return { update: (d) => s.update(d), final: (last) => final(s, last) as Uint8Array, abort: () => s.abort() };
  };
}

function patchSignature(b: SoftwareBackend, m: Partial<SignatureStream>): void {
  const orig = b.signature.bind(b);
  b.signature = (a: SignatureAlgorithm, k: KeyHandle, o: SignatureOptions) => ({ ...(orig(a, k, o) as SignatureStream), ...m });
}

const gcm = (key: Uint8Array, nonce: Uint8Array, m: Uint8Array) => {
  const c = nc.createCipheriv('aes-128-gcm', key, nonce);
  return Buffer.concat([c.update(m), c.final(), c.getAuthTag()]).toString('hex');
};

describe('a third-party backend', () => {
  it('1: a result is taken over as handed, checked and not copied (the contract asks for a fresh array: docs/mcs.md says a reused view breaks it), and zeroized once the resource lets it go; close() reaches the backend', async () => {
    const digests: Uint8Array[] = [];
    const { be, engine, seId, send } = await setup((b) => {
      patchDigest(b, async (s, last) => {
        const d = (await s.final(last)) as Uint8Array;
        digests.push(d);
        return d;
      });
    });
    let closed = 0;
    const close = be.close.bind(be);
    be.close = () => (closed++, close());
    await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'a', Halg: 4, msg: Buffer.from('abc') } } });
    expect(hex(pc(await send({ op: 2, to: `${seId}/r/a/cHsh` }), 'senv:Hsh').Hv)).toBe(sha256('abc'));
    // Kept as it was handed: the backend's array is the resource's value until the next result replaces it.
    expect(hex(digests[0])).toBe(sha256('abc'));
    await send({ op: 3, to: `${seId}/r/a`, pc: { 'senv:Hsh': { msg: Buffer.from('xyz') } } });
    expect(hex(pc(await send({ op: 2, to: `${seId}/r/a/cHsh` }), 'senv:Hsh').Hv)).toBe(sha256('xyz'));
    expect(digests[0]!.every((x) => x === 0), 'the replaced digest zeroized').toBe(true);
    expect(hex(digests[1])).toBe(sha256('xyz'));
    expect((await send({ op: 4, to: `${seId}/r/a` })).rsc).toBe(2002);
    expect(digests[1]!.every((x) => x === 0), 'the deleted resource\'s digest zeroized').toBe(true);
    const doc = readFileSync(new URL('../../docs/mcs.md', import.meta.url), 'utf8');
    expect(doc).toMatch(/a view of memory the backend reuses\s+\(a WASM library's memory, a random pool\) breaks the contract/);
    expect((await send({ op: 4, to: seId })).rsc).toBe(2002);
    await expect(engine.close()).resolves.toBeUndefined();
    expect(closed).toBe(1);
  });

  it('2: the contract says arguments are lent and results handed over, and the engine zeroizes the exported key it was handed', async () => {
    const src = readFileSync(new URL('../../src/backends/backend.ts', import.meta.url), 'utf8');
    const doc = (member: string) => src.slice(0, src.indexOf(member)).split('/**').pop()!;
    expect(doc('importKey(spec')).toMatch(/lent/);
    expect(doc('importKey(spec')).toMatch(/cop(y|ies)/);
    expect(doc('exportKey(key')).toMatch(/handed over/i);
    expect(src).toMatch(/Arguments are lent/);
    expect(doc('write(id: string')).toMatch(/lent/);
    expect(doc('read(id: string')).toMatch(/handed over: a fresh array of exactly `length` bytes/);
    expect(doc('storeKey(key')).toMatch(/keyStorage 'host' its material[\s\S]*'device' a reference/);
    expect(doc('loadKey(spec')).toMatch(/fails the create/);
    expect(readFileSync(new URL('../../docs/mcs.md', import.meta.url), 'utf8')).toMatch(/\*\*Stored keys\*\*[\s\S]*`loadKey` runs in `McsEngine.create`[\s\S]*\*\*An `objectStore`\*\*[\s\S]*is lent[\s\S]*hands over a fresh array/);
    expect(readFileSync(new URL('../../docs/mcs.md', import.meta.url), 'utf8')).toMatch(/### Writing a backend[\s\S]*lent[\s\S]*handed over/);
    // A backend that follows it (copies the material, hands over a fresh export) encrypts under the real key.
    const exported: Uint8Array[] = [];
    const { engine, seId, send } = await setup((b) => {
      const exp = b.exportKey.bind(b);
      b.exportKey = async (k: KeyHandle) => {
        const out = await exp(k);
        exported.push(out);
        return out;
      };
    });
    await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'g', Calg: 1001, mbs: 100, kExp: true } } });
    const nonce = nc.randomBytes(12), m = Buffer.from('attack at dawn');
    await send({ op: 1, to: `${seId}/r/g`, ty: 20001, pc: { 'senv:algP': { nc: nonce } } });
    const key = pc(await send({ op: 2, to: `${seId}/r/g/gnK` }), 'senv:Cph').kDt as Uint8Array;
    expect(exported.length).toBe(1);
    expect(exported[0]!.every((x) => x === 0)).toBe(true);
    await send({ op: 3, to: `${seId}/r/g`, pc: { 'senv:Cph': { msg: m } } });
    expect(hex(pc(await send({ op: 2, to: `${seId}/r/g/Enc` }), 'senv:Cph').cD)).toBe(gcm(key, nonce, m));
    await engine.close();
  });

  it('3: a stream whose abort() throws, or a result detached after it was given, never half-removes a registration, and close() reaches the backend', async () => {
    let closed = 0;
    const { be, engine, seId, send } = await setup((b) => {
      b.capabilities.preferredBatchSize = 4;
      const orig = b.digest.bind(b);
      b.digest = (a: HashAlgorithm) => {
        const s = orig(a) as DigestStream;
        return {
          update: (d) => s.update(d),
          final: async (last) => {
            const d = (await s.final(last)) as Uint8Array;
            // Later, once the engine has it (a worker that pools or logs it).
            setTimeout(() => structuredClone(d.buffer, { transfer: [d.buffer] }), 0);
            return d;
          },
          abort: () => {
            s.abort();
            throw new Error('device busy');
          },
        };
      };
    });
    const close = be.close.bind(be);
    be.close = () => (closed++, close());
    const key = new Uint8Array(16).fill(7);
    await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: key.slice() } } });
    await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'd', Halg: 4, msg: Buffer.from('abc') } } });
    expect(hex(pc(await send({ op: 2, to: `${seId}/r/d/cHsh` }), 'senv:Hsh').Hv)).toBe(sha256('abc'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } });
    expect((await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: new Uint8Array(8) } } })).rsc).toBe(2004);
    expect((await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: null } } })).rsc).toBe(2004);
    // The digest the backend detached after handing it over (a breach: results are handed over) reads
    // as what is left of it; the resource and the registration stay whole.
    expect((await send({ op: 2, to: `${seId}/r/d` }, false)).rsc).toBe(2000);
    // A stream open again (8 bytes, batch 4) when the registration goes.
    await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: new Uint8Array(8) } } });
    expect((await send({ op: 4, to: seId })).rsc).toBe(2002);
    expect((await send({ op: 2, to: `${seId}/r/c` })).rsc).toBe(4106);
    // The cipher's key went with it: re-registered, nothing of the old tree is reachable.
    expect((await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 1 } } })).rsc).toBe(2001);
    expect((await send({ op: 2, to: `${seId}/r/c` })).rsc).toBe(4004);
    await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } });
    await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: new Uint8Array(8) } } });
    await expect(engine.close()).resolves.toBeUndefined();
    expect(closed).toBe(1);
  });

  it('3: a backend close() that throws a plain error: every backend is still closed, and close() rejects with a StateError naming the SE', async () => {
    const a = new SoftwareBackend(), b = new SoftwareBackend();
    let bClosed = 0;
    a.close = async () => {
      throw new TypeError('Cannot perform %TypedArray%.prototype.fill on a detached ArrayBuffer');
    };
    const close = b.close.bind(b);
    b.close = () => (bClosed++, close());
    const engine = await McsEngine.create({ backends: [a, b] });
    const err = await engine.close().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StateError);
    expect((err as Error).message).toContain(`SE ${engine.seIds[0]}: its backend's close() failed (TypeError: Cannot perform`);
    expect(bClosed).toBe(1);
  });

  it('4: a key handle not made with markKeyHandle is released and answered 5000, never kept or shown', async () => {
    const released: unknown[] = [];
    const { engine, seId, send } = await setup((b) => {
      b.importKey = async (spec: KeySpec, kind: KeyKind, material: Uint8Array) => ({ spec, kind, size: material.length, material: material.slice(), label: 'hsm-slot-3' });
      const rel = b.releaseKey.bind(b);
      b.releaseKey = (k: KeyHandle) => {
        released.push(k);
        rel(k);
      };
    });
    const r = await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: new Uint8Array(16).fill(0xab) } } });
    expect(r.rsc).toBe(5000);
    expect(dbg(r)).toMatch(/^internal error \(backend gave a key handle not made with markKeyHandle/);
    expect(JSON.stringify(r)).not.toContain('hsm-slot-3');
    expect(released.length).toBe(1);
    expect((await send({ op: 2, to: `${seId}/r/c` }, false)).rsc).toBe(4004);
    await engine.close();
  });

  it('4: a marked key handle of a size that is no byte count is deleted (a device would keep it in a slot nothing names) and answered 5000; the quota stays whole', async () => {
    for (const size of [-1e6, '16', NaN]) {
      const deleted: KeyHandle[] = [];
      let given: KeyHandle | undefined;
      const { engine, seId, send } = await setup((b) => {
        const imp = b.importKey.bind(b);
        b.importKey = async (s: KeySpec, k: KeyKind, m: Uint8Array) => {
          const h = await imp(s, k, m);
          return (given = markKeyHandle(Object.assign(Object.create(h) as KeyHandle, { size })));
        };
        (b as { deleteKey?: (k: KeyHandle) => void }).deleteKey = (k) => void deleted.push(k);
      });
      const before = pc(await send({ op: 2, to: `${seId}/r/memory` }), 'm2m:mem');
      const r = await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32) } } });
      expect(r.rsc).toBe(5000);
      expect(dbg(r)).toMatch(/^internal error \(backend gave a key whose size is /);
      expect(deleted).toEqual([given]);
      expect(pc(await send({ op: 2, to: `${seId}/r/memory` }), 'm2m:mem')).toEqual(before);
      // A 1 MiB object does not fit in a quota of 1 MiB less what the registration takes.
      const big = await send({ op: 1, to: `${seId}/r`, ty: 20009, pc: { 'senv:Sdo': { msg: new Uint8Array(Number(before.mma) + 1) } } });
      expect(big.rsc).toBe(5207);
      await engine.close();
    }
  });

  it('5: the published error contract is what the engine does (docs/mcs.md table, each class thrown by sign)', async () => {
    const doc = readFileSync(new URL('../../docs/mcs.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\s*\| `(\w+)` \| (\d{4}) \|/gm)].map((m) => [m[1]!, Number(m[2])] as const);
    const classes: Record<string, new (m: string) => Error> = { AuthenticationError, PaddingError, LengthError, InvalidValueError, StateError, UnknownAlgorithmError, DeviceFullError };
    expect(rows.map(([n]) => n).sort()).toEqual(Object.keys(classes).sort());
    expect(doc).toMatch(/messages must not\s+carry\s+key\s+or\s+data\s+bytes/i);
    for (const [name, rsc] of rows) {
      const { engine, seId, send } = await setup((b) => patchSignature(b, { sign: async () => { throw new classes[name]!('slot 3'); } }));
      await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array(1) } } });
      expect((await send({ op: 2, to: `${seId}/r/s/cSgn` })).rsc, name).toBe(rsc);
      await engine.close();
    }
    const { engine, seId, send } = await setup((b) => patchSignature(b, { sign: async () => { throw new Error('HSM said: key 00112233'); } }));
    await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array(1) } } });
    const r = await send({ op: 2, to: `${seId}/r/s/cSgn` });
    expect([r.rsc, dbg(r)]).toEqual([5000, 'internal error (internal error)']);
    await engine.close();
  });

  it('6: description, capabilities and memory figures outside their tables are refused at create, naming the backend and the field', async () => {
    const cases: [string, Patch][] = [
      ['description.seType', (b) => void ((b.description as { seType: unknown }).seType = '4/x')],
      ['description.seType', (b) => void ((b.description as { seType: unknown }).seType = 9)],
      ['description.seType', (b) => void delete (b.description as { seType?: unknown }).seType],
      ['description.securityLevel', (b) => void ((b.description as { securityLevel: unknown }).securityLevel = 7)],
      ['capabilities.keyStorage', (b) => void ((b.capabilities as { keyStorage: unknown }).keyStorage = 'cloud')],
      ['capabilities.preferredBatchSize', (b) => void ((b.capabilities as { preferredBatchSize: unknown }).preferredBatchSize = -1)],
      ['capabilities.maxRandomLength', (b) => void ((b.capabilities as { maxRandomLength: unknown }).maxRandomLength = 'big')],
      ['capabilities.rngTypes', (b) => void ((b.capabilities as { rngTypes: unknown }).rngTypes = [3])],
      ['memoryInfo()', (b) => void (b.memoryInfo = async () => ({ total: '1M' as unknown as number, available: 5 }))],
      ['memoryInfo()', (b) => void (b.memoryInfo = async () => ({ total: -5, available: 5 }))],
      // Read by every registration and [deviceInfo]: refused at create, not as every <SE> CREATE's 5000.
      ['description.rngSources', (b) => void delete (b.description as { rngSources?: unknown }).rngSources],
      ['description.rngSources[2]', (b) => void ((b.description as { rngSources: Record<number, unknown> }).rngSources = { 1: 'a DRBG' })],
      ['description.manufacturer', (b) => void ((b.description as { manufacturer: unknown }).manufacturer = 42)],
      ['description.firmwareVersion', (b) => void ((b.description as { firmwareVersion: unknown }).firmwareVersion = { x: 1 })],
      ['description.hardwareVersion', (b) => void ((b.description as { hardwareVersion: unknown }).hardwareVersion = 7)],
    ];
    for (const [field, patch] of cases) {
      const b = new SoftwareBackend({ uniqueId: 'third-party' });
      patch(b);
      const err = await McsEngine.create({ backends: [b] }).then(async (e) => (await e.close(), undefined), (e: unknown) => e);
      expect(err, field).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toContain(`SE backend 'third-party': ${field}`);
      // A failed create leaves the backend for a retry.
      await b.close();
    }
    const none = new SoftwareBackend({ uniqueId: 'third-party' });
    Object.defineProperty(none, 'description', { value: undefined });
    await expect(McsEngine.create({ backends: [none] })).rejects.toThrow(new InvalidInputError('the description of SE backend 1 must be an object, got undefined'));
    // On a device SE the figures are asked at RETRIEVE [memory]: 5000, not "NaN available".
    const { engine, seId, send } = await setup((b) => {
      b.capabilities.keyStorage = 'device';
      b.memoryInfo = async () => ({ total: '1M' as unknown as number, available: 5 });
    });
    const r = await send({ op: 2, to: `${seId}/r/memory` });
    expect([r.rsc, dbg(r)]).toEqual([5000, 'internal error (backend gave memory figures that are not two non-negative integers (total a string of 2 characters, available 5))']);
    await engine.close();
  });

  it('7: results of the wrong type or length answer 5000 naming what was wrong, and nothing is kept', async () => {
    const hashCases: [unknown, string][] = [
      [new Uint8Array(31), 'a digest of 31 bytes, 32 expected'],
      ['abc', 'a digest that is a string of 3 characters, a Uint8Array expected'],
      [42, 'a digest that is 42, a Uint8Array expected'],
      [[1, 2, 3], 'a digest that is a value of type array, a Uint8Array expected'],
      [new Float64Array(4), 'a digest that is a value of type Float64Array, a Uint8Array expected'],
      [(() => { const a = new Uint8Array(32); structuredClone(a.buffer, { transfer: [a.buffer] }); return a; })(), 'a digest that is a view of a detached or shrunk buffer'],
    ];
    for (const [v, what] of hashCases) {
      const { engine, seId, send } = await setup((b) => patchDigest(b, async () => v));
      await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4, msg: new Uint8Array([1]) } } });
      const r = await send({ op: 2, to: `${seId}/r/h/cHsh` });
      expect([r.rsc, dbg(r)]).toEqual([5000, `internal error (backend gave ${what})`]);
      expect(pc(await send({ op: 2, to: `${seId}/r/h` }, false), 'senv:Hsh').Hv).toBeUndefined();
      await engine.close();
    }
    {
      const { engine, seId, send } = await setup((b) => void (b.random = async () => new Uint8Array(3)));
      await send({ op: 1, to: `${seId}/r`, ty: 20007, pc: { 'senv:Rnd': { rn: 'x', rgT: 2, Dsz: 10 } } });
      const r = await send({ op: 2, to: `${seId}/r/x/gnR` });
      expect([r.rsc, dbg(r)]).toEqual([5000, 'internal error (backend gave random bytes of 3 bytes, 10 expected)']);
      expect(pc(await send({ op: 2, to: `${seId}/r/x` }, false), 'senv:Rnd').rndD).toBeUndefined();
      await engine.close();
    }
    for (const v of ['false', 1, undefined]) {
      const { engine, seId, send } = await setup((b) => patchSignature(b, { verify: async () => v as unknown as boolean }));
      await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array([1]), Sgn: new Uint8Array(32) } } });
      const r = await send({ op: 2, to: `${seId}/r/s/vSgn` });
      expect(r.rsc).toBe(5000);
      expect(dbg(r)).toMatch(/^internal error \(backend gave a verification result that is .*, a boolean expected\)$/);
      expect(pc(await send({ op: 2, to: `${seId}/r/s` }, false), 'senv:Sgn').vR).toBeUndefined();
      await engine.close();
    }
    {
      const { engine, seId, send } = await setup((b) => patchSignature(b, { sign: async () => 'sig' as unknown as Uint8Array }));
      await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array([1]) } } });
      const r = await send({ op: 2, to: `${seId}/r/s/cSgn` });
      expect([r.rsc, dbg(r)]).toEqual([5000, 'internal error (backend gave a signature that is a string of 3 characters, a Uint8Array expected)']);
      expect(pc(await send({ op: 2, to: `${seId}/r/s` }, false), 'senv:Sgn').Sgn).toBeUndefined();
      await engine.close();
    }
    // A DER ECDSA signature of a length within the curve's bounds but no ECDSA-Sig-Value: clients parse it strictly.
    for (const junk of [new Uint8Array(70).fill(0xaa), Uint8Array.of(0x30, 6, 2, 1, 0x80, 2, 1, 1)]) {
      const { engine, seId, send } = await setup((b) => patchSignature(b, { sign: async () => junk.slice() }));
      await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 'e', Salg: 33 } } });
      expect((await send({ op: 2, to: `${seId}/r/e/gnK` })).rsc).toBe(2000);
      await send({ op: 3, to: `${seId}/r/e`, pc: { 'senv:Sgn': { msg: new Uint8Array([1]) } } });
      const r = await send({ op: 2, to: `${seId}/r/e/cSgn` });
      expect([r.rsc, dbg(r)]).toEqual([5000, 'internal error (backend gave a signature that is no DER ECDSA-Sig-Value of the curve)']);
      expect(pc(await send({ op: 2, to: `${seId}/r/e` }, false), 'senv:Sgn').Sgn).toBeUndefined();
      await engine.close();
    }
  });

  it('8: a backend instance serves one open engine at a time; once it closed, or its create failed, another may use it', async () => {
    const be = new SoftwareBackend();
    let opened = 0;
    const open = be.open.bind(be);
    be.open = () => (opened++, open());
    const a = await McsEngine.create({ backends: [be] });
    const err = await McsEngine.create({ backends: [be] }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toMatch(/SE backend 1 \('[0-9a-f]+'\) is used by another open McsEngine/);
    const twice = new SoftwareBackend();
    await expect(McsEngine.create({ backends: [twice, twice] })).rejects.toThrow(/SE backend 2 \('[0-9a-f]+'\) is given twice/);
    expect(opened).toBe(1);
    // A failed create gives the backend back: a retry (here after the other engine closed) may use it.
    const flaky = new SoftwareBackend();
    flaky.open = async () => { throw new StateError('reader not ready'); };
    await a.close();
    await expect(McsEngine.create({ backends: [be, flaky] })).rejects.toThrow('reader not ready');
    const again = await McsEngine.create({ backends: [be] });
    expect(again.seIds).toEqual(a.seIds);
    await again.close();
  });

  const MASTER = new Uint8Array(32).fill(5);
  /** A data directory for `run`, removed after it. */
  const withDir = async (run: (dir: string) => Promise<void>) => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-third-party-'));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const detached = (n: number) => {
    const a = new Uint8Array(n).fill(1);
    structuredClone(a.buffer, { transfer: [a.buffer] });
    return a;
  };

  it('9: a stored key that loadKey or the next open could not read answers 5000 naming it, is written nowhere, and the directory opens again', async () => {
    const cases: [(m: Uint8Array) => unknown, string][] = [
      [() => null, 'a stored key that is null, an object expected'],
      [() => undefined, 'a stored key that is undefined, an object expected'],
      [(m) => ({ form: 'other', kind: 'secret', bytes: m }), "a stored key of form a string of 5 characters, 'material' or 'reference' expected"],
      [(m) => ({ form: 'material', kind: 'x', bytes: m }), "a stored key of kind a string of 1 character, 'secret' or 'public' expected"],
      [() => ({ form: 'reference', kind: 'secret', ref: 42 }), 'a stored key reference that is 42, a non-empty string expected'],
      [(m) => ({ form: 'material', kind: 'public', bytes: m }), "a stored key of kind 'public' for a key of another kind"],
      [() => ({ form: 'reference', kind: 'secret', ref: 'slot-3' }), "a stored key of form 'reference', 'material' expected (keyStorage 'host')"],
      [() => ({ form: 'material', kind: 'secret', bytes: [1, 2, 3] }), "a stored key's material that is a value of type array, a Uint8Array expected"],
      [() => ({ form: 'material', kind: 'secret', bytes: 'abababab' }), "a stored key's material that is a string of 8 characters, a Uint8Array expected"],
      [() => ({ form: 'material', kind: 'secret', bytes: detached(16) }), "a stored key's material that is a view of a detached or shrunk buffer"],
      [() => ({ form: 'material', kind: 'secret', bytes: new Uint8Array(5).fill(1) }), "a stored key's material of 5 bytes, 16 bytes expected"],
      [() => ({ form: 'material', kind: 'secret', bytes: new Uint8Array(0) }), "a stored key's material of 0 bytes, 16 bytes expected"],
    ];
    const key = new Uint8Array(16).fill(0xab);
    for (const [give, what] of cases) {
      await withDir(async (dir) => {
        const be = new SoftwareBackend({ uniqueId: 'third-party' });
        const handed: unknown[] = [];
        const store = be.storeKey.bind(be);
        be.storeKey = async (k: KeyHandle) => {
          const good = await store(k);
          const v = give((good as { bytes: Uint8Array }).bytes);
          handed.push(v);
          return v as StoredKey;
        };
        const engine = await McsEngine.create({ backends: [be], dataDir: dir, masterKey: MASTER.slice() });
        const [seId] = engine.seIds as [string];
        const send = (r: Record<string, unknown>) => engine.send({ rqi: String(++rqi), fr: 'C1', ...r }, { binary: true });
        expect((await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 1 } } })).rsc).toBe(2001);
        const r = await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: key.slice() } } });
        expect([r.rsc, dbg(r)], what).toEqual([5000, `internal error (backend gave ${what})`]);
        expect((await send({ op: 2, to: `${seId}/r/c` })).rsc, what).toBe(4004);
        const material = (handed[0] as { bytes?: unknown } | null)?.bytes;
        if (material instanceof Uint8Array && material.buffer.byteLength > 0) expect(material.every((x) => x === 0), `${what}: refused material zeroized`).toBe(true);
        await engine.close();
        // Nothing of it was written: the directory opens, with the registration and without the cipher.
        const again = await McsEngine.create({ backends: [new SoftwareBackend({ uniqueId: 'third-party' })], dataDir: dir, masterKey: MASTER.slice() });
        expect((await again.send({ rqi: 'x', fr: 'C1', op: 2, to: `${seId}/r/c` })).rsc, what).toBe(4004);
        expect((await again.send({ rqi: 'y', fr: 'C1', op: 2, to: `${seId}/r` })).rsc, what).toBe(2000);
        await again.close();
      });
    }
  });

  it('9: a device SE whose storeKey gives material (or a reference of no text) is refused alike; one that follows the contract is kept', async () => {
    await withDir(async (dir) => {
      const be = new SoftwareBackend({ uniqueId: 'device' });
      be.capabilities.keyStorage = 'device';
      let give: (k: KeyHandle) => StoredKey = () => ({ form: 'material', kind: 'secret', bytes: new Uint8Array(16) });
      be.storeKey = async (k: KeyHandle) => give(k);
      const engine = await McsEngine.create({ backends: [be], dataDir: dir, masterKey: MASTER.slice() });
      const [seId] = engine.seIds as [string];
      const send = (r: Record<string, unknown>) => engine.send({ rqi: String(++rqi), fr: 'C1', ...r }, { binary: true });
      await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 1 } } });
      const cph = (rn: string) => send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn, Calg: 1001, mbs: 100, kDt: new Uint8Array(16).fill(1) } } });
      const r = await cph('a');
      expect([r.rsc, dbg(r)]).toEqual([5000, "internal error (backend gave a stored key of form 'material', 'reference' expected (keyStorage 'device'))"]);
      give = (k) => ({ form: 'reference', kind: k.kind, ref: '' });
      expect(dbg(await cph('b'))).toBe('internal error (backend gave a stored key reference that is a string of 0 characters, a non-empty string expected)');
      give = (k) => ({ form: 'reference', kind: k.kind, ref: 'slot-3' });
      expect((await cph('c')).rsc).toBe(2001);
      await engine.close();
    });
  });

  it('10: what loadKey throws at open fails McsEngine.create as it is, a TypeError of its own too (no damaged directory); a handle it gives that is no key names the SE', async () => {
    await withDir(async (dir) => {
      const first = await McsEngine.create({ backends: [new SoftwareBackend({ uniqueId: 'third-party' })], dataDir: dir, masterKey: MASTER.slice() });
      const [seId] = first.seIds as [string];
      const send = (r: Record<string, unknown>) => first.send({ rqi: String(++rqi), fr: 'C1', ...r }, { binary: true });
      await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 1 } } });
      expect((await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: new Uint8Array(16).fill(1) } } })).rsc).toBe(2001);
      await first.close();
      const thrown = [new TypeError('Invalid key length'), new RangeError('offset out of range'), new StateError('card gone')];
      for (const e of thrown) {
        const be = new SoftwareBackend({ uniqueId: 'third-party' });
        be.loadKey = async () => { throw e; };
        await expect(McsEngine.create({ backends: [be], dataDir: dir, masterKey: MASTER.slice() }), e.name).rejects.toBe(e);
      }
      const released: unknown[] = [];
      const gives: [(spec: KeySpec, s: StoredKey) => unknown, string][] = [
        [() => undefined, 'a key handle not made with markKeyHandle (undefined)'],
        [(spec, s) => ({ spec, kind: s.kind, size: 16 }), 'a key handle not made with markKeyHandle (a value of type Object)'],
        [(spec, s) => markKeyHandle({ spec, kind: s.kind, size: -1 }), 'a key whose size is -1, a non-negative integer expected'],
      ];
      for (const [give, what] of gives) {
        const be = new SoftwareBackend({ uniqueId: 'third-party' });
        be.loadKey = async (spec, s) => give(spec, s) as KeyHandle;
        be.releaseKey = (k) => void released.push(k);
        const err = await McsEngine.create({ backends: [be], dataDir: dir, masterKey: MASTER.slice() }).then(() => undefined, (x: unknown) => x);
        expect(err, what).toBeInstanceOf(InvalidInputError);
        expect((err as Error).message).toBe(`SE backend 'third-party': loadKey() gave ${what}`);
      }
      expect(released.length).toBe(3);
      // The directory is as it was: a backend that loads opens it.
      const again = await McsEngine.create({ backends: [new SoftwareBackend({ uniqueId: 'third-party' })], dataDir: dir, masterKey: MASTER.slice() });
      expect((await again.send({ rqi: 'z', fr: 'C1', op: 2, to: `${seId}/r/c` })).rsc).toBe(2000);
      await again.close();
    });
  });

  it('11: an objectStore read of the wrong type or length answers 5000 naming it, and a refused array is zeroized', async () => {
    const held = new Map<string, Uint8Array>();
    let read: ObjectStore['read'] = async (id) => held.get(id)!.slice();
    const cases: [() => unknown, string][] = [
      [() => new Uint8Array(3).fill(7), 'sensitive data of 3 bytes, 8 expected'],
      [() => new Uint8Array(20).fill(7), 'sensitive data of 20 bytes, 8 expected'],
      [() => new Uint16Array(8), 'sensitive data that is a value of type Uint16Array, a Uint8Array expected'],
      [() => 'deadbeef', 'sensitive data that is a string of 8 characters, a Uint8Array expected'],
      [() => undefined, 'sensitive data that is undefined, a Uint8Array expected'],
      [() => detached(8), 'sensitive data that is a view of a detached or shrunk buffer'],
    ];
    const { engine, seId, send } = await setup((b) => {
      b.capabilities.keyStorage = 'device';
      (b as { objectStore?: ObjectStore }).objectStore = {
        write: async (id, data) => void held.set(id, data.slice()),
        read: (id, length) => read(id, length),
        remove: async (id) => void held.delete(id),
      };
    });
    expect((await send({ op: 1, to: `${seId}/r`, ty: 20009, pc: { 'senv:Sdo': { rn: 'o', msg: new Uint8Array([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]) } } })).rsc).toBe(2001);
    for (const [give, what] of cases) {
      const v = give();
      read = async () => v as Uint8Array;
      for (const binary of [true, false]) {
        const r = await send({ op: 2, to: `${seId}/r/o` }, binary);
        expect([r.rsc, dbg(r)], what).toEqual([5000, `internal error (backend gave ${what})`]);
      }
      if (v instanceof Uint8Array && v.buffer.byteLength > 0) expect(v.every((x) => x === 0), `${what}: zeroized`).toBe(true);
    }
    read = async (id) => held.get(id)!.slice();
    expect(hex(pc(await send({ op: 2, to: `${seId}/r/o` }), 'senv:Sdo').msg)).toBe('deadbeef01020304');
    await engine.close();
  });

  it('12: a backend close() that throws at once is reported as a rejecting one is (StateError naming the SE, the other backend closed); one that returns no promise has closed', async () => {
    const a = new SoftwareBackend(), b = new SoftwareBackend(), c = new SoftwareBackend();
    let bClosed = 0, cClosed = 0;
    a.close = () => {
      throw new Error('reader gone');
    };
    const closeB = b.close.bind(b);
    b.close = () => (bClosed++, closeB());
    const closeC = c.close.bind(c);
    c.close = (() => void (cClosed++, closeC())) as unknown as () => Promise<void>;
    const engine = await McsEngine.create({ backends: [a, b, c] });
    const err = await engine.close().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StateError);
    expect((err as Error).message).toBe(`SE ${engine.seIds[0]}: its backend's close() failed (Error: reader gone)`);
    expect([bClosed, cClosed]).toEqual([1, 1]);
    const quiet = new SoftwareBackend();
    quiet.close = (() => undefined) as unknown as () => Promise<void>;
    await expect((await McsEngine.create({ backends: [quiet] })).close()).resolves.toBeUndefined();
  });

  it('the software SE and every resource type answer as before (results equal node:crypto, no backend array kept)', async () => {
    const { engine, seId, send } = await setup();
    await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4, msg: Buffer.from('abc') } } });
    expect(hex(pc(await send({ op: 2, to: `${seId}/r/h/cHsh` }), 'senv:Hsh').Hv)).toBe(sha256('abc'));
    const hk = nc.randomBytes(32);
    await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: new Uint8Array(hk), msg: Buffer.from('hi') } } });
    const mac = pc(await send({ op: 2, to: `${seId}/r/m/cSgn` }), 'senv:Sgn').Sgn;
    expect(hex(mac)).toBe(nc.createHmac('sha256', hk).update('hi').digest('hex'));
    await send({ op: 3, to: `${seId}/r/m`, pc: { 'senv:Sgn': { msg: Buffer.from('hi') } } });
    expect(pc(await send({ op: 2, to: `${seId}/r/m/vSgn` }), 'senv:Sgn').vR).toBe(true);
    for (const format of ['der', 'raw']) {
      await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: `e${format}`, Salg: 33, sgF: format } } });
      const kInf = pc(await send({ op: 2, to: `${seId}/r/e${format}/gnK` }, false), 'senv:Sgn').kInf as string;
      await send({ op: 3, to: `${seId}/r/e${format}`, pc: { 'senv:Sgn': { msg: Buffer.from('m') } } });
      const sig = pc(await send({ op: 2, to: `${seId}/r/e${format}/cSgn` }), 'senv:Sgn').Sgn as Uint8Array;
      const pub = nc.createPublicKey({ key: Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), Buffer.from(kInf, 'base64')]), format: 'der', type: 'spki' });
      expect(nc.verify('sha256', Buffer.from('m'), { key: pub, dsaEncoding: format === 'raw' ? 'ieee-p1363' : 'der' }, sig)).toBe(true);
    }
    const key = nc.randomBytes(16), nonce = nc.randomBytes(12), big = nc.randomBytes(3000);
    await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 10000, kDt: new Uint8Array(key) } } });
    await send({ op: 1, to: `${seId}/r/c`, ty: 20001, pc: { 'senv:algP': { nc: nonce } } });
    for (const m of [Buffer.from('short'), big]) {
      await send({ op: 3, to: `${seId}/r/c`, pc: { 'senv:Cph': { msg: m } } });
      expect(hex(pc(await send({ op: 2, to: `${seId}/r/c/Enc` }), 'senv:Cph').cD)).toBe(gcm(key, nonce, m));
      // The other direction replays the data held (no stream open for it).
      await send({ op: 3, to: `${seId}/r/c`, pc: { 'senv:Cph': { msg: Buffer.from(gcm(key, nonce, m), 'hex') } } });
      expect(hex(pc(await send({ op: 2, to: `${seId}/r/c/Dec` }), 'senv:Cph').cD)).toBe(hex(m));
    }
    await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'p', Calg: 24, mbs: 100, kDt: new Uint8Array(key) } } });
    await send({ op: 1, to: `${seId}/r/p`, ty: 20001, pc: { 'senv:algP': { iV: new Uint8Array(16) } } });
    const pad = await send({ op: 2, to: `${seId}/r/p/Enc` });
    const e = nc.createCipheriv('aes-128-cbc', key, new Uint8Array(16));
    expect(hex(pc(pad, 'senv:Cph').cD)).toBe(Buffer.concat([e.update(Buffer.alloc(0)), e.final()]).toString('hex'));
    await send({ op: 1, to: `${seId}/r`, ty: 20007, pc: { 'senv:Rnd': { rn: 'x', rgT: 1, Dsz: 77 } } });
    expect((pc(await send({ op: 2, to: `${seId}/r/x/gnR` }), 'senv:Rnd').rndD as Uint8Array).length).toBe(77);
    await engine.close();
  });

  it('14: a result of the wrong length is zeroized when refused (random bytes, a decrypted plaintext): handed over all the same', async () => {
    const refused: Uint8Array[] = [];
    const { engine, seId, send } = await setup((b) => {
      const rnd = b.random.bind(b);
      b.random = async (t: RngType, n: number) => {
        const r = (await rnd(t, n + 1)) as Uint8Array;
        refused.push(r);
        return r;
      };
    });
    await send({ op: 1, to: `${seId}/r`, ty: 20007, pc: { 'senv:Rnd': { rn: 'x', rgT: 1, Dsz: 32 } } });
    const r = await send({ op: 2, to: `${seId}/r/x/gnR` });
    expect([r.rsc, dbg(r)]).toEqual([5000, 'internal error (backend gave random bytes of 33 bytes, 32 expected)']);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.every((x) => x === 0)).toBe(true);
    await engine.close();
  });

  it('15: with a data directory, a backend another open engine uses is refused before the directory is opened (no lock taken, nothing written)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-engaged-'));
    try {
      const b = new SoftwareBackend();
      const first = await McsEngine.create({ backends: [b] });
      await expect(McsEngine.create({ backends: [b], dataDir: dir, masterKey: new Uint8Array(32).fill(1) })).rejects.toThrow(/used by another open McsEngine/);
      expect(readdirSync(dir)).toEqual([]);
      await first.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

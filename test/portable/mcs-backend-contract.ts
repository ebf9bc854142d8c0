// A backend written from the published contract by someone else (backend.ts, docs/mcs.md "Writing a
// backend"), on every runtime: the engine takes a backend's results over as handed, refuses results
// that break the contract (5000, named, nothing kept), survives a stream's abort() and a close() that
// throw, checks the description and capabilities at create, and lets one engine at a time use a
// backend instance. What needs a data directory or reads the docs is in
// test/node/mcs-third-party-backend.test.ts.
import {
  ecdsa, hmac, InvalidInputError, markKeyHandle, McsEngine, SoftwareBackend, StateError,
  type CipherStream, type KeyHandle, type KeyKind, type KeySpec, type McsResponse, type ObjectStore, type RngType,
} from '../../src/index.ts';
import { AssertionError, equal, equalBytes, equalHex, hex, ok as assert, prng, unhex, utf8, type PortableCase } from './harness.ts';
import { unb64 } from './mcs-kit.ts';
import { backendErrors, detached, patchDigest, patchSignature, type Patch } from './mcs-backends.ts';

const SHA256_ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const SHA256_XYZ = '3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282';

let rqi = 0;

/** An engine over one software SE patched as a third party's backend would behave, with C1 registered. */
async function setup(patch: Patch = () => {}) {
  const be = new SoftwareBackend();
  patch(be);
  const engine = await McsEngine.create({ backends: [be] });
  const [seId] = engine.seIds as [string];
  const send = (r: Record<string, unknown>, binary = true) => engine.send({ rqi: String(++rqi), fr: 'C1', ...r }, { binary });
  equal((await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 1 } } })).rsc, 2001, 'register');
  return { be, engine, seId, send };
}

const pc = (r: McsResponse, root: string) => (r.pc as Record<string, Record<string, unknown>>)[root]!;
const dbg = (r: McsResponse) => r.pc?.['m2m:dbg'];
const zeroized = (a: Uint8Array) => a.every((x) => x === 0);

/** Asserts 5000 with the m2m:dbg that names what the backend gave. */
function refused(r: McsResponse, gave: string, what: string): void {
  equal(r.rsc, 5000, `${what}: rsc`);
  equal(dbg(r), `internal error (backend gave ${gave})`, `${what}: m2m:dbg`);
}

/** What `p` rejects with; an assertion error if it fulfils. */
async function rejection(p: Promise<unknown>, what: string): Promise<unknown> {
  return p.then(
    () => {
      throw new AssertionError(`${what}: expected a rejection`);
    },
    (e: unknown) => e,
  );
}

// Web Crypto as the oracle: independent of the core, and on Node, Deno and Chromium alike.
const subtle = globalThis.crypto.subtle;
const buf = (a: Uint8Array) => a as Uint8Array<ArrayBuffer>;

async function aes(name: 'AES-GCM' | 'AES-CBC', key: Uint8Array, iv: Uint8Array, m: Uint8Array): Promise<string> {
  const k = await subtle.importKey('raw', buf(key), name, false, ['encrypt']);
  return hex(new Uint8Array(await subtle.encrypt({ name, iv: buf(iv) }, k, buf(m))));
}

async function hmacSha256(key: Uint8Array, m: Uint8Array): Promise<string> {
  const k = await subtle.importKey('raw', buf(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return hex(new Uint8Array(await subtle.sign('HMAC', k, buf(m))));
}

/** r || s of a DER ECDSA-Sig-Value over P-256 (Web Crypto verifies that form only). */
function p256Raw(der: Uint8Array): Uint8Array {
  assert(der[0] === 0x30 && der[1] === der.length - 2, 'DER signature: a SEQUENCE of the whole');
  const out = new Uint8Array(64);
  let at = 2;
  for (const half of [0, 32]) {
    assert(der[at] === 0x02, 'DER signature: an INTEGER');
    const len = der[at + 1]!;
    let v = der.subarray(at + 2, at + 2 + len);
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    out.set(v, half + 32 - v.length);
    at += 2 + len;
  }
  equal(at, der.length, 'DER signature: nothing after s');
  return out;
}

async function p256Verifies(point: Uint8Array, sig: Uint8Array, m: Uint8Array): Promise<boolean> {
  const k = await subtle.importKey('raw', buf(point), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  return subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, k, buf(sig), buf(m));
}

/** A software SE whose close() is counted. */
function countClose(be: SoftwareBackend): () => number {
  let closed = 0;
  const close = be.close.bind(be);
  be.close = () => (closed++, close());
  return () => closed;
}

export const mcsBackendContractCases: PortableCase[] = [
  {
    name: 'backend contract: a result is taken over as handed, not copied, zeroized once the resource lets it go; close() reaches the backend',
    async run() {
      const digests: Uint8Array[] = [];
      const { be, engine, seId, send } = await setup((b) => {
        patchDigest(b, async (s, last) => {
          const d = (await s.final(last)) as Uint8Array;
          digests.push(d);
          return d;
        });
      });
      const closed = countClose(be);
      await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'a', Halg: 4, msg: utf8('abc') } } });
      equalHex(pc(await send({ op: 2, to: `${seId}/r/a/cHsh` }), 'senv:Hsh').Hv as Uint8Array, SHA256_ABC, 'Hv');
      // Kept as it was handed: the backend's array is the resource's value until the next result replaces it.
      equalHex(digests[0]!, SHA256_ABC, 'the handed digest, untouched while held');
      await send({ op: 3, to: `${seId}/r/a`, pc: { 'senv:Hsh': { msg: utf8('xyz') } } });
      equalHex(pc(await send({ op: 2, to: `${seId}/r/a/cHsh` }), 'senv:Hsh').Hv as Uint8Array, SHA256_XYZ, 'Hv of the next message');
      assert(zeroized(digests[0]!), 'the replaced digest zeroized');
      equalHex(digests[1]!, SHA256_XYZ, 'the next handed digest');
      equal((await send({ op: 4, to: `${seId}/r/a` })).rsc, 2002, 'delete');
      assert(zeroized(digests[1]!), "the deleted resource's digest zeroized");
      equal((await send({ op: 4, to: seId })).rsc, 2002, 'deregister');
      equal(await engine.close(), undefined, 'close');
      equal(closed(), 1, 'backend closed once');
    },
  },
  {
    name: 'backend contract: the engine zeroizes the exported key it was handed, and the backend encrypts under that key',
    async run() {
      const exported: Uint8Array[] = [];
      const { engine, seId, send } = await setup((b) => {
        const exp = b.exportKey.bind(b);
        b.exportKey = async (k: KeyHandle) => {
          const out = await exp(k);
          exported.push(out);
          return out;
        };
      });
      const rnd = prng(71);
      await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'g', Calg: 1001, mbs: 100, kExp: true } } });
      const nonce = rnd(12), m = utf8('attack at dawn');
      await send({ op: 1, to: `${seId}/r/g`, ty: 20001, pc: { 'senv:algP': { nc: nonce } } });
      const key = pc(await send({ op: 2, to: `${seId}/r/g/gnK` }), 'senv:Cph').kDt as Uint8Array;
      equal(exported.length, 1, 'one export');
      assert(zeroized(exported[0]!), 'the handed export zeroized');
      await send({ op: 3, to: `${seId}/r/g`, pc: { 'senv:Cph': { msg: m } } });
      equalHex(pc(await send({ op: 2, to: `${seId}/r/g/Enc` }), 'senv:Cph').cD as Uint8Array, await aes('AES-GCM', key, nonce, m), 'Enc under kDt');
      await engine.close();
    },
  },
  {
    name: 'backend contract (coverage gap): an exported key that is no Uint8Array answers 5000 naming it, and is not zeroized (it cannot be)',
    async run() {
      const { engine, seId, send } = await setup((b) => {
        b.exportKey = async () => 'deadbeef' as unknown as Uint8Array;
      });
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'g', Calg: 1001, mbs: 100, kExp: true } } })).rsc, 2001, 'cipher');
      const gave = 'an exported key that is a string of 8 characters, a Uint8Array expected';
      refused(await send({ op: 2, to: `${seId}/r/g/gnK` }), gave, 'generateKey');
      for (const binary of [true, false]) refused(await send({ op: 2, to: `${seId}/r/g` }, binary), gave, `RETRIEVE (binary ${binary})`);
      await engine.close();
    },
  },
  {
    name: 'backend contract (coverage gap): a <signature> with no key yet holds its message and opens no stream for it (no key imported to stream under) until it has one',
    async run() {
      let imports = 0, streams = 0;
      const { engine, seId, send } = await setup((b) => {
        b.capabilities.preferredBatchSize = 4;
        const importKey = b.importKey.bind(b), signature = b.signature.bind(b);
        b.importKey = (...a: Parameters<typeof importKey>) => (imports++, importKey(...a));
        b.signature = (...a: Parameters<typeof signature>) => (streams++, signature(...a));
      });
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kExp: true } } })).rsc, 2001, 'HMAC <signature> without a key');
      const m = prng(5)(48);
      for (let i = 0; i < 3; i++) equal((await send({ op: 3, to: `${seId}/r/s`, pc: { 'senv:Sgn': { msg: m.slice(16 * i, 16 * i + 16) } } })).rsc, 2004, `chunk ${i}`);
      equal(`${imports},${streams}`, '0,0', 'no key imported, no stream opened');
      const key = pc(await send({ op: 2, to: `${seId}/r/s/gnK` }), 'senv:Sgn').kDt as Uint8Array;
      equalHex(pc(await send({ op: 2, to: `${seId}/r/s/cSgn` }), 'senv:Sgn').Sgn as Uint8Array, hex(hmac('SHA-256', key, m)), 'the HMAC of the message held');
      equal(`${imports},${streams}`, '0,1', 'one stream, under the generated key');
      await engine.close();
    },
  },
  {
    name: 'backend contract: a stream whose abort() throws, or a result detached after it was given, never half-removes a registration; close() reaches the backend',
    async run() {
      const { be, engine, seId, send } = await setup((b) => {
        b.capabilities.preferredBatchSize = 4;
        const orig = b.digest.bind(b);
        b.digest = (a) => {
          const s = orig(a);
          return {
            update: (d) => s.update(d),
            final: async (last) => {
              const d = (await s.final(last)) as Uint8Array;
              // Later, once the engine has it (a worker that pools or logs it).
              setTimeout(() => structuredClone(d.buffer, { transfer: [d.buffer as ArrayBuffer] }), 0);
              return d;
            },
            abort: () => {
              s.abort();
              throw new Error('device busy');
            },
          };
        };
      });
      const closed = countClose(be);
      await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: new Uint8Array(16).fill(7) } } });
      await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'd', Halg: 4, msg: utf8('abc') } } });
      equalHex(pc(await send({ op: 2, to: `${seId}/r/d/cHsh` }), 'senv:Hsh').Hv as Uint8Array, SHA256_ABC, 'Hv');
      await new Promise((resolve) => setTimeout(resolve, 5));
      await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } });
      equal((await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: new Uint8Array(8) } } })).rsc, 2004, 'a chunk that opens a stream');
      equal((await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: null } } })).rsc, 2004, 'discard: abort() throws');
      // The digest the backend detached after handing it over (a breach: results are handed over) reads
      // as what is left of it; the resource and the registration stay whole.
      equal((await send({ op: 2, to: `${seId}/r/d` }, false)).rsc, 2000, 'the resource whose digest was detached');
      // A stream open again (8 bytes, batch 4) when the registration goes.
      await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: new Uint8Array(8) } } });
      equal((await send({ op: 4, to: seId })).rsc, 2002, 'deregister with a stream open');
      equal((await send({ op: 2, to: `${seId}/r/c` })).rsc, 4106, 'nothing left under it');
      // The cipher's key went with it: re-registered, nothing of the old tree is reachable.
      equal((await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 1 } } })).rsc, 2001, 're-register');
      equal((await send({ op: 2, to: `${seId}/r/c` })).rsc, 4004, 'the old cipher');
      await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } });
      await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: new Uint8Array(8) } } });
      equal(await engine.close(), undefined, 'close');
      equal(closed(), 1, 'backend closed once');
    },
  },
  {
    name: 'backend contract: a reboot ends the backend\'s streams (reboot() drops volatile state): a message streamed before it is replayed on a new stream, never finished on the one the reboot ended',
    async run() {
      // A card's session, say: a stream opened before a reboot fails once the reboot happened.
      let reboots = 0, opened = 0;
      const { engine, seId, send } = await setup((b) => {
        b.capabilities.preferredBatchSize = 4;
        const digest = b.digest.bind(b);
        b.digest = (a) => {
          opened++;
          const s = digest(a) as Awaited<ReturnType<typeof digest>>, born = reboots;
          const live = () => {
            if (reboots !== born) throw new StateError('stream ended by a reboot');
          };
          return { update: (d) => (live(), s.update(d)), final: (last) => (live(), s.final(last)), abort: () => s.abort() };
        };
        const reboot = b.reboot.bind(b);
        b.reboot = (t) => (reboots++, reboot(t));
      });
      const types = engine.describe(seId)!.capabilities.rebootTypes;
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20010, pc: { 'senv:Srbt': { rn: 'b', rbT: types[0] } } })).rsc, 2001, 'SEReboot');
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } })).rsc, 2001, 'hash');
      equal((await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: utf8('abcd') } } })).rsc, 2004, 'a batch that opens a stream');
      equal(opened, 1, 'streamed');
      equal((await send({ op: 3, to: `${seId}/r/b`, pc: { 'senv:Srbt': { rb: true } } })).rsc, 2004, 'reboot');
      equal(reboots, 1, 'rebooted');
      const r = await send({ op: 2, to: `${seId}/r/h/cHsh` });
      equal(r.rsc, 2000, `calculateHash after the reboot: ${JSON.stringify(dbg(r))}`);
      equalHex(pc(r, 'senv:Hsh').Hv as Uint8Array, hex(new Uint8Array(await subtle.digest('SHA-256', buf(utf8('abcd'))))), 'Hv of the message replayed');
      equal(opened, 2, 'a new stream for the replay');
      await engine.close();
    },
  },
  {
    name: "backend contract: a backend close() that rejects with a plain error: every backend is still closed, and close() rejects with a StateError naming the SE",
    async run() {
      const a = new SoftwareBackend(), b = new SoftwareBackend();
      a.close = async () => {
        throw new TypeError('Cannot perform %TypedArray%.prototype.fill on a detached ArrayBuffer');
      };
      const bClosed = countClose(b);
      const engine = await McsEngine.create({ backends: [a, b] });
      const err = await rejection(engine.close(), 'close');
      assert(err instanceof StateError, `a StateError, got ${String(err)}`);
      assert(err.message.includes(`SE ${engine.seIds[0]}: its backend's close() failed (TypeError: Cannot perform`), err.message);
      equal(bClosed(), 1, 'the other backend closed');
    },
  },
  {
    name: 'backend contract: two backends whose close() fails are both reported, each naming its SE or device, in one StateError; every backend closed',
    async run() {
      const a = new SoftwareBackend(), b = new SoftwareBackend(), c = new SoftwareBackend();
      a.close = async () => {
        throw new Error('reader gone');
      };
      // A senv error as the backend threw it, its message naming the device (as the PC/SC SE's does).
      b.close = async () => {
        throw new StateError("closed, but the card in 'Reader B' keeps 1 key (slot 4)");
      };
      const cClosed = countClose(c);
      const engine = await McsEngine.create({ backends: [a, b, c] });
      const [idA] = engine.seIds;
      const err = await rejection(engine.close(), 'close');
      assert(err instanceof StateError, `a StateError, got ${String(err)}`);
      equal(err.message, `close() failed 2 times: (1) SE ${idA}: its backend's close() failed (Error: reader gone); (2) closed, but the card in 'Reader B' keeps 1 key (slot 4)`, 'message');
      equal(cClosed(), 1, 'the third backend closed');
      await rejection(engine.close(), 'the same close again');
    },
  },
  {
    name: 'backend contract (coverage gaps): a close() that rejects with no Error is named by its kind; a store whose close() rejects is reported beside it; data objects a device keeps are counted in the plural',
    async run() {
      // A backend's close() rejecting with a string, and a store's close() rejecting with one: both told, neither's text invented.
      const a = new SoftwareBackend();
      a.close = () => Promise.reject('reader gone');
      const store = { uniqueId: async () => 'u', load: async () => undefined, put: async () => undefined, append: async () => undefined, remove: async () => undefined, close: () => Promise.reject('disk gone') };
      const engine = await McsEngine.create({ backends: [a], store });
      const err = await rejection(engine.close(), 'close');
      assert(err instanceof StateError, `a StateError, got ${String(err)}`);
      equal(err.message, `close() failed 2 times: (1) SE ${engine.seIds[0]}: its backend's close() failed (error); (2) error`, 'message');
      // The store's alone is close()'s rejection as it is.
      const failing = new Error('disk gone');
      const alone = await McsEngine.create({ backends: [new SoftwareBackend()], store: { ...store, close: () => Promise.reject(failing) } });
      equal(await rejection(alone.close(), 'the store\'s close'), failing, 'the store\'s error');
      // Two data objects a device could not remove at close: both named.
      const { engine: kept, seId, send } = await setup((b) => {
        b.capabilities.keyStorage = 'device';
        (b as { objectStore?: ObjectStore }).objectStore = { write: async () => undefined, read: async () => new Uint8Array(1), remove: () => Promise.reject(new Error('card gone')) };
      });
      const ris = [];
      for (const rn of ['o1', 'o2']) ris.push(pc(await send({ op: 1, to: `${seId}/r`, ty: 20009, pc: { 'senv:Sdo': { rn, msg: new Uint8Array([1]) } } }), 'senv:Sdo').ri);
      const stays = await rejection(kept.close(), 'close with data on the device');
      assert(stays instanceof StateError, `a StateError, got ${String(stays)}`);
      equal(stays.message, `2 data objects of <sensitiveDataObject>s stay on the device (resource ID ${ris.join(', ')}): removing them failed (Error); remove them with the device present (a card: PUT DATA 04 of the object its directory, object FE, names for the ID)`, 'message');
    },
  },
  {
    name: 'backend contract: a backend close() that throws at once is reported as a rejecting one is (the other backends closed); one that returns no promise has closed',
    async run() {
      const a = new SoftwareBackend(), b = new SoftwareBackend(), c = new SoftwareBackend();
      a.close = () => {
        throw new Error('reader gone');
      };
      const bClosed = countClose(b);
      let cClosed = 0;
      const closeC = c.close.bind(c);
      c.close = (() => void (cClosed++, closeC())) as unknown as () => Promise<void>;
      const engine = await McsEngine.create({ backends: [a, b, c] });
      const err = await rejection(engine.close(), 'close');
      assert(err instanceof StateError, `a StateError, got ${String(err)}`);
      equal(err.message, `SE ${engine.seIds[0]}: its backend's close() failed (Error: reader gone)`, 'message');
      equal(`${bClosed()},${cClosed}`, '1,1', 'the other backends closed');
      const quiet = new SoftwareBackend();
      quiet.close = (() => undefined) as unknown as () => Promise<void>;
      equal(await (await McsEngine.create({ backends: [quiet] })).close(), undefined, 'a close() of no promise');
    },
  },
  {
    name: 'backend contract: a key handle not made with markKeyHandle is released and answered 5000, never kept or shown',
    async run() {
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
      equal(r.rsc, 5000, 'rsc');
      assert(/^internal error \(backend gave a key handle not made with markKeyHandle/.test(String(dbg(r))), `m2m:dbg ${String(dbg(r))}`);
      assert(!JSON.stringify(r).includes('hsm-slot-3'), 'the handle not shown');
      equal(released.length, 1, 'released');
      equal((await send({ op: 2, to: `${seId}/r/c` }, false)).rsc, 4004, 'not created');
      await engine.close();
    },
  },
  {
    name: 'backend contract: a marked key handle of a size that is no byte count is deleted and answered 5000; the quota stays whole',
    async run() {
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
        equal(r.rsc, 5000, `size ${size}: rsc`);
        assert(/^internal error \(backend gave a key whose size is /.test(String(dbg(r))), `size ${size}: m2m:dbg ${String(dbg(r))}`);
        assert(deleted.length === 1 && deleted[0] === given, `size ${size}: the handle given deleted`);
        equal(JSON.stringify(pc(await send({ op: 2, to: `${seId}/r/memory` }), 'm2m:mem')), JSON.stringify(before), `size ${size}: memory`);
        // A 1 MiB object does not fit in a quota of 1 MiB less what the registration takes.
        const big = await send({ op: 1, to: `${seId}/r`, ty: 20009, pc: { 'senv:Sdo': { msg: new Uint8Array(Number(before.mma) + 1) } } });
        equal(big.rsc, 5207, `size ${size}: the quota is whole`);
        await engine.close();
      }
    },
  },
  {
    name: 'backend contract: the key of a deleted resource is deleted by a backend that has deleteKey, not only released (a device would keep it in a slot nothing names)',
    async run() {
      let made: KeyHandle | undefined;
      const deleted: KeyHandle[] = [], released: KeyHandle[] = [];
      const { engine, seId, send } = await setup((b) => {
        const imp = b.importKey.bind(b), release = b.releaseKey.bind(b);
        b.importKey = async (s: KeySpec, k: KeyKind, m: Uint8Array) => (made = await imp(s, k, m));
        b.releaseKey = (k: KeyHandle) => void (released.push(k), release(k));
        (b as { deleteKey?: (k: KeyHandle) => void }).deleteKey = (k) => void (deleted.push(k), release(k));
      });
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: new Uint8Array(16).fill(0xab) } } })).rsc, 2001, 'cipher with a key');
      equal((await send({ op: 4, to: `${seId}/r/c` })).rsc, 2002, 'delete');
      assert(made !== undefined && deleted.length === 1 && deleted[0] === made, 'the key deleted');
      equal(released.length, 0, 'released only through deleteKey');
      // Closing an engine without a store ends every resource: nothing could name a key kept on the device.
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'd', Calg: 1001, mbs: 100, kDt: new Uint8Array(16).fill(0xcd) } } })).rsc, 2001, 'a cipher left at close()');
      const left = made;
      await engine.close();
      equal(deleted.length, 2, 'keys deleted');
      assert(deleted[1] === left, 'its key deleted at close()');
      equal(released.length, 0, 'released only through deleteKey at close() too');
    },
  },
  {
    name: 'backend contract: a family of resource types with no algorithm on the backend (here no reboot type) is left out of srt',
    async run() {
      const srt = async (patch?: Patch) => {
        const { engine, seId, send } = await setup(patch);
        const types = pc(await send({ op: 2, to: `${seId}/r` }), 'senv:Senv').srt as number[];
        await engine.close();
        return types;
      };
      const all = await srt();
      assert(all.includes(20010), `srt of a backend with reboot types: ${all.join()}`);
      equal((await srt((b) => void ((b.capabilities as { rebootTypes: unknown }).rebootTypes = []))).join(), all.filter((ty) => ty !== 20010).join(), 'srt without 20010');
    },
  },
  {
    name: 'backend contract: each error class a backend throws answers its rsc and m2m:dbg (the docs/mcs.md table); any other error answers 5000 and shows nothing of its message',
    async run() {
      const sign = async (e: Error) => {
        const { engine, seId, send } = await setup((b) => patchSignature(b, { sign: async () => { throw e; } }));
        await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array(1) } } });
        const r = await send({ op: 2, to: `${seId}/r/s/cSgn` });
        await engine.close();
        return r;
      };
      for (const [type, rsc, text] of backendErrors) {
        const r = await sign(new type('slot 3'));
        equal(r.rsc, rsc, `${type.name}: rsc`);
        equal(dbg(r), text, `${type.name}: m2m:dbg`);
      }
      const r = await sign(new Error('HSM said: key 00112233'));
      equal(r.rsc, 5000, 'a plain Error: rsc');
      equal(dbg(r), 'internal error (Error)', 'a plain Error: m2m:dbg');
      // Its class name or code, never its message: what a backend's author needs to look in the right place.
      const named = await sign(Object.assign(new RangeError('HSM said: key 00112233'), { code: 'ERR_HSM_SLOT' }));
      equal(dbg(named), 'internal error (ERR_HSM_SLOT)', 'an error with a code: m2m:dbg');
      class HsmKeyError extends Error {}
      Object.defineProperty(HsmKeyError.prototype, 'name', { value: 'HsmKeyError' });
      equal(dbg(await sign(new HsmKeyError('key 00112233'))), 'internal error (HsmKeyError)', 'an error class of its own: m2m:dbg');
    },
  },
  {
    name: 'backend contract: description, capabilities and memory figures outside their tables are refused at create, naming the backend and the field',
    async run() {
      const cases: [string, Patch, string?][] = [
        ['description.seType', (b) => void ((b.description as { seType: unknown }).seType = '4/x')],
        ['description.seType', (b) => void ((b.description as { seType: unknown }).seType = 9)],
        ['description.seType', (b) => void delete (b.description as { seType?: unknown }).seType],
        ['description.securityLevel', (b) => void ((b.description as { securityLevel: unknown }).securityLevel = 7)],
        ['capabilities.keyStorage', (b) => void ((b.capabilities as { keyStorage: unknown }).keyStorage = 'cloud')],
        ['capabilities.preferredBatchSize', (b) => void ((b.capabilities as { preferredBatchSize: unknown }).preferredBatchSize = -1)],
        ['capabilities.maxRandomLength', (b) => void ((b.capabilities as { maxRandomLength: unknown }).maxRandomLength = 'big')],
        ['capabilities.rngTypes', (b) => void ((b.capabilities as { rngTypes: unknown }).rngTypes = [3])],
        // (mutation review) Every list checked against its table, and a batch of at least one byte.
        ['capabilities.cipherAlgorithms', (b) => void ((b.capabilities as { cipherAlgorithms: unknown }).cipherAlgorithms = [1001, 25]), 'got 25'],
        ['capabilities.hashAlgorithms', (b) => void ((b.capabilities as { hashAlgorithms: unknown }).hashAlgorithms = [4, 7]), 'got 7'],
        ['capabilities.signatureAlgorithms', (b) => void ((b.capabilities as { signatureAlgorithms: unknown }).signatureAlgorithms = [33, 1001]), 'got 1001'],
        ['capabilities.rebootTypes', (b) => void ((b.capabilities as { rebootTypes: unknown }).rebootTypes = [1, 3]), 'got 3'],
        ['capabilities.preferredBatchSize', (b) => void ((b.capabilities as { preferredBatchSize: unknown }).preferredBatchSize = 0), 'an integer from 1, got 0'],
        // (coverage gaps) A list that is no array (named whole, not by a character), and capabilities that are no object.
        ['capabilities.cipherAlgorithms', (b) => void ((b.capabilities as { cipherAlgorithms: unknown }).cipherAlgorithms = '1001'), 'got a string of 4 characters'],
        ['capabilities', (b) => void Object.defineProperty(b, 'capabilities', { value: null }), 'capabilities must be an object, got null'],
        ['memoryInfo()', (b) => void (b.memoryInfo = async () => ({ total: '1M' as unknown as number, available: 5 }))],
        ['memoryInfo()', (b) => void (b.memoryInfo = async () => ({ total: -5, available: 5 }))],
        ['memoryInfo()', (b) => void (b.memoryInfo = async () => ({ total: 5, available: -1 }))],
        // Read by every registration and [deviceInfo]: refused at create, not as every <SE> CREATE's 5000.
        ['description.rngSources', (b) => void delete (b.description as { rngSources?: unknown }).rngSources],
        ['description.rngSources[2]', (b) => void ((b.description as { rngSources: Record<number, unknown> }).rngSources = { 1: 'a DRBG' })],
        ['description.manufacturer', (b) => void ((b.description as { manufacturer: unknown }).manufacturer = 42)],
        ['description.firmwareVersion', (b) => void ((b.description as { firmwareVersion: unknown }).firmwareVersion = { x: 1 })],
        ['description.hardwareVersion', (b) => void ((b.description as { hardwareVersion: unknown }).hardwareVersion = 7)],
      ];
      for (const [field, patch, end] of cases) {
        const b = new SoftwareBackend({ uniqueId: 'third-party' });
        patch(b);
        const err = await McsEngine.create({ backends: [b] }).then(async (e) => (await e.close(), undefined), (e: unknown) => e);
        assert(err instanceof InvalidInputError, `${field}: an InvalidInputError, got ${String(err)}`);
        assert(err.message.includes(`SE backend 'third-party': ${field}`), `${field}: ${err.message}`);
        if (end) assert(err.message.endsWith(end), `${field}: ${err.message}`);
        // A failed create leaves the backend for a retry.
        await b.close();
      }
      const none = new SoftwareBackend({ uniqueId: 'third-party' });
      Object.defineProperty(none, 'description', { value: undefined });
      const err = await rejection(McsEngine.create({ backends: [none] }), 'no description');
      assert(err instanceof InvalidInputError, `no description: an InvalidInputError, got ${String(err)}`);
      equal(err.message, 'the description of SE backend 1 must be an object, got undefined', 'no description');
      // On a device SE the figures are asked at RETRIEVE [memory]: 5000, not "NaN available".
      const { engine, seId, send } = await setup((b) => {
        b.capabilities.keyStorage = 'device';
        b.memoryInfo = async () => ({ total: '1M' as unknown as number, available: 5 });
      });
      refused(await send({ op: 2, to: `${seId}/r/memory` }), 'memory figures that are not two non-negative integers (total a string of 2 characters, available 5)', 'device memory');
      await engine.close();
    },
  },
  {
    name: 'backend contract: results of the wrong type or length answer 5000 naming what was wrong, and nothing is kept',
    async run() {
      const hashCases: [unknown, string][] = [
        [new Uint8Array(31), 'a digest of 31 bytes, 32 expected'],
        ['abc', 'a digest that is a string of 3 characters, a Uint8Array expected'],
        [42, 'a digest that is 42, a Uint8Array expected'],
        [[1, 2, 3], 'a digest that is a value of type array, a Uint8Array expected'],
        [new Float64Array(4), 'a digest that is a value of type Float64Array, a Uint8Array expected'],
        [detached(32), 'a digest that is a view of a detached or shrunk buffer'],
      ];
      for (const [v, what] of hashCases) {
        const { engine, seId, send } = await setup((b) => patchDigest(b, async () => v));
        await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4, msg: new Uint8Array([1]) } } });
        refused(await send({ op: 2, to: `${seId}/r/h/cHsh` }), what, what);
        equal(pc(await send({ op: 2, to: `${seId}/r/h` }, false), 'senv:Hsh').Hv, undefined, `${what}: no Hv kept`);
        await engine.close();
      }
      {
        const { engine, seId, send } = await setup((b) => void (b.random = async () => new Uint8Array(3)));
        await send({ op: 1, to: `${seId}/r`, ty: 20007, pc: { 'senv:Rnd': { rn: 'x', rgT: 2, Dsz: 10 } } });
        refused(await send({ op: 2, to: `${seId}/r/x/gnR` }), 'random bytes of 3 bytes, 10 expected', 'random');
        equal(pc(await send({ op: 2, to: `${seId}/r/x` }, false), 'senv:Rnd').rndD, undefined, 'random: no rndD kept');
        await engine.close();
      }
      for (const v of ['false', 1, undefined]) {
        const { engine, seId, send } = await setup((b) => patchSignature(b, { verify: async () => v as unknown as boolean }));
        await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array([1]), Sgn: new Uint8Array(32) } } });
        const r = await send({ op: 2, to: `${seId}/r/s/vSgn` });
        equal(r.rsc, 5000, `verify ${String(v)}: rsc`);
        assert(/^internal error \(backend gave a verification result that is .*, a boolean expected\)$/.test(String(dbg(r))), `verify ${String(v)}: m2m:dbg ${String(dbg(r))}`);
        equal(pc(await send({ op: 2, to: `${seId}/r/s` }, false), 'senv:Sgn').vR, undefined, `verify ${String(v)}: no vR kept`);
        await engine.close();
      }
      {
        const { engine, seId, send } = await setup((b) => patchSignature(b, { sign: async () => 'sig' as unknown as Uint8Array }));
        await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array([1]) } } });
        refused(await send({ op: 2, to: `${seId}/r/s/cSgn` }), 'a signature that is a string of 3 characters, a Uint8Array expected', 'sign');
        equal(pc(await send({ op: 2, to: `${seId}/r/s` }, false), 'senv:Sgn').Sgn, undefined, 'sign: no Sgn kept');
        await engine.close();
      }
      // A cipher's output is at most its input and 32 bytes (a padding block, a tag), also when the operation replays the data held.
      for (const extra of [32, 33]) {
        const { engine, seId, send } = await setup((b) => {
          const cipher = b.cipher.bind(b);
          b.cipher = (...a: Parameters<typeof cipher>) => {
            const s = cipher(...a) as CipherStream;
            return { ...s, final: async (last?: Uint8Array) => (s.abort(), new Uint8Array((last?.length ?? 0) + extra).fill(1)) };
          };
        });
        await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: new Uint8Array(16), msg: new Uint8Array(16) } } });
        await send({ op: 1, to: `${seId}/r/c`, ty: 20001, pc: { 'senv:algP': { nc: new Uint8Array(12) } } });
        const r = await send({ op: 2, to: `${seId}/r/c/Enc` });
        const cD = pc(await send({ op: 2, to: `${seId}/r/c` }), 'senv:Cph').cD as Uint8Array | undefined;
        if (extra === 32) {
          equal(r.rsc, 2000, 'cipher output of the message and 32 bytes: rsc');
          equalHex(cD!, '01'.repeat(48), 'taken over');
        } else {
          refused(r, 'cipher output of 49 bytes, 0 to 48 expected', 'cipher output one byte longer');
          equal(cD, undefined, 'cipher: no cD kept');
        }
        await engine.close();
      }
      // (mutation review) So when the message was streamed as it arrived, the output spread over the stream's calls; arrays
      // of the stream's own (not written into the room given) are copied, then zeroized.
      for (const extra of [32, 33]) {
        const own: Uint8Array[] = [];
        const { engine, seId, send } = await setup((b) => {
          b.capabilities.preferredBatchSize = 4;
          const cipher = b.cipher.bind(b);
          b.cipher = (...a: Parameters<typeof cipher>) => {
            const s = cipher(...a) as CipherStream;
            const give = (n: number, v: number) => (own.push(new Uint8Array(n).fill(v)), own[own.length - 1]!);
            return { update: async (d: Uint8Array) => give(d.length, 2), final: async (last?: Uint8Array) => (s.abort(), give((last?.length ?? 0) + extra, 1)), abort: () => s.abort() };
          };
        });
        await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: new Uint8Array(16) } } });
        await send({ op: 1, to: `${seId}/r/c`, ty: 20001, pc: { 'senv:algP': { nc: new Uint8Array(12) } } });
        equal((await send({ op: 3, to: `${seId}/r/c`, pc: { 'senv:Cph': { msg: new Uint8Array(16) } } })).rsc, 2004, 'streamed');
        equal(own.length, 1, 'the stream was fed as the data arrived');
        const r = await send({ op: 2, to: `${seId}/r/c/Enc` });
        const cD = pc(await send({ op: 2, to: `${seId}/r/c` }), 'senv:Cph').cD as Uint8Array | undefined;
        if (extra === 32) {
          equal(r.rsc, 2000, 'streamed cipher output of the message and 32 bytes: rsc');
          equalHex(cD!, '02'.repeat(16) + '01'.repeat(32), 'streamed output, joined');
        } else {
          refused(r, 'cipher output of 33 bytes, 0 to 32 expected', 'streamed cipher output one byte longer');
          equal(cD, undefined, 'streamed cipher: no cD kept');
        }
        assert(own.slice(0, extra === 32 ? 2 : 1).every(zeroized), 'the stream\'s own arrays zeroized once copied');
        await engine.close();
      }
      // A DER ECDSA signature of a length within the curve's bounds but no ECDSA-Sig-Value: clients parse it strictly.
      for (const junk of [new Uint8Array(70).fill(0xaa), Uint8Array.of(0x30, 6, 2, 1, 0x80, 2, 1, 1)]) {
        const { engine, seId, send } = await setup((b) => patchSignature(b, { sign: async () => junk.slice() }));
        await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 'e', Salg: 33 } } });
        equal((await send({ op: 2, to: `${seId}/r/e/gnK` })).rsc, 2000, 'gnK');
        await send({ op: 3, to: `${seId}/r/e`, pc: { 'senv:Sgn': { msg: new Uint8Array([1]) } } });
        refused(await send({ op: 2, to: `${seId}/r/e/cSgn` }), 'a signature that is no DER ECDSA-Sig-Value of the curve', `DER ${hex(junk.subarray(0, 4))}`);
        equal(pc(await send({ op: 2, to: `${seId}/r/e` }, false), 'senv:Sgn').Sgn, undefined, 'DER: no Sgn kept');
        await engine.close();
      }
    },
  },
  {
    name: 'backend contract: a stream that is no object, or lacks a method of the contract, answers 5000 naming it (not the runtime\'s TypeError); what it has of abort() is called, a kInf key made for it deleted',
    async run() {
      {
        const { engine, seId, send } = await setup((b) => void (b.digest = () => undefined as unknown as ReturnType<typeof b.digest>));
        await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4, msg: new Uint8Array([1]) } } });
        refused(await send({ op: 2, to: `${seId}/r/h/cHsh` }), 'a digest stream that is undefined, an object expected', 'digest');
        await engine.close();
      }
      {
        let aborted = 0;
        const { engine, seId, send } = await setup((b) => {
          b.cipher = () => ({ update: async () => new Uint8Array(0), abort: () => void aborted++ }) as unknown as CipherStream;
        });
        await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kDt: new Uint8Array(16), msg: new Uint8Array(16) } } });
        await send({ op: 1, to: `${seId}/r/c`, ty: 20001, pc: { 'senv:algP': { nc: new Uint8Array(12) } } });
        refused(await send({ op: 2, to: `${seId}/r/c/Enc` }), 'a cipher stream without final()', 'cipher');
        equal(aborted, 1, 'cipher: its abort() called');
        equal(pc(await send({ op: 2, to: `${seId}/r/c` }), 'senv:Cph').cD, undefined, 'cipher: no cD kept');
        await engine.close();
      }
      {
        const { engine, seId, send } = await setup((b) => void (b.signature = () => null as unknown as ReturnType<typeof b.signature>));
        await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 's', Salg: 25, kDt: new Uint8Array(32), msg: new Uint8Array([1]) } } });
        refused(await send({ op: 2, to: `${seId}/r/s/cSgn` }), 'a signature stream that is null, an object expected', 'HMAC');
        await engine.close();
      }
      {
        const made: KeyHandle[] = [], released = new Set<KeyHandle>();
        const { engine, seId, send } = await setup((b) => {
          const importKey = b.importKey.bind(b), releaseKey = b.releaseKey.bind(b), signature = b.signature.bind(b);
          b.importKey = async (...a: Parameters<typeof importKey>) => (made.push(await importKey(...a)), made.at(-1)!);
          b.releaseKey = (k: KeyHandle) => void (released.add(k), releaseKey(k));
          b.signature = (...a: Parameters<typeof signature>) => ({ ...(signature(...a) as object), verify: 'yes' }) as unknown as ReturnType<typeof signature>;
        });
        const p256 = ecdsa('P-256'), msg = utf8('verified with the key of kInf'), pair = p256.keygen();
        const kInf = btoa(String.fromCharCode(...pair.publicKey));
        await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 'v', Salg: 33, kInf, Sgn: p256.sign(msg, pair.secretKey), msg } } });
        refused(await send({ op: 2, to: `${seId}/r/v/vSgn` }), 'a signature stream without verify()', 'ECDSA under kInf');
        assert(made.length > 0 && made.every((k) => released.has(k)), 'the key imported from kInf was deleted');
        await engine.close();
      }
    },
  },
  {
    name: 'backend contract: a backend instance serves one open engine at a time; once it closed, or its create failed, another may use it',
    async run() {
      const be = new SoftwareBackend();
      let opened = 0;
      const open = be.open.bind(be);
      be.open = () => (opened++, open());
      const a = await McsEngine.create({ backends: [be] });
      const err = await rejection(McsEngine.create({ backends: [be] }), 'a second engine');
      assert(err instanceof InvalidInputError, `a second engine: an InvalidInputError, got ${String(err)}`);
      assert(/SE backend 1 \('[0-9a-f]+'\) is used by another open McsEngine/.test(err.message), err.message);
      const twice = new SoftwareBackend();
      const dup = await rejection(McsEngine.create({ backends: [twice, twice] }), 'given twice');
      assert(dup instanceof Error && /SE backend 2 \('[0-9a-f]+'\) is given twice/.test(dup.message), `given twice: ${String(dup)}`);
      equal(opened, 1, 'opened once');
      // (coverage gaps) One with no valid unique ID yet (a card's comes at open()), or whose description cannot be read, is named so,
      // never by what its description holds.
      const unnamed = new SoftwareBackend();
      Object.defineProperty(unnamed, 'description', { value: { ...unnamed.description, uniqueId: 'reader <1>' } });
      const unreadable = new SoftwareBackend();
      Object.defineProperty(unreadable, 'description', { get: () => { throw new Error('card removed'); } });
      for (const [b, name] of [[unnamed, 'its unique ID not known yet'], [unreadable, 'its description unreadable']] as const) {
        const e = await rejection(McsEngine.create({ backends: [b, b] }), name);
        assert(e instanceof InvalidInputError, `${name}: an InvalidInputError, got ${String(e)}`);
        equal(e.message, `SE backend 2 (${name}) is given twice: one backend instance serves one engine at a time (close that engine first, or give another instance)`, name);
      }
      // A failed create gives the backend back: a retry (here after the other engine closed) may use it.
      const flaky = new SoftwareBackend();
      flaky.open = async () => { throw new StateError('reader not ready'); };
      await a.close();
      const notReady = await rejection(McsEngine.create({ backends: [be, flaky] }), 'a backend that cannot open');
      assert(notReady instanceof StateError && notReady.message.includes('reader not ready'), `a backend that cannot open: ${String(notReady)}`);
      const again = await McsEngine.create({ backends: [be] });
      equal(again.seIds.join(), a.seIds.join(), 'the same SE again');
      await again.close();
    },
  },
  {
    name: 'backend contract: two backends with one M2M-SE-ID are refused, naming it; a create that fails leaves the caller\'s backends open for a retry',
    async run() {
      const closes: string[] = [];
      const made = (id: string, tag: string) => {
        const b = new SoftwareBackend({ uniqueId: id });
        const close = b.close.bind(b);
        b.close = () => (closes.push(tag), close());
        return b;
      };
      const [first, second] = [made('5e', 'first'), made('5e', 'second')];
      const err = await rejection(McsEngine.create({ backends: [first, second] }), 'one M2M-SE-ID twice');
      assert(err instanceof StateError && err.message === 'two backends share the M2M-SE-ID 4-5e', `one M2M-SE-ID twice: ${String(err)}`);
      equal(closes.join(), '', 'the caller\'s backends are its own to close');
      const engine = await McsEngine.create({ backends: [first, made('6f', 'third')] });
      equal(engine.seIds.join(), '4-5e,4-6f', 'the retry');
      await engine.close();
      equal([...closes].sort().join(), 'first,third', 'closed by the engine that served them');
    },
  },
  {
    name: 'backend contract: an objectStore read of the wrong type or length answers 5000 naming it, and a refused array is zeroized',
    async run() {
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
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20009, pc: { 'senv:Sdo': { rn: 'o', msg: new Uint8Array([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]) } } })).rsc, 2001, 'sdo');
      for (const [give, what] of cases) {
        const v = give();
        read = async () => v as Uint8Array;
        for (const binary of [true, false]) refused(await send({ op: 2, to: `${seId}/r/o` }, binary), what, `${what} (binary ${binary})`);
        if (v instanceof Uint8Array && v.buffer.byteLength > 0) assert(zeroized(v), `${what}: zeroized`);
      }
      read = async (id) => held.get(id)!.slice();
      equalHex(pc(await send({ op: 2, to: `${seId}/r/o` }), 'senv:Sdo').msg as Uint8Array, 'deadbeef01020304', 'a read by the contract');
      await engine.close();
    },
  },
  {
    name: 'backend contract: a device SE refuses kExp: true (5001) before it makes a key, and the data an objectStore write was lent is zeroized once written',
    async run() {
      const held = new Map<string, Uint8Array>(), lent: Uint8Array[] = [];
      let keys = 0;
      const { engine, seId, send } = await setup((b) => {
        b.capabilities.keyStorage = 'device';
        const importKey = b.importKey.bind(b);
        b.importKey = (...a: Parameters<typeof importKey>) => (keys++, importKey(...a));
        (b as { objectStore?: ObjectStore }).objectStore = {
          write: async (id, data) => void (lent.push(data), held.set(id, data.slice())),
          read: async (id) => held.get(id)!.slice(),
          remove: async (id) => void held.delete(id),
        };
      });
      const r = await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kExp: true, kDt: new Uint8Array(16).fill(1) } } });
      equal(r.rsc, 5001, 'kExp on a device SE');
      equal(dbg(r), 'kExp (keyExportable): this SE keeps keys on the device and never exports them', 'kExp: m2m:dbg');
      equal(keys, 0, 'no key imported');
      equal((await send({ op: 2, to: `${seId}/r/c` })).rsc, 4004, 'no <cipher> created');
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20009, pc: { 'senv:Sdo': { rn: 'o', msg: unhex('deadbeef01020304') } } })).rsc, 2001, 'sdo');
      equal(lent.length, 1, 'one write');
      assert(zeroized(lent[0]!), 'the written data zeroized once the device holds it');
      equalHex(pc(await send({ op: 2, to: `${seId}/r/o` }), 'senv:Sdo').msg as Uint8Array, 'deadbeef01020304', 'the device holds it');
      await engine.close();
    },
  },
  {
    name: 'backend contract: a key the engine makes for one operation (kInf\'s public key, a key whose public key cannot be read) is deleted after a verification, a stream the backend refused, or a generateKey that failed',
    async run() {
      const made: KeyHandle[] = [], deleted = new Set<KeyHandle>();
      let failSignature = false, failPublicKey = false;
      const { engine, seId, send } = await setup((b) => {
        // Every chunk streams: a new kInf then aborts a stream open under the old kInf's key.
        b.capabilities.preferredBatchSize = 1;
        const importKey = b.importKey.bind(b), generateKey = b.generateKey.bind(b), releaseKey = b.releaseKey.bind(b);
        const signature = b.signature.bind(b), publicKey = b.publicKey.bind(b);
        b.importKey = async (...a: Parameters<typeof importKey>) => (made.push(await importKey(...a)), made.at(-1)!);
        b.generateKey = async (...a: Parameters<typeof generateKey>) => (made.push(await generateKey(...a)), made.at(-1)!);
        // The software SE has no deleteKey: the engine deletes its keys with releaseKey.
        b.releaseKey = (k: KeyHandle) => void (deleted.add(k), releaseKey(k));
        b.signature = (...a: Parameters<typeof signature>) => {
          if (failSignature) throw new StateError('no signature now');
          return signature(...a);
        };
        b.publicKey = (...a: Parameters<typeof publicKey>) => {
          if (failPublicKey) throw new StateError('no public key now');
          return publicKey(...a);
        };
      });
      const p256 = ecdsa('P-256'), msg = utf8('verified with the key of kInf');
      const pairs = [p256.keygen(), p256.keygen()];
      const kInf = (i: number) => btoa(String.fromCharCode(...pairs[i]!.publicKey));
      const live = (what: string) => equal(made.filter((k) => !deleted.has(k)).length, 0, `${what}: every key made was deleted`);
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 'v', Salg: 33, kInf: kInf(0), Sgn: p256.sign(msg, pairs[0]!.secretKey) } } })).rsc, 2001, 'verify-only');
      equal((await send({ op: 3, to: `${seId}/r/v`, pc: { 'senv:Sgn': { msg } } })).rsc, 2004, 'message streamed under kInf');
      equal(pc(await send({ op: 2, to: `${seId}/r/v/vSgn` }), 'senv:Sgn').vR, true, 'verified');
      live('after a verification');
      equal((await send({ op: 3, to: `${seId}/r/v`, pc: { 'senv:Sgn': { msg } } })).rsc, 2004, 'a new message');
      equal((await send({ op: 3, to: `${seId}/r/v`, pc: { 'senv:Sgn': { kInf: kInf(1) } } })).rsc, 2004, 'a new kInf');
      live('after a new kInf');
      failSignature = true;
      await send({ op: 2, to: `${seId}/r/v/vSgn` });
      failSignature = false;
      live('after the backend refused the stream');
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 'g', Salg: 33 } } })).rsc, 2001, 'no key yet');
      failPublicKey = true;
      equal((await send({ op: 2, to: `${seId}/r/g/gnK` })).rsc, 4005, 'no public key for the new key (a StateError)');
      live('after generateKey failed');
      assert(made.length >= 3, 'keys were made');
      await engine.close();
    },
  },
  {
    name: 'backend contract: a <cipher> that had no key to stream with is asked for a stream again once generateKey gave it one (docs/mcs.md "Data in chunks")',
    async run() {
      let opened = 0;
      const { engine, seId, send } = await setup((b) => {
        b.capabilities.preferredBatchSize = 16;
        const cipher = b.cipher.bind(b);
        b.cipher = (...a: Parameters<typeof cipher>) => (opened++, cipher(...a));
      });
      const c = `${seId}/r/c`, nonce = prng(12)(12), m = prng(13)(48);
      equal((await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100, kExp: true } } })).rsc, 2001, 'no key yet');
      equal((await send({ op: 1, to: c, ty: 20001, pc: { 'senv:algP': { nc: nonce } } })).rsc, 2001, 'nonce');
      equal((await send({ op: 3, to: c, pc: { 'senv:Cph': { msg: m.subarray(0, 16) } } })).rsc, 2004, 'a batch without a key');
      const kDt = pc(await send({ op: 2, to: `${c}/gnK` }), 'senv:Cph').kDt as Uint8Array;
      equal(opened, 0, 'no stream without a key');
      equal((await send({ op: 3, to: c, pc: { 'senv:Cph': { msg: m.subarray(16) } } })).rsc, 2004, 'a batch with the key');
      equal(opened, 1, 'the stream opened as that batch arrived');
      equalHex(pc(await send({ op: 2, to: `${c}/Enc` }), 'senv:Cph').cD as Uint8Array, await aes('AES-GCM', kDt, nonce, m), 'the streamed encryption');
      equal(opened, 1, 'the operation finished that stream');
      await engine.close();
    },
  },
  {
    name: 'backend contract: a resource whose algorithm, rngType or rebootType the backend does not offer is refused at CREATE (5001)',
    async run() {
      const { engine, seId, send } = await setup((b) => {
        b.capabilities.cipherAlgorithms = [13];
        b.capabilities.hashAlgorithms = [4];
        b.capabilities.rngTypes = [1];
        b.capabilities.rebootTypes = [1];
      });
      for (const [ty, root, content, what] of [
        [20002, 'senv:Cph', { Calg: 1001, mbs: 16 }, /1001/], [20004, 'senv:Hsh', { Halg: 5 }, /\(5\)/],
        [20007, 'senv:Rnd', { rgT: 2 }, /rngType 2/], [20010, 'senv:Srbt', { rbT: 2 }, /rebootType 2/],
      ] as const) {
        const r = await send({ op: 1, to: `${seId}/r`, ty, pc: { [root]: content } });
        equal(r.rsc, 5001, root);
        assert(what.test(String(dbg(r))), `${root}: ${String(dbg(r))}`);
      }
      await engine.close();
    },
  },
  {
    name: 'backend contract: a result of the wrong length is zeroized when refused (random bytes): handed over all the same',
    async run() {
      const refusedBytes: Uint8Array[] = [];
      const { engine, seId, send } = await setup((b) => {
        const rnd = b.random.bind(b);
        b.random = async (t: RngType, n: number) => {
          const r = (await rnd(t, n + 1)) as Uint8Array;
          refusedBytes.push(r);
          return r;
        };
      });
      await send({ op: 1, to: `${seId}/r`, ty: 20007, pc: { 'senv:Rnd': { rn: 'x', rgT: 1, Dsz: 32 } } });
      refused(await send({ op: 2, to: `${seId}/r/x/gnR` }), 'random bytes of 33 bytes, 32 expected', 'random');
      equal(refusedBytes.length, 1, 'one call');
      assert(zeroized(refusedBytes[0]!), 'the refused bytes zeroized');
      await engine.close();
    },
  },
  {
    name: 'backend contract: the unpatched software SE answers every resource type as Web Crypto computes it',
    async run() {
      const rnd = prng(72);
      const { engine, seId, send } = await setup();
      await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4, msg: utf8('abc') } } });
      equalHex(pc(await send({ op: 2, to: `${seId}/r/h/cHsh` }), 'senv:Hsh').Hv as Uint8Array, SHA256_ABC, 'SHA-256');
      const hk = rnd(32);
      await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: hk.slice(), msg: utf8('hi') } } });
      equalHex(pc(await send({ op: 2, to: `${seId}/r/m/cSgn` }), 'senv:Sgn').Sgn as Uint8Array, await hmacSha256(hk, utf8('hi')), 'HMAC-SHA-256');
      await send({ op: 3, to: `${seId}/r/m`, pc: { 'senv:Sgn': { msg: utf8('hi') } } });
      equal(pc(await send({ op: 2, to: `${seId}/r/m/vSgn` }), 'senv:Sgn').vR, true, 'HMAC verify');
      for (const format of ['der', 'raw']) {
        await send({ op: 1, to: `${seId}/r`, ty: 20012, pc: { 'senv:Sgn': { rn: `e${format}`, Salg: 33, sgF: format } } });
        const point = unb64(pc(await send({ op: 2, to: `${seId}/r/e${format}/gnK` }, false), 'senv:Sgn').kInf);
        await send({ op: 3, to: `${seId}/r/e${format}`, pc: { 'senv:Sgn': { msg: utf8('m') } } });
        const sig = pc(await send({ op: 2, to: `${seId}/r/e${format}/cSgn` }), 'senv:Sgn').Sgn as Uint8Array;
        assert(await p256Verifies(point, format === 'der' ? p256Raw(sig) : sig, utf8('m')), `ECDSA P-256 ${format}`);
      }
      const key = rnd(16), nonce = rnd(12);
      await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 10000, kDt: key.slice() } } });
      await send({ op: 1, to: `${seId}/r/c`, ty: 20001, pc: { 'senv:algP': { nc: nonce } } });
      for (const m of [utf8('short'), rnd(3000)]) {
        const sealed = await aes('AES-GCM', key, nonce, m);
        await send({ op: 3, to: `${seId}/r/c`, pc: { 'senv:Cph': { msg: m } } });
        equalHex(pc(await send({ op: 2, to: `${seId}/r/c/Enc` }), 'senv:Cph').cD as Uint8Array, sealed, `AES-GCM of ${m.length} bytes`);
        // The other direction replays the data held (no stream open for it).
        await send({ op: 3, to: `${seId}/r/c`, pc: { 'senv:Cph': { msg: unhex(sealed) } } });
        equalBytes(pc(await send({ op: 2, to: `${seId}/r/c/Dec` }), 'senv:Cph').cD as Uint8Array, m, `AES-GCM open of ${m.length} bytes`);
      }
      await send({ op: 1, to: `${seId}/r`, ty: 20002, pc: { 'senv:Cph': { rn: 'p', Calg: 24, mbs: 100, kDt: key.slice() } } });
      await send({ op: 1, to: `${seId}/r/p`, ty: 20001, pc: { 'senv:algP': { iV: new Uint8Array(16) } } });
      equalHex(pc(await send({ op: 2, to: `${seId}/r/p/Enc` }), 'senv:Cph').cD as Uint8Array, await aes('AES-CBC', key, new Uint8Array(16), new Uint8Array(0)), 'AES-CBC of nothing: one block of padding');
      await send({ op: 1, to: `${seId}/r`, ty: 20007, pc: { 'senv:Rnd': { rn: 'x', rgT: 1, Dsz: 77 } } });
      equal((pc(await send({ op: 2, to: `${seId}/r/x/gnR` }), 'senv:Rnd').rndD as Uint8Array).length, 77, 'random data');
      await engine.close();
    },
  },
];

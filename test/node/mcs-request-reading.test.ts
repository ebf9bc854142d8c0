// How the engine reads an in-process request (docs/mcs.md): as it was sent,
// the same whether it is served at once or waits for its turn (and is
// copied then), with or without a data directory. Byte values are read
// through their typed-array internal slots, so a Buffer, a subclass, an own
// `length` or a Uint8Array of another realm are the bytes they hold; a view
// of a detached buffer, a getter or proxy trap that throws, content nested
// too deep are the client's error (4000), never a rejection or 5000; list
// values are read once; only own members count; and an UPDATE is applied
// whole or not at all. McsClient reads its byte arguments the same way.
import { afterEach, describe, expect, it } from 'vitest';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import vm from 'node:vm';
import { ecdsa, InvalidInputError, McsClient, McsEngine, SoftwareBackend, type McsResponse } from '../../src/index.ts';
import { formatTimestamp } from '../../src/mcs/codec.ts';
import { SeHost } from '../../src/mcs/host.ts';
import { JournalStore } from '../../src/mcs/store/journal.ts';
import { compiledType } from '../../src/mcs/registry.ts';
import { Resource } from '../../src/mcs/resource.ts';
import { Accumulator } from '../../src/mcs/accumulator.ts';
import { hashType } from '../../src/mcs/types/hash.ts';
import { seType } from '../../src/mcs/types/se.ts';
import { Session, body, fails, ok, unb64 } from '../portable/mcs-kit.ts';

const MASTER = new Uint8Array(32).fill(7);
const dirs: string[] = [];
const undo: (() => void)[] = [];

afterEach(() => {
  while (undo.length) undo.pop()!();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'senv-reading-'));
  dirs.push(d);
  return d;
}

/** A registered session on a new engine, with a data directory when `dir` is given. */
async function session(options: { dir?: string; memoryQuota?: number } = {}): Promise<Session> {
  const engine = await McsEngine.create({ ...(options.dir ? { dataDir: options.dir, masterKey: MASTER } : {}), memoryQuota: options.memoryQuota });
  const s = new Session(engine, 'CAE1');
  await s.register();
  return s;
}

/** Sends with the SE free (served at once) or busy with an earlier request (`queued`: the request waits for its turn). */
async function onPath(s: Session, queued: boolean, send: () => Promise<McsResponse>): Promise<McsResponse> {
  const busy = queued ? s.retrieve(s.seId) : undefined;
  const r = await send();
  await busy;
  return r;
}

const PATHS = [false, true] as const;
const pathName = (queued: boolean) => (queued ? 'queued' : 'at once');

function detachedCopy(bytes: Uint8Array): Uint8Array {
  const v = Uint8Array.from(bytes);
  structuredClone(v.buffer, { transfer: [v.buffer] });
  return v;
}

/** A subclass instance holding `bytes` whose `length` getter answers `length`. */
function claimingLength(bytes: Uint8Array, length: number): Uint8Array {
  class Claiming extends Uint8Array {}
  Object.defineProperty(Claiming.prototype, 'length', { get: () => length });
  return Claiming.from(bytes);
}

/** Values that hold the bytes of `k` but lie about them through what a JS caller could change. */
function lyingBytes(k: Uint8Array): Record<string, () => Uint8Array> {
  const n = k.length;
  class LyingMethods extends Uint8Array {
    override slice(): Uint8Array<ArrayBuffer> {
      return new Uint8Array(n).fill(0xee);
    }
    override subarray(): Uint8Array<ArrayBuffer> {
      return new Uint8Array(n).fill(0xee);
    }
    override set(): void {}
  }
  const ownLength = (len: number) => Object.defineProperty(Uint8Array.from(k), 'length', { value: len });
  return {
    'a subclass claiming twice its length': () => claimingLength(k, 2 * n),
    'a subclass claiming half its length': () => claimingLength(k, n >> 1),
    'an own length of twice': () => ownLength(2 * n),
    'an own length of half': () => ownLength(n >> 1),
    'a subclass whose slice, subarray and set lie': () => LyingMethods.from(k),
    'a Buffer': () => Buffer.from(k),
    'a Uint8Array of another realm': () => {
      const other = vm.runInNewContext(`new Uint8Array(${n})`) as Uint8Array;
      other.set(k);
      return other;
    },
  };
}

const K = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const NONCE = new Uint8Array(12).fill(9);
const gcmHex = (key: Uint8Array, plain: Uint8Array) => {
  const c = createCipheriv(`aes-${key.length * 8}-gcm` as 'aes-128-gcm', key, NONCE);
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]).toString('hex');
};
const hexOf = (v: unknown) => Buffer.from(v as Uint8Array).toString('hex');
const sha256Hex = (v: Uint8Array | string) => createHash('sha256').update(v).digest('hex');

/** The three ways a byte value enters: a key at CREATE, data at CREATE, a chunk an UPDATE appends. Each checks what was stored. */
const BYTE_USES: Record<string, (s: Session, rn: string, v: unknown, queued: boolean) => Promise<McsResponse | string>> = {
  async 'kDt of <cipher>'(s, rn, v, queued) {
    const r = await onPath(s, queued, () => s.send(1, s.seId, { 'senv:Cph': { rn, Calg: 1001, mbs: 1000, kDt: v } }, 20002, true));
    if (r.rsc !== 2001) return r;
    ok(await s.create(s.path('reg', rn), 20001, { 'senv:algP': { rn: 'p', nc: Buffer.from(NONCE).toString('base64') } }), 2001, 'nonce');
    ok(await s.send(3, s.path('reg', rn), { 'senv:Cph': { msg: new TextEncoder().encode('hello') } }, undefined, true), 2004, 'plaintext');
    const cD = body(ok(await s.send(2, s.path('reg', rn, 'encrypt'), undefined, undefined, true), 2000, 'encrypt'), 'senv:Cph').cD;
    return hexOf(cD) === gcmHex(K, new TextEncoder().encode('hello')) ? 'as sent' : 'another key';
  },
  async 'msg of <sensitiveDataObject>'(s, rn, v, queued) {
    const r = await onPath(s, queued, () => s.send(1, s.seId, { 'senv:Sdo': { rn, msg: v } }, 20009, true));
    if (r.rsc !== 2001) return r;
    const msg = body(ok(await s.send(2, s.path('reg', rn), undefined, undefined, true), 2000, 'read'), 'senv:Sdo').msg;
    return hexOf(msg) === hexOf(K) ? 'as sent' : 'other data';
  },
  async 'a chunk of <hash>'(s, rn, v, queued) {
    ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn, Halg: 4 } }), 2001, 'hash');
    const r = await onPath(s, queued, () => s.send(3, s.path('reg', rn), { 'senv:Hsh': { msg: v } }, undefined, true));
    if (r.rsc !== 2004) return r;
    const hv = body(ok(await s.send(2, s.path('reg', rn, 'calculateHash'), undefined, undefined, true), 2000, 'hash'), 'senv:Hsh').Hv;
    return hexOf(hv) === sha256Hex(K) ? 'as sent' : 'another message';
  },
};

describe('Mcs: a request is read as it was sent', () => {
  it('with a data directory, a chunk given as a Buffer is copied, not sliced: the caller\'s Buffer is neither read after send() nor zeroized', async () => {
    const s = await session({ dir: tempDir(), memoryQuota: 2000 });
    ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
    const chunk = Buffer.from('abc');
    const sent = s.send(3, s.path('reg', 'h'), { 'senv:Hsh': { msg: chunk } }, undefined, true);
    chunk.write('xyz');
    ok(await sent, 2004, 'chunk');
    expect(chunk.toString(), 'the caller\'s Buffer after the store\'s write').toBe('xyz');
    expect(hexOf(body(ok(await s.send(2, s.path('reg', 'h', 'cHsh'), undefined, undefined, true), 2000, 'hash'), 'senv:Hsh').Hv)).toBe(sha256Hex('abc'));
    ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100000, kDt: Buffer.alloc(16).toString('base64') } }), 2001, 'cipher');
    ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: Buffer.alloc(32).toString('base64') } }), 2001, 'HMAC');
    for (const [to, root] of [['c', 'senv:Cph'], ['m', 'senv:Sgn']] as const) {
      const data = Buffer.from('caller data');
      ok(await s.send(3, s.path('reg', to), { [root]: { msg: data } }, undefined, true), 2004, `${root} chunk`);
      expect(data.toString(), `${root}: the caller's Buffer`).toBe('caller data');
    }
    // Refused by the quota after the copy was made: the copy is zeroized, not the caller's memory.
    const big = Buffer.alloc(5000, 0x61);
    fails(await s.send(3, s.path('reg', 'c'), { 'senv:Cph': { msg: big } }, undefined, true), 5207, 'beyond the quota');
    expect(big.every((b) => b === 0x61), 'the caller\'s Buffer after a refusal').toBe(true);
    await s.engine.close();
  });

  it('byte values are read through their typed-array slots: a length, slice or realm that differs changes nothing, on either path, with or without a data directory', async () => {
    for (const dir of [undefined, tempDir()]) {
      const s = await session({ dir });
      let n = 0;
      for (const [use, run] of Object.entries(BYTE_USES)) {
        for (const [kind, make] of Object.entries(lyingBytes(K))) {
          for (const queued of PATHS) {
            const what = `${dir ? 'data directory' : 'memory'}, ${use}, ${kind}, ${pathName(queued)}`;
            const rn = `x${++n}`;
            const got = await run(s, rn, make(), queued);
            expect(typeof got === 'string' ? got : `${got.rsc} ${String(got.pc?.['m2m:dbg'])}`, what).toBe('as sent');
            ok(await s.delete(s.path('reg', rn)), 2002, what);
          }
        }
        // An object that only inherits from Uint8Array.prototype holds no bytes.
        for (const queued of PATHS) {
          const got = await run(s, `x${++n}`, Object.create(Uint8Array.prototype), queued);
          expect(typeof got === 'string' ? got : got.rsc, `${use}, Object.create(Uint8Array.prototype), ${pathName(queued)}`).toBe(4000);
        }
      }
      // A 16-byte key that claims 32 bytes is not an AES-256 key (it would have been K || 0^16).
      const claims32 = Object.defineProperty(Uint8Array.from(K), 'length', { value: 32 });
      fails(await s.send(1, s.seId, { 'senv:Cph': { rn: 'k', Calg: 1002, mbs: 100, kDt: claims32 } }, 20002, true), 4000, 'a 16-byte key claiming 32', /must be 32 bytes/);
      await s.engine.close();
    }
  });

  it('a chunk that claims fewer bytes than it holds is appended whole, with the attributes beside it, in memory and in the data directory', async () => {
    const et1 = '20990101T000000', et2 = '20980101T000000';
    const A16 = new Uint8Array(16).fill(0x41);
    for (const dir of [undefined, tempDir()]) {
      const s = await session({ dir });
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, et: et1 } }), 2001, 'hash');
      ok(await s.send(3, s.path('reg', 'h'), { 'senv:Hsh': { msg: Buffer.from('abc') } }, undefined, true), 2004, 'abc');
      ok(await s.send(3, s.path('reg', 'h'), { 'senv:Hsh': { et: et2, msg: claimingLength(A16, 8) } }, undefined, true), 2004, 'et and a chunk claiming 8 bytes');
      const held = body(ok(await s.retrieve(s.path('reg', 'h')), 2000, 'read'), 'senv:Hsh');
      expect(held.et).toBe(`${et2},000000`);
      expect(Buffer.from(unb64(held.msg)).toString()).toBe(`abc${'A'.repeat(16)}`);
      await s.engine.close();
      if (dir) {
        const again = new Session(await McsEngine.create({ dataDir: dir, masterKey: MASTER }), 'CAE1');
        expect(body(ok(await again.retrieve(s.path('reg', 'h')), 2000, 'after a restart'), 'senv:Hsh').msg, 'the journal holds what the engine applied').toBe(held.msg);
        await again.engine.close();
      }
    }
  });

  it('an UPDATE whose chunk cannot be appended changes nothing: no attribute beside it is applied, nothing counted', async () => {
    const s = await session();
    const et1 = '20990101T000000';
    const acp = body(ok(await s.create(s.seId, 1, { 'm2m:acp': { rn: 'acp', pv: { acr: [] }, pvs: { acr: [] } } }), 2001, 'policy'), 'm2m:acp').ri;
    ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, et: et1, msg: Buffer.from('abc').toString('base64') } }), 2001, 'hash');
    const memory = async () => body(ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory'), 'm2m:mem').mma;
    const before = await memory();
    // The accumulator growing for the chunk fails (as an allocation that runs out of memory would).
    const append = Accumulator.prototype.append;
    Accumulator.prototype.append = () => {
      throw new RangeError('Array buffer allocation failed');
    };
    undo.push(() => {
      Accumulator.prototype.append = append;
    });
    fails(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { et: '20980101T000000', acpi: [acp], msg: Buffer.from('def').toString('base64') } }), 5000, 'append fails');
    undo.pop()!();
    const held = body(ok(await s.retrieve(s.path('reg', 'h')), 2000, 'read'), 'senv:Hsh');
    expect(held.et, 'et unchanged').toBe(`${et1},000000`);
    expect(held.acpi, 'acpi not set').toBeUndefined();
    expect(Buffer.from(unb64(held.msg)).toString(), 'the message unchanged').toBe('abc');
    expect(await memory(), 'nothing counted against the quota').toBe(before);
    ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: Buffer.from('def').toString('base64') } }), 2004, 'the next chunk');
    expect(Buffer.from(unb64(body(ok(await s.retrieve(s.path('reg', 'h')), 2000, 'read'), 'senv:Hsh').msg)).toString()).toBe('abcdef');
    await s.engine.close();
  });

  it('a view of a detached buffer answers 4000 naming it, on either path', async () => {
    const s = await session();
    for (const [use, run] of Object.entries(BYTE_USES)) {
      for (const queued of PATHS) {
        const got = await run(s, `d${use.length}${queued}`, detachedCopy(K), queued);
        if (typeof got === 'string') throw new Error(`${use}, ${pathName(queued)}: accepted`);
        fails(got, 4000, `${use}, ${pathName(queued)}`, /^(kDt|msg)\b.* is a view of a detached ArrayBuffer$/);
      }
    }
    ok(await s.retrieve(s.seId), 2000, 'the SE goes on');
    await s.engine.close();
  });

  it('send() resolves for a request whose getters or proxy traps throw: 4000, never a rejection or 5000', async () => {
    const s = await session();
    const boom = () => {
      throw new Error('boom');
    };
    const base = () => ({ op: 2, to: s.seId, fr: 'CAE1', rqi: 'g1', rvi: '3' });
    const throwing = <T extends object>(o: T, key: string): T => Object.defineProperty(o, key, { get: boom, enumerable: true });
    const update = (content: unknown) => ({ op: 3, to: s.path('reg'), fr: 'CAE1', rqi: 'g2', rvi: '3', pc: content });
    const cases: Record<string, () => unknown> = {
      'rqi getter': () => throwing(base(), 'rqi'),
      'op getter': () => throwing(base(), 'op'),
      'a Proxy request whose get throws': () => new Proxy(base(), { get: boom }),
      'a Proxy request whose ownKeys throws': () => new Proxy(base(), { ownKeys: boom }),
      'rvi getter, with a parse error': () => throwing({ ...base(), op: 9 }, 'rvi'),
      'attribute getter': () => update({ 'senv:Senv': throwing({}, 'hcl') }),
      'pc Proxy whose get throws': () => update(new Proxy({ 'senv:Senv': {} }, { get: boom })),
      'pc Proxy whose ownKeys throws': () => update(new Proxy({ 'senv:Senv': {} }, { ownKeys: boom })),
      'content Proxy whose ownKeys throws': () => update({ 'senv:Senv': new Proxy({}, { ownKeys: boom }) }),
      'list whose element getter throws': () => update({ 'senv:Senv': { hal: throwing(['a'], '0') } }),
    };
    // Thrown values that instanceof itself cannot test (it throws for them).
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    for (const [what, value] of Object.entries({ 'a revoked proxy': revoked.proxy, 'a proxy whose getPrototypeOf throws': new Proxy({}, { getPrototypeOf: boom }) })) {
      const raise = () => {
        throw value;
      };
      cases[`to getter throwing ${what}`] = () => Object.defineProperty(base(), 'to', { get: raise, enumerable: true });
      cases[`attribute getter throwing ${what}`] = () => update({ 'senv:Senv': Object.defineProperty({}, 'hcl', { get: raise, enumerable: true }) });
    }
    for (const [name, make] of Object.entries(cases)) {
      for (const queued of PATHS) {
        let r: McsResponse | undefined;
        await onPath(s, queued, async () => (r = await s.engine.send(make(), { binary: true })));
        fails(r!, 4000, `${name}, ${pathName(queued)}`, /cannot be read/);
        expect(r!.pc!['m2m:dbg'], 'never the thrown message').not.toMatch(/boom/);
      }
    }
    const options = Object.defineProperty({}, 'binary', { get: boom });
    fails(await s.engine.send(base(), options), 4000, 'send() options whose getter throws', /options cannot be read/);
    // README: an options argument is an object, null or left out; a yes/no option true, false, null or left out.
    fails(await s.engine.send(base(), 5 as never), 4000, 'send() options that are a number', /send\(\) options must be an object of options, got number/);
    fails(await s.engine.send(base(), { binary: 'yes' } as never), 4000, 'binary that is a string', /binary must be true or false/);
    expect((await s.engine.send(base(), { binary: null } as never)).rsc, 'binary: null is left out').toBe(2000);
    ok(await s.retrieve(s.seId), 2000, 'the SE goes on');
    await s.engine.close();
  });

  it('a clock option that throws answers 5000 and never keeps the SE: requests queued behind, later ones, close() and the expiry timer go on', async () => {
    let failing = false;
    const engine = await McsEngine.create({
      clock: () => {
        if (failing) throw new Error('clock');
        return Date.now();
      },
    });
    const se = engine.seIds[0]!;
    let n = 0;
    const send = (op: number, to: string, pc?: object, ty?: number) => engine.send({ op, to, fr: 'CAE1', rqi: `c${++n}`, ...(ty ? { ty } : {}), ...(pc ? { pc } : {}) });
    const unhandled: unknown[] = [];
    const note = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', note);
    try {
      ok(await send(1, se, { 'senv:Senv': { rn: 'reg', sID: se, seL: 1 } }, 20011), 2001, 'register');
      // The CREATE holds the SE across its awaits: the RETRIEVE behind it reads the clock once its turn came.
      const creating = send(1, `${se}/reg`, { 'senv:Hsh': { rn: 'h', Halg: 4, et: '20991231T000000' } }, 20004);
      const queued = send(2, `${se}/reg`);
      failing = true;
      ok(await creating, 2001, 'the CREATE read the clock before');
      fails(await queued, 5000, 'queued behind, the clock failing at its turn');
      fails(await send(2, se), 5000, 'the clock failing before the turn');
      // A resource due in 50 ms: the expiry timer asks the failing clock and must not throw.
      failing = false;
      ok(await send(1, `${se}/reg`, { 'senv:Hsh': { rn: 'soon', Halg: 4, et: formatTimestamp(Date.now() + 50) } }, 20004), 2001, 'create soon');
      failing = true;
      await new Promise((r) => setTimeout(r, 150));
      failing = false;
      ok(await send(2, `${se}/reg`), 2000, 'the SE serves again');
      await new Promise((r) => setTimeout(r, 1200));
      fails(await send(2, `${se}/reg/soon`), 4004, 'removed once the clock answered again');
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', note);
    }
    await engine.close();
  });

  it('the masterKey option is read through its typed-array slots and copied: the caller\'s array is left alone', async () => {
    await expect(McsEngine.create({ dataDir: tempDir(), masterKey: detachedCopy(MASTER) })).rejects.toThrow(/masterKey is a view of a detached ArrayBuffer/);
    await expect(McsEngine.create({ dataDir: tempDir(), masterKey: 'k'.repeat(32) as unknown as Uint8Array })).rejects.toThrow(InvalidInputError);
    const dir = tempDir();
    const foreign = vm.runInNewContext('new Uint8Array(32).fill(7)') as Uint8Array;
    const first = await McsEngine.create({ dataDir: dir, masterKey: foreign });
    expect(Array.from(foreign).every((b) => b === 7), 'not zeroized').toBe(true);
    await first.close();
    // The same key given as a plain array opens what the foreign one sealed.
    const again = await McsEngine.create({ dataDir: dir, masterKey: MASTER.slice() });
    await again.close();
  });

  it('list values are read once: what is checked is what is stored', async () => {
    const s = await session();
    /** A list whose first member reads `first`, then `second`. */
    const flip = (first: unknown, second: unknown): unknown[] => {
      let reads = 0;
      return Object.defineProperty(['placeholder'], 0, { get: () => (reads++ === 0 ? first : second), enumerable: true });
    };
    for (const queued of PATHS) {
      const rn = `a${queued}`;
      ok(await onPath(s, queued, () => s.create(s.seId, 1, { 'm2m:acp': { rn, pv: { acr: [] }, pvs: { acr: [] }, lbl: flip('ok', { nested: true }) } })), 2001, 'lbl');
      expect(body(ok(await s.retrieve(s.path('reg', rn)), 2000, 'read'), 'm2m:acp').lbl, pathName(queued)).toEqual(['ok']);
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: `h${queued}`, Halg: 4 } }), 2001, 'hash');
      fails(await onPath(s, queued, () => s.update(s.path('reg', `h${queued}`), { 'senv:Hsh': { acpi: flip('x', 42) } })), 4000, `acpi, ${pathName(queued)}`, /'x' is not an <accessControlPolicy>/);
      // A hole is a missing value, not a skipped one.
      fails(await onPath(s, queued, () => s.update(s.path('reg', rn), { 'm2m:acp': { lbl: [, 'a'] } })), 4000, `a hole, ${pathName(queued)}`, /lbl \(labels\) must be a list/);
    }
    // A value whose toJSON would throw later is never what is stored: the registration can still be deleted.
    let armed = false;
    const later = { toJSON: () => (armed ? boomValue() : 'y') };
    ok(await s.create(s.seId, 1, { 'm2m:acp': { rn: 'later', pv: { acr: [] }, pvs: { acr: [] }, lbl: flip('ok', later) } }), 2001, 'lbl');
    armed = true;
    ok(await s.delete(s.seId), 2002, 'deregistration');
    await s.engine.close();
  });

  it('SeHost.remove sizes the subtree before it changes anything: a size it cannot take leaves the tree and its indexes whole', async () => {
    const backend = new SoftwareBackend();
    await backend.open();
    const host = new SeHost('4-00', backend, 1 << 20);
    const reg = new Resource(compiledType(seType), 'Senv1', 'reg', undefined, 0);
    reg.attrs.set('creator', 'CAE1');
    const first = new Resource(compiledType(hashType), 'Hsh1', 'first', reg, 0);
    const second = new Resource(compiledType(hashType), 'Hsh2', 'second', reg, 0);
    let armed = false;
    second.attrs.set('accessControlPolicyIDs', [{ toJSON: () => (armed ? boomValue() : 'y') }]);
    reg.children.set('first', first);
    reg.children.set('second', second);
    host.link(reg);
    const used = host.used;
    armed = true;
    expect(() => host.remove({ host, originator: 'CAE1', maxData: 1 << 20, now: 0, effects: [] }, reg)).toThrow('boom');
    expect([...host.byRi.keys()].sort()).toEqual(['Hsh1', 'Hsh2', 'Senv1']);
    expect(host.top.get('reg')).toBe(reg);
    expect(host.used).toBe(used);
    await backend.close();
  });

  it('content nested deeper than 16 levels is refused on both paths with the same text, so a queued request is never read later than it was sent', async () => {
    const s = await session();
    const nested = (levels: number, leaf: object = { v: 1 }) => {
      let v: object = leaf;
      for (let i = 0; i < levels; i++) v = { a: v };
      return v;
    };
    const lists = (levels: number) => {
      let v: unknown = 'x';
      for (let i = 0; i < levels; i++) v = [v];
      return v;
    };
    const TOO_DEEP = 'esi (e2eSecInfo) is nested too deep (request content nests at most 16 levels)';
    // pc is level 0, the root element 1, esi 2: objects 13 levels below esi are at level 15, the deepest.
    for (const queued of PATHS) {
      ok(await onPath(s, queued, () => s.update(s.seId, { 'senv:Senv': { esi: nested(13) } })), 2004, `deepest, ${pathName(queued)}`);
      for (const levels of [14, 15, 40]) {
        const r = await onPath(s, queued, () => s.update(s.seId, { 'senv:Senv': { esi: nested(levels) } }));
        expect([r.rsc, r.pc?.['m2m:dbg']], `${levels} levels below esi, ${pathName(queued)}`).toEqual([4000, TOO_DEEP]);
      }
      // A typed attribute refuses such content for its type, where a request read at once finds it wrong.
      const lbl = await onPath(s, queued, () => s.update(s.seId, { 'senv:Senv': { lbl: lists(30) } }));
      expect([lbl.rsc, lbl.pc?.['m2m:dbg']], `lbl, ${pathName(queued)}`).toEqual([4000, (await s.update(s.seId, { 'senv:Senv': { lbl: lists(2) } })).pc?.['m2m:dbg']]);
    }
    const leaf = { v: 'as sent' };
    const busy = s.retrieve(s.seId);
    const sent = s.update(s.seId, { 'senv:Senv': { esi: nested(20, leaf) } });
    leaf.v = 'changed after send()';
    await busy;
    fails(await sent, 4000, 'content 20 levels deep', new RegExp(`^${TOO_DEEP.replace(/[()]/g, '\\$&')}$`));
    let esi = body(ok(await s.retrieve(s.seId), 2000, 'read'), 'senv:Senv').esi as { a?: unknown; v?: unknown };
    while (esi.a) esi = esi.a as typeof esi;
    expect(esi.v, 'the esi stored before').toBe(1);
    await s.engine.close();
  });

  it('a queued request\'s content of more than 100,000 values is refused as its copy is made, with the copy\'s own text, not the JSON attribute\'s (coverage gap)', async () => {
    const s = await session();
    const esi = Object.fromEntries(Array.from({ length: 120_000 }, (_, i) => [`m${i}`, 0]));
    const r = await onPath(s, true, () => s.update(s.seId, { 'senv:Senv': { esi } }));
    expect([r.rsc, r.pc?.['m2m:dbg']]).toEqual([4000, 'request content too large to be read (shared or cyclic values?)']);
    expect(body(ok(await s.retrieve(s.seId), 2000, 'read'), 'senv:Senv').esi).toBeUndefined();
    await s.engine.close();
  });

  it('a JSON attribute takes data only, alike on both paths: bytes, Dates, boxed values, Maps, bigints, NaN and toJSON are refused, never stored as something else', async () => {
    const s = await session();
    const refused: [string, () => unknown, RegExp][] = [
      ['Buffer', () => Buffer.from([1, 2]), /bytes inside it go as base64 text/],
      ['Int16Array', () => new Int16Array([1, 2]), /bytes inside it/],
      ['ArrayBuffer', () => new ArrayBuffer(2), /bytes inside it/],
      ['DataView', () => new DataView(new ArrayBuffer(2)), /bytes inside it/],
      ['boxed string', () => new String('x'), /no Date, boxed value/],
      ['Date', () => new Date(0), /no Date, boxed value/],
      ['Map', () => new Map([[1, 2]]), /no Date, boxed value/],
      ['toJSON', () => ({ toJSON: () => 'read when served' }), /object with toJSON/],
      ['bigint', () => 1n, /a bigint is no JSON value/],
      ['NaN', () => Number.NaN, /NaN is no JSON number/],
      ['a toStringTag of its own', () => ({ [Symbol.toStringTag]: 'K', a: 1 }), /a toStringTag of its own/],
    ];
    for (const queued of PATHS) {
      const before = body(ok(await s.retrieve(s.seId), 2000, 'read'), 'senv:Senv').esi;
      for (const [what, make, message] of refused) {
        fails(await onPath(s, queued, () => s.update(s.seId, { 'senv:Senv': { esi: { cert: make() } } })), 4000, `${what}, ${pathName(queued)}`, message);
        expect(body(ok(await s.retrieve(s.seId), 2000, 'read'), 'senv:Senv').esi, `${what}, ${pathName(queued)}: nothing stored`).toEqual(before);
      }
      // A class instance is data (its own members), as JSON reads it; undefined and functions are left out.
      class Info {
        cert = 'abc';
        skipped = undefined;
        symbol = Symbol('left out');
        list = [1, undefined, 'x', Symbol('null'), () => 0];
        zero = -0;
        method() {}
      }
      const r = ok(await onPath(s, queued, () => s.update(s.seId, { 'senv:Senv': { esi: new Info() } })), 2004, `class instance, ${pathName(queued)}`);
      const esi = body(r, 'senv:Senv').esi as { zero: number };
      expect(esi, pathName(queued)).toEqual({ cert: 'abc', list: [1, null, 'x', null, null], zero: 0 });
      expect(Object.is(esi.zero, -0), 'JSON has no -0').toBe(false);
    }
    // Read at send(): a member changed while the request waits is not what is stored.
    const info = { cert: 'as sent' };
    const busy = s.retrieve(s.seId);
    const sent = s.update(s.seId, { 'senv:Senv': { esi: info } });
    info.cert = 'changed after send()';
    await busy;
    expect(body(ok(await sent, 2004, 'queued'), 'senv:Senv').esi).toEqual({ cert: 'as sent' });
    await s.engine.close();
  });

  it('only own members of the content count: an inherited attribute or root element is ignored on both paths', async () => {
    const s = await session();
    for (const queued of PATHS) {
      const r = ok(await onPath(s, queued, () => s.update(s.seId, { 'senv:Senv': Object.create({ hcl: 'inherited' }) as object })), 2004, `attribute, ${pathName(queued)}`);
      expect(body(r, 'senv:Senv').hcl, pathName(queued)).toBeUndefined();
      expect(body(ok(await s.retrieve(s.seId), 2000, 'read'), 'senv:Senv').hcl).toBeUndefined();
      fails(await onPath(s, queued, () => s.update(s.seId, Object.create({ 'senv:Senv': { hcl: 'x' } }) as Record<string, unknown>)), 4000, `root, ${pathName(queued)}`, /content must be one element/);
    }
    await s.engine.close();
  });
});

describe('what a response and a failed start leave behind (store review)', () => {
  it('a list of objects in a response is the caller\'s own copy: editing it changes neither the resource nor what the store writes', async () => {
    const dir = tempDir();
    const s = await session({ dir });
    ok(await s.create(s.path('reg'), 20012, { 'senv:Sgn': { rn: 'g', Salg: 25, kInf: [{ owner: 'alice' }] } }), 2001, 'signature');
    const got = body(ok(await s.retrieve(s.path('reg', 'g')), 2000, 'get'), 'senv:Sgn').kInf as { owner: string }[];
    got[0]!.owner = 'mallory';
    expect(body(ok(await s.retrieve(s.path('reg', 'g')), 2000, 'get'), 'senv:Sgn').kInf).toEqual([{ owner: 'alice' }]);
    await s.engine.close();
    const again = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
    expect(body(ok(await new Session(again, 'CAE1').retrieve(s.path('reg', 'g')), 2000, 'after restart'), 'senv:Sgn').kInf).toEqual([{ owner: 'alice' }]);
    await again.close();
  });

  it('a chunk whose buffer cannot be allocated is refused before the store writes it: memory and the journal keep the same message', async () => {
    const dir = tempDir();
    const s = await session({ dir });
    ok(await s.create(s.path('reg'), 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: new Uint8Array(10).fill(1) } }), 2001, 'hash');
    const space = Accumulator.prototype.spaceFor;
    Accumulator.prototype.spaceFor = function (this: Accumulator, chunk, restart) {
      if (chunk?.length === 777) throw new RangeError('Array buffer allocation failed');
      return space.call(this, chunk, restart);
    };
    undo.push(() => (Accumulator.prototype.spaceFor = space));
    expect((await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: new Uint8Array(777).fill(2) } })).rsc).toBe(5000);
    undo.pop()!();
    const held = async (e: Session) => unb64(body(ok(await e.retrieve(s.path('reg', 'h')), 2000, 'get'), 'senv:Hsh').msg as string).length;
    expect(await held(s)).toBe(10);
    await s.engine.close();
    const again = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
    expect(await held(new Session(again, 'CAE1'))).toBe(10);
    await again.close();
  });

  it('a restart whose load fails part way releases the keys it loaded; it closes the SE it made, and leaves the caller\'s open for a retry', async () => {
    const dir = tempDir();
    const s = await session({ dir });
    for (const rn of ['c1', 'c2']) ok(await s.create(s.path('reg'), 20002, { 'senv:Cph': { rn, Calg: 1002, mbs: 64, kDt: new Uint8Array(32).fill(rn === 'c1' ? 0xa1 : 0xb2) } }), 2001, rn);
    await s.engine.close();
    const real = SoftwareBackend.prototype.loadKey;
    const realClose = SoftwareBackend.prototype.close;
    const loaded: { bytes: Uint8Array }[] = [];
    const closed: SoftwareBackend[] = [];
    let calls = 0;
    SoftwareBackend.prototype.loadKey = async function (this: SoftwareBackend, spec, stored) {
      if (++calls % 2 === 0) throw new Error('the device went away');
      const k = await real.call(this, spec, stored);
      loaded.push(k as unknown as { bytes: Uint8Array });
      return k;
    };
    SoftwareBackend.prototype.close = async function (this: SoftwareBackend) {
      closed.push(this);
      return realClose.call(this);
    };
    undo.push(() => (SoftwareBackend.prototype.loadKey = real), () => (SoftwareBackend.prototype.close = realClose));
    await expect(McsEngine.create({ dataDir: dir, masterKey: MASTER })).rejects.toThrow(/went away/);
    expect(loaded.length).toBe(1);
    expect(() => loaded[0]!.bytes, 'the key loaded first is released').toThrow();
    expect(closed.length, 'the SE it made is closed').toBe(1);

    // The SE of the first run (its M2M-SE-ID is `<SEType>-<uniqueId>`), so that the store loads its resources.
    const backend = new SoftwareBackend({ uniqueId: s.seId.slice(s.seId.indexOf('-') + 1) });
    await expect(McsEngine.create({ dataDir: dir, masterKey: MASTER, backends: [backend] })).rejects.toThrow(/went away/);
    expect(() => loaded[1]!.bytes).toThrow();
    expect(closed, 'the caller\'s backend stays open').not.toContain(backend);
    SoftwareBackend.prototype.loadKey = real;
    const retry = await McsEngine.create({ dataDir: dir, masterKey: MASTER, backends: [backend] });
    ok(await new Session(retry, 'CAE1').retrieve(s.path('reg', 'c2')), 2000, 'a retry with the same backend');
    await retry.close();
  });

  it('a closed store refuses to load, named as closed rather than as a damaged directory', async () => {
    const dir = tempDir();
    const store = await JournalStore.open({ dir, masterKey: MASTER });
    const engine = await McsEngine.create({ store });
    const s = new Session(engine, 'CAE1');
    await s.register();
    ok(await s.create(s.path('reg'), 20002, { 'senv:Cph': { rn: 'c', Calg: 1002, mbs: 64, kDt: new Uint8Array(32).fill(5) } }), 2001, 'cipher');
    await engine.close();
    const backend = new SoftwareBackend({ uniqueId: s.seId.slice(s.seId.indexOf('-') + 1) });
    await backend.open();
    await expect(store.load(new SeHost(s.seId, backend, 1 << 20))).rejects.toThrow(/is closed/);
    await backend.close();
  });

  it('the data and output buffers grow by doubling and are kept up to 64 KiB or four times the message last held, given back once discarded (docs/mcs.md "Data in chunks")', () => {
    const K = 1024;
    const fill = (n: number) => new Uint8Array(n).fill(1);
    const capacity = (a: Accumulator) => ({ data: a.bytes().buffer.byteLength, output: a.room(0).buffer.byteLength });
    // Doubling, and a chunk that fills the buffer exactly stays in it.
    const a = new Accumulator();
    a.receive(fill(100), false);
    a.receive(fill(1), false);
    const grown = a.bytes().buffer;
    a.receive(fill(99), false);
    expect(a.bytes().buffer, 'filled exactly, in the same buffer').toBe(grown);
    const room = a.room(100);
    a.keep(room.subarray(0, 100), room);
    a.room(1);
    expect(capacity(a)).toEqual({ data: 200, output: 200 });
    // 64 KiB is kept whatever follows; one byte more goes with the data, data and output buffer alike.
    for (const [n, kept] of [[64 * K, 64 * K], [64 * K + 1, 0]] as const) {
      const b = new Accumulator();
      b.receive(fill(n), false);
      b.room(n);
      b.receive(null, false);
      expect(capacity(b), `${n} bytes discarded`).toEqual({ data: kept, output: kept });
    }
    // A new message keeps both buffers when the last one filled a quarter of them, however it arrives.
    const c = new Accumulator();
    c.receive(fill(256 * K), true);
    c.room(256 * K);
    c.receive(fill(64 * K), true);
    expect(capacity(c), 'after a message of a quarter').toEqual({ data: 256 * K, output: 256 * K });
    c.receive(fill(16 * K), false);
    c.receive(fill(16 * K), true);
    expect(capacity(c), 'a message of two chunks after one of a quarter').toEqual({ data: 256 * K, output: 256 * K });
    // The message before held 32 KiB, less than a quarter: both go.
    c.receive(fill(10), true);
    expect(capacity(c), 'after a message of an eighth').toEqual({ data: 10, output: 0 });
    expect(c.bytes()).toEqual(fill(10));
  });

  it('a stream handed over is not followed by another for the rest of its message; the next message streams again, from no output', async () => {
    const fill = (n: number, v = 1) => new Uint8Array(n).fill(v);
    let opened = 0;
    const open = async () => {
      opened++;
      return { tag: 'encrypt', output: true as const, update: async (d: Uint8Array, into: Uint8Array) => into.fill(7, 0, d.length).subarray(0, d.length), abort: () => {} };
    };
    const acc = new Accumulator();
    acc.receive(fill(8), false);
    await acc.pump(4, open);
    expect(acc.take('encrypt')?.rest, 'handed over, all of the data fed').toEqual(new Uint8Array(0));
    // The operation's change not applied (its store write failed): the message is not consumed, and a chunk joins it.
    acc.receive(fill(8), false);
    await acc.pump(4, open);
    expect(opened, 'no stream opened that would see only the end of the message (the operation replays it)').toBe(1);
    expect(acc.bytes()).toEqual(fill(16));
    acc.receive(undefined, true);
    acc.receive(fill(5, 3), false);
    await acc.pump(4, open);
    expect(opened, 'the next message streams').toBe(2);
    expect(acc.output(), 'its output only').toEqual(fill(5, 7));
  });

  it('an empty chunk after a consumed message lets a buffer much larger than the message go, as a discard does', () => {
    const acc = new Accumulator();
    acc.append(new Uint8Array(200 * 1024).fill(1));
    acc.receive(undefined, true);
    acc.receive(new Uint8Array(20 * 1024).fill(2), true);
    expect(acc.bytes().buffer.byteLength, 'the buffer is kept for the next message').toBe(200 * 1024);
    acc.receive(new Uint8Array(0), false);
    expect({ size: acc.size, capacity: acc.bytes().buffer.byteLength }).toEqual({ size: 0, capacity: 0 });
  });
});

describe('McsClient reads its byte arguments through their typed-array slots', () => {
  it('a view of a detached buffer is an InvalidInputError naming the argument; a length that lies changes nothing', async () => {
    const engine = await McsEngine.create();
    const me = await new McsClient(engine, 'CAE1').register('me');
    const detachedArg = async (name: string, call: (v: Uint8Array) => Promise<unknown>) => {
      const err = await call(detachedCopy(K)).then(() => undefined, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message, name).toMatch(new RegExp(`^${name} is a view of a detached ArrayBuffer$`));
    };
    await detachedArg('key', (key) => me.cipher({ algorithm: 1001, maxByteSize: 100, key }));
    for (const p of ['nonce', 'iv', 'aad'] as const) await detachedArg(p, (v) => me.cipher({ algorithm: 1001, maxByteSize: 100, [p]: v }));
    const c = await me.cipher({ algorithm: 1001, maxByteSize: 100, key: K });
    await detachedArg('nonce', (nonce) => c.setParameters({ nonce }));
    await detachedArg('chunk', (chunk) => c.update(chunk));
    await detachedArg('data', (data) => me.sensitiveData(data));
    const d = await me.sensitiveData(K);
    await detachedArg('data', (data) => d.write(data));
    await detachedArg('key', (key) => me.signature({ algorithm: 25, key }));
    const point = ecdsa('P-256').keygen().publicKey;
    await detachedArg('publicKey', (publicKey) => me.signature({ algorithm: 33, publicKey }));
    const mac = await me.signature({ algorithm: 25, key: K });
    await detachedArg('signature', (sig) => mac.verify(sig));

    // A key claiming twice its length is the 16 bytes it holds; data and a point claiming less are whole.
    const lying = await me.cipher({ algorithm: 1001, maxByteSize: 100, key: Object.defineProperty(Uint8Array.from(K), 'length', { value: 32 }), nonce: NONCE });
    await lying.update(new TextEncoder().encode('hello'));
    expect(hexOf(await lying.encrypt())).toBe(gcmHex(K, new TextEncoder().encode('hello')));
    const data = await me.sensitiveData(claimingLength(K, 8));
    expect(hexOf(await data.read())).toBe(hexOf(K));
    const verifier = await me.signature({ algorithm: 33, publicKey: Object.defineProperty(Uint8Array.from(point), 'length', { value: 33 }) });
    expect(hexOf(unb64((await verifier.retrieve()).kInf))).toBe(hexOf(point));
    await engine.close();
  });
});

function boomValue(): never {
  throw new Error('boom');
}

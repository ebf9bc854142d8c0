// A backend written from the published contract by someone else (backend.ts, docs/mcs.md "Writing a
// backend"), where a file system is needed: the contract's text (lent arguments, handed-over results,
// the error table) says what the engine does, and stored keys and a data directory hold to it. The
// rest of the contract runs on every runtime in test/portable/mcs-backend-contract.ts.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, markKeyHandle, McsEngine, SoftwareBackend, StateError, type KeyHandle, type KeySpec, type StoredKey } from '../../src/index.ts';
import { backendErrors, detached } from '../portable/mcs-backends.ts';

let rqi = 0;

const dbg = (r: { pc?: unknown }) => (r.pc as Record<string, unknown>)['m2m:dbg'];

describe('a third-party backend', () => {
  it('1: the contract asks for a fresh array (docs/mcs.md says a reused view breaks it), says arguments are lent and results handed over', () => {
    const doc = readFileSync(new URL('../../docs/mcs.md', import.meta.url), 'utf8');
    expect(doc).toMatch(/a view of memory the backend reuses\s+\(a WASM library's memory, a random pool\) breaks the contract/);
    const src = readFileSync(new URL('../../src/backends/backend.ts', import.meta.url), 'utf8');
    const comment = (member: string) => src.slice(0, src.indexOf(member)).split('/**').pop()!;
    expect(comment('importKey(spec')).toMatch(/lent/);
    expect(comment('importKey(spec')).toMatch(/cop(y|ies)/);
    expect(comment('exportKey(key')).toMatch(/handed over/i);
    expect(src).toMatch(/Arguments are lent/);
    expect(comment('write(id: string')).toMatch(/lent/);
    expect(comment('read(id: string')).toMatch(/handed over: a fresh array of exactly `length` bytes/);
    expect(comment('storeKey(key')).toMatch(/keyStorage 'host' its material[\s\S]*'device' a reference/);
    expect(comment('loadKey(spec')).toMatch(/fails the create/);
    expect(doc).toMatch(/\*\*Stored keys\*\*[\s\S]*`loadKey` runs in `McsEngine.create`[\s\S]*\*\*An `objectStore`\*\*[\s\S]*is lent[\s\S]*hands over a fresh array/);
    expect(doc).toMatch(/### Writing a backend[\s\S]*lent[\s\S]*handed over/);
  });

  it('5: the published error table is the one the portable suite holds the engine to (docs/mcs.md: class, rsc, m2m:dbg)', () => {
    const doc = readFileSync(new URL('../../docs/mcs.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\s*\| `(\w+)` \| (\d{4}) \| (.*) \|$/gm)].map((m) => [m[1]!, Number(m[2]), m[3]!] as const);
    const dbgOf = (column: string) => column.replace(/^`([^`]*)`( and its message)?$/, (_, text: string, then?: string) => (then ? `${text}slot 3` : text)).replace(/^its message$/, 'slot 3');
    expect(rows.map(([name, rsc, column]) => [name, rsc, dbgOf(column)])).toEqual(backendErrors.map(([type, rsc, text]) => [type.name, rsc, text]));
    expect(doc).toMatch(/messages must not\s+carry\s+key\s+or\s+data\s+bytes/i);
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

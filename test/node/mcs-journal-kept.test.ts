// A message is written to the data directory once (format 5): a change that
// leaves it as it was (an `et` or `acpi` UPDATE, an operation that consumes
// it) records the resource without it, and a restart, a compaction or an
// upgrade from format 4 gives back every byte and whether it was consumed.
import { describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodeCrypto from 'node:crypto';
import { McsEngine, gcm, type Persistence } from '../../src/index.ts';
import { JournalStore } from '../../src/mcs/store/journal.ts';
import { openFiles, type Files } from '../../src/mcs/store/files.ts';
import { Session, b64, body, ok, unb64 } from '../portable/mcs-kit.ts';
import { Accumulator } from '../../src/mcs/accumulator.ts';

const KEY = new Uint8Array(32).fill(9);
const MIB = 1 << 20;
const tempDir = () => mkdtempSync(join(tmpdir(), 'senv-kept-'));
const sha256 = (b: Uint8Array) => new Uint8Array(nodeCrypto.createHash('sha256').update(b).digest());
const format = (dir: string) => (JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { format: number }).format;

/** An engine on `dir` whose store counts the bytes it appends to journal.log. */
async function open(dir: string, masterKey: Uint8Array, compactAt: number) {
  const real = await openFiles();
  const written = { journal: 0 };
  const files: Files = {
    ...real,
    append: async (path, data) => {
      if (path.endsWith('/journal.log')) written.journal += data.length;
      return real.append(path, data);
    },
  };
  const engine = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey, files, compactAt }) });
  return { engine, s: new Session(engine, 'CAE1', engine.seIds[0]), written };
}

/** The JSON of each record in journal.log ([length u32][CRC-32 u32][JSON][MAC 32 bytes]). */
function records(dir: string): Record<string, unknown>[] {
  const buf = readFileSync(join(dir, 'journal.log'));
  const out: Record<string, unknown>[] = [];
  for (let at = 0; at < buf.length;) {
    const len = buf.readUInt32LE(at);
    out.push(JSON.parse(buf.subarray(at + 8, at + 8 + len - 32).toString()) as Record<string, unknown>);
    at += 8 + len;
  }
  return out;
}

/** The sealed parts of the snapshot's records, opened (AES-256-GCM, the ri as associated data). */
function sealedParts(dir: string, key: Uint8Array): string[] {
  const text = readFileSync(join(dir, 'snapshot.json'), 'utf8');
  const state = JSON.parse(text.slice(text.indexOf('\n') + 1)) as { resources: Record<string, Record<string, { ri: string; sealed?: string }>> };
  return Object.values(state.resources).flatMap((se) => Object.values(se)).filter((r) => r.sealed).map((r) => {
    const b = Buffer.from(r.sealed!, 'base64');
    const d = nodeCrypto.createDecipheriv('aes-256-gcm', key, b.subarray(0, 12));
    d.setAAD(Buffer.from(r.ri));
    d.setAuthTag(b.subarray(b.length - 16));
    return Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]).toString();
  });
}

describe('a message is written once', () => {
  it.each([['a restart', 1 << 30], ['a compaction after every record', 1]])('an et or acpi UPDATE, calculateHash and encrypt of 1 MiB add a few hundred bytes of journal and the result, and %s gives back every byte and whether it was consumed', async (_, compactAt) => {
    const dir = tempDir();
    try {
      const message = nodeCrypto.randomBytes(MIB);
      const aesKey = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(12);
      let { engine, s, written } = await open(dir, KEY, 1 << 30);
      await s.register();
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 2 * MIB, kDt: b64(aesKey) } }), 2001, 'cipher');
      ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { nc: b64(nonce) } }), 2001, 'nonce');
      for (let off = 0; off < MIB; off += 64 * 1024) {
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(message.subarray(off, off + 64 * 1024)) } }), 2004, 'hash chunk');
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(message.subarray(off, off + 64 * 1024)) } }), 2004, 'cipher chunk');
      }
      expect(format(dir), 'a new directory before its first snapshot').toBe(3);
      // What each resource holds, as a restart must give it back.
      const held = { h: message as Uint8Array, c: message as Uint8Array };
      const et = { h: undefined as string | undefined, c: undefined as string | undefined };
      const reopen = async () => {
        await engine.close();
        ({ engine, s, written } = await open(dir, KEY, compactAt));
        for (const [rn, root] of [['h', 'senv:Hsh'], ['c', 'senv:Cph']] as const) {
          const pc = body(ok(await s.retrieve(s.path('reg', rn)), 2000, `${rn} after the restart`), root);
          expect(Buffer.from(unb64(pc.msg)).equals(Buffer.from(held[rn])), `${rn}'s message (${unb64(pc.msg).length} bytes)`).toBe(true);
          if (et[rn]) expect(pc.et, `${rn}'s et`).toBe(et[rn]);
        }
      };
      const figures: string[] = [];
      const step = async (what: string, run: () => Promise<void>, bound: number) => {
        const before = written.journal;
        await run();
        const grew = written.journal - before;
        figures.push(`${what}: ${grew} bytes`);
        expect(grew, what).toBeLessThan(bound);
        await reopen();
      };
      const small = MIB / 10;
      await step('et UPDATE of the <hash>', async () => {
        et.h = '20990101T000000,000000';
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { et: et.h } }), 2004, 'et');
      }, small);
      expect(format(dir), 'format 6 from the snapshot the first kept message made').toBe(6);
      await step('acpi UPDATE of the <hash>', async () => void ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { acpi: [] } }), 2004, 'acpi'), small);
      await step('calculateHash', async () => {
        const hv = unb64(body(ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'calculateHash'), 'senv:Hsh').Hv);
        expect(hv).toEqual(sha256(message));
      }, small);
      // Consumed across the restart: the next chunk starts a new message.
      const next = nodeCrypto.randomBytes(100);
      await step('a chunk after the consumed message', async () => {
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(next) } }), 2004, 'chunk');
        held.h = next;
      }, small);
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'calculateHash'), 'senv:Hsh').Hv)).toEqual(sha256(next));
      await step('et UPDATE of the <cipher>', async () => {
        et.c = '20980101T000000,000000';
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { et: et.c } }), 2004, 'et');
      }, small);
      await step('acpi UPDATE of the <cipher>', async () => void ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { acpi: [] } }), 2004, 'acpi'), small);
      // The result is written (sealed, as JSON's base64 in base64: about 1.8 bytes a byte), the message not again.
      const result = gcm(aesKey, nonce).encrypt(message);
      await step('encrypt', async () => {
        const cd = unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD);
        expect(Buffer.from(cd).equals(Buffer.from(result))).toBe(true);
      }, 1.8 * result.length + small);
      await step('a chunk after the encrypted message', async () => {
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(next) } }), 2004, 'chunk');
        held.c = next;
      }, small);
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD)).toEqual(gcm(aesKey, nonce).encrypt(next));
      await engine.close();
      console.log(`journal written per change (1 MiB message, compactAt ${compactAt}):\n  ${figures.join('\n  ')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a store of another kind is told which messages a put leaves as they were, and sees the state the change leaves (an operation\'s consumed message)', async () => {
    const puts: { rn: string; unchanged: string[] | undefined; msg: Uint8Array | undefined; consumed: boolean | undefined }[] = [];
    const store: Persistence = {
      uniqueId: async () => 'u', load: async () => undefined, append: async () => undefined, remove: async () => undefined, close: async () => undefined,
      put: async (_, res) => {
        const acc = res.attrs.get('message') as Accumulator | undefined;
        puts.push({ rn: res.rn, unchanged: res.unchangedMessages && [...res.unchangedMessages], msg: acc?.bytes().slice(), consumed: acc?.consumed });
      },
    };
    const engine = await McsEngine.create({ store });
    const s = new Session(engine, 'CAE1');
    await s.register();
    const message = nodeCrypto.randomBytes(5000);
    ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(message) } }), 2001, 'hash');
    ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { et: '20990101T000000' } }), 2004, 'et');
    ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'calculateHash');
    ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(message.subarray(0, 10)), et: '20990102T000000' } }), 2004, 'a chunk with et');
    const m = new Uint8Array(message);
    expect(puts.filter((p) => p.rn === 'h')).toEqual([
      { rn: 'h', unchanged: undefined, msg: m, consumed: false },
      { rn: 'h', unchanged: ['message'], msg: m, consumed: false },
      { rn: 'h', unchanged: ['message'], msg: m, consumed: true },
      { rn: 'h', unchanged: undefined, msg: m.subarray(0, 10), consumed: false },
    ]);
    await engine.close();
  });

  it('a format 4 directory (messages in sealed parts) opens with its messages intact, says format 6, and its next et UPDATE does not write the message again', async () => {
    const dir = tempDir();
    const key = new Uint8Array(32).fill(0x4d);
    // The data fixtures/format4-messages/README.md's script wrote (write number `seed` of `n` bytes).
    const data = (seed: number, n: number) => Uint8Array.from({ length: n }, (_, k) => (seed * 31 + k * 17) & 0xff);
    const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
    try {
      cpSync(fileURLToPath(new URL('./fixtures/format4-messages', import.meta.url)), dir, { recursive: true });
      expect(format(dir)).toBe(4);
      expect(sealedParts(dir, key).filter((p) => p.includes('"$acc"')).length, 'the fixture holds messages in sealed parts').toBeGreaterThan(0);
      let { engine, s, written } = await open(dir, key, 1 << 30);
      expect(format(dir), 'upgraded at open').toBe(6);
      expect(sealedParts(dir, key).filter((p) => p.includes('"$acc"')), 'no message left in a sealed part').toEqual([]);
      const msg = async (rn: string, root: string) => unb64(body(ok(await s.retrieve(s.path('reg', rn)), 2000, rn), root).msg);
      const h1 = cat(data(1, 3000), data(2, 2000), data(3, 1000));
      expect(await msg('h1', 'senv:Hsh'), 'chunks, a put, a chunk after it').toEqual(h1);
      expect(await msg('h2', 'senv:Hsh'), 'a consumed message a chunk replaced').toEqual(data(5, 700));
      expect(await msg('h3', 'senv:Hsh'), 'a consumed message').toEqual(data(6, 900));
      expect(await msg('c', 'senv:Cph'), 'a <cipher>\'s, its last chunk in the journal after the snapshot').toEqual(cat(data(9, 4000), data(10, 1500)));
      const before = written.journal;
      ok(await s.update(s.path('reg', 'h1'), { 'senv:Hsh': { et: '20970101T000000' } }), 2004, 'et');
      const last = records(dir).at(-1) as { res: { kept?: string[]; appends?: unknown }[] };
      expect(last.res[0]!.kept, 'the record keeps the message').toEqual(['message']);
      expect(last.res[0]!.appends).toBeUndefined();
      expect(written.journal - before, 'bytes written').toBeLessThan(h1.length / 10);
      await engine.close();
      ({ engine, s } = await open(dir, key, 1 << 30));
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'h1', 'cHsh')), 2000, 'h1'), 'senv:Hsh').Hv)).toEqual(sha256(h1));
      // Still consumed: the next chunk starts a new message.
      const z = new Uint8Array([1, 2, 3]);
      ok(await s.update(s.path('reg', 'h3'), { 'senv:Hsh': { msg: b64(z) } }), 2004, 'chunk');
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'h3', 'cHsh')), 2000, 'h3'), 'senv:Hsh').Hv)).toEqual(sha256(z));
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD)).toEqual(gcm(data(7, 16), data(8, 12)).encrypt(cat(data(9, 4000), data(10, 1500))));
      await engine.close();

      // An upgrade whose snapshot cannot be written: format 4 goes on, writing messages whole (never kept), and the next open upgrades.
      rmSync(dir, { recursive: true, force: true });
      cpSync(fileURLToPath(new URL('./fixtures/format4-messages', import.meta.url)), dir, { recursive: true });
      const real = await openFiles();
      const failing: Files = { ...real, rename: async () => Promise.reject(Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' })) };
      const e1 = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: key, files: failing }) });
      expect(format(dir), 'not upgraded').toBe(4);
      const t = new Session(e1, 'CAE1', e1.seIds[0]);
      ok(await t.update(t.path('reg', 'h1'), { 'senv:Hsh': { et: '20960101T000000' } }), 2004, 'et');
      const whole = records(dir).at(-1) as { res: { kept?: string[]; appends?: { attr: string }[] }[] };
      expect(whole.res[0]!.kept, 'nothing kept').toBeUndefined();
      expect(whole.res[0]!.appends?.map((a) => a.attr), 'the message written whole').toEqual(['message']);
      await e1.close();
      ({ engine, s } = await open(dir, key, 1 << 30));
      expect(format(dir), 'upgraded by the next open').toBe(6);
      expect(await msg('h1', 'senv:Hsh')).toEqual(h1);
      expect(await msg('h3', 'senv:Hsh')).toEqual(data(6, 900));
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a format 5 directory whose meta.json cannot say 6 writes the sealed part the state holds again, as it is: that record makes nothing obsolete, and a clean close does not compact for it', async () => {
    const dir = tempDir();
    const key = new Uint8Array(32).fill(0x5e);
    const real = await openFiles();
    let refused = true;
    const files: Files = {
      ...real,
      writeDurable: async (path, bytes) => (refused && path.endsWith('/meta.json.tmp') ? Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })) : real.writeDurable(path, bytes)),
    };
    const start = async () => McsEngine.create({ store: await JournalStore.open({ dir, masterKey: key, files }) });
    const snapshot = () => readFileSync(join(dir, 'snapshot.json'));
    try {
      // fixtures/format5-secrets (its README has the script): its journal wrote sealed parts again under fresh
      // nonces, which supersedes them, so the first clean close compacts (the journal cut, the format still 5).
      cpSync(fileURLToPath(new URL('./fixtures/format5-secrets', import.meta.url)), dir, { recursive: true });
      // Where meta.json can be written, the open itself says 6 (one small write, no snapshot).
      refused = false;
      const fixtureSnapshot = snapshot();
      const open = await start();
      expect(format(dir), 'said by the open, before close').toBe(6);
      expect(snapshot().equals(fixtureSnapshot), 'no snapshot written for it').toBe(true);
      await open.close();
      rmSync(dir, { recursive: true, force: true });
      cpSync(fileURLToPath(new URL('./fixtures/format5-secrets', import.meta.url)), dir, { recursive: true });
      refused = true;
      await (await start()).close();
      expect(format(dir)).toBe(5);
      expect(readFileSync(join(dir, 'journal.log')).length, 'compacted at close').toBe(0);
      const compacted = snapshot();
      const e = await start();
      const s = new Session(e, 'CAE1', e.seIds[0]);
      const cD = body(ok(await s.retrieve(s.path('reg', 'c1')), 2000, 'c1'), 'senv:Cph').cD;
      ok(await s.update(s.path('reg', 'c1'), { 'senv:Cph': { et: '20980101T000000' } }), 2004, 'et');
      const written = records(dir) as { res: { rn: string; sealed?: string; keptSealed?: true }[] }[];
      const state = JSON.parse(compacted.toString().slice(compacted.indexOf('\n') + 1)) as { resources: Record<string, Record<string, { rn: string; sealed?: string }>> };
      const prior = Object.values(state.resources).flatMap((se) => Object.values(se)).find((r) => r.rn === 'c1')!;
      expect(written.map((r) => [r.res[0]!.rn, r.res[0]!.keptSealed, r.res[0]!.sealed]), 'the sealed part as the state holds it').toEqual([['c1', undefined, prior.sealed]]);
      await e.close();
      expect(snapshot().equals(compacted), 'no snapshot written at close').toBe(true);
      expect(records(dir).length, 'the record left in the journal').toBe(1);
      const again = await start();
      const t = new Session(again, 'CAE1', again.seIds[0]);
      expect(body(ok(await t.retrieve(t.path('reg', 'c1')), 2000, 'c1'), 'senv:Cph').cD, 'read back').toBe(cD);
      // Once meta.json can be written again (after the open, which still could not), the next compaction says 6.
      refused = false;
      ok(await t.delete(t.path('reg', 'c1')), 2002, 'a delete, which a clean close compacts for');
      expect(format(dir)).toBe(5);
      await again.close();
      expect(format(dir), 'said by the compaction at close').toBe(6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

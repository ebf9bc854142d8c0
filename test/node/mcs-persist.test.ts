// Persistence of SE-resources in a data directory: a restart keeps resources
// and keys, secrets are sealed, a wrong master key is refused, and a writer
// killed with SIGKILL at random moments loses no acknowledged write. The
// store's own guarantees: a torn end is cut and damage before whole records
// refused, every record is authenticated, two SEs writing at once lose
// nothing, one data directory has one engine, and the files are private.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, cpSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodeCrypto from 'node:crypto';
import { McsEngine, SoftwareBackend, StateError, sha256, sha512, ecdsa, gcm, type McsResponse } from '../../src/index.ts';
import { JournalStore } from '../../src/mcs/store/journal.ts';
import { endsBeforeTheFile, frameAt } from '../../src/mcs/store/format.ts';
import { openFiles, stampFrom, type Files } from '../../src/mcs/store/files.ts';
import { takeLock } from '../../src/mcs/store/lock.ts';
import { open as openSealed, seal } from '../../src/mcs/store/sealing.ts';
import { Session, b64, body, fails, ok, unb64 } from '../portable/mcs-kit.ts';
import { ACPS, chunkOf, CIPHER_KEY, etOf, G_MESSAGE, indexOfEt, MAC_KEY, MESSAGE, NONCE, SDO_DATA } from './fixtures/mcs-writer-data.ts';
import { onLines, runChild, runInTerminal, runModule } from './run-child.ts';

const KEY = new Uint8Array(32).fill(7);
const tempDir = () => mkdtempSync(join(tmpdir(), 'senv-mcs-'));
/** A lock file's text naming `pid` as its holder, as a process long gone left it. */
const deadHolder = (pid: number) => JSON.stringify({ pid, since: '2026-01-01T00:00:00.000Z', token: `dead${pid}`, osLocked: false });

/** The real file operations with the journal's appends counted (`count.appends`, which a case sets back to 0). */
async function countingAppends(): Promise<{ files: Files; count: { appends: number } }> {
  const real = await openFiles();
  const count = { appends: 0 };
  return { files: { ...real, append: async (path, data) => {
    count.appends++;
    return real.append(path, data);
  } }, count };
}

/** A data directory left holding a registration of CAE1 with a <cipher> 'c' under a key (`extra` beside it), closed. */
async function keptCipher(open: () => Promise<McsEngine>, extra: Record<string, unknown> = {}): Promise<void> {
  const e = await open();
  const s = new Session(e, 'CAE1');
  await s.register();
  ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: b64(new Uint8Array(16).fill(3)), ...extra } }), 2001, 'a cipher with a key');
  await e.close();
}

describe('Mcs persistence', () => {
  it('requests sent before close() are served, content and all, and what they wrote is there after a reopen (in memory too: served, not refused)', async () => {
    for (const persisted of [false, true]) {
      const dir = tempDir();
      try {
        const options = persisted ? { dataDir: dir, masterKey: KEY } : {};
        let e = await McsEngine.create(options);
        const s = new Session(e, 'CAE1');
        await s.register();
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        const chunks = Array.from({ length: 60 }, (_, i) => nodeCrypto.randomBytes(1 + i * 37));
        const sent = chunks.flatMap((c, i) => [
          s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(c) } }),
          ...(i % 10 ? [] : [s.create(s.seId, 20009, { 'senv:Sdo': { rn: `d${i}`, msg: b64(c) } })]),
        ]);
        const closing = e.close();
        const late = await e.send({ op: 2, to: s.seId, fr: 'CAE1', rqi: 'late' });
        expect(late.rsc, 'a request sent after close()').toBe(5000);
        const answers = await Promise.all(sent);
        await closing;
        expect(answers.map((r) => r.rsc).filter((rsc) => rsc !== 2004 && rsc !== 2001), `persisted ${persisted}: every request sent before close() served`).toEqual([]);
        if (!persisted) continue;
        e = await McsEngine.create(options);
        const t = new Session(e, 'CAE1');
        const hv = unb64(body(ok(await t.retrieve(t.path('reg', 'h', 'calculateHash')), 2000, 'hash after reopen'), 'senv:Hsh').Hv);
        expect(Buffer.from(hv).equals(nodeCrypto.createHash('sha256').update(Buffer.concat(chunks)).digest()), 'every chunk in the message').toBe(true);
        for (let i = 0; i < 60; i += 10) ok(await t.retrieve(t.path('reg', `d${i}`)), 2000, `data object d${i}`);
        await e.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('a restart keeps resources, keys, streamed data and registrations', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      const aesKey = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(12), data = nodeCrypto.randomBytes(50000);
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1 << 20, kDt: b64(aesKey) } }), 2001, 'cipher');
      ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { nc: b64(nonce) } }), 2001, 'nonce');
      for (let off = 0; off < data.length; off += 7000) ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(data.subarray(off, off + 7000)) } }), 2004, 'chunk');
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: 33 } }), 2001, 'ecdsa');
      const pub = unb64(body(await s.retrieve(s.path('reg', 'e', 'gnK')), 'senv:Sgn').kInf);
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(data.subarray(0, 10)) } }), 2001, 'hash');
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(data.subarray(10, 20)) } }), 2004, 'hash append');
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(data.subarray(0, 99)) } }), 2001, 'sdo');
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h2', Halg: 6, msg: b64(data.subarray(0, 5)) } }), 2001, 'hash kept with its value');
      const hv = sha512(data.subarray(0, 5));
      expect(unb64(body(await s.retrieve(s.path('reg', 'h2', 'cHsh')), 'senv:Hsh').Hv)).toEqual(hv);
      // The first chunk of a resource that holds no data, with another attribute: a put of the resource, message and all.
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h3', Halg: 4 } }), 2001, 'hash without data');
      ok(await s.update(s.path('reg', 'h3'), { 'senv:Hsh': { msg: b64(data.subarray(30, 40)), et: '20991231T000000' } }), 2004, 'first chunk and an et');
      const seId = s.seId;
      await e1.close();

      const files = readdirSync(dir).map((f) => readFileSync(join(dir, f)));
      // Any 30-byte run of a secret, raw, in hex or in base64 at each of the three alignments it
      // can have inside a longer base64 text (the store writes bytes as base64 strings).
      const traces = (secret: Uint8Array): Buffer[] => [0, 1, 2].flatMap((off) => {
        const run = Buffer.from(secret.subarray(off, off + 30));
        return [run, Buffer.from(run.toString('hex')), Buffer.from(run.toString('base64'))];
      });
      for (const secret of [aesKey, data.subarray(0, 32), data.subarray(7000 * 3 + 5, 7000 * 3 + 40), data.subarray(50, 99), hv]) {
        for (const needle of traces(secret)) for (const f of files) expect(f.includes(needle)).toBe(false);
      }
      await expect(McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(8) })).rejects.toThrow(/master key/);

      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(e2.seIds).toEqual([seId]);
      const t = new Session(e2, 'CAE1');
      const enc = unb64(body(ok(await t.retrieve(t.path('reg', 'c', 'encrypt')), 2000, 'encrypt after restart'), 'senv:Cph').cD);
      expect(Buffer.from(enc).equals(Buffer.from(gcm(aesKey, nonce).encrypt(data)))).toBe(true);
      ok(await t.update(t.path('reg', 'e'), { 'senv:Sgn': { msg: b64(data) } }), 2004, 'message');
      const sig = unb64(body(await t.retrieve(t.path('reg', 'e', 'cSgn')), 'senv:Sgn').Sgn);
      expect(ecdsa('P-256').verify(sig, data, pub)).toBe(true);
      expect(Buffer.from(unb64(body(await t.retrieve(t.path('reg', 'h', 'cHsh')), 'senv:Hsh').Hv)).equals(Buffer.from(sha256(data.subarray(0, 20))))).toBe(true);
      expect(Buffer.from(unb64(body(await t.retrieve(t.path('reg', 'd')), 'senv:Sdo').msg)).equals(data.subarray(0, 99))).toBe(true);
      expect(unb64(body(await t.retrieve(t.path('reg', 'h2')), 'senv:Hsh').Hv), 'a hash value kept sealed comes back').toEqual(hv);
      expect(unb64(body(ok(await t.retrieve(t.path('reg', 'h3', 'cHsh')), 2000, 'the first chunk came with an et'), 'senv:Hsh').Hv)).toEqual(new Uint8Array(sha256(data.subarray(30, 40))));
      fails4106(await new Session(e2, 'CAE2').retrieve(seId));
      // A binary response takes the result itself; what is stored (and persisted) is a copy.
      const small = new Uint8Array(nodeCrypto.randomBytes(300));
      ok(await t.send(3, t.path('reg', 'c'), { 'senv:Cph': { msg: small } }, undefined, true), 2004, 'next message');
      const cd = body(ok(await t.send(2, t.path('reg', 'c', 'encrypt'), undefined, undefined, true), 2000, 'binary encrypt'), 'senv:Cph').cD as Uint8Array;
      const want = gcm(aesKey, nonce).encrypt(small);
      expect(Buffer.from(cd).equals(Buffer.from(want))).toBe(true);
      cd.fill(0);
      ok(await t.delete(t.path('reg', 'd')), 2002, 'delete');
      await e2.close();
      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      ok(await new Session(e3, 'CAE1').retrieve(`${seId}/reg/d`), 4004, 'deleted stays deleted');
      const stored = unb64(body(ok(await new Session(e3, 'CAE1').retrieve(`${seId}/reg/c`), 2000, 'cipher after restart'), 'senv:Cph').cD);
      expect(Buffer.from(stored).equals(Buffer.from(want))).toBe(true);
      await e3.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an ECDSA signature is sealed at rest beside its public key (it would confirm a guess of the message); one an earlier version kept in the clear still loads, and is sealed at open', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      const msg = new TextEncoder().encode('PIN=4821');
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: 33, sgF: 'raw', msg: b64(msg) } }), 2001, 'ecdsa');
      const pub = unb64(body(await s.retrieve(s.path('reg', 'e', 'gnK')), 'senv:Sgn').kInf);
      const sig = unb64(body(await s.retrieve(s.path('reg', 'e', 'cSgn')), 'senv:Sgn').Sgn);
      expect(ecdsa('P-256').verify(sig, msg, pub, { format: 'raw' })).toBe(true);
      // A resource that only verifies: its public key, and (below) the signature an earlier version wrote in the clear.
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'v', Salg: 33, sgF: 'raw', kInf: b64(pub) } }), 2001, 'verifier');
      await e1.close();
      const traces = (bytes: Uint8Array) => [Buffer.from(bytes).subarray(0, 30), Buffer.from(Buffer.from(bytes).toString('base64').slice(0, 40))];
      const clear = () => readdirSync(dir).some((f) => traces(sig).some((t) => readFileSync(join(dir, f)).includes(t)));
      expect(clear(), 'the signature in the files').toBe(false);
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(unb64(body(await new Session(e2, 'CAE1').retrieve(`${e2.seIds[0]}/reg/e`), 'senv:Sgn').Sgn)).toEqual(sig);
      await e2.close();
      // The state as journal records, the verifier's with Sgn in its clear attributes as senv wrote it before,
      // in a directory without a snapshot (meta.json unmarked, as then).
      const snapshot = readFileSync(join(dir, 'snapshot.json'), 'utf8');
      const state = JSON.parse(snapshot.slice(snapshot.indexOf('\n') + 1)) as { resources: Record<string, Record<string, { rn: string; attrs: Record<string, unknown> }>> };
      const records = Object.entries(state.resources).map(([se, recs], i) => ({ seq: i + 1, op: 'put', se, res: Object.values(recs) }));
      for (const rec of records.flatMap((r) => r.res)) if (rec.rn === 'v') rec.attrs.signature = { $b: Buffer.from(sig).toString('base64') };
      rmSync(join(dir, 'snapshot.json'));
      const { check, uniqueIds } = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { check: string; uniqueIds: Record<string, string> };
      writeFileSync(join(dir, 'meta.json'), JSON.stringify({ format: 3, uniqueIds, check, mac: mac('meta', Buffer.from(JSON.stringify([3, check, uniqueIds]))).toString('base64') }));
      writeFileSync(join(dir, 'journal.log'), withMacs(dir, records));
      expect(clear(), 'the fixture holds it in the clear').toBe(true);
      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(clear(), 'sealed by the snapshot written at open').toBe(false);
      expect(unb64(body(await new Session(e3, 'CAE1').retrieve(`${e3.seIds[0]}/reg/v`), 'senv:Sgn').Sgn)).toEqual(sig);
      await e3.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('messages a senv before format 5 kept in sealed parts ($acc), with chunks appended after them, read back as written: a chunk extends a message, replaces a consumed one, and one left consumed stays so across restarts', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      const data = (n: number, seed: number) => new Uint8Array(Buffer.from(Array.from({ length: n }, (_, k) => (seed * 31 + k * 17) & 0xff)));
      const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
      const put = { h1: data(3000, 1), h2: data(500, 2), h3: data(900, 3), h4: data(700, 4) };
      for (const [rn, msg] of Object.entries(put)) ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn, Halg: 4, msg: b64(msg) } }), 2001, rn);
      await e1.close();
      expect(existsSync(join(dir, 'snapshot.json')), 'the journal holds everything').toBe(false);
      // The records as senv before format 5 wrote them (the README of fixtures/format4-messages names its
      // commit): the message in the sealed part as { $acc, consumed }, and from commit 935e3a5 on the record
      // marked `consumed` too where that message is consumed and not empty; before it, only the sealed part
      // said so (h4). A chunk appended later is an append record. A directory with no snapshot says format 3.
      const records = frames(readFileSync(join(dir, 'journal.log'))).map((f) => f.json);
      const se = records[0]!.se as string;
      const hashes = new Map(records.flatMap((r) => [r.res ?? []].flat() as Record<string, unknown>[]).filter((r) => r.root === 'senv:Hsh').map((r) => [r.rn as string, r]));
      const asBefore = (rn: keyof typeof put, consumed: boolean, marked: boolean) => {
        const rec = hashes.get(rn)!;
        const ri = rec.ri as string;
        const secret = rec.sealed ? JSON.parse(new TextDecoder().decode(openSealed(KEY, rec.sealed as string, ri))) as Record<string, unknown> : {};
        secret.message = { $acc: b64(put[rn]), consumed };
        Object.assign(rec, { sealed: seal(KEY, new TextEncoder().encode(JSON.stringify(secret)), ri) }, marked ? { consumed: true } : {});
        delete rec.appends;
      };
      asBefore('h1', false, false);
      asBefore('h2', true, true);
      asBefore('h3', true, true);
      asBefore('h4', true, false);
      const more = { h1: data(1000, 5), h2: data(600, 6) };
      const appended = Object.entries(more).map(([rn, chunk], i) => {
        const ri = hashes.get(rn)!.ri as string;
        return { seq: records.length + 1 + i, op: 'append', se, ri, attr: 'message', sealed: seal(KEY, chunk, `${ri}/message`) };
      });
      const { check, uniqueIds } = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { check: string; uniqueIds: Record<string, string> };
      writeFileSync(join(dir, 'meta.json'), JSON.stringify({ format: 3, uniqueIds, check, mac: mac('meta', Buffer.from(JSON.stringify([3, check, uniqueIds]))).toString('base64') }));
      writeFileSync(join(dir, 'journal.log'), withMacs(dir, [...records, ...appended]));
      const msg = async (t: Session, rn: string) => unb64(body(ok(await t.retrieve(t.path('reg', rn)), 2000, rn), 'senv:Hsh').msg);
      const expected = { h1: cat(put.h1, more.h1), h2: more.h2, h3: put.h3, h4: put.h4 };
      // Moved out of the sealed parts at open (a snapshot written), then read back from that snapshot.
      for (let i = 0; i < 2; i++) {
        const e = await McsEngine.create({ dataDir: dir, masterKey: KEY });
        expect(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).format, 'upgraded').toBe(6);
        const t = new Session(e, 'CAE1');
        for (const [rn, m] of Object.entries(expected)) expect(await msg(t, rn), `${rn}, open ${i + 1}`).toEqual(m);
        await e.close();
      }
      // Whether each is consumed: a chunk after a consumed message starts a new one, after any other extends it.
      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const t = new Session(e3, 'CAE1');
      const z = new Uint8Array([1, 2, 3]);
      for (const rn of Object.keys(expected)) ok(await t.update(t.path('reg', rn), { 'senv:Hsh': { msg: b64(z) } }), 2004, rn);
      expect(await msg(t, 'h1'), 'h1: not consumed').toEqual(cat(expected.h1, z));
      expect(await msg(t, 'h2'), 'h2: replaced by a chunk, which no operation consumed').toEqual(cat(expected.h2, z));
      expect(await msg(t, 'h3'), 'h3: consumed').toEqual(z);
      expect(await msg(t, 'h4'), 'h4: consumed, the record not marked').toEqual(z);
      await e3.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('snapshots (compaction) keep the same state', async () => {
    const dir = tempDir();
    try {
      const mk = async () => McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 4096 }) });
      const e1 = await mk();
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      const parts: Buffer[] = [];
      for (let i = 0; i < 40; i++) {
        const p = nodeCrypto.randomBytes(500);
        parts.push(p);
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(p) } }), 2004, 'append');
      }
      await e1.close();
      expect(readdirSync(dir)).toContain('snapshot.json');
      const e2 = await mk();
      const hv = unb64(body(await new Session(e2, 'CAE1').retrieve(`${e2.seIds[0]}/reg/h/cHsh`), 'senv:Hsh').Hv);
      expect(Buffer.from(hv).equals(Buffer.from(sha256(Buffer.concat(parts))))).toBe(true);
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a clean close compacts a journal that holds sealed data a later record made obsolete (a deleted key, a replaced message): the files keep only what is live', async () => {
    const dir = tempDir();
    const journal = () => (existsSync(join(dir, 'journal.log')) ? statSync(join(dir, 'journal.log')).size : 0);
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s1 = new Session(e1, 'CAE1');
      await s1.register();
      const ri = body(ok(await s1.create(s1.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(nodeCrypto.randomBytes(32)) } }), 2001, 'key'), 'senv:Sgn').ri as string;
      ok(await s1.create(s1.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(nodeCrypto.randomBytes(40)) } }), 2001, 'data');
      await e1.close();
      expect(journal(), 'nothing obsolete yet: the journal is kept as it is').toBeGreaterThan(0);
      expect(existsSync(join(dir, 'snapshot.json'))).toBe(false);

      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s2 = new Session(e2, 'CAE1');
      ok(await s2.update(s2.path('reg', 'd'), { 'senv:Sdo': { msg: b64(nodeCrypto.randomBytes(40)) } }), 2004, 'data replaced');
      ok(await s2.delete(s2.path('reg', 'm')), 2002, 'key deleted');
      await e2.close();
      expect(journal(), 'compacted at close').toBe(0);
      expect(readFileSync(join(dir, 'snapshot.json'), 'utf8')).not.toContain(ri);

      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s3 = new Session(e3, 'CAE1');
      fails(await s3.retrieve(s3.path('reg', 'm')), 4004, 'the deleted key stays deleted');
      ok(await s3.retrieve(s3.path('reg', 'd')), 2000, 'the data is there');
      // A consumed message that a chunk replaces: gone from the journal and from the snapshot.
      ok(await s3.create(s3.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(nodeCrypto.randomBytes(60_000)) } }), 2001, 'a large message');
      await e3.close();
      const e4 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s4 = new Session(e4, 'CAE1');
      ok(await s4.retrieve(s4.path('reg', 'h', 'cHsh')), 2000, 'consumed');
      const next = nodeCrypto.randomBytes(100), more = nodeCrypto.randomBytes(50);
      ok(await s4.update(s4.path('reg', 'h'), { 'senv:Hsh': { msg: b64(next) } }), 2004, 'a new message replaces it');
      // Only the first chunk after the consumption starts a new message: the next one appends to it.
      ok(await s4.update(s4.path('reg', 'h'), { 'senv:Hsh': { msg: b64(more) } }), 2004, 'a second chunk');
      await e4.close();
      expect(journal(), 'compacted at close').toBe(0);
      expect(statSync(join(dir, 'snapshot.json')).size, 'the replaced 60 KB message is not in the snapshot').toBeLessThan(20_000);
      // A compaction at close that cannot be written (a directory where its temp file goes) leaves the
      // journal; the next clean close, which reads the journal for such records at open, compacts it.
      const e6 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s6 = new Session(e6, 'CAE1');
      ok(await s6.create(s6.seId, 20012, { 'senv:Sgn': { rn: 'k', Salg: 25, kDt: b64(nodeCrypto.randomBytes(32)) } }), 2001, 'another key');
      ok(await s6.delete(s6.path('reg', 'k')), 2002, 'deleted');
      mkdirSync(join(dir, 'snapshot.json.tmp'));
      await e6.close();
      expect(journal(), 'the compaction could not be written').toBeGreaterThan(0);
      rmSync(join(dir, 'snapshot.json.tmp'), { recursive: true });
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();
      expect(journal(), 'compacted by the next clean close').toBe(0);
      const e5 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s5 = new Session(e5, 'CAE1');
      expect(unb64(body(ok(await s5.retrieve(s5.path('reg', 'h', 'cHsh')), 2000, 'hash'), 'senv:Hsh').Hv)).toEqual(new Uint8Array(sha256(Buffer.concat([next, more]))));
      await e5.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a clean close also compacts a journal a crash left behind its snapshot, and one holding chunks of a discarded message', async () => {
    const dir = tempDir();
    const journalPath = join(dir, 'journal.log');
    const journal = () => (existsSync(journalPath) ? statSync(journalPath).size : 0);
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s1 = new Session(e1, 'CAE1');
      await s1.register();
      ok(await s1.create(s1.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(nodeCrypto.randomBytes(32)) } }), 2001, 'key');
      ok(await s1.delete(s1.path('reg', 'm')), 2002, 'key deleted');
      const before = readFileSync(journalPath);
      await e1.close();
      expect(journal(), 'compacted at close').toBe(0);
      // A crash between the snapshot's rename and the journal's cut: the old journal is still there.
      writeFileSync(journalPath, before);
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      fails(await new Session(e2, 'CAE1').retrieve(`${e2.seIds[0]}/reg/m`), 4004, 'the deleted key stays deleted');
      await e2.close();
      expect(journal(), 'the journal the snapshot covers is compacted away at the next clean close').toBe(0);

      // A message of chunks only (no sealed part of its own), discarded: its chunks go at the clean close.
      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s3 = new Session(e3, 'CAE1');
      ok(await s3.create(s3.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash without a message');
      await e3.close();
      const e4 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s4 = new Session(e4, 'CAE1');
      ok(await s4.update(s4.path('reg', 'h'), { 'senv:Hsh': { msg: b64(nodeCrypto.randomBytes(48)) } }), 2004, 'a chunk');
      ok(await s4.update(s4.path('reg', 'h'), { 'senv:Hsh': { msg: null } }), 2004, 'discarded');
      await e4.close();
      expect(journal(), 'compacted at close').toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // esi and kInf take any JSON: objects shaped like the store's own tags for
  // bytes, data, device objects and keys must come back as the client wrote them.
  it('client JSON shaped like the store\'s internal tags survives a restart unchanged', async () => {
    const dir = tempDir();
    try {
      const values = [
        { $b: 'AAECAw==' }, { $acc: '!' }, { $device: 3 }, { $j: 1 }, { $b: 5, $key: null },
        { $key: { spec: {}, kind: 'secret', ref: 'x' } }, { $key: { spec: { use: 'cipher', algorithm: 1001 }, kind: 'secret', bytes: 'AAAA' } },
      ];
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const sessions = values.map((_, i) => new Session(e1, `CJ${i}`));
      for (const [i, v] of values.entries()) {
        await sessions[i]!.register(`r${i}`);
        ok(await sessions[i]!.update(sessions[i]!.seId, { 'senv:Senv': { esi: v } }), 2004, `esi ${JSON.stringify(v)}`);
        ok(await sessions[i]!.create(sessions[i]!.seId, 20012, { 'senv:Sgn': { rn: `s${i}`, Salg: 25, kDt: b64(new Uint8Array(16)), kInf: v } }), 2001, `kInf ${JSON.stringify(v)}`);
      }
      await e1.close();
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      for (const [i, v] of values.entries()) {
        const t = new Session(e2, `CJ${i}`);
        expect(body(ok(await t.retrieve(t.seId), 2000, 'registration'), 'senv:Senv').esi).toEqual(v);
        expect(body(ok(await t.retrieve(t.path(`r${i}`, `s${i}`)), 2000, 'signature'), 'senv:Sgn').kInf).toEqual(v);
      }
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('memory usage is the same after a restart, and the quota holds across it', async () => {
    const dir = tempDir();
    try {
      const Q = 200_000;
      const open = (memoryQuota: number) => McsEngine.create({ dataDir: dir, masterKey: KEY, memoryQuota });
      const memory = async (s: Session) => {
        const { mma, mmt } = body(ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory'), 'm2m:mem');
        return { mma: mma as number, mmt: mmt as number };
      };
      const e1 = await open(Q);
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(nodeCrypto.randomBytes(1000)) } }), 2001, 'sdo');
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1002, mbs: 1 << 16, kDt: b64(nodeCrypto.randomBytes(32)), msg: b64(nodeCrypto.randomBytes(300)) } }), 2001, 'cipher');
      ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { nc: b64(nodeCrypto.randomBytes(12)) } }), 2001, 'nonce');
      ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt');
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(nodeCrypto.randomBytes(70)) } }), 2004, 'new message');
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: 34 } }), 2001, 'ecdsa');
      ok(await s.retrieve(s.path('reg', 'e', 'gnK')), 2000, 'key');
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 6 } }), 2001, 'hash');
      for (let i = 0; i < 3; i++) ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(nodeCrypto.randomBytes(700)) } }), 2004, 'append');
      ok(await s.update(s.seId, { 'senv:Senv': { hal: ['CAE1'] } }), 2004, 'hal');
      const before = await memory(s);
      expect(before.mmt).toBe(Q);
      expect(before.mma).toBeLessThan(Q - 1000 - 32 - 300 - 316 - 48 - 2100);
      await e1.close();

      const e2 = await open(Q);
      const t = new Session(e2, 'CAE1');
      expect(await memory(t)).toEqual(before);
      fails(await t.create(t.seId, 20009, { 'senv:Sdo': { rn: 'big', msg: b64(nodeCrypto.randomBytes(before.mma + 1)) } }), 5207, 'one byte over', /not enough memory/);
      ok(await t.create(t.seId, 20009, { 'senv:Sdo': { rn: 'big', msg: b64(nodeCrypto.randomBytes(before.mma)) } }), 2001, 'at the limit');
      expect((await memory(t)).mma).toBe(0);
      ok(await t.delete(t.path('reg', 'd')), 2002, 'delete');
      expect((await memory(t)).mma).toBe(1000);
      await e2.close();

      // Opened with a quota below what it holds: nothing more fits, and freeing still works.
      const e3 = await open(1000);
      const u = new Session(e3, 'CAE1');
      expect(await memory(u)).toEqual({ mma: 0, mmt: 1000 });
      fails(await u.create(u.seId, 20009, { 'senv:Sdo': { rn: 'one', msg: 'AA==' } }), 5207, 'over the quota');
      // Still over the quota after it: what frees memory is accepted all the same.
      ok(await u.update(u.path('reg', 'c'), { 'senv:Cph': { msg: null } }), 2004, 'an UPDATE that frees less than the excess');
      ok(await u.delete(u.path('reg', 'big')), 2002, 'delete');
      ok(await u.delete(u.path('reg', 'h')), 2002, 'delete');
      await e3.close();
      const e4 = await open(Q);
      expect((await memory(new Session(e4, 'CAE1'))).mma).toBe(1000 + before.mma + 2100 + 70);
      await e4.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('[deviceInfo] after a restart describes the device as its backend does now (new firmware, another senv), not as at registration', async () => {
    const dir = tempDir();
    const uniqueId = 'dd'.repeat(16);
    // Another version of the SE behind the same M2M-SE-ID: new firmware, and no hardwareVersion at all.
    class Upgraded extends SoftwareBackend {
      override readonly description = { ...new SoftwareBackend({ uniqueId }).description, firmwareVersion: 'core ABI 99', softwareVersion: '9.9.9', hardwareVersion: undefined };
    }
    const dvi = async (s: Session) => body(ok(await s.retrieve(s.path('reg', 'deviceInfo')), 2000, 'deviceInfo'), 'm2m:dvi');
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new SoftwareBackend({ uniqueId })] });
      const s = new Session(e1, 'CAE1');
      await s.register();
      const before = await dvi(s);
      expect(before.swv).toBe('0.1.0');
      await e1.close();

      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new Upgraded({ uniqueId })] });
      const after = await dvi(new Session(e2, 'CAE1'));
      expect({ fwv: after.fwv, swv: after.swv, hwv: after.hwv }).toEqual({ fwv: 'core ABI 99', swv: '9.9.9', hwv: 'unknown' });
      // The same resource, restored: only what the device says of itself moved.
      expect({ ...after, fwv: 0, swv: 0, hwv: 0 }).toEqual({ ...before, fwv: 0, swv: 0, hwv: 0 });
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('software SEs the caller made without a uniqueId take the IDs the data directory keeps: their resources come back', async () => {
    const dir = tempDir();
    const open = () => McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new SoftwareBackend(), new SoftwareBackend({ uniqueId: 'ee'.repeat(16) }), new SoftwareBackend()] });
    try {
      const e1 = await open();
      const ids = e1.seIds;
      expect(new Set(ids).size).toBe(3);
      expect(ids[1]).toBe(`4-${'ee'.repeat(16)}`);
      for (const id of ids) {
        const s = new Session(e1, 'CAE1', id);
        await s.register();
        ok(await s.create(id, 20009, { 'senv:Sdo': { rn: 'kept', msg: 'c2VjcmV0' } }), 2001, `data on ${id}`);
      }
      await e1.close();
      const e2 = await open();
      expect(e2.seIds).toEqual(ids);
      for (const id of ids) expect(body(ok(await new Session(e2, 'CAE1', id).retrieve(`${id}/reg/kept`), 2000, `after the restart on ${id}`), 'senv:Sdo').msg).toBe('c2VjcmV0');
      await e2.close();
      // Without a data directory the ID stays the random one it was made with.
      const b = new SoftwareBackend();
      const memory = await McsEngine.create({ backends: [b] });
      expect(memory.seIds).toEqual([`4-${b.description.uniqueId}`]);
      await memory.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('backups (docs/mcs.md "Backups and moving a directory"): a closed directory copied elsewhere opens there with its M2M-SE-IDs; a copy taken while its engine runs holds that engine\'s lock, and once it is removed opens as after a crash', async () => {
    const top = tempDir();
    const live = join(top, 'live');
    try {
      const e = await McsEngine.create({ dataDir: live, masterKey: KEY });
      const s = new Session(e, 'CAE1');
      await s.register();
      const part = nodeCrypto.randomBytes(100);
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(part) } }), 2001, 'hash');
      // An engine idle between requests: what a file system snapshot (LVM, ZFS, btrfs) of the directory would hold.
      cpSync(live, join(top, 'running'), { recursive: true });
      await expect(McsEngine.create({ dataDir: join(top, 'running'), masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirLockedError' });
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(part) } }), 2004, 'after the copy');
      await e.close();
      // The copy's lock names this process, which still runs: taken over only once it is gone, so removed by hand.
      await expect(McsEngine.create({ dataDir: join(top, 'running'), masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirLockedError' });
      rmSync(join(top, 'running', 'lock'));
      cpSync(live, join(top, 'closed'), { recursive: true });
      for (const [copy, parts] of [['closed', 2], ['running', 1]] as const) {
        const c = await McsEngine.create({ dataDir: join(top, copy), masterKey: KEY });
        expect(c.seIds, copy).toEqual(e.seIds);
        const hv = unb64(body(ok(await new Session(c, 'CAE1').retrieve(s.path('reg', 'h', 'calculateHash')), 2000, copy), 'senv:Hsh').Hv);
        expect(Buffer.from(hv).equals(nodeCrypto.createHash('sha256').update(Buffer.concat(Array(parts).fill(part))).digest()), `${copy}: the message as it was when copied`).toBe(true);
        await c.close();
      }
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('a clock that gives fractions of a millisecond: what it times is written in whole milliseconds and reads back (a chunk\'s lt was refused at open)', async () => {
    const dir = tempDir();
    try {
      const options = { dataDir: dir, masterKey: KEY, clock: () => Date.UTC(2026, 10, 22, 12) + 0.5 };
      let e = await McsEngine.create(options);
      const s = new Session(e, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(new Uint8Array([1, 2, 3])) } }), 2004, 'chunk');
      await e.close();
      e = await McsEngine.create(options);
      const h = body(ok(await new Session(e, 'CAE1').retrieve(s.path('reg', 'h')), 2000, 'after the restart'), 'senv:Hsh');
      expect([h.msg, h.lt]).toEqual([b64(new Uint8Array([1, 2, 3])), '20261122T120000,000000']);
      await e.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGKILL at random moments: every acknowledged write survives and the store opens', async () => {
    const dir = tempDir();
    const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
    const writer = fileURLToPath(new URL('./fixtures/mcs-writer.ts', import.meta.url));
    const acked = new Set<number>();
    const appended: number[] = [];
    const ets: number[] = [];
    // The et of the <cipher> c and the <signature> m, and the acpi of the <sensitiveDataObject> s, acknowledged.
    const kept: Record<'cet' | 'met' | 'acpi', number[]> = { cet: [], met: [], acpi: [] };
    let hashed = 0;
    let next = 0;
    let ready = 0;
    try {
      for (let round = 0; round < 5; round++) {
        const child = spawn(deno, ['run', '--quiet', '--allow-read', '--allow-write', '--allow-env', writer, dir, String(next)], {
          env: { ...process.env, SENV_MASTER_KEY: Buffer.from(KEY).toString('hex') },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
        await new Promise<void>((resolve) => {
          let killAt = -1;
          // At a random moment 200-1000 ms after 'ready', but not before this run acknowledged a whole round
          // of writes and the next one's first (a loaded machine's writer may acknowledge none in 200 ms, and
          // the counts checked below would then fail with the store right): then at the next line. 20 s
          // past the moment, a writer that still has not is killed all the same.
          let due = false;
          let killed = false;
          let sdos = 0;
          let rounds = 0;
          const kill = (now: boolean) => {
            if (killed || !due || !(now || (sdos >= 2 && rounds >= 1))) return;
            killed = true;
            child.kill('SIGKILL');
            resolve();
          };
          onLines(child, ([kind, n]) => {
            if (kind === 'ready' && killAt < 0) {
              killAt = 1;
              ready++;
              setTimeout(() => {
                due = true;
                kill(false);
                setTimeout(() => kill(true), 20_000).unref();
              }, 200 + Math.floor(Math.random() * 800));
            } else if (kind === 'sdo') {
              acked.add(Number(n));
              sdos++;
            } else if (kind === 'app') appended.push(Number(n));
            else if (kind === 'et') ets.push(Number(n));
            else if (kind === 'cg') {
              hashed++;
              rounds++;
            } else if (kind === 'cet' || kind === 'met' || kind === 'acpi') kept[kind].push(Number(n));
            kill(false);
          });
          child.on('exit', () => resolve());
        });
        await exited;
        next = Math.max(next, ...acked, ...appended) + 1;
      }
      // Each run opens the directory: the lock a killed run left is taken over.
      expect(ready).toBe(5);
      expect(acked.size).toBeGreaterThan(5);
      const engine = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(engine, 'CWRITER');
      for (const i of acked) {
        const r = ok(await s.retrieve(s.path('reg', `d${i}`)), 2000, `acknowledged d${i}`);
        expect(body(r, 'senv:Sdo').msg).toBe(chunkOf(i));
      }
      // The hash message holds every acknowledged chunk in order. A kill between
      // the durable append and its acknowledgement leaves one extra chunk (of the
      // index before the next acknowledged one) that the next run did not know of.
      const msg = unb64(body(await s.retrieve(s.path('reg', 'h')), 'senv:Hsh').msg);
      const at = (o: number, i: number) => Buffer.from(msg.subarray(o, o + unb64(chunkOf(i)).length)).equals(Buffer.from(unb64(chunkOf(i))));
      let off = 0;
      for (const i of appended) {
        if (!at(off, i)) off += unb64(chunkOf(i - 1)).length;
        expect(at(off, i)).toBe(true);
        off += unb64(chunkOf(i)).length;
      }
      expect(msg.length - off).toBeLessThanOrEqual(3001);
      // The et records keep h's message (checked above); the last one written is the last acknowledged or
      // one written but not acknowledged after it (the next run starts past it).
      expect(ets.length + hashed, 'et UPDATEs and calculateHash acknowledged').toBeGreaterThan(2);
      const et = body(await s.retrieve(s.path('reg', 'h')), 'senv:Hsh').et as string;
      expect(indexOfEt(et)).toBeGreaterThanOrEqual(Math.max(...ets));
      expect(indexOfEt(et)).toBeLessThan(next);
      expect(et.startsWith(etOf(indexOfEt(et)))).toBe(true);
      // g's message, kept by every calculateHash record, and consumed: the next chunk starts a new one.
      expect(body(await s.retrieve(s.path('reg', 'g')), 'senv:Hsh').msg).toBe(G_MESSAGE);
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'g', 'cHsh')), 2000, 'g'), 'senv:Hsh').Hv)).toEqual(new Uint8Array(nodeCrypto.createHash('sha256').update(unb64(G_MESSAGE)).digest()));
      ok(await s.update(s.path('reg', 'g'), { 'senv:Hsh': { msg: chunkOf(1) } }), 2004, 'a chunk after the consumed message');
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'g', 'cHsh')), 2000, 'g'), 'senv:Hsh').Hv)).toEqual(new Uint8Array(nodeCrypto.createHash('sha256').update(unb64(chunkOf(1))).digest()));
      // c, m and s were written once, before the first kill; their et or acpi records since keep the sealed part.
      expect(Object.values(kept).map((k) => k.length), 'cipher et, signature et and acpi UPDATEs acknowledged').not.toContain(0);
      const keptSealed = frames(readFileSync(join(dir, 'journal.log'))).flatMap(resources).filter((r) => r.keptSealed === true).map((r) => r.rn);
      for (const rn of ['c', 'm', 's']) expect(keptSealed, `records of ${rn} that keep its sealed part`).toContain(rn);
      // The last et or acpi written: the last acknowledged, or one written after it but not acknowledged.
      const since = (k: number[]) => Array.from({ length: next - Math.max(...k) }, (_, d) => Math.max(...k) + d);
      for (const [rn, root, k] of [['c', 'senv:Cph', kept.cet], ['m', 'senv:Sgn', kept.met]] as const) {
        expect(since(k).map(etOf), `${rn}'s et`).toContain((body(ok(await s.retrieve(s.path('reg', rn)), 2000, rn), root).et as string).slice(0, 15));
      }
      const acpRi = await Promise.all(ACPS.map(async (rn) => body(ok(await s.retrieve(s.path('reg', rn)), 2000, rn), 'm2m:acp').ri as string));
      expect(since(kept.acpi).map((i) => [acpRi[i % 2]]), 's\'s acpi').toContainEqual(body(ok(await s.retrieve(s.path('reg', 's')), 2000, 's'), 'senv:Sdo').acpi);
      expect(body(ok(await s.retrieve(s.path('reg', 's')), 2000, 's'), 'senv:Sdo').msg, 's\'s data').toBe(SDO_DATA);
      // The keys given at CREATE: the results computed before the first kill, and new ones, are node:crypto's.
      const aesGcm = (data: Uint8Array) => {
        const c = nodeCrypto.createCipheriv('aes-128-gcm', unb64(CIPHER_KEY), unb64(NONCE));
        return new Uint8Array(Buffer.concat([c.update(data), c.final(), c.getAuthTag()]));
      };
      const hmacOf = (data: Uint8Array) => new Uint8Array(nodeCrypto.createHmac('sha256', unb64(MAC_KEY)).update(data).digest());
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'c')), 2000, 'c'), 'senv:Cph').cD), 'c\'s cD').toEqual(aesGcm(unb64(MESSAGE)));
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'm')), 2000, 'm'), 'senv:Sgn').Sgn), 'm\'s Sgn').toEqual(hmacOf(unb64(MESSAGE)));
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: chunkOf(2) } }), 2004, 'c: a new message');
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD), 'encrypted again').toEqual(aesGcm(unb64(chunkOf(2))));
      ok(await s.update(s.path('reg', 'm'), { 'senv:Sgn': { msg: chunkOf(2) } }), 2004, 'm: a new message');
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'm', 'cSgn')), 2000, 'HMAC'), 'senv:Sgn').Sgn), 'HMAC again').toEqual(hmacOf(unb64(chunkOf(2))));
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

function fails4106(r: { rsc: number }): void {
  expect(r.rsc).toBe(4106);
}

// journal.log as a test reads it: [length u32][CRC-32 u32][JSON][MAC 32 bytes], length and CRC over
// JSON and MAC. Anyone can recompute a CRC; only the master key makes a MAC.
interface Frame { at: number; json: Record<string, unknown>; mac: Buffer }

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (d: Uint8Array) => {
  let c = 0xffffffff;
  for (const b of d) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};

function frames(buf: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let at = 0; at < buf.length;) {
    const len = buf.readUInt32LE(at);
    out.push({ at, json: JSON.parse(buf.subarray(at + 8, at + 8 + len - 32).toString()) as Record<string, unknown>, mac: buf.subarray(at + 8 + len - 32, at + 8 + len) });
    at += 8 + len;
  }
  return out;
}

function frame(body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(body.length, 0);
  head.writeUInt32LE(crc32(body), 4);
  return Buffer.concat([head, body]);
}

/** The journal with each record's JSON as given and its MAC as it was: what someone without the master key can write. */
const forged = (fs: readonly Frame[]) => Buffer.concat(fs.map((f) => frame(Buffer.concat([Buffer.from(JSON.stringify(f.json)), f.mac]))));

/** A MAC the store computes under KEY, with its label. */
function mac(label: string, ...parts: Buffer[]): Buffer {
  const macKey = nodeCrypto.createHmac('sha256', KEY).update('senv journal mac').digest();
  return nodeCrypto.createHmac('sha256', macKey).update(Buffer.concat([Buffer.from(`${label}\0`), ...parts])).digest();
}

/** The journal re-chained with the master key's MACs (docs/mcs.md "Persistence"), from a directory without a snapshot. */
function withMacs(dir: string, records: readonly Record<string, unknown>[], labels = { start: 'start', record: 'record' }): Buffer {
  let prev = mac(labels.start, Buffer.from(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).check as string));
  return Buffer.concat(records.map((r) => {
    const json = Buffer.from(JSON.stringify(r));
    prev = mac(labels.record, prev, json);
    return frame(Buffer.concat([json, prev]));
  }));
}

const resources = (f: Frame) => [f.json.res ?? []].flat() as Record<string, unknown>[];

describe('Mcs data directory: the store\'s guarantees', () => {
  it('resources due to expire together go in one write, nested ones with their parent, and stay gone after a reopen', async () => {
    const dir = tempDir();
    try {
      const { files, count } = await countingAppends();
      const clock = { now: Date.UTC(2026, 10, 22, 12) };
      const et = (ms: number) => new Date(clock.now + ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
      const open = () => McsEngine.create({ dataDir: dir, masterKey: KEY, files, clock: () => clock.now });
      let e = await open();
      const s = new Session(e, 'CAE1');
      await s.register();
      for (let i = 0; i < 40; i++) ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: `d${i}`, Halg: 4, msg: b64(new Uint8Array(8).fill(i)), et: et(60_000) } }), 2001, `d${i}`);
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: b64(new Uint8Array(16).fill(3)), et: et(60_000) } }), 2001, 'a cipher');
      ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { rn: 'p', nc: b64(new Uint8Array(12)), et: et(30_000) } }), 2001, 'its parameters, due first');
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'stays', Halg: 4, et: et(600_000) } }), 2001, 'one due later');
      clock.now += 120_000;
      count.appends = 0;
      ok(await s.retrieve(s.path('reg', 'stays')), 2000, 'a request after they all fell due');
      expect(count.appends, 'one record removed all 42').toBe(1);
      for (const rn of ['d0', 'd39', 'c', 'c/p']) fails(await s.retrieve(s.path('reg', ...rn.split('/'))), 4004, `${rn} expired`);
      await e.close();
      e = await open();
      const t = new Session(e, 'CAE1');
      for (const rn of ['d0', 'd17', 'c']) fails(await t.retrieve(t.path('reg', rn)), 4004, `${rn} gone after a reopen`);
      ok(await t.retrieve(t.path('reg', 'stays')), 2000, 'the later one is there');
      await e.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() with a data directory lets go of the keys a device keeps (releaseKey), never deletes them: the directory names them for the next open', async () => {
    const dir = tempDir();
    try {
      const calls: string[] = [];
      class Device extends SoftwareBackend {
        override releaseKey(key: Parameters<SoftwareBackend['releaseKey']>[0]): void {
          calls.push('release');
          super.releaseKey(key);
        }
        deleteKey(key: Parameters<SoftwareBackend['releaseKey']>[0]): void {
          calls.push('delete');
          super.releaseKey(key);
        }
      }
      const open = () => McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new Device({ uniqueId: 'de' })] });
      await keptCipher(open);
      expect(calls).toEqual(['release']);
      const e2 = await open();
      ok(await new Session(e2, 'CAE1').retrieve(`${e2.seIds[0]}/reg/c`), 2000, 'there after a reopen');
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('resources a reopened directory holds go at their time with no request to wake the engine: the expiry timer is armed at open', async () => {
    const dir = tempDir();
    try {
      const { files, count } = await countingAppends();
      const clock = { now: Date.UTC(2026, 10, 22, 12) };
      const open = () => McsEngine.create({ dataDir: dir, masterKey: KEY, files, clock: () => clock.now });
      await keptCipher(open, { et: new Date(clock.now + 60_000).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '') });
      // Reopened after its time: no request comes, so only the engine's own timer can remove it.
      clock.now += 120_000;
      const e2 = await open();
      count.appends = 0;
      for (const end = Date.now() + 20_000; count.appends === 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
      expect(count.appends, 'the removal written without a request').toBe(1);
      await e2.close();
      const e3 = await open();
      fails(await new Session(e3, 'CAE1').retrieve(`${e3.seIds[0]}/reg/c`), 4004, 'gone after a reopen');
      await e3.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('by default a snapshot is written at 8 MiB of journal or at the last snapshot\'s size, whichever is larger: a large state is not rewritten for every 8 MiB', async () => {
    const dir = tempDir();
    try {
      const real = await openFiles();
      // Each snapshot's size, and how much journal was written before it.
      const snapshots: { size: number; journal: number }[] = [];
      let journal = 0;
      const files: Files = {
        ...real,
        append: async (path, data) => {
          journal += data.length;
          return real.append(path, data);
        },
        writeDurable: async (path, data) => {
          if (path.endsWith('snapshot.json.tmp')) snapshots.push({ size: data.length, journal });
          journal = 0;
          return real.writeDurable(path, data);
        },
      };
      const e = await McsEngine.create({ dataDir: dir, masterKey: KEY, files, maxDataSize: 16 << 20, memoryQuota: 64 << 20 });
      const s = new Session(e, 'CAE1');
      await s.register();
      // About 10.7 MiB of journal (secrets are sealed base64 in base64): the first snapshot.
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'big', msg: b64(nodeCrypto.randomBytes(6 << 20)) } }), 2001, 'a 6 MiB data object');
      expect(snapshots.length, 'the first snapshot at 8 MiB').toBe(1);
      const first = snapshots[0]!.size;
      expect(first).toBeGreaterThan(8 << 20);
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'small' } }), 2001, 'a second data object');
      // Records of about 1.8 MiB each: a fixed 8 MiB would compact after the fifth.
      let n = 0;
      while (snapshots.length === 1) {
        ok(await s.update(s.path('reg', 'small'), { 'senv:Sdo': { msg: b64(nodeCrypto.randomBytes(1 << 20)) } }), 2004, `update ${++n}`);
        expect(n, 'a second snapshot comes at last').toBeLessThan(20);
      }
      expect(snapshots[1]!.journal, 'not before the journal had grown to the first snapshot\'s size').toBeGreaterThanOrEqual(first);
      await e.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a torn end is cut: zero bytes (the file grew before its data reached the disk), a half record, an unparsable record, part of a header', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(nodeCrypto.randomBytes(40)) } }), 2001, 'sdo');
      await e1.close();
      const journal = join(dir, 'journal.log');
      const good = readFileSync(journal);
      const last = frames(good).at(-1)!;
      const tails = {
        'zero bytes': Buffer.alloc(64),
        'half a record': good.subarray(last.at, last.at + ((good.length - last.at) >> 1)),
        'a record of unparsable JSON with a valid CRC': frame(Buffer.concat([Buffer.from('{"seq":'), Buffer.alloc(40)])),
        'a record of length 0 and CRC 0, then zeros': Buffer.concat([Buffer.alloc(8), Buffer.alloc(100)]),
        // (coverage gap) Fewer bytes than a record's header: no length to read.
        'five bytes of a record\'s header': good.subarray(last.at, last.at + 5),
      };
      for (const [what, tail] of Object.entries(tails)) {
        writeFileSync(journal, good);
        appendFileSync(journal, tail);
        const e = await McsEngine.create({ dataDir: dir, masterKey: KEY });
        ok(await new Session(e, 'CAE1').retrieve(`${e.seIds[0]}/reg/d`), 2000, `acknowledged record before ${what}`);
        expect(readFileSync(journal).equals(good), what).toBe(true);
        await e.close();
      }
      // The reader itself, on an array with no bytes past its end (the store's reads may have some): a header cut short is no record.
      for (let n = 0; n < 8; n++) {
        const cut = new Uint8Array(good.subarray(last.at, last.at + n));
        expect(frameAt(cut, 0), `${n} bytes`).toBeUndefined();
        expect(endsBeforeTheFile(cut, 0), `${n} bytes`).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('damage followed by whole records is refused with its offset, and the journal is left untouched', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      for (let i = 0; i < 5; i++) ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: `r${i}`, rgT: 1 } }), 2001, 'rand');
      await e1.close();
      const journal = join(dir, 'journal.log');
      const good = readFileSync(journal);
      const second = frames(good)[1]!.at;
      for (const [what, offset] of [['a byte of a record', second + 30], ['a length field', second + 1], ['a CRC', second + 5]] as const) {
        const bad = Buffer.from(good);
        bad[offset]! ^= 1;
        writeFileSync(journal, bad);
        await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), what).rejects.toMatchObject({
          name: 'DataDirDamagedError', dir, file: 'journal.log', offset: second, message: expect.stringContaining(`damaged at offset ${second}`),
        });
        expect(readFileSync(journal).equals(bad), what).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a damaged record with more written after it is refused even when what follows is torn: only the last append can be', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      for (let i = 0; i < 3; i++) ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: `r${i}`, rgT: 1 } }), 2001, 'rand');
      await e1.close();
      const journal = join(dir, 'journal.log');
      const good = readFileSync(journal);
      const [, , third, fourth] = frames(good).map((f) => f.at);
      const bad = Buffer.from(good.subarray(0, fourth! + ((good.length - fourth!) >> 1)));
      bad[third! + 30]! ^= 1;
      writeFileSync(journal, bad);
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject({
        name: 'DataDirDamagedError', file: 'journal.log', offset: third, message: expect.stringContaining('more was written after it'),
      });
      expect(readFileSync(journal).equals(bad), 'left as it is').toBe(true);
      // A torn record followed by the least whole one ({} and a MAC, a valid CRC) ending the file exactly.
      const least = Buffer.concat([good.subarray(0, third! + 20), frame(Buffer.concat([Buffer.from('{}'), Buffer.alloc(32)]))]);
      writeFileSync(journal, least);
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject({
        name: 'DataDirDamagedError', file: 'journal.log', offset: third, message: expect.stringContaining('more was written after it'),
      });
      expect(readFileSync(journal).equals(least), 'left as it is').toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad first record followed by planted braces at every block is refused in bounded time, not scanned for minutes and cut', async () => {
    const dir = tempDir();
    try {
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();
      // 2 MiB of 64-byte blocks, each claiming a 256 KiB record whose braces are where a record's would
      // be: '{' at 8, and the '}' before the 32-byte MAC falls at byte 39 of a later block.
      const L = 256 * 1024, block = Buffer.alloc(64);
      block.writeUInt32LE(L, 0);
      block[8] = 0x7b;
      block[(8 + L - 32 - 1) % 64] = 0x7d;
      const crafted = Buffer.alloc(2 * 1024 * 1024);
      for (let o = 0; o < crafted.length; o += 64) block.copy(crafted, o);
      crafted.writeUInt32LE(0xffffffff, 0); // the first record's length runs past the file
      writeFileSync(join(dir, 'journal.log'), crafted);
      const start = performance.now();
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirDamagedError', offset: 0 });
      expect(performance.now() - start, 'ms').toBeLessThan(3000);
      expect(readFileSync(join(dir, 'journal.log')).length, 'left as it is').toBe(crafted.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a record with a valid MAC but not a record\'s shape is damage: no TypeError, no write into Object.prototype, no sequence number the next write cannot follow', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1 } }), 2001, 'rand');
      await e1.close();
      const journal = join(dir, 'journal.log');
      const good = readFileSync(journal);
      const records = frames(good).map((f) => f.json);
      const se = records[0]!.se as string;
      const odd: [string, Record<string, unknown>][] = [
        ['res null', { seq: 10, op: 'put', se, res: null }],
        ['an unknown op', { seq: 10, op: 'drop', se }],
        ['ris of numbers', { seq: 10, op: 'remove', se, ris: [1] }],
        ['an append without its data', { seq: 10, op: 'append', se, ri: 'x' }],
        ['an append whose lastModifiedTime is no integer', { seq: 10, op: 'append', se, ri: 'x', attr: 'a', sealed: 'AAAA', lt: 1.5 }],
        ['the last safe sequence number', { seq: Number.MAX_SAFE_INTEGER, op: 'remove', se, ris: [] }],
        ['sequence number 0', { seq: 0, op: 'remove', se, ris: [] }],
        // Shorter than the least record ({} and its MAC): whole by its CRC, written by the key's holder.
        ['a record of one byte', 5 as never],
      ];
      for (const [what, bad] of odd) {
        // The odd record in the middle (a good one after it), last (it verifies: no torn end), or the journal's only
        // record (chained from the chain's start): refused, the file left as it is.
        for (const [where, list] of [['in the middle', [...records, bad, { ...records.at(-1)!, seq: 11 }]], ['last', [...records, bad]], ['first and only', [bad]]] as const) {
          writeFileSync(journal, withMacs(dir, list));
          const before = readFileSync(journal);
          await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), `${what}, ${where}`).rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'journal.log' });
          expect(readFileSync(journal).equals(before), `${what}, ${where}`).toBe(true);
        }
      }
      // IDs that name Object.prototype's members are entries like any other.
      for (const id of ['__proto__', 'constructor', 'toString']) {
        writeFileSync(journal, withMacs(dir, [...records, { seq: 10, op: 'put', se: id, res: [{ ri: id, rn: id, pi: id, root: 'x', ct: 0, lt: 0, attrs: { polluted: true } }] }]));
        const e = await McsEngine.create({ dataDir: dir, masterKey: KEY });
        expect(({} as Record<string, unknown>).polluted, id).toBeUndefined();
        expect(typeof Object.prototype.toString, id).toBe('function');
        ok(await new Session(e, 'CAE1').retrieve(`${e.seIds[0]}/reg/r`), 2000, `${id}: the real resources load`);
        await e.close();
      }
      // Resources of a valid MAC but not a resource's content: damage (DataDirDamagedError), not a RangeError or TypeError.
      const reg = ((records[0]!.res as { ri: string; root: string }[]).find((r) => r.root === 'senv:Senv'))!.ri;
      const resource = (extra: Record<string, unknown>) => ({ ri: 'Rnd9', rn: 'odd', pi: reg, root: 'senv:Rnd', ct: 0, lt: 0, attrs: { rgT: 1 }, ...extra });
      const forged: [string, Record<string, unknown>][] = [
        ['its own parent', resource({ pi: 'Rnd9' })],
        ['appends that are no list', resource({ appends: 5 })],
        ['an append of nothing', resource({ appends: [null] })],
        ['streamed data that is no base64', resource({ attrs: { rgT: 1, x: { $acc: '!!' } } })],
        ['a key without its spec', resource({ attrs: { rgT: 1, x: { $key: { spec: null, kind: 'secret', bytes: 'AAAA' } } } })],
        ['a key with neither its bytes nor a reference', resource({ attrs: { rgT: 1, x: { $key: { spec: { use: 'cipher', algorithm: 1001 }, kind: 'secret' } } } })],
        // Not the backend's refusal of a stored key (a failure of the device, not damage): refused before loadKey sees it.
        ['a key of another kind', resource({ attrs: { rgT: 1, x: { $key: { spec: { use: 'cipher', algorithm: 1001 }, kind: 'private', bytes: 'AAAAAAAAAAAAAAAAAAAAAA==' } } } })],
      ];
      for (const [what, res] of forged) {
        writeFileSync(journal, withMacs(dir, [...records, { seq: 10, op: 'put', se, res: [res] }]));
        await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), what).rejects.toMatchObject({ name: 'DataDirDamagedError' });
      }
      // Replayed over at open, before anything loads: a put keeping the message, or a chunk, after appends that
      // are no list; a put keeping a message whose own appends are no list.
      const replayed: [string, Record<string, unknown>[]][] = [
        ['a kept put after appends that are no list', [{ seq: 10, op: 'put', se, res: [resource({ appends: 5 })] }, { seq: 11, op: 'put', se, res: [resource({ kept: ['x'] })] }]],
        ['a chunk after consumed appends that are no list', [{ seq: 10, op: 'put', se, res: [resource({ appends: 'xyz', consumed: true })] }, { seq: 11, op: 'append', se, ri: 'Rnd9', attr: 'x', sealed: 'AAAA' }]],
        ['a kept put whose own appends are no list', [{ seq: 10, op: 'put', se, res: [resource({})] }, { seq: 11, op: 'put', se, res: [resource({ kept: ['x'], appends: 7 })] }]],
      ];
      for (const [what, recs] of replayed) {
        writeFileSync(journal, withMacs(dir, [...records, ...recs]));
        await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), what).rejects.toMatchObject({ name: 'DataDirDamagedError', message: expect.stringContaining("holds a record that is not a resource's (TypeError)") });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a record that keeps a message or a sealed part no record before it holds is damage, never an empty message or a resource without its secrets', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      const message = nodeCrypto.randomBytes(3000);
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(message) } }), 2001, 'hash');
      await e1.close();
      expect(existsSync(join(dir, 'snapshot.json')), 'the journal holds everything').toBe(false);
      const journal = join(dir, 'journal.log');
      const records = frames(readFileSync(journal)).map((f) => f.json);
      const se = records[0]!.se as string;
      const hash = records.flatMap((r) => [r.res ?? []].flat() as Record<string, unknown>[]).find((r) => r.root === 'senv:Hsh')!;
      const keeping = (ri: string, kept: unknown) => ({ seq: records.length + 1, op: 'put', se, res: [{ ...hash, ri, appends: undefined, lt: (hash.lt as number) + 1, kept }] });
      // As the store writes it: the message is the one the hash's record holds.
      writeFileSync(journal, withMacs(dir, [...records, keeping(hash.ri as string, ['message'])]));
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(unb64(body(ok(await new Session(e2, 'CAE1').retrieve(`${e2.seIds[0]}/reg/h`), 2000, 'kept'), 'senv:Hsh').msg)).toEqual(new Uint8Array(message));
      await e2.close();
      writeFileSync(journal, withMacs(dir, [...records, keeping('Hsh0000nowhere', ['message'])]));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), 'no record before it').rejects.toMatchObject({ name: 'DataDirDamagedError', message: expect.stringContaining('keeps the message of resource Hsh0000nowhere') });
      // A good record after it, as a torn end would be cut.
      writeFileSync(journal, withMacs(dir, [...records, keeping(hash.ri as string, 'message'), { ...records.at(-1)!, seq: records.length + 2 }]));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), 'kept not a list').rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'journal.log' });

      // Format 6: a record that keeps the sealed part of the record before it, never a resource without its secrets.
      writeFileSync(journal, withMacs(dir, records));
      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const t = new Session(e3, 'CAE1');
      ok(await t.create(t.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(message) } }), 2001, 'sdo');
      await e3.close();
      const withSdo = frames(readFileSync(journal)).map((f) => f.json);
      const sdo = withSdo.flatMap((r) => [r.res ?? []].flat() as Record<string, unknown>[]).find((r) => r.root === 'senv:Sdo')!;
      const keepingSealed = (rec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ seq: withSdo.length + 1, op: 'put', se, res: [{ ...rec, sealed: undefined, lt: (rec.lt as number) + 1, keptSealed: true, ...extra }] });
      writeFileSync(journal, withMacs(dir, [...withSdo, keepingSealed(sdo)]));
      const e4 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(unb64(body(ok(await new Session(e4, 'CAE1').retrieve(`${e4.seIds[0]}/reg/d`), 2000, 'kept sealed'), 'senv:Sdo').msg)).toEqual(new Uint8Array(message));
      await e4.close();
      writeFileSync(journal, withMacs(dir, [...withSdo, keepingSealed({ ...sdo, ri: 'Sdo0000nowhere' })]));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), 'no record before it').rejects.toMatchObject({ name: 'DataDirDamagedError', message: expect.stringContaining('keeps the secret values of resource Sdo0000nowhere') });
      // The hash's record has no sealed part (no Hv yet): nothing to keep.
      writeFileSync(journal, withMacs(dir, [...withSdo, keepingSealed({ ...hash, appends: undefined })]));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), 'no sealed part before it').rejects.toMatchObject({ name: 'DataDirDamagedError', message: expect.stringContaining(`keeps the secret values of resource ${String(hash.ri)}`) });
      // Kept and its own at once, and a good record after it, as a torn end would be cut.
      writeFileSync(journal, withMacs(dir, [...withSdo, keepingSealed(sdo, { sealed: sdo.sealed }), { ...withSdo.at(-1)!, seq: withSdo.length + 2 }]));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), 'kept and sealed').rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'journal.log' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sealed data of an SE the engine does not host that does not open under its resource\'s ID is damage to a master key rotation: refused, the directory left under the old key', async () => {
    const dir = tempDir();
    const NEW = new Uint8Array(32).fill(8);
    const two = () => McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new SoftwareBackend(), new SoftwareBackend()] });
    try {
      const e1 = await two();
      const [a, b] = [new Session(e1, 'CAE1', e1.seIds[0]), new Session(e1, 'CAE2', e1.seIds[1])];
      await a.register();
      await b.register();
      for (const rn of ['d1', 'd2']) ok(await b.create(b.seId, 20009, { 'senv:Sdo': { rn, msg: b64(new TextEncoder().encode(`secret ${rn}`)) } }), 2001, rn);
      await e1.close();
      expect(existsSync(join(dir, 'snapshot.json')), 'the journal holds everything').toBe(false);
      // d2's record with d1's sealed part: only a holder of the master key can write it (its MAC verifies).
      const journal = join(dir, 'journal.log');
      const records = frames(readFileSync(journal)).map((f) => f.json);
      const sdo = (rn: string) => records.flatMap((r) => [r.res ?? []].flat() as Record<string, unknown>[]).find((r) => r.rn === rn)!;
      sdo('d2').sealed = sdo('d1').sealed;
      writeFileSync(journal, withMacs(dir, records));
      await expect(two(), 'the SE hosted: load() refuses it').rejects.toMatchObject({ name: 'DataDirDamagedError' });
      // Hosting the first SE only, nothing opens the second's records but the rotation: resealing the rest and
      // leaving d2's as it was would move the directory to the new key with d2 under the old one, for the
      // second SE's next open to find as damage no key mends.
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(e2.seIds).toEqual([a.seId]);
      await expect(e2.rotateMasterKey({ masterKey: NEW })).rejects.toMatchObject({ name: 'DataDirDamagedError', message: expect.stringContaining(`sealed data of resource ${String(sdo('d2').ri)} that does not open`) });
      await e2.close();
      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      ok(await new Session(e3, 'CAE1', e3.seIds[0]).retrieve(`${e3.seIds[0]}/reg`), 2000, 'still under the old key');
      await e3.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(process.geteuid?.() !== 0)('a data directory another user owns with its files (a service moved from its own user to root, a restored backup) opens', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(new TextEncoder().encode('kept')) } }), 2001, 'sdo');
      await e1.close();
      for (const p of [dir, ...readdirSync(dir).map((f) => join(dir, f))]) chownSync(p, 65534, 65534);
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const t = new Session(e2, 'CAE1');
      expect(new TextDecoder().decode(unb64(body(await t.retrieve(t.path('reg', 'd')), 'senv:Sdo').msg))).toBe('kept');
      ok(await t.create(t.seId, 20009, { 'senv:Sdo': { rn: 'e' } }), 2001, 'a record appended to the journal of user 65534');
      await e2.close();
      expect(statSync(join(dir, 'journal.log')).uid).toBe(65534);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(process.geteuid?.() !== 0)('root writing in a directory another user owns gives the files it makes to that user, whose engine could not open root\'s (an operator\'s rotation run with sudo)', async () => {
    const top = tempDir();
    const dir = join(top, 'data');
    const newKey = join(top, 'new-key');
    try {
      await keptCipher(async () => McsEngine.create({ dataDir: dir, masterKey: KEY }));
      for (const p of [dir, ...readdirSync(dir).map((f) => join(dir, f))]) chownSync(p, 65534, 65534);
      writeFileSync(newKey, Buffer.from(nodeCrypto.randomBytes(32)).toString('hex'), { mode: 0o600 });
      // As root: a rotation writes a new meta.json and snapshot.json, a snapshot at close too.
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      await e1.rotateMasterKey({ masterKeyFile: newKey });
      const s = new Session(e1, 'CAE1');
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'after' } }), 2001, 'a record after the rotation');
      await e1.close();
      // Each file the directory's own user, whose engine opens them (0600), not root's.
      for (const f of readdirSync(dir)) expect({ f, uid: statSync(join(dir, f)).uid, gid: statSync(join(dir, f)).gid }).toEqual({ f, uid: 65534, gid: 65534 });
      expect(readdirSync(dir).sort()).toEqual(['journal.log', 'meta.json', 'snapshot.json']);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('files planted in the data directory: a link is never written through, a FIFO never blocks the open, a journal.log not the store\'s alone is refused', async () => {
    const dir = tempDir();
    const outside = tempDir();
    try {
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();
      const victim = join(outside, 'victim');
      const untouched = (name: string) => {
        expect(readFileSync(victim, 'utf8'), name).toBe('not the store\'s');
        expect(statSync(victim).mode & 0o777, name).toBe(0o644);
      };
      // journal.log a link to a file outside, or with a second name there (or another owner: it is
      // read and written through that name): the open is refused, naming it, and the file keeps its bytes and mode.
      const refused: [string, (path: string) => void, RegExp][] = [
        ['a symbolic link', (path) => symlinkSync(victim, path), /journal\.log is a symbolic link/],
        ['a hard link', (path) => linkSync(victim, path), /journal\.log has 2 links/],
      ];
      // Root can give the file away, as an attacker who could write the directory once swaps in a file of its own.
      if (process.geteuid?.() === 0) refused.push(['owned by another user', (path) => {
        writeFileSync(path, 'not the store\'s', { mode: 0o644 });
        chownSync(path, 65534, 65534);
      }, /journal\.log is owned by user 65534, neither this process's 0 nor the data directory's owner 0: chown it \(or the whole directory\) to the user the engine runs as/]);
      for (const [what, plant, said] of refused) {
        writeFileSync(victim, 'not the store\'s', { mode: 0o644 });
        rmSync(join(dir, 'journal.log'), { force: true });
        plant(join(dir, 'journal.log'));
        await expect(JournalStore.open({ dir, masterKey: KEY }), what).rejects.toThrow(said);
        untouched(what);
        rmSync(join(dir, 'journal.log'));
      }
      // A temporary file's name a symbolic or hard link: the file is made afresh, and a clean close removes it.
      for (const plant of [symlinkSync, linkSync]) {
        writeFileSync(victim, 'not the store\'s', { mode: 0o644 });
        plant(victim, join(dir, 'snapshot.json.tmp'));
        // A snapshot after every record: the first write also writes snapshot.json.tmp.
        const e = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 1 }) });
        const s = new Session(e, 'CAE1');
        if (plant === symlinkSync) await s.register();
        ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: plant.name, msg: b64(new Uint8Array(8)) } }), 2001, plant.name);
        await e.close();
        untouched(plant.name);
        expect(() => lstatSync(join(dir, 'snapshot.json.tmp')), plant.name).toThrow(/ENOENT/);
      }
      // A journal.log of the store's own but readable by all is made 0600 at open.
      chmodSync(join(dir, 'journal.log'), 0o666);
      await (await JournalStore.open({ dir, masterKey: KEY })).close();
      expect(statSync(join(dir, 'journal.log')).mode & 0o777).toBe(0o600);
      // Temporary files a crash left (sealed state no file refers to) are gone after a clean close.
      for (const name of ['snapshot.json.tmp', 'meta.json.tmp']) writeFileSync(join(dir, name), 'left by a crash');
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();
      expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      // A FIFO where a file should be.
      rmSync(join(dir, 'journal.log'), { force: true });
      execFileSync('mkfifo', [join(dir, 'journal.log')]);
      const start = performance.now();
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toThrow(/journal\.log is not a regular file/);
      // An open that waited for a writer to the FIFO would block for good: 20 s leave a loaded machine room.
      expect(performance.now() - start).toBeLessThan(20_000);
      // One where a file is written afresh (a new directory's meta.json.tmp), or a hard link there: replaced.
      for (const plant of [(path: string) => execFileSync('mkfifo', [path]), (path: string) => linkSync(victim, path)]) {
        const fresh = join(outside, 'fresh');
        rmSync(fresh, { recursive: true, force: true });
        mkdirSync(fresh);
        plant(join(fresh, 'meta.json.tmp'));
        await (await McsEngine.create({ dataDir: fresh, masterKey: KEY })).close();
        expect(readdirSync(fresh)).toEqual(['meta.json']);
        untouched('meta.json.tmp');
      }
      // The same on Deno, which checks by path (no O_NOFOLLOW there).
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-planted-files.ts', import.meta.url));
      const denoDir = join(outside, 'deno-data');
      const { code, out } = await runChild(deno, ['run', '--allow-read', '--allow-write', '--allow-run=mkfifo', fixture, denoDir, outside], { killMs: 20_000 });
      expect({ code, out: out.trim() }).toEqual({
        code: 0,
        out: 'link: <dir>/journal.log is a symbolic link: the store writes no file through one; the linked file holds: not the store\nfifo: <dir>/journal.log is not a regular file\n'
          + 'hard link: <dir>/journal.log has 2 links: the store keeps no file another name reaches; the linked file holds: not the store\n'
          + 'tmp fifo: opened, meta.json\ntmp hard link: opened, meta.json; the linked file holds: not the store 0644\nmode: 600',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('two SEs writing at once, with snapshots in between: every acknowledged write survives a restart', async () => {
    const dir = tempDir();
    try {
      const open = async () => McsEngine.create({
        store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 4096 }),
        backends: [new SoftwareBackend({ uniqueId: 'aa'.repeat(16) }), new SoftwareBackend({ uniqueId: 'bb'.repeat(16) })],
      });
      const e1 = await open();
      const ses = e1.seIds.map((id) => new Session(e1, 'CAE1', id));
      await Promise.all(ses.map((s) => s.register()));
      const acked: [Session, string][] = [];
      for (let round = 0; round < 25; round++) {
        await Promise.all(ses.flatMap((s) => [0, 1, 2].map(async (k) => {
          const rn = `r${round}-${k}`;
          const r = await s.create(s.seId, 20009, { 'senv:Sdo': { rn, msg: b64(nodeCrypto.randomBytes(100)) } });
          if (r.rsc === 2001) acked.push([s, rn]);
        })));
      }
      expect(acked.length).toBe(150);
      await e1.close();
      expect(readdirSync(dir)).toContain('snapshot.json');
      const e2 = await open();
      for (const [s, rn] of acked) ok(await new Session(e2, 'CAE1', s.seId).retrieve(s.path('reg', rn)), 2000, `${s.seId} ${rn}`);
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a directory this very process holds is refused saying so, without the advice to remove the lock, which would open a second engine beside the first', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const ours = { name: 'DataDirLockedError', pid: process.pid, message: expect.stringMatching(/that is this process: .*await that engine's close\(\)/) };
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject(ours);
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.not.toMatchObject({ message: expect.stringContaining('remove') });
      // Another instance of senv in this process (a worker thread), told by this process's start time.
      await e1.close();
      writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.pid, since: '2026-01-01T00:00:00.000Z', token: 'worker', osLocked: false, stamp: (await openFiles()).stamp }));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject(ours);
      // This pid with no start time to tell: maybe a pid reused after a crash, so removing the lock is the advice.
      writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.pid, since: '2026-01-01T00:00:00.000Z', token: 'unknown', osLocked: false }));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirLockedError', message: expect.stringContaining(`remove ${join(dir, 'lock')}`) });
      // On Deno, whose lock has no start time, a worker's: its OS lock held, and this pid, tell it.
      rmSync(join(dir, 'lock'));
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-worker-lock.ts', import.meta.url));
      const { code, out } = await runChild(deno, ['run', '--allow-read', `--allow-write=${dir}`, fixture, dir], { killMs: 20_000 });
      expect(code, out).toBe(0);
      expect(out.trim(), 'on Deno').toMatch(/^DataDirLockedError: .*that is this process.*: an McsEngine it opened, in this thread or another, has it open .*await that engine's close\(\)/);
      expect(out, 'on Deno').not.toContain('remove');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('one engine per data directory: a second opener is refused naming the holder, a stale lock is taken over', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject({
        name: 'DataDirLockedError', dir, pid: process.pid, message: expect.stringContaining(`${dir} is in use by process ${process.pid}`),
      });
      await e1.close();
      expect(existsSync(join(dir, 'lock'))).toBe(false);

      // A process that has exited (kill -9 leaves its lock behind), and this pid reused by a process
      // that started at another time (a container's restart): both stale.
      const gone = spawn(process.execPath, ['-e', '0']);
      await new Promise((resolve) => gone.on('exit', resolve));
      for (const [pid, stamp] of [[gone.pid!, undefined], [process.pid, 'another-boot:1']] as const) {
        writeFileSync(join(dir, 'lock'), JSON.stringify({ pid, since: '2026-01-01T00:00:00.000Z', token: 'x', osLocked: false, stamp }));
        const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
        expect(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')).pid).toBe(process.pid);
        await e2.close();
      }
      // This pid and this process's start time, or no start time to tell: another instance of senv in
      // this process may hold it (a worker thread, a second copy of the package), so it is refused.
      for (const held of [{ stamp: (await openFiles()).stamp }, {}]) {
        writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.pid, since: '2026-01-01T00:00:00.000Z', token: 'y', osLocked: false, ...held }));
        await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), JSON.stringify(held)).rejects.toMatchObject({ name: 'DataDirLockedError', pid: process.pid });
      }
      rmSync(join(dir, 'lock'));
      // A second instance of the lock's module (its own set of held locks), as a worker thread or a
      // second copy of the package has: refused while this one holds the directory, not taken over.
      const secondInstance = '../../src/mcs/store/lock.ts?second-instance';
      const other = (await import(/* @vite-ignore */ secondInstance)) as typeof import('../../src/mcs/store/lock.ts');
      expect(other.takeLock).not.toBe(takeLock);
      const files = await openFiles();
      const holder = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      await expect(other.takeLock(files, dir)).rejects.toMatchObject({ name: 'DataDirLockedError', pid: process.pid });
      await holder.close();
      await other.releaseLock(files, dir, await other.takeLock(files, dir));
      // A live one (the parent of this process) is not; the error says what to do if that is wrong.
      writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.ppid, since: '2026-01-01T00:00:00.000Z', token: 'x', osLocked: false }));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirLockedError', pid: process.ppid, message: expect.stringContaining(`remove ${join(dir, 'lock')}`) });
      // The same pid given to another process since (its start differs from the lock's): stale.
      writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.ppid, since: '2020-01-01T00:00:00.000Z', token: 'x', osLocked: false, stamp: 'another-boot:1' }));
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();

      // Several processes taking over one stale lock at once: exactly one opens the directory.
      writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: gone.pid!, since: '2026-01-01T00:00:00.000Z', token: 'x', osLocked: false }));
      const dist = new URL('../../dist/src/index.js', import.meta.url).href;
      // One that opened holds the directory until the others have answered (30 s at most): on a loaded
      // machine a fixed hold could end before the last opener starts, which would then open in turn.
      const release = join(tempDir(), 'release');
      const opener = `const { McsEngine } = await import('${dist}');
        const { existsSync } = await import('node:fs');
        try { const e = await McsEngine.create({ dataDir: ${JSON.stringify(dir)}, masterKey: new Uint8Array(32).fill(7) });
          console.log('open');
          for (let i = 0; i < 1500 && !existsSync(${JSON.stringify(release)}); i++) await new Promise((r) => setTimeout(r, 20));
          await e.close(); }
        catch (e) { console.log(e.name); }`;
      let answered = 0;
      const outcomes = await Promise.all(Array.from({ length: 4 }, async () => {
        const out = (await runModule(opener)).out.trim();
        if (++answered === 3) writeFileSync(release, '');
        return out;
      }));
      rmSync(join(release, '..'), { recursive: true, force: true });
      expect(outcomes.filter((o) => o === 'open').length, outcomes.join()).toBe(1);
      expect(outcomes.filter((o) => o === 'DataDirLockedError').length, outcomes.join()).toBe(3);
      expect(existsSync(join(dir, 'lock'))).toBe(false);

      // A lock that names no process (pid 0, no JSON, empty) is damage: refused, left for a person, never taken over.
      for (const damaged of [JSON.stringify({ pid: 0, since: '2026-01-01T00:00:00.000Z', token: 'x', osLocked: false }), '{"pid":', '']) {
        writeFileSync(join(dir, 'lock'), damaged);
        await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), damaged).rejects.toMatchObject({
          name: 'DataDirDamagedError', file: 'lock', message: expect.stringContaining(`remove ${join(dir, 'lock')}`),
        });
        expect(readFileSync(join(dir, 'lock'), 'utf8')).toBe(damaged);
      }
      rmSync(join(dir, 'lock'));
      // A lock that is a link to nothing reads as missing though its name is there: said so, not looped on forever.
      symlinkSync(join(dir, 'nowhere'), join(dir, 'lock'));
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY })).rejects.toThrow(/is a link to nothing/);
      rmSync(join(dir, 'lock'));

      // An engine whose backend fails to close still releases the directory (and zeroizes the store's keys).
      class BadClose extends SoftwareBackend {
        override async close(): Promise<void> {
          await super.close();
          throw new Error('card removed');
        }
      }
      const e3 = await McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new BadClose()] });
      await expect(e3.close()).rejects.toThrow(/card removed/);
      expect(existsSync(join(dir, 'lock'))).toBe(false);

      // An engine that does not come up releases the directory.
      class Failing extends SoftwareBackend {
        override async open(): Promise<void> {
          throw new Error('self test failed');
        }
      }
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new Failing()] })).rejects.toThrow(/self test/);
      await expect(McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(8) })).rejects.toThrow(/master key/);
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('an engine of this process that still has the directory (a restart that did not await close()) is named as such, with no advice to remove its lock', async () => {
    const dir = tempDir();
    try {
      // An SE whose close() takes its time (a device's): the store is closed, and the lock released, after it.
      let closed!: () => void;
      const slow = new Promise<void>((resolve) => (closed = resolve));
      class SlowToClose extends SoftwareBackend {
        override async close(): Promise<void> {
          await slow;
          await super.close();
        }
      }
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY, backends: [new SlowToClose()] });
      const s = new Session(e1, 'CAE1');
      await s.register();
      const refusal = (p: Promise<unknown>) => p.then(async (e) => {
        await (e as McsEngine).close();
        return 'opened beside it';
      }, (e: Error) => `${e.name}: ${e.message}`);
      // Open, then closing with a request still being served: removing the lock by hand now would put
      // two engines on one journal.
      const open = await refusal(McsEngine.create({ dataDir: dir, masterKey: KEY }));
      const served = s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } });
      const closing = e1.close();
      const whileClosing = await refusal(McsEngine.create({ dataDir: dir, masterKey: KEY }));
      ok(await served, 2001, 'sent before the close');
      closed();
      await closing;
      for (const told of [open, whileClosing]) {
        expect(told).toMatch(/^DataDirLockedError: .*that is this process: an McsEngine it opened, in this thread or another, has it open \(or is opening or closing it\): await that engine's close\(\)/);
        expect(told).not.toContain('remove');
      }
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      ok(await new Session(e2, 'CAE1').retrieve(`${e2.seIds[0]}/reg/h`), 2000, 'kept');
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });


  it('a chunk given as bytes is stored as sent, in memory and on disk alike, whatever the caller does to its array during the write', async () => {
    const dir = tempDir();
    try {
      let e = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      const abc = new TextEncoder().encode('abc');
      const sent = s.send(3, s.path('reg', 'h'), { 'senv:Hsh': { msg: abc } }, undefined, true);
      abc.fill(0x7a);
      ok(await sent, 2004, 'chunk');
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'h')), 2000, 'held'), 'senv:Hsh').msg as string)).toEqual(new TextEncoder().encode('abc'));
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'hash'), 'senv:Hsh').Hv as string)).toEqual(sha256(new TextEncoder().encode('abc')));
      const def = new TextEncoder().encode('def');
      const next = s.send(3, s.path('reg', 'h'), { 'senv:Hsh': { msg: def } }, undefined, true);
      def.fill(0);
      ok(await next, 2004, 'next message');
      const before = body(ok(await s.retrieve(s.path('reg', 'h')), 2000, 'before'), 'senv:Hsh').msg;
      expect(before).toBe(b64(new TextEncoder().encode('def')));
      await e.close();
      e = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(body(ok(await new Session(e, 'CAE1').retrieve(s.path('reg', 'h')), 2000, 'after'), 'senv:Hsh').msg).toBe(before);
      // Every close() resolves once the directory is released, not only the first.
      const first = e.close();
      await e.close();
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();
      await first;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A holder killed with SIGKILL stays a zombie until its parent reaps it: kill(pid, 0) still finds it, with its own
  // start time. In a soak, an engine process orphaned and then killed kept its directory locked so for a while; under
  // a parent that never reaps (a shell that exec'd into another program, a PID 1 that does not reap) for ever.
  it.skipIf(process.platform !== 'linux')('a lock whose holder was killed and is a zombie (not reaped yet) is taken over', async () => {
    const dir = tempDir();
    // The shell starts the holder and execs into a sleep, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 60 & echo $!; exec sleep 61'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(d.toString()))));
      // Killed before the exec, the holder is reaped by the shell (on a loaded machine, now and then): wait for the sleep.
      for (let i = 0; i < 200 && readFileSync(`/proc/${parent.pid}/comm`, 'utf8') !== 'sleep\n'; i++) await new Promise((r) => setTimeout(r, 10));
      const stamp = stampFrom((p) => readFileSync(p, 'utf8'), pid);
      expect(stamp, 'its start time').toBeDefined();
      writeFileSync(join(dir, 'lock'), JSON.stringify({ pid, since: '2026-01-01T00:00:00.000Z', token: 'z', osLocked: false, stamp }));
      process.kill(pid, 'SIGKILL');
      const state = () => { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return st[st.lastIndexOf(')') + 2]; };
      for (let i = 0; i < 200 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(state(), 'a zombie').toBe('Z');
      const engine = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')).pid).toBe(process.pid);
      await engine.close();
    } finally {
      parent.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Needs root to run a process as another user: the lock's pid then belongs to a process kill() may
  // not signal (EPERM), as after a reboot that gave the pid to a system daemon.
  it.skipIf(process.getuid?.() !== 0)('a lock whose pid runs as another user (kill answers EPERM) is judged by its start stamp: stale when it differs', async () => {
    const files = new URL('../../dist/src/mcs/store/files.js', import.meta.url).href;
    const script = `const { openFiles, stampFrom } = await import('${files}');
      const { readFileSync } = await import('node:fs');
      const f = await openFiles();
      const real = stampFrom((p) => readFileSync(p, 'utf8'), 1);
      console.log(JSON.stringify([real !== undefined, await f.lockHeld('lock', 1, false, 'another-boot:1'), await f.lockHeld('lock', 1, false, real)]));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, cwd: tmpdir() });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    await new Promise((resolve) => child.on('exit', resolve));
    // [pid 1's stamp readable, held under another stamp, held under its own]
    expect(out.trim(), err).toBe('[true,false,true]');
  });

  it('a lock whose holder the platform cannot tell alive or gone (lockHeld answers undefined) is refused and left as it is, never taken over', async () => {
    const dir = tempDir();
    try {
      const base = await openFiles();
      await (await JournalStore.open({ dir, masterKey: KEY, files: base })).close();
      const lock = join(dir, 'lock');
      const held = JSON.stringify({ pid: 100, since: '2026-01-01T00:00:00.000Z', token: 'untold100', osLocked: false });
      writeFileSync(lock, held);
      const files: Files = { ...base, pid: 200, stamp: undefined, lockHeld: async () => undefined };
      await expect(JournalStore.open({ dir, masterKey: KEY, files })).rejects.toMatchObject({ name: 'DataDirLockedError', message: expect.stringContaining('whether it still runs cannot be told here') });
      expect(readFileSync(lock, 'utf8')).toBe(held);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stale takeover guard beside a stale lock (a taker killed mid-takeover): exactly one of two openers opens', async () => {
    const dir = tempDir();
    try {
      const base = await openFiles();
      await (await JournalStore.open({ dir, masterKey: KEY, files: base })).close();
      const lock = join(dir, 'lock'), guard = `${lock}.takeover`;
      writeFileSync(lock, deadHolder(100));
      writeFileSync(guard, deadHolder(101));
      // Two processes (pids 200 and 300) through the Files interface. The interleaving that let both
      // open: B reads the dead taker's guard, A meanwhile removes it and takes a fresh guard, B then
      // judges what it read stale; A's removal of the stale lock is slow.
      const signal = () => {
        let fire!: () => void;
        return { p: new Promise<void>((r) => (fire = r)), fire };
      };
      const bRead = signal(), aGuard = signal(), bDone = signal();
      const alive = new Set([200, 300]);
      const as = (pid: number, hooks: { read?: (p: string) => Promise<void>; remove?: (p: string) => Promise<void>; created?: (p: string, ok: boolean) => void }): Files => ({
        ...base, pid, stamp: undefined, osLocks: false,
        lockHeld: async (_p, hpid) => alive.has(hpid),
        read: async (p, kind) => {
          const v = await base.read(p, kind);
          await hooks.read?.(p);
          return v;
        },
        remove: async (p) => {
          await hooks.remove?.(p);
          return base.remove(p);
        },
        createLock: async (p, d) => {
          const r = await base.createLock(p, d);
          hooks.created?.(p, r !== undefined);
          return r;
        },
      });
      let aGuardRemovals = 0, aLockRemovals = 0, bGuardReads = 0;
      const A = as(200, {
        remove: async (p) => {
          if (p === guard && aGuardRemovals++ === 0) await bRead.p;
          if (p === lock && aLockRemovals++ === 0) await Promise.race([bDone.p, new Promise((r) => setTimeout(r, 500))]);
        },
        created: (p, made) => made && p === guard && aGuard.fire(),
      });
      const B = as(300, {
        read: async (p) => {
          if (p !== guard || bGuardReads++ !== 0) return;
          bRead.fire();
          await aGuard.p;
        },
      });
      // A store that opened stays open until both have settled: two that open one after the other
      // (a slow machine can run them so) would be no double hold.
      const outcome = (store: Promise<JournalStore>) => store.then((s) => s, (e: Error) => e.name);
      const settled = await Promise.all([outcome(JournalStore.open({ dir, masterKey: KEY, files: A })), outcome(JournalStore.open({ dir, masterKey: KEY, files: B }).finally(() => bDone.fire()))]);
      const opened = settled.filter((o): o is JournalStore => o instanceof JournalStore);
      for (const s of opened) await s.close();
      expect(opened, settled.map((o) => (typeof o === 'string' ? o : 'open')).join(', ')).toHaveLength(1);
      expect(existsSync(guard)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stale takeover guards piled up past four levels (takers killed one after another) are refused, naming them, and left for their owner to remove (coverage gap)', async () => {
    const dir = tempDir();
    try {
      const base = await openFiles();
      await (await JournalStore.open({ dir, masterKey: KEY, files: base })).close();
      const lock = join(dir, 'lock');
      writeFileSync(lock, deadHolder(100));
      for (let level = 1; level <= 4; level++) writeFileSync(lock + '.takeover'.repeat(level), deadHolder(100 + level));
      const before = readdirSync(dir).sort();
      // Every holder is gone (their pids run no more).
      const files: Files = { ...base, lockHeld: async () => false };
      const inner = lock + '.takeover'.repeat(3);
      await expect(JournalStore.open({ dir, masterKey: KEY, files })).rejects.toThrow(new StateError(`stale takeover guards pile up beside ${inner}: remove ${inner}.takeover* if no engine has the directory open`));
      await expect(JournalStore.open({ dir, masterKey: KEY, files })).rejects.toBeInstanceOf(StateError);
      expect(readdirSync(dir).sort()).toEqual(before);
      // Removed as the message says, the next opener takes the rest over.
      rmSync(inner + '.takeover');
      await (await JournalStore.open({ dir, masterKey: KEY, files })).close();
      expect(readdirSync(dir).filter((f) => f.startsWith('lock'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every record is authenticated: edits, duplicates, reordering, removal, swapped secrets and an old format are refused', async () => {
    const dir = tempDir();
    const work = tempDir();
    const other = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      for (const rn of ['a', 'b']) ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn, Calg: 1001, mbs: 4096, kDt: b64(nodeCrypto.randomBytes(16)) } }), 2001, 'cipher');
      for (const m of ['AAAA', 'BBBB']) ok(await s.update(s.path('reg', 'a'), { 'senv:Cph': { msg: m } }), 2004, 'chunk');
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1 } }), 2001, 'rand');
      await e1.close();
      const e2 = await McsEngine.create({ dataDir: other, masterKey: KEY });
      await new Session(e2, 'CAE1').register();
      await e2.close();
      const good = frames(readFileSync(join(dir, 'journal.log')));
      const cph = (fs: Frame[], rn: string) => fs.flatMap(resources).find((r) => r.rn === rn)!;
      const tamper = (name: string, change: () => void) => ({ name, change });
      const attacks = [
        tamper('keyExportable set to true (kDt would show)', () => {
          const fs = structuredClone(good);
          for (const r of fs.flatMap(resources)) if (r.root === 'senv:Cph') (r.attrs as Record<string, unknown>).keyExportable = true;
          writeFileSync(join(work, 'journal.log'), forged(fs));
        }),
        tamper('a chunk record copied under a new seq', () => {
          const dup = structuredClone(good.filter((f) => f.json.op === 'append').at(-1)!);
          dup.json.seq = good.length + 1;
          writeFileSync(join(work, 'journal.log'), forged([...good, dup]));
        }),
        tamper('a record copied as it was', () => writeFileSync(join(work, 'journal.log'), forged([...good, good.at(-1)!]))),
        tamper('two records swapped', () => writeFileSync(join(work, 'journal.log'), forged([good[0]!, good[2]!, good[1]!, ...good.slice(3)]))),
        tamper('a record in the middle removed', () => writeFileSync(join(work, 'journal.log'), forged([good[0]!, ...good.slice(2)]))),
        tamper('sealed data swapped between resources', () => {
          const fs = structuredClone(good);
          const [a, b] = [cph(fs, 'a'), cph(fs, 'b')];
          [a.sealed, b.sealed] = [b.sealed, a.sealed];
          writeFileSync(join(work, 'journal.log'), forged(fs));
        }),
        tamper('the unique ID in meta.json changed', () => {
          const meta = JSON.parse(readFileSync(join(work, 'meta.json'), 'utf8'));
          meta.uniqueIds.software = 'cc'.repeat(16);
          writeFileSync(join(work, 'meta.json'), JSON.stringify(meta));
        }),
        tamper('the journal of another data directory with the same master key', () => {
          writeFileSync(join(work, 'journal.log'), readFileSync(join(other, 'journal.log')));
        }),
      ];
      for (const { name, change } of attacks) {
        rmSync(work, { recursive: true, force: true });
        cpSync(dir, work, { recursive: true });
        change();
        await expect(McsEngine.create({ dataDir: work, masterKey: KEY }), name).rejects.toMatchObject({ name: 'DataDirDamagedError', dir: work });
      }

      // Sealed data in the wrong resource under valid MACs (only the master key's holder can do that): a typed error naming the resource.
      rmSync(work, { recursive: true, force: true });
      cpSync(dir, work, { recursive: true });
      const records = good.map((f) => structuredClone(f.json));
      const [a, b] = [records.flatMap((r) => [r.res ?? []].flat() as Record<string, unknown>[]).find((r) => r.rn === 'a')!, records.flatMap((r) => [r.res ?? []].flat() as Record<string, unknown>[]).find((r) => r.rn === 'b')!];
      [a.sealed, b.sealed] = [b.sealed, a.sealed];
      writeFileSync(join(work, 'journal.log'), withMacs(work, records));
      await expect(McsEngine.create({ dataDir: work, masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirDamagedError', message: expect.stringContaining(`resource ${String(a.ri)}`) });
      // Sealed data cut shorter than a nonce and a tag (20 bytes): the same, not the cipher's LengthError.
      [a.sealed, b.sealed] = [b.sealed, a.sealed];
      a.sealed = Buffer.from(a.sealed as string, 'base64').subarray(0, 20).toString('base64');
      writeFileSync(join(work, 'journal.log'), withMacs(work, records));
      await expect(McsEngine.create({ dataDir: work, masterKey: KEY }), 'sealed data of 20 bytes').rejects.toMatchObject({ name: 'DataDirDamagedError', message: expect.stringContaining(`resource ${String(a.ri)}`) });
      // ... and that re-chaining alone is accepted: the tool above writes what the store writes.
      writeFileSync(join(work, 'journal.log'), withMacs(work, good.map((f) => f.json)));
      await (await McsEngine.create({ dataDir: work, masterKey: KEY })).close();

      // A directory of the format before MACs (meta.json without `format`) is refused, not misread.
      rmSync(work, { recursive: true, force: true });
      cpSync(dir, work, { recursive: true });
      const meta = JSON.parse(readFileSync(join(work, 'meta.json'), 'utf8'));
      writeFileSync(join(work, 'meta.json'), JSON.stringify({ uniqueIds: meta.uniqueIds, check: meta.check }));
      await expect(McsEngine.create({ dataDir: work, masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirFormatError', message: expect.stringMatching(/earlier version/) });
      // A later format, as an earlier version finds this one's format 6: a format it does not read, not damage.
      writeFileSync(join(work, 'meta.json'), JSON.stringify({ ...meta, format: 7 }));
      await expect(McsEngine.create({ dataDir: work, masterKey: KEY })).rejects.toMatchObject({ name: 'DataDirFormatError', message: expect.stringContaining('has format 7; this version of senv reads formats 2 to 6') });
    } finally {
      for (const d of [dir, work, other]) rmSync(d, { recursive: true, force: true });
    }
  });

  it('a format 2 data directory (an earlier senv: snapshots not bound, a hash value in the clear) opens and is upgraded at once', async () => {
    const dir = tempDir();
    const fixture = (name: string) => {
      rmSync(dir, { recursive: true, force: true });
      cpSync(fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)), dir, { recursive: true });
    };
    const upgraded = () => {
      expect(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).format, 'meta.json').toBe(6);
      expect(JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8').split('\n')[0]!).format, 'snapshot.json').toBe(3);
    };
    const reopen = async (key: number, check: (s: Session) => Promise<void>) => {
      for (let i = 0; i < 2; i++) {
        const e = await McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(key) });
        upgraded();
        await check(new Session(e, 'CAE1'));
        await e.close();
      }
    };
    const text = (r: McsResponse, root: string, attr: string) => new TextDecoder().decode(unb64(body(r, root)[attr]));
    try {
      // Written by the commit before format 3: a <hash> with its value, journal only.
      fixture('format2-clear-hv');
      const hv = Buffer.from(sha256(new TextEncoder().encode('1234')));
      expect(readFileSync(join(dir, 'journal.log')).includes(Buffer.from(hv.toString('base64'))), 'the fixture holds it in the clear').toBe(true);
      await reopen(0x4b, async (s) => expect(unb64(body(await s.retrieve(s.path('reg', 'h')), 'senv:Hsh').Hv)).toEqual(new Uint8Array(hv)));
      for (const f of readdirSync(dir)) {
        for (const needle of [hv.subarray(0, 30), Buffer.from(hv.toString('base64').slice(0, 40))]) expect(readFileSync(join(dir, f)).includes(needle), f).toBe(false);
      }
      // A format 2 snapshot, and a record after it.
      fixture('format2-snapshot');
      await reopen(0x4c, async (s) => {
        expect(text(await s.retrieve(s.path('reg', 'd0')), 'senv:Sdo', 'msg')).toBe('secret 0');
        expect(text(await s.retrieve(s.path('reg', 'after')), 'senv:Sdo', 'msg')).toBe('after the snapshot');
      });
      expect(statSync(join(dir, 'journal.log')).size, 'the snapshot holds everything').toBe(0);
      // An upgrade whose writes fail leaves a format 2 directory that opens; the next open upgrades it.
      fixture('format2-clear-hv');
      const real = await openFiles();
      const failing: Files = { ...real, rename: async () => Promise.reject(Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' })) };
      const e1 = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: new Uint8Array(32).fill(0x4b), files: failing }) });
      expect(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).format, 'still format 2').toBe(2);
      expect(unb64(body(await new Session(e1, 'CAE1').retrieve(`${e1.seIds[0]}/reg/h`), 'senv:Hsh').Hv)).toEqual(new Uint8Array(hv));
      await e1.close();
      await reopen(0x4b, async (s) => expect(unb64(body(await s.retrieve(s.path('reg', 'h')), 'senv:Hsh').Hv)).toEqual(new Uint8Array(hv)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each kind of MAC has its own label: a journal or snapshot MACed under another kind\'s label, with the master key, is refused', async () => {
    const dir = tempDir();
    const work = tempDir();
    try {
      const open = async () => McsEngine.create({ store: await JournalStore.open({ dir: work, masterKey: KEY, compactAt: 4096 }) });
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1 } }), 2001, 'rand');
      await e1.close();
      const records = frames(readFileSync(join(dir, 'journal.log'))).map((f) => f.json);
      const labels = ['meta', 'start', 'snapshot', 'bound snapshot', 'record'];
      const reset = () => {
        rmSync(work, { recursive: true, force: true });
        cpSync(dir, work, { recursive: true });
      };
      // The forgery tool is right: with the store's own labels the journal opens.
      reset();
      writeFileSync(join(work, 'journal.log'), withMacs(work, records));
      await (await open()).close();
      for (const start of labels) {
        for (const record of labels) {
          if (start === 'start' && record === 'record') continue;
          reset();
          writeFileSync(join(work, 'journal.log'), withMacs(work, records, { start, record }));
          await expect(open(), `chain from "${start}", records under "${record}"`).rejects.toMatchObject({ name: 'DataDirDamagedError' });
        }
      }
      // A snapshot: compact (a small compactAt), then re-MAC it under each other label.
      reset();
      const e2 = await open();
      const t = new Session(e2, 'CAE1');
      let i = 0;
      do ok(await t.create(t.seId, 20007, { 'senv:Rnd': { rn: `x${i++}`, rgT: 1 } }), 2001, 'rand');
      while (statSync(join(work, 'journal.log')).size > 0 && i < 200);
      await e2.close();
      const compacted = tempDir();
      try {
        cpSync(work, compacted, { recursive: true });
        const check = Buffer.from(JSON.parse(readFileSync(join(compacted, 'meta.json'), 'utf8')).check as string);
        const text = readFileSync(join(compacted, 'snapshot.json'), 'utf8');
        const nl = text.indexOf('\n');
        const header = JSON.parse(text.slice(0, nl)) as { format: number; from: string; mac: string };
        const stateJson = Buffer.from(text.slice(nl + 1));
        const from = Buffer.from(header.from, 'base64');
        for (const label of labels) {
          rmSync(work, { recursive: true, force: true });
          cpSync(compacted, work, { recursive: true });
          const remac = { ...header, mac: mac(label, check, from, stateJson).toString('base64') };
          writeFileSync(join(work, 'snapshot.json'), Buffer.concat([Buffer.from(`${JSON.stringify(remac)}\n`), stateJson]));
          if (label === 'bound snapshot') await (await open()).close();
          else await expect(open(), `snapshot under "${label}"`).rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'snapshot.json' });
        }
      } finally {
        rmSync(compacted, { recursive: true, force: true });
      }
    } finally {
      for (const d of [dir, work]) rmSync(d, { recursive: true, force: true });
    }
  });

  it('a directory with records but no meta.json is refused and left as it is; the store checks the master key itself; close() leaves a lock another opener took over', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      await new Session(e1, 'CAE1').register();
      await e1.close();
      rmSync(join(dir, 'meta.json'));
      const before = readdirSync(dir).sort();
      await expect(JournalStore.open({ dir, masterKey: KEY })).rejects.toMatchObject({
        name: 'DataDirDamagedError', file: 'meta.json', message: `meta.json in the data directory ${dir} is missing, though snapshot.json or journal.log holds records: removed or lost (the records do not open without it)`,
      });
      expect(readdirSync(dir).sort()).toEqual(before);
      expect(existsSync(join(dir, 'meta.json'))).toBe(false);

      for (const masterKey of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(16), 'k'.repeat(32), Array.from(KEY)]) {
        await expect(JournalStore.open({ dir: join(dir, 'new'), masterKey: masterKey as Uint8Array }), String(masterKey.length)).rejects.toMatchObject({
          name: 'StateError', message: 'the master key must be 32 bytes (AES-256)',
        });
      }
      expect(existsSync(join(dir, 'new'))).toBe(false);

      // A store whose lock another opener took over (it judged the lock stale) leaves that opener's lock at close.
      const fresh = join(dir, 'taken');
      const store = await JournalStore.open({ dir: fresh, masterKey: KEY });
      const theirs = JSON.stringify({ pid: process.pid, since: '2026-01-01T00:00:00.000Z', token: 'another opener', osLocked: false });
      writeFileSync(join(fresh, 'lock'), theirs);
      await store.close();
      expect(readFileSync(join(fresh, 'lock'), 'utf8')).toBe(theirs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the snapshot is authenticated, the journal chains from it, and meta.json says there is one: a removed snapshot is refused, its journal empty or gone', async () => {
    const dir = tempDir();
    const compacted = tempDir();
    const work = tempDir();
    const other = tempDir();
    try {
      const open = async (d: string) => McsEngine.create({ store: await JournalStore.open({ dir: d, masterKey: KEY, compactAt: 4096 }) });
      const e1 = await open(dir);
      const s = new Session(e1, 'CAE1');
      await s.register();
      expect(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).format, 'no snapshot yet: format 3, which an earlier senv reads').toBe(3);
      const cipher = (i: number) => s.create(s.seId, 20002, { 'senv:Cph': { rn: `c${i}`, Calg: 1001, mbs: 64, kDt: b64(nodeCrypto.randomBytes(16)) } });
      let i = 0;
      // Until a snapshot has just emptied the journal: then only the snapshot's own MAC can tell an edit.
      do ok(await cipher(i++), 2001, 'cipher');
      while (statSync(join(dir, 'journal.log')).size > 0 && i < 100);
      expect(readdirSync(dir)).toContain('snapshot.json');
      cpSync(dir, compacted, { recursive: true });
      ok(await cipher(i), 2001, 'cipher after the snapshot');
      await e1.close();
      rmSync(join(compacted, 'lock'));
      // Another directory with a snapshot, under the same master key.
      const e2 = await open(other);
      const t = new Session(e2, 'CAE1');
      await t.register();
      let j = 0;
      do ok(await t.create(t.seId, 20002, { 'senv:Cph': { rn: `c${j++}`, Calg: 1001, mbs: 64, kDt: b64(nodeCrypto.randomBytes(16)) } }), 2001, 'cipher');
      while (statSync(join(other, 'journal.log')).size > 0 && j < 100);
      await e2.close();
      const edit = (file: string, change: (text: string) => string) => writeFileSync(join(work, file), change(readFileSync(join(work, file), 'utf8')));
      const attacks: [string, string, () => void][] = [
        ["another directory's snapshot and journal, under the same master key", compacted, () => {
          for (const f of ['snapshot.json', 'journal.log']) cpSync(join(other, f), join(work, f));
        }],
        ['meta.json set back to format 2 (whose snapshots are not bound)', compacted, () => edit('meta.json', (m) => m.replace('"format":6', '"format":2'))],
        ['meta.json set back to format 4 (whose records never keep a message)', compacted, () => edit('meta.json', (m) => m.replace('"format":6', '"format":4'))],
        ['meta.json set back to format 5 (whose records never keep a sealed part)', compacted, () => edit('meta.json', (m) => m.replace('"format":6', '"format":5'))],
        ["the snapshot's header set back to format 2", compacted, () => edit('snapshot.json', (m) => m.replace('{"format":3', '{"format":2'))],
        ["another directory's snapshot as format 2 (unbound) would have it, MAC and all", compacted, () => {
          const text = readFileSync(join(other, 'snapshot.json'), 'utf8');
          const nl = text.indexOf('\n');
          const from = JSON.parse(text.slice(0, nl)).from as string;
          const stateJson = Buffer.from(text.slice(nl + 1));
          const header = { format: 2, from, mac: mac('snapshot', Buffer.from(from, 'base64'), stateJson).toString('base64') };
          writeFileSync(join(work, 'snapshot.json'), Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), stateJson]));
          writeFileSync(join(work, 'journal.log'), '');
        }],
        ['keyExportable set in the snapshot', compacted, () => {
          const text = readFileSync(join(work, 'snapshot.json'), 'utf8');
          writeFileSync(join(work, 'snapshot.json'), text.replace(/"attrs":\{/g, '"attrs":{"keyExportable":true,'));
        }],
        ['the snapshot removed, the journal after it kept', dir, () => rmSync(join(work, 'snapshot.json'))],
        // The journal a compaction (or a clean close) emptied: nothing but meta.json's mark tells it had a snapshot.
        ['the snapshot removed, the journal empty', compacted, () => rmSync(join(work, 'snapshot.json'))],
        ['the snapshot and the journal removed', dir, () => ['snapshot.json', 'journal.log'].forEach((f) => rmSync(join(work, f)))],
        ['meta.json set back to format 3 (no snapshot yet), the snapshot removed', compacted, () => {
          edit('meta.json', (m) => m.replace('"format":6', '"format":3'));
          rmSync(join(work, 'snapshot.json'));
        }],
      ];
      for (const [name, from, change] of attacks) {
        rmSync(work, { recursive: true, force: true });
        cpSync(from, work, { recursive: true });
        change();
        await expect(open(work), name).rejects.toMatchObject({ name: 'DataDirDamagedError' });
      }
      // (coverage gaps) A meta.json that is no JSON object; a snapshot with no header line, or a header whose from or mac is no text.
      const header = (text: string) => text.slice(0, text.indexOf('\n'));
      const named: [string, string, string, () => void][] = [
        ['meta.json that is a JSON list', 'meta.json', 'is not a JSON object', () => edit('meta.json', () => '[6]')],
        ['the snapshot\'s header line with no newline after it (and a byte more)', 'snapshot.json', 'has no valid header', () => edit('snapshot.json', (t) => `${header(t)}x`)],
        ['a snapshot beginning with its newline', 'snapshot.json', 'has no valid header', () => edit('snapshot.json', (t) => `\n${t}`)],
        ['the snapshot\'s from a number', 'snapshot.json', 'has no valid header', () => edit('snapshot.json', (t) => t.replace(/"from":"[^"]*"/, '"from":1'))],
        ['the snapshot\'s mac a number', 'snapshot.json', 'has no valid header', () => edit('snapshot.json', (t) => t.replace(/"mac":"[^"]*"/, '"mac":1'))],
      ];
      for (const [name, file, says, change] of named) {
        rmSync(work, { recursive: true, force: true });
        cpSync(compacted, work, { recursive: true });
        change();
        await expect(open(work), name).rejects.toMatchObject({ name: 'DataDirDamagedError', file, message: expect.stringContaining(says) });
      }
      // (coverage gap) A rotation's snapshot left beside a snapshot, neither verifying: refused as snapshot.json's damage, neither file touched.
      rmSync(work, { recursive: true, force: true });
      cpSync(compacted, work, { recursive: true });
      edit('snapshot.json', (t) => t.replace('"seq":', '"seq": '));
      writeFileSync(join(work, 'snapshot.json.rotated'), `${header(readFileSync(join(work, 'snapshot.json'), 'utf8'))}\n{}`);
      const left = () => ['snapshot.json', 'snapshot.json.rotated'].map((f) => readFileSync(join(work, f), 'utf8'));
      const files = left();
      await expect(open(work), 'neither snapshot verifies').rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'snapshot.json', message: expect.stringContaining('does not verify') });
      expect(left()).toEqual(files);
      await (await open(compacted)).close();
      // A snapshot the master key MACed at a sequence number no record could follow (or below 0): no state this
      // version writes. At its own number the same tool's snapshot opens: it writes what the store writes.
      const snapshotAt = (seq: number | undefined) => {
        rmSync(work, { recursive: true, force: true });
        cpSync(compacted, work, { recursive: true });
        const text = readFileSync(join(work, 'snapshot.json'), 'utf8');
        const nl = text.indexOf('\n');
        const from = JSON.parse(text.slice(0, nl)).from as string;
        const state = JSON.parse(text.slice(nl + 1)) as { seq: number };
        const stateJson = Buffer.from(JSON.stringify({ ...state, seq: seq ?? state.seq }));
        const check = Buffer.from(JSON.parse(readFileSync(join(work, 'meta.json'), 'utf8')).check as string);
        const header = { format: 3, from, mac: mac('bound snapshot', check, Buffer.from(from, 'base64'), stateJson).toString('base64') };
        writeFileSync(join(work, 'snapshot.json'), Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), stateJson]));
      };
      for (const seq of [2 ** 52, -1]) {
        snapshotAt(seq);
        await expect(open(work), `seq ${seq}`).rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'snapshot.json', message: expect.stringContaining('verifies but holds no state') });
      }
      snapshotAt(undefined);
      await (await open(work)).close();
      // A first record chained from the chain value the snapshot names (a journal that went on after an empty journal's
      // compaction) or from the snapshot's own MAC that verifies is damage whatever its shape: never a torn end.
      rmSync(work, { recursive: true, force: true });
      cpSync(compacted, work, { recursive: true });
      const snapshotText = readFileSync(join(work, 'snapshot.json'), 'utf8');
      const snapshotHeader = JSON.parse(snapshotText.slice(0, snapshotText.indexOf('\n'))) as { from: string; mac: string };
      const shapeless = Buffer.from(JSON.stringify({ seq: 'x' }));
      for (const [chained, value] of [['the chain value the snapshot names', snapshotHeader.from], ["the snapshot's MAC", snapshotHeader.mac]]) {
        const journalText = frame(Buffer.concat([shapeless, mac('record', Buffer.from(value!, 'base64'), shapeless)]));
        writeFileSync(join(work, 'journal.log'), journalText);
        await expect(open(work), chained).rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'journal.log', offset: 0, message: expect.stringContaining('not of a shape this version writes') });
        expect(readFileSync(join(work, 'journal.log')).equals(journalText), `${chained}: left as it is`).toBe(true);
      }
      // A format 3 meta.json (an earlier senv, or a directory before its first snapshot) opens, and says format 6 from its next snapshot on.
      rmSync(work, { recursive: true, force: true });
      cpSync(compacted, work, { recursive: true });
      const { check, uniqueIds } = JSON.parse(readFileSync(join(work, 'meta.json'), 'utf8')) as { check: string; uniqueIds: Record<string, string> };
      const unmarked = () => writeFileSync(join(work, 'meta.json'), JSON.stringify({ format: 3, uniqueIds, check, mac: mac('meta', Buffer.from(JSON.stringify([3, check, uniqueIds]))).toString('base64') }));
      // Format 4, MACed with the master key (an earlier senv's directory with a snapshot), its snapshot removed: refused as 6's is.
      writeFileSync(join(work, 'meta.json'), JSON.stringify({ format: 4, uniqueIds, check, mac: mac('meta', Buffer.from(JSON.stringify([4, check, uniqueIds]))).toString('base64') }));
      rmSync(join(work, 'snapshot.json'));
      await expect(open(work), 'format 4 without its snapshot').rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'snapshot.json' });
      cpSync(join(compacted, 'snapshot.json'), join(work, 'snapshot.json'));
      unmarked();
      const e3 = await open(work);
      expect(JSON.parse(readFileSync(join(work, 'meta.json'), 'utf8')).format, 'not upgraded at open').toBe(3);
      const u = new Session(e3, 'CAE1');
      let k = 0;
      do ok(await u.create(u.seId, 20002, { 'senv:Cph': { rn: `n${k++}`, Calg: 1001, mbs: 64, kDt: b64(nodeCrypto.randomBytes(16)) } }), 2001, 'cipher');
      while (statSync(join(work, 'journal.log')).size > 0 && k < 100);
      await e3.close();
      expect(JSON.parse(readFileSync(join(work, 'meta.json'), 'utf8')).format, 'format 6 from its snapshot on').toBe(6);
      expect(JSON.parse(readFileSync(join(work, 'snapshot.json'), 'utf8').split('\n')[0]!).format, 'a snapshot stays format 3').toBe(3);
      rmSync(join(work, 'snapshot.json'));
      await expect(open(work), 'its snapshot removed').rejects.toMatchObject({ name: 'DataDirDamagedError', file: 'snapshot.json' });
    } finally {
      for (const d of [dir, compacted, work, other]) rmSync(d, { recursive: true, force: true });
    }
  });

  it('a key file of 32 bytes of text is refused as ambiguous; 32 raw bytes, 64 hex digits and base64 work', async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'key');
      const raw = nodeCrypto.randomBytes(32);
      raw[0] = 0x80;
      // Printable text includes spaces, tabs and CRLF line ends: a passphrase is never a raw key.
      for (const text of [raw.subarray(0, 16).toString('hex'), raw.subarray(0, 24).toString('base64'), 'correct-horse-battery-staple-xy\n', 'correct horse battery staple xy\n', 'correct\thorse\tbattery\tstaple12\r\n',
        `\uFEFF${'a'.repeat(28)}\n`]) {
        writeFileSync(file, text);
        await expect(McsEngine.create({ dataDir: join(dir, 'data'), masterKeyFile: file }), JSON.stringify(text)).rejects.toMatchObject({
          name: 'StateError', message: expect.stringMatching(/ambiguous.*64 hex digits.*base64 of 32 bytes/),
        });
      }
      // The same key in every form (the directory the first made opens with each), white space around it (Unicode's
      // too, as String.prototype.trim takes it) and a UTF-8 byte order mark ignored.
      for (const key of [raw, Buffer.from(raw.toString('hex') + '\n'), Buffer.from(raw.toString('base64')), Buffer.from(`\t ${raw.toString('hex').toUpperCase()} \r\n`),
        Buffer.from(` ${raw.toString('base64')}\n\n`), Buffer.from(`\uFEFF${raw.toString('hex')}\u00A0\r\n`), Buffer.from(`\u3000${raw.toString('base64')}`)]) {
        writeFileSync(file, key);
        await (await McsEngine.create({ dataDir: join(dir, 'data'), masterKeyFile: file })).close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a key text of hex digits is hex only at exactly 64 of them: one digit pair short or over is refused, 48 are base64 of 36 bytes', async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'key');
      const digits = nodeCrypto.randomBytes(33).toString('hex');
      // Read as hex whatever their count, 62 digits would make a key of their 31 bytes and a 32nd read past the text's end.
      for (const [text, name] of [[digits.slice(0, 62), 'InvalidInputError'], [digits.slice(0, 66), 'InvalidInputError'], [digits.slice(0, 48), 'LengthError']] as const) {
        writeFileSync(file, `${text}\n`);
        await expect(McsEngine.create({ dataDir: join(dir, 'data'), masterKeyFile: file }), `${text.length} digits`).rejects.toMatchObject({
          name, message: expect.stringMatching(/must hold a 32-byte AES-256 key/),
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a key file whose content is refused is named, as one that cannot be read is: `senv rotate-master-key` reads two', async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'new-key');
      // Too short, not hex nor base64, and 32 bytes of text: each refusal says which file to fix.
      for (const [text, name] of [['abcd\n', 'LengthError'], [`${'7'.repeat(64)} x\n`, 'InvalidInputError'], [`${'a'.repeat(31)}\n`, 'StateError']] as const) {
        writeFileSync(file, text);
        await expect(McsEngine.create({ dataDir: join(dir, 'data'), masterKeyFile: file }), JSON.stringify(text)).rejects.toMatchObject({
          name, message: expect.stringContaining(`the master key file ${file} `),
        });
      }
      expect(existsSync(join(dir, 'data')), 'nothing made').toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the data directory is 0700 and its files 0600, whatever the umask', async () => {
    const top = tempDir();
    const was = process.umask(0o022);
    try {
      const dir = join(top, 'new', 'data');
      const e = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 2000 }) });
      const s = new Session(e, 'CAE1');
      await s.register();
      for (let i = 0; i < 3; i++) ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: `r${i}`, rgT: 1 } }), 2001, 'rand');
      const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
      expect(mode(join(dir, 'lock'))).toBe('600');
      await e.close();
      expect(mode(dir)).toBe('700');
      expect(readdirSync(dir).sort()).toEqual(['journal.log', 'meta.json', 'snapshot.json']);
      for (const f of readdirSync(dir)) expect(mode(join(dir, f)), f).toBe('600');
    } finally {
      process.umask(was);
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('what a snapshot holds grows with the data, not with the number of UPDATEs (empty chunks included)', async () => {
    const dir = tempDir();
    try {
      const open = async () => McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 4096 }) });
      const e1 = await open();
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      const data = nodeCrypto.randomBytes(3000);
      // 3,000 one-byte chunks with an empty one after each: 6,000 UPDATEs, many compactions.
      for (let i = 0; i < data.length; i++) {
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(data.subarray(i, i + 1)) } }), 2004, 'byte');
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: '' } }), 2004, 'empty');
      }
      await e1.close();
      // Each chunk sealed alone took some 70 bytes of snapshot: 420 KB here. Joined: the data's base64 and a little.
      expect(statSync(join(dir, 'snapshot.json')).size).toBeLessThan(12_000);
      const e2 = await open();
      const t = new Session(e2, 'CAE1');
      expect(unb64(body(ok(await t.retrieve(t.path('reg', 'h')), 2000, 'after restart'), 'senv:Hsh').msg)).toEqual(new Uint8Array(data));
      expect(unb64(body(ok(await t.retrieve(t.path('reg', 'h', 'calculateHash')), 2000, 'hash'), 'senv:Hsh').Hv)).toEqual(sha256(data));
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with a data directory, cbs 0 with an empty binary chunk discards the data held, as without one', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 100 } }), 2001, 'cipher');
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: 'AAAAAAAA' } }), 2004, '6 bytes');
      const r = ok(await s.send(3, s.path('reg', 'c'), { 'senv:Cph': { cbs: 0, msg: new Uint8Array(0) } }, undefined, true), 2004, 'discard');
      expect(body(r, 'senv:Cph').cbs).toBe(0);
      expect(body(ok(await s.retrieve(s.path('reg', 'c')), 2000, 'read'), 'senv:Cph').cbs).toBe(0);
      await e1.close();
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(body(ok(await new Session(e2, 'CAE1').retrieve(s.path('reg', 'c')), 2000, 'after restart'), 'senv:Cph').cbs).toBe(0);
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generateRand and a cipher\'s data check against the limits in force: a maxDataSize smaller after a restart refuses a Dsz or data an mbs written before allowed (5207)', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 4096 } }), 2001, 'rand');
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 70_000 } }), 2001, 'cipher');
      await e1.close();
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: KEY, maxDataSize: 1000 });
      const t = new Session(e2, 'CAE1');
      fails(await t.retrieve(t.path('reg', 'r', 'generateRand')), 5207, 'Dsz beyond maxDataSize', /Dsz/);
      // So is an mbs written before: the cipher's data stops at the maxDataSize in force.
      ok(await t.update(t.path('reg', 'c'), { 'senv:Cph': { msg: b64(new Uint8Array(1000)) } }), 2004, 'up to maxDataSize');
      fails(await t.update(t.path('reg', 'c'), { 'senv:Cph': { msg: b64(new Uint8Array(1)) } }), 5207, 'one byte beyond it, under a larger mbs');
      ok(await t.update(t.path('reg', 'r'), { 'senv:Rnd': { Dsz: 1000 } }), 2004, 'Dsz within it');
      expect(unb64(body(ok(await t.retrieve(t.path('reg', 'r', 'generateRand')), 2000, 'rand'), 'senv:Rnd').rndD).length).toBe(1000);
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on Deno, opening a data directory asks for no path the permissions do not name (no prompt in a terminal), and flushes the new levels it may read', async () => {
    const top = tempDir();
    try {
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-open-store.ts', import.meta.url));
      // script(1) gives Deno a terminal, where a permission it lacks is asked for and waits for an answer.
      const run = async (dir: string, perms: string) => {
        const { code, out } = await runInTerminal(deno, ['run', ...perms.split(' '), fixture, dir, top], { killMs: 15_000 });
        return { code, asked: out.includes('Allow?'), out: out.trim() };
      };
      const only = (dir: string) => `--allow-read=${dir} --allow-write=${dir}`;
      // Two new levels each time: where only the data directory may be read, nothing above it can be flushed.
      expect(await run(join(top, 'a', 'data'), only(join(top, 'a', 'data')))).toEqual({ code: 0, asked: false, out: 'opened at once; flushed nothing above it' });
      expect(await run(join(top, 'b', 'data/'), '--allow-read --allow-write')).toEqual({ code: 0, asked: false, out: 'opened at once; flushed <top>/b <top> above it' });
      expect(await run(join(top, 'b', 'data'), only(join(top, 'b', 'data')))).toEqual({ code: 0, asked: false, out: 'opened at once; flushed nothing above it' });
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('a data directory the file system refuses (below a regular file) is a StateError naming the code, the file operation\'s own error not passed on', async () => {
    const top = tempDir();
    try {
      writeFileSync(join(top, 'file'), 'x');
      // A regular file where the directory should be, or as one of its levels: ENOTDIR, as on Deno.
      await expect(McsEngine.create({ dataDir: join(top, 'file'), masterKey: KEY })).rejects.toMatchObject({ message: `the data directory ${join(top, 'file')} cannot be opened (ENOTDIR)` });
      // A symbolic link to nothing in its place, or in a level's: ENOENT, not the EEXIST mkdir answers for the name; on Deno too.
      symlinkSync(join(top, 'nowhere'), join(top, 'dangling'));
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-open-store.ts', import.meta.url));
      for (const dataDir of [join(top, 'dangling'), join(top, 'dangling', 'data')]) {
        const refusal = `the data directory ${dataDir} cannot be opened (ENOENT)`;
        await expect(McsEngine.create({ dataDir, masterKey: KEY })).rejects.toMatchObject({ message: refusal, cause: { message: `${join(top, 'dangling')} is a symbolic link to nothing` } });
        const { code, out } = await runChild(deno, ['run', '--allow-read', `--allow-write=${top}`, fixture, dataDir, top], { killMs: 20_000 });
        expect({ code, out: out.trim() }, 'on Deno').toEqual({ code: 0, out: `StateError: ${refusal}: ${join(top, 'dangling')} is a symbolic link to nothing` });
      }
      // Below /proc/self a level exists and mkdir in it answers ENOENT: refused, where Node's recursive mkdir looped for ever.
      await expect(McsEngine.create({ dataDir: '/proc/self/senv-data', masterKey: KEY })).rejects.toMatchObject({ message: 'the data directory /proc/self/senv-data cannot be opened (ENOENT)' });
      const dataDir = join(top, 'file', 'data');
      await expect(McsEngine.create({ dataDir, masterKey: KEY })).rejects.toMatchObject({
        name: 'StateError', code: 'ERR_STATE', message: `the data directory ${dataDir} cannot be opened (ENOTDIR)`, cause: { code: 'ENOTDIR' },
      });
      // A defect's error (file operations that throw a TypeError) passes on as it is, and the lock is released.
      const files = await openFiles();
      const defect = new TypeError('a defect');
      const dir = join(top, 'data');
      const read: Files['read'] = async (path, ...rest) => {
        if (path.endsWith('/lock')) return files.read(path, ...rest);
        throw defect;
      };
      await expect(JournalStore.open({ dir, masterKey: KEY, files: { ...files, read } })).rejects.toBe(defect);
      await (await JournalStore.open({ dir, masterKey: KEY })).close();
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('a Deno holder\'s lock (an OS lock, no start time) is refused while Deno holds it, and taken over once it is gone though its pid runs again (reused)', async () => {
    const dir = tempDir();
    const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
    const fixture = fileURLToPath(new URL('./fixtures/deno-hold-lock.ts', import.meta.url));
    const holder = spawn(deno, ['run', '--quiet', '--allow-read', `--allow-write=${dir}`, fixture, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const reused = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const exited = (child: ChildProcess) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.on('exit', resolve)));
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
        holder.on('exit', () => reject(new Error('the Deno holder exited')));
      });
      const lock = JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')) as { pid: number; osLocked: boolean; stamp?: string };
      expect([lock.pid, lock.osLocked, lock.stamp]).toEqual([holder.pid, true, undefined]);
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY }), 'Deno holds it').rejects.toMatchObject({ name: 'DataDirLockedError', pid: holder.pid });
      holder.kill('SIGKILL');
      await exited(holder);
      // Its pid given to another process since: that one runs, but holds no lock on the file.
      writeFileSync(join(dir, 'lock'), JSON.stringify({ ...lock, pid: reused.pid }));
      const e = await McsEngine.create({ dataDir: dir, masterKey: KEY });
      expect(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')).pid).toBe(process.pid);
      await e.close();
    } finally {
      holder.kill('SIGKILL');
      reused.kill('SIGKILL');
      await Promise.all([exited(holder), exited(reused)]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a software SE\'s unique ID that meta.json cannot take at the first open (a full disk; on Deno, write revoked) fails the open as the open\'s own refusals do, the lock released', async () => {
    const top = tempDir();
    try {
      const dir = join(top, 'data');
      // A directory whose meta.json names no SE yet: the engine's first open writes the software SE's ID.
      await (await JournalStore.open({ dir, masterKey: KEY })).close();
      const real = await openFiles();
      const full: Files = {
        ...real,
        writeDurable: async (path, data) => {
          if (path.endsWith('/meta.json.tmp')) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return real.writeDurable(path, data);
        },
      };
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY, files: full })).rejects.toMatchObject({
        name: 'StateError', message: `the data directory ${dir} cannot be opened (ENOSPC)`, cause: { code: 'ENOSPC' },
      });
      expect(existsSync(join(dir, 'lock')), 'the lock released').toBe(false);
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();

      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-unique-id.ts', import.meta.url));
      const denoDir = join(top, 'deno-data');
      const { code, out } = await runChild(deno, ['run', '--allow-read', `--allow-write=${top}`, fixture, denoDir], { killMs: 20_000 });
      expect({ code, out: out.trim() }).toEqual({ code: 0, out: `StateError: the data directory ${denoDir} cannot be opened (NotCapable; on Deno: --allow-read=${denoDir} --allow-write=${denoDir})` });
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('a file of the data directory the file system refuses is named beside the code: the one to chown or put back (a meta.json root copied in, 0600)', async () => {
    const dir = tempDir();
    try {
      await (await McsEngine.create({ dataDir: dir, masterKey: KEY })).close();
      const real = await openFiles();
      // As Node's fs refuses a file this user may not read: the code, the call and the path.
      const refusing: Files = {
        ...real,
        read: async (path, as) => {
          if (path.endsWith('/meta.json')) throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES', errno: -13, syscall: 'open', path });
          return real.read(path, as);
        },
      };
      await expect(McsEngine.create({ dataDir: dir, masterKey: KEY, files: refusing })).rejects.toMatchObject({
        name: 'StateError', message: `the data directory ${dir} cannot be opened (EACCES on ${join(dir, 'meta.json')})`, cause: { code: 'EACCES' },
      });
      // A refusal about the directory or a level above it names no file: the directory is named already.
      await expect(McsEngine.create({ dataDir: join(dir, 'meta.json', 'data'), masterKey: KEY })).rejects.toMatchObject({
        message: `the data directory ${join(dir, 'meta.json', 'data')} cannot be opened (ENOTDIR)`,
      });
      // On Deno too, whose errors name the file in their message only: a meta.json.tmp the first open
      // cannot replace (a directory with something in it, which root cannot remove either).
      const denoDir = join(dir, 'deno-data');
      mkdirSync(join(denoDir, 'meta.json.tmp', 'x'), { recursive: true });
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-open-store.ts', import.meta.url));
      const { code, out } = await runChild(deno, ['run', '--allow-read', `--allow-write=${dir}`, fixture, denoDir, dir], { killMs: 20_000 });
      expect({ code, out: out.trim().split(': ').slice(0, 2).join(': ') }, 'on Deno').toEqual({
        code: 0, out: `StateError: the data directory ${denoDir} cannot be opened (ENOTEMPTY on ${join(denoDir, 'meta.json.tmp')})`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on Deno, a master key or a data directory the permissions do not let it read is a StateError naming the permission, never Deno\'s raw NotCapable', async () => {
    const top = tempDir();
    try {
      const deno = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
      const fixture = fileURLToPath(new URL('./fixtures/deno-master-key.ts', import.meta.url));
      const keyFile = join(top, 'key');
      writeFileSync(keyFile, '00'.repeat(32));
      // The sources may be read, the key file and the environment may not.
      const dataDir = join(top, 'data');
      const args = ['run', `--allow-read=${fileURLToPath(new URL('../../', import.meta.url))}`, fixture, keyFile, dataDir];
      const expected = [
        'StateError: the master key variable SENV_MASTER_KEY cannot be read (NotCapable; on Deno: --allow-env=SENV_MASTER_KEY)',
        expect.stringMatching(/^StateError: the master key variable A=B cannot be read \((NotCapable|TypeError); on Deno: --allow-env=A=B\)$/),
        `StateError: the master key file ${keyFile} cannot be read (NotCapable; on Deno: --allow-read=${keyFile})`,
        `StateError: the data directory ${dataDir} cannot be opened (NotCapable; on Deno: --allow-read=${dataDir} --allow-write=${dataDir})`,
      ];
      const { code, out } = await runChild(deno, args, { killMs: 20_000 });
      expect({ code, lines: out.trim().split('\n') }).toEqual({ code: 0, lines: expected });
      // The same in a terminal (script(1) gives Deno one), where Deno would ask at a prompt for what is not
      // granted and wait for good: senv asks Deno first and refuses alike.
      const tty = await runInTerminal(deno, args, { killMs: 20_000 });
      expect({ code: tty.code, lines: tty.out.replace(/\r/g, '').trim().split('\n') }, 'in a terminal').toEqual({ code: 0, lines: expected });
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  // Node's permission model refuses even a stat of what its grants do not name: grants naming the data
  // directory alone must do, as Deno's flags do. Node reads a grant of a path that does not exist yet as
  // that path alone, not what is made in it: such a directory is granted as `dir/*`. Node 20's
  // experimental model (--experimental-permission) refuses fs.promises.unlink whatever the grants
  // ("Access to this API has been restricted"): this runs where --permission is stable (Node 22.13+, 23.5+).
  it.skipIf(!process.allowedNodeEnvironmentFlags.has('--permission'))('on Node with --permission, grants naming only a data directory not made yet let the engine make it and use it', async () => {
    const top = tempDir();
    try {
      const dataDir = join(top, 'data');
      const script = `const { McsEngine } = await import(${JSON.stringify(new URL('../../dist/src/index.js', import.meta.url).href)});
        const e = await McsEngine.create({ dataDir: ${JSON.stringify(dataDir)}, masterKey: new Uint8Array(32).fill(7) });
        const r = await e.send({ op: 1, to: e.seIds[0], fr: 'CAE1', rqi: '1', ty: 20011, pc: { 'senv:Senv': { rn: 'reg', sID: e.seIds[0], seL: 1 } } });
        await e.close();
        console.log(r.rsc);`;
      const run = (grant: string) => runChild(process.execPath, ['--permission', `--allow-fs-read=${fileURLToPath(new URL('../../', import.meta.url))}`,
        `--allow-fs-read=${grant}`, `--allow-fs-write=${grant}`, '--input-type=module', '-e', script]);
      const made = await run(`${dataDir}/*`);
      expect({ code: made.code, out: made.out, err: made.err }).toEqual({ code: 0, out: '2001\n', err: '' });
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      // Opened again, the directory there now and named alone, it holds that registration.
      const again = await run(dataDir);
      expect({ code: again.code, out: again.out }).toEqual({ code: 0, out: '4117\n' });
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it.skipIf(!process.allowedNodeEnvironmentFlags.has('--permission'))('on Node with --permission, a data directory or master key file the grants do not name is a StateError naming the grants, which are enough', async () => {
    const top = tempDir();
    try {
      const dataDir = join(top, 'data'), keyFile = join(top, 'key');
      writeFileSync(keyFile, '07'.repeat(32));
      const script = `const { McsEngine } = await import(${JSON.stringify(new URL('../../dist/src/index.js', import.meta.url).href)});
        try {
          await (await McsEngine.create({ dataDir: ${JSON.stringify(dataDir)}, masterKeyFile: ${JSON.stringify(keyFile)} })).close();
          console.log('opened');
        } catch (e) {
          console.log(e.name + ': ' + e.message);
        }`;
      const run = (...grants: string[]) => runChild(process.execPath, ['--permission', `--allow-fs-read=${fileURLToPath(new URL('../../', import.meta.url))}`,
        ...grants, '--input-type=module', '-e', script]);
      const named = (r: { out: string }) => r.out.trim().match(/\(ERR_ACCESS_DENIED; on Node: (.*)\)$/)?.[1]?.split(' ') ?? [];
      const noKey = await run(`--allow-fs-read=${dataDir}/*`, `--allow-fs-write=${dataDir}/*`);
      expect(noKey.out.trim()).toBe(`StateError: the master key file ${keyFile} cannot be read (ERR_ACCESS_DENIED; on Node: --allow-fs-read=${keyFile})`);
      const noDir = await run(...named(noKey));
      expect(noDir.out.trim()).toBe(`StateError: the data directory ${dataDir} cannot be opened (ERR_ACCESS_DENIED; on Node: --allow-fs-read=${dataDir}/* --allow-fs-write=${dataDir}/*)`);
      expect((await run(...named(noKey), ...named(noDir))).out.trim(), 'with the grants the errors named').toBe('opened');
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('a compaction re-seals what is new, not a large message held already', async () => {
    const dir = tempDir();
    try {
      const e = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 256 * 1024 }) });
      const s = new Session(e, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
      const snapshotChunks = () => {
        const text = readFileSync(join(dir, 'snapshot.json'), 'utf8');
        const state = JSON.parse(text.slice(text.indexOf('\n') + 1)) as { resources: Record<string, Record<string, { rn: string; appends?: { sealed: string }[] }>> };
        const rec = Object.values(Object.values(state.resources)[0]!).find((r) => r.rn === 'h')!;
        return rec.appends!.map((a) => a.sealed);
      };
      const data = nodeCrypto.randomBytes(1 << 20);
      for (let off = 0; off < data.length; off += 65536) ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(data.subarray(off, off + 65536)) } }), 2004, 'chunk');
      const first = snapshotChunks();
      // A few chunks each as the snapshot saw 1 MiB in 16 UPDATEs: sizes halving, about log2 of the data in KiB.
      expect(first.length).toBeGreaterThan(0);
      expect(first.length).toBeLessThanOrEqual(13);
      // Then 1,500 one-byte UPDATEs, a compaction or two (1.5 KB of data, which a KiB floor per chunk
      // would have counted as 1.5 MB, more than half the large chunk): the largest chunk stays as sealed.
      const small = nodeCrypto.randomBytes(1500);
      for (let i = 0; i < small.length; i++) ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(small.subarray(i, i + 1)) } }), 2004, 'byte');
      const later = snapshotChunks();
      expect(later[0]).toBe(first[0]);
      expect(later.length).toBeLessThanOrEqual(16);
      await e.close();
      const e2 = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 256 * 1024 }) });
      const t = new Session(e2, 'CAE1');
      expect(unb64(body(ok(await t.retrieve(t.path('reg', 'h', 'calculateHash')), 2000, 'hash'), 'senv:Hsh').Hv)).toEqual(sha256(Buffer.concat([data, small])));
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a snapshot that cannot even be built (V8 refuses the text) does not fail the write that triggered it', async () => {
    const dir = tempDir();
    const stringify = JSON.stringify;
    try {
      const open = async () => McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, compactAt: 2048 }) });
      const e1 = await open();
      const s = new Session(e1, 'CAE1');
      await s.register();
      // The store's whole state (seq and resources) is the one object whose text fails, as past V8's longest string.
      JSON.stringify = ((v: unknown, ...rest: never[]) => {
        if (typeof v === 'object' && v !== null && 'resources' in v && 'seq' in v) throw new RangeError('Invalid string length');
        return stringify(v, ...rest);
      }) as typeof JSON.stringify;
      for (let i = 0; i < 30; i++) ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: `d${i}`, msg: b64(new Uint8Array(100).fill(i)) } }), 2001, `sdo ${i}`);
      ok(await s.delete(s.path('reg', 'd3')), 2002, 'delete');
      JSON.stringify = stringify;
      await e1.close();
      const e2 = await open();
      const t = new Session(e2, 'CAE1');
      for (let i = 0; i < 30; i++) {
        if (i === 3) fails(await t.retrieve(t.path('reg', 'd3')), 4004, 'the acknowledged DELETE holds');
        else ok(await t.retrieve(t.path('reg', `d${i}`)), 2000, `d${i} after restart`);
      }
      await e2.close();
    } finally {
      JSON.stringify = stringify;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a new data directory and a new journal are flushed into their directories before a write is acknowledged', async () => {
    const top = tempDir();
    try {
      const real = await openFiles();
      const calls: string[] = [];
      const rel = (p: string) => p.replace(top, '<top>');
      const files: Files = {
        ...real,
        stamp: real.stamp,
        pid: real.pid,
        osLocks: real.osLocks,
        append: async (p, d) => {
          calls.push(`append ${rel(p)}`);
          await real.append(p, d);
        },
        syncDir: async (p) => {
          calls.push(`syncDir ${rel(p)}`);
          await real.syncDir(p);
        },
      };
      // Two levels made: each one's entry is flushed in the directory above it.
      const dir = join(top, 'new', 'data');
      const e = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, files }) });
      const s = new Session(e, 'CAE1');
      expect(calls.slice(0, 2)).toEqual(['syncDir <top>/new', 'syncDir <top>']);
      calls.length = 0;
      await s.register();
      const acked = calls.length;
      expect(calls.slice(calls.indexOf('append <top>/new/data/journal.log'))).toEqual(['append <top>/new/data/journal.log', 'syncDir <top>/new/data']);
      ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1 } }), 2001, 'rand');
      expect(calls.slice(acked)).toEqual(['append <top>/new/data/journal.log']);
      await e.close();
      // A directory that was there: nothing above it is touched.
      calls.length = 0;
      const again = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: KEY, files }) });
      expect(calls.filter((c) => c.startsWith('syncDir <top>/new') && !c.startsWith('syncDir <top>/new/data'))).toEqual([]);
      expect(calls.includes('syncDir <top>')).toBe(false);
      await again.close();
      // Doubled and trailing slashes: the levels made, and nothing further up.
      calls.length = 0;
      const slashed = await McsEngine.create({ store: await JournalStore.open({ dir: `${top}//x//y/`, masterKey: KEY, files }) });
      expect(calls.filter((c) => c.startsWith('syncDir') && !c.startsWith('syncDir <top>//x//y'))).toEqual(['syncDir <top>//x', 'syncDir <top>']);
      await slashed.close();
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });
});

// Persistence of SE-resources in a data directory: a restart keeps resources
// and keys, secrets are sealed, a wrong master key is refused, and a writer
// killed with SIGKILL at random moments loses no acknowledged write.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodeCrypto from 'node:crypto';
import { McsEngine, sha256, ecdsa, gcm } from '../../src/index.ts';
import { Session, b64, body, fails, ok, unb64 } from '../portable/mcs-kit.ts';
import { chunkOf } from './fixtures/mcs-writer-data.ts';

const KEY = new Uint8Array(32).fill(7);
const tempDir = () => mkdtempSync(join(tmpdir(), 'senv-mcs-'));

describe('Mcs persistence', () => {
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
      const seId = s.seId;
      await e1.close();

      const files = readdirSync(dir).map((f) => readFileSync(join(dir, f)));
      for (const secret of [aesKey, data.subarray(0, 32)]) {
        for (const f of files) {
          expect(f.includes(Buffer.from(secret))).toBe(false);
          expect(f.includes(Buffer.from(b64(secret)))).toBe(false);
        }
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

  it('snapshots (compaction) keep the same state', async () => {
    const dir = tempDir();
    try {
      const { JournalStore } = await import('../../src/mcs/store/journal.ts');
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
      ok(await u.delete(u.path('reg', 'big')), 2002, 'delete');
      ok(await u.delete(u.path('reg', 'h')), 2002, 'delete');
      await e3.close();
      const e4 = await open(Q);
      expect((await memory(new Session(e4, 'CAE1'))).mma).toBe(1000 + before.mma + 2100);
      await e4.close();
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
    let next = 0;
    try {
      for (let round = 0; round < 5; round++) {
        const child = spawn(deno, ['run', '--quiet', '--allow-read', '--allow-write', '--allow-env', writer, dir, String(next)], {
          env: { ...process.env, SENV_MASTER_KEY: Buffer.from(KEY).toString('hex') },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let buf = '';
        const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
        await new Promise<void>((resolve) => {
          let killAt = -1;
          child.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const [kind, n] = buf.slice(0, nl).split(' ');
              buf = buf.slice(nl + 1);
              if (kind === 'ready' && killAt < 0) {
                killAt = 1;
                setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 200 + Math.floor(Math.random() * 800));
              } else if (kind === 'sdo') acked.add(Number(n));
              else if (kind === 'app') appended.push(Number(n));
            }
          });
          child.on('exit', () => resolve());
        });
        await exited;
        next = Math.max(next, ...acked, ...appended) + 1;
      }
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
      await engine.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

function fails4106(r: { rsc: number }): void {
  expect(r.rsc).toBe(4106);
}

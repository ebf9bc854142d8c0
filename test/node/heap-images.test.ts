// No image of a secret left in the process's memory after it was released: V8 keeps a typed array
// of up to 64 bytes inside its heap, and moving it (a garbage collection, or the first read of its
// `buffer`) leaves its old bytes where zeroization cannot reach them. Each case releases its secrets
// the documented way, collects the garbage and has a child process read this process's memory
// (/proc/<pid>/mem; Linux, root or the right to trace it) for the secret's bytes. The secrets are
// held XOR-masked here, so that this file's own copies never match; a control secret kept live
// shows the scan finds what is there.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { McsClient, McsEngine } from '../../src/index.ts';
import { secretCopyArg } from '../../src/core/bytes.ts';
import { PcscBackend } from '../../src/backends/pcsc/index.ts';
import { setupPcsc } from './pcsc-helpers.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const SCANNER = fileURLToPath(new URL('./fixtures/scan-memory.mjs', import.meta.url));
const MASK = randomBytes(64);

/** A fresh secret, masked; `control` names one the test keeps unmasked and live. */
const masked = (n: number): Uint8Array => Uint8Array.from(randomBytes(n), (b, i) => b ^ MASK[i % 64]!);
/** The secret itself, in memory of its own outside the JS heap (as README asks of a caller). */
const unmask = (m: Uint8Array): Uint8Array => {
  const out = new Uint8Array(new ArrayBuffer(m.length));
  for (let i = 0; i < m.length; i++) out[i] = m[i]! ^ MASK[i % 64]!;
  return out;
};

async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Images of each secret in this process's memory, or undefined where it cannot be read. */
function images(secrets: Record<string, Uint8Array>): Record<string, number> | undefined {
  const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
  const r = spawnSync(process.execPath, [SCANNER, String(process.pid), hex(MASK), ...Object.entries(secrets).map(([k, v]) => `${k}=${hex(v)}`)], { encoding: 'utf8' });
  return r.status === 0 ? (JSON.parse(r.stdout) as Record<string, number>) : undefined;
}

const control = masked(32);
const live = unmask(control);
const readable = process.platform === 'linux' && (images({ control })?.control ?? 0) > 0;

describe.skipIf(!readable)(`no image of a released secret stays in memory${readable ? '' : ' (skipped: this process\'s memory cannot be read here)'}`, () => {
  it('a key in a request that waited for its turn: the engine\'s copy of it, after DELETE and close', async () => {
    const key = masked(32);
    const engine = await McsEngine.create();
    const se = engine.seIds[0]!;
    const send = (r: Record<string, unknown>) => engine.send({ fr: 'CAE1', rqi: 'r', ...r }, { binary: true });
    await send({ op: 1, to: se, ty: 20011, pc: { 'senv:Senv': { rn: 'me', sID: se, seL: 1 } } });
    const ahead = send({ op: 1, to: `${se}/me`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } });
    const k = unmask(key);
    const waiting = send({ op: 1, to: `${se}/me`, ty: 20002, pc: { 'senv:Cph': { rn: 'c', Calg: 1002, mbs: 64, kDt: k } } });
    k.fill(0);
    expect((await ahead).rsc).toBe(2001);
    expect((await waiting).rsc).toBe(2001);
    expect((await send({ op: 4, to: `${se}/me/c` })).rsc).toBe(2002);
    await engine.close();
    await collect();
    expect(images({ key, control })).toEqual({ key: 0, control: 1 });
    expect(live.length).toBe(32);
  });

  it('a short chunk McsClient sends, after the resource is deleted', async () => {
    const chunk = masked(48);
    const engine = await McsEngine.create();
    const h = await (await new McsClient(engine, 'CAE1').register('me')).hash({ algorithm: 4 });
    const m = unmask(chunk);
    await h.update(m);
    m.fill(0);
    expect((await h.calculate()).length).toBe(32);
    await h.delete();
    await engine.close();
    await collect();
    expect(images({ chunk, control })).toEqual({ chunk: 0, control: 1 });
  });

  it('a raw master key file, after close', async () => {
    const master = masked(32);
    const dir = mkdtempSync(join(tmpdir(), 'senv-images-'));
    try {
      const raw = unmask(master);
      raw[0] = 0x80; // not all text: a raw key
      master[0] = 0x80 ^ MASK[0]!;
      writeFileSync(join(dir, 'key'), raw);
      raw.fill(0);
      for (let run = 0; run < 2; run++) {
        const engine = await McsEngine.create({ dataDir: join(dir, 'data'), masterKeyFile: join(dir, 'key') });
        const client = await new McsClient(engine, 'CAE1').register();
        await (await client.hash({ algorithm: 4 })).delete();
        await client.deregister();
        await engine.close();
      }
      await collect();
      expect(images({ master, control })).toEqual({ master: 0, control: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('secretCopyArg of a caller\'s array inside the heap reads no buffer of it: wiping both leaves nothing', async () => {
    const secret = masked(32);
    const mine = new Uint8Array(32);
    const s = unmask(secret);
    for (let i = 0; i < 32; i++) mine[i] = s[i]!;
    s.fill(0);
    const copy = secretCopyArg(mine, 'data');
    mine.fill(0);
    copy.fill(0);
    await collect();
    expect(images({ secret, control })).toEqual({ secret: 0, control: 1 });
  });
});

// The PC/SC path with the card in a process of its own (`senv virtual-card`): what this process's
// memory holds after the keys and messages went to the card is the host's (transport, backend,
// bridge), never the card's key store.
const pcsc = readable ? await setupPcsc() : { ok: false as const, reason: 'memory not readable' };
describe.skipIf(!pcsc.ok)(`no image of a released secret stays in memory: the PC/SC SE${pcsc.ok ? '' : ` (skipped: ${pcsc.reason})`}`, () => {
  it('keys imported into a card, and short messages it encrypted and MACed, after deleteKey and close', async () => {
    if (!pcsc.ok) return;
    const { env } = pcsc;
    const dir = mkdtempSync(join(tmpdir(), 'senv-images-card-'));
    const bin = fileURLToPath(new URL('../../bin/senv.js', import.meta.url));
    const card = spawn(process.execPath, [bin, 'virtual-card', '--port', String(env.slot.port), '--store', join(dir, 'store.json')], { stdio: 'ignore' });
    try {
      await env.waitFor((st) => st.present, 20_000);
      const aes = masked(16), mac = masked(32), msg = masked(40);
      const b = new PcscBackend({ reader: env.slot.reader });
      await b.open();
      let k = unmask(aes);
      const key = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', k);
      k.fill(0);
      k = unmask(mac);
      const hk = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', k);
      k.fill(0);
      const m = unmask(msg);
      const c = await b.cipher(1001, key, 'encrypt', { nonce: new Uint8Array(12) });
      await c.update(m.subarray(0, 16));
      expect((await c.final(m.subarray(16))).length).toBe(56);
      const sgn = await b.signature(25, hk, { format: 'raw', prehashed: false });
      await sgn.update(m.subarray(0, 16));
      expect((await sgn.sign(m.subarray(16))).length).toBe(32);
      m.fill(0);
      b.deleteKey(key);
      b.deleteKey(hk);
      await b.close();
      await collect();
      expect(images({ aes, mac, msg, control })).toEqual({ aes: 0, mac: 0, msg: 0, control: 1 });
    } finally {
      card.kill('SIGTERM');
      await new Promise((r) => card.once('exit', r));
      await env.waitFor((st) => st.empty, 20_000).catch(() => undefined);
      await env.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

// The native PC/SC bridge through the real pcscd and vpcd, with the senv
// virtual card on the other side of the socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fromHex, hex } from '../../src/apdu/apdu.ts';
import { InvalidInputError, sha256 } from '../../src/core/index.ts';
import { PcscCard, PcscContext, PcscError, ShortResponseError } from '../../src/pcsc/index.ts';
import { VirtualCardOs, VpcdCard, type CardHandler, type VirtualCard } from '../../src/virtual-card/index.ts';
import { setupPcsc, type PcscTestEnv } from './pcsc-helpers.ts';
import { runChild, runModule } from './run-child.ts';

/**
 * A card handler's answer held back until let go, or `capMs` at most (only a bridge that waits for the
 * answer itself, the regression guarded, reaches it): whether something happened while the card still
 * held its answer is then a matter of order, not of how fast a loaded machine ran.
 */
function heldAnswers(handler: CardHandler, capMs: number) {
  const apdu = handler.apdu.bind(handler);
  let letGo!: () => void;
  const gate = new Promise<void>((r) => (letGo = r));
  let reached!: () => void;
  const state = { answered: false, reached: new Promise<void>((r) => (reached = r)) };
  let cap: ReturnType<typeof setTimeout> | undefined;
  handler.apdu = async (command: Uint8Array) => {
    reached();
    await Promise.race([gate, new Promise<void>((r) => (cap = setTimeout(r, capMs)))]);
    state.answered = true;
    return apdu(command);
  };
  return Object.assign(state, {
    letGo,
    restore: () => {
      letGo();
      clearTimeout(cap);
      handler.apdu = apdu;
    },
  });
}

const setup = await setupPcsc();
const SELECT = fromHex('00A4040006F053454E560100');
const COUNTERS = fromHex('00CADF0100');
const sw = (r: Uint8Array) => hex(r.subarray(r.length - 2));

function counters(r: Uint8Array) {
  const v = new DataView(r.buffer, r.byteOffset);
  return { cold: v.getUint32(0), warm: v.getUint32(4), off: v.getUint32(8) };
}

async function expectPcscError(p: Promise<unknown>, name: string): Promise<PcscError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(PcscError);
  expect((e as PcscError).scardName).toBe(name);
  expect((e as PcscError).code).toBe('ERR_PCSC');
  return e as PcscError;
}

describe.skipIf(!setup.ok)(`PC/SC bridge${setup.ok ? '' : ` (skipped: ${setup.reason})`}`, () => {
  let env: PcscTestEnv;
  let card: VirtualCard;

  beforeAll(async () => {
    if (!setup.ok) return;
    env = setup.env;
    card = env.newCard();
    await env.insert(card);
  });
  afterAll(async () => {
    if (setup.ok) await env.teardown();
  });

  it('lists the vpcd readers', async () => {
    const readers = await env.ctx.listReaders();
    expect(readers).toContain('Virtual PCD 00 00');
    expect(readers).toContain('Virtual PCD 00 01');
  });

  it('sees removal and insertion in the change wait, with the ATR', async () => {
    const before = await env.waitFor((s) => s.present);
    expect(hex(before.atr)).toBe(hex(card.os.atr()));
    await card.vpcd.remove();
    const gone = await env.waitFor((s) => s.empty);
    expect(gone.present).toBe(false);
    await card.vpcd.insert();
    const back = await env.waitFor((s) => s.present);
    expect(hex(back.atr)).toBe(hex(card.os.atr()));
  });

  it('waits on the PnP pseudo-reader (vpcd readers never come or go, so it times out)', async () => {
    await expectPcscError(env.ctx.getStatusChange([{ reader: env.ctx.pnpReader }], 50), 'SCARD_E_TIMEOUT');
  });

  it('a timeout of 2^32 ms or more stays a long wait (no DWORD wrap to 0); a bad one is an InvalidInputError', async () => {
    for (const bad of [NaN, -1, '5' as unknown as number]) {
      await expect(env.ctx.getStatusChange([{ reader: env.ctx.pnpReader }], bad)).rejects.toThrow(InvalidInputError);
    }
    const waiting = env.ctx.getStatusChange([{ reader: env.ctx.pnpReader }], 2 ** 32).then(() => 'resolved', (e: unknown) => e);
    const early = await Promise.race([waiting, new Promise((r) => setTimeout(() => r('still waiting'), 200))]);
    expect(early).toBe('still waiting');
    await env.ctx.cancel();
    expect(((await waiting) as PcscError).scardName).toBe('SCARD_E_CANCELLED');
  });

  it('transmits short and extended APDUs', async () => {
    const c = await env.ctx.connect(env.slot.reader);
    try {
      expect(c.protocol).toBe('T1');
      const fci = await c.transmit(SELECT);
      expect(sw(fci)).toBe('9000');
      expect(fci[0]).toBe(0x6f); // FCI template
      const challenge = await c.transmit(fromHex('0084000008'));
      expect(challenge.length).toBe(10);
      // extended Le: 4000 random bytes in one response
      const big = await c.transmit(fromHex('00840000000FA0'));
      expect(big.length).toBe(4002);
      expect(sw(big)).toBe('9000');
      // extended Lc: PSO HASH over 4000 bytes, checked against the core
      expect(sw(await c.transmit(fromHex('002241AA0480020004')))).toBe('9000');
      const msg = new Uint8Array(4000).map((_, i) => i * 7);
      const cmd = new Uint8Array([0x00, 0x2a, 0x90, 0x80, 0x00, 0x0f, 0xa0, ...msg, 0x00, 0x00]);
      const digest = await c.transmit(cmd);
      expect(sw(digest)).toBe('9000');
      expect(hex(digest.subarray(0, 32))).toBe(hex(sha256(msg)));
    } finally {
      await c.disconnect();
    }
  });

  it('performs warm and cold resets that the card observes', async () => {
    const c = await env.ctx.connect(env.slot.reader);
    try {
      const read = async () => {
        expect(sw(await c.transmit(SELECT))).toBe('9000');
        return counters(await c.transmit(COUNTERS));
      };
      const a = await read();
      await c.reset('warm');
      const b = await read();
      expect(b.warm - a.warm).toBe(1);
      expect(b.cold - a.cold).toBe(0);
      await c.reset('cold');
      const d = await read();
      expect(d.cold - b.cold).toBe(1);
      expect(d.off - b.off).toBe(1);
      expect(d.warm - b.warm).toBe(0);
      // A reset forgets volatile state: the applet is no longer selected.
      await c.reset('warm');
      expect(sw(await c.transmit(COUNTERS))).toBe('6D00');
    } finally {
      await c.disconnect();
    }
  });

  it('reports a reset by another handle as SCARD_W_RESET_CARD until reconnect', async () => {
    const a = await env.ctx.connect(env.slot.reader);
    const b = await env.ctx.connect(env.slot.reader);
    try {
      await a.reset('warm');
      await expectPcscError(b.transmit(SELECT), 'SCARD_W_RESET_CARD');
      await b.reconnect('leave');
      expect(sw(await b.transmit(SELECT))).toBe('9000');
    } finally {
      await a.disconnect();
      await b.disconnect();
    }
  });

  it('serialises transactions between connections', async () => {
    const a = await env.ctx.connect(env.slot.reader);
    const b = await env.ctx.connect(env.slot.reader);
    try {
      const order: string[] = [];
      await a.beginTransaction();
      const bTurn = b.transaction(async () => {
        order.push('b');
        return sw(await b.transmit(SELECT));
      });
      expect(sw(await a.transmit(SELECT))).toBe('9000');
      order.push('a');
      await a.endTransaction();
      expect(await bTurn).toBe('9000');
      expect(order).toEqual(['a', 'b']);
    } finally {
      await a.disconnect();
      await b.disconnect();
    }
  });

  it('answers status with reader, protocol and ATR', async () => {
    const c = await env.ctx.connect(env.slot.reader);
    const s = await c.status();
    expect(s.reader).toBe(env.slot.reader);
    expect(s.protocol).toBe('T1');
    expect(hex(s.atr)).toBe(hex(card.os.atr()));
    expect(() => c.transmit('00A40400' as unknown as Uint8Array)).toThrow(InvalidInputError);
    await c.disconnect();
    await expectPcscError(c.transmit(SELECT), 'SCARD_E_INVALID_HANDLE');
    await c.disconnect(); // idempotent
  });

  it('fails with typed errors: unknown reader, cancelled wait, unsupported control', async () => {
    await expectPcscError(env.ctx.connect('No Such Reader 00 00'), 'SCARD_E_UNKNOWN_READER');
    await expect(env.ctx.connect(42 as unknown as string)).rejects.toThrow(InvalidInputError);
    // A C string ends at NUL: this name would have connected to the card's reader.
    await expect(env.ctx.connect(`${env.slot.reader}\0x`)).rejects.toThrow(/must not contain NUL/);
    await expect(env.ctx.getStatusChange([{ reader: `${env.slot.reader}\0x` }], 0)).rejects.toThrow(InvalidInputError);
    const [s] = await env.ctx.getStatusChange([{ reader: env.slot.reader }], 0);
    // One cancel() right after the call, before its wait started on a bridge thread, ends it; a wait asked for
    // after the cancel is not affected.
    const waiting = env.ctx.getStatusChange([{ reader: env.slot.reader, state: s!.state }]);
    env.ctx.cancel();
    await expectPcscError(waiting, 'SCARD_E_CANCELLED');
    await expectPcscError(env.ctx.getStatusChange([{ reader: env.slot.reader, state: s!.state }], 100), 'SCARD_E_TIMEOUT');
    const running = env.ctx.getStatusChange([{ reader: env.slot.reader, state: s!.state }]);
    await new Promise((r) => setTimeout(r, 100));
    env.ctx.cancel();
    await expectPcscError(running, 'SCARD_E_CANCELLED');
    const c = await env.ctx.connect(env.slot.reader);
    // vpcd implements no IOCTL: SCardControl fails cleanly instead of crashing, named as pcsc-lite
    // means its 0x8010001F (never SCARD_E_UNEXPECTED there).
    await expectPcscError(c.control(3400), 'SCARD_E_UNSUPPORTED_FEATURE');
    await c.disconnect();
  });

  it('dispositions, reset kinds and a transaction\'s function are checked before anything is sent: an unknown one is no silent default (a reset skipped)', async () => {
    const c = await env.ctx.connect(env.slot.reader);
    try {
      expect(sw(await c.transmit(SELECT))).toBe('9000');
      const before = counters(await c.transmit(COUNTERS));
      const refused: [string, () => Promise<unknown>][] = [
        ["reconnect('cold')", () => c.reconnect('cold' as never)],
        ["reset('COLD')", () => c.reset('COLD' as never)],
        ['endTransaction(bogus)', () => c.endTransaction('bogus' as never)],
        ['transaction(42)', () => c.transaction(42 as never)],
        ["transaction(fn, 'unpowr')", () => c.transaction(async () => 1, 'unpowr' as never)],
        ["disconnect('unpowr')", () => c.disconnect('unpowr' as never)],
      ];
      for (const [what, call] of refused) await expect(call(), what).rejects.toThrow(InvalidInputError);
      expect(c.connected, 'still connected').toBe(true);
      expect(counters(await c.transmit(COUNTERS)), 'no reset reached the card').toEqual(before);
    } finally {
      await c.disconnect();
    }
    // A wait for no reader would answer at once whatever its timeout (pcsc-lite): no wait at all.
    await expect(env.ctx.getStatusChange([])).rejects.toThrow(/name at least one reader/);
  });

  it('Symbol.asyncDispose (`await using`) disconnects a card and releases a context', async () => {
    const ctx = await PcscContext.establish();
    const c = await ctx.connect(env.slot.reader);
    expect(sw(await c.transmit(SELECT))).toBe('9000');
    await c[Symbol.asyncDispose]();
    expect(c.connected).toBe(false);
    await expectPcscError(c.transmit(SELECT), 'SCARD_E_INVALID_HANDLE');
    await ctx[Symbol.asyncDispose]();
    await expectPcscError(ctx.listReaders(), 'SCARD_E_INVALID_HANDLE');
  });

  it('connect() on a context being released or released is SCARD_E_INVALID_HANDLE, as every other call on it', async () => {
    const ctx = await PcscContext.establish();
    const releasing = ctx.release();
    await expectPcscError(ctx.connect(env.slot.reader), 'SCARD_E_INVALID_HANDLE');
    await releasing;
    await expectPcscError(ctx.connect(env.slot.reader), 'SCARD_E_INVALID_HANDLE');
  });

  it('release() with waits under way or just queued: cancels them, waits for them, then releases', async () => {
    for (let round = 0; round < 20; round++) {
      const ctx = await PcscContext.establish();
      const [s] = await ctx.getStatusChange([{ reader: env.slot.reader }], 0);
      // Not awaited: release() is called while these are queued or already waiting.
      const waits = [1, 2].map(() => ctx.getStatusChange([{ reader: env.slot.reader, state: s!.state }]).then(() => null, (e: unknown) => e));
      await ctx.release();
      for (const e of await Promise.all(waits)) {
        expect(e).toBeInstanceOf(PcscError);
        expect(['SCARD_E_CANCELLED', 'SCARD_E_INVALID_HANDLE']).toContain((e as PcscError).scardName);
      }
      await expectPcscError(ctx.listReaders(), 'SCARD_E_INVALID_HANDLE');
      await ctx.release();
    }
  });

  it('fails connect on an empty slot and transmit after removal mid-command', async () => {
    // A card that drops out of the reader when it receives INS EE, without answering.
    const os = new VirtualCardOs([card.applet]);
    const vanishing: VpcdCard = new VpcdCard({
      atr: () => os.atr(),
      power: (e) => os.power(e),
      apdu: (b) => {
        if (b[1] === 0xee) {
          void vanishing.remove();
          return new Promise<Uint8Array>(() => {});
        }
        return os.apdu(b);
      },
    }, { port: env.slot.port });
    await env.remove(card);
    await expectPcscError(env.ctx.connect(env.slot.reader), 'SCARD_E_NO_SMARTCARD');
    await vanishing.insert();
    await env.waitFor((s) => s.present);
    const c = await env.ctx.connect(env.slot.reader);
    expect(sw(await c.transmit(SELECT))).toBe('9000');
    const e = await c.transmit(fromHex('00EE0000')).then(() => null, (err: unknown) => err);
    // pcscd either reports the removal or, when the socket dies mid-exchange,
    // "success" with no bytes: both must surface as typed errors.
    if (e instanceof PcscError) expect(['SCARD_W_REMOVED_CARD', 'SCARD_E_NO_SMARTCARD', 'SCARD_F_COMM_ERROR']).toContain(e.scardName);
    else expect(e).toBeInstanceOf(ShortResponseError);
    await env.waitFor((s) => s.empty);
    await expectPcscError(c.transmit(SELECT), 'SCARD_W_REMOVED_CARD');
    await c.disconnect().catch(() => undefined);
    await env.insert(card);
  });

  // 10,000 round trips: ~3 s with the latency fix, ~8 minutes through a pcscd without it.
  const slow = setup.ok && !setup.env.latencyFixed;

  it('a process whose endless status-change wait is under way still ends at once: process.exit(), an uncaught exception, an exit before the wait was set up', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const reader = JSON.stringify(env.slot.reader);
    // A wait with the default timeout (forever) on a reader whose state does not change.
    const setUp = `const { PcscContext } = await import(${pcsc}); const ctx = await PcscContext.establish();
      const [s] = await ctx.getStatusChange([{ reader: ${reader} }], 0);`;
    const wait = `ctx.getStatusChange([{ reader: ${reader}, state: s.state }]).catch(() => {});`;
    const waiting = `${setUp} ${wait} await new Promise((r) => setTimeout(r, 300));`;
    const endings: Record<string, string> = {
      'process.exit()': `${waiting} process.exit(0);`,
      'an uncaught exception': `${waiting} setTimeout(() => { throw new Error('uncaught'); });`,
      'process.exit() right after the call': `${setUp} ${wait} await new Promise((r) => setImmediate(r)); process.exit(0);`,
    };
    const ended: Record<string, unknown> = {};
    for (const [how, script] of Object.entries(endings)) {
      const r = await runModule(script, { killMs: 15_000 });
      // Start-up and the wait's set-up, far below the kill.
      ended[how] = { killed: r.signal === 'SIGKILL', inTime: r.ms < 8_000 };
    }
    expect(ended).toEqual(Object.fromEntries(Object.keys(endings).map((how) => [how, { killed: false, inTime: true }])));
  });

  // Threads are the bridge's own (native/senv_pcsc.cc, Threads): an idle one takes the next call, and
  // one idle for 30 s ends. Counted by their name in a child.
  it('reuses its idle threads for the next calls, and ends each after 30 s idle', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const reader = JSON.stringify(env.slot.reader);
    const script = `const { readdirSync, readFileSync } = await import('node:fs'); const { PcscContext } = await import(${pcsc});
      const named = (t) => { try { return readFileSync('/proc/self/task/' + t + '/comm', 'utf8') === 'senv-pcsc\\n'; } catch { return false; } };
      const threads = () => readdirSync('/proc/self/task').filter(named).length;
      const ctxs = await Promise.all(Array.from({ length: 8 }, () => PcscContext.establish()));
      const [s] = await ctxs[0].getStatusChange([{ reader: ${reader} }], 0);
      const waits = ctxs.map((c) => c.getStatusChange([{ reader: ${reader}, state: s.state }]).catch(() => {}));
      await new Promise((r) => setTimeout(r, 200));
      const waiting = threads();
      for (const c of ctxs) c.cancel();
      await Promise.all(waits);
      const made = threads();
      for (let i = 0; i < 300; i++) await ctxs[i % 8].getStatusChange([{ reader: ${reader} }], 0);
      const afterCalls = threads();
      await new Promise((r) => setTimeout(r, 31_000));
      // Past the 30 s, a loaded machine may run a thread's end late: up to 15 s more for the last to go.
      for (let i = 0; i < 75 && threads() > 0; i++) await new Promise((r) => setTimeout(r, 200));
      console.log(JSON.stringify({ waiting, made, afterCalls, idle: threads() }));
      process.exit(0);`;
    const r = await runModule(script, { killMs: 75_000 });
    expect(r.code, r.out + r.err).toBe(0);
    const n = JSON.parse(r.out) as { waiting: number; made: number; afterCalls: number; idle: number };
    // Eight endless waits hold eight threads; their cancels may take up to eight more.
    expect(n.waiting).toBeGreaterThanOrEqual(8);
    expect(n.made).toBeLessThanOrEqual(16);
    // 300 calls one after the other run on threads made already, and after 30 s idle none is left.
    expect(n.afterCalls).toBe(n.made);
    expect(n.idle).toBe(0);
  }, 90_000);

  it('a worker that exits during its wait ends it, and the waits of the rest of the process go on as before', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const reader = JSON.stringify(env.slot.reader);
    const inWorker = `(async () => { const { PcscContext } = await import(${pcsc}); const ctx = await PcscContext.establish();
      const [s] = await ctx.getStatusChange([{ reader: ${reader} }], 0);
      ctx.getStatusChange([{ reader: ${reader}, state: s.state }]).catch(() => {});
      setTimeout(() => process.exit(0), 200); })()`;
    const script = `const { Worker } = await import('node:worker_threads'); const { PcscContext } = await import(${pcsc});
      await new Promise((r) => new Worker(${JSON.stringify(inWorker)}, { eval: true }).once('exit', r));
      const ctx = await PcscContext.establish(); const [s] = await ctx.getStatusChange([{ reader: ${reader} }], 0);
      const t = Date.now(); const e = await ctx.getStatusChange([{ reader: ${reader}, state: s.state }], 300).catch((x) => x);
      console.log(e.scardName, Date.now() - t >= 250); await ctx.release();`;
    const { code, out } = await runModule(script, { killMs: 15_000 });
    expect({ code, out }).toEqual({ code: 0, out: 'SCARD_E_TIMEOUT true\n' });
  });

  it('a worker ended during its endless wait, or a main thread that exits while a worker waits, ends at once', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const reader = JSON.stringify(env.slot.reader);
    const inWorker = `(async () => { const { PcscContext } = await import(${pcsc}); const { parentPort } = await import('node:worker_threads');
      const ctx = await PcscContext.establish(); const [s] = await ctx.getStatusChange([{ reader: ${reader} }], 0);
      ctx.getStatusChange([{ reader: ${reader}, state: s.state }]).catch(() => {});
      setTimeout(() => parentPort.postMessage('waiting'), 200); })()`;
    const start = `const { Worker } = await import('node:worker_threads');
      const w = new Worker(${JSON.stringify(inWorker)}, { eval: true }); await new Promise((r) => w.once('message', r));`;
    const endings: Record<string, string> = {
      // The main thread goes on: a wait of its own after the worker ended still times out as asked.
      'Worker#terminate()': `${start} await w.terminate(); const { PcscContext } = await import(${pcsc});
        const ctx = await PcscContext.establish(); const [s] = await ctx.getStatusChange([{ reader: ${reader} }], 0);
        const e = await ctx.getStatusChange([{ reader: ${reader}, state: s.state }], 300).catch((x) => x);
        console.log(e.scardName); await ctx.release();`,
      'process.exit() on the main thread': `${start} console.log('SCARD_E_TIMEOUT'); process.exit(0);`,
      'an uncaught exception on the main thread': `${start} console.log('SCARD_E_TIMEOUT'); setTimeout(() => { throw new Error('uncaught'); });`,
    };
    const ended: Record<string, unknown> = {};
    for (const [how, script] of Object.entries(endings)) {
      const r = await runModule(script, { killMs: 15_000 });
      ended[how] = { killed: r.signal === 'SIGKILL', inTime: r.ms < 8_000, out: r.out };
    }
    expect(ended).toEqual(Object.fromEntries(Object.keys(endings).map((how) => [how, { killed: false, inTime: true, out: 'SCARD_E_TIMEOUT\n' }])));
  });

  it('endless waits hold no libuv pool thread: with more of them than the pool has threads, transmits and file reads go on', async () => {
    // The libuv pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise; a wait per thread and one more.
    const n = Math.max(4, Number(process.env.UV_THREADPOOL_SIZE) || 4) + 1;
    const contexts = await Promise.all(Array.from({ length: n }, () => PcscContext.establish()));
    const waits: Promise<unknown>[] = [];
    try {
      for (const ctx of contexts) {
        const [s] = await ctx.getStatusChange([{ reader: env.slot.reader }], 0);
        waits.push(ctx.getStatusChange([{ reader: env.slot.reader, state: s!.state }]).catch((e: unknown) => e));
      }
      await new Promise((r) => setTimeout(r, 200));
      const c = await env.ctx.connect(env.slot.reader);
      const work = (async () => {
        const r = await c.transmit(fromHex('00a4040000'));
        const file = await readFile(fileURLToPath(import.meta.url));
        return { answered: r.length >= 2, read: file.length > 0 };
      })();
      // Held for good, the pool never serves them: 20 s only bounds the failure on a loaded machine.
      let lateTimer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise((r) => (lateTimer = setTimeout(() => r('stalled'), 20_000)));
      expect(await Promise.race([work, late])).toEqual({ answered: true, read: true });
      clearTimeout(lateTimer);
      await c.disconnect();
    } finally {
      for (const ctx of contexts) ctx.cancel();
      const ends = await Promise.all(waits);
      await Promise.all(contexts.map((ctx) => ctx.release()));
      expect(ends.map((e) => (e as PcscError).scardName)).toEqual(Array(n).fill('SCARD_E_CANCELLED'));
    }
  });

  it('a wait whose thread cannot be made (address space or thread limits) is refused with SCARD_E_NO_MEMORY, the process goes on', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const reader = JSON.stringify(env.slot.reader);
    // 40 endless waits under an address-space limit of what the process uses plus 96 MB: each wait
    // needs a bridge thread of its own, which reserves an 8 MB stack, so the later ones cannot be
    // made. Then the limit goes and all end. The contexts are made one at a time: side by side,
    // their calls would leave 40 idle threads for the waits.
    const script = `const { PcscContext } = await import(${pcsc}); const { execFileSync } = await import('node:child_process');
      const { readFileSync } = await import('node:fs');
      const ctx = await PcscContext.establish(); const [s] = await ctx.getStatusChange([{ reader: ${reader} }], 0);
      const all = []; for (let i = 0; i < 40; i++) all.push(await PcscContext.establish());
      const vm = Number(/VmSize:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      execFileSync('prlimit', ['--pid', String(process.pid), '--as=' + (vm + 96 * 1024 * 1024) + ':']);
      const waits = all.map((c) => c.getStatusChange([{ reader: ${reader}, state: s.state }]).then(() => 'resolved', (e) => e.scardName ?? e.message));
      await new Promise((r) => setTimeout(r, 300));
      execFileSync('prlimit', ['--pid', String(process.pid), '--as=unlimited:']);
      for (const c of all) c.cancel();
      const got = await Promise.all(waits);
      console.log(JSON.stringify({ refused: got.some((g) => g === 'SCARD_E_NO_MEMORY'), others: [...new Set(got.filter((g) => g !== 'SCARD_E_NO_MEMORY'))] }));
      for (const c of all) await c.release(); await ctx.release();`;
    const { code, signal, out } = await runModule(script);
    expect({ code, signal, out }).toEqual({ code: 0, signal: null, out: `${JSON.stringify({ refused: true, others: ['SCARD_E_CANCELLED'] })}\n` });
  });

  it('a worker ended while its call is under way ends alone: a transmit or a connect that succeeds during its shutdown does not abort the process', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const reader = JSON.stringify(env.slot.reader);
    // The worker starts the call, says so, and is ended 100 ms later; the call succeeds about
    // 300 ms after that, while the worker shuts down, when no JavaScript can run in it.
    const transmit = `const ctx = await PcscContext.establish(); const c = await ctx.connect(${reader});
      c.transmit(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x00)).catch(() => {});`;
    const connect = `const ctx = await PcscContext.establish(); ctx.connect(${reader}).catch(() => {});`;
    const worker = (call: string, end: string) => `(async () => { const { PcscContext } = await import(${pcsc});
      const { parentPort } = await import('node:worker_threads'); ${call} parentPort.postMessage('calling');
      setTimeout(() => ${end}, 100); })()`;
    const endings = { 'Worker#terminate()': "parentPort.postMessage('end')", 'process.exit() in the worker': 'process.exit(0)' };
    // After the worker: 'alive', and for a connect whether the connection the worker never got was
    // given back (an exclusive connect fails while any other connection to the card is open).
    const run = async (call: string, end: string, calling: () => void, after = '') => {
      const script = `const { Worker } = await import('node:worker_threads');
        const w = new Worker(${JSON.stringify(worker(call, end))}, { eval: true });
        w.on('message', (m) => (m === 'calling' ? console.log(m) : w.terminate()));
        await new Promise((r) => w.once('exit', r)); await new Promise((r) => setTimeout(r, 600)); console.log('alive'); ${after}`;
      const { code, signal, out } = await runModule(script, { killMs: 15_000, onOutput: (o) => {
        if (o.startsWith('calling\n')) calling();
      } });
      return { code, signal, out };
    };
    const results: Record<string, unknown> = {};
    // A transmit: the card (served by this process; vpcd awaits its handler) answers 400 ms late.
    const handler = card.os as CardHandler;
    const apdu = handler.apdu.bind(card.os);
    try {
      handler.apdu = async (command: Uint8Array) => {
        await new Promise((r) => setTimeout(r, 400));
        return apdu(command);
      };
      for (const [how, end] of Object.entries(endings)) results[`transmit, ${how}`] = await run(transmit, end, () => undefined);
    } finally {
      handler.apdu = apdu;
    }
    // A connect: it waits for the transaction this process holds, ended (and the connection
    // closed) 400 ms after the call.
    const holder = await env.ctx.connect(env.slot.reader);
    const exclusive = `const { PcscContext } = await import(${pcsc}); const ctx = await PcscContext.establish();
      const c = await ctx.connect(${reader}, { share: 'exclusive' }).catch((e) => e);
      console.log(c.scardName ?? 'exclusive'); await c.disconnect?.(); await ctx.release();`;
    try {
      await holder.beginTransaction();
      let ending: ReturnType<typeof setTimeout> | undefined;
      results['connect, Worker#terminate()'] = await run(connect, endings['Worker#terminate()'], () => {
        ending ??= setTimeout(() => void holder.endTransaction().then(() => holder.disconnect()).catch(() => undefined), 400);
      }, exclusive);
    } finally {
      await holder.disconnect().catch(() => undefined);
    }
    const alive = { code: 0, signal: null, out: 'calling\nalive\n' };
    expect(results).toEqual({
      'transmit, Worker#terminate()': alive,
      'transmit, process.exit() in the worker': alive,
      'connect, Worker#terminate()': { ...alive, out: 'calling\nalive\nexclusive\n' },
    });
  });

  it('a worker ended during a transmit the card holds: its connection is released only once the transmit returned, and establish() goes on meanwhile', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const reader = JSON.stringify(env.slot.reader);
    const inWorker = `(async () => { const { PcscContext } = await import(${pcsc}); const { parentPort } = await import('node:worker_threads');
      const ctx = await PcscContext.establish(); const c = await ctx.connect(${reader});
      c.transmit(Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08)).catch(() => {}); parentPort.postMessage('calling'); })()`;
    // The worker's end finalises its connection under the transmit. Released then, the release would
    // wait for the transmit inside pcsc-lite holding the bridge's list lock, and with it every establish.
    const script = `const { Worker } = await import('node:worker_threads'); const { PcscContext } = await import(${pcsc});
      const w = new Worker(${JSON.stringify(inWorker)}, { eval: true });
      await new Promise((r) => w.once('message', r)); await new Promise((r) => setTimeout(r, 100));
      await w.terminate(); await new Promise((r) => setTimeout(r, 300));
      const ctx = await PcscContext.establish(); console.log('established');
      await ctx.release();`;
    // The card answers the transmit once the child's establish returned (10 s at most): when the finaliser
    // released the connection at once, the establish waited for that answer.
    const held = heldAnswers(card.os as CardHandler, 10_000);
    let establishedFirst: boolean | undefined;
    const r = await runModule(script, {
      killMs: 30_000,
      onOutput: (out) => {
        if (establishedFirst === undefined && out.includes('established\n')) {
          establishedFirst = !held.answered;
          held.letGo();
        }
      },
    }).finally(() => held.restore());
    expect(r.code, r.err).toBe(0);
    expect(establishedFirst, 'establish() returned while the card held the transmit').toBe(true);
  });

  // Direct callers of the addon (src/pcsc/ queues its calls, so these overlaps never come from it).
  interface RawCard { transmit(c: Uint8Array): Promise<Uint8Array>; status(): Promise<unknown>; disconnect(d: number): Promise<void> }
  interface RawMonitor { connect(r: string, s: number, p: number): Promise<RawCard>; getStatusChange(s: { reader: string; currentState: number }[], t: number): Promise<unknown>; release(): Promise<void> }
  const rawAddon = () => createRequire(import.meta.url)(fileURLToPath(new URL('../../native/build/Release/senv_pcsc.node', import.meta.url))) as { Monitor: { establish(): Promise<RawMonitor> } };

  // Before, the disconnect went into pcsc-lite at once: there it waited for the transmit on the
  // connection's lock holding the bridge's list lock (every establish of the process waited too),
  // and a status call then read the reader name it had freed (ASan, in a review's runs).
  it('the addon\'s disconnect() waits for the calls still running on the connection (a transmit the card holds) before it goes to pcsc-lite, holding nothing meanwhile (direct callers)', async () => {
    const addon = rawAddon();
    const m = await addon.Monitor.establish();
    // The card answers once the establish returned (10 s at most: where the disconnect holds the
    // bridge's list lock, the establish waits for that answer).
    const held = heldAnswers(card.os as CardHandler, 10_000);
    const order: string[] = [];
    let establishedFirst = false;
    try {
      const c = await m.connect(env.slot.reader, 2, 3);
      const transmitted = c.transmit(Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08)).then((r) => order.push(`transmit ${sw(r)}`), (e: Error) => order.push(`transmit ${e.message}`));
      await held.reached;
      const disconnected = c.disconnect(0).then(() => order.push('disconnect'));
      await new Promise((r) => setTimeout(r, 100));
      await (await addon.Monitor.establish()).release();
      establishedFirst = !held.answered;
      held.letGo();
      await Promise.all([transmitted, disconnected]);
    } finally {
      held.restore();
    }
    // (A status call would block it all the same: pcsc-lite takes its process-wide lock, then waits
    // for the connection's, which the transmit holds.)
    expect(establishedFirst, 'an establish while the disconnect waits, returned while the card held the transmit').toBe(true);
    expect(order).toEqual([expect.stringMatching(/^transmit [0-9A-F]{4}$/), 'disconnect']);
    await m.release();
  });

  it('the addon\'s release() right after an endless wait started cancels it until it returned, then releases: never left hanging (direct callers)', async () => {
    const addon = rawAddon();
    const slowest: number[] = [];
    for (let i = 0; i < 20; i++) {
      const m = await addon.Monitor.establish();
      const wait = m.getStatusChange([{ reader: env.ctx.pnpReader, currentState: 0 }], 0xffffffff).then(() => 'resolved', (e: { scode: number }) => e.scode);
      const t0 = Date.now();
      const released = await Promise.race([m.release().then(() => 'released'), new Promise((r) => setTimeout(() => r('hanging'), 5000))]);
      expect(released, `round ${i}`).toBe('released');
      slowest.push(Date.now() - t0);
      expect(await wait).toBe(0x80100002); // SCARD_E_CANCELLED
    }
    expect(Math.max(...slowest)).toBeLessThan(2000);
  });

  it('the addon itself refuses a reader name with NUL, which pcsc-lite would cut short (direct callers of the addon)', async () => {
    const addon = JSON.stringify(fileURLToPath(new URL('../../native/build/Release/senv_pcsc.node', import.meta.url)));
    const reader = JSON.stringify(`${env.slot.reader}\0x`);
    const script = `const a = require(${addon}); (async () => {
      const m = await a.Monitor.establish();
      const out = [];
      for (const p of [() => m.connect(${reader}, 2, 3), () => m.getStatusChange([{ reader: ${reader}, currentState: 0 }], 0)]) {
        out.push(await p().then(() => 'resolved', (e) => e.message));
      }
      await m.release();
      console.log(JSON.stringify(out));
    })();`;
    const r = await runChild(process.execPath, ['-e', script]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual(['connect: the reader name must not contain NUL', 'getStatusChange: a reader name must not contain NUL']);
  });

  it('the addon refuses a DWORD argument that is no number (never its default), and its disconnect() is idempotent (direct callers of the addon)', async () => {
    const addon = JSON.stringify(fileURLToPath(new URL('../../native/build/Release/senv_pcsc.node', import.meta.url)));
    const reader = JSON.stringify(env.slot.reader);
    const script = `const a = require(${addon}); (async () => {
      const m = await a.Monitor.establish();
      const out = [];
      out.push(await m.connect(${reader}, 'shared').then(() => 'resolved', (e) => e.message));
      out.push(await m.getStatusChange([{ reader: ${reader}, currentState: 0 }], 'soon').then(() => 'resolved', (e) => e.message));
      const c = await m.connect(${reader}, 2, 3);
      for (const p of [() => c.reconnect(2, 3, 'cold'), () => c.endTransaction('bogus'), () => c.control('x', new Uint8Array(0)), () => c.disconnect('unpowr')]) {
        out.push(await p().then(() => 'resolved', (e) => e.message));
      }
      out.push(c.connected);
      out.push(await c.disconnect(0).then(() => 'resolved', (e) => e.message));
      out.push(await c.disconnect(0).then(() => 'resolved', (e) => e.message));
      await m.release();
      console.log(JSON.stringify(out));
    })();`;
    const r = await runChild(process.execPath, ['-e', script]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual([
      'connect: share and protocols are numbers', 'getStatusChange: the timeout is a number',
      'reconnect: share, protocols and initialization are numbers', 'endTransaction: the disposition is a number',
      'control: the code and the response size are numbers', 'disconnect: the disposition is a number',
      true, 'resolved', 'resolved',
    ]);
  });

  it('SENV_PCSC_ADDON names the addon from the working directory when relative', async () => {
    const native = fileURLToPath(new URL('../../native/', import.meta.url));
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const script = `import(${pcsc}).then((m) => console.log(m.nativeAvailable()))`;
    const run = async (addonPath: string) => (await runChild(process.execPath, ['-e', script], { cwd: native, env: { SENV_PCSC_ADDON: addonPath } })).out.trim();
    expect(await run('build/Release/senv_pcsc.node')).toBe('true');
    expect(await run('./build/Release/senv_pcsc.node')).toBe('true');
    expect(await run('build/Release/missing.node')).toBe('false');
  });

  it('an addon that is missing or cannot be loaded is reported with the command that builds it', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const script = `import(${pcsc}).then(async (m) => { try { await m.PcscContext.establish(); } catch (e) { console.log(e.code + ' ' + e.message); } })`;
    const run = async (addonPath: string) => (await runModule(script, { env: { SENV_PCSC_ADDON: addonPath } })).out.trim();
    const missing = await run('/nonexistent/senv_pcsc.node');
    expect(missing).toMatch(/^ERR_PCSC_UNAVAILABLE the native PC\/SC bridge at \/nonexistent\/senv_pcsc\.node cannot be loaded .*build the bridge with `npm rebuild onem2m-senv` \(npm 12 runs a dependency's install script only once approved: `npm install-scripts approve onem2m-senv` first; in a senv checkout: `node scripts\/build-native\.mjs`\)/);
    const dir = mkdtempSync(join(tmpdir(), 'senv-addon-'));
    const notElf = join(dir, 'senv_pcsc.node');
    writeFileSync(notElf, 'not a shared object');
    const broken = await run(notElf).finally(() => rmSync(dir, { recursive: true, force: true }));
    expect(broken).toMatch(/^ERR_PCSC_UNAVAILABLE the native PC\/SC bridge at .*senv_pcsc\.node cannot be loaded \(.*\); the runtime library may be missing/);
  });

  it('SENV_NATIVE=skip leaves the bridge out at install, saying how to build it later', async () => {
    const r = await runChild(process.execPath, [fileURLToPath(new URL('../../scripts/build-native.mjs', import.meta.url))], { env: { SENV_NATIVE: 'skip' } });
    expect(r.code).toBe(0);
    expect((r.out + r.err).trim()).toBe('senv native PC/SC bridge: skipped (SENV_NATIVE=skip); build it later with: npm rebuild onem2m-senv');
  });

  it('the addon rejects a state whose getter throws instead of aborting the process, a refused state or an answered call leaks nothing, unrefCall knows pending calls only (direct callers of the addon)', async () => {
    const addon = JSON.stringify(fileURLToPath(new URL('../../native/build/Release/senv_pcsc.node', import.meta.url)));
    // And a refused state leaves nothing behind: 20,000 refusals hold no global handle (a promise made
    // before the arguments were checked and never settled held 32 bytes of them each, for good).
    const script = `const a = require(${addon}); const v8 = require('node:v8'); (async () => {
      const m = await a.Monitor.establish();
      for (const item of [{ get reader() { throw new Error('getter'); }, currentState: 0 }, { reader: 'r', get currentState() { throw new Error('getter'); } }]) {
        console.log(await m.getStatusChange([item], 0).then(() => 'resolved', (e) => e.message));
      }
      // A getter that releases the context: the wait is refused, not started on the released context.
      const r = await a.Monitor.establish();
      console.log(await r.getStatusChange([{ get reader() { r.release(); return 'r'; }, currentState: 0 }], 0).then(() => 'resolved', (e) => e.scode === 0x80100003));
      const handles = () => { gc(); return v8.getHeapStatistics().used_global_handles_size; };
      const before = handles();
      for (let i = 0; i < 20000; i++) await m.getStatusChange([{ reader: 'r', currentState: 'x' }], 0).catch(() => {});
      console.log(handles() - before < 20000);
      // Nor do answered calls (each job holds its promise weakly, for unrefCall), and unrefCall of
      // anything but a pending call's promise is false.
      const before2 = handles();
      for (let i = 0; i < 5000; i++) await m.listReaders();
      console.log(handles() - before2 < 20000);
      const pending = m.listReaders();
      console.log([a.unrefCall(), a.unrefCall(42), a.unrefCall(Promise.resolve()), a.unrefCall(pending), a.unrefCall(pending)].join());
      await pending;
      await m.release();
    })();`;
    const { code, out } = await runChild(process.execPath, ['--expose-gc', '-e', script]);
    expect({ code, out }).toEqual({ code: 0, out: 'getter\ngetter\ntrue\ntrue\ntrue\nfalse,false,false,true,false\n' });
  });

  it('a connection collected while it holds a transaction leaves the card as it is (SCARD_LEAVE_CARD, no reset)', async () => {
    const read = async (c: PcscCard) => {
      expect(sw(await c.transmit(SELECT))).toBe('9000');
      return counters(await c.transmit(COUNTERS));
    };
    const fds = () => readdirSync('/proc/self/fd').length;
    const observer = await env.ctx.connect(env.slot.reader);
    const before = await read(observer);
    await observer.disconnect();
    const baseline = fds();
    await (async () => {
      const held = await env.ctx.connect(env.slot.reader);
      await held.beginTransaction();
    })();
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // The finaliser hands the release to a thread of its own: wait until its socket to pcscd closed.
    for (let i = 0; i < 100 && fds() > baseline; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(fds(), 'the collected connection was released').toBe(baseline);
    const again = await env.ctx.connect(env.slot.reader);
    const after = await read(again);
    await again.disconnect();
    expect({ warm: after.warm - before.warm, cold: after.cold - before.cold }).toEqual({ warm: 0, cold: 0 });
  });

  // Regression: the finaliser of a dropped connection used to disconnect on a
  // thread of its own, side by side with other connections' calls, and
  // pcsc-lite 1.9 crashed inside SCardDisconnect (its context list is walked
  // unlocked). 16 connections at a time, each call on a bridge thread, make
  // the calls overlap as a busy application would; before the fix most runs
  // of this died of SIGSEGV.
  it('survives collected connections while others connect, transmit and disconnect (process of its own)', { timeout: slow ? 900_000 : 120_000 }, async () => {
    const addon = fileURLToPath(new URL('../../native/build/Release/senv_pcsc.node', import.meta.url));
    const churn = fileURLToPath(new URL('./fixtures/pcsc-churn.cjs', import.meta.url));
    // Asynchronously: the virtual card answering the child's APDUs runs on this process's event loop.
    const r = await runChild(process.execPath, ['--expose-gc', churn, addon, env.slot.reader, '200'], { killMs: slow ? 890_000 : 110_000 });
    expect({ signal: r.signal, code: r.code, stderr: r.err.slice(-500) }).toEqual({ signal: null, code: 0, stderr: '' });
  });

  it('leaks no handles over 10,000 transmits and releases collected connections', { timeout: slow ? 900_000 : 60_000 }, async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const c = await env.ctx.connect(env.slot.reader);
    expect(sw(await c.transmit(SELECT))).toBe('9000');
    const challenge = fromHex('0084000008');
    await c.transmit(challenge);
    const before = fds();
    for (let i = 0; i < 10_000; i++) {
      const r = await c.transmit(challenge);
      if (r.length !== 10) throw new Error(`transmit ${i}: ${r.length} bytes`);
    }
    expect(fds()).toBe(before);
    await c.disconnect();

    // Connections dropped without disconnect() are released by the finaliser:
    // afterwards an exclusive connection is possible again.
    const baseline = fds();
    await (async () => {
      const dropped: PcscCard[] = [];
      for (let i = 0; i < 20; i++) dropped.push(await env.ctx.connect(env.slot.reader));
      expect(fds()).toBeGreaterThan(baseline);
      await expectPcscError(env.ctx.connect(env.slot.reader, { share: 'exclusive' }), 'SCARD_E_SHARING_VIOLATION');
    })();
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // The finaliser hands the release to a thread of its own (never blocking this one), so allow it time.
    for (let i = 0; i < 100 && fds() > baseline; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(fds()).toBe(baseline);
    const x = await env.ctx.connect(env.slot.reader, { share: 'exclusive' });
    expect(sw(await x.transmit(SELECT))).toBe('9000');
    await x.disconnect();
  });
});

// A card that stops answering: the PC/SC bridge's timeouts (a call past its
// deadline rejects, the connection stays stalled until the bridge call
// returns, nothing else reaches pcsc-lite meanwhile), then the PC/SC SE over
// such a card, where Mcs requests answer instead of waiting for good. First
// over a scripted native card (no pcscd), then through pcscd and vpcd with a
// virtual card whose answers can be held back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { fromHex, hex } from '../../src/apdu/apdu.ts';
import { discoverPcscBackends, PcscBackend } from '../../src/backends/pcsc/index.ts';
import { SoftwareBackend } from '../../src/backends/software/index.ts';
import { InvalidInputError, McsEngine, sha256 } from '../../src/index.ts';
import { PcscCard, PcscContext, PcscError } from '../../src/pcsc/index.ts';
import type { NativeAddon, NativeCard } from '../../src/pcsc/native.ts';
import { VpcdCard, type CardHandler } from '../../src/virtual-card/index.ts';
import { b64, body, ok, Session } from '../portable/mcs-kit.ts';
import { InProcessReader, setupPcsc, type PcscTestEnv } from './pcsc-helpers.ts';

const setup = await setupPcsc();
const SELECT = fromHex('00A4040006F053454E560100');
const sw = (r: Uint8Array) => hex(r.subarray(r.length - 2));

async function rejection(p: Promise<unknown>): Promise<PcscError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(PcscError);
  return e as PcscError;
}

/**
 * `run()`'s value, and whether it settled before a timer of `ms` set just before it fired. Timers fire in
 * the order of their deadlines however late a loaded machine runs them: an answer that comes by a
 * shorter timer, or at once, is early, where a wall-clock bound would count the machine's stalls.
 */
async function byTimer<T>(ms: number, run: () => Promise<T>): Promise<{ value: T; early: boolean }> {
  let late = false;
  const timer = setTimeout(() => void (late = true), ms);
  const value = await run();
  clearTimeout(timer);
  return { value, early: !late };
}

/** A settled promise's state, without waiting for a pending one. */
async function state(p: Promise<unknown>): Promise<'pending' | 'settled'> {
  return Promise.race([p.then(() => 'settled' as const, () => 'settled' as const), new Promise<'pending'>((r) => setTimeout(() => r('pending'), 20))]);
}

const CONSTANTS = {
  SCARD_SHARE_EXCLUSIVE: 1, SCARD_SHARE_SHARED: 2, SCARD_SHARE_DIRECT: 3, SCARD_PROTOCOL_T0: 1, SCARD_PROTOCOL_T1: 2, SCARD_PROTOCOL_RAW: 4,
  SCARD_LEAVE_CARD: 0, SCARD_RESET_CARD: 1, SCARD_UNPOWER_CARD: 2, SCARD_EJECT_CARD: 3, SCARD_CTL_CODE_BASE: 0x42000000, INFINITE: 0xffffffff,
};

/** A native connection whose calls settle when the test says; `calls` names each call that reached it. */
function scriptedNative() {
  const calls: string[] = [];
  const pending: { resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  const held = <T>(name: string) => {
    calls.push(name);
    return new Promise<T>((resolve, reject) => pending.push({ resolve: resolve as (v: unknown) => void, reject }));
  };
  const native: NativeCard = {
    transmit: () => held('transmit'),
    reconnect: () => held('reconnect'),
    beginTransaction: () => held('beginTransaction'),
    endTransaction: () => held('endTransaction'),
    status: () => held('status'),
    control: () => held('control'),
    disconnect: (d: number) => held(`disconnect ${d}`),
    protocol: 2,
    connected: true,
  };
  const card = (timeoutMs: number) => PcscCard.open({ constants: CONSTANTS, unrefCall: () => true } as unknown as NativeAddon, native, 'scripted', 2, 3, timeoutMs);
  return { calls, pending, card };
}

describe('PcscCard timeouts over a scripted native connection', () => {
  it('a transmit past its timeout rejects with SCARD_E_TIMEOUT; until the bridge call returns every other call rejects at once with SCARD_E_NOT_READY and reaches nothing', async () => {
    const n = scriptedNative();
    const card = n.card(40);
    const t0 = Date.now();
    const first = card.transmit(Uint8Array.of(0, 0xee, 0, 0));
    // Made during the first call: queued, so it must not wait for the bridge call either.
    const queued = card.transmit(Uint8Array.of(0, 0x84, 0, 0, 8));
    const e = await rejection(first);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(35);
    expect(e.scardName).toBe('SCARD_E_TIMEOUT');
    expect(e.operation).toBe('SCardTransmit');
    expect(e.message).toMatch(/no answer from the card in scripted within 40 ms/);
    expect(card.stalled).toBe(true);
    expect((await rejection(queued)).scardName).toBe('SCARD_E_NOT_READY');
    for (const [op, call] of [
      ['SCardTransmit', () => card.transmit(Uint8Array.of(0, 0x84, 0, 0, 8))],
      ['SCardStatus', () => card.status()],
      ['SCardBeginTransaction', () => card.beginTransaction()],
      ['SCardEndTransaction', () => card.endTransaction()],
      ['SCardReconnect', () => card.reset('warm')],
      ['SCardControl', () => card.control(1)],
    ] as const) {
      const err = await rejection(call());
      expect([err.scardName, err.operation]).toEqual(['SCARD_E_NOT_READY', op]);
      expect(err.message).toMatch(/got no answer within 40 ms and is still outstanding/);
    }
    expect(n.calls).toEqual(['transmit']);
  });

  it('disconnect() waits for the outstanding call, then disconnects; the late answer is zeroized unread; the connection then serves again', async () => {
    const n = scriptedNative();
    const card = n.card(30);
    expect((await rejection(card.transmit(Uint8Array.of(0, 0xee, 0, 0)))).scardName).toBe('SCARD_E_TIMEOUT');
    const gone = card.disconnect('reset');
    expect(await state(gone)).toBe('pending');
    expect(n.calls).toEqual(['transmit']);
    const late = Uint8Array.of(0x11, 0x22, 0x90, 0x00);
    n.pending[0]!.resolve(late);
    await new Promise((r) => setTimeout(r, 0));
    expect(Array.from(late)).toEqual([0, 0, 0, 0]);
    expect(card.stalled).toBe(false);
    expect(n.calls).toEqual(['transmit', 'disconnect 1']);
    n.pending[1]!.resolve(undefined);
    await gone;
    // The stall is over: the next call goes to the bridge again and its answer comes back.
    const next = card.transmit(Uint8Array.of(0, 0x84, 0, 0, 8));
    await new Promise((r) => setTimeout(r, 0));
    n.pending[2]!.resolve(Uint8Array.of(0x90, 0x00));
    expect(hex(await next)).toBe('9000');
  });

  it('a late failure ends the stall as well; answers and failures within the timeout pass as they are, typed', async () => {
    const n = scriptedNative();
    const card = n.card(1000);
    const fine = card.transmit(Uint8Array.of(0, 0x84, 0, 0, 8));
    await new Promise((r) => setTimeout(r, 0));
    n.pending[0]!.resolve(Uint8Array.of(1, 2, 0x90, 0));
    expect(hex(await fine)).toBe('01029000');
    const failing = card.transmit(Uint8Array.of(0, 0x84, 0, 0, 8));
    await new Promise((r) => setTimeout(r, 0));
    n.pending[1]!.reject(Object.assign(new Error('x'), { scode: 0x80100069, operation: 'SCardTransmit' }));
    expect((await rejection(failing)).scardName).toBe('SCARD_W_REMOVED_CARD');
    expect(card.stalled).toBe(false);

    // A reader command past its timeout: its late answer is zeroized too.
    const ctl = n.card(30);
    expect((await rejection(ctl.control(1, Uint8Array.of(5)))).operation).toBe('SCardControl');
    const lateCtl = Uint8Array.of(7, 7);
    n.pending[2]!.resolve(lateCtl);
    await new Promise((r) => setTimeout(r, 0));
    expect(Array.from(lateCtl)).toEqual([0, 0]);
    expect(ctl.stalled).toBe(false);

    const short = n.card(30);
    expect((await rejection(short.reset('cold'))).operation).toBe('SCardReconnect');
    expect(short.stalled).toBe(true);
    n.pending[3]!.reject(Object.assign(new Error('x'), { scode: 0x80100069, operation: 'SCardReconnect' }));
    await new Promise((r) => setTimeout(r, 0));
    expect(short.stalled).toBe(false);
  });

  it('the transaction calls and status() are bounded too; close() returns after the timeout when pcscd holds the disconnect', async () => {
    const n = scriptedNative();
    const card = n.card(30);
    const e = await rejection(card.beginTransaction());
    expect([e.scardName, e.operation]).toEqual(['SCARD_E_TIMEOUT', 'SCardBeginTransaction']);
    expect(card.stalled).toBe(true);
    const s = n.card(30);
    expect((await rejection(s.status())).operation).toBe('SCardStatus');

    // A backend over an in-process card whose disconnect never returns (a pcscd that stopped answering).
    const reader = new InProcessReader();
    const b = reader.backend(undefined, { commandTimeoutMs: 150 });
    await b.open();
    expect(await b.random(1, 8)).toHaveLength(8);
    const inner = (reader as unknown as { context: { connect: () => Promise<{ disconnect: () => Promise<void> }> } }).context;
    const card0 = await inner.connect();
    let disconnects = 0;
    card0.disconnect = () => {
      disconnects++;
      return new Promise(() => undefined);
    };
    const t0 = Date.now();
    // By its 150 ms timer: before one of 2 s.
    expect((await byTimer(2_000, () => b.close())).early).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(disconnects).toBe(1);
  });

  it('PcscBackend and discoverPcscBackends check their options: reader, seType, share, context, log and commandTimeoutMs', async () => {
    const bad: [unknown, RegExp][] = [
      [null, /must name the reader/],
      ['Virtual PCD 00 00', /must be an object of options, got string/],
      [{}, /reader must be a non-empty reader name/],
      [{ reader: '' }, /reader must be a non-empty reader name/],
      [{ reader: 'A\0B' }, /must not contain NUL/],
      [{ reader: 'r', seType: 4 }, /seType must be 1 \(UICC\) or 2/],
      [{ reader: 'r', share: 'open' }, /share must be 'exclusive', 'shared' or 'direct', got a string of 4 characters$/],
      [{ reader: 'r', context: {} }, /context must be a PcscContext or an object with connect\(\)/],
      [{ reader: 'r', log: 'yes' }, /log must be a function/],
      [{ reader: 'r', commandTimeoutMs: 0 }, /commandTimeoutMs must be a number of milliseconds above 0, or Infinity, got 0/],
      [{ reader: 'r', commandTimeoutMs: -5 }, /commandTimeoutMs .* got -5/],
      [{ reader: 'r', commandTimeoutMs: Number.NaN }, /got NaN/],
      [{ reader: 'r', commandTimeoutMs: '500' }, /got a string of 3 characters$/],
      // A misspelt option would otherwise leave its default in silence (30 s where 500 ms was meant).
      [{ reader: 'r', comandTimeoutMs: 500 }, /^unknown option 'comandTimeoutMs' in (PcscBackend|discoverPcscBackends) options \(known: seType, context, share, commandTimeoutMs, log/],
    ];
    for (const [opts, msg] of bad) {
      expect(() => new PcscBackend(opts as never), JSON.stringify(opts)).toThrow(InvalidInputError);
      expect(() => new PcscBackend(opts as never), JSON.stringify(opts)).toThrow(msg);
      // Discovery names no reader; the rest is refused as the backend refuses it, before pcscd is asked.
      if (opts === null || typeof opts !== 'object' || !('reader' in opts) || (opts as { reader: string }).reader !== 'r') continue;
      const { reader: _, ...rest } = opts as { reader: string };
      const found = discoverPcscBackends(rest as never);
      await expect(found, JSON.stringify(rest)).rejects.toThrow(InvalidInputError);
      await expect(found, JSON.stringify(rest)).rejects.toThrow(msg);
    }
    await expect(discoverPcscBackends('Virtual PCD 00 00' as never)).rejects.toThrow(/discoverPcscBackends options must be an object of options, got string/);
    for (const commandTimeoutMs of [1, 0.5, Infinity, 1e12]) expect(() => new PcscBackend({ reader: 'r', commandTimeoutMs })).not.toThrow();
  });
});

/** A senv virtual card in a vpcd slot whose answers are held back while `hold` is set. */
function holdingCard(env: PcscTestEnv) {
  const inner = env.newCard();
  const held: (() => void)[] = [];
  const control = { hold: false, held };
  const handler: CardHandler = {
    atr: () => inner.os.atr(),
    power: (e) => inner.os.power(e),
    apdu: (c) => {
      if (!control.hold) return inner.os.apdu(c);
      return new Promise<Uint8Array>((resolve) => held.push(() => resolve(inner.os.apdu(c))));
    },
  };
  const vpcd = new VpcdCard(handler, { port: env.slot.port });
  return {
    vpcd, control,
    /** Lets the held commands be answered, and the next ones at once. */
    release() {
      control.hold = false;
      for (const go of held.splice(0)) go();
    },
  };
}

describe.skipIf(!setup.ok)(`a card that stops answering, through pcscd and vpcd${setup.ok ? '' : ` (skipped: ${setup.reason})`}`, () => {
  let env: PcscTestEnv;
  let card: ReturnType<typeof holdingCard>;

  beforeAll(async () => {
    if (!setup.ok) return;
    env = setup.env;
    card = holdingCard(env);
    await card.vpcd.insert();
    await env.waitFor((s) => s.present);
  });
  afterAll(async () => {
    if (!setup.ok) return;
    card.release();
    await card.vpcd.remove();
    await env.teardown();
  });

  it('checks the timeout before anything reaches pcscd', async () => {
    for (const timeoutMs of [0, -1, Number.NaN, '100']) {
      await expect(env.ctx.connect(env.slot.reader, { timeoutMs: timeoutMs as number })).rejects.toThrow(/timeoutMs must be a number of milliseconds above 0/);
      await expect(PcscContext.establish({ timeoutMs: timeoutMs as number })).rejects.toThrow(InvalidInputError);
    }
    await expect(PcscContext.establish(300 as never)).rejects.toThrow(/establish options must be an object/);
    await expect(PcscContext.establish({ timeout: 100 } as never)).rejects.toThrow(/^unknown option 'timeout' in establish options \(known: timeoutMs\)$/);
    await expect(env.ctx.connect(env.slot.reader, { timeout: 100 } as never)).rejects.toThrow(/^unknown option 'timeout' in connect options \(known: share, protocols, timeoutMs\)$/);
  });

  it('a transmit without an answer times out; a shared connect behind it times out too, and the connection it made late is given back', async () => {
    const a = await env.ctx.connect(env.slot.reader, { share: 'shared', timeoutMs: 300 });
    try {
      expect(sw(await a.transmit(SELECT))).toBe('9000');
      card.control.hold = true;
      const t0 = Date.now();
      const e = await rejection(a.transmit(SELECT));
      const waited = Date.now() - t0;
      expect(e.scardName).toBe('SCARD_E_TIMEOUT');
      expect(waited).toBeGreaterThanOrEqual(290);
      expect(waited).toBeLessThan(10_000);
      expect(a.stalled).toBe(true);
      expect((await rejection(a.status())).scardName).toBe('SCARD_E_NOT_READY');
      // pcscd holds a shared connect to the reader while its card's command is outstanding.
      // The context's timeout is its connects' too.
      const other = await PcscContext.establish({ timeoutMs: 300 });
      try {
        const c = await rejection(other.connect(env.slot.reader, { share: 'shared' }));
        expect([c.scardName, c.operation]).toEqual(['SCARD_E_TIMEOUT', 'SCardConnect']);
        expect(c.message).toMatch(/within 300 ms/);
        // The context's other calls go on meanwhile.
        expect(await other.listReaders()).toContain(env.slot.reader);
        const gone = a.disconnect('leave');
        expect(await state(gone)).toBe('pending');
        card.release();
        await gone;
        // Both connections are given back: the late one too, or this exclusive connect would be refused
        // (SCARD_E_NOT_READY until the late connect has returned, SHARING_VIOLATION until it is given back).
        // (The polls here and below wait up to 20 s for what either comes or never does: a loaded pcscd may be slow.)
        const deadline = Date.now() + 20_000;
        let b: PcscCard | undefined;
        while (!b) {
          try {
            b = await other.connect(env.slot.reader, { share: 'exclusive', timeoutMs: 2_000 });
          } catch (err) {
            const name = (err as PcscError).scardName;
            if ((name !== 'SCARD_E_SHARING_VIOLATION' && name !== 'SCARD_E_NOT_READY') || Date.now() > deadline) throw err;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        expect(sw(await b.transmit(SELECT))).toBe('9000');
        await b.disconnect();
      } finally {
        await other.release();
      }
    } finally {
      card.release();
      await a.disconnect().catch(() => undefined);
    }
  });

  for (const share of ['exclusive', 'shared'] as const) {
    it(`over Mcs (${share}): a request to a card that stops answering fails (5000) after commandTimeoutMs, and the connection is reset; while the command is outstanding the next fail at once and other SEs serve; once the card answers the SE serves again, keys intact`, async () => {
      const pc = new PcscBackend({ reader: env.slot.reader, share, commandTimeoutMs: 400 });
      const engine = await McsEngine.create({ backends: [pc, new SoftwareBackend()] });
      try {
        const [pcId, swId] = engine.seIds as [string, string];
        const s = new Session(engine, 'CAE1', pcId);
        const sw2 = new Session(engine, 'CAE1', swId);
        await s.register();
        await sw2.register();
        const key = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
        const msg = new TextEncoder().encode('held back');
        const abc = b64(sha256(new TextEncoder().encode('abc')));
        const want = b64(createHmac('sha256', key).update(msg).digest());
        const mac = async (what: string) => {
          ok(await s.update(s.path('reg', 'm'), { 'senv:Sgn': { msg: b64(msg) } }), 2004, `msg ${what}`);
          expect(body(ok(await s.retrieve(s.path('reg', 'm', 'cSgn')), 2000, `MAC ${what}`), 'senv:Sgn').Sgn).toBe(want);
        };
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(key) } }), 2001, 'HMAC key on the card');
        await mac('before');
        for (const x of [s, sw2]) ok(await x.create(x.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(new TextEncoder().encode('abc')) } }), 2001, 'hash');
        const timesOut = async () => {
          card.control.hold = true;
          const t0 = Date.now();
          const r = await s.retrieve(s.path('reg', 'h', 'cHsh'));
          expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
          expect([r.rsc, (r.pc as Record<string, unknown>)['m2m:dbg']]).toEqual([5000, 'internal error (ERR_PCSC SCARD_E_TIMEOUT)']);
          expect(JSON.stringify(r)).not.toMatch(/at .*\.ts:\d+/);
        };

        // A late answer that comes before the next request: the connection it came on is reset anyway.
        let warm = card.vpcd.counters.warm;
        await timesOut();
        card.release();
        const resetSeen = Date.now() + 20_000;
        while (card.vpcd.counters.warm === warm && Date.now() < resetSeen) await new Promise((r) => setTimeout(r, 20));
        expect(card.vpcd.counters.warm).toBeGreaterThan(warm);
        expect(body(ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'hash after a late answer'), 'senv:Hsh').Hv).toBe(abc);

        // No second command goes to the card while the first is outstanding: the next requests fail at once.
        warm = card.vpcd.counters.warm;
        await timesOut();
        for (let i = 0; i < 3; i++) {
          // At once: before a timer shorter than the 400 ms a command waits for the card.
          const { value: r, early } = await byTimer(300, () => s.retrieve(s.path('reg', 'm', 'cSgn')));
          expect([r.rsc, (r.pc as Record<string, unknown>)['m2m:dbg']]).toEqual([5000, 'internal error (ERR_PCSC SCARD_E_NOT_READY)']);
          expect(early, 'answered before a 300 ms timer').toBe(true);
        }
        expect(card.control.held).toHaveLength(1);
        expect(body(ok(await sw2.retrieve(sw2.path('reg', 'h', 'cHsh')), 2000, 'software SE meanwhile'), 'senv:Hsh').Hv).toBe(abc);

        card.release();
        const deadline = Date.now() + 20_000;
        let r = await s.retrieve(s.path('reg', 'h', 'cHsh'));
        while (r.rsc !== 2000 && Date.now() < deadline) {
          await new Promise((res) => setTimeout(res, 50));
          r = await s.retrieve(s.path('reg', 'h', 'cHsh'));
        }
        expect(body(ok(r, 2000, 'hash after the stall'), 'senv:Hsh').Hv).toBe(abc);
        expect(card.vpcd.counters.warm).toBeGreaterThan(warm);
        await mac('after the stall');
      } finally {
        card.release();
        await engine.close();
      }
    });
  }

  it('an [SEReboot] while a command past its timeout is outstanding waits for it (commandTimeoutMs at most), then resets the card: the SE serves on; a card that outlasts the wait leaves it out of service, as before', async () => {
    // The card answers 200 ms into the reboot's wait: 2 s of timeout leave a loaded machine's pcscd and
    // vpcd time to carry the answer and the resets before the wait would have run out.
    const pc = new PcscBackend({ reader: env.slot.reader, commandTimeoutMs: 2_000 });
    const engine = await McsEngine.create({ backends: [pc] });
    try {
      const s = new Session(engine, 'CREBOOT');
      await s.register();
      const key = Uint8Array.from({ length: 32 }, (_, i) => 3 * i);
      const msg = new TextEncoder().encode('through a reboot');
      const want = b64(createHmac('sha256', key).update(msg).digest());
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(key), msg: b64(msg) } }), 2001, 'HMAC key on the card');
      const reboot = () => s.update(s.path('reg', 'warmReset'), { 'senv:Srbt': { rb: true } });
      const timesOut = async () => {
        card.control.hold = true;
        const r = await s.retrieve(s.path('reg', 'm', 'cSgn'));
        expect([r.rsc, (r.pc as Record<string, unknown>)['m2m:dbg']]).toEqual([5000, 'internal error (ERR_PCSC SCARD_E_TIMEOUT)']);
      };

      await timesOut();
      const warm = card.vpcd.counters.warm;
      setTimeout(() => card.release(), 200);
      // Once the card answered: before a timer as long as the wait's bound, set ahead of the reboot's.
      const { value: rebooted, early } = await byTimer(2_000, reboot);
      ok(rebooted, 2004, 'the reboot, once the card answered');
      expect(early, 'the reboot did not wait out commandTimeoutMs').toBe(true);
      // The reset disconnect after the late answer, then the reboot's own.
      expect(card.vpcd.counters.warm).toBe(warm + 2);
      expect(body(ok(await s.retrieve(s.path('reg', 'm', 'cSgn')), 2000, 'MAC after the reboot'), 'senv:Sgn').Sgn).toBe(want);

      await timesOut();
      const r = await reboot();
      expect([r.rsc, (r.pc as Record<string, unknown>)['m2m:dbg']]).toEqual([5000, 'SE reboot failed (ERR_PCSC SCARD_E_NOT_READY): the request\'s change took effect, the SE is out of service']);
      card.release();
      const back = Date.now() + 20_000;
      let again = await reboot();
      while (again.rsc !== 2004 && Date.now() < back) {
        await new Promise((res) => setTimeout(res, 50));
        again = await reboot();
      }
      ok(again, 2004, 'a reboot once the card answered brings it back');
      expect(body(ok(await s.retrieve(s.path('reg', 'm', 'cSgn')), 2000, 'MAC after the second reboot'), 'senv:Sgn').Sgn).toBe(want);
    } finally {
      card.release();
      await engine.close();
    }
  });

  it('close() during a stall returns without waiting for the card; the reset disconnect follows the late answer', async () => {
    // close() still releases the context through pcscd, bounded by commandTimeoutMs as a wait for the
    // card would be: 2 s leave that release time on a loaded machine, well before the bound.
    const pc = new PcscBackend({ reader: env.slot.reader, commandTimeoutMs: 2_000 });
    await pc.open();
    try {
      expect(await pc.random(1, 8)).toHaveLength(8);
      const warm = card.vpcd.counters.warm;
      card.control.hold = true;
      expect((await rejection(pc.random(1, 8))).scardName).toBe('SCARD_E_TIMEOUT');
      expect((await byTimer(1_500, () => pc.close())).early, 'close() did not wait out commandTimeoutMs').toBe(true);
      expect(card.vpcd.counters.warm).toBe(warm);
      card.release();
      const seen = Date.now() + 20_000;
      while (card.vpcd.counters.warm === warm && Date.now() < seen) await new Promise((r) => setTimeout(r, 20));
      expect(card.vpcd.counters.warm).toBe(warm + 1);
    } finally {
      card.release();
      await pc.close();
    }
  });
});

// Edges of the PC/SC timeouts that pcsc-timeouts.test.ts and
// pcsc-silent-pcscd.test.ts leave open: what a call answered in time leaves
// behind, overlapping establishes that both outlive their timeout, a release
// under a stalled or running call, the repeated cancel, the command copies
// the bridge was handed, a connect on the caller's own context, the timer
// of the backend's close(), and which calls stop keeping the process alive
// (unrefCall). No pcscd: the addon is a scripted stand-in, so
// that each bridge call settles exactly when the test says (and the file runs
// where PC/SC does not).
import { describe, expect, it, vi } from 'vitest';
import { discoverPcscBackends, PcscBackend } from '../../src/backends/pcsc/index.ts';
import { PcscCard, PcscContext, PcscError, ReaderFlag } from '../../src/pcsc/index.ts';
import { InvalidInputError } from '../../src/core/errors.ts';
import type { NativeAddon, NativeCard, NativeMonitor } from '../../src/pcsc/native.ts';
import { InProcessReader } from './pcsc-helpers.ts';

const CONSTANTS = {
  SCARD_SHARE_EXCLUSIVE: 1, SCARD_SHARE_SHARED: 2, SCARD_SHARE_DIRECT: 3, SCARD_PROTOCOL_T0: 1, SCARD_PROTOCOL_T1: 2, SCARD_PROTOCOL_RAW: 4,
  SCARD_LEAVE_CARD: 0, SCARD_RESET_CARD: 1, SCARD_UNPOWER_CARD: 2, SCARD_EJECT_CARD: 3, SCARD_CTL_CODE_BASE: 0x42000000, INFINITE: 0xffffffff,
};

/** Every bridge call of the stand-in addon, by name, and how to settle it. */
const bridge = vi.hoisted(() => ({
  calls: [] as string[],
  pending: [] as { name: string; promise: Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void }[],
  /** What the bridge was handed to send (transmit, control). */
  sent: [] as Uint8Array[],
  cancels: 0,
  /** The pending calls let go of (unrefCall): they no longer keep the process alive. */
  letGo: [] as string[],
  /** The timeout each status-change wait was handed. */
  waitTimeouts: [] as number[],
  /** What each connect was handed: reader, share mode, protocol mask. */
  connects: [] as [string, number, number][],
}));

function held<T>(name: string): Promise<T> {
  bridge.calls.push(name);
  let settle!: Pick<(typeof bridge.pending)[number], 'resolve' | 'reject'>;
  const promise = new Promise<T>((resolve, reject) => (settle = { resolve: resolve as (v: unknown) => void, reject }));
  bridge.pending.push({ name, promise, ...settle });
  return promise;
}

/** The stand-in addon: the bridge calls above, and unrefCall as the bridge answers it. */
function addon(): NativeAddon {
  return {
    Monitor: { establish: () => held('establish') },
    constants: CONSTANTS,
    pnpReader: '\\\\?PnP?\\Notification',
    unrefCall: (call) => {
      const p = bridge.pending.find((x) => x.promise === call);
      if (p) bridge.letGo.push(p.name);
      return p !== undefined;
    },
    endForExit: () => undefined,
  };
}

/** Settles the oldest pending call named `name`. */
function answer(name: string, value?: unknown): void {
  const i = bridge.pending.findIndex((p) => p.name === name);
  if (i < 0) throw new Error(`no pending ${name}: ${JSON.stringify(bridge.pending.map((p) => p.name))}`);
  bridge.pending.splice(i, 1)[0]!.resolve(value);
}

function fail(name: string, scode: number): void {
  const i = bridge.pending.findIndex((p) => p.name === name);
  if (i < 0) throw new Error(`no pending ${name}`);
  bridge.pending.splice(i, 1)[0]!.reject(Object.assign(new Error('x'), { scode, operation: name }));
}

function nativeCard(tag: string): NativeCard {
  return {
    transmit: (command: Uint8Array) => {
      bridge.sent.push(command);
      return held(`${tag} transmit`);
    },
    reconnect: () => held(`${tag} reconnect`),
    beginTransaction: () => held(`${tag} beginTransaction`),
    endTransaction: () => held(`${tag} endTransaction`),
    status: () => held(`${tag} status`),
    control: (_code: number, data: Uint8Array) => {
      bridge.sent.push(data);
      return held(`${tag} control`);
    },
    disconnect: (d: number) => held(`${tag} disconnect ${d}`),
    protocol: 2,
    connected: true,
  };
}

function monitor(tag: string): NativeMonitor {
  return {
    listReaders: () => held(`${tag} listReaders`),
    getStatusChange: (_states: unknown, timeout: number) => {
      bridge.waitTimeouts.push(timeout);
      return held(`${tag} getStatusChange`);
    },
    cancel: () => {
      bridge.cancels++;
    },
    connect: (reader: string, share: number, protocols: number) => {
      bridge.connects.push([reader, share, protocols]);
      return held(`${tag} connect`);
    },
    release: () => held(`${tag} release`),
  };
}

vi.mock('../../src/pcsc/native.ts', async (original) => ({
  ...(await original<typeof import('../../src/pcsc/native.ts')>()),
  loadNative: addon,
}));

const tick = () => new Promise((r) => setTimeout(r, 0));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Timers that keep the process alive. */
const timers = () => process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length;

async function rejection(p: Promise<unknown>): Promise<PcscError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(PcscError);
  return e as PcscError;
}

function reset(): void {
  bridge.calls.length = 0;
  bridge.sent.length = 0;
  bridge.cancels = 0;
  bridge.letGo.length = 0;
  bridge.waitTimeouts.length = 0;
  bridge.connects.length = 0;
  expect(bridge.pending.map((p) => p.name), 'a call left pending by the previous test').toEqual([]);
}

/** A context over a stand-in monitor named `tag`, established at once. */
async function context(tag: string, timeoutMs?: number): Promise<PcscContext> {
  const made = PcscContext.establish(timeoutMs === undefined ? {} : { timeoutMs });
  await tick();
  answer('establish', monitor(tag));
  return made;
}

/** Releases a context over the stand-in monitor 'm', pcscd answering at once. */
async function released(ctx: PcscContext): Promise<void> {
  const done = ctx.release();
  await tick();
  answer('m release');
  await done;
}

describe('PC/SC timeouts over a scripted bridge', () => {
  it('a call answered within its timeout is the caller\'s: nothing disposes of it once the timeout has passed, and no timer outlives it', async () => {
    reset();
    const card = PcscCard.open(addon(), nativeCard('c'), 'scripted', 2, 3, 30);
    // A finite timeout still runs out (30 s in the backend by default): a timer left behind holds the process that long.
    const before = timers();
    const sent = card.transmit(Uint8Array.of(0, 0x84, 0, 0, 8));
    await tick();
    answer('c transmit', Uint8Array.of(1, 2, 0x90, 0));
    const r = await sent;
    expect(timers()).toBe(before);
    const failing = card.status();
    await tick();
    fail('c status', 0x80100069);
    expect((await rejection(failing)).scardName).toBe('SCARD_W_REMOVED_CARD');
    expect(timers()).toBe(before);

    const ctx = await context('m', 30);
    const connecting = ctx.connect('reader');
    await tick();
    answer('m connect', nativeCard('d'));
    await connecting;
    // A wait is bounded by its own timeout plus the context's (pcscd's answer before the wait), not by the context's alone.
    const waiting = ctx.getStatusChange([{ reader: 'r' }], 100);
    await sleep(80);
    answer('m getStatusChange', [{ reader: 'r', eventState: 0x10, atr: new Uint8Array(0) }]);
    expect((await waiting).map((s) => s.empty)).toEqual([true]);
    // Past every timeout: the answer, the context and the connection made in time are all left alone.
    expect(Array.from(r)).toEqual([1, 2, 0x90, 0]);
    expect(card.stalled).toBe(false);
    expect(ctx.stalled).toBe(false);
    expect(bridge.calls).toEqual(['c transmit', 'c status', 'establish', 'm connect', 'm getStatusChange']);
    await released(ctx);
  });

  it('two establishes that both outlive their timeout: establish() stays refused until the last of them has returned, and each late context is released', async () => {
    reset();
    // Both start before either timed out, so neither was refused.
    const first = PcscContext.establish({ timeoutMs: 30 });
    const second = PcscContext.establish({ timeoutMs: 60 });
    expect((await rejection(first)).scardName).toBe('SCARD_E_TIMEOUT');
    expect((await rejection(second)).scardName).toBe('SCARD_E_TIMEOUT');
    answer('establish', monitor('late1'));
    await tick();
    expect(bridge.calls).toContain('late1 release');
    const refused = await rejection(PcscContext.establish({ timeoutMs: 30 }));
    expect(refused.scardName).toBe('SCARD_E_NOT_READY');
    expect(refused.message).toMatch(/within 60 ms and is still outstanding/);
    expect(bridge.calls.filter((c) => c === 'establish')).toHaveLength(2);
    answer('establish', monitor('late2'));
    await tick();
    expect(bridge.calls).toContain('late2 release');
    answer('late1 release');
    answer('late2 release');
    const ctx = await context('m', 30);
    await released(ctx);
  });

  it('release() of a stalled context releases it only once the outstanding call has returned, in the background past its own timeout', async () => {
    reset();
    const ctx = await context('m', 30);
    const e = await rejection(ctx.listReaders());
    expect([e.scardName, e.operation]).toEqual(['SCARD_E_TIMEOUT', 'SCardListReaders']);
    expect(ctx.stalled).toBe(true);
    // A connect makes a pcsc-lite context of its own, whose establish would wait on the silent pcscd too.
    const c = await rejection(ctx.connect('r'));
    expect([c.scardName, c.operation]).toEqual(['SCARD_E_NOT_READY', 'SCardConnect']);
    const r = await rejection(ctx.release());
    expect([r.scardName, r.operation]).toEqual(['SCARD_E_TIMEOUT', 'SCardReleaseContext']);
    // Released under a call still inside pcsc-lite, the library would read freed memory.
    expect(bridge.calls).toEqual(['establish', 'm listReaders']);
    answer('m listReaders', []);
    await tick();
    expect(ctx.stalled).toBe(false);
    expect(bridge.calls).toEqual(['establish', 'm listReaders', 'm release']);
    answer('m release');
  });

  it('a call that outlives its timeout stops keeping the process alive (let go of), also a wait, a connect and a release started after its timeout; one answered in time never is', async () => {
    reset();
    const card = PcscCard.open(addon(), nativeCard('c'), 'scripted', 2, 3, 30);
    const inTime = card.status();
    await tick();
    answer('c status', { reader: 'scripted', state: 0x34, protocol: 2, atr: new Uint8Array(0) });
    await inTime;
    expect(bridge.letGo).toEqual([]);
    expect((await rejection(card.transmit(Uint8Array.of(0, 0x84, 0, 0, 8)))).scardName).toBe('SCARD_E_TIMEOUT');
    expect(bridge.letGo).toEqual(['c transmit']);
    answer('c transmit', Uint8Array.of(0x90, 0));

    expect((await rejection(PcscContext.establish({ timeoutMs: 30 }))).scardName).toBe('SCARD_E_TIMEOUT');
    expect(bridge.letGo).toEqual(['c transmit', 'establish']);
    answer('establish', monitor('late'));
    await tick();
    answer('late release');

    const ctx = await context('m', 30);
    // Bounded by the wait asked for plus the timeout.
    expect((await rejection(ctx.getStatusChange([{ reader: 'scripted' }], 20))).scardName).toBe('SCARD_E_TIMEOUT');
    expect(bridge.letGo).toEqual(['c transmit', 'establish', 'm getStatusChange']);
    answer('m getStatusChange', [{ reader: 'scripted', eventState: 0x22, atr: new Uint8Array(0) }]);
    await tick();
    expect((await rejection(ctx.connect('scripted'))).scardName).toBe('SCARD_E_TIMEOUT');
    expect(bridge.letGo.slice(3)).toEqual(['m connect']);
    answer('m connect', nativeCard('late'));
    await tick();
    answer('late disconnect 0');
    // The release waits for the stalled call; started after its own timeout, it starts let go of.
    expect((await rejection(ctx.listReaders())).scardName).toBe('SCARD_E_TIMEOUT');
    expect((await rejection(ctx.release())).scardName).toBe('SCARD_E_TIMEOUT');
    expect(bridge.letGo.slice(4)).toEqual(['m listReaders']);
    answer('m listReaders', []);
    await tick();
    expect(bridge.letGo.slice(5)).toEqual(['m release']);
    answer('m release');
    // A release pcscd does not answer.
    const other = await context('n', 30);
    expect((await rejection(other.release())).scardName).toBe('SCARD_E_TIMEOUT');
    expect(bridge.letGo.slice(6)).toEqual(['n release']);
    answer('n release');
  });

  it('the copy of a command handed to the bridge is zeroized once the call is over, answered or not; the caller\'s bytes are left alone', async () => {
    reset();
    const card = PcscCard.open(addon(), nativeCard('c'), 'scripted', 2, 3, 30);
    // A command may carry a key (an import): no copy of it may outlive the exchange.
    const apdu = Uint8Array.of(0x80, 0xda, 1, 2, 3, 0xaa, 0xbb, 0xcc);
    const answered = card.transmit(apdu);
    await tick();
    expect(Array.from(bridge.sent[0]!)).toEqual(Array.from(apdu));
    answer('c transmit', Uint8Array.of(0x90, 0));
    await answered;
    expect(Array.from(bridge.sent[0]!)).toEqual(new Array(apdu.length).fill(0));
    expect(apdu[5]).toBe(0xaa);

    const data = Uint8Array.of(9, 8, 7);
    expect((await rejection(card.control(1, data))).scardName).toBe('SCARD_E_TIMEOUT');
    expect(Array.from(bridge.sent[1]!)).toEqual([0, 0, 0]);
    expect(Array.from(data)).toEqual([9, 8, 7]);
    answer('c control', Uint8Array.of(0x90, 0));
    await tick();

    const silent = PcscCard.open(addon(), nativeCard('d'), 'scripted', 2, 3, 30);
    expect((await rejection(silent.transmit(apdu))).scardName).toBe('SCARD_E_TIMEOUT');
    expect(Array.from(bridge.sent[2]!)).toEqual(new Array(apdu.length).fill(0));
    answer('d transmit', Uint8Array.of(0x90, 0));
    await tick();
  });

  it('cancel() is repeated while the running wait has not returned (one that lands before pcsc-lite set the wait up is lost), and stops once it has', async () => {
    reset();
    const ctx = await context('m');
    const wait = ctx.getStatusChange([{ reader: 'reader' }]);
    await tick();
    ctx.cancel();
    expect(bridge.cancels).toBe(1);
    // Repeated (every 20 ms): two more, however late a loaded machine runs the interval (an interval
    // that waits behind a stall fires once, not once per period missed). Without the repeat, none come.
    for (const end = Date.now() + 20_000; bridge.cancels < 3 && Date.now() < end;) await sleep(10);
    expect(bridge.cancels).toBeGreaterThanOrEqual(3);
    fail('m getStatusChange', 0x80100002);
    expect((await rejection(wait)).scardName).toBe('SCARD_E_CANCELLED');
    await sleep(50);
    const after = bridge.cancels;
    await sleep(70);
    expect(bridge.cancels).toBe(after);
    await released(ctx);
  });

  it('release() during a wait cancels it and releases the context only once the wait has returned; a call queued behind it never reaches the bridge', async () => {
    reset();
    const ctx = await context('m');
    const wait = ctx.getStatusChange([{ reader: 'reader' }]);
    const queued = ctx.listReaders();
    await tick();
    const releasing = ctx.release();
    await tick();
    // The wait's call is still inside pcsc-lite: releasing its context now would free memory that call reads.
    expect(bridge.calls).toEqual(['establish', 'm getStatusChange']);
    // Not cancelled, an endless wait would hold the release for good.
    expect(bridge.cancels).toBeGreaterThan(0);
    fail('m getStatusChange', 0x80100002);
    expect((await rejection(wait)).scardName).toBe('SCARD_E_CANCELLED');
    await tick();
    expect(bridge.calls).toEqual(['establish', 'm getStatusChange', 'm release']);
    expect((await rejection(queued)).scardName).toBe('SCARD_E_INVALID_HANDLE');
    answer('m release');
    await releasing;
    expect((await rejection(ctx.listReaders())).scardName).toBe('SCARD_E_INVALID_HANDLE');
    expect(bridge.calls).toHaveLength(3);
  });

  it('a backend on the caller\'s context, which has no timeout of its own, still bounds its connect by commandTimeoutMs', async () => {
    reset();
    const ctx = await context('m');
    const pc = new PcscBackend({ reader: 'reader', context: ctx, commandTimeoutMs: 40 });
    // Unbounded, the connect would wait for as long as pcscd holds it: fail here instead of at the test's timeout.
    const unbounded = sleep(1_000).then(() => new Error('the connect is still waiting after 1 s'));
    const e = await Promise.race([rejection(pc.open()), unbounded]);
    expect(e).toBeInstanceOf(PcscError);
    expect([(e as PcscError).scardName, (e as PcscError).operation]).toEqual(['SCARD_E_TIMEOUT', 'SCardConnect']);
    answer('m connect', nativeCard('late'));
    await tick();
    expect(bridge.calls).toEqual(['establish', 'm connect', 'late disconnect 0']);
    answer('late disconnect 0');
    await pc.close();
    await released(ctx);
  });

  it('the backend\'s close() leaves no timer behind, and without a timeout it waits for the disconnect however long it takes', async () => {
    reset();
    const reader = new InProcessReader();
    const b = reader.backend(undefined, { commandTimeoutMs: 60_000 });
    await b.open();
    const before = timers();
    await b.close();
    expect(timers()).toBe(before);

    const slow = new InProcessReader();
    const inner = (slow as unknown as { context: { connect: () => Promise<{ disconnect: () => Promise<void> }> } }).context;
    const card0 = await inner.connect();
    let disconnected = false;
    card0.disconnect = () => sleep(50).then(() => {
      disconnected = true;
    });
    const forever = slow.backend(undefined, { commandTimeoutMs: Infinity });
    await forever.open();
    await forever.close();
    expect(disconnected).toBe(true);
  });
  // Review findings of the thirtieth stop (a fake pcscd and stand-in addons).
  it('release() with a wait whose cancel a silent pcscd never gets: SCARD_E_TIMEOUT after timeoutMs, and the context released once the wait returned', async () => {
    reset();
    const ctx = await context('m', 100);
    const wait = ctx.getStatusChange([{ reader: 'reader' }]);
    await tick();
    // By its 100 ms timeout: before a 1 s timer set ahead of it (timers fire in deadline order however
    // late a loaded machine runs them; a wall-clock bound would count the machine's stalls).
    let late = false;
    const lateTimer = setTimeout(() => void (late = true), 1000);
    const e = await rejection(ctx.release());
    clearTimeout(lateTimer);
    expect(e.scardName).toBe('SCARD_E_TIMEOUT');
    expect(late, 'rejected after a 1 s timer').toBe(false);
    expect(bridge.calls).toEqual(['establish', 'm getStatusChange']);
    fail('m getStatusChange', 0x80100002);
    expect((await rejection(wait)).scardName).toBe('SCARD_E_CANCELLED');
    await sleep(30);
    expect(bridge.calls).toEqual(['establish', 'm getStatusChange', 'm release']);
    expect(bridge.letGo).toContain('m release');
    answer('m release');
    await tick();
  });

  it('a beginTransaction() granted after its timeout is ended at once, while the connection is still stalled', async () => {
    reset();
    const card = PcscCard.open(addon(), nativeCard('c'), 'scripted', 2, 3, 30);
    expect((await rejection(card.transaction(async () => 1))).scardName).toBe('SCARD_E_TIMEOUT');
    expect(card.stalled).toBe(true);
    answer('c beginTransaction');
    await tick();
    expect(bridge.calls).toEqual(['c beginTransaction', 'c endTransaction']);
    expect(card.stalled, 'stalled until the transaction is ended').toBe(true);
    answer('c endTransaction');
    await tick();
    await tick();
    expect(card.stalled).toBe(false);
  });

  it('arguments pcsc-lite would take as something else are refused before anything is sent', async () => {
    reset();
    const ctx = await context('m');
    const card = PcscCard.open(addon(), nativeCard('c'), 'scripted', 2, 3, Infinity);
    const refused: [string, () => Promise<unknown>][] = [
      ['protocols as a string', () => ctx.connect('reader', { protocols: 'T1' as never })],
      ['no protocol', () => ctx.connect('reader', { protocols: [] })],
      ['an unknown protocol', () => ctx.connect('reader', { protocols: ['T2' as never] })],
      ['a reader name of 128 bytes', () => ctx.connect('r'.repeat(126) + 'é')],
      ['a status list that is no array', () => ctx.getStatusChange({} as never)],
      ['a state that is no number', () => ctx.getStatusChange([{ reader: 'r', state: '1' as never }])],
      ['a state above a DWORD', () => ctx.getStatusChange([{ reader: 'r', state: 2 ** 32 }])],
      // As a DWORD, -1 is INFINITE: a wait for good.
      ['a negative wait', () => ctx.getStatusChange([{ reader: 'r' }], -1)],
      ['a list item that is null', () => ctx.getStatusChange([null as never])],
      ['a control code that wraps', () => card.control(0xbe000000)],
    ];
    for (const [what, call] of refused) {
      const e = await (async () => call())().then(() => null, (x: unknown) => x);
      expect(e, what).toBeInstanceOf(InvalidInputError);
    }
    expect(bridge.calls).toEqual(['establish']);
    // Accepted at the limits: 127 bytes, the largest code, null options.
    const connected = ctx.connect('r'.repeat(125) + 'é', null);
    await tick();
    answer('m connect', nativeCard('d'));
    await connected;
    const control = card.control(0xbdffffff);
    await tick();
    answer('c control', Uint8Array.of(0x90, 0));
    await control;
    // A wait past 2^31 - 1 ms is handed to pcsc-lite as that (poll() takes an int), an endless one as INFINITE;
    // the largest state and no wait at all are taken.
    const waits = [ctx.getStatusChange([{ reader: 'r' }], 2 ** 32 - 2), ctx.getStatusChange([{ reader: 'r' }], 2 ** 31 - 1),
      ctx.getStatusChange([{ reader: 'r', state: 2 ** 32 - 1 }], 0), ctx.getStatusChange([{ reader: 'r' }])];
    for (let i = 0; i < 4; i++) {
      await tick();
      answer('m getStatusChange', [{ reader: 'r', eventState: 0, atr: new Uint8Array(0) }]);
    }
    await Promise.all(waits);
    expect(bridge.waitTimeouts).toEqual([2 ** 31 - 1, 2 ** 31 - 1, 0, CONSTANTS.INFINITE]);
    await released(ctx);
  });
  it('a bridge failure is a PcscError by its code: a LONG of 32 bits (negative) names the same code, one pcsc-lite does not define its hex', async () => {
    reset();
    const ctx = await context('m');
    const failures: [number, number, string][] = [
      [0x80100069 | 0, 0x80100069, 'SCARD_W_REMOVED_CARD'], [0x8010fffe, 0x8010fffe, 'SCARD_0x8010FFFE'], [1, 1, 'SCARD_0x00000001'],
    ];
    for (const [code, scode, name] of failures) {
      const listing = ctx.listReaders();
      await tick();
      fail('m listReaders', code);
      const e = await rejection(listing);
      expect([e.scode, e.scardName, e.operation, e.message]).toEqual([scode, name, 'm listReaders', `m listReaders failed: ${name} (0x${scode.toString(16).toUpperCase()})`]);
    }
    await released(ctx);
  });

  it('share modes and protocols reach pcsc-lite as their own SCARD_* values, by default shared, T0 or T1; the protocol in use is named back', async () => {
    reset();
    const ctx = await context('m');
    const { SCARD_SHARE_SHARED: SHARED, SCARD_SHARE_EXCLUSIVE: EXCLUSIVE, SCARD_SHARE_DIRECT: DIRECT, SCARD_PROTOCOL_T0: T0, SCARD_PROTOCOL_T1: T1, SCARD_PROTOCOL_RAW: RAW } = CONSTANTS;
    const options: [Parameters<PcscContext['connect']>[1], number, number, number, string][] = [
      [undefined, SHARED, T0 | T1, T0, 'T0'], [{ share: 'exclusive', protocols: ['RAW'] }, EXCLUSIVE, RAW, RAW, 'RAW'],
      [{ share: 'direct', protocols: ['T1', 'RAW'] }, DIRECT, T1 | RAW, T1, 'T1'], [{ share: 'shared', protocols: ['T0'] }, SHARED, T0, T0, 'T0'],
    ];
    const named: string[] = [];
    for (const [opts, , , protocol] of options) {
      const connecting = ctx.connect('r', opts);
      await tick();
      answer('m connect', { ...nativeCard('d'), protocol });
      named.push((await connecting).protocol);
    }
    expect(bridge.connects).toEqual(options.map(([, share, protocols]) => ['r', share, protocols]));
    expect(named).toEqual(options.map(([, , , , name]) => name));
    await released(ctx);
  });

  it('a reader state is read bit by bit: each SCARD_STATE_* flag sets its own field, the event counter and the other flags none', async () => {
    reset();
    const ctx = await context('m');
    const flags: [number, string | undefined][] = [
      [ReaderFlag.CHANGED, 'changed'], [ReaderFlag.PRESENT, 'present'], [ReaderFlag.EMPTY, 'empty'],
      // A reader that went away (UNKNOWN) is as unavailable as one pcscd cannot query.
      [ReaderFlag.UNKNOWN, 'unavailable'], [ReaderFlag.UNAVAILABLE, 'unavailable'],
      [ReaderFlag.INUSE, 'inUse'], [ReaderFlag.EXCLUSIVE, 'exclusive'], [ReaderFlag.MUTE, 'mute'],
      [0xffff0000 | ReaderFlag.IGNORE | ReaderFlag.ATRMATCH | ReaderFlag.UNPOWERED, undefined],
    ];
    const wait = ctx.getStatusChange(flags.map((_, i) => ({ reader: `r${i}` })));
    await tick();
    answer('m getStatusChange', flags.map(([eventState], i) => ({ reader: `r${i}`, eventState, atr: Uint8Array.of(i) })));
    const fields = ['changed', 'present', 'empty', 'unavailable', 'inUse', 'exclusive', 'mute'] as const;
    const got = (await wait).map((r) => [r.reader, r.state, Array.from(r.atr), fields.filter((f) => r[f])]);
    expect(got).toEqual(flags.map(([eventState, field], i) => [`r${i}`, eventState, [i], field ? [field] : []]));
    await released(ctx);
  });

  it('discoverPcscBackends lists the readers again when one went away between the listing and the status query (SCARD_E_UNKNOWN_READER)', async () => {
    reset();
    const ctx = await context('m');
    const found = discoverPcscBackends({ context: ctx });
    await tick();
    answer('m listReaders', ['A', 'B']);
    await tick();
    fail('m getStatusChange', 0x80100009);
    await tick();
    await tick();
    answer('m listReaders', ['A']);
    await tick();
    answer('m getStatusChange', [{ reader: 'A', eventState: 0x10, atr: new Uint8Array(0) }]); // SCARD_STATE_EMPTY
    expect(await found).toEqual([]);
    expect(bridge.calls).toEqual(['establish', 'm listReaders', 'm getStatusChange', 'm listReaders', 'm getStatusChange']);
    await released(ctx);
  });
  it('discoverPcscBackends finds nothing, without a status query, where no reader is listed; lists the readers three times at most; fails at once on another error', async () => {
    reset();
    const ctx = await context('m');
    const none = discoverPcscBackends({ context: ctx });
    await tick();
    answer('m listReaders', []);
    expect(await none).toEqual([]);
    expect(bridge.calls).toEqual(['establish', 'm listReaders']);
    // Readers that keep going away: the third SCARD_E_UNKNOWN_READER is the caller's.
    bridge.calls.length = 0;
    const gone = rejection(discoverPcscBackends({ context: ctx }));
    for (let attempt = 0; attempt < 3; attempt++) {
      await tick();
      answer('m listReaders', ['A']);
      await tick();
      fail('m getStatusChange', 0x80100009);
      await tick();
    }
    await tick();
    expect(bridge.pending.map((c) => c.name), 'no fourth listing').toEqual([]);
    expect((await gone).scardName).toBe('SCARD_E_UNKNOWN_READER');
    expect(bridge.calls).toEqual(['m listReaders', 'm getStatusChange', 'm listReaders', 'm getStatusChange', 'm listReaders', 'm getStatusChange']);
    // Any other failure of the query is not retried.
    bridge.calls.length = 0;
    const failed = rejection(discoverPcscBackends({ context: ctx }));
    await tick();
    answer('m listReaders', ['A']);
    await tick();
    fail('m getStatusChange', 0x80100017); // SCARD_E_READER_UNAVAILABLE
    await tick();
    expect(bridge.pending.map((c) => c.name), 'no second listing').toEqual([]);
    expect((await failed).scardName).toBe('SCARD_E_READER_UNAVAILABLE');
    expect(bridge.calls).toEqual(['m listReaders', 'm getStatusChange']);
    await released(ctx);
  });

  it('discoverPcscBackends closes a backend whose card it cannot open, and releases its listing context: every context it established is released', async () => {
    reset();
    /** Settles the call named `name` once it is pending (the discovery makes its calls a few turns apart). */
    const settle = async (name: string, value?: unknown) => {
      for (let i = 0; i < 50 && !bridge.pending.some((p) => p.name === name); i++) await tick();
      answer(name, value);
    };
    const found = discoverPcscBackends({ commandTimeoutMs: 1000 });
    await settle('establish', monitor('m'));
    await settle('m listReaders', ['A']);
    await settle('m getStatusChange', [{ reader: 'A', eventState: ReaderFlag.PRESENT, atr: new Uint8Array(0) }]);
    // The backend's own context: its card refuses the senv applet (6A82).
    await settle('establish', monitor('b'));
    await settle('b connect', nativeCard('c'));
    await settle('c transmit', Uint8Array.of(0x6a, 0x82));
    await settle('c disconnect 0');
    await settle('b release');
    await settle('m release');
    expect(await found).toEqual([]);
    expect(bridge.calls).toEqual(['establish', 'm listReaders', 'm getStatusChange', 'establish', 'b connect', 'c transmit', 'c disconnect 0', 'b release', 'm release']);
  });

  it('a connect pcsc-lite refuses names the reader (an engine may host several cards): an unknown one, an empty one, one another application holds', async () => {
    reset();
    const ctx = await context('m');
    for (const [scode, name] of [[0x80100009, 'SCARD_E_UNKNOWN_READER'], [0x8010000c, 'SCARD_E_NO_SMARTCARD'], [0x8010000b, 'SCARD_E_SHARING_VIOLATION']] as const) {
      const connecting = ctx.connect('Lab Reader 00 01');
      await tick();
      fail('m connect', scode);
      const e = await rejection(connecting);
      expect([e.scardName, e.message]).toEqual([name, `m connect failed: ${name} (0x${scode.toString(16).toUpperCase()}): reader 'Lab Reader 00 01'`]);
    }
    await released(ctx);
  });

  it('a connect that outlived its timeout makes later connects to that reader on the context fail at once (SCARD_E_NOT_READY) until it returned; other readers go on', async () => {
    reset();
    const ctx = await context('m');
    const first = ctx.connect('A', { timeoutMs: 30 });
    expect((await rejection(first)).scardName).toBe('SCARD_E_TIMEOUT');
    expect((await rejection(ctx.connect('A', { timeoutMs: 30 }))).scardName).toBe('SCARD_E_NOT_READY');
    const other = ctx.connect('B', { timeoutMs: 1000 });
    await tick();
    answer('m connect', nativeCard('late')); // the first connect, to A, returns at last
    await tick();
    answer('m connect', nativeCard('b'));
    await other;
    await tick();
    expect(bridge.calls).toEqual(['establish', 'm connect', 'm connect', 'late disconnect 0']);
    answer('late disconnect 0');
    const again = ctx.connect('A', { timeoutMs: 1000 });
    await tick();
    answer('m connect', nativeCard('a'));
    await again;
    await released(ctx);
  });
});

// docs/pcsc.md "A card that is not behind PC/SC": PcscBackend over a context of the caller's own
// (an eSE on SPI, a UICC behind a modem's AT+CSIM), built from the members that section lists and
// nothing else, with the senv card in process (no pcscd, no native bridge).
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { hex } from '../../src/apdu/apdu.ts';
import { discoverPcscBackends, PcscBackend, type CardConnection, type CardContext } from '../../src/backends/pcsc/index.ts';
import { InvalidInputError, McsEngine, randomBytes, sha256, StateError } from '../../src/index.ts';
import { PcscContext, PcscError } from '../../src/pcsc/index.ts';
import { EXTENDED_LIMITS, VirtualCardOs } from '../../src/virtual-card/card.ts';
import { SenvApplet } from '../../src/virtual-card/applet.ts';
import { KeyStore } from '../../src/virtual-card/keystore.ts';

/** The documented context: connect(); a connection with transmit, status, reset, disconnect. */
function ownContext(opts: { atr?: boolean; transaction?: boolean } = {}) {
  const applet = new SenvApplet({ store: new KeyStore(), random: randomBytes, limits: EXTENDED_LIMITS });
  const os = new VirtualCardOs([applet], { limits: EXTENDED_LIMITS });
  os.power('cold');
  const calls: string[] = [];
  let fail: Error | undefined;
  const connection = {
    transmit: async (apdu: Uint8Array) => {
      const e = fail;
      fail = undefined;
      if (e) throw e;
      return os.apdu(apdu);
    },
    status: async () => {
      if (opts.atr === false) throw new Error('this link reports no ATR');
      return { atr: os.atr() };
    },
    reset: async (kind: 'cold' | 'warm') => {
      calls.push(`reset ${kind}`);
      os.power(kind);
    },
    disconnect: async (end: 'leave' | 'reset') => {
      calls.push(`disconnect ${end}`);
      if (end === 'reset') os.power('warm');
    },
    // A link to one application only has nothing to keep others out with: run as is.
    ...(opts.transaction ? { transaction: <T>(fn: () => Promise<T>) => (calls.push('transaction'), fn()) } : {}),
  } satisfies CardConnection;
  const context = {
    connect: async (reader: string, o: { share: string; timeoutMs: number }) => {
      calls.push(`connect ${reader} ${o.share} ${o.timeoutMs}`);
      return connection;
    },
  };
  return { os, calls, context: context satisfies CardContext, failNext: (e: Error) => (fail = e) };
}

/** An engine over `ctx`'s card: through its context, or with `ownsContext` through one the backend establishes. */
async function engineOver(ctx: ReturnType<typeof ownContext>, share?: 'shared', ownsContext = false) {
  const backend = new PcscBackend({ reader: 'eSE on SPI', commandTimeoutMs: 5000, ...(ownsContext ? {} : { context: ctx.context }), ...(share ? { share } : {}) });
  const engine = await McsEngine.create({ backends: [backend] });
  const seId = engine.seIds[0]!;
  let rqi = 0;
  const send = (r: Record<string, unknown>) => engine.send({ rqi: String(++rqi), fr: 'C1', ...r });
  expect((await send({ op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 3 } } })).rsc).toBe(2001);
  expect((await send({ op: 1, to: `${seId}/r`, ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } })).rsc).toBe(2001);
  const digest = async () => {
    expect((await send({ op: 3, to: `${seId}/r/h`, pc: { 'senv:Hsh': { msg: 'YWJj' } } })).rsc).toBe(2004);
    return send({ op: 2, to: `${seId}/r/h/calculateHash` });
  };
  return { engine, backend, seId, send, digest };
}

const ABC = hex(sha256(new TextEncoder().encode('abc')));

describe('PcscBackend over a context of your own (docs/pcsc.md)', () => {
  it('serves Mcs requests, reports the ATR from status(), reboots through reset() and closes with disconnect(), never release()', async () => {
    const ctx = ownContext();
    // A context that has a release() of its own (a PcscContext shared with the rest of the application) keeps it.
    Object.assign(ctx.context, { release: async () => void ctx.calls.push('release') });
    const { engine, seId, send, digest } = await engineOver(ctx);
    try {
      expect(ctx.calls).toEqual(['connect eSE on SPI exclusive 5000']);
      const hv = ((await digest()).pc as Record<string, Record<string, unknown>>)['senv:Hsh']!.Hv;
      expect(hex(Uint8Array.from(Buffer.from(String(hv), 'base64')))).toBe(ABC);
      const dvi = (await send({ op: 2, to: `${seId}/r/deviceInfo` })).pc as Record<string, Record<string, unknown>>;
      expect(dvi['m2m:dvi']!.hwv).toBe(`ATR ${hex(ctx.os.atr())}`);
      expect((await send({ op: 3, to: `${seId}/r/coldReset`, pc: { 'senv:Srbt': { rb: true } } })).rsc).toBe(2004);
      expect(ctx.calls.at(-1)).toBe('reset cold');
    } finally {
      await engine.close();
    }
    expect(ctx.calls.at(-1)).toMatch(/^disconnect /);
    expect(ctx.calls).not.toContain('release');
  });

  it('a PcscError from transmit() is a lost card: 5000 naming its code, then the next request connects again', async () => {
    const ctx = ownContext();
    const { engine, digest } = await engineOver(ctx);
    try {
      ctx.failNext(new PcscError('SCardTransmit', 0x80100069));
      const lost = await digest();
      expect(lost.rsc).toBe(5000);
      expect(lost.pc?.['m2m:dbg']).toBe('internal error (ERR_PCSC SCARD_W_REMOVED_CARD)');
      expect(ctx.calls.filter((c) => c.startsWith('connect'))).toHaveLength(1);
      expect(ctx.calls.at(-1)).toBe('disconnect leave');
      expect((await digest()).rsc).toBe(2000);
      expect(ctx.calls.filter((c) => c.startsWith('connect'))).toHaveLength(2);
    } finally {
      await engine.close();
    }
  });

  it('any other error from transmit() fails that request only: the connection is kept', async () => {
    const ctx = ownContext();
    const { engine, digest } = await engineOver(ctx);
    try {
      ctx.failNext(new Error('SPI bus error'));
      const failed = await digest();
      expect(failed.rsc).toBe(5000);
      expect(failed.pc?.['m2m:dbg']).toBe('internal error (Error)');
      expect((await digest()).rsc).toBe(2000);
      expect(ctx.calls).toEqual(['connect eSE on SPI exclusive 5000']);
    } finally {
      await engine.close();
    }
  });

  it('a status() that rejects leaves the card usable, [deviceInfo] hwv "unknown (no ATR read)"', async () => {
    const ctx = ownContext({ atr: false });
    const { engine, seId, send, digest } = await engineOver(ctx);
    try {
      expect((await digest()).rsc).toBe(2000);
      const dvi = (await send({ op: 2, to: `${seId}/r/deviceInfo` })).pc as Record<string, Record<string, unknown>>;
      expect(dvi['m2m:dvi']!.hwv).toBe('unknown (no ATR read)');
    } finally {
      await engine.close();
    }
  });

  it('share \'shared\' runs each call in the connection\'s transaction(); a connection without one is refused naming it, and disconnected', async () => {
    const ctx = ownContext({ transaction: true });
    const { engine, digest } = await engineOver(ctx, 'shared');
    try {
      expect((await digest()).rsc).toBe(2000);
      expect(ctx.calls.filter((c) => c === 'transaction').length).toBeGreaterThan(1);
    } finally {
      await engine.close();
    }
    const bare = ownContext();
    const b = new PcscBackend({ reader: 'eSE on SPI', context: bare.context, share: 'shared' });
    for (let i = 0; i < 2; i++) await expect(b.open()).rejects.toThrow(expect.objectContaining({ name: StateError.name, message: expect.stringMatching(/the connection to eSE on SPI has no transaction\(\), which share 'shared' needs/) }));
    // Each attempt connects and disconnects once; the refused connection is not kept for close() to end again.
    expect(bare.calls).toEqual(['connect eSE on SPI shared 30000', 'disconnect leave', 'connect eSE on SPI shared 30000', 'disconnect leave']);
    await b.close();
    expect(bare.calls).toHaveLength(4);
  });

  it('a context that is no object with connect() is refused at construction, naming what it takes', () => {
    for (const context of [{}, { connect: 'eSE' }, null]) {
      expect(() => new PcscBackend({ reader: 'eSE', context: context as never })).toThrow(expect.objectContaining({ name: InvalidInputError.name, message: expect.stringMatching(/^context must be a PcscContext or an object with connect\(\), got /) }));
    }
  });

  it('without a context, the backend\'s own (PcscContext.establish) serves every connection and is released once, after the disconnect', async () => {
    const ctx = ownContext();
    const establish = vi.spyOn(PcscContext, 'establish').mockImplementation(async () => ({ ...ctx.context, release: async () => void ctx.calls.push('release') }) as unknown as PcscContext);
    try {
      const { engine, backend, digest } = await engineOver(ctx, undefined, true);
      // A lost card: the next call connects again through the same context.
      ctx.failNext(new PcscError('SCardTransmit', 0x80100069));
      expect((await digest()).rsc).toBe(5000);
      expect((await digest()).rsc).toBe(2000);
      expect(ctx.calls.filter((c) => c.startsWith('connect'))).toHaveLength(2);
      expect(establish).toHaveBeenCalledTimes(1);
      await engine.close();
      await backend.close();
      expect(ctx.calls.slice(-2)).toEqual(['disconnect leave', 'release']);
      expect(ctx.calls.filter((c) => c === 'release')).toHaveLength(1);
    } finally {
      establish.mockRestore();
    }
  });

  it('discoverPcscBackends without a context lists through one of its own and releases it; a card it finds gets a context of its own', async () => {
    const ctx = ownContext();
    const listing = {
      listReaders: async () => ['eSE on SPI'],
      getStatusChange: async () => [{ reader: 'eSE on SPI', present: true }],
      release: async () => void ctx.calls.push('release listing'),
    };
    const contexts = [listing, { ...ctx.context, release: async () => void ctx.calls.push('release card') }];
    const establish = vi.spyOn(PcscContext, 'establish').mockImplementation(async () => contexts.shift() as unknown as PcscContext);
    try {
      const found = await discoverPcscBackends({ commandTimeoutMs: 5000 });
      expect(found.map((b) => b.reader)).toEqual(['eSE on SPI']);
      expect(ctx.calls).toEqual(['connect eSE on SPI exclusive 5000', 'release listing']);
      await found[0]!.close();
      expect(ctx.calls.slice(-2)).toEqual(['disconnect leave', 'release card']);
      expect(establish).toHaveBeenCalledTimes(2);
    } finally {
      establish.mockRestore();
    }
  });

  it('discoverPcscBackends refuses a context that cannot list readers, naming the way to use it', async () => {
    const ctx = ownContext();
    const refusal = expect.objectContaining({ name: InvalidInputError.name, message: expect.stringMatching(/needs a context that lists readers.*new PcscBackend\(\{ reader, context \}\)/) });
    await expect(discoverPcscBackends({ context: ctx.context as unknown as PcscContext })).rejects.toThrow(refusal);
    // Either member missing is enough: discovery calls both.
    const listReaders = async () => [];
    const getStatusChange = async () => [];
    for (const half of [{ listReaders }, { getStatusChange }]) {
      await expect(discoverPcscBackends({ context: { ...ctx.context, ...half } as unknown as PcscContext })).rejects.toThrow(refusal);
    }
    expect(ctx.calls).toEqual([]);
  });

  it('the example of docs/pcsc.md runs as written, its `spi` driver over the virtual card', async () => {
    const page = readFileSync(new URL('../../docs/pcsc.md', import.meta.url), 'utf8');
    const examples = [...page.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!).filter((c) => c.includes('const context = {'));
    expect(examples).toHaveLength(1);
    const { os } = ownContext();
    const spi = {
      exchange: async (apdu: Uint8Array) => os.apdu(apdu),
      atr: os.atr(),
      reset: async (kind: 'cold' | 'warm') => os.power(kind),
    };
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<McsEngine>;
    const engine = await new AsyncFunction('PcscBackend', 'McsEngine', 'spi', `${examples[0]!.replace(/^import .*$/gm, '')}\nreturn engine;`)(PcscBackend, McsEngine, spi);
    try {
      const seId = engine.seIds[0]!;
      const r = await engine.send({ rqi: '1', fr: 'C1', op: 1, to: seId, ty: 20011, pc: { 'senv:Senv': { rn: 'r', sID: seId, seL: 3 } } });
      expect(r.rsc).toBe(2001);
      expect(seId).toMatch(/^2-[0-9A-F]{16}$/);
    } finally {
      await engine.close();
    }
  });
});

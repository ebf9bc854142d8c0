// The native PC/SC bridge's own calls under Deno (Node-API through
// --allow-ffi): readers and their state, waits that time out, cancel() and
// release() during a wait, a worker terminated during its wait. Run by
// test/node/pcsc-deno.test.ts with the card in SENV_DENO_PCSC_READER.
import { PcscContext, PcscError } from '../../src/pcsc/index.ts';

declare const Deno: {
  test(name: string, fn: () => Promise<void>): void;
  env: { get(name: string): string | undefined };
};

const reader = Deno.env.get('SENV_DENO_PCSC_READER');
if (!reader) throw new Error('SENV_DENO_PCSC_READER names no reader: run this through test/node/pcsc-deno.test.ts');

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

/**
 * p's outcome; a call still running after 10 s fails the test instead (Deno's runner has no
 * time limit of its own, so a hang would otherwise last until the driver kills the run).
 */
async function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not end within 10 s`)), 10_000)));
  return Promise.race([p, stuck]).finally(() => clearTimeout(timer));
}

/** The SCARD_* name the call failed with. */
async function scardError(p: Promise<unknown>): Promise<string> {
  const failed = await bounded(p.then(() => { throw new Error('the call succeeded'); }, (e: unknown) => e), 'the call');
  check(failed instanceof PcscError, `expected a PcscError, got ${String(failed)}`);
  return (failed as PcscError).scardName;
}

async function withContext(fn: (ctx: PcscContext, state: number) => Promise<void>): Promise<void> {
  const ctx = await bounded(PcscContext.establish(), 'establish()');
  try {
    const [s] = await ctx.getStatusChange([{ reader: reader!, state: 0 }], 0);
    await fn(ctx, s!.state);
  } finally {
    await bounded(ctx.release(), 'release()');
  }
}

Deno.test('lists the card reader and reports the card present with its ATR', () =>
  withContext(async (ctx) => {
    check((await ctx.listReaders()).includes(reader), 'the reader is listed');
    const [s] = await ctx.getStatusChange([{ reader, state: 0 }], 0);
    check(s!.reader === reader && s!.present && !s!.empty && !s!.unavailable, `state 0x${s!.state.toString(16)}`);
    check(s!.atr instanceof Uint8Array && s!.atr.length > 1, 'an ATR');
  }));

Deno.test('a wait on an unchanged state ends with SCARD_E_TIMEOUT after its timeout', () =>
  withContext(async (ctx, state) => {
    const t0 = Date.now();
    check(await scardError(ctx.getStatusChange([{ reader, state }], 150)) === 'SCARD_E_TIMEOUT', 'SCARD_E_TIMEOUT');
    const took = Date.now() - t0;
    check(took >= 100 && took < 5_000, `took ${took} ms`);
  }));

Deno.test('cancel() ends an endless wait with SCARD_E_CANCELLED; a wait asked for afterwards is not affected', () =>
  withContext(async (ctx, state) => {
    const waiting = ctx.getStatusChange([{ reader, state }]);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    ctx.cancel();
    check(await scardError(waiting) === 'SCARD_E_CANCELLED', 'SCARD_E_CANCELLED');
    // A cancel that is lost leaves the wait endless (scardError fails it at 10 s); a loaded pcscd may take
    // more than the moment an idle one does to answer the one that lands.
    check(Date.now() - t0 < 8_000, 'cancelled at once');
    check(await scardError(ctx.getStatusChange([{ reader, state }], 100)) === 'SCARD_E_TIMEOUT', 'the next wait times out');
  }));

Deno.test('release() during an endless wait ends the wait and releases the context', async () => {
  const ctx = await PcscContext.establish();
  const [s] = await ctx.getStatusChange([{ reader, state: 0 }], 0);
  const ended = scardError(ctx.getStatusChange([{ reader, state: s!.state }]));
  await new Promise((r) => setTimeout(r, 100));
  await bounded(ctx.release(), 'release()');
  check(await ended === 'SCARD_E_CANCELLED', 'SCARD_E_CANCELLED');
});

Deno.test('a worker terminated during its endless wait: the calls of this thread go on as before', async () => {
  const worker = new Worker(new URL('./wait-in-worker.ts', import.meta.url).href, { type: 'module' });
  await new Promise((resolve) => {
    worker.onmessage = resolve;
    worker.postMessage(reader);
  });
  await new Promise((r) => setTimeout(r, 100));
  worker.terminate();
  await withContext(async (ctx, state) => {
    check((await ctx.listReaders()).includes(reader), 'the reader is listed');
    check(await scardError(ctx.getStatusChange([{ reader, state }], 150)) === 'SCARD_E_TIMEOUT', 'a wait here times out as before');
  });
});

// A pcscd that stops answering (stopped, or stuck): establish, the context's
// calls and its release are bounded by their timeouts, a late answer is
// disposed of, and neither the JS thread, the libuv pool, a worker's end nor
// the process's exit is held; a call past its timeout keeps nothing alive. Each scenario runs in a child
// process whose libpcsclite reaches the machine's pcscd through a proxy socket
// this test can freeze: pcsc-lite reads PCSCLITE_CSOCK_NAME once per process,
// and pcscd itself serves the other test files meanwhile. The exit during a
// wait is also run under Deno.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireStack } from '../../scripts/pcsc-stack.mjs';
import { runChild } from './run-child.ts';

const stack = await acquireStack();
if (!stack.ok && (process.env.SENV_REQUIRE_PCSC === '1' || process.env.CI)) throw new Error(`PC/SC stack unavailable: ${stack.reason}`);
const PCSCD_SOCKET = process.env.PCSCLITE_CSOCK_NAME ?? '/run/pcscd/pcscd.comm';
const dir = mkdtempSync(join(tmpdir(), 'senv-silent-pcscd-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (stack.ok) await stack.release();
});

/** Forwards each client connection to pcscd; frozen, it forwards nothing either way (pcscd seems stopped). */
class FreezableProxy {
  readonly path: string;
  private frozen = false;
  private readonly pairs = new Set<{ client: net.Socket; pcscd: net.Socket }>();
  private readonly server: net.Server;

  private constructor(path: string) {
    this.path = path;
    this.server = net.createServer((client) => {
      const pcscd = net.connect(PCSCD_SOCKET);
      const pair = { client, pcscd };
      this.pairs.add(pair);
      client.pipe(pcscd);
      pcscd.pipe(client);
      // After pipe(), which resumes its source.
      if (this.frozen) this.hold(pair);
      const end = () => {
        this.pairs.delete(pair);
        client.destroy();
        pcscd.destroy();
      };
      for (const s of [client, pcscd]) s.on('close', end).on('error', () => undefined);
    });
  }

  static async start(name: string): Promise<FreezableProxy> {
    const proxy = new FreezableProxy(join(dir, name));
    await new Promise<void>((resolve) => proxy.server.listen(proxy.path, resolve));
    return proxy;
  }

  private hold(pair: { client: net.Socket; pcscd: net.Socket }): void {
    pair.client.pause();
    pair.pcscd.pause();
  }

  freeze(): void {
    this.frozen = true;
    for (const p of this.pairs) this.hold(p);
  }

  thaw(): void {
    this.frozen = false;
    for (const p of this.pairs) {
      p.client.resume();
      p.pcscd.resume();
    }
  }

  /** Client connections still open: libpcsclite closes a context's when it is released. */
  get open(): number {
    return this.pairs.size;
  }

  close(): Promise<void> {
    for (const p of this.pairs) p.client.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

type Report = Record<string, unknown> & { step: string };

const DENO = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
const ADDON = process.env.SENV_PCSC_ADDON ?? fileURLToPath(new URL('../../native/build/Release/senv_pcsc.node', import.meta.url));

// Shared by the child scripts: outcome() is { ok } or the PcscError's name and message, step() reports and
// waits for the parent's go-ahead.
const PRELUDE = `
const { PcscContext, PcscBackend, discoverPcscBackends } = await import(${JSON.stringify(new URL('../../dist/src/pcsc/exports.js', import.meta.url).href)});
const { McsEngine } = await import(${JSON.stringify(new URL('../../dist/src/index.js', import.meta.url).href)});
const outcome = (p) => p.then(() => ({ ok: true }), (e) => ({ code: e.scardName ?? e.name, message: e.message }));
// call()'s outcome, how long it took, and whether it settled before a 100 ms timer set as it was called
// (atOnce) and before a 3 s one (inTime): timers fire in the order of their deadlines however late a
// loaded machine runs them, so a call answered at once or by its own shorter timer is on time where a
// wall-clock bound would count the machine's stalls.
const timed = async (call) => {
  const on = { atOnce: true, inTime: true };
  const timers = [setTimeout(() => { on.atOnce = false; }, 100), setTimeout(() => { on.inTime = false; }, 3000)];
  const t0 = Date.now();
  const r = await outcome(call());
  const ms = Date.now() - t0;
  for (const t of timers) clearTimeout(t);
  return { ...r, ms, ...on };
};
// Ticks of a 10 ms interval while during() runs: the baseline of this loaded or idle machine is taken
// the same way over an idle 300 ms.
const ticksOver = async (during) => { let n = 0; const i = setInterval(() => n++, 10); await during(); clearInterval(i); return n; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pending = (p) => Promise.race([p.then(() => false, () => false), sleep(20).then(() => true)]);
const step = (step, data = {}) => new Promise((resolve) => { process.once('message', resolve); process.send({ step, ...data }); });
/** Until an earlier establish that outlived its timeout has returned, establish() is refused. */
const establishWhenAnswered = async (opts) => {
  for (const end = Date.now() + 15_000; Date.now() < end;) {
    const r = await PcscContext.establish(opts).then((ctx) => ({ ctx }), (e) => ({ e }));
    if (r.ctx || r.e.scardName !== 'SCARD_E_NOT_READY') return r;
    await sleep(20);
  }
  return { e: new Error('establish still refused after 15 s') };
};
`;

/** Runs `script` with libpcsclite pointed at `proxy`; `on[step]` runs before the child is let go on. */
async function scenario(proxy: FreezableProxy, script: string, on: Record<string, () => void | Promise<void>>): Promise<Record<string, Report>> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', PRELUDE + script], {
    env: { ...process.env, NODE_OPTIONS: '', PCSCLITE_CSOCK_NAME: proxy.path },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const reports: Record<string, Report> = {};
  child.on('message', (m: Report) => {
    reports[m.step] = m;
    void Promise.resolve(on[m.step]?.()).then(() => child.send('go'));
  });
  // A child held for good (the regression this file guards against) fails the test instead of outliving it.
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearTimeout(killer);
  expect(code).toBe(0);
  return reports;
}

/**
 * scenario() for a child that has pcscd frozen at its step 'freeze' and ends after its step `last`:
 * the reports, and how long the child took to end after `last`.
 */
async function endingScenario(proxy: FreezableProxy, script: string, last: string): Promise<{ r: Record<string, Report>; endMs: number }> {
  let at = 0;
  const r = await scenario(proxy, script, {
    freeze: () => proxy.freeze(),
    [last]: () => {
      at = Date.now();
    },
  });
  const endMs = Date.now() - at;
  await proxy.close();
  return { r, endMs };
}

/** Polls until `proxy` has no open connection (each context released), or 15 s (generous for a loaded machine). */
async function allReleased(proxy: FreezableProxy): Promise<number> {
  for (const end = Date.now() + 15_000; proxy.open > 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
  return proxy.open;
}

describe.skipIf(!stack.ok)(`a pcscd that stops answering${stack.ok ? '' : ` (skipped: ${stack.reason})`}`, () => {
  it('a context\'s calls, its release and establish time out, later calls are refused, late answers are disposed of', async () => {
    const proxy = await FreezableProxy.start('context.sock');
    let openAtEnd = -1;
    const r = await scenario(proxy, `
      const ctx = await PcscContext.establish({ timeoutMs: 300 });
      // A wait on the PnP reader ends only when a reader comes or goes (vpcd's never do), not when
      // another test file inserts a card in a vpcd reader.
      const unchanged = [{ reader: ctx.pnpReader }];
      // A wait is bounded by its own length plus the timeout: pcsc-lite's own SCARD_E_TIMEOUT ends this one.
      const ownWait = await timed(() => ctx.getStatusChange(unchanged, 600));
      // Longer than a timer can hold (wait + timeout past 2^31 - 1 ms): still a wait, not a timeout at once.
      const long = ctx.getStatusChange(unchanged, 0x7fffffff - 100);
      await sleep(400);
      const longPending = await pending(long);
      ctx.cancel();
      const longEnd = await outcome(long);
      const baseline = await ticksOver(() => sleep(300));
      await step('freeze');
      const list = await timed(() => ctx.listReaders());
      const stalled = ctx.stalled;
      const listAgain = await outcome(ctx.listReaders());
      const waitAgain = await outcome(ctx.getStatusChange(unchanged, 0));
      // connect() makes a pcsc-lite context of its own: refused too, not sent to the silent pcscd.
      const connectStalled = await timed(() => ctx.connect('Virtual PCD 00 00'));
      let release;
      const ticks = await ticksOver(async () => { release = await timed(() => ctx.release()); });
      const establish = await timed(() => PcscContext.establish({ timeoutMs: 300 }));
      const establishAgain = await timed(() => PcscContext.establish({ timeoutMs: 300 }));
      await step('thaw', { ownWait, longPending, longEnd, list, stalled, listAgain, waitAgain, connectStalled, release, ticks, baseline, establish, establishAgain });
      const after = await establishWhenAnswered({ timeoutMs: 300 });
      const readersAfter = after.ctx ? await after.ctx.listReaders() : [];
      await after.ctx?.release();
      await step('answered', { established: !!after.ctx, readers: readersAfter.length, error: after.e?.message });
    `, {
      freeze: () => proxy.freeze(),
      thaw: () => proxy.thaw(),
      answered: async () => {
        openAtEnd = await allReleased(proxy);
      },
    });
    await proxy.close();

    expect(r.thaw!.ownWait).toMatchObject({ code: 'SCARD_E_TIMEOUT' });
    expect(r.thaw!.ownWait).not.toMatchObject({ message: expect.stringMatching(/no answer from pcscd/) });
    expect((r.thaw!.ownWait as { ms: number }).ms).toBeGreaterThanOrEqual(590);
    expect(r.thaw!.longPending).toBe(true);
    expect(r.thaw!.longEnd).toMatchObject({ code: 'SCARD_E_CANCELLED' });

    const bounded = (x: unknown, op: string) => {
      expect(x).toMatchObject({ code: 'SCARD_E_TIMEOUT', message: expect.stringContaining(`${op} failed`) });
      expect((x as { message: string }).message).toMatch(/no answer from pcscd within 300 ms/);
      expect((x as { ms: number }).ms).toBeGreaterThanOrEqual(295);
      expect(x, 'before a 3 s timer').toMatchObject({ inTime: true });
    };
    bounded(r.thaw!.list, 'SCardListReaders');
    expect(r.thaw!.stalled).toBe(true);
    expect(r.thaw!.connectStalled, 'refused at once: before a 100 ms timer').toMatchObject({ atOnce: true });
    for (const x of [r.thaw!.listAgain, r.thaw!.waitAgain, r.thaw!.connectStalled]) {
      expect(x).toMatchObject({ code: 'SCARD_E_NOT_READY', message: expect.stringMatching(/an earlier call to pcscd got no answer within 300 ms and is still outstanding/) });
    }
    bounded(r.thaw!.release, 'SCardReleaseContext');
    // The JS thread ran timers all along: nothing in release() waited for the silent pcscd on it. Ten
    // ticks of 30 in its 300 ms, or half the child's own baseline when a loaded machine runs fewer (a
    // thread held throughout runs none).
    expect(r.thaw!.ticks, `baseline ${r.thaw!.baseline}`).toBeGreaterThanOrEqual(Math.min(10, Math.ceil((r.thaw!.baseline as number) / 2)));
    bounded(r.thaw!.establish, 'SCardEstablishContext');
    expect(r.thaw!.establishAgain).toMatchObject({ code: 'SCARD_E_NOT_READY', message: expect.stringMatching(/an earlier call to pcscd got no answer within 300 ms/) });
    expect(r.thaw!.establishAgain, 'refused at once: before a 100 ms timer').toMatchObject({ atOnce: true });

    // pcscd answers again: establish works, and the stalled context and the late one were released.
    expect(r.answered).toMatchObject({ established: true });
    expect(r.answered!.readers).toBeGreaterThan(0);
    expect(openAtEnd).toBe(0);
  });

  it('calls pcscd never answers hold none of the libuv pool, nor does a wait\'s cancel hold the JS thread or the exit: file reads, a worker\'s end, cancel(), the addon\'s release() and process.exit() go on', async () => {
    const proxy = await FreezableProxy.start('pool.sock');
    const inWorker = `(async () => { const { PcscContext } = await import(${JSON.stringify(new URL('../../dist/src/pcsc/exports.js', import.meta.url).href)});
      const { parentPort } = await import('node:worker_threads');
      const e = await PcscContext.establish({ timeoutMs: 300 }).catch((x) => x);
      parentPort.postMessage(e.scardName); })()`;
    const { r, endMs: exitMs } = await endingScenario(proxy, `
      const { readFile } = await import('node:fs/promises');
      const { Worker } = await import('node:worker_threads');
      const contexts = [];
      for (let i = 0; i < 5; i++) contexts.push(await PcscContext.establish({ timeoutMs: 300 }));
      // A wait for good, under way when pcscd stops answering: the exit cancels it, and SCardCancel then blocks too.
      const endless = await PcscContext.establish({ timeoutMs: 300 });
      const [reader] = await endless.listReaders();
      const [state] = await endless.getStatusChange([{ reader }], 0);
      endless.getStatusChange([{ reader, state: state.state }]).catch(() => undefined);
      // The same straight on the addon, for its release() during the wait.
      const addon = (await import('node:module')).createRequire(process.cwd() + '/')(${JSON.stringify(ADDON)});
      const raw = await addon.Monitor.establish();
      raw.getStatusChange([{ reader, currentState: state.state }], addon.constants.INFINITE).catch(() => undefined);
      await sleep(100);
      const baseline = await ticksOver(() => sleep(300));
      await step('freeze');
      // One call per context outlives its timeout and stays in the bridge: more calls than the pool's 4 threads.
      const lists = await Promise.all(contexts.map((c) => outcome(c.listReaders())));
      const read = await timed(() => Promise.race([readFile('/proc/self/status'), sleep(3000).then(() => { throw new Error('the file read was held'); })]));
      // A worker whose establish is stalled ends when it is terminated (Node waits for an environment's pool work).
      const worker = new Worker(${JSON.stringify(inWorker)}, { eval: true });
      const inside = await new Promise((resolve) => worker.once('message', resolve));
      const terminate = await timed(() => Promise.race([worker.terminate(), sleep(3000).then(() => { throw new Error('the worker did not end'); })]));
      // SCardCancel during a wait contacts pcscd: not on the JS thread.
      let ticks = 0;
      const ticking = setInterval(() => ticks++, 10);
      const t0 = Date.now();
      endless.cancel();
      const cancelMs = Date.now() - t0;
      const t1 = Date.now();
      raw.release().catch(() => undefined);
      const releaseMs = Date.now() - t1;
      await sleep(300);
      clearInterval(ticking);
      // Node joins the pool's threads on process.exit().
      await step('exiting', { lists, read, inside, terminate, cancelMs, releaseMs, ticks, baseline });
      process.exit(0);
    `, 'exiting');

    expect(r.exiting!.lists).toEqual(Array.from({ length: 5 }, () => expect.objectContaining({ code: 'SCARD_E_TIMEOUT' })));
    expect(r.exiting!.read).toMatchObject({ ok: true });
    expect(r.exiting!.inside).toBe('SCARD_E_TIMEOUT');
    expect(r.exiting!.terminate).toMatchObject({ ok: true });
    // Synchronous calls, so measured by the clock: 250 ms, under the 300 ms a bounded wait for pcscd would
    // take (one for good holds the child until it is killed), leave room for a loaded machine's stalls.
    expect(r.exiting!.cancelMs).toBeLessThan(250);
    expect(r.exiting!.releaseMs).toBeLessThan(250);
    expect(r.exiting!.ticks, `baseline ${r.exiting!.baseline}`).toBeGreaterThanOrEqual(Math.min(10, Math.ceil((r.exiting!.baseline as number) / 2)));
    // The exit gives up on the wait's cancel after 2 s.
    expect(exitMs).toBeLessThan(5000);
  });

  it('a script whose last calls pcscd never answered ends by itself: a call past its timeout no longer keeps the process alive', async () => {
    const proxy = await FreezableProxy.start('ending.sock');
    const { r, endMs } = await endingScenario(proxy, `
      const listing = await PcscContext.establish({ timeoutMs: 300 });
      const waiting = await PcscContext.establish({ timeoutMs: 300 });
      const [reader] = await waiting.listReaders();
      await step('freeze');
      const list = await outcome(listing.listReaders());
      const wait = await outcome(waiting.getStatusChange([{ reader }], 0));
      const release = await outcome(listing.release());
      const establish = await outcome(PcscContext.establish({ timeoutMs: 300 }));
      await step('ending', { list, wait, release, establish });
      process.disconnect();
    `, 'ending');

    for (const call of ['list', 'wait', 'release', 'establish']) expect(r.ending![call], call).toMatchObject({ code: 'SCARD_E_TIMEOUT' });
    // Before, until pcscd answered: the child was killed at 30 s. The exit's bounded wait (2 s) for
    // the contexts pcscd never released is in it; waiting for each wait's cancel as well made it 6 s.
    expect(endMs).toBeLessThan(5000);
  });

  it('McsEngine.create over a PC/SC SE and discoverPcscBackends answer within commandTimeoutMs', async () => {
    const proxy = await FreezableProxy.start('backend.sock');
    proxy.freeze();
    let openBeforeFreeze = -1;
    let openAtEnd = -1;
    const r = await scenario(proxy, `
      const engine = await timed(() => McsEngine.create({ backends: [new PcscBackend({ reader: 'no such reader', commandTimeoutMs: 300 })] }));
      const discoverRefused = await timed(() => discoverPcscBackends({ commandTimeoutMs: 300 }));
      await step('thaw', { engine, discoverRefused });
      const after = await establishWhenAnswered({ timeoutMs: 300 });
      await after.ctx?.release();
      await step('answered', { established: !!after.ctx });
      const discover = await timed(() => discoverPcscBackends({ commandTimeoutMs: 300 }));
      await step('done', { discover });
    `, {
      thaw: () => proxy.thaw(),
      answered: async () => {
        openBeforeFreeze = await allReleased(proxy);
        proxy.freeze();
      },
      done: async () => {
        proxy.thaw();
        openAtEnd = await allReleased(proxy);
      },
    });
    await proxy.close();

    expect(r.thaw!.engine).toMatchObject({ code: 'SCARD_E_TIMEOUT', message: expect.stringMatching(/SCardEstablishContext failed.*no answer from pcscd within 300 ms/) });
    expect(r.thaw!.engine, 'before a 3 s timer').toMatchObject({ inTime: true });
    // The establish that timed out is still outstanding: refused at once, not queued behind it.
    expect(r.thaw!.discoverRefused).toMatchObject({ code: 'SCARD_E_NOT_READY' });
    expect(r.thaw!.discoverRefused, 'refused at once: before a 100 ms timer').toMatchObject({ atOnce: true });
    expect(r.answered).toMatchObject({ established: true });
    expect(openBeforeFreeze).toBe(0);
    expect(r.done!.discover).toMatchObject({ code: 'SCARD_E_TIMEOUT', message: expect.stringMatching(/SCardEstablishContext failed.*within 300 ms/) });
    expect(openAtEnd).toBe(0);
  });

  // Deno.exit() dispatches 'unload', not node:process's 'exit': the bridge listens to both.
  for (const how of ['deno', 'process'] as const) {
    it(`under Deno, ${how === 'deno' ? 'Deno.exit()' : 'process.exit()'} during an endless wait with pcscd silent cancels it as on Node: the exit waits its 2 s bound, no longer`, async () => {
      const proxy = await FreezableProxy.start(`deno-${how}.sock`);
      try {
        const fixture = fileURLToPath(new URL('../deno-pcsc/exit-with-silent-pcscd.ts', import.meta.url));
        let frozen = false;
        let exiting = 0;
        const r = await runChild(DENO, ['run', '--allow-ffi', '--allow-read', '--allow-env', fixture, how], {
          env: { PCSCLITE_CSOCK_NAME: proxy.path },
          onOutput: (out) => {
            if (!frozen && out.includes('waiting\n')) {
              frozen = true;
              proxy.freeze();
            }
            if (!exiting && out.includes('exiting\n')) exiting = Date.now();
          },
        });
        const afterExiting = Date.now() - exiting;
        expect({ code: r.code, exiting: exiting > 0 }, r.out + r.err).toEqual({ code: 0, exiting: true });
        // The 2 s bound on the cancels, plus start-up noise; a cancel sent from the JS thread held it for good.
        expect(afterExiting).toBeGreaterThanOrEqual(1_900);
        expect(afterExiting).toBeLessThan(5_000);
      } finally {
        await proxy.close();
      }
    }, 40_000);
  }
});

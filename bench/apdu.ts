// The APDU path: round-trip latency through pcscd to a card (median and p99 of
// a plain loop), then Mcs operations per second on the PC/SC SE next to the
// software SE in the same engine, with the number of APDUs each operation
// costs. The card is senv's virtual card in the module's own pcscd and vpcd,
// or with --reader whatever card answers the senv profile in that reader.
// Skips (and says why) without a PC/SC stack of its own.
import { PcscBackend } from '../src/backends/pcsc/index.ts';
import { SoftwareBackend } from '../src/backends/software/index.ts';
import { McsEngine } from '../src/mcs/index.ts';
import { fromHex, hex } from '../src/apdu/apdu.ts';
import { PcscContext, PcscError, type PcscCard } from '../src/pcsc/index.ts';
import { createVirtualCard } from '../src/virtual-card/index.ts';
import { CHECKOUT, giveBackAtExit, groupTitle, selects, type BenchGroup, type BenchModule, type BenchOptions } from './harness.ts';
import { opTitles, workloadGroups } from './se-workload.ts';

/** Whether a card is in `reader` within `ms`. */
async function waitPresent(ctx: PcscContext, reader: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  let [s] = await ctx.getStatusChange([{ reader, state: 0 }], 0);
  while (s && !s.present) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    try {
      [s] = await ctx.getStatusChange([{ reader, state: s.state }], left);
    } catch (e) {
      if ((e as { scardName?: string }).scardName !== 'SCARD_E_TIMEOUT') throw e;
    }
  }
  return s !== undefined;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The round trip's median and p99 in ms, or the status word of a card that refuses the command. */
async function latency(card: PcscCard, apdu: Uint8Array, n: number): Promise<{ median: number; p99: number } | { refused: string }> {
  // A card without extended length (`--reader`) answers 6700 at once: that is no round trip of it.
  const r = await card.transmit(apdu);
  const sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
  if (sw !== 0x9000) return { refused: sw.toString(16).toUpperCase().padStart(4, '0') };
  for (let i = 0; i < 50; i++) await card.transmit(apdu);
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await card.transmit(apdu);
    t.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  t.sort((a, b) => a - b);
  return { median: percentile(t, 50), p99: percentile(t, 99) };
}

// scripts/ of the checkout (tsc does not copy .mjs files into dist/).
async function stackScript(): Promise<typeof import('../scripts/pcsc-stack.mjs')> {
  return (await import(new URL('scripts/pcsc-stack.mjs', CHECKOUT).href)) as typeof import('../scripts/pcsc-stack.mjs');
}

const RANDOM_GROUP = 'PcscBackend.random(8): one GET CHALLENGE';
const SELECT_SENV = fromHex('00A4040006F053454E560100');

/** The round trip's title names the path measured: the module's own stack, or the reader given. */
function roundTripTitle(reader?: string): string {
  return `APDU round trip through pcscd + ${reader ?? 'vpcd + senv virtual card'}`;
}

/** A reader with a card in it, and what gives them back once the module's groups ran. */
interface Target {
  ctx: PcscContext;
  reader: string;
  release(): Promise<void>;
}

/** pcscd, a vpcd slot and senv's virtual card, all the module's own; a string says why not. */
async function ownStack(): Promise<Target | string> {
  const { acquireSlot, acquireStack } = await stackScript();
  const stack = await acquireStack();
  if (!stack.ok) return stack.reason;
  // Given back last taken first, also when a later step of the set-up fails.
  const taken: (() => Promise<void>)[] = [() => stack.release()];
  const release = async () => {
    let failed: unknown;
    for (const give of taken.reverse()) await give().catch((e: unknown) => void (failed ??= e));
    if (failed !== undefined) throw failed;
  };
  try {
    const slot = await acquireSlot();
    taken.push(() => slot.release());
    const card = createVirtualCard({ port: slot.port, keepAlive: false });
    taken.push(() => card.vpcd.remove());
    const ctx = await PcscContext.establish();
    taken.push(() => ctx.release());
    await card.vpcd.insert();
    if (!(await waitPresent(ctx, slot.reader, 10_000))) throw new Error(`apdu: the virtual card did not appear in ${slot.reader} within 10 s`);
    return { ctx, reader: slot.reader, release };
  } catch (e) {
    await release();
    throw e;
  }
}

/**
 * `--reader`: a card that answers the senv card profile (docs/apdu-profile.md) in a reader of the
 * running pcscd, such as a hardware SE or a `senv virtual-card` elsewhere; nothing is started.
 */
async function existingReader(reader: string): Promise<Target> {
  let ctx: PcscContext;
  try {
    ctx = await PcscContext.establish();
  } catch (e) {
    throw new Error(`bench --reader: no PC/SC service to reach ${reader} through (${(e as Error).message})`);
  }
  try {
    const readers = await ctx.listReaders();
    if (!readers.includes(reader)) throw new Error(`bench --reader: pcscd has no reader named '${reader}' (${readers.length ? readers.map((r) => `'${r}'`).join(', ') : 'it lists none'})`);
    if (!(await waitPresent(ctx, reader, 5_000))) throw new Error(`bench --reader: no card in '${reader}' (waited 5 s)`);
  } catch (e) {
    await ctx.release();
    throw e;
  }
  return { ctx, reader, release: () => ctx.release() };
}

/**
 * Measures the card in `reader`: the round trip, then each Mcs operation on it beside the
 * software SE in one engine. `close()` ends the engine (without a data directory that deletes
 * every key the run left on the card; a card that keeps one makes it reject, naming the slots).
 */
/** `held.close` closes the engine (the run's keys deleted) from the moment the card may hold one of them. */
async function measureCard(opts: BenchOptions, ctx: PcscContext, reader: string, held: { close?: () => Promise<void> }): Promise<BenchGroup[]> {
  // Exclusive, as the backend's own connection is: a card another application uses would be measured with its traffic.
  const raw = await ctx.connect(reader, { share: 'exclusive' }).catch((e: unknown) => {
    throw e instanceof PcscError && e.scardName === 'SCARD_E_SHARING_VIOLATION' ? new Error(`another application holds the card in '${reader}' (${e.scardName})`) : e;
  });
  const title = roundTripTitle(opts.reader);
  try {
    // A card of another profile answers GET CHALLENGE too: it is not measured as if it were senv's.
    const selected = await raw.transmit(SELECT_SENV);
    const sw = hex(selected.subarray(selected.length - 2));
    if (sw !== '9000') throw new Error(`the card in '${reader}' has no senv applet (SELECT answered ${sw})`);
    if (selects(opts, title)) {
      const n = opts.quick ? 500 : 5000;
      console.log(`\n${title} (${n} samples, ${reader})`);
      console.log('  APDU                                  median ms      p99 ms');
      const cases: [string, Uint8Array][] = [
        ['GET CHALLENGE, 8 B response', fromHex('0084000008')],
        ['GET CHALLENGE, 1 KiB extended response', fromHex('00840000000400')],
      ];
      for (const [label, apdu] of cases) {
        const l = await latency(raw, apdu, n);
        if ('refused' in l) {
          console.log(`  ${label.padEnd(36)} refused by the card (SW ${l.refused}), not measured`);
          opts.finding?.('apdu', { check: 'round trip', reader, apdu: label, refusedSw: l.refused });
          continue;
        }
        console.log(`  ${label.padEnd(36)} ${l.median.toFixed(3).padStart(10)} ${l.p99.toFixed(3).padStart(11)}`);
        opts.finding?.('apdu', { check: 'round trip', reader, apdu: label, samples: n, medianMs: l.median, p99Ms: l.p99 });
      }
    }
  } finally {
    await raw.disconnect();
  }

  const pc = new PcscBackend({ reader, context: ctx });
  const engine = await McsEngine.create({ backends: [pc, new SoftwareBackend()] });
  held.close = () => engine.close();
  try {
    const [pcId, swId] = engine.seIds as [string, string];
    const groups: BenchGroup[] = [{
      algorithm: RANDOM_GROUP, size: 0, randomized: true,
      valid: (r) => r instanceof Uint8Array && r.length === 8,
      cases: [{ impl: 'senv PC/SC SE', async: true, fn: () => pc.random(2, 8) }],
    }];
    console.log(`\nAPDUs per Mcs operation on the PC/SC SE in ${reader} (RETRIEVE of the virtual resource)`);
    groups.push(...(await workloadGroups(opts, engine, { seId: pcId, impl: 'senv PC/SC SE', where: 'the PC/SC SE' }, swId, {
      async prepared(op, retrieve) {
        const before = pc.apdus;
        for (let i = 0; i < 20; i++) await retrieve();
        console.log(`  ${op.name.padEnd(28)} ${((pc.apdus - before) / 20).toFixed(1)} APDUs`);
        opts.finding?.('apdu', { check: 'APDUs per operation', reader, operation: op.name, apdus: (pc.apdus - before) / 20 });
      },
      notOffered: (op, reason) => opts.finding?.('apdu', { check: 'APDUs per operation', reader, operation: op.name, offered: false, reason }),
    })));
    return groups;
  } catch (e) {
    // A key the card kept is said with the failure that ended the set-up, never dropped (nor said twice).
    held.close = undefined;
    const kept = await engine.close().then(() => undefined, (c: unknown) => c as Error);
    throw kept ? new Error(`${(e as Error).message}; ${kept.message}`) : e;
  }
}

export const apduBench: BenchModule = async (opts) => {
  // The PC/SC stack comes up only for a table or report the filter selects.
  const titles = [roundTripTitle(opts.reader), groupTitle({ algorithm: RANDOM_GROUP, size: 0 }), ...opTitles()];
  if (!titles.some((t) => selects(opts, t))) return [];
  const target = opts.reader === undefined ? await ownStack() : await existingReader(opts.reader);
  if (typeof target === 'string') {
    console.log(`\napdu: skipped, no PC/SC stack (${target})`);
    return [];
  }
  // The card and the stack are given back at exit or at a signal that ends the run (a hardware SE
  // would keep the run's keys otherwise): armed before the first key is made, since without a
  // listener a signal ends the process at once, and the groups run after this function returned.
  const held: { close?: () => Promise<void> } = {};
  const giveBack = giveBackAtExit('apdu', [() => held.close?.() ?? Promise.resolve(), target.release]);
  try {
    return await measureCard(opts, target.ctx, target.reader, held);
  } catch (e) {
    await giveBack();
    throw e;
  }
};

/** `--reader`'s checks (pcscd, the reader, a card in it), which bench/run.ts makes before any module runs. */
export async function checkReader(reader: string): Promise<void> {
  await (await existingReader(reader)).release();
}

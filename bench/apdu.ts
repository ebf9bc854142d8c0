// The APDU path: round-trip latency through pcscd to a card (median and p99 of
// a plain loop) and GET CHALLENGE through the PC/SC SE; on senv's virtual card
// in the module's own pcscd and vpcd, also Mcs operations per second on the
// PC/SC SE next to the software SE in the same engine, with the number of APDUs
// each operation costs. With --reader (bench/ses.ts) it measures each card
// named instead, whose Mcs operations the backend module measures beside the
// run's other SEs. Skips (and says why) without a PC/SC stack of its own.
import { PcscBackend } from '../src/backends/pcsc/index.ts';
import { SoftwareBackend } from '../src/backends/software/index.ts';
import { McsEngine } from '../src/mcs/index.ts';
import { fromHex } from '../src/apdu/apdu.ts';
import { PcscContext, type PcscCard } from '../src/pcsc/index.ts';
import { createVirtualCard } from '../src/virtual-card/index.ts';
import { CHECKOUT, giveBackAtExit, groupTitle, selects, type BenchGroup, type BenchModule, type BenchOptions } from './harness.ts';
import { opTitles, perOperation, workloadGroups } from './se-workload.ts';
import { selectSenv, waitPresent, type NamedSe } from './ses.ts';

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

/** The round trip's title names the path measured: the module's own stack, or the reader given. */
function roundTripTitle(reader?: string): string {
  return `APDU round trip through pcscd + ${reader ?? 'vpcd + senv virtual card'}`;
}

/** pcscd, a vpcd slot and senv's virtual card, all the module's own, and what gives them back; a string says why not. */
async function ownStack(): Promise<{ ctx: PcscContext; reader: string; release(): Promise<void> } | string> {
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

/** The round trips through pcscd to the card on `card` (a connection of its own), when --filter selects them. */
async function roundTrips(opts: BenchOptions, card: PcscCard, reader: string, title: string): Promise<void> {
  if (!selects(opts, title)) return;
  const n = opts.quick ? 500 : 5000;
  const cases: [string, Uint8Array][] = [
    ['GET CHALLENGE, 8 B response', fromHex('0084000008')],
    ['GET CHALLENGE, 1 KiB extended response', fromHex('00840000000400')],
  ];
  const width = Math.max(...cases.map(([label]) => label.length));
  console.log(`\n${title} (${n} samples, ${reader})`);
  console.log(`  ${'APDU'.padEnd(width)}  median ms      p99 ms`);
  for (const [label, apdu] of cases) {
    const l = await latency(card, apdu, n);
    if ('refused' in l) {
      console.log(`  ${label.padEnd(width)} refused by the card (SW ${l.refused}), not measured`);
      opts.finding?.('apdu', { check: 'round trip', reader, apdu: label, refusedSw: l.refused });
      continue;
    }
    console.log(`  ${label.padEnd(width)} ${l.median.toFixed(3).padStart(10)} ${l.p99.toFixed(3).padStart(11)}`);
    opts.finding?.('apdu', { check: 'round trip', reader, apdu: label, samples: n, medianMs: l.median, p99Ms: l.p99 });
  }
}

/** GET CHALLENGE through each backend given, a row each (named as the row's name). */
function randomGroup(rows: readonly [string, PcscBackend][]): BenchGroup {
  return {
    algorithm: RANDOM_GROUP, size: 0, randomized: true,
    valid: (r) => r instanceof Uint8Array && r.length === 8,
    cases: rows.map(([impl, pc]) => ({ impl, subject: true, async: true, fn: () => pc.random(2, 8) })),
  };
}

/**
 * Measures senv's virtual card of the module's own stack: the round trip, then each Mcs operation
 * on it beside the software SE in one engine, with the APDUs each costs. `held.close` closes the
 * engine (the run's keys deleted) from the moment the card may hold one of them.
 */
async function measureOwnCard(opts: BenchOptions, ctx: PcscContext, reader: string, held: { close?: () => Promise<void> }): Promise<BenchGroup[]> {
  // Exclusive, as the backend's own connection is: nothing else may slip APDUs in between.
  const raw = await ctx.connect(reader, { share: 'exclusive' });
  try {
    await selectSenv(raw, reader);
    await roundTrips(opts, raw, reader, roundTripTitle());
  } finally {
    await raw.disconnect();
  }

  const pc = new PcscBackend({ reader, context: ctx });
  const engine = await McsEngine.create({ backends: [pc, new SoftwareBackend()] });
  held.close = () => engine.close();
  try {
    const [pcId, swId] = engine.seIds as [string, string];
    const groups: BenchGroup[] = [randomGroup([['senv PC/SC SE', pc]])];
    console.log(`\nAPDUs per Mcs operation on the PC/SC SE in ${reader} (RETRIEVE of the virtual resource)`);
    groups.push(...(await workloadGroups(opts, engine, [{ seId: pcId, impl: 'senv PC/SC SE', where: 'the PC/SC SE' }], swId, {
      async prepared(op, _subject, retrieve) {
        const apdus = await perOperation(() => pc.apdus, retrieve);
        console.log(`  ${op.name.padEnd(28)} ${apdus.toFixed(1)} APDUs`);
        opts.finding?.('apdu', { check: 'APDUs per operation', reader, operation: op.name, apdus });
      },
      notOffered: (op, _subject, reason) => opts.finding?.('apdu', { check: 'APDUs per operation', reader, operation: op.name, offered: false, reason }),
    })));
    return groups;
  } catch (e) {
    // A key the card kept is said with the failure that ended the set-up, never dropped (nor said twice).
    held.close = undefined;
    const kept = await engine.close().then(() => undefined, (c: unknown) => c as Error);
    throw kept ? new Error(`${(e as Error).message}; ${kept.message}`) : e;
  }
}

/**
 * The cards the run names (`--reader`, bench/ses.ts): each one's round trips, over the connection
 * its SE's backend holds, and a GET CHALLENGE row each. Their Mcs operations, with the APDUs each
 * costs, are the backend module's, beside the run's other SEs.
 */
async function measureNamedCards(opts: BenchOptions, cards: readonly NamedSe[]): Promise<BenchGroup[]> {
  for (const { card } of cards) await roundTrips(opts, card!.connection(), card!.reader, roundTripTitle(card!.reader));
  return [randomGroup(cards.map((se) => [se.name, se.card!.backend]))];
}

export const apduBench: BenchModule = async (opts) => {
  const cards = opts.ses?.ses.filter((se) => se.card) ?? [];
  // The PC/SC stack comes up only for a table or report the filter selects.
  const titles = cards.length
    ? [...cards.map((se) => roundTripTitle(se.card!.reader)), groupTitle({ algorithm: RANDOM_GROUP, size: 0 })]
    : [roundTripTitle(), groupTitle({ algorithm: RANDOM_GROUP, size: 0 }), ...opTitles()];
  if (!titles.some((t) => selects(opts, t))) return [];
  if (cards.length) return measureNamedCards(opts, cards);
  const target = await ownStack();
  if (typeof target === 'string') {
    console.log(`\napdu: skipped, no PC/SC stack (${target})`);
    return [];
  }
  // The card and the stack are given back at exit or at a signal that ends the run: armed before
  // the first key is made, since without a listener a signal ends the process at once, and the
  // groups run after this function returned.
  const held: { close?: () => Promise<void> } = {};
  const giveBack = giveBackAtExit('apdu', [() => held.close?.() ?? Promise.resolve(), target.release]);
  try {
    return await measureOwnCard(opts, target.ctx, target.reader, held);
  } catch (e) {
    await giveBack();
    throw e;
  }
};

// The benchmark harness: every group runs senv and its peers side by side in
// this process with benchmark.js, prints a table with the ratios and returns
// machine-readable records (bench/run.ts writes them as JSON).
// The machines are virtual and their speed drifts by 10-30 % over seconds, so
// a full run measures a group's cases in ROUNDS alternating rounds (forwards,
// then backwards) and takes each ratio as the median of the per-round ratios
// (ops/s: the median round), printed with the rounds' range: implementations
// measured seconds apart would otherwise compare the host's drift as much as
// the code. Every case runs once before it is timed (probe), and the rows of a
// group must compute the same bytes there, or the table would compare
// different operations.
import Benchmark from 'benchmark';
import type { NamedSes } from './ses.ts';

export interface BenchCase {
  /** 'senv' (or 'senv simd' / 'senv scalar') for ours; the peer's name otherwise. */
  impl: string;
  /**
   * A row measured against the group's peers (ratios beside it), whatever its name: an SE the run
   * names (`senv bench --backend`, `--reader`). Without it, the rows named 'senv…' are.
   */
  subject?: boolean;
  fn: () => unknown;
  /** fn returns a promise: measured per resolved call (benchmark.js `defer`). */
  async?: boolean;
  /** Runs before this case is measured (e.g. initSync({ build: 'scalar' })). */
  setup?: () => void;
  /**
   * Reads fn's result as the bytes every row of the group must agree on (probe only, so the
   * timed call pays no conversion). Default: the result itself when it is bytes, a list of
   * byte arrays (joined) or text. false: this row times a stand-in that computes something else.
   */
  output?: ((result: unknown) => Uint8Array | undefined) | false;
}

export interface BenchGroup {
  algorithm: string;
  /** Input bytes per operation (0 when throughput in bytes means nothing, e.g. ECDSA sign). */
  size: number;
  /** Messages per operation for batch APIs (ops/s are multiplied by it in the msgs/s column). */
  batch?: number;
  cases: BenchCase[];
  /** The rows' outputs differ by design (random bytes, keys, randomized signatures): not compared. */
  randomized?: boolean;
  /**
   * For a randomized group: whether a row's result is what its name says (a signature that
   * verifies, a valid key, the bytes asked for), checked on every row before timing, the peers'
   * too: a peer that signs with another hash, or returns less, would be timed doing less work.
   */
  valid?: (result: unknown) => boolean | Promise<boolean>;
}

export interface BenchOptions {
  quick: boolean;
  filter?: RegExp;
  /**
   * Records a result that is not a throughput (timing-leak statistics,
   * memory figures): bench/run.ts writes them to the JSON under `findings`.
   */
  finding?: (module: string, data: Record<string, unknown>) => void;
  /**
   * The SEs the run names (`senv bench --backend`, `--reader`), made by bench/run.ts: the backend
   * module measures them side by side, and the apdu module the cards among them instead of
   * starting its own stack with senv's virtual card.
   */
  ses?: NamedSes;
}

export interface BenchRecord {
  implementation: string;
  algorithm: string;
  size: number;
  batch: number;
  opsPerSec: number;
  msgsPerSec: number;
  mbPerSec: number;
  rme: number;
  samples: number;
  /** The measured rows' records only (senv's, or a subject's): its ops/s divided by each peer's ops/s in this run (the median of the rounds' ratios). */
  ratios: Record<string, number>;
  /** The measured rows' records only: the lowest and highest of the rounds' ratios behind each median. */
  ratioRanges: Record<string, [number, number]>;
}

/** One module of bench/: returns its groups (setup may be async). */
export type BenchModule = (opts: BenchOptions) => Promise<BenchGroup[]> | BenchGroup[];

/**
 * Whether --filter selects a table or report titled `title`. A module's reports (cold starts,
 * memory, round trips) and the set-up they need run only when selected, as groups are.
 */
export function selects(opts: BenchOptions, title: string): boolean {
  return !opts.filter || opts.filter.test(title);
}

/** A group's title, as tables print it and --filter matches it. */
export function groupTitle(g: Pick<BenchGroup, 'algorithm' | 'size' | 'batch'>): string {
  return `${g.algorithm} ${sizeLabel(g.size)}${g.batch ? ` x${g.batch}` : ''}`;
}

export function sizeLabel(n: number): string {
  if (n === 0) return '-';
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n >> 20} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n >> 10} KiB`;
  return `${n} B`;
}

export const ROUNDS = 7;

/** benchmark.js's maxTime for one case in one round, in seconds: a quick run's one round is longer. */
export const roundSeconds = (quick: boolean) => (quick ? 0.25 : 0.2);

/** The checkout's root, whether bench/ runs from its sources or from dist/bench/. */
export const CHECKOUT = new URL(import.meta.url.includes('/dist/bench/') ? '../../' : '../', import.meta.url);

interface Measured { hz: number; rme: number; samples: number }

async function measure(c: BenchCase, quick: boolean): Promise<Measured> {
  c.setup?.();
  const timing = { maxTime: roundSeconds(quick), minSamples: 5, initCount: 1 };
  let bench: Benchmark;
  if (c.async) {
    // Boxed: a promise may reject with undefined, which is a failure all the same.
    let failure: { error: unknown } | undefined;
    bench = new Benchmark(c.impl, {
      ...timing,
      defer: true,
      fn: (d: { resolve(): void; benchmark: Benchmark }) => {
        (c.fn() as Promise<unknown>).then(() => d.resolve(), (error: unknown) => {
          failure = { error };
          d.benchmark.abort();
        });
      },
    });
    await new Promise<void>((resolve) => bench.on('complete', () => resolve()).on('abort', () => resolve()).run({ async: true }));
    if (failure) throw failure.error ?? new Error(`bench: ${c.impl} rejected (with ${String(failure.error)}) while timed`);
  } else {
    bench = new Benchmark(c.impl, c.fn, timing);
    bench.run({ async: false });
  }
  if (bench.error) throw bench.error;
  return { hz: bench.hz, rme: bench.stats.rme, samples: bench.stats.sample.length };
}

const isSubject = (c: BenchCase) => c.subject ?? c.impl.startsWith('senv');

function asBytes(x: unknown): Uint8Array | undefined {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (typeof x === 'string') return new TextEncoder().encode(x);
  // A verdict (a verification): every row must reach the same one (false is refused in probe()).
  if (x === true) return Uint8Array.of(1);
  if (Array.isArray(x) && x.length > 0 && x.every((e) => e instanceof Uint8Array)) {
    const out = new Uint8Array(x.reduce((n: number, e: Uint8Array) => n + e.length, 0));
    let at = 0;
    for (const e of x as Uint8Array[]) {
      out.set(e, at);
      at += e.length;
    }
    return out;
  }
  return undefined;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Runs a case once before it is timed: one that throws, or answers false (a
 * verification that does not verify returns early), would be timed doing
 * something else than the operation its row names. Returns its output bytes.
 */
async function probe(c: BenchCase, g: BenchGroup, title: string): Promise<Uint8Array | undefined> {
  c.setup?.();
  const out = c.async ? await (c.fn() as Promise<unknown>) : c.fn();
  if (out === false) throw new Error(`bench: ${c.impl} answered false before timing: its row would time a failing call`);
  if (g.valid && !(await g.valid(out))) throw new Error(`bench: ${title}: ${c.impl} gave an invalid result before timing`);
  return c.output === false ? undefined : c.output ? c.output(out) : asBytes(out);
}

/**
 * Every row that has output bytes must have the first such row's; a row of a
 * compared group with nothing to compare must say so (output: false).
 */
async function probeGroup(g: BenchGroup, title: string): Promise<void> {
  let first: { impl: string; bytes: Uint8Array } | undefined;
  for (const c of g.cases) {
    const bytes = await probe(c, g, title);
    if (g.randomized) continue;
    if (!bytes) {
      if (c.output === false) continue;
      throw new Error(`bench: ${title}: ${c.impl} returns nothing to compare (give the case an output, or output: false)`);
    }
    if (!first) first = { impl: c.impl, bytes };
    else if (!sameBytes(first.bytes, bytes)) {
      throw new Error(`bench: ${title}: ${c.impl} computes other bytes than ${first.impl}: its row would time another operation`);
    }
  }
}

/**
 * A ratio as the table prints it: two decimals, or two significant digits below 0.1, where two
 * decimals left a card beside the software SE (100 to 1,000 times slower) at 0.00x or 0.01x.
 */
const ratio = (x: number): string => (x >= 0.1 ? x.toFixed(2) : x.toPrecision(2));

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The ± of the median round (the larger of the middle two for an even count), as the records say: not a median of margins. */
function medianRoundRme(ms: Measured[]): number {
  const s = [...ms].sort((a, b) => a.hz - b.hz);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]!.rme : Math.max(s[mid - 1]!.rme, s[mid]!.rme);
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

export async function runGroups(groups: BenchGroup[], opts: BenchOptions, log: (s: string) => void = console.log): Promise<BenchRecord[]> {
  const records: BenchRecord[] = [];
  for (const g of groups) {
    const title = groupTitle(g);
    if (opts.filter && !opts.filter.test(title)) continue;
    const batch = g.batch ?? 1;
    await probeGroup(g, title);
    const runs: Measured[][] = g.cases.map(() => []);
    for (let round = 0; round < (opts.quick ? 1 : ROUNDS); round++) {
      // Forwards, then backwards: drift within a round, or the garbage a row leaves to the next,
      // falls on each side in turn rather than always on the rows measured last.
      const order = [...g.cases.entries()];
      if (round % 2) order.reverse();
      for (const [i, c] of order) runs[i]!.push(await measure(c, opts.quick));
    }
    const rows = g.cases.map((c, i) => {
      const ms = runs[i]!;
      return { c, runs: ms, hz: median(ms.map((m) => m.hz)), rme: medianRoundRme(ms), samples: ms.reduce((n, m) => n + m.samples, 0) };
    });
    const peers = rows.filter((r) => !isSubject(r.c));
    log(`\n${title}`);
    for (const r of rows) {
      const ours = isSubject(r.c);
      const ratios: Record<string, number> = {};
      const ratioRanges: Record<string, [number, number]> = {};
      if (ours) {
        for (const p of peers) {
          const perRound = r.runs.map((m, k) => m.hz / p.runs[k]!.hz);
          ratios[p.c.impl] = median(perRound);
          ratioRanges[p.c.impl] = [Math.min(...perRound), Math.max(...perRound)];
        }
      }
      const mb = (r.hz * batch * g.size) / 1e6;
      records.push({
        implementation: r.c.impl, algorithm: g.algorithm, size: g.size, batch,
        opsPerSec: r.hz, msgsPerSec: r.hz * batch, mbPerSec: mb, rme: r.rme, samples: r.samples, ratios, ratioRanges,
      });
      // The rounds' range beside each median ratio: what the ± of one round's timing cannot show.
      const range = (p: string) => (opts.quick ? '' : ` [${ratio(ratioRanges[p]![0])}-${ratio(ratioRanges[p]![1])}]`);
      const ratioText = Object.entries(ratios).map(([p, x]) => `${ratio(x)}x${range(p)} ${p}`).join(', ');
      log(
        `  ${r.c.impl.padEnd(22)} ${fmt(r.hz * batch).padStart(12)} ${batch > 1 ? 'msg/s' : 'op/s '} ` +
          `${g.size ? `${fmt(mb).padStart(9)} MB/s` : ''.padStart(14)}  ±${r.rme.toFixed(1)}%  ${ratioText}`,
      );
    }
  }
  return records;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Every module's give-back of this run: a signal waits for all of them before it ends the process. */
const giveBacks: (() => Promise<void>)[] = [];

function onSignal(sig: NodeJS.Signals): void {
  void Promise.all(giveBacks.map((finish) => finish())).then(() => {
    for (const s of SIGNALS) process.off(s, onSignal);
    process.kill(process.pid, sig);
  });
}

/**
 * Gives back what a module, or the run, holds (an engine with the run's keys, a card, a stack) once,
 * when the run ends: groups run after their module returned, so at exit, or at a signal that ends
 * the run, which then ends the process as it would have once every holder gave back what it holds
 * (two may hold keys: the apdu module's own virtual card, and the engine of the SEs the run names,
 * bench/ses.ts); or when the holder calls the function returned (its set-up failed). Each step runs
 * also when one before failed; a failure is said on stderr, naming the holder, and fails the run (a
 * device may keep a key).
 */
export function giveBackAtExit(module: string, steps: readonly (() => Promise<void>)[]): () => Promise<void> {
  let finishing: Promise<void> | undefined;
  const finish = () => (finishing ??= (async () => {
    for (const step of steps) {
      try {
        await step();
      } catch (e) {
        console.error(`${module}: ${(e as Error).message}`);
        process.exitCode ||= 1;
      }
    }
  })());
  if (giveBacks.push(finish) === 1) for (const sig of SIGNALS) process.on(sig, onSignal);
  process.once('beforeExit', () => void finish());
  return finish;
}

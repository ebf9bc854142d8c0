// Entry point of `senv bench` (and `node dist/bench/run.js`): runs the bench
// modules, prints the tables, writes the --out file or bench/results/<timestamp>.json and latest.json.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { arch, cpus, platform, release } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchModules } from './index.ts';
import { openNamedSes } from './ses.ts';
import { CHECKOUT, ROUNDS, roundSeconds, runGroups, type BenchRecord, type BenchOptions } from './harness.ts';
import { initSync, coreBuilds, type CoreBuild, type CoreInfo } from '../src/index.ts';
import { parseOptions, UsageError } from '../src/bindings/args.ts';

/** The versions of senv and of the peers it is measured against, as installed in the checkout. */
function versions(): Record<string, string> {
  const read = (dir: string) => {
    try {
      return (JSON.parse(readFileSync(new URL(`${dir}package.json`, CHECKOUT), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  return Object.fromEntries([['senv', ''], ...['@noble/ciphers', '@noble/curves', '@noble/hashes', 'hash-wasm', 'benchmark'].map((p) => [p, `node_modules/${p}/`])]
    .map(([name, dir]) => [name, read(dir!)]));
}

/**
 * The commit the checkout is at, and whether its tracked files differ from it: the package's
 * version stays the same over many changes, so it alone does not say which code was measured.
 * Left out where git or the repository is not there (a tarball of the checkout).
 */
function checkout(): { commit: string; modified: boolean } | undefined {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: fileURLToPath(CHECKOUT), encoding: 'utf8' });
  const head = git('rev-parse', 'HEAD');
  if (head.status !== 0) return undefined;
  return { commit: head.stdout.trim(), modified: git('status', '--porcelain', '--untracked-files=no').stdout.trim() !== '' };
}

// What a user pays on first load, measured in a fresh process (median of
// three): in this one, the bench modules just imported compete with the
// compilation for the two cores and inflate the figure several times.
function coldInstantiation(build: CoreBuild): CoreInfo {
  const senvUrl = new URL('../src/index.js', import.meta.url).href;
  const script = `const { init } = await import(${JSON.stringify(senvUrl)}); console.log(JSON.stringify(await init({ build: '${build}' })));`;
  const runs = [0, 1, 2].map(() => {
    const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cold instantiation of the ${build} build failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as CoreInfo;
  });
  return runs.sort((a, b) => a.instantiateMs - b.instantiateMs)[1]!;
}

export interface BenchArgs {
  quick: boolean;
  only?: string[];
  filter?: string;
  out?: string;
  /** Each --reader, in the order given. */
  readers?: string[];
  /** Each --backend, in the order given. */
  backends?: string[];
}

/** Checked before the start-up measurement spends seconds on child processes. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const o = parseOptions(argv, { '--quick': 'flag', '--only': 'value', '--filter': 'value', '--out': 'value', '--reader': 'values', '--backend': 'values' }, 'bench');
  const args: BenchArgs = { quick: o.has('--quick') };
  const only = o.get('--only') as string | undefined;
  if (only !== undefined) {
    const modules = only.split(',');
    const unknown = modules.find((m) => !Object.hasOwn(benchModules, m));
    if (unknown !== undefined) throw new UsageError(`bench: unknown module '${unknown}' (${Object.keys(benchModules).join(', ')})`);
    const twice = modules.find((m, i) => modules.indexOf(m) !== i);
    if (twice !== undefined) throw new UsageError(`bench: --only names '${twice}' twice`);
    args.only = modules;
  }
  const filter = o.get('--filter') as string | undefined;
  if (filter !== undefined) {
    try {
      new RegExp(filter);
    } catch {
      throw new UsageError(`bench: --filter is not a regular expression: ${filter}`);
    }
    args.filter = filter;
  }
  const out = o.get('--out') as string | undefined;
  if (out !== undefined) args.out = checkOut(out);
  const readers = o.get('--reader') as string[] | undefined;
  if (readers !== undefined) {
    if (readers.includes('')) throw new UsageError('bench: --reader needs a reader name (as pcsc_scan or `pcsc.listReaders()` print it)');
    // One run's SE holds its card over an exclusive connection: a second could not have it.
    const twice = readers.find((r, i) => readers.indexOf(r) !== i);
    if (twice !== undefined) throw new UsageError(`bench: --reader names '${twice}' twice (a card is one SE)`);
    if (args.only && !args.only.includes('apdu') && !args.only.includes('backend')) throw new UsageError('bench: --reader is for the apdu and backend modules, which --only leaves out');
    args.readers = readers;
  }
  const backends = o.get('--backend') as string[] | undefined;
  if (backends !== undefined) {
    if (backends.includes('')) throw new UsageError('bench: --backend needs an ES module (a file or a package specifier) whose default export or createBackend gives a SecureEnvironmentBackend');
    if (args.only && !args.only.includes('backend')) throw new UsageError('bench: --backend is for the backend module, which --only leaves out');
    args.backends = backends;
  }
  return args;
}

/** A file the results can be written to, checked now rather than after a run of many minutes. */
function checkOut(out: string): string {
  if (out === '') throw new UsageError('bench: --out needs a file name');
  const file = resolve(out);
  const kind = (p: string) => {
    try {
      return statSync(p).isDirectory() ? 'directory' : 'file';
    } catch {
      return 'none';
    }
  };
  if (kind(file) === 'directory') throw new UsageError(`bench: --out ${out} is a directory, not a file`);
  if (kind(dirname(file)) !== 'directory') throw new UsageError(`bench: --out ${out}: there is no directory ${dirname(file)}`);
  try {
    accessSync(kind(file) === 'file' ? file : dirname(file), constants.W_OK);
  } catch {
    throw new UsageError(`bench: --out ${out} cannot be written`);
  }
  return out;
}

export async function runBench(args: BenchArgs): Promise<BenchRecord[]> {
  const findings: Record<string, unknown>[] = [];
  const opts: BenchOptions = {
    quick: args.quick,
    ...(args.filter ? { filter: new RegExp(args.filter) } : {}),
    finding: (module, data) => void findings.push({ module, ...data }),
  };
  // The default place for the results exists before the run, not only after it.
  const dir = new URL('bench/results/', CHECKOUT);
  if (args.out === undefined) await mkdir(dir, { recursive: true });
  const names = args.only ?? Object.keys(benchModules);
  // A reader without a senv card, or a module that gives no backend, fails the run now, not after
  // the modules before apdu and backend ran for minutes; the SEs they give serve the whole run.
  if (args.readers || args.backends) opts.ses = await openNamedSes(args.backends ?? [], args.readers ?? []);
  const named = (key: 'module' | 'reader') => opts.ses?.ses.map((se) => se.record).filter((r) => key in r) ?? [];
  const startup = coreBuilds().map(coldInstantiation);
  console.log('senv core (fresh process, median of 3):');
  for (const s of startup) console.log(`  ${s.build.padEnd(7)} ${s.moduleBytes} bytes, instantiated in ${s.instantiateMs.toFixed(2)} ms`);
  if (!coreBuilds().includes('relaxed')) {
    console.log('  relaxed not taken by this runtime (Relaxed SIMD; on Node 20: node --experimental-wasm-relaxed-simd bin/senv.js bench)');
  }
  initSync();
  const records: BenchRecord[] = [];
  for (const name of names) {
    const mod = benchModules[name]!;
    records.push(...(await runGroups(await mod(opts), opts)));
  }
  // A timing-leak probe reports a finding, not a record.
  if (args.filter !== undefined && records.length === 0 && findings.length === 0) throw new Error(`bench: --filter ${args.filter} matched no group or probe of ${names.join(', ')}`);
  const at = checkout();
  const result = {
    date: new Date().toISOString(),
    // OpenSSL is node:crypto's and WebCrypto's implementation: the peer behind those rows.
    runtime: `node ${process.versions.node} (V8 ${process.versions.v8}, OpenSSL ${process.versions.openssl})`,
    // What a machine comparing runs needs beside the figures: what ran, where, and how.
    versions: versions(),
    ...(at ? { checkout: at } : {}),
    machine: { os: `${platform()} ${release()}`, arch: arch(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
    execArgv: process.execArgv,
    options: { quick: args.quick, only: names, ...(args.filter ? { filter: args.filter } : {}), ...(args.backends ? { backends: named('module') } : {}), ...(args.readers ? { readers: named('reader') } : {}), roundsPerRatio: args.quick ? 1 : ROUNDS, secondsPerRound: roundSeconds(args.quick) },
    // Every field of a record, so that a figure published from the file says what it is.
    units: {
      size: 'bytes of data per message, the decoded bytes for base64 decoding (0: an operation whose input size means no throughput, as ECDSA\'s)',
      batch: 'messages per call (1 but for batch APIs)',
      opsPerSec: 'calls per second, of the median round',
      msgsPerSec: 'messages per second (opsPerSec x batch)',
      mbPerSec: '10^6 bytes per second (opsPerSec x batch x size)',
      rme: 'percent (relative margin of error of the median round)',
      samples: 'benchmark.js samples, summed over the rounds',
      ratios: 'of a measured row (senv\'s, or an SE the run names): its opsPerSec / the peer\'s, each round\'s ratio, the median of the rounds',
      ratioRanges: 'of a measured row: the lowest and highest of the rounds\' ratios behind each median (equal in a quick run\'s one round)',
    },
    quick: args.quick,
    core: startup,
    records,
    findings,
  };
  const json = JSON.stringify(result, null, 1);
  // --out names the one file; otherwise bench/results/ of the checkout (from bench/ or dist/bench/)
  // keeps each run, and latest.json the last (a run given --out is not the checkout's latest).
  let outFile = args.out;
  if (outFile === undefined) {
    outFile = fileURLToPath(new URL(`bench-${result.date.replace(/[:.]/g, '-')}.json`, dir));
    await writeFile(new URL('latest.json', dir), json);
  }
  await writeFile(outFile, json);
  console.log(`\nwrote ${outFile}`);
  return records;
}

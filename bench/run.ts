// Entry point of `senv bench` (and `node dist/bench/run.js`): runs the bench
// modules, prints the tables, writes the --out file or bench/results/<timestamp>.json and latest.json.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { arch, cpus, platform, release } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchModules } from './index.ts';
import { checkReader } from './apdu.ts';
import { backendRecord, loadBackend } from './backend.ts';
import { CHECKOUT, ROUNDS, runGroups, type BenchRecord, type BenchOptions } from './harness.ts';
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
  reader?: string;
  backend?: string;
}

/** Checked before the start-up measurement spends seconds on child processes. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const o = parseOptions(argv, { '--quick': 'flag', '--only': 'value', '--filter': 'value', '--out': 'value', '--reader': 'value', '--backend': 'value' }, 'bench');
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
  const reader = o.get('--reader') as string | undefined;
  if (reader !== undefined) {
    if (reader === '') throw new UsageError('bench: --reader needs a reader name (as pcsc_scan or `pcsc.listReaders()` print it)');
    if (args.only && !args.only.includes('apdu')) throw new UsageError('bench: --reader is for the apdu module, which --only leaves out');
    args.reader = reader;
  }
  const backend = o.get('--backend') as string | undefined;
  if (backend !== undefined) {
    if (backend === '') throw new UsageError('bench: --backend needs an ES module (a file or a package specifier) whose default export or createBackend gives a SecureEnvironmentBackend');
    if (args.only && !args.only.includes('backend')) throw new UsageError('bench: --backend is for the backend module, which --only leaves out');
    args.backend = backend;
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
    ...(args.reader !== undefined ? { reader: args.reader } : {}),
    finding: (module, data) => void findings.push({ module, ...data }),
  };
  // The default place for the results exists before the run, not only after it.
  const dir = new URL('bench/results/', CHECKOUT);
  if (args.out === undefined) await mkdir(dir, { recursive: true });
  const names = args.only ?? Object.keys(benchModules);
  // A reader that is not there fails the run now, not after the modules before apdu ran for minutes.
  if (args.reader !== undefined && names.includes('apdu')) await checkReader(args.reader);
  // So does a backend module that gives no backend; the one it gives serves the whole run.
  if (args.backend !== undefined && names.includes('backend')) opts.backend = await loadBackend(args.backend);
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
  const result = {
    date: new Date().toISOString(),
    // OpenSSL is node:crypto's and WebCrypto's implementation: the peer behind those rows.
    runtime: `node ${process.versions.node} (V8 ${process.versions.v8}, OpenSSL ${process.versions.openssl})`,
    // What a machine comparing runs needs beside the figures: what ran, where, and how.
    versions: versions(),
    machine: { os: `${platform()} ${release()}`, arch: arch(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
    execArgv: process.execArgv,
    options: { quick: args.quick, only: names, ...(args.filter ? { filter: args.filter } : {}), ...(args.reader !== undefined ? { reader: args.reader } : {}), ...(opts.backend ? { backend: backendRecord(opts.backend) } : {}), roundsPerRatio: args.quick ? 1 : ROUNDS },
    units: { opsPerSec: 'calls per second', msgsPerSec: 'messages per second (batch calls)', mbPerSec: '10^6 bytes per second', rme: 'percent (relative margin of error of the median round)', ratios: 'senv opsPerSec / the peer\'s, median of the rounds' },
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

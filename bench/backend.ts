// A backend of the user's own (`senv bench --backend <module>`: an HSM through PKCS#11, a TEE, a
// remote SE) measured with the Mcs workload senv's own SEs run (se-workload.ts), beside the
// software SE in one engine. bench/run.ts loads the module and creates the engine before any module
// runs, so that a module that cannot give a backend fails the run at once; the engine is closed
// (the run's keys deleted) at exit or at a signal that ends the run.
import { existsSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BackendDescription, SecureEnvironmentBackend } from '../src/backends/backend.ts';
import { SoftwareBackend } from '../src/backends/software/index.ts';
import { shown } from '../src/core/errors.ts';
import { McsEngine } from '../src/mcs/index.ts';
import { giveBackAtExit, selects, type BenchModule } from './harness.ts';
import { opTitles, workloadGroups } from './se-workload.ts';

export interface LoadedBackend {
  /** The module as given to --backend. */
  module: string;
  /** Its rows' name: the file's name, or the package specifier. */
  title: string;
  description: BackendDescription;
  engine: McsEngine;
  /** Its SE and the software SE's in the engine. */
  seId: string;
  softwareId: string;
}

const failure = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : shown(e));

/**
 * Imports `spec` (a file, resolved against the current directory, or a package specifier, resolved
 * as senv's own imports are, so that the module shares this senv's key handles), calls its default
 * export or `createBackend`, and creates an engine with the backend it gives and a software SE.
 * Each way that fails throws an error naming the module and the reason.
 */
export async function loadBackend(spec: string): Promise<LoadedBackend> {
  const fail = (reason: string) => new Error(`bench --backend ${spec}: ${reason}`);
  const file = resolve(spec);
  const isFile = existsSync(file) || isAbsolute(spec) || /^\.\.?[\\/]/.test(spec);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(isFile ? pathToFileURL(file).href : spec)) as Record<string, unknown>;
  } catch (e) {
    throw fail(`cannot be loaded (${failure(e)})`);
  }
  const make = typeof mod['default'] === 'function' ? mod['default'] : mod['createBackend'];
  if (typeof make !== 'function') {
    const names = Object.keys(mod);
    throw fail(`exports no function giving a backend (a default export or createBackend; it exports ${names.length ? names.join(', ') : 'nothing'})`);
  }
  let backend: unknown;
  try {
    backend = await (make as () => unknown)();
  } catch (e) {
    throw fail(`its function failed (${failure(e)})`);
  }
  if (typeof (backend as Partial<SecureEnvironmentBackend> | null)?.open !== 'function') {
    throw fail(`its function gave ${shown(backend)}, not a SecureEnvironmentBackend (docs/mcs.md "Writing a backend")`);
  }
  const se = backend as SecureEnvironmentBackend;
  const software = new SoftwareBackend();
  let engine: McsEngine;
  try {
    engine = await McsEngine.create({ backends: [se, software] });
  } catch (e) {
    // A create that fails leaves the backends open (for a retry): the run made them, so it closes them.
    // A close() that throws at once is told as one that rejects (the engine does the same).
    const [closed] = await Promise.allSettled([se, software].map((b) => Promise.resolve().then(() => b.close())));
    const kept = closed!.status === 'rejected' ? `; closing it failed too (${failure(closed!.reason)})` : '';
    throw fail(`McsEngine.create refused it (${failure(e)})${kept}`);
  }
  giveBackAtExit('backend', [() => engine.close()]);
  const [seId, softwareId] = engine.seIds as [string, string];
  return {
    module: spec,
    title: isFile ? basename(file) : spec,
    // A copy, as the JSON keeps it: a backend's object may change after open().
    description: JSON.parse(JSON.stringify(se.description)) as BackendDescription,
    engine, seId, softwareId,
  };
}

/** What the JSON says of the backend, in `options` and in each of this module's findings. */
export const backendRecord = (b: LoadedBackend) => ({ module: b.module, description: b.description });

export const backendBench: BenchModule = async (opts) => {
  const b = opts.backend;
  if (b === undefined) {
    console.log('\nbackend: skipped, no --backend module given');
    return [];
  }
  if (!opTitles().some((t) => selects(opts, t))) return [];
  const { manufacturer, model } = b.description;
  console.log(`\nMcs operations on ${b.title} (${manufacturer} ${model}) beside the software SE (RETRIEVE of the virtual resource)`);
  const finding = (operation: string, more: Record<string, unknown>) =>
    opts.finding?.('backend', { check: 'operation', backend: backendRecord(b), operation, ...more });
  return workloadGroups(opts, b.engine, { seId: b.seId, impl: b.title, where: b.title }, b.softwareId, {
    async prepared(op) {
      console.log(`  ${op.name.padEnd(28)} offered, timed below`);
      finding(op.name, { offered: true });
    },
    notOffered: (op, reason) => finding(op.name, { offered: false, reason }),
  });
};

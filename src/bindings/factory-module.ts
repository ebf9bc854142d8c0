// An ES module a command-line option names, whose function makes what the command needs from
// the user's own code: `bench --backend`'s SE backend, `rotate-master-key --rollback-anchor`'s
// anchor. One loader, so that both options resolve a module and say why one fails alike.
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { shown } from '../core/args.ts';

/** A thrown value as a message may show it: its class and message, never its other properties. */
export const failure = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : shown(e));

/** The file an option's value names, or undefined for a package specifier. */
export function moduleFile(spec: string): string | undefined {
  const file = resolve(spec);
  return existsSync(file) || isAbsolute(spec) || /^\.\.?[\\/]/.test(spec) ? file : undefined;
}

/** What an option's module must give. */
export interface FactoryModule<T> {
  /** The command and option, as the messages name them: 'bench --backend'. */
  option: string;
  /** The named export taken when there is no default export: 'createBackend'. */
  factory: string;
  /** What the function gives, for the messages: 'a backend'. */
  noun: string;
  /** The type it must be, for the messages, with where its contract is written. */
  type: string;
  /** Whether a value is one (a shape check: the command's own use checks the rest). */
  accepts: (value: unknown) => value is T;
}

/**
 * Imports `spec` (a file, resolved against the current directory, or a package specifier, resolved
 * as senv's own imports are, so that the module shares this senv's classes and key handles) and
 * calls its default export or its named factory. Each way that fails throws an error naming the
 * option, the module and the reason.
 */
export async function loadFactoryModule<T>(spec: string, m: FactoryModule<T>): Promise<T> {
  const fail = (reason: string) => new Error(`${m.option} ${spec}: ${reason}`);
  const file = moduleFile(spec);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(file ? pathToFileURL(file).href : spec)) as Record<string, unknown>;
  } catch (e) {
    throw fail(`cannot be loaded (${failure(e)})`);
  }
  const make = typeof mod['default'] === 'function' ? mod['default'] : mod[m.factory];
  if (typeof make !== 'function') {
    const names = Object.keys(mod);
    throw fail(`exports no function giving ${m.noun} (a default export or ${m.factory}; it exports ${names.length ? names.join(', ') : 'nothing'})`);
  }
  let made: unknown;
  try {
    made = await (make as () => unknown)();
  } catch (e) {
    throw fail(`its function failed (${failure(e)})`);
  }
  if (!m.accepts(made)) throw fail(`its function gave ${shown(made)}, not ${m.type}`);
  return made;
}

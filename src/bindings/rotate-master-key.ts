// `senv rotate-master-key`: a data directory moved to a new master key while no engine has it
// open (a service stopped for it), as McsEngine.rotateMasterKey moves it while one runs. The
// engine it opens hosts no SE, so that it loads no backend and adds no SE to the directory: the
// rotation seals every SE's data again all the same (docs/mcs.md "Rotating the master key").
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { McsEngine } from '../mcs/engine.ts';
import type { RollbackAnchor } from '../mcs/store/anchor.ts';
import { parseOptions, UsageError } from './args.ts';
import { failure, loadFactoryModule } from './factory-module.ts';

const NAME = 'rotate-master-key';

/** One key source of two options, the file or the variable, or neither; both is a usage error. */
function keySource(o: Map<string, unknown>, file: string, env: string): { masterKeyFile: string } | { masterKeyEnv: string } | undefined {
  const f = o.get(file) as string | undefined;
  const v = o.get(env) as string | undefined;
  if (f !== undefined && v !== undefined) throw new UsageError(`${NAME}: ${file} and ${env} name the same key: give one`);
  for (const [name, value] of [[file, f], [env, v]] as const) {
    if (value === '') throw new UsageError(`${NAME}: ${name} takes a ${name === file ? 'file' : 'variable'} name, not an empty string`);
  }
  return f !== undefined ? { masterKeyFile: f } : v !== undefined ? { masterKeyEnv: v } : undefined;
}

/**
 * Whether nothing is at `path`. One that cannot be looked at (EACCES, or a permission Deno does not
 * grant) is not missing: the open that follows cannot make a directory there either, and its error
 * names the refusal (on Deno, the flags), where "holds no meta.json" would send the operator astray.
 */
function missing(path: string): boolean {
  try {
    statSync(path);
    return false;
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    return code === 'ENOENT' || code === 'ENOTDIR';
  }
}

export async function runRotateMasterKey(argv: string[]): Promise<number> {
  const o = parseOptions(argv, {
    '--data-dir': 'value', '--key-file': 'value', '--key-env': 'value',
    '--new-key-file': 'value', '--new-key-env': 'value', '--rollback-anchor': 'value',
  }, NAME);
  const dir = o.get('--data-dir') as string | undefined;
  if (!dir) throw new UsageError(`${NAME}: --data-dir names the data directory`);
  // Files or variables only: a key on the command line would be in every user's `ps` and in the shell's history.
  const key = keySource(o, '--key-file', '--key-env');
  const newKey = keySource(o, '--new-key-file', '--new-key-env');
  if (!newKey) throw new UsageError(`${NAME}: --new-key-file or --new-key-env gives the new master key`);
  const anchorSpec = o.get('--rollback-anchor') as string | undefined;
  if (anchorSpec === '') throw new UsageError(`${NAME}: --rollback-anchor takes a module, not an empty string`);

  // McsEngine.create makes a directory it does not find: a mistyped name must not become a new one.
  if (missing(join(dir, 'meta.json'))) {
    console.error(`${NAME}: ${dir} is no senv data directory (it holds no meta.json): nothing was changed`);
    return 1;
  }
  // The errors name the directory and which key it is under, never a key's bytes.
  const fail = (e: unknown, what = '') => void console.error(`${NAME}: ${what}${failure(e)}`);
  let engine: McsEngine | undefined;
  let failed = false;
  try {
    // A directory kept with a rollback anchor is rotated with it: without, the anchor would go on
    // naming a head the rotation replaced, and its next open would be refused as rolled back.
    const rollbackAnchor = anchorSpec === undefined ? undefined : await loadFactoryModule(anchorSpec, {
      option: `${NAME} --rollback-anchor`, factory: 'createRollbackAnchor', noun: 'an anchor',
      type: 'a RollbackAnchor (docs/mcs.md "Rollback")',
      accepts: (a): a is RollbackAnchor => typeof (a as Partial<RollbackAnchor> | null)?.read === 'function' && typeof (a as Partial<RollbackAnchor>).write === 'function',
    });
    engine = await McsEngine.create({ dataDir: dir, ...key, rollbackAnchor, backends: [] });
    await engine.rotateMasterKey(newKey);
  } catch (e) {
    fail(e);
    failed = true;
  }
  // Closed whatever happened: the lock released, a committed rotation's last renames done.
  await engine?.close().catch((e: unknown) => {
    fail(e, 'closing the data directory failed: ');
    failed = true;
  });
  if (failed) return 1;
  console.log(`${NAME}: ${dir} is under the new master key; the old one no longer opens it (copies taken before stay under the old one)`);
  return 0;
}

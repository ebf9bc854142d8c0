// The data directory fixtures (fixtures/mcs-rotator.mjs, fixtures/mcs-steps.mjs) run in a child
// process by Deno, on senv's sources, or by Node, on its dist/ (built by npm install): for the tests
// of a directory that one runtime writes and the other opens. Deno gets only the permissions a test
// names, so that it also shows what a deployment with narrowed permissions meets.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export type Runtime = 'deno' | 'node';

const DENO = fileURLToPath(new URL('../../node_modules/deno/deno', import.meta.url));
const SRC = fileURLToPath(new URL('../../src/index.ts', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/src/index.js', import.meta.url));
export const ROTATOR = fileURLToPath(new URL('./fixtures/mcs-rotator.mjs', import.meta.url));
const STEPS = fileURLToPath(new URL('./fixtures/mcs-steps.mjs', import.meta.url));

/** What Deno may do beside reading senv's sources: read `read` and `write`, write `write`, read the variables `env`. */
export interface Grants {
  read?: string[];
  write?: string[];
  env?: string[];
}

/** `fixture` on senv, run by `runtime` with `args` (`env` added to this process's environment). */
export function spawnIn(runtime: Runtime, fixture: string, args: string[], grants: Grants = {}, env: Record<string, string> = {}): ChildProcess {
  const options = { stdio: ['ignore', 'pipe', 'inherit'] as ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '', ...env } };
  if (runtime === 'node') return spawn(process.execPath, [fixture, DIST, ...args], options);
  const write = grants.write ?? [];
  const flags = [`--allow-read=${[dirname(SRC), ...(grants.read ?? []), ...write].join(',')}`];
  if (write.length) flags.push(`--allow-write=${write.join(',')}`);
  if (grants.env?.length) flags.push(`--allow-env=${grants.env.join(',')}`);
  return spawn(DENO, ['run', '--quiet', ...flags, fixture, SRC, ...args], options);
}

/** mcs-steps.mjs's `steps` on `dir` by `runtime` (Deno may read and write `dir`, and what `grants` names): the line each printed. */
export async function runSteps(runtime: Runtime, dir: string, steps: string[], grants: Grants = {}, env?: Record<string, string>): Promise<string[]> {
  const child = spawnIn(runtime, STEPS, [dir, ...steps], { ...grants, write: [dir, ...(grants.write ?? [])] }, env);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  expect(code, out).toBe(0);
  return out.trim().split('\n');
}

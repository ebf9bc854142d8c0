// `npm test`: the whole suite on a fresh machine. System packages (as root),
// build, type check, vitest on Node, the portable suites under Deno and in
// headless Chromium, and the CLI self test. Every step runs; the exit code
// says whether all passed.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => `${root}node_modules/.bin/${name}`;

const steps = [
  ['system packages', 'bash', ['scripts/setup-system.sh']],
  ['build (WASM core + TypeScript)', 'npm', ['run', 'build']],
  ['type check (src, test, bench)', bin('tsc'), ['-p', 'tsconfig.json']],
  ['vitest (Node)', bin('vitest'), ['run']],
  ['Deno', bin('deno'), ['test', '--allow-read', '--allow-env', 'test/deno']],
  ['Chromium', 'node', ['scripts/test-browser.mjs']],
  ['senv selftest', 'node', ['bin/senv.js', 'selftest']],
];

const summary = [];
for (const [name, cmd, args] of steps) {
  console.log(`\n=== ${name}: ${cmd.replace(root, '')} ${args.join(' ')}`);
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
  const ok = r.status === 0;
  summary.push(`${ok ? 'pass' : 'FAIL'}  ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  // Nothing later can run without a build.
  if (!ok && name.startsWith('build')) break;
}
console.log(`\n=== summary\n${summary.join('\n')}`);
process.exit(summary.every((s) => s.startsWith('pass')) ? 0 : 1);

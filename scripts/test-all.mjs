// `npm test`: the whole suite on a fresh machine. System packages (as root),
// build, type check, vitest on Node, the portable suites under Deno and in
// headless Chromium, and the CLI self test. Every step runs; the exit code
// says whether all passed.
//
// A step that hangs must not stall CI until its time limit, so every step
// runs under a watchdog: a step silent for SILENT_MS is killed (with its
// process group) and fails, naming the vitest files that never reported. One
// fresh-clone run once saw vitest stay idle after every file had reported;
// so once vitest has printed its summary, or every file has reported, it gets
// EXIT_GRACE_MS to exit before it is killed and judged by what it printed.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => `${root}node_modules/.bin/${name}`;
const SILENT_MS = 10 * 60_000;
const EXIT_GRACE_MS = 90_000;

const steps = [
  ['system packages', 'bash', ['scripts/setup-system.sh']],
  ['build (WASM core + TypeScript)', 'npm', ['run', 'build']],
  ['type check (src, test, bench)', bin('tsc'), ['-p', 'tsconfig.json']],
  ['vitest (Node)', bin('vitest'), ['run'], vitestWatch()],
  ['Deno', bin('deno'), ['test', '--allow-read', '--allow-env', 'test/deno']],
  ['Chromium', 'node', ['scripts/test-browser.mjs']],
  ['senv selftest', 'node', ['bin/senv.js', 'selftest']],
];

// Follows vitest's default reporter: a line per finished file, then the
// summary. Says whether the run is over as far as the output goes, and its
// verdict from the output alone.
function vitestWatch() {
  const files = readdirSync(`${root}test/node`, { recursive: true })
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => `test/node/${f}`);
  const reported = new Map(); // file -> passed?
  let summary = null;
  // "Errors  1 error" (an unhandled error outside any test) fails a run whose files all passed.
  let errors = false;
  return {
    line(text) {
      const file = files.find((f) => text.includes(f));
      const mark = text.trimStart()[0];
      if (file && (mark === '✓' || mark === '×' || mark === '❯') && / \(\d+ tests?/.test(text)) {
        reported.set(file, mark === '✓');
      }
      const m = /^\s*Test Files\s+(.*)$/.exec(text);
      if (m) summary = m[1];
      if (/^\s*Errors\s+\d+ errors?/.test(text)) errors = true;
    },
    finished: () => summary !== null || reported.size === files.length,
    passed: () =>
      !errors && (summary !== null ? !/failed/.test(summary) : reported.size === files.length) && [...reported.values()].every(Boolean),
    missing: () => files.filter((f) => !reported.has(f)),
  };
}

// The step running now: an interrupt of npm test ends its process group too (it runs detached).
let current;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    try {
      if (current) process.kill(-current.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    console.log(`\n=== interrupted (${signal})`);
    process.exit(130);
  });
}

function run(cmd, args, watch) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      detached: true, // its own process group, so a kill reaches its workers
      stdio: ['inherit', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    current = child;
    let note = '';
    let silent;
    let grace;
    const kill = (why) => {
      note = why;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const armSilence = () => {
      clearTimeout(silent);
      silent = setTimeout(() => kill(`no output for ${SILENT_MS / 1000} s`), SILENT_MS);
    };
    armSilence();
    for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
      let pending = '';
      from.on('data', (chunk) => {
        to.write(chunk);
        armSilence();
        if (!watch) return;
        const lines = (pending + chunk.toString()).split('\n');
        pending = lines.pop();
        for (const l of lines) watch.line(l);
        if (!grace && watch.finished()) {
          grace = setTimeout(() => kill(`did not exit ${EXIT_GRACE_MS / 1000} s after its files reported`), EXIT_GRACE_MS);
        }
      });
    }
    // A command that cannot start (missing from node_modules/.bin, say) fails its step; the rest run.
    child.on('error', (e) => {
      current = undefined;
      clearTimeout(silent);
      clearTimeout(grace);
      resolve({ ok: false, note: `could not start: ${e.message}` });
    });
    child.on('close', (code) => {
      current = undefined;
      clearTimeout(silent);
      clearTimeout(grace);
      if (!note) return resolve({ ok: code === 0, note: '' });
      const missing = watch ? watch.missing() : [];
      const ok = watch ? watch.finished() && watch.passed() : false;
      resolve({ ok, note: `killed: ${note}${missing.length ? `; never reported: ${missing.join(', ')}` : ''}` });
    });
  });
}

const summary = [];
for (const [name, cmd, args, watch] of steps) {
  console.log(`\n=== ${name}: ${cmd.replace(root, '')} ${args.join(' ')}`);
  const t0 = Date.now();
  const { ok, note } = await run(cmd, args, watch);
  if (note) console.log(`\n=== ${name}: ${note}`);
  summary.push(`${ok ? 'pass' : 'FAIL'}  ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)${note ? ` [${note}]` : ''}`);
  // Nothing later can run without a build.
  if (!ok && name.startsWith('build')) break;
}
console.log(`\n=== summary\n${summary.join('\n')}`);
process.exit(summary.every((s) => s.startsWith('pass')) ? 0 : 1);

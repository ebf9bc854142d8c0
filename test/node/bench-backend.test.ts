// `senv bench --backend <module>`: a backend of the user's own measured with the Mcs workload of
// senv's own SEs, beside the software SE, through the command as a team would run it (short runs
// of the fixture, test/node/fixtures/bench-backend.mjs, which logs its deleteKey and close calls).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { benchModules } from '../../bench/index.ts';
import { rowNames } from '../../bench/ses.ts';
import { runChild } from './run-child.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const senv = join(root, 'bin/senv.js');
const FIXTURE = 'test/node/fixtures/bench-backend.mjs';
const fixtureUrl = new URL('fixtures/bench-backend.mjs', import.meta.url).href;
const fixtureFile = fileURLToPath(fixtureUrl);
const dir = mkdtempSync(join(tmpdir(), 'senv-bench-backend-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh file for the fixture's log, and what it logged so far. */
function logFile(): { env: Record<string, string>; lines: () => string[] } {
  const file = join(dir, `log-${++n}`);
  writeFileSync(file, '');
  return { env: { SENV_BENCH_BACKEND_LOG: file }, lines: () => readFileSync(file, 'utf8').split('\n').filter(Boolean) };
}

interface SeRecord { name: string; module?: string; reader?: string; description: Record<string, unknown> }
interface Output {
  options: { only: string[]; backends?: SeRecord[] };
  records: { implementation: string; algorithm: string; opsPerSec: number; ratios: Record<string, number> }[];
  findings: { module: string; check: string; se: SeRecord; operation: string; offered: boolean; reason?: string }[];
}

/** A module of the test's own: the fixture under another model name. */
function otherModule(file: string, model: string): string {
  writeFileSync(join(dir, file), `import make from ${JSON.stringify(fixtureUrl)};\nexport default () => { const b = make(); b.description.model = ${JSON.stringify(model)}; return b; };`);
  return join(dir, file);
}

/**
 * Runs `senv bench args` until its output matches `ready`, calls `atReady` then (what the run holds
 * by that point), sends SIGINT and resolves to how the command ended.
 */
async function interrupted(args: string[], env: Record<string, string>, ready: RegExp, atReady: () => void): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, [senv, 'bench', ...args], { cwd: root, env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) resolve();
    });
    // A run that ended before is this test's failure, said below.
    child.on('exit', () => resolve());
  });
  expect(out).toMatch(ready);
  atReady();
  child.kill('SIGINT');
  return ended;
}

describe('senv bench --backend', () => {
  it('measures each operation the backend offers beside the software SE, says which it does not offer, records the backend, and deletes its keys and closes it', async () => {
    const log = logFile();
    const out = join(dir, 'run.json');
    // A path, resolved against the current directory.
    const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'backend', '--backend', FIXTURE, '--out', out], { cwd: root, env: log.env, killMs: 120_000 });
    expect([r.code, r.err], r.out).toEqual([0, '']);
    expect(r.out).toContain('\nMcs operations on bench-backend.mjs (Fixture Labs HSM-1) beside the software SE (RETRIEVE of the virtual resource)\n');
    expect(r.out).toMatch(/\n {2}Mcs AES-128-GCM encrypt +not offered by bench-backend\.mjs \(1001 is not among its cipherAlgorithms\)\n/);
    for (const title of ['Mcs SHA-256 1 KiB', 'Mcs HMAC-SHA-256 1 KiB', 'Mcs ECDSA P-256 sign -']) {
      // The backend's row with its ratio to the software SE's, then the software SE's.
      expect(r.out, title).toMatch(new RegExp(`\\n${title}\\n {2}bench-backend\\.mjs +[\\d.]+ op/s .* [\\d.]+x software SE\\n {2}software SE +[\\d.]+ op/s`));
    }
    expect(r.out).not.toMatch(/\nMcs AES-128-GCM encrypt 1 KiB\n/);

    const o = JSON.parse(readFileSync(out, 'utf8')) as Output;
    const se = { name: 'bench-backend.mjs', module: FIXTURE, description: expect.objectContaining({ manufacturer: 'Fixture Labs', model: 'HSM-1', seType: 4 }) };
    expect(o.options).toMatchObject({ only: ['backend'], backends: [se] });
    expect(o.options).not.toHaveProperty('readers');
    expect(o.records.map((x) => `${x.algorithm} / ${x.implementation}`)).toEqual([
      'Mcs SHA-256 / bench-backend.mjs', 'Mcs SHA-256 / software SE',
      'Mcs HMAC-SHA-256 / bench-backend.mjs', 'Mcs HMAC-SHA-256 / software SE',
      'Mcs ECDSA P-256 sign / bench-backend.mjs', 'Mcs ECDSA P-256 sign / software SE',
    ]);
    for (const x of o.records) {
      expect(x.opsPerSec).toBeGreaterThan(0);
      // The backend's rows are the ones measured against the software SE, whatever their name.
      expect(Object.keys(x.ratios)).toEqual(x.implementation === 'software SE' ? [] : ['software SE']);
    }
    expect(o.findings).toEqual([
      { module: 'backend', check: 'operation', se, operation: 'Mcs SHA-256', offered: true },
      { module: 'backend', check: 'operation', se, operation: 'Mcs HMAC-SHA-256', offered: true },
      { module: 'backend', check: 'operation', se, operation: 'Mcs AES-128-GCM encrypt', offered: false, reason: '1001 is not among its cipherAlgorithms' },
      { module: 'backend', check: 'operation', se, operation: 'Mcs ECDSA P-256 sign', offered: true },
    ]);
    // The HMAC key imported and the P-256 key generated on the backend went, then the backend closed.
    expect(log.lines()).toEqual(['deleteKey', 'deleteKey', 'close']);
  }, 150_000);

  it('two modules in one run: a row each in every table, beside the software SE, each recorded with its description; an operation neither offers has no table', async () => {
    const log = logFile();
    const other = otherModule('other-hsm.mjs', 'HSM-2');
    const out = join(dir, 'two.json');
    // Mcs SHA-256 (no key), AES-128-GCM (offered by neither) and ECDSA (a key pair on each).
    const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'backend', '--filter', '^Mcs (SHA-256|AES|ECDSA)', '--backend', FIXTURE, '--backend', other, '--out', out], { cwd: root, env: log.env, killMs: 120_000 });
    expect([r.code, r.err], r.out).toEqual([0, '']);
    expect(r.out).toContain('\nMcs operations on bench-backend.mjs (Fixture Labs HSM-1), other-hsm.mjs (Fixture Labs HSM-2) beside the software SE (RETRIEVE of the virtual resource)\n');
    for (const name of ['bench-backend\\.mjs', 'other-hsm\\.mjs']) {
      expect(r.out).toMatch(new RegExp(`\\n {2}Mcs AES-128-GCM encrypt +not offered by ${name} \\(1001 is not among its cipherAlgorithms\\)\\n`));
      expect(r.out).toMatch(new RegExp(`\\n {2}Mcs ECDSA P-256 sign +offered by ${name}, timed below\\n`));
    }
    for (const title of ['Mcs SHA-256 1 KiB', 'Mcs ECDSA P-256 sign -']) {
      expect(r.out, title).toMatch(new RegExp(`\\n${title}\\n {2}bench-backend\\.mjs +[\\d.]+ op/s .* [\\d.]+x software SE\\n {2}other-hsm\\.mjs +[\\d.]+ op/s .* [\\d.]+x software SE\\n {2}software SE +[\\d.]+ op/s`));
    }
    expect(r.out).not.toMatch(/\nMcs AES-128-GCM encrypt 1 KiB\n/);

    const o = JSON.parse(readFileSync(out, 'utf8')) as Output;
    const first = { name: 'bench-backend.mjs', module: FIXTURE, description: expect.objectContaining({ manufacturer: 'Fixture Labs', model: 'HSM-1' }) };
    const second = { name: 'other-hsm.mjs', module: other, description: expect.objectContaining({ manufacturer: 'Fixture Labs', model: 'HSM-2' }) };
    expect(o.options.backends).toEqual([first, second]);
    // Two SEs, two M2M-SE-IDs: their descriptions say which is which.
    expect(o.options.backends![0]!.description['uniqueId']).not.toBe(o.options.backends![1]!.description['uniqueId']);
    expect(o.records.map((x) => `${x.algorithm} / ${x.implementation} / ${Object.keys(x.ratios).join()}`)).toEqual([
      'Mcs SHA-256 / bench-backend.mjs / software SE', 'Mcs SHA-256 / other-hsm.mjs / software SE', 'Mcs SHA-256 / software SE / ',
      'Mcs ECDSA P-256 sign / bench-backend.mjs / software SE', 'Mcs ECDSA P-256 sign / other-hsm.mjs / software SE', 'Mcs ECDSA P-256 sign / software SE / ',
    ]);
    const reason = '1001 is not among its cipherAlgorithms';
    const found = (se: object, operation: string, more: object) => ({ module: 'backend', check: 'operation', se, operation, ...more });
    expect(o.findings).toEqual([
      found(first, 'Mcs SHA-256', { offered: true }), found(second, 'Mcs SHA-256', { offered: true }),
      found(first, 'Mcs AES-128-GCM encrypt', { offered: false, reason }), found(second, 'Mcs AES-128-GCM encrypt', { offered: false, reason }),
      found(first, 'Mcs ECDSA P-256 sign', { offered: true }), found(second, 'Mcs ECDSA P-256 sign', { offered: true }),
    ]);
    // Each backend's P-256 key went, and each backend closed.
    expect(log.lines().sort()).toEqual(['close', 'close', 'deleteKey', 'deleteKey']);
  }, 150_000);

  it('the same module twice is two SEs, whose rows and records are told apart by #1 and #2', async () => {
    const log = logFile();
    const out = join(dir, 'twice.json');
    const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'backend', '--filter', '^Mcs SHA-256', '--backend', FIXTURE, '--backend', FIXTURE, '--out', out], { cwd: root, env: log.env, killMs: 120_000 });
    expect([r.code, r.err], r.out).toEqual([0, '']);
    expect(r.out).toMatch(/\nMcs SHA-256 1 KiB\n {2}bench-backend\.mjs #1 +[\d.]+ op\/s .* [\d.]+x software SE\n {2}bench-backend\.mjs #2 +[\d.]+ op\/s .* [\d.]+x software SE\n {2}software SE +/);
    const o = JSON.parse(readFileSync(out, 'utf8')) as Output;
    expect(o.options.backends!.map((b) => [b.name, b.module])).toEqual([['bench-backend.mjs #1', FIXTURE], ['bench-backend.mjs #2', FIXTURE]]);
    expect(o.records.map((x) => x.implementation)).toEqual(['bench-backend.mjs #1', 'bench-backend.mjs #2', 'software SE']);
    expect(o.findings.map((f) => [f.se.name, f.operation, f.offered])).toEqual([['bench-backend.mjs #1', 'Mcs SHA-256', true], ['bench-backend.mjs #2', 'Mcs SHA-256', true]]);
    expect(log.lines()).toEqual(['close', 'close']);
  }, 150_000);

  it('rows are named by file, specifier or reader; a name several SEs share, or the software SE\'s, gets #n in the order given', () => {
    expect(rowNames(['hsm.mjs', '@team/hsm', 'Reader 00 00'])).toEqual(['hsm.mjs', '@team/hsm', 'Reader 00 00']);
    expect(rowNames(['hsm.mjs', 'tee.mjs', 'hsm.mjs', 'software SE', 'hsm.mjs'])).toEqual(['hsm.mjs #1', 'tee.mjs', 'hsm.mjs #2', 'software SE #1', 'hsm.mjs #3']);
  });

  it('a bad second --backend fails the run before anything is measured, naming it; one McsEngine.create refuses names every one, and each is closed', async () => {
    const log = logFile();
    writeFileSync(join(dir, 'throws-too.mjs'), "throw new Error('no PKCS#11 library');");
    writeFileSync(join(dir, 'refused-too.mjs'), `import make from ${JSON.stringify(fixtureUrl)};\nexport default () => { const b = make(); b.description.seType = 9; return b; };`);
    const run = (second: string) => runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'sha2,backend', '--backend', fixtureFile, '--backend', second, '--out', join(dir, 'x.json')], { cwd: dir, env: log.env, killMs: 60_000 });
    const thrown = await run('./throws-too.mjs');
    expect([thrown.code, thrown.out, thrown.err]).toEqual([1, '', 'senv: bench --backend ./throws-too.mjs: cannot be loaded (Error: no PKCS#11 library)\n']);
    // The first module's backend was made, but no engine opened it: nothing to close.
    expect(log.lines()).toEqual([]);
    const refused = await run('./refused-too.mjs');
    expect([refused.code, refused.out]).toEqual([1, '']);
    expect(refused.err).toMatch(new RegExp(`^senv: bench --backend ${fixtureFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, --backend \\./refused-too\\.mjs: McsEngine\\.create refused them \\(InvalidInputError: SE backend '`));
    expect(log.lines()).toEqual(['close', 'close']);
  }, 120_000);

  it('a module that gives no backend fails the run before any module runs, naming the module and the reason', async () => {
    const log = logFile();
    const modules: Record<string, [string, string]> = {
      'throws.mjs': ["throw new Error('no PKCS#11 library');", 'cannot be loaded (Error: no PKCS#11 library)'],
      'nothing.mjs': ['export const backend = 42;', 'exports no function giving a backend (a default export or createBackend; it exports backend)'],
      'fails.mjs': ["export default async () => { throw new TypeError('HSM offline'); };", 'its function failed (TypeError: HSM offline)'],
      'object.mjs': ["export function createBackend() { return { name: 'hsm' }; }", 'its function gave a value of type Object, not a SecureEnvironmentBackend (docs/mcs.md "Writing a backend")'],
      // McsEngine.create's typed error, and the backend it refused is closed.
      'refused.mjs': [
        `import make from ${JSON.stringify(fixtureUrl)};\nexport default () => { const b = make(); b.description.seType = 9; return b; };`,
        "McsEngine.create refused it (InvalidInputError: SE backend '",
      ],
      // One whose close() throws at once: told beside the refusal, not in its place.
      'closes-badly.mjs': [
        `import make from ${JSON.stringify(fixtureUrl)};\nexport default () => { const b = make(); b.description.seType = 9; b.close = () => { throw new TypeError('close is not ready'); }; return b; };`,
        "McsEngine.create refused it (InvalidInputError: SE backend '",
      ],
    };
    for (const [file, [text]] of Object.entries(modules)) writeFileSync(join(dir, file), text);
    const run = (spec: string) => runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'sha2,backend', '--backend', spec, '--out', join(dir, 'x.json')], { cwd: dir, env: log.env, killMs: 60_000 });
    for (const [file, [, reason]] of Object.entries(modules)) {
      const r = await run(`./${file}`);
      expect([r.code, r.err.startsWith(`senv: bench --backend ./${file}: ${reason}`)], `${file}: ${r.err}`).toEqual([1, true]);
      // Before the start-up figures and the modules ahead of backend.
      expect(r.out, file).toBe('');
    }
    expect(log.lines()).toEqual(['close']);
    expect((await run('./closes-badly.mjs')).err, 'the close that threw at once').toMatch(/; closing it failed too \(TypeError: close is not ready\)\n$/);
    const missing = await run('./no-such-backend.mjs');
    expect([missing.code, missing.out]).toEqual([1, '']);
    expect(missing.err).toMatch(/^senv: bench --backend \.\/no-such-backend\.mjs: cannot be loaded \(Error: Cannot find module '.*no-such-backend\.mjs'/);
    const pkg = await run('no-such-senv-backend');
    expect([pkg.code, pkg.out]).toEqual([1, '']);
    expect(pkg.err).toMatch(/^senv: bench --backend no-such-senv-backend: cannot be loaded \(Error: Cannot find package 'no-such-senv-backend'/);
  }, 120_000);

  it('--backend needs a module and the backend module', async () => {
    const empty = await runChild(process.execPath, [senv, 'bench', '--only', 'backend', '--backend', ''], { cwd: dir });
    expect([empty.code, empty.err.split('\n')[0]]).toEqual([2, 'senv: bench: --backend needs an ES module (a file or a package specifier) whose default export or createBackend gives a SecureEnvironmentBackend']);
    const left = await runChild(process.execPath, [senv, 'bench', '--only', 'sha2', '--backend', FIXTURE], { cwd: root });
    expect([left.code, left.err.split('\n')[0]]).toEqual([2, 'senv: bench: --backend is for the backend module, which --only leaves out']);
    const help = await runChild(process.execPath, [senv, 'bench', '--help']);
    expect(help.out).toMatch(/\[--backend module\]/);
    // The modules --only takes, the backend module among them.
    expect(/\bmodules ([\w, -]+)\./.exec(help.out)?.[1]!.split(', ')).toEqual(Object.keys(benchModules));
  });

  it('a backend that fails while timed fails the run (it is not timed as a fast one), and its keys are deleted and it is closed all the same', async () => {
    const log = logFile();
    const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'backend', '--backend', FIXTURE, '--out', join(dir, 'f.json')], {
      cwd: root, env: { ...log.env, SENV_BENCH_BACKEND_FAIL_AFTER: '20' }, killMs: 120_000,
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^senv: Mcs SHA-256 on bench-backend\.mjs failed: rsc 5000 /);
    expect(r.out).not.toMatch(/\n {2}bench-backend\.mjs +[\d.]+ op\/s/);
    expect(log.lines()).toEqual(['deleteKey', 'deleteKey', 'close']);
  }, 150_000);

  it('a backend answering other bytes than the software SE for the same digest fails the run before it is timed', async () => {
    const log = logFile();
    // SHA-256 with the last byte of every digest flipped: as fast as the software SE, but wrong.
    writeFileSync(join(dir, 'wrong-hash.mjs'), `import make from ${JSON.stringify(fixtureUrl)};
export default () => {
  const b = make();
  const digest = b.digest.bind(b);
  b.digest = async (algorithm) => {
    const s = await digest(algorithm);
    const final = s.final.bind(s);
    s.final = async (last) => { const d = await final(last); d[d.length - 1] ^= 1; return d; };
    return s;
  };
  return b;
};`);
    const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'backend', '--filter', '^Mcs SHA-256', '--backend', join(dir, 'wrong-hash.mjs'), '--out', join(dir, 'w.json')], { cwd: root, env: log.env, killMs: 120_000 });
    expect(r.code, r.out).toBe(1);
    expect(r.err).toMatch(/^senv: bench: Mcs SHA-256 1 KiB: software SE computes other bytes than wrong-hash\.mjs: its row would time another operation\n/);
    expect(r.out).not.toMatch(/\n {2}wrong-hash\.mjs +[\d.]+ op\/s/);
    expect(log.lines()).toEqual(['close']);
  }, 150_000);

  it('a signal during a run of two modules gives back every one: the keys of each deleted, and each closed', async () => {
    const log = logFile();
    const other = otherModule('signal-hsm.mjs', 'HSM-3');
    // Both SEs' ECDSA key pairs are made once the second one's line is out.
    const ended = await interrupted(['--only', 'backend', '--filter', 'ECDSA', '--backend', FIXTURE, '--backend', other, '--out', join(dir, 's2.json')], log.env,
      /Mcs ECDSA P-256 sign +offered by signal-hsm\.mjs, timed below\n/, () => expect(log.lines()).toEqual([]));
    expect(ended).toEqual({ code: null, signal: 'SIGINT' });
    expect(log.lines().sort()).toEqual(['close', 'close', 'deleteKey', 'deleteKey']);
  }, 60_000);

  it('a signal during the run closes the backend first (its keys deleted), then ends the command as the signal ends it', async () => {
    const log = logFile();
    // The ECDSA group is set up (its key pair is on the backend) and being timed.
    const ended = await interrupted(['--only', 'backend', '--filter', 'ECDSA', '--backend', FIXTURE, '--out', join(dir, 's.json')], log.env,
      /Mcs ECDSA P-256 sign +offered by bench-backend\.mjs, timed below\n/, () => expect(log.lines()).toEqual([]));
    expect(ended).toEqual({ code: null, signal: 'SIGINT' });
    expect(log.lines()).toEqual(['deleteKey', 'close']);
  }, 60_000);
});

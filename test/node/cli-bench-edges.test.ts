// Edges of the `senv` command and the bench harness that cli.test.ts and bench-harness.test.ts
// leave open: the exit codes bin/senv.js gives the shell, what `senv selftest` runs and reports,
// the options `senv bench` and `senv virtual-card` hand on, how the harness computes its
// ratios, ranges and per-message figures over alternating rounds, and what `senv bench --out`
// writes. Nothing here times anything: the figures come from a stand-in for benchmark.js, the
// commands that would run a bench or connect to vpcd run with stand-ins for those.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { main } from '../../src/bindings/cli.ts';
import { parseOptions } from '../../src/bindings/args.ts';
import { coreBuilds } from '../../src/core/loader.ts';
import { roundSeconds, runGroups, sizeLabel, type BenchCase, type BenchGroup, type BenchOptions, type BenchRecord } from '../../bench/harness.ts';
import { parseBenchArgs, type BenchArgs } from '../../bench/run.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

function capture(): { out: () => string; err: () => string } {
  let out = '', err = '';
  vi.spyOn(console, 'log').mockImplementation((s: unknown) => void (out += `${String(s)}\n`));
  vi.spyOn(console, 'error').mockImplementation((s: unknown) => void (err += `${String(s)}\n`));
  return { out: () => out, err: () => err };
}

// The command is imported afresh after each test's stand-ins are gone (vi.resetModules), so that
// the modules it imports lazily (virtual-card/cli.ts) share its UsageError.
async function run(argv: string[], cli?: { main: typeof main }): Promise<{ code: number; out: string; err: string }> {
  cli ??= await import('../../src/bindings/cli.ts');
  const c = capture();
  const code = await cli.main(argv);
  return { code, out: c.out(), err: c.err() };
}

type Factory = (importOriginal: () => Promise<Record<string, unknown>>) => unknown;

/** Imports `module` afresh with the given modules replaced (paths relative to this file). */
async function withMocks<T>(mocks: Record<string, Factory>, module: string): Promise<T> {
  vi.resetModules();
  for (const [path, factory] of Object.entries(mocks)) vi.doMock(path, factory as never);
  return (await import(/* @vite-ignore */ module)) as T;
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  for (const path of mocked) vi.doUnmock(path);
  vi.resetModules();
});
const mocked = [
  '../../src/core/selftest.ts', '../../src/core/loader.ts', '../../bench/run.ts', '../../src/virtual-card/index.ts',
  'benchmark', '../../dist/bench/index.js',
];

describe('senv: commands and options', () => {
  it('-h is help at the top level too, and only the commands themselves are commands', async () => {
    const help = await run(['-h']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: senv <command>/);
    for (const name of ['toString', 'constructor', 'hasOwnProperty']) {
      const r = await run([name]);
      expect(r.code, name).toBe(2);
      expect(r.err, name).toMatch(new RegExp(`unknown command '${name}'`));
    }
  });

  it('--version prints the package\'s version', async () => {
    const r = await run(['--version']);
    expect([r.code, r.out.trim()]).toEqual([0, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version]);
  });

  it('the usage names every command and every option the README documents, and the exit status table README gives', async () => {
    const { out } = await run(['--help']);
    for (const word of ['selftest', '--build', 'bench', '--quick', '--only', '--filter', '--out', 'virtual-card', '--slot', '--host', '--port', '--store', '--no-extended', '--verbose']) {
      expect(out, word).toContain(word);
    }
    const table = /\nexit status:\n((?: {2}.*\n)+)/.exec(out)?.[1];
    expect(table).toMatch(/^ {2}0 {4}success/);
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain(`\`\`\`\n${table}\`\`\``);
  });

  /**
   * A directory as the default store ($XDG_DATA_HOME/senv/virtual-card-0.json) and as --store:
   * a virtual-card command that gets past its options fails there (EISDIR) instead of trying
   * to reach vpcd for ever.
   */
  function unusableStores(): { dir: string; store: string } {
    const dir = mkdtempSync(join(tmpdir(), 'senv-cli-'));
    mkdirSync(join(dir, 'senv/virtual-card-0.json'), { recursive: true });
    mkdirSync(join(dir, 'store'));
    vi.stubEnv('XDG_DATA_HOME', dir);
    return { dir, store: join(dir, 'store') };
  }

  it('options: names inherited from Object are unknown, an option name is no value, a flag takes none, the last value wins', async () => {
    const { dir, store } = unusableStores();
    // Refused after the options under test: a command that took one of them stops there.
    const guard = ['--host', '', '--store', store];
    const cases: [string[], RegExp][] = [
      [['selftest', 'constructor', 'x'], /selftest: unknown option 'constructor'/],
      [['selftest', '--build', '--build'], /selftest: --build needs a value/],
      [['virtual-card', '--store', '--verbose', ...guard], /virtual-card: --store needs a value/],
      [['virtual-card', '--verbose', ...guard], /--host takes a host name or address/],
      [['virtual-card', '--no-extended', '--slot', 'x', ...guard], /--slot takes a number from 0 to 65535, not 'x'/],
      [['virtual-card', '--port', 'x', '--port', '0', ...guard], /--port takes a number from 1 to 65535, not '0'/],
      [['virtual-card', '--slot', '1x', ...guard], /--slot takes a number from 0 to 65535, not '1x'/],
      [['virtual-card', '--slot', '29573', ...guard], /--slot 29573 would be port 65536/],
    ];
    try {
      for (const [argv, message] of cases) {
        const r = await run(argv);
        expect(r.code, argv.join(' ')).toBe(2);
        expect(r.err, argv.join(' ')).toMatch(message);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const o = parseOptions(['--a', '1', '--f', '--a', '-2'], { '--a': 'value', '--f': 'flag' }, 'c');
    expect([...o]).toEqual([['--a', '-2'], ['--f', true]]);
    // A 'values' option keeps each value, in order, as a list (one given once too).
    const many = parseOptions(['--m', 'x', '--a', '1', '--m', 'y', '--m', 'x', '--n', 'z'], { '--a': 'value', '--m': 'values', '--n': 'values' }, 'c');
    expect([...many]).toEqual([['--m', ['x', 'y', 'x']], ['--a', '1'], ['--n', ['z']]]);
    expect(() => parseOptions(['--m', 'x', '--m'], { '--m': 'values' }, 'c')).toThrow(/^c: --m needs a value$/);
  });

  it('a failure that is not a usage error is no usage error: it rejects (bin/senv.js exits 1)', async () => {
    const { dir, store } = unusableStores();
    try {
      const { main } = await import('../../src/bindings/cli.ts');
      capture();
      await expect(main(['virtual-card', '--store', store])).rejects.toThrow(`virtual card store ${store} cannot be read (EISDIR)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('senv selftest', () => {
  it('runs every build the runtime takes by default, and only the one --build names', async () => {
    const all = await run(['selftest']);
    expect(all.code).toBe(0);
    expect(all.out).toMatch(/\nselftest: all passed\n$/);
    expect(all.out).not.toMatch(/FAIL/);
    const builds = new Set([...all.out.matchAll(/^pass {2}(\S+)/gm)].map((m) => m[1]));
    expect([...builds]).toEqual(coreBuilds());
    const one = await run(['selftest', '--build', 'scalar']);
    expect(one.code).toBe(0);
    const lines = one.out.split('\n').filter((l) => l.startsWith('pass'));
    expect(lines.length).toBe(all.out.split('\n').filter((l) => l.startsWith('pass  scalar')).length);
    expect(lines.every((l) => l.startsWith('pass  scalar'))).toBe(true);
  });

  it('a known answer that fails is printed as FAIL with its error, counted, and exits 1', async () => {
    const cli = await withMocks<{ main: typeof main }>({
      '../../src/core/selftest.ts': () => ({
        selftest: () => ({ results: [{ name: 'SHA-256', ok: true }, { name: 'AES-128 GCM', ok: false, error: 'tag differs' }] }),
      }),
    }, '../../src/bindings/cli.ts');
    const r = await run(['selftest', '--build', 'scalar'], cli);
    expect(r.code).toBe(1);
    expect(r.out).toBe('pass  scalar  SHA-256\nFAIL  scalar  AES-128 GCM: tag differs\nselftest: 1 failed\n');
  });

  it('the table\'s columns line up whatever the builds\' names (relaxed is one letter longer than the others)', async () => {
    const cli = await withMocks<{ main: typeof main }>({
      '../../src/core/loader.ts': async (orig) => ({ ...(await orig()), coreBuilds: () => ['relaxed', 'scalar'], initSync: () => undefined }),
      '../../src/core/selftest.ts': () => ({ selftest: () => ({ results: [{ name: 'SHA-256', ok: true }] }) }),
    }, '../../src/bindings/cli.ts');
    const r = await run(['selftest'], cli);
    expect(r.out).toBe('pass  relaxed  SHA-256\npass  scalar   SHA-256\nselftest: all passed\n');
  });

  it('a build the runtime does not take exits 3 (not available here, no usage error) and says how to get Relaxed SIMD', async () => {
    const cli = await withMocks<{ main: typeof main }>({
      '../../src/core/loader.ts': async (orig) => ({ ...(await orig()), coreBuilds: () => ['simd', 'scalar'] }),
    }, '../../src/bindings/cli.ts');
    const r = await run(['selftest', '--build', 'relaxed'], cli);
    expect(r.code).toBe(3);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/does not take the relaxed build \(it takes simd, scalar; on Node 20 run node --experimental-wasm-relaxed-simd\)/);
  });
});

describe('senv bench: options', () => {
  it('parseBenchArgs: --quick, the --only list, --filter and --out; unknown modules and bad regular expressions are usage errors', () => {
    expect(parseBenchArgs([])).toEqual({ quick: false });
    expect(parseBenchArgs(['--quick', '--only', 'sha2,aes,dudect-aes,ecdsa,dudect-ec,drbg,mcs,apdu,backend', '--filter', 'GCM|CCM', '--out', 'r.json'])).toEqual({
      quick: true, only: ['sha2', 'aes', 'dudect-aes', 'ecdsa', 'dudect-ec', 'drbg', 'mcs', 'apdu', 'backend'], filter: 'GCM|CCM', out: 'r.json',
    });
    expect(() => parseBenchArgs(['--only', 'sha2,nope'])).toThrow(/bench: unknown module 'nope' \(sha2, aes, dudect-aes, ecdsa, dudect-ec, drbg, mcs, apdu, backend\)/);
    expect(() => parseBenchArgs(['--only', 'toString'])).toThrow(/unknown module 'toString'/);
    expect(() => parseBenchArgs(['--only', 'sha2,aes,sha2'])).toThrow(/^bench: --only names 'sha2' twice$/);
    expect(() => parseBenchArgs(['--filter', '('])).toThrow(/--filter is not a regular expression: \(/);
    // --out is checked before the run (a review lost a run's results to a path only tried at its end).
    expect(() => parseBenchArgs(['--out', '/nonexistent-senv-dir/x.json'])).toThrow(/--out \/nonexistent-senv-dir\/x.json: there is no directory \/nonexistent-senv-dir/);
    expect(() => parseBenchArgs(['--out', 'bench'])).toThrow(/--out bench is a directory, not a file/);
    expect(() => parseBenchArgs(['--out', ''])).toThrow(/--out needs a file name/);
    if (process.getuid?.() !== 0) expect(() => parseBenchArgs(['--out', '/proc/x.json'])).toThrow(/cannot be written/);
  });

  it('parseBenchArgs: --reader names readers, each once, for the apdu and backend modules, one of which --only must then include', () => {
    expect(parseBenchArgs(['--reader', 'ACS ACR39U 00 00'])).toEqual({ quick: false, readers: ['ACS ACR39U 00 00'] });
    expect(parseBenchArgs(['--only', 'mcs,apdu', '--reader', 'r', '--reader', 's'])).toEqual({ quick: false, only: ['mcs', 'apdu'], readers: ['r', 's'] });
    expect(parseBenchArgs(['--only', 'backend', '--reader', 'r'])).toEqual({ quick: false, only: ['backend'], readers: ['r'] });
    expect(() => parseBenchArgs(['--reader', ''])).toThrow(/^bench: --reader needs a reader name/);
    expect(() => parseBenchArgs(['--reader', 'r', '--reader', ''])).toThrow(/^bench: --reader needs a reader name/);
    expect(() => parseBenchArgs(['--reader', 'r', '--reader', 's', '--reader', 'r'])).toThrow(/^bench: --reader names 'r' twice \(a card is one SE\)$/);
    expect(() => parseBenchArgs(['--only', 'sha2,mcs', '--reader', 'r'])).toThrow(/^bench: --reader is for the apdu and backend modules, which --only leaves out$/);
    expect(() => parseBenchArgs(['--reader'])).toThrow(/--reader/);
  });

  it('parseBenchArgs: --backend names modules, the same one twice too, for the backend module, which --only must then include', () => {
    expect(parseBenchArgs(['--backend', './my-hsm.mjs'])).toEqual({ quick: false, backends: ['./my-hsm.mjs'] });
    expect(parseBenchArgs(['--only', 'backend', '--backend', '@team/hsm-backend', '--backend', './a.mjs', '--backend', './a.mjs', '--reader', 'r'])).toEqual({
      quick: false, only: ['backend'], backends: ['@team/hsm-backend', './a.mjs', './a.mjs'], readers: ['r'],
    });
    expect(() => parseBenchArgs(['--backend', ''])).toThrow(/^bench: --backend needs an ES module/);
    expect(() => parseBenchArgs(['--backend', 'x', '--backend', ''])).toThrow(/^bench: --backend needs an ES module/);
    expect(() => parseBenchArgs(['--only', 'apdu', '--backend', 'x'])).toThrow(/^bench: --backend is for the backend module, which --only leaves out$/);
  });

  it('senv bench hands its options to the run, and exits without running: 2 on a usage error, 3 without the bench sources', async () => {
    const runBench = vi.fn(async (_: BenchArgs) => []);
    const cli = await withMocks<{ main: typeof main }>({
      '../../bench/run.ts': async (orig) => ({ ...(await orig()), runBench }),
    }, '../../src/bindings/cli.ts');
    const ok = await run(['bench', '--quick', '--only', 'sha2,aes', '--filter', 'SHA', '--out', 'x.json'], cli);
    expect(ok.code).toBe(0);
    expect(runBench.mock.calls).toEqual([[{ quick: true, only: ['sha2', 'aes'], filter: 'SHA', out: 'x.json' }]]);
    const bad = await run(['bench', '--only', 'nope'], cli);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown module 'nope'/);
    expect(runBench).toHaveBeenCalledTimes(1);

    vi.doUnmock('../../bench/run.ts');
    const missing = await withMocks<{ main: typeof main }>({
      '../../bench/run.ts': () => {
        throw new Error('Cannot find package benchmark');
      },
    }, '../../src/bindings/cli.ts');
    const r = await run(['bench'], missing);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/senv bench needs the bench\/ sources and devDependencies of a senv checkout/);
  });
});

describe('senv virtual-card: what the options make', () => {
  type Fake = { opts: Record<string, unknown>[]; inserts: boolean[]; signals: string[] };
  /** The command with a stand-in card: `script[i]` plays insert i (it can stop the command). */
  async function virtualCard(argv: string[], script: ((card: { inserted: boolean }, stop: (signal: string) => void) => Promise<void>)[] = []) {
    const fake: Fake = { opts: [], inserts: [], signals: [] };
    const handlers: Record<string, () => void> = {};
    vi.spyOn(process, 'once').mockImplementation(((event: string, fn: () => void) => {
      handlers[event] = fn;
      fake.signals.push(event);
      return process;
    }) as never);
    // A signal the command did not listen for stops it anyway (through SIGINT), so that the test ends.
    const stop = (signal: string) => (handlers[signal] ?? handlers.SIGINT!)();
    const cli = await withMocks<{ main: typeof main }>({
      '../../src/virtual-card/index.ts': async (orig) => ({
        ...(await orig()),
        createVirtualCard: (opts: Record<string, unknown>) => {
          fake.opts.push(opts);
          const card = {
            inserted: false,
            address: 'fake:1',
            insert: async () => {
              fake.inserts.push(card.inserted);
              const step = script[fake.inserts.length - 1];
              if (step) await step(card, stop);
              else stop('SIGINT');
            },
          };
          return { vpcd: card, close: async () => {} };
        },
      }),
    }, '../../src/bindings/cli.ts');
    return { r: await run(['virtual-card', ...argv], cli), fake };
  }

  it('defaults: slot 0, extended APDUs, the store under $XDG_DATA_HOME, vpcd\'s own host and port, quiet', async () => {
    vi.stubEnv('XDG_DATA_HOME', '/data');
    const { r, fake } = await virtualCard([]);
    expect(r.code).toBe(0);
    expect(fake.opts).toEqual([{ slot: 0, store: '/data/senv/virtual-card-0.json', extended: true }]);
    expect(r.out).toMatch(/key store \/data\/senv\/virtual-card-0.json; connecting to vpcd at fake:1/);
  });

  it('an empty or relative $XDG_DATA_HOME is ignored (the XDG rules), not read as the working directory', async () => {
    for (const value of ['', 'data']) {
      vi.stubEnv('XDG_DATA_HOME', value);
      const { fake } = await virtualCard([]);
      expect(fake.opts[0]!.store, JSON.stringify(value)).toBe(join(homedir(), '.local/share/senv/virtual-card-0.json'));
    }
  });

  it('every option reaches the card, and the store is per slot', async () => {
    vi.stubEnv('XDG_DATA_HOME', '/data');
    const { fake } = await virtualCard(['--slot', '3', '--host', 'h', '--port', '65535', '--store', 's.json', '--no-extended', '--verbose']);
    expect(fake.opts).toEqual([{ slot: 3, store: 's.json', extended: false, host: 'h', port: 65535, log: expect.any(Function) }]);
    expect((await virtualCard(['--slot', '2'])).fake.opts[0]!.store).toBe('/data/senv/virtual-card-2.json');
    // The bounds: port 1, the last slot that has a port (35963 + 29572 = 65535), and any slot with --port.
    expect((await virtualCard(['--port', '1'])).fake.opts[0]).toMatchObject({ slot: 0, port: 1 });
    expect((await virtualCard(['--slot', '29572'])).fake.opts[0]).toMatchObject({ slot: 29572 });
    expect((await virtualCard(['--slot', '40000', '--port', '1000'])).fake.opts[0]).toMatchObject({ slot: 40000, port: 1000 });
  });

  it('stays while inserted, re-inserts when vpcd drops the card, retries a failed insert, and stops on SIGINT, SIGTERM or SIGHUP', async () => {
    const { r, fake } = await virtualCard([], [
      async (card) => {
        card.inserted = true;
        setTimeout(() => void (card.inserted = false), 300); // vpcd drops the connection
      },
      async () => {
        throw new Error('cannot reach vpcd at 127.0.0.1:35963');
      },
      async (card, stop) => {
        card.inserted = true;
        setTimeout(() => stop('SIGTERM'), 50);
      },
    ]);
    expect(r.code).toBe(0);
    expect(fake.signals.sort()).toEqual(['SIGHUP', 'SIGINT', 'SIGTERM']);
    // Every insert finds the card out: the command waited for vpcd to drop it before inserting again.
    expect(fake.inserts).toEqual([false, false, false]);
    expect(r.out).toMatch(/inserted \(vpcd fake:1\)\n.*vpcd closed the connection; re-inserting\n/);
    expect(r.err).toMatch(/cannot reach vpcd at 127.0.0.1:35963; retrying \(is pcscd running with the vpcd reader\?\)/);
  });
});

describe('bin/senv.js (the compiled command, dist/)', () => {
  const senv = (env: Record<string, string>, ...args: string[]) =>
    spawnSync(process.execPath, [join(root, 'bin/senv.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

  it('gives the shell the command\'s exit code: 0, 2 for usage errors, 1 for a failure', () => {
    const ok = senv({}, 'selftest', '--build', 'scalar');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/selftest: all passed\n$/);
    const usage = senv({}, 'frobnicate');
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^senv: unknown command 'frobnicate'\nusage:/);
    // A directory as --store and as the default store: the command fails on it rather than try vpcd.
    const dir = mkdtempSync(join(tmpdir(), 'senv-cli-'));
    mkdirSync(join(dir, 'senv/virtual-card-0.json'), { recursive: true });
    try {
      const failed = senv({ XDG_DATA_HOME: dir }, 'virtual-card', '--store', dir);
      expect(failed.status).toBe(1);
      expect(failed.stderr).toBe(`senv: virtual card store ${dir} cannot be read (EISDIR)\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  // A full disk: the command's output is lost, and the command says so (its status was 0, nothing written).
  it.runIf(existsSync('/dev/full'))('a write of its output that fails is a failure: exit 1, said on stderr', () => {
    const full = openSync('/dev/full', 'w');
    try {
      for (const args of [['--version'], ['selftest', '--build', 'scalar']]) {
        const r = spawnSync(process.execPath, [join(root, 'bin/senv.js'), ...args], { encoding: 'utf8', stdio: ['ignore', full, 'pipe'] });
        expect([r.status, r.stderr], args.join(' ')).toEqual([1, 'senv: cannot write to stdout (ENOSPC)\n']);
      }
    } finally {
      closeSync(full);
    }
  });

  // `senv virtual-card | head -1`: the reader goes away; the command died of an unhandled EPIPE with a stack trace.
  it('a reader that goes away ends the command quietly, with the status of a process SIGPIPE killed (141); a virtual card gives its store up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-cli-'));
    const closed = (...args: string[]) => new Promise<{ code: number | null; err: string }>((resolve) => {
      const child = spawn(process.execPath, [join(root, 'bin/senv.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy();
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code, err });
      });
    });
    try {
      const store = join(dir, 'card.json');
      const runs = [await closed('selftest', '--build', 'scalar'), await closed('virtual-card', '--port', '1', '--store', store)];
      expect(runs).toEqual([{ code: 141, err: '' }, { code: 141, err: '' }]);
      expect(readdirSync(dir), 'the store made, its lock gone').toEqual(['card.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 25_000);
});

describe('bench harness: refusals and titles', () => {
  const quiet = () => {};
  const group = (cases: BenchCase[], extra: Partial<BenchGroup> = {}): BenchGroup => ({ algorithm: 'probe', size: 16, cases, ...extra });

  it('sizeLabel: whole KiB and MiB only', () => {
    expect([0, 16, 1024, 1536, 64 * 1024, 1 << 20, 3 << 19].map(sizeLabel)).toEqual(['-', '16 B', '1 KiB', '1536 B', '64 KiB', '1 MiB', '1536 KiB']);
  });

  it('a row whose bytes are a prefix of the first row\'s, or extend them, is refused', async () => {
    for (const [a, b] of [[[1, 2, 3], [1, 2, 3, 4]], [[1, 2, 3, 4], [1, 2, 3]]]) {
      await expect(runGroups([group([
        { impl: 'senv', fn: () => new Uint8Array(a!) },
        { impl: 'peer', fn: () => new Uint8Array(b!) },
      ])], { quick: true }, quiet)).rejects.toThrow(/peer computes other bytes than senv/);
    }
  });

  it('a row that fails while it is timed stops the run (synchronous and asynchronous)', async () => {
    let n = 0;
    await expect(runGroups([group([{ impl: 'senv', fn: () => {
      if (++n > 1) throw new Error('sync failure while timed');
      return new Uint8Array(1);
    } }])], { quick: true }, quiet)).rejects.toThrow(/sync failure while timed/);
    let k = 0;
    await expect(runGroups([group([{ impl: 'senv', async: true, fn: async () => {
      if (++k > 1) throw new Error('async failure while timed');
      return new Uint8Array(1);
    } }])], { quick: true }, quiet)).rejects.toThrow(/async failure while timed/);
  });

  it('--filter selects groups by their title (algorithm, size, batch) before anything runs', async () => {
    const differ = [{ impl: 'senv', fn: () => new Uint8Array([1]) }, { impl: 'peer', fn: () => new Uint8Array([2]) }];
    const groups = [group(differ, { algorithm: 'alpha', size: 1024, batch: 4 }), group(differ, { algorithm: 'alpha', size: 16 })];
    // Neither group is selected: nothing is probed, so the differing rows are not found.
    await expect(runGroups(groups, { quick: true, filter: /^beta/ }, quiet)).resolves.toEqual([]);
    await expect(runGroups(groups, { quick: true, filter: /^alpha 1 KiB x4$/ }, quiet)).rejects.toThrow(/^bench: alpha 1 KiB x4: peer computes/);
    await expect(runGroups(groups, { quick: true, filter: /^alpha 16 B$/ }, quiet)).rejects.toThrow(/^bench: alpha 16 B: peer computes/);
  });
});

// A stand-in for benchmark.js that reports, per implementation and per measurement, the figures
// the test sets: the harness's arithmetic is checked without timing anything.
type Figures = { hz: number; rme: number; samples: number };
function fakeBenchmark(plan: Record<string, Figures[]>) {
  class FakeBenchmark {
    hz = 0;
    stats = { rme: 0, sample: [] as number[] };
    error: unknown;
    private fn: (d?: unknown) => unknown;
    private defer: boolean;
    private listeners: Record<string, (() => void)[]> = {};
    constructor(readonly name: string, fnOrOptions: unknown, options?: unknown) {
      const o = (typeof fnOrOptions === 'function' ? { ...(options as object), fn: fnOrOptions } : fnOrOptions) as { fn: (d?: unknown) => unknown; defer?: boolean };
      this.fn = o.fn;
      this.defer = o.defer ?? false;
    }
    on(event: string, cb: () => void) {
      (this.listeners[event] ??= []).push(cb);
      return this;
    }
    abort() {}
    run(options: { async: boolean }) {
      const f = plan[this.name]!.shift()!;
      this.hz = f.hz;
      this.stats = { rme: f.rme, sample: new Array<number>(f.samples).fill(1 / f.hz) };
      try {
        if (this.defer) this.fn({ resolve: () => {}, benchmark: this });
        else this.fn();
      } catch (e) {
        this.error = e;
      }
      if (options.async) setTimeout(() => this.listeners.complete?.forEach((cb) => cb()));
      return this;
    }
  }
  return () => ({ default: FakeBenchmark });
}

describe('bench harness: rounds, ratios and records (benchmark.js stood in for)', () => {
  const rounds = (hz: number[], rme: number[] = hz.map(() => 1)) => hz.map((h, i) => ({ hz: h, rme: rme[i]!, samples: 5 }));

  it('a full run: 7 alternating rounds, ops/s the median round, each ratio the median of the rounds\' ratios with their range', async () => {
    // Per-round ratios senv/peer: 2 3 2 7 1 5 6 -> median 3, range 1-7 (the medians' ratio would be 400/100 = 4).
    const plan = {
      // The ± is the median round's own (8), not the median of the rounds' margins (5).
      senv: rounds([100, 300, 200, 700, 400, 500, 600], [1, 2, 3, 9, 8, 5, 6]),
      'senv scalar': rounds([50, 50, 50, 50, 50, 50, 50]),
      peer: rounds([50, 100, 100, 100, 400, 100, 100]),
    };
    const harness = await withMocks<typeof import('../../bench/harness.ts')>({ benchmark: fakeBenchmark(plan) }, '../../bench/harness.ts');
    const order: string[] = [];
    const c = (impl: string): BenchCase => ({ impl, setup: () => void order.push(impl), fn: () => new Uint8Array(4) });
    let table = '';
    const records = await harness.runGroups(
      [{ algorithm: 'X', size: 1024, batch: 4, cases: [c('senv'), c('senv scalar'), c('peer')] }],
      { quick: false },
      (s) => void (table += `${s}\n`),
    );
    const fw = ['senv', 'senv scalar', 'peer'], bw = [...fw].reverse();
    expect(order).toEqual([...fw, ...fw, ...bw, ...fw, ...bw, ...fw, ...bw, ...fw]); // probe, then rounds 0-6
    expect(records).toEqual<BenchRecord[]>([
      {
        implementation: 'senv', algorithm: 'X', size: 1024, batch: 4, opsPerSec: 400, msgsPerSec: 1600, mbPerSec: (400 * 4 * 1024) / 1e6,
        rme: 8, samples: 35, ratios: { peer: 3 }, ratioRanges: { peer: [1, 7] },
      },
      {
        implementation: 'senv scalar', algorithm: 'X', size: 1024, batch: 4, opsPerSec: 50, msgsPerSec: 200, mbPerSec: (50 * 4 * 1024) / 1e6,
        rme: 1, samples: 35, ratios: { peer: 0.5 }, ratioRanges: { peer: [0.125, 1] },
      },
      {
        implementation: 'peer', algorithm: 'X', size: 1024, batch: 4, opsPerSec: 100, msgsPerSec: 400, mbPerSec: (100 * 4 * 1024) / 1e6,
        rme: 1, samples: 35, ratios: {}, ratioRanges: {},
      },
    ]);
    expect(table).toMatch(/^\nX 1 KiB x4\n/);
    expect(table).toMatch(/ {2}senv {19}\s+1600 msg\/s\s+1.64 MB\/s {2}±8.0% {2}3.00x \[1.00-7.00\] peer\n/);
    expect(table).toMatch(/senv scalar.*0.50x \[0.13-1.00\] peer\n/);
    expect(table).toMatch(/ {2}peer\s+400 msg\/s\s+0.41 MB\/s {2}±1.0% {2}\n/);
  });

  it('a quick run: one round, no ranges in the table; without a batch, a message is an operation', async () => {
    const plan = { senv: rounds([300]), peer: rounds([100]) };
    const harness = await withMocks<typeof import('../../bench/harness.ts')>({ benchmark: fakeBenchmark(plan) }, '../../bench/harness.ts');
    let table = '';
    const records = await harness.runGroups(
      [{ algorithm: 'Y', size: 0, cases: [{ impl: 'senv', fn: () => 1, output: false }, { impl: 'peer', async: true, fn: async () => 1, output: false }] }],
      { quick: true },
      (s) => void (table += `${s}\n`),
    );
    expect(records.map((r) => [r.implementation, r.batch, r.opsPerSec, r.msgsPerSec, r.mbPerSec, r.samples, r.ratios, r.ratioRanges])).toEqual([
      ['senv', 1, 300, 300, 0, 5, { peer: 3 }, { peer: [3, 3] }],
      ['peer', 1, 100, 100, 0, 5, {}, {}],
    ]);
    expect(table).toMatch(/^\nY -\n {2}senv\s+300 op\/s\s+±1.0% {2}3.00x peer\n/);
  });
});

describe('senv bench --out (dist/bench/run.js, with stand-in modules and benchmark.js)', () => {
  it('writes the one JSON file: the run\'s options, the cold start of each build, the filtered records and the findings; not latest.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-bench-'));
    const results = join(root, 'bench/results');
    const before = readdirSync(results);
    try {
      const same = () => new Uint8Array([7]);
      const plan = { senv: rounds7(200), peer: rounds7(100) };
      const modules = {
        tiny: (opts: BenchOptions): BenchGroup[] => {
          opts.finding?.('tiny', { leak: 1.5 });
          return [
            { algorithm: 'keep', size: 16, cases: [{ impl: 'senv', fn: same }, { impl: 'peer', fn: same }] },
            { algorithm: 'drop', size: 16, cases: [{ impl: 'senv', fn: () => new Uint8Array([1]) }, { impl: 'peer', fn: same }] },
          ];
        },
        other: () => {
          throw new Error('a module --only did not name ran');
        },
      };
      const bench = await withMocks<typeof import('../../bench/run.ts')>({
        benchmark: fakeBenchmark(plan),
        '../../dist/bench/index.js': () => ({ benchModules: modules }),
      }, '../../dist/bench/run.js');
      capture();
      const out = join(dir, 'r.json');
      await bench.runBench({ quick: false, only: ['tiny'], filter: '^keep', out });
      const json = JSON.parse(readFileSync(out, 'utf8'));
      expect(Object.keys(json)).toEqual(['date', 'runtime', 'versions', 'checkout', 'machine', 'execArgv', 'options', 'units', 'quick', 'core', 'records', 'findings']);
      // The commit measured, from the checkout the run is in (left out where there is no git repository).
      expect(json.checkout.commit).toBe(spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim());
      expect(json.quick).toBe(false);
      expect(json.options).toEqual({ quick: false, only: ['tiny'], filter: '^keep', roundsPerRatio: 7, secondsPerRound: roundSeconds(false) });
      expect(Object.keys(json.versions)).toEqual(['senv', '@noble/ciphers', '@noble/curves', '@noble/hashes', 'hash-wasm', 'benchmark']);
      expect(json.versions.senv).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
      expect(Object.keys(json.machine)).toEqual(['os', 'arch', 'cpu', 'cores']);
      expect(json.runtime).toBe(`node ${process.versions.node} (V8 ${process.versions.v8}, OpenSSL ${process.versions.openssl})`);
      expect(json.core.map((c: { build: string }) => c.build)).toEqual(coreBuilds());
      expect(json.records.map((r: BenchRecord) => [r.implementation, r.algorithm, r.ratios])).toEqual([['senv', 'keep', { peer: 2 }], ['peer', 'keep', {}]]);
      expect(json.findings).toEqual([{ module: 'tiny', leak: 1.5 }]);
      expect(readdirSync(results)).toEqual(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a --filter that selects only a timing-leak probe (a finding, no record) runs it; one that selects nothing is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-bench-'));
    try {
      const ran: string[] = [];
      // As dudect-aes does: each probe the filter selects reports a finding, and the module no group.
      const leaks = (opts: BenchOptions): BenchGroup[] => {
        for (const probe of ['block, fixed vs random', 'control']) {
          if (opts.filter && !opts.filter.test(probe)) continue;
          ran.push(probe);
          opts.finding?.('leaks', { probe });
        }
        return [];
      };
      const bench = await withMocks<typeof import('../../bench/run.ts')>({
        benchmark: fakeBenchmark({}),
        '../../dist/bench/index.js': () => ({ benchModules: { leaks } }),
      }, '../../dist/bench/run.js');
      capture();
      const out = join(dir, 'r.json');
      await expect(bench.runBench({ quick: true, only: ['leaks'], filter: '^control$', out })).resolves.toEqual([]);
      expect(ran).toEqual(['control']);
      expect(JSON.parse(readFileSync(out, 'utf8')).findings).toEqual([{ module: 'leaks', probe: 'control' }]);
      await expect(bench.runBench({ quick: true, only: ['leaks'], filter: '^nothing$', out })).rejects.toThrow('--filter ^nothing$ matched no group or probe of leaks');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('senv bench without --out (dist/bench/run.js in a copy of the checkout)', () => {
  it('keeps the run in bench/results/ and latest.json, also where the checkout\'s path has a space or a %', () => {
    const copy = mkdtempSync(join(tmpdir(), 'senv bench %20 '));
    try {
      cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
      symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
      // No module runs: only the cold start of each build is measured, then the results are written.
      const script = `const { runBench } = await import(${JSON.stringify(pathToFileURL(join(copy, 'dist/bench/run.js')).href)}); await runBench({ quick: true, only: [] });`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const results = join(copy, 'bench/results');
      const files = readdirSync(results).sort();
      expect(files).toEqual([expect.stringMatching(/^bench-.*\.json$/), 'latest.json']);
      expect(r.stdout).toContain(`wrote ${join(results, files[0]!)}`);
      expect(readFileSync(join(results, files[0]!), 'utf8')).toBe(readFileSync(join(results, 'latest.json'), 'utf8'));
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

function rounds7(hz: number): Figures[] {
  return Array.from({ length: 7 }, () => ({ hz, rme: 1, samples: 5 }));
}

describe('bench modules: --filter selects reports as it selects tables', () => {
  it('a filter that selects none of a module\'s reports runs none: no Mcs memory report, no PC/SC stack for the apdu module', async () => {
    const { mcsBench } = await import('../../bench/mcs.ts');
    const { apduBench } = await import('../../bench/apdu.ts');
    const findings: unknown[] = [];
    const opts: BenchOptions = { quick: true, filter: /^nothing$/, finding: (module, data) => void findings.push({ module, ...data }) };
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await mcsBench(opts);
    await expect(apduBench(opts)).resolves.toEqual([]);
    expect(findings).toEqual([]);
  }, 60_000);
});

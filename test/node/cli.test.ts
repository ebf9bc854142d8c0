// The `senv` command line: usage errors exit 2 naming the problem, --help works for every command,
// a vpcd port out of range is a usage error rather than a card that claims to be inserted, and
// rotate-master-key moves a closed data directory to a new key or changes nothing.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { main } from '../../src/bindings/cli.ts';
import { VpcdCard, type CardHandler } from '../../src/virtual-card/index.ts';
import { CipherResource, McsClient, McsEngine, SensitiveDataResource, SoftwareBackend, StateError, type RollbackAnchor } from '../../src/index.ts';
import { core, coreBuilds, initSync } from '../../src/core/loader.ts';

function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  vi.spyOn(console, 'log').mockImplementation((s: unknown) => void (out += `${String(s)}\n`));
  vi.spyOn(console, 'error').mockImplementation((s: unknown) => void (err += `${String(s)}\n`));
  return main(argv).then((code) => ({ code, out, err }));
}

describe('senv command line', () => {
  afterEach(() => vi.restoreAllMocks());

  it('--help prints the usage and exits 0 for every command', async () => {
    for (const argv of [['--help'], ['help'], ['help', 'selftest'], ['selftest', '--help'], ['bench', '-h'], ['virtual-card', '--help'],
      // --help anywhere among a command's options, not only first.
      ['rotate-master-key', '--data-dir', 'd', '--help']]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.out, argv.join(' ')).toMatch(/^usage: senv <command>/);
    }
  });

  it('unknown commands and options, missing values and bad numbers exit 2 naming the problem', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['frobnicate', '--help'], /unknown command 'frobnicate'/],
      [['frobnicate', '-h'], /unknown command 'frobnicate'/],
      // The options the command does know are named.
      [['selftest', '--bogus'], /selftest: unknown option '--bogus' \(--build\)/],
      [['rotate-master-key', '--new-key', 'f'], /unknown option '--new-key' \(--data-dir, --key-file, --key-env, --new-key-file, --new-key-env, --rollback-anchor\)/],
      [['selftest', '--build'], /--build needs a value/],
      [['selftest', '--build', 'fast'], /--build takes all, .*not 'fast'/],
      [['selftest', '--build', ''], /--build takes all, relaxed, simd, scalar, not ''/],
      [['virtual-card', '--slot', 'x'], /--slot takes a number from 0 to 65535, not 'x'/],
      [['virtual-card', '--port', '70000'], /--port takes a number/],
      [['virtual-card', '--port', '0'], /--port takes a number from 1 to 65535, not '0'/],
      [['virtual-card', '--host', ''], /--host takes a host name or address/],
      [['virtual-card', '--store', ''], /virtual-card: --store takes a file name, not an empty string/],
      [['help', 'bogus'], /help takes a command's name or nothing, not 'bogus'/],
      // A name every object inherits is no command.
      [['help', 'toString'], /help takes a command's name or nothing, not 'toString'/],
      [['--help', 'selftest', 'bench'], /--help takes a command's name or nothing, not 'selftest bench'/],
      [['--version', 'bogus'], /--version takes nothing more, not 'bogus'/],
      [[], /^usage: senv <command>/],
      // vpcd's slot N listens on 35963 + N: a slot past 29572 has no port.
      [['virtual-card', '--slot', '40000'], /--slot 40000 would be port 75963/],
      [['rotate-master-key', '--new-key-env', 'K'], /rotate-master-key: --data-dir names the data directory/],
      [['rotate-master-key', '--data-dir', '', '--new-key-env', 'N'], /rotate-master-key: --data-dir names the data directory/],
      [['rotate-master-key', '--data-dir', 'd'], /rotate-master-key: --new-key-file or --new-key-env gives the new master key/],
      // The current key named is no new one.
      [['rotate-master-key', '--data-dir', 'd', '--key-env', 'K'], /rotate-master-key: --new-key-file or --new-key-env gives the new master key/],
      [['rotate-master-key', '--data-dir', 'd', '--new-key-file', 'f', '--new-key-env', 'K'], /--new-key-file and --new-key-env name the same key: give one/],
      [['rotate-master-key', '--data-dir', 'd', '--key-file', 'f', '--key-env', 'K', '--new-key-env', 'N'], /--key-file and --key-env name the same key: give one/],
      [['rotate-master-key', '--data-dir', 'd', '--new-key-env', ''], /--new-key-env takes a variable name, not an empty string/],
      [['rotate-master-key', '--data-dir', 'd', '--key-file', '', '--new-key-env', 'N'], /--key-file takes a file name, not an empty string/],
      [['rotate-master-key', '--data-dir', 'd', '--new-key-env', 'N', '--rollback-anchor', ''], /--rollback-anchor takes a module, not an empty string/],
      // A key is never an argument: `ps` and the shell's history would show it.
      [['rotate-master-key', '--data-dir', 'd', '--new-key', '00'.repeat(32)], /rotate-master-key: unknown option '--new-key'/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(message);
      // The problem, then the usage text, on stderr; nothing on stdout.
      expect([r.out, /^(senv: .*\n)?usage: senv <command>/.test(r.err)], argv.join(' ')).toEqual(['', true]);
    }
  });

  it('selftest --build runs the known answers on the build it names, not on the one loaded before', async () => {
    const builds = coreBuilds();
    try {
      for (const build of builds) {
        initSync({ build: builds.find((b) => b !== build) ?? build });
        const r = await run(['selftest', '--build', build]);
        expect([r.code, r.err, r.out.endsWith('selftest: all passed\n')], build).toEqual([0, '', true]);
        expect(core().info.build, build).toBe(build);
      }
    } finally {
      initSync();
    }
  });

  it('bin/senv.js --version prints the package\'s version (dist/ finds package.json further up than src/ does)', () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = spawnSync(process.execPath, [new URL('../../bin/senv.js', import.meta.url).pathname, '--version'], { encoding: 'utf8' });
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', `${version}\n`]);
  });

  it('bin/senv.js --version under Deno needs no permission: the version is a constant, not package.json read at run time', () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const deno = new URL('../../node_modules/deno/deno', import.meta.url).pathname;
    const r = spawnSync(deno, ['run', '--no-prompt', '--quiet', new URL('../../bin/senv.js', import.meta.url).pathname, '--version'], { encoding: 'utf8' });
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', `${version}\n`]);
  });

  it('a card whose port cannot be connected to is not inserted, and a second insert tries again', async () => {
    const handler: CardHandler = { atr: () => new Uint8Array([0x3b, 0]), apdu: () => new Uint8Array([0x90, 0]), power: () => undefined };
    const card = new VpcdCard(handler, { port: 75963, keepAlive: false });
    await expect(card.insert(1000)).rejects.toThrow(/cannot reach vpcd/);
    expect(card.inserted).toBe(false);
    await expect(card.insert(1000)).rejects.toThrow(/cannot reach vpcd/);
  });
});

describe('senv rotate-master-key', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });
  const OLD = new Uint8Array(32).fill(0x11);
  const NEW = new Uint8Array(32).fill(0x22);
  const KEY = new Uint8Array(16).fill(0x33);
  const NONCE = new Uint8Array(12).fill(0x44);
  const hex = (k: Uint8Array) => Buffer.from(k).toString('hex');
  const MESSAGE = new TextEncoder().encode('sealed under the master key');
  const SECRET = new TextEncoder().encode('kept in a sensitive data object');
  const gcmByNode = () => {
    const c = createCipheriv('aes-128-gcm', KEY, NONCE);
    return new Uint8Array(Buffer.concat([c.update(MESSAGE), c.final(), c.getAuthTag()]));
  };

  /** A data directory under OLD holding a secret and a cipher's key, on two SEs; the addresses to read them back. */
  async function directory(top: string, rollbackAnchor?: RollbackAnchor): Promise<{ dir: string; seIds: string[]; sdo: string; cipher: string }> {
    const dir = join(top, 'data');
    const e = await McsEngine.create({ dataDir: dir, masterKey: OLD, backends: [new SoftwareBackend({ uniqueId: 'a1' }), new SoftwareBackend({ uniqueId: 'b2' })], rollbackAnchor });
    const a = await new McsClient(e, 'CAE1', e.seIds[0]).register();
    const b = await new McsClient(e, 'CAE2', e.seIds[1]).register();
    const sdo = (await b.sensitiveData(SECRET)).address;
    const cipher = await a.cipher({ algorithm: 1001, maxByteSize: 1024, key: KEY, nonce: NONCE });
    await cipher.update(MESSAGE);
    expect(await cipher.encrypt()).toEqual(gcmByNode());
    const seIds = e.seIds;
    await e.close();
    return { dir, seIds, sdo, cipher: cipher.address };
  }

  /** Both SEs' values read back under `masterKey`, the cipher's key used once more. */
  async function readBack(d: { dir: string; seIds: string[]; sdo: string; cipher: string }, masterKey: Uint8Array, rollbackAnchor?: RollbackAnchor): Promise<void> {
    const e = await McsEngine.create({ dataDir: d.dir, masterKey, backends: [new SoftwareBackend({ uniqueId: 'a1' }), new SoftwareBackend({ uniqueId: 'b2' })], rollbackAnchor });
    try {
      expect(e.seIds).toEqual(d.seIds);
      expect(await new SensitiveDataResource(new McsClient(e, 'CAE2', e.seIds[1]), d.sdo).read()).toEqual(SECRET);
      const cipher = new CipherResource(new McsClient(e, 'CAE1', e.seIds[0]), d.cipher);
      await cipher.update(MESSAGE);
      expect(await cipher.encrypt()).toEqual(gcmByNode());
    } finally {
      await e.close();
    }
  }

  function withTop<T>(fn: (top: string) => Promise<T>): Promise<T> {
    const top = mkdtempSync(join(tmpdir(), 'senv-rotate-cli-'));
    return fn(top).finally(() => rmSync(top, { recursive: true, force: true }));
  }

  it('moves a closed directory to the key a file gives: every SE\'s values open under it, the old key is refused, no SE is added', () => withTop(async (top) => {
    const d = await directory(top);
    const uniqueIds = () => (JSON.parse(readFileSync(join(d.dir, 'meta.json'), 'utf8')) as { uniqueIds: unknown }).uniqueIds;
    const ids = uniqueIds();
    writeFileSync(join(top, 'old.key'), hex(OLD));
    writeFileSync(join(top, 'new.key'), hex(NEW));
    const r = await run(['rotate-master-key', '--data-dir', d.dir, '--key-file', join(top, 'old.key'), '--new-key-file', join(top, 'new.key')]);
    expect([r.code, r.err]).toEqual([0, '']);
    expect(r.out).toBe(`rotate-master-key: ${d.dir} is under the new master key; the old one no longer opens it (copies taken before stay under the old one)\n`);
    await expect(McsEngine.create({ dataDir: d.dir, masterKey: OLD, backends: [] })).rejects.toMatchObject({ name: 'StateError', message: expect.stringContaining('the master key does not open the data directory') });
    await readBack(d, NEW);
    // The engine it opened hosted no SE: a software SE of its own would have taken a unique ID of the directory.
    expect(uniqueIds()).toEqual(ids);
    expect(readdirSync(d.dir).sort()).toEqual(['journal.log', 'meta.json', 'snapshot.json']);
  }));

  it('takes the keys from variables, the current one from SENV_MASTER_KEY when no option names it', () => withTop(async (top) => {
    const d = await directory(top);
    vi.stubEnv('SENV_MASTER_KEY', hex(OLD));
    vi.stubEnv('SENV_TEST_NEW_KEY', hex(NEW));
    expect((await run(['rotate-master-key', '--data-dir', d.dir, '--new-key-env', 'SENV_TEST_NEW_KEY'])).code).toBe(0);
    await readBack(d, NEW);
    // And back, both named.
    vi.stubEnv('SENV_MASTER_KEY', 'not this one');
    vi.stubEnv('SENV_TEST_OLD_KEY', hex(OLD));
    expect((await run(['rotate-master-key', '--data-dir', d.dir, '--key-env', 'SENV_TEST_NEW_KEY', '--new-key-env', 'SENV_TEST_OLD_KEY'])).code).toBe(0);
    await readBack(d, OLD);
  }));

  it('refuses with status 1 and changes nothing: no directory (none made), a wrong key, the same key, a directory an engine has open, a key file missing', () => withTop(async (top) => {
    const d = await directory(top);
    const files = () => Object.fromEntries(readdirSync(d.dir).map((f) => [f, readFileSync(join(d.dir, f)).toString('hex')]));
    const before = files();
    writeFileSync(join(top, 'old.key'), hex(OLD));
    writeFileSync(join(top, 'new.key'), hex(NEW));
    const rotate = (...more: string[]) => run(['rotate-master-key', '--key-file', join(top, 'old.key'), '--new-key-file', join(top, 'new.key'), ...more]);
    const nowhere = join(top, 'mistyped');
    const cases: [string[], string][] = [
      [['--data-dir', nowhere], `rotate-master-key: ${nowhere} is no senv data directory (it holds no meta.json): nothing was changed\n`],
      [['--data-dir', top], `rotate-master-key: ${top} is no senv data directory (it holds no meta.json): nothing was changed\n`],
      [['--data-dir', d.dir, '--key-file', join(top, 'new.key')], 'rotate-master-key: StateError: the master key does not open the data directory'],
      [['--data-dir', d.dir, '--new-key-file', join(top, 'old.key')], 'rotate-master-key: InvalidInputError: the new master key is the one the data directory is under already: give another key\n'],
      [['--data-dir', d.dir, '--new-key-file', join(top, 'no.key')], 'rotate-master-key: StateError: '],
    ];
    for (const [more, message] of cases) {
      const r = await rotate(...more);
      expect([r.code, r.out, r.err.startsWith(message)], `${more.join(' ')}: ${r.err}`).toEqual([1, '', true]);
    }
    expect(existsSync(nowhere)).toBe(false);
    const open = await McsEngine.create({ dataDir: d.dir, masterKey: OLD, backends: [] });
    try {
      const r = await rotate('--data-dir', d.dir);
      expect([r.code, r.err], r.err).toEqual([1, expect.stringMatching(/^rotate-master-key: DataDirLockedError: /)]);
    } finally {
      await open.close();
    }
    expect(files()).toEqual(before);
    await readBack(d, OLD);
  }));

  it('rotates a directory kept with a rollback anchor through the module --rollback-anchor names, which then opens it; a bad module changes nothing', () => withTop(async (top) => {
    const token = join(top, 'anchor.bin');
    const anchor: RollbackAnchor = {
      read: () => (existsSync(token) ? new Uint8Array(readFileSync(token)) : undefined),
      write: (head) => writeFileSync(token, head),
    };
    writeFileSync(join(top, 'anchor.mjs'), `import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const token = ${JSON.stringify(token)};
export function createRollbackAnchor() {
  return { read: () => (existsSync(token) ? new Uint8Array(readFileSync(token)) : undefined), write: (head) => writeFileSync(token, head) };
}`);
    writeFileSync(join(top, 'none.mjs'), 'export const anchor = 1;');
    writeFileSync(join(top, 'empty.mjs'), '');
    writeFileSync(join(top, 'read-only.mjs'), 'export default () => ({ read: () => undefined });');
    writeFileSync(join(top, 'throws-string.mjs'), "export function createRollbackAnchor() { throw 'key 00112233'; }");
    writeFileSync(join(top, 'default-value.mjs'), 'export default 1;\nexport const createRollbackAnchor = () => ({ write: () => undefined });');
    const d = await directory(top, anchor);
    writeFileSync(join(top, 'old.key'), hex(OLD));
    writeFileSync(join(top, 'new.key'), hex(NEW));
    const rotate = (...more: string[]) => run(['rotate-master-key', '--data-dir', d.dir, '--key-file', join(top, 'old.key'), '--new-key-file', join(top, 'new.key'), ...more]);
    const headBefore = readFileSync(token);
    const bad = await rotate('--rollback-anchor', join(top, 'none.mjs'));
    expect([bad.code, bad.err]).toEqual([1, `rotate-master-key: Error: rotate-master-key --rollback-anchor ${join(top, 'none.mjs')}: exports no function giving an anchor (a default export or createRollbackAnchor; it exports anchor)\n`]);
    const refused = (file: string, reason: string) => `rotate-master-key: Error: rotate-master-key --rollback-anchor ${file}: ${reason}`;
    const empty = await rotate('--rollback-anchor', join(top, 'empty.mjs'));
    expect([empty.code, empty.err]).toEqual([1, `${refused(join(top, 'empty.mjs'), 'exports no function giving an anchor (a default export or createRollbackAnchor; it exports nothing)')}\n`]);
    // An anchor that can be read but not written would leave the head it names behind the rotation.
    const readOnly = await rotate('--rollback-anchor', join(top, 'read-only.mjs'));
    expect([readOnly.code, readOnly.err]).toEqual([1, `${refused(join(top, 'read-only.mjs'), 'its function gave a value of type Object, not a RollbackAnchor (docs/mcs.md "Rollback")')}\n`]);
    // A value thrown that is no Error is shown by its type only (it may be anything, a key too).
    const thrown = await rotate('--rollback-anchor', join(top, 'throws-string.mjs'));
    expect([thrown.code, thrown.err]).toEqual([1, `${refused(join(top, 'throws-string.mjs'), 'its function failed (a string of 12 characters)')}\n`]);
    // A default export that is no function leaves the named one to be taken.
    const named = await rotate('--rollback-anchor', join(top, 'default-value.mjs'));
    expect([named.code, named.err]).toEqual([1, `${refused(join(top, 'default-value.mjs'), 'its function gave a value of type Object, not a RollbackAnchor (docs/mcs.md "Rollback")')}\n`]);
    // A relative file is resolved against the current directory, also when it is not there (the message names where it was looked for).
    const missing = await rotate('--rollback-anchor', './no-such-anchor.mjs');
    expect([missing.code, missing.err.startsWith(`${refused('./no-such-anchor.mjs', 'cannot be loaded (')}`), missing.err.includes(join(process.cwd(), 'no-such-anchor.mjs'))], missing.err).toEqual([1, true, true]);
    expect(readFileSync(token)).toEqual(headBefore);
    const r = await rotate('--rollback-anchor', join(top, 'anchor.mjs'));
    expect([r.code, r.err]).toEqual([0, '']);
    expect(readFileSync(token)).not.toEqual(headBefore);
    await readBack(d, NEW, anchor);
  }));

  it('a close that fails after the rotation is the command\'s failure: status 1, said on stderr, no success message', () => withTop(async (top) => {
    const d = await directory(top);
    writeFileSync(join(top, 'old.key'), hex(OLD));
    writeFileSync(join(top, 'new.key'), hex(NEW));
    const close = McsEngine.prototype.close;
    vi.spyOn(McsEngine.prototype, 'close').mockImplementationOnce(async function (this: McsEngine) {
      await close.call(this);
      throw new StateError('the lock of the data directory could not be removed');
    });
    const r = await run(['rotate-master-key', '--data-dir', d.dir, '--key-file', join(top, 'old.key'), '--new-key-file', join(top, 'new.key')]);
    expect([r.code, r.out, r.err]).toEqual([1, '', 'rotate-master-key: closing the data directory failed: StateError: the lock of the data directory could not be removed\n']);
    // The rotation was committed before the close.
    await readBack(d, NEW);
  }));

  it('runs as the installed command does (bin/senv.js over dist/)', () => withTop(async (top) => {
    const d = await directory(top);
    writeFileSync(join(top, 'new.key'), hex(NEW));
    const senv = new URL('../../bin/senv.js', import.meta.url).pathname;
    const r = spawnSync(process.execPath, [senv, 'rotate-master-key', '--data-dir', 'data', '--key-env', 'OLD_KEY', '--new-key-file', 'new.key'], {
      cwd: top, encoding: 'utf8', env: { ...process.env, OLD_KEY: hex(OLD) },
    });
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', 'rotate-master-key: data is under the new master key; the old one no longer opens it (copies taken before stay under the old one)\n']);
    await readBack(d, NEW);
  }));
});

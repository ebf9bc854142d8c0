// What a project gets from `npm install onem2m-senv`: the tarball `npm pack`
// makes of this checkout, installed into an empty project beside it, used
// there as a consumer would (an ES module and CommonJS on Node, Deno from the
// project's node_modules, the subpath exports, the types through "exports",
// the `senv` command, the install script's bridge). Needs the build (npm test
// builds first). npm takes node-addon-api from its cache, which the
// checkout's own `npm install` filled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { runChild, type ChildRun } from './run-child.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const hasPcscHeaders = existsSync('/usr/include/PCSC/winscard.h');
const requirePcsc = process.env.SENV_REQUIRE_PCSC === '1' || !!process.env.CI;

let dir = '';
let app = '';
let files: string[] = [];
let install: ChildRun;

function ok(r: ChildRun): ChildRun {
  if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}\n${r.out}\n${r.err}`);
  return r;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'senv-package-'));
  // --ignore-scripts: the checkout is built already; `prepare` would build it again.
  const pack = ok(await runChild('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: root, killMs: 60_000 }));
  const info = JSON.parse(pack.out) as { filename: string; files: { path: string }[] }[];
  files = info[0]!.files.map((f) => f.path);
  const tarball = join(dir, info[0]!.filename);
  app = join(dir, 'app');
  mkdirSync(app);
  // The approval `npm install-scripts approve` records: npm 12 runs no dependency's install script without one.
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', allowScripts: { [`file:${tarball}`]: true } }));
  install = ok(await runChild('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], { cwd: app, killMs: 180_000 }));
}, 240_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the packed package, installed into an empty project', () => {
  it('ships the built code, the three WASM builds, the command, the bridge sources and the docs; no sources, tests, vectors or build output', () => {
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/pcsc/exports.js', 'dist/src/pcsc/exports.d.ts',
      'build/senv.relaxed.wasm', 'build/senv.simd.wasm', 'build/senv.scalar.wasm', 'bin/senv.js',
      'native/binding.gyp', 'native/senv_pcsc.cc', 'scripts/build-native.mjs', 'README.md', 'docs/mcs.md', 'docs/pcsc.md', 'package.json']) {
      expect(files).toContain(f);
    }
    const stray = files.filter((f) => /^(src|assembly|test|bench|dist\/test|dist\/bench|native\/build)\/|\.node$|vectors/.test(f));
    expect(stray).toEqual([]);
  });

  it('its install script built the PC/SC bridge where libpcsclite\'s headers are, and said why not elsewhere', () => {
    const built = existsSync(join(app, 'node_modules/onem2m-senv/native/build/Release/senv_pcsc.node'));
    if (hasPcscHeaders || requirePcsc) {
      expect(install.out).toContain('senv native PC/SC bridge: built native/build/Release/senv_pcsc.node');
      expect(built).toBe(true);
    } else {
      expect(install.err).toContain('senv native PC/SC bridge: skipped, libpcsclite headers not found');
      expect(built).toBe(false);
    }
  });

  it('an ES module imports the root and onem2m-senv/pcsc: AES-GCM, an Mcs <hash> and the bridge as in the checkout, checked against node:crypto', async () => {
    writeFileSync(join(app, 'use.mjs'), `
      import { createCipheriv, createHash } from 'node:crypto';
      import { gcm, McsEngine, McsClient, coreBuilds } from 'onem2m-senv';
      import { nativeAvailable } from 'onem2m-senv/pcsc';
      const key = Uint8Array.from({ length: 16 }, (_, i) => i), nonce = new Uint8Array(12).fill(7);
      const msg = new TextEncoder().encode('senv as a dependency');
      const c = createCipheriv('aes-128-gcm', key, nonce);
      const want = Buffer.concat([c.update(msg), c.final(), c.getAuthTag()]);
      const sealed = gcm(key, nonce).encrypt(msg);
      const me = await new McsClient(await McsEngine.create(), 'CAE1').register('me');
      const h = await me.hash({ algorithm: 4 });
      await h.update(msg);
      const digest = await h.calculate();
      console.log(JSON.stringify({
        gcm: Buffer.from(sealed).equals(want),
        opened: Buffer.from(gcm(key, nonce).decrypt(sealed)).equals(msg),
        hash: Buffer.from(digest).equals(createHash('sha256').update(msg).digest()),
        builds: coreBuilds(),
        native: nativeAvailable(),
      }));
    `);
    const r = ok(await runChild(process.execPath, ['use.mjs'], { cwd: app }));
    const got = JSON.parse(r.out) as { gcm: boolean; opened: boolean; hash: boolean; builds: string[]; native: boolean };
    expect(got).toMatchObject({ gcm: true, opened: true, hash: true, native: hasPcscHeaders });
    expect(got.builds).toContain('simd');
  });

  it('CommonJS require()s both entry points (Node 20.19+ loads ES modules synchronously; nothing awaits at the top level)', async () => {
    writeFileSync(join(app, 'use.cjs'), `
      const { sha256 } = require('onem2m-senv');
      const { PcscContext } = require('onem2m-senv/pcsc');
      const { createHash } = require('node:crypto');
      const msg = Buffer.from('required');
      console.log(JSON.stringify({ hash: Buffer.from(sha256(msg)).equals(createHash('sha256').update(msg).digest()), pcsc: typeof PcscContext.establish }));
    `);
    const r = ok(await runChild(process.execPath, ['use.cjs'], { cwd: app }));
    expect(JSON.parse(r.out)).toEqual({ hash: true, pcsc: 'function' });
  });

  it('Deno runs it from the project\'s node_modules: the root with no permissions, the bridge with --allow-ffi', async () => {
    writeFileSync(join(app, 'deno-root.mjs'), `
      import { sha256, McsEngine } from 'onem2m-senv';
      const msg = new TextEncoder().encode('abc');
      const hex = Array.from(sha256(msg), (b) => b.toString(16).padStart(2, '0')).join('');
      console.log(JSON.stringify({ hex, ses: (await McsEngine.create()).seIds.length }));
    `);
    writeFileSync(join(app, 'deno-pcsc.mjs'), `
      import { nativeAvailable } from 'onem2m-senv/pcsc';
      console.log(JSON.stringify({ native: nativeAvailable() }));
    `);
    const deno = join(root, 'node_modules/.bin/deno');
    const env = { NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' };
    const r = ok(await runChild(deno, ['run', '--node-modules-dir=manual', 'deno-root.mjs'], { cwd: app, env, killMs: 60_000 }));
    expect(JSON.parse(r.out)).toEqual({ hex: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', ses: 1 });
    const p = ok(await runChild(deno, ['run', '--node-modules-dir=manual', '--allow-ffi', '--allow-read', '--allow-env', 'deno-pcsc.mjs'], { cwd: app, env, killMs: 60_000 }));
    expect(JSON.parse(p.out)).toEqual({ native: hasPcscHeaders });
  });

  it('the wasm subpath exports name the three builds\' files', async () => {
    const r = ok(await runChild(process.execPath, ['--input-type=module', '-e',
      `console.log(JSON.stringify(['relaxed', 'simd', 'scalar'].map((b) => import.meta.resolve('onem2m-senv/wasm/' + b))))`], { cwd: app }));
    const paths = (JSON.parse(r.out) as string[]).map((u) => fileURLToPath(u));
    expect(paths).toEqual(['relaxed', 'simd', 'scalar'].map((b) => join(app, `node_modules/onem2m-senv/build/senv.${b}.wasm`)));
    for (const p of paths) expect(WebAssembly.validate(readFileSync(p))).toBe(true);
  });

  it('exports its package.json: a project or tool reads the installed version there (without the export, ERR_PACKAGE_PATH_NOT_EXPORTED)', async () => {
    const r = ok(await runChild(process.execPath, ['--input-type=module', '-e',
      `import { createRequire } from 'node:module'; console.log(createRequire(process.cwd() + '/')('onem2m-senv/package.json').version)`], { cwd: app }));
    expect(r.out.trim()).toBe((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('TypeScript finds the declarations through "exports" (nodenext, strict, skipLibCheck off)', () => {
    const file = join(app, 'consumer.mts');
    writeFileSync(file, `
      import { gcm, McsEngine, type McsResponse } from 'onem2m-senv';
      import { PcscContext } from 'onem2m-senv/pcsc';
      export const sealed: Uint8Array = gcm(new Uint8Array(16), new Uint8Array(12)).encrypt(new Uint8Array(0));
      export const answer: Promise<McsResponse> = McsEngine.create().then((m) => m.send({ op: 2, to: m.seIds[0]!, fr: 'C1', rqi: '1' }));
      export const ctx: Promise<PcscContext> = PcscContext.establish();
    `);
    const program = ts.createProgram([file], {
      strict: true, noEmit: true, skipLibCheck: false, target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2022.d.ts'], types: ['node'], typeRoots: [join(root, 'node_modules/@types')],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diagnostics).toEqual([]);
    // Resolved from the installed copy, not from this checkout.
    expect(program.getSourceFiles().map((f) => f.fileName)).toContain(join(app, 'node_modules/onem2m-senv/dist/src/index.d.ts'));
  });

  it('the senv command runs its self test from node_modules/.bin', async () => {
    const r = ok(await runChild(join(app, 'node_modules/.bin/senv'), ['selftest', '--build', 'simd'], { cwd: app, killMs: 60_000 }));
    expect(r.out).toMatch(/selftest: all passed/);
  });
});

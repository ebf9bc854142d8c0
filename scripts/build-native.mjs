// Builds the optional PC/SC bridge (native/) with node-gyp. Run by `npm install`.
//
// The bridge is optional: without libpcsclite's headers this prints what to
// install and exits 0, so that installing senv never fails on a machine that
// only wants the WASM core. The PC/SC backend then reports the same advice at
// run time (src/pcsc/native.ts). `--strict` turns a missing header or a failed
// build into a non-zero exit (for CI jobs that must have the bridge).
// SENV_NATIVE=skip leaves it out (browser- or Deno-only consumers that have the
// headers but no use for the bridge); `npm rebuild onem2m-senv` builds it later.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const strict = process.argv.includes('--strict');
const nativeDir = fileURLToPath(new URL('../native/', import.meta.url));
const INSTALL_HINT =
  'Debian/Ubuntu: apt-get install libpcsclite-dev g++ make python3 (and pcscd to use readers); ' +
  'Fedora: dnf install pcsc-lite-devel gcc-c++ make; then run: npm rebuild onem2m-senv (in a senv checkout: node scripts/build-native.mjs)';

function hasPcscHeaders() {
  const pc = spawnSync('pkg-config', ['--exists', 'libpcsclite']);
  return pc.status === 0 || existsSync('/usr/include/PCSC/winscard.h');
}

function nodeGyp() {
  // npm exports the path of the node-gyp it bundles to every lifecycle script.
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

function finish(ok, message) {
  const stream = ok ? process.stdout : process.stderr;
  stream.write(`senv native PC/SC bridge: ${message}\n`);
  process.exit(ok || !strict ? 0 : 1);
}

if (process.env.SENV_NATIVE === 'skip' && !strict) finish(true, 'skipped (SENV_NATIVE=skip); build it later with: npm rebuild onem2m-senv');
if (!hasPcscHeaders()) finish(false, `skipped, libpcsclite headers not found (${INSTALL_HINT})`);
const gyp = nodeGyp();
if (!gyp) finish(false, 'skipped, node-gyp not found (npm install -g node-gyp, or run through npm)');

// Prefer the running node's own headers (distribution packages ship them) to
// a download from nodejs.org, which offline and proxied machines cannot do.
// An incremental build only over one that succeeded: after a failed one (a missing compiler, say)
// its configuration may name what failed, and only a rebuild configures again.
const built = existsSync(join(nativeDir, 'build/config.gypi')) && existsSync(join(nativeDir, 'build/Release/senv_pcsc.node'));
const args = [gyp, built ? 'build' : 'rebuild', '--directory', nativeDir];
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (r.status !== 0) finish(false, `node-gyp failed (exit ${r.status}); senv works without the bridge, only the PC/SC backend is unavailable`);
finish(true, 'built native/build/Release/senv_pcsc.node');

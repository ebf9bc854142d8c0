#!/usr/bin/env node
// The PC/SC test stack: pcscd with the vpcd reader (virtual card slots on TCP
// 35963/35964) and the TCP_NODELAY fix, shared by every test file and
// benchmark that needs it, and stopped by PID when the last user leaves.
//
//   node scripts/pcsc-stack.mjs start|stop|status
//   import { acquireStack } from './scripts/pcsc-stack.mjs'   (tests, bench)
//
// pcscd is one per machine (/run/pcscd), vpcd has two slots, and vitest runs
// test files in parallel processes. So the state lives in a directory under
// the temp dir: the pid of the pcscd we started, one file per user (pid-based,
// so users that died are noticed) and one lock file per slot. A pcscd we did
// not start is used only when it serves the vpcd reader, and never stopped.
// See docs/pcsc.md and the measurements behind it (vpcd's 44 ms Nagle trap).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// Per user: another user's state directory is not writable (the pcscd itself is shared, see acquireStack).
const STATE = process.env.SENV_PCSC_STATE ?? join(tmpdir(), `senv-pcsc-stack-${process.getuid?.() ?? 'user'}`);
const PCSCD = '/usr/sbin/pcscd';
const VPCD_DRIVER = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';
const SYSTEM_PID = '/run/pcscd/pcscd.pid';
// The stack, and what building the bridge (node-gyp) and the latency shim (cc) takes.
const APT_PACKAGES = ['pcscd', 'libpcsclite-dev', 'vsmartcard-vpcd', 'g++', 'make', 'python3'];
export const SLOTS = 2;
export const READER_PREFIX = 'Virtual PCD';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function alive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

const readPid = (file) => {
  try {
    return parseInt(readFileSync(file, 'utf8'), 10); // pcscd's own pid file ends in a NUL byte
  } catch {
    return NaN;
  }
};

// A short critical section across processes: mkdir is atomic. A lock whose
// owner died is taken over.
async function withLock(fn) {
  mkdirSync(STATE, { recursive: true });
  const lock = join(STATE, 'lock');
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const owner = readPid(join(lock, 'pid'));
      // Taken over from an owner that died, or one that never wrote its pid (30 s); a live owner may
      // hold it for as long as an apt-get install or a build takes.
      if (Number.isNaN(owner) ? i > 600 : !alive(owner)) rmSync(lock, { recursive: true, force: true });
      await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function loadAddon() {
  const path = join(root, 'native/build/Release/senv_pcsc.node');
  if (!existsSync(path)) return null;
  try {
    return createRequire(import.meta.url)(path);
  } catch {
    return null;
  }
}

async function listReaders(addon) {
  const m = await addon.Monitor.establish();
  try {
    return await m.listReaders();
  } finally {
    await m.release();
  }
}

function installPackages(log) {
  const missing = [];
  if (!existsSync(PCSCD)) missing.push('pcscd');
  if (!existsSync(VPCD_DRIVER)) missing.push('vsmartcard-vpcd');
  if (!existsSync('/usr/include/PCSC/winscard.h')) missing.push('libpcsclite-dev');
  for (const tool of ['g++', 'make', 'python3']) if (!existsSync(`/usr/bin/${tool}`)) missing.push(tool);
  if (missing.length === 0) return null;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    return `not installed: ${missing.join(', ')} (as root on Debian/Ubuntu: apt-get install --no-install-recommends ${APT_PACKAGES.join(' ')})`;
  }
  log(`pcsc-stack: installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // A fresh machine may still run its own apt job: wait for dpkg's lock (as setup-system.sh does).
  const wait = ['-o', 'DPkg::Lock::Timeout=600'];
  spawnSync('apt-get', [...wait, 'update', '-qq'], { env, stdio: 'ignore' });
  const r = spawnSync('apt-get', [...wait, 'install', '-y', '-qq', '--no-install-recommends', ...missing], { env, encoding: 'utf8' });
  return r.status === 0 ? null : `apt-get install ${missing.join(' ')} failed: ${(r.stderr || '').trim().slice(-400)}`;
}

function buildAddon(log) {
  if (loadAddon()) return null;
  log('pcsc-stack: building the native bridge (node scripts/build-native.mjs)');
  const r = spawnSync(process.execPath, [join(root, 'scripts/build-native.mjs'), '--strict'], { encoding: 'utf8' });
  if (loadAddon()) return null;
  // node-gyp ends with the same generic trailer whatever failed: the lines that name the cause first.
  const out = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n');
  const cause = out.filter((l) => /error|not found|no such file|ENOENT/i.test(l) && !/gyp ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(l));
  return `the native bridge did not build: ${(cause.length ? cause.slice(0, 6) : out.slice(-8)).join('\n').trim() || r.error?.message}`;
}

// The LD_PRELOAD shim (native/vpcd-nodelay.c), compiled once per source change.
function buildShim() {
  const src = join(root, 'native/vpcd-nodelay.c');
  const out = join(STATE, 'vpcd-nodelay.so');
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return { path: out };
  const r = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', out, src, '-ldl'], { encoding: 'utf8' });
  // No cc at all: spawnSync gives no stderr, only the error.
  return r.status === 0 ? { path: out } : { error: `cc failed for the TCP_NODELAY shim: ${(r.stderr ?? '').trim() || r.error?.message}` };
}

async function startPcscd(addon, log) {
  if (process.getuid?.() !== 0) {
    return { error: 'pcscd is not running and only root can start it (it must create /run/pcscd); start it as root: sudo node scripts/pcsc-stack.mjs start' };
  }
  const shim = buildShim();
  if (shim.error) return { error: shim.error };
  const conf = join(STATE, 'reader.conf.d');
  mkdirSync(conf, { recursive: true });
  // Only vpcd: the system's other reader drivers (e.g. libccidtwin) have no business in tests.
  writeFileSync(join(conf, 'vpcd'), `FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x8C7B\nLIBPATH      ${VPCD_DRIVER}\nCHANNELID    0x8C7B\n`);
  const logFd = openSync(join(STATE, 'pcscd.log'), 'w');
  const child = spawn(PCSCD, ['--foreground', '--config', conf], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, LD_PRELOAD: shim.path },
  });
  closeSync(logFd);
  child.unref();
  writeFileSync(join(STATE, 'pcscd.pid'), String(child.pid));
  log(`pcsc-stack: started pcscd (pid ${child.pid}, log ${join(STATE, 'pcscd.log')})`);
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    if (!alive(child.pid)) break;
    try {
      const readers = await listReaders(addon);
      if (readers.some((r) => r.startsWith(READER_PREFIX))) return { pid: child.pid };
    } catch {
      // not listening yet
    }
  }
  const tail = existsSync(join(STATE, 'pcscd.log')) ? readFileSync(join(STATE, 'pcscd.log'), 'utf8').trim().slice(-400) : '';
  if (alive(child.pid)) process.kill(child.pid, 'SIGTERM');
  rmSync(join(STATE, 'pcscd.pid'), { force: true });
  return { error: `pcscd did not come up with the vpcd reader within 5 s: ${tail}` };
}

// Whether a pcscd we did not start has the latency fix (readable for root or its owner only).
function hasNodelayShim(pid) {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').includes('vpcd-nodelay');
  } catch {
    return false;
  }
}

function liveUsers() {
  const dir = join(STATE, 'users');
  mkdirSync(dir, { recursive: true });
  const users = [];
  for (const f of readdirSync(dir)) {
    // 'manual': `pcsc-stack.mjs start` from a shell, kept until `stop`.
    if (f === 'manual' || alive(Number(f.split('-')[0]))) users.push(f);
    else rmSync(join(dir, f), { force: true });
  }
  return users;
}

async function stopOwned(log) {
  const pid = readPid(join(STATE, 'pcscd.pid'));
  rmSync(join(STATE, 'pcscd.pid'), { force: true });
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  log(`pcsc-stack: stopped pcscd (pid ${pid})`);
}

/**
 * Makes sure pcscd serves the vpcd reader and registers the caller as a user.
 * Resolves to { ok: true, owned, release } or { ok: false, reason } (the
 * reason says exactly what is missing). Never throws for environment problems.
 */
export async function acquireStack(opts = {}) {
  try {
    return await acquire(opts);
  } catch (e) {
    return { ok: false, reason: `cannot prepare the stack: ${e.message}` };
  }
}

async function acquire({ log = () => {}, manual = false }) {
  // Under the lock: test files set up in parallel, and two apt-get runs or two node-gyp builds in
  // one native/ at once fail (a review's run: ENOENT in native/build/node_gyp_bins).
  return withLock(async () => {
    const notInstalled = installPackages(log);
    if (notInstalled) return { ok: false, reason: notInstalled };
    const buildError = buildAddon(log);
    if (buildError) return { ok: false, reason: buildError };
    const addon = loadAddon();
    const ownPid = readPid(join(STATE, 'pcscd.pid'));
    const systemPid = readPid(SYSTEM_PID);
    let owned = alive(ownPid);
    let latencyFixed = true;
    if (!owned) {
      rmSync(join(STATE, 'pcscd.pid'), { force: true });
      if (alive(systemPid)) {
        let readers;
        try {
          readers = await listReaders(addon);
        } catch (e) {
          return { ok: false, reason: `a pcscd (pid ${systemPid}) is running but does not answer: ${e.message}` };
        }
        if (!readers.some((r) => r.startsWith(READER_PREFIX))) {
          return {
            ok: false,
            reason: `a pcscd (pid ${systemPid}) not started by the tests is running without the vpcd reader ` +
              `(readers: ${readers.join(', ') || 'none'}); pcscd is one per machine, so stop it (kill ${systemPid}) ` +
              `or give it /etc/reader.conf.d/vpcd (apt-get install vsmartcard-vpcd) and restart it`,
          };
        }
        log(`pcsc-stack: using the running pcscd (pid ${systemPid}), it serves the vpcd reader`);
        latencyFixed = hasNodelayShim(systemPid);
        if (!latencyFixed) {
          log(`pcsc-stack: pcscd ${systemPid} runs without the TCP_NODELAY shim: vpcd 0.8 costs ~44 ms per APDU ` +
            '(stop it and let the tests start their own, or see docs/pcsc.md)');
        }
      } else {
        const r = await startPcscd(addon, log);
        if (r.error) return { ok: false, reason: r.error };
        owned = true;
      }
    }
    const token = manual ? 'manual' : `${process.pid}-${Math.random().toString(36).slice(2)}`;
    liveUsers();
    writeFileSync(join(STATE, 'users', token), '');
    let released = false;
    const release = () => {
      if (released) return Promise.resolve();
      released = true;
      return withLock(async () => {
        rmSync(join(STATE, 'users', token), { force: true });
        if (owned && liveUsers().length === 0) await stopOwned(log);
      });
    };
    return { ok: true, owned, latencyFixed, release };
  });
}

// SCARD_STATE_PRESENT
const PRESENT = 0x20;

/**
 * The slots whose reader pcscd shows with a card in it: one no process of the stack holds was
 * inserted by someone else (a `senv virtual-card` of the user's own), and a card inserted there
 * would wait in vpcd's backlog until it fails.
 */
async function occupied() {
  const addon = loadAddon();
  if (!addon) return new Set();
  const readers = Array.from({ length: SLOTS }, (_, slot) => ({ reader: `${READER_PREFIX} 00 0${slot}`, currentState: 0 }));
  const m = await addon.Monitor.establish();
  try {
    const states = await m.getStatusChange(readers, 0);
    return new Set(states.flatMap((s, slot) => (s.eventState & PRESENT ? [slot] : [])));
  } catch (e) {
    // A reader gone, or pcscd busy: the insert's own wait reports what is wrong.
    if (typeof e?.scode !== 'number') throw e;
    return new Set();
  } finally {
    await m.release();
  }
}

/**
 * Takes a free vpcd slot for this process (waits while both are taken). A
 * slot with a card the stack did not insert is passed over; when every slot
 * no process holds has one, it fails at once, naming them.
 * Resolves to { slot, port, reader, release }.
 */
export async function acquireSlot({ timeoutMs = 120_000 } = {}) {
  const start = Date.now();
  const deadline = start + timeoutMs;
  for (;;) {
    let foreign = [];
    const got = await withLock(async () => {
      const cards = await occupied();
      foreign = [];
      for (let slot = 0; slot < SLOTS; slot++) {
        const file = join(STATE, `slot-${slot}`);
        const owner = readPid(file);
        if (alive(owner)) continue;
        if (cards.has(slot)) {
          foreign.push(slot);
          continue;
        }
        const token = `${process.pid}`;
        writeFileSync(file, token);
        return slot;
      }
      return -1;
    });
    // A card that just left may show for one more poll of pcscd (0.4 s): waited for as a held slot would be.
    if (got < 0 && foreign.length === SLOTS && Date.now() - start > 1_000) {
      throw new Error(`no free vpcd slot: ${foreign.map((s) => `'${READER_PREFIX} 00 0${s}'`).join(' and ')} hold cards the stack did not insert ` +
        `(a senv virtual-card of your own?): stop one, or measure a card with senv bench --reader '<name>'`);
    }
    if (got >= 0) {
      const file = join(STATE, `slot-${got}`);
      return {
        slot: got,
        port: 0x8c7b + got,
        reader: `${READER_PREFIX} 00 0${got}`,
        release: () => withLock(async () => {
          if (readPid(file) === process.pid) rmSync(file, { force: true });
        }),
      };
    }
    if (Date.now() > deadline) throw new Error(`no free vpcd slot within ${timeoutMs} ms (both held by other test processes)`);
    await sleep(100);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cmd = process.argv[2];
  const log = (s) => console.log(s);
  if (cmd === 'start') {
    const r = await acquireStack({ log, manual: true });
    if (!r.ok) {
      console.error(`pcsc-stack: ${r.reason}`);
      process.exit(1);
    }
    console.log(r.owned ? `pcsc-stack: up (pcscd pid ${readPid(join(STATE, 'pcscd.pid'))})` : 'pcsc-stack: up (system pcscd)');
  } else if (cmd === 'stop') {
    await withLock(() => stopOwned(log));
    rmSync(join(STATE, 'users'), { recursive: true, force: true });
  } else if (cmd === 'status') {
    const pid = readPid(join(STATE, 'pcscd.pid'));
    console.log(alive(pid) ? `pcscd pid ${pid} (started by pcsc-stack), users: ${liveUsers().length}` : 'no pcscd started by pcsc-stack');
  } else {
    console.error('usage: node scripts/pcsc-stack.mjs start|stop|status');
    process.exit(2);
  }
}

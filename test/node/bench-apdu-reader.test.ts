// `senv bench --reader`: cards in readers of the running pcscd that the run did not start (hardware
// SEs in use; here senv's virtual cards served from this process), one or several, alone or beside
// backend modules: the apdu module times each card's round trips, the backend module the Mcs
// operations on every SE named, side by side, and the run gives back what it made on each card.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { KeyStore } from '../../src/virtual-card/keystore.ts';
import { createVirtualCard, VirtualCardOs, VpcdCard, type VirtualCard } from '../../src/virtual-card/index.ts';
import { acquireSlot } from '../../scripts/pcsc-stack.mjs';
import { waitPresent } from '../../bench/ses.ts';
import { runChild } from './run-child.ts';
import { setupPcsc } from './pcsc-helpers.ts';

const setup = await setupPcsc();
const root = fileURLToPath(new URL('../../', import.meta.url));
const senv = fileURLToPath(new URL('../../bin/senv.js', import.meta.url));
const FIXTURE = 'test/node/fixtures/bench-backend.mjs';
const keysOn = (card: VirtualCard) => (card.applet as unknown as { store: KeyStore }).store.keys.size;

interface SeRecord { name: string; module?: string; reader?: string; description: Record<string, unknown> }
interface Output {
  options: { only: string[]; readers?: SeRecord[]; backends?: SeRecord[] };
  records: { implementation: string; algorithm: string; ratios: Record<string, number> }[];
  findings: { module: string; check: string; reader?: string; apdu?: string; refusedSw?: string; se?: SeRecord; operation?: string; offered?: boolean; apdus?: number }[];
}

describe.skipIf(!setup.ok)(`senv bench --reader${setup.ok ? '' : ` (skipped: ${setup.reason})`}`, () => {
  const env = setup.ok ? setup.env : undefined!;
  const dir = mkdtempSync(join(tmpdir(), 'senv-bench-reader-'));
  afterAll(async () => {
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('measures the card in the reader given: its round trips, and its Mcs operations beside the software SE with the APDUs each costs; it leaves no key on it', async () => {
    // Without extended length, as many hardware SEs: its 1 KiB round trip is refused, not timed.
    const card = env.newCard({ extended: false });
    await env.insert(card);
    const out = join(dir, 'r.json');
    const reader = env.slot.reader;
    // Without pcscd's latency fix a round trip takes ~44 ms: the 1,000 of --quick are left out then.
    const filter = env.latencyFixed ? [] : ['--filter', '^(Mcs|PcscBackend)'];
    const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'apdu,backend', '--reader', reader, '--out', out, ...filter], { killMs: 120_000 });
    expect([r.code, r.err], r.out).toEqual([0, '']);
    expect(r.out).not.toMatch(/skipped/);
    if (env.latencyFixed) expect(r.out).toContain(`APDU round trip through pcscd + ${reader} (500 samples, ${reader})`);
    expect(r.out).toContain(`\nMcs operations on ${reader} (senv card profile card in ${reader}) beside the software SE`);
    expect(r.out).toMatch(new RegExp(`\\n {2}Mcs SHA-256 +offered by ${reader}, 6\\.0 APDUs, timed below\\n`));
    const o = JSON.parse(readFileSync(out, 'utf8')) as Output;
    const se = { name: reader, reader, description: expect.objectContaining({ seType: 2, manufacturer: 'senv card profile', model: `card in ${reader}` }) };
    expect(o.options).toMatchObject({ readers: [se], only: ['apdu', 'backend'] });
    expect(o.options).not.toHaveProperty('backends');
    const rows = o.records.map((x) => `${x.algorithm} / ${x.implementation}`);
    expect(rows).toEqual([
      `PcscBackend.random(8): one GET CHALLENGE / ${reader}`,
      `Mcs SHA-256 / ${reader}`, 'Mcs SHA-256 / software SE',
      `Mcs HMAC-SHA-256 / ${reader}`, 'Mcs HMAC-SHA-256 / software SE',
      `Mcs AES-128-GCM encrypt / ${reader}`, 'Mcs AES-128-GCM encrypt / software SE',
      `Mcs ECDSA P-256 sign / ${reader}`, 'Mcs ECDSA P-256 sign / software SE',
    ]);
    const operations = o.findings.filter((f) => f.module === 'backend');
    expect(operations.map((f) => [f.operation, f.offered, typeof f.apdus])).toEqual(
      ['Mcs SHA-256', 'Mcs HMAC-SHA-256', 'Mcs AES-128-GCM encrypt', 'Mcs ECDSA P-256 sign'].map((op) => [op, true, 'number']));
    expect(operations.map((f) => [f.check, f.se])).toEqual(operations.map(() => ['operation', se]));
    // 1 KiB in commands of 255 bytes at most: 5 links of a chain and the command that ends the operation.
    expect(operations[0]!.apdus).toBe(6);
    const trips = o.findings.filter((f) => f.module === 'apdu');
    expect(trips.map((f) => [f.check, f.reader, f.apdu, 'medianMs' in f, f.refusedSw])).toEqual(env.latencyFixed ? [
      ['round trip', reader, 'GET CHALLENGE, 8 B response', true, undefined],
      ['round trip', reader, 'GET CHALLENGE, 1 KiB extended response', false, '6700'],
    ] : []);
    if (env.latencyFixed) expect(r.out).toMatch(/GET CHALLENGE, 1 KiB extended response +refused by the card \(SW 6700\), not measured\n/);
    // The HMAC and AES keys imported and the P-256 key generated on the card went when the engine closed.
    expect(keysOn(card)).toBe(0);
    await env.remove(card);
  }, 150_000);

  it('two cards and a backend module in one run: a row each in every table, the round trips of each card and APDUs, every SE recorded, no key left', async () => {
    // The other vpcd slot, with a card that has extended length (the first one's has not).
    const other = await acquireSlot();
    const second = createVirtualCard({ port: other.port, keepAlive: false });
    const first = env.newCard({ extended: false });
    try {
      await env.insert(first);
      await second.vpcd.insert();
      expect(await waitPresent(env.ctx, other.reader, 10_000)).toBe(true);
      const [a, b] = [env.slot.reader, other.reader];
      const out = join(dir, 'two.json');
      const trips = env.latencyFixed ? '|APDU round' : '';
      const r = await runChild(process.execPath, [
        senv, 'bench', '--quick', '--only', 'apdu,backend', '--filter', `^(Mcs (SHA-256|AES)|PcscBackend${trips})`,
        '--reader', a, '--backend', FIXTURE, '--reader', b, '--out', out,
      ], { cwd: root, killMs: 150_000 });
      expect([r.code, r.err], r.out).toEqual([0, '']);
      if (env.latencyFixed) for (const reader of [a, b]) expect(r.out).toContain(`APDU round trip through pcscd + ${reader} (500 samples, ${reader})`);
      if (env.latencyFixed) {
        // The longest label sets the first column's width: every timed row ends where its header ends.
        const lines = r.out.split('\n');
        const header = lines.find((l) => l.startsWith('  APDU '))!;
        const timed = lines.filter((l) => /^ {2}GET CHALLENGE.* \d+\.\d{3}$/.test(l));
        expect(timed).toHaveLength(3);
        expect(timed.map((l) => l.length)).toEqual(timed.map(() => header.length));
      }
      const o = JSON.parse(readFileSync(out, 'utf8')) as Output;
      const card = (reader: string) => ({ name: reader, reader, description: expect.objectContaining({ manufacturer: 'senv card profile', model: `card in ${reader}` }) });
      const module = { name: 'bench-backend.mjs', module: FIXTURE, description: expect.objectContaining({ manufacturer: 'Fixture Labs' }) };
      expect(o.options).toMatchObject({ backends: [module], readers: [card(a), card(b)] });
      // The modules first, then the cards, in the order given; the software SE last, the reference of every ratio.
      expect(o.records.map((x) => `${x.algorithm} / ${x.implementation} / ${Object.keys(x.ratios).join()}`)).toEqual([
        `PcscBackend.random(8): one GET CHALLENGE / ${a} / `, `PcscBackend.random(8): one GET CHALLENGE / ${b} / `,
        'Mcs SHA-256 / bench-backend.mjs / software SE', `Mcs SHA-256 / ${a} / software SE`, `Mcs SHA-256 / ${b} / software SE`, 'Mcs SHA-256 / software SE / ',
        `Mcs AES-128-GCM encrypt / ${a} / software SE`, `Mcs AES-128-GCM encrypt / ${b} / software SE`, 'Mcs AES-128-GCM encrypt / software SE / ',
      ]);
      const found = (se: object, operation: string, more: object) => ({ module: 'backend', check: 'operation', se, operation, ...more });
      expect(o.findings.filter((f) => f.module === 'backend')).toEqual([
        found(module, 'Mcs SHA-256', { offered: true }), found(card(a), 'Mcs SHA-256', { offered: true, apdus: 6 }), found(card(b), 'Mcs SHA-256', { offered: true, apdus: 1 }),
        found(module, 'Mcs AES-128-GCM encrypt', { offered: false, reason: '1001 is not among its cipherAlgorithms' }),
        found(card(a), 'Mcs AES-128-GCM encrypt', { offered: true, apdus: 6 }), found(card(b), 'Mcs AES-128-GCM encrypt', { offered: true, apdus: 1 }),
      ]);
      expect(o.findings.filter((f) => f.module === 'apdu').map((f) => [f.reader, f.apdu, f.refusedSw])).toEqual(env.latencyFixed ? [
        [a, 'GET CHALLENGE, 8 B response', undefined], [a, 'GET CHALLENGE, 1 KiB extended response', '6700'],
        [b, 'GET CHALLENGE, 8 B response', undefined], [b, 'GET CHALLENGE, 1 KiB extended response', undefined],
      ] : []);
      // The AES key imported on each card went when the engine closed.
      expect([keysOn(first), keysOn(second)]).toEqual([0, 0]);
    } finally {
      await env.remove(first);
      await second.vpcd.remove();
      await other.release();
    }
  }, 250_000);

  it('refuses a reader pcscd does not list, naming those it does, and an empty reader, before anything runs (before the modules ahead of apdu too)', async () => {
    const none = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'sha2,apdu', '--reader', 'No Such Reader 00 00', '--out', join(dir, 'n.json')], { killMs: 60_000 });
    expect(none.code).toBe(1);
    expect(none.err).toMatch(new RegExp(`^senv: bench --reader: pcscd has no reader named 'No Such Reader 00 00' \\(.*'${env.slot.reader}'.*\\)\\n$`));
    expect(none.out).not.toMatch(/SHA-256/);
    // A second one that is not there fails the run as the first would, naming it, with the first's card in place.
    const card = env.newCard();
    await env.insert(card);
    const log = join(dir, 'bad-second.log');
    writeFileSync(log, '');
    const second = await runChild(process.execPath, [
      senv, 'bench', '--quick', '--only', 'sha2,apdu,backend', '--reader', env.slot.reader, '--reader', 'No Such Reader 00 01', '--backend', FIXTURE, '--out', join(dir, 'n2.json'),
    ], { cwd: root, env: { SENV_BENCH_BACKEND_LOG: log }, killMs: 60_000 });
    expect([second.code, second.out]).toEqual([1, '']);
    expect(second.err).toMatch(new RegExp(`^senv: bench --reader: pcscd has no reader named 'No Such Reader 00 01' \\(.*'${env.slot.reader}'.*\\)\\n$`));
    // The readers are checked before any module is loaded: no backend was made, nothing was opened.
    expect(readFileSync(log, 'utf8')).toBe('');
    await env.remove(card);
    const empty = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'apdu', '--reader', env.slot.reader, '--out', join(dir, 'e.json')], { killMs: 60_000 });
    expect([empty.code, empty.err]).toEqual([1, `senv: bench --reader: no card in '${env.slot.reader}' (waited 5 s)\n`]);
  }, 150_000);

  it('a card without the senv applet is refused before anything is timed, naming the reader and the SELECT\'s answer', async () => {
    const os = new VirtualCardOs([]);
    const vpcd = new VpcdCard({ atr: () => os.atr(), power: (e) => os.power(e), apdu: (c) => os.apdu(c) }, { port: env.slot.port });
    await vpcd.insert();
    await env.waitFor((st) => st.present);
    try {
      const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'apdu', '--reader', env.slot.reader, '--out', join(dir, 'a.json')], { killMs: 60_000 });
      expect([r.code, r.err]).toEqual([1, `senv: the card in '${env.slot.reader}' has no senv applet (SELECT answered 6A82)\n`]);
      expect(r.out).not.toMatch(/round trip/);
    } finally {
      await vpcd.remove();
      await env.waitFor((st) => st.empty);
    }
  }, 90_000);

  it('a signal during a run of a card and a backend module gives every SE back first: the keys of each are deleted, then the command ends as the signal ends it', async () => {
    const card = env.newCard();
    await env.insert(card);
    const log = join(dir, 'signal.log');
    writeFileSync(log, '');
    const child = spawn(process.execPath, [senv, 'bench', '--only', 'backend', '--filter', 'ECDSA', '--reader', env.slot.reader, '--backend', FIXTURE, '--out', join(dir, 's.json')], {
      cwd: root, env: { ...process.env, NODE_OPTIONS: '', SENV_BENCH_BACKEND_LOG: log }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '', err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // The card is set up after the module: once its line is out, both SEs hold an ECDSA key pair.
    const ready = new RegExp(`Mcs ECDSA P-256 sign +offered by ${env.slot.reader}, [\\d.]+ APDUs, timed below\\n`);
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (ready.test(out)) resolve();
      });
      child.on('exit', () => resolve());
    });
    expect(out, err).toMatch(ready);
    expect([keysOn(card), readFileSync(log, 'utf8')]).toEqual([1, '']);
    child.kill('SIGINT');
    expect(await ended, err).toEqual({ code: null, signal: 'SIGINT' });
    expect([keysOn(card), readFileSync(log, 'utf8')]).toEqual([0, 'deleteKey\nclose\n']);
    await env.remove(card);
  }, 120_000);
});

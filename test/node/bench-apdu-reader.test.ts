// `senv bench --reader`: the apdu module measures a card in a reader of the running pcscd that
// it did not start (a hardware SE in use; here senv's virtual card served from this process), and
// gives back what it made on the card at the end.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { KeyStore } from '../../src/virtual-card/keystore.ts';
import { VirtualCardOs, VpcdCard, type VirtualCard } from '../../src/virtual-card/index.ts';
import { runChild } from './run-child.ts';
import { setupPcsc } from './pcsc-helpers.ts';

const setup = await setupPcsc();
const senv = fileURLToPath(new URL('../../bin/senv.js', import.meta.url));
const keysOn = (card: VirtualCard) => (card.applet as unknown as { store: KeyStore }).store.keys.size;

interface Output {
  options: { reader?: string; only: string[] };
  records: { implementation: string; algorithm: string }[];
  findings: { module: string; check: string; reader?: string; apdu?: string; refusedSw?: string }[];
}

describe.skipIf(!setup.ok)(`senv bench --reader${setup.ok ? '' : ` (skipped: ${setup.reason})`}`, () => {
  const env = setup.ok ? setup.env : undefined!;
  const dir = mkdtempSync(join(tmpdir(), 'senv-bench-reader-'));
  afterAll(async () => {
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('measures the card in the reader given, beside the software SE, and leaves no key on it', async () => {
    // Without extended length, as many hardware SEs: its 1 KiB round trip is refused, not timed.
    const card = env.newCard({ extended: false });
    await env.insert(card);
    const out = join(dir, 'r.json');
    // Without pcscd's latency fix a round trip takes ~44 ms: the 1,000 of --quick are left out then.
    const filter = env.latencyFixed ? [] : ['--filter', '^(Mcs|PcscBackend)'];
    const r = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'apdu', '--reader', env.slot.reader, '--out', out, ...filter], { killMs: 120_000 });
    expect([r.code, r.err], r.out).toEqual([0, '']);
    expect(r.out).not.toMatch(/skipped/);
    if (env.latencyFixed) expect(r.out).toContain(`APDU round trip through pcscd + ${env.slot.reader} (500 samples, ${env.slot.reader})`);
    expect(r.out).toContain(`APDUs per Mcs operation on the PC/SC SE in ${env.slot.reader}`);
    const o = JSON.parse(readFileSync(out, 'utf8')) as Output;
    expect(o.options).toMatchObject({ reader: env.slot.reader, only: ['apdu'] });
    const rows = o.records.map((x) => `${x.algorithm} / ${x.implementation}`).sort();
    expect(rows).toEqual([
      'Mcs AES-128-GCM encrypt / senv PC/SC SE', 'Mcs AES-128-GCM encrypt / software SE',
      'Mcs ECDSA P-256 sign / senv PC/SC SE', 'Mcs ECDSA P-256 sign / software SE',
      'Mcs HMAC-SHA-256 / senv PC/SC SE', 'Mcs HMAC-SHA-256 / software SE',
      'Mcs SHA-256 / senv PC/SC SE', 'Mcs SHA-256 / software SE',
      'PcscBackend.random(8): one GET CHALLENGE / senv PC/SC SE',
    ]);
    const apdu = o.findings.filter((f) => f.module === 'apdu');
    expect(apdu.filter((f) => f.check === 'APDUs per operation')).toHaveLength(4);
    const trips = apdu.filter((f) => f.check === 'round trip');
    expect(trips.map((f) => [f.apdu, 'medianMs' in f, f.refusedSw])).toEqual(env.latencyFixed ? [
      ['GET CHALLENGE, 8 B response', true, undefined],
      ['GET CHALLENGE, 1 KiB extended response', false, '6700'],
    ] : []);
    if (env.latencyFixed) expect(r.out).toMatch(/GET CHALLENGE, 1 KiB extended response +refused by the card \(SW 6700\), not measured\n/);
    expect(apdu.every((f) => f.reader === env.slot.reader)).toBe(true);
    // The HMAC and AES keys imported and the P-256 key generated on the card went when the engine closed.
    expect(keysOn(card)).toBe(0);
    await env.remove(card);
  }, 150_000);

  it('refuses a reader pcscd does not list, naming those it does, and an empty reader, before anything runs (before the modules ahead of apdu too)', async () => {
    const none = await runChild(process.execPath, [senv, 'bench', '--quick', '--only', 'sha2,apdu', '--reader', 'No Such Reader 00 00', '--out', join(dir, 'n.json')], { killMs: 60_000 });
    expect(none.code).toBe(1);
    expect(none.err).toMatch(new RegExp(`^senv: bench --reader: pcscd has no reader named 'No Such Reader 00 00' \\(.*'${env.slot.reader}'.*\\)\\n$`));
    expect(none.out).not.toMatch(/SHA-256/);
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

  it('a signal during the run gives the card back first: the run\'s keys are deleted, then the command ends as the signal ends it', async () => {
    const card = env.newCard();
    await env.insert(card);
    const child = spawn(process.execPath, [senv, 'bench', '--only', 'apdu', '--filter', 'ECDSA', '--reader', env.slot.reader, '--out', join(dir, 's.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // The ECDSA group is being timed: its key pair is on the card.
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/Mcs ECDSA P-256 sign +[\d.]+ APDUs/.test(out)) resolve();
    }));
    expect(keysOn(card)).toBe(1);
    child.kill('SIGINT');
    expect(await ended, err).toEqual({ code: null, signal: 'SIGINT' });
    expect(keysOn(card)).toBe(0);
    await env.remove(card);
  }, 120_000);
});

// The benchmark harness refuses, before timing anything, a group whose rows
// compute different bytes: such a table would compare different operations.
// Only the refusals are run here (they happen before any timing).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, vi } from 'vitest';
import { runGroups, type BenchCase } from '../../bench/harness.ts';
import { runChild } from './run-child.ts';

const quiet = () => {};
const run = (cases: BenchCase[], randomized?: boolean) =>
  runGroups([{ algorithm: 'probe', size: 16, cases, randomized }], { quick: true }, quiet);

describe('bench harness: rows of a group must agree', () => {
  const bytes = new Uint8Array([1, 2, 3, 4]);

  it('refuses a row whose bytes differ, naming both rows', async () => {
    await expect(run([
      { impl: 'senv', fn: () => bytes },
      { impl: 'peer', fn: () => new Uint8Array([1, 2, 3, 5]) },
    ])).rejects.toThrow(/peer computes other bytes than senv/);
  });

  it('compares a list of byte arrays as their concatenation, and ArrayBuffers and text as bytes', async () => {
    await expect(run([
      { impl: 'senv', fn: () => bytes },
      { impl: 'pieces', fn: () => [bytes.subarray(0, 1), bytes.subarray(1, 4), new Uint8Array([9])] },
    ])).rejects.toThrow(/pieces computes other bytes/);
    await expect(run([
      { impl: 'senv', fn: () => bytes },
      { impl: 'buffer', fn: () => new Uint8Array([1, 2, 3]).buffer },
    ])).rejects.toThrow(/buffer computes other bytes/);
    await expect(run([
      { impl: 'senv', fn: () => 'AQIDBA==' },
      { impl: 'text', fn: () => 'AQIDBQ==' },
    ])).rejects.toThrow(/text computes other bytes/);
  });

  it('reads a row through its output function, also for asynchronous rows', async () => {
    await expect(run([
      { impl: 'senv', async: true, fn: async () => ({ value: bytes }), output: (r) => (r as { value: Uint8Array }).value },
      { impl: 'peer', async: true, fn: async () => bytes.subarray(1) },
    ])).rejects.toThrow(/peer computes other bytes than senv/);
  });

  it('refuses a row that answers false before timing it', async () => {
    await expect(run([{ impl: 'senv', fn: () => false }])).rejects.toThrow(/answered false before timing/);
  });

  it('times rows that agree, rows marked as stand-ins and randomized groups', async () => {
    const records = await run([
      { impl: 'senv', fn: () => bytes },
      { impl: 'pieces', fn: () => [bytes.subarray(0, 2), bytes.subarray(2)] },
      { impl: 'stand-in', output: false, fn: () => new Uint8Array(1) },
    ]);
    expect(records.map((r) => r.implementation)).toEqual(['senv', 'pieces', 'stand-in']);
    const random = await run([
      { impl: 'senv', fn: () => new Uint8Array([1]) },
      { impl: 'peer', fn: () => new Uint8Array([2]) },
    ], true);
    expect(random).toHaveLength(2);
  });
  // A review found rows left out of the comparison because they returned nothing (peers of the
  // SHA-256 batch), and randomized groups whose senv rows were checked for nothing at all.
  it('refuses a row that returns nothing to compare unless it says so; compares verdicts; checks senv\'s rows of a randomized group by their meaning', async () => {
    await expect(run([
      { impl: 'senv', fn: () => bytes },
      { impl: 'peer', fn: () => undefined },
    ])).rejects.toThrow(/peer returns nothing to compare \(give the case an output, or output: false\)/);
    expect(await run([{ impl: 'senv', fn: () => true }, { impl: 'peer', fn: () => true }])).toHaveLength(2);
    const randomized = (senv: unknown, peer: unknown = new Uint8Array(4)) => runGroups([{
      algorithm: 'probe', size: 0, randomized: true, valid: (r) => r instanceof Uint8Array && r.length === 4,
      cases: [{ impl: 'senv', fn: () => senv }, { impl: 'peer', fn: () => peer }],
    }], { quick: true }, quiet);
    await expect(randomized(new Uint8Array(3))).rejects.toThrow(/probe -: senv gave an invalid result before timing/);
    expect(await randomized(bytes)).toHaveLength(2);
  });

  // A review found the peers of randomized groups checked for nothing: a peer signing raw where
  // senv signs DER, or returning a public key alone where senv returns a pair, was timed all the same.
  it('checks every row of a randomized group by its meaning, the peers\' too, with an asynchronous check', async () => {
    const group = (peer: unknown) => runGroups([{
      algorithm: 'probe', size: 0, randomized: true, valid: async (r) => r instanceof Uint8Array && r.length === 4,
      cases: [{ impl: 'senv', fn: () => bytes }, { impl: 'peer', fn: () => peer }],
    }], { quick: true }, quiet);
    await expect(group('anything')).rejects.toThrow(/probe -: peer gave an invalid result before timing/);
    await expect(group(new Uint8Array(3))).rejects.toThrow(/probe -: peer gave an invalid result before timing/);
    expect(await group(new Uint8Array(4))).toHaveLength(2);
  });

  it('prints a ratio far below 1 with two significant digits, never as 0.00x (a card beside a software SE is 100 to 1,000 times slower)', async () => {
    const lines: string[] = [];
    const spin = (n: number) => {
      let x = 0;
      for (let i = 0; i < n; i++) x = (x * 31 + i) | 0;
      return new Uint8Array([x & 0]);
    };
    await runGroups([{ algorithm: 'probe', size: 16, cases: [
      { impl: 'senv slow', fn: () => spin(200_000) },
      { impl: 'fast', fn: () => spin(20) },
    ] }], { quick: true }, (l) => lines.push(l));
    const row = lines.find((l) => l.includes('senv slow'))!;
    expect(row).toMatch(/ 0\.0\d*[1-9]\dx fast$/);
  }, 30_000);

  it('a timed call that rejects, even with undefined, fails the run instead of recording 0 op/s', async () => {
    let calls = 0;
    // The probe's call succeeds; a later, timed one rejects with nothing.
    await expect(run([{ impl: 'senv', async: true, fn: () => (++calls > 3 ? Promise.reject(undefined) : Promise.resolve(bytes)) }]))
      .rejects.toThrow(/senv rejected \(with undefined\) while timed/);
  });
});

describe('bench harness: giving back what modules hold', () => {
  it('a signal ends the run only once every module gave back what it holds (two modules may hold keys)', async () => {
    const { giveBackAtExit } = await import('../../bench/harness.ts');
    const done: string[] = [];
    const slow = (what: string, ms: number) => () => new Promise<void>((resolve) => setTimeout(() => resolve(void done.push(what)), ms));
    const killed = new Promise<string>((resolve) => {
      const kill = vi.spyOn(process, 'kill').mockImplementation((_pid, sig) => {
        kill.mockRestore();
        resolve(`${done.join(', ')} then ${String(sig)}`);
        return true;
      });
    });
    giveBackAtExit('apdu', [slow('card', 5)]);
    giveBackAtExit('backend', [slow('hsm keys', 60)]);
    process.emit('SIGINT', 'SIGINT');
    expect(await killed).toBe('card, hsm keys then SIGINT');
    expect(process.listenerCount('SIGINT'), 'its listeners removed before the signal is raised again').toBe(0);
  });
});

describe('bench ecdsa: the peers\' rows produce what senv\'s do', () => {
  // A review found @noble/curves signing raw r || s (its default) in the DER sign table and
  // returning a compressed public key alone in the keygen table, where senv gives DER and both keys.
  it('@noble/curves and node:crypto sign DER signatures that the table\'s check accepts; noble\'s keygen gives both keys, uncompressed; every row of the sign and keygen tables passes that check', async () => {
    const { ecdsaBench } = await import('../../bench/ecdsa.ts');
    // A filter that selects no cold-start report: the module only makes its groups.
    const groups = await ecdsaBench({ quick: true, filter: /^ECDSA P-\d+ (sign|keygen) / });
    for (const curve of ['P-256', 'P-384', 'P-521']) {
      const sign = groups.find((g) => g.algorithm === `ECDSA ${curve} sign`)!;
      for (const impl of ['@noble/curves', 'node:crypto']) {
        const sig = sign.cases.find((c) => c.impl === impl)!.fn() as Uint8Array;
        expect(sig[0], `${curve} ${impl}: a DER SEQUENCE`).toBe(0x30);
        expect(sign.valid!(sig), `${curve} ${impl}`).toBe(true);
      }
      const keygen = groups.find((g) => g.algorithm === `ECDSA ${curve} keygen`)!;
      const pair = keygen.cases.find((c) => c.impl === '@noble/curves')!.fn();
      expect(await keygen.valid!(pair), curve).toBe(true);
    }
    // Every row of those tables, WebCrypto's and node:crypto's key objects included, passes the
    // table's check before timing (a quick round of P-256's, the rest probed only).
    const quick = groups.filter((g) => /^ECDSA P-256 (sign|keygen)$/.test(g.algorithm));
    expect((await runGroups(quick, { quick: true }, quiet)).map((r) => r.implementation)).toEqual(
      [...quick.flatMap((g) => g.cases.map((c) => c.impl))],
    );
    for (const g of groups.filter((x) => x.randomized)) {
      for (const c of g.cases) {
        c.setup?.();
        expect(await g.valid!(c.async ? await c.fn() : c.fn()), `${g.algorithm} ${c.impl}`).toBe(true);
      }
    }
  }, 60_000);
});

describe('bench JSON: what a published figure needs', () => {
  // A review found ratioRanges, samples, size and batch without a unit, the length of a round
  // unrecorded, and the measured code named only by the package's version, the same over many changes.
  it('names a unit for every field of a record, the round\'s length, and the commit measured', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'senv-bench-json-'));
    try {
      const out = join(dir, 'run.json');
      const r = await runChild(process.execPath, [join(root, 'bin/senv.js'), 'bench', '--quick', '--only', 'drbg', '--filter', '^randomBytes 32 B$', '--out', out], { cwd: root, killMs: 60_000 });
      expect([r.code, r.err], r.out).toEqual([0, '']);
      const o = JSON.parse(readFileSync(out, 'utf8')) as { units: Record<string, string>; options: Record<string, unknown>; checkout?: { commit: string; modified: boolean }; records: Record<string, unknown>[] };
      expect(o.records.length).toBeGreaterThan(0);
      const named = ['implementation', 'algorithm'];
      for (const field of Object.keys(o.records[0]!)) if (!named.includes(field)) expect(o.units, field).toHaveProperty(field);
      expect(o.options).toMatchObject({ quick: true, roundsPerRatio: 1, secondsPerRound: 0.25 });
      const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' });
      if (head.status === 0) expect(o.checkout).toEqual({ commit: head.stdout.trim(), modified: expect.any(Boolean) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

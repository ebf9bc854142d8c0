// The PC/SC bridge and the PC/SC SE under Deno, on the card pcscd serves
// here: Deno loads the Node-API addon with --allow-ffi. Runs test/deno-pcsc
// (the Mcs conformance suites on the card, the bridge's waits, cancel,
// release and a worker's end during a wait) and times Deno's exit during a
// wait, whose 'exit' event Deno.exit() does not dispatch (it dispatches
// 'unload'). Without --allow-ffi the error is
// test/deno/pcsc-permission.test.ts's.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcsCases } from '../portable/mcs.ts';
import { mcsCipherCases } from '../portable/mcs-cipher.ts';
import { mcsRuleCases } from '../portable/mcs-rules.ts';
import { setupPcsc, type PcscTestEnv } from './pcsc-helpers.ts';
import { runChild, runInTerminal } from './run-child.ts';

const setup = await setupPcsc();
const root = fileURLToPath(new URL('../../', import.meta.url));
const deno = `${root}node_modules/deno/deno`;
const PERMISSIONS = ['--allow-ffi', '--allow-read', '--allow-env'];

/** Without colours: npm test sets FORCE_COLOR=0, which Deno takes as a request for them. */
const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '');

/** Deno on the card's reader, its output in one text; `markAt` is when the output first held the line `mark`. */
async function runDeno(args: string[], reader: string, killMs: number, mark?: string): Promise<{ code: number | null; out: string; ms: number; markAt?: number }> {
  const t0 = Date.now();
  let markAt: number | undefined;
  const onOutput = (out: string) => {
    if (mark !== undefined && markAt === undefined && plain(out).split('\n').includes(mark)) markAt = Date.now() - t0;
  };
  const r = await runChild(deno, args, { cwd: root, env: { SENV_DENO_PCSC_READER: reader }, killMs, onOutput });
  return { code: r.code, out: plain(r.out + r.err), ms: r.ms, markAt };
}

describe('the PC/SC bridge under Deno with too few permissions', () => {
  // No pcscd needed: what is refused is the loading. test/deno/pcsc-permission.test.ts covers --allow-read --allow-env.
  // What is missing first: the environment variable that may name the addon, then the addon's path to read, then to load.
  // Every place it may be, the package root's among them, or the one found.
  const addon = new RegExp(`--allow-(read|ffi)=(\\S+,)?${join(root, 'native/build/Release/senv_pcsc.node').replace(/[.]/g, '\\.')}(,|\\s|$)`);
  for (const [granted, missing] of [[[], /--allow-env=SENV_PCSC_ADDON/], [['--allow-ffi'], /--allow-env=SENV_PCSC_ADDON/],
    [['--allow-ffi', '--allow-env'], addon], [['--allow-read', '--allow-env'], addon]] as const) {
    it(`${granted.join(' ') || 'no permission'}: PcscUnavailableError naming the permission it lacks, not Deno's own error, also in a terminal`, async () => {
      const args = ['run', ...granted, 'test/deno-pcsc/load-native.ts'];
      const r = await runChild(deno, args, { cwd: root, env: {}, killMs: 30_000 });
      const out = plain(r.out + r.err);
      expect(out, out).toContain('PcscUnavailableError: the native PC/SC bridge');
      expect(out, out).toMatch(new RegExp(`needs permission to load: run Deno with ${missing.source}`));
      // In a terminal (script(1) gives Deno one) Deno would ask at a prompt and wait: senv asks first.
      const tty = await runInTerminal(deno, args, { cwd: root, env: {}, killMs: 30_000 });
      expect(plain(tty.out), 'in a terminal').toMatch(new RegExp(`needs permission to load: run Deno with ${missing.source}`));
    }, 70_000);
  }
});

describe.skipIf(!setup.ok)(`PC/SC under Deno${setup.ok ? '' : ` (skipped: ${setup.reason})`}`, () => {
  let env: PcscTestEnv;

  beforeAll(async () => {
    if (!setup.ok) return;
    env = setup.env;
    await env.insert(env.newCard());
  });
  afterAll(async () => {
    if (setup.ok) await env.teardown();
  });

  it('passes the Mcs conformance suites on the card and the bridge tests', async () => {
    const none = () => { throw new Error('not run'); };
    const cases = [...mcsCases(none), ...mcsCipherCases(none), ...mcsRuleCases(none)].length;
    // About 10 s here; a call that never returns hangs Deno's runner, which has no time limit of its own.
    const r = await runDeno(['test', ...PERMISSIONS, 'test/deno-pcsc'], env.slot.reader, 120_000);
    const output = r.out.slice(-4000);
    // The bridge file's five tests beside the conformance cases: a file that failed to load would be missing.
    expect(r.out, output).toMatch(new RegExp(`ok \\| ${cases + 5} passed \\| 0 failed`));
    expect(r.code, output).toBe(0);
  }, 150_000);

  for (const how of ['process', 'deno'] as const) {
    it(`exits at once by ${how === 'process' ? 'process.exit()' : 'Deno.exit()'} during an endless status-change wait`, async () => {
      const r = await runDeno(['run', ...PERMISSIONS, 'test/deno-pcsc/exit-during-wait.ts', how], env.slot.reader, 30_000, 'waiting');
      expect(r.markAt, r.out).toBeDefined();
      // The event the bridge ends its waits on: Deno.exit() dispatches 'unload' alone.
      expect(r.out).toContain(how === 'process' ? 'exit listeners ran' : 'unload listeners ran');
      expect(r.code).toBe(0);
      expect(r.ms - r.markAt!).toBeLessThan(2_000);
    }, 40_000);
  }

  it("ends its waits on Deno's 'unload' event: the running one, and one asked for afterwards at once", async () => {
    const r = await runDeno(['run', ...PERMISSIONS, 'test/deno-pcsc/exit-during-wait.ts', 'unload'], env.slot.reader, 30_000);
    expect(r.out).toContain('the wait: SCARD_E_CANCELLED\n');
    expect(r.out).toContain('a wait asked for afterwards: SCARD_E_CANCELLED at once\n');
    expect(r.code).toBe(0);
  }, 40_000);
});

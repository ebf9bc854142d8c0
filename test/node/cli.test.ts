// The `senv` command line: usage errors exit 2 naming the problem, --help works for every command,
// and a vpcd port out of range is a usage error rather than a card that claims to be inserted.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/bindings/cli.ts';
import { VpcdCard, type CardHandler } from '../../src/virtual-card/index.ts';

function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  vi.spyOn(console, 'log').mockImplementation((s: unknown) => void (out += `${String(s)}\n`));
  vi.spyOn(console, 'error').mockImplementation((s: unknown) => void (err += `${String(s)}\n`));
  return main(argv).then((code) => ({ code, out, err }));
}

describe('senv command line', () => {
  afterEach(() => vi.restoreAllMocks());

  it('--help prints the usage and exits 0 for every command', async () => {
    for (const argv of [['--help'], ['help'], ['help', 'selftest'], ['selftest', '--help'], ['bench', '-h'], ['virtual-card', '--help']]) {
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
      [['selftest', '--bogus'], /selftest: unknown option '--bogus'/],
      [['selftest', '--build'], /--build needs a value/],
      [['selftest', '--build', 'fast'], /--build takes all, .*not 'fast'/],
      [['virtual-card', '--slot', 'x'], /--slot takes a number from 0 to 65535, not 'x'/],
      [['virtual-card', '--port', '70000'], /--port takes a number/],
      [['virtual-card', '--port', '0'], /--port takes a number from 1 to 65535, not '0'/],
      [['virtual-card', '--host', ''], /--host takes a host name or address/],
      [['virtual-card', '--store', ''], /virtual-card: --store takes a file name, not an empty string/],
      [['help', 'bogus'], /help takes a command's name or nothing, not 'bogus'/],
      [['--help', 'selftest', 'bench'], /--help takes a command's name or nothing, not 'selftest bench'/],
      [['--version', 'bogus'], /--version takes nothing more, not 'bogus'/],
      [[], /^usage: senv <command>/],
      // vpcd's slot N listens on 35963 + N: a slot past 29572 has no port.
      [['virtual-card', '--slot', '40000'], /--slot 40000 would be port 75963/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(message);
    }
  });

  it('a card whose port cannot be connected to is not inserted, and a second insert tries again', async () => {
    const handler: CardHandler = { atr: () => new Uint8Array([0x3b, 0]), apdu: () => new Uint8Array([0x90, 0]), power: () => undefined };
    const card = new VpcdCard(handler, { port: 75963, keepAlive: false });
    await expect(card.insert(1000)).rejects.toThrow(/cannot reach vpcd/);
    expect(card.inserted).toBe(false);
    await expect(card.insert(1000)).rejects.toThrow(/cannot reach vpcd/);
  });
});

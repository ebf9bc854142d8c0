// `senv virtual-card`: runs the senv virtual card in a vpcd slot of the local
// pcscd until interrupted, re-inserting it whenever vpcd drops the connection
// (pcscd restarted, card "removed" by the reader).
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { parseOptions, UsageError } from '../bindings/args.ts';
import { StateError } from '../core/errors.ts';
import { granted } from '../core/permissions.ts';
import { createVirtualCard } from './index.ts';
import { VPCD_PORT } from './vpcd.ts';

/**
 * `$XDG_DATA_HOME/senv/virtual-card-<slot>.json`; `~/.local/share` for an unset, empty or relative
 * $XDG_DATA_HOME (the XDG base directory rules), never the working directory. Computed only when no
 * --store is given: on Deno it takes the variable and the home directory, which are asked for first,
 * as the store asks for its files, so that a terminal never stops at Deno's prompt.
 */
function defaultStore(slot: number): string {
  const refused = (flag: string) => new StateError(`virtual-card: the default store cannot be found (NotCapable; on Deno: ${flag}); or give --store FILE`);
  if (!granted({ name: 'env', variable: 'XDG_DATA_HOME' })) throw refused('--allow-env=XDG_DATA_HOME');
  const xdg = process.env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'senv', `virtual-card-${slot}.json`);
  if (!granted({ name: 'sys', kind: 'homedir' })) throw refused('--allow-sys=homedir');
  return join(homedir(), '.local', 'share', 'senv', `virtual-card-${slot}.json`);
}

export async function runVirtualCard(argv: string[]): Promise<number> {
  const o = parseOptions(argv, { '--slot': 'value', '--host': 'value', '--port': 'value', '--store': 'value', '--no-extended': 'flag', '--verbose': 'flag' }, 'virtual-card');
  const number = (name: string, min: number, fallback?: number): number | undefined => {
    const v = o.get(name) as string | undefined;
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > 65535) throw new UsageError(`virtual-card: ${name} takes a number from ${min} to 65535, not '${v}'`);
    return Number(v);
  };
  // vpcd's slot N listens on its port + N (default 35963); port 0 is no port to connect to.
  const slot = number('--slot', 0, 0)!;
  const port = number('--port', 1);
  if (port === undefined && VPCD_PORT + slot > 65535) throw new UsageError(`virtual-card: --slot ${slot} would be port ${VPCD_PORT + slot}; give --port, or a slot up to ${65535 - VPCD_PORT}`);
  const host = o.get('--host') as string | undefined;
  if (host === '') throw new UsageError('virtual-card: --host takes a host name or address, not an empty string');
  const given = o.get('--store') as string | undefined;
  if (given === '') throw new UsageError('virtual-card: --store takes a file name, not an empty string');
  const store = given ?? defaultStore(slot);
  const verbose = o.has('--verbose');
  const { vpcd, close } = createVirtualCard({
    slot, store, extended: !o.has('--no-extended'),
    ...(host !== undefined ? { host } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(verbose ? { log: (l: string) => console.log(l) } : {}),
  });
  let stopping = false;
  let closed: Promise<{ failed: unknown } | undefined> | undefined;
  const stop = () => {
    stopping = true;
    // Settled here and thrown once the loop has stopped: a store the card cannot give up is the command's failure.
    closed ??= close().then(() => undefined, (e: unknown) => ({ failed: e }));
  };
  // An interrupt, a kill and the end of the terminal it runs in stop the card, giving its store up. SIGQUIT
  // keeps its default (ends the process at once, a core dump where enabled, for a card that hangs): the
  // lock then names a process that is gone, which the next card takes over.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, stop);
  console.log(`senv virtual-card: key store ${store}; connecting to vpcd at ${vpcd.address}`);
  while (!stopping) {
    try {
      await vpcd.insert(5_000);
      console.log(`senv virtual-card: inserted (vpcd ${vpcd.address})`);
      while (vpcd.inserted && !stopping) await new Promise((r) => setTimeout(r, 250));
      if (!stopping) console.log('senv virtual-card: vpcd closed the connection; re-inserting');
    } catch (e) {
      if (!stopping) {
        console.error(`senv virtual-card: ${(e as Error).message}; retrying (is pcscd running with the vpcd reader?)`);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  }
  const failure = await closed;
  if (failure) throw failure.failed;
  return 0;
}

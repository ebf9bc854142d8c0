// `senv virtual-card`: runs the senv virtual card in a vpcd slot of the local
// pcscd until interrupted, re-inserting it whenever vpcd drops the connection
// (pcscd restarted, card "removed" by the reader).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createVirtualCard } from './index.ts';

function option(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function runVirtualCard(argv: string[]): Promise<number> {
  const slot = Number(option(argv, '--slot') ?? 0);
  const port = option(argv, '--port');
  if (!Number.isInteger(slot) || slot < 0 || (port !== undefined && !/^\d+$/.test(port))) {
    console.error(`senv virtual-card: bad --slot or --port (senv help)`);
    return 2;
  }
  const dataHome = process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share');
  const store = option(argv, '--store') ?? join(dataHome, 'senv', `virtual-card-${slot}.json`);
  const verbose = argv.includes('--verbose');
  const { vpcd } = createVirtualCard({
    slot, store, extended: !argv.includes('--no-extended'),
    ...(option(argv, '--host') ? { host: option(argv, '--host')! } : {}),
    ...(port ? { port: Number(port) } : {}),
    ...(verbose ? { log: (l: string) => console.log(l) } : {}),
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    void vpcd.remove();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
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
  return 0;
}

// The SEs a run names: each `senv bench --backend <module>` (a backend of the user's own: an HSM
// through PKCS#11, a TEE, a remote SE) and each `--reader <name>` (a card answering the senv card
// profile in a reader of the running pcscd), either flag as often as wanted. bench/run.ts makes
// and checks them all before any module runs, so that a run that cannot measure one fails at once,
// naming it; they share one engine with a software SE, so that they are measured side by side in
// one run (a VM's speed drifts 10-30 % over seconds: rows of separate runs would compare the
// drift). The backend module times the Mcs workload on every one of them, the apdu module each
// card's round trips and GET CHALLENGE. The engine is closed (the run's keys deleted on every SE)
// at exit or at a signal that ends the run.
import { basename } from 'node:path';
import { fromHex, hex } from '../src/apdu/apdu.ts';
import type { BackendDescription, SecureEnvironmentBackend } from '../src/backends/backend.ts';
import { PcscBackend } from '../src/backends/pcsc/index.ts';
import { SoftwareBackend } from '../src/backends/software/index.ts';
import { failure, loadFactoryModule, moduleFile } from '../src/bindings/factory-module.ts';
import { McsEngine } from '../src/mcs/index.ts';
import { PcscContext, PcscError, type PcscCard } from '../src/pcsc/index.ts';
import { giveBackAtExit } from './harness.ts';
import { SOFTWARE_ROW } from './se-workload.ts';

/** What the JSON says of a named SE, in `options` and in the backend module's findings: the flag's value and what the SE says of itself. */
export type SeRecord = { name: string; description: BackendDescription } & ({ module: string } | { reader: string });

/** A card among the named SEs. */
export interface NamedCard {
  reader: string;
  /** Its SE's backend: the APDUs it sent, GET CHALLENGE. */
  backend: PcscBackend;
  /** The connection that backend holds (exclusive: no second one can be made for the round trips). */
  connection(): PcscCard;
}

export interface NamedSe {
  /** Its rows' name (rowNames). */
  name: string;
  record: SeRecord;
  /** Its M2M-SE-ID in the engine. */
  seId: string;
  card?: NamedCard;
}

export interface NamedSes {
  engine: McsEngine;
  softwareId: string;
  /** The --backend SEs in the order given, then the --reader cards. */
  ses: NamedSe[];
}

/** Whether a card is in `reader` within `ms`. */
export async function waitPresent(ctx: PcscContext, reader: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  let [s] = await ctx.getStatusChange([{ reader, state: 0 }], 0);
  while (s && !s.present) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    try {
      [s] = await ctx.getStatusChange([{ reader, state: s.state }], left);
    } catch (e) {
      if ((e as { scardName?: string }).scardName !== 'SCARD_E_TIMEOUT') throw e;
    }
  }
  return s !== undefined;
}

const SELECT_SENV = fromHex('00A4040006F053454E560100');

/** Selects the senv applet on `card`; a card of another profile answers GET CHALLENGE too, and would be measured as if it were senv's. */
export async function selectSenv(card: PcscCard, reader: string): Promise<void> {
  const selected = await card.transmit(SELECT_SENV);
  const sw = hex(selected.subarray(selected.length - 2));
  if (sw !== '9000') throw new Error(`the card in '${reader}' has no senv applet (SELECT answered ${sw})`);
}

/**
 * `--reader`'s checks: pcscd lists the reader, a card is in it, the run can have it to itself
 * (every APDU of the run goes over exclusive connections, or a card another application uses would
 * be measured with its traffic), and the card answers the senv card profile.
 */
async function checkReader(ctx: PcscContext, listed: readonly string[], reader: string): Promise<void> {
  if (!listed.includes(reader)) throw new Error(`bench --reader: pcscd has no reader named '${reader}' (${listed.length ? listed.map((r) => `'${r}'`).join(', ') : 'it lists none'})`);
  if (!(await waitPresent(ctx, reader, 5_000))) throw new Error(`bench --reader: no card in '${reader}' (waited 5 s)`);
  const raw = await ctx.connect(reader, { share: 'exclusive' }).catch((e: unknown) => {
    throw e instanceof PcscError && e.scardName === 'SCARD_E_SHARING_VIOLATION' ? new Error(`another application holds the card in '${reader}' (${e.scardName})`) : e;
  });
  try {
    await selectSenv(raw, reader);
  } finally {
    await raw.disconnect();
  }
}

/** Makes the backend a --backend module gives (src/bindings/factory-module.ts says how and how it fails). */
function loadModule(spec: string): Promise<SecureEnvironmentBackend> {
  return loadFactoryModule(spec, {
    option: 'bench --backend', factory: 'createBackend', noun: 'a backend',
    type: 'a SecureEnvironmentBackend (docs/mcs.md "Writing a backend")',
    accepts: (b): b is SecureEnvironmentBackend => typeof (b as Partial<SecureEnvironmentBackend> | null)?.open === 'function',
  });
}

/**
 * The rows' names: a module's file name (a package's specifier), a card's reader name. A name
 * several SEs of the run would share (the same module twice, two files of one name), or the
 * software SE's, gets ' #n', n counting the SEs of that name in the order given: a table's rows
 * and a record's ratios must tell them apart.
 */
export function rowNames(bases: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return bases.map((b) => {
    if (b !== SOFTWARE_ROW && bases.indexOf(b) === bases.lastIndexOf(b)) return b;
    const n = (seen.get(b) ?? 0) + 1;
    seen.set(b, n);
    return `${b} #${n}`;
  });
}

/**
 * Checks every reader and makes a backend of every module (in that order: a reader's checks leave
 * nothing behind), then creates the engine with them and a software SE, and arms the give-back of
 * the run's keys. The first failure throws an error naming the flag and its value. Backends made
 * before a later module failed are not closed: no engine opened them, and open() comes before any
 * other call of the backend contract.
 */
export async function openNamedSes(modules: readonly string[], readers: readonly string[]): Promise<NamedSes> {
  let ctx: PcscContext | undefined;
  const made: SecureEnvironmentBackend[] = [];
  try {
    if (readers.length) {
      ctx = await PcscContext.establish().catch((e: unknown) => {
        throw new Error(`bench --reader: no PC/SC service to reach ${readers.join(', ')} through (${(e as Error).message})`);
      });
      const listed = await ctx.listReaders();
      for (const reader of readers) await checkReader(ctx, listed, reader);
    }
    for (const spec of modules) made.push(await loadModule(spec));
  } catch (e) {
    await ctx?.release();
    throw e;
  }
  const pcsc = ctx;
  // Each card's backend connects through this context, which keeps the connection for the round trips.
  const connections = new Map<string, PcscCard>();
  const tap = {
    connect: async (reader: string, o: Parameters<PcscContext['connect']>[1]) => {
      const card = await pcsc!.connect(reader, o);
      connections.set(reader, card);
      return card;
    },
  } as PcscContext;
  const cards = readers.map((reader) => new PcscBackend({ reader, context: tap }));
  const named = [...made, ...cards];
  const software = new SoftwareBackend();
  let engine: McsEngine;
  try {
    engine = await McsEngine.create({ backends: [...named, software] });
  } catch (e) {
    // A create that fails leaves the backends open (for a retry): the run made them, so it closes them.
    // A close() that throws at once is told as one that rejects (the engine does the same).
    const closed = await Promise.allSettled([...named, software].map((b) => Promise.resolve().then(() => b.close())));
    await pcsc?.release();
    const kept = closed.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    const flags = [...modules.map((m) => `--backend ${m}`), ...readers.map((r) => `--reader '${r}'`)];
    throw new Error(`bench ${flags.join(', ')}: McsEngine.create refused ${named.length === 1 ? 'it' : 'them'} (${failure(e)})${kept ? `; closing ${named.length === 1 ? 'it' : 'them'} failed too (${failure(kept.reason)})` : ''}`);
  }
  giveBackAtExit('bench', [() => engine.close(), ...(pcsc ? [() => pcsc.release()] : [])]);
  const ids = engine.seIds;
  const title = (spec: string) => {
    const file = moduleFile(spec);
    return file ? basename(file) : spec;
  };
  const names = rowNames([...modules.map(title), ...readers]);
  const ses = named.map((b, i): NamedSe => {
    const name = names[i]!;
    // A copy, as the JSON keeps it: a backend's object may change after open().
    const description = JSON.parse(JSON.stringify(b.description)) as BackendDescription;
    if (i < made.length) return { name, seId: ids[i]!, record: { name, module: modules[i]!, description } };
    const reader = readers[i - made.length]!;
    return {
      name, seId: ids[i]!, record: { name, reader, description },
      card: { reader, backend: cards[i - made.length]!, connection: () => connections.get(reader)! },
    };
  });
  return { engine, softwareId: ids[named.length]!, ses };
}

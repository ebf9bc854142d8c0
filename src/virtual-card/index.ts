// The senv virtual card: the senv applet on the virtual card OS, inserted into
// a vpcd reader slot of pcscd. `senv virtual-card` runs one; the tests and the
// APDU benchmark run theirs in-process.
import { initSync, randomBytes } from '../core/index.ts';
import { InvalidInputError } from '../core/errors.ts';
import { optionsArg, shown, type OptionNames } from '../core/args.ts';
import { SenvApplet } from './applet.ts';
import { EXTENDED_LIMITS, SHORT_LIMITS, VirtualCardOs } from './card.ts';
import { KeyStore } from './keystore.ts';
import { VPCD_PORT, VpcdCard } from './vpcd.ts';

export { VpcdCard, type CardHandler } from './vpcd.ts';
export { VirtualCardOs } from './card.ts';
export { SenvApplet } from './applet.ts';
export { KeyStore } from './keystore.ts';

export interface VirtualCardOptions {
  /** vpcd slot: reader "Virtual PCD 00 0<slot>" on TCP 35963 + slot. */
  slot?: number | undefined;
  host?: string | undefined;
  /** Overrides 35963 + slot. */
  port?: number | undefined;
  /** JSON file of the persistent key store; memory only when absent. */
  store?: string | undefined;
  /** Accept extended-length APDUs (default true); without, long data must be chained. */
  extended?: boolean | undefined;
  log?: ((line: string) => void) | undefined;
  /** false: the connection to vpcd does not keep the process alive. */
  keepAlive?: boolean | undefined;
}

export interface VirtualCard {
  vpcd: VpcdCard;
  applet: SenvApplet;
  os: VirtualCardOs;
  /** Removes the card from vpcd and gives its store file up (another card process may then open it). */
  close(): Promise<void>;
}

const OPTIONS: OptionNames<VirtualCardOptions> = { slot: true, host: true, port: true, store: true, extended: true, log: true, keepAlive: true };

/** The options, typed: what a JS caller passes is checked before a store is opened. */
function checkOptions(options: VirtualCardOptions | null | undefined): VirtualCardOptions {
  const o = (optionsArg(options, 'createVirtualCard options', OPTIONS) ?? {}) as Record<string, unknown>;
  const bad = (name: string, what: string) => new InvalidInputError(`createVirtualCard: ${name} must be ${what}, got ${shown(o[name])}`);
  if (o.store !== undefined && (typeof o.store !== 'string' || o.store === '')) throw bad('store', 'a file path');
  for (const n of ['slot', 'port'] as const) if (o[n] !== undefined && (!Number.isSafeInteger(o[n]) || (o[n] as number) < 0)) throw bad(n, 'a non-negative integer');
  if (o.host !== undefined && typeof o.host !== 'string') throw bad('host', 'a string');
  for (const n of ['extended', 'keepAlive'] as const) if (o[n] !== undefined && typeof o[n] !== 'boolean') throw bad(n, 'a boolean');
  if (o.log !== undefined && typeof o.log !== 'function') throw bad('log', 'a function');
  return o as VirtualCardOptions;
}

/** Builds a card (not inserted yet: call `vpcd.insert()`). */
export function createVirtualCard(options?: VirtualCardOptions | null): VirtualCard {
  const opts = checkOptions(options);
  initSync();
  const store = new KeyStore(opts.store, () => randomBytes(8));
  const limits = opts.extended === false ? SHORT_LIMITS : EXTENDED_LIMITS;
  const applet = new SenvApplet({ store, random: randomBytes, limits });
  const os = new VirtualCardOs([applet], { limits, ...(opts.log ? { log: opts.log } : {}) });
  const vpcd = new VpcdCard(os, { host: opts.host ?? '127.0.0.1', port: opts.port ?? VPCD_PORT + (opts.slot ?? 0), keepAlive: opts.keepAlive ?? true });
  return {
    vpcd, applet, os,
    close: async () => {
      await vpcd.remove();
      store.close();
    },
  };
}

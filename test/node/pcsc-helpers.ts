// Shared by the tests that need the PC/SC stack: pcscd with the vpcd reader
// (scripts/pcsc-stack.mjs brings it up, or uses a running one that serves
// vpcd), one vpcd slot for this test file, and the senv virtual card in it.
// Without the stack the tests skip and say why; with SENV_REQUIRE_PCSC=1 or
// CI set they fail instead, because CI must run them. InProcessReader (at the
// end) needs no stack at all.
import { acquireSlot, acquireStack, type SlotLease } from '../../scripts/pcsc-stack.mjs';
import { PcscBackend } from '../../src/backends/pcsc/index.ts';
import { randomBytes } from '../../src/core/index.ts';
import { PcscContext, type ReaderState } from '../../src/pcsc/index.ts';
import { EXTENDED_LIMITS, type CardLimits } from '../../src/virtual-card/card.ts';
import {
  createVirtualCard, KeyStore, SenvApplet, VirtualCardOs, type VirtualCard, type VirtualCardOptions,
} from '../../src/virtual-card/index.ts';

export interface PcscTestEnv {
  ctx: PcscContext;
  /** false when a foreign pcscd without the latency fix serves the tests (~44 ms per APDU). */
  latencyFixed: boolean;
  slot: SlotLease;
  /** A virtual card for this slot (not inserted). */
  newCard(opts?: Omit<VirtualCardOptions, 'slot' | 'port'>): VirtualCard;
  /** Waits (SCardGetStatusChange) until the slot's reader satisfies `want`. */
  waitFor(want: (s: ReaderState) => boolean, timeoutMs?: number): Promise<ReaderState>;
  /** Inserts the card and waits until pcscd reports it present. */
  insert(card: VirtualCard): Promise<void>;
  /** Removes the card and waits until pcscd reports the slot empty. */
  remove(card: VirtualCard): Promise<void>;
  teardown(): Promise<void>;
}

export type PcscSetup = { ok: true; env: PcscTestEnv } | { ok: false; reason: string };

export async function setupPcsc(): Promise<PcscSetup> {
  const stack = await acquireStack();
  if (!stack.ok) {
    const reason = `PC/SC stack unavailable: ${stack.reason}`;
    if (process.env.SENV_REQUIRE_PCSC === '1' || process.env.CI) throw new Error(reason);
    console.warn(`skipping PC/SC tests: ${reason}`);
    return { ok: false, reason };
  }
  const slot = await acquireSlot();
  const ctx = await PcscContext.establish();
  const cards: VirtualCard[] = [];

  const waitFor = async (want: (s: ReaderState) => boolean, timeoutMs = 10_000): Promise<ReaderState> => {
    const deadline = Date.now() + timeoutMs;
    let [s] = await ctx.getStatusChange([{ reader: slot.reader, state: 0 }], 0);
    while (s && !want(s)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`reader ${slot.reader} did not reach the expected state within ${timeoutMs} ms (state 0x${s.state.toString(16)})`);
      try {
        [s] = await ctx.getStatusChange([{ reader: slot.reader, state: s.state }], left);
      } catch (e) {
        if ((e as { scardName?: string }).scardName !== 'SCARD_E_TIMEOUT') throw e;
      }
    }
    return s!;
  };

  if (!stack.latencyFixed) console.warn('PC/SC tests: the running pcscd has no TCP_NODELAY fix, APDUs take ~44 ms each (docs/pcsc.md)');
  const env: PcscTestEnv = {
    ctx, slot, waitFor, latencyFixed: stack.latencyFixed,
    newCard(opts = {}) {
      const c = createVirtualCard({ ...opts, port: slot.port });
      cards.push(c);
      return c;
    },
    async insert(card) {
      await card.vpcd.insert();
      await waitFor((s) => s.present);
    },
    async remove(card) {
      await card.vpcd.remove();
      await waitFor((s) => s.empty);
    },
    async teardown() {
      for (const c of cards) await c.vpcd.remove();
      await ctx.release();
      await slot.release();
      await stack.release();
    },
  };
  return { ok: true, env };
}

/**
 * A reader with the senv virtual card in-process: the backend's PcscContext
 * and PcscCard are stand-ins that hand APDUs to the card OS, and `intercept`
 * may answer one instead of the card.
 */
export class InProcessReader {
  readonly store = new KeyStore(undefined, () => randomBytes(8));
  readonly os: VirtualCardOs;
  readonly applet: SenvApplet;
  readonly sent: Uint8Array[] = [];
  connects = 0;
  disconnects = 0;
  intercept: ((apdu: Uint8Array) => Uint8Array | undefined) | undefined;
  private readonly context: PcscContext;

  constructor(limits: CardLimits = EXTENDED_LIMITS) {
    this.applet = new SenvApplet({ store: this.store, random: randomBytes, limits });
    this.os = new VirtualCardOs([this.applet], { limits });
    const card = {
      transmit: async (apdu: Uint8Array) => {
        // Copies, as the native bridge takes them: the transport zeroizes a secret command once sent.
        this.sent.push(apdu.slice());
        return this.intercept?.(apdu) ?? this.os.apdu(apdu);
      },
      transaction: async <T>(fn: () => Promise<T>) => fn(),
      status: async () => ({ reader: 'in-process', state: 0, protocol: 'T1', atr: this.os.atr() }),
      reset: async (kind: 'cold' | 'warm') => this.os.power(kind),
      disconnect: async (end?: string) => {
        this.disconnects++;
        // What pcscd does with SCARD_RESET_CARD: a warm reset ends every channel and PSO context.
        if (end === 'reset') this.os.power('warm');
      },
    };
    this.context = {
      connect: async () => {
        this.connects++;
        return card;
      },
      release: async () => undefined,
    } as unknown as PcscContext;
  }

  backend(log?: (line: string) => void, opts: { commandTimeoutMs?: number; share?: 'exclusive' | 'shared' } = {}): PcscBackend {
    return new PcscBackend({ reader: 'in-process', context: this.context, ...opts, ...(log ? { log } : {}) });
  }

  /** PSO contexts the card holds (the applet's own count, private to it). */
  streamsOpen(): number {
    return (this.applet as unknown as { streamsOpen: Set<unknown> }).streamsOpen.size;
  }

  /** Answers the next APDU that `match` picks with `sw` instead of the card, once. */
  failOnce(match: (apdu: Uint8Array) => boolean, sw: number): void {
    let done = false;
    this.intercept = (apdu) => {
      if (done || !match(apdu)) return undefined;
      done = true;
      return Uint8Array.of(sw >> 8, sw & 0xff);
    };
  }
}

// PC/SC for TypeScript: readers, change waits and card connections over the
// native bridge, with every failure as a typed PcscError. Bytes in, bytes out;
// APDU structure is src/apdu/'s business.
import { secretCopyArg } from '../core/bytes.ts';
import { InvalidInputError } from '../core/errors.ts';
import { optionsArg, shown, type OptionNames } from '../core/args.ts';
import {
  PcscError, SCARD_E_CANCELLED, SCARD_E_INVALID_HANDLE, SCARD_E_NOT_READY, SCARD_E_TIMEOUT, ShortResponseError,
} from './errors.ts';
import { checkProtocols, checkReader, checkShare, checkTimeout } from './args.ts';
import { LONGEST_TIMER } from '../core/timers.ts';
import { loadNative, type NativeAddon, type NativeCard, type NativeMonitor } from './native.ts';

export { PcscError, PcscUnavailableError, ShortResponseError, SCARD_CODES, scardName } from './errors.ts';
export { nativeAvailable, PCSC_INSTALL_HINT } from './native.ts';

export type ShareMode = 'exclusive' | 'shared' | 'direct';
export type Protocol = 'T0' | 'T1' | 'RAW';
/** What happens to the card when a handle lets go of it. */
export type Disposition = 'leave' | 'reset' | 'unpower' | 'eject';

/** SCARD_STATE_* bits of a reader state. */
export const ReaderFlag = {
  IGNORE: 0x0001, CHANGED: 0x0002, UNKNOWN: 0x0004, UNAVAILABLE: 0x0008, EMPTY: 0x0010, PRESENT: 0x0020,
  ATRMATCH: 0x0040, EXCLUSIVE: 0x0080, INUSE: 0x0100, MUTE: 0x0200, UNPOWERED: 0x0400,
} as const;

export interface ReaderState {
  reader: string;
  /** Raw dwEventState: flags in the low 16 bits, pcsc-lite's event counter in the high 16. */
  state: number;
  atr: Uint8Array;
  changed: boolean;
  present: boolean;
  empty: boolean;
  /** The reader went away (SCARD_STATE_UNKNOWN) or cannot be queried. */
  unavailable: boolean;
  inUse: boolean;
  exclusive: boolean;
  mute: boolean;
}

/** `detail` goes with a failure pcsc-lite reports (a connect's reader: an engine may host several cards). */
async function call<T>(p: Promise<T>, detail?: string): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw toTyped(e, detail);
  }
}

function toTyped(e: unknown, detail?: string): unknown {
  // Already typed (a deadline's, a closed connection's): its own detail stays.
  if (e instanceof PcscError || e instanceof ShortResponseError) return e;
  if (e && typeof e === 'object') {
    const o = e as { scode?: number; shortResponse?: number; operation?: string };
    if (typeof o.shortResponse === 'number') return new ShortResponseError(o.shortResponse);
    if (typeof o.scode === 'number') return new PcscError(o.operation ?? 'PC/SC', o.scode, detail);
  }
  return e;
}

function readerState(n: { reader: string; eventState: number; atr: Uint8Array }): ReaderState {
  const s = n.eventState;
  return {
    reader: n.reader, state: s, atr: n.atr,
    changed: (s & ReaderFlag.CHANGED) !== 0,
    present: (s & ReaderFlag.PRESENT) !== 0,
    empty: (s & ReaderFlag.EMPTY) !== 0,
    unavailable: (s & (ReaderFlag.UNKNOWN | ReaderFlag.UNAVAILABLE)) !== 0,
    inUse: (s & ReaderFlag.INUSE) !== 0,
    exclusive: (s & ReaderFlag.EXCLUSIVE) !== 0,
    mute: (s & ReaderFlag.MUTE) !== 0,
  };
}

/** A disposition's DWORD; anything but the four names is refused, never sent as a default (a reset skipped). */
function disposition(c: NativeAddon['constants'], d: Disposition): number {
  const codes = { leave: c.SCARD_LEAVE_CARD, reset: c.SCARD_RESET_CARD, unpower: c.SCARD_UNPOWER_CARD, eject: c.SCARD_EJECT_CARD };
  if (typeof d !== 'string' || !Object.hasOwn(codes, d)) throw new InvalidInputError(`a disposition is 'leave', 'reset', 'unpower' or 'eject', got ${shown(d)}`);
  return codes[d];
}

function protocolMask(c: NativeAddon['constants'], list: readonly Protocol[]): number {
  let m = 0;
  for (const p of list) m |= p === 'T0' ? c.SCARD_PROTOCOL_T0 : p === 'T1' ? c.SCARD_PROTOCOL_T1 : c.SCARD_PROTOCOL_RAW;
  return m;
}

export interface ConnectOptions {
  /** Default 'shared': other applications may use the card between our transactions. */
  share?: ShareMode | undefined;
  /** Default ['T0', 'T1']. */
  protocols?: readonly Protocol[] | undefined;
  /**
   * Longest wait in milliseconds for the connect itself and for each call on
   * the connection but disconnect(): the card's answer to transmit(),
   * control() and reconnect()/reset(), and pcscd's to status() and the
   * transaction calls (a transaction another application holds, a pcscd that
   * stopped answering). Default: the context's timeoutMs, Infinity unless
   * establish() was given one (as long as the reader driver waits: vpcd, or
   * a driver that hangs, waits for good). See PcscCard.stalled.
   */
  timeoutMs?: number | undefined;
}

/** The longest finite wait pcsc-lite keeps finite: it passes the DWORD to poll() as an int. */
const LONGEST_WAIT = 0x7fffffff;

/**
 * `bridged` (a call in the native bridge), bounded by `ms`: past it the
 * result rejects with `expired(settled)`, where `settled` resolves once the
 * call has returned after all, its value handed to `late` to dispose of.
 * The bridge call itself cannot be stopped (pcsc-lite has no way to abort a
 * transmit), but from then on it no longer keeps the process alive: a
 * script whose last call pcscd or the card never answered ends.
 */
function bounded<T>(addon: NativeAddon, bridged: Promise<T>, ms: number, expired: (settled: Promise<void>) => Error, late: (value: T) => unknown): Promise<T> {
  if (ms === Infinity) return bridged;
  return new Promise<T>((resolve, reject) => {
    let over = false;
    const timer = setTimeout(() => {
      over = true;
      addon.unrefCall(bridged);
      // Settled once what `late` does with the value (a promise it returns) is done too.
      reject(expired(bridged.then(late, () => undefined).then(() => undefined)));
    }, ms);
    bridged.then(
      (v) => {
        if (over) return;
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        if (over) return;
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * Runs calls one at a time, in the order they were made (a context's or a
 * connection's calls, see PcscContext and PcscCard); `idle` settles once every
 * call made so far has.
 */
class CallQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(() => call(op()));
    this.#tail = next.catch(() => undefined);
    return next;
  }

  get idle(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}

/**
 * The bridge call of one party (pcscd for a context, the card for a
 * connection) that outlived its timeout and is still outstanding. While it
 * is, no second call goes to pcsc-lite for that party: it would wait behind
 * the first on a lock (pcsc-lite's, or the bridge's for establish), on a
 * bridge thread, for as long.
 */
class Stall {
  #outstanding: Promise<void> | undefined;
  /** The outstanding call's timeout. */
  #ms = 0;

  /** `party` as the errors name it: 'pcscd', 'the card in <reader>'. */
  constructor(private readonly party: string) {}

  get active(): boolean {
    return this.#outstanding !== undefined;
  }

  /** SCARD_E_NOT_READY for `operation` while a call is outstanding. */
  refusal(operation: string): PcscError | undefined {
    return this.#outstanding && new PcscError(operation, SCARD_E_NOT_READY, `an earlier call to ${this.party} got no answer within ${this.#ms} ms and is still outstanding`);
  }

  /** Settles once no call is outstanding. */
  get over(): Promise<void> {
    return this.#outstanding ?? Promise.resolve();
  }

  /**
   * Makes the bridge call `op` (returning the bridge's own promise, which
   * bounded() lets go of) bounded by `ms`: past it, the call is outstanding
   * until it returns, and SCARD_E_TIMEOUT. While one is outstanding,
   * SCARD_E_NOT_READY and no call.
   */
  call<T>(addon: NativeAddon, operation: string, op: () => Promise<T>, ms: number, late: (value: T) => unknown = () => undefined): Promise<T> {
    const refused = this.refusal(operation);
    if (refused) return Promise.reject(refused);
    return bounded(addon, op(), ms, (settled) => {
      const outstanding = settled.finally(() => {
        if (this.#outstanding === outstanding) this.#outstanding = undefined;
      });
      this.#outstanding = outstanding;
      this.#ms = ms;
      return new PcscError(operation, SCARD_E_TIMEOUT, `no answer from ${this.party} within ${ms} ms`);
    }, late);
  }
}

/**
 * Once a status-change wait was asked for: the process's exit ends no
 * environment, and a wait thread still inside pcsc-lite when exit() runs the
 * library's destructor could crash it, so on 'exit' (and on Deno's 'unload',
 * the only event Deno.exit() dispatches) the bridge lets no wait of this
 * environment start any more and ends the running ones
 * (native/senv_pcsc.cc, EndForExit). A wait is one call, not a series of
 * short ones: pcsc-lite 1.9 compares the PnP pseudo-reader with the reader
 * count at the start of each call, so a reader attached between two calls
 * would never be reported.
 */
let exitHook = false;
function endWaitsOnExit(addon: NativeAddon): void {
  if (exitHook) return;
  exitHook = true;
  // Once: both events come at a natural end, and a second endForExit() would wait its 2 s again
  // for waits that pcscd did not let go the first time.
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    addon.endForExit();
  };
  process.on('exit', end);
  // Deno.exit() dispatches the global 'unload' event but not node:process's 'exit' (Deno 2.9).
  (globalThis as { addEventListener?: (type: string, fn: () => void) => void }).addEventListener?.('unload', end);
}

export interface EstablishOptions {
  /**
   * Longest wait in milliseconds for pcscd's answer: to establish() itself
   * and to each call on the context (listReaders, getStatusChange beyond the
   * wait it was asked for, release), and the default of connect()'s.
   * Default Infinity. See PcscContext.stalled.
   */
  timeoutMs?: number | undefined;
}

/** The establish() of this process that outlived its timeout, if any (see PcscContext.establish). */
const ESTABLISH_OPTIONS: OptionNames<EstablishOptions> = { timeoutMs: true };
const CONNECT_OPTIONS: OptionNames<ConnectOptions> = { share: true, protocols: true, timeoutMs: true };
const establishing = new Stall('pcscd');

/**
 * A PC/SC context: lists readers, waits for reader and card changes, and opens
 * connections (each on a context of its own, see native/senv_pcsc.cc).
 */
export class PcscContext {
  /** The pseudo-reader whose state changes when a reader is attached or detached. */
  readonly pnpReader: string;
  /**
   * Calls on this context run one at a time, in order. pcsc-lite 1.9 waits
   * for a context's own lock while holding its process-wide one, so a second
   * call made during a status-change wait would stall every PC/SC call of the
   * process, cancel() on this thread included, until the wait ended; and
   * releasing the context while a call on it is under way or about to start
   * makes the library read freed memory (native/senv_pcsc.cc, docs/pcsc.md).
   */
  readonly #calls = new CallQueue();
  readonly #stall = new Stall('pcscd');
  #released: Promise<void> | undefined;
  /** Waits asked for so far, and the last one a cancel() ends (waits are numbered when called). */
  #waits = 0;
  #cancelledUpTo = 0;
  /** The wait whose call runs now. */
  #running: { settled: boolean } | undefined;
  /** Readers with a connect that outlived its timeout and has not returned yet. */
  readonly #lateConnects = new Set<string>();

  private constructor(
    private readonly addon: NativeAddon,
    private readonly monitor: NativeMonitor,
    /** See EstablishOptions.timeoutMs. */
    readonly timeoutMs: number,
  ) {
    this.pnpReader = addon.pnpReader;
  }

  /** One call on the context, in order, bounded by `ms` beyond what the call itself waits. */
  #serial<T>(operation: string, ms: number, op: () => Promise<T>): Promise<T> {
    return this.#calls.run(() => (this.#released
      ? Promise.reject(new PcscError(operation, SCARD_E_INVALID_HANDLE))
      : this.#stall.call(this.addon, operation, op, ms)));
  }

  /**
   * Connects to pcscd (SCARD_E_NO_SERVICE when it is not running). With
   * `timeoutMs`, a pcscd that does not answer (stopped, or stuck) gets
   * SCARD_E_TIMEOUT instead of holding the caller for good; the context it
   * makes afterwards, if any, is released as it arrives, and until then every
   * establish() of the process rejects at once with SCARD_E_NOT_READY (the
   * bridge establishes one context at a time: another would only queue
   * behind it on a bridge thread).
   */
  static async establish(opts: EstablishOptions = {}): Promise<PcscContext> {
    const timeoutMs = checkTimeout(optionsArg(opts, 'establish options', ESTABLISH_OPTIONS)?.timeoutMs, 'timeoutMs');
    const addon = loadNative();
    const monitor = await call(establishing.call(addon, 'SCardEstablishContext', () => addon.Monitor.establish(), timeoutMs,
      (late) => void late.release().catch(() => undefined)));
    return new PcscContext(addon, monitor, timeoutMs);
  }

  /**
   * True while a call that outlived `timeoutMs` is still waiting for pcscd:
   * every other call then rejects at once with SCARD_E_NOT_READY, and
   * release() waits for it (in the background once its own timeout passed).
   */
  get stalled(): boolean {
    return this.#stall.active;
  }

  /** Reader names; an empty list when there are none. */
  listReaders(): Promise<string[]> {
    return this.#serial('SCardListReaders', this.timeoutMs, () => this.monitor.listReaders());
  }

  /**
   * One SCardGetStatusChange: resolves when a state differs from `current`
   * (pass the previous `state` back, or 0 to learn the current one).
   * Rejects with SCARD_E_TIMEOUT after `timeoutMs`, SCARD_E_CANCELLED after cancel().
   * A finite timeout stays finite: pcsc-lite hands it to poll() as an int, so
   * it is cut to 2^31 - 1 ms (about 24.8 days), where a larger one would wrap
   * round to a negative value, which poll() takes as "forever".
   */
  async getStatusChange(current: readonly { reader: string; state?: number | undefined }[], timeoutMs = Infinity): Promise<ReaderState[]> {
    if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) throw new InvalidInputError('getStatusChange: the timeout is a number of milliseconds, 0 or more');
    if (!Array.isArray(current)) throw new InvalidInputError(`getStatusChange: expected an array of { reader, state? }, got ${shown(current)}`);
    // pcsc-lite answers a wait for no reader at once, whatever the timeout: no wait at all.
    if (current.length === 0) throw new InvalidInputError('getStatusChange: name at least one reader (the PnP reader waits for readers to come or go)');
    const forever = this.addon.constants.INFINITE;
    const timeout = timeoutMs === Infinity ? forever : Math.min(Math.floor(timeoutMs), LONGEST_WAIT);
    const states = current.map((r: unknown) => {
      const { reader, state } = (r ?? {}) as { reader?: unknown; state?: unknown };
      if (state !== undefined && (!Number.isInteger(state) || (state as number) < 0 || (state as number) > 0xffffffff)) {
        throw new InvalidInputError(`getStatusChange: a reader's state is a DWORD (an integer from 0 to 2^32 - 1), got ${shown(state)}`);
      }
      return { reader: checkReader(reader), currentState: (state as number | undefined) ?? 0 };
    });
    const n = ++this.#waits;
    // pcsc-lite asks pcscd for the readers' states before it waits, and that answer has no timeout of its own.
    const bound = timeout === forever || timeout + this.timeoutMs > LONGEST_TIMER ? Infinity : timeout + this.timeoutMs;
    return (await this.#serial('SCardGetStatusChange', bound, () => {
      if (n <= this.#cancelledUpTo) return Promise.reject(new PcscError('SCardGetStatusChange', SCARD_E_CANCELLED));
      const running = { settled: false };
      this.#running = running;
      endWaitsOnExit(this.addon);
      const wait = this.monitor.getStatusChange(states, timeout);
      // Before the caller hears of it: the wait's own promise is the one bounded() can let go of.
      const ended = () => {
        running.settled = true;
        this.#running = undefined;
      };
      wait.then(ended, ended);
      return wait;
    })).map(readerState);
  }

  /**
   * Ends the waits asked for before this call, running or queued: they reject
   * with SCARD_E_CANCELLED (other calls queued behind them run next; later
   * waits are not affected). A cancel that lands before pcsc-lite set the
   * running wait up would be lost, so it is repeated until that wait ended.
   * Returns at once, also when pcscd does not answer the cancel.
   */
  cancel(): void {
    this.#cancelledUpTo = this.#waits;
    const target = this.#running;
    if (target) {
      // Until the wait ended, whatever one SCardCancel did (lost before the wait was set up, or failed:
      // it opens a connection to pcscd of its own). The bridge sends it from a thread of its own, and
      // skips it while the last one is still under way (a pcscd that stopped answering holds it).
      const again = setInterval(() => {
        if (target.settled) clearInterval(again);
        else this.monitor.cancel();
      }, 20);
      (again as { unref?: () => void }).unref?.();
    }
    this.monitor.cancel();
  }

  /**
   * A connection to the card in `reader`. With `timeoutMs`, a connect still
   * waiting then (pcscd holds a shared connect while another connection's
   * command to the card is unanswered) rejects with SCARD_E_TIMEOUT, and the
   * connection it makes afterwards, if any, is disconnected as it arrives.
   */
  async connect(reader: string, options?: ConnectOptions | null): Promise<PcscCard> {
    checkReader(reader);
    const opts = optionsArg(options, 'connect options', CONNECT_OPTIONS) ?? {};
    checkShare(opts.share);
    checkProtocols(opts.protocols);
    const timeoutMs = opts.timeoutMs === undefined ? this.timeoutMs : checkTimeout(opts.timeoutMs, 'timeoutMs');
    const c = this.addon.constants;
    const share = { exclusive: c.SCARD_SHARE_EXCLUSIVE, shared: c.SCARD_SHARE_SHARED, direct: c.SCARD_SHARE_DIRECT }[opts.share ?? 'shared'];
    const protocols = protocolMask(c, opts.protocols ?? ['T0', 'T1']);
    // As every call on the context: a connect makes a pcsc-lite context of its own, whose
    // establish would wait on a silent pcscd holding the bridge's process-wide lock.
    if (this.#released) throw new PcscError('SCardConnect', SCARD_E_INVALID_HANDLE);
    const stalled = this.#stall.refusal('SCardConnect');
    if (stalled) throw stalled;
    // Another connect would wait behind it in pcscd (the reader is held), and each would leave one
    // more pending connect and pcscd client behind: refused at once until it returned.
    if (this.#lateConnects.has(reader)) {
      throw new PcscError('SCardConnect', SCARD_E_NOT_READY, `an earlier connect to ${reader} got no connection within its timeout and is still outstanding`);
    }
    const card = await call(bounded(
      this.addon, this.monitor.connect(reader, share, protocols), timeoutMs,
      (settled) => {
        this.#lateConnects.add(reader);
        void settled.finally(() => this.#lateConnects.delete(reader));
        return new PcscError('SCardConnect', SCARD_E_TIMEOUT, `no connection to ${reader} within ${timeoutMs} ms`);
      },
      (late) => void late.disconnect(c.SCARD_LEAVE_CARD).catch(() => undefined),
    ), `reader '${reader}'`);
    return PcscCard.open(this.addon, card, reader, share, protocols, timeoutMs);
  }

  /**
   * Ends the calls made on this context so far (the running wait is
   * cancelled, queued calls reject with SCARD_E_INVALID_HANDLE, as do later
   * ones), then releases it. Idempotent. A pcscd that has not answered
   * within `timeoutMs` (a stalled call included) gets SCARD_E_TIMEOUT; the
   * context is released in the background once it answers.
   */
  release(): Promise<void> {
    this.#released ??= (async () => {
      this.cancel();
      // Started once the calls made before (a wait whose cancel a silent pcscd never gets among them)
      // and a stalled call returned: given up before then, it starts let go of.
      let release: Promise<void> | undefined;
      let givenUp = false;
      await bounded(this.addon, this.#calls.idle.then(() => this.#stall.over).then(() => {
        release = this.monitor.release();
        if (givenUp) this.addon.unrefCall(release);
        return call(release);
      }), this.timeoutMs, () => {
        givenUp = true;
        if (release) this.addon.unrefCall(release);
        return new PcscError('SCardReleaseContext', SCARD_E_TIMEOUT, `no answer from pcscd within ${this.timeoutMs} ms; the context is released once it answers`);
      }, () => undefined);
    })();
    return this.#released;
  }

  /** release(), for `await using x = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/**
 * A connection to the card in one reader. Calls run in the order they were
 * made: an APDU exchange is a conversation, and letting two transmits race on
 * bridge threads would interleave them arbitrarily.
 */
export class PcscCard {
  readonly #calls = new CallQueue();
  readonly #stall: Stall;

  /** Made by PcscContext.connect (a caller has no native card to give, and the bridge's types are not published). */
  private constructor(
    private readonly addon: NativeAddon,
    private readonly card: NativeCard,
    readonly reader: string,
    private readonly share: number,
    private readonly protocols: number,
    private readonly timeoutMs = Infinity,
  ) {
    this.#stall = new Stall(`the card in ${reader}`);
  }

  /** @internal PcscContext.connect's way to a card (and the tests', over a stand-in bridge); left out of the declarations. */
  static open(addon: NativeAddon, card: NativeCard, reader: string, share: number, protocols: number, timeoutMs?: number): PcscCard {
    return new PcscCard(addon, card, reader, share, protocols, timeoutMs);
  }

  /**
   * True while a call that outlived `timeoutMs` is still in the bridge,
   * waiting for the card: every other call then rejects at once with
   * SCARD_E_NOT_READY, and disconnect() waits for it. No second call goes
   * to pcsc-lite meanwhile: it would wait behind the first on the
   * connection's lock, and a disconnect would do so holding the bridge's
   * process-wide one (native/senv_pcsc.cc). A late answer is zeroized unread.
   */
  get stalled(): boolean {
    return this.#stall.active;
  }

  /** One call on the connection, in order, bounded by its timeout. */
  private timed<T>(operation: string, op: () => Promise<T>, late?: (value: T) => unknown): Promise<T> {
    return this.#calls.run(() => this.#stall.call(this.addon, operation, op, this.timeoutMs, late));
  }

  get protocol(): Protocol {
    const c = this.addon.constants;
    return this.card.protocol === c.SCARD_PROTOCOL_T0 ? 'T0' : this.card.protocol === c.SCARD_PROTOCOL_T1 ? 'T1' : 'RAW';
  }

  get connected(): boolean {
    return this.card.connected;
  }

  /** Sends one APDU, returns the response (data + SW1 SW2, at least two bytes). */
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    // Sent as it is now, even when it waits behind another call; the copy may carry a key (an import).
    const command = secretCopyArg(apdu, 'apdu');
    return this.timed('SCardTransmit', () => this.card.transmit(command), (late) => late.fill(0)).finally(() => command.fill(0));
  }

  /** Re-establishes the connection; 'reset' is a warm reset, 'unpower' a cold one. */
  async reconnect(initialization: Disposition = 'leave'): Promise<void> {
    const d = disposition(this.addon.constants, initialization);
    await this.timed('SCardReconnect', () => this.card.reconnect(this.share, this.protocols, d));
  }

  /** ISO/IEC 7816-3 cold (power cycle) or warm (RST) reset. */
  async reset(kind: 'cold' | 'warm'): Promise<void> {
    if (kind !== 'cold' && kind !== 'warm') throw new InvalidInputError(`a reset is 'cold' or 'warm', got ${shown(kind)}`);
    await this.reconnect(kind === 'cold' ? 'unpower' : 'reset');
  }

  /**
   * A begin that returns after its timeout has the transaction all the same:
   * it is ended then ('leave'), before any other call, so that neither the
   * card stays locked against other applications nor a retry nests in it.
   */
  beginTransaction(): Promise<void> {
    return this.timed('SCardBeginTransaction', () => this.card.beginTransaction(),
      () => this.card.endTransaction(this.addon.constants.SCARD_LEAVE_CARD).catch(() => undefined));
  }

  async endTransaction(end: Disposition = 'leave'): Promise<void> {
    const d = disposition(this.addon.constants, end);
    await this.timed('SCardEndTransaction', () => this.card.endTransaction(d));
  }

  /**
   * Runs `fn` with exclusive access to the card, ending the transaction even
   * when fn throws; fn's failure is the one reported (ending the transaction
   * then fails too when the card was lost, which says less).
   */
  async transaction<T>(fn: () => Promise<T>, end: Disposition = 'leave'): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidInputError(`transaction: expected a function, got ${shown(fn)}`);
    disposition(this.addon.constants, end);
    await this.beginTransaction();
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      await this.endTransaction(end).catch(() => undefined);
      throw e;
    }
    await this.endTransaction(end);
    return result;
  }

  async status(): Promise<{ reader: string; state: number; protocol: Protocol; atr: Uint8Array }> {
    const s = await this.timed('SCardStatus', () => this.card.status());
    return { reader: s.reader, state: s.state, protocol: this.protocol, atr: s.atr };
  }

  /** SCardControl with SCARD_CTL_CODE(code): reader-specific commands (PIN pads, features). */
  control(code: number, data: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    const base = this.addon.constants.SCARD_CTL_CODE_BASE;
    // The sum is a DWORD: a larger code would wrap round to another one.
    if (!Number.isInteger(code) || code < 0 || base + code > 0xffffffff) throw new InvalidInputError(`control code must be an integer from 0 to ${0xffffffff - base}, got ${shown(code)}`);
    const command = secretCopyArg(data, 'data');
    return this.timed('SCardControl', () => this.card.control(base + code, command), (late) => late.fill(0))
      .finally(() => command.fill(0));
  }

  /**
   * Idempotent; a card collected without disconnect() is left as it is
   * ('leave'). On a stalled connection it settles once the outstanding call
   * has returned and the card is disconnected.
   */
  async disconnect(end: Disposition = 'leave'): Promise<void> {
    const d = disposition(this.addon.constants, end);
    await this.#calls.run(async () => {
      await this.#stall.over;
      if (this.card.connected) await this.card.disconnect(d);
    });
  }

  /** disconnect(), for `await using x = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.disconnect();
  }
}

// One card behind the PC/SC backend: the connection, the APDU stack, the
// senv applet selected on the basic channel and on up to three logical
// channels that long-running streams hold between Mcs requests.
//
// Channel 0 serves every operation that completes within one backend call
// (the Mcs engine serialises calls per SE, so it is always free between
// calls). A stream that must send links before its final call takes a channel
// of its own, so that two interleaved streams never share the card's PSO
// state; when none is free it keeps buffering and completes on channel 0 at
// its end. Nothing ever waits for a channel, so interleaved streams cannot
// deadlock the engine's queue.
import { decodeTlvs, findTlv, tlvs, u16 } from '../../apdu/tlv.ts';
import { EXTENDED_MAX_NC, EXTENDED_MAX_NE, hex, type CommandApdu, type ResponseApdu } from '../../apdu/apdu.ts';
import { ApduError, StatusWordError } from '../../apdu/errors.ts';
import { FCI, INS, MSE_SET, SENV_AID, TAG } from '../../apdu/profile.ts';
import { createTransport, LogicalChannel, selectAid, type ApduTransport, type RawTransport } from '../../apdu/transport.ts';
import { DeviceFullError, StateError } from '../../core/errors.ts';
import { SCARD_E_NOT_READY } from '../../pcsc/errors.ts';
import { PcscContext, PcscError, ShortResponseError, type ShareMode } from '../../pcsc/index.ts';
import { LARGEST_VERIFY } from './signature-lengths.ts';

export interface CardInfo {
  serial: Uint8Array;
  version: number;
  /** Largest command data field the card accepts. */
  maxCommandData: number;
  /** Largest response data field one APDU returns. */
  maxResponseData: number;
  /** TS-0016 algorithm values the applet implements. */
  algorithms: number[];
}

/**
 * What the PC/SC SE uses of a connection to its card: a `PcscCard` has it, and so can a card of one's
 * own that is not behind PC/SC (docs/pcsc.md, "A card that is not behind PC/SC").
 */
export interface CardConnection {
  /** The response APDU (data, then SW1 SW2) to a command APDU. */
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  /** The card's answer to reset (deviceInfo's hardware version). */
  status(): Promise<{ atr: Uint8Array }>;
  /** [SEReboot]: channels, selections, environments and chains are gone afterwards. */
  reset(kind: 'cold' | 'warm'): Promise<void>;
  disconnect(end: 'leave' | 'reset'): Promise<void>;
  /** Runs `fn` with no other application's APDUs in between: needed with share 'shared' only. */
  transaction?<T>(fn: () => Promise<T>): Promise<T>;
  /** True while a command that got no answer within the timeout is still outstanding. */
  readonly stalled?: boolean;
}

/** What the PC/SC SE uses of a context: a `PcscContext` has it, and so can an object of one's own. */
export interface CardContext {
  connect(reader: string, options: { share: ShareMode; timeoutMs: number }): Promise<CardConnection>;
}

export interface SessionOptions {
  reader: string;
  /** A context to open the connection on; one of its own otherwise (released by close()). */
  context?: CardContext;
  share?: ShareMode;
  /** Longest wait for the connect and for each command's answer (PcscCard.stalled); Infinity: none. */
  commandTimeoutMs: number;
  /** APDU trace, secret data masked. */
  log?: (line: string) => void;
}

/** A channel with the applet selected and a memory of its security environment. */
export class AppletChannel {
  /** The data of the MSE:SET in force per CRT (its IV, nonce and AAD among it): bytes, zeroized when replaced or forgotten; private, so no inspection of the channel shows them. */
  readonly #mse = new Map<number, Uint8Array>();

  constructor(readonly t: ApduTransport, readonly number: number) {}

  transmit(cmd: CommandApdu): Promise<ResponseApdu> {
    return this.t.transmit(cmd);
  }

  /**
   * MSE:SET of one CRT; skipped when the card already has exactly this
   * environment (saves an APDU per operation in the common repeated case).
   */
  async setEnvironment(crt: number, algorithm: number, key?: { ref: number; stamp?: Uint8Array }, extra: [number, Uint8Array | number[]][] = []): Promise<void> {
    // The key's stamp where the card gave one: the card refuses (6A88) a slot that holds another key by then.
    const keyTlvs: [number, Uint8Array | number[]][] = key ? [[TAG.KEY_REF, [key.ref]], ...(key.stamp ? [[TAG.KEY_STAMP, key.stamp] as [number, Uint8Array]] : [])] : [];
    const data = tlvs([TAG.ALGORITHM, u16(algorithm)], ...keyTlvs, ...extra);
    const held = this.#mse.get(crt);
    if (held && held.length === data.length && held.every((b, i) => b === data[i])) {
      data.fill(0);
      return;
    }
    this.forget(crt);
    // An IV, nonce or AAD goes to the log as a length, as the message does.
    await afterBrokenChain(() => this.t.transmit({ cla: 0, ins: INS.MSE, p1: MSE_SET, p2: crt, data, secret: extra.length > 0 }));
    this.#mse.set(crt, data);
  }

  forgetEnvironment(): void {
    for (const crt of [...this.#mse.keys()]) this.forget(crt);
  }

  private forget(crt: number): void {
    this.#mse.get(crt)?.fill(0);
    this.#mse.delete(crt);
  }
}

export class CardSession {
  info: CardInfo | undefined;
  /** The card's answer to reset as the reader reported it at the last connection (deviceInfo's hardware version). */
  atr: Uint8Array | undefined;
  private ctx: CardContext | undefined;
  /** The context this session established (no `context` given), which close() releases. */
  private owned: PcscContext | undefined;
  private card: CardConnection | undefined;
  /** The APDU stack and its wire layer (which counts), rebuilt on every connection. */
  private stack: ApduTransport | undefined;
  private raw: RawTransport | undefined;
  /** APDUs of earlier connections. */
  private sentBefore = 0;
  private basic: AppletChannel | undefined;
  /** Logical channels with the applet selected, not held by a stream. */
  private free: AppletChannel[] = [];
  /** Numbers of the logical channels this session opened on the card (pooled, held by streams, or not closable). */
  private numbers = new Set<number>();
  /**
   * The card may hold a channel this session does not count (an open answered
   * with a number it cannot use or not at all, a close that failed): only a
   * reset ends it, which close() then makes.
   */
  private stray = false;
  /** The card refused to open another channel: no more are asked for until it is reset. */
  private exhausted = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly shared: boolean;
  private closed = false;
  /**
   * The connection ends once the running call is over: 'leave' when the card
   * was lost, 'reset' when it is there but in a state nothing else can clean
   * (a chain left open, a channel it would not close), so that every channel
   * and PSO context on it ends, as invalidate() assumes.
   */
  private dropDue: 'leave' | 'reset' | undefined;
  /**
   * The disconnect of a connection whose command outlived its timeout, which
   * waits for that command: until it is done no connection is tried (pcscd
   * would hold a shared one on the busy reader, an exclusive one is refused).
   */
  private lingering: Promise<void> | undefined;
  /** Bumped whenever the card lost its volatile state: channels of an older epoch are void. */
  epoch = 0;

  constructor(readonly opts: SessionOptions) {
    this.shared = (opts.share ?? 'exclusive') !== 'exclusive';
  }

  /** APDUs sent since the session started (benchmarks, batching checks). */
  get apdus(): number {
    return this.sentBefore + (this.raw?.sent ?? 0);
  }

  /**
   * Runs `fn` with the card to itself, reconnecting first when an earlier call
   * lost it. In shared mode other applications may use the card between our
   * calls, so each call is a PC/SC transaction that selects the applet again
   * and trusts no remembered security environment.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    // After close() nothing may open a connection (and a context) that nobody would release.
    if (this.closed) return Promise.reject(new StateError(`the card session on ${this.opts.reader} is closed`));
    return this.enqueue(fn, true);
  }

  /** run() without the closed check; with `reconnect` false, fn is skipped (undefined) when there is no connection. */
  private enqueue<T>(fn: () => Promise<T>, reconnect: boolean): Promise<T> {
    const next = this.queue.then(async () => {
      if (!this.basic) {
        if (!reconnect) return undefined as T;
        await this.connect();
      }
      try {
        if (this.shared) {
          return await this.card!.transaction!(async () => {
            this.basic!.forgetEnvironment();
            await this.selectBasic();
            return fn();
          });
        }
        return await fn();
      } catch (e) {
        // A connection stalled on a command without an answer is of no use until that returns.
        if (cardLost(e) || this.card?.stalled) this.dropDue ??= 'leave';
        throw e;
      } finally {
        // Outside the transaction, which a disconnect inside it would make fail in its place.
        const end = this.dropDue;
        this.dropDue = undefined;
        if (end) await this.drop(end);
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  get channel0(): AppletChannel {
    if (!this.basic) throw new StateError(`no card session on ${this.opts.reader}`);
    return this.basic;
  }

  /** A logical channel for a stream, or undefined when the card has none left. */
  async takeChannel(): Promise<AppletChannel | undefined> {
    const reuse = this.free.pop();
    if (reuse) return reuse;
    // The profile promises channels 1-3 (docs/apdu-profile.md).
    if (this.numbers.size >= 3 || this.exhausted || !this.stack) return undefined;
    let ch: LogicalChannel;
    try {
      ch = await LogicalChannel.open(this.stack!);
      // A channel a stream holds or the pool keeps: a second stream's links would go into its chain.
      if (this.numbers.has(ch.channel)) throw new ApduError(`MANAGE CHANNEL (open) answered channel ${ch.channel}, which this session already holds`);
    } catch (e) {
      if (answeredBy(e, INS.MANAGE_CHANNEL)) {
        // Fewer channels than the profile promises (or another application holds some): stop asking.
        this.exhausted = true;
        return undefined;
      }
      if (e instanceof StatusWordError || e instanceof ApduError || unanswered(e)) {
        // Nothing is sent on (or closes) a number the card cannot have given, nor one it may have
        // opened without an answer or whose number a failed GET RESPONSE lost; and no such card is
        // asked again until a reset, which also ends a channel it may have opened.
        this.exhausted = true;
        this.stray = true;
      }
      throw e;
    }
    this.numbers.add(ch.channel);
    try {
      await selectAid(ch, SENV_AID);
    } catch (e) {
      // A channel without the applet is of no use to any stream.
      await this.giveBack(ch);
      throw e;
    }
    return new AppletChannel(ch, ch.channel);
  }

  /**
   * Closes a logical channel no stream can use (MANAGE CHANNEL), so it counts
   * no more; false when the card did not close it. A close that failed may
   * still have closed it (an answer lost to a timeout), so the card may give
   * the number out again: it is not held against the card, and no channel is
   * asked for until a reset, which close() then makes.
   */
  private async giveBack(ch: LogicalChannel): Promise<boolean> {
    this.numbers.delete(ch.channel);
    return ch.close().then(
      () => true,
      (e: unknown) => {
        this.exhausted = true;
        this.stray = true;
        // The card may be gone, or still there with its channels and PSO contexts (a reader error):
        // the next call reconnects, and a card still there is reset, as close() would reset it.
        if (cardLost(e)) this.dropDue = 'reset';
        return false;
      },
    );
  }

  /** Gives a channel back for the next stream (the stream forgot its environment first: the next one sets its own). */
  returnChannel(ch: AppletChannel, epoch: number): void {
    if (epoch === this.epoch && ch !== this.basic) this.free.push(ch);
  }

  /**
   * Ends the chain an aborted stream left open on `ch` (queued like any call:
   * SELECT of the applet, which the card refuses once with 6883 as it drops
   * the chain), then pools the channel. A reset since ended it already.
   */
  endChain(ch: AppletChannel, epoch: number): void {
    // After close() the channel counts as held, and close() resets the card instead.
    if (epoch !== this.epoch || this.closed) return;
    // Without reconnecting: a session dropped meanwhile took the chain with it.
    this.enqueue(async () => {
      if (epoch !== this.epoch) return;
      if (await this.endChainNow(ch)) this.returnChannel(ch, epoch);
    }, false).catch(() => undefined);
  }

  /**
   * Ends, within the caller's own turn, a chain left open on `ch` (by an
   * aborted stream, or by a command without an answer, a timeout: queued like
   * endChain, the SELECT would run after calls queued meanwhile, which would
   * meet the open chain first). False when the SELECT failed: a logical channel
   * in an unknown state is then closed (MANAGE CHANNEL) and must not be pooled.
   * Where that fails as well, or on channel 0 (which cannot be closed), the
   * card is reset once the running call is over, which ends every chain and
   * channel on it (other streams then fail: their PSO contexts are gone); when
   * the card was lost meanwhile, the session is dropped. Either way the next
   * call reconnects and selects the applet again.
   */
  async endChainNow(ch: AppletChannel): Promise<boolean> {
    ch.forgetEnvironment();
    try {
      await afterBrokenChain(() => selectAid(ch.t, SENV_AID));
      return true;
    } catch (e) {
      if (cardLost(e)) this.dropDue ??= 'leave';
      else if (!(ch.t instanceof LogicalChannel) || !(await this.giveBack(ch.t))) this.dropDue = 'reset';
      return false;
    }
  }

  /** ISO/IEC 7816-3 cold or warm reset, then the applet is selected again. */
  async reset(kind: 'cold' | 'warm'): Promise<void> {
    // A reboot is what an operator sends a card that stopped answering. While its command past the
    // timeout is outstanding no connect may go to the reader, so the reset would fail at once and
    // leave the SE out of service; it waits instead for that command and the reset disconnect after
    // it, for commandTimeoutMs at most.
    if (this.lingering) await within(this.lingering, this.opts.commandTimeoutMs);
    await this.run(async () => {
      await this.card!.reset(kind);
      this.invalidate();
      try {
        // The reader may hold another card by now: reconnecting after a removal would find it the same way.
        this.sameCard(parseFci(await this.selectBasic()));
      } catch (e) {
        // A basic channel without the applet would answer every later call with 6D00, another card's
        // would serve it under this one's key references: the next call reconnects (and checks again).
        this.dropDue ??= 'leave';
        throw e;
      }
    });
  }

  /**
   * Calls made before close() still run; later ones fail with StateError.
   * The logical channels go back to the card (MANAGE CHANNEL), so that the
   * next connection finds them free; one a stream still holds may keep a
   * chain and its PSO context open, so the card is then reset instead.
   */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.enqueue(async () => {
        for (const ch of this.free.splice(0)) await this.giveBack(ch.t as LogicalChannel);
      }, false).catch(() => undefined);
    }
    await this.queue;
    const owned = this.owned;
    this.ctx = this.owned = undefined;
    const ending = this.drop(this.numbers.size > 0 || this.stray ? 'reset' : 'leave').then(() => owned?.release());
    // A pcscd that stopped answering holds the disconnect and the release: close() returns after the
    // command timeout, and they end whenever pcscd does.
    await within(ending.catch(() => undefined), this.opts.commandTimeoutMs);
  }

  private async connect(): Promise<void> {
    if (this.lingering) {
      throw new PcscError('SCardConnect', SCARD_E_NOT_READY, `the card in ${this.opts.reader} has not yet answered a command that got no answer within ${this.opts.commandTimeoutMs} ms`);
    }
    this.ctx ??= this.opts.context ?? (this.owned = await PcscContext.establish({ timeoutMs: this.opts.commandTimeoutMs }));
    this.card = await this.ctx.connect(this.opts.reader, { share: this.opts.share ?? 'exclusive', timeoutMs: this.opts.commandTimeoutMs });
    if (this.shared && typeof this.card.transaction !== 'function') {
      await this.card.disconnect('leave').catch(() => undefined);
      this.card = undefined;
      throw new StateError(`the connection to ${this.opts.reader} has no transaction(), which share 'shared' needs (docs/pcsc.md, "A card that is not behind PC/SC")`);
    }
    try {
      // The extended-length decision needs the FCI: select over a short stack first.
      this.useStack(false);
      const info = this.sameCard(parseFci(await this.selectBasic()));
      this.useStack(info.maxCommandData > 255, info.maxCommandData, info.maxResponseData);
      this.info = info;
      // Descriptive only: a reader that cannot report it leaves the card as usable as before.
      this.atr = await this.card.status().then((s) => s.atr.slice(), () => undefined);
    } catch (e) {
      // run() connects only when there is no basic channel: a half-made session
      // would hold the card for good and answer every call with 6D00.
      await this.drop();
      throw e;
    }
  }

  private useStack(extended: boolean, maxCommandData?: number, maxResponseData?: number): void {
    if (this.raw) this.sentBefore += this.raw.sent;
    // 16 MiB in 2^16 GET RESPONSE rounds: a data object that large even in 256-byte pieces, yet a card
    // that goes on answering can neither hold the host forever nor fill its memory.
    const { transport, raw } = createTransport(this.card!, {
      extended, maxGetResponseRounds: 1 << 16, maxResponseTotal: 1 << 24,
      ...(maxCommandData ? { maxCommandData } : {}),
      ...(maxResponseData ? { maxResponseData } : {}),
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    this.stack = transport;
    this.raw = raw;
    this.basic = new AppletChannel(transport, 0);
  }

  /** `info`, when it names the card this session first connected to (or it is the first). */
  private sameCard(info: CardInfo): CardInfo {
    // Key references and the M2M-SE-ID name one card: another card in the reader is never used in its place.
    if (this.info && hex(info.serial) !== hex(this.info.serial)) {
      throw new ApduError(`another card (serial ${hex(info.serial)}) is in the reader where card ${hex(this.info.serial)} was: put that card back`);
    }
    return info;
  }

  private async selectBasic(): Promise<Uint8Array> {
    return afterBrokenChain(() => selectAid(this.stack!, SENV_AID));
  }

  private invalidate(): void {
    this.epoch++;
    this.free = [];
    this.numbers.clear();
    this.stray = false;
    this.exhausted = false;
    this.basic?.forgetEnvironment();
  }

  private async drop(end: 'leave' | 'reset' = 'leave'): Promise<void> {
    this.invalidate();
    const card = this.card;
    this.card = undefined;
    this.basic = undefined;
    if (this.raw) this.sentBefore += this.raw.sent;
    this.raw = undefined;
    if (card?.stalled) {
      // Nothing is known of the card's state: the reset ends whatever the command left open.
      const done = card.disconnect('reset').catch(() => undefined).then(() => {
        if (this.lingering === done) this.lingering = undefined;
      });
      this.lingering = done;
      return;
    }
    await card?.disconnect(end).catch(() => undefined);
  }
}

/** Waits for `p`, which never rejects, for `ms` at most (Infinity: for as long as it takes). */
async function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p,
    new Promise<void>((resolve) => {
      if (ms !== Infinity) timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * Runs `send` once more when the card answered 6883: a chain left open on the
 * channel (an aborted stream's links, or another application's in shared
 * mode) makes the card refuse the next other command, which ends that chain
 * (docs/apdu-profile.md), so the command then runs.
 */
async function afterBrokenChain<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (e) {
    if (e instanceof StatusWordError && e.sw === 0x6883) return send();
    throw e;
  }
}

/** A status word the command itself gave as its result (see StatusWordError.answers). */
export function answeredBy(e: unknown, ins: number, p1p2?: number): e is StatusWordError {
  return e instanceof StatusWordError && e.answers(ins, p1p2);
}

/**
 * Whether a write's own error answer leaves open that the card holds what was written: every answer
 * but those ISO/IEC 7816-4 says changed nothing (62xx and 64xx, "non-volatile memory unchanged", and
 * the checking errors 67xx to 6Exx, which refuse the command before it runs). So 63xx and 65xx
 * ("memory changed"), 6F00 (no precise diagnosis; the senv card's answer when its store kept a
 * change it could not make durable to the end) and a status word no class defines (a garbled
 * answer: 9000 with a bit flipped) may have written.
 */
export function mayHaveWritten(sw: number): boolean {
  const c = sw >> 8;
  return !(c === 0x62 || c === 0x64 || (c >= 0x67 && c <= 0x6e));
}

/** `e`, or a DeviceFullError when it is the card's own 6A84 (not enough memory) to `ins`: the card has no room, nothing was written. */
export function roomRefused(e: unknown, ins: number, what: string): unknown {
  return answeredBy(e, ins) && e.sw === 0x6a84 ? new DeviceFullError(`the card has no room for ${what}`) : e;
}

/** A command the card never answered (the reader or the connection's timeout): it may still hold a chain the command was part of. */
export function unanswered(e: unknown): boolean {
  return e instanceof PcscError && e.scardName === 'SCARD_E_TIMEOUT';
}

/**
 * pcsc-lite's answer to a call on a connection the card's removal or a reset by another application
 * made stale: SCardTransmit checks for those events before it sends, and says so with nothing sent.
 */
export function staleConnection(e: unknown): boolean {
  return e instanceof PcscError && (e.scardName === 'SCARD_W_REMOVED_CARD' || e.scardName === 'SCARD_W_RESET_CARD');
}

/** The card went away or was reset behind our back: the next call reconnects. */
export function cardLost(e: unknown): boolean {
  return e instanceof ShortResponseError || (e instanceof PcscError && !unanswered(e));
}

function parseFci(fci: Uint8Array): CardInfo {
  const top = findTlv(decodeTlvs(fci), TAG.FCI);
  const prop = top && findTlv(decodeTlvs(top), TAG.PROPRIETARY);
  // A card fault, not a request the caller may not make (StateError is 4005 over Mcs).
  if (!prop) throw new ApduError('the card answered SELECT without the senv FCI proprietary template (A5)');
  const p = decodeTlvs(prop);
  const num = (tag: number) => {
    const v = findTlv(p, tag);
    return v ? v.reduce((a, b) => a * 256 + b, 0) : 0;
  };
  const algs = findTlv(p, FCI.ALGORITHMS) ?? new Uint8Array(0);
  const serial = findTlv(p, FCI.SERIAL);
  // The serial is the <SE>'s unique ID and the first half of every stored key's reference: two
  // cards without one (or with a short one) would pass for each other.
  if (serial?.length !== 8) throw new ApduError(`the card's FCI has ${serial ? `a serial of ${serial.length} bytes` : 'no serial'} (tag 83): the profile gives 8`);
  if (algs.length % 2) throw new ApduError(`the card's FCI lists algorithms in ${algs.length} bytes (tag 82): 2 bytes each`);
  for (const tag of [FCI.MAX_COMMAND, FCI.MAX_RESPONSE]) {
    const v = findTlv(p, tag);
    if (v && (v.length !== 2 || num(tag) === 0)) throw new ApduError(`the card's FCI gives its tag ${tag.toString(16)} limit as ${v.length} bytes worth ${num(tag)}: 2 bytes, above 0`);
  }
  const command = num(FCI.MAX_COMMAND);
  if (command && command < LARGEST_VERIFY) {
    throw new ApduError(`the card announces a command data field of ${command} bytes (tag 81): the profile needs ${LARGEST_VERIFY}, a VERIFY template in one command`);
  }
  return {
    version: num(FCI.VERSION),
    // Links and streams are sized by these: never above what one APDU can carry.
    maxCommandData: Math.min(command || 255, EXTENDED_MAX_NC),
    maxResponseData: Math.min(num(FCI.MAX_RESPONSE) || 256, EXTENDED_MAX_NE),
    algorithms: Array.from({ length: algs.length >> 1 }, (_, i) => (algs[2 * i]! << 8) | algs[2 * i + 1]!),
    serial,
  };
}

/** `out` when it has exactly `n` bytes; else ApduError, with `out` zeroized (it may be secret). */
export function exactly(out: Uint8Array, n: number, what: string): Uint8Array {
  if (out.length === n) return out;
  out.fill(0);
  throw new ApduError(`the card returned ${out.length} bytes of ${what} instead of ${n}`);
}

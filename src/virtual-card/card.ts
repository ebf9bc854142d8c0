// The virtual card's operating system: ATR, power state, logical channels
// (MANAGE CHANNEL), SELECT by AID, buffering of chained commands, and response
// data longer than Ne handed out by 61xx + GET RESPONSE. Applets only see
// whole commands, except those that ask to stream chained links.
import { decodeCommand, encodeResponse, hex, type DecodedCommand, type ResponseApdu } from '../apdu/apdu.ts';
import { ApduError } from '../apdu/errors.ts';
import { channelOfCla } from '../apdu/transport.ts';
import { concatBytes, secretBytes } from '../core/bytes.ts';
import { InvalidInputError } from '../core/errors.ts';
import type { CardHandler } from './vpcd.ts';

/** The most a joined chain may carry: a data object of the profile's largest length form (2^24 - 1 bytes) and the template around it. */
const MAX_JOINED = 0xffffff + 256;

export const SW = {
  OK: 0x9000, VERIFY_FAILED: 0x6300, MEMORY_FULL: 0x6a84, WRONG_LENGTH: 0x6700, CHANNEL_UNSUPPORTED: 0x6881,
  SM_UNSUPPORTED: 0x6882, LAST_OF_CHAIN_EXPECTED: 0x6883, CHAINING_UNSUPPORTED: 0x6884, SECURITY: 0x6982, REF_NOT_USABLE: 0x6984, CONDITIONS: 0x6985, WRONG_DATA: 0x6a80,
  FUNC_UNSUPPORTED: 0x6a81, NOT_FOUND: 0x6a82, WRONG_P1P2: 0x6a86, REF_NOT_FOUND: 0x6a88, REF_EXISTS: 0x6a89, INS_UNSUPPORTED: 0x6d00,
  CLA_UNSUPPORTED: 0x6e00, UNKNOWN: 0x6f00,
} as const;

/** A status word thrown by an applet to refuse a command. */

/**
 * ISO/IEC 7816-4 clause 5.4.1: 0X-1X first interindustry, 4X-7X further
 * interindustry, 8X-FE proprietary; 2X-3X are reserved for future use and FF
 * is invalid (both 6E00).
 */
function validCla(cla: number): boolean {
  return cla !== 0xff && (cla & 0xe0) !== 0x20;
}
export class CardStatus extends Error {
  constructor(readonly sw: number) {
    super(`SW ${sw.toString(16)}`);
  }
}

/** Per logical channel state an applet may keep (security environment, streams). */
export interface ChannelContext {
  readonly channel: number;
  state: Map<string, unknown>;
}

export interface Applet {
  readonly aid: Uint8Array;
  /** Selected on a channel: returns the FCI. */
  select(ctx: ChannelContext): Uint8Array;
  /** Whether chained links of this command go to process() one by one (streaming) instead of being joined. */
  streams(cmd: DecodedCommand): boolean;
  /**
   * The status word for a command the applet refuses before reading it (a class or instruction it
   * has not), else undefined. When given, the card OS refuses such a command at once, a chain's
   * first link too, which it would otherwise buffer (9000 for each link) and refuse only at the last.
   */
  refuses?(cmd: DecodedCommand): number | undefined;
  /** `last` is false for a link of a chain (CLA b5 set). Throw CardStatus to refuse. */
  process(cmd: DecodedCommand, ctx: ChannelContext, last: boolean): Uint8Array;
  /**
   * The streamed chain on this channel ended without its last link (broken,
   * refused), or the channel's state is discarded (SELECT, channel closed):
   * free what it holds.
   */
  dropChain(ctx: ChannelContext): void;
  /** Power loss or reset: forget everything volatile. */
  power(event: 'cold' | 'warm' | 'off'): void;
}

interface Channel extends ChannelContext {
  applet: Applet | null;
  /**
   * The chain in progress: its key, and the data so far of a chain joined here
   * (a streamed chain's data went to the applet link by link).
   */
  chain: { key: string; parts: Uint8Array[]; size: number } | null;
  /** Response data not yet fetched by GET RESPONSE. */
  pending: Uint8Array | null;
}

const CHANNELS = 4;

/** The card's I/O buffer: the largest command data field and response data one APDU may carry. */
export interface CardLimits {
  maxCommandData: number;
  maxResponseData: number;
}

// vpcd frames every message with a 16-bit length, so neither an extended
// command (header, Lc, data, Le) nor a response (data, SW) can exceed 65535
// bytes on that path; 0xFF00 leaves room for the framing of both.
export const EXTENDED_LIMITS: CardLimits = { maxCommandData: 0xff00, maxResponseData: 0xff00 };
export const SHORT_LIMITS: CardLimits = { maxCommandData: 255, maxResponseData: 256 };

/** Limits a card can keep: whole numbers of bytes up to EXTENDED_LIMITS (whose FCI fields take 2 bytes; vpcd's frame). */
function checkLimits(l: CardLimits): CardLimits {
  const ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xff00;
  if (!ok(l?.maxCommandData) || !ok(l?.maxResponseData)) throw new InvalidInputError(`card limits must be whole numbers of bytes from 1 to ${0xff00}`);
  return { maxCommandData: l.maxCommandData, maxResponseData: l.maxResponseData };
}

/** T=1 ATR with the historical bytes "senv" (TS 3B, T0 84, TD1 80, TD2 01, 4 bytes, TCK). */
function makeAtr(): Uint8Array {
  const historical = new TextEncoder().encode('senv');
  const body = [0x80 | historical.length, 0x80, 0x01, ...historical];
  const tck = body.reduce((a, b) => a ^ b, 0);
  return Uint8Array.of(0x3b, ...body, tck);
}

export class VirtualCardOs implements CardHandler {
  private channels: (Channel | null)[] = [];
  private readonly atrBytes: Uint8Array;

  constructor(
    private readonly applets: readonly Applet[],
    opts: { atr?: Uint8Array | undefined; log?: ((line: string) => void) | undefined; limits?: CardLimits | undefined } = {},
  ) {
    this.atrBytes = opts.atr ?? makeAtr();
    this.log = opts.log;
    this.limits = checkLimits(opts.limits ?? EXTENDED_LIMITS);
    this.closeChannels();
  }

  private readonly log: ((line: string) => void) | undefined;
  private readonly limits: CardLimits;

  atr(): Uint8Array {
    return this.atrBytes;
  }

  power(event: 'cold' | 'warm' | 'off'): void {
    this.log?.(`power ${event}`);
    this.closeChannels();
    for (const a of this.applets) a.power(event);
  }

  private closeChannels(): void {
    this.channels = Array.from({ length: CHANNELS }, (_, i) => (i === 0 ? this.newChannel(0) : null));
  }

  private newChannel(channel: number): Channel {
    return { channel, state: new Map(), applet: null, chain: null, pending: null };
  }

  apdu(bytes: Uint8Array): Uint8Array {
    let r: ResponseApdu;
    try {
      let cmd: DecodedCommand;
      try {
        cmd = decodeCommand(bytes);
      } catch (e) {
        // Undecodable (Lc and the data disagree), yet its header names a channel: a command refused there.
        const ch = bytes.length >= 4 ? this.channelOf(bytes[0]!) : null;
        if (ch) this.refused(ch);
        throw e;
      }
      r = this.dispatch(cmd);
    } catch (e) {
      r = { data: new Uint8Array(0), sw: e instanceof CardStatus ? e.sw : e instanceof ApduError ? SW.WRONG_LENGTH : SW.UNKNOWN };
      if (!(e instanceof CardStatus) && !(e instanceof ApduError)) this.log?.(`internal error: ${(e as Error).message}`);
    }
    return encodeResponse(r);
  }

  /** The open channel a valid CLA names; null otherwise. */
  private channelOf(cla: number): Channel | null {
    const n = channelOfCla(cla);
    return validCla(cla) && n < CHANNELS ? this.channels[n] ?? null : null;
  }

  // A command refused before it is read is still a command on its channel: it discards the
  // leftover response data, and a link refused ends its chain like any other refused link.
  private refused(ch: Channel): void {
    ch.pending = null;
    if (ch.chain) this.endChain(ch);
  }

  private dispatch(cmd: DecodedCommand): ResponseApdu {
    if (!validCla(cmd.cla)) throw new CardStatus(SW.CLA_UNSUPPORTED);
    const ch = this.channelOf(cmd.cla);
    if (!ch) throw new CardStatus(SW.CHANNEL_UNSUPPORTED);
    const refuse = (sw: number): never => {
      this.refused(ch);
      throw new CardStatus(sw);
    };
    if ((cmd.extended && this.limits.maxCommandData <= 255) || cmd.data.length > this.limits.maxCommandData) refuse(SW.WRONG_LENGTH);
    // Secure messaging (b4-b3 of a first interindustry CLA, b6 of a further one): not served,
    // rather than the command run as if it came in plain.
    if (cmd.cla < 0x80 && cmd.cla & (cmd.cla & 0x40 ? 0x20 : 0x0c)) refuse(SW.SM_UNSUPPORTED);
    const more = (cmd.cla & 0x10) !== 0;
    // CLA with channel and chaining bits cleared: what the applet sees.
    const plain: DecodedCommand = { ...cmd, cla: cmd.cla & 0x80 };

    // GET RESPONSE fetches what a link answered: it is part of the chain, not an interruption.
    if (cmd.ins === 0xc0 && !more) return this.getResponse(ch, cmd);
    ch.pending = null;

    // A chain is one command; anything else in between breaks it. The links of
    // a streamed chain may differ in P1-P2 (PSO COMPUTE links, then VERIFY):
    // the applet checks that they belong together.
    const streamed = ch.applet?.streams(plain) === true;
    const key = streamed ? `${plain.cla}:${plain.ins}` : `${plain.cla}:${plain.ins}:${plain.p1}:${plain.p2}`;
    if (ch.chain && ch.chain.key !== key) {
      this.endChain(ch);
      throw new CardStatus(SW.LAST_OF_CHAIN_EXPECTED);
    }

    // None is ever chained (the profile's SELECT and MANAGE CHANNEL fit one command, GET RESPONSE has
    // no data): a link of one is refused, not run at once as if it were the whole command, nor joined.
    const cardCommand = plain.cla === 0 && (plain.ins === 0x70 || plain.ins === 0xc0 || (plain.ins === 0xa4 && plain.p1 === 0x04));
    if (cardCommand && more) refuse(SW.CHAINING_UNSUPPORTED);
    if (plain.ins === 0x70 && plain.cla === 0) return this.manageChannel(ch, plain);
    if (plain.ins === 0xa4 && plain.cla === 0 && plain.p1 === 0x04) return this.answer(ch, plain, this.select(ch, plain));

    const applet = ch.applet;
    if (!applet) throw new CardStatus(SW.INS_UNSUPPORTED);
    const early = applet.refuses?.(plain);
    if (early !== undefined) refuse(early);
    if (streamed) {
      ch.chain = more ? { key, parts: [], size: 0 } : null;
      try {
        return this.answer(ch, plain, applet.process(plain, ch, !more));
      } catch (e) {
        // A refused link ends its chain: the next link must not continue half a message.
        this.endChain(ch);
        throw e;
      }
    }
    if (more) {
      const chain = (ch.chain ??= { key, parts: [], size: 0 });
      chain.size += plain.data.length;
      // A joined command holds at most one data object of the profile (2^24 - 1 bytes: an AEAD's
      // associated data) and its header: a chain that goes on is refused, not buffered without end.
      if (chain.size > MAX_JOINED) {
        ch.chain = null;
        throw new CardStatus(SW.MEMORY_FULL);
      }
      chain.parts.push(plain.data);
      return { data: new Uint8Array(0), sw: SW.OK };
    }
    // Joined outside the JS heap, and zeroized once the applet is done with it (the applet copies what
    // it keeps): a chain may carry a key to import.
    const joined = ch.chain ? concatBytes([...ch.chain.parts, plain.data], secretBytes) : undefined;
    ch.chain = null;
    try {
      return this.answer(ch, plain, applet.process(joined ? { ...plain, data: joined } : plain, ch, true));
    } finally {
      joined?.fill(0);
    }
  }

  private endChain(ch: Channel): void {
    ch.chain = null;
    ch.applet?.dropChain(ch);
  }

  // Response data beyond Ne (or the I/O buffer) waits for GET RESPONSE, announced by 61xx.
  private answer(ch: Channel, cmd: DecodedCommand, data: Uint8Array): ResponseApdu {
    const n = Math.min(cmd.ne, this.limits.maxResponseData);
    if (data.length <= n) return { data, sw: SW.OK };
    ch.pending = data.subarray(n);
    return { data: data.subarray(0, n), sw: 0x6100 | Math.min(ch.pending.length, 256) % 256 };
  }

  private getResponse(ch: Channel, cmd: DecodedCommand): ResponseApdu {
    if (cmd.p1 || cmd.p2) throw new CardStatus(SW.WRONG_P1P2);
    const pending = ch.pending;
    if (!pending) throw new CardStatus(SW.CONDITIONS);
    ch.pending = null;
    return this.answer(ch, cmd, pending);
  }

  private manageChannel(ch: Channel, cmd: DecodedCommand): ResponseApdu {
    if (cmd.p1 === 0x00) {
      if (ch.channel !== 0 || cmd.p2 !== 0) throw new CardStatus(SW.WRONG_P1P2);
      const free = this.channels.findIndex((c) => c === null);
      if (free < 0) throw new CardStatus(SW.CHANNEL_UNSUPPORTED);
      this.channels[free] = this.newChannel(free);
      return { data: Uint8Array.of(free), sw: SW.OK };
    }
    if (cmd.p1 === 0x80) {
      const target = cmd.p2 === 0 ? ch.channel : cmd.p2;
      const closing = target === 0 || target >= CHANNELS ? null : this.channels[target];
      if (!closing) throw new CardStatus(SW.WRONG_P1P2);
      closing.applet?.dropChain(closing);
      this.channels[target] = null;
      return { data: new Uint8Array(0), sw: SW.OK };
    }
    throw new CardStatus(SW.WRONG_P1P2);
  }

  // P2 (ISO/IEC 7816-4 clause 11.2.2): 00 first occurrence with the FCI, 0C the same without
  // response data; the profile has no other use for it (6A86, nothing selected).
  private select(ch: Channel, cmd: DecodedCommand): Uint8Array {
    if (cmd.p2 !== 0x00 && cmd.p2 !== 0x0c) throw new CardStatus(SW.WRONG_P1P2);
    const applet = this.applets.find((a) => hex(a.aid).startsWith(hex(cmd.data)) && cmd.data.length >= 5);
    if (!applet) throw new CardStatus(SW.NOT_FOUND);
    // The old state goes, and what it holds (a stream's keyed core context) is freed with it.
    ch.applet?.dropChain(ch);
    ch.applet = applet;
    ch.state = new Map();
    this.log?.(`channel ${ch.channel}: selected ${hex(applet.aid)}`);
    const fci = applet.select(ch);
    return cmd.p2 === 0x0c ? new Uint8Array(0) : fci;
  }
}

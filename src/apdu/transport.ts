// The APDU transport: stackable layers over a bytes-in/bytes-out channel (a
// PC/SC card, a scripted test double, a socket). Each layer does one job of
// ISO/IEC 7816-4 and is an ApduTransport itself, so stacks are composed, not
// configured (the apdu4j / GlobalPlatformPro idea).
import { InvalidInputError, LengthError } from '../core/errors.ts';
import { bytesArg, flagArg, optionsArg, shown, type OptionNames } from '../core/args.ts';
import {
  byteArg, commandArg, decodeResponse, encodeCommand, EXTENDED_MAX_NC, EXTENDED_MAX_NE, hex, joinParts, needsExtended, SHORT_MAX_NC, SHORT_MAX_NE,
  type CommandApdu, type ResponseApdu,
} from './apdu.ts';
import { ApduError, StatusWordError, statusWordHex, statusWordMeaning, type AnsweringCommand } from './errors.ts';

/** What carries the bytes: PcscCard satisfies it. */
export interface ByteChannel {
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
}

export interface ApduTransport {
  transmit(cmd: CommandApdu): Promise<ResponseApdu>;
  /** Largest command data field one APDU can carry on the wire below this layer. */
  readonly maxCommandData: number;
  /** Largest Ne one APDU can ask for. */
  readonly maxResponseData: number;
}

/**
 * CLA for logical channel `ch` (7816-4 clause 5.4.1), from a CLA written for
 * channel 0: channels 0-3 use the first interindustry form (b2-b1), 4-19 the
 * further form ('4X'-'7X'); proprietary (b8), chaining (b5) and secure
 * messaging indications are kept.
 */
export function claForChannel(cla: number, ch: number): number {
  byteArg(cla, 'CLA');
  if (!Number.isInteger(ch) || ch < 0 || ch > 19) throw new LengthError(`logical channel must be 0..19, got ${shown(ch)}`);
  const keep = cla & 0x90;
  if (ch <= 3) return keep | (cla & 0x0c) | ch;
  return keep | 0x40 | (cla & 0x0c ? 0x20 : 0) | (ch - 4);
}

/** The logical channel a CLA byte addresses. */
export function channelOfCla(cla: number): number {
  byteArg(cla, 'CLA');
  return cla & 0x40 ? (cla & 0x0f) + 4 : cla & 0x03;
}

const INS_NAMES: Readonly<Record<number, string>> = {
  0xa4: 'SELECT', 0x70: 'MANAGE CHANNEL', 0xc0: 'GET RESPONSE', 0x84: 'GET CHALLENGE', 0x22: 'MANAGE SECURITY ENVIRONMENT',
  0x2a: 'PERFORM SECURITY OPERATION', 0x47: 'GENERATE ASYMMETRIC KEY PAIR', 0xca: 'GET DATA', 0xcb: 'GET DATA',
  0xda: 'PUT DATA', 0xdb: 'PUT DATA', 0x88: 'INTERNAL AUTHENTICATE', 0x20: 'VERIFY', 0x24: 'CHANGE REFERENCE DATA',
  0x2c: 'RESET RETRY COUNTER', 0xb0: 'READ BINARY', 0xd6: 'UPDATE BINARY', 0xe4: 'DELETE',
};

export function commandName(cmd: Pick<CommandApdu, 'ins'>): string {
  if (typeof cmd !== 'object' || cmd === null) throw new InvalidInputError(`a command is an object with its INS, got ${shown(cmd)}`);
  byteArg(cmd.ins, 'INS');
  return INS_NAMES[cmd.ins] ?? `INS ${cmd.ins.toString(16).toUpperCase().padStart(2, '0')}`;
}

const GET_RESPONSE: AnsweringCommand = { ins: 0xc0, p1: 0, p2: 0, chained: false };

/** Throws InvalidInputError unless `value` has a transmit method: what a layer stacks on, or the channel below the wire. */
function carrierArg<T extends { transmit: unknown }>(value: T, name: string): T {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null || typeof value.transmit !== 'function') {
    throw new InvalidInputError(`${name} must be an object with a transmit method, got ${shown(value)}`);
  }
  return value;
}

/** A count option: absent keeps `absent`; otherwise an integer of at least `min`. */
function countArg(value: number | undefined, name: string, min: number, absent: number): number {
  if (value === undefined) return absent;
  if (!Number.isSafeInteger(value) || value < min) throw new InvalidInputError(`${name} must be an integer of at least ${min}, got ${shown(value)}`);
  return value;
}

/** The status word of `r` as an error of `cmd`, or of the GET RESPONSE that fetched `r`'s data (`r.from`). */
function refusal(cmd: CommandApdu, r: ResponseApdu, name = commandName(cmd)): StatusWordError {
  if (r.from) return new StatusWordError(r.sw, r.from, GET_RESPONSE);
  return new StatusWordError(r.sw, name, { ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, chained: (cmd.cla & 0x10) !== 0 });
}

/** The wire: encodes, transmits, decodes. Counts the APDUs it sends. */
export class RawTransport implements ApduTransport {
  readonly maxCommandData: number;
  readonly maxResponseData: number;
  /** APDUs sent so far (for batching checks and benchmarks). */
  sent = 0;

  readonly opts: { extended: boolean };

  constructor(private readonly channel: ByteChannel, opts: { extended: boolean }) {
    carrierArg(channel, 'the byte channel');
    this.opts = { extended: flagArg(optionsArg(opts, 'the wire options', WIRE_OPTIONS)?.extended, 'extended', false) };
    this.maxCommandData = this.opts.extended ? EXTENDED_MAX_NC : SHORT_MAX_NC;
    this.maxResponseData = this.opts.extended ? EXTENDED_MAX_NE : SHORT_MAX_NE;
  }

  async transmit(command: CommandApdu): Promise<ResponseApdu> {
    const cmd = commandArg(command);
    // Without extended length a large Ne is asked for as 256 and the rest comes by 61xx.
    const c = !this.opts.extended && (cmd.ne ?? 0) > SHORT_MAX_NE ? { ...cmd, ne: SHORT_MAX_NE } : cmd;
    const bytes = encodeCommand(c, { allowExtended: this.opts.extended, extended: this.opts.extended && needsExtended(c) });
    this.sent++;
    try {
      return decodeResponse(await this.channel.transmit(bytes));
    } finally {
      // The channel is done with the command once transmit() settled (PcscCard and the native bridge zeroize their own copies).
      if (cmd.secret) bytes.fill(0);
    }
  }
}

/** Passes everything through; layers implement send, which gets a command commandArg accepted. */
export abstract class Layer implements ApduTransport {
  constructor(protected readonly inner: ApduTransport) {
    carrierArg(inner, 'the transport below a layer');
  }
  get maxCommandData(): number {
    return this.inner.maxCommandData;
  }
  get maxResponseData(): number {
    return this.inner.maxResponseData;
  }
  async transmit(cmd: CommandApdu): Promise<ResponseApdu> {
    return this.send(commandArg(cmd));
  }
  protected abstract send(cmd: CommandApdu): Promise<ResponseApdu>;
}

/** Commands whose data is a secret whatever the caller says (PINs, reference data). */
const SECRET_INS = new Set([0x20, 0x24, 0x2c]);

/**
 * Writes one line per command and per response. The data of secret exchanges
 * (`cmd.secret`, VERIFY, CHANGE/RESET REFERENCE DATA) is shown as its length only.
 */
export class LoggingLayer extends Layer {
  constructor(inner: ApduTransport, private readonly log: (line: string) => void) {
    super(inner);
    if (typeof log !== 'function') throw new InvalidInputError(`the log must be a function taking a line, got ${shown(log)}`);
  }

  protected async send(cmd: CommandApdu): Promise<ResponseApdu> {
    const masked = cmd.secret === true || SECRET_INS.has(cmd.ins);
    const field = (d: Uint8Array | undefined) => (!d || d.length === 0 ? '' : masked ? ` <${d.length} bytes masked>` : ` ${hex(d)}`);
    const head = hex(Uint8Array.of(cmd.cla, cmd.ins, cmd.p1, cmd.p2));
    this.log(`> ${head}${field(cmd.data)}${cmd.ne ? ` Ne=${cmd.ne}` : ''}  (${commandName(cmd)})`);
    const r = await this.inner.transmit(cmd);
    this.log(`< ${field(r.data).trimStart()}${r.data.length ? ' ' : ''}${statusWordHex(r.sw)}` +
      `${r.sw === 0x9000 ? '' : `  (${statusWordMeaning(r.sw)})`}`);
    return r;
  }
}

const announcesMore = (sw: number): boolean => sw >> 8 === 0x61 || sw >> 8 === 0x9f;

/**
 * The most data a command may bring back: `cap` when its Ne asks for all the
 * card has (256 / 65536, Le 00 / 0000), or the command's `most` in its place
 * (it may be larger: a cipher's whole output); an exact Ne, which `most` can
 * only lower (a command re-sent after 6Cxx keeps its bound); 0 for no Ne.
 */
function bound(cmd: CommandApdu, cap: number): number {
  const ne = cmd.ne ?? 0;
  return ne === SHORT_MAX_NE || ne === EXTENDED_MAX_NE ? cmd.most ?? cap : Math.min(ne, cmd.most ?? Infinity);
}

/** GET RESPONSE answers in a row that announce more data and carry none before the exchange fails. */
const MAX_IDLE_ROUNDS = 3;

/**
 * Collects response data announced by 61xx (and 9Fxx, ETSI TS 102 221 for
 * UICCs) with GET RESPONSE, at most `maxRounds` times per command: a card
 * that keeps answering 61xx must not hold the host forever. A 6Cxx to a GET
 * RESPONSE repeats the GET RESPONSE with Le = xx (7816-4 clause 5.1.3): the
 * command itself already ran and must not run again. A response longer than
 * the command's Ne (none when Ne is absent) is refused as it arrives, so a
 * card that goes on answering cannot fill the host's memory.
 */
export class GetResponseLayer extends Layer {
  /**
   * `maxTotal`: the most data one response may bring when its Ne is the
   * maximum (Le 00 or 0000); `piece`: the most one APDU brings (the card's
   * response field, at most what this stack asks for).
   */
  private readonly maxRounds: number;
  private readonly maxTotal: number;
  private readonly piece: number;

  constructor(inner: ApduTransport, maxRounds?: number, maxTotal?: number, piece?: number) {
    super(inner);
    this.maxRounds = countArg(maxRounds, 'the GET RESPONSE rounds', 0, 64);
    this.maxTotal = countArg(maxTotal, 'the most response data', 1, EXTENDED_MAX_NE);
    this.piece = countArg(piece, 'the response data field', 1, inner.maxResponseData);
  }

  protected async send(cmd: CommandApdu): Promise<ResponseApdu> {
    // Ne as the caller means it: 256 / 65536 (Le 00 / 0000) for "as much as available", 0 or absent for no data (cases 1 and 3).
    const asked = cmd.ne ?? 0;
    const limit = bound(cmd, this.maxTotal);
    // A caller that knows how much may come allows the rounds that takes in the pieces the card sends.
    const piece = Math.max(1, Math.min(this.piece, this.inner.maxResponseData));
    const rounds = cmd.most === undefined ? this.maxRounds : Math.max(this.maxRounds, Math.ceil(cmd.most / piece) + 1);
    let r = await this.inner.transmit(cmd);
    const parts: Uint8Array[] = [];
    let total = 0;
    let fetched = false;
    const refuse = (what: string) => new ApduError(`${commandName(cmd)}: the card ${what}, beyond the ${limit} bytes Ne = ${asked} allows`);
    const take = () => {
      total += r.data.length;
      if (total > limit) throw refuse(`answered ${total} bytes or more`);
      parts.push(r.data);
    };
    const cla = cmd.cla & 0x40 ? 0x40 | (cmd.cla & 0x0f) : cmd.cla & 0x03;
    // A GET RESPONSE that brings no data yet announces more makes no progress: a card stuck that way
    // would otherwise hold the call for every round a large result allows (65,537 for 16 MiB).
    let idle = 0;
    try {
      for (let round = 0; ; round++) {
        const more = announcesMore(r.sw);
        if (!more && !(fetched && r.sw >> 8 === 0x6c)) break;
        // Its 61xx and 6Cxx alike: a GET RESPONSE answered without data made no progress.
        idle = fetched && r.data.length === 0 ? idle + 1 : 0;
        if (idle === MAX_IDLE_ROUNDS) throw new ApduError(`${commandName(cmd)}: the card announced more data ${idle} times in a row without sending any`);
        let ne: number;
        if (more) {
          take();
          if (total === limit) throw refuse(`announced more data after ${total} bytes`);
          // SW2 00 means "256 or more": an extended-length transport fetches as much as it can at once.
          ne = r.sw & 0xff || this.inner.maxResponseData;
        } else {
          ne = r.sw & 0xff || 256;
        }
        if (round === rounds) throw new ApduError(`${commandName(cmd)}: response still incomplete after ${rounds} GET RESPONSE rounds`);
        r = await this.inner.transmit({ cla, ins: 0xc0, p1: 0, p2: 0, ne, secret: cmd.secret });
        fetched = true;
      }
      take();
    } catch (e) {
      // Whatever ends the exchange early (data beyond Ne, the round limit, a lost card), the secret
      // data fetched so far goes to no one.
      if (cmd.secret) for (const p of [...parts, r.data]) p.fill(0);
      throw e;
    }
    if (!fetched) return r;
    // The command itself answered 61xx: a status word now is the GET RESPONSE's, never the command's result.
    return { data: joinParts(parts, cmd.secret), sw: r.sw, ...(r.sw !== 0x9000 ? { from: commandName(GET_RESPONSE) } : {}) };
  }
}

/**
 * Re-sends a command once with the Ne the card asked for in 6Cxx. It sits
 * above GetResponseLayer, which answers the 6Cxx of its own GET RESPONSEs, so
 * what reaches it is always about the command itself. The card's Le may only
 * lower what the command allows: a larger one is refused (the command's Ne
 * and `most` bound the answer, whatever the card asks for).
 */
export class LeCorrectionLayer extends Layer {
  protected async send(cmd: CommandApdu): Promise<ResponseApdu> {
    const r = await this.inner.transmit(cmd);
    if (r.sw >> 8 !== 0x6c) return r;
    const ne = r.sw & 0xff || 256;
    const allowed = bound(cmd, Infinity);
    if (ne > allowed) throw new ApduError(`${commandName(cmd)}: the card asked for Le ${ne}, more than the ${allowed} bytes the command allows`);
    return this.inner.transmit({ ...cmd, ne });
  }
}

/**
 * ISO command chaining (CLA bit b5, 0x10) for command data longer than one
 * APDU below can carry: every link but the last must answer 9000.
 */
export class ChainingLayer extends Layer {
  /**
   * `maxLink` caps each link's data, e.g. at the limit the card announced
   * (default: what the layer below accepts; the smaller of the two wins).
   */
  constructor(inner: ApduTransport, private readonly maxLink?: number) {
    super(inner);
    if (maxLink !== undefined && !(Number.isInteger(maxLink) && maxLink >= 1)) throw new LengthError(`a chaining link carries at least 1 byte, got ${shown(maxLink)}`);
  }

  override get maxCommandData(): number {
    return EXTENDED_MAX_NC;
  }

  protected async send(cmd: CommandApdu): Promise<ResponseApdu> {
    const data = cmd.data ?? new Uint8Array(0);
    const link = Math.min(this.maxLink ?? Infinity, this.inner.maxCommandData);
    if (data.length <= link) return this.inner.transmit(cmd);
    let off = 0;
    // Links normally answer nothing, but a streaming operation (PSO ENCIPHER)
    // may answer each one: keep that output, in order.
    const out: Uint8Array[] = [];
    let last: ResponseApdu;
    try {
      for (; data.length - off > link; off += link) {
        const linked = { ...cmd, cla: cmd.cla | 0x10, data: data.subarray(off, off + link) };
        const r = await this.inner.transmit(linked);
        out.push(r.data);
        if (r.sw !== 0x9000) throw refusal(linked, r, `${commandName(cmd)} (chained, link at offset ${off})`);
      }
      last = await this.inner.transmit({ ...cmd, data: data.subarray(off) });
    } catch (e) {
      // What earlier links answered (a secret stream's output so far) goes with the failed chain.
      if (cmd.secret) for (const d of out) d.fill(0);
      throw e;
    }
    return out.some((d) => d.length) ? { ...last, data: joinParts([...out, last.data], cmd.secret) } : last;
  }
}

/** Status words other than 9000 (and 62xx/63xx warnings, when allowed) become StatusWordError. */
export class StatusLayer extends Layer {
  private readonly allowWarnings: boolean;

  constructor(inner: ApduTransport, allowWarnings?: boolean) {
    super(inner);
    this.allowWarnings = flagArg(allowWarnings, 'allowWarnings', false);
  }

  protected async send(cmd: CommandApdu): Promise<ResponseApdu> {
    const r = await this.inner.transmit(cmd);
    const sw1 = r.sw >> 8;
    if (r.sw === 0x9000 || (this.allowWarnings && (sw1 === 0x62 || sw1 === 0x63) && !r.from)) return r;
    if (cmd.secret) r.data.fill(0);
    throw refusal(cmd, r);
  }
}

/** Sends every command on one logical channel, rewriting CLA accordingly. */
export class LogicalChannel extends Layer {
  private closed = false;

  private constructor(inner: ApduTransport, readonly channel: number) {
    super(inner);
  }

  /**
   * MANAGE CHANNEL open (the card picks the number). A number that is not a
   * logical channel (0, the basic channel, or above 19) is refused: nothing
   * is sent on it, and no close either (one of channel 0 would be refused,
   * and none can name a channel above 19).
   */
  static async open(inner: ApduTransport): Promise<LogicalChannel> {
    carrierArg(inner, 'the transport below a layer');
    const cmd = { cla: 0x00, ins: 0x70, p1: 0x00, p2: 0x00, ne: 1 };
    const r = await inner.transmit(cmd);
    if (r.sw !== 0x9000) throw refusal(cmd, r, 'MANAGE CHANNEL (open)');
    if (r.data.length !== 1) throw new ApduError(`MANAGE CHANNEL (open) returned ${r.data.length} bytes instead of the channel number`);
    const n = r.data[0]!;
    if (n === 0 || n > 19) throw new ApduError(`MANAGE CHANNEL (open) answered channel ${n}, which is not a logical channel (1..19)`);
    return new LogicalChannel(inner, n);
  }

  /** The basic channel 0 as a LogicalChannel (never closed). */
  static basic(inner: ApduTransport): LogicalChannel {
    return new LogicalChannel(inner, 0);
  }

  protected send(cmd: CommandApdu): Promise<ResponseApdu> {
    if (this.closed) return Promise.reject(new ApduError(`logical channel ${this.channel} is closed`));
    return this.inner.transmit({ ...cmd, cla: claForChannel(cmd.cla, this.channel) });
  }

  /** MANAGE CHANNEL close; idempotent. */
  async close(): Promise<void> {
    if (this.closed || this.channel === 0) return;
    this.closed = true;
    const cmd = { cla: 0x00, ins: 0x70, p1: 0x80, p2: this.channel };
    const r = await this.inner.transmit(cmd);
    if (r.sw !== 0x9000) throw refusal(cmd, r, 'MANAGE CHANNEL (close)');
  }
}

/** SELECT by DF name (AID), first or only occurrence, returning the FCI. */
export async function selectAid(t: ApduTransport, aid: Uint8Array): Promise<Uint8Array> {
  carrierArg(t, 'the transport');
  const name = bytesArg(aid, 'the AID');
  if (name.length < 5 || name.length > 16) throw new LengthError(`an AID is 5..16 bytes, got ${name.length}`);
  const cmd = { cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x00, data: name, ne: 256 };
  const r = await t.transmit(cmd);
  if (r.sw !== 0x9000) throw refusal(cmd, r, 'SELECT');
  return r.data;
}

export interface StackOptions {
  /** The card and reader accept extended-length APDUs (else long data is chained); false when left out. */
  extended: boolean;
  /** Receives one line per APDU and response, secret data masked. */
  log?: ((line: string) => void) | undefined;
  /** Throw StatusWordError for anything but 9000 (default true). */
  checkStatus?: boolean | undefined;
  /** Cap on GET RESPONSE rounds per command (default 64). */
  maxGetResponseRounds?: number | undefined;
  /** Most response data a command whose Ne is the maximum (256 or 65536: Le 00 / 0000) may collect (default 65536); any other Ne is its own cap. */
  maxResponseTotal?: number | undefined;
  /** Largest command data field the card accepts (its FCI says so): no APDU, chained link or not, carries more. */
  maxCommandData?: number | undefined;
  /** Largest response data field the card returns in one APDU (its FCI says so): the pieces GET RESPONSE rounds are counted in. */
  maxResponseData?: number | undefined;
}

const STACK_OPTIONS: OptionNames<StackOptions> = { extended: true, log: true, checkStatus: true, maxGetResponseRounds: true, maxResponseTotal: true, maxCommandData: true, maxResponseData: true };
const WIRE_OPTIONS = { extended: true } as const;

/** The usual stack: status → chaining → 6Cxx → 61xx/9Fxx → logging → wire. */
export function createTransport(channel: ByteChannel, options: StackOptions): { transport: ApduTransport; raw: RawTransport } {
  const opts: Partial<StackOptions> = optionsArg(options, 'the transport options', STACK_OPTIONS) ?? {};
  const raw = new RawTransport(channel, { extended: opts.extended! });
  let t: ApduTransport = raw;
  if (opts.log) t = new LoggingLayer(t, opts.log);
  t = new GetResponseLayer(t, opts.maxGetResponseRounds, opts.maxResponseTotal, opts.maxResponseData);
  t = new LeCorrectionLayer(t);
  t = new ChainingLayer(t, opts.maxCommandData);
  if (flagArg(opts.checkStatus, 'checkStatus', true)) t = new StatusLayer(t);
  return { transport: t, raw };
}


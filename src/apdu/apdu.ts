// ISO/IEC 7816-4 clause 5.1 command and response APDUs: the four cases, in
// short and extended length. Used by the host transport and, in reverse, by
// the virtual card.
import { concatBytes, secretBytes, toHex } from '../core/bytes.ts';
import { InvalidInputError, LengthError } from '../core/errors.ts';
import { bytesArg, optionsArg, shown } from '../core/args.ts';
import { ApduError } from './errors.ts';

export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command data (Nc = data.length); absent or empty for cases 1 and 2. */
  data?: Uint8Array | undefined;
  /** Expected response length Ne (0 or absent: none expected, cases 1 and 3). 256 / 65536 mean "as much as available". */
  ne?: number | undefined;
  /**
   * The most data the caller can take in all, when it knows (a cipher's
   * output for the message so far): with Ne 256 / 65536 ("as much as
   * available") it takes the place of the transport's own cap
   * (GetResponseLayer), with another Ne it can only lower it, and the Le a
   * card asks for in 6Cxx may not exceed it.
   */
  most?: number | undefined;
  /**
   * The data fields of this exchange are secret (PINs, keys, plaintext):
   * logging layers print their length only, and the copies the transport
   * makes of them (the encoded command, responses joined) are zeroized.
   */
  secret?: boolean | undefined;
}

export interface ResponseApdu {
  data: Uint8Array;
  /** SW1 << 8 | SW2 */
  sw: number;
  /** The command whose answer `sw` is, when not the one sent (a GET RESPONSE that fetched the data). */
  from?: string;
}

export const SHORT_MAX_NC = 255;
export const SHORT_MAX_NE = 256;
export const EXTENDED_MAX_NC = 65535;
export const EXTENDED_MAX_NE = 65536;

/** Throws InvalidInputError unless `x` is a byte, naming the field. */
export function byteArg(x: unknown, name: string): number {
  if (!Number.isInteger(x) || (x as number) < 0 || (x as number) > 255) throw new InvalidInputError(`${name} must be a byte (0..255), got ${shown(x)}`);
  return x as number;
}

/**
 * A caller's command as the transport may read it: a copy made of its fields,
 * each read once (a getter cannot answer the next layer differently), whose
 * header fields are bytes, whose Ne and `most` are counts, and whose data
 * (when given) is a plain view of the caller's bytes (bytesArg). Every layer
 * takes its command through this, so that a wrong one is refused with a
 * typed error before any layer reads a field of it.
 */
export function commandArg(cmd: unknown): CommandApdu {
  if (typeof cmd !== 'object' || cmd === null) throw new InvalidInputError(`a command APDU is an object { cla, ins, p1, p2, data?, ne? }, got ${shown(cmd)}`);
  const { cla, ins, p1, p2, data, ne, most, secret } = cmd as CommandApdu;
  const c: CommandApdu = { cla: byteArg(cla, 'CLA'), ins: byteArg(ins, 'INS'), p1: byteArg(p1, 'P1'), p2: byteArg(p2, 'P2') };
  if (ne !== undefined && ne !== null) {
    if (!Number.isInteger(ne) || ne < 0 || ne > EXTENDED_MAX_NE) throw new LengthError(`Ne must be 0..65536, got ${shown(ne)}`);
    c.ne = ne;
  }
  if (most !== undefined) {
    if (!(Number.isSafeInteger(most) && most >= 0)) throw new InvalidInputError(`most must be a byte count, got ${shown(most)}`);
    c.most = most;
  }
  if (secret !== undefined) {
    if (typeof secret !== 'boolean') throw new InvalidInputError(`secret must be true or false, got ${shown(secret)}`);
    c.secret = secret;
  }
  if (data !== undefined) c.data = bytesArg(data, 'command data');
  return c;
}

/** True when the command needs the extended form (Nc > 255 or Ne > 256). */
export function needsExtended(cmd: CommandApdu): boolean {
  return (cmd.data?.length ?? 0) > SHORT_MAX_NC || (cmd.ne ?? 0) > SHORT_MAX_NE;
}

const ENCODING_OPTIONS = { extended: true, allowExtended: true } as const;

/**
 * Encodes a command APDU. Short form unless a field needs the extended form
 * or `extended` forces it; a command that needs it throws LengthError when
 * `allowExtended` is false (the transport must chain it instead).
 */
export function encodeCommand(cmd: CommandApdu, options?: { extended?: boolean | undefined; allowExtended?: boolean | undefined }): Uint8Array {
  const c = commandArg(cmd);
  const opts = optionsArg(options, 'the encoding options', ENCODING_OPTIONS) ?? {};
  const data = c.data;
  const nc = data?.length ?? 0;
  const ne = c.ne ?? 0;
  if (nc > EXTENDED_MAX_NC) throw new LengthError(`command data must be at most 65535 bytes, got ${nc}`);
  const ext = opts.extended ?? needsExtended(c);
  if (ext && opts.allowExtended === false) {
    throw new LengthError(`command needs extended length (Nc ${nc}, Ne ${ne}) but the card or reader does not accept it`);
  }
  const head = [c.cla, c.ins, c.p1, c.p2];
  if (!ext) {
    if (ne > SHORT_MAX_NE || nc > SHORT_MAX_NC) throw new LengthError(`Nc ${nc} / Ne ${ne} do not fit the short form`);
    const r = secretBytes(4 + (nc > 0 ? 1 + nc : 0) + (ne > 0 ? 1 : 0));
    r.set(head);
    if (nc > 0) {
      r[4] = nc;
      r.set(data!, 5);
    }
    if (ne > 0) r[r.length - 1] = ne & 0xff; // 256 encodes as 00
    return r;
  }
  // Extended: Lc = 00 hi lo; Le = hi lo after Lc, or 00 hi lo without it. 65536 encodes as 00 00.
  const le = ne === EXTENDED_MAX_NE ? 0 : ne;
  const len = 4 + (nc > 0 ? 3 + nc : 0) + (ne > 0 ? (nc > 0 ? 2 : 3) : 0);
  const r = secretBytes(len);
  r.set(head);
  let o = 4;
  if (nc > 0) {
    r[o++] = 0;
    r[o++] = nc >> 8;
    r[o++] = nc & 0xff;
    r.set(data!, o);
    o += nc;
  } else if (ne > 0) {
    r[o++] = 0;
  }
  if (ne > 0) {
    r[o++] = le >> 8;
    r[o++] = le & 0xff;
  }
  return r;
}

export interface DecodedCommand extends CommandApdu {
  data: Uint8Array;
  ne: number;
  /** 1..4 as in ISO/IEC 7816-3 clause 12.1.3 */
  case: 1 | 2 | 3 | 4;
  extended: boolean;
}

/** Parses a command APDU (the card side); ApduError for anything malformed. */
export function decodeCommand(apdu: Uint8Array): DecodedCommand {
  const b = bytesArg(apdu, 'command APDU');
  if (b.length < 4) throw new ApduError(`command APDU of ${b.length} bytes is shorter than its 4-byte header`);
  const base = { cla: b[0]!, ins: b[1]!, p1: b[2]!, p2: b[3]! };
  const n = b.length - 4;
  const empty = new Uint8Array(0);
  if (n === 0) return { ...base, data: empty, ne: 0, case: 1, extended: false };
  const b4 = b[4]!;
  if (n === 1) return { ...base, data: empty, ne: b4 === 0 ? 256 : b4, case: 2, extended: false };
  if (b4 !== 0) {
    // short Lc
    if (n === 1 + b4) return { ...base, data: b.slice(5), ne: 0, case: 3, extended: false };
    if (n === 2 + b4) {
      const le = b[b.length - 1]!;
      return { ...base, data: b.slice(5, 5 + b4), ne: le === 0 ? 256 : le, case: 4, extended: false };
    }
    throw new ApduError(`command APDU length ${b.length} does not match Lc ${b4}`);
  }
  // b4 == 0 and more bytes follow: extended
  if (n === 3) {
    const le = (b[5]! << 8) | b[6]!;
    return { ...base, data: empty, ne: le === 0 ? 65536 : le, case: 2, extended: true };
  }
  const nc = (b[5]! << 8) | b[6]!;
  if (nc === 0 || n < 3 + nc) throw new ApduError(`extended command APDU length ${b.length} does not match Lc ${nc}`);
  if (n === 3 + nc) return { ...base, data: b.slice(7), ne: 0, case: 3, extended: true };
  if (n === 5 + nc) {
    const le = (b[b.length - 2]! << 8) | b[b.length - 1]!;
    return { ...base, data: b.slice(7, 7 + nc), ne: le === 0 ? 65536 : le, case: 4, extended: true };
  }
  throw new ApduError(`extended command APDU length ${b.length} does not match Lc ${nc}`);
}

/** Splits a response into data and SW1 SW2; ApduError when it has no status word. */
export function decodeResponse(apdu: Uint8Array): ResponseApdu {
  const b = bytesArg(apdu, 'response APDU');
  if (b.length < 2) throw new ApduError(`response APDU of ${b.length} bytes has no status word`);
  return { data: b.subarray(0, b.length - 2), sw: (b[b.length - 2]! << 8) | b[b.length - 1]! };
}

export function encodeResponse(r: ResponseApdu): Uint8Array {
  if (typeof r !== 'object' || r === null) throw new InvalidInputError(`a response APDU is an object { data, sw }, got ${shown(r)}`);
  const data = bytesArg(r.data, 'response data');
  if (!Number.isInteger(r.sw) || r.sw < 0 || r.sw > 0xffff) throw new InvalidInputError(`SW1 SW2 must be 0..0xFFFF, got ${shown(r.sw)}`);
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out[data.length] = r.sw >> 8;
  out[data.length + 1] = r.sw & 0xff;
  return out;
}

/**
 * Response data joined (one part is returned as it is); the parts of a
 * `secret` exchange are joined outside the JS heap and zeroized once copied.
 */
export function joinParts(parts: readonly Uint8Array[], secret: boolean | undefined): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = concatBytes(parts, secret ? secretBytes : undefined);
  if (secret) for (const p of parts) p.fill(0);
  return out;
}

export const hex = (b: Uint8Array): string => toHex(bytesArg(b, 'bytes')).toUpperCase();

/** Hex to bytes. The text may be key material (a card's key store): errors give its length and a position, never its content. */
export function fromHex(s: string): Uint8Array {
  if (typeof s !== 'string') throw new InvalidInputError(`hex text is a string, got ${shown(s)}`);
  const clean = s.replace(/\s+/g, '');
  const bad = clean.search(/[^0-9a-fA-F]/);
  if (bad >= 0) throw new InvalidInputError(`not a hex string: character ${bad} of ${clean.length} is not a hex digit`);
  if (clean.length % 2) throw new InvalidInputError(`not a hex string: odd number of digits (${clean.length})`);
  return Uint8Array.from({ length: clean.length / 2 }, (_, i) => parseInt(clean.slice(2 * i, 2 * i + 2), 16));
}

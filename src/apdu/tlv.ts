// BER-TLV (ISO/IEC 7816-4 clause 5.2) for the data fields of the senv card
// profile: tags of one or two bytes, definite lengths up to 2^24 - 1 (the 83
// form, so an AEAD's associated data may pass 64 KiB; the data field then
// travels chained).
import { ApduError } from './errors.ts';
import { LengthError } from '../core/errors.ts';
import { secretBytes } from '../core/bytes.ts';

/** Largest value the length forms the profile uses (81, 82, 83) can state. */
const TLV_MAX_LENGTH = 0xffffff;

export interface Tlv {
  tag: number;
  value: Uint8Array;
}

export function encodeTlv(tag: number, value: Uint8Array): Uint8Array {
  return tlvs([tag, value]);
}

/**
 * Written straight into one array, outside the JS heap (secretBytes): a value
 * may be key material, and no intermediate copy of it may stay behind.
 */
export function tlvs(...items: [number, Uint8Array | number[]][]): Uint8Array {
  const heads = items.map(([tag, v]) => head(tag, v.length));
  const out = secretBytes(items.reduce((n, [, v], i) => n + heads[i]!.length + v.length, 0));
  let o = 0;
  items.forEach(([, v], i) => {
    out.set(heads[i]!, o);
    o += heads[i]!.length;
    out.set(v, o);
    o += v.length;
  });
  return out;
}

/** The tag and length octets of a TLV whose value has `n` bytes. */
function head(tag: number, n: number): number[] {
  // A programming error, but one that would put another tag on the wire.
  if (!Number.isInteger(tag) || tag < 1 || tag > 0xffff) throw new RangeError(`a TLV tag of the profile has one or two bytes, got ${tag}`);
  const t = tag > 0xff ? [tag >> 8, tag & 0xff] : [tag];
  // A length that does not fit would be written modulo its form and the receiver would read part of the value.
  if (n > TLV_MAX_LENGTH) throw new LengthError(`a TLV value is at most ${TLV_MAX_LENGTH} bytes, got ${n}`);
  const l = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return [...t, ...l];
}

/**
 * Parses a sequence of TLVs, skipping the 00 and FF bytes 7816-4 allows
 * between objects; ApduError when a length runs past the end, or for a tag
 * of more than two bytes, which the profile never uses and which would
 * otherwise be read as a two-byte tag followed by its own third byte.
 * (Second bytes below 1F, as in DF01, are kept: 7816-4 and EMV use them.)
 */
export function decodeTlvs(b: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let o = 0;
  while (o < b.length) {
    let tag = b[o++]!;
    if (tag === 0x00 || tag === 0xff) continue;
    if ((tag & 0x1f) === 0x1f) {
      if (o >= b.length) throw new ApduError('truncated TLV tag');
      const second = b[o++]!;
      if (second & 0x80) throw new ApduError(`TLV tag ${tag.toString(16)}${second.toString(16)}... of more than two bytes`);
      tag = (tag << 8) | second;
    }
    if (o >= b.length) throw new ApduError('truncated TLV length');
    let len = b[o++]!;
    if (len >= 0x81 && len <= 0x83) {
      const k = len - 0x80;
      if (o + k > b.length) throw new ApduError('truncated TLV length');
      len = 0;
      for (let i = 0; i < k; i++) len = len * 256 + b[o + i]!;
      o += k;
    } else if (len >= 0x80) {
      // 80 is BER's indefinite form, which 7816-4 data objects never use.
      throw new ApduError(`unsupported TLV length form 0x${len.toString(16)}`);
    }
    if (o + len > b.length) throw new ApduError(`TLV ${tag.toString(16)} of length ${len} runs past the data`);
    out.push({ tag, value: b.subarray(o, o + len) });
    o += len;
  }
  return out;
}

/** The value of the first TLV with `tag`, or undefined. */
export function findTlv(list: readonly Tlv[], tag: number): Uint8Array | undefined {
  return list.find((t) => t.tag === tag)?.value;
}

export const u16 = (x: number): number[] => [(x >> 8) & 0xff, x & 0xff];
export const u32 = (x: number): number[] => [(x >>> 24) & 0xff, (x >> 16) & 0xff, (x >> 8) & 0xff, x & 0xff];

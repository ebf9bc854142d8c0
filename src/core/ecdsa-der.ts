// X9.62 ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } in DER, and
// the strict parser that accepts nothing else: no BER length forms, no
// negative or zero-padded integers, no trailing bytes.

import type { Bytes } from './bytes.ts';

function derInteger(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const body = v.subarray(i);
  const pad = body[0]! & 0x80 ? 1 : 0;
  const out = new Uint8Array(2 + pad + body.length);
  out[0] = 0x02;
  out[1] = pad + body.length;
  out.set(body, 2 + pad);
  return out;
}

/** DER-encodes a raw r || s signature (two big-endian halves of equal length). */
export function rawToDer(raw: Uint8Array): Bytes {
  const half = raw.length / 2;
  const r = derInteger(raw.subarray(0, half));
  const s = derInteger(raw.subarray(half));
  const len = r.length + s.length;
  const head = len < 0x80 ? [0x30, len] : [0x30, 0x81, len];
  const out = new Uint8Array(head.length + len);
  out.set(head);
  out.set(r, head.length);
  out.set(s, head.length + r.length);
  return out;
}

/**
 * Parses a DER signature into raw r || s with `scalarLen`-byte halves, or
 * returns undefined when the encoding is not the one DER allows or an
 * integer does not fit in scalarLen bytes.
 */
export function derToRaw(der: Uint8Array, scalarLen: number): Uint8Array | undefined {
  if (der.length < 2 || der[0] !== 0x30) return undefined;
  let pos = 2;
  let len = der[1]!;
  if (len === 0x81) {
    len = der[2] ?? 0;
    if (len < 0x80) return undefined; // the short form was required
    pos = 3;
  } else if (len >= 0x80) {
    return undefined;
  }
  if (pos + len !== der.length) return undefined;
  const out = new Uint8Array(2 * scalarLen);
  for (let k = 0; k < 2; k++) {
    if (der[pos] !== 0x02) return undefined;
    const n = der[pos + 1] ?? 0x80;
    if (n === 0 || n >= 0x80) return undefined;
    const start = pos + 2;
    const end = start + n;
    if (end > der.length) return undefined;
    const first = der[start]!;
    if (first & 0x80) return undefined; // negative
    if (first === 0 && n > 1 && !(der[start + 1]! & 0x80)) return undefined; // needless leading zero
    const value = first === 0 && n > 1 ? der.subarray(start + 1, end) : der.subarray(start, end);
    if (value.length > scalarLen) return undefined;
    out.set(value, (k + 1) * scalarLen - value.length);
    pos = end;
  }
  return pos === der.length ? out : undefined;
}

// Serialized forms of attribute values: base64 for bytes (RFC 4648, strict)
// and oneM2M timestamps (ISO 8601 basic format, 'YYYYMMDDTHHMMSS,ffffff', UTC).
import { secretBytes } from '../core/bytes.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ASCII = new TextEncoder().encode(ALPHABET);
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) DECODE[ALPHABET.charCodeAt(i)] = i;
const text = new TextDecoder();

// A key's text (keyData, a key in the data directory, a master key file) is encoded and decoded by
// arithmetic on each character, with no table indexed by it and no branch on it: which line of a
// table a key's text reads shows in the cache (Sieck et al. 2021 recovered keys from PEM decoding
// so; BoringSSL and libsodium decode this way). It takes about twice the table's time, and other
// values, messages included, reached senv as text a JSON parser read by table already: they keep
// the table.
/** -1 where c >= lo, else 0 (c and lo below 2^31). */
const atLeast = (c: number, lo: number) => (lo - 1 - c) >> 31;
/** -1 where c <= hi, else 0. */
const atMost = (c: number, hi: number) => (c - hi - 1) >> 31;

/** A base64 character's value (0 to 63), -1 for any other character. */
function secretCode(c: number): number {
  const upper = atLeast(c, 65) & atMost(c, 90), lower = atLeast(c, 97) & atMost(c, 122), digit = atLeast(c, 48) & atMost(c, 57);
  const plus = atLeast(c, 43) & atMost(c, 43), slash = atLeast(c, 47) & atMost(c, 47);
  return (upper & (c - 65)) | (lower & (c - 71)) | (digit & (c + 4)) | (plus & 62) | (slash & 63) | ~(upper | lower | digit | plus | slash);
}

/** The base64 character of a value from 0 to 63. */
function secretChar(v: number): number {
  return v + 65 + (atLeast(v, 26) & 6) - (atLeast(v, 52) & 75) - (atLeast(v, 62) & 15) + (atLeast(v, 63) & 3);
}

/** A hex digit's value (either case), -1 for any other character: by arithmetic, as secretCode. */
export function hexValue(c: number): number {
  const digit = atLeast(c, 48) & atMost(c, 57);
  const l = c | 0x20;
  const letter = atLeast(l, 97) & atMost(l, 102);
  return (digit & (c - 48)) | (letter & (l - 87)) | ~(digit | letter);
}

/** The upper-case hex digit of a value from 0 to 15, by arithmetic as secretChar. */
const hexChar = (v: number) => 48 + v + (atLeast(v, 10) & 7);

/** A key's bytes as upper-case hex text (hexChar); the bytes behind the string are zeroized. */
export function keyToHex(bytes: Uint8Array): string {
  const out = new Uint8Array(2 * bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    out[2 * i] = hexChar(bytes[i]! >> 4);
    out[2 * i + 1] = hexChar(bytes[i]! & 15);
  }
  try {
    return text.decode(out);
  } finally {
    out.fill(0);
  }
}

/**
 * Hex text (either case, no spaces) of a key: its bytes outside the JS heap
 * (secretBytes), or undefined for an odd count or a character that is no hex
 * digit, found after every character was read the same way.
 */
export function keyFromHex(s: string): Uint8Array | undefined {
  if (s.length % 2) return undefined;
  const out = secretBytes(s.length / 2);
  let bad = 0;
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(s.charCodeAt(2 * i)), lo = hexValue(s.charCodeAt(2 * i + 1));
    bad |= hi | lo;
    out[i] = (hi << 4) | lo;
  }
  if (bad >= 0) return out;
  out.fill(0);
  return undefined;
}

// One function each way, the choice made inside it: a function chosen per call and passed on
// would leave the loops below calling one they cannot inline (2-3 times slower, measured).
const charOf = (v: number, key: boolean) => (key ? secretChar(v) : ASCII[v]!);

/**
 * The characters go into a byte array decoded once: appending them to a
 * string slowed to 20-30 MB/s from 1 MiB up (ropes); bench/mcs.ts measures
 * this against Node's Buffer. The array holds a secret's encoding and is
 * zeroized (the string cannot be). A `key`'s text is made as secretCode says.
 */
export function toBase64(bytes: Uint8Array, key = false): string {
  const n = bytes.length;
  const out = new Uint8Array(Math.ceil(n / 3) * 4);
  let i = 0, o = 0;
  for (; i + 2 < n; i += 3, o += 4) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o] = charOf(v >> 18, key);
    out[o + 1] = charOf((v >> 12) & 63, key);
    out[o + 2] = charOf((v >> 6) & 63, key);
    out[o + 3] = charOf(v & 63, key);
  }
  if (i < n) {
    const v = (bytes[i]! << 16) | (i + 1 < n ? bytes[i + 1]! << 8 : 0);
    out[o] = charOf(v >> 18, key);
    out[o + 1] = charOf((v >> 12) & 63, key);
    out[o + 2] = i + 1 < n ? charOf((v >> 6) & 63, key) : 61;
    out[o + 3] = 61;
  }
  try {
    return text.decode(out);
  } finally {
    out.fill(0);
  }
}

/**
 * The byte length base64 text of this length and padding decodes to, read
 * without decoding it (whether the text is valid is for fromBase64 to tell):
 * a value can be refused for its size before any of it is decoded.
 */
export function base64Length(s: string | Uint8Array): number {
  return Math.floor(s.length / 4) * 3 - padding(s);
}

function padding(s: string | Uint8Array): number {
  const n = s.length;
  return n >= 2 && charAt(s, n - 2) === 61 && charAt(s, n - 1) === 61 ? 2 : n >= 1 && charAt(s, n - 1) === 61 ? 1 : 0;
}

/**
 * Strict decoding: padded, canonical (unused bits zero), no whitespace.
 * Returns undefined when invalid. The text may be given as ASCII bytes (a key
 * file's), which, unlike a string, its reader can zeroize. A 'secret' value
 * is decoded into memory outside the JS heap (secretBytes); a key's text
 * goes to keyFromBase64.
 */
export function fromBase64(s: string | Uint8Array, use: 'public' | 'secret' = 'public'): Uint8Array | undefined {
  if (s.length % 4 !== 0) return undefined;
  const pad = padding(s);
  const out = use === 'secret' ? secretBytes(base64Length(s)) : new Uint8Array(base64Length(s));
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const last = i + 4 === s.length;
    const c0 = code(s, i), c1 = code(s, i + 1);
    const c2 = last && pad === 2 ? 0 : code(s, i + 2);
    const c3 = last && pad >= 1 ? 0 : code(s, i + 3);
    if ((c0 | c1 | c2 | c3) < 0 || (last && ((pad === 2 && (c1 & 15)) || (pad === 1 && (c2 & 3))))) {
      // The text may be a secret: what was decoded before the bad group must not stay behind.
      out.fill(0, 0, o);
      return undefined;
    }
    const n = (c0 << 18) | (c1 << 12) | (c2 << 6) | c3;
    out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

/**
 * A key's text, by fromBase64's rules, into memory outside the JS heap: each
 * character read by secretCode, and no branch on what was read (a text found
 * invalid is refused once all of it was read). Its own loop: with secretCode
 * in fromBase64's, V8 no longer inlined the table's (a third slower).
 */
export function keyFromBase64(s: string | Uint8Array): Uint8Array | undefined {
  if (s.length % 4 !== 0) return undefined;
  const pad = padding(s);
  const out = secretBytes(base64Length(s));
  let bad = 0, o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const last = i + 4 === s.length;
    const c0 = secretCode(charAt(s, i)), c1 = secretCode(charAt(s, i + 1));
    const c2 = last && pad === 2 ? 0 : secretCode(charAt(s, i + 2));
    const c3 = last && pad >= 1 ? 0 : secretCode(charAt(s, i + 3));
    // Negative for a character that is none of base64's, or a set bit a padded group leaves unused.
    bad |= c0 | c1 | c2 | c3 | -(last ? (pad === 2 ? c1 & 15 : pad === 1 ? c2 & 3 : 0) : 0);
    const n = (c0 << 18) | (c1 << 12) | (c2 << 6) | c3;
    out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  if (bad >= 0) return out;
  out.fill(0);
  return undefined;
}

function code(s: string | Uint8Array, i: number): number {
  const c = charAt(s, i);
  return c < 128 ? DECODE[c]! : -1;
}

function charAt(s: string | Uint8Array, i: number): number {
  return typeof s === 'string' ? s.charCodeAt(i) : s[i]!;
}

const TS = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:,(\d{1,6}))?Z?$/;

/** Milliseconds since the epoch, or undefined for anything but a valid oneM2M timestamp. */
export function parseTimestamp(s: string): number | undefined {
  const m = TS.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const frac = m[7] ? Number(m[7].padEnd(6, '0')) / 1000 : 0;
  // Not Date.UTC(y, ...): it reads years 0 to 99 as 1900 to 1999.
  const back = new Date(Date.UTC(2000, 0, 1, h, mi, se));
  back.setUTCFullYear(y, mo - 1, d);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) return undefined;
  return back.getTime() + Math.floor(frac);
}

// Many responses in one millisecond carry the same lastModifiedTime, and a
// representation formats two times in turn (creationTime, then
// lastModifiedTime): the last two are kept, since one would miss every time.
let lastMs = NaN;
let lastText = '';
let otherMs = NaN;
let otherText = '';

export function formatTimestamp(ms: number): string {
  if (ms === lastMs) return lastText;
  if (ms === otherMs) return otherText;
  otherMs = lastMs;
  otherText = lastText;
  lastMs = ms;
  return (lastText = format(ms));
}

function format(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())},${p(d.getUTCMilliseconds(), 3)}000`;
}

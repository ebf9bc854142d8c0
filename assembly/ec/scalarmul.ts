// Scalar multiplication. Multiples of the generator use a per-curve table of
// affine points, built on first use: TABLE[w][j - 1] = j * 32^w * G for
// j = 1..16. A secret scalar is recoded into signed 5-bit digits in [-16, 16]
// (Booth recoding), so k*G is one mixed addition per digit and no doubling
// at all; each addition reads every entry of its row, keeps the wanted one
// with masks and negates it by masks too. Verification, on public data only,
// runs Shamir's trick over wNAF digits (width 7 for G, 5 for the public key)
// in Jacobian coordinates.
import { fmul, fsqr, fsub } from './fields.generated';
import { feBytes, feCopy, feInvVT, feToMont, feFromMont, feSelect, feSetZero, FE_BYTES, MAX_LIMBS } from './field';
import { fieldP, curveGx, curveGy, curveOne, orderBits } from './curve';
import { pointAdd, pointAddAffine, pointSetIdentity, POINT_BYTES } from './point';
import { jacDouble, jacAdd, jacAddAffine, setInfinity } from './jacobian';

const ROW: u32 = 16;
// Table pointers per curve, 0 until built.
const TABLES: usize = memory.data(3 * sizeof<usize>());

// Signed 5-bit windows covering orderBits + 1 bits (the recoding needs a
// zero top bit): 52, 77 and 105.
@inline function windows(c: u32): u32 {
  return (orderBits(c) + 5) / 5;
}

function buildTable(c: u32): usize {
  const f = fieldP(c), n = feBytes(f), pb = n * 3;
  const count = <usize>(windows(c) * ROW);
  const tableBytes = count * 2 * n;
  // Projective points first, then one batched inversion (Montgomery's trick)
  // turns all of them affine: a single field inversion for the whole table,
  // variable time because the table is public. The scratch lies behind the
  // table in the same block, given back by shrinking it at the end: one
  // allocation, so a trap for want of memory leaves no block behind.
  const table = heap.alloc(tableBytes + count * pb + count * n + pb);
  const proj = table + tableBytes;
  const prefix = proj + count * pb;
  const base = prefix + count * n;
  feCopy(f, base, curveGx(c));
  feCopy(f, base + n, curveGy(c));
  feCopy(f, base + 2 * n, curveOne(c));
  for (let w: usize = 0; w < <usize>windows(c); w++) {
    const row = proj + w * ROW * pb;
    memory.copy(row, base, pb);
    for (let j: usize = 1; j < <usize>ROW; j++) pointAdd(c, row + j * pb, row + (j - 1) * pb, base);
    const last = row + <usize>(ROW - 1) * pb;
    pointAdd(c, base, last, last); // 32 * base
  }
  feCopy(f, prefix, proj + 2 * n);
  for (let i: usize = 1; i < count; i++) fmul(f, prefix + i * n, prefix + (i - 1) * n, proj + i * pb + 2 * n);
  const inv = base; // reuse: the running inverse of prefix[i]
  feFromMont(f, inv, prefix + (count - 1) * n);
  feInvVT(f, inv, inv);
  feToMont(f, inv, inv);
  const zi = base + n;
  for (let i = <isize>count - 1; i >= 0; i--) {
    const pi = proj + <usize>i * pb;
    if (i > 0) fmul(f, zi, inv, prefix + <usize>(i - 1) * n);
    else feCopy(f, zi, inv);
    if (i > 0) fmul(f, inv, inv, pi + 2 * n);
    const t = table + <usize>i * 2 * n;
    fmul(f, t, pi, zi);
    fmul(f, t + n, pi + n, zi);
  }
  return heap.realloc(table, tableBytes); // shrinks in place
}

export function baseTable(c: u32): usize {
  const slot = TABLES + (<usize>c) * sizeof<usize>();
  let t = load<usize>(slot);
  if (t == 0) {
    t = buildTable(c);
    store<usize>(slot, t);
  }
  return t;
}

const ENTRY: usize = memory.data(2 * <i32>FE_BYTES, 16);
const NEG_Y: usize = memory.data(<i32>FE_BYTES, 16);
const SUM: usize = memory.data(<i32>POINT_BYTES, 16);
const MASKS: usize = memory.data(16 * <i32>ROW, 16); // one v128 (two u64 lanes) per entry
const SCALAR: usize = memory.data(<i32>FE_BYTES + 8, 16); // k with zero words above it

// ENTRY = row[d - 1], or zeros for d = 0, reading every entry of the row:
// the memory access pattern does not depend on d. Entries are 2n bytes, a
// multiple of 8; the SIMD build takes 16 bytes per step.
function selectEntry(row: usize, d: u32, bytes: usize): void {
  for (let j: u32 = 1; j <= ROW; j++) {
    const mask = (<u64>(j ^ d) - 1) >> 32; // low 32 bits all ones when j == d
    const m = mask | (mask << 32);
    store<u64>(MASKS + (<usize>(j - 1) << 4), m);
    store<u64>(MASKS + (<usize>(j - 1) << 4), m, 8);
  }
  let off: usize = 0;
  if (ASC_FEATURE_SIMD) {
    for (; off + 16 <= bytes; off += 16) {
      let acc = i64x2.splat(0);
      for (let j: usize = 0; j < <usize>ROW; j++) {
        acc = v128.or(acc, v128.and(v128.load(row + j * bytes + off), v128.load(MASKS + (j << 4))));
      }
      v128.store(ENTRY + off, acc);
    }
  }
  for (; off < bytes; off += 8) {
    let acc: u64 = 0;
    for (let j: usize = 0; j < <usize>ROW; j++) acc |= load<u64>(row + j * bytes + off) & load<u64>(MASKS + (j << 4));
    store<u64>(ENTRY + off, acc);
  }
}

// The 6-bit window of SCALAR ending just below bit 5w + 5 (bit -1 is 0).
@inline function window6(w: u32): u32 {
  if (w == 0) return (load<u32>(SCALAR) << 1) & 63;
  const bit = 5 * w - 1;
  return <u32>(load<u64>(SCALAR + (<usize>(bit >> 5) << 2)) >>> (bit & 31)) & 63;
}

// o = k*G for a plain scalar k < n; constant time in k.
export function mulBaseCT(c: u32, o: usize, k: usize): void {
  const f = fieldP(c), n = feBytes(f);
  const table = baseTable(c);
  memory.fill(SCALAR, 0, FE_BYTES + 8);
  memory.copy(SCALAR, k, n);
  pointSetIdentity(c, o);
  for (let w: u32 = 0, nw = windows(c); w < nw; w++) {
    // Booth recoding: a 6-bit window v stands for the digit
    // (v >> 1) + (v & 1) - 32 * (v >> 5), i.e. sign and magnitude 0..16.
    const v = window6(w);
    const neg = 0 - (v >> 5); // all ones for a negative digit
    let d = (((63 - v) & neg) | (v & ~neg));
    d = (d >> 1) + (d & 1);
    selectEntry(table + <usize>(w * ROW) * 2 * n, d, 2 * n);
    feSetZero(f, NEG_Y);
    fsub(f, NEG_Y, NEG_Y, ENTRY + n);
    feSelect(f, ENTRY + n, NEG_Y, ENTRY + n, neg);
    pointAddAffine(c, SUM, o, ENTRY);
    // Digit 0 adds nothing: keep o (the entry is all zeros and the sum is discarded).
    const keep = <u32>((<u64>d - 1) >> 32);
    feSelect(f, o, o, SUM, keep);
    feSelect(f, o + n, o + n, SUM + n, keep);
    feSelect(f, o + 2 * n, o + 2 * n, SUM + 2 * n, keep);
  }
  memory.fill(SCALAR, 0, FE_BYTES + 8);
  memory.fill(ENTRY, 0, 2 * n);
  memory.fill(NEG_Y, 0, n);
  memory.fill(SUM, 0, 3 * n);
  memory.fill(MASKS, 0, 16 * ROW);
}

// Width-w non-adjacent form of a plain public scalar into `out` (one i8 per
// bit, least significant first): digits odd in (-2^(w-1), 2^(w-1)) or 0.
// Returns the number of digits.
const NAF_K: usize = memory.data(4 * (<i32>MAX_LIMBS + 1), 16);

function wnaf(c: u32, k: usize, width: u32, out: usize): u32 {
  const words = feBytes(fieldP(c)) >> 2;
  const full: i32 = 1 << width, half: i32 = full >> 1;
  memory.copy(NAF_K, k, words << 2);
  store<u32>(NAF_K + (words << 2), 0);
  let len: u32 = 0;
  for (;;) {
    let nonzero: u32 = 0;
    for (let i: usize = 0; i <= words; i++) nonzero |= load<u32>(NAF_K + (i << 2));
    if (!nonzero) break;
    let d: i32 = 0;
    const low = load<u32>(NAF_K);
    if (low & 1) {
      d = <i32>low & (full - 1);
      if (d >= half) d -= full;
      // k -= d, with the borrow or carry running up the limbs.
      let carry: i64 = -<i64>d;
      for (let i: usize = 0; i <= words && carry != 0; i++) {
        const v = <i64>load<u32>(NAF_K + (i << 2)) + carry;
        store<u32>(NAF_K + (i << 2), <u32>v);
        carry = v >> 32;
      }
    }
    store<i8>(out + len++, <i8>d);
    // k >>= 1
    for (let i: usize = 0; i <= words; i++) {
      const hi = i < words ? load<u32>(NAF_K + ((i + 1) << 2)) : 0;
      store<u32>(NAF_K + (i << 2), (load<u32>(NAF_K + (i << 2)) >>> 1) | (hi << 31));
    }
  }
  return len;
}

// Affine odd multiples P, 3P, ..., (2 count - 1)P of an affine-valued
// Jacobian point p: computed in Jacobian coordinates, then made affine with
// one variable-time inversion (Montgomery's trick), so that every wNAF
// addition is a mixed one.
const MAX_ODD: usize = 32;
const ODD: usize = memory.data(<i32>MAX_ODD * <i32>POINT_BYTES, 16);
const PREFIX: usize = memory.data(<i32>MAX_ODD * <i32>FE_BYTES, 16);
const INV: usize = memory.data(2 * <i32>FE_BYTES, 16);

function oddMultiples(c: u32, p: usize, count: usize, out: usize): void {
  const f = fieldP(c), n = feBytes(f), pb = n * 3;
  const two = ODD + (count - 1) * pb; // 2P, overwritten by the last multiple
  memory.copy(ODD, p, pb);
  jacDouble(c, two, p);
  for (let i: usize = 1; i < count; i++) jacAdd(c, ODD + i * pb, ODD + (i - 1) * pb, two);
  // p has order n > 2 count, so no multiple is the identity and every Z is invertible.
  feCopy(f, PREFIX, ODD + 2 * n);
  for (let i: usize = 1; i < count; i++) fmul(f, PREFIX + i * n, PREFIX + (i - 1) * n, ODD + i * pb + 2 * n);
  const inv = INV, zi = INV + n;
  feFromMont(f, inv, PREFIX + (count - 1) * n);
  feInvVT(f, inv, inv);
  feToMont(f, inv, inv);
  for (let i = <isize>count - 1; i >= 0; i--) {
    const q = ODD + <usize>i * pb;
    if (i > 0) {
      fmul(f, zi, inv, PREFIX + <usize>(i - 1) * n);
      fmul(f, inv, inv, q + 2 * n);
    } else {
      feCopy(f, zi, inv);
    }
    const a = out + <usize>i * 2 * n;
    fsqr(f, a + n, zi); // 1/Z^2
    fmul(f, a, q, a + n);
    fmul(f, a + n, a + n, zi); // 1/Z^3
    fmul(f, a + n, q + n, a + n);
  }
}

// Odd multiples of G up to 63G for the width-7 wNAF of verification, per curve.
const G_WIDTH: u32 = 7;
const G_ODD: usize = 32;
const G_TABLES: usize = memory.data(3 * sizeof<usize>());

function gOddTable(c: u32): usize {
  const slot = G_TABLES + (<usize>c) * sizeof<usize>();
  let t = load<usize>(slot);
  if (t == 0) {
    const f = fieldP(c), n = feBytes(f);
    // G itself behind the table, as in buildTable: one allocation.
    t = heap.alloc(G_ODD * 2 * n + 3 * n);
    const g = t + G_ODD * 2 * n;
    feCopy(f, g, curveGx(c));
    feCopy(f, g + n, curveGy(c));
    feCopy(f, g + 2 * n, curveOne(c));
    oddMultiples(c, g, G_ODD, t);
    t = heap.realloc(t, G_ODD * 2 * n);
    store<usize>(slot, t);
  }
  return t;
}

// Builds both generator tables of a curve (signing and verification) now.
export function precomputeTables(c: u32): void {
  baseTable(c);
  gOddTable(c);
}

// The public key's odd multiples up to 15Q (width-5 wNAF), and the digits.
const Q_WIDTH: u32 = 5;
const Q_ODD: usize = 8;
const Q_TABLE: usize = memory.data(<i32>Q_ODD * 2 * <i32>FE_BYTES, 16);
const NAF1: usize = memory.data(544);
const NAF2: usize = memory.data(544);
const NEG: usize = memory.data(2 * <i32>FE_BYTES, 16);

// o += ±table[|d| >> 1] for a nonzero odd wNAF digit d.
function addDigit(c: u32, o: usize, table: usize, d: i32): void {
  const f = fieldP(c), n = feBytes(f);
  const a = table + <usize>((d < 0 ? -d : d) >> 1) * 2 * n;
  if (d > 0) {
    jacAddAffine(c, o, o, a);
  } else {
    feCopy(f, NEG, a);
    feSetZero(f, NEG + n);
    fsub(f, NEG + n, NEG + n, a + n);
    jacAddAffine(c, o, o, NEG);
  }
}

// o = u1*G + u2*Q in Jacobian coordinates for public plain scalars and an
// affine-valued q (Z = 1); variable time. Both wNAF digit strings share one
// chain of doublings (Shamir's trick).
export function mulDoubleVT(c: u32, o: usize, u1: usize, u2: usize, q: usize): void {
  const gTable = gOddTable(c);
  oddMultiples(c, q, Q_ODD, Q_TABLE);
  memory.fill(NAF1, 0, 544);
  memory.fill(NAF2, 0, 544);
  const len1 = wnaf(c, u1, G_WIDTH, NAF1);
  const len2 = wnaf(c, u2, Q_WIDTH, NAF2);
  // The whole identity, not Z alone: X and Y would keep what the last call left, maybe another curve's.
  setInfinity(c, o);
  for (let i = <i32>max(len1, len2) - 1; i >= 0; i--) {
    jacDouble(c, o, o);
    const d1 = <i32>load<i8>(NAF1 + i), d2 = <i32>load<i8>(NAF2 + i);
    if (d1) addDigit(c, o, gTable, d1);
    if (d2) addDigit(c, o, Q_TABLE, d2);
  }
}

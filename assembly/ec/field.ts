// Field operations built on the generated kernels: conversions to and from
// Montgomery form (the identity for P-521's base field, where R = 1), byte
// encoding, constant-time selection and comparison, exponentiation, and a
// variable-time inversion for public values.
// A field id f is 2 * curve index + (0 for p, 1 for n); elements are
// little-endian u32 limbs at a pointer, limbs(f) of them.
import { fmul, fsqr, fsub, fieldModulus, fieldR2, fieldMinusTwo } from './fields.generated';

export const MAX_LIMBS: u32 = 17;
export const FE_BYTES: usize = 68; // room for one element of any field

// One as a plain (non-Montgomery) integer: multiplying by it leaves Montgomery form.
const PLAIN_ONE: usize = memory.data<u32>([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const POW_TABLE: usize = memory.data(16 * <i32>FE_BYTES, 16);
const POW_ACC: usize = memory.data(<i32>FE_BYTES, 16);

@inline export function limbs(f: u32): u32 {
  return f < 2 ? 8 : f < 4 ? 12 : 17;
}

@inline export function feBytes(f: u32): usize {
  return <usize>limbs(f) << 2;
}

@inline export function feCopy(f: u32, o: usize, a: usize): void {
  memory.copy(o, a, feBytes(f));
}

export function feSetZero(f: u32, o: usize): void {
  memory.fill(o, 0, feBytes(f));
}

export function feToMont(f: u32, o: usize, a: usize): void {
  fmul(f, o, a, fieldR2(f));
}

export function feFromMont(f: u32, o: usize, a: usize): void {
  fmul(f, o, a, PLAIN_ONE);
}

// o = a^e for a public exponent e (limbs(f) limbs), 4-bit fixed window: the
// running time depends on e only. o may alias a.
export function fePow(f: u32, o: usize, a: usize, e: usize): void {
  const n = feBytes(f);
  // POW_TABLE[i] = a^i in Montgomery form; entry 0 (one) is never used.
  memory.copy(POW_TABLE + n, a, n);
  for (let i: usize = 2; i < 16; i++) fmul(f, POW_TABLE + i * n, POW_TABLE + (i - 1) * n, POW_TABLE + n);
  let started = false;
  for (let w = <i32>(limbs(f) << 3) - 1; w >= 0; w--) {
    const nib = (load<u32>(e + (<usize>w >> 3 << 2)) >>> ((<u32>w & 7) << 2)) & 15;
    if (started) {
      for (let i = 0; i < 4; i++) fsqr(f, POW_ACC, POW_ACC);
      if (nib) fmul(f, POW_ACC, POW_ACC, POW_TABLE + <usize>nib * n);
    } else if (nib) {
      memory.copy(POW_ACC, POW_TABLE + <usize>nib * n, n);
      started = true;
    }
  }
  memory.copy(o, POW_ACC, n);
  memory.fill(POW_TABLE, 0, 16 * n);
  memory.fill(POW_ACC, 0, n);
}

// Fermat inversion (a^(m-2)): constant time in a; maps 0 to 0.
export function feInv(f: u32, o: usize, a: usize): void {
  fePow(f, o, a, fieldMinusTwo(f));
}

// All ones when a is zero, else 0; constant time.
export function feIsZero(f: u32, a: usize): u32 {
  let acc: u32 = 0;
  for (let i: usize = 0, n = feBytes(f); i < n; i += 4) acc |= load<u32>(a + i);
  return <u32>((<u64>acc - 1) >> 32);
}

// All ones when a == b, else 0; constant time.
export function feEqual(f: u32, a: usize, b: usize): u32 {
  let acc: u32 = 0;
  for (let i: usize = 0, n = feBytes(f); i < n; i += 4) acc |= load<u32>(a + i) ^ load<u32>(b + i);
  return <u32>((<u64>acc - 1) >> 32);
}

// All ones when the plain integer a is below b, else 0; constant time.
export function feLess(f: u32, a: usize, b: usize): u32 {
  let br: i64 = 0;
  for (let i: usize = 0, n = feBytes(f); i < n; i += 4) {
    br = (<i64>load<u32>(a + i) - <i64>load<u32>(b + i) + br) >> 32;
  }
  return <u32>br;
}

// o = mask ? a : b for mask all ones or 0; constant time.
export function feSelect(f: u32, o: usize, a: usize, b: usize, mask: u32): void {
  for (let i: usize = 0, n = feBytes(f); i < n; i += 4) {
    store<u32>(o + i, (load<u32>(a + i) & mask) | (load<u32>(b + i) & ~mask));
  }
}

// Reads a big-endian integer of `len` bytes (len <= feBytes(f)) as plain limbs.
export function feFromBytes(f: u32, o: usize, src: usize, len: usize): void {
  feSetZero(f, o);
  for (let i: usize = 0; i < len; i++) {
    const bit = (len - 1 - i) << 3;
    const p = o + (bit >> 5 << 2);
    store<u32>(p, load<u32>(p) | (<u32>load<u8>(src + i) << (<u32>bit & 31)));
  }
}

// Writes plain limbs as a big-endian integer of `len` bytes.
export function feToBytes(dst: usize, a: usize, len: usize): void {
  for (let i: usize = 0; i < len; i++) {
    const bit = (len - 1 - i) << 3;
    store<u8>(dst + i, <u8>(load<u32>(a + (bit >> 5 << 2)) >>> (<u32>bit & 31)));
  }
}

// All ones when the plain integer a is in [1, m - 1] for the field's modulus m.
export function feInRange(f: u32, a: usize): u32 {
  return ~feIsZero(f, a) & feLess(f, a, fieldModulus(f));
}

// Binary extended Euclid for public values only (its running time depends
// on a): o = a^-1 mod m for a plain a in [1, m - 1], plain result. Verifying
// a signature spends a scalar inversion on public data, where this is an
// order of magnitude cheaper than Fermat's exponentiation.
const INV_U: usize = memory.data(<i32>FE_BYTES + 4, 16);
const INV_V: usize = memory.data(<i32>FE_BYTES + 4, 16);
const INV_X1: usize = memory.data(<i32>FE_BYTES + 4, 16);
const INV_X2: usize = memory.data(<i32>FE_BYTES + 4, 16);

@inline function isOne(p: usize, words: usize): bool {
  if (load<u32>(p) != 1) return false;
  for (let i: usize = 1; i < words; i++) if (load<u32>(p + (i << 2))) return false;
  return true;
}

// p >>= 1 with `top` shifted in as the new most significant bit.
function shiftRight(p: usize, words: usize, top: u32): void {
  for (let i: usize = 0; i < words; i++) {
    const hi = i + 1 < words ? load<u32>(p + ((i + 1) << 2)) : top;
    store<u32>(p + (i << 2), (load<u32>(p + (i << 2)) >>> 1) | (hi << 31));
  }
}

// x = x / 2 mod m for x < m (m odd): add m first when x is odd.
function halve(f: u32, x: usize, m: usize, words: usize): void {
  let carry: u64 = 0;
  if (load<u32>(x) & 1) {
    for (let i: usize = 0; i < words; i++) {
      carry += <u64>load<u32>(x + (i << 2)) + load<u32>(m + (i << 2));
      store<u32>(x + (i << 2), <u32>carry);
      carry >>= 32;
    }
  }
  shiftRight(x, words, <u32>carry);
}

// a -= b for plain integers with a >= b.
function subInPlace(a: usize, b: usize, words: usize): void {
  let br: i64 = 0;
  for (let i: usize = 0; i < words; i++) {
    const d = <i64>load<u32>(a + (i << 2)) - <i64>load<u32>(b + (i << 2)) + br;
    store<u32>(a + (i << 2), <u32>d);
    br = d >> 32;
  }
}

function geq(a: usize, b: usize, words: usize): bool {
  for (let i = <isize>words - 1; i >= 0; i--) {
    const x = load<u32>(a + (<usize>i << 2)), y = load<u32>(b + (<usize>i << 2));
    if (x != y) return x > y;
  }
  return true;
}

export function feInvVT(f: u32, o: usize, a: usize): void {
  const words = <usize>limbs(f), m = fieldModulus(f);
  memory.copy(INV_U, a, words << 2);
  memory.copy(INV_V, m, words << 2);
  feSetZero(f, INV_X1);
  store<u32>(INV_X1, 1);
  feSetZero(f, INV_X2);
  while (!isOne(INV_U, words) && !isOne(INV_V, words)) {
    while (!(load<u32>(INV_U) & 1)) {
      shiftRight(INV_U, words, 0);
      halve(f, INV_X1, m, words);
    }
    while (!(load<u32>(INV_V) & 1)) {
      shiftRight(INV_V, words, 0);
      halve(f, INV_X2, m, words);
    }
    if (geq(INV_U, INV_V, words)) {
      subInPlace(INV_U, INV_V, words);
      fsub(f, INV_X1, INV_X1, INV_X2);
    } else {
      subInPlace(INV_V, INV_U, words);
      fsub(f, INV_X2, INV_X2, INV_X1);
    }
  }
  memory.copy(o, isOne(INV_U, words) ? INV_X1 : INV_X2, words << 2);
}

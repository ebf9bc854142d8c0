// GHASH (SP 800-38D 6.4) in constant time: carry-less multiplication built
// from ordinary integer multiplies of operands "with holes" (every fourth
// bit kept, so carries never reach a bit that is kept), no table lookups.
//
// A block is read as a 128-bit big-endian integer, in which bit 127 - i is
// the coefficient of x^i (the reflected convention of the standard).
//
// Runs of AGG blocks are hashed with the powers H^AGG .. H^1 (Horner's rule
// unrolled): the AGG products are independent, and they are summed before
// the one Karatsuba recombination and reduction of the run.

const AGG: usize = 8;

const M0: u64 = 0x1111111111111111;
const M1: u64 = 0x2222222222222222;
const M2: u64 = 0x4444444444444444;
const M3: u64 = 0x8888888888888888;

// A power of H in multiplier form: for each of the nine 32-bit operands of a
// two-level Karatsuba product (h0, h1, h0^h1 of the low 64-bit half, the
// same of the high half and of their XOR), its four masked classes; the
// SIMD build stores them as four vectors of rotated classes (classesV).
const OPERAND: usize = ASC_FEATURE_SIMD ? 64 : 32;
const POWER: usize = 9 * OPERAND;
// The hash key: H (16 bytes), whether H^2.. are filled (u32), then H^1 ..
// H^AGG, prepared on the first run of AGG blocks.
const READY: usize = 16;
const POWERS: usize = 32;
export const GHASH_KEY_SIZE: usize = POWERS + AGG * POWER;

const ACC: usize = memory.data(9 * 16, 16); // sums of the nine products of a run
const HP: usize = memory.data(32, 16); // zero, then a power of H being prepared

@inline function classes(dst: usize, h: u64): void {
  store<u64>(dst, h & (M0 & 0xFFFFFFFF));
  store<u64>(dst, h & (M1 & 0xFFFFFFFF), 8);
  store<u64>(dst, h & (M2 & 0xFFFFFFFF), 16);
  store<u64>(dst, h & (M3 & 0xFFFFFFFF), 24);
}

// Vector k is [h_k, h_k-1, h_k-2, h_k-3] (class indexes mod 4): lane i
// times class i of the other factor then only has bits in class k.
@inline function classesV(dst: usize, h: u64): void {
  const c0 = <u32>(h & M0), c1 = <u32>(h & M1), c2 = <u32>(h & M2), c3 = <u32>(h & M3);
  v128.store(dst, i32x4(c0, c3, c2, c1));
  v128.store(dst, i32x4(c1, c0, c3, c2), 16);
  v128.store(dst, i32x4(c2, c1, c0, c3), 32);
  v128.store(dst, i32x4(c3, c2, c1, c0), 48);
}

@inline function operands64(dst: usize, h: u64): void {
  const lo = h & 0xFFFFFFFF, hi = h >> 32;
  if (ASC_FEATURE_SIMD) {
    classesV(dst, lo);
    classesV(dst + OPERAND, hi);
    classesV(dst + 2 * OPERAND, lo ^ hi);
  } else {
    classes(dst, lo);
    classes(dst + OPERAND, hi);
    classes(dst + 2 * OPERAND, lo ^ hi);
  }
}

function power(dst: usize, h: usize): void {
  const h1 = bswap<u64>(load<u64>(h)), h0 = bswap<u64>(load<u64>(h, 8));
  operands64(dst, h0);
  operands64(dst + 3 * OPERAND, h1);
  operands64(dst + 6 * OPERAND, h0 ^ h1);
}

// Prepares the hash key for H, given as 16 bytes.
export function ghashKey(hk: usize, h: usize): void {
  memory.copy(hk, h, 16);
  store<u32>(hk, 0, READY);
  power(hk + POWERS, h);
}

// Bytes of the hash key at hk holding data (for zeroization).
export function ghashKeyUsed(hk: usize): usize {
  return load<u32>(hk, READY) ? GHASH_KEY_SIZE : POWERS + POWER;
}

// H^2 .. H^AGG, each as the hash of the one block H^(i-1) from zero.
function powers(hk: usize): void {
  memory.copy(HP + 16, hk, 16);
  for (let i: usize = 1; i < AGG; i++) {
    memory.fill(HP, 0, 16);
    ghashRun(hk, HP, HP + 16, 1);
    power(hk + POWERS + i * POWER, HP);
    memory.copy(HP + 16, HP, 16);
  }
  memory.fill(HP, 0, 32);
  store<u32>(hk, 1, READY);
}

// 32 x 32 -> 64-bit carry-less product of a and the operand at p. Class i of
// a times class j of the operand only has bits at positions = i + j (mod 4),
// and at most 8 terms meet at a position, so the integer sums keep the
// parity bit of each kept position intact.
@inline function bm(a: u64, p: usize): u64 {
  // a < 2^32: masks that fit a sign-extended 32-bit immediate select the same bits.
  const a0 = a & M0, a1 = a & M1, a2 = a & M2, a3 = a & M3;
  const h0 = load<u64>(p), h1 = load<u64>(p, 8), h2 = load<u64>(p, 16), h3 = load<u64>(p, 24);
  const z0 = (a0 * h0) ^ (a1 * h3) ^ (a2 * h2) ^ (a3 * h1);
  const z1 = (a0 * h1) ^ (a1 * h0) ^ (a2 * h3) ^ (a3 * h2);
  const z2 = (a0 * h2) ^ (a1 * h1) ^ (a2 * h0) ^ (a3 * h3);
  const z3 = (a0 * h3) ^ (a1 * h2) ^ (a2 * h1) ^ (a3 * h0);
  return (z0 & M0) | (z1 & M1) | (z2 & M2) | (z3 & M3);
}

// The same product in the SIMD build, two class products per i64x2.extmul;
// lane i of v (i32) is the operand a. The two lanes of the result XOR
// together to the product.
@inline function bmv(v: v128, p: usize): v128 {
  const x = v128.and(v, i32x4(<i32>M0, <i32>M1, <i32>M2, <i32>M3));
  const h0 = v128.load(p), h1 = v128.load(p, 16), h2 = v128.load(p, 32), h3 = v128.load(p, 48);
  const s0 = v128.xor(i64x2.extmul_low_i32x4_u(x, h0), i64x2.extmul_high_i32x4_u(x, h0));
  const s1 = v128.xor(i64x2.extmul_low_i32x4_u(x, h1), i64x2.extmul_high_i32x4_u(x, h1));
  const s2 = v128.xor(i64x2.extmul_low_i32x4_u(x, h2), i64x2.extmul_high_i32x4_u(x, h2));
  const s3 = v128.xor(i64x2.extmul_low_i32x4_u(x, h3), i64x2.extmul_high_i32x4_u(x, h3));
  return v128.xor(
    v128.xor(v128.and(s0, i64x2.splat(M0)), v128.and(s1, i64x2.splat(M1))),
    v128.xor(v128.and(s2, i64x2.splat(M2)), v128.and(s3, i64x2.splat(M3))));
}

@inline function accV(i: usize, v: v128, first: bool): void {
  v128.store(ACC + (i << 4), first ? v : v128.xor(v128.load(ACC + (i << 4)), v));
}

@inline function acc64(i: usize, v: u64, first: bool): void {
  store<u64>(ACC + (i << 4), first ? v : load<u64>(ACC + (i << 4)) ^ v);
}

@inline function sum(i: usize): u64 {
  if (ASC_FEATURE_SIMD) return load<u64>(ACC + (i << 4)) ^ load<u64>(ACC + (i << 4), 8);
  else return load<u64>(ACC + (i << 4));
}

// Adds the nine 32 x 32 products of the block x1:x0 by the power at p to ACC.
@inline function products(x1: u64, x0: u64, p: usize, first: bool): void {
  const xm = x0 ^ x1;
  if (ASC_FEATURE_SIMD) {
    // Lanes (i32) of v: x0 low, x0 high, x1 low, x1 high; of w, the XOR of
    // the halves of each; of m and mw, the same for x0 ^ x1.
    const v = i64x2(x0, x1), m = i64x2.splat(xm);
    const w = v128.xor(v, i8x16.shuffle(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    const mw = v128.xor(m, i8x16.shuffle(m, m, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    accV(0, bmv(i32x4.shuffle(v, v, 0, 0, 0, 0), p), first);
    accV(1, bmv(i32x4.shuffle(v, v, 1, 1, 1, 1), p + OPERAND), first);
    accV(2, bmv(i32x4.shuffle(w, w, 0, 0, 0, 0), p + 2 * OPERAND), first);
    accV(3, bmv(i32x4.shuffle(v, v, 2, 2, 2, 2), p + 3 * OPERAND), first);
    accV(4, bmv(i32x4.shuffle(v, v, 3, 3, 3, 3), p + 4 * OPERAND), first);
    accV(5, bmv(i32x4.shuffle(w, w, 2, 2, 2, 2), p + 5 * OPERAND), first);
    accV(6, bmv(i32x4.shuffle(m, m, 0, 0, 0, 0), p + 6 * OPERAND), first);
    accV(7, bmv(i32x4.shuffle(m, m, 1, 1, 1, 1), p + 7 * OPERAND), first);
    accV(8, bmv(i32x4.shuffle(mw, mw, 0, 0, 0, 0), p + 8 * OPERAND), first);
  } else {
    const a0 = x0 & 0xFFFFFFFF, a1 = x0 >> 32;
    acc64(0, bm(a0, p), first);
    acc64(1, bm(a1, p + OPERAND), first);
    acc64(2, bm(a0 ^ a1, p + 2 * OPERAND), first);
    const b0 = x1 & 0xFFFFFFFF, b1 = x1 >> 32;
    acc64(3, bm(b0, p + 3 * OPERAND), first);
    acc64(4, bm(b1, p + 4 * OPERAND), first);
    acc64(5, bm(b0 ^ b1, p + 5 * OPERAND), first);
    const c0 = xm & 0xFFFFFFFF, c1 = xm >> 32;
    acc64(6, bm(c0, p + 6 * OPERAND), first);
    acc64(7, bm(c1, p + 7 * OPERAND), first);
    acc64(8, bm(c0 ^ c1, p + 8 * OPERAND), first);
  }
}

// y = (y ^ x_1) * H^n ^ x_2 * H^(n-1) ^ ... ^ x_n * H for n <= AGG blocks at
// src; y is 16 bytes (big-endian halves).
function ghashRun(hk: usize, y: usize, src: usize, n: usize): void {
  for (let j: usize = 0; j < n; j++) {
    let x1 = bswap<u64>(load<u64>(src + (j << 4))), x0 = bswap<u64>(load<u64>(src + (j << 4), 8));
    if (j == 0) {
      x1 ^= bswap<u64>(load<u64>(y));
      x0 ^= bswap<u64>(load<u64>(y, 8));
    }
    products(x1, x0, hk + POWERS + (n - 1 - j) * POWER, j == 0);
  }
  // Karatsuba recombination of the three 64 x 64 products.
  const ll = sum(0), lh = sum(1), lm = sum(2) ^ ll ^ lh;
  const l0 = ll ^ (lm << 32), l1 = lh ^ (lm >> 32);
  const hl = sum(3), hh = sum(4), hm = sum(5) ^ hl ^ hh;
  const h0 = hl ^ (hm << 32), h1 = hh ^ (hm >> 32);
  const ml = sum(6), mh = sum(7), mm = sum(8) ^ ml ^ mh;
  const m0 = ml ^ (mm << 32) ^ l0 ^ h0, m1 = mh ^ (mm >> 32) ^ l1 ^ h1;
  // 256-bit product p3:p2:p1:p0, shifted left by one for the reflected order.
  const p0 = l0, p1 = l1 ^ m0, p2 = h0 ^ m1, p3 = h1;
  const q3 = (p3 << 1) | (p2 >> 63), q2 = (p2 << 1) | (p1 >> 63);
  const q1 = (p1 << 1) | (p0 >> 63), q0 = p0 << 1;
  // Reduce the low half (x^128 .. x^255) by x^128 = x^7 + x^2 + x + 1: in
  // the reflected order a product by x^d is a right shift by d; the bits
  // shifted out wrap around once more.
  const d1 = q1 ^ (q1 >> 1) ^ (q1 >> 2) ^ (q1 >> 7);
  const d0 = q0 ^ ((q0 >> 1) | (q1 << 63)) ^ ((q0 >> 2) | (q1 << 62)) ^ ((q0 >> 7) | (q1 << 57));
  const e = (q0 << 63) ^ (q0 << 62) ^ (q0 << 57);
  store<u64>(y, bswap<u64>(q3 ^ d1 ^ e ^ (e >> 1) ^ (e >> 2) ^ (e >> 7)));
  store<u64>(y, bswap<u64>(q2 ^ d0), 8);
}

// y = (y ^ block) * H for n blocks at src.
export function ghashBlocks(hk: usize, y: usize, src: usize, n: usize): void {
  if (n >= AGG && !load<u32>(hk, READY)) powers(hk);
  // Until the powers exist (a key that only hashed short inputs), one block at a time.
  const run = load<u32>(hk, READY) ? AGG : 1;
  while (n > 0) {
    const m = n < run ? n : run;
    ghashRun(hk, y, src, m);
    src += m << 4;
    n -= m;
  }
  memory.fill(ACC, 0, 9 * 16);
}

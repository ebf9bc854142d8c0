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
//
// Scalar build: two levels of Karatsuba (nine 32 x 32 products), each from
// sixteen 64-bit multiplies of classes.
//
// SIMD build: three levels of Karatsuba (27 products of 16-bit limbs, see
// operands()) on i32x4.dot_i16x8_s (pmaddwd: eight 16 x 16 products, added
// in pairs). A limb a has four classes a_i = a & (0x1111 << i); a_i * h_j only
// has bits at positions = i + j (mod 4), at most 4 terms meet at a position,
// and a dot lane adds two such products (at most 8 terms: the carries stay in
// the three holes above each kept bit). The dot is signed, so no operand may
// have bit 15 set (class 3 has it; class 0 has bit 0 and cannot be shifted
// down): the limb a of the data enters as the lane pairs
//   C = [a_0, a_3 >> 1], D = [a_2, a_1 >> 1]
// and the limb h of a power of H as the four pairs (all below 2^15)
//   Q0 = [h_0, h_1 << 1], Q1 = [h_1 >> 1, h_2], Q2 = [h_2 >> 2, h_3 >> 1], Q3 = [h_3 >> 1, h_0].
// The eight dots give each of the sixteen class products of a * h once, at
// output class k, scaled by 2^-s (every division exact):
//   C.Q0 = a0h0 + a3h1         (k 0, s 0)   D.Q0 = a2h0 + a1h1         (k 2, s 0)
//   C.Q1 = (a0h1 + a3h2) / 2   (k 1, s 1)   D.Q1 = (a2h1 + a1h2) / 2   (k 3, s 1)
//   C.Q2 = (a0h2 + a3h3) / 4   (k 2, s 2)   D.Q2 = (a2h2 + a1h3) / 4   (k 0, s 2)
//   C.Q3 = (a0h3 + a3h0) / 2   (k 3, s 1)   D.Q3 = (a2h3 + a1h0) / 2   (k 1, s 1)
// The kept bits of a dot sit at positions = k - s (mod 4); six accumulators
// (XOR) keep the (k, s) apart until the end of a run, where they are masked,
// shifted back and combined into the 31-bit limb products.

const AGG: usize = 8;

const M0: u64 = 0x1111111111111111;
const M1: u64 = 0x2222222222222222;
const M2: u64 = 0x4444444444444444;
const M3: u64 = 0x8888888888888888;

// SIMD: operand limbs, 27 used, in 7 groups of 4 (the last has one unused lane).
const GROUPS: usize = 7;
// SIMD: a power of H holds per group Q0..Q3 (16 bytes each).
const GROUP: usize = 64;

// Scalar: a power of H in multiplier form: for each of the nine 32-bit
// operands of a two-level Karatsuba product (h0, h1, h0^h1 of the low 64-bit
// half, the same of the high half and of their XOR), its four masked classes.
const OPERAND: usize = 32;
const POWER: usize = ASC_FEATURE_SIMD ? GROUPS * GROUP : 9 * OPERAND;
// The hash key: H (16 bytes), whether H^2.. are filled (u32), then H^1 ..
// H^AGG, prepared on the first run of AGG blocks.
const READY: usize = 16;
const POWERS: usize = 32;
export const GHASH_KEY_SIZE: usize = POWERS + AGG * POWER;

// Scalar: sums of the nine products of a run.
const ACC: usize = memory.data(<i32>(ASC_FEATURE_SIMD ? 16 : 9 * 16), 16);
// SIMD: C, D of each group of each block of a run.
const XSIZE: usize = ASC_FEATURE_SIMD ? AGG * GROUPS * 32 : 16;
const XS: usize = memory.data(<i32>XSIZE, 16);
// SIMD: the 27 limb products (u32, one unused) of a run; operand limbs of a
// power being prepared.
const PS: usize = memory.data(ASC_FEATURE_SIMD ? 112 : 16, 16);
const LIMBS: usize = memory.data(ASC_FEATURE_SIMD ? 64 : 16, 16);
// H^i as a block at 16 i while the powers are prepared.
const HPOW: usize = memory.data(<i32>(AGG + 1) * 16, 16);

@inline function classes(dst: usize, h: u64): void {
  store<u64>(dst, h & (M0 & 0xFFFFFFFF));
  store<u64>(dst, h & (M1 & 0xFFFFFFFF), 8);
  store<u64>(dst, h & (M2 & 0xFFFFFFFF), 16);
  store<u64>(dst, h & (M3 & 0xFFFFFFFF), 24);
}

@inline function operands64(dst: usize, h: u64): void {
  const lo = h & 0xFFFFFFFF, hi = h >> 32;
  classes(dst, lo);
  classes(dst + OPERAND, hi);
  classes(dst + 2 * OPERAND, lo ^ hi);
}

// Block bytes to a vector of 16-bit limbs, least significant first.
@inline function limbs(v: v128): v128 {
  return i8x16.shuffle(v, v, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
}

// The lane pairs [a, b] of the four limbs in the low or high half.
@inline function pairs(a: v128, b: v128, hi: bool): v128 {
  return hi
    ? i8x16.shuffle(a, b, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31)
    : i8x16.shuffle(a, b, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
}

// C and D of the four limbs in the low or high half of o (s = o >> 1 in
// each 16-bit lane), at dst, dst + 16 (low) or dst + 32, dst + 48 (high).
@inline function sides(o: v128, s: v128, dst: usize, hi: bool): void {
  const u = pairs(o, s, hi);
  const c = v128.and(u, i16x8(0x1111, 0x4444, 0x1111, 0x4444, 0x1111, 0x4444, 0x1111, 0x4444));
  const d = v128.and(u, i16x8(0x4444, 0x1111, 0x4444, 0x1111, 0x4444, 0x1111, 0x4444, 0x1111));
  if (hi) {
    v128.store(dst, c, 32);
    v128.store(dst, d, 48);
  } else {
    v128.store(dst, c);
    v128.store(dst, d, 16);
  }
}

// The 27 Karatsuba operand limbs of x (16-bit limbs), in four vectors o1..o4.
// With the 64-bit halves A (low) and B of x, C = A ^ B, the 32-bit halves
// U_lo, U_hi and U_m = U_lo ^ U_hi of each, and mid(W) = low ^ high 16 bits
// of a 32-bit W:
//   o1 = A_lo, A_hi, B_lo, B_hi (limbs 0..7, i.e. x)
//   o2 = A_m, B_m, C_lo, C_hi   (limbs 8..15)
//   o3 = mid of the 32-bit lanes of o1, then of o2 (limbs 16..23)
//   o4 = C_m (limbs 24, 25), mid(C_m) (26), unused (27)
// Limb product L is operand limb L of the data times operand limb L of the
// power. Stored raw at dst (a power), or as C and D of each group (data).
@inline function operandsV(x: v128, dst: usize, raw: bool): void {
  const t = v128.xor(x, i32x4.shuffle(x, x, 2, 3, 0, 1)); // C_lo, C_hi, C_lo, C_hi
  const s = v128.xor(x, i32x4.shuffle(x, x, 1, 0, 3, 2)); // A_m, A_m, B_m, B_m
  const o2 = i32x4.shuffle(s, t, 0, 2, 4, 5);
  const tm = v128.xor(t, i32x4.shuffle(t, t, 1, 0, 3, 2)); // C_m, ...
  const p1 = i32x4.shr_u(v128.xor(x, i32x4.shl(x, 16)), 16);
  const p2 = i32x4.shr_u(v128.xor(o2, i32x4.shl(o2, 16)), 16);
  const o3 = i16x8.narrow_i32x4_u(p1, p2);
  const o4 = i32x4.shuffle(tm, v128.xor(tm, i32x4.shr_u(tm, 16)), 0, 4, 0, 0);
  if (raw) {
    v128.store(dst, x);
    v128.store(dst, o2, 16);
    v128.store(dst, o3, 32);
    v128.store(dst, o4, 48);
  } else {
    const s1 = i16x8.shr_u(x, 1), s2 = i16x8.shr_u(o2, 1), s3 = i16x8.shr_u(o3, 1), s4 = i16x8.shr_u(o4, 1);
    sides(x, s1, dst, false);
    sides(x, s1, dst, true);
    sides(o2, s2, dst + 64, false);
    sides(o2, s2, dst + 64, true);
    sides(o3, s3, dst + 128, false);
    sides(o3, s3, dst + 128, true);
    sides(o4, s4, dst + 192, false);
  }
}

// Q0..Q3 of the group of four limbs in the low or high half of o, at dst.
@inline function quads(o: v128, dst: usize, hi: bool): void {
  const h0 = v128.and(o, i16x8.splat(0x1111)), h1 = v128.and(o, i16x8.splat(0x2222));
  const h2 = v128.and(o, i16x8.splat(0x4444)), h3 = i16x8.shr_u(v128.and(o, i16x8.splat(<i16>0x8888)), 1);
  v128.store(dst, pairs(h0, i16x8.shl(h1, 1), hi));
  v128.store(dst, pairs(i16x8.shr_u(h1, 1), h2, hi), 16);
  v128.store(dst, pairs(i16x8.shr_u(h2, 2), h3, hi), 32);
  v128.store(dst, pairs(h3, h0, hi), 48);
}

function power(dst: usize, h: usize): void {
  if (ASC_FEATURE_SIMD) {
    operandsV(limbs(v128.load(h)), LIMBS, true);
    for (let g: usize = 0; g < GROUPS; g++) quads(v128.load(LIMBS + ((g >> 1) << 4)), dst + g * GROUP, (g & 1) != 0);
    memory.fill(LIMBS, 0, 64);
  } else {
    const h1 = bswap<u64>(load<u64>(h)), h0 = bswap<u64>(load<u64>(h, 8));
    operands64(dst, h0);
    operands64(dst + 3 * OPERAND, h1);
    operands64(dst + 6 * OPERAND, h0 ^ h1);
  }
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

// The 32 bits of x spread to the even bits of a u64: carry-less squaring.
@inline function spread(x: u64): u64 {
  x = (x | (x << 16)) & 0x0000FFFF0000FFFF;
  x = (x | (x << 8)) & 0x00FF00FF00FF00FF;
  x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F;
  x = (x | (x << 2)) & 0x3333333333333333;
  return (x | (x << 1)) & 0x5555555555555555;
}

// dst = src^2 (16 bytes each, may be equal): squaring is linear in GF(2)[x],
// the bits spread apart and the result reduced, several times cheaper than
// a product.
function square(dst: usize, src: usize): void {
  const x1 = bswap<u64>(load<u64>(src)), x0 = bswap<u64>(load<u64>(src, 8));
  reduce(dst, spread(x0 & 0xFFFFFFFF), spread(x0 >> 32), spread(x1 & 0xFFFFFFFF), spread(x1 >> 32));
}

// H^2 .. H^AGG: even powers squared from half their exponent, odd ones as
// the hash of the one block H^(i-1) from zero (a product by H).
function powers(hk: usize): void {
  memory.copy(HPOW + 16, hk, 16);
  for (let i: usize = 2; i <= AGG; i++) {
    const hi = HPOW + (i << 4);
    if (i & 1) {
      memory.fill(hi, 0, 16);
      ghashRun(hk, hi, hi - 16, 1);
    } else {
      square(hi, HPOW + ((i >> 1) << 4));
    }
    power(hk + POWERS + (i - 1) * POWER, hi);
  }
  memory.fill(HPOW, 0, (AGG + 1) << 4);
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

@inline function acc64(i: usize, v: u64, first: bool): void {
  store<u64>(ACC + (i << 4), first ? v : load<u64>(ACC + (i << 4)) ^ v);
}

@inline function sum(i: usize): u64 {
  return load<u64>(ACC + (i << 4));
}

// Adds the nine 32 x 32 products of the block x1:x0 by the power at p to ACC.
@inline function products(x1: u64, x0: u64, p: usize, first: bool): void {
  const xm = x0 ^ x1;
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

// SIMD: limb products of group g of a run of n blocks (operands at XS) into PS.
@inline function group(hk: usize, g: usize, n: usize): void {
  let e0 = i32x4.splat(0), f2 = e0, k1 = e0, k3 = e0, e2 = e0, f0 = e0;
  let q = hk + POWERS + (n - 1) * POWER + g * GROUP, x = XS + g * 32;
  const end = x + n * GROUPS * 32;
  do {
    const c = v128.load(x), d = v128.load(x, 16);
    const q0 = v128.load(q), q1 = v128.load(q, 16), q2 = v128.load(q, 32), q3 = v128.load(q, 48);
    e0 = v128.xor(e0, i32x4.dot_i16x8_s(c, q0)); // k 0, s 0
    f2 = v128.xor(f2, i32x4.dot_i16x8_s(d, q0)); // k 2, s 0
    k1 = v128.xor(k1, v128.xor(i32x4.dot_i16x8_s(c, q1), i32x4.dot_i16x8_s(d, q3))); // k 1, s 1
    k3 = v128.xor(k3, v128.xor(i32x4.dot_i16x8_s(c, q3), i32x4.dot_i16x8_s(d, q1))); // k 3, s 1
    e2 = v128.xor(e2, i32x4.dot_i16x8_s(c, q2)); // k 2, s 2
    f0 = v128.xor(f0, i32x4.dot_i16x8_s(d, q2)); // k 0, s 2
    q -= POWER;
    x += GROUPS * 32;
  } while (x < end);
  // Kept bits at k - s (mod 4): 0 for e0, k1, e2; 2 for f2, k3, f0.
  const m0 = i32x4.splat(0x11111111), m2 = i32x4.splat(0x44444444);
  const s0 = v128.or(v128.and(e0, m0), v128.and(f2, m2));
  const s1 = v128.or(v128.and(k1, m0), v128.and(k3, m2));
  const s2 = v128.or(v128.and(e2, m0), v128.and(f0, m2));
  v128.store(PS + (g << 4), v128.xor(s0, v128.xor(i32x4.shl(s1, 1), i32x4.shl(s2, 2))));
}

// SIMD: 32 x 32 -> 64-bit product w (in the order of the 32-bit operands of
// o1, o2, then C_m) from its three limb products: lo and hi (below 2^31) are
// the two u32 at PS + 8w (PS + 96 for C_m), mid the u32 at PS + 64 + 4w
// (PS + 104).
@inline function kara32(w: usize): u64 {
  const v = load<u64>(PS + (w < 8 ? w << 3 : 96));
  const mid = <u64>load<u32>(PS + (w < 8 ? 64 + (w << 2) : 104));
  return v ^ (((v ^ (v >> 32) ^ mid) & 0xFFFFFFFF) << 16);
}

// Product i of a run, in the order of ACC (x0 low, high, mid; x1 ...; x0 ^ x1 ...).
@inline function prod(i: usize): u64 {
  if (ASC_FEATURE_SIMD) return kara32(i == 2 ? 4 : i == 3 ? 2 : i == 4 ? 3 : i);
  else return sum(i);
}

// y = (y ^ x_1) * H^n ^ x_2 * H^(n-1) ^ ... ^ x_n * H for n <= AGG blocks at
// src; y is 16 bytes (big-endian halves).
function ghashRun(hk: usize, y: usize, src: usize, n: usize): void {
  if (ASC_FEATURE_SIMD) {
    operandsV(limbs(v128.xor(v128.load(src), v128.load(y))), XS, false);
    for (let j: usize = 1, x = XS + GROUPS * 32; j < n; j++, x += GROUPS * 32) {
      operandsV(limbs(v128.load(src + (j << 4))), x, false);
    }
    for (let g: usize = 0; g < GROUPS; g++) group(hk, g, n);
  } else {
    for (let j: usize = 0; j < n; j++) {
      let x1 = bswap<u64>(load<u64>(src + (j << 4))), x0 = bswap<u64>(load<u64>(src + (j << 4), 8));
      if (j == 0) {
        x1 ^= bswap<u64>(load<u64>(y));
        x0 ^= bswap<u64>(load<u64>(y, 8));
      }
      products(x1, x0, hk + POWERS + (n - 1 - j) * POWER, j == 0);
    }
  }
  // Karatsuba recombination of the three 64 x 64 products.
  const ll = prod(0), lh = prod(1), lm = prod(2) ^ ll ^ lh;
  const l0 = ll ^ (lm << 32), l1 = lh ^ (lm >> 32);
  const hl = prod(3), hh = prod(4), hm = prod(5) ^ hl ^ hh;
  const h0 = hl ^ (hm << 32), h1 = hh ^ (hm >> 32);
  const ml = prod(6), mh = prod(7), mm = prod(8) ^ ml ^ mh;
  const m0 = ml ^ (mm << 32) ^ l0 ^ h0, m1 = mh ^ (mm >> 32) ^ l1 ^ h1;
  reduce(y, l0, l1 ^ m0, h0 ^ m1, h1);
}

// y = the 256-bit carry-less product p3:p2:p1:p0 of two blocks read as
// integers, reduced: shifted left by one for the reflected order, then
// reduced modulo the GHASH polynomial.
@inline function reduce(y: usize, p0: u64, p1: u64, p2: u64, p3: u64): void {
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
  // Bytes of XS in use (cleared at the end).
  const used = (n < run ? n : run) * GROUPS * 32;
  while (n > 0) {
    const m = n < run ? n : run;
    ghashRun(hk, y, src, m);
    src += m << 4;
    n -= m;
  }
  if (ASC_FEATURE_SIMD) {
    memory.fill(XS, 0, used);
    memory.fill(PS, 0, 112);
  } else {
    memory.fill(ACC, 0, 9 * 16);
  }
}

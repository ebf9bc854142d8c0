// GHASH (SP 800-38D 6.4) in constant time: carry-less multiplication built
// from ordinary integer multiplies of operands "with holes" (every fourth
// bit kept, so carries never reach a bit that is kept), no table lookups.
//
// A block is read as a 128-bit big-endian integer, in which bit 127 - i is
// the coefficient of x^i (the reflected convention of the standard).

// The hash subkey in multiplier form: for each of the nine 32-bit operands
// of a two-level Karatsuba product (h0, h1, h0^h1 of the low 64-bit half,
// the same of the high half and of their XOR), its four masked classes.
export const GHASH_KEY_SIZE: usize = 9 * 4 * 8;

const M0: u64 = 0x1111111111111111;
const M1: u64 = 0x2222222222222222;
const M2: u64 = 0x4444444444444444;
const M3: u64 = 0x8888888888888888;

@inline function classes(dst: usize, h: u64): void {
  store<u64>(dst, h & (M0 & 0xFFFFFFFF));
  store<u64>(dst, h & (M1 & 0xFFFFFFFF), 8);
  store<u64>(dst, h & (M2 & 0xFFFFFFFF), 16);
  store<u64>(dst, h & (M3 & 0xFFFFFFFF), 24);
}

@inline function operands64(dst: usize, h: u64): void {
  const lo = h & 0xFFFFFFFF, hi = h >> 32;
  classes(dst, lo);
  classes(dst + 32, hi);
  classes(dst + 64, lo ^ hi);
}

// Prepares the multiplier for H, given as 16 bytes.
export function ghashKey(hk: usize, h: usize): void {
  const h1 = bswap<u64>(load<u64>(h)), h0 = bswap<u64>(load<u64>(h, 8));
  operands64(hk, h0);
  operands64(hk + 96, h1);
  operands64(hk + 192, h0 ^ h1);
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

// y = (y ^ block) * H for n blocks; y is 16 bytes (big-endian halves).
export function ghashBlocks(hk: usize, y: usize, src: usize, n: usize): void {
  let y1 = load<u64>(y), y0 = load<u64>(y, 8); // byte-swapped below
  y1 = bswap<u64>(y1);
  y0 = bswap<u64>(y0);
  for (let i: usize = 0; i < n; i++) {
    const x1 = y1 ^ bswap<u64>(load<u64>(src)), x0 = y0 ^ bswap<u64>(load<u64>(src, 8));
    src += 16;
    const xm = x0 ^ x1;
    // Three 64 x 64 products, each a Karatsuba of three 32 x 32 ones.
    const a0 = x0 & 0xFFFFFFFF, a1 = x0 >> 32;
    const ll = bm(a0, hk), lh = bm(a1, hk + 32);
    const lm = bm(a0 ^ a1, hk + 64) ^ ll ^ lh;
    const l0 = ll ^ (lm << 32), l1 = lh ^ (lm >> 32);
    const b0 = x1 & 0xFFFFFFFF, b1 = x1 >> 32;
    const hl = bm(b0, hk + 96), hh = bm(b1, hk + 128);
    const hm = bm(b0 ^ b1, hk + 160) ^ hl ^ hh;
    const h0 = hl ^ (hm << 32), h1 = hh ^ (hm >> 32);
    const c0 = xm & 0xFFFFFFFF, c1 = xm >> 32;
    const ml = bm(c0, hk + 192), mh = bm(c1, hk + 224);
    const mm = bm(c0 ^ c1, hk + 256) ^ ml ^ mh;
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
    y1 = q3 ^ d1 ^ e ^ (e >> 1) ^ (e >> 2) ^ (e >> 7);
    y0 = q2 ^ d0;
  }
  store<u64>(y, bswap<u64>(y1));
  store<u64>(y, bswap<u64>(y0), 8);
}

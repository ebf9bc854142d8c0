// The SHA-256 message schedule four words at a time (SIMD build): expands a
// 64-byte block into WK[t] = W[t] + K[t] for the rounds, which then need one
// load per round instead of the scalar schedule's shifts and adds.
import { K256 } from './sha2-rounds.generated';

export const WK: usize = memory.data(64 * 4, 16);

@inline function rotr4(x: v128, n: i32): v128 {
  return v128.or(i32x4.shr_u(x, n), i32x4.shl(x, 32 - n));
}

@inline function sigma0(x: v128): v128 {
  return v128.xor(v128.xor(rotr4(x, 7), rotr4(x, 18)), i32x4.shr_u(x, 3));
}

@inline function sigma1(x: v128): v128 {
  return v128.xor(v128.xor(rotr4(x, 17), rotr4(x, 19)), i32x4.shr_u(x, 10));
}

export function sha256ScheduleSimd(src: usize): void {
  const zero = i32x4.splat(0);
  // Big-endian words, four per vector.
  let x0 = i8x16.shuffle(v128.load(src, 0), zero, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
  let x1 = i8x16.shuffle(v128.load(src, 16), zero, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
  let x2 = i8x16.shuffle(v128.load(src, 32), zero, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
  let x3 = i8x16.shuffle(v128.load(src, 48), zero, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
  v128.store(WK, i32x4.add(x0, v128.load(K256, 0)), 0);
  v128.store(WK, i32x4.add(x1, v128.load(K256, 16)), 16);
  v128.store(WK, i32x4.add(x2, v128.load(K256, 32)), 32);
  v128.store(WK, i32x4.add(x3, v128.load(K256, 48)), 48);
  for (let t: usize = 64; t < 256; t += 16) {
    // W[t..t+3] = W[t-16..] + s0(W[t-15..]) + W[t-7..] + s1(W[t-2..]); the last two
    // lanes of s1 depend on the first two results, hence the two halves.
    const w15 = i8x16.shuffle(x0, x1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
    const w7 = i8x16.shuffle(x2, x3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
    const base = i32x4.add(i32x4.add(x0, sigma0(w15)), w7);
    const lo = i32x4.add(base, sigma1(i8x16.shuffle(x3, zero, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)));
    const w = i32x4.add(lo, sigma1(i8x16.shuffle(lo, zero, 16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7)));
    v128.store(WK + t, i32x4.add(w, v128.load(K256 + t)));
    x0 = x1; x1 = x2; x2 = x3; x3 = w;
  }
}

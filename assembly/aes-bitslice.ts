// Bitsliced AES rounds over eight bit planes, generic over the plane word:
//  - v128 (SIMD build): 8 blocks per batch. Plane b is 16 bytes, byte p is
//    state byte p (FIPS 197 order, row r + 4 * column c) and bit j of it is
//    bit b of that byte in block j. Every byte permutation of AES (ShiftRows,
//    the column rotations of MixColumns) is then one byte swizzle by a fixed
//    mask per plane.
//  - u64 (scalar build): 4 blocks per batch. Bit 4m + j of plane b is bit b
//    of state byte m = c + 4r of block j, so a row is a 16-bit field: the
//    column rotations are 64-bit rotations and ShiftRows rotates each field.
// Nothing indexes memory or branches on key or data: the S-box is a circuit
// (aes-sbox.ts), the permutations are fixed.
import { sboxPlanes, X, A, N } from './aes-sbox';
import { invSboxPlanes } from './aes-invsbox.generated';
import { swizzle } from './swizzle';

export const PLANES_BYTES: usize = ASC_FEATURE_SIMD ? 128 : 64; // 8 planes of one batch
export const LANES: usize = ASC_FEATURE_SIMD ? 8 : 4; // blocks per batch

const Q: usize = memory.data(128, 16); // the planes being worked on
const COPIES: usize = memory.data(128, 16); // a round key once per lane

@inline function ld<T>(q: usize, b: usize): T {
  return load<T>(q + b * sizeof<T>());
}

@inline function st<T>(q: usize, b: usize, v: T): void {
  store<T>(q + b * sizeof<T>(), v);
}

@inline function shl<T>(a: T, s: i32): T {
  if (isVector<T>()) return i64x2.shl(a, s);
  else return a << <T>s;
}

@inline function shr<T>(a: T, s: i32): T {
  if (isVector<T>()) return i64x2.shr_u(a, s);
  else return a >> <T>s;
}

@inline function splat<T>(m: u64): T {
  if (isVector<T>()) return i64x2.splat(m);
  else return <T>m;
}

// ---- layout-specific permutations ----

// The byte permutations of the SIMD build as swizzles by constant masks:
// V8 sees that every index is below 16 and emits a bare pshufb (with a mask
// loaded from memory it must also saturate the indices first); it builds the
// masks from immediates or reloads them from the stack, off the data's path.
@inline function perm(x: v128, which: usize): v128 {
  if (which == 0) return swizzle(x, i8x16(0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11)); // ShiftRows
  if (which == 1) return swizzle(x, i8x16(0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3)); // InvShiftRows
  if (which == 2) return swizzle(x, i8x16(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12)); // rot1
  return swizzle(x, i8x16(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13)); // rot2
}

@inline function shiftRows<T>(x: T): T {
  if (isVector<T>()) return perm(x, 0);
  else {
    return (x & 0x000000000000FFFF)
      | ((x >> 4) & 0x000000000FFF0000) | ((x << 12) & 0x00000000F0000000)
      | ((x >> 8) & 0x000000FF00000000) | ((x << 8) & 0x0000FF0000000000)
      | ((x >> 12) & 0x000F000000000000) | ((x << 4) & 0xFFF0000000000000);
  }
}

@inline function invShiftRows<T>(x: T): T {
  if (isVector<T>()) return perm(x, 1);
  else {
    return (x & 0x000000000000FFFF)
      | ((x << 4) & 0x00000000FFF00000) | ((x >> 12) & 0x00000000000F0000)
      | ((x >> 8) & 0x000000FF00000000) | ((x << 8) & 0x0000FF0000000000)
      | ((x << 12) & 0xF000000000000000) | ((x >> 4) & 0x0FFF000000000000);
  }
}

// Row r of the result is row r + 1 (mod 4) of x, in every column.
@inline function rot1<T>(x: T): T {
  if (isVector<T>()) return perm(x, 2);
  else return rotr<T>(x, 16);
}

@inline function rot2<T>(x: T): T {
  if (isVector<T>()) return perm(x, 3);
  else return rotr<T>(x, 32);
}

// ---- transposition between blocks and planes ----

// Exchanges the bits selected by `lo` in a with the bits selected by
// `lo << s` in b: three rounds of it (s = 1, 2, 4) transpose every 8x8 bit
// matrix made of byte k of eight words, which is its own inverse.
@inline function swap<T>(q: usize, i: usize, j: usize, lo: u64, s: i32): void {
  const a = ld<T>(q, i), b = ld<T>(q, j), m = splat<T>(lo);
  st<T>(q, i, X<T>(A<T>(a, m), shl<T>(A<T>(b, m), s)));
  st<T>(q, j, X<T>(A<T>(shr<T>(a, s), m), A<T>(b, N<T>(m))));
}

function transpose<T>(q: usize): void {
  swap<T>(q, 0, 1, 0x5555555555555555, 1); swap<T>(q, 2, 3, 0x5555555555555555, 1);
  swap<T>(q, 4, 5, 0x5555555555555555, 1); swap<T>(q, 6, 7, 0x5555555555555555, 1);
  swap<T>(q, 0, 2, 0x3333333333333333, 2); swap<T>(q, 1, 3, 0x3333333333333333, 2);
  swap<T>(q, 4, 6, 0x3333333333333333, 2); swap<T>(q, 5, 7, 0x3333333333333333, 2);
  swap<T>(q, 0, 4, 0x0F0F0F0F0F0F0F0F, 4); swap<T>(q, 1, 5, 0x0F0F0F0F0F0F0F0F, 4);
  swap<T>(q, 2, 6, 0x0F0F0F0F0F0F0F0F, 4); swap<T>(q, 3, 7, 0x0F0F0F0F0F0F0F0F, 4);
}

// Scalar layout: word w = 4h + j holds, in byte k, byte m = 2k + h (row-major)
// of block j, so that after the transposition bit 8k + w = 4m + j. For h = 0
// that is bytes 0, 8, 1, 9, 2, 10, 3, 11 of the block (FIPS 197 order), for
// h = 1 bytes 4, 12, 5, 13, 6, 14, 7, 15: two 32-bit words, byte-interleaved.
@inline function spread(x: u32): u64 {
  let v = <u64>x;
  v = (v | (v << 16)) & 0x0000FFFF0000FFFF;
  return (v | (v << 8)) & 0x00FF00FF00FF00FF;
}

@inline function compact(v: u64): u32 {
  v &= 0x00FF00FF00FF00FF;
  v = (v | (v >> 8)) & 0x0000FFFF0000FFFF;
  return <u32>(v | (v >> 16));
}

// Loads n (1..LANES) blocks from src into the planes Q; missing blocks are zero.
function loadBlocks(src: usize, n: usize): void {
  if (ASC_FEATURE_SIMD) {
    for (let j: usize = 0; j < 8; j++) v128.store(Q + (j << 4), j < n ? v128.load(src + (j << 4)) : i64x2.splat(0));
    transpose<v128>(Q);
  } else {
    for (let j: usize = 0; j < 4; j++) {
      let lo: u64 = 0, hi: u64 = 0;
      if (j < n) {
        const b = src + (j << 4);
        lo = spread(load<u32>(b)) | (spread(load<u32>(b, 8)) << 8);
        hi = spread(load<u32>(b, 4)) | (spread(load<u32>(b, 12)) << 8);
      }
      store<u64>(Q + (j << 3), lo);
      store<u64>(Q + ((j + 4) << 3), hi);
    }
    transpose<u64>(Q);
  }
}

function storeBlocks(dst: usize, n: usize): void {
  if (ASC_FEATURE_SIMD) {
    transpose<v128>(Q);
    for (let j: usize = 0; j < n; j++) v128.store(dst + (j << 4), v128.load(Q + (j << 4)));
  } else {
    transpose<u64>(Q);
    for (let j: usize = 0; j < n; j++) {
      const lo = load<u64>(Q + (j << 3)), hi = load<u64>(Q + ((j + 4) << 3)), b = dst + (j << 4);
      store<u32>(b, compact(lo));
      store<u32>(b, compact(lo >> 8), 8);
      store<u32>(b, compact(hi), 4);
      store<u32>(b, compact(hi >> 8), 12);
    }
  }
}

// ---- round keys ----

// Writes the planes of one 16-byte round key: every lane of a byte position
// all-ones where the key bit is set (the scalar build transposes LANES
// copies of the key to get them).
export function roundKeyPlanes(rk: usize, dst: usize): void {
  if (ASC_FEATURE_SIMD) {
    // Byte p of plane b is all-ones exactly where bit b of key byte p is set.
    const k = v128.load(rk);
    for (let b = 0; b < 8; b++) v128.store(dst + (<usize>b << 4), i8x16.ne(v128.and(k, i32x4.splat(0x01010101 << b)), i32x4.splat(0)));
    return;
  }
  for (let j: usize = 0; j < LANES; j++) memory.copy(COPIES + (j << 4), rk, 16);
  loadBlocks(COPIES, LANES);
  memory.copy(dst, Q, PLANES_BYTES);
  memory.fill(COPIES, 0, 128);
  memory.fill(Q, 0, 128);
}

// ---- rounds ----

@inline function addRoundKey<T>(q: usize, k: usize): void {
  for (let b: usize = 0; b < 8; b++) st<T>(q, b, X<T>(ld<T>(q, b), ld<T>(k, b)));
}

// (ShiftRows when sr,) MixColumns, then AddRoundKey. With t = a ^ rot1(a)
// per row, the column output is xtime(t) ^ rot1(a) ^ rot2(t); xtime on
// planes moves plane b to b + 1 and folds plane 7 into planes 0, 1, 3 and 4
// (the polynomial 0x11b).
@inline function plane<T>(q: usize, b: usize, sr: bool): T {
  return sr ? shiftRows<T>(ld<T>(q, b)) : ld<T>(q, b);
}

// No key when it serves InvMixColumns (keyed is a constant at every call).
@inline function key<T>(x: T, k: usize, b: usize, keyed: bool): T {
  return keyed ? X<T>(x, ld<T>(k, b)) : x;
}

@inline function mixColumns<T>(q: usize, k: usize, sr: bool, keyed: bool = true): void {
  const a0 = plane<T>(q, 0, sr), a1 = plane<T>(q, 1, sr), a2 = plane<T>(q, 2, sr), a3 = plane<T>(q, 3, sr);
  const a4 = plane<T>(q, 4, sr), a5 = plane<T>(q, 5, sr), a6 = plane<T>(q, 6, sr), a7 = plane<T>(q, 7, sr);
  const r0 = rot1<T>(a0), r1 = rot1<T>(a1), r2 = rot1<T>(a2), r3 = rot1<T>(a3);
  const r4 = rot1<T>(a4), r5 = rot1<T>(a5), r6 = rot1<T>(a6), r7 = rot1<T>(a7);
  const t0 = X<T>(a0, r0), t1 = X<T>(a1, r1), t2 = X<T>(a2, r2), t3 = X<T>(a3, r3);
  const t4 = X<T>(a4, r4), t5 = X<T>(a5, r5), t6 = X<T>(a6, r6), t7 = X<T>(a7, r7);
  st<T>(q, 0, X<T>(X<T>(t7, r0), key<T>(rot2<T>(t0), k, 0, keyed)));
  st<T>(q, 1, X<T>(X<T>(X<T>(t0, t7), r1), key<T>(rot2<T>(t1), k, 1, keyed)));
  st<T>(q, 2, X<T>(X<T>(t1, r2), key<T>(rot2<T>(t2), k, 2, keyed)));
  st<T>(q, 3, X<T>(X<T>(X<T>(t2, t7), r3), key<T>(rot2<T>(t3), k, 3, keyed)));
  st<T>(q, 4, X<T>(X<T>(X<T>(t3, t7), r4), key<T>(rot2<T>(t4), k, 4, keyed)));
  st<T>(q, 5, X<T>(X<T>(t4, r5), key<T>(rot2<T>(t5), k, 5, keyed)));
  st<T>(q, 6, X<T>(X<T>(t5, r6), key<T>(rot2<T>(t6), k, 6, keyed)));
  st<T>(q, 7, X<T>(X<T>(t6, r7), key<T>(rot2<T>(t7), k, 7, keyed)));
}

// InvShiftRows, AddRoundKey, then InvMixColumns = MixColumns o (a -> a ^
// 4 * (a ^ rot2(a))), from the factorisation of its polynomial (Daemen and
// Rijmen, The Design of Rijndael, 4.1.3).
@inline function invPlane<T>(q: usize, k: usize, b: usize): T {
  return X<T>(invShiftRows<T>(ld<T>(q, b)), ld<T>(k, b));
}

@inline function invMixColumns<T>(q: usize, k: usize): void {
  const a0 = invPlane<T>(q, k, 0), a1 = invPlane<T>(q, k, 1), a2 = invPlane<T>(q, k, 2), a3 = invPlane<T>(q, k, 3);
  const a4 = invPlane<T>(q, k, 4), a5 = invPlane<T>(q, k, 5), a6 = invPlane<T>(q, k, 6), a7 = invPlane<T>(q, k, 7);
  const w0 = X<T>(a0, rot2<T>(a0)), w1 = X<T>(a1, rot2<T>(a1)), w2 = X<T>(a2, rot2<T>(a2)), w3 = X<T>(a3, rot2<T>(a3));
  const w4 = X<T>(a4, rot2<T>(a4)), w5 = X<T>(a5, rot2<T>(a5)), w6 = X<T>(a6, rot2<T>(a6)), w7 = X<T>(a7, rot2<T>(a7));
  // 4 * w on planes: [w6, w6^w7, w0^w7, w1^w6, w2^w6^w7, w3^w7, w4, w5]
  st<T>(q, 0, X<T>(a0, w6));
  st<T>(q, 1, X<T>(a1, X<T>(w6, w7)));
  st<T>(q, 2, X<T>(a2, X<T>(w0, w7)));
  st<T>(q, 3, X<T>(a3, X<T>(w1, w6)));
  st<T>(q, 4, X<T>(a4, X<T>(X<T>(w2, w6), w7)));
  st<T>(q, 5, X<T>(a5, X<T>(w3, w7)));
  st<T>(q, 6, X<T>(a6, w4));
  st<T>(q, 7, X<T>(a7, w5));
  mixColumns<T>(q, 0, false, false);
}

@inline function permute<T>(q: usize, inverse: bool): void {
  for (let b: usize = 0; b < 8; b++) st<T>(q, b, inverse ? invShiftRows<T>(ld<T>(q, b)) : shiftRows<T>(ld<T>(q, b)));
}

function encryptPlanes<T>(rk: usize, nr: usize): void {
  const step = 8 * sizeof<T>();
  addRoundKey<T>(Q, rk);
  for (let r: usize = 1; r < nr; r++) {
    sboxPlanes<T>(Q);
    mixColumns<T>(Q, rk + r * step, true);
  }
  sboxPlanes<T>(Q);
  permute<T>(Q, false);
  addRoundKey<T>(Q, rk + nr * step);
}

function decryptPlanes<T>(rk: usize, nr: usize): void {
  const step = 8 * sizeof<T>();
  addRoundKey<T>(Q, rk + nr * step);
  // InvSubBytes commutes with InvShiftRows, which moves into invMixColumns.
  for (let r = nr - 1; r > 0; r--) {
    invSboxPlanes<T>(Q);
    invMixColumns<T>(Q, rk + r * step);
  }
  invSboxPlanes<T>(Q);
  permute<T>(Q, true);
  addRoundKey<T>(Q, rk);
}

// Encrypts (or decrypts) n whole blocks from src to dst (which may be equal)
// under the round-key planes rk of an nr-round schedule.
export function cryptBlocks(rk: usize, nr: usize, src: usize, dst: usize, n: usize, decrypt: bool): void {
  while (n > 0) {
    const m = n < LANES ? n : LANES;
    loadBlocks(src, m);
    if (ASC_FEATURE_SIMD) {
      if (decrypt) decryptPlanes<v128>(rk, nr);
      else encryptPlanes<v128>(rk, nr);
    } else {
      if (decrypt) decryptPlanes<u64>(rk, nr);
      else encryptPlanes<u64>(rk, nr);
    }
    storeBlocks(dst, m);
    src += m << 4;
    dst += m << 4;
    n -= m;
  }
  memory.fill(Q, 0, 128);
}

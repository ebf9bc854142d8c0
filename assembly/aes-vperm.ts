// One AES block at a time for the SIMD build, for the modes that cannot
// batch (CBC encryption, CMAC, CBC-MAC, CCM's MAC) and for short inputs.
// SubBytes computes the inverse in GF(2^8) through the tower field
// GF(16)[y]/(y^2 + y + 8): every step is a 16-entry lookup done with
// i8x16.swizzle (a register permutation, whose timing does not depend on
// the index) or plain vector arithmetic. Multiplying two GF(16) elements
// adds their logarithms; log 0 is 0x40, so any sum involving it indexes
// past the 16 entries and swizzle returns 0, as the product should be.
// The tables sit in linear memory (loading them from a fixed address is
// cheaper than materializing v128 constants, and the scalar build must not
// see v128 globals); scripts/gen-aes-tower.mjs derives them and checks the
// whole S-box.

const TABLES: usize = memory.data<u8>([
  // standard basis to tower basis, by low and high input nibble (tower byte = h << 4 | l)
  0x00, 0x01, 0x20, 0x21, 0x46, 0x47, 0x66, 0x67, 0x4c, 0x4d, 0x6c, 0x6d, 0x0a, 0x0b, 0x2a, 0x2b,
  0x00, 0x3c, 0xd5, 0xe9, 0x34, 0x08, 0xe1, 0xdd, 0xe5, 0xd9, 0x30, 0x0c, 0xd1, 0xed, 0x04, 0x38,
  // GF(16) = GF(2)[z]/(z^4 + z + 1): logarithms to base z, z^i for i < 16 and for 16 <= i < 32
  0x40, 0x00, 0x01, 0x04, 0x02, 0x08, 0x05, 0x0a, 0x03, 0x0e, 0x09, 0x07, 0x06, 0x0d, 0x0b, 0x0c,
  0x01, 0x02, 0x04, 0x08, 0x03, 0x06, 0x0c, 0x0b, 0x05, 0x0a, 0x07, 0x0e, 0x0f, 0x0d, 0x09, 0x01,
  0x02, 0x04, 0x08, 0x03, 0x06, 0x0c, 0x0b, 0x05, 0x0a, 0x07, 0x0e, 0x0f, 0x0d, 0x09, 0x01, 0x02,
  // 8 h^2, l^2 and log(1 / d)
  0x00, 0x08, 0x06, 0x0e, 0x0b, 0x03, 0x0d, 0x05, 0x0a, 0x02, 0x0c, 0x04, 0x01, 0x09, 0x07, 0x0f,
  0x00, 0x01, 0x04, 0x05, 0x03, 0x02, 0x07, 0x06, 0x0c, 0x0d, 0x08, 0x09, 0x0f, 0x0e, 0x0b, 0x0a,
  0x40, 0x00, 0x0e, 0x0b, 0x0d, 0x07, 0x0a, 0x05, 0x0c, 0x01, 0x06, 0x08, 0x09, 0x02, 0x04, 0x03,
  // tower basis back to the standard one, composed with the S-box affine map (0x63 in OH)
  0x00, 0x1f, 0xb2, 0xad, 0xab, 0xb4, 0x19, 0x06, 0x36, 0x29, 0x84, 0x9b, 0x9d, 0x82, 0x2f, 0x30,
  0x63, 0x31, 0x5d, 0x0f, 0x06, 0x54, 0x38, 0x6a, 0x03, 0x51, 0x3d, 0x6f, 0x66, 0x34, 0x58, 0x0a,
]);

@inline function nibbleLo(x: v128): v128 {
  return v128.and(x, i8x16.splat(0x0f));
}

@inline function nibbleHi(x: v128): v128 {
  return v128.and(i16x8.shr_u(x, 4), i8x16.splat(0x0f));
}

// exp(la + lb): the sum (at most 28, or >= 0x40 for a zero factor) picks
// from EXPLO below 16 and from EXPHI from 16 on.
@inline function mulLogs(la: v128, lb: v128): v128 {
  const s = i8x16.add(la, lb);
  return v128.or(i8x16.swizzle(v128.load(TABLES, 48), s), i8x16.swizzle(v128.load(TABLES, 64), i8x16.sub(s, i8x16.splat(16))));
}

// (h y + l)^-1 = (h / d) y + (h + l) / d with d = 8 h^2 + h l + l^2.
@inline function subBytes(x: v128): v128 {
  const t = v128.xor(i8x16.swizzle(v128.load(TABLES, 0), nibbleLo(x)), i8x16.swizzle(v128.load(TABLES, 16), nibbleHi(x)));
  const l = nibbleLo(t), h = nibbleHi(t);
  const lh = i8x16.swizzle(v128.load(TABLES, 32), h), ll = i8x16.swizzle(v128.load(TABLES, 32), l);
  const d = v128.xor(v128.xor(i8x16.swizzle(v128.load(TABLES, 80), h), i8x16.swizzle(v128.load(TABLES, 96), l)), mulLogs(lh, ll));
  const ld = i8x16.swizzle(v128.load(TABLES, 112), d);
  const ih = mulLogs(lh, ld);
  const il = mulLogs(i8x16.swizzle(v128.load(TABLES, 32), v128.xor(h, l)), ld);
  return v128.xor(i8x16.swizzle(v128.load(TABLES, 128), il), i8x16.swizzle(v128.load(TABLES, 144), ih));
}

// Encrypts one block under the byte round keys rk (FIPS 197 order).
export function encryptBlockVperm(rk: usize, nr: usize, src: usize, dst: usize): void {
  let s = v128.xor(v128.load(src), v128.load(rk));
  for (let r: usize = 1; r < nr; r++) s = round(s, v128.load(rk + (r << 4)));
  v128.store(dst, lastRound(s, v128.load(rk + (nr << 4))));
}

// A round: SubBytes; ShiftRows, and ShiftRows followed by the row rotation
// of MixColumns, as single shuffles; MixColumns as xtime(t) ^ rot1 ^ rot2(t)
// with t = a ^ rot1(a); AddRoundKey.
@inline function round(s: v128, k: v128): v128 {
  const y = subBytes(s);
  const a = i8x16.shuffle(y, y, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11);
  const r1 = i8x16.shuffle(y, y, 5, 10, 15, 0, 9, 14, 3, 4, 13, 2, 7, 8, 1, 6, 11, 12);
  const t = v128.xor(a, r1);
  const xt = v128.xor(i8x16.add(t, t), v128.and(i8x16.lt_s(t, i8x16.splat(0)), i8x16.splat(0x1b)));
  const r2 = i8x16.shuffle(t, t, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  return v128.xor(v128.xor(xt, r1), v128.xor(r2, k));
}

@inline function lastRound(s: v128, k: v128): v128 {
  const y = subBytes(s);
  return v128.xor(i8x16.shuffle(y, y, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11), k);
}

// Two independent blocks in place, rounds interleaved: a serial chain (a
// CBC-MAC) hides the latency of a counter block computed beside it.
export function encryptPairVperm(rk: usize, nr: usize, a: usize, b: usize): void {
  const k0 = v128.load(rk);
  let x = v128.xor(v128.load(a), k0), y = v128.xor(v128.load(b), k0);
  for (let r: usize = 1; r < nr; r++) {
    const k = v128.load(rk + (r << 4));
    x = round(x, k);
    y = round(y, k);
  }
  const k = v128.load(rk + (nr << 4));
  v128.store(a, lastRound(x, k));
  v128.store(b, lastRound(y, k));
}

// SubWord for the key schedule: the S-box on the four bytes of w.
export function subWordVperm(w: u32): u32 {
  return i32x4.extract_lane(subBytes(i32x4.splat(w)), 0);
}

// One AES block at a time for the SIMD build, for the modes that cannot
// batch (CBC encryption, CMAC, CBC-MAC, CCM's MAC) and for short inputs,
// where the latency of a round is what counts.
// Between rounds the state stays in the basis of the tower field
// GF(16)[y]/(y^2 + y + 8), where SubBytes' inversion is a handful of 16-entry
// lookups done with i8x16.swizzle (a register permutation, whose timing does
// not depend on the index) and plain vector arithmetic; the round keys are
// kept in that basis too (vpermKeys). Multiplying two GF(16) elements adds
// their logarithms; log 0 is 0x40, so any sum involving it indexes past the
// 16 entries and swizzle returns 0, as the product should be. Each table
// that follows a product takes the sum of logarithms itself (composed with
// exp, in a half for sums below 16 and one for sums from 16 on, whose index
// comes from tables of logarithms minus 16), which saves a lookup level.
// The S-box output is needed once and doubled (MixColumns) in the tower
// basis, or in the standard basis after the last round; the affine
// constant 0x63 of the S-box is folded into the round keys.
// The tables sit in linear memory (loading them from a fixed address is
// cheaper than materializing v128 constants, and the scalar build must not
// see v128 globals); scripts/gen-aes-tower.mjs derives them and checks every
// lookup sequence below against the FIPS 197 S-box for all 256 inputs.

// TL/TH: standard basis to tower basis, by low and high nibble (tower byte =
// h << 4 | l). LOG: logarithms to base z in GF(16) = GF(2)[z]/(z^4 + z + 1);
// EXPLO/EXPHI: z^i for i < 16 and 16 <= i < 32; SQNU, SQ: 8 h^2 and l^2;
// LOGINV: log(1 / d); *16: minus 16. O, S1, S2: the affine map without its
// constant (A) of the inverse, A in the tower basis, and 2 A in the tower
// basis; _L/_L16 by the logarithm of the low half of the inverse, _H/_H16 of
// the high half.
const TABLES: usize = memory.data<u8>([
  0x00, 0x01, 0x20, 0x21, 0x46, 0x47, 0x66, 0x67, 0x4c, 0x4d, 0x6c, 0x6d, 0x0a, 0x0b, 0x2a, 0x2b, // TL
  0x00, 0x3c, 0xd5, 0xe9, 0x34, 0x08, 0xe1, 0xdd, 0xe5, 0xd9, 0x30, 0x0c, 0xd1, 0xed, 0x04, 0x38, // TH
  0x40, 0x00, 0x01, 0x04, 0x02, 0x08, 0x05, 0x0a, 0x03, 0x0e, 0x09, 0x07, 0x06, 0x0d, 0x0b, 0x0c, // LOG
  0x30, 0xf0, 0xf1, 0xf4, 0xf2, 0xf8, 0xf5, 0xfa, 0xf3, 0xfe, 0xf9, 0xf7, 0xf6, 0xfd, 0xfb, 0xfc, // LOG16
  0x01, 0x02, 0x04, 0x08, 0x03, 0x06, 0x0c, 0x0b, 0x05, 0x0a, 0x07, 0x0e, 0x0f, 0x0d, 0x09, 0x01, // EXPLO
  0x02, 0x04, 0x08, 0x03, 0x06, 0x0c, 0x0b, 0x05, 0x0a, 0x07, 0x0e, 0x0f, 0x0d, 0x09, 0x01, 0x02, // EXPHI
  0x00, 0x08, 0x06, 0x0e, 0x0b, 0x03, 0x0d, 0x05, 0x0a, 0x02, 0x0c, 0x04, 0x01, 0x09, 0x07, 0x0f, // SQNU
  0x00, 0x01, 0x04, 0x05, 0x03, 0x02, 0x07, 0x06, 0x0c, 0x0d, 0x08, 0x09, 0x0f, 0x0e, 0x0b, 0x0a, // SQ
  0x40, 0x00, 0x0e, 0x0b, 0x0d, 0x07, 0x0a, 0x05, 0x0c, 0x01, 0x06, 0x08, 0x09, 0x02, 0x04, 0x03, // LOGINV
  0x30, 0xf0, 0xfe, 0xfb, 0xfd, 0xf7, 0xfa, 0xf5, 0xfc, 0xf1, 0xf6, 0xf8, 0xf9, 0xf2, 0xf4, 0xf3, // LOGINV16
  0x1f, 0xb2, 0xab, 0x36, 0xad, 0x19, 0x9d, 0x9b, 0xb4, 0x84, 0x06, 0x2f, 0x30, 0x82, 0x29, 0x1f, // O_L
  0xb2, 0xab, 0x36, 0xad, 0x19, 0x9d, 0x9b, 0xb4, 0x84, 0x06, 0x2f, 0x30, 0x82, 0x29, 0x1f, 0xb2, // O_L16
  0x52, 0x3e, 0x65, 0x60, 0x6c, 0x5b, 0x05, 0x0c, 0x37, 0x5e, 0x09, 0x3b, 0x69, 0x57, 0x32, 0x52, // O_H
  0x3e, 0x65, 0x60, 0x6c, 0x5b, 0x05, 0x0c, 0x37, 0x5e, 0x09, 0x3b, 0x69, 0x57, 0x32, 0x52, 0x3e, // O_H16
  0x17, 0x2c, 0x5d, 0x8f, 0x3b, 0x71, 0xd2, 0xb4, 0x4a, 0xa3, 0x66, 0xfe, 0xe9, 0xc5, 0x98, 0x17, // S1_L
  0x2c, 0x5d, 0x8f, 0x3b, 0x71, 0xd2, 0xb4, 0x4a, 0xa3, 0x66, 0xfe, 0xe9, 0xc5, 0x98, 0x17, 0x2c, // S1_L16
  0x28, 0xc3, 0xa6, 0xe1, 0xeb, 0x65, 0x47, 0x0a, 0x8e, 0x22, 0x4d, 0x84, 0xac, 0x6f, 0xc9, 0x28, // S1_H
  0xc3, 0xa6, 0xe1, 0xeb, 0x65, 0x47, 0x0a, 0x8e, 0x22, 0x4d, 0x84, 0xac, 0x6f, 0xc9, 0x28, 0xc3, // S1_H16
  0xc3, 0xf6, 0x3f, 0xeb, 0x35, 0xc9, 0xd4, 0xde, 0xfc, 0x1d, 0x0a, 0x22, 0xe1, 0x17, 0x28, 0xc3, // S2_L
  0xf6, 0x3f, 0xeb, 0x35, 0xc9, 0xd4, 0xde, 0xfc, 0x1d, 0x0a, 0x22, 0xe1, 0x17, 0x28, 0xc3, 0xf6, // S2_L16
  0x76, 0xd7, 0xbd, 0xd1, 0xa1, 0x6a, 0x6c, 0x70, 0xcb, 0x06, 0x1c, 0xbb, 0xcd, 0x1a, 0xa7, 0x76, // S2_H
  0xd7, 0xbd, 0xd1, 0xa1, 0x6a, 0x6c, 0x70, 0xcb, 0x06, 0x1c, 0xbb, 0xcd, 0x1a, 0xa7, 0x76, 0xd7, // S2_H16
]);
const TL: usize = 0;
const TH: usize = 16;
const LOG: usize = 32;
const LOG16: usize = 48;
const EXPLO: usize = 64;
const EXPHI: usize = 80;
const SQNU: usize = 96;
const SQ: usize = 112;
const LOGINV: usize = 128;
const LOGINV16: usize = 144;
const O_L: usize = 160;
const O_L16: usize = 176;
const O_H: usize = 192;
const O_H16: usize = 208;
const S1_L: usize = 224;
const S1_L16: usize = 240;
const S1_H: usize = 256;
const S1_H16: usize = 272;
const S2_L: usize = 288;
const S2_L16: usize = 304;
const S2_H: usize = 320;
const S2_H16: usize = 336;

@inline function nibbleLo(x: v128): v128 {
  return v128.and(x, i8x16.splat(0x0f));
}

@inline function nibbleHi(x: v128): v128 {
  return v128.and(i16x8.shr_u(x, 4), i8x16.splat(0x0f));
}

@inline function lookup(table: usize, i: v128): v128 {
  return i8x16.swizzle(v128.load(TABLES + table), i);
}

@inline function toTower(x: v128): v128 {
  return v128.xor(lookup(TL, nibbleLo(x)), lookup(TH, nibbleHi(x)));
}

// A linear image (tables at `table`) of the inverse, from the sums of
// logarithms of its halves.
@inline function image(table: usize, il: v128, il16: v128, ih: v128, ih16: v128): v128 {
  return v128.xor(
    v128.xor(lookup(table, il), lookup(table + 16, il16)),
    v128.xor(lookup(table + 32, ih), lookup(table + 48, ih16)));
}

// A round on the state t (tower basis) with round key k: SubBytes, ShiftRows
// and, unless last, MixColumns, whose rotations of the rows compose with
// ShiftRows into one shuffle each. (h y + l)^-1 = (h / d) y + (h + l) / d
// with d = 8 h^2 + h l + l^2. A middle round returns the tower basis, the
// last one the standard basis.
@inline function round(t: v128, k: v128, last: bool): v128 {
  const l = nibbleLo(t), h = nibbleHi(t);
  const lh = lookup(LOG, h);
  const hl = v128.or(lookup(EXPLO, i8x16.add(lh, lookup(LOG, l))), lookup(EXPHI, i8x16.add(lh, lookup(LOG16, l))));
  const d = v128.xor(v128.xor(lookup(SQNU, h), lookup(SQ, l)), hl);
  const ld = lookup(LOGINV, d), ld16 = lookup(LOGINV16, d), lhl = lookup(LOG, v128.xor(h, l));
  const il = i8x16.add(lhl, ld), il16 = i8x16.add(lhl, ld16), ih = i8x16.add(lh, ld), ih16 = i8x16.add(lh, ld16);
  if (last) {
    const o = image(O_L, il, il16, ih, ih16);
    return v128.xor(i8x16.shuffle(o, o, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11), k);
  }
  // Row r of a column: 2 a[r] + 3 a[r + 1] + a[r + 2] + a[r + 3].
  const s1 = image(S1_L, il, il16, ih, ih16), s2 = image(S2_L, il, il16, ih, ih16), s3 = v128.xor(s1, s2);
  return v128.xor(
    v128.xor(i8x16.shuffle(s2, s2, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11),
      i8x16.shuffle(s3, s3, 5, 10, 15, 0, 9, 14, 3, 4, 13, 2, 7, 8, 1, 6, 11, 12)),
    v128.xor(v128.xor(i8x16.shuffle(s1, s1, 10, 15, 0, 5, 14, 3, 4, 9, 2, 7, 8, 13, 6, 11, 12, 1),
      i8x16.shuffle(s1, s1, 15, 0, 5, 10, 3, 4, 9, 14, 7, 8, 13, 2, 11, 12, 1, 6)), k));
}

// Round keys in the form the rounds take them (nr + 1 blocks at dst, from
// the FIPS 197 ones at rk): key 0 as is (added before the change of basis),
// the middle ones in the tower basis with the S-box constant, the last with
// the constant in the standard basis.
export function vpermKeys(dst: usize, rk: usize, nr: usize): void {
  const c = i8x16.splat(0x63), ct = toTower(c);
  v128.store(dst, v128.load(rk));
  for (let r: usize = 1; r < nr; r++) v128.store(dst + (r << 4), v128.xor(toTower(v128.load(rk + (r << 4))), ct));
  v128.store(dst + (nr << 4), v128.xor(v128.load(rk + (nr << 4)), c));
}

// Encrypts one block under the round keys rk (vpermKeys).
export function encryptBlockVperm(rk: usize, nr: usize, src: usize, dst: usize): void {
  let t = toTower(v128.xor(v128.load(src), v128.load(rk)));
  for (let r: usize = 1; r < nr; r++) t = round(t, v128.load(rk + (r << 4)), false);
  v128.store(dst, round(t, v128.load(rk + (nr << 4)), true));
}

// The CBC chain x = E(x ^ m_i) over n blocks from src, the chaining value
// kept in a register; each x is also written to dst unless dst is 0 (MACs).
export function chainVperm(rk: usize, nr: usize, chain: usize, src: usize, dst: usize, n: usize): void {
  const k0 = v128.load(rk), kn = v128.load(rk + (nr << 4));
  let x = v128.load(chain);
  for (let i: usize = 0; i < n; i++) {
    let t = toTower(v128.xor(v128.xor(x, v128.load(src + (i << 4))), k0));
    for (let r: usize = 1; r < nr; r++) t = round(t, v128.load(rk + (r << 4)), false);
    x = round(t, kn, true);
    if (dst) v128.store(dst + (i << 4), x);
  }
  v128.store(chain, x);
}

// SubWord for the key schedule: the S-box on the four bytes of w (every
// column of the state is w, so ShiftRows leaves it alone).
export function subWordVperm(w: u32): u32 {
  return i32x4.extract_lane(round(toTower(i32x4.splat(w)), i8x16.splat(0x63), true), 0);
}

// One AES block at a time for the SIMD build, for the modes that cannot
// batch (CBC encryption, CMAC, CBC-MAC, CCM's MAC) and for short inputs,
// where the latency of a round is what counts.
// Between rounds the state stays in a basis where a byte is i + k W with i,
// k in the subfield GF(16) (the nibbles i << 4 | k): there SubBytes'
// inversion takes five 16-entry lookups done with i8x16.swizzle (a register
// permutation, whose timing does not depend on the index) and the output
// two, in the manner of Hamburg's vector-permute AES: with j = i + k,
// io = j + 1 / (1/i + a/k) and jo = i + 1 / (1/j + a/k) determine the
// inverse linearly through 1/io and 1/jo, which the output tables fold in.
// "1/0" is 0x80, an index for which swizzle returns 0, and that covers
// every zero case. The S-box output is needed once and doubled
// (MixColumns) in the round basis, or in the standard basis after the last
// round; the affine constant 0x63 of the S-box is folded into the round keys,
// which are kept in the round basis too (vpermKeys).
// The tables sit in linear memory (loading them from a fixed address is
// cheaper than materializing v128 constants, and the scalar build must not
// see v128 globals); scripts/gen-aes-tower.mjs derives them (choosing W and
// a) and checks the lookup sequence below against the FIPS 197 S-box for all
// 256 inputs.

// TL/TH: standard basis to round basis, by low and high nibble. INV: 1/n;
// INVA: a/n. O, S1, S2 by io (_U) and by jo (_T): the affine map without its
// constant (A) of the inverse, and A and 2 A in the round basis.
const TABLES: usize = memory.data<u8>([
  0x00, 0x10, 0x36, 0x26, 0x7c, 0x6c, 0x4a, 0x5a, 0x5c, 0x4c, 0x6a, 0x7a, 0x20, 0x30, 0x16, 0x06, // TL
  0x00, 0x37, 0xa9, 0x9e, 0x77, 0x40, 0xde, 0xe9, 0x1e, 0x29, 0xb7, 0x80, 0x69, 0x5e, 0xc0, 0xf7, // TH
  0x80, 0x01, 0x08, 0x0d, 0x0f, 0x06, 0x05, 0x0e, 0x02, 0x0c, 0x0b, 0x0a, 0x09, 0x03, 0x07, 0x04, // INV
  0x80, 0x0d, 0x05, 0x06, 0x0a, 0x02, 0x03, 0x07, 0x0c, 0x0b, 0x04, 0x09, 0x08, 0x01, 0x0f, 0x0e, // INVA
  0x00, 0x54, 0xb7, 0x01, 0xf2, 0x11, 0xb6, 0xa6, 0xf3, 0x55, 0x10, 0x44, 0xe3, 0xa7, 0x45, 0xe2, // O_U
  0x00, 0x4b, 0x2a, 0xb5, 0xc2, 0xa3, 0x9f, 0x89, 0x77, 0xfe, 0x16, 0x5d, 0x61, 0x3c, 0xe8, 0xd4, // O_T
  0x00, 0x3c, 0xda, 0x10, 0xc1, 0x27, 0xca, 0xfd, 0xd1, 0x2c, 0x37, 0x0b, 0xe6, 0xed, 0x1b, 0xf6, // S1_U
  0x00, 0x0d, 0xc3, 0xec, 0x5f, 0x91, 0x2f, 0x52, 0xb3, 0xe1, 0x7d, 0x70, 0xce, 0xbe, 0x9c, 0x22, // S1_T
  0x00, 0xeb, 0x85, 0x36, 0xf1, 0x9f, 0xb3, 0x1a, 0xc7, 0xdd, 0xa9, 0x42, 0x6e, 0x2c, 0x74, 0x58, // S2_U
  0x00, 0x63, 0x3c, 0xf9, 0x2f, 0x70, 0xc5, 0x4c, 0xd6, 0x9a, 0x89, 0xea, 0x5f, 0xb5, 0x13, 0xa6, // S2_T
]);
const TL: usize = 0;
const TH: usize = 16;
const INV: usize = 32;
const INVA: usize = 48;
const O_U: usize = 64;
const O_T: usize = 80;
const S1_U: usize = 96;
const S1_T: usize = 112;
const S2_U: usize = 128;
const S2_T: usize = 144;

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

// A linear image (tables at `table`) of the inverse.
@inline function image(table: usize, io: v128, jo: v128): v128 {
  return v128.xor(lookup(table, io), lookup(table + 16, jo));
}

// A round on the state t (round basis) with round key k: SubBytes, ShiftRows
// and, unless last, MixColumns, whose rotations of the rows compose with
// ShiftRows into one shuffle each. A middle round returns the round basis,
// the last one the standard basis.
@inline function round(t: v128, k: v128, last: bool): v128 {
  const i = nibbleHi(t), l = nibbleLo(t), j = v128.xor(i, l);
  const ak = lookup(INVA, l);
  const io = v128.xor(lookup(INV, v128.xor(lookup(INV, i), ak)), j);
  const jo = v128.xor(lookup(INV, v128.xor(lookup(INV, j), ak)), i);
  if (last) {
    const o = image(O_U, io, jo);
    return v128.xor(i8x16.shuffle(o, o, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11), k);
  }
  // Row r of a column: 2 a[r] + 3 a[r + 1] + a[r + 2] + a[r + 3].
  const s1 = image(S1_U, io, jo), s2 = image(S2_U, io, jo), s3 = v128.xor(s1, s2);
  return v128.xor(
    v128.xor(i8x16.shuffle(s2, s2, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11),
      i8x16.shuffle(s3, s3, 5, 10, 15, 0, 9, 14, 3, 4, 13, 2, 7, 8, 1, 6, 11, 12)),
    v128.xor(v128.xor(i8x16.shuffle(s1, s1, 10, 15, 0, 5, 14, 3, 4, 9, 2, 7, 8, 13, 6, 11, 12, 1),
      i8x16.shuffle(s1, s1, 15, 0, 5, 10, 3, 4, 9, 14, 7, 8, 13, 2, 11, 12, 1, 6)), k));
}

// Round keys in the form the rounds take them (nr + 1 blocks at dst, from
// the FIPS 197 ones at rk): key 0 as is (added before the change of basis),
// the middle ones in the round basis with the S-box constant, the last with
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

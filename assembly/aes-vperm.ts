// One AES block at a time for the SIMD builds, for the modes that cannot
// batch (CBC encryption, CMAC, CBC-MAC, CCM's MAC, with CCM's counter block
// beside it) and for short inputs, where the latency of a round is what
// counts.
// Between rounds the state stays in a basis where a byte is i + k W with i,
// k in the subfield GF(16) (the nibbles i << 4 | k): there SubBytes'
// inversion takes five 16-entry lookups done with i8x16.swizzle (a register
// permutation, whose timing does not depend on the index) and the output
// two, in the manner of Hamburg's vector-permute AES: with j = i + k,
// io = j + 1 / (1/i + a/k) and jo = i + 1 / (1/j + a/k) determine the
// inverse linearly through 1/io and 1/jo, which the output tables fold in.
// "1/0" is 0x80, an index for which swizzle returns 0, and that covers
// every zero case. A round looks up S(x) and 2 S(x) in the round basis; the
// affine constant 0x63 of the S-box is folded into the round keys, which are
// kept in the round basis too (vpermKeys).
// V8 turns every swizzle into a saturating add (so that indices above 15
// give 0) and a pshufb, both on the same two shuffle ports (the Relaxed SIMD
// build's swizzle is the pshufb alone, see swizzle.ts): a lookup costs
// about 4 cycles of latency and the ports are the scarce resource, so a round
// does as few swizzles as it can (nine lookups, three shuffles). MixColumns
// adds four terms, one per row rotation; its term 3 S(x) = S(x) + 2 S(x) is
// an XOR of lookups, the last to be ready, and is left where the S-box took
// its input: the state's byte order drifts from round to round instead
// (ShiftRows included, period 8, the shuffles of the other terms repeat with
// period 4), each round key is stored in the order of its round, and the last
// round's ShiftRows restores the standard order.
// The tables and masks sit in linear memory (loading them is cheaper than
// v128 constants, which V8 rebuilds through general-purpose registers at
// every use, and the scalar build must not see v128 globals);
// scripts/gen-aes-tower.mjs derives them (choosing W and a) and checks the
// lookup sequence below against the FIPS 197 S-box for all 256 inputs, and
// whole blocks in this order against a plain AES.
import { swizzle } from './swizzle';

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
// Shuffles of the MixColumns terms 2 S(x) (row rotation 0), S(x) (rotation
// 2) and S(x) (rotation 3) by round; the last round's ShiftRows into the
// standard order (after 9 and after 13 middle rounds); the order of a round
// key after one middle round (applied r mod PERIOD times for round r).
const MASKS: usize = memory.data<u8>([
  0x0f, 0x0c, 0x0d, 0x0e, 0x03, 0x00, 0x01, 0x02, 0x07, 0x04, 0x05, 0x06, 0x0b, 0x08, 0x09, 0x0a, // round 4n + 1, term 0
  0x05, 0x06, 0x07, 0x04, 0x09, 0x0a, 0x0b, 0x08, 0x0d, 0x0e, 0x0f, 0x0c, 0x01, 0x02, 0x03, 0x00, // round 4n + 1, term 2
  0x0a, 0x0b, 0x08, 0x09, 0x0e, 0x0f, 0x0c, 0x0d, 0x02, 0x03, 0x00, 0x01, 0x06, 0x07, 0x04, 0x05, // round 4n + 1, term 3
  0x0b, 0x08, 0x09, 0x0a, 0x0f, 0x0c, 0x0d, 0x0e, 0x03, 0x00, 0x01, 0x02, 0x07, 0x04, 0x05, 0x06, // round 4n + 2, term 0
  0x09, 0x0a, 0x0b, 0x08, 0x0d, 0x0e, 0x0f, 0x0c, 0x01, 0x02, 0x03, 0x00, 0x05, 0x06, 0x07, 0x04, // round 4n + 2, term 2
  0x02, 0x03, 0x00, 0x01, 0x06, 0x07, 0x04, 0x05, 0x0a, 0x0b, 0x08, 0x09, 0x0e, 0x0f, 0x0c, 0x0d, // round 4n + 2, term 3
  0x07, 0x04, 0x05, 0x06, 0x0b, 0x08, 0x09, 0x0a, 0x0f, 0x0c, 0x0d, 0x0e, 0x03, 0x00, 0x01, 0x02, // round 4n + 3, term 0
  0x0d, 0x0e, 0x0f, 0x0c, 0x01, 0x02, 0x03, 0x00, 0x05, 0x06, 0x07, 0x04, 0x09, 0x0a, 0x0b, 0x08, // round 4n + 3, term 2
  0x0a, 0x0b, 0x08, 0x09, 0x0e, 0x0f, 0x0c, 0x0d, 0x02, 0x03, 0x00, 0x01, 0x06, 0x07, 0x04, 0x05, // round 4n + 3, term 3
  0x03, 0x00, 0x01, 0x02, 0x07, 0x04, 0x05, 0x06, 0x0b, 0x08, 0x09, 0x0a, 0x0f, 0x0c, 0x0d, 0x0e, // round 4n + 4, term 0
  0x01, 0x02, 0x03, 0x00, 0x05, 0x06, 0x07, 0x04, 0x09, 0x0a, 0x0b, 0x08, 0x0d, 0x0e, 0x0f, 0x0c, // round 4n + 4, term 2
  0x02, 0x03, 0x00, 0x01, 0x06, 0x07, 0x04, 0x05, 0x0a, 0x0b, 0x08, 0x09, 0x0e, 0x0f, 0x0c, 0x0d, // round 4n + 4, term 3
  0x05, 0x0e, 0x07, 0x0c, 0x09, 0x02, 0x0b, 0x00, 0x0d, 0x06, 0x0f, 0x04, 0x01, 0x0a, 0x03, 0x08, // last round
  0x0d, 0x06, 0x0f, 0x04, 0x01, 0x0a, 0x03, 0x08, 0x05, 0x0e, 0x07, 0x0c, 0x09, 0x02, 0x0b, 0x00, // last round, AES-256
  0x03, 0x0c, 0x09, 0x06, 0x07, 0x00, 0x0d, 0x0a, 0x0b, 0x04, 0x01, 0x0e, 0x0f, 0x08, 0x05, 0x02, // layout
]);
const PERIOD: usize = 8;
const MASK_PERIOD: usize = 4;
const LAST128: usize = 192;
const LAST256: usize = 208;
const LAYOUT: usize = 224;

@inline function nibbleLo(x: v128): v128 {
  return v128.and(x, i8x16.splat(0x0f));
}

@inline function nibbleHi(x: v128): v128 {
  return v128.and(i16x8.shr_u(x, 4), i8x16.splat(0x0f));
}

@inline function lookup(table: usize, i: v128): v128 {
  return swizzle(v128.load(TABLES + table), i);
}

@inline function permute(x: v128, mask: usize): v128 {
  return swizzle(x, v128.load(MASKS + mask));
}

@inline function toTower(x: v128): v128 {
  return v128.xor(lookup(TL, nibbleLo(x)), lookup(TH, nibbleHi(x)));
}

// q + 1 / (1/p + a/k): io from (i, j), jo from (j, i).
@inline function half(p: v128, q: v128, ak: v128): v128 {
  return v128.xor(lookup(INV, v128.xor(lookup(INV, p), ak)), q);
}

// Middle round r (a constant once inlined) on the state t, with the key of
// round r: SubBytes, ShiftRows, MixColumns, AddRoundKey.
@inline function mid(t: v128, rk: usize, r: usize): v128 {
  const i = nibbleHi(t), l = nibbleLo(t), j = v128.xor(i, l);
  const ak = lookup(INVA, l);
  const io = half(i, j, ak), jo = half(j, i, ak);
  const s2 = v128.xor(lookup(S2_U, io), lookup(S2_T, jo)), s1 = v128.xor(lookup(S1_U, io), lookup(S1_T, jo));
  const m = ((r - 1) % MASK_PERIOD) * 48;
  const s3 = v128.xor(v128.xor(s1, v128.load(rk + (r << 4))), s2);
  return v128.xor(v128.xor(permute(s1, m + 16), permute(s1, m + 32)), v128.xor(permute(s2, m), s3));
}

// Rounds 1 to nr - 1, unrolled so that every key offset and mask is a
// constant (nr is public: the branch does not depend on secrets).
@inline function middle(t: v128, rk: usize, nr: usize): v128 {
  t = mid(t, rk, 1); t = mid(t, rk, 2); t = mid(t, rk, 3); t = mid(t, rk, 4); t = mid(t, rk, 5);
  t = mid(t, rk, 6); t = mid(t, rk, 7); t = mid(t, rk, 8); t = mid(t, rk, 9);
  if (nr > 10) {
    t = mid(t, rk, 10); t = mid(t, rk, 11); t = mid(t, rk, 12); t = mid(t, rk, 13);
  }
  return t;
}

// The last round's ShiftRows into the standard order.
@inline function lastMask(nr: usize): usize {
  return nr > 10 ? LAST256 : LAST128;
}

// The last round's output in the standard basis, before its key, from io
// and jo.
@inline function lastOut(io: v128, jo: v128, nr: usize): v128 {
  return permute(v128.xor(lookup(O_U, io), lookup(O_T, jo)), lastMask(nr));
}

// Round keys in the form the rounds take them (nr + 1 blocks at dst, from
// the FIPS 197 ones at rk): key 0 as is (added before the change of basis),
// the middle ones in the round basis with the S-box constant and in the byte
// order of their round, the last with the constant in the standard basis.
export function vpermKeys(dst: usize, rk: usize, nr: usize): void {
  const c = i8x16.splat(0x63), ct = toTower(c);
  v128.store(dst, v128.load(rk));
  for (let r: usize = 1; r < nr; r++) {
    let k = v128.xor(toTower(v128.load(rk + (r << 4))), ct);
    for (let s: usize = 0; s < r % PERIOD; s++) k = permute(k, LAYOUT);
    v128.store(dst + (r << 4), k);
  }
  v128.store(dst + (nr << 4), v128.xor(v128.load(rk + (nr << 4)), c));
}

@inline function encrypt(x: v128, rk: usize, nr: usize): v128 {
  const t = middle(toTower(v128.xor(x, v128.load(rk))), rk, nr);
  const i = nibbleHi(t), l = nibbleLo(t), j = v128.xor(i, l);
  const ak = lookup(INVA, l);
  return v128.xor(lastOut(half(i, j, ak), half(j, i, ak), nr), v128.load(rk + (nr << 4)));
}

// Encrypts one block under the round keys rk (vpermKeys).
export function encryptBlockVperm(rk: usize, nr: usize, src: usize, dst: usize): void {
  v128.store(dst, encrypt(v128.load(src), rk, nr));
}

// The CBC chain x = E(x ^ m_i) over n blocks from src, each x also written
// to dst unless dst is 0 (MACs). The chaining value stays in the round
// basis: the last round looks up S(x) there (less the last key, whose part
// joins the message's), so no change of basis sits between two blocks; the
// standard basis is computed only where it is stored.
export function chainVperm(rk: usize, nr: usize, chain: usize, src: usize, dst: usize, n: usize): void {
  if (n == 0) return;
  const kn = v128.load(rk + (nr << 4)), last = lastMask(nr);
  const c = toTower(v128.xor(kn, v128.load(rk)));
  let y = v128.xor(toTower(v128.load(chain)), toTower(kn));
  let io = y, jo = y;
  for (let b: usize = 0; b < n; b++) {
    const t = middle(v128.xor(y, v128.xor(toTower(v128.load(src + (b << 4))), c)), rk, nr);
    const i = nibbleHi(t), l = nibbleLo(t), j = v128.xor(i, l);
    const ak = lookup(INVA, l);
    io = half(i, j, ak); jo = half(j, i, ak);
    y = permute(v128.xor(lookup(S1_U, io), lookup(S1_T, jo)), last);
    if (dst) v128.store(dst + (b << 4), v128.xor(lastOut(io, jo, nr), kn));
  }
  v128.store(chain, v128.xor(lastOut(io, jo, nr), kn));
}

// SubWord for the key schedule: the S-box on the four bytes of w, lane by
// lane (no ShiftRows: the word is in every lane group alike).
export function subWordVperm(w: u32): u32 {
  const t = toTower(i32x4.splat(w));
  const i = nibbleHi(t), l = nibbleLo(t), j = v128.xor(i, l);
  const ak = lookup(INVA, l);
  const o = v128.xor(lookup(O_U, half(i, j, ak)), lookup(O_T, half(j, i, ak)));
  return i32x4.extract_lane(v128.xor(o, i8x16.splat(0x63)), 0);
}

// The standard-basis counter block with the big-endian 32-bit count, as
// SP 800-38C formats it, from its first 12 bytes in head.
@inline function counterBlock(head: v128, count: u32): v128 {
  return i32x4.replace_lane(head, 3, bswap<u32>(count));
}

// CCM's two AES chains over n whole blocks: the CBC-MAC at mac (serial) and
// the counter mode from the counter block at ctr (advanced by n). A block
// of each goes through the rounds side by side, so the counter block uses
// the shuffle ports while the MAC chain waits on its lookups' latency. The
// keystream runs one block ahead, which lets decryption MAC the plaintext it
// has just produced; the block computed past the end is dropped.
export function ccmVperm(rk: usize, nr: usize, mac: usize, ctr: usize, src: usize, dst: usize, n: usize, decrypt: bool): void {
  const k0 = v128.load(rk), kn = v128.load(rk + (nr << 4)), last = lastMask(nr);
  const c = toTower(v128.xor(kn, k0));
  const head = v128.load(ctr);
  let count = bswap<u32>(load<u32>(ctr, 12));
  let y = v128.xor(toTower(v128.load(mac)), toTower(kn));
  let ks = encrypt(head, rk, nr);
  let io = y, jo = y;
  for (let b: usize = 0; b < n; b++) {
    const x = v128.load(src + (b << 4)), o = v128.xor(x, ks);
    v128.store(dst + (b << 4), o);
    let t = v128.xor(y, v128.xor(toTower(decrypt ? o : x), c));
    let u = toTower(v128.xor(counterBlock(head, ++count), k0));
    for (let r: usize = 1; r < nr; r++) {
      t = mid(t, rk, r);
      u = mid(u, rk, r);
    }
    const i = nibbleHi(t), l = nibbleLo(t), j = v128.xor(i, l), ak = lookup(INVA, l);
    const i2 = nibbleHi(u), l2 = nibbleLo(u), j2 = v128.xor(i2, l2), ak2 = lookup(INVA, l2);
    io = half(i, j, ak); jo = half(j, i, ak);
    y = permute(v128.xor(lookup(S1_U, io), lookup(S1_T, jo)), last);
    ks = v128.xor(lastOut(half(i2, j2, ak2), half(j2, i2, ak2), nr), kn);
  }
  v128.store(mac, v128.xor(lastOut(io, jo, nr), kn));
  v128.store(ctr, counterBlock(head, count));
}

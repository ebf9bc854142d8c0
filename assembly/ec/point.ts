// Point arithmetic in homogeneous projective coordinates (X : Y : Z), x = X/Z,
// y = Y/Z, with the complete formulas of Renes, Costello and Batina (2015,
// algorithms 4 and 5 for a = -3): no input, the identity (0 : 1 : 0)
// included, takes a different path, which is what the constant-time
// generator multiplication needs. SEC1 decoding and encoding live here too. Coordinates are in Montgomery form; a point is three elements of
// feBytes bytes, an affine point two. Outputs may alias inputs.
import { fmul, fsqr, fadd, fsub, fieldModulus } from './fields.generated';
import { feBytes, feCopy, feSetZero, feEqual, feInv, fePow, feToMont, feFromMont, feFromBytes, feToBytes, feLess, FE_BYTES } from './field';
import { fieldP, curveB, curveOne, curveSqrtExp, scalarBytes } from './curve';

export const POINT_BYTES: usize = 3 * FE_BYTES;

// Temporaries of the formulas, in one block so pointWipe() clears them at once.
const TEMPS: usize = memory.data(12 * <i32>FE_BYTES, 16);
const T0: usize = TEMPS + 0 * FE_BYTES;
const T1: usize = TEMPS + 1 * FE_BYTES;
const T2: usize = TEMPS + 2 * FE_BYTES;
const T3: usize = TEMPS + 3 * FE_BYTES;
const T4: usize = TEMPS + 4 * FE_BYTES;
const T5: usize = TEMPS + 5 * FE_BYTES;
const U: usize = TEMPS + 6 * FE_BYTES;
const V: usize = TEMPS + 7 * FE_BYTES;
const W: usize = TEMPS + 8 * FE_BYTES;
const X: usize = TEMPS + 9 * FE_BYTES;
const Y: usize = TEMPS + 10 * FE_BYTES;
const Z3: usize = TEMPS + 11 * FE_BYTES;

@inline function times3(f: u32, o: usize, a: usize): void {
  fadd(f, T5, a, a);
  fadd(f, o, T5, a);
}

// The shared tail of all three formulas: from U = 3(...b...), T1 = yy and the
// pair products it forms X3 = w*t3 - t4*x, Y3 = w*v + y*x, Z3 = v*t4 + t3*y.
function finish(f: u32, o: usize, t3: usize, t4: usize): void {
  const n = feBytes(f);
  fsub(f, V, T1, U);
  fadd(f, W, T1, U);
  fmul(f, Z3, W, V); // Y3 part
  fmul(f, T2, Y, X);
  fadd(f, o + n, Z3, T2);
  fmul(f, Z3, W, t3); // X3
  fmul(f, T2, t4, X);
  fsub(f, o, Z3, T2);
  fmul(f, Z3, V, t4); // Z3
  fmul(f, T2, t3, Y);
  fadd(f, o + 2 * n, Z3, T2);
}

// Complete addition (algorithm 4): o = p + q.
export function pointAdd(c: u32, o: usize, p: usize, q: usize): void {
  const f = fieldP(c), n = feBytes(f), b = curveB(c);
  fmul(f, T0, p, q); // xx
  fmul(f, T1, p + n, q + n); // yy
  fmul(f, T2, p + 2 * n, q + 2 * n); // zz
  fadd(f, T3, p, p + n); fadd(f, T4, q, q + n); fmul(f, T3, T3, T4);
  fadd(f, T4, T0, T1); fsub(f, T3, T3, T4); // xy pairs
  fadd(f, T4, p + n, p + 2 * n); fadd(f, U, q + n, q + 2 * n); fmul(f, T4, T4, U);
  fadd(f, U, T1, T2); fsub(f, T4, T4, U); // yz pairs
  fadd(f, X, p, p + 2 * n); fadd(f, U, q, q + 2 * n); fmul(f, X, X, U);
  fadd(f, U, T0, T2); fsub(f, X, X, U); // xz pairs
  fmul(f, U, b, T2); fsub(f, U, X, U); times3(f, U, U); // 3(xz - b zz)
  times3(f, T2, T2); // 3 zz
  fmul(f, X, b, X); fsub(f, X, X, T2); fsub(f, X, X, T0); times3(f, X, X); // 3(b xz - 3zz - xx)
  times3(f, Y, T0); fsub(f, Y, Y, T2); // 3xx - 3zz
  finish(f, o, T3, T4);
}

// Complete mixed addition (algorithm 5): o = p + (qx, qy); q must not be the identity.
export function pointAddAffine(c: u32, o: usize, p: usize, q: usize): void {
  const f = fieldP(c), n = feBytes(f), b = curveB(c);
  fmul(f, T0, p, q); // xx
  fmul(f, T1, p + n, q + n); // yy
  fadd(f, T3, p, p + n); fadd(f, T4, q, q + n); fmul(f, T3, T3, T4);
  fadd(f, T4, T0, T1); fsub(f, T3, T3, T4); // xy pairs
  fmul(f, T4, q + n, p + 2 * n); fadd(f, T4, T4, p + n); // yz pairs
  fmul(f, X, q, p + 2 * n); fadd(f, X, X, p); // xz pairs
  fmul(f, U, b, p + 2 * n); fsub(f, U, X, U); times3(f, U, U);
  times3(f, T2, p + 2 * n);
  fmul(f, X, b, X); fsub(f, X, X, T2); fsub(f, X, X, T0); times3(f, X, X);
  times3(f, Y, T0); fsub(f, Y, Y, T2);
  finish(f, o, T3, T4);
}

export function pointSetIdentity(c: u32, o: usize): void {
  const f = fieldP(c), n = feBytes(f);
  feSetZero(f, o);
  feCopy(f, o + n, curveOne(c));
  feSetZero(f, o + 2 * n);
}

// Affine (x, y) in Montgomery form from a projective point that is not the
// identity; constant time.
export function pointToAffine(c: u32, x: usize, y: usize, p: usize): void {
  const f = fieldP(c), n = feBytes(f);
  feInv(f, T0, p + 2 * n);
  fmul(f, x, p, T0);
  fmul(f, y, p + n, T0);
}

// y^2 == x^3 - 3x + b for Montgomery x, y: all ones when on the curve.
function onCurve(c: u32, x: usize, y: usize): u32 {
  const f = fieldP(c);
  curveRhs(c, T1, x);
  fsqr(f, T2, y);
  return feEqual(f, T1, T2);
}

// o = x^3 - 3x + b.
function curveRhs(c: u32, o: usize, x: usize): void {
  const f = fieldP(c);
  fsqr(f, T0, x);
  fmul(f, T0, T0, x);
  times3(f, T3, x);
  fsub(f, T0, T0, T3);
  fadd(f, o, T0, curveB(c));
}

// Decodes a SEC1 point (0x04 || X || Y, or 0x02/0x03 || X) into projective
// form with Z = 1. Returns false for any other length or prefix, coordinates
// not below p, points off the curve and the identity encoding.
export function pointDecode(c: u32, o: usize, src: usize, len: usize): bool {
  const f = fieldP(c), n = feBytes(f), sb = scalarBytes(c);
  const m = fieldModulus(f);
  const prefix = len ? load<u8>(src) : 0;
  if (len == 1 + 2 * sb && prefix == 4) {
    feFromBytes(f, o, src + 1, sb);
    feFromBytes(f, o + n, src + 1 + sb, sb);
    if (!feLess(f, o, m) || !feLess(f, o + n, m)) return false;
    feToMont(f, o, o);
    feToMont(f, o + n, o + n);
    if (!onCurve(c, o, o + n)) return false;
  } else if (len == 1 + sb && (prefix == 2 || prefix == 3)) {
    feFromBytes(f, o, src + 1, sb);
    if (!feLess(f, o, m)) return false;
    feToMont(f, o, o);
    curveRhs(c, T4, o);
    // p = 3 mod 4 for all three curves: a square root is rhs^((p + 1) / 4).
    fePow(f, o + n, T4, curveSqrtExp(c));
    fsqr(f, T1, o + n);
    if (!feEqual(f, T1, T4)) return false;
    feFromMont(f, T1, o + n);
    if ((load<u32>(T1) & 1) != <u32>(prefix & 1)) {
      feSetZero(f, T0);
      fsub(f, o + n, T0, o + n);
    }
  } else {
    return false;
  }
  feCopy(f, o + 2 * n, curveOne(c));
  return true;
}

// Bytes of a SEC1 encoding: 02/03 || X or 04 || X || Y.
export function pointLength(c: u32, compressed: bool): usize {
  return 1 + (compressed ? 1 : 2) * scalarBytes(c);
}

// Encodes affine Montgomery (x, y) as SEC1; returns the length written.
export function pointEncode(c: u32, dst: usize, x: usize, y: usize, compressed: bool): usize {
  const f = fieldP(c), sb = scalarBytes(c);
  feFromMont(f, T0, x);
  feToBytes(dst + 1, T0, sb);
  feFromMont(f, T0, y);
  if (compressed) {
    store<u8>(dst, 2 | (load<u8>(T0) & 1));
  } else {
    store<u8>(dst, 4);
    feToBytes(dst + 1 + sb, T0, sb);
  }
  return pointLength(c, compressed);
}

// Zeroizes the temporaries after secret-dependent work.
export function pointWipe(): void {
  memory.fill(TEMPS, 0, 12 * FE_BYTES);
}

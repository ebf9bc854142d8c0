// Variable-time point arithmetic in Jacobian coordinates (x = X/Z^2,
// y = Y/Z^3, identity Z = 0) for signature verification, where every input
// is public. Doubling for a = -3 costs 3M + 5S against 13 multiplications
// for the complete projective formula, and verification is mostly doublings.
// Formulas: dbl-2001-b, add-2007-bl and madd-2007-bl (Explicit-Formulas Database).
import { fmul, fsqr, fadd, fsub } from './fields.generated';
import { feBytes, feCopy, feIsZero, feSetZero, FE_BYTES } from './field';
import { fieldP, curveOne } from './curve';

const TEMPS: usize = memory.data(11 * <i32>FE_BYTES, 16);
const A: usize = TEMPS;
const B: usize = TEMPS + FE_BYTES;
const C: usize = TEMPS + 2 * FE_BYTES;
const D: usize = TEMPS + 3 * FE_BYTES;
const E: usize = TEMPS + 4 * FE_BYTES;
const F: usize = TEMPS + 5 * FE_BYTES;
const G: usize = TEMPS + 6 * FE_BYTES;
const H: usize = TEMPS + 7 * FE_BYTES;
const X3: usize = TEMPS + 8 * FE_BYTES;
const Y3: usize = TEMPS + 9 * FE_BYTES;
const Z3: usize = TEMPS + 10 * FE_BYTES;

@inline function isInfinity(f: u32, p: usize): bool {
  return feIsZero(f, p + 2 * feBytes(f)) != 0;
}

export function setInfinity(c: u32, o: usize): void {
  const f = fieldP(c), n = feBytes(f);
  feCopy(f, o, curveOne(c));
  feCopy(f, o + n, curveOne(c));
  feSetZero(f, o + 2 * n);
}

function output(f: u32, o: usize): void {
  const n = feBytes(f);
  feCopy(f, o, X3);
  feCopy(f, o + n, Y3);
  feCopy(f, o + 2 * n, Z3);
}

// o = 2p.
export function jacDouble(c: u32, o: usize, p: usize): void {
  const f = fieldP(c), n = feBytes(f);
  if (isInfinity(f, p)) {
    setInfinity(c, o);
    return;
  }
  const x = p, y = p + n, z = p + 2 * n;
  fsqr(f, A, z); // delta
  fsqr(f, B, y); // gamma
  fmul(f, C, x, B); // beta
  fsub(f, D, x, A);
  fadd(f, E, x, A);
  fmul(f, D, D, E);
  fadd(f, E, D, D);
  fadd(f, D, E, D); // alpha = 3 (x - delta)(x + delta)
  fadd(f, Z3, y, z);
  fsqr(f, Z3, Z3);
  fsub(f, Z3, Z3, B);
  fsub(f, Z3, Z3, A); // (y + z)^2 - gamma - delta
  fsqr(f, X3, D);
  fadd(f, E, C, C); // 2 beta
  fadd(f, E, E, E); // 4 beta
  fsub(f, X3, X3, E);
  fsub(f, X3, X3, E); // alpha^2 - 8 beta
  fsub(f, Y3, E, X3);
  fmul(f, Y3, Y3, D);
  fsqr(f, B, B); // gamma^2
  fadd(f, B, B, B);
  fadd(f, B, B, B);
  fadd(f, B, B, B); // 8 gamma^2
  fsub(f, Y3, Y3, B);
  output(f, o);
}

// The common tail of both additions once U1, S1 (in A, B), H = U2 - U1 and
// r = 2 (S2 - S1) (in H, G) are known and H is not 0; Z3 is already written.
function addTail(f: u32, o: usize): void {
  fadd(f, C, H, H);
  fsqr(f, C, C); // I = (2H)^2
  fmul(f, D, H, C); // J = H I
  fmul(f, E, A, C); // V = U1 I
  fsqr(f, X3, G);
  fsub(f, X3, X3, D);
  fsub(f, X3, X3, E);
  fsub(f, X3, X3, E); // r^2 - J - 2V
  fsub(f, Y3, E, X3);
  fmul(f, Y3, Y3, G);
  fmul(f, B, B, D);
  fadd(f, B, B, B);
  fsub(f, Y3, Y3, B); // r (V - X3) - 2 S1 J
  output(f, o);
}

// o = p + q, for any p and q. Its one caller (oddMultiples: G or a decoded
// key, of prime order n, and multiples below 64 of it) never reaches the
// identity or p = ±q: those branches keep a new caller from a wrong sum.
export function jacAdd(c: u32, o: usize, p: usize, q: usize): void {
  const f = fieldP(c), n = feBytes(f);
  if (isInfinity(f, p)) {
    memory.copy(o, q, 3 * n);
    return;
  }
  if (isInfinity(f, q)) {
    memory.copy(o, p, 3 * n);
    return;
  }
  fsqr(f, E, p + 2 * n); // Z1Z1
  fsqr(f, F, q + 2 * n); // Z2Z2
  fmul(f, A, p, F); // U1
  fmul(f, H, q, E); // U2
  fmul(f, B, p + n, q + 2 * n);
  fmul(f, B, B, F); // S1
  fmul(f, G, q + n, p + 2 * n);
  fmul(f, G, G, E); // S2
  fsub(f, H, H, A); // H
  fsub(f, G, G, B);
  fadd(f, G, G, G); // r
  if (feIsZero(f, H)) {
    if (feIsZero(f, G)) jacDouble(c, o, p);
    else setInfinity(c, o);
    return;
  }
  fadd(f, Z3, p + 2 * n, q + 2 * n);
  fsqr(f, Z3, Z3);
  fsub(f, Z3, Z3, E);
  fsub(f, Z3, Z3, F);
  fmul(f, Z3, Z3, H);
  addTail(f, o);
}

// o = p + (x, y) for an affine point (never the identity).
export function jacAddAffine(c: u32, o: usize, p: usize, q: usize): void {
  const f = fieldP(c), n = feBytes(f);
  if (isInfinity(f, p)) {
    feCopy(f, o, q);
    feCopy(f, o + n, q + n);
    feCopy(f, o + 2 * n, curveOne(c));
    return;
  }
  fsqr(f, E, p + 2 * n); // Z1Z1
  feCopy(f, A, p); // U1 = X1
  fmul(f, H, q, E); // U2
  feCopy(f, B, p + n); // S1 = Y1
  fmul(f, G, q + n, p + 2 * n);
  fmul(f, G, G, E); // S2
  fsub(f, H, H, A);
  fsub(f, G, G, B);
  fadd(f, G, G, G);
  if (feIsZero(f, H)) {
    if (feIsZero(f, G)) jacDouble(c, o, p);
    else setInfinity(c, o);
    return;
  }
  fadd(f, Z3, p + 2 * n, H);
  fsqr(f, Z3, Z3);
  fsub(f, Z3, Z3, E);
  fsqr(f, F, H);
  fsub(f, Z3, Z3, F); // (Z1 + H)^2 - Z1Z1 - HH
  addTail(f, o);
}

// The three NIST prime curves y^2 = x^3 - 3x + b: identification and the
// per-curve constants the point and ECDSA code look up. A curve index c is
// 0 (P-256), 1 (P-384) or 2 (P-521); its fields are 2c (p) and 2c + 1 (n).
import {
  P256_B, P256_GX, P256_GY, P256_ONE, P256_SQRT_EXP,
  P384_B, P384_GX, P384_GY, P384_ONE, P384_SQRT_EXP,
  P521_B, P521_GX, P521_GY, P521_ONE, P521_SQRT_EXP,
} from './fields.generated';

// Curve ids of the ABI are the field sizes in bits.
export function curveIndex(id: u32): i32 {
  return id == 256 ? 0 : id == 384 ? 1 : id == 521 ? 2 : -1;
}

@inline export function fieldP(c: u32): u32 {
  return c << 1;
}

@inline export function fieldN(c: u32): u32 {
  return (c << 1) | 1;
}

// Bytes of a field element or scalar in encodings (32, 48, 66).
@inline export function scalarBytes(c: u32): usize {
  return c == 0 ? 32 : c == 1 ? 48 : 66;
}

// Bits of the group order n (= qlen of RFC 6979).
@inline export function orderBits(c: u32): u32 {
  return c == 0 ? 256 : c == 1 ? 384 : 521;
}

export function curveB(c: u32): usize {
  return c == 0 ? P256_B : c == 1 ? P384_B : P521_B;
}

export function curveGx(c: u32): usize {
  return c == 0 ? P256_GX : c == 1 ? P384_GX : P521_GX;
}

export function curveGy(c: u32): usize {
  return c == 0 ? P256_GY : c == 1 ? P384_GY : P521_GY;
}

// One in Montgomery form of the base field.
export function curveOne(c: u32): usize {
  return c == 0 ? P256_ONE : c == 1 ? P384_ONE : P521_ONE;
}

export function curveSqrtExp(c: u32): usize {
  return c == 0 ? P256_SQRT_EXP : c == 1 ? P384_SQRT_EXP : P521_SQRT_EXP;
}

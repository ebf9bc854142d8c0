// ECDSA (FIPS 186-5) over P-256, P-384 and P-521 with nonces from RFC 6979:
// HMAC_DRBG seeded with the private key and the digest, plus optional extra
// entropy (RFC 6979 section 3.6), so a weak host RNG never leaks the key and
// a deterministic signature is available for known-answer tests. Signatures
// cross the ABI as raw r || s; DER is the host's business.
import { ERR_ALGORITHM, ERR_INVALID, ERR_LENGTH, inMemory, writable } from '../abi';
import { isHash } from '../hash';
import { drbgInstantiate, drbgGenerate, DRBG_CTX_SIZE } from '../drbg';
import { fmul, fsqr, fadd, fsub, fieldModulus } from './fields.generated';
import { feFromBytes, feToBytes, feInRange, feIsZero, feEqual, feLess, feInv, feInvVT, feToMont, feFromMont, feBytes, FE_BYTES } from './field';
import { curveIndex, fieldP, fieldN, scalarBytes, orderBits } from './curve';
import { pointDecode, pointEncode, pointLength, pointToAffine, pointWipe, POINT_BYTES } from './point';
import { baseTable, mulBaseCT, mulDoubleVT, precomputeTables } from './scalarmul';

// Scratch of one call: eight scalars or coordinates, two points, two byte strings.
const SCRATCH_SIZE: usize = 8 * FE_BYTES + 2 * POINT_BYTES + 2 * 72;
const SCRATCH: usize = memory.data(<i32>SCRATCH_SIZE, 16);
const D: usize = SCRATCH; // private key
const E: usize = D + FE_BYTES; // digest as a scalar
const K: usize = E + FE_BYTES; // nonce, then k^-1
const R: usize = K + FE_BYTES;
const S: usize = R + FE_BYTES;
const T: usize = S + FE_BYTES;
const X: usize = T + FE_BYTES;
const Y: usize = X + FE_BYTES;
const P0: usize = Y + FE_BYTES; // points
const P1: usize = P0 + POINT_BYTES;
const KEY_BYTES: usize = P1 + POINT_BYTES; // DRBG output
const DIGEST_BYTES: usize = KEY_BYTES + 72; // bits2octets(h1)
const DRBG: usize = memory.data(<i32>DRBG_CTX_SIZE, 16);

function wipe(): void {
  memory.fill(SCRATCH, 0, SCRATCH_SIZE);
  memory.fill(DRBG, 0, DRBG_CTX_SIZE);
  pointWipe();
}

// bits2int of RFC 6979 section 2.3.2: the leftmost orderBits bits of the
// input as an integer (not reduced).
function bits2int(c: u32, o: usize, src: usize, len: usize): void {
  const f = fieldN(c), sb = scalarBytes(c);
  const use = min(len, sb);
  feFromBytes(f, o, src, use);
  const excess = (<u32>use << 3) - min(<u32>use << 3, orderBits(c));
  if (excess) {
    const words = feBytes(f) >> 2;
    for (let i: usize = 0; i < words; i++) {
      const hi = i + 1 < words ? load<u32>(o + ((i + 1) << 2)) : 0;
      store<u32>(o + (i << 2), (load<u32>(o + (i << 2)) >>> excess) | (hi << (32 - excess)));
    }
  }
}

// x mod n for x < 2n (true of digests after bits2int and of coordinates).
@inline function reduceOnce(c: u32, o: usize, x: usize): void {
  const f = fieldN(c);
  fsub(f, o, x, fieldModulus(f));
}

// Loads the private key and digest; false when the key is not in [1, n - 1].
function loadKeyAndDigest(c: u32, sk: usize, digest: usize, digestLen: usize): bool {
  const fn = fieldN(c);
  feFromBytes(fn, D, sk, scalarBytes(c));
  if (!feInRange(fn, D)) return false;
  bits2int(c, E, digest, digestLen);
  reduceOnce(c, E, E);
  return true;
}

function sign(c: u32, hash: u32, sk: usize, digest: usize, digestLen: usize, extra: usize, extraLen: usize, out: usize): i32 {
  const fn = fieldN(c), sb = scalarBytes(c);
  if (!loadKeyAndDigest(c, sk, digest, digestLen)) return ERR_INVALID;
  // RFC 6979 section 3.2 steps b-g: HMAC_DRBG seeded with int2octets(d),
  // bits2octets(h1) and the extra entropy; each generate yields a candidate k.
  feToBytes(DIGEST_BYTES, E, sb);
  drbgInstantiate(DRBG, hash, sk, sb, DIGEST_BYTES, sb, extra, extraLen);
  for (;;) {
    drbgGenerate(DRBG, KEY_BYTES, sb, 0, 0);
    bits2int(c, K, KEY_BYTES, sb);
    if (feInRange(fn, K) && signWithK(c)) break;
  }
  feToBytes(out, R, sb);
  feToBytes(out + sb, S, sb);
  return <i32>(sb << 1);
}

// r = x(kG) mod n, s = k^-1 (e + r d) for the nonce in K (in [1, n - 1]);
// false when r or s is 0 and another k is needed.
function signWithK(c: u32): bool {
  const fn = fieldN(c), fp = fieldP(c);
  mulBaseCT(c, P0, K);
  pointToAffine(c, X, Y, P0);
  feFromMont(fp, X, X);
  reduceOnce(c, R, X);
  if (feIsZero(fn, R)) return false;
  feToMont(fn, K, K);
  feInv(fn, K, K);
  feToMont(fn, T, R);
  feToMont(fn, S, D);
  fmul(fn, T, T, S);
  feToMont(fn, S, E);
  fadd(fn, T, T, S);
  fmul(fn, S, T, K);
  feFromMont(fn, S, S);
  return !feIsZero(fn, S);
}

function verify(c: u32, pk: usize, pkLen: usize, digest: usize, digestLen: usize, sig: usize): i32 {
  const fn = fieldN(c), fp = fieldP(c), sb = scalarBytes(c), n = feBytes(fp);
  if (!pointDecode(c, P1, pk, pkLen)) return ERR_INVALID;
  feFromBytes(fn, R, sig, sb);
  feFromBytes(fn, S, sig + sb, sb);
  if (!feInRange(fn, R) || !feInRange(fn, S)) return 0;
  bits2int(c, E, digest, digestLen);
  reduceOnce(c, E, E);
  // u1 = e / s, u2 = r / s: a Montgomery product of eR and the plain
  // inverse w = 1/s is the plain e w.
  feInvVT(fn, S, S);
  feToMont(fn, T, E);
  fmul(fn, D, T, S);
  feToMont(fn, T, R);
  fmul(fn, K, T, S);
  mulDoubleVT(c, P0, D, K, P1);
  const z = P0 + 2 * n;
  if (feIsZero(fp, z)) return 0;
  // x(R) mod n == r without an inversion: x = X / Z^2, so compare X with
  // r Z^2, and with (r + n) Z^2 when r + n < p.
  fsqr(fp, Y, z);
  feToMont(fp, T, R);
  fmul(fp, T, T, Y);
  if (feEqual(fp, T, P0)) return 1;
  fadd(fp, T, R, fieldModulus(fn));
  if (feLess(fp, T, fieldModulus(fn))) return 0; // r + n wrapped: r + n >= p
  feToMont(fp, T, T);
  fmul(fp, T, T, Y);
  return feEqual(fp, T, P0) ? 1 : 0;
}

// Whether n scalars of curve c (a key, a nonce, or r || s) at p lie in memory.
@inline function scalarsInMemory(c: u32, p: usize, n: usize): bool {
  return inMemory(p, n * scalarBytes(c));
}

// ---- exports ----
// Curve ids are 256, 384 and 521; hash ids those of hash.ts. Scalars are
// big-endian, exactly ec_scalar_length bytes; public keys SEC1.

export function ec_scalar_length(curve: u32): i32 {
  const c = curveIndex(curve);
  return c < 0 ? ERR_ALGORITHM : <i32>scalarBytes(c);
}

// Builds the generator tables now rather than on the first signature or verification.
export function ec_precompute(curve: u32): i32 {
  const c = curveIndex(curve);
  if (c < 0) return ERR_ALGORITHM;
  precomputeTables(c);
  return 0;
}

// Writes the public key of `sk` (SEC1, compressed when `compressed` != 0);
// returns its length, or ERR_INVALID when sk is not in [1, n - 1].
export function ec_public_key(curve: u32, sk: usize, out: usize, compressed: u32): i32 {
  const c = curveIndex(curve);
  if (c < 0) return ERR_ALGORITHM;
  if (!scalarsInMemory(c, sk, 1) || !writable(out, pointLength(c, compressed != 0))) return ERR_LENGTH;
  baseTable(c); // before any secret is loaded: see ec_sign
  const fn = fieldN(c);
  feFromBytes(fn, D, sk, scalarBytes(c));
  let result: i32 = ERR_INVALID;
  if (feInRange(fn, D)) {
    mulBaseCT(c, P0, D);
    pointToAffine(c, X, Y, P0);
    result = <i32>pointEncode(c, out, X, Y, compressed != 0);
  }
  wipe();
  return result;
}

// 1 when `pk` is a valid SEC1 encoding of a point on the curve (not the identity), else 0.
export function ec_public_key_check(curve: u32, pk: usize, pkLen: usize): i32 {
  const c = curveIndex(curve);
  if (c < 0) return ERR_ALGORITHM;
  if (!inMemory(pk, pkLen)) return ERR_LENGTH;
  return pointDecode(c, P1, pk, pkLen) ? 1 : 0;
}

// Signs a digest (1..64 bytes) with hash `hash` driving RFC 6979; `extra`
// (may be empty) hedges the nonce. Writes r || s and returns its length.
export function ec_sign(curve: u32, hash: u32, sk: usize, digest: usize, digestLen: usize, extra: usize, extraLen: usize, out: usize): i32 {
  const c = curveIndex(curve);
  if (c < 0 || !isHash(hash)) return ERR_ALGORITHM;
  if (digestLen == 0 || digestLen > 64) return ERR_LENGTH;
  if (!scalarsInMemory(c, sk, 1) || !inMemory(digest, digestLen) || !inMemory(extra, extraLen) || !writable(out, 2 * scalarBytes(c))) return ERR_LENGTH;
  // The generator table is built on first use, and a failed allocation traps, skipping wipe():
  // built before the key, the DRBG state and the nonces reach the static scratch, it finds none there.
  baseTable(c);
  const result = sign(c, hash, sk, digest, digestLen, extra, extraLen, out);
  wipe();
  return result;
}

// Signs with a caller-chosen nonce k, as the CAVP SigGen vectors require.
// For known-answer tests only: the package API never exposes it, because a
// repeated or predictable k reveals the private key.
export function ec_sign_with_k(curve: u32, sk: usize, digest: usize, digestLen: usize, k: usize, out: usize): i32 {
  const c = curveIndex(curve);
  if (c < 0) return ERR_ALGORITHM;
  if (digestLen == 0 || digestLen > 64) return ERR_LENGTH;
  if (!scalarsInMemory(c, sk, 1) || !inMemory(digest, digestLen) || !scalarsInMemory(c, k, 1) || !writable(out, 2 * scalarBytes(c))) return ERR_LENGTH;
  baseTable(c); // before any secret is loaded: see ec_sign
  const sb = scalarBytes(c);
  let result: i32 = ERR_INVALID;
  feFromBytes(fieldN(c), K, k, sb);
  if (loadKeyAndDigest(c, sk, digest, digestLen) && feInRange(fieldN(c), K) && signWithK(c)) {
    feToBytes(out, R, sb);
    feToBytes(out + sb, S, sb);
    result = <i32>(sb << 1);
  }
  wipe();
  return result;
}

// 1 for a valid signature r || s over `digest`, 0 for an invalid one
// (including r or s outside [1, n - 1]), ERR_INVALID for an unusable key.
export function ec_verify(curve: u32, pk: usize, pkLen: usize, digest: usize, digestLen: usize, sig: usize): i32 {
  const c = curveIndex(curve);
  if (c < 0) return ERR_ALGORITHM;
  if (digestLen == 0 || digestLen > 64) return ERR_LENGTH;
  if (!inMemory(pk, pkLen) || !inMemory(digest, digestLen) || !scalarsInMemory(c, sig, 2)) return ERR_LENGTH;
  return verify(c, pk, pkLen, digest, digestLen, sig);
}

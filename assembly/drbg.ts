// HMAC_DRBG (NIST SP 800-90A Rev. 1, section 10.1.2) over the HMAC of
// hmac.ts. The core has no entropy source of its own: the host passes entropy
// input and nonce in, and reseeds when generate answers ERR_STATE. RFC 6979
// (ecdsa.ts) runs the same update/generate steps on a scratch state.
import { ctxNew, ctxKind, kindAt, ERR_CONTEXT, ERR_LENGTH, ERR_STATE, inMemory, overlap, writable } from './abi';
import { isHash, digestLength } from './hash';
import { hmacInit, hmacReset, hmacUpdate, hmacFinal, HMAC_CTX_SIZE } from './hmac';

export const DRBG_KIND: u32 = 0x300; // | hash algorithm id

// SP 800-90A table 2: security strength 256 bits for SHA-256/384/512, so at
// least 256 bits of entropy and 128 bits of nonce; at most 2^19 bits per request.
export const MIN_ENTROPY: usize = 32;
export const MIN_NONCE: usize = 16;
export const MAX_REQUEST: usize = 65536;
// SP 800-90A allows up to 2^48 requests between reseeds; the host may lower it.
const DEFAULT_INTERVAL: u64 = 1 << 48;

// Context layout after the common header.
const READY: usize = 8; // 1 once instantiated
const COUNTER: usize = 16; // reseed_counter (u64)
const INTERVAL: usize = 24; // reseed_interval (u64)
const KEY: usize = 32; // K, outlen bytes
const V: usize = KEY + 64; // V, outlen bytes
const MAC: usize = V + 64; // HMAC context keyed with K
export const DRBG_CTX_SIZE: u32 = <u32>(MAC + HMAC_CTX_SIZE);

const ROUND_BYTE: usize = memory.data(8);

export function isDrbg(kind: u32): bool {
  return (kind & 0xff00) == DRBG_KIND && isHash(kind & 0xff);
}

// K = HMAC(K, V || round || data), V = HMAC(K, V), for round 0 and, when any
// data was provided, round 1 (the HMAC_DRBG_Update function). The provided
// data is the concatenation of up to three pieces, so callers never copy.
export function drbgUpdate(ctx: usize, a: usize, aLen: usize, b: usize, bLen: usize, c: usize, cLen: usize): void {
  const alg = kindAt(ctx) & 0xff;
  const ol = <usize>digestLength(alg);
  const mac = ctx + MAC;
  for (let round: u8 = 0; round < 2; round++) {
    hmacReset(mac);
    hmacUpdate(mac, ctx + V, ol);
    store<u8>(ROUND_BYTE, round);
    hmacUpdate(mac, ROUND_BYTE, 1);
    hmacUpdate(mac, a, aLen);
    hmacUpdate(mac, b, bLen);
    hmacUpdate(mac, c, cLen);
    hmacFinal(mac, ctx + KEY);
    hmacInit(mac, alg, ctx + KEY, ol);
    hmacUpdate(mac, ctx + V, ol);
    hmacFinal(mac, ctx + V);
    if (aLen + bLen + cLen == 0) break;
  }
}

// Instantiate with seed material a || b || c (entropy, nonce, personalization).
export function drbgInstantiate(ctx: usize, alg: u32, a: usize, aLen: usize, b: usize, bLen: usize, c: usize, cLen: usize): void {
  store<u32>(ctx, DRBG_KIND | alg);
  const ol = <usize>digestLength(alg);
  memory.fill(ctx + KEY, 0x00, ol);
  memory.fill(ctx + V, 0x01, ol);
  hmacInit(ctx + MAC, alg, ctx + KEY, ol);
  drbgUpdate(ctx, a, aLen, b, bLen, c, cLen);
  store<u64>(ctx, 1, COUNTER);
  if (load<u64>(ctx, INTERVAL) == 0) store<u64>(ctx, DEFAULT_INTERVAL, INTERVAL);
  store<u32>(ctx, 1, READY);
}

// Generate without the reseed check (the caller enforces it); additional
// input is applied before and after, as in section 10.1.2.5.
export function drbgGenerate(ctx: usize, out: usize, len: usize, addin: usize, addinLen: usize): void {
  const ol = <usize>digestLength(kindAt(ctx) & 0xff);
  const mac = ctx + MAC;
  if (addinLen) drbgUpdate(ctx, addin, addinLen, 0, 0, 0, 0);
  while (len) {
    hmacReset(mac);
    hmacUpdate(mac, ctx + V, ol);
    hmacFinal(mac, ctx + V);
    const n = min(len, ol);
    memory.copy(out, ctx + V, n);
    out += n;
    len -= n;
  }
  drbgUpdate(ctx, addin, addinLen, 0, 0, 0, 0);
  store<u64>(ctx, load<u64>(ctx, COUNTER) + 1, COUNTER);
}

@inline function checkCtx(ctx: usize): i32 {
  return ctx == 0 || !isDrbg(ctxKind(ctx)) ? ERR_CONTEXT : 0;
}

// ---- exports ----

// Returns an uninstantiated context, or 0 for an unknown hash.
export function drbg_create(alg: u32): usize {
  if (!isHash(alg)) return 0;
  return ctxNew(DRBG_KIND | alg, DRBG_CTX_SIZE);
}

// Sets the number of generate requests allowed between reseeds (1 .. 2^48).
export function drbg_set_reseed_interval(ctx: usize, interval: u64): i32 {
  const err = checkCtx(ctx);
  if (err) return err;
  if (interval == 0 || interval > DEFAULT_INTERVAL) return ERR_LENGTH;
  store<u64>(ctx, interval, INTERVAL);
  return 0;
}

export function drbg_instantiate(ctx: usize, entropy: usize, entropyLen: usize, nonce: usize, nonceLen: usize, pers: usize, persLen: usize): i32 {
  if (!inMemory(entropy, entropyLen) || !inMemory(nonce, nonceLen) || !inMemory(pers, persLen)) return ERR_LENGTH;
  const err = checkCtx(ctx);
  if (err) return err;
  if (load<u32>(ctx, READY)) return ERR_STATE;
  if (entropyLen < MIN_ENTROPY || nonceLen < MIN_NONCE) return ERR_LENGTH;
  drbgInstantiate(ctx, kindAt(ctx) & 0xff, entropy, entropyLen, nonce, nonceLen, pers, persLen);
  return 0;
}

export function drbg_reseed(ctx: usize, entropy: usize, entropyLen: usize, addin: usize, addinLen: usize): i32 {
  if (!inMemory(entropy, entropyLen) || !inMemory(addin, addinLen)) return ERR_LENGTH;
  const err = checkCtx(ctx);
  if (err) return err;
  if (!load<u32>(ctx, READY)) return ERR_STATE;
  if (entropyLen < MIN_ENTROPY) return ERR_LENGTH;
  drbgUpdate(ctx, entropy, entropyLen, addin, addinLen, 0, 0);
  store<u64>(ctx, 1, COUNTER);
  return 0;
}

// Writes `len` bytes to `out`. ERR_STATE means "reseed required" (or not
// instantiated): nothing was generated and the state did not change.
export function drbg_generate(ctx: usize, out: usize, len: usize, addin: usize, addinLen: usize): i32 {
  // The additional input is read again after the output is written (SP 800-90A's update): the two may not share a byte.
  if (!writable(out, len) || !inMemory(addin, addinLen) || overlap(out, len, addin, addinLen)) return ERR_LENGTH;
  const err = checkCtx(ctx);
  if (err) return err;
  if (!load<u32>(ctx, READY) || load<u64>(ctx, COUNTER) > load<u64>(ctx, INTERVAL)) return ERR_STATE;
  if (len > MAX_REQUEST) return ERR_LENGTH;
  drbgGenerate(ctx, out, len, addin, addinLen);
  return 0;
}

// HMAC (FIPS 198-1, RFC 2104) over the SHA-2 contexts of hash.ts. A keyed
// context keeps the states after the ipad and opad blocks, so reset and
// every later message skip the key schedule.
import { ctxNew, ctxKind, kindAt, ERR_ALGORITHM, ERR_CONTEXT, ERR_STATE, ERR_LENGTH, inMemory, writable } from './abi';
import { isHash, blockLength, digestLength, hashInit, hashUpdate, hashFinal, hashOneshot, HASH_CTX_SIZE } from './hash';

export const HMAC_KIND: u32 = 0x100; // | hash algorithm id

const IPAD: usize = 16;
const OPAD: usize = IPAD + HASH_CTX_SIZE;
const WORK: usize = OPAD + HASH_CTX_SIZE;
const DONE: usize = WORK + HASH_CTX_SIZE;
export const HMAC_CTX_SIZE: u32 = <u32>(DONE + 8);

const PAD: usize = memory.data(128, 16);
const INNER: usize = memory.data(64, 16);
const ONESHOT: usize = memory.data(<i32>HMAC_CTX_SIZE, 16);

export function isHmac(kind: u32): bool {
  return (kind & 0xff00) == HMAC_KIND && isHash(kind & 0xff);
}

export function hmacInit(ctx: usize, alg: u32, key: usize, keyLen: usize): void {
  store<u32>(ctx, HMAC_KIND | alg);
  const bl = <usize>blockLength(alg);
  memory.fill(PAD, 0, bl);
  if (keyLen > bl) hashOneshot(alg, key, keyLen, PAD);
  else memory.copy(PAD, key, keyLen);
  for (let i: usize = 0; i < bl; i += 8) store<u64>(PAD + i, load<u64>(PAD + i) ^ 0x3636363636363636);
  hashInit(ctx + IPAD, alg);
  hashUpdate(ctx + IPAD, PAD, bl);
  for (let i: usize = 0; i < bl; i += 8) store<u64>(PAD + i, load<u64>(PAD + i) ^ 0x6a6a6a6a6a6a6a6a); // ipad ^ opad
  hashInit(ctx + OPAD, alg);
  hashUpdate(ctx + OPAD, PAD, bl);
  memory.fill(PAD, 0, bl);
  hmacReset(ctx);
}

@inline export function hmacReset(ctx: usize): void {
  memory.copy(ctx + WORK, ctx + IPAD, HASH_CTX_SIZE);
  store<u32>(ctx, 0, DONE);
}

@inline export function hmacUpdate(ctx: usize, src: usize, len: usize): void {
  hashUpdate(ctx + WORK, src, len);
}

export function hmacFinal(ctx: usize, out: usize): u32 {
  const n = hashFinal(ctx + WORK, INNER);
  memory.copy(ctx + WORK, ctx + OPAD, HASH_CTX_SIZE);
  hashUpdate(ctx + WORK, INNER, n);
  hashFinal(ctx + WORK, out);
  memory.fill(INNER, 0, 64);
  store<u32>(ctx, 1, DONE);
  return n;
}

export function hmacOneshot(alg: u32, key: usize, keyLen: usize, src: usize, len: usize, out: usize): u32 {
  hmacInit(ONESHOT, alg, key, keyLen);
  hmacUpdate(ONESHOT, src, len);
  const n = hmacFinal(ONESHOT, out);
  memory.fill(ONESHOT, 0, HMAC_CTX_SIZE);
  return n;
}

@inline function checkCtx(ctx: usize): i32 {
  if (ctx == 0 || !isHmac(ctxKind(ctx))) return ERR_CONTEXT;
  return load<u32>(ctx, DONE) ? ERR_STATE : 0;
}

// ---- exports ----

// Returns a keyed context handle, or 0 for an unknown algorithm or a key
// outside memory.
export function hmac_create(alg: u32, key: usize, keyLen: usize): usize {
  if (!isHash(alg) || !inMemory(key, keyLen)) return 0;
  const ctx = ctxNew(HMAC_KIND | alg, HMAC_CTX_SIZE);
  hmacInit(ctx, alg, key, keyLen);
  return ctx;
}

export function hmac_update(ctx: usize, src: usize, len: usize): i32 {
  if (!inMemory(src, len)) return ERR_LENGTH;
  const err = checkCtx(ctx);
  if (err) return err;
  hmacUpdate(ctx, src, len);
  return 0;
}

export function hmac_final(ctx: usize, out: usize): i32 {
  const err = checkCtx(ctx);
  if (err) return err;
  if (!writable(out, digestLength(kindAt(ctx) & 0xff))) return ERR_LENGTH;
  return <i32>hmacFinal(ctx, out);
}

// Starts a new message under the same key.
export function hmac_reset(ctx: usize): i32 {
  if (ctx == 0 || !isHmac(ctxKind(ctx))) return ERR_CONTEXT;
  hmacReset(ctx);
  return 0;
}

export function hmac_oneshot(alg: u32, key: usize, keyLen: usize, src: usize, len: usize, out: usize): i32 {
  if (!inMemory(src, len) || !inMemory(key, keyLen)) return ERR_LENGTH;
  if (!isHash(alg)) return ERR_ALGORITHM;
  if (!writable(out, digestLength(alg))) return ERR_LENGTH;
  return <i32>hmacOneshot(alg, key, keyLen, src, len, out);
}

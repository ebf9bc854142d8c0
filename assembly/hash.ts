// Streaming SHA-2 over one context layout for all three sizes; the algorithm
// ids are TS-0016 table 9.8-1 (Java Card) values.
import { ctxNew, ctxKind, kindAt, ERR_ALGORITHM, ERR_CONTEXT, ERR_STATE, CTX_HEADER, ERR_LENGTH, inMemory, writable } from './abi';
import { IV256, IV384, IV512 } from './sha2-iv';
import { sha256Blocks, sha256BlocksWk, sha512Blocks } from './sha2-rounds.generated';

export const SHA256: u32 = 4;
export const SHA384: u32 = 5;
export const SHA512: u32 = 6;

// Context layout after the common header.
const STATE: usize = CTX_HEADER; // 8 words of 32 or 64 bits
const BUF: usize = STATE + 64; // one partial block
const BUFLEN: usize = BUF + 128;
const DONE: usize = BUFLEN + 4; // 1 after final: further use is a state error
const TOTAL: usize = DONE + 4; // message bytes so far
export const HASH_CTX_SIZE: u32 = <u32>(TOTAL + 8);

export function isHash(alg: u32): bool {
  return alg == SHA256 || alg == SHA384 || alg == SHA512;
}

export function digestLength(alg: u32): u32 {
  return alg == SHA256 ? 32 : alg == SHA384 ? 48 : 64;
}

export function blockLength(alg: u32): u32 {
  return alg == SHA256 ? 64 : 128;
}

@inline function compress(alg: u32, state: usize, src: usize, blocks: usize): void {
  if (alg != SHA256) sha512Blocks(state, src, blocks);
  else if (ASC_FEATURE_SIMD) sha256BlocksWk(state, src, blocks);
  else sha256Blocks(state, src, blocks);
}

export function hashInit(ctx: usize, alg: u32): void {
  store<u32>(ctx, alg);
  memory.copy(ctx + STATE, alg == SHA256 ? IV256 : alg == SHA384 ? IV384 : IV512, alg == SHA256 ? 32 : 64);
  store<u32>(ctx, 0, BUFLEN);
  store<u32>(ctx, 0, DONE);
  store<u64>(ctx, 0, TOTAL);
}

export function hashUpdate(ctx: usize, src: usize, len: usize): void {
  const alg = kindAt(ctx);
  const bl = <usize>blockLength(alg);
  const state = ctx + STATE, buf = ctx + BUF;
  store<u64>(ctx, load<u64>(ctx, TOTAL) + len, TOTAL);
  let have = <usize>load<u32>(ctx, BUFLEN);
  if (have) {
    const take = min(bl - have, len);
    memory.copy(buf + have, src, take);
    have += take; src += take; len -= take;
    if (have < bl) { store<u32>(ctx, <u32>have, BUFLEN); return; }
    compress(alg, state, buf, 1);
  }
  const blocks = len / bl;
  if (blocks) compress(alg, state, src, blocks);
  const rest = len - blocks * bl;
  memory.copy(buf, src + blocks * bl, rest);
  store<u32>(ctx, <u32>rest, BUFLEN);
}

// Pads, writes the digest to `out` and returns its length.
export function hashFinal(ctx: usize, out: usize): u32 {
  const alg = kindAt(ctx);
  const bl = <usize>blockLength(alg);
  const lenBytes: usize = alg == SHA256 ? 8 : 16;
  const state = ctx + STATE, buf = ctx + BUF;
  let have = <usize>load<u32>(ctx, BUFLEN);
  store<u8>(buf + have++, 0x80);
  if (have > bl - lenBytes) {
    memory.fill(buf + have, 0, bl - have);
    compress(alg, state, buf, 1);
    have = 0;
  }
  memory.fill(buf + have, 0, bl - have);
  const total = load<u64>(ctx, TOTAL);
  store<u64>(buf + bl - 8, bswap<u64>(total << 3));
  if (lenBytes == 16) store<u64>(buf + bl - 16, bswap<u64>(total >>> 61));
  compress(alg, state, buf, 1);
  const dl = digestLength(alg);
  if (alg == SHA256) {
    for (let i: usize = 0; i < 32; i += 4) store<u32>(out + i, bswap<u32>(load<u32>(state + i)));
  } else {
    for (let i: usize = 0; i < <usize>dl; i += 8) store<u64>(out + i, bswap<u64>(load<u64>(state + i)));
  }
  store<u32>(ctx, 1, DONE);
  return dl;
}

// Scratch context for one-shot calls; zeroized after each use.
const ONESHOT: usize = memory.data(<i32>HASH_CTX_SIZE, 16);

export function hashOneshot(alg: u32, src: usize, len: usize, out: usize): u32 {
  hashInit(ONESHOT, alg);
  hashUpdate(ONESHOT, src, len);
  const n = hashFinal(ONESHOT, out);
  memory.fill(ONESHOT, 0, HASH_CTX_SIZE);
  return n;
}

@inline function checkCtx(ctx: usize): i32 {
  if (ctx == 0 || !isHash(ctxKind(ctx))) return ERR_CONTEXT;
  return load<u32>(ctx, DONE) ? ERR_STATE : 0;
}

// ---- exports ----

export function hash_digest_length(alg: u32): i32 {
  return isHash(alg) ? <i32>digestLength(alg) : ERR_ALGORITHM;
}

export function hash_block_length(alg: u32): i32 {
  return isHash(alg) ? <i32>blockLength(alg) : ERR_ALGORITHM;
}

// Returns a context handle, or 0 for an unknown algorithm.
export function hash_create(alg: u32): usize {
  if (!isHash(alg)) return 0;
  const ctx = ctxNew(alg, HASH_CTX_SIZE);
  hashInit(ctx, alg);
  return ctx;
}

export function hash_update(ctx: usize, src: usize, len: usize): i32 {
  if (!inMemory(src, len)) return ERR_LENGTH;
  const err = checkCtx(ctx);
  if (err) return err;
  hashUpdate(ctx, src, len);
  return 0;
}

export function hash_final(ctx: usize, out: usize): i32 {
  const err = checkCtx(ctx);
  if (err) return err;
  if (!writable(out, digestLength(kindAt(ctx)))) return ERR_LENGTH;
  return <i32>hashFinal(ctx, out);
}

// Makes a finished or partly fed context ready for a new message.
export function hash_reset(ctx: usize): i32 {
  if (ctx == 0 || !isHash(ctxKind(ctx))) return ERR_CONTEXT;
  hashInit(ctx, kindAt(ctx));
  return 0;
}

export function hash_oneshot(alg: u32, src: usize, len: usize, out: usize): i32 {
  if (!inMemory(src, len)) return ERR_LENGTH;
  if (!isHash(alg)) return ERR_ALGORITHM;
  if (!writable(out, digestLength(alg))) return ERR_LENGTH;
  return <i32>hashOneshot(alg, src, len, out);
}

// AES-128/256 keys (FIPS 197): the key schedule, the key context every mode
// works from, and the block and counter-mode primitives the modes are built
// on. The rounds are in aes-bitslice.ts (batches) and aes-vperm.ts (one
// block at a time, SIMD build).
import { ctxHeader, ctxNew, ctxKind, CTX_HEADER, ERR_CONTEXT, ERR_LENGTH, inMemory, writable } from './abi';
import { sboxPlanes } from './aes-sbox';
import { cryptBlocks, roundKeyPlanes, PLANES_BYTES, LANES } from './aes-bitslice';
import { encryptBlockVperm, chainVperm, ccmVperm, subWordVperm, vpermKeys } from './aes-vperm';
import { GHASH_KEY_SIZE, ghashKeyUsed } from './ghash';

export const AES_KEY_KIND: u32 = 0x200;

// Key context: [header][nr u32][flags u32][round-key planes][round keys of
// the one-block path (SIMD build)][mode cache].
const NR: usize = CTX_HEADER;
export const KEY_FLAGS: usize = CTX_HEADER + 4;
const RK: usize = CTX_HEADER + 8;
const RKB: usize = RK + 15 * 128;
// GCM caches its hash subkey (which depends on the key only) here;
// KEY_FLAGS bit 0 says it is filled.
export const KEY_CACHE: usize = RKB + 240;
export const AES_KEY_SIZE: u32 = <u32>(KEY_CACHE + GHASH_KEY_SIZE);

const EXPANDED: usize = memory.data(240, 16); // byte round keys during key setup
const SUBW: usize = memory.data(32, 16); // u32 planes of one SubWord
const KEY_SCRATCH: usize = memory.data(<i32>AES_KEY_SIZE, 16);
const CTR_BLOCKS: usize = memory.data(128, 16);
// One static operation context for the one-shot calls of every mode, so a
// one-shot needs no allocation; aes_scratch_clear() zeroizes it with the key.
export const OP_SCRATCH_SIZE: u32 = 512;
const OP_SCRATCH: usize = memory.data(<i32>OP_SCRATCH_SIZE, 16);

export function isAesKey(k: usize): bool {
  return k != 0 && ctxKind(k) == AES_KEY_KIND;
}

// Whether op is a live operation context of `kind` whose key context (the
// first field of every mode's context) is live too: a key released before
// its operation would otherwise be read as zeros, or as whatever took its place.
export function aesOp(op: usize, kind: u32): bool {
  return op != 0 && ctxKind(op) == kind && isAesKey(<usize>load<u32>(op, CTX_HEADER));
}

// Bytes of key context k holding data: GCM's cache only as far as it was
// filled, which spares the one-shot calls most of its zeroization.
function keyUsed(k: usize): usize {
  return load<u32>(k, KEY_FLAGS) & 1 ? KEY_CACHE + ghashKeyUsed(k + KEY_CACHE) : KEY_CACHE;
}

@inline export function rounds(k: usize): usize {
  return <usize>load<u32>(k, NR);
}

// SubWord on a little-endian word: each byte is one lane of u32 planes
// (the SIMD build uses its one-block S-box instead).
function subWord(w: u32): u32 {
  if (ASC_FEATURE_SIMD) return subWordVperm(w);
  for (let b: usize = 0; b < 8; b++) store<u32>(SUBW + (b << 2), (w >> <u32>b) & 0x01010101);
  sboxPlanes<u32>(SUBW);
  let r: u32 = 0;
  for (let b: usize = 0; b < 8; b++) r |= (load<u32>(SUBW + (b << 2)) & 0x01010101) << <u32>b;
  return r;
}

// FIPS 197 5.2 KeyExpansion, then one set of round-key planes per round.
function expandKey(k: usize, key: usize, keyLen: usize): void {
  const nk = keyLen >> 2;
  const nr = nk + 6;
  const total = (nr + 1) << 2;
  memory.copy(EXPANDED, key, keyLen);
  let rcon: u32 = 1;
  for (let i = nk; i < total; i++) {
    let t = load<u32>(EXPANDED + ((i - 1) << 2));
    if (i % nk == 0) {
      t = subWord(rotr<u32>(t, 8)) ^ rcon;
      rcon = (rcon << 1) ^ ((rcon >> 7) * 0x11b);
    } else if (nk > 6 && i % nk == 4) {
      t = subWord(t);
    }
    store<u32>(EXPANDED + (i << 2), load<u32>(EXPANDED + ((i - nk) << 2)) ^ t);
  }
  store<u32>(k, <u32>nr, NR);
  store<u32>(k, 0, KEY_FLAGS);
  for (let r: usize = 0; r <= nr; r++) roundKeyPlanes(EXPANDED + (r << 4), k + RK + r * PLANES_BYTES);
  if (ASC_FEATURE_SIMD) vpermKeys(k + RKB, EXPANDED, nr);
  memory.fill(EXPANDED, 0, 240);
  memory.fill(SUBW, 0, 32);
}

// Encrypts n blocks (src and dst may be equal). The SIMD build runs up to
// ONE_BLOCK_MAX blocks one at a time, which is faster than a batch of 8.
const ONE_BLOCK_MAX: usize = 3;

export function encryptBlocks(k: usize, src: usize, dst: usize, n: usize): void {
  if (ASC_FEATURE_SIMD && n <= ONE_BLOCK_MAX) {
    const nr = rounds(k);
    for (let i: usize = 0; i < n; i++) encryptBlockVperm(k + RKB, nr, src + (i << 4), dst + (i << 4));
    return;
  }
  cryptBlocks(k + RK, rounds(k), src, dst, n, false);
}

// CBC encryption of n blocks from src: the 16 bytes at chain become
// E(chain ^ m) block after block, each written to dst unless dst is 0 (the
// MACs only need the last).
export function cbcChain(k: usize, chain: usize, src: usize, dst: usize, n: usize): void {
  if (ASC_FEATURE_SIMD) {
    chainVperm(k + RKB, rounds(k), chain, src, dst, n);
    return;
  }
  for (let i: usize = 0; i < n; i++) {
    store<u64>(chain, load<u64>(chain) ^ load<u64>(src + (i << 4)));
    store<u64>(chain, load<u64>(chain, 8) ^ load<u64>(src + (i << 4), 8), 8);
    cryptBlocks(k + RK, rounds(k), chain, chain, 1, false);
    if (dst) memory.copy(dst + (i << 4), chain, 16);
  }
}

// CCM over n whole blocks: the CBC-MAC at mac over the plaintext and the
// counter mode from the counter block at ctr (advanced by n), from src to
// dst (which may be equal). Relaxed SIMD runs both chains side by side
// through the one-block rounds. The plain SIMD build does not: there every
// lookup is an add and a shuffle, two one-block chains are bound by the
// instruction count, and the MAC chain followed by the bitsliced counter mode
// is faster on an Intel Xeon (bench/core-ab.ts: 1.34-1.36x at 32 KiB; the
// fifth stop measured it 2-6 % slower on AMD EPYC, docs/performance-log.md).
export function ccmBlocks(k: usize, mac: usize, ctr: usize, src: usize, dst: usize, n: usize, decrypt: bool): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    ccmVperm(k + RKB, rounds(k), mac, ctr, src, dst, n, decrypt);
    return;
  }
  if (!decrypt) cbcChain(k, mac, src, 0, n);
  ctr32(k, ctr, src, dst, n << 4);
  if (decrypt) cbcChain(k, mac, dst, 0, n);
}

@inline export function decryptBlocks(k: usize, src: usize, dst: usize, n: usize): void {
  cryptBlocks(k + RK, rounds(k), src, dst, n, true);
}

// Increments the last 32 bits of a counter block as a big-endian integer
// (SP 800-38D inc32; CCM counters never carry out of them either).
@inline export function inc32(ctr: usize): void {
  store<u32>(ctr, bswap<u32>(bswap<u32>(load<u32>(ctr, 12)) + 1), 12);
}

// Counter mode continuing a stream: `ks` holds keystream of which the two
// u32s at `state` count the bytes used and available; a partial final block
// leaves the rest of its keystream there for the next call.
export function ctrStream(k: usize, ctr: usize, ks: usize, state: usize, src: usize, dst: usize, len: usize): void {
  let off = <usize>load<u32>(state);
  const avail = <usize>load<u32>(state, 4);
  // GCM starts with up to 7 blocks of keystream from its first batch.
  if (ASC_FEATURE_SIMD) {
    while (off + 16 <= avail && len >= 16) {
      v128.store(dst, v128.xor(v128.load(src), v128.load(ks + off)));
      off += 16; src += 16; dst += 16; len -= 16;
    }
  }
  while (off < avail && len > 0) {
    store<u8>(dst, load<u8>(src) ^ load<u8>(ks + off));
    off++; src++; dst++; len--;
  }
  const whole = len & ~15;
  if (whole) ctr32(k, ctr, src, dst, whole);
  if (len & 15) {
    memory.fill(ks, 0, 16);
    ctr32(k, ctr, ks, ks, 16);
    store<u32>(state, 16, 4);
    off = 0;
    for (let i = whole; i < len; i++) store<u8>(dst + i, load<u8>(src + i) ^ load<u8>(ks + off++));
  }
  store<u32>(state, <u32>off);
}

// Counter mode over `len` bytes: dst = src ^ E(ctr), E(ctr + 1), ... The
// counter block at ctr is advanced past every block used (a partial final
// block uses one). Keystream is built LANES blocks at a time.
export function ctr32(k: usize, ctr: usize, src: usize, dst: usize, len: usize): void {
  const c0 = load<u64>(ctr), c2 = load<u32>(ctr, 8);
  let count = bswap<u32>(load<u32>(ctr, 12));
  while (len > 0) {
    let n = (len + 15) >> 4;
    if (n > LANES) n = LANES;
    for (let j: usize = 0; j < n; j++) {
      const b = CTR_BLOCKS + (j << 4);
      store<u64>(b, c0);
      store<u32>(b, c2, 8);
      store<u32>(b, bswap<u32>(count + <u32>j), 12);
    }
    count += <u32>n;
    encryptBlocks(k, CTR_BLOCKS, CTR_BLOCKS, n);
    const m = len < (n << 4) ? len : n << 4;
    let i: usize = 0;
    if (ASC_FEATURE_SIMD) {
      for (; i + 16 <= m; i += 16) v128.store(dst + i, v128.xor(v128.load(src + i), v128.load(CTR_BLOCKS + i)));
    } else {
      for (; i + 8 <= m; i += 8) store<u64>(dst + i, load<u64>(src + i) ^ load<u64>(CTR_BLOCKS + i));
    }
    for (; i < m; i++) store<u8>(dst + i, load<u8>(src + i) ^ load<u8>(CTR_BLOCKS + i));
    src += m;
    dst += m;
    len -= m;
  }
  store<u32>(ctr, bswap<u32>(count), 12);
  memory.fill(CTR_BLOCKS, 0, 128);
}

// The static operation context for one-shot calls, tagged like a heap one.
export function opContext(kind: u32, size: u32, scratch: bool): usize {
  if (!scratch) return ctxNew(kind, size);
  memory.fill(OP_SCRATCH, 0, OP_SCRATCH_SIZE);
  return ctxHeader(OP_SCRATCH, kind, size);
}

// ---- exports ----

// Expands a 16- or 32-byte key into a key context; with scratch != 0 into
// the static one-shot slot (valid until the next such call), else on the
// heap (release with ctx_free). Returns 0 for any other key length or a key
// outside memory.
export function aes_key_create(key: usize, keyLen: usize, scratch: u32): usize {
  if ((keyLen != 16 && keyLen != 32) || !inMemory(key, keyLen)) return 0;
  let k = KEY_SCRATCH;
  if (scratch) {
    memory.fill(k, 0, keyUsed(k));
    ctxHeader(k, AES_KEY_KIND, AES_KEY_SIZE);
  } else {
    k = ctxNew(AES_KEY_KIND, AES_KEY_SIZE);
  }
  expandKey(k, key, keyLen);
  return k;
}

// Zeroizes the static key and operation slots used by one-shot calls.
export function aes_scratch_clear(): void {
  memory.fill(KEY_SCRATCH, 0, keyUsed(KEY_SCRATCH));
  memory.fill(OP_SCRATCH, 0, OP_SCRATCH_SIZE);
}

// Raw block function (ECB) over len bytes, a multiple of 16.
export function aes_encrypt_blocks(k: usize, src: usize, dst: usize, len: usize): i32 {
  if (!inMemory(src, len) || !writable(dst, len)) return ERR_LENGTH;
  if (!isAesKey(k)) return ERR_CONTEXT;
  if (len & 15) return ERR_LENGTH;
  encryptBlocks(k, src, dst, len >> 4);
  return 0;
}

export function aes_decrypt_blocks(k: usize, src: usize, dst: usize, len: usize): i32 {
  if (!inMemory(src, len) || !writable(dst, len)) return ERR_LENGTH;
  if (!isAesKey(k)) return ERR_CONTEXT;
  if (len & 15) return ERR_LENGTH;
  decryptBlocks(k, src, dst, len >> 4);
  return 0;
}

// A heap copy of a key context (schedule and mode cache), for an operation
// that must outlive the caller's key object.
export function aes_key_copy(k: usize): usize {
  if (!isAesKey(k)) return 0;
  const c = ctxNew(AES_KEY_KIND, AES_KEY_SIZE);
  memory.copy(c + CTX_HEADER, k + CTX_HEADER, AES_KEY_SIZE - CTX_HEADER);
  return c;
}

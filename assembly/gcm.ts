// AES-GCM (SP 800-38D): streaming encryption and decryption with any nonce
// length of at least one byte and tags of 16, 15, 14, 13, 12, 8 or 4 bytes.
// The caller decides what to do with plaintext before gcm_verify succeeds;
// the facade holds it back (docs/aes.md).
import { ERR_AUTH, ERR_CONTEXT, ERR_LENGTH, ERR_STATE, CTX_HEADER, inMemory, writable } from './abi';
import { ctDiff } from './ct';
import { aesOp, isAesKey, encryptBlocks, ctrStream, inc32, opContext, KEY_FLAGS, KEY_CACHE } from './aes';
import { LANES } from './aes-bitslice';
import { ghashKey, ghashBlocks } from './ghash';

export const GCM_KIND: u32 = 0x201;

const KEY: usize = CTX_HEADER; // u32 key context
const FLAGS: usize = KEY + 4; // bit 0 decrypt; bit 1 data started; bit 2 finished
const TAGLEN: usize = FLAGS + 4;
const KSOFF: usize = TAGLEN + 4; // keystream bytes of KS already used
const KSLEN: usize = KSOFF + 4; // keystream bytes in KS (ctrStream's state: KSOFF, KSLEN)
const AADLEN: usize = KSLEN + 4; // u64
const DATALEN: usize = AADLEN + 8; // u64
const PARTLEN: usize = DATALEN + 8; // bytes waiting in PART for GHASH
const Y: usize = 56;
const EJ0: usize = Y + 16; // E(K, J0), masks the tag
const CTR: usize = EJ0 + 16;
const KS: usize = CTR + 16;
const PART: usize = KS + 128; // KS holds up to one batch of keystream
const LENS: usize = PART + 16;
const GCM_SIZE: u32 = <u32>(LENS + 16);

const F_DECRYPT: u32 = 1;
const F_DATA: u32 = 2;
const F_DONE: u32 = 4;

const HBLOCK: usize = memory.data(16, 16);
const BATCH: usize = memory.data(128, 16);
const CHUNK: usize = 4096; // CTR and GHASH alternate over chunks this size

// SP 800-38D 5.2.1.1: at most 2^39 - 256 bits of plaintext under one
// nonce; beyond it the 32-bit block counter would wrap and repeat keystream.
export const GCM_MAX_DATA: u64 = (<u64>1 << 36) - 32;

export function gcmTagLengthOk(t: usize): bool {
  return (t >= 12 && t <= 16) || t == 8 || t == 4;
}

// The hash subkey H = E(K, 0^128) in multiplier form, cached in the key.
function hashKey(k: usize): usize {
  const hk = k + KEY_CACHE;
  if (!(load<u32>(k, KEY_FLAGS) & 1)) {
    memory.fill(HBLOCK, 0, 16);
    encryptBlocks(k, HBLOCK, HBLOCK, 1);
    ghashKey(hk, HBLOCK);
    memory.fill(HBLOCK, 0, 16);
    store<u32>(k, load<u32>(k, KEY_FLAGS) | 1, KEY_FLAGS);
  }
  return hk;
}

@inline function hk(op: usize): usize {
  return <usize>load<u32>(op, KEY) + KEY_CACHE;
}

// Absorbs len bytes into GHASH, buffering a partial block in PART.
function absorb(op: usize, src: usize, len: usize): void {
  let part = <usize>load<u32>(op, PARTLEN);
  if (part > 0) {
    const take = len < 16 - part ? len : 16 - part;
    memory.copy(op + PART + part, src, take);
    part += take;
    src += take;
    len -= take;
    if (part < 16) {
      store<u32>(op, <u32>part, PARTLEN);
      return;
    }
    ghashBlocks(hk(op), op + Y, op + PART, 1);
    part = 0;
  }
  const whole = len >> 4;
  if (whole) ghashBlocks(hk(op), op + Y, src, whole);
  part = len & 15;
  memory.copy(op + PART, src + (whole << 4), part);
  store<u32>(op, <u32>part, PARTLEN);
}

// Zero-pads and absorbs a pending partial block.
function flush(op: usize): void {
  const part = <usize>load<u32>(op, PARTLEN);
  if (part == 0) return;
  memory.fill(op + PART + part, 0, 16 - part);
  ghashBlocks(hk(op), op + Y, op + PART, 1);
  store<u32>(op, 0, PARTLEN);
}

function crypt(op: usize, src: usize, dst: usize, len: usize): void {
  ctrStream(<usize>load<u32>(op, KEY), op + CTR, op + KS, op + KSOFF, src, dst, len);
}

function tag(op: usize): void {
  flush(op);
  store<u64>(op + LENS, bswap<u64>(load<u64>(op, AADLEN) << 3));
  store<u64>(op + LENS, bswap<u64>(load<u64>(op, DATALEN) << 3), 8);
  ghashBlocks(hk(op), op + Y, op + LENS, 1);
  for (let i: usize = 0; i < 16; i++) store<u8>(op + Y + i, load<u8>(op + Y + i) ^ load<u8>(op + EJ0 + i));
  store<u32>(op, load<u32>(op, FLAGS) | F_DONE, FLAGS);
}

// 0, or why the operation cannot finish with its tag (written or compared) at `tagAt`.
@inline function check(op: usize, decrypt: u32, tagAt: usize): i32 {
  if (!aesOp(op, GCM_KIND)) return ERR_CONTEXT;
  const f = load<u32>(op, FLAGS);
  if ((f & F_DONE) || (f & F_DECRYPT) != decrypt) return ERR_STATE;
  const t = <usize>load<u32>(op, TAGLEN);
  return (decrypt ? inMemory(tagAt, t) : writable(tagAt, t)) ? 0 : ERR_LENGTH;
}

// ---- exports ----

// Starts a GCM operation under key context k. Returns 0 when k is not a key
// context, the nonce is empty or outside memory or the tag length is not allowed.
export function gcm_create(k: usize, nonce: usize, nonceLen: usize, tagLen: usize, decrypt: u32, scratch: u32): usize {
  if (!isAesKey(k) || nonceLen == 0 || !inMemory(nonce, nonceLen) || !gcmTagLengthOk(tagLen)) return 0;
  const op = opContext(GCM_KIND, GCM_SIZE, scratch != 0);
  store<u32>(op, <u32>k, KEY);
  store<u32>(op, decrypt ? F_DECRYPT : 0, FLAGS);
  store<u32>(op, <u32>tagLen, TAGLEN);
  if (nonceLen == 12) {
    memory.copy(op + CTR, nonce, 12);
    store<u32>(op + CTR, bswap<u32>(1), 12);
  } else {
    const h = hashKey(k);
    absorb(op, nonce, nonceLen);
    flush(op);
    store<u64>(op + LENS, 0);
    store<u64>(op + LENS, bswap<u64>(<u64>nonceLen << 3), 8);
    ghashBlocks(h, op + Y, op + LENS, 1);
    memory.copy(op + CTR, op + Y, 16);
    memory.fill(op + Y, 0, 16);
  }
  // One batch of the block function yields H (unless cached), E(K, J0) and
  // keystream for the first blocks: a short message costs a single batch.
  const needH: usize = load<u32>(k, KEY_FLAGS) & 1 ? 0 : 1;
  memory.fill(BATCH, 0, 16);
  for (let j = needH; j < LANES; j++) {
    memory.copy(BATCH + (j << 4), op + CTR, 16);
    inc32(op + CTR);
  }
  encryptBlocks(k, BATCH, BATCH, LANES);
  if (needH) {
    ghashKey(k + KEY_CACHE, BATCH);
    store<u32>(k, load<u32>(k, KEY_FLAGS) | 1, KEY_FLAGS);
  }
  memory.copy(op + EJ0, BATCH + (needH << 4), 16);
  const ks = (LANES - 1 - needH) << 4;
  memory.copy(op + KS, BATCH + ((needH + 1) << 4), ks);
  store<u32>(op, <u32>ks, KSLEN);
  memory.fill(BATCH, 0, 128);
  return op;
}

export function gcm_aad(op: usize, src: usize, len: usize): i32 {
  if (!inMemory(src, len)) return ERR_LENGTH;
  if (!aesOp(op, GCM_KIND)) return ERR_CONTEXT;
  const f = load<u32>(op, FLAGS);
  if (f & (F_DATA | F_DONE)) return ERR_STATE;
  absorb(op, src, len);
  store<u64>(op, load<u64>(op, AADLEN) + len, AADLEN);
  return 0;
}

// Encrypts or decrypts (as created) len bytes; dst may equal src. Returns len.
export function gcm_update(op: usize, src: usize, dst: usize, len: usize): i32 {
  if (!inMemory(src, len) || !writable(dst, len)) return ERR_LENGTH;
  if (!aesOp(op, GCM_KIND)) return ERR_CONTEXT;
  const f = load<u32>(op, FLAGS);
  if (f & F_DONE) return ERR_STATE;
  if (!(f & F_DATA)) {
    flush(op);
    store<u32>(op, f | F_DATA, FLAGS);
  }
  const total = load<u64>(op, DATALEN) + len;
  if (total > GCM_MAX_DATA) return ERR_LENGTH;
  store<u64>(op, total, DATALEN);
  const decrypt = f & F_DECRYPT;
  let done: usize = 0;
  while (done < len) {
    const n = len - done < CHUNK ? len - done : CHUNK;
    if (decrypt) {
      absorb(op, src + done, n);
      crypt(op, src + done, dst + done, n);
    } else {
      crypt(op, src + done, dst + done, n);
      absorb(op, dst + done, n);
    }
    done += n;
  }
  return <i32>len;
}

// Encryption: writes the tag to out and returns its length.
export function gcm_final(op: usize, out: usize): i32 {
  const err = check(op, 0, out);
  if (err) return err;
  tag(op);
  const t = <usize>load<u32>(op, TAGLEN);
  memory.copy(out, op + Y, t);
  return <i32>t;
}

// Decryption: compares the tag at `expected` in constant time; 0 or ERR_AUTH.
export function gcm_verify(op: usize, expected: usize): i32 {
  const err = check(op, F_DECRYPT, expected);
  if (err) return err;
  tag(op);
  return ctDiff(op + Y, expected, <usize>load<u32>(op, TAGLEN)) ? ERR_AUTH : 0;
}

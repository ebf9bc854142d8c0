// AES-CBC (SP 800-38A) with the paddings of TS-0016 table 9.6-1: none (13),
// ISO/IEC 9797-1 method 1 (22) and method 2 (23), PKCS#5/#7 to 16 bytes (24).
// Padding is checked and removed in constant time; whether it was valid is
// necessarily visible to the caller (see docs/aes.md on padding oracles).
import { ERR_CONTEXT, ERR_LENGTH, ERR_PADDING, ERR_STATE, CTX_HEADER, inMemory, writable } from './abi';
import { aesOp, isAesKey, cbcChain, decryptBlocks, opContext } from './aes';
import { LANES } from './aes-bitslice';

export const CBC_KIND: u32 = 0x203;

export const PAD_NONE: u32 = 13;
export const PAD_ISO9797_M1: u32 = 22;
export const PAD_ISO9797_M2: u32 = 23;
export const PAD_PKCS5: u32 = 24;

const KEY: usize = CTX_HEADER;
const FLAGS: usize = KEY + 4; // bit 0 decrypt; bit 2 finished
const PADDING: usize = FLAGS + 4;
const PARTLEN: usize = PADDING + 4;
const TOTAL: usize = PARTLEN + 4; // u64, input bytes seen
const CHAIN: usize = 32; // IV, then the last ciphertext block
const PART: usize = CHAIN + 16;
const CBC_SIZE: u32 = <u32>(PART + 16);

const F_DECRYPT: u32 = 1;
const F_DONE: u32 = 4;

const HELD: usize = memory.data(8 * 16, 16); // ciphertext of a decryption batch
const SPARE: usize = memory.data(16, 16); // an input block set aside (in-place decryption)

@inline function xor16(dst: usize, a: usize, b: usize): void {
  store<u64>(dst, load<u64>(a) ^ load<u64>(b));
  store<u64>(dst, load<u64>(a, 8) ^ load<u64>(b, 8), 8);
}

// Encrypts n whole blocks from src to dst, chaining through CHAIN.
@inline function encryptChain(op: usize, src: usize, dst: usize, n: usize): void {
  cbcChain(<usize>load<u32>(op, KEY), op + CHAIN, src, dst, n);
}

// Decrypts n whole blocks, LANES at a time; the ciphertext is copied aside
// first so that dst may equal src.
function decryptChain(op: usize, src: usize, dst: usize, n: usize): void {
  const k = <usize>load<u32>(op, KEY);
  const chain = op + CHAIN;
  while (n > 0) {
    const m = n < LANES ? n : LANES;
    memory.copy(HELD, src, m << 4);
    decryptBlocks(k, HELD, dst, m);
    xor16(dst, dst, chain);
    for (let i: usize = 1; i < m; i++) xor16(dst + (i << 4), dst + (i << 4), HELD + ((i - 1) << 4));
    memory.copy(chain, HELD + ((m - 1) << 4), 16);
    src += m << 4;
    dst += m << 4;
    n -= m;
  }
  memory.fill(HELD, 0, 8 * 16);
}

@inline function crypt(op: usize, src: usize, dst: usize, n: usize): void {
  if (load<u32>(op, FLAGS) & F_DECRYPT) decryptChain(op, src, dst, n);
  else encryptChain(op, src, dst, n);
}

@inline function live(op: usize): i32 {
  if (!aesOp(op, CBC_KIND)) return ERR_CONTEXT;
  return load<u32>(op, FLAGS) & F_DONE ? ERR_STATE : 0;
}

// Length of PKCS#7 or ISO 9797-1 method 2 padding at the end of the block at
// p, or 0 when malformed; every byte is examined whatever the result.
function padLength(p: usize, method: u32): u32 {
  if (method == PAD_PKCS5) {
    const v = <u32>load<u8>(p + 15);
    let bad: u32 = ((v - 1) >> 31) | ((16 - v) >> 31); // v == 0 or v > 16
    for (let i: u32 = 0; i < 16; i++) {
      const inPad = ((15 - i) - v) >> 31; // 1 when 15 - i < v
      bad |= inPad & (((<u32>load<u8>(p + i) ^ v) + 0xFF) >> 8);
    }
    return v & (bad - 1);
  }
  // Method 2: scan from the end; `zeros` stays 1 while only zeros were seen.
  let zeros: u32 = 1, len: u32 = 0;
  for (let i: i32 = 15; i >= 0; i--) {
    const b = <u32>load<u8>(p + i);
    const isZero = ((b - 1) >> 31) & 1;
    const isMark = (((b ^ 0x80) - 1) >> 31) & 1;
    len |= (zeros & isMark) * (16 - <u32>i);
    zeros &= isZero;
  }
  return len;
}

// ---- exports ----

// Starts a CBC operation with a 16-byte IV; padding is one of the four ids.
export function cbc_create(k: usize, iv: usize, padding: u32, decrypt: u32, scratch: u32): usize {
  if (!isAesKey(k) || !inMemory(iv, 16)) return 0;
  if (padding != PAD_NONE && padding != PAD_ISO9797_M1 && padding != PAD_ISO9797_M2 && padding != PAD_PKCS5) return 0;
  const op = opContext(CBC_KIND, CBC_SIZE, scratch != 0);
  store<u32>(op, <u32>k, KEY);
  store<u32>(op, decrypt ? F_DECRYPT : 0, FLAGS);
  store<u32>(op, padding, PADDING);
  memory.copy(op + CHAIN, iv, 16);
  return op;
}

// Processes len more bytes, writing whole blocks to dst and returning how
// many bytes it wrote (at most len + 15). Decryption keeps the last block
// back for cbc_final, which may have to remove padding from it. dst may
// equal src only when no bytes are pending from an earlier call.
export function cbc_update(op: usize, src: usize, dst: usize, len: usize): i32 {
  if (!inMemory(src, len)) return ERR_LENGTH;
  const err = live(op);
  if (err) return err;
  let part = <usize>load<u32>(op, PARTLEN);
  const avail = part + len;
  let blocks = avail >> 4;
  if ((load<u32>(op, FLAGS) & F_DECRYPT) && blocks > 0 && (avail & 15) == 0) blocks--;
  // What is written, not len: pending bytes make it up to len + 15. Checked before anything changes.
  if (!writable(dst, blocks << 4)) return ERR_LENGTH;
  store<u64>(op, load<u64>(op, TOTAL) + len, TOTAL);
  let out: usize = 0;
  // Only decryption holds a whole block back; in place, its output lags its input by that block.
  if (blocks > 0 && part == 16 && dst < src + len && src < dst + (blocks << 4)) return inPlaceDecrypt(op, src, dst, len, blocks);
  if (blocks > 0 && part > 0) {
    const take: usize = 16 - part;
    memory.copy(op + PART + part, src, take);
    crypt(op, op + PART, dst, 1);
    out = 16;
    src += take;
    len -= take;
    blocks--;
    part = 0;
  }
  crypt(op, src, dst + out, blocks);
  out += blocks << 4;
  src += blocks << 4;
  len -= blocks << 4;
  memory.copy(op + PART + part, src, len);
  store<u32>(op, <u32>(part + len), PARTLEN);
  return <i32>out;
}

// Decryption whose output overlaps its input while a whole block is held
// back: each output block would overwrite the next input block before it is
// read, so that one is set aside first and becomes the block held back. One
// block at a time; the facade never decrypts in place.
function inPlaceDecrypt(op: usize, src: usize, dst: usize, len: usize, blocks: usize): i32 {
  let n: usize = 16;
  for (let i: usize = 0; i < blocks; i++) {
    const rest = len - (i << 4);
    n = rest < 16 ? rest : 16;
    memory.copy(SPARE, src + (i << 4), n);
    crypt(op, op + PART, dst + (i << 4), 1);
    memory.copy(op + PART, SPARE, n);
  }
  memory.fill(SPARE, 0, 16);
  store<u32>(op, <u32>n, PARTLEN);
  return <i32>(blocks << 4);
}

// Encryption: pads and writes the last block(s), returning the byte count.
// Decryption: decrypts the held block, checks and strips padding, and returns
// the number of plaintext bytes written; method 1 keeps its zeros.
export function cbc_final(op: usize, dst: usize): i32 {
  const err = live(op);
  if (err) return err;
  // The most any padding writes, checked whatever it will be.
  if (!writable(dst, 16)) return ERR_LENGTH;
  store<u32>(op, load<u32>(op, FLAGS) | F_DONE, FLAGS);
  const method = load<u32>(op, PADDING);
  const part = <usize>load<u32>(op, PARTLEN);
  const total = load<u64>(op, TOTAL);
  const p = op + PART;
  if (load<u32>(op, FLAGS) & F_DECRYPT) {
    if (part != 0 && part != 16) return ERR_LENGTH;
    // Every padding method makes at least one block (method 1 too: a positive multiple), so only no padding decrypts nothing.
    if (part == 0) return method == PAD_NONE ? 0 : ERR_LENGTH;
    decryptChain(op, p, dst, 1);
    if (method == PAD_NONE || method == PAD_ISO9797_M1) return 16;
    const pad = padLength(dst, method);
    if (pad == 0) {
      memory.fill(dst, 0, 16);
      return ERR_PADDING;
    }
    return <i32>(16 - pad);
  }
  if (method == PAD_NONE) return part == 0 ? 0 : ERR_LENGTH;
  if (method == PAD_ISO9797_M1) {
    // Zeros up to a positive multiple of the block: empty input gives one block.
    if (part == 0 && total != 0) return 0;
    memory.fill(p + part, 0, 16 - part);
  } else if (method == PAD_ISO9797_M2) {
    store<u8>(p + part, 0x80);
    memory.fill(p + part + 1, 0, 15 - part);
  } else {
    memory.fill(p + part, <u8>(16 - part), 16 - part);
  }
  encryptChain(op, p, dst, 1);
  memory.fill(p, 0, 16);
  return 16;
}

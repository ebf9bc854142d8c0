// AES-CCM (SP 800-38C, RFC 3610): nonces of 7 to 13 bytes, tags of 4 to 16
// even bytes. CCM authenticates the lengths of the associated data and of
// the payload before any of them (in B0 and the AAD prefix), so a streaming
// operation declares both when it is created.
import { ERR_AUTH, ERR_CONTEXT, ERR_LENGTH, ERR_STATE, CTX_HEADER, inMemory, writable } from './abi';
import { ctDiff } from './ct';
import { aesOp, isAesKey, encryptBlocks, cbcChain, ccmBlocks, ctrStream, inc32, opContext } from './aes';

export const CCM_KIND: u32 = 0x202;

const KEY: usize = CTX_HEADER;
const FLAGS: usize = KEY + 4; // bit 0 decrypt; bit 1 data started; bit 2 finished
const TAGLEN: usize = FLAGS + 4;
const KSOFF: usize = TAGLEN + 4; // ctrStream's state: keystream bytes of KS used,
const KSLEN: usize = KSOFF + 4; // and available
const PARTLEN: usize = KSLEN + 4;
const AADLEN: usize = 32; // u64, declared
const MSGLEN: usize = AADLEN + 8; // u64, declared
const AADSEEN: usize = MSGLEN + 8;
const MSGSEEN: usize = AADSEEN + 8;
const MAC: usize = 64; // CBC-MAC chaining value
const S0: usize = MAC + 16; // E(K, Ctr0), masks the tag
const CTR: usize = S0 + 16;
const KS: usize = CTR + 16;
const PART: usize = KS + 16;
const CCM_SIZE: u32 = <u32>(PART + 16);

const F_DECRYPT: u32 = 1;
const F_DATA: u32 = 2;
const F_DONE: u32 = 4;

@inline function key(op: usize): usize {
  return <usize>load<u32>(op, KEY);
}

// CBC-MAC over len more bytes of the formatted input: a partial block
// byte by byte, whole blocks through the serial chain.
function absorb(op: usize, src: usize, len: usize): void {
  const k = key(op), mac = op + MAC;
  let part = <usize>load<u32>(op, PARTLEN);
  if (part > 0) {
    const take = len < 16 - part ? len : 16 - part;
    for (let i: usize = 0; i < take; i++) store<u8>(mac + part + i, load<u8>(mac + part + i) ^ load<u8>(src + i));
    part += take;
    src += take;
    len -= take;
    if (part < 16) {
      store<u32>(op, <u32>part, PARTLEN);
      return;
    }
    encryptBlocks(k, mac, mac, 1);
  }
  const whole = len >> 4;
  if (whole) cbcChain(k, mac, src, 0, whole);
  part = len & 15;
  for (let i: usize = 0; i < part; i++) store<u8>(mac + i, load<u8>(mac + i) ^ load<u8>(src + (whole << 4) + i));
  store<u32>(op, <u32>part, PARTLEN);
}

// Ends a zero-padded section (associated data or payload).
function flush(op: usize): void {
  if (load<u32>(op, PARTLEN) == 0) return;
  encryptBlocks(key(op), op + MAC, op + MAC, 1);
  store<u32>(op, 0, PARTLEN);
}

function crypt(op: usize, src: usize, dst: usize, len: usize): void {
  ctrStream(key(op), op + CTR, op + KS, op + KSOFF, src, dst, len);
}

// Up to a payload block boundary and after the last whole block, byte by
// byte through the MAC's partial block and the kept keystream; whole blocks
// through ccmBlocks. Decryption MACs the plaintext it produced.
function step(op: usize, src: usize, dst: usize, len: usize, decrypt: bool): void {
  if (decrypt) {
    crypt(op, src, dst, len);
    absorb(op, dst, len);
  } else {
    absorb(op, src, len);
    crypt(op, src, dst, len);
  }
}

// The MAC's partial block and the keystream used of the current counter
// block both hold the payload's length mod 16, so they reach a block
// boundary together.
function process(op: usize, src: usize, dst: usize, len: usize, decrypt: bool): void {
  const into: usize = (16 - <usize>load<u32>(op, PARTLEN)) & 15;
  const head = len < into ? len : into;
  step(op, src, dst, head, decrypt);
  const whole = (len - head) & ~15;
  if (whole) ccmBlocks(key(op), op + MAC, op + CTR, src + head, dst + head, whole >> 4, decrypt);
  step(op, src + head + whole, dst + head + whole, len - head - whole, decrypt);
}

@inline function live(op: usize): i32 {
  if (!aesOp(op, CCM_KIND)) return ERR_CONTEXT;
  return load<u32>(op, FLAGS) & F_DONE ? ERR_STATE : 0;
}

// Moves from associated data to payload once all declared AAD arrived.
function startData(op: usize): i32 {
  const f = load<u32>(op, FLAGS);
  if (f & F_DATA) return 0;
  if (load<u64>(op, AADSEEN) != load<u64>(op, AADLEN)) return ERR_STATE;
  flush(op);
  store<u32>(op, f | F_DATA, FLAGS);
  return 0;
}

// Ends the operation, whose tag (written or compared) is at `tagAt`.
function finish(op: usize, tagAt: usize, decrypt: bool): i32 {
  const t = <usize>load<u32>(op, TAGLEN);
  if (decrypt ? !inMemory(tagAt, t) : !writable(tagAt, t)) return ERR_LENGTH;
  const err = startData(op);
  if (err) return err;
  if (load<u64>(op, MSGSEEN) != load<u64>(op, MSGLEN)) return ERR_LENGTH;
  flush(op);
  for (let i: usize = 0; i < 16; i++) store<u8>(op + MAC + i, load<u8>(op + MAC + i) ^ load<u8>(op + S0 + i));
  store<u32>(op, load<u32>(op, FLAGS) | F_DONE, FLAGS);
  return 0;
}

// ---- exports ----

// Starts a CCM operation that will see exactly aadLen bytes of associated
// data and msgLen bytes of payload. Returns 0 for a bad key context, nonce
// length, tag length, a nonce outside memory, or a payload too long for the
// length field.
export function ccm_create(k: usize, nonce: usize, nonceLen: usize, tagLen: usize, aadLen: u64, msgLen: u64, decrypt: u32, scratch: u32): usize {
  if (!isAesKey(k) || nonceLen < 7 || nonceLen > 13 || !inMemory(nonce, nonceLen)) return 0;
  if (tagLen < 4 || tagLen > 16 || (tagLen & 1)) return 0;
  const q: usize = 15 - nonceLen;
  if (q < 8 && (msgLen >> (<u64>q << 3)) != 0) return 0;
  const op = opContext(CCM_KIND, CCM_SIZE, scratch != 0);
  store<u32>(op, <u32>k, KEY);
  store<u32>(op, decrypt ? F_DECRYPT : 0, FLAGS);
  store<u32>(op, <u32>tagLen, TAGLEN);
  store<u32>(op, 0, KSOFF);
  store<u32>(op, 0, KSLEN);
  store<u64>(op, aadLen, AADLEN);
  store<u64>(op, msgLen, MSGLEN);
  // B0 = flags || N || Q, then its encryption starts the CBC-MAC.
  const b0 = op + MAC;
  store<u8>(b0, <u8>((aadLen ? 64 : 0) | (((tagLen - 2) >> 1) << 3) | (q - 1)));
  memory.copy(b0 + 1, nonce, nonceLen);
  for (let i: usize = 0; i < q; i++) store<u8>(b0 + 15 - i, <u8>(i < 8 ? msgLen >> (<u64>i << 3) : 0));
  encryptBlocks(k, b0, b0, 1);
  if (aadLen) {
    const enc = op + KS; // scratch for the AAD length prefix
    let n: usize;
    if (aadLen < 0xFF00) {
      store<u16>(enc, bswap<u16>(<u16>aadLen));
      n = 2;
    } else if (aadLen <= 0xFFFFFFFF) {
      store<u16>(enc, 0xFEFF);
      store<u32>(enc + 2, bswap<u32>(<u32>aadLen));
      n = 6;
    } else {
      store<u16>(enc, 0xFFFF);
      store<u64>(enc + 2, bswap<u64>(aadLen));
      n = 10;
    }
    absorb(op, enc, n);
  }
  // Ctr0 = flags' || N || 0: E(Ctr0) masks the tag, the payload starts at Ctr1.
  const ctr = op + CTR;
  memory.fill(ctr, 0, 16);
  store<u8>(ctr, <u8>(q - 1));
  memory.copy(ctr + 1, nonce, nonceLen);
  encryptBlocks(k, ctr, op + S0, 1);
  inc32(ctr);
  memory.fill(op + KS, 0, 16);
  return op;
}

export function ccm_aad(op: usize, src: usize, len: usize): i32 {
  if (!inMemory(src, len)) return ERR_LENGTH;
  const err = live(op);
  if (err) return err;
  if (load<u32>(op, FLAGS) & F_DATA) return ERR_STATE;
  const seen = load<u64>(op, AADSEEN) + len;
  if (seen > load<u64>(op, AADLEN)) return ERR_LENGTH;
  absorb(op, src, len);
  store<u64>(op, seen, AADSEEN);
  return 0;
}

// Encrypts or decrypts (as created) len bytes; dst may equal src. Returns len.
export function ccm_update(op: usize, src: usize, dst: usize, len: usize): i32 {
  if (!inMemory(src, len) || !writable(dst, len)) return ERR_LENGTH;
  let err = live(op);
  if (err) return err;
  err = startData(op);
  if (err) return err;
  const seen = load<u64>(op, MSGSEEN) + len;
  if (seen > load<u64>(op, MSGLEN)) return ERR_LENGTH;
  store<u64>(op, seen, MSGSEEN);
  process(op, src, dst, len, (load<u32>(op, FLAGS) & F_DECRYPT) != 0);
  return <i32>len;
}

// Encryption: writes the tag to out and returns its length.
export function ccm_final(op: usize, out: usize): i32 {
  let err = live(op);
  if (err) return err;
  if (load<u32>(op, FLAGS) & F_DECRYPT) return ERR_STATE;
  err = finish(op, out, false);
  if (err) return err;
  const t = <usize>load<u32>(op, TAGLEN);
  memory.copy(out, op + MAC, t);
  return <i32>t;
}

// Decryption: compares the tag at `expected` in constant time; 0 or ERR_AUTH.
export function ccm_verify(op: usize, expected: usize): i32 {
  let err = live(op);
  if (err) return err;
  if (!(load<u32>(op, FLAGS) & F_DECRYPT)) return ERR_STATE;
  err = finish(op, expected, true);
  if (err) return err;
  return ctDiff(op + MAC, expected, <usize>load<u32>(op, TAGLEN)) ? ERR_AUTH : 0;
}

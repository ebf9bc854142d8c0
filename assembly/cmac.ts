// The AES MACs of TS-0016 table 9.9-1: AES-CMAC (49; SP 800-38B, RFC 4493)
// and CBC-MAC with a zero IV over whole blocks (18; ISO/IEC 9797-1 MAC
// algorithm 1 without padding). Both chain E(K, X ^ M_i); CMAC treats the
// last block with a subkey, so it is held back until mac_final.
import { ERR_CONTEXT, ERR_LENGTH, ERR_STATE, CTX_HEADER, inMemory, writable } from './abi';
import { aesOp, isAesKey, encryptBlocks, cbcChain, opContext } from './aes';

export const MAC_KIND: u32 = 0x204;
export const ALG_CMAC: u32 = 49;
export const ALG_CBC_MAC: u32 = 18;

const KEY: usize = CTX_HEADER;
const ALG: usize = KEY + 4;
const PARTLEN: usize = ALG + 4;
const DONE: usize = PARTLEN + 4;
const SEEN: usize = DONE + 4; // 1 once any input arrived
const X: usize = 32;
const PART: usize = X + 16;
const K1: usize = PART + 16; // CMAC subkeys
const K2: usize = K1 + 16;
const MAC_SIZE: u32 = <u32>(K2 + 16);

// Doubling in GF(2^128) on a big-endian block (RFC 4493 2.3), without a
// branch on the bit shifted out.
function dbl(dst: usize, src: usize): void {
  const hi = bswap<u64>(load<u64>(src)), lo = bswap<u64>(load<u64>(src, 8));
  const carry = hi >> 63;
  store<u64>(dst, bswap<u64>((hi << 1) | (lo >> 63)));
  store<u64>(dst, bswap<u64>((lo << 1) ^ ((0 - carry) & 0x87)), 8);
}

// X = E(K, X ^ M) for n whole blocks.
@inline function chain(op: usize, src: usize, n: usize): void {
  cbcChain(<usize>load<u32>(op, KEY), op + X, src, 0, n);
}

@inline function live(op: usize): i32 {
  if (!aesOp(op, MAC_KIND)) return ERR_CONTEXT;
  return load<u32>(op, DONE) ? ERR_STATE : 0;
}

// ---- exports ----

// alg: 49 (AES-CMAC) or 18 (CBC-MAC, whole blocks). Returns 0 otherwise.
export function mac_create(k: usize, alg: u32, scratch: u32): usize {
  if (!isAesKey(k) || (alg != ALG_CMAC && alg != ALG_CBC_MAC)) return 0;
  const op = opContext(MAC_KIND, MAC_SIZE, scratch != 0);
  store<u32>(op, <u32>k, KEY);
  store<u32>(op, alg, ALG);
  if (alg == ALG_CMAC) {
    encryptBlocks(k, op + K1, op + K1, 1); // L = E(K, 0)
    dbl(op + K1, op + K1);
    dbl(op + K2, op + K1);
  }
  return op;
}

export function mac_update(op: usize, src: usize, len: usize): i32 {
  if (!inMemory(src, len)) return ERR_LENGTH;
  const err = live(op);
  if (err) return err;
  if (len) store<u32>(op, 1, SEEN);
  let part = <usize>load<u32>(op, PARTLEN);
  const avail = part + len;
  let blocks = avail >> 4;
  // CMAC keeps a final complete block for mac_final.
  if (load<u32>(op, ALG) == ALG_CMAC && blocks > 0 && (avail & 15) == 0) blocks--;
  if (blocks > 0 && part > 0) {
    const take: usize = 16 - part;
    memory.copy(op + PART + part, src, take);
    chain(op, op + PART, 1);
    src += take;
    len -= take;
    blocks--;
    part = 0;
  }
  chain(op, src, blocks);
  src += blocks << 4;
  len -= blocks << 4;
  memory.copy(op + PART + part, src, len);
  store<u32>(op, <u32>(part + len), PARTLEN);
  return 0;
}

// Writes the 16-byte MAC to out; CBC-MAC fails with ERR_LENGTH unless the
// input was a non-empty whole number of blocks.
export function mac_final(op: usize, out: usize): i32 {
  const err = live(op);
  if (err) return err;
  if (!writable(out, 16)) return ERR_LENGTH;
  const part = <usize>load<u32>(op, PARTLEN);
  const x = op + X;
  const cbcMac = load<u32>(op, ALG) == ALG_CBC_MAC;
  // Refused before the context finishes, as every refused call here: the rest of the blocks may follow.
  if (cbcMac && (part != 0 || !load<u32>(op, SEEN))) return ERR_LENGTH;
  store<u32>(op, 1, DONE);
  if (!cbcMac) {
    const p = op + PART;
    let sub = op + K1;
    if (part < 16) {
      store<u8>(p + part, 0x80);
      memory.fill(p + part + 1, 0, 15 - part);
      sub = op + K2;
    }
    for (let i: usize = 0; i < 16; i++) store<u8>(p + i, load<u8>(p + i) ^ load<u8>(sub + i));
    chain(op, p, 1);
  }
  memory.copy(out, x, 16);
  return 16;
}

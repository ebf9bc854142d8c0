// Batch hashing of many independent messages in one call: an IN-CSE checking
// many small primitives pays per message, not per byte. The SIMD build runs
// four SHA-256 messages of equal length side by side, one per i32x4 lane.
import { ERR_ALGORITHM, ERR_LENGTH, inMemory, itemsInMemory, overlap, writable } from './abi';
import { isHash, digestLength, hashOneshot, SHA256 } from './hash';
import { IV256 } from './sha2-iv';
import { K256 } from './sha2-rounds.generated';

const W4: usize = memory.data(64 * 16, 16);
const STATE4: usize = memory.data(8 * 16, 16);
const TAIL: usize = memory.data(4 * 128, 16); // padded final blocks, one 128-byte slot per lane

@inline function rotr4(x: v128, n: i32): v128 {
  return v128.or(i32x4.shr_u(x, n), i32x4.shl(x, 32 - n));
}

@inline function ch4(e: v128, f: v128, g: v128): v128 {
  return v128.bitselect(f, g, e);
}

@inline function maj4(a: v128, b: v128, c: v128): v128 {
  return v128.bitselect(a, b, v128.xor(b, c)) ;
}

@inline function round4(e: v128, f: v128, g: v128, h: v128, i: usize): v128 {
  const s1 = v128.xor(v128.xor(rotr4(e, 6), rotr4(e, 11)), rotr4(e, 25));
  const kw = i32x4.add(v128.load(W4 + i), i32x4.splat(load<u32>(K256 + (i >> 2))));
  return i32x4.add(i32x4.add(h, s1), i32x4.add(ch4(e, f, g), kw));
}

@inline function sigma4(a: v128, b: v128, c: v128): v128 {
  const s0 = v128.xor(v128.xor(rotr4(a, 2), rotr4(a, 13)), rotr4(a, 22));
  return i32x4.add(s0, maj4(a, b, c));
}

// Loads 16 big-endian words from each of four blocks, transposed so that
// word t of lane j lands in lane j of W4[t].
@inline function loadBlock4(p0: usize, p1: usize, p2: usize, p3: usize): void {
  for (let q: usize = 0; q < 64; q += 16) {
    const a = v128.load(p0 + q), b = v128.load(p1 + q), c = v128.load(p2 + q), d = v128.load(p3 + q);
    const t0 = i8x16.shuffle(a, b, 3, 2, 1, 0, 19, 18, 17, 16, 7, 6, 5, 4, 23, 22, 21, 20);
    const t1 = i8x16.shuffle(a, b, 11, 10, 9, 8, 27, 26, 25, 24, 15, 14, 13, 12, 31, 30, 29, 28);
    const t2 = i8x16.shuffle(c, d, 3, 2, 1, 0, 19, 18, 17, 16, 7, 6, 5, 4, 23, 22, 21, 20);
    const t3 = i8x16.shuffle(c, d, 11, 10, 9, 8, 27, 26, 25, 24, 15, 14, 13, 12, 31, 30, 29, 28);
    const o = W4 + (q << 2);
    v128.store(o, i8x16.shuffle(t0, t2, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23));
    v128.store(o, i8x16.shuffle(t0, t2, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), 16);
    v128.store(o, i8x16.shuffle(t1, t3, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), 32);
    v128.store(o, i8x16.shuffle(t1, t3, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), 48);
  }
}

function compress4(): void {
  for (let i: usize = 256; i < 1024; i += 16) {
    const w15 = v128.load(W4 + i - 240), w2 = v128.load(W4 + i - 32);
    const s0 = v128.xor(v128.xor(rotr4(w15, 7), rotr4(w15, 18)), i32x4.shr_u(w15, 3));
    const s1 = v128.xor(v128.xor(rotr4(w2, 17), rotr4(w2, 19)), i32x4.shr_u(w2, 10));
    v128.store(W4 + i, i32x4.add(i32x4.add(v128.load(W4 + i - 256), s0), i32x4.add(v128.load(W4 + i - 112), s1)));
  }
  let a = v128.load(STATE4, 0), b = v128.load(STATE4, 16), c = v128.load(STATE4, 32), d = v128.load(STATE4, 48);
  let e = v128.load(STATE4, 64), f = v128.load(STATE4, 80), g = v128.load(STATE4, 96), h = v128.load(STATE4, 112);
  for (let i: usize = 0; i < 1024; i += 128) {
    let t = round4(e, f, g, h, i); d = i32x4.add(d, t); h = i32x4.add(t, sigma4(a, b, c));
    t = round4(d, e, f, g, i + 16); c = i32x4.add(c, t); g = i32x4.add(t, sigma4(h, a, b));
    t = round4(c, d, e, f, i + 32); b = i32x4.add(b, t); f = i32x4.add(t, sigma4(g, h, a));
    t = round4(b, c, d, e, i + 48); a = i32x4.add(a, t); e = i32x4.add(t, sigma4(f, g, h));
    t = round4(a, b, c, d, i + 64); h = i32x4.add(h, t); d = i32x4.add(t, sigma4(e, f, g));
    t = round4(h, a, b, c, i + 80); g = i32x4.add(g, t); c = i32x4.add(t, sigma4(d, e, f));
    t = round4(g, h, a, b, i + 96); f = i32x4.add(f, t); b = i32x4.add(t, sigma4(c, d, e));
    t = round4(f, g, h, a, i + 112); e = i32x4.add(e, t); a = i32x4.add(t, sigma4(b, c, d));
  }
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 0), a), 0);
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 16), b), 16);
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 32), c), 32);
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 48), d), 48);
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 64), e), 64);
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 80), f), 80);
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 96), g), 96);
  v128.store(STATE4, i32x4.add(v128.load(STATE4, 112), h), 112);
}

// Writes the padded tail of a `len`-byte message at `src` into lane slot
// `lane` of TAIL and returns how many blocks (1 or 2) it spans.
function padTail(src: usize, len: usize, lane: usize): usize {
  const slot = TAIL + lane * 128;
  const rest = len & 63;
  memory.fill(slot, 0, 128);
  memory.copy(slot, src + len - rest, rest);
  store<u8>(slot + rest, 0x80);
  const blocks: usize = rest < 56 ? 1 : 2;
  store<u64>(slot + blocks * 64 - 8, bswap<u64>(<u64>len << 3));
  return blocks;
}

// Four messages of the same length `len`, digests to out .. out + 128.
function sha256x4(p0: usize, p1: usize, p2: usize, p3: usize, len: usize, out: usize): void {
  for (let j: usize = 0; j < 8; j++) v128.store(STATE4 + j * 16, i32x4.splat(load<u32>(IV256 + j * 4)));
  const full = len >> 6;
  for (let k: usize = 0; k < full; k++) {
    const o = k << 6;
    loadBlock4(p0 + o, p1 + o, p2 + o, p3 + o);
    compress4();
  }
  const tail = padTail(p0, len, 0);
  padTail(p1, len, 1); padTail(p2, len, 2); padTail(p3, len, 3);
  for (let k: usize = 0; k < tail; k++) {
    const o = TAIL + (k << 6);
    loadBlock4(o, o + 128, o + 256, o + 384);
    compress4();
  }
  for (let j: usize = 0; j < 8; j++) {
    const v = v128.load(STATE4 + j * 16);
    const o = out + j * 4;
    store<u32>(o, bswap<u32>(i32x4.extract_lane(v, 0)));
    store<u32>(o + 32, bswap<u32>(i32x4.extract_lane(v, 1)));
    store<u32>(o + 64, bswap<u32>(i32x4.extract_lane(v, 2)));
    store<u32>(o + 96, bswap<u32>(i32x4.extract_lane(v, 3)));
  }
}

// Hashes `count` messages stored back to back at `src`; `offsets` holds
// count + 1 u32 offsets relative to `src` (message i is offsets[i] .. offsets[i+1]).
// Digests are written contiguously to `out`. Returns count or an error.
export function hash_many(alg: u32, src: usize, offsets: usize, count: u32, out: usize): i32 {
  if (!isHash(alg)) return ERR_ALGORITHM;
  const dl = <usize>digestLength(alg);
  if (!itemsInMemory(offsets, <u64>count + 1, 4) || !itemsInMemory(out, count, dl) || !writable(out, <usize>count * dl)) return ERR_LENGTH;
  for (let i: u32 = 0; i < count; i++) {
    if (load<u32>(offsets + (<usize>i << 2), 4) < load<u32>(offsets + (<usize>i << 2))) return ERR_LENGTH;
  }
  // Offsets never go backwards, so the last one bounds every message.
  const srcLen = <usize>load<u32>(offsets + (<usize>count << 2));
  if (!inMemory(src, srcLen)) return ERR_LENGTH;
  // Digests written over the offsets (read again while hashing) would send a later read out of
  // memory: a trap, not a status. Over the messages they would change what is hashed. Refused.
  const outLen = <usize>count * dl;
  if (overlap(out, outLen, offsets, (<usize>count + 1) << 2) || overlap(out, outLen, src, srcLen)) return ERR_LENGTH;
  let i: u32 = 0;
  if (ASC_FEATURE_SIMD && alg == SHA256) {
    for (; i + 4 <= count; i += 4) {
      const o = offsets + (<usize>i << 2);
      const s0 = load<u32>(o), s1 = load<u32>(o, 4), s2 = load<u32>(o, 8), s3 = load<u32>(o, 12), s4 = load<u32>(o, 16);
      const len = s1 - s0;
      const dst = out + <usize>i * 32;
      if (s2 - s1 == len && s3 - s2 == len && s4 - s3 == len) {
        sha256x4(src + s0, src + s1, src + s2, src + s3, len, dst);
      } else {
        hashOneshot(alg, src + s0, len, dst);
        hashOneshot(alg, src + s1, s2 - s1, dst + 32);
        hashOneshot(alg, src + s2, s3 - s2, dst + 64);
        hashOneshot(alg, src + s3, s4 - s3, dst + 96);
      }
    }
  }
  for (; i < count; i++) {
    const o = offsets + (<usize>i << 2);
    const s = load<u32>(o);
    hashOneshot(alg, src + s, load<u32>(o, 4) - s, out + <usize>i * dl);
  }
  // Once per call rather than per group: the scratch held message words.
  if (ASC_FEATURE_SIMD) {
    memory.fill(W4, 0, 1024);
    memory.fill(TAIL, 0, 512);
    memory.fill(STATE4, 0, 128);
  }
  return <i32>count;
}

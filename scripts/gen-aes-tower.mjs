// Derives the lookup tables and shuffle masks of assembly/aes-vperm.ts and
// checks them: the lookup sequence of a round against the FIPS 197 S-box for
// all 256 inputs, and whole blocks in the order of aes-vperm.ts (rounds,
// layouts, the key transformation of vpermKeys, the chain's next input in the
// round basis) against a plain AES for random AES-128 and AES-256 keys.
// Prints the TABLES and MASKS blocks and the offsets to paste there.
//
// The round basis writes a byte as i + k W with i, k in the subfield GF(16)
// of GF(256) (nibbles i << 4 | k). With j = i + k and a constant a, the
// values io = j + 1 / (1/i + a/k) and jo = i + 1 / (1/j + a/k) are, for the
// right W and a, such that the inverse of the byte is a linear function of
// 1/io and 1/jo; "1/0" is a value >= 16 that swizzle turns into 0 when used
// as an index, which covers every zero case (checked below, not assumed).
// The output tables fold 1/io and 1/jo into that linear function.
//
// Layouts: a middle round leaves its MixColumns term 3 S(x) (an XOR of the
// other lookups, so the latest to be ready) where the S-box took its input,
// and shuffles only the other three terms; so the state's byte order drifts
// from round to round (period 8), and each round key is stored in the order
// of the round that adds it.

import { gmul, ginv, affine, SBOX } from './aes-field.mjs';

const range = [...Array(16).keys()];
const INF = 0x80;
// i8x16.swizzle on one lane: indices >= 16 (as unsigned bytes) give 0. An
// index in 16..127 is refused: i8x16.relaxed_swizzle (the Relaxed SIMD
// build) leaves those to the engine (0 or t[i % 16]); from 128 up both give 0.
const sw = (t, i) => {
  if (i >= 16 && i < 128) throw new Error(`swizzle index ${i}: implementation-defined for relaxed_swizzle`);
  return i >= 0 && i < 16 ? t[i] : 0;
};

// The subfield and a nibble encoding of it (its first four independent elements as the basis).
const sub = [...Array(256).keys()].filter((x) => { let y = x; for (let i = 0; i < 4; i++) y = gmul(y, y); return y === x; });
const basis = [];
for (const s of sub) {
  const span = [0];
  for (const b of basis) for (const v of [...span]) span.push(v ^ b);
  if (!span.includes(s)) basis.push(s);
}
const dec = range.map((n) => basis.reduce((r, b, t) => ((n >> t) & 1 ? r ^ b : r), 0));
const enc = new Map(dec.map((e, n) => [e, n]));
const ninv = (n) => enc.get(ginv(dec[n]));
const nmul = (m, n) => enc.get(gmul(dec[m], dec[n]));
const recip = (v) => (v > 0 && v < 16 ? ninv(v) : 0); // what an output table sees for index v

// The five lookups of the inversion, on the round-basis byte t.
const invert = (INV, INVA, t) => {
  const i = t >> 4, k = t & 15, j = i ^ k, ak = sw(INVA, k);
  return [sw(INV, sw(INV, i) ^ ak) ^ j, sw(INV, sw(INV, j) ^ ak) ^ i];
};

// Finds W and a; M maps (1/io, 1/jo) to the inverse in the standard basis.
function choose() {
  for (let W = 2; W < 256; W++) {
    if (sub.includes(W)) continue;
    const phi = new Array(256);
    for (const i of range) for (const k of range) phi[dec[i] ^ gmul(dec[k], W)] = (i << 4) | k;
    for (let a = 1; a < 16; a++) {
      const INV = range.map((n) => (n ? ninv(n) : INF));
      const INVA = range.map((n) => (n ? nmul(a, ninv(n)) : INF));
      const M = new Map();
      let ok = true;
      for (let x = 0; x < 256 && ok; x++) {
        const [io, jo] = invert(INV, INVA, phi[x]);
        const c = (recip(io) << 4) | recip(jo);
        if (M.has(c) && M.get(c) !== ginv(x)) ok = false;
        M.set(c, ginv(x));
      }
      for (let c = 0; c < 256 && ok; c++) for (let d = 0; d < 256 && ok; d++) if ((M.get(c) ^ M.get(d)) !== M.get(c ^ d)) ok = false;
      if (ok && M.size === 256) return { W, a, phi, INV, INVA, M };
    }
  }
  throw new Error('no basis found');
}
const { W, a, phi, INV, INVA, M } = choose();

// An output table pair for the linear map G of the inverse: by io, by jo.
const outputs = (G) => [range.map((n) => G(M.get(recip(n) << 4))), range.map((n) => G(M.get(recip(n))))];
const T = { TL: range.map((n) => phi[n]), TH: range.map((n) => phi[n << 4]), INV, INVA };
const maps = {
  O: affine,
  S1: (u) => phi[affine(u)],
  S2: (u) => phi[gmul(2, affine(u))],
};
for (const [name, G] of Object.entries(maps)) {
  const [u, t] = outputs(G);
  Object.assign(T, { [`${name}_U`]: u, [`${name}_T`]: t });
}

// The lookup sequence of a round, byte by byte.
const c63 = phi[0x63];
for (let x = 0; x < 256; x++) {
  const t = sw(T.TL, x & 15) ^ sw(T.TH, x >> 4);
  if (t !== phi[x]) throw new Error(`basis change mismatch at ${x}`);
  const [io, jo] = invert(T.INV, T.INVA, t);
  const image = (name) => sw(T[`${name}_U`], io) ^ sw(T[`${name}_T`], jo);
  if ((image('O') ^ 0x63) !== SBOX[x]) throw new Error(`S-box mismatch at ${x}`);
  if ((image('S1') ^ c63) !== phi[SBOX[x]]) throw new Error(`round-basis S-box mismatch at ${x}`);
  if ((image('S2') ^ phi[gmul(2, 0x63)]) !== phi[gmul(2, SBOX[x])]) throw new Error(`doubled S-box mismatch at ${x}`);
}

// Byte positions p = 4 c + r (column c, row r). A layout maps a lane to the
// position whose byte it holds. The MixColumns term d of output (c, r) is
// m_d S(a) with m = (2, 3, 1, 1) and a the byte at src(d, c, r) (ShiftRows
// included). The term D0 = 1 needs no shuffle: a middle round moves the
// state's bytes to where that term's inputs were, so the layout drifts by
// src(D0)^-1 per round.
const D0 = 1;
const MUL = [2, 3, 1, 1];
const pos = (c, r) => 4 * (c & 3) + (r & 3);
const src = (d, p) => pos((p >> 2) + (p & 3) + d, (p & 3) + d);
const layout = (n) => { // lane -> position after n middle rounds
  let l = range.slice();
  for (let s = 0; s < n; s++) l = l.map((p) => range.find((q) => src(D0, q) === p));
  return l;
};
let PERIOD = 1;
while (layout(PERIOD).some((p, q) => p !== q)) PERIOD++;
const lane = (l, p) => l.indexOf(p);
const SHUFFLED = [0, 1, 2, 3].filter((d) => d !== D0);
// Masks of middle round r (by (r - 1) mod MASK_PERIOD) for the shuffled terms;
// then the last round's ShiftRows into the standard order (after nr - 1
// middle rounds) for AES-128 and AES-256.
const MASKS = [];
for (let r = 1; r <= PERIOD; r++) {
  const from = layout(r - 1), to = layout(r);
  for (const d of SHUFFLED) MASKS.push(range.map((q) => lane(from, src(d, to[q]))));
  if (range.some((q) => lane(from, src(D0, to[q])) !== q)) throw new Error('layout drift');
  if (SHUFFLED.join() !== '0,2,3' || MUL[D0] !== 3) throw new Error('term order');
}
const lastMask = (nr) => range.map((p) => lane(layout(nr - 1), src(0, p)));
// The masks repeat before the layouts do: keep one period of them.
let MASK_PERIOD = 1;
while (MASKS.some((m, n) => m.join() !== MASKS[n % (3 * MASK_PERIOD)].join())) MASK_PERIOD++;
MASKS.length = 3 * MASK_PERIOD;
const LAST128 = MASKS.length;
MASKS.push(lastMask(10));
const LAST256 = lastMask(10).join() === lastMask(14).join() ? LAST128 : (MASKS.push(lastMask(14)), LAST128 + 1);
// The layout after one middle round, for the keys (applied r mod PERIOD times).
const LAYOUT = MASKS.length;
MASKS.push(layout(1));

// Whole blocks in the order of aes-vperm.ts, against a plain AES.
function expand(key) {
  const nk = key.length >> 2, nr = nk + 6, w = [...key];
  let rcon = 1;
  for (let i = nk; i < 4 * (nr + 1); i++) {
    let t = w.slice(4 * i - 4, 4 * i);
    if (i % nk === 0) { t = [SBOX[t[1]] ^ rcon, SBOX[t[2]], SBOX[t[3]], SBOX[t[0]]]; rcon = gmul(rcon, 2); }
    else if (nk > 6 && i % nk === 4) t = t.map((b) => SBOX[b]);
    for (let b = 0; b < 4; b++) w.push(w[4 * (i - nk) + b] ^ t[b]);
  }
  return { nr, rk: [...Array(nr + 1).keys()].map((r) => w.slice(16 * r, 16 * r + 16)) };
}
function aesRef(key, block) {
  const { nr, rk } = expand(key);
  let s = block.map((b, p) => b ^ rk[0][p]);
  for (let r = 1; r <= nr; r++) {
    const sb = s.map((b) => SBOX[b]);
    const sr = range.map((p) => sb[src(0, p)]);
    s = r < nr ? range.map((p) => {
      const c = p & ~3, row = p & 3, col = (q) => sr[c + ((row + q) & 3)];
      return gmul(2, col(0)) ^ gmul(3, col(1)) ^ col(2) ^ col(3);
    }) : sr;
    s = s.map((b, p) => b ^ rk[r][p]);
  }
  return s;
}
const lanes = (f) => range.map(f);
const lut = (t, v) => v.map((i) => sw(t, i));
const xor = (...v) => lanes((q) => v.reduce((acc, x) => acc ^ x[q], 0));
const shuffle = (v, m) => m.map((i) => v[i]);
function aesVperm(key, block) {
  const { nr, rk } = expand(key);
  // keys as vpermKeys stores them
  const keys = [rk[0]];
  for (let r = 1; r < nr; r++) keys.push(layout(r).map((p) => phi[rk[r][p]] ^ c63));
  keys.push(rk[nr].map((b) => b ^ 0x63));
  const tower = (v) => v.map((b) => phi[b]);
  let t = tower(xor(block, keys[0]));
  const inv = (v) => {
    const io = [], jo = [];
    for (const b of v) { const [u, w] = invert(T.INV, T.INVA, b); io.push(u); jo.push(w); }
    return [io, jo];
  };
  const image = (name, io, jo) => xor(lut(T[`${name}_U`], io), lut(T[`${name}_T`], jo));
  for (let r = 1; r < nr; r++) {
    const [io, jo] = inv(t), m = MASKS.slice(3 * ((r - 1) % MASK_PERIOD));
    // 3 S(x) = S(x) + 2 S(x), unshuffled, with the key
    const s1 = image('S1', io, jo), s2 = image('S2', io, jo), term = (d) => (MUL[d] === 1 ? s1 : s2);
    t = xor(s1, s2, keys[r], ...SHUFFLED.map((d, n) => shuffle(term(d), m[n])));
  }
  const [io, jo] = inv(t), last = MASKS[nr === 10 ? LAST128 : LAST256];
  const out = xor(shuffle(image('O', io, jo), last), keys[nr]);
  // the chain's next input in the round basis, without a change of basis
  const next = xor(shuffle(image('S1', io, jo), last), tower(keys[nr]));
  if (next.join() !== tower(out).join()) throw new Error('tower output mismatch');
  return out;
}
let seed = 1;
const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16 & 255;
const fips = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
const k256 = [...Array(32).keys()];
const want128 = '69c4e0d86a7b0430d8cdb78070b4c55a', want256 = '8ea2b7ca516745bfeafc49904b496089';
const hex = (v) => v.map((b) => b.toString(16).padStart(2, '0')).join('');
if (hex(aesRef(k256.slice(0, 16), fips)) !== want128 || hex(aesRef(k256, fips)) !== want256) throw new Error('reference AES wrong');
for (let n = 0; n < 200; n++) {
  const key = [...Array(n & 1 ? 32 : 16)].map(rnd), block = [...Array(16)].map(rnd);
  if (hex(aesVperm(key, block)) !== hex(aesRef(key, block))) throw new Error(`block mismatch, key ${hex(key)}`);
}

const row = (t) => '  ' + t.map((v) => `0x${v.toString(16).padStart(2, '0')}`).join(', ') + ',';
console.log(`// W = 0x${W.toString(16)}, a = ${a}, phi(0x63) = 0x${c63.toString(16)}; S-box verified for all 256 inputs, blocks for 200 keys`);
console.log('const TABLES: usize = memory.data<u8>([');
for (const name of Object.keys(T)) console.log(`${row(T[name])} // ${name}`);
console.log(']);');
console.log(Object.keys(T).map((n, i) => `const ${n}: usize = ${i * 16};`).join('\n'));
console.log('const MASKS: usize = memory.data<u8>([');
MASKS.forEach((m, i) => console.log(`${row(m)} // ${i < LAST128 ? `round ${MASK_PERIOD}n + ${((i / 3) | 0) + 1}, term ${SHUFFLED[i % 3]}` : i === LAYOUT ? 'layout' : i === LAST256 && i !== LAST128 ? 'last round, AES-256' : 'last round'}`));
console.log(']);');
console.log(`const PERIOD: usize = ${PERIOD};\nconst MASK_PERIOD: usize = ${MASK_PERIOD};\nconst LAST128: usize = ${LAST128 * 16};\nconst LAST256: usize = ${LAST256 * 16};\nconst LAYOUT: usize = ${LAYOUT * 16};`);

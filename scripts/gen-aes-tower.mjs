// Derives the lookup tables of assembly/aes-vperm.ts and checks that the
// lookup sequence of round() reproduces, for all 256 inputs, the FIPS 197
// S-box in the standard basis and, in the round basis, the S-box and its
// double. Prints the TABLES block and the table offsets to paste there.
//
// The round basis writes a byte as i + k W with i, k in the subfield GF(16)
// of GF(256) (nibbles i << 4 | k). With j = i + k and a constant a, the
// values io = j + 1 / (1/i + a/k) and jo = i + 1 / (1/j + a/k) are, for the
// right W and a, such that the inverse of the byte is a linear function of
// 1/io and 1/jo; "1/0" is a value >= 16 that swizzle turns into 0 when used
// as an index, which covers every zero case (checked below, not assumed).
// The output tables fold 1/io and 1/jo into that linear function.

const gmul = (a, b) => {
  let r = 0;
  for (; b; b >>= 1) {
    if (b & 1) r ^= a;
    a <<= 1;
    if (a & 0x100) a ^= 0x11b;
  }
  return r;
};
const ginv = (a) => (a === 0 ? 0 : [...Array(256).keys()].find((b) => gmul(a, b) === 1));
const rotl8 = (x, n) => ((x << n) | (x >> (8 - n))) & 0xff;
const affine = (x) => x ^ rotl8(x, 1) ^ rotl8(x, 2) ^ rotl8(x, 3) ^ rotl8(x, 4);
const SBOX = [...Array(256).keys()].map((x) => affine(ginv(x)) ^ 0x63);
const range = [...Array(16).keys()];
const INF = 0x80;
const sw = (t, i) => (i >= 0 && i < 16 ? t[i] : 0);

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
for (const [name, G] of Object.entries({ O: affine, S1: (u) => phi[affine(u)], S2: (u) => phi[gmul(2, affine(u))] })) {
  const [u, t] = outputs(G);
  Object.assign(T, { [`${name}_U`]: u, [`${name}_T`]: t });
}

// The lookup sequence of aes-vperm.ts, step by step.
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
const row = (t) => '  ' + t.map((v) => `0x${v.toString(16).padStart(2, '0')}`).join(', ') + ',';
console.log(`// W = 0x${W.toString(16)}, a = ${a}, phi(0x63) = 0x${c63.toString(16)}; S-box verified for all 256 inputs`);
console.log('const TABLES: usize = memory.data<u8>([');
for (const name of Object.keys(T)) console.log(`${row(T[name])} // ${name}`);
console.log(']);');
console.log(Object.keys(T).map((n, i) => `const ${n}: usize = ${i * 16};`).join('\n'));

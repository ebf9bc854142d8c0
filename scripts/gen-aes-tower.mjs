// Derives the lookup tables of assembly/aes-vperm.ts (AES SubBytes through
// the tower field GF(16)[y]/(y^2 + y + nu)) and checks that the lookup
// sequence of round() reproduces, for all 256 inputs, the FIPS 197 S-box in
// the standard basis and, in the tower basis, the S-box and its double.
// Prints the TABLES block and the table offsets to paste into aes-vperm.ts.

const mul = (a, b, poly, top) => {
  let r = 0;
  for (; b; b >>= 1) {
    if (b & 1) r ^= a;
    a <<= 1;
    if (a & top) a ^= poly;
  }
  return r;
};
const gmul8 = (a, b) => mul(a, b, 0x11b, 0x100);
const gmul4 = (a, b) => mul(a, b, 0x13, 0x10);
const ginv8 = (a) => (a === 0 ? 0 : [...Array(256).keys()].find((b) => gmul8(a, b) === 1));
const rotl8 = (x, n) => ((x << n) | (x >> (8 - n))) & 0xff;
const affine = (x) => x ^ rotl8(x, 1) ^ rotl8(x, 2) ^ rotl8(x, 3) ^ rotl8(x, 4);
const SBOX = [...Array(256).keys()].map((x) => affine(ginv8(x)) ^ 0x63);

// Tower element h*y + l as the byte h << 4 | l, with y^2 = y + nu.
const nu = [...Array(16).keys()].find((n) => n > 0 && [...Array(16).keys()].every((t) => (gmul4(t, t) ^ t ^ n) !== 0));
const tmul = (a, b) => {
  const ah = a >> 4, al = a & 15, bh = b >> 4, bl = b & 15, hh = gmul4(ah, bh);
  return ((hh ^ gmul4(ah, bl) ^ gmul4(al, bh)) << 4) | (gmul4(hh, nu) ^ gmul4(al, bl));
};
const tpow = (a, e) => { let r = 1; for (let i = 0; i < e; i++) r = tmul(r, a); return r; };
// A root of the AES polynomial x^8 + x^4 + x^3 + x + 1 in the tower field fixes the isomorphism.
const beta = [...Array(256).keys()].find((c) => c > 1 && (tpow(c, 8) ^ tpow(c, 4) ^ tpow(c, 3) ^ c ^ 1) === 0);
const powers = [...Array(8).keys()].map((i) => tpow(beta, i));
const phi = (x) => powers.reduce((r, p, i) => ((x >> i) & 1 ? r ^ p : r), 0);
const phiInv = new Map([...Array(256).keys()].map((x) => [phi(x), x]));
for (const [a, b] of [[3, 7], [0x57, 0x83], [0xca, 0xff]]) if (phi(gmul8(a, b)) !== tmul(phi(a), phi(b))) throw new Error('not a field isomorphism');

const EXP = [1];
for (let i = 1; i < 32; i++) EXP.push(gmul4(EXP[i - 1], 2));
const LOG = Array(16).fill(0x40);
for (let i = 0; i < 15; i++) LOG[EXP[i]] = i;
const range = [...Array(16).keys()];
const LOGINV = range.map((n) => (n === 0 ? 0x40 : (15 - LOG[n]) % 15));
const minus16 = (t) => t.map((v) => (v - 16) & 0xff);
// Linear images of the inverse h y + l, by l and by h: the AES affine map
// without its constant (A), and in the tower basis A and 2 A (MixColumns'
// doubling), each composed with exp so that a table takes a sum of logarithms
// (below 16 for EXPLO's half, 16 and above for EXPHI's).
const A = (n) => affine(phiInv.get(n));
const images = {
  O: (n) => A(n),
  S1: (n) => phi(A(n)),
  S2: (n) => phi(gmul8(2, A(n))),
};
const composite = (f) => [
  EXP.slice(0, 16).map((e) => f(e)), EXP.slice(16, 32).map((e) => f(e)),
  EXP.slice(0, 16).map((e) => f(e << 4)), EXP.slice(16, 32).map((e) => f(e << 4)),
];
const T = {
  TL: range.map((n) => phi(n)),
  TH: range.map((n) => phi(n << 4)),
  LOG,
  LOG16: minus16(LOG),
  EXPLO: EXP.slice(0, 16),
  EXPHI: EXP.slice(16, 32),
  SQNU: range.map((n) => gmul4(nu, gmul4(n, n))),
  SQ: range.map((n) => gmul4(n, n)),
  LOGINV,
  LOGINV16: minus16(LOGINV),
};
for (const [name, f] of Object.entries(images)) {
  const [ll, lh, hl, hh] = composite(f);
  Object.assign(T, { [`${name}_L`]: ll, [`${name}_L16`]: lh, [`${name}_H`]: hl, [`${name}_H16`]: hh });
}

// The lookup sequence of aes-vperm.ts, step by step, with swizzle's "index >= 16 gives 0".
const sw = (t, i) => (i >= 0 && i < 16 ? t[i] : 0);
const add = (a, b) => (a + b) & 0xff;
const image = (name, sl, sl16, sh, sh16) =>
  sw(T[`${name}_L`], sl) ^ sw(T[`${name}_L16`], sl16) ^ sw(T[`${name}_H`], sh) ^ sw(T[`${name}_H16`], sh16);
const c63 = phi(0x63);
for (let x = 0; x < 256; x++) {
  const t = sw(T.TL, x & 15) ^ sw(T.TH, x >> 4), l = t & 15, h = t >> 4;
  if (t !== phi(x)) throw new Error(`basis change mismatch at ${x}`);
  const lh = sw(T.LOG, h);
  const d = sw(T.SQNU, h) ^ sw(T.SQ, l) ^ sw(T.EXPLO, add(lh, sw(T.LOG, l))) ^ sw(T.EXPHI, add(lh, sw(T.LOG16, l)));
  const ld = sw(T.LOGINV, d), ld16 = sw(T.LOGINV16, d), lhl = sw(T.LOG, h ^ l);
  const idx = [add(lhl, ld), add(lhl, ld16), add(lh, ld), add(lh, ld16)];
  if ((image('O', ...idx) ^ 0x63) !== SBOX[x]) throw new Error(`S-box mismatch at ${x}`);
  if ((image('S1', ...idx) ^ c63) !== phi(SBOX[x])) throw new Error(`tower S-box mismatch at ${x}`);
  if ((image('S2', ...idx) ^ phi(gmul8(2, 0x63))) !== phi(gmul8(2, SBOX[x]))) throw new Error(`doubled S-box mismatch at ${x}`);
}
const row = (t) => '  ' + t.map((v) => `0x${v.toString(16).padStart(2, '0')}`).join(', ') + ',';
console.log(`// nu = ${nu}, beta = 0x${beta.toString(16)}, phi(0x63) = 0x${c63.toString(16)}; S-box verified for all 256 inputs`);
console.log('const TABLES: usize = memory.data<u8>([');
for (const name of Object.keys(T)) console.log(`${row(T[name])} // ${name}`);
console.log(']);');
console.log(Object.keys(T).map((n, i) => `const ${n}: usize = ${i * 16};`).join('\n'));

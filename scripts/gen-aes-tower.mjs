// Derives the lookup tables of assembly/aes-vperm.ts (AES SubBytes through
// the tower field GF(16)[y]/(y^2 + y + nu)) and checks that the lookup
// sequence of subBytes() reproduces the FIPS 197 S-box for all 256 inputs.
// Prints the TABLES block to paste into aes-vperm.ts.

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
const T = {
  TL: range.map((n) => phi(n)),
  TH: range.map((n) => phi(n << 4)),
  LOG,
  EXPLO: EXP.slice(0, 16),
  EXPHI: EXP.slice(16, 32),
  SQNU: range.map((n) => gmul4(nu, gmul4(n, n))),
  SQ: range.map((n) => gmul4(n, n)),
  LOGINV: range.map((n) => (n === 0 ? 0x40 : (15 - LOG[n]) % 15)),
  OL: range.map((n) => affine(phiInv.get(n))),
  OH: range.map((n) => affine(phiInv.get(n << 4)) ^ 0x63),
};

// subBytes() of aes-vperm.ts, step by step, with swizzle's "index >= 16 gives 0".
const sw = (t, i) => (i >= 0 && i < 16 ? t[i] : 0);
const mulLogs = (a, b) => { const s = (a + b) & 0xff; return sw(T.EXPLO, s) | sw(T.EXPHI, (s - 16) & 0xff); };
for (let x = 0; x < 256; x++) {
  const t = sw(T.TL, x & 15) ^ sw(T.TH, x >> 4), l = t & 15, h = t >> 4;
  const lh = sw(T.LOG, h), ll = sw(T.LOG, l);
  const ld = sw(T.LOGINV, sw(T.SQNU, h) ^ sw(T.SQ, l) ^ mulLogs(lh, ll));
  const y = sw(T.OL, mulLogs(sw(T.LOG, h ^ l), ld)) ^ sw(T.OH, mulLogs(lh, ld));
  if (y !== SBOX[x]) throw new Error(`S-box mismatch at ${x}`);
}
const row = (t) => '  ' + t.map((v) => `0x${v.toString(16).padStart(2, '0')}`).join(', ') + ',';
console.log(`// nu = ${nu}, beta = 0x${beta.toString(16)}; S-box verified for all 256 inputs`);
console.log('const TABLES: usize = memory.data<u8>([');
for (const name of Object.keys(T)) console.log(`${row(T[name])} // ${name}`);
console.log(']);');

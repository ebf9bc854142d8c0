// Generates assembly/ec/fields.generated.ts: straight-line Montgomery
// arithmetic (product scanning, 32-bit limbs in 64-bit locals) for the base and scalar
// fields of P-256, P-384 and P-521 (the P-521 base field uses its Mersenne
// form instead), plus every curve constant in the form the core uses. Unrolled code keeps the limbs in locals, which is what makes the
// field multiplication fast in WebAssembly; writing it by hand would be
// error-prone, so it is derived here from the moduli alone.
// Run by scripts/build-wasm.mjs (or alone: node scripts/gen-ec-fields.mjs).
import { writeFile } from 'node:fs/promises';

const CURVES = [
  {
    name: 'P256', bits: 256,
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
  },
  {
    name: 'P384', bits: 384,
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
  },
  {
    name: 'P521', bits: 521,
    p: (1n << 521n) - 1n,
    n: 0x1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    b: 0x51953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
    gx: 0xc6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66n,
    gy: 0x11839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650n,
  },
];

const MASK = 0xffffffffn;
const limbsOf = (x, n) => Array.from({ length: n }, (_, i) => (x >> BigInt(32 * i)) & MASK);
const hex32 = (x) => `0x${x.toString(16).padStart(8, '0')}`;
const data = (x, n) => `memory.data<u32>([${limbsOf(x, n).map(hex32).join(', ')}])`;

function modInverse(a, m) {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

// The modulus as a sum of c_e * 2^(32e), e = 0..N, where a word of all ones
// becomes the digit -1 (borrowing one from the next word). The NIST moduli
// are full of such words: p256 and p384 consist of nothing but digits -1, 0
// and 1, and the group orders have long runs of them. The Montgomery
// reduction then adds or subtracts a column's factor where a digit is +-1
// instead of multiplying it by the limb.
function modulusDigits(m, n) {
  const c = [];
  let x = m;
  for (let e = 0; e <= n; e++) {
    const d = x & MASK;
    const digit = d === MASK ? -1n : d;
    c.push(digit);
    x = (x - digit) >> 32n;
  }
  if (x !== 0n) throw new Error('modulus digits do not add up');
  return c;
}

// out = a * b / 2^(32N) mod m (or a^2 / 2^(32N) when square), fully
// reduced; o may alias a or b. Product scanning with the reduction folded in
// column by column (FIPS, Koc et al. 1996): each column sums the low and the
// high halves of its 64-bit products in two accumulators, so no product waits
// for the carry of the previous one, unlike operand scanning (CIOS).
function genMontMul(fn, m, n, square) {
  const ml = limbsOf(m, n);
  const mPrime = ((1n << 32n) - modInverse(m & MASK, 1n << 32n)) % (1n << 32n);
  const digits = modulusDigits(m, n);
  const L = [square ? `export function ${fn}_sqr(o: usize, a: usize): void {` : `export function ${fn}_mul(o: usize, a: usize, b: usize): void {`];
  for (let j = 0; j < n; j++) L.push(`  const a${j}: u64 = load<u32>(a, ${4 * j});`);
  if (!square) for (let j = 0; j < n; j++) L.push(`  const b${j}: u64 = load<u32>(b, ${4 * j});`);
  // lo is signed: digits -1 subtract words from it.
  L.push('  let lo: i64 = 0, hi: i64 = 0, p: u64;');
  // Squaring sums a column's cross products once in (cl, ch) and doubles the sum.
  if (square) L.push('  let cl: u64, ch: u64;');
  const add = (prod) => {
    L.push(`  p = ${prod}; lo += <i64>(p & 0xffffffff); hi += <i64>(p >> 32);`);
  };
  const addM = (j, d) => {
    if (d === 0n) return;
    if (d === 1n) L.push(`  lo += <i64>m${j};`);
    else if (d === -1n) L.push(`  lo -= <i64>m${j};`);
    else add(`m${j} * ${hex32(d)}`);
  };
  for (let k = 0; k < 2 * n; k++) {
    let cross = 0;
    for (let i = Math.max(0, k - n + 1); i <= Math.min(k, n - 1); i++) {
      const j = k - i;
      if (!square) add(`a${i} * b${j}`);
      else if (i === j) add(`a${i} * a${i}`);
      else if (i < j) {
        L.push(`  p = a${i} * a${j}; ${cross ? 'cl +=' : 'cl ='} p & 0xffffffff; ${cross ? 'ch +=' : 'ch ='} p >> 32;`);
        cross++;
      }
    }
    if (cross) L.push('  lo += <i64>(cl << 1); hi += <i64>(ch << 1);');
    for (let e = 1; e <= n; e++) {
      const j = k - e;
      if (j >= 0 && j < n) addM(j, digits[e]);
    }
    if (k < n) {
      // m_k makes the column's low word vanish: lo + m_k * c_0 = 0 (mod 2^32).
      if (mPrime === 1n) L.push(`  const m${k}: u64 = <u64>lo & 0xffffffff;`);
      else L.push(`  const m${k}: u64 = ((<u64>lo & 0xffffffff) * ${hex32(mPrime)}) & 0xffffffff;`);
      addM(k, digits[0]);
    } else {
      L.push(`  const t${k - n}: u64 = <u64>lo & 0xffffffff;`);
    }
    L.push('  lo = (lo >> 32) + (hi & 0xffffffff); hi >>= 32;');
  }
  L.push('  const top: u64 = <u64>(lo + (hi << 32));');
  L.push(...finalSubtract(ml, n, 't', 'top'));
  L.push('}');
  return L.join('\n');
}

// Emits "o = x - m if x >= m else x" in constant time for x = limbs v0..v{n-1} plus a top word.
function finalSubtract(ml, n, v, top) {
  const L = ['  let br: i64 = 0, d: i64;'];
  for (let j = 0; j < n; j++) {
    L.push(`  d = <i64>${v}${j} - ${hex32(ml[j])} + br; const d${j} = <u64>d & 0xffffffff; br = d >> 32;`);
  }
  // br is 0 or -1; x < m exactly when top + br < 0: then keep x.
  L.push(`  const keep = <u64>((<i64>${top} + br) >> 63);`);
  for (let j = 0; j < n; j++) L.push(`  store<u32>(o, <u32>((${v}${j} & keep) | (d${j} & ~keep)), ${4 * j});`);
  return L;
}

// p = 2^521 - 1 needs no Montgomery form: 18 limbs of 29 bits (522 bits), so
// 2^522 = 2 (mod p) folds the high half of the product onto the low half
// column by column, and every column sum stays below 35 * 2^58 < 2^64. The
// "Montgomery" constants of this field are then plain (R = 1). Saturated
// 32-bit words go in and come out, fully reduced, like the other fields.
function genMersenne521(fn, square) {
  const W = 17, N = 18, B = 29;
  const L = [square ? `export function ${fn}_sqr(o: usize, a: usize): void {` : `export function ${fn}_mul(o: usize, a: usize, b: usize): void {`];
  const unpack = (src, name) => {
    for (let w = 0; w < W; w++) L.push(`  const ${name}w${w}: u64 = load<u32>(${src}, ${4 * w});`);
    for (let i = 0; i < N; i++) {
      const bit = B * i, w = bit >> 5, sh = bit & 31;
      let e = sh ? `(${name}w${w} >> ${sh})` : `${name}w${w}`;
      if (sh > 32 - B && w + 1 < W) e += ` | (${name}w${w + 1} << ${32 - sh})`;
      L.push(`  const ${name}${i}: u64 = (${e}) & 0x1fffffff;`);
    }
  };
  unpack('a', 'a');
  if (!square) unpack('b', 'b');
  const col = [];
  for (let k = 0; k < N; k++) {
    const terms = [];
    if (square) {
      // Each product once; the doubling of cross terms (and the fold factor
      // 2 of the high half) is one shift per group instead of one per product.
      const twice = [], four = [];
      for (let i = 0; i <= k; i++) {
        const j = k - i;
        if (i < j) twice.push(`a${i} * a${j}`);
        else if (i === j) terms.push(`a${i} * a${i}`);
      }
      for (let i = k + 1; i < N; i++) {
        const j = k + N - i;
        if (j >= N) continue;
        if (i < j) four.push(`a${i} * a${j}`);
        else if (i === j) twice.push(`a${i} * a${i}`);
      }
      if (twice.length) terms.push(`((${twice.join(' + ')}) << 1)`);
      if (four.length) terms.push(`((${four.join(' + ')}) << 2)`);
    } else {
      for (let i = 0; i <= k; i++) terms.push(`a${i} * b${k - i}`);
      const high = [];
      for (let i = k + 1; i < N; i++) high.push(`a${i} * b${k + N - i}`);
      if (high.length) terms.push(`((${high.join(' + ')}) << 1)`);
    }
    col.push(`  let c${k}: u64 = ${terms.join(' + ')};`);
  }
  L.push(...col);
  const carry = () => { for (let k = 0; k < N - 1; k++) L.push(`  c${k + 1} += c${k} >> 29; c${k} &= 0x1fffffff;`); };
  // Bits from 521 up (bit 28 of limb 17) wrap around to bit 0, since 2^521 = 1.
  carry();
  L.push('  c0 += c17 >> 28; c17 &= 0xfffffff;');
  carry();
  L.push('  c0 += c17 >> 28; c17 &= 0xfffffff;');
  // Pack into 32-bit words (limbs may exceed 29 bits by one carry; the sum absorbs it).
  L.push('  let acc: u64 = 0;');
  let nbits = 0, w = 0;
  for (let i = 0; i < N; i++) {
    L.push(`  acc += c${i} << ${nbits};`);
    nbits += B;
    while (nbits >= 32 && w < W) {
      L.push(`  const v${w}: u64 = acc & 0xffffffff; acc >>= 32;`);
      nbits -= 32;
      w++;
    }
  }
  while (w < W) { L.push(`  const v${w}: u64 = acc & 0xffffffff; acc >>= 32;`); w++; }
  // v < 2^521 + 2^30: subtract p when v + 1 reaches 2^521, in constant time.
  L.push('  let t: u64 = 1;');
  for (let i = 0; i < W; i++) L.push(`  t += v${i}; const u${i} = t & 0xffffffff; t >>= 32;`);
  L.push('  const over = 0 - (u16 >> 9);');
  for (let i = 0; i < W; i++) {
    const u = i === W - 1 ? `(u${i} & 0x1ff)` : `u${i}`;
    L.push(`  store<u32>(o, <u32>((${u} & over) | (v${i} & ~over)), ${4 * i});`);
  }
  L.push('}');
  return L.join('\n');
}

function genAdd(fn, m, n) {
  const ml = limbsOf(m, n);
  const L = [`export function ${fn}_add(o: usize, a: usize, b: usize): void {`, '  let c: u64 = 0;'];
  for (let j = 0; j < n; j++) L.push(`  c += <u64>load<u32>(a, ${4 * j}) + load<u32>(b, ${4 * j}); const x${j} = c & 0xffffffff; c >>= 32;`);
  L.push(...finalSubtract(ml, n, 'x', 'c'));
  L.push('}');
  return L.join('\n');
}

function genSub(fn, m, n) {
  const ml = limbsOf(m, n);
  const L = [`export function ${fn}_sub(o: usize, a: usize, b: usize): void {`, '  let br: i64 = 0, d: i64;'];
  for (let j = 0; j < n; j++) L.push(`  d = <i64>load<u32>(a, ${4 * j}) - <i64>load<u32>(b, ${4 * j}) + br; const x${j} = <u64>d & 0xffffffff; br = d >> 32;`);
  // On borrow add m back: mask is all ones exactly when a < b.
  L.push('  const mask = <u64>br;', '  let c: u64 = 0;');
  for (let j = 0; j < n; j++) L.push(`  c += x${j} + (${hex32(ml[j])} & mask); store<u32>(o, <u32>c, ${4 * j}); c >>= 32;`);
  L.push('}');
  return L.join('\n');
}

const out = [
  '// Generated by scripts/gen-ec-fields.mjs: do not edit.',
  '// Arithmetic mod the base field p and group order n of each curve: little-endian',
  '// 32-bit limbs, values always fully reduced, Montgomery form with R = 2^(32 * limbs)',
  '// except for the P-521 base field, whose Mersenne prime reduces directly (R = 1).',
  '',
];
const fields = [];
for (const c of CURVES) {
  const n = Math.ceil(c.bits / 32);
  const mersenne = c.p === (1n << 521n) - 1n;
  const R = mersenne ? 1n : 1n << BigInt(32 * n);
  const toMont = (x) => (x * R) % c.p;
  for (const [tag, m] of [['p', c.p], ['n', c.n]]) {
    const Rm = tag === 'p' ? R : 1n << BigInt(32 * n);
    const fn = `${tag}${c.bits}`;
    fields.push(fn);
    out.push(`// ---- ${c.name} ${tag === 'p' ? 'base field' : 'scalar field'} ----`);
    out.push(`export const ${fn.toUpperCase()}_MOD: usize = ${data(m, n)};`);
    out.push(`export const ${fn.toUpperCase()}_R2: usize = ${data((Rm * Rm) % m, n)};`);
    out.push(`export const ${fn.toUpperCase()}_MINUS_2: usize = ${data(m - 2n, n)};`);
    if (tag === 'p' && mersenne) out.push(genMersenne521(fn, false), genMersenne521(fn, true));
    else out.push(genMontMul(fn, m, n, false), genMontMul(fn, m, n, true));
    out.push(genAdd(fn, m, n), genSub(fn, m, n), '');
  }
  out.push(`// ${c.name} curve constants (Montgomery form), and (p + 1) / 4 for square roots (p = 3 mod 4).`);
  out.push(`export const ${c.name}_B: usize = ${data(toMont(c.b), n)};`);
  out.push(`export const ${c.name}_GX: usize = ${data(toMont(c.gx), n)};`);
  out.push(`export const ${c.name}_GY: usize = ${data(toMont(c.gy), n)};`);
  out.push(`export const ${c.name}_ONE: usize = ${data(R % c.p, n)};`);
  out.push(`export const ${c.name}_SQRT_EXP: usize = ${data((c.p + 1n) / 4n, n)};`);
  out.push('');
}
// Field ids: 2 * curve index + (0 for p, 1 for n).
for (const op of ['mul', 'add', 'sub']) {
  out.push(`export function f${op}(f: u32, o: usize, a: usize, b: usize): void {`);
  out.push('  switch (f) {');
  fields.forEach((fn, i) => out.push(`    case ${i}: ${fn}_${op}(o, a, b); break;`));
  out.push('    default: unreachable();', '  }', '}', '');
}
out.push('export function fsqr(f: u32, o: usize, a: usize): void {', '  switch (f) {');
fields.forEach((fn, i) => out.push(`    case ${i}: ${fn}_sqr(o, a); break;`));
out.push('    default: unreachable();', '  }', '}', '');
for (const [what, suffix] of [['Modulus', 'MOD'], ['R2', 'R2'], ['MinusTwo', 'MINUS_2']]) {
  out.push(`export function field${what}(f: u32): usize {`);
  out.push('  switch (f) {');
  fields.forEach((fn, i) => out.push(`    case ${i}: return ${fn.toUpperCase()}_${suffix};`));
  out.push('    default: unreachable(); return 0;', '  }', '}', '');
}

await writeFile(new URL('../assembly/ec/fields.generated.ts', import.meta.url), out.join('\n'));


// Generates assembly/sha2-rounds.generated.ts: the SHA-256 and SHA-512
// compression functions fully unrolled, with the message schedule held in
// sixteen locals and the round constants as immediates, plus the SHA-256
// constant table the 4-lane batch code reads. AssemblyScript has no macros
// and binaryen does not unroll these loops; unrolled, V8 keeps the working
// variables in registers, which is what puts the core ahead of hash-wasm at
// 1 MiB (bench/sha2.ts).
// Run by scripts/build-wasm.mjs before compiling.

// FIPS 180-4 round constants, emitted as immediates (one load less per round).
const K256 = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];
const K512 = [
    0x428a2f98d728ae22n, 0x7137449123ef65cdn, 0xb5c0fbcfec4d3b2fn, 0xe9b5dba58189dbbcn,
    0x3956c25bf348b538n, 0x59f111f1b605d019n, 0x923f82a4af194f9bn, 0xab1c5ed5da6d8118n,
    0xd807aa98a3030242n, 0x12835b0145706fben, 0x243185be4ee4b28cn, 0x550c7dc3d5ffb4e2n,
    0x72be5d74f27b896fn, 0x80deb1fe3b1696b1n, 0x9bdc06a725c71235n, 0xc19bf174cf692694n,
    0xe49b69c19ef14ad2n, 0xefbe4786384f25e3n, 0x0fc19dc68b8cd5b5n, 0x240ca1cc77ac9c65n,
    0x2de92c6f592b0275n, 0x4a7484aa6ea6e483n, 0x5cb0a9dcbd41fbd4n, 0x76f988da831153b5n,
    0x983e5152ee66dfabn, 0xa831c66d2db43210n, 0xb00327c898fb213fn, 0xbf597fc7beef0ee4n,
    0xc6e00bf33da88fc2n, 0xd5a79147930aa725n, 0x06ca6351e003826fn, 0x142929670a0e6e70n,
    0x27b70a8546d22ffcn, 0x2e1b21385c26c926n, 0x4d2c6dfc5ac42aedn, 0x53380d139d95b3dfn,
    0x650a73548baf63den, 0x766a0abb3c77b2a8n, 0x81c2c92e47edaee6n, 0x92722c851482353bn,
    0xa2bfe8a14cf10364n, 0xa81a664bbc423001n, 0xc24b8b70d0f89791n, 0xc76c51a30654be30n,
    0xd192e819d6ef5218n, 0xd69906245565a910n, 0xf40e35855771202an, 0x106aa07032bbd1b8n,
    0x19a4c116b8d2d0c8n, 0x1e376c085141ab53n, 0x2748774cdf8eeb99n, 0x34b0bcb5e19b48a8n,
    0x391c0cb3c5c95a63n, 0x4ed8aa4ae3418acbn, 0x5b9cca4f7763e373n, 0x682e6ff3d6b2b8a3n,
    0x748f82ee5defb2fcn, 0x78a5636f43172f60n, 0x84c87814a1f0ab72n, 0x8cc702081a6439ecn,
    0x90befffa23631e28n, 0xa4506cebde82bde9n, 0xbef9a3f7b2c67915n, 0xc67178f2e372532bn,
    0xca273eceea26619cn, 0xd186b8c721c0c207n, 0xeada7dd6cde0eb1en, 0xf57d4f7fee6ed178n,
    0x06f067aa72176fban, 0x0a637dc5a2c898a6n, 0x113f9804bef90daen, 0x1b710b35131c471bn,
    0x28db77f523047d84n, 0x32caab7b40c72493n, 0x3c9ebe0a15c9bebcn, 0x431d67c49c100d4cn,
    0x4cc5d4becb3e42b6n, 0x597f299cfc657e2an, 0x5fcb6fab3ad6faecn, 0x6c44198c4a475817n,
];

const SPECS = {
  256: { T: 'u32', bytes: 4, rounds: 64, block: 64, S1: [6, 11, 25], S0: [2, 13, 22], s0: [7, 18, 3], s1: [17, 19, 10], K: K256 },
  512: { T: 'u64', bytes: 8, rounds: 80, block: 128, S1: [14, 18, 41], S0: [28, 34, 39], s0: [1, 8, 7], s1: [19, 61, 6], K: K512 },
};

// With `wk` set, the message words plus round constants come precomputed
// from that memory table (the SIMD build's vector schedule fills it).
function compress(bits, wk) {
  const { T, bytes, rounds, block, S1, S0, s0, s1, K } = SPECS[bits];
  const rot = (x, [a, b, c]) => `(rotr<${T}>(${x}, ${a}) ^ rotr<${T}>(${x}, ${b}) ^ rotr<${T}>(${x}, ${c}))`;
  const sig = (x, [a, b, c]) => `(rotr<${T}>(${x}, ${a}) ^ rotr<${T}>(${x}, ${b}) ^ (${x} >>> ${c}))`;
  const v = 'abcdefgh'.split('');
  const L = [];
  L.push(`// Compresses \`blocks\` consecutive ${block}-byte blocks at \`src\` into the eight`);
  L.push(`// native-order ${T} words at \`state\`.`);
  L.push(`export function sha${bits}Blocks${wk ? 'Wk' : ''}(state: usize, src: usize, blocks: usize): void {`);
  L.push(`  let ${v.map((x, i) => `${x} = load<${T}>(state, ${i * bytes})`).join(', ')};`);
  L.push('  while (blocks--) {');
  if (wk) L.push(`    ${wk}(src);`);
  else for (let i = 0; i < 16; i++) L.push(`    let w${i} = bswap<${T}>(load<${T}>(src, ${i * bytes}));`);
  L.push(`    const ${v.map((x) => `${x}0 = ${x}`).join(', ')};`);
  for (let r = 0; r < rounds; r++) {
    const [A, B, C, D, E, F, G, H] = v.map((_, j) => v[(j - r + 8 * rounds) % 8]);
    const w = `w${r % 16}`;
    if (r >= 16 && !wk) {
      L.push(`    ${w} += ${sig(`w${(r - 15) % 16}`, s0)} + w${(r - 7) % 16} + ${sig(`w${(r - 2) % 16}`, s1)};`);
    }
    const kw = wk ? `load<${T}>(WK, ${r * bytes})` : `${T === 'u64' ? `0x${K[r].toString(16).padStart(16, '0')}` : `0x${K[r].toString(16).padStart(8, '0')}`} + ${w}`;
    L.push(`    { const t = ${H} + ${rot(E, S1)} + (${G} ^ (${E} & (${F} ^ ${G}))) + ${kw};`);
    L.push(`      ${D} += t; ${H} = t + ${rot(A, S0)} + ((${A} & ${B}) | (${C} & (${A} | ${B}))); }`);
  }
  L.push(`    ${v.map((x) => `${x} += ${x}0;`).join(' ')}`);
  L.push(`    src += ${block};`);
  L.push('  }');
  L.push(`  ${v.map((x, i) => `store<${T}>(state, ${x}, ${i * bytes});`).join(' ')}`);
  // WK is static memory: W + K of the last block would outlive the call (and W is the message).
  if (wk) L.push(`  memory.fill(WK, 0, ${rounds * bytes});`);
  L.push('}');
  return L.join('\n');
}

export function generateSha2Rounds() {
  return [
    '// Generated by scripts/gen-sha2-rounds.mjs: do not edit.',
    "import { WK, sha256ScheduleSimd } from './sha256-schedule';",
    '',
    `export const K256: usize = memory.data<u32>([${K256.map((k) => `0x${k.toString(16)}`).join(', ')}]);`,
    '',
    compress(256),
    '',
    compress(256, 'sha256ScheduleSimd'),
    '',
    compress(512),
    '',
  ].join('\n');
}

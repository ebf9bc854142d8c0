// Generates assembly/aes-invsbox.generated.ts: the inverse AES S-box as one
// Boolean circuit over bit planes, derived from the forward circuit of
// assembly/aes-sbox.ts (Boyar and Peralta), which is read from that file so
// the circuit is written down once.
//
// S^-1(x) = B(S(B(x))) with B(y) = A^-1(y ^ 0x63), the inverse affine map of
// FIPS 197 5.3.2. Both B are linear (plus constants), and so are the top and
// bottom layers of the forward circuit around its non-linear middle, so the
// inverse keeps the middle as it is and gets a new top (B then the forward
// top: 8 planes to the 22 signals the middle reads) and a new bottom (the
// forward bottom then B: the 18 products to 8 planes). Each new layer is a
// straight-line XOR program found by Paar's greedy pair merging (the pair
// shared by most outputs first; ties broken by a seeded generator, best of
// many runs), so the build is reproducible. The constants of the two B
// cancel at the bottom; at the top they are folded into the input as
// x ^ 0x63 (four NOTs; left on the top layer's outputs, they would
// complement 16 of the 22).
//
// The result is checked on all 256 inputs against the inverse of the FIPS 197
// S-box (and the forward circuit as read against the S-box itself); the
// build fails if either differs.
// Run by scripts/build-wasm.mjs before compiling.
import { readFileSync } from 'node:fs';
import { SBOX, INV_SBOX } from './aes-field.mjs';

// ---- reading the forward circuit ----

/** Statements `name = expr` of a section; expr is a name, X/A(e, e) or N(e). */
function parseSection(text) {
  const tokens = text.replace(/\/\/.*$/gm, '').match(/[A-Za-z_]\w*|[(),;=<>]/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const take = (t) => {
    if (t !== undefined && tokens[i] !== t) throw new Error(`aes-sbox.ts: expected ${t}, found ${tokens[i]}`);
    return tokens[i++];
  };
  const expr = () => {
    const name = take();
    if (peek() !== '<') return { op: 'ref', name };
    take('<'); take('T'); take('>'); take('(');
    const args = [expr()];
    if (peek() === ',' && name !== 'N') {
      take(',');
      args.push(expr());
    }
    take(')');
    if (!['X', 'A', 'N'].includes(name)) throw new Error(`aes-sbox.ts: unknown gate ${name}`);
    return { op: name, args };
  };
  const out = [];
  while (i < tokens.length) {
    if (peek() === 'const') take('const');
    const name = take();
    take('=');
    out.push({ name, e: expr() });
    if (peek() === ',' || peek() === ';') take();
  }
  return out;
}

function readForward(src) {
  const body = src.slice(src.indexOf('export function sboxPlanes<T>'));
  const end = body.indexOf('\n}\n');
  const fn = body.slice(0, end);
  const loads = [...fn.matchAll(/(u\d) = ld<T>\(q, (\d)\)/g)].map((m) => ({ name: m[1], plane: +m[2] }));
  const stores = [...fn.matchAll(/st<T>\(q, (\d), (s\d)\)/g)].map((m) => ({ plane: +m[1], name: m[2] }));
  const at = (marker) => {
    const k = fn.indexOf(marker);
    if (k < 0) throw new Error(`aes-sbox.ts: section "${marker}" not found`);
    return k;
  };
  const top = fn.slice(at('// Top linear layer.'), at('// Inversion'));
  const middle = fn.slice(at('// Inversion'), at('// Bottom linear layer'));
  const bottom = fn.slice(at('// Bottom linear layer'), fn.indexOf('st<T>('));
  if (loads.length !== 8 || stores.length !== 8) throw new Error('aes-sbox.ts: expected 8 loads and 8 stores');
  return { loads, stores, top: parseSection(top), middle: parseSection(middle), bottom: parseSection(bottom) };
}

// ---- symbolic evaluation: affine forms { m: BigInt mask over atoms, c: 0 | 1 } ----

function linearForms(stmts, env) {
  const ev = (e) => {
    if (e.op === 'ref') {
      const v = env.get(e.name);
      if (!v) throw new Error(`unbound ${e.name}`);
      return v;
    }
    if (e.op === 'N') {
      const a = ev(e.args[0]);
      return { m: a.m, c: a.c ^ 1 };
    }
    if (e.op === 'X') {
      const a = ev(e.args[0]), b = ev(e.args[1]);
      return { m: a.m ^ b.m, c: a.c ^ b.c };
    }
    throw new Error('a product in a linear layer');
  };
  for (const s of stmts) env.set(s.name, ev(s.e));
  return env;
}

/** Names a section reads that it does not define, in first-use order. */
function inputsOf(stmts) {
  const defined = new Set(), used = [];
  const walk = (e) => {
    if (e.op === 'ref') {
      if (!defined.has(e.name) && !used.includes(e.name)) used.push(e.name);
    } else e.args.forEach(walk);
  };
  for (const s of stmts) {
    walk(s.e);
    defined.add(s.name);
  }
  return used;
}

// ---- Paar's greedy XOR synthesis ----

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Gates [a, b] (signal indices; inputs are 0..n-1, gate g is signal n + g)
 * computing every target (a BigInt mask over the n inputs), and the signal
 * holding each target.
 */
function synthesize(n, targets, runs, seed) {
  const rnd = mulberry32(seed);
  let best;
  for (let run = 0; run < runs; run++) {
    const rows = targets.map((t) => {
      const s = new Set();
      for (let i = 0; i < n; i++) if ((t >> BigInt(i)) & 1n) s.add(i);
      return s;
    });
    const gates = [];
    for (;;) {
      const count = new Map();
      for (const r of rows) {
        if (r.size < 2) continue;
        const a = [...r];
        for (let i = 0; i < a.length; i++) for (let j = i + 1; j < a.length; j++) {
          const k = a[i] < a[j] ? `${a[i]},${a[j]}` : `${a[j]},${a[i]}`;
          count.set(k, (count.get(k) ?? 0) + 1);
        }
      }
      if (count.size === 0) break;
      const top = Math.max(...count.values());
      const pairs = [...count].filter(([, c]) => c === top).map(([k]) => k.split(',').map(Number));
      const [a, b] = pairs[Math.floor(rnd() * pairs.length)];
      const g = n + gates.length;
      gates.push([a, b]);
      for (const r of rows) if (r.has(a) && r.has(b)) {
        r.delete(a);
        r.delete(b);
        r.add(g);
      }
    }
    if (!best || gates.length < best.gates.length) best = { gates, out: rows.map((r) => [...r][0]) };
  }
  return best;
}

// ---- deriving, checking and emitting the inverse ----

/** The generated module's text, from the forward circuit in `source` (assembly/aes-sbox.ts by default). */
export function generateInvSbox(source = readFileSync(new URL('../assembly/aes-sbox.ts', import.meta.url), 'utf8')) {
  const fwd = readForward(source);

  // The forward circuit as read, on all 256 inputs.
  const run = (stmts, env) => {
    const ev = (e) =>
      e.op === 'ref' ? env.get(e.name) : e.op === 'N' ? ~ev(e.args[0]) & 1 : e.op === 'X' ? ev(e.args[0]) ^ ev(e.args[1]) : ev(e.args[0]) & ev(e.args[1]);
    for (const s of stmts) env.set(s.name, ev(s.e));
    return env;
  };
  const whole = [...fwd.top, ...fwd.middle, ...fwd.bottom];
  for (let x = 0; x < 256; x++) {
    const env = new Map(fwd.loads.map((l) => [l.name, (x >> l.plane) & 1]));
    run(whole, env);
    const y = fwd.stores.reduce((v, s) => v | (env.get(s.name) << s.plane), 0);
    if (y !== SBOX[x]) throw new Error(`aes-sbox.ts: the forward circuit gives S(${x}) = ${y}, not ${SBOX[x]}`);
  }

  // Top: the middle's inputs as forms over the forward inputs u, then over
  // the planes of x' = x ^ 0x63, where u (plane p) = A^-1 x' (plane p) =
  // x'(p + 2) ^ x'(p + 5) ^ x'(p + 7).
  const uForms = new Map(fwd.loads.map((l, i) => [l.name, { m: 1n << BigInt(i), c: 0 }]));
  linearForms(fwd.top, uForms);
  const middleIn = inputsOf(fwd.middle);
  const planeOfU = fwd.loads.map((l) => l.plane);
  const overX = (form) => {
    let m = 0n;
    for (let i = 0; i < 8; i++) if ((form.m >> BigInt(i)) & 1n) {
      const p = planeOfU[i];
      for (const d of [2, 5, 7]) m ^= 1n << BigInt((p + d) % 8);
    }
    if (form.c) throw new Error('a constant in the forward top layer');
    return m;
  };
  const topTargets = middleIn.map((name) => overX(uForms.get(name)));
  const top = synthesize(8, topTargets, 300, 0x5b0c);

  // Bottom: the forward outputs as forms over the middle's products, then B.
  const middleOut = inputsOf(fwd.bottom);
  const zForms = new Map(middleOut.map((name, i) => [name, { m: 1n << BigInt(i), c: 0 }]));
  linearForms(fwd.bottom, zForms);
  const sAt = new Map(fwd.stores.map((s) => [s.plane, zForms.get(s.name)]));
  const bottomTargets = [];
  for (let p = 0; p < 8; p++) {
    let m = 0n, c = (0x05 >> p) & 1;
    for (const d of [2, 5, 7]) {
      const f = sAt.get((p + d) % 8);
      m ^= f.m;
      c ^= f.c;
    }
    if (c) throw new Error('the constants of the bottom layer do not cancel');
    bottomTargets.push(m);
  }
  const bottom = synthesize(middleOut.length, bottomTargets, 300, 0x1b0c);

  // The program: names for every signal.
  const xName = (p) => `x${p}`;
  const topNames = [...Array(8).keys()].map(xName);
  top.gates.forEach((_, g) => topNames.push(`a${g}`));
  top.out.forEach((sig, k) => {
    if (sig >= 8 && !middleIn.includes(topNames[sig])) topNames[sig] = middleIn[k];
  });
  const botNames = [...middleOut];
  bottom.gates.forEach((_, g) => botNames.push(`b${g}`));

  // Checks the program on all 256 inputs before emitting it.
  for (let x = 0; x < 256; x++) {
    const xp = x ^ 0x63;
    const sig = [...Array(8).keys()].map((p) => (xp >> p) & 1);
    for (const [a, b] of top.gates) sig.push(sig[a] ^ sig[b]);
    const env = new Map(middleIn.map((name, k) => [name, sig[top.out[k]]]));
    run(fwd.middle, env);
    const z = middleOut.map((name) => env.get(name));
    for (const [a, b] of bottom.gates) z.push(z[a] ^ z[b]);
    const y = bottom.out.reduce((v, s, p) => v | (z[s] << p), 0);
    if (y !== INV_SBOX[x]) throw new Error(`the derived inverse circuit gives ${y} for ${x}, not ${INV_SBOX[x]}`);
  }

  const expr = (e) => (e.op === 'ref' ? e.name : `${e.op}<T>(${e.args.map(expr).join(', ')})`);
  const lines = (defs) => {
    const out = [];
    for (let i = 0; i < defs.length; i += 4) out.push(`  const ${defs.slice(i, i + 4).join(', ')};`);
    return out;
  };
  const topDefs = top.gates.map(([a, b], g) => `${topNames[8 + g]} = X<T>(${topNames[a]}, ${topNames[b]})`);
  const aliases = middleIn.flatMap((name, k) => (topNames[top.out[k]] === name ? [] : [`${name} = ${topNames[top.out[k]]}`]));
  const botDefs = bottom.gates.map(([a, b], g) => `${botNames[middleOut.length + g]} = X<T>(${botNames[a]}, ${botNames[b]})`);
  return [
    '// Generated by scripts/gen-aes-invsbox.mjs from the forward circuit in',
    '// assembly/aes-sbox.ts: do not edit. The inverse S-box over bit planes:',
    `// the input plus 0x63, a top layer of ${top.gates.length} XORs, the forward circuit's middle`,
    `// (${fwd.middle.filter((s) => s.e.op === 'A').length} AND, ${fwd.middle.filter((s) => s.e.op !== 'A').length} XOR), a bottom layer of ${bottom.gates.length} XORs; checked on all 256 inputs.`,
    "import { X, A, N } from './aes-sbox';",
    '',
    'export function invSboxPlanes<T>(q: usize): void {',
    ...[...Array(8).keys()].map((p) => {
      const load = `load<T>(q + ${p} * sizeof<T>())`;
      return `  const ${xName(p)} = ${(0x63 >> p) & 1 ? `N<T>(${load})` : load};`;
    }),
    ...lines(topDefs),
    ...lines(aliases),
    ...lines(fwd.middle.map((s) => `${s.name} = ${expr(s.e)}`)),
    ...lines(botDefs),
    ...bottom.out.map((s, p) => `  store<T>(q + ${p} * sizeof<T>(), ${botNames[s]});`),
    '}',
    '',
  ].join('\n');
}

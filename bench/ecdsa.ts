// ECDSA keygen, sign and verify on P-256/384/521 against node:crypto
// (OpenSSL, KeyObjects prepared outside the loop), WebCrypto (sequential) and
// @noble/curves; plus the first-signature latency of a cold process.
import nodeCrypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { ecdsa, type CurveName, type HashName } from '../src/index.ts';
import { CHECKOUT, selects, type BenchGroup, type BenchModule, type BenchOptions } from './harness.ts';
import { senvCases } from './builds.ts';

const CURVES: { name: CurveName; hash: HashName; node: string; noble: typeof p256 }[] = [
  { name: 'P-256', hash: 'SHA-256', node: 'sha256', noble: p256 },
  { name: 'P-384', hash: 'SHA-384', node: 'sha384', noble: p384 },
  { name: 'P-521', hash: 'SHA-512', node: 'sha512', noble: p521 },
];

// Milliseconds from process start to the first result, in a fresh process
// each time (module load, WASM instantiation and the generator table included).
function coldStart(script: string): number | undefined {
  // From the checkout (the peers' bare specifiers resolve from its node_modules), with this process's flags.
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(CHECKOUT) });
  const m = /cold=([\d.]+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

const COLD_STARTS = 'ECDSA first signature in a cold process';

const fromB64u = (s: string | undefined) => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

/** A keygen row's pair as bytes (uncompressed public key), whichever form the row returns it in. */
async function keyBytes(r: unknown): Promise<{ secretKey: Uint8Array; publicKey: Uint8Array } | undefined> {
  const { privateKey, secretKey, publicKey } = (r ?? {}) as { privateKey?: unknown; secretKey?: unknown; publicKey?: unknown };
  let jwk: JsonWebKey;
  if (privateKey instanceof nodeCrypto.KeyObject) jwk = privateKey.export({ format: 'jwk' });
  else if (privateKey instanceof CryptoKey) jwk = await globalThis.crypto.subtle.exportKey('jwk', privateKey);
  else return secretKey instanceof Uint8Array && publicKey instanceof Uint8Array ? { secretKey, publicKey } : undefined;
  return { secretKey: fromB64u(jwk.d), publicKey: Uint8Array.of(4, ...fromB64u(jwk.x), ...fromB64u(jwk.y)) };
}

function reportColdStarts(opts: BenchOptions): void {
  const senvUrl = new URL('../src/index.js', import.meta.url).href;
  console.log(`\n${COLD_STARTS} (ms from the start of the import to the signature)`);
  for (const { name, node } of CURVES) {
    const nobleName = name.replace('-', '').toLowerCase();
    const scripts: Record<string, string> = {
      senv: `const t0 = performance.now(); const { ecdsa } = await import('${senvUrl}'); const e = ecdsa('${name}'); const k = e.keygen(); e.sign(new Uint8Array(32), k.secretKey); console.log('cold=' + (performance.now() - t0));`,
      // A key pair, as senv's keygen and node's generateKeyPairSync make: the public key too.
      '@noble/curves': `const t0 = performance.now(); const { ${nobleName} } = await import('@noble/curves/nist.js'); const sk = ${nobleName}.utils.randomSecretKey(); ${nobleName}.getPublicKey(sk, false); ${nobleName}.sign(new Uint8Array(32), sk); console.log('cold=' + (performance.now() - t0));`,
      'node:crypto': `const t0 = performance.now(); const c = await import('node:crypto'); const { privateKey } = c.generateKeyPairSync('ec', { namedCurve: '${name}' }); c.sign('${node}', new Uint8Array(32), privateKey); console.log('cold=' + (performance.now() - t0));`,
    };
    const medians: Record<string, number | null> = {};
    const row = Object.entries(scripts).map(([impl, s]) => {
      const runs = [0, 1, 2].map(() => coldStart(s)).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
      medians[impl] = runs.length ? runs[Math.floor(runs.length / 2)]! : null;
      return `${impl} ${medians[impl]?.toFixed(1) ?? 'n/a'}`;
    });
    console.log(`  ${name}: ${row.join(' | ')}`);
    opts.finding?.('ecdsa', { check: 'cold start', curve: name, ms: medians });
  }
}

export const ecdsaBench: BenchModule = async (opts) => {
  const groups: BenchGroup[] = [];
  const msg = new Uint8Array(nodeCrypto.randomBytes(100));
  const subtle = globalThis.crypto.subtle;
  for (const { name, hash, node, noble } of CURVES) {
    const e = ecdsa(name);
    const { secretKey, publicKey } = e.keygen();
    const sig = e.sign(msg, secretKey);
    const rawSig = e.sign(msg, secretKey, { format: 'raw' });
    // Every row signs and verifies under senv's key pair, so that the sign table's check (a
    // signature that verifies under publicKey) holds for each row: node:crypto and WebCrypto import
    // it as a JWK.
    const size = (publicKey.length - 1) / 2;
    const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
    const publicJwk = { kty: 'EC', crv: name, x: b64u(publicKey.subarray(1, 1 + size)), y: b64u(publicKey.subarray(1 + size)) };
    const jwk = { ...publicJwk, d: b64u(secretKey) };
    const nodeKeys = { privateKey: nodeCrypto.createPrivateKey({ key: jwk, format: 'jwk' }), publicKey: nodeCrypto.createPublicKey({ key: publicJwk, format: 'jwk' }) };
    const nodeSig = nodeCrypto.sign(node, msg, nodeKeys.privateKey);
    // DER, as senv's and node's signatures in the sign and verify tables (noble's default is raw r || s).
    const nobleSig = noble.sign(msg, secretKey, { format: 'der' });
    const nobleRawSig = noble.sign(msg, secretKey);
    // node:crypto and WebCrypto sign and verify with key objects made once, outside the loop (their
    // APIs' natural form, as in notes/peers.md); senv and noble take key bytes on every call, so the
    // ratios against them understate senv for a caller that imports a key per operation.
    // WebCrypto: one operation awaited at a time (sequential), as a caller without batching sees it.
    const webAlgo = { name: 'ECDSA', namedCurve: name };
    const webPair = {
      privateKey: await subtle.importKey('jwk', jwk, webAlgo, false, ['sign']),
      publicKey: await subtle.importKey('jwk', publicJwk, webAlgo, false, ['verify']),
    };
    const webParams = { name: 'ECDSA', hash };
    const webSig = await subtle.sign(webParams, webPair.privateKey, msg);
    groups.push({
      algorithm: `ECDSA ${name} keygen`, size: 0, randomized: true,
      // Every row's pair, checked by noble: the point is noble's public key of the scalar.
      valid: async (r) => {
        const pair = await keyBytes(r);
        return pair !== undefined && Buffer.from(noble.getPublicKey(pair.secretKey, false)).equals(pair.publicKey);
      },
      cases: [
        ...senvCases(() => e.keygen()),
        { impl: 'node:crypto', fn: () => nodeCrypto.generateKeyPairSync('ec', { namedCurve: name }) },
        { impl: 'WebCrypto', async: true, fn: () => subtle.generateKey(webAlgo, true, ['sign']) },
        // Both keys, the public one uncompressed, as senv's keygen gives them.
        { impl: '@noble/curves', fn: () => { const sk = noble.utils.randomSecretKey(); return { secretKey: sk, publicKey: noble.getPublicKey(sk, false) }; } },
      ],
    });
    groups.push({
      algorithm: `ECDSA ${name} sign`, size: 0, randomized: true,
      // lowS false: ECDSA's s and n - s both verify (noble refuses the high one by default). DER,
      // but WebCrypto's ArrayBuffer, raw r || s (its only form); prehashed with the curve's hash.
      valid: (sig) => sig instanceof ArrayBuffer
        ? noble.verify(new Uint8Array(sig), msg, publicKey, { format: 'compact', lowS: false })
        : noble.verify(sig as Uint8Array, msg, publicKey, { format: 'der', lowS: false }),
      cases: [
        ...senvCases(() => e.sign(msg, secretKey)),
        { impl: 'node:crypto', fn: () => nodeCrypto.sign(node, msg, nodeKeys.privateKey) },
        { impl: 'WebCrypto', async: true, fn: () => subtle.sign(webParams, webPair.privateKey, msg) },
        { impl: '@noble/curves', fn: () => noble.sign(msg, secretKey, { extraEntropy: true, format: 'der' }) },
      ],
    });
    groups.push({
      algorithm: `ECDSA ${name} verify`, size: 0, cases: [
        ...senvCases(() => e.verify(sig, msg, publicKey)),
        { impl: 'node:crypto', fn: () => nodeCrypto.verify(node, msg, nodeKeys.publicKey, nodeSig) },
        { impl: 'WebCrypto', async: true, fn: () => subtle.verify(webParams, webPair.publicKey, webSig, msg) },
        { impl: '@noble/curves', fn: () => noble.verify(nobleSig, msg, publicKey, { format: 'der' }) },
      ],
    });
    groups.push({
      algorithm: `ECDSA ${name} verify raw`, size: 0, cases: [
        ...senvCases(() => e.verify(rawSig, msg, publicKey, { format: 'raw' })),
        { impl: '@noble/curves', fn: () => noble.verify(nobleRawSig, msg, publicKey) },
      ],
    });
  }
  if (selects(opts, COLD_STARTS)) reportColdStarts(opts);
  return groups;
};

// Cross-checks of senv ECDSA against @noble/curves and node:crypto (OpenSSL)
// in both directions, with random keys and messages, DER and raw signatures.
import { describe, it, expect } from 'vitest';
import nodeCrypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { ecdsa, initSync, coreBuilds, LengthError, type CurveName, type HashName, type CoreBuild } from '../../src/index.ts';

const NOBLE = { 'P-256': p256, 'P-384': p384, 'P-521': p521 } as const;
const NODE_HASH: Record<HashName, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };
const HASHES: HashName[] = ['SHA-256', 'SHA-384', 'SHA-512'];
// The hash each curve signs with by default (docs/ecdsa.md), by node's name.
const CURVE_HASH: Record<CurveName, string> = { 'P-256': 'sha256', 'P-384': 'sha384', 'P-521': 'sha512' };
// The Relaxed SIMD build differs from the SIMD one in AES only.
const RUNS: Record<CoreBuild, number> = { relaxed: 100, simd: 500, scalar: 100 };

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

function nodeKeys(curve: CurveName, secretKey: Uint8Array, publicKey: Uint8Array) {
  const L = secretKey.length;
  const jwk = { kty: 'EC', crv: curve, x: b64url(publicKey.subarray(1, 1 + L)), y: b64url(publicKey.subarray(1 + L)) };
  return {
    priv: nodeCrypto.createPrivateKey({ key: { ...jwk, d: b64url(secretKey) }, format: 'jwk' }),
    pub: nodeCrypto.createPublicKey({ key: jwk, format: 'jwk' }),
  };
}

for (const build of coreBuilds()) {
  describe(`ECDSA cross-checks (${build} build)`, () => {
    for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
      it(`${curve}: ${RUNS[build]} random keys and messages against @noble/curves and node:crypto`, () => {
        initSync({ build });
        const e = ecdsa(curve);
        const noble = NOBLE[curve];
        for (let i = 0; i < RUNS[build]; i++) {
          const format = i % 2 ? 'raw' : 'der';
          const nodeEncoding = format === 'raw' ? 'ieee-p1363' : 'der';
          const nobleFormat = format === 'raw' ? 'compact' : 'der';
          const msg = nodeCrypto.randomBytes(i % 97);
          const hashName = HASHES[i % 3]!;
          // Alternate key sources: senv keygen, noble keygen.
          const { secretKey, publicKey } = i % 4 < 2 ? e.keygen() : (() => {
            const sk = noble.utils.randomSecretKey();
            return { secretKey: sk, publicKey: noble.getPublicKey(sk, false) };
          })();
          expect(Buffer.from(e.getPublicKey(secretKey))).toEqual(Buffer.from(noble.getPublicKey(secretKey, false)));
          expect(Buffer.from(e.getPublicKey(secretKey, true))).toEqual(Buffer.from(noble.getPublicKey(secretKey, true)));
          const { priv, pub } = nodeKeys(curve, secretKey, publicKey);

          // senv signs (deterministic, the curve's hash): noble produces the same bytes.
          const det = e.sign(msg, secretKey, { format, extraEntropy: false });
          expect(Buffer.from(det)).toEqual(Buffer.from(noble.sign(msg, secretKey, { format: nobleFormat, lowS: false, extraEntropy: false })));
          // senv signs (hedged, any hash): noble and OpenSSL verify.
          const sig = e.sign(msg, secretKey, { format, hash: hashName });
          const digest = nodeCrypto.createHash(NODE_HASH[hashName]).update(msg).digest();
          expect(noble.verify(sig, digest, publicKey, { format: nobleFormat, prehash: false, lowS: false })).toBe(true);
          expect(nodeCrypto.verify(NODE_HASH[hashName], msg, { key: pub, dsaEncoding: nodeEncoding }, sig)).toBe(true);

          // They sign, senv verifies; a changed message fails.
          const nodeSig = nodeCrypto.sign(NODE_HASH[hashName], msg, { key: priv, dsaEncoding: nodeEncoding });
          expect(e.verify(nodeSig, msg, publicKey, { format, hash: hashName })).toBe(true);
          const nobleSig = noble.sign(digest, secretKey, { format: nobleFormat, prehash: false, lowS: false });
          expect(e.verify(nobleSig, digest, publicKey, { format, hash: hashName, prehashed: true })).toBe(true);
          const other = Buffer.concat([msg, Buffer.from([i & 0xff])]);
          expect(e.verify(nodeSig, other, publicKey, { format, hash: hashName })).toBe(false);
        }
      }, 300_000);
    }
  });
}

describe('keys in the PKI formats senv does not read', () => {
  for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
    it(`${curve}: PKCS#8 and SEC1 DER for a secret key, SPKI DER for a public key: a LengthError that names the form wanted`, () => {
      const e = ecdsa(curve);
      const { privateKey, publicKey } = nodeCrypto.generateKeyPairSync('ec', { namedCurve: curve });
      const msg = new Uint8Array(16);
      for (const type of ['pkcs8', 'sec1'] as const) {
        const der = new Uint8Array(privateKey.export({ format: 'der', type }));
        for (const call of [() => e.sign(msg, der), () => e.getPublicKey(der)]) {
          expect(call).toThrow(LengthError);
          expect(call).toThrow(/secretKey must be \d+ bytes for P-\d+ \(the private scalar, big-endian: a PKCS#8, SEC1 or JWK key is converted first\)/);
        }
      }
      const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
      const verify = () => e.verify(new Uint8Array(8), msg, spki);
      expect(verify).toThrow(LengthError);
      expect(verify).toThrow(/publicKey must be a SEC1 point of P-\d+, .* \(an SPKI key is converted first\)/);
    });
  }
});

describe('docs/ecdsa.md, Keys from and to other formats, against node:crypto', () => {
  const doc = readFileSync(new URL('../../docs/ecdsa.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Keys from and to other formats'), doc.indexOf('## Implementation'));
  const recipe = /^```ts\n([\s\S]*?)^```$/m.exec(section)![1]!;
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<Record<string, Uint8Array>>;

  for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
    it(`${curve}: the WebCrypto recipe takes node's PKCS#8 and SPKI to senv's scalar and point, and senv's back to keys node reads`, async () => {
      const code = recipe.replace(/^import .*$/m, '').replace("const curve = 'P-256';", `const curve = '${curve}';`);
      expect(code).toContain(`const curve = '${curve}';`);
      const run = new AsyncFunction('ecdsa', 'pkcs8Der', 'spkiDer', `${code}\nreturn { secretKey, publicKey, pkcs8Out, spkiOut };`);
      const { privateKey, publicKey } = nodeCrypto.generateKeyPairSync('ec', { namedCurve: curve });
      const jwk = privateKey.export({ format: 'jwk' });
      const out = await run(ecdsa, privateKey.export({ format: 'der', type: 'pkcs8' }), publicKey.export({ format: 'der', type: 'spki' }));
      const e = ecdsa(curve);
      expect(Buffer.from(out.secretKey!).toString('base64url')).toBe(jwk.d);
      expect(Buffer.from(out.publicKey!)).toEqual(Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]));
      const msg = nodeCrypto.randomBytes(40);
      expect(nodeCrypto.verify(CURVE_HASH[curve], msg, publicKey, e.sign(msg, out.secretKey!))).toBe(true);
      expect(nodeCrypto.createPrivateKey({ key: Buffer.from(out.pkcs8Out!), format: 'der', type: 'pkcs8' }).export({ format: 'jwk' })).toEqual(jwk);
      expect(Buffer.from(out.spkiOut!)).toEqual(publicKey.export({ format: 'der', type: 'spki' }));
    });
  }

  it('the DER headers of the table, followed by senv\'s point or scalar, are the SPKI and PKCS#8 keys node:crypto reads', () => {
    const rows = [...section.matchAll(/^\| (P-\d+) \| `([A-Za-z0-9+/=]+)` \| `([A-Za-z0-9+/=]+)` \|$/gm)];
    expect(rows.map((r) => r[1])).toEqual(['P-256', 'P-384', 'P-521']);
    for (const [, curve, spkiHeader, pkcs8Header] of rows) {
      const { secretKey, publicKey } = ecdsa(curve as CurveName).keygen();
      const spki = Buffer.concat([Buffer.from(spkiHeader!, 'base64'), publicKey]);
      const pub = nodeCrypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
      expect(pub.export({ format: 'der', type: 'spki' })).toEqual(spki);
      const priv = nodeCrypto.createPrivateKey({ key: Buffer.concat([Buffer.from(pkcs8Header!, 'base64'), secretKey]), format: 'der', type: 'pkcs8' });
      const jwk = priv.export({ format: 'jwk' });
      expect(jwk.crv).toBe(curve);
      expect(jwk.d).toBe(Buffer.from(secretKey).toString('base64url'));
      expect(nodeCrypto.createPublicKey(priv).export({ format: 'der', type: 'spki' })).toEqual(spki);
    }
  });
});

// Edges of the EC arithmetic that the vector suites leave open (found by a
// mutation review of assembly/ec/): scalars whose only nonzero 32-bit limb is
// the top one. The core's zero test ORs every limb of a scalar; one that
// skipped the top limb would call such a key or such an s zero and refuse it,
// and no random, CAVP or Wycheproof scalar has its lower limbs all zero.
// Oracles: @noble/curves, and for the signature the ECDSA equation itself.
import { describe, it, expect } from 'vitest';
import nodeCrypto from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { ecdsa, initSync, coreBuilds, HmacDrbg, type CurveName } from '../../src/index.ts';

// Scalars are limbs of the order's field: 8, 12 and 17 words of 32 bits.
// The digest is the curve's own hash, whose length the prehashed digest must have.
const CURVES = [
  { curve: 'P-256', noble: p256, bytes: 32, limbs: 8, hash: 'SHA-256', digestBytes: 32 },
  { curve: 'P-384', noble: p384, bytes: 48, limbs: 12, hash: 'SHA-384', digestBytes: 48 },
  { curve: 'P-521', noble: p521, bytes: 66, limbs: 17, hash: 'SHA-512', digestBytes: 64 },
] as const;

const toBytes = (v: bigint, n: number) => Uint8Array.from(Buffer.from(v.toString(16).padStart(2 * n, '0'), 'hex'));
const toBig = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex')}`);
const mod = (a: bigint, n: bigint) => ((a % n) + n) % n;
function inverse(a: bigint, n: bigint): bigint {
  let [x, y, u, v] = [mod(a, n), n, 1n, 0n];
  while (x) {
    const q = y / x;
    [x, y, u, v] = [y - q * x, x, v - q * u, u];
  }
  return mod(v, n);
}
const random = (bytes: number, below: bigint) => {
  for (;;) {
    const v = toBig(nodeCrypto.randomBytes(bytes));
    if (v > 0n && v < below) return v;
  }
};

// The signature with s = 2^(32 (limbs - 1)) needs no signer that accepts such
// an s: the key d is solved from s k = e + r d, and the digest is passed
// prehashed so that e can be any value. Computed once, so every build is
// checked against the same answers.
const cases = CURVES.map(({ curve, noble, bytes, limbs, hash, digestBytes }) => {
  const n = noble.Point.Fn.ORDER;
  const top = 1n << BigInt(32 * (limbs - 1));
  const sk = toBytes(top, bytes);
  const k = random(bytes, n);
  const r = mod(noble.Point.BASE.multiply(k).toAffine().x, n);
  const e = random(digestBytes, n); // below 2^(8 digestBytes): the digest is e itself
  const d = mod((top * k - e) * inverse(r, n), n);
  const digest = toBytes(e, digestBytes);
  const sig = Uint8Array.from([...toBytes(r, bytes), ...toBytes(top, bytes)]);
  const publicKey = noble.getPublicKey(toBytes(d, bytes), false);
  return {
    curve: curve as CurveName,
    hash,
    exponent: 32 * (limbs - 1),
    sk,
    digest,
    // RFC 6979 with the curve's hash, as senv signs with extraEntropy: false.
    keyPublic: noble.getPublicKey(sk, false),
    keySignature: noble.sign(digest, sk, { prehash: false, lowS: false, extraEntropy: false, format: 'compact' }),
    topS: { sig, publicKey, nobleValid: noble.verify(sig, digest, publicKey, { prehash: false, lowS: false, format: 'compact' }) },
  };
});

for (const build of coreBuilds()) {
  describe(`scalars with only the top limb set (${build} build)`, () => {
    for (const c of cases) {
      const opts = { prehashed: true, hash: c.hash, format: 'raw' } as const;
      it(`${c.curve}: the key 2^${c.exponent} has noble's public key and RFC 6979 signature`, () => {
        initSync({ build });
        const e = ecdsa(c.curve);
        expect(Buffer.from(e.getPublicKey(c.sk))).toEqual(Buffer.from(c.keyPublic));
        expect(Buffer.from(e.sign(c.digest, c.sk, { ...opts, extraEntropy: false }))).toEqual(Buffer.from(c.keySignature));
      });
      it(`${c.curve}: a valid signature with s = 2^${c.exponent} verifies`, () => {
        initSync({ build });
        expect(c.topS.nobleValid).toBe(true);
        expect(ecdsa(c.curve).verify(c.topS.sig, c.digest, c.topS.publicKey, opts)).toBe(true);
      });
    }
  });
}

describe('P-521 key generation', () => {
  // FIPS 186-5 A.2.2: a candidate is the draw's low 521 bits, redrawn only when it is not below n.
  it('keeps the low 521 bits of a 66-byte draw whose top byte has higher bits set, instead of drawing again', () => {
    const draw = new Uint8Array(66).fill(0x5a);
    draw[0] = 0xfe;
    let draws = 0;
    const generate = HmacDrbg.prototype.generate;
    HmacDrbg.prototype.generate = function (this: HmacDrbg, n: number, addin?: Uint8Array) {
      const out = generate.call(this, n, addin);
      if (n === 66 && draws++ === 0) out.set(draw);
      return out;
    };
    let pair: { secretKey: Uint8Array; publicKey: Uint8Array };
    try {
      pair = ecdsa('P-521').keygen();
    } finally {
      HmacDrbg.prototype.generate = generate;
    }
    const expected = Uint8Array.from(draw);
    expected[0] = 0; // 0xfe & 0x01
    expect(draws, 'one draw').toBe(1);
    expect(Buffer.from(pair.secretKey).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
    expect(Buffer.from(pair.publicKey).toString('hex')).toBe(Buffer.from(p521.getPublicKey(expected, false)).toString('hex'));
  });

  it('on every curve, a draw that is no scalar in [1, n-1] (all ones, not below n; zero) is wiped and drawn again', () => {
    for (const { curve, noble, bytes } of CURVES) {
      const drawn: Uint8Array[] = [];
      const generate = HmacDrbg.prototype.generate;
      HmacDrbg.prototype.generate = function (this: HmacDrbg, n: number, addin?: Uint8Array) {
        const out = generate.call(this, n, addin);
        if (n === bytes) {
          // All ones is not below n (P-521's too, once its top byte keeps one bit); then zero; then the draw as it came.
          if (drawn.length === 0) out.fill(0xff);
          else if (drawn.length === 1) out.fill(0);
          drawn.push(out);
        }
        return out;
      };
      let pair: { secretKey: Uint8Array; publicKey: Uint8Array };
      try {
        pair = ecdsa(curve).keygen();
      } finally {
        HmacDrbg.prototype.generate = generate;
      }
      expect(drawn.length, `${curve}: three draws`).toBe(3);
      expect(drawn.slice(0, 2).map((d) => d.every((b) => b === 0)), `${curve}: the refused draws are wiped`).toEqual([true, true]);
      expect(pair.secretKey, `${curve}: the key is the third draw`).toBe(drawn[2]);
      expect(pair.secretKey.some((b) => b !== 0)).toBe(true);
      expect(Buffer.from(pair.publicKey).toString('hex'), curve).toBe(Buffer.from(noble.getPublicKey(pair.secretKey, false)).toString('hex'));
    }
  });
});

describe('ECDSA verify reads a DER signature once', () => {
  it('the DER parser is given a private copy, never a view of the caller\'s buffer (shared memory another thread may write between the checks and the copy)', async () => {
    const { vi } = await import('vitest');
    const seen: Uint8Array[] = [];
    vi.resetModules();
    vi.doMock('../../src/core/ecdsa-der.ts', async (orig) => {
      const real = await orig<typeof import('../../src/core/ecdsa-der.ts')>();
      return { ...real, derToRaw: (der: Uint8Array, n: number) => (seen.push(der), real.derToRaw(der, n)) };
    });
    try {
      const fresh = await import('../../src/core/ecdsa.ts');
      const e = fresh.ecdsa('P-256');
      const { secretKey, publicKey } = e.keygen();
      const msg = new Uint8Array([1, 2, 3]);
      const der = e.sign(msg, secretKey);
      const shared = new Uint8Array(new SharedArrayBuffer(der.length));
      shared.set(der);
      expect(e.verify(shared, msg, publicKey)).toBe(true);
      expect(seen.length).toBe(1);
      expect(seen[0]!.buffer, 'a copy of its own').not.toBe(shared.buffer);
    } finally {
      vi.doUnmock('../../src/core/ecdsa-der.ts');
      vi.resetModules();
    }
  });
});

// Differential tests of the AES family against node:crypto (OpenSSL), on every
// core build: random keys, nonces, AAD and lengths clustered around block
// boundaries, one-shot and streaming with random chunking.
import { describe, it, beforeAll, expect } from 'vitest';
import nodeCrypto from 'node:crypto';
import { initSync, coreBuilds, CORE_BUILDS, gcm, ccm, cbc, cmac, aesKey, AuthenticationError, type CbcPadding } from '../../src/index.ts';
import { prng } from '../portable/harness.ts';

// CI runs 1,000 cases per mode and build; a longer or different campaign locally:
// SENV_AES_CASES=20000 SENV_AES_SEED=7919 npx vitest run test/node/aes.test.ts
const CASES = Number(process.env.SENV_AES_CASES ?? 1000);
const SEED = Number(process.env.SENV_AES_SEED ?? 0);

function lengths(rand: (n: number) => Uint8Array, i: number): number {
  const edges = [0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 127, 128, 129, 255, 256, 257];
  if (i % 2 === 0) return edges[i / 2 % edges.length]!;
  const r = rand(2);
  return ((r[0]! << 8) | r[1]!) % 1200;
}

/** Splits data at random points, so streaming sees odd chunk sizes. */
function chunks(rand: (n: number) => Uint8Array, data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < data.length) {
    const n = Math.min(data.length - off, 1 + (rand(1)[0]! % 40));
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

function cat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

for (const build of coreBuilds()) {
  const salt = CORE_BUILDS.indexOf(build) + SEED;
  describe(`AES vs node:crypto, ${build} build`, () => {
    beforeAll(() => void initSync({ build }));

    it(`GCM: ${CASES} random cases, 12-byte and other nonces, every tag length`, () => {
      const rand = prng(0x6c3 + salt);
      const tags = [16, 15, 14, 13, 12, 8, 4];
      for (let i = 0; i < CASES; i++) {
        const key = rand(i & 1 ? 32 : 16);
        const nonce = rand(i % 4 === 3 ? 1 + (i % 60) : 12);
        const aad = rand(i % 5 === 0 ? 0 : lengths(rand, i + 1) % 100);
        const pt = rand(lengths(rand, i));
        const t = tags[i % tags.length]!;
        const c = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, nonce, { authTagLength: t });
        c.setAAD(aad);
        const expected = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
        const g = gcm(i % 3 === 0 ? aesKey(key) : key, nonce, aad, { tagLength: t });
        const ct = g.encrypt(pt);
        expect(Buffer.from(ct).equals(expected), `case ${i}`).toBe(true);
        expect(Buffer.from(g.decrypt(ct)).equals(Buffer.from(pt))).toBe(true);
        const es = g.encryptStream();
        const streamed = cat([...chunks(rand, pt).map((p) => es.update(p)), es.final()]);
        expect(Buffer.from(streamed).equals(expected), `stream case ${i}`).toBe(true);
        const ds = g.decryptStream();
        for (const p of chunks(rand, ct)) ds.update(p);
        expect(Buffer.from(ds.final()).equals(Buffer.from(pt))).toBe(true);
        // one flipped bit anywhere in ciphertext or tag must fail authentication
        if (ct.length) {
          const bad = ct.slice();
          bad[i % bad.length]! ^= 1 << (i % 8);
          expect(() => g.decrypt(bad)).toThrow(AuthenticationError);
        }
      }
    });

    // GHASH multiplies integers with every fourth bit kept; dense operands
    // (all ones, 0x88/0x11/0xEE/0x77 bytes) put the most terms on each kept
    // bit, where a carry into it would show. GMAC (AAD only) isolates GHASH.
    it('GHASH carry stress: dense and patterned AAD under many keys, runs of 8 and remainders', () => {
      const rand = prng(0x9a5 + salt);
      const fills = [0xff, 0x88, 0x11, 0xee, 0x77, 0xf0, 0x0f];
      for (let i = 0; i < 300; i++) {
        const key = rand(i % 2 ? 32 : 16), nonce = rand(12);
        const n = [1, 7, 8, 9, 15, 16, 17, 40][i % 8]! * 16 - (i % 3 === 0 ? 5 : 0);
        const aad = new Uint8Array(n).fill(fills[i % fills.length]!);
        if (i % 4 === 3) aad.set(rand(Math.min(n, 8)), (i * 7) % Math.max(1, n - 8));
        const tag = gcm(key, nonce, aad).encrypt(new Uint8Array(0));
        const c = nodeCrypto.createCipheriv(`aes-${key.length * 8}-gcm` as nodeCrypto.CipherGCMTypes, key, nonce);
        c.setAAD(aad);
        c.final();
        expect(Buffer.from(tag).toString('hex'), `case ${i}`).toBe(c.getAuthTag().toString('hex'));
      }
    });

    it(`CCM: ${CASES} random cases, nonces 7-13, every tag length`, () => {
      const rand = prng(0xcc3 + salt);
      for (let i = 0; i < CASES; i++) {
        const key = rand(i & 1 ? 32 : 16);
        const nonce = rand(7 + (i % 7));
        const t = 4 + 2 * ((i >> 1) % 7);
        const aad = rand(i % 5 === 0 ? 0 : lengths(rand, i + 1) % 300);
        const pt = rand(lengths(rand, i));
        const c = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-ccm' : 'aes-256-ccm', key, nonce, { authTagLength: t });
        c.setAAD(aad, { plaintextLength: pt.length });
        const expected = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
        const a = ccm(key, nonce, aad, { tagLength: t });
        const ct = a.encrypt(pt);
        expect(Buffer.from(ct).equals(expected), `case ${i} n=${nonce.length} t=${t} a=${aad.length} p=${pt.length}`).toBe(true);
        expect(Buffer.from(a.decrypt(ct)).equals(Buffer.from(pt))).toBe(true);
        const s = ccm(aesKey(key), nonce, aad, { tagLength: t, messageLength: pt.length });
        const es = s.encryptStream();
        expect(Buffer.from(cat([...chunks(rand, pt).map((p) => es.update(p)), es.final()])).equals(expected)).toBe(true);
        const ds = s.decryptStream();
        for (const p of chunks(rand, ct)) ds.update(p);
        expect(Buffer.from(ds.final()).equals(Buffer.from(pt))).toBe(true);
        const cs = a.encryptStream();
        expect(Buffer.from(cat([...chunks(rand, pt).map((p) => cs.update(p)), cs.final()])).equals(expected)).toBe(true);
        const bad = ct.slice();
        bad[i % bad.length]! ^= 0x80 >> (i % 8);
        expect(() => a.decrypt(bad)).toThrow(AuthenticationError);
      }
    });

    // node:crypto has PKCS#7 or nothing; the ISO 9797-1 paddings are applied
    // by hand to the input of an unpadded node:crypto CBC.
    const pad: Record<CbcPadding, (p: Uint8Array) => Uint8Array> = {
      none: (p) => p,
      pkcs5: (p) => cat([p, new Uint8Array(16 - (p.length % 16)).fill(16 - (p.length % 16))]),
      'iso9797-m1': (p) => cat([p, new Uint8Array(p.length === 0 ? 16 : (16 - (p.length % 16)) % 16)]),
      'iso9797-m2': (p) => cat([p, Uint8Array.of(0x80), new Uint8Array(15 - (p.length % 16))]),
    };
    for (const padding of ['none', 'pkcs5', 'iso9797-m1', 'iso9797-m2'] as const) {
      it(`CBC ${padding}: ${CASES} random cases`, () => {
        const rand = prng(0xcbc + padding.length + salt * 100);
        for (let i = 0; i < CASES; i++) {
          const key = rand(i & 1 ? 32 : 16);
          const iv = rand(16);
          let pt = rand(lengths(rand, i));
          if (padding === 'none') pt = pt.subarray(0, pt.length & ~15);
          const c = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-cbc' : 'aes-256-cbc', key, iv);
          c.setAutoPadding(false);
          const expected = Buffer.concat([c.update(pad[padding](pt)), c.final()]);
          const m = cbc(i % 3 === 0 ? aesKey(key) : key, iv, { padding });
          const ct = m.encrypt(pt);
          expect(Buffer.from(ct).equals(expected), `case ${i} len ${pt.length}`).toBe(true);
          const back = m.decrypt(ct);
          const want = padding === 'iso9797-m1' ? pad[padding](pt) : pt;
          expect(Buffer.from(back).equals(Buffer.from(want)), `decrypt case ${i}`).toBe(true);
          const es = m.encryptStream();
          expect(Buffer.from(cat([...chunks(rand, pt).map((p) => es.update(p)), es.final()])).equals(expected)).toBe(true);
          const ds = m.decryptStream();
          expect(Buffer.from(cat([...chunks(rand, ct).map((p) => ds.update(p)), ds.final()])).equals(Buffer.from(want))).toBe(true);
        }
      });
    }

    // inc32 (SP 800-38D 6.2) wraps the low 32 bits of the counter block and
    // leaves the other 96 alone. A 12-byte nonce starts the count at 2, so
    // only other nonce lengths reach the wrap: the nonce is solved for a
    // chosen J0 (gcmNonceFor), with the wrap placed at every offset within
    // and across the 8-block batches and the one-block tail.
    it('GCM counter wrap: nonces solved for J0 = ...fffffff0 to ...ffffffff, against node:crypto', () => {
      const rand = prng(0x3a9 + salt);
      for (let back = 0; back < 16; back++) {
        const key = rand(back & 1 ? 32 : 16);
        const j0 = rand(16);
        j0.set([0xff, 0xff, 0xff, 0xff - back], 12);
        const nonce = gcmNonceFor(key, j0);
        // The solution is right: node:crypto's first keystream block is E(K, inc32(J0)).
        const first = nodeCrypto.createCipheriv(`aes-${key.length * 8}-gcm` as nodeCrypto.CipherGCMTypes, key, nonce).update(new Uint8Array(16));
        const inc = j0.slice();
        new DataView(inc.buffer).setUint32(12, (0xffffffff - back + 1) >>> 0);
        expect(first.toString('hex'), 'solved nonce').toBe(Buffer.from(ecb(key, inc)).toString('hex'));
        const aad = rand(back * 3);
        for (const len of [16 * (back + 1), 16 * (back + 2) + 5, 333]) {
          const pt = rand(len);
          const c = nodeCrypto.createCipheriv(`aes-${key.length * 8}-gcm` as nodeCrypto.CipherGCMTypes, key, nonce);
          c.setAAD(aad);
          const expected = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
          const g = gcm(key, nonce, aad);
          const ct = g.encrypt(pt);
          expect(Buffer.from(ct).equals(expected), `J0 low word ${(0xffffffff - back).toString(16)}, ${len} bytes`).toBe(true);
          expect(Buffer.from(g.decrypt(ct)).equals(Buffer.from(pt))).toBe(true);
          const es = gcm(aesKey(key), nonce, aad).encryptStream();
          expect(Buffer.from(cat([...chunks(rand, pt).map((p) => es.update(p)), es.final()])).equals(expected)).toBe(true);
        }
      }
    });

    // RFC 3610 2.2: associated data of 2^16 - 2^8 bytes or more is announced
    // as 0xff 0xfe and four length bytes instead of two.
    it('CCM associated data around 2^16 - 2^8 bytes (the 6-byte length encoding), against node:crypto', () => {
      const rand = prng(0xaad + salt);
      for (const n of [0xfefe, 0xfeff, 0xff00, 0xff01, 0x10000, 70001]) {
        const key = rand(n & 1 ? 32 : 16), nonce = rand(7 + (n % 7)), aad = rand(n), pt = rand(n % 40);
        const c = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-ccm' : 'aes-256-ccm', key, nonce, { authTagLength: 12 });
        c.setAAD(aad, { plaintextLength: pt.length });
        const expected = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
        const a = ccm(key, nonce, aad, { tagLength: 12 });
        const ct = a.encrypt(pt);
        expect(Buffer.from(ct).equals(expected), `AAD of ${n} bytes`).toBe(true);
        expect(Buffer.from(a.decrypt(ct)).equals(Buffer.from(pt))).toBe(true);
        aad[n >> 1]! ^= 1;
        expect(() => ccm(key, nonce, aad, { tagLength: 12 }).decrypt(ct)).toThrow(AuthenticationError);
      }
    });

    it(`CMAC: ${CASES} random cases against CMAC built from node:crypto AES-ECB`, () => {
      const rand = prng(0xc3ac + salt);
      for (let i = 0; i < CASES; i++) {
        const key = rand(i & 1 ? 32 : 16);
        const msg = rand(lengths(rand, i));
        expect(Buffer.from(cmac(key, msg)).toString('hex'), `case ${i}`).toBe(referenceCmac(key, msg));
      }
    });
  });
}

// SP 800-38B written out over node:crypto's block function, as an oracle.
function referenceCmac(key: Uint8Array, msg: Uint8Array): string {
  const enc = (b: Uint8Array) => ecb(key, b);
  const dbl = (b: Uint8Array) => {
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++) out[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >> 7 : 0)) & 0xff;
    if (b[0]! & 0x80) out[15]! ^= 0x87;
    return out;
  };
  const k1 = dbl(enc(new Uint8Array(16))), k2 = dbl(k1);
  const n = Math.max(1, Math.ceil(msg.length / 16));
  const complete = msg.length > 0 && msg.length % 16 === 0;
  let x: Uint8Array = new Uint8Array(16);
  for (let b = 0; b < n; b++) {
    const block = new Uint8Array(16);
    block.set(msg.subarray(16 * b, 16 * b + 16));
    if (b === n - 1) {
      if (!complete) block[msg.length - 16 * b] = 0x80;
      const k = complete ? k1 : k2;
      for (let i = 0; i < 16; i++) block[i]! ^= k[i]!;
    }
    for (let i = 0; i < 16; i++) block[i]! ^= x[i]!;
    x = enc(block);
  }
  return Buffer.from(x).toString('hex');
}

// GF(2^128) as GCM orders it (SP 800-38D 6.3: the first bit of a block is
// the coefficient of x^0), blocks as big-endian integers.
const R = 0xe1n << 120n;
function gfMul(x: bigint, y: bigint): bigint {
  let z = 0n, v = y;
  for (let i = 127n; i >= 0n; i--) {
    if ((x >> i) & 1n) z ^= v;
    v = v & 1n ? (v >> 1n) ^ R : v >> 1n;
  }
  return z;
}
function gfInv(x: bigint): bigint {
  // x^(2^128 - 2): 2^128 - 2 is 127 ones followed by a zero.
  let r = 1n << 127n; // the field's 1
  for (let i = 0; i < 127; i++) r = gfMul(gfMul(r, r), x);
  return gfMul(r, r);
}
const toBig = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex')}`);
const fromBig = (v: bigint) => new Uint8Array(Buffer.from(v.toString(16).padStart(32, '0'), 'hex'));

/**
 * A 16-byte nonce whose pre-counter block J0 is `j0` under `key`: for such a
 * nonce J0 = ((N H) + L) H with L the length block (128 bits), so
 * N = (J0 H^-1 + L) H^-1, with H = E(K, 0^128) from node:crypto.
 */
function gcmNonceFor(key: Uint8Array, j0: Uint8Array): Uint8Array {
  const hInv = gfInv(toBig(ecb(key, new Uint8Array(16))));
  return fromBig(gfMul(gfMul(toBig(j0), hInv) ^ 128n, hInv));
}

/** node:crypto's AES block function on one block. */
function ecb(key: Uint8Array, block: Uint8Array): Uint8Array {
  const c = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-ecb' : 'aes-256-ecb', key, null);
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(block), c.final()]));
}

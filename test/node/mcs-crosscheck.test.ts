// Every algorithm through Mcs primitives, cross-checked against node:crypto
// (OpenSSL) on random keys, parameters and messages of random lengths sent in
// random chunks: ciphers both ways, hashes, HMAC, AES-CMAC and CBC-MAC (built
// from node's AES as RFC 4493 and SP 800-38B describe), ECDSA both ways.
import { describe, expect, it, vi } from 'vitest';
import nodeCrypto from 'node:crypto';
import { McsEngine } from '../../src/index.ts';
import { prng } from '../portable/harness.ts';
import { formatTimestamp, fromBase64, toBase64 } from '../../src/mcs/codec.ts';
import { Session, b64, body, ok, unb64 } from '../portable/mcs-kit.ts';
import { cipherType } from '../../src/mcs/types/cipher.ts';

const rnd = prng(20261122);
const int = (n: number) => ((rnd(4)[0]! << 16) | (rnd(1)[0]! << 8) | rnd(1)[0]!) % n;
const buf = (b: Uint8Array) => Buffer.from(b);

async function session(): Promise<Session> {
  const s = new Session(await McsEngine.create(), 'CAE1');
  await s.register();
  return s;
}

async function upload(s: Session, to: string, root: string, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) {
    const n = Math.min(data.length - off, 1 + int(20000));
    ok(await s.send(3, to, { [root]: { msg: data.subarray(off, off + n) } }), 2004, 'chunk');
    off += n;
  }
}

function nodeCbc(bits: number, key: Uint8Array, iv: Uint8Array, data: Uint8Array, decrypt: boolean, autoPad: boolean): Buffer {
  const c = decrypt ? nodeCrypto.createDecipheriv(`aes-${bits}-cbc`, key, iv) : nodeCrypto.createCipheriv(`aes-${bits}-cbc`, key, iv);
  c.setAutoPadding(autoPad);
  return Buffer.concat([c.update(data), c.final()]);
}

const pad = {
  // ISO/IEC 9797-1 method 1 pads to a positive multiple of the block: empty data becomes one zero block.
  m1: (d: Uint8Array) => Buffer.concat([d, Buffer.alloc(d.length === 0 ? 16 : (16 - (d.length % 16)) % 16)]),
  m2: (d: Uint8Array) => Buffer.concat([d, Buffer.from([0x80]), Buffer.alloc(15 - (d.length % 16))]),
};

function nodeEncrypt(alg: number, key: Uint8Array, nonce: Uint8Array, iv: Uint8Array, aad: Uint8Array, pt: Uint8Array): Buffer {
  const bits = key.length * 8;
  if (alg >= 1001) {
    const mode = alg <= 1002 ? 'gcm' : 'ccm';
    const tag = alg >= 1018 ? 8 : 16;
    const c = nodeCrypto.createCipheriv(`aes-${bits}-${mode}` as 'aes-128-gcm', key, nonce, { authTagLength: tag } as nodeCrypto.CipherGCMOptions);
    c.setAAD(aad, { plaintextLength: pt.length });
    return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
  }
  if (alg === 24) return nodeCbc(bits, key, iv, pt, false, true);
  return nodeCbc(bits, key, iv, alg === 22 ? pad.m1(pt) : alg === 23 ? pad.m2(pt) : pt, false, false);
}

function aesEcb(key: Uint8Array, block: Uint8Array): Buffer<ArrayBufferLike> {
  const c = nodeCrypto.createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  c.setAutoPadding(false);
  return c.update(block);
}

function nodeCmac(key: Uint8Array, m: Uint8Array): Buffer<ArrayBufferLike> {
  const dbl = (b: Buffer<ArrayBufferLike>) => {
    const out = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) out[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >> 7 : 0)) & 0xff;
    if (b[0]! & 0x80) out[15]! ^= 0x87;
    return out;
  };
  const k1 = dbl(aesEcb(key, Buffer.alloc(16)));
  const k2 = dbl(k1);
  const n = Math.max(1, Math.ceil(m.length / 16));
  const complete = m.length > 0 && m.length % 16 === 0;
  const last = complete ? Buffer.from(m.subarray((n - 1) * 16)) : pad.m2(m.subarray((n - 1) * 16)).subarray(0, 16);
  for (let i = 0; i < 16; i++) last[i]! ^= (complete ? k1 : k2)[i]!;
  let x: Buffer<ArrayBufferLike> = Buffer.alloc(16);
  for (let i = 0; i < n - 1; i++) {
    const y = Buffer.from(m.subarray(i * 16, i * 16 + 16));
    for (let j = 0; j < 16; j++) y[j]! ^= x[j]!;
    x = aesEcb(key, y);
  }
  for (let j = 0; j < 16; j++) last[j]! ^= x[j]!;
  return aesEcb(key, last);
}

describe('Mcs against node:crypto', () => {
  it('base64 of byte attributes equals node\'s Buffer both ways, 500 lengths up to 1 MiB', () => {
    const data = nodeCrypto.randomBytes(1 << 20);
    const rnd = prng(64);
    const mismatches: number[] = [];
    for (let i = 0; i < 500; i++) {
      // Every length to 400, then 100 random ones up to 1 MiB.
      const n = i < 400 ? i : ((rnd(1)[0]! << 12) | (rnd(1)[0]! << 4) | (rnd(1)[0]! & 15)) % (1 << 20);
      const bytes = new Uint8Array(data.buffer, data.byteOffset + (i % 7), Math.min(n, data.length - 7));
      const text = toBase64(bytes);
      const back = fromBase64(text);
      if (text !== Buffer.from(bytes).toString('base64') || !back || !Buffer.from(back).equals(Buffer.from(bytes))) mismatches.push(n);
    }
    expect(mismatches).toEqual([]);
  });

  for (const alg of [1001, 1002, 1003, 1004, 1018, 1019, 13, 22, 23, 24]) {
    it(`<cipher> ${alg}: encrypt and decrypt equal OpenSSL`, async () => {
      const s = await session();
      for (let round = 0; round < 12; round++) {
        const key = rnd(alg >= 1001 ? ([1001, 1003, 1018].includes(alg) ? 16 : 32) : round % 2 ? 16 : 32);
        const nonce = rnd(12), iv = rnd(16), aad = rnd(int(40));
        const len = [0, 1, 15, 16, 17, 255, 4096, 65537, int(100000)][round % 9]!;
        const pt = rnd(alg === 13 ? len - (len % 16) : len);
        const rn = `c${round}`;
        ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn, Calg: alg, mbs: 1 << 20, kDt: key } }), 2001, 'cipher');
        ok(await s.create(s.path('reg', rn), 20001, { 'senv:algP': alg >= 1001 ? { nc: nonce, aD: aad } : { iV: iv } }), 2001, 'param');
        const expected = nodeEncrypt(alg, key, nonce, iv, aad, pt);
        await upload(s, s.path('reg', rn), 'senv:Cph', pt);
        const ct = unb64(body(ok(await s.retrieve(s.path('reg', rn, 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD);
        expect(buf(ct).equals(expected)).toBe(true);
        await upload(s, s.path('reg', rn), 'senv:Cph', expected);
        const back = unb64(body(ok(await s.retrieve(s.path('reg', rn, 'decrypt')), 2000, 'decrypt'), 'senv:Cph').cD);
        // ISO 9797-1 method 1 cannot be unpadded: the zero bytes stay.
        expect(buf(back).equals(alg === 22 ? pad.m1(pt) : buf(pt))).toBe(true);
      }
    });
  }

  it('oneM2M timestamps equal Date\'s ISO text, in any order of calls (the formatter keeps the last two)', () => {
    const base = Date.UTC(2026, 10, 22, 12, 0, 0, 5);
    const iso = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace('.', ',').replace('Z', '000');
    expect(formatTimestamp(base)).toBe('20261122T120000,005000');
    for (let i = 0; i < 2000; i++) {
      const ms = base + (rnd(1)[0]! % 4) * 86_400_123;
      expect(formatTimestamp(ms), `call ${i}`).toBe(iso(ms));
    }
  });

  it('<hash>, HMAC, AES-CMAC and CBC-MAC <signature> equal OpenSSL', async () => {
    const s = await session();
    for (let round = 0; round < 30; round++) {
      const m = rnd([0, 1, 63, 64, 65, 127, 128, 129, 1000, 70000][round % 10]!);
      for (const [alg, name] of [[4, 'sha256'], [5, 'sha384'], [6, 'sha512']] as const) {
        const rn = `h${round}-${alg}`;
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn, Halg: alg } }), 2001, 'hash');
        await upload(s, s.path('reg', rn), 'senv:Hsh', m);
        const hv = unb64(body(await s.retrieve(s.path('reg', rn, 'cHsh')), 'senv:Hsh').Hv);
        expect(buf(hv).equals(nodeCrypto.createHash(name).update(m).digest())).toBe(true);
      }
      const sigs: [number, Uint8Array, (k: Uint8Array) => Buffer<ArrayBufferLike> | undefined][] = [
        [25, rnd(1 + int(200)), (k) => nodeCrypto.createHmac('sha256', k).update(m).digest()],
        [26, rnd(1 + int(200)), (k) => nodeCrypto.createHmac('sha384', k).update(m).digest()],
        [27, rnd(1 + int(200)), (k) => nodeCrypto.createHmac('sha512', k).update(m).digest()],
        [49, rnd(round % 2 ? 16 : 32), (k) => nodeCmac(k, m)],
        [18, rnd(round % 2 ? 16 : 32), (k) => (m.length && m.length % 16 === 0 ? nodeCbc(k.length * 8, k, Buffer.alloc(16), m, false, false).subarray(-16) : undefined)],
      ];
      for (const [alg, key, oracle] of sigs) {
        const rn = `s${round}-${alg}`;
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn, Salg: alg, kDt: key } }), 2001, 'signature');
        await upload(s, s.path('reg', rn), 'senv:Sgn', m);
        const r = await s.retrieve(s.path('reg', rn, 'cSgn'));
        const want = oracle(key);
        if (!want) {
          expect(r.rsc).toBe(4102);
          continue;
        }
        expect(buf(unb64(body(ok(r, 2000, `sign ${alg}`), 'senv:Sgn').Sgn)).equals(want)).toBe(true);
      }
    }
  });

  for (const [alg, curve, hash] of [[33, 'prime256v1', 'sha256'], [34, 'secp384r1', 'sha384'], [38, 'secp521r1', 'sha512']] as const) {
    it(`ECDSA ${alg}: OpenSSL verifies Mcs signatures and Mcs verifies OpenSSL signatures`, async () => {
      const s = await session();
      for (let round = 0; round < 10; round++) {
        const m = rnd(int(3000));
        const format = round % 2 ? 'raw' : 'der';
        const dsaEncoding = format === 'raw' ? 'ieee-p1363' : 'der';
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: `e${round}`, Salg: alg, sgF: format } }), 2001, 'create');
        const pub = unb64(body(await s.retrieve(s.path('reg', `e${round}`, 'gnK')), 'senv:Sgn').kInf);
        const half = (pub.length - 1) / 2;
        const jwk = { kty: 'EC', crv: { 33: 'P-256', 34: 'P-384', 38: 'P-521' }[alg], x: buf(pub.subarray(1, 1 + half)).toString('base64url'), y: buf(pub.subarray(1 + half)).toString('base64url') };
        const nodePub = nodeCrypto.createPublicKey({ key: jwk, format: 'jwk' });
        await upload(s, s.path('reg', `e${round}`), 'senv:Sgn', m);
        const sig = unb64(body(ok(await s.retrieve(s.path('reg', `e${round}`, 'cSgn')), 2000, 'sign'), 'senv:Sgn').Sgn);
        expect(nodeCrypto.verify(hash, m, { key: nodePub, dsaEncoding }, sig)).toBe(true);
        // The other way: OpenSSL signs, a verification-only resource holds its public key.
        const pair = nodeCrypto.generateKeyPairSync('ec', { namedCurve: curve });
        const j = pair.publicKey.export({ format: 'jwk' });
        const point = Buffer.concat([Buffer.from([4]), Buffer.from(j.x!, 'base64url'), Buffer.from(j.y!, 'base64url')]);
        const theirs = nodeCrypto.sign(hash, m, { key: pair.privateKey, dsaEncoding });
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: `v${round}`, Salg: alg, sgF: format, kInf: b64(point), msg: b64(m), Sgn: b64(theirs) } }), 2001, 'verify-only');
        expect(body(await s.retrieve(s.path('reg', `v${round}`, 'vSgn')), 'senv:Sgn').vR).toBe(true);
        theirs[theirs.length - 1]! ^= 1;
        ok(await s.update(s.path('reg', `v${round}`), { 'senv:Sgn': { Sgn: b64(theirs) } }), 2004, 'tamper');
        expect(body(await s.retrieve(s.path('reg', `v${round}`, 'vSgn')), 'senv:Sgn').vR).toBe(false);
      }
    });
  }

  it('Buffer inputs are copied: zeroizing what the engine held never touches the caller\'s memory', async () => {
    const s = await session();
    const key = nodeCrypto.randomBytes(32), msg = nodeCrypto.randomBytes(5000);
    const keyCopy = Buffer.from(key), msgCopy = Buffer.from(msg);
    ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 27, kDt: key } }), 2001, 'create');
    ok(await s.send(3, s.path('reg', 'm'), { 'senv:Sgn': { msg: msg.subarray(0, 4000) } }, undefined, true), 2004, 'chunk');
    ok(await s.retrieve(s.path('reg', 'm', 'cSgn')), 2000, 'sign');
    ok(await s.send(3, s.path('reg', 'm'), { 'senv:Sgn': { msg: msg.subarray(4000) } }, undefined, true), 2004, 'new message');
    ok(await s.delete(s.path('reg', 'm')), 2002, 'delete');
    expect(key.equals(keyCopy)).toBe(true);
    expect(msg.equals(msgCopy)).toBe(true);
  });

  it('a <cipher> without its nonce is asked for a stream once, not at every UPDATE; the nonce given later starts one, and the result equals OpenSSL', async () => {
    const s = await session();
    const open = vi.spyOn(cipherType.hooks!, 'stream');
    try {
      const key = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(12), msg = nodeCrypto.randomBytes(200_000);
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: msg.length, kDt: key } }), 2001, 'create');
      // Past a batch (32 KiB) from the second chunk on: each UPDATE after it would ask again.
      for (let off = 0; off < 100_000; off += 20_000) ok(await s.send(3, s.path('reg', 'c'), { 'senv:Cph': { msg: msg.subarray(off, off + 20_000) } }), 2004, 'chunk without a nonce');
      expect(open).toHaveBeenCalledTimes(1);
      expect(await open.mock.results[0]!.value).toBeUndefined();
      ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { nc: nonce } }), 2001, 'nonce');
      for (let off = 100_000; off < msg.length; off += 20_000) ok(await s.send(3, s.path('reg', 'c'), { 'senv:Cph': { msg: msg.subarray(off, off + 20_000) } }), 2004, 'chunk with a nonce');
      expect(open).toHaveBeenCalledTimes(2);
      expect(await open.mock.results[1]!.value).toBeDefined();
      const c = nodeCrypto.createCipheriv('aes-128-gcm', key, nonce);
      const expected = Buffer.concat([c.update(msg), c.final(), c.getAuthTag()]);
      const cD = unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD);
      expect(Buffer.from(cD).equals(expected)).toBe(true);
    } finally {
      open.mockRestore();
    }
  });
});

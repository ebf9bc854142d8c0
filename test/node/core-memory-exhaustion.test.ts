// When the core's memory is full, an allocation traps (the call throws a
// WebAssembly RuntimeError) and the core's own cleanup after the call does
// not run: no key, private key or nonce may be left in linear memory then.
// The allocator must stay sound at that limit (no block past the end of
// memory or over another), and blocks above 2 GiB must serve the facade.
// A file of its own: the instance keeps the 4 GiB it grew to.
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import nodeCrypto from 'node:crypto';
import {
  initSync, ecdsa, ecdsaPrecompute, aesKey, gcm, ccm, cbc, cmac, createCmac, createCbcMac, createHash, createHmac, hmac, sha256, HmacDrbg,
  constantTimeEqual, coreMemoryStats, OutOfMemoryError, McsEngine,
} from '../../src/index.ts';
import { Session, b64, body, fails, ok, unb64 } from '../portable/mcs-kit.ts';
import { core, type Core } from '../../src/core/loader.ts';
import { ALLOCATING_EXPORTS } from '../../src/core/exports.ts';
import { keyHandle } from '../../src/core/aes.ts';

let c: Core;
const held: [number, number][] = [];

/** Allocates until the memory cannot grow, then frees at least `leave` bytes again. */
function fill(leave: number): void {
  for (let size = 2 ** 28; size >= 16;) {
    let p = 0;
    try {
      p = c.x.mem_alloc(size);
    } catch {
      p = 0; // a failed allocation traps
    }
    if (p) held.push([p, size]);
    else size = Math.floor(size / 2);
  }
  for (let freed = 0; freed < leave && held.length;) {
    const [p, size] = held.pop()!;
    c.x.mem_free(p, size);
    freed += size;
  }
}

function release(): void {
  for (const [p, size] of held.splice(0)) c.x.mem_free(p, size);
}

/** Where `needle` occurs in the core's linear memory. */
function find(needle: Uint8Array): number[] {
  const mem = Buffer.from(c.mem().buffer);
  const hits: number[] = [];
  for (let i = mem.indexOf(needle); i >= 0; i = mem.indexOf(needle, i + 1)) hits.push(i);
  return hits;
}

/** RFC 6979's first candidate for P-521 with SHA-512 (the bytes the core's DRBG would give). */
function firstCandidate(d: Uint8Array, msg: Uint8Array): Buffer {
  const h = Buffer.concat([Buffer.alloc(2), nodeCrypto.createHash('sha512').update(msg).digest()]); // bits2octets: h1 < n
  const mac = (k: Buffer, ...p: Uint8Array[]) => nodeCrypto.createHmac('sha512', k).update(Buffer.concat(p)).digest();
  let K = Buffer.alloc(64, 0), V = Buffer.alloc(64, 1);
  K = mac(K, V, Buffer.of(0), d, h); V = mac(K, V);
  K = mac(K, V, Buffer.of(1), d, h); V = mac(K, V);
  const v1 = mac(K, V);
  return Buffer.concat([v1, mac(K, v1)]).subarray(0, 66);
}

describe('the core at the end of its memory', () => {
  beforeAll(() => {
    initSync({ build: 'simd' });
    c = core();
  });
  afterEach(release); // a failed case leaves the memory free for the next

  it('ECDSA: the first signature or public key of a curve whose table cannot be built leaves no private key or nonce behind', () => {
    // Room for small blocks, not for P-521's generator table (about 228 KB).
    fill(100_000);
    const d = new Uint8Array(nodeCrypto.randomBytes(66));
    d[0] = 0x01;
    const msg = new TextEncoder().encode('memory exhaustion');
    expect(() => ecdsa('P-521').sign(msg, d, { extraEntropy: false })).toThrow(OutOfMemoryError);
    const limbs = Uint8Array.from(d).reverse(); // the core keeps scalars as little-endian words
    expect(find(limbs.subarray(0, 32)), 'private key (little-endian)').toEqual([]);
    expect(find(d.subarray(2, 34)), 'private key (as given)').toEqual([]);
    expect(find(firstCandidate(d, msg).subarray(0, 32)), 'nonce candidate').toEqual([]);
    const d384 = new Uint8Array(nodeCrypto.randomBytes(48));
    d384[0] = 0x01;
    expect(() => ecdsa('P-384').getPublicKey(d384)).toThrow(OutOfMemoryError);
    expect(find(Uint8Array.from(d384).reverse().subarray(0, 32)), 'P-384 private key').toEqual([]);
    expect(find(d384.subarray(0, 32)), 'P-384 private key (as given)').toEqual([]);
    release();
  });

  it('AES: a key context that cannot be allocated leaves no key bytes behind', () => {
    fill(0);
    for (const [what, make] of [
      ['aesKey', (k: Uint8Array) => aesKey(k)],
      ['gcm stream', (k: Uint8Array) => gcm(k, new Uint8Array(12)).encryptStream()],
      ['createCmac', (k: Uint8Array) => createCmac(k)],
    ] as const) {
      const key = new Uint8Array(nodeCrypto.randomBytes(32));
      expect(() => make(key), what).toThrow(OutOfMemoryError);
      expect(find(key), what).toEqual([]);
    }
    release();
  });

  it('a stream whose key copy fits but whose own context does not releases the copy at once: nothing held, no key bytes left', () => {
    const makers = [
      ['createCmac', (k: Uint8Array) => createCmac(k)],
      ['createCbcMac', (k: Uint8Array) => createCbcMac(k)],
      ['cbc stream', (k: Uint8Array) => cbc(k, new Uint8Array(16)).encryptStream()],
      ['gcm stream', (k: Uint8Array) => gcm(k, new Uint8Array(12)).encryptStream()],
      ['ccm stream', (k: Uint8Array) => ccm(k, new Uint8Array(12), undefined, { messageLength: 16 }).encryptStream()],
    ] as const;
    for (const [what, make] of makers) {
      const key = new Uint8Array(nodeCrypto.randomBytes(32));
      // A hole as large as what the stream holds in all (its key copy and its context): the copy
      // fits, the context after it does not (the allocator's rounding takes the rest).
      const before = coreMemoryStats().inUseBytes;
      const probe = make(key);
      const size = coreMemoryStats().inUseBytes - before;
      probe.destroy();
      // A block takes 16 bytes more than asked (its header).
      const hole = c.x.mem_alloc(size - 16);
      fill(0);
      c.x.mem_free(hole, size - 16);
      const base = coreMemoryStats().inUseBytes;
      expect(() => make(key), what).toThrow(OutOfMemoryError);
      expect(coreMemoryStats().inUseBytes, `${what}: the key copy is released`).toBe(base);
      expect(find(key.subarray(0, 16)), `${what}: key bytes`).toEqual([]);
      release();
    }
  });

  it('every allocating call of the API throws an OutOfMemoryError and changes nothing; one-shot calls in the I/O window still work', () => {
    const key = new Uint8Array(16).fill(7), nonce = new Uint8Array(12), msg = new Uint8Array(100).fill(1);
    const expected = { gcm: gcm(key, nonce).encrypt(msg), sha: sha256(msg), mac: cmac(key, msg) };
    const publicKey = ecdsa('P-256').getPublicKey(new Uint8Array(32).fill(2)); // builds P-256's signing table, not its verification table
    const sig = new Uint8Array(64).fill(1);
    fill(0);
    const base = coreMemoryStats().inUseBytes;
    for (const [what, call] of [
      ['aesKey', () => aesKey(key)],
      ['gcm stream', () => gcm(key, nonce).encryptStream()],
      ['ccm stream', () => ccm(key, nonce, undefined, { messageLength: msg.length }).encryptStream()],
      ['cbc stream', () => cbc(key, new Uint8Array(16)).encryptStream()],
      ['createCmac', () => createCmac(key)],
      ['createCbcMac', () => createCbcMac(key)],
      ['createHash', () => createHash('SHA-384')],
      ['createHmac', () => createHmac('SHA-256', key)],
      ['HmacDrbg', () => new HmacDrbg({ entropy: () => new Uint8Array(32).fill(3) })],
      ['verify (first of the curve)', () => ecdsa('P-256').verify(sig, msg, publicKey, { format: 'raw' })],
      ['ecdsaPrecompute', () => ecdsaPrecompute('P-384')],
      ['HmacDrbg with inputs beyond the window', () => new HmacDrbg({ entropy: () => new Uint8Array(40_000).fill(3), personalization: new Uint8Array(40_000) })],
      ['hmac with a key beyond the window (hashed first, in a hash context)', () => hmac('SHA-256', new Uint8Array(70_000), msg)],
    ] as const) {
      expect(call, what).toThrow(OutOfMemoryError);
      try {
        call();
      } catch (e) {
        expect((e as OutOfMemoryError).code, what).toBe('ERR_OUT_OF_MEMORY');
        const m = /^out of WASM memory: the core's 4096 MiB are full \((\d+) MiB held by contexts and blocks not yet released\)$/.exec((e as Error).message);
        expect(Number(m?.[1]), `${what}: the fill's blocks counted, unsigned`).toBeGreaterThan(4000);
      }
      expect(coreMemoryStats().inUseBytes, what).toBe(base);
    }
    expect(gcm(key, nonce).encrypt(msg)).toEqual(expected.gcm);
    expect(sha256(msg)).toEqual(expected.sha);
    expect(cmac(key, msg)).toEqual(expected.mac);
    // It compares inputs of any length through the window, in parts: no block needed.
    const long = new Uint8Array(70_000).fill(5);
    expect(constantTimeEqual(long, Uint8Array.from(long)), 'constantTimeEqual above the window').toBe(true);
    release();
    expect(ecdsa('P-256').verify(sig, msg, publicKey, { format: 'raw' })).toBe(false);
  });

  it('HmacDrbg whose second input block does not fit zeroizes and frees the first', () => {
    const entropy = new Uint8Array(nodeCrypto.randomBytes(70_000)); // beyond the I/O window: placed in blocks
    const hole = c.x.mem_alloc(100_000); // room for one input, not two
    fill(0);
    c.x.mem_free(hole, 100_000);
    const base = coreMemoryStats().inUseBytes;
    expect(() => new HmacDrbg({ entropy: () => Uint8Array.from(entropy), personalization: new Uint8Array(70_000) })).toThrow(OutOfMemoryError);
    expect(coreMemoryStats().inUseBytes, 'no block held').toBe(base);
    expect(find(entropy.subarray(0, 32)), 'the first input').toEqual([]);
  });

  it('each allocating export, called with valid arguments when the memory is full, throws an OutOfMemoryError', () => {
    // P-521's tables are not built yet (its first signature above could not build them).
    const k = aesKey(new Uint8Array(16));
    const h = keyHandle(k);
    const pk = nodeCrypto.createECDH('secp521r1');
    pk.generateKeys();
    const io = c.io, mem = c.mem();
    mem.fill(0, io, io + 1024);
    mem.set(pk.getPublicKey(), io + 512); // P-521 public key
    mem[io + 65] = 1; // scalar 1 at io
    mem[io + 65 + 66] = 1; // and 1 again after it: (r, s) = (1, 1) or k = 1
    mem[io + 256] = 0xab; // a digest byte
    const calls: Record<(typeof ALLOCATING_EXPORTS)[number], () => unknown> = {
      mem_alloc: () => c.x.mem_alloc(1024),
      hash_create: () => c.x.hash_create(4),
      hmac_create: () => c.x.hmac_create(4, io, 16),
      drbg_create: () => c.x.drbg_create(4),
      aes_key_create: () => c.x.aes_key_create(io, 16, 0),
      aes_key_copy: () => c.x.aes_key_copy(h),
      gcm_create: () => c.x.gcm_create(h, io, 12, 16, 0, 0),
      ccm_create: () => c.x.ccm_create(h, io, 12, 16, 0n, 5n, 0, 0),
      cbc_create: () => c.x.cbc_create(h, io, 13, 0, 0),
      mac_create: () => c.x.mac_create(h, 49, 0),
      ec_precompute: () => c.x.ec_precompute(521),
      ec_public_key: () => c.x.ec_public_key(521, io, io + 768, 0),
      ec_sign: () => c.x.ec_sign(521, 6, io, io + 256, 64, io, 0, io + 768),
      ec_sign_with_k: () => c.x.ec_sign_with_k(521, io, io + 256, 64, io + 66, io + 768),
      ec_verify: () => c.x.ec_verify(521, io + 512, 133, io + 256, 64, io),
    };
    fill(0);
    for (const [name, call] of Object.entries(calls)) expect(call, name).toThrow(OutOfMemoryError);
    release();
    c.mem().fill(0, io, io + 1024);
    k.destroy();
  });

  it('a curve table that cannot be built leaves no block behind', () => {
    const capacity = () => {
      fill(0);
      const n = held.reduce((sum, [, size]) => sum + size, 0);
      release();
      return n;
    };
    const before = capacity();
    // A hole of 200 KB: room for P-384's generator table (118 KB), not for the scratch it is built in besides (236 KB).
    const hole = c.x.mem_alloc(200_000);
    fill(0);
    c.x.mem_free(hole, 200_000);
    expect(() => ecdsa('P-384').getPublicKey(new Uint8Array(48).fill(1))).toThrow(OutOfMemoryError);
    release();
    expect(before - capacity(), 'bytes lost').toBeLessThan(4096);
    expect(ecdsa('P-384').getPublicKey(new Uint8Array(48).fill(1))).toHaveLength(97);
  });

  it('over Mcs, a request the full core cannot serve answers 5207 and changes nothing; once memory is freed it succeeds', async () => {
    const engine = await McsEngine.create();
    const s = new Session(engine, 'CAE1');
    await s.register();
    const key = new Uint8Array(16).fill(9), nonce = new Uint8Array(12).fill(4), plain = new Uint8Array(20_000).fill(5);
    ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 65536, kDt: b64(key) } }), 2001, 'cipher');
    ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { rn: 'p', nc: b64(nonce) } }), 2001, 'algP');
    ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(plain.subarray(0, 12_000)) } }), 2004, 'data');
    fill(0);
    ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(plain.subarray(12_000)) } }), 2004, 'more data, held in JS');
    fails(await s.retrieve(s.path('reg', 'c', 'encrypt')), 5207, 'encrypt', /^not enough memory on this SE: its WASM core is full$/);
    expect(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').cD, 'no calculatedData').toBeUndefined();
    release();
    const enc = unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt after release'), 'senv:Cph').cD);
    expect(enc).toEqual(gcm(key, nonce).encrypt(plain));
    await engine.close();
  });

  it('the allocator stays sound at the limit: filled twice, no block past the end of memory, none overlapping, all returned', () => {
    const base = coreMemoryStats().inUseBytes;
    for (let round = 0; round < 2; round++) {
      fill(0);
      const end = c.mem().byteLength;
      expect(end, 'memory grown to its limit').toBeGreaterThan(2 ** 32 - 2 ** 20);
      expect(held.reduce((n, [, size]) => n + size, 0), 'bytes held').toBeGreaterThan(0.99 * end);
      // docs/wasm-abi.md: mem_alloc refuses only sizes above 2^28 bytes; fill() asks 2^28 first.
      expect(held.filter(([, size]) => size === 2 ** 28).length, 'blocks of 2^28 bytes, the largest mem_alloc gives').toBeGreaterThan(0);
      const blocks = held.map(([p, size]) => [p >>> 0, size] as const).sort((a, b) => a[0] - b[0]);
      for (const [i, [p, size]] of blocks.entries()) {
        expect(p + size, `block at ${p}`).toBeLessThanOrEqual(end);
        if (i > 0) expect(p, `block at ${p} overlaps the one before`).toBeGreaterThanOrEqual(blocks[i - 1]![0] + blocks[i - 1]![1]);
      }
      expect(coreMemoryStats().inUseBytes, 'bytes in use counted unsigned').toBe(base + held.reduce((n, [, size]) => n + size, 0));
      release();
      expect(coreMemoryStats().inUseBytes).toBe(base);
    }
  });

  it('a block above 2 GiB serves the facade (a pointer read unsigned)', () => {
    fill(0);
    // Free the highest block that can take two 40 KB inputs: the next allocations land there.
    const high = held.filter(([p, size]) => p >>> 0 >= 2 ** 31 && size >= 2 * 40_000).sort((a, b) => (b[0] >>> 0) - (a[0] >>> 0))[0];
    expect(high, 'a block above 2 GiB').toBeDefined();
    held.splice(held.indexOf(high!), 1);
    c.x.mem_free(high![0], high![1]);
    // DRBG inputs beyond the I/O window go to blocks: here the one above 2 GiB. Its output is the same as from low memory.
    const entropy = new Uint8Array(nodeCrypto.randomBytes(40_000)), personalization = new Uint8Array(nodeCrypto.randomBytes(40_000));
    const drbg = new HmacDrbg({ entropy: () => Uint8Array.from(entropy), personalization });
    const out = drbg.generate(64);
    drbg.destroy();
    release();
    const low = new HmacDrbg({ entropy: () => Uint8Array.from(entropy), personalization });
    expect(low.generate(64)).toEqual(out);
    low.destroy();
  });

  it('the core works again once memory is freed', () => {
    const e = ecdsa('P-521');
    const { secretKey, publicKey } = e.keygen();
    const msg = new Uint8Array(10);
    expect(e.verify(e.sign(msg, secretKey), msg, publicKey)).toBe(true);
    const key = new Uint8Array(16);
    const k = aesKey(key);
    expect(gcm(k, new Uint8Array(12)).encrypt(msg)).toEqual(gcm(key, new Uint8Array(12)).encrypt(msg));
    k.destroy();
  });
});

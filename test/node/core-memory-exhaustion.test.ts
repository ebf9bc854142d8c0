// When the core's memory is full, an allocation traps (the call throws a
// WebAssembly RuntimeError) and the core's own cleanup after the call does
// not run: no key, private key or nonce may be left in linear memory then.
// The allocator must stay sound at that limit (no block past the end of
// memory or over another), and blocks above 2 GiB must serve the facade.
// A file of its own: the instance keeps the 4 GiB it grew to.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import nodeCrypto from 'node:crypto';
import { initSync, ecdsa, aesKey, gcm, createCmac, constantTimeEqual, coreMemoryStats } from '../../src/index.ts';
import { core, type Core } from '../../src/core/loader.ts';

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
  afterAll(release);

  it('ECDSA: the first signature or public key of a curve whose table cannot be built leaves no private key or nonce behind', () => {
    // Room for small blocks, not for P-521's generator table (about 228 KB).
    fill(100_000);
    const d = new Uint8Array(nodeCrypto.randomBytes(66));
    d[0] = 0x01;
    const msg = new TextEncoder().encode('memory exhaustion');
    expect(() => ecdsa('P-521').sign(msg, d, { extraEntropy: false })).toThrow();
    const limbs = Uint8Array.from(d).reverse(); // the core keeps scalars as little-endian words
    expect(find(limbs.subarray(0, 32)), 'private key (little-endian)').toEqual([]);
    expect(find(d.subarray(2, 34)), 'private key (as given)').toEqual([]);
    expect(find(firstCandidate(d, msg).subarray(0, 32)), 'nonce candidate').toEqual([]);
    const d384 = new Uint8Array(nodeCrypto.randomBytes(48));
    d384[0] = 0x01;
    expect(() => ecdsa('P-384').getPublicKey(d384)).toThrow();
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
      expect(() => make(key), what).toThrow();
      expect(find(key), what).toEqual([]);
    }
    release();
  });

  it('the allocator stays sound at the limit: filled twice, no block past the end of memory, none overlapping, all returned', () => {
    const base = coreMemoryStats().inUseBytes;
    for (let round = 0; round < 2; round++) {
      fill(0);
      const end = c.mem().byteLength;
      expect(end, 'memory grown to its limit').toBeGreaterThan(2 ** 32 - 2 ** 20);
      expect(held.reduce((n, [, size]) => n + size, 0), 'bytes held').toBeGreaterThan(0.99 * end);
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
    // Free the highest block that can take two 40 KB inputs: the next allocation lands there.
    const high = held.filter(([p, size]) => p >>> 0 >= 2 ** 31 && size >= 2 * 40_000).sort((a, b) => (b[0] >>> 0) - (a[0] >>> 0))[0];
    expect(high, 'a block above 2 GiB').toBeDefined();
    held.splice(held.indexOf(high!), 1);
    c.x.mem_free(high![0], high![1]);
    const a = new Uint8Array(nodeCrypto.randomBytes(40_000)); // larger than half the I/O window: compared in allocated blocks
    expect(constantTimeEqual(a, Uint8Array.from(a))).toBe(true);
    const b = Uint8Array.from(a);
    b[39_999]! ^= 1;
    expect(constantTimeEqual(a, b)).toBe(false);
    release();
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

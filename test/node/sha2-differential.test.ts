// Random differential runs against node:crypto (an independent implementation),
// and the core builds against each other.
import { describe, it, expect } from 'vitest';
import nodeCrypto from 'node:crypto';
import { initSync, coreBuilds, hash, hmac, createHash, hashMany, type HashName, type CoreBuild } from '../../src/index.ts';

const NAMES: [HashName, string, number][] = [
  ['SHA-256', 'sha256', 64],
  ['SHA-384', 'sha384', 128],
  ['SHA-512', 'sha512', 128],
];

// Lengths 0 .. several blocks, dense around every block boundary.
function randomLength(block: number): number {
  const r = Math.random();
  if (r < 0.5) {
    const k = nodeCrypto.randomInt(0, 6);
    return Math.max(0, k * block + nodeCrypto.randomInt(-3, 4));
  }
  return nodeCrypto.randomInt(0, 6 * block);
}

for (const build of coreBuilds()) {
  describe(`differential against node:crypto (${build} build)`, () => {
    for (const [name, node, block] of NAMES) {
      it(`${name}: 1,200 random messages`, () => {
        initSync({ build });
        for (let i = 0; i < 1200; i++) {
          const msg = nodeCrypto.randomBytes(randomLength(block));
          expect(Buffer.from(hash(name, msg)).toString('hex'), `len ${msg.length}`).toBe(nodeCrypto.createHash(node).update(msg).digest('hex'));
        }
      });
      it(`HMAC-${name}: 1,200 random keys and messages`, () => {
        initSync({ build });
        for (let i = 0; i < 1200; i++) {
          // Keys shorter than, equal to and longer than the block.
          const key = nodeCrypto.randomBytes(nodeCrypto.randomInt(0, 3 * block));
          const msg = nodeCrypto.randomBytes(randomLength(block));
          expect(Buffer.from(hmac(name, key, msg)).toString('hex'), `key ${key.length} msg ${msg.length}`).toBe(
            nodeCrypto.createHmac(node, key).update(msg).digest('hex'),
          );
        }
      });
    }
    it('streaming over more than the 64 KiB I/O window', () => {
      initSync({ build });
      const big = nodeCrypto.randomBytes(200_000 + nodeCrypto.randomInt(0, 1000));
      for (const [name, node] of NAMES) {
        expect(Buffer.from(createHash(name).update(big.subarray(0, 70_000)).update(big.subarray(70_000)).digest()).toString('hex')).toBe(
          nodeCrypto.createHash(node).update(big).digest('hex'),
        );
        expect(Buffer.from(hash(name, big)).toString('hex')).toBe(nodeCrypto.createHash(node).update(big).digest('hex'));
      }
    });
  });
}

describe('the core builds agree', () => {
  it('on random messages, HMACs and batches', () => {
    // Runs of equal lengths take the 4-lane SIMD path (0, 55, 56 and 64 bytes straddle the padding block).
    const lengths = [...Array(40).fill(64), ...Array(12).fill(55), ...Array(8).fill(56), ...Array(8).fill(0), ...Array(9).fill(200)];
    const msgs = [...lengths, ...Array.from({ length: 300 }, () => nodeCrypto.randomInt(0, 400))].map((n) => nodeCrypto.randomBytes(n));
    const key = nodeCrypto.randomBytes(nodeCrypto.randomInt(1, 200));
    const run = (build: CoreBuild) => {
      initSync({ build });
      return NAMES.flatMap(([name]) => [
        ...hashMany(name, msgs).map((d) => Buffer.from(d).toString('hex')),
        ...msgs.map((m) => Buffer.from(hmac(name, key, m)).toString('hex')),
      ]);
    };
    const simd = run('simd');
    for (const build of coreBuilds()) expect(run(build), build).toEqual(simd);
  });
});

// FIPS 180-4 5.1: the length field is the message length in bits as a 64-bit (SHA-256) or
// 128-bit (SHA-384/512) integer; 2^29 bytes is 2^32 bits, past which a 32-bit count would wrap.
describe('the length field past 2^32 bits', () => {
  it('a message of 2^29 + 77 bytes, streamed in 1 MiB pieces, equals node:crypto (SHA-256 and SHA-512)', () => {
    initSync();
    const piece = nodeCrypto.randomBytes(1 << 20), tail = nodeCrypto.randomBytes(77);
    for (const [name, node] of [['SHA-256', 'sha256'], ['SHA-512', 'sha512']] as const) {
      const ours = createHash(name), theirs = nodeCrypto.createHash(node);
      for (let i = 0; i < 512; i++) { ours.update(piece); theirs.update(piece); }
      ours.update(tail); theirs.update(tail);
      expect(Buffer.from(ours.digest()).toString('hex'), name).toBe(theirs.digest('hex'));
    }
  }, 120_000);
});

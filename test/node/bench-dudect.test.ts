// The timing-leak check's parts that are not timing (bench/dudect.ts and the
// probes): the classes it compares are what each probe says, the statistic
// tells equal from shifted samples, and every EC probe, as the AES module's
// padding, ct_equal and HMAC probes, times the operation it names, not an
// error path it did not mean. No timing is asserted here.
import { createHmac } from 'node:crypto';
import { describe, it, expect, vi } from 'vitest';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { initSync } from '../../src/index.ts';
import { core, coreBuilds } from '../../src/core/loader.ts';
import { classInputs, runDudect, tStatistics } from '../../bench/dudect.ts';
import { probes as ecProbes } from '../../bench/dudect-ec.ts';
import { probes as aesProbes } from '../../bench/dudect-aes.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const NOBLE = { 'P-256': p256, 'P-384': p384, 'P-521': p521 } as const;
const ORDER = { 'P-256': p256.Point.CURVE().n, 'P-384': p384.Point.CURVE().n, 'P-521': p521.Point.CURVE().n } as const;
const big = (b: Uint8Array) => BigInt(`0x${hex(b) || '0'}`);

describe('dudect: the classes and the statistic', () => {
  it('classInputs: the fixed class is the fixed byte, the random class is not, each sample in its own slice; a shape replaces that', () => {
    const { classes, input } = classInputs(2000, { size: 16 }, 0x5a);
    let fixed = 0;
    for (let i = 0; i < 2000; i++) {
      const isFixed = !(classes[i]! & 1);
      if (isFixed) fixed++;
      expect(input(i).every((v) => v === 0x5a), `sample ${i}`).toBe(isFixed);
    }
    expect(fixed).toBeGreaterThan(850);
    expect(fixed).toBeLessThan(1150);
    expect(input(1).byteOffset - input(0).byteOffset).toBe(16);
    const shaped = classInputs(500, { size: 8, shape: (b, isFixed) => void (isFixed ? b.fill(1) : b.fill(2, 0, 4)) });
    for (let i = 0; i < 500; i++) {
      const b = shaped.input(i);
      if (!(shaped.classes[i]! & 1)) expect([...b]).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
      else expect([...b.subarray(0, 4)]).toEqual([2, 2, 2, 2]);
    }
  });

  it('tStatistics: small |t| for samples of one distribution, large for shifted ones, infinite where a crop separates the classes', () => {
    // A fixed pseudo-random sequence, so the test cannot flake: the same draws either way.
    let s = 12345;
    const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const draw = (n: number, shift: number) => Array.from({ length: n }, () => 1000 + 100 * next() + shift);
    const same = tStatistics([draw(5000, 0), draw(5000, 0)]);
    expect(Math.abs(same.all)).toBeLessThan(4.5);
    for (const t of same.cropped) expect(Math.abs(t)).toBeLessThan(4.5);
    const shifted = tStatistics([draw(5000, 0), draw(5000, 10)]);
    expect(Math.abs(shifted.all)).toBeGreaterThan(10);
    const apart = tStatistics([draw(100, 0), draw(100, 1000)]);
    expect(apart.cropped[0]).toBe(Infinity);
  });
});

describe('dudect-ec probes compute what they name, on every build', () => {
  for (const build of coreBuilds()) {
    it(`${build}: d*G, signing with k (both shapes), RFC 6979 signing, and the control's verification`, () => {
      initSync({ build });
      const c = core();
      const { list, release } = ecProbes(c);
      try {
        expect(list.map((p) => p.name.split(',')[0])).toEqual([
          ...['P-256', 'P-384', 'P-521'].flatMap((n) => [`${n} public key d*G`, `${n} signing`, `${n} signing`, `${n} RFC 6979 signing`]),
          'control: P-256 verification',
        ]);
        for (const p of list) {
          const curve = p.name.slice(p.name.indexOf('P-'), p.name.indexOf('P-') + 5) as keyof typeof NOBLE;
          const noble = NOBLE[curve];
          const { classes, input } = classInputs(12, p);
          for (let i = 0; i < 12; i++) {
            const secret = input(i), isFixed = !(classes[i]! & 1);
            if (p.name.includes('half-length') && isFixed) expect(big(secret)).toBeLessThan(1n << BigInt(8 * (p.size - (p.size >> 1))));
            const result = p.prepare(c, secret)() as number;
            const io = c.mem().subarray(c.io, c.io + 2048);
            if (p.name.startsWith('control')) {
              expect(result, 'a random signature does not verify').toBe(0);
              continue;
            }
            expect(big(secret) > 0n && big(secret) < ORDER[curve], 'the secret is a scalar in range').toBe(true);
            const out = io.subarray(512, 512 + result);
            if (p.name.includes('public key')) {
              expect(hex(out)).toBe(hex(noble.getPublicKey(secret, false)));
              continue;
            }
            const key = io.subarray(0, p.size);
            const digest = io.subarray(256, 256 + (curve === 'P-521' ? 64 : p.size));
            expect(noble.verify(out, digest, noble.getPublicKey(key, false), { prehash: false, lowS: false, format: 'compact' }), p.name).toBe(true);
            if (p.name.includes('nonce k')) {
              // r is the x coordinate of k*G reduced mod n.
              const kG = noble.Point.BASE.multiply(big(io.subarray(384, 384 + p.size)));
              expect(big(out.subarray(0, p.size))).toBe(kG.toAffine().x % ORDER[curve]);
            }
          }
        }
      } finally {
        release();
      }
      expect(c.mem().subarray(c.io, c.io + 1280).every((v) => v === 0), 'release() zeroizes the window that held keys and nonces').toBe(true);
    });
  }

  it('the AES probes keep their measurement counts (200,000 x 8 calls in a full run)', () => {
    initSync({ build: coreBuilds()[0]! });
    const { list, release } = aesProbes(core());
    release();
    expect(list.length).toBe(13);
    for (const p of list) expect([p.repeat, p.samples], p.name).toEqual([8, 200_000]);
  });

  for (const build of coreBuilds()) {
    it(`the padding removal, ct_equal and HMAC probes time what they name (${build})`, () => {
      initSync({ build });
      const c = core();
      const { list, release } = aesProbes(c);
      try {
        const probe = (start: string) => list.find((p) => p.name.startsWith(start))!;
        const fixed = new Uint8Array(64).fill(0x5a);
        // PKCS#7 removal: a block that ends in 0x5a is refused (ERR_PADDING), one that ends in 01 gives 15 bytes.
        const unpad = probe('CBC PKCS#7 padding removal');
        expect(unpad.prepare(c, fixed.subarray(0, 16))()).toBe(-6);
        const valid = Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? 1 : 0x30 + i));
        expect(unpad.prepare(c, valid)()).toBe(15);
        expect(Buffer.from(c.mem().subarray(c.io + 2048, c.io + 2048 + 15))).toEqual(Buffer.from(valid.subarray(0, 15)));
        // ct_equal: the fixed class equals the bytes it is compared with; another operand does not.
        const eq = probe('ct_equal');
        expect(eq.prepare(c, fixed)()).toBe(1);
        expect(eq.prepare(c, Uint8Array.from(fixed, (v, i) => (i === 63 ? v ^ 1 : v)))()).toBe(0);
        // HMAC-SHA-256 under the secret key over the 64 bytes at the window's start.
        const mac = probe('HMAC-SHA-256');
        const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
        const run = mac.prepare(c, key);
        c.mem().set(fixed, c.io);
        expect(run()).toBe(32);
        expect(hex(c.mem().subarray(c.io + 2048, c.io + 2048 + 32))).toBe(createHmac('sha256', key).update(fixed).digest('hex'));
      } finally {
        release();
      }
    });
  }
});

describe('dudect: a filtered run keeps its positive control', () => {
  // A review found --filter dropping the control with the other probes: a filtered run then
  // printed "no evidence of leakage" with nothing to show the measurement could see a leak.
  it('measures the control beside any probe the filter selects, and nothing when it selects none of the list', () => {
    const findings: Record<string, unknown>[] = [];
    const probe = (name: string) => ({ name, size: 16, repeat: 1, samples: 200, prepare: () => () => 0 });
    const list = () => ({ list: [probe('GHASH, fixed vs random input'), probe('CBC chain, fixed vs random plaintext'), probe('control: early-exit compare (should leak)')], release: () => {} });
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const run = (filter: RegExp) => {
        findings.length = 0;
        runDudect('dudect-test', { quick: true, filter, finding: (_m, d) => void findings.push(d) }, ['scalar'], list);
        return findings.filter((f) => 'probe' in f).map((f) => f['probe']);
      };
      expect(run(/GHASH/)).toEqual(['GHASH, fixed vs random input', 'control: early-exit compare (should leak)']);
      expect(run(/nothing of this list/)).toEqual([]);
    } finally {
      log.mockRestore();
    }
  });
});

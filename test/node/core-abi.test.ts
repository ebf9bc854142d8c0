// The raw ABI (docs/wasm-abi.md) as a non-JS host would use it: no imports,
// status codes, zeroization of released contexts and blocks, build selection.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import nodeCrypto from 'node:crypto';
import { init, initSync, coreBuilds, CORE_BUILDS, gcm, ccm, cbc, AuthenticationError, PaddingError, CoreError, StateError, createHmac, createHash, coreMemoryStats, constantTimeEqual } from '../../src/index.ts';
import { core } from '../../src/core/loader.ts';

const wasm = (build: string) => readFileSync(new URL(`../../build/senv.${build}.wasm`, import.meta.url));

describe('core ABI', () => {
  // vitest.config.ts gives Node 20's workers the Relaxed SIMD flag: without
  // it, the relaxed build would silently go untested.
  it('this runtime takes every build', () => {
    expect(coreBuilds()).toEqual(CORE_BUILDS);
  });

  // A Node without the flag (Node 20 as installed): the loader's probes must
  // agree with the builds they stand for, and 'auto' falls back in order.
  it('without the Relaxed SIMD flag the probes agree with the modules and auto takes the best build left', () => {
    const dist = new URL('../../dist/src/index.js', import.meta.url).href;
    const wasmUrl = (b: string) => new URL(`../../build/senv.${b}.wasm`, import.meta.url).href;
    const script = `
      import { readFileSync } from 'node:fs';
      const { coreBuilds, initSync } = await import('${dist}');
      const validates = (b) => WebAssembly.validate(readFileSync(new URL('${wasmUrl('BUILD')}'.replace('BUILD', b))));
      let forced = 'loaded';
      try { initSync({ build: 'relaxed' }); } catch (e) { forced = e.name + ': ' + e.message; }
      console.log(JSON.stringify({ builds: coreBuilds(), relaxed: validates('relaxed'), simd: validates('simd'), auto: initSync().build, forced }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { builds: string[]; relaxed: boolean; simd: boolean; auto: string; forced: string };
    const expected = [...(out.relaxed ? ['relaxed'] : []), ...(out.simd ? ['simd'] : []), 'scalar'];
    expect(out.builds).toEqual(expected);
    expect(out.auto).toBe(expected[0]);
    if (!out.relaxed) expect(out.forced).toMatch(/^CoreError: .*Relaxed SIMD/);
  });

  const FEATURES = { relaxed: 3, simd: 1, scalar: 0 };
  for (const build of CORE_BUILDS) {
    it(`${build}: instantiates with no imports and reports its version and features`, () => {
      const mod = new WebAssembly.Module(wasm(build));
      expect(WebAssembly.Module.imports(mod)).toEqual([]);
      const x = new WebAssembly.Instance(mod, {}).exports as Record<string, (...a: number[]) => number>;
      expect(x.abi_version!()).toBe(1);
      expect(x.features!() & 3).toBe(FEATURES[build]);
      expect(x.io_size!()).toBe(65536);
      expect(x.io_ptr!() % 16).toBe(0);
    });
  }

  it('returns status codes instead of trapping on bad ids and handles', () => {
    const { x, io } = core();
    expect(x.hash_oneshot(7, io, 0, io)).toBe(-1);
    expect(x.hash_create(3)).toBe(0);
    expect(x.hmac_create(99, io, 0)).toBe(0);
    expect(x.hash_update(0, io, 1)).toBe(-3);
    expect(x.hash_digest_length(1)).toBe(-1);
    const ctx = x.hash_create(4);
    expect(x.hmac_update(ctx, io, 1)).toBe(-3); // wrong kind
    expect(x.hash_final(ctx, io)).toBe(32);
    expect(x.hash_update(ctx, io, 1)).toBe(-7); // after final
    expect(x.hash_reset(ctx)).toBe(0);
    expect(x.hash_update(ctx, io, 1)).toBe(0);
    x.ctx_free(ctx);
  });

  it('zeroizes a released HMAC context (keyed states) and freed blocks', () => {
    const c = core();
    const key = nodeCrypto.randomBytes(32);
    c.mem().set(key, c.io);
    const ctx = c.x.hmac_create(4, c.io, 32);
    c.x.zeroize(c.io, 32);
    const size = new DataView(c.mem().buffer).getUint32(ctx + 4, true);
    expect(size).toBeGreaterThan(600);
    const before = c.read(ctx + 16, size - 16);
    expect(before.some((b) => b !== 0)).toBe(true);
    c.x.ctx_free(ctx);
    // The allocator may reuse the first words of a free block for its lists; the rest must be clear.
    expect(c.read(ctx + 16, size - 16).every((b) => b === 0)).toBe(true);

    const p = c.alloc(100, new Uint8Array(100).fill(0xaa));
    c.free(p, 100);
    expect(c.read(p + 16, 84).every((b) => b === 0)).toBe(true);
  });

  it('counts memory held by live contexts and blocks, back to the baseline when released', () => {
    const base = coreMemoryStats().inUseBytes;
    const objs = Array.from({ length: 50 }, (_, i) => (i % 2 ? createHash('SHA-256') : createHmac('SHA-512', new Uint8Array(i))));
    const p = core().alloc(1000);
    expect(coreMemoryStats().inUseBytes).toBeGreaterThan(base + 1000 + 50 * 200);
    core().free(p, 1000);
    objs.forEach((o) => o.destroy());
    expect(coreMemoryStats().inUseBytes).toBe(base);
  });

  // The ABI lets ccm_update write over its input; the facade never does, so
  // the raw calls check it (the SIMD builds encrypt the counter block and
  // MAC the plaintext of the same block side by side).
  for (const build of CORE_BUILDS) {
    it(`${build}: CCM in place (dst = src) in odd pieces, both directions, equals node:crypto`, () => {
      initSync({ build });
      const c = core(), x = c.x;
      for (const len of [5, 16, 33, 160, 1000]) {
        const key = nodeCrypto.randomBytes(len % 2 ? 32 : 16), nonce = nodeCrypto.randomBytes(13 - (len % 7));
        const pt = nodeCrypto.randomBytes(len);
        const nc = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-ccm' : 'aes-256-ccm', key, nonce, { authTagLength: 16 });
        nc.setAAD(Buffer.alloc(0), { plaintextLength: len });
        const expected = Buffer.concat([nc.update(pt), nc.final(), nc.getAuthTag()]);
        const buf = c.alloc(len + 16);
        const run = (input: Uint8Array, decrypt: number): Buffer => {
          c.mem().set(key, c.io);
          c.mem().set(nonce, c.io + 32);
          const k = x.aes_key_create(c.io, key.length, 0);
          const op = x.ccm_create(k, c.io + 32, nonce.length, 16, 0n, BigInt(len), decrypt, 0);
          c.mem().set(input, buf);
          for (let off = 0, i = 0; off < len; i++) {
            const n = Math.min(len - off, [1, 16, 7, 48, 3][i % 5]!);
            expect(x.ccm_update(op, buf + off, buf + off, n)).toBe(n);
            off += n;
          }
          c.mem().set(expected.subarray(len), c.io + 64);
          const status = decrypt ? x.ccm_verify(op, c.io + 64) : x.ccm_final(op, buf + len);
          x.ctx_free(op);
          x.ctx_free(k);
          expect(status).toBe(decrypt ? 0 : 16);
          return Buffer.from(c.read(buf, decrypt ? len : len + 16));
        };
        expect(run(pt, 0).equals(expected), `encrypt ${len}`).toBe(true);
        expect(run(expected.subarray(0, len), 1).equals(pt), `decrypt ${len}`).toBe(true);
        c.free(buf, len + 16);
      }
    });
  }

  // 64 GiB cannot be streamed in a test: the context's byte count (u64 at
  // op + 36, assembly/gcm.ts DATALEN) is set just below the limit instead.
  for (const build of CORE_BUILDS) {
    it(`${build}: gcm_update refuses to pass 2^36 - 32 bytes under one nonce (SP 800-38D), processing nothing`, () => {
      initSync({ build });
      const c = core(), x = c.x;
      const limit = (1n << 36n) - 32n;
      c.mem().set(nodeCrypto.randomBytes(16), c.io);
      c.mem().set(nodeCrypto.randomBytes(12), c.io + 32);
      const k = x.aes_key_create(c.io, 16, 0);
      for (const decrypt of [0, 1]) {
        const op = x.gcm_create(k, c.io + 32, 12, 16, decrypt, 0);
        expect(x.gcm_update(op, c.io + 64, c.io + 64, 16)).toBe(16);
        new DataView(c.mem().buffer).setBigUint64(op + 36, limit - 32n, true);
        c.mem().fill(0x77, c.io + 128, c.io + 160);
        expect(x.gcm_update(op, c.io + 128, c.io + 128, 33)).toBe(-2);
        expect(c.read(c.io + 128, 32).every((b) => b === 0x77), 'nothing processed').toBe(true);
        expect(new DataView(c.mem().buffer).getBigUint64(op + 36, true)).toBe(limit - 32n);
        expect(x.gcm_update(op, c.io + 128, c.io + 128, 32)).toBe(32);
        expect(x.gcm_update(op, c.io + 128, c.io + 128, 0)).toBe(0);
        expect(x.gcm_update(op, c.io + 128, c.io + 128, 1)).toBe(-2);
        x.ctx_free(op);
      }
      x.ctx_free(k);
    });
  }

  it('one-shot AES calls leave nothing in the I/O window, also when the tag or the padding is wrong', () => {
    for (const build of CORE_BUILDS) {
      initSync({ build });
      const c = core();
      const clear = () => c.read(c.io, c.ioSize).every((b) => b === 0);
      const key = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(12), pt = new Uint8Array(1000).fill(0x5a);
      for (const a of [gcm(key, nonce), ccm(key, nonce)]) {
        const ct = a.encrypt(pt);
        expect(clear(), build).toBe(true);
        ct[ct.length - 1]! ^= 1;
        expect(() => a.decrypt(ct)).toThrow(AuthenticationError);
        expect(clear(), build).toBe(true);
      }
      const iv = nodeCrypto.randomBytes(16);
      const unpadded = cbc(key, iv, { padding: 'none' }).encrypt(new Uint8Array(64).fill(0x5a)); // last byte 0x5a: not PKCS#7
      expect(() => cbc(key, iv).decrypt(unpadded)).toThrow(PaddingError);
      expect(clear(), build).toBe(true);
    }
  });

  it('constantTimeEqual compares in the core', () => {
    const a = nodeCrypto.randomBytes(48);
    expect(constantTimeEqual(a, Uint8Array.from(a))).toBe(true);
    for (const i of [0, 17, 47]) {
      const b = Uint8Array.from(a);
      b[i]! ^= 1;
      expect(constantTimeEqual(a, b)).toBe(false);
    }
    expect(constantTimeEqual(a, a.subarray(1))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
    const big = nodeCrypto.randomBytes(40000);
    expect(constantTimeEqual(big, Uint8Array.from(big))).toBe(true);
  });

  it('destroy() zeroizes and later use is a StateError', () => {
    const h = createHmac('SHA-256', new Uint8Array(20).fill(7));
    h.update(new Uint8Array(10));
    h.destroy();
    expect(() => h.digest()).toThrow(StateError);
  });

  it('loads the build asked for, sync and async, and rejects unknown builds', async () => {
    expect(initSync({ build: 'scalar' }).build).toBe('scalar');
    expect(core().x.features() & 1).toBe(0);
    const info = await init({ build: 'simd' });
    expect(info).toMatchObject({ build: 'simd', abiVersion: 1 });
    expect(info.moduleBytes).toBeGreaterThan(1000);
    expect(core().x.features() & 3).toBe(1);
    expect(initSync().build).toBe('relaxed'); // auto: the best build the runtime takes
    expect(() => initSync({ build: 'wasm64' as never })).toThrow(CoreError);
  });
});

// The raw ABI (docs/wasm-abi.md) as a non-JS host would use it: no imports,
// status codes, zeroization of released contexts and blocks, build selection.
import { describe, it, expect, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import nodeCrypto from 'node:crypto';
import { init, initSync, coreBuilds, CORE_BUILDS, gcm, ccm, cbc, hmac, sha256, AuthenticationError, PaddingError, CoreError, InvalidInputError, StateError, createHmac, createHash, coreMemoryStats, constantTimeEqual } from '../../src/index.ts';
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

  // A raw instance per build: these calls would break the shared core if they went wrong.
  const raw = (build: string) => new WebAssembly.Instance(new WebAssembly.Module(wasm(build)), {}).exports as unknown as Record<string, (...a: number[]) => number> & { memory: WebAssembly.Memory };

  for (const build of CORE_BUILDS) {
    it(`${build}: ctx_free ignores a freed, static or foreign handle; mem_alloc refuses what it can never give; out-of-memory handles are ERR_CONTEXT`, () => {
      const x = raw(build);
      const base = x.mem_in_use!();
      const h = x.hash_create!(4);
      x.ctx_free!(h);
      x.ctx_free!(h); // a second free must not put the block on the free list twice
      const ptrs = Array.from({ length: 6 }, () => x.mem_alloc!(200));
      expect(new Set(ptrs).size, 'distinct blocks after a double free').toBe(6);
      ptrs.forEach((p) => x.mem_free!(p, 200));
      x.ctx_free!(x.io_ptr!()); // the I/O window is not a context
      x.mem_free!(0, 0);
      const scratch = x.aes_key_create!(x.io_ptr!(), 16, 1); // the static one-shot key slot
      x.ctx_free!(scratch);
      expect(x.mem_in_use!()).toBe(base);
      for (const size of [2 ** 31 - 1, 2 ** 32 - 16, 2 ** 30]) expect(x.mem_alloc!(size), `mem_alloc(${size})`).toBe(0);
      expect(x.mem_in_use!()).toBe(base);
      const end = x.memory.buffer.byteLength;
      for (const handle of [end - 2, end + 64, 2 ** 31 - 16, 2 ** 32 - 8]) {
        expect(x.hash_update!(handle, x.io_ptr!(), 1)).toBe(-3);
        expect(x.gcm_update!(handle, x.io_ptr!(), x.io_ptr!(), 16)).toBe(-3);
        expect(x.drbg_generate!(handle, x.io_ptr!(), 16, 0, 0)).toBe(-3);
        x.ctx_free!(handle);
      }
    });

    it(`${build}: a range past the end of memory is ERR_LENGTH before anything is written`, () => {
      const x = raw(build);
      const mem = () => new Uint8Array(x.memory.buffer);
      const io = x.io_ptr!();
      mem().set(nodeCrypto.randomBytes(16), io);
      const k = x.aes_key_create!(io, 16, 0);
      mem().set(new Uint8Array(12), io + 32);
      const gcmOp = x.gcm_create!(k, io + 32, 12, 16, 0, 0);
      const cbcOp = x.cbc_create!(k, io + 32, 0, 0, 0);
      const h = x.hash_create!(4);
      const before = mem().slice();
      const end = x.memory.buffer.byteLength;
      const src = end - 4096, len = 4096 + 65536;
      expect(x.aes_encrypt_blocks!(k, src, src, len)).toBe(-2);
      expect(x.gcm_update!(gcmOp, src, src, len)).toBe(-2);
      expect(x.cbc_update!(cbcOp, src, src, len)).toBe(-2);
      expect(x.hash_oneshot!(4, src, len, io)).toBe(-2);
      expect(x.hash_update!(h, src, len)).toBe(-2);
      expect(x.drbg_generate!(x.drbg_create!(4), src, len, 0, 0)).toBe(-2);
      expect(x.gcm_update!(gcmOp, io, io, 2 ** 31)).toBe(-2); // a length that would come back negative
      const after = mem();
      let changed = 0;
      for (let i = 0; i < before.length; i++) if (before[i] !== after[i] && (i < k || i >= k + 8192)) changed++;
      // Only the DRBG context made for the call above may differ (its allocation).
      expect(changed).toBeLessThan(600);
      expect(x.hash_update!(h, io, 64)).toBe(0);
      expect(x.mem_alloc!(16)).toBeGreaterThan(0);
    });

    // The SIMD SHA-256 schedule lives in static memory: it must not keep W + K of the last block.
    it(`${build}: no trace of hashed or MACed secrets outside the I/O window`, () => {
      initSync({ build });
      const c = core();
      const snapshot = (secret: Buffer) => {
        sha256(secret);
        hmac('SHA-256', secret, secret);
        createHash('SHA-256').update(secret).digest();
        c.x.zeroize(c.io, c.ioSize);
        return c.read(0, c.mem().length);
      };
      const a = snapshot(Buffer.alloc(200, 0x11)), b = snapshot(Buffer.alloc(200, 0x22));
      const diff: number[] = [];
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff.push(i);
      expect(diff.slice(0, 8)).toEqual([]);
    });
  }

  it('concurrent init() calls share one instance per build, and the latest choice of build stands', async () => {
    const [a, b] = await Promise.all([init({ build: 'scalar' }), init({ build: 'scalar' })]);
    expect(a).toBe(b);
    const late = init({ build: 'simd' });
    initSync({ build: 'scalar' });
    await late;
    expect(core().info.build).toBe('scalar');
    initSync({ build: CORE_BUILDS.find((x) => coreBuilds().includes(x))! });
  });

  it('a load on first use (before any init) is not a choice of build: an init() under way still takes over', async () => {
    vi.resetModules();
    const fresh = await import('../../src/core/loader.ts');
    const [auto, other] = fresh.coreBuilds();
    const chosen = fresh.init({ build: other });
    expect(fresh.core().info.build).toBe(auto);
    expect((await chosen).build).toBe(other);
    expect(fresh.core().info.build).toBe(other);
    vi.resetModules();
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
    expect(() => initSync({ build: 'wasm64' as never })).toThrow(InvalidInputError);
  });
});

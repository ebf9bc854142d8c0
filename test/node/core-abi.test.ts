// The raw ABI (docs/wasm-abi.md) as a non-JS host would use it: no imports,
// status codes, zeroization of released contexts and blocks, build selection.
import { describe, it, expect, vi } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import nodeCrypto from 'node:crypto';
import { init, initSync, coreBuilds, CORE_BUILDS, gcm, ccm, cbc, cmac, aesKey, hmac, sha256, AuthenticationError, PaddingError, CoreError, InvalidInputError, StateError, createHmac, createHash, coreMemoryStats, constantTimeEqual, HmacDrbg } from '../../src/index.ts';
import { core } from '../../src/core/loader.ts';
import { failureKind, InvalidValueError, LengthError, OutOfMemoryError, statusError, UnknownAlgorithmError } from '../../src/core/errors.ts';

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
      import { readFileSync, readdirSync } from 'node:fs';
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

  it('each status code of docs/wasm-abi.md becomes the typed error a caller can act on', () => {
    const table: [number, new (m: string) => Error, string][] = [
      [-1, UnknownAlgorithmError, 'unknown algorithm'], [-2, LengthError, 'length not allowed'], [-3, StateError, 'invalid or released context'],
      [-4, OutOfMemoryError, 'out of WASM memory'], [-5, AuthenticationError, 'authentication failed'], [-6, PaddingError, 'invalid padding'],
      [-7, StateError, 'not allowed in the current state'], [-8, InvalidValueError, 'value out of range'], [-9, CoreError, 'core returned status -9'],
    ];
    for (const [status, cls, text] of table) {
      const e = statusError(status, 'op');
      expect(e.constructor, String(status)).toBe(cls);
      // Set on each prototype (errorName), not inherited from SenvError: what a minified bundle's caller reads.
      expect(e.name, String(status)).toBe(cls.name);
      expect(e.message).toBe(`op: ${text}`);
    }
  });

  it('failureKind names a failure by its code or its Error name only; anything else thrown is \'error\', never its text', () => {
    expect(failureKind(Object.assign(new Error('/secret/path'), { code: 'ENOENT' }))).toBe('ENOENT');
    expect(failureKind(new RangeError('/secret/path'))).toBe('RangeError');
    // Not an Error: its name is the thrower's text, not a class.
    for (const thrown of ['ENOENT: /secret/path', 42, null, undefined, { name: 'Leak', message: 'x' }, { code: 'not a code' }]) {
      expect(failureKind(thrown), String(thrown)).toBe('error');
    }
    // An Error whose name is text rather than a class name.
    for (const name of ['key 00112233', '', 'x'.repeat(41), 7]) {
      expect(failureKind(Object.assign(new Error('m'), { name })), String(name)).toBe('error');
    }
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(failureKind(proxy), 'a revoked proxy').toBe('error');
  });

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
    it(`${build}: hash_many refuses an out that overlaps its offsets or messages (ERR_LENGTH), never traps on the offsets it overwrote`, () => {
      const x = raw(build);
      const io = x.io_ptr!();
      const mem = new Uint8Array(x.memory.buffer);
      mem.set(new TextEncoder().encode('abcd'), io);
      const offsets = new DataView(x.memory.buffer, io + 100, 12);
      [0, 2, 4].forEach((v, i) => offsets.setUint32(i * 4, v, true));
      for (const [what, out] of [['the offsets', io + 100], ['inside the offsets', io + 104], ['the messages', io], ['just before the offsets', io + 100 - 32]] as const) {
        expect(x.hash_many!(4, io, io + 100, 2, out), what).toBe(-2);
      }
      expect(x.hash_many!(4, io, io + 100, 2, io + 200), 'apart').toBe(2);
      expect(Buffer.from(mem.subarray(io + 200, io + 264)).toString('hex')).toBe(
        nodeCrypto.createHash('sha256').update('ab').digest('hex') + nodeCrypto.createHash('sha256').update('cd').digest('hex'),
      );
      // Empty messages share no byte with out, wherever src points.
      [0, 0, 0].forEach((v, i) => offsets.setUint32(i * 4, v, true));
      expect(x.hash_many!(4, io + 240, io + 100, 2, io + 200), 'empty messages at a pointer inside out').toBe(2);
      expect(Buffer.from(mem.subarray(io + 200, io + 264)).toString('hex')).toBe(nodeCrypto.createHash('sha256').digest('hex').repeat(2));
      // A count whose offsets table ((count + 1) * 4 bytes) passes 2^32 is not in memory: refused, not wrapped round to 4 bytes.
      x.memory.grow(1); // a page of zeros at the end: offsets that never go backwards
      const end = x.memory.buffer.byteLength;
      expect(x.hash_many!(4, io, end - 8, 2 ** 30, io + 200), 'a table of 2^32 + 4 bytes').toBe(-2);
    });
  }

  it('hash_many: digests of count * 64 bytes past 2^32 are not in memory: refused, not wrapped round to 0 bytes', () => {
    const x = raw('scalar');
    // 2^26 SHA-512 digests are 2^32 bytes; their 2^26 + 1 offsets (zeros that never go backwards) are in memory.
    const offsets = x.mem_alloc!(2 ** 28);
    expect(offsets).toBeGreaterThan(0);
    x.memory.grow(1); // the last offset may lie past the block, at what was the end of memory
    new Uint8Array(x.memory.buffer).fill(0, offsets, offsets + 2 ** 28 + 4); // the allocator's words from before
    const end = x.memory.buffer.byteLength;
    expect(x.hash_many!(6, x.io_ptr!(), offsets, 2 ** 26, end - 128)).toBe(-2);
  });

  for (const build of CORE_BUILDS) {
    it(`${build}: drbg_generate refuses an output that shares a byte with its additional input (ERR_LENGTH), the state unchanged`, () => {
      const x = raw(build);
      const io = x.io_ptr!();
      const mem = new Uint8Array(x.memory.buffer);
      mem.set(nodeCrypto.randomBytes(80), io);
      const [a, b] = [x.drbg_create!(4), x.drbg_create!(4)];
      for (const ctx of [a, b]) expect(x.drbg_instantiate!(ctx, io, 32, io + 32, 16, io, 0)).toBe(0);
      // Additional input at io + 48 .. io + 80; outputs over it, across its start and its end.
      for (const out of [io + 48, io + 40, io + 79, io + 60]) expect(x.drbg_generate!(a, out, 16, io + 48, 32), `out at +${out - io}`).toBe(-2);
      // The refused calls changed nothing: both instances give the same next output.
      expect(x.drbg_generate!(a, io + 200, 32, io + 48, 32)).toBe(0);
      expect(x.drbg_generate!(b, io + 300, 32, io + 48, 32)).toBe(0);
      expect(Buffer.from(mem.subarray(io + 200, io + 232)).equals(Buffer.from(mem.subarray(io + 300, io + 332)))).toBe(true);
      expect(x.drbg_generate!(a, io + 80, 16, io + 48, 32), 'just after it').toBe(0);
      expect(x.drbg_generate!(a, io + 100, 16, io + 104, 0), 'an empty additional input inside out shares no byte').toBe(0);
    });
  }

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
      for (const size of [2 ** 31 - 1, 2 ** 32 - 16, 2 ** 30, 2 ** 28 + 1]) expect(x.mem_alloc!(size), `mem_alloc(${size})`).toBe(0);
      expect(x.mem_in_use!()).toBe(base);
      const end = x.memory.buffer.byteLength;
      for (const handle of [end - 2, end + 64, 2 ** 31 - 16, 2 ** 32 - 8]) {
        expect(x.hash_update!(handle, x.io_ptr!(), 1)).toBe(-3);
        expect(x.gcm_update!(handle, x.io_ptr!(), x.io_ptr!(), 16)).toBe(-3);
        expect(x.drbg_generate!(handle, x.io_ptr!(), 16, 0, 0)).toBe(-3);
        x.ctx_free!(handle);
      }
    });

    // docs/wasm-abi.md: mem_free believes only a live block's own header; anything else is ignored.
    it(`${build}: mem_free ignores a second free, the I/O window, a context, a pointer inside a block and a wrong size`, () => {
      const x = raw(build);
      const io = x.io_ptr!();
      const base = x.mem_in_use!();
      const p = x.mem_alloc!(100);
      new Uint8Array(x.memory.buffer).fill(0xaa, p, p + 100);
      const h = x.hash_create!(4);
      const held = x.mem_in_use!();
      x.mem_free!(p + 16, 84);
      x.mem_free!(p, 50);
      x.mem_free!(p, 0);
      x.mem_free!(io, 100);
      x.mem_free!(h, 8);
      x.mem_free!(h + 16, 32);
      expect(x.mem_in_use!(), 'nothing released').toBe(held);
      expect(new Uint8Array(x.memory.buffer, p, 100).every((b) => b === 0xaa), 'the block untouched').toBe(true);
      expect(x.hash_update!(h, io, 3)).toBe(0);
      x.ctx_free!(p); // a block is not a context either
      expect(x.mem_in_use!()).toBe(held);
      x.mem_free!(p, 100);
      x.mem_free!(p, 100); // a second free must not put the block on the free list twice
      x.ctx_free!(h);
      expect(x.mem_in_use!()).toBe(base);
      const ptrs = Array.from({ length: 6 }, () => x.mem_alloc!(100));
      expect(new Set(ptrs).size, 'distinct blocks after a double free').toBe(6);
      ptrs.forEach((q) => x.mem_free!(q, 100));
      expect(x.mem_in_use!()).toBe(base);
    });

    // A handle is sealed for its own address: one that points into another
    // context (a hash context embedded in an HMAC or DRBG one, a freed handle
    // whose memory a bigger context took) or at a kind written by hand is
    // not a context, whatever the bytes there.
    it(`${build}: a handle into the middle of another context, or at a header written by hand, is ERR_CONTEXT`, () => {
      const x = raw(build) as unknown as Raw;
      const io = x.io_ptr!();
      new Uint8Array(x.memory.buffer).set(nodeCrypto.randomBytes(64), io);
      const stale = x.hash_create!(4);
      x.ctx_free!(stale);
      const k = x.aes_key_create!(io, 16, 0);
      const d = x.drbg_create!(5);
      expect(x.drbg_instantiate!(d, io, 32, io + 32, 16, 0, 0)).toBe(0);
      const contexts = { hmac: x.hmac_create!(6, io, 16), drbg: d, key: k, gcm: x.gcm_create!(k, io, 12, 16, 0, 0), ccm: x.ccm_create!(k, io, 13, 16, 0n, 16n, 0, 0), cbc: x.cbc_create!(k, io, 24, 0, 0), mac: x.mac_create!(k, 49, 0) };
      const calls: Record<string, (h: number) => number> = {
        hash: (h) => x.hash_update!(h, io, 0),
        hmac: (h) => x.hmac_update!(h, io, 0),
        drbg: (h) => x.drbg_set_reseed_interval!(h, 1000n),
        key: (h) => x.aes_encrypt_blocks!(h, io, io + 64, 16),
        gcm: (h) => x.gcm_aad!(h, io, 0),
        ccm: (h) => x.ccm_update!(h, io, io + 64, 0),
        cbc: (h) => x.cbc_update!(h, io, io + 64, 0),
        mac: (h) => x.mac_update!(h, io, 0),
      };
      const accepted: string[] = [];
      for (const [owner, ctx] of Object.entries(contexts)) {
        const size = new DataView(x.memory.buffer).getUint16(ctx + 4, true);
        for (let off = 4; off < size; off += 4) {
          for (const [kind, call] of Object.entries(calls)) if (call(ctx + off) !== -3) accepted.push(`${kind} at ${owner} + ${off}`);
        }
      }
      for (const [kind, call] of Object.entries(calls)) if (call(stale) !== -3 && !Object.values(contexts).includes(stale)) accepted.push(`${kind} at a freed handle`);
      // A live handle of another kind, at its own address (e.g. a DRBG context, kind 0x305, for HMAC: 0x100 | alg).
      for (const [owner, ctx] of Object.entries(contexts)) {
        for (const [kind, call] of Object.entries(calls)) if (kind !== owner && call(ctx) !== -3) accepted.push(`${kind} at the ${owner} handle`);
      }
      expect(accepted).toEqual([]);
      // The contexts scanned are intact: each still answers as itself.
      expect(x.hmac_update!(contexts.hmac, io, 0)).toBe(0);
      expect(x.gcm_aad!(contexts.gcm, io, 16)).toBe(0);
      // A hash header written by hand 8 bytes before the end: refused, not a trap on the state it does not have.
      const end = x.memory.buffer.byteLength;
      new DataView(x.memory.buffer).setUint32(end - 8, 4, true);
      new DataView(x.memory.buffer).setUint32(end - 4, 300, true);
      expect(x.hash_update!(end - 8, io, 1)).toBe(-3);
      expect(x.hash_final!(end - 8, io)).toBe(-3);
      x.ctx_free!(end - 8);
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

  // The pointers of every export, read from the sources: each usize parameter
  // that is neither a length nor a handle (ctx, op, and the AES key context k
  // that leads the AES calls, refused with ERR_CONTEXT above). An export that
  // gains a pointer fails the coverage test below until RANGE_CASES lists it.
  const exportPointers = (() => {
    const dir = new URL('../../assembly/', import.meta.url);
    const sources = ['', 'ec/']
      .flatMap((sub) => readdirSync(new URL(sub, dir)).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(new URL(sub + f, dir), 'utf8')))
      .join('\n');
    const names = [...readFileSync(new URL('index.ts', dir), 'utf8').matchAll(/export \{([^}]*)\} from/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
    return names.flatMap((name) => {
      const m = sources.match(new RegExp(`export function ${name}\\(([^)]*)\\): (\\w+)`));
      if (!m) throw new Error(`no source for the export ${name}`);
      const params = m[1]!.split(',').map((p) => p.split(':').map((s) => s.trim()));
      return params
        .filter(([p, type], i) => type === 'usize' && !/^(ctx|op|size|n|len|\w+Len)$/.test(p!) && !(p === 'k' && i === 0))
        .map(([p]) => ({ name, param: p!, returns: m[2]! }));
    });
  })();

  type Raw = Record<string, (...a: (number | bigint)[]) => number> & { memory: WebAssembly.Memory };
  // The pointer a call passes for `param`: `fine` (a valid range), except for
  // the parameter under test, whose range runs past the end of memory.
  type At = (param: string, fine: number) => number;
  // One entry per export with a pointer: the setup it needs (run before the
  // memory snapshot), then the call. Lengths are at least 8, so a range that
  // starts 4 bytes before the end always runs past it.
  const RANGE_CASES: Record<string, (x: Raw, io: number) => (at: At) => number | undefined> = {
    mem_free: (x) => { const p = x.mem_alloc!(16); return (at) => x.mem_free!(at('ptr', p), 16); },
    zeroize: (x, io) => (at) => x.zeroize!(at('ptr', io), 16),
    ct_equal: (x, io) => (at) => x.ct_equal!(at('a', io), at('b', io + 16), 16),
    hash_update: (x, io) => { const h = x.hash_create!(4); return (at) => x.hash_update!(h, at('src', io), 16); },
    hash_final: (x, io) => { const h = x.hash_create!(4); return (at) => x.hash_final!(h, at('out', io)); },
    hash_oneshot: (x, io) => (at) => x.hash_oneshot!(4, at('src', io), 16, at('out', io + 64)),
    hash_many: (x, io) => {
      const offsets = new DataView(x.memory.buffer, io + 128, 8);
      offsets.setUint32(0, 0, true);
      offsets.setUint32(4, 16, true);
      return (at) => x.hash_many!(4, at('src', io), at('offsets', io + 128), 1, at('out', io + 256));
    },
    hmac_create: (x, io) => (at) => x.hmac_create!(4, at('key', io), 16),
    hmac_update: (x, io) => { const h = x.hmac_create!(4, io, 16); return (at) => x.hmac_update!(h, at('src', io), 16); },
    hmac_final: (x, io) => { const h = x.hmac_create!(4, io, 16); return (at) => x.hmac_final!(h, at('out', io)); },
    hmac_oneshot: (x, io) => (at) => x.hmac_oneshot!(4, at('key', io), 16, at('src', io + 16), 16, at('out', io + 64)),
    aes_key_create: (x, io) => (at) => x.aes_key_create!(at('key', io), 16, 0),
    aes_encrypt_blocks: (x, io) => { const k = x.aes_key_create!(io, 16, 0); return (at) => x.aes_encrypt_blocks!(k, at('src', io), at('dst', io + 64), 16); },
    aes_decrypt_blocks: (x, io) => { const k = x.aes_key_create!(io, 16, 0); return (at) => x.aes_decrypt_blocks!(k, at('src', io), at('dst', io + 64), 16); },
    gcm_create: (x, io) => { const k = x.aes_key_create!(io, 16, 0); return (at) => x.gcm_create!(k, at('nonce', io + 32), 12, 16, 0, 0); },
    gcm_aad: (x, io) => { const op = x.gcm_create!(x.aes_key_create!(io, 16, 0), io + 32, 12, 16, 0, 0); return (at) => x.gcm_aad!(op, at('src', io), 16); },
    gcm_update: (x, io) => { const op = x.gcm_create!(x.aes_key_create!(io, 16, 0), io + 32, 12, 16, 0, 0); return (at) => x.gcm_update!(op, at('src', io), at('dst', io + 64), 16); },
    gcm_final: (x, io) => { const op = x.gcm_create!(x.aes_key_create!(io, 16, 0), io + 32, 12, 16, 0, 0); return (at) => x.gcm_final!(op, at('out', io)); },
    gcm_verify: (x, io) => { const op = x.gcm_create!(x.aes_key_create!(io, 16, 0), io + 32, 12, 16, 1, 0); return (at) => x.gcm_verify!(op, at('expected', io)); },
    ccm_create: (x, io) => { const k = x.aes_key_create!(io, 16, 0); return (at) => x.ccm_create!(k, at('nonce', io + 32), 13, 16, 0n, 16n, 0, 0); },
    ccm_aad: (x, io) => { const op = x.ccm_create!(x.aes_key_create!(io, 16, 0), io + 32, 13, 16, 16n, 0n, 0, 0); return (at) => x.ccm_aad!(op, at('src', io), 16); },
    ccm_update: (x, io) => { const op = x.ccm_create!(x.aes_key_create!(io, 16, 0), io + 32, 13, 16, 0n, 16n, 0, 0); return (at) => x.ccm_update!(op, at('src', io), at('dst', io + 64), 16); },
    ccm_final: (x, io) => { const op = x.ccm_create!(x.aes_key_create!(io, 16, 0), io + 32, 13, 16, 0n, 0n, 0, 0); return (at) => x.ccm_final!(op, at('out', io)); },
    ccm_verify: (x, io) => { const op = x.ccm_create!(x.aes_key_create!(io, 16, 0), io + 32, 13, 16, 0n, 0n, 1, 0); return (at) => x.ccm_verify!(op, at('expected', io)); },
    cbc_create: (x, io) => { const k = x.aes_key_create!(io, 16, 0); return (at) => x.cbc_create!(k, at('iv', io + 32), 24, 0, 0); },
    cbc_update: (x, io) => { const op = x.cbc_create!(x.aes_key_create!(io, 16, 0), io + 32, 24, 0, 0); return (at) => x.cbc_update!(op, at('src', io), at('dst', io + 64), 16); },
    cbc_final: (x, io) => { const op = x.cbc_create!(x.aes_key_create!(io, 16, 0), io + 32, 24, 0, 0); return (at) => x.cbc_final!(op, at('dst', io)); },
    mac_update: (x, io) => { const op = x.mac_create!(x.aes_key_create!(io, 16, 0), 49, 0); return (at) => x.mac_update!(op, at('src', io), 16); },
    mac_final: (x, io) => { const op = x.mac_create!(x.aes_key_create!(io, 16, 0), 49, 0); return (at) => x.mac_final!(op, at('out', io)); },
    drbg_instantiate: (x, io) => { const d = x.drbg_create!(4); return (at) => x.drbg_instantiate!(d, at('entropy', io), 32, at('nonce', io + 32), 16, at('pers', io + 64), 16); },
    drbg_reseed: (x, io) => {
      const d = x.drbg_create!(4);
      x.drbg_instantiate!(d, io, 32, io + 32, 16, 0, 0);
      return (at) => x.drbg_reseed!(d, at('entropy', io), 32, at('addin', io + 64), 16);
    },
    drbg_generate: (x, io) => {
      const d = x.drbg_create!(4);
      x.drbg_instantiate!(d, io, 32, io + 32, 16, 0, 0);
      return (at) => x.drbg_generate!(d, at('out', io + 128), 16, at('addin', io + 64), 16);
    },
    // sk = d = 0x0101…01, a valid P-256 key; the pk check case gets its own valid key.
    ec_public_key: (x, io) => { new Uint8Array(x.memory.buffer).fill(1, io, io + 64); return (at) => x.ec_public_key!(256, at('sk', io), at('out', io + 128), 0); },
    ec_public_key_check: (x, io) => { new Uint8Array(x.memory.buffer).fill(1, io, io + 32); x.ec_public_key!(256, io, io + 128, 0); return (at) => x.ec_public_key_check!(256, at('pk', io + 128), 65); },
    ec_sign: (x, io) => { new Uint8Array(x.memory.buffer).fill(1, io, io + 64); return (at) => x.ec_sign!(256, 4, at('sk', io), at('digest', io + 32), 32, at('extra', io + 64), 16, at('out', io + 128)); },
    ec_sign_with_k: (x, io) => { new Uint8Array(x.memory.buffer).fill(1, io, io + 96); return (at) => x.ec_sign_with_k!(256, at('sk', io), at('digest', io + 32), 32, at('k', io + 64), at('out', io + 128)); },
    ec_verify: (x, io) => {
      new Uint8Array(x.memory.buffer).fill(1, io, io + 128);
      x.ec_public_key!(256, io, io + 128, 0);
      return (at) => x.ec_verify!(256, at('pk', io + 128), 65, at('digest', io + 32), 32, at('sig', io + 64));
    },
  };

  // What a range outside memory gets: ERR_LENGTH, no handle, or nothing from a void export.
  const refusal = (name: string, returns: string) => (returns === 'void' ? undefined : name.endsWith('_create') ? 0 : -2);

  it('the out-of-range table covers every export that takes a pointer', () => {
    expect(Object.keys(RANGE_CASES).sort()).toEqual([...new Set(exportPointers.map((e) => e.name))].sort());
  });

  for (const build of CORE_BUILDS) {
    it(`${build}: every pointer of every export, its range run past the end of memory, is refused before anything is read or written, and the instance still works`, () => {
      const mod = new WebAssembly.Module(wasm(build));
      const problems: string[] = [];
      for (const { name, param, returns } of exportPointers) {
        const x = new WebAssembly.Instance(mod, {}).exports as unknown as Raw;
        const io = x.io_ptr!();
        new Uint8Array(x.memory.buffer).set(nodeCrypto.randomBytes(256), io);
        const call = RANGE_CASES[name]!(x, io);
        let used = false;
        const at: At = (p, fine) => (p === param ? ((used = true), x.memory.buffer.byteLength - 4) : fine);
        const before = new Uint8Array(x.memory.buffer).slice();
        const inUse = x.mem_in_use!();
        const where = `${name}(${param})`;
        let result: number | undefined;
        try {
          result = call(at);
        } catch (e) {
          problems.push(`${where}: ${(e as Error).message}`);
          continue;
        }
        if (!used) problems.push(`${where}: the table's call does not pass ${param}`);
        const expected = refusal(name, returns);
        if (result !== expected) problems.push(`${where}: returned ${result}, expected ${expected}`);
        const after = new Uint8Array(x.memory.buffer);
        const changed = after.length === before.length ? after.findIndex((b, i) => b !== before[i]) : before.length;
        if (changed >= 0) problems.push(`${where}: memory changed at ${changed}`);
        if (x.mem_in_use!() !== inUse) problems.push(`${where}: mem_in_use ${inUse} -> ${x.mem_in_use!()}`);
        try {
          new Uint8Array(x.memory.buffer).set(Buffer.from('abc'), io);
          const n = x.hash_oneshot!(4, io, 3, io);
          const digest = Buffer.from(new Uint8Array(x.memory.buffer, io, 32)).toString('hex');
          if (n !== 32 || digest !== 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad') problems.push(`${where}: SHA-256("abc") afterwards gave ${n} ${digest}`);
          x.ctx_free!(x.hash_create!(4));
          const p = x.mem_alloc!(100);
          x.mem_free!(p, 100);
          if (x.mem_in_use!() !== inUse) problems.push(`${where}: mem_in_use after a context and a block came and went: ${x.mem_in_use!()}, not ${inUse}`);
        } catch (e) {
          problems.push(`${where}: the instance is broken afterwards: ${(e as Error).message}`);
        }
      }
      // The same calls with every range inside memory go through: each
      // refusal above was for the range under test, not a flaw of the setup.
      for (const name of Object.keys(RANGE_CASES)) {
        const x = new WebAssembly.Instance(mod, {}).exports as unknown as Raw;
        const io = x.io_ptr!();
        new Uint8Array(x.memory.buffer).set(nodeCrypto.randomBytes(256), io);
        try {
          const result = RANGE_CASES[name]!(x, io)((_p, fine) => fine);
          if (result === refusal(name, '')) problems.push(`${name} in range: returned ${result}`);
        } catch (e) {
          problems.push(`${name} in range: ${(e as Error).message}`);
        }
      }
      expect(problems).toEqual([]);
      expect(exportPointers.length).toBeGreaterThan(50);
    });

    // docs/wasm-abi-aes.md: an operation keeps its key's address; once the key
    // is freed its round keys are zeros, which must not be used to encrypt.
    it(`${build}: an operation whose key context was released is ERR_CONTEXT on every call`, () => {
      const x = raw(build) as unknown as Raw;
      const io = x.io_ptr!();
      new Uint8Array(x.memory.buffer).set(nodeCrypto.randomBytes(64), io);
      const k = x.aes_key_create!(io, 16, 0);
      const ops = {
        gcm: x.gcm_create!(k, io, 12, 16, 0, 0), ccm: x.ccm_create!(k, io, 13, 16, 0n, 16n, 0, 0),
        cbc: x.cbc_create!(k, io, 24, 0, 0), mac: x.mac_create!(k, 49, 0), gcmDecrypt: x.gcm_create!(k, io, 12, 16, 1, 0),
      };
      const calls = (): Record<string, number> => ({
        gcm_aad: x.gcm_aad!(ops.gcm, io, 16), gcm_update: x.gcm_update!(ops.gcm, io, io + 64, 16), gcm_final: x.gcm_final!(ops.gcm, io + 128),
        gcm_verify: x.gcm_verify!(ops.gcmDecrypt, io), ccm_update: x.ccm_update!(ops.ccm, io, io + 64, 16), ccm_final: x.ccm_final!(ops.ccm, io + 128),
        cbc_update: x.cbc_update!(ops.cbc, io, io + 64, 16), cbc_final: x.cbc_final!(ops.cbc, io + 128),
        mac_update: x.mac_update!(ops.mac, io, 16), mac_final: x.mac_final!(ops.mac, io + 128),
      });
      x.ctx_free!(k);
      const out = new Uint8Array(x.memory.buffer).slice(io + 64, io + 160);
      expect(calls()).toEqual({ gcm_aad: -3, gcm_update: -3, gcm_final: -3, gcm_verify: -3, ccm_update: -3, ccm_final: -3, cbc_update: -3, cbc_final: -3, mac_update: -3, mac_final: -3 });
      expect(new Uint8Array(x.memory.buffer).slice(io + 64, io + 160), 'nothing written').toEqual(out);
      Object.values(ops).forEach((op) => x.ctx_free!(op));
      expect(x.mem_in_use!()).toBe(0);
    });

    // Outputs go to the I/O window or the heap. The module's static data
    // starts right after the window (the SHA-2 initial values among it): an
    // output range there would change every later digest.
    it(`${build}: every output of every export aimed at the module's static data, or across the start or the end of the I/O window, is refused and nothing changes`, () => {
      const mod = new WebAssembly.Module(wasm(build));
      const problems: string[] = [];
      const outputs = exportPointers.filter((e) => e.param === 'dst' || e.param === 'out' || e.name === 'zeroize');
      expect(outputs.map((e) => e.name).sort()).toEqual(['aes_decrypt_blocks', 'aes_encrypt_blocks', 'cbc_final', 'cbc_update', 'ccm_update', 'ccm_final', 'drbg_generate', 'ec_public_key', 'ec_sign', 'ec_sign_with_k', 'gcm_final', 'gcm_update', 'hash_final', 'hash_many', 'hash_oneshot', 'hmac_final', 'hmac_oneshot', 'mac_final', 'zeroize'].sort());
      for (const { name, param, returns } of outputs) {
        for (const target of ['after the window', 'across its end', 'across its start']) {
          const x = new WebAssembly.Instance(mod, {}).exports as unknown as Raw;
          const io = x.io_ptr!();
          new Uint8Array(x.memory.buffer).set(nodeCrypto.randomBytes(256), io);
          const call = RANGE_CASES[name]!(x, io);
          const at: At = (p, fine) => (p !== param ? fine : target === 'across its start' ? io - 8 : io + x.io_size!() - (target === 'after the window' ? 0 : 8));
          const before = new Uint8Array(x.memory.buffer).slice();
          const where = `${name}(${param}) ${target}`;
          const result = call(at);
          const expected = returns === 'void' ? undefined : -2;
          if (result !== expected) problems.push(`${where}: returned ${result}, expected ${expected}`);
          const after = new Uint8Array(x.memory.buffer);
          const changed = after.length === before.length ? after.findIndex((b, i) => b !== before[i]) : before.length;
          if (changed >= 0) problems.push(`${where}: memory changed at ${changed} (the window ends at ${io + x.io_size!()})`);
          new Uint8Array(x.memory.buffer).set(Buffer.from('abc'), io);
          x.hash_oneshot!(4, io, 3, io);
          const digest = Buffer.from(new Uint8Array(x.memory.buffer, io, 32)).toString('hex');
          if (digest !== 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad') problems.push(`${where}: SHA-256("abc") afterwards gave ${digest}`);
        }
      }
      expect(problems).toEqual([]);
    });

    // Between the static data and the first block lies the allocator's own root (its free lists):
    // an output there broke every later allocation (a block handed out in static memory, or a trap).
    it(`${build}: no output lands between the end of the I/O window and the first block (static data, then the allocator's root)`, () => {
      const mod = new WebAssembly.Module(wasm(build));
      const probe = new WebAssembly.Instance(mod, {}).exports as unknown as Raw;
      // The first block an instance hands out starts where blocks begin (16 bytes of block header before it).
      const floor = probe.mem_alloc!(1) - 16;
      const x = new WebAssembly.Instance(mod, {}).exports as unknown as Raw;
      const io = x.io_ptr!(), end = io + x.io_size!();
      new Uint8Array(x.memory.buffer).set(Buffer.from('abc'), io);
      const before = new Uint8Array(x.memory.buffer).slice(end, floor);
      const accepted: number[] = [];
      for (let a = end; a + 32 <= floor; a += 16) if (x.hash_oneshot!(4, io, 3, a) !== -2) accepted.push(a);
      expect(accepted.slice(0, 4), `of ${(floor - end) / 16} addresses`).toEqual([]);
      expect(Buffer.from(new Uint8Array(x.memory.buffer).slice(end, floor)).equals(Buffer.from(before)), 'nothing there changed').toBe(true);
      const p = x.mem_alloc!(64);
      expect(p, 'blocks still come from the heap').toBeGreaterThanOrEqual(floor);
      x.mem_free!(p, 64);
      expect(x.hash_oneshot!(4, io, 3, floor + 16), 'a block\'s own memory is writable').toBe(32);
    });

    // docs/wasm-abi.md: a tag written must lie in the I/O window or the heap, a tag
    // compared only in memory; docs/wasm-abi-aes.md: gcm_final and ccm_final write tagLen bytes.
    it(`${build}: gcm_final and ccm_final write the tag (4 to 16 bytes) and nothing after it; gcm_verify and ccm_verify read the tag to compare in the static data too`, () => {
      const x = raw(build) as unknown as Raw;
      const io = x.io_ptr!(), end = io + x.io_size!();
      const mem = () => new Uint8Array(x.memory.buffer);
      const key = nodeCrypto.randomBytes(16), nonce = nodeCrypto.randomBytes(13);
      mem().set(key, io);
      mem().set(nonce, io + 32);
      const k = x.aes_key_create!(io, 16, 0);
      const modes = [
        ['gcm', [4, 8, 12, 13, 14, 15, 16], (t: number, d: number) => x.gcm_create!(k, io + 32, 12, t, d, 0), x.gcm_final!, x.gcm_verify!],
        ['ccm', [4, 6, 8, 10, 12, 14, 16], (t: number, d: number) => x.ccm_create!(k, io + 32, 13, t, 0n, 0n, d, 0), x.ccm_final!, x.ccm_verify!],
      ] as const;
      for (const [mode, tags, create, final, verify] of modes) {
        for (const t of tags) {
          const nc = nodeCrypto.createCipheriv(`aes-128-${mode}` as 'aes-128-gcm', key, nonce.subarray(0, mode === 'gcm' ? 12 : 13), { authTagLength: t });
          nc.update(Buffer.alloc(0));
          nc.final();
          const expected = nc.getAuthTag();
          mem().fill(0xee, io + 256, io + 288);
          expect(final(create(t, 0), io + 256), `${mode} tag ${t}`).toBe(t);
          expect(Buffer.from(mem().slice(io + 256, io + 256 + t)).equals(expected), `${mode} tag ${t}: node:crypto's`).toBe(true);
          expect(mem().slice(io + 256 + t, io + 288).every((b) => b === 0xee), `${mode} tag ${t}: nothing written after it`).toBe(true);
          // The expected tag at the start of the static data (restored after: it is the module's own).
          const kept = mem().slice(end, end + 16);
          for (const flip of [0, 1]) {
            mem().set(expected, end);
            mem()[end + t - 1]! ^= flip;
            expect(verify(create(t, 1), end), `${mode} tag ${t} in static data, ${flip ? 'last bit flipped' : 'as computed'}`).toBe(flip ? -5 : 0);
          }
          mem().set(kept, end);
        }
      }
    });

    it(`${build}: decrypt and scratch take any non-zero value as 1 (docs/wasm-abi-aes.md), in gcm_create, ccm_create and cbc_create`, () => {
      const x = raw(build) as unknown as Raw;
      const io = x.io_ptr!();
      const mem = () => new Uint8Array(x.memory.buffer);
      const key = nodeCrypto.randomBytes(16), iv = nodeCrypto.randomBytes(16), ct = nodeCrypto.randomBytes(32);
      mem().set(key, io);
      mem().set(iv, io + 32);
      mem().set(ct, io + 64);
      const k = x.aes_key_create!(io, 16, 0);
      const creates = {
        gcm: (d: number, s: number) => x.gcm_create!(k, io + 32, 12, 16, d, s),
        ccm: (d: number, s: number) => x.ccm_create!(k, io + 32, 13, 16, 0n, 0n, d, s),
        cbc: (d: number, s: number) => x.cbc_create!(k, io + 32, 13, d, s),
      };
      const base = x.mem_in_use!();
      for (const flag of [2, 0x100, 0x80000000]) {
        for (const [mode, create] of Object.entries(creates)) {
          const slot = create(0, 1);
          expect(create(0, flag), `${mode}: scratch ${flag} is the one-shot slot`).toBe(slot);
          expect(x.mem_in_use!(), `${mode}: scratch ${flag} allocates nothing`).toBe(base);
        }
        // gcm and ccm: the tag of an encryption verifies on an operation created with decrypt = flag, which refuses final.
        for (const [mode, final, verify] of [['gcm', x.gcm_final!, x.gcm_verify!], ['ccm', x.ccm_final!, x.ccm_verify!]] as const) {
          const [enc, dec, dec2] = [creates[mode](0, 0), creates[mode](flag, 0), creates[mode](flag, 0)];
          expect(final(enc, io + 256)).toBe(16);
          expect(final(dec, io + 512), `${mode}: final on decrypt = ${flag}`).toBe(-7);
          expect(verify(dec2, io + 256), `${mode}: verify on decrypt = ${flag}`).toBe(0);
          [enc, dec, dec2].forEach((op) => x.ctx_free!(op));
        }
        const op = creates.cbc(flag, 0);
        expect(x.cbc_update!(op, io + 64, io + 128, 32), `cbc: decrypt = ${flag} holds the last block back`).toBe(16);
        expect(x.cbc_final!(op, io + 144)).toBe(16);
        x.ctx_free!(op);
        const d = nodeCrypto.createDecipheriv('aes-128-cbc', key, iv).setAutoPadding(false);
        expect(Buffer.from(mem().slice(io + 128, io + 160)).equals(Buffer.concat([d.update(ct), d.final()])), `cbc: decrypt = ${flag} decrypts`).toBe(true);
      }
    });

    it(`${build}: cbc_update checks what it writes, which bytes pending from an earlier call make longer than len; a refusal changes nothing`, () => {
      const mod = new WebAssembly.Module(wasm(build));
      const key = nodeCrypto.randomBytes(16), iv = nodeCrypto.randomBytes(16), data = nodeCrypto.randomBytes(32);
      for (const decrypt of [0, 1]) {
        const x = new WebAssembly.Instance(mod, {}).exports as unknown as Raw;
        const io = x.io_ptr!();
        const mem = () => new Uint8Array(x.memory.buffer);
        mem().set(key, io);
        mem().set(iv, io + 16);
        mem().set(data, io + 64);
        const op = x.cbc_create!(x.aes_key_create!(io, 16, 0), io + 16, 13, decrypt, 0);
        let n = x.cbc_update!(op, io + 64, io + 128, 8);
        const before = mem().slice();
        const end = x.memory.buffer.byteLength;
        // 8 pending + 8 new: a block of 16 (encryption) would go to end - 8.
        const refused = x.cbc_update!(op, io + 72, end - 8, decrypt ? 16 : 8);
        expect(refused, `${decrypt ? 'decrypt' : 'encrypt'}`).toBe(-2);
        expect(mem().findIndex((b, i) => b !== before[i]), 'memory unchanged').toBe(-1);
        n += x.cbc_update!(op, io + 72, io + 128 + n, 24);
        n += x.cbc_final!(op, io + 128 + n);
        const cipher = decrypt ? nodeCrypto.createDecipheriv('aes-128-cbc', key, iv) : nodeCrypto.createCipheriv('aes-128-cbc', key, iv);
        cipher.setAutoPadding(false);
        const expected = Buffer.concat([cipher.update(data), cipher.final()]);
        expect(Buffer.from(mem().subarray(io + 128, io + 128 + n)).toString('hex'), 'a retry with room gives the right result').toBe(expected.toString('hex'));
      }
    });

    // The checks use each range's real length: one that ends exactly at the
    // end of memory is accepted (a fresh instance each: the tail it writes
    // holds the allocator's bookkeeping).
    it(`${build}: fixed-size outputs that end exactly at the end of memory are accepted`, () => {
      const mod = new WebAssembly.Module(wasm(build));
      const cases: [string, (x: Raw, io: number, end: number) => number][] = [
        ['hash_final SHA-384', (x, _io, end) => x.hash_final!(x.hash_create!(5), end - 48)],
        ['hmac_final SHA-256', (x, io, end) => x.hmac_final!(x.hmac_create!(4, io, 16), end - 32)],
        ['gcm_final tag 12', (x, io, end) => x.gcm_final!(x.gcm_create!(x.aes_key_create!(io, 16, 0), io, 12, 12, 0, 0), end - 12)],
        ['ccm_final tag 8', (x, io, end) => x.ccm_final!(x.ccm_create!(x.aes_key_create!(io, 16, 0), io, 13, 8, 0n, 0n, 0, 0), end - 8)],
        ['mac_final', (x, io, end) => x.mac_final!(x.mac_create!(x.aes_key_create!(io, 16, 0), 49, 0), end - 16)],
        ['cbc_final', (x, io, end) => x.cbc_final!(x.cbc_create!(x.aes_key_create!(io, 16, 0), io, 24, 0, 0), end - 16)],
        ['ec_public_key compressed', (x, io, end) => x.ec_public_key!(256, io, end - 33, 1)],
        ['ec_public_key uncompressed', (x, io, end) => x.ec_public_key!(256, io, end - 65, 0)],
        ['ec_sign', (x, io, end) => x.ec_sign!(256, 4, io, io, 32, 0, 0, end - 64)],
      ];
      for (const [what, f] of cases) {
        const x = new WebAssembly.Instance(mod, {}).exports as unknown as Raw;
        const io = x.io_ptr!();
        new Uint8Array(x.memory.buffer).fill(1, io, io + 64);
        x.ec_precompute!(256); // before `end`: the tables grow memory
        expect(f(x, io, x.memory.buffer.byteLength), what).toBeGreaterThan(0);
      }
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
    const size = new DataView(c.mem().buffer).getUint16(ctx + 4, true); // [kind u32][size u16][seal u16]
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
    const x = core().x;
    const z = x.mem_alloc(0);
    expect(x.mem_in_use() - base, 'a block of 0 bytes counted as 1 (docs/wasm-abi.md)').toBe(1);
    x.mem_free(z, 0);
    expect(x.mem_in_use(), 'and released by mem_free(ptr, 0)').toBe(base);
  });

  // CBC in place too (docs/wasm-abi-aes.md: dst = src while every call passes whole blocks):
  // decryption holds its last block back, so its output lags its input by 16 bytes.
  for (const build of CORE_BUILDS) {
    it(`${build}: CBC in place (dst = src) in whole blocks, both directions and every padding, equals node:crypto`, () => {
      initSync({ build });
      const c = core(), x = c.x;
      const paddings = { 13: false, 24: true } as const;
      for (const [padding, auto] of Object.entries(paddings)) {
        for (const blocks of [1, 2, 3, 9, 20]) {
          const key = nodeCrypto.randomBytes(blocks % 2 ? 32 : 16), iv = nodeCrypto.randomBytes(16);
          const pt = nodeCrypto.randomBytes(blocks * 16 - (auto ? 5 : 0));
          const enc = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-cbc' : 'aes-256-cbc', key, iv).setAutoPadding(auto);
          const ct = Buffer.concat([enc.update(pt), enc.final()]);
          const buf = c.alloc(ct.length + 16);
          // Whole blocks in pieces of 1, 2 and 3 blocks. `piece`: each piece written to the same place
          // and its output read from there (dst = src); otherwise the output packed behind the input.
          const run = (input: Uint8Array, decrypt: number, piece: boolean): Buffer => {
            c.mem().set(key, c.io);
            c.mem().set(iv, c.io + 32);
            const k = x.aes_key_create(c.io, key.length, 0);
            const op = x.cbc_create(k, c.io + 32, Number(padding), decrypt, 0);
            const outs: Buffer[] = [];
            let out = 0;
            if (!piece) c.mem().set(input, buf);
            for (let off = 0, i = 0; off < input.length; i++) {
              const n = Math.min(input.length - off, 16 * (1 + (i % 3)));
              if (piece) {
                c.mem().set(input.subarray(off, off + n), buf);
                outs.push(Buffer.from(c.read(buf, x.cbc_update(op, buf, buf, n))));
              } else out += x.cbc_update(op, buf + off, buf + out, n);
              off += n;
            }
            const last = x.cbc_final(op, buf + out);
            outs.push(Buffer.from(c.read(buf, out + last)));
            x.ctx_free(op);
            x.ctx_free(k);
            return Buffer.concat(outs);
          };
          for (const piece of [true, false]) {
            const how = `padding ${padding}, ${blocks} blocks, ${piece ? 'dst = src' : 'packed'}`;
            expect(run(ct, 1, piece).equals(pt), `decrypt, ${how}`).toBe(true);
            if (!auto) expect(run(pt, 0, piece).equals(ct), `encrypt, ${how}`).toBe(true);
          }
          c.free(buf, ct.length + 16);
        }
      }
    });
  }

  // The ABI lets ccm_update and gcm_update write over their input (docs/wasm-abi-aes.md: dst may
  // equal src); the facade never does, so the raw calls check it: the SIMD builds encrypt CCM's
  // counter block and MAC the plaintext of the same block side by side, and GCM decryption must
  // hash each piece of ciphertext before its plaintext overwrites it.
  type CoreExports = ReturnType<typeof core>['x'];
  const inPlace = {
    ccm: {
      lengths: [5, 16, 33, 160, 1000], pieces: [1, 16, 7, 48, 3],
      // No AAD: its length is declared at create, and the in-place path is the payload's.
      nonce: (len: number) => 13 - (len % 7), aad: () => 0,
      cipher: (key: Buffer, nonce: Buffer, aad: Buffer, len: number) => {
        const nc = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-ccm' : 'aes-256-ccm', key, nonce, { authTagLength: 16 });
        nc.setAAD(aad, { plaintextLength: len });
        return nc;
      },
      create: (x: CoreExports, k: number, nonce: number, nonceLen: number, _aad: number, _aadLen: number, len: number, decrypt: number) =>
        x.ccm_create(k, nonce, nonceLen, 16, 0n, BigInt(len), decrypt, 0),
      update: (x: CoreExports) => x.ccm_update, verify: (x: CoreExports) => x.ccm_verify, final: (x: CoreExports) => x.ccm_final,
    },
    gcm: {
      lengths: [5, 16, 33, 160, 1000, 9000], pieces: [1, 16, 7, 4100, 48, 3],
      nonce: (len: number) => (len % 3 ? 12 : 16), aad: (len: number) => len % 37,
      cipher: (key: Buffer, nonce: Buffer, aad: Buffer) => {
        const nc = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, nonce);
        nc.setAAD(aad);
        return nc;
      },
      create: (x: CoreExports, k: number, nonce: number, nonceLen: number, aad: number, aadLen: number, _len: number, decrypt: number) => {
        const op = x.gcm_create(k, nonce, nonceLen, 16, decrypt, 0);
        expect(x.gcm_aad(op, aad, aadLen)).toBe(0);
        return op;
      },
      update: (x: CoreExports) => x.gcm_update, verify: (x: CoreExports) => x.gcm_verify, final: (x: CoreExports) => x.gcm_final,
    },
  };
  for (const build of CORE_BUILDS) {
    for (const [mode, m] of Object.entries(inPlace)) {
      it(`${build}: ${mode.toUpperCase()} in place (dst = src) in odd pieces, with ${mode === 'gcm' ? 'AAD and 12- and 16-byte nonces' : '7- to 13-byte nonces'}, both directions, equals node:crypto`, () => {
        initSync({ build });
        const c = core(), x = c.x;
        for (const len of m.lengths) {
          const key = nodeCrypto.randomBytes(len % 2 ? 32 : 16), nonce = nodeCrypto.randomBytes(m.nonce(len)), aad = nodeCrypto.randomBytes(m.aad(len));
          const pt = nodeCrypto.randomBytes(len);
          const nc = m.cipher(key, nonce, aad, len);
          const expected = Buffer.concat([nc.update(pt), nc.final(), nc.getAuthTag()]);
          const buf = c.alloc(len + 16);
          const run = (input: Uint8Array, decrypt: number): Buffer => {
            c.mem().set(key, c.io);
            c.mem().set(nonce, c.io + 32);
            c.mem().set(aad, c.io + 64);
            const k = x.aes_key_create(c.io, key.length, 0);
            const op = m.create(x, k, c.io + 32, nonce.length, c.io + 64, aad.length, len, decrypt);
            c.mem().set(input, buf);
            for (let off = 0, i = 0; off < len; i++) {
              const n = Math.min(len - off, m.pieces[i % m.pieces.length]!);
              expect(m.update(x)(op, buf + off, buf + off, n)).toBe(n);
              off += n;
            }
            c.mem().set(expected.subarray(len), c.io + 128);
            const status = decrypt ? m.verify(x)(op, c.io + 128) : m.final(x)(op, buf + len);
            x.ctx_free(op);
            x.ctx_free(k);
            expect(status, `${decrypt ? 'decrypt' : 'encrypt'} ${len}: status`).toBe(decrypt ? 0 : 16);
            return Buffer.from(c.read(buf, decrypt ? len : len + 16));
          };
          expect(run(pt, 0).equals(expected), `encrypt ${len}`).toBe(true);
          expect(run(expected.subarray(0, len), 1).equals(pt), `decrypt ${len}`).toBe(true);
          c.free(buf, len + 16);
        }
      });
    }
  }

  // In place while a block is held back, a call may end on a partial block:
  // those bytes become the pending input (not 16 read past the call's own),
  // and the next call, out of place, completes them.
  for (const build of CORE_BUILDS) {
    it(`${build}: CBC decryption in place that ends on a partial block keeps just its bytes pending, equals node:crypto`, () => {
      const x = raw(build);
      const io = x.io_ptr!();
      const mem = () => new Uint8Array(x.memory.buffer);
      const key = nodeCrypto.randomBytes(16), iv = nodeCrypto.randomBytes(16), pt = nodeCrypto.randomBytes(64);
      const enc = nodeCrypto.createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false);
      const ct = Buffer.concat([enc.update(pt), enc.final()]);
      mem().set(key, io);
      mem().set(iv, io + 16);
      const op = x.cbc_create!(x.aes_key_create!(io, 16, 0), io + 16, 13, 1, 0);
      const buf = io + 256;
      mem().set(ct.subarray(0, 16), buf);
      expect(x.cbc_update!(op, buf, buf, 16), 'the first block is held back').toBe(0);
      // 20 bytes in place: the held block and the first 16 come out, 4 bytes stay pending.
      mem().set(ct.subarray(16, 36), buf);
      mem().fill(0xee, buf + 20, buf + 48);
      expect(x.cbc_update!(op, buf, buf, 20)).toBe(32);
      const out = Buffer.from(mem().slice(buf, buf + 32));
      // The other 28 bytes elsewhere: the 4 pending and 12 of them make the block that comes out; the last is held back for cbc_final.
      mem().set(ct.subarray(36), io + 1024);
      expect(x.cbc_update!(op, io + 1024, io + 2048, 28)).toBe(16);
      expect(x.cbc_final!(op, io + 2064)).toBe(16);
      expect(Buffer.concat([out, Buffer.from(mem().slice(io + 2048, io + 2080))]).toString('hex')).toBe(pt.toString('hex'));
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
      // Over empty data nothing passes through the window: the MAC must not stay there either.
      for (const k of [key, aesKey(key)]) {
        expect(cmac(k, new Uint8Array(0))).toHaveLength(16);
        expect(clear(), `${build}: cmac of empty data`).toBe(true);
      }
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
    // Compared in parts: a difference in any one of them, the first or the last, decides.
    for (const i of [0, 32767, 32768, 39999]) {
      const b = Uint8Array.from(big);
      b[i]! ^= 0x80;
      expect(constantTimeEqual(big, b), `difference at ${i}`).toBe(false);
    }
    // Longer than the core's largest block (256 MiB): compared all the same, with the core's memory as it was.
    const huge = new Uint8Array(2 ** 28 + 1), other = new Uint8Array(2 ** 28 + 1);
    const memory = coreMemoryStats().memoryBytes, inUse = coreMemoryStats().inUseBytes;
    expect(constantTimeEqual(huge, other)).toBe(true);
    other[2 ** 28] = 1;
    expect(constantTimeEqual(huge, other)).toBe(false);
    expect(coreMemoryStats().memoryBytes, 'no block allocated').toBe(memory);
    // An HMAC key that long is its digest (RFC 2104), taken through the window: no block holds it.
    huge.fill(0x36, 0, 1000);
    const message = nodeCrypto.randomBytes(100);
    for (const name of ['SHA-256', 'SHA-512'] as const) {
      const want = nodeCrypto.createHmac(name.replace('-', '').toLowerCase(), huge).update(message).digest();
      expect(Buffer.from(hmac(name, huge, message)).equals(want), `${name} one-shot`).toBe(true);
      expect(Buffer.from(createHmac(name, huge).update(message).digest()).equals(want), `${name} streaming`).toBe(true);
    }
    const longKey = nodeCrypto.randomBytes(70_000);
    expect(Buffer.from(hmac('SHA-384', longKey, message)).equals(nodeCrypto.createHmac('sha384', longKey).update(message).digest()), 'a key longer than the window').toBe(true);
    expect(coreMemoryStats().inUseBytes, 'nothing left allocated').toBe(inUse);
  }, 30_000);

  it('destroy() zeroizes and later use is a StateError', () => {
    const h = createHmac('SHA-256', new Uint8Array(20).fill(7));
    h.update(new Uint8Array(10));
    h.destroy();
    expect(() => h.digest()).toThrow(StateError);
    // Refused by the facade, naming the object, before the core is called or an entropy source drawn from.
    expect(() => h.update(new Uint8Array(1))).toThrow(/^hmac already finished or destroyed$/);
    let draws = 0;
    const d = new HmacDrbg({ predictionResistance: true, entropy: (n) => (draws++, nodeCrypto.randomBytes(n)) });
    d.destroy();
    expect(() => d.generate(8)).toThrow(/^HMAC_DRBG already finished or destroyed$/);
    expect(draws, 'entropy input and nonce, nothing after destroy()').toBe(2);
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

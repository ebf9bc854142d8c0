// The loader's promises that the other files cannot reach: they load every
// build before these paths matter. Each case gets a fresh loader
// (vi.resetModules) where it needs an instantiation still under way, a
// failed one, or a stubbed WebAssembly API (found by mutation review).
import { describe, it, expect, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createHash, coreMemoryStats, constantTimeEqual, sha256 } from '../../src/index.ts';
import { core } from '../../src/core/loader.ts';
import { KNOWN_ANSWERS, selftest } from '../../src/core/selftest.ts';

type Loader = typeof import('../../src/core/loader.ts');

/** A loader with no instance, no choice and nothing decoded yet. */
async function freshLoader(): Promise<Loader> {
  vi.resetModules();
  return import('../../src/core/loader.ts');
}

/** Replaces `WebAssembly[key]` for the duration of `fn`. */
async function stubbed<K extends 'instantiate' | 'Instance' | 'Module' | 'validate'>(key: K, value: unknown, fn: () => unknown): Promise<void> {
  const real = WebAssembly[key];
  (WebAssembly as Record<K, unknown>)[key] = value;
  try {
    await fn();
  } finally {
    (WebAssembly as Record<K, unknown>)[key] = real;
  }
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
/** Collects garbage and lets finalizers run until `done()` or about a second has passed. */
async function collect(done: () => boolean, rounds = 100): Promise<void> {
  const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // A WeakRef's deref() keeps its target until the current job ends: gc() runs in a later task.
  for (let i = 0; i < rounds; i++) {
    await tick(0);
    gc();
    await tick(10);
    if (done()) return;
  }
}

/**
 * A module of a few bytes that is no senv core: `abi_version` (1) and `features` (0) exported as
 * functions or as globals, and with `imported` a memory imported from `env`.
 */
function namedAlike(kind: 'function' | 'global', imported = false): WebAssembly.Module {
  const section = (id: number, body: number[]) => [id, body.length, ...body];
  const name = (s: string) => [s.length, ...new TextEncoder().encode(s)];
  const k = kind === 'function' ? 0 : 3;
  return new WebAssembly.Module(Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...(kind === 'function' ? section(1, [1, 0x60, 0, 1, 0x7f]) : []),
    ...(imported ? section(2, [1, ...name('env'), ...name('m'), 2, 0, 1]) : []),
    ...(kind === 'function' ? section(3, [2, 0, 0]) : section(6, [2, 0x7f, 0, 0x41, 1, 0x0b, 0x7f, 0, 0x41, 0, 0x0b])),
    ...section(7, [2, ...name('abi_version'), k, 0, ...name('features'), k, 1]),
    ...(kind === 'function' ? section(10, [2, 4, 0, 0x41, 1, 0x0b, 4, 0, 0x41, 0, 0x0b]) : []),
  ]));
}

describe('the loader (paths the other files never take)', () => {
  it('a call before any init() loads the best build this runtime validates', async () => {
    const L = await freshLoader();
    expect(L.core().info.build).toBe(L.coreBuilds()[0]);
    vi.resetModules();
  });

  it('an init() still instantiating when a later initSync() or init() chose another build does not take over', async () => {
    const L = await freshLoader();
    const late = L.init({ build: 'simd' });
    expect(L.initSync({ build: 'scalar' }).build).toBe('scalar');
    expect((await late).build, 'the init() still resolves with its own build').toBe('simd');
    expect(L.core().info.build).toBe('scalar');

    // Two init() calls under way: the later one's build stands, whichever finishes first.
    const L2 = await freshLoader();
    const [first, second] = [L2.init({ build: 'relaxed' }), L2.init({ build: 'scalar' })];
    await Promise.all([first, second]);
    expect(L2.core().info.build).toBe('scalar');
    vi.resetModules();
  });

  it('an initSync() that fails is no choice of build: an init() under way still takes over', async () => {
    const L = await freshLoader();
    const p = L.init({ build: 'scalar' });
    await stubbed('Module', function refused() {
      throw new Error('synchronous compile refused');
    }, () => expect(() => L.initSync({ build: 'simd' })).toThrow(/await init\(\)/));
    expect((await p).build).toBe('scalar');
    expect(L.core().info.build).toBe('scalar');
  });

  it('one instance per build: concurrent, repeated, sync and async loads share it, instantiated once; a failed instantiation is not kept', async () => {
    const L = await freshLoader();
    const real = WebAssembly.instantiate;
    let instantiations = 0;
    await stubbed('instantiate', (...args: Parameters<typeof real>) => (instantiations++, real(...args)), async () => {
      const [a, b] = await Promise.all([L.init({ build: 'scalar' }), L.init({ build: 'scalar' })]);
      expect(a).toBe(b);
      expect(await L.init({ build: 'scalar' })).toBe(a);
      expect(L.initSync({ build: 'scalar' })).toBe(a);
      expect(instantiations, 'scalar instantiated once').toBe(1);
      // An initSync() of the build an init() is instantiating: that instance stays the one.
      const pending = L.init({ build: 'simd' });
      const sync = L.initSync({ build: 'simd' });
      expect(await pending).toBe(sync);
      expect(L.initSync({ build: 'simd' })).toBe(sync);
      const relaxed = L.initSync({ build: 'relaxed' });
      expect(L.initSync({ build: 'relaxed' }), 'initSync twice').toBe(relaxed);
    });
    // An instantiation that failed is not kept: the next init() tries again.
    const L2 = await freshLoader();
    await stubbed('instantiate', () => Promise.reject(new Error('instantiation refused')), async () => {
      await expect(L2.init({ build: 'scalar' })).rejects.toThrow('instantiation refused');
    });
    expect((await L2.init({ build: 'scalar' })).build).toBe('scalar');
    vi.resetModules();
  });

  it('refuses what it cannot use: a core of another ABI version, a build the runtime does not validate; a refused synchronous compile says to await init()', async () => {
    const L = await freshLoader();
    const RealInstance = WebAssembly.Instance;
    const withVersion2 = (x: WebAssembly.Exports) => ({ ...x, abi_version: () => 2 });
    await stubbed('Instance', function (m: WebAssembly.Module, i?: WebAssembly.Imports) {
      return { exports: withVersion2(new RealInstance(m, i).exports) };
    }, () => {
      expect(() => L.initSync({ build: 'scalar' })).toThrow(/^core ABI version 2, facade expects 1$/);
    });
    const real = WebAssembly.instantiate;
    await stubbed('instantiate', async (bytes: Uint8Array<ArrayBuffer>) => {
      const { instance } = await real(bytes, {});
      return { instance: { exports: withVersion2(instance.exports) } };
    }, async () => {
      await expect(L.init({ build: 'simd' })).rejects.toMatchObject({ name: 'CoreError', message: 'core ABI version 2, facade expects 1' });
    });

    // A build the runtime does not validate is refused by name; auto falls back.
    const L1 = await freshLoader();
    const { FEATURE_PROBES } = await import('../../src/core/feature-probes.ts');
    const validate = WebAssembly.validate;
    await stubbed('validate', (b: Uint8Array<ArrayBuffer>) => b !== FEATURE_PROBES.relaxed && validate(b), async () => {
      expect(L1.coreBuilds()).toEqual(['simd', 'scalar']);
      expect(() => L1.initSync({ build: 'relaxed' })).toThrow(/^this runtime does not support the 'relaxed' core build \(WebAssembly Relaxed SIMD\)$/);
      await expect(L1.init({ build: 'relaxed' })).rejects.toMatchObject({ name: 'CoreError' });
      expect(L1.initSync().build).toBe('simd');
    });
    // A runtime without SIMD at all: the SIMD build is refused naming SIMD (not Relaxed SIMD); auto takes the scalar one.
    const L0 = await freshLoader();
    const probes0 = (await import('../../src/core/feature-probes.ts')).FEATURE_PROBES;
    await stubbed('validate', (b: Uint8Array<ArrayBuffer>) => b !== probes0.relaxed && b !== probes0.simd && validate(b), () => {
      expect(L0.coreBuilds()).toEqual(['scalar']);
      expect(() => L0.initSync({ build: 'simd' })).toThrow(/^this runtime does not support the 'simd' core build \(WebAssembly SIMD\)$/);
      expect(L0.initSync().build).toBe('scalar');
    });
    // An unknown build is named only as far as it cannot carry a secret: a long string or a huge bigint by its type.
    expect(() => L1.initSync({ build: 'k'.repeat(64) as never })).toThrow(/^unknown core build \(got a string of 64 characters\): use 'auto', /);
    expect(() => L1.initSync({ build: 2n ** 100n as never })).toThrow(/^unknown core build \(got a bigint of more than 32 bits\): /);
    expect(() => L1.initSync({ build: 'fast' as never })).toThrow(/^unknown core build \(got a string of 4 characters\): use 'auto', 'relaxed', 'simd', 'scalar'$/);
    // A browser main thread refuses to compile a large module synchronously.
    const L2 = await freshLoader();
    await stubbed('Module', function () {
      throw new RangeError('WebAssembly.Module(): Buffer size is larger than 8MB');
    }, () => {
      expect(() => L2.initSync({ build: 'scalar' })).toThrow(/^synchronous WASM compilation failed \(WebAssembly\.Module\(\): Buffer size .*\); call 'await init\(\)' before using senv on this runtime$/);
    });
    expect((await L2.init({ build: 'scalar' })).build).toBe('scalar');
    // A page whose Content Security Policy forbids WebAssembly code refuses both ways: a CoreError that says so, not init() advice.
    const L3 = await freshLoader();
    const csp = () => new WebAssembly.CompileError("WebAssembly.Module(): Refused to compile or instantiate WebAssembly module because 'unsafe-eval' is not an allowed source");
    await stubbed('Module', function () {
      throw csp();
    }, () => stubbed('instantiate', () => Promise.reject(csp()), async () => {
      expect(() => L3.initSync({ build: 'scalar' })).toThrow(/^WASM compilation failed \(WebAssembly\.Module\(\): Refused .*\): WebAssembly code refused \(a page's Content Security Policy needs 'wasm-unsafe-eval'; a runtime that compiles only the modules it was given, such as Cloudflare workerd, takes the core as one: init\(\{ module \}\)\)$/);
      await expect(L3.init({ build: 'scalar' })).rejects.toMatchObject({ name: 'CoreError', code: 'ERR_CORE', message: expect.stringContaining("needs 'wasm-unsafe-eval'") });
    }));
    // No WebAssembly at all (Node --jitless, or `node --build-snapshot` while the snapshot is built):
    // a CoreError from every entry point, not a ReferenceError, naming both.
    const L4 = await freshLoader();
    const g = globalThis as { WebAssembly?: unknown };
    const api = g.WebAssembly;
    delete g.WebAssembly;
    try {
      expect(() => L4.initSync()).toThrow(/^this runtime has no WebAssembly \(Node with --jitless or while it builds a startup snapshot, /);
      await expect(L4.init()).rejects.toMatchObject({ name: 'CoreError' });
      expect(() => L4.core()).toThrow(/no WebAssembly/);
      // A module given there is no call to refuse as a module: the runtime is what is missing.
      expect(() => L4.initSync({ module: {} })).toThrow(/^this runtime has no WebAssembly/);
    } finally {
      g.WebAssembly = api;
    }
    vi.resetModules();
  });

  it('takes a module the host compiled where the runtime compiles no bytes (Cloudflare workerd), its build read from the module', async () => {
    const file = (b: string) => readFileSync(new URL(`../../build/senv.${b}.wasm`, import.meta.url));
    const modules = Object.fromEntries(['relaxed', 'simd', 'scalar'].map((b) => [b, new WebAssembly.Module(file(b))]));
    const importing = namedAlike('function', true);
    // A build without an export added since (as an older senv's file of the same ABI version): aes_scratch_clear renamed.
    const older = file('scalar');
    older[older.indexOf('aes_scratch_clear') + 16] = 0x58;
    const [olderModule, globals, functions] = [new WebAssembly.Module(older), namedAlike('global'), namedAlike('function')];
    // Every export, and an import (a table from env) after the type section, whose length is a LEB128.
    const scalar = file('scalar');
    let at = 9;
    let typeLength = 0;
    for (let shift = 0; ; shift += 7) {
      const b = scalar[at++]!;
      typeLength |= (b & 127) << shift;
      if (b < 128) break;
    }
    const withImport = new WebAssembly.Module(Buffer.concat([scalar.subarray(0, at + typeLength), Buffer.from([2, 11, 1, 3, ...Buffer.from('env'), 1, 0x74, 1, 0x70, 0, 0]), scalar.subarray(at + typeLength)]));
    // workerd's refusal: compiling bytes throws, instantiating a module it was given does not.
    const disallowed = () => new WebAssembly.CompileError('WebAssembly.Module(): Wasm code generation disallowed by embedder');
    const RealModule = WebAssembly.Module;
    const realInstantiate = WebAssembly.instantiate;
    const noCompile = new Proxy(RealModule, { construct: () => { throw disallowed(); } });
    const instantiate = (m: unknown, i?: WebAssembly.Imports) => (m instanceof RealModule ? realInstantiate(m, i) : Promise.reject(disallowed()));
    const L = await freshLoader();
    await stubbed('Module', noCompile, () => stubbed('instantiate', instantiate, async () => {
      expect(() => L.core()).toThrow(/disallowed by embedder.*init\(\{ module \}\)/);
      await expect(L.init()).rejects.toMatchObject({ name: 'CoreError', message: expect.stringContaining('init({ module })') });
      const info = await L.init({ module: modules.scalar });
      expect(info).toMatchObject({ build: 'scalar', abiVersion: 1, moduleBytes: file('scalar').length });
      expect(L.initSync({ module: modules.simd, build: 'simd' }).build).toBe('simd');
      expect(L.core().info.build).toBe('simd');
      const { sha256: digest } = await import('../../src/core/hash.ts');
      expect(Buffer.from(digest(new TextEncoder().encode('abc'))).toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      expect((await L.init({ module: modules.relaxed })).build).toBe('relaxed');
      // One instance per build: the scalar build given again is the instance loaded before.
      expect(await L.init({ module: modules.scalar })).toBe(info);

      // What is no senv core is refused before it is instantiated; a build asked for must be the module's.
      const other = new RealModule(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0));
      expect(() => L.initSync({ module: other })).toThrow(/^module is not a senv core/);
      // A module that imports anything is none either, whatever it exports: refused before it is instantiated, not a LinkError.
      expect(() => L.initSync({ module: importing })).toThrow(expect.objectContaining({ name: 'InvalidInputError', message: expect.stringMatching(/^module is not a senv core .*: it imports 1 value$/) }));
      // Exports named alike are not enough: a module lacking any export the facade calls is refused
      // before it is instantiated, not met by a TypeError at the first call that needs it.
      expect(() => L.initSync({ module: withImport }), 'every export, and an import: not a LinkError').toThrow(/^module is not a senv core .*: it imports 1 value$/);
      expect(() => L.initSync({ module: globals })).toThrow(/^module is not a senv core of this version \(.*\): it has no function export 'abi_version'$/);
      expect(() => L.initSync({ module: functions })).toThrow(/: it has no function export 'io_ptr'$/);
      await expect(L.init({ module: olderModule })).rejects.toMatchObject({ name: 'InvalidInputError', message: expect.stringMatching(/: it has no function export 'aes_scratch_clear'$/) });
      await expect(L.init({ module: file('simd') })).rejects.toMatchObject({ name: 'InvalidInputError', message: 'module must be a WebAssembly.Module (got a value of type Uint8Array)' });
      // null is no module, not "no module": a failed import handed on is said, not met by compiling the embedded bytes.
      for (const none of [null, 0, false, '']) expect(() => L.initSync({ module: none as never }), String(none)).toThrow(/^module must be a WebAssembly\.Module \(got /);
      expect(() => L.initSync({ module: modules.scalar, build: 'simd' })).toThrow(expect.objectContaining({ name: 'InvalidInputError', message: "the module given is the 'scalar' core build, not the 'simd' build asked for" }));
      expect(L.core().info.build, 'a refused module is no choice of build').toBe('scalar');
    }));
    vi.resetModules();
  });

  it('decodes the embedded module with atob where there is no Buffer and no Uint8Array.fromBase64', async () => {
    const L = await freshLoader();
    expect((Uint8Array as { fromBase64?: unknown }).fromBase64, 'this Node has fromBase64: the case needs it hidden too').toBeUndefined();
    const g = globalThis as { Buffer?: unknown };
    const buffer = g.Buffer;
    const RealModule = WebAssembly.Module;
    let compiled: Uint8Array | undefined;
    let info;
    g.Buffer = undefined;
    try {
      await stubbed('Module', function (bytes: Uint8Array<ArrayBuffer>) {
        compiled = Uint8Array.from(bytes);
        return new RealModule(bytes);
      }, () => {
        info = L.initSync({ build: 'scalar' });
      });
    } finally {
      g.Buffer = buffer;
    }
    // Every byte: the module ends in a custom section, which no compiler checks.
    expect(compiled && Buffer.from(compiled).equals(readFileSync(new URL('../../build/senv.scalar.wasm', import.meta.url)))).toBe(true);
    expect(info!.moduleBytes).toBe(compiled!.length);
    expect(L.core().x.abi_version()).toBe(1);
    vi.resetModules();
  });

  it('only a trap in an allocating export is an OutOfMemoryError: a TypeError at the call boundary stays one', () => {
    const c = core();
    c.mem().fill(0, c.io, c.io + 32);
    const k = c.x.aes_key_create(c.io, 16, 0);
    try {
      // ccm_create's lengths are i64: a number where a BigInt belongs.
      expect(() => c.x.ccm_create(k, c.io, 13, 16, 0 as never, 5 as never, 0, 0)).toThrow(TypeError);
      expect(() => c.x.hash_create(Symbol('alg') as never)).toThrow(TypeError);
    } finally {
      c.x.ctx_free(k);
    }
  });

  it('the context of a stream dropped without destroy() is freed once garbage-collected; a destroyed one is not freed again', async () => {
    const msg = new Uint8Array(100).fill(1);
    const base = coreMemoryStats().inUseBytes;
    (() => {
      for (let i = 0; i < 20; i++) createHash('SHA-512').update(msg);
    })();
    expect(coreMemoryStats().inUseBytes).toBeGreaterThan(base);
    await collect(() => coreMemoryStats().inUseBytes === base);
    expect(coreMemoryStats().inUseBytes, 'dropped streams released').toBe(base);

    // A destroyed stream's block goes to the next context; when the destroyed
    // object is collected, its finalizer must not free that context.
    const ref = (() => {
      const h = createHash('SHA-256');
      h.destroy();
      return new WeakRef(h);
    })();
    const live = Array.from({ length: 4 }, () => createHash('SHA-256').update(msg));
    const held = coreMemoryStats().inUseBytes;
    await collect(() => ref.deref() === undefined);
    expect(ref.deref(), 'the destroyed stream was collected').toBeUndefined();
    await collect(() => false, 20); // finalizers, if any, have run
    expect(coreMemoryStats().inUseBytes).toBe(held);
    const expected = sha256(msg);
    for (const h of live) expect(h.digest()).toEqual(expected);
  });

  it('loads on a runtime without FinalizationRegistry (workerd before 2025-05-05): streams and keys work, destroy() releases them', async () => {
    const g = globalThis as { FinalizationRegistry?: unknown };
    const registry = g.FinalizationRegistry;
    delete g.FinalizationRegistry;
    try {
      vi.resetModules();
      const senv = await import('../../src/index.ts');
      const base = senv.coreMemoryStats().inUseBytes;
      const h = senv.createHash('SHA-256').update(new TextEncoder().encode('abc'));
      expect(Buffer.from(h.digest()).toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      const k = senv.aesKey(new Uint8Array(16));
      expect(senv.coreMemoryStats().inUseBytes).toBeGreaterThan(base);
      k.destroy();
      expect(senv.coreMemoryStats().inUseBytes).toBe(base);
    } finally {
      g.FinalizationRegistry = registry;
      vi.resetModules();
    }
  });

  it('constantTimeEqual leaves neither input in the I/O window, frees both blocks above it, and reads b through its slots', () => {
    const c = core();
    const rnd = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));
    const a = rnd(32);
    expect(constantTimeEqual(a, Uint8Array.from(a))).toBe(true);
    expect(c.read(c.io, 64).every((b) => b === 0), 'both inputs wiped from the window').toBe(true);
    const base = coreMemoryStats().inUseBytes;
    const big = new Uint8Array(40_000);
    for (let i = 0; i < big.length; i += 65536) big.set(rnd(Math.min(65536, big.length - i)), i);
    const other = Uint8Array.from(big);
    other[39_999]! ^= 1;
    expect(constantTimeEqual(big, other), 'b compared, not a twice').toBe(false);
    expect(constantTimeEqual(big, Uint8Array.from(big))).toBe(true);
    expect(coreMemoryStats().inUseBytes, 'both blocks freed').toBe(base);
    const gone = new Uint8Array(0);
    structuredClone(gone.buffer, { transfer: [gone.buffer] });
    expect(() => constantTimeEqual(new Uint8Array(0), gone)).toThrow(/^b is a view of a detached ArrayBuffer$/);
  });

  it('a known answer that throws fails the self test with its message', () => {
    const first = KNOWN_ANSWERS[0]!;
    const run = first.run;
    first.run = () => {
      throw new Error('broken core');
    };
    try {
      const r = selftest();
      expect(r.ok).toBe(false);
      expect(r.results[0]).toEqual({ name: first.name, ok: false, error: 'broken core' });
    } finally {
      first.run = run;
    }
    expect(selftest().ok).toBe(true);
  });
});

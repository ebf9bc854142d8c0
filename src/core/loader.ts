// Loads the WASM core on any runtime: the three builds are embedded as base64,
// so there is no fetch, file access or bundler plugin involved. The best
// build the runtime validates is chosen (Relaxed SIMD, then SIMD, then
// scalar), unless the caller forces one.
import { RELAXED_WASM_BASE64, SIMD_WASM_BASE64, SCALAR_WASM_BASE64 } from './wasm-binaries.generated.ts';
import { ALLOCATING_EXPORTS, CORE_EXPORT_KINDS, type CoreExports } from './exports.ts';
import { FEATURE_PROBES } from './feature-probes.ts';
import { CoreError, InvalidInputError, OutOfMemoryError } from './errors.ts';
import { optionsArg, shown, type OptionNames } from './args.ts';
import { secretCopy, type Bytes } from './bytes.ts';

/**
 * 'relaxed' is the SIMD build with Relaxed SIMD's swizzle in AES (Node 22+,
 * Deno, Chromium; Node 20 with --experimental-wasm-relaxed-simd); 'simd'
 * needs WebAssembly SIMD only; 'scalar' runs everywhere.
 */
export type CoreBuild = 'relaxed' | 'simd' | 'scalar';

/** Every build, best first. */
export const CORE_BUILDS: readonly CoreBuild[] = Object.freeze(['relaxed', 'simd', 'scalar'] as const);

/** Options of init() and initSync(). */
export interface InitOptions {
  /** 'auto' (default) picks the first build of CORE_BUILDS that this runtime validates. */
  build?: CoreBuild | 'auto' | undefined;
  /**
   * The core compiled by the host: a `WebAssembly.Module` of one of the package's files
   * (`onem2m-senv/wasm/relaxed`, `/simd`, `/scalar`), for runtimes that compile no WASM bytes at
   * run time (Cloudflare workerd: a module import). Its build is read from the module; a `build`
   * given with it must name that one. (Typed `object`: the WebAssembly types need the DOM lib.)
   */
  module?: object | undefined;
}

const INIT_OPTIONS: OptionNames<InitOptions> = { build: true, module: true };

/** What init() and initSync() loaded. */
export interface CoreInfo {
  /** The build now in use. */
  build: CoreBuild;
  /** The version of the core's ABI (docs/wasm-abi.md). */
  abiVersion: number;
  /** Size of the WASM module, in bytes. */
  moduleBytes: number;
  /** Milliseconds spent compiling and instantiating. */
  instantiateMs: number;
}

const ABI_VERSION = 1;

/** One instantiated core: its exports, its I/O window and views on its memory. */
export class Core {
  readonly x: CoreExports;
  readonly info: CoreInfo;
  readonly io: number;
  readonly ioSize: number;
  #u8: Uint8Array;

  constructor(x: CoreExports, info: CoreInfo) {
    this.x = x;
    this.info = info;
    this.io = x.io_ptr();
    this.ioSize = x.io_size();
    this.#u8 = new Uint8Array(x.memory.buffer);
  }

  /** A byte view of linear memory, renewed after the memory grew. */
  mem(): Uint8Array {
    if (this.#u8.byteLength === 0) this.#u8 = new Uint8Array(this.x.memory.buffer);
    return this.#u8;
  }

  /**
   * Copies `len` bytes out of linear memory; `secret` ones (plaintext, random bytes) into memory
   * outside V8's heap, whose collector moves arrays of up to 64 bytes and leaves their bytes behind.
   */
  read(ptr: number, len: number, secret = false): Bytes {
    return secret ? secretCopy(this.mem().subarray(ptr, ptr + len)) : this.mem().slice(ptr, ptr + len);
  }

  /** Allocates `len` bytes in the core, copies `data` there (when given) and returns the pointer. */
  alloc(len: number, data?: Uint8Array): number {
    // Unsigned: a block above 2 GiB comes back from the i32 result as a negative number.
    const ptr = this.x.mem_alloc(len) >>> 0;
    if (ptr === 0) throw new OutOfMemoryError(`out of WASM memory: a block of ${len} bytes is more than the core hands out at once (256 MiB)`);
    if (data) this.mem().set(data, ptr);
    return ptr;
  }

  /** Zeroizes and frees a block from alloc(). */
  free(ptr: number, len: number): void {
    this.x.mem_free(ptr, len);
  }
}

const decoded: Partial<Record<CoreBuild, Uint8Array<ArrayBuffer>>> = {};
let current: Core | undefined;
// One instance per build: switching builds back and forth (tests, benchmarks
// comparing them) reuses the instance, its memory and its optimized code.
const loaded: Partial<Record<CoreBuild, Core>> = {};

// Start-up is what constrained callers pay for, so decode natively where the
// runtime can: Uint8Array.fromBase64 (recent engines), Node's Buffer (its
// atob() is a slow JS loop: about 7 ms for this module), else atob (native
// in browsers and Deno).
type Base64Host = { fromBase64?: (s: string) => Uint8Array<ArrayBuffer> };
type NodeBuffer = { from(s: string, enc: 'base64'): Uint8Array };

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const host = Uint8Array as unknown as Base64Host;
  if (host.fromBase64) return host.fromBase64(s);
  const NodeBuf = (globalThis as { Buffer?: NodeBuffer }).Buffer;
  if (NodeBuf) return Uint8Array.from(NodeBuf.from(s, 'base64'));
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const BASE64: Record<CoreBuild, string> = { relaxed: RELAXED_WASM_BASE64, simd: SIMD_WASM_BASE64, scalar: SCALAR_WASM_BASE64 };

function bytesOf(build: CoreBuild): Uint8Array<ArrayBuffer> {
  return (decoded[build] ??= decodeBase64(BASE64[build]));
}

/** A build's size in bytes, from its base64 text: a module the host compiled is not decoded for it. */
function moduleSize(build: CoreBuild): number {
  const s = BASE64[build];
  return (s.length / 4) * 3 - (s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0);
}

const supported: Partial<Record<CoreBuild, boolean>> = {};

/**
 * The runtime's WebAssembly API, or a CoreError saying there is none (Node --jitless, Node while
 * it builds a startup snapshot, which defines none then, a runtime or page that leaves it out).
 */
function wasmApi(): typeof WebAssembly {
  if (typeof WebAssembly === 'undefined') throw new CoreError('this runtime has no WebAssembly (Node with --jitless or while it builds a startup snapshot, or an engine built or configured without it): senv runs on its WASM core');
  return WebAssembly;
}

/**
 * A failed compilation, typed. A synchronous one refused for another reason than the code itself
 * (a browser's main thread refuses large modules: RangeError) is met by `await init()`; a
 * CompileError is not: a page whose Content Security Policy forbids WebAssembly code refuses the
 * asynchronous way too.
 */
function compileFailed(e: unknown, sync: boolean): CoreError {
  const cause = String((e as Error | null)?.message ?? e).split('\n')[0];
  const refused = e instanceof WebAssembly.CompileError;
  if (sync && !refused) return new CoreError(`synchronous WASM compilation failed (${cause}); call 'await init()' before using senv on this runtime`);
  return new CoreError(
    `WASM compilation failed (${cause})${refused ? ": WebAssembly code refused (a page's Content Security Policy needs 'wasm-unsafe-eval'; a runtime that compiles only the modules it was given, such as Cloudflare workerd, takes the core as one: init({ module }))" : ''}`,
  );
}

function runs(build: CoreBuild): boolean {
  return (supported[build] ??= build === 'scalar' || wasmApi().validate(FEATURE_PROBES[build]));
}

/** The builds this runtime can load, best first (the first is what 'auto' loads). */
export function coreBuilds(): CoreBuild[] {
  return CORE_BUILDS.filter(runs);
}

/** The options read and checked: the build asked for (a known name or 'auto') and a module given. */
function readOptions(options: InitOptions | null | undefined): { want: CoreBuild | 'auto'; module: WebAssembly.Module | undefined } {
  const opts = optionsArg(options, 'init options', INIT_OPTIONS);
  const want = opts?.build ?? 'auto';
  if (want !== 'auto' && !CORE_BUILDS.includes(want)) {
    throw new InvalidInputError(`unknown core build (got ${shown(want)}): use 'auto', ${CORE_BUILDS.map((b) => `'${b}'`).join(', ')}`);
  }
  return { want, module: opts?.module === undefined ? undefined : givenModule(opts.module) };
}

function pick(want: CoreBuild | 'auto'): CoreBuild {
  if (want === 'auto') return coreBuilds()[0]!;
  if (!runs(want)) throw new CoreError(`this runtime does not support the '${want}' core build (WebAssembly ${want === 'relaxed' ? 'Relaxed SIMD' : 'SIMD'})`);
  return want;
}

/**
 * A module the host compiled, checked before it is instantiated: a senv core imports nothing and
 * exports everything the facade calls (CORE_EXPORT_KINDS). WebAssembly.Module.exports() reads the
 * module's own slot (a module of another realm passes, an object dressed up as one does not).
 */
function givenModule(m: unknown): WebAssembly.Module {
  let kinds: Map<string, string>;
  let imports: number;
  try {
    kinds = new Map(wasmApi().Module.exports(m as WebAssembly.Module).map((e) => [e.name, e.kind]));
    imports = wasmApi().Module.imports(m as WebAssembly.Module).length;
  } catch (e) {
    if (e instanceof CoreError) throw e;
    throw new InvalidInputError(`module must be a WebAssembly.Module (got ${shown(m)})`);
  }
  const lacking = Object.entries(CORE_EXPORT_KINDS).find(([name, kind]) => kinds.get(name) !== kind);
  if (imports !== 0 || lacking) {
    // Only names of the table are shown: the module's own are whatever its maker chose.
    const why = imports !== 0 ? `it imports ${imports} value${imports === 1 ? '' : 's'}` : `it has no ${lacking![1]} export '${lacking![0]}'`;
    throw new InvalidInputError(`module is not a senv core of this version (onem2m-senv/wasm/relaxed, /simd or /scalar): ${why}`);
  }
  return m as WebAssembly.Module;
}

/** The build a given module is, by its features() (docs/wasm-abi.md, Versioning), checked against the build asked for. */
function buildOf(instance: WebAssembly.Instance, want: CoreBuild | 'auto'): CoreBuild {
  const f = (instance.exports as unknown as CoreExports).features();
  const build: CoreBuild = f & 2 ? 'relaxed' : f & 1 ? 'simd' : 'scalar';
  if (want !== 'auto' && want !== build) throw new InvalidInputError(`the module given is the '${build}' core build, not the '${want}' build asked for`);
  return build;
}

/** A given module's instance, or the one of its build already loaded (one instance per build). */
function adopt(instance: WebAssembly.Instance, want: CoreBuild | 'auto', t0: number): Core {
  const build = buildOf(instance, want);
  return (loaded[build] ??= wrap(instance, build, t0));
}

/**
 * The exports with each allocating one wrapped: a trap in it means the
 * allocator found no room and the memory could not grow (the allocator's
 * state is left as it was), so the caller gets an OutOfMemoryError it can
 * act on instead of a RuntimeError.
 */
function guardAllocations(raw: CoreExports): CoreExports {
  const x: Record<string, unknown> = { ...raw };
  for (const name of ALLOCATING_EXPORTS) {
    const f = raw[name] as (...args: unknown[]) => unknown;
    x[name] = (...args: unknown[]) => {
      try {
        return f(...args);
      } catch (e) {
        throw e instanceof WebAssembly.RuntimeError ? memoryFull(raw) : e;
      }
    };
  }
  return Object.freeze(x) as unknown as CoreExports;
}

function memoryFull(x: CoreExports): OutOfMemoryError {
  const mib = (n: number) => Math.round(n / 2 ** 20);
  return new OutOfMemoryError(
    `out of WASM memory: the core's ${mib(x.memory.buffer.byteLength)} MiB are full (${mib(x.mem_in_use() >>> 0)} MiB held by contexts and blocks not yet released)`,
  );
}

function wrap(instance: WebAssembly.Instance, build: CoreBuild, t0: number): Core {
  const x = guardAllocations(instance.exports as unknown as CoreExports);
  const abiVersion = x.abi_version();
  if (abiVersion !== ABI_VERSION) throw new CoreError(`core ABI version ${abiVersion}, facade expects ${ABI_VERSION}`);
  // One info per instance, handed to every caller of init(): frozen, so none can change what the others read.
  return new Core(x, Object.freeze({ build, abiVersion, moduleBytes: moduleSize(build), instantiateMs: performance.now() - t0 }));
}

// Each init()/initSync() call is a choice of build, and the latest choice
// stands: an init() that finishes after a later call does not take over.
let choice = 0;
/** Asynchronous instantiations under way: concurrent init() calls for one build share one. */
const pending: Partial<Record<CoreBuild, Promise<Core>>> = {};

/**
 * Loads the core synchronously. Node, Deno and workers allow this for any
 * module size; a browser main thread may refuse to compile synchronously, in
 * which case call `await init()` first.
 */
export function initSync(options?: InitOptions | null): CoreInfo {
  const { want, module } = readOptions(options);
  // A choice once the build loaded: an initSync() that failed leaves an init() under way to take over.
  const c = module ? loadGiven(module, want) : loadSync(pick(want));
  choice++;
  current = c;
  return c.info;
}

function loadSync(build: CoreBuild): Core {
  let c = loaded[build];
  if (!c) {
    const t0 = performance.now();
    const api = wasmApi();
    let instance: WebAssembly.Instance;
    try {
      instance = new api.Instance(new api.Module(bytesOf(build)), {});
    } catch (e) {
      throw compileFailed(e, true);
    }
    c = loaded[build] = wrap(instance, build, t0);
  }
  return c;
}

/**
 * Loads the core asynchronously; works everywhere. Calling it again is cheap:
 * one instance per build, also for calls made while it loads.
 */
export async function init(options?: InitOptions | null): Promise<CoreInfo> {
  const { want, module } = readOptions(options);
  const build = module ? undefined : pick(want);
  const mine = ++choice;
  const c = build ? (loaded[build] ?? (await (pending[build] ??= instantiate(build)))) : await instantiateGiven(module!, want);
  if (choice === mine) current = c;
  return c.info;
}

function loadGiven(module: WebAssembly.Module, want: CoreBuild | 'auto'): Core {
  const t0 = performance.now();
  return adopt(new (wasmApi().Instance)(module, {}), want, t0);
}

async function instantiateGiven(module: WebAssembly.Module, want: CoreBuild | 'auto'): Promise<Core> {
  const t0 = performance.now();
  return adopt(await wasmApi().instantiate(module, {}), want, t0);
}

async function instantiate(build: CoreBuild): Promise<Core> {
  try {
    const t0 = performance.now();
    const { instance } = await wasmApi().instantiate(bytesOf(build), {}).catch((e: unknown) => {
      throw compileFailed(e, false);
    });
    // An initSync() may have loaded the same build meanwhile: that instance stays the one.
    return (loaded[build] ??= wrap(instance, build, t0));
  } finally {
    delete pending[build];
  }
}

/** The loaded core's memory, in bytes (coreMemoryStats()). */
export interface CoreMemoryStats {
  /** Size of the core's linear memory (it only grows). */
  memoryBytes: number;
  /** Bytes held by contexts and blocks not yet released (a leak check compares it with a baseline). */
  inUseBytes: number;
}

/** Memory figures of the loaded core. */
export function coreMemoryStats(): CoreMemoryStats {
  const { x } = core();
  return { memoryBytes: x.memory.buffer.byteLength, inUseBytes: x.mem_in_use() >>> 0 };
}

/**
 * The loaded core, loading it synchronously (auto build) on first use. That
 * load is no one's choice of build: an init() under way still takes over.
 */
export function core(): Core {
  return (current ??= loadSync(pick('auto')));
}

/**
 * Releases WASM contexts whose JS owner was garbage-collected without an
 * explicit digest()/destroy(): the context is zeroized and freed. A runtime
 * without FinalizationRegistry (Cloudflare workerd before compatibility date
 * 2025-05-05) still loads senv: a ReferenceError at import would take every
 * function with it, so there contexts are released by digest()/destroy() only.
 * @internal not published: its type would ask consumers for the ES2021 lib.
 */
export const contextRegistry: Pick<FinalizationRegistry<{ core: Core; ctx: number }>, 'register' | 'unregister'> =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<{ core: Core; ctx: number }>(({ core, ctx }) => {
        core.x.ctx_free(ctx);
      })
    : { register: () => undefined, unregister: () => false };

// The life cycle shared by every streaming object of the facade: a context in
// WASM memory, fed through the I/O window, released exactly once (explicitly
// or, failing that, when the JS object is garbage-collected).
import { core, contextRegistry, type Core } from './loader.ts';
import { StateError, statusError } from './errors.ts';
import { bytesArg } from './args.ts';
import type { Bytes } from './bytes.ts';

// Declared here, where the published declarations first name them, so that they type-check in a
// project whose lib predates them (ES2023 without @types/node): TypeScript merges this with the
// declaration of lib.esnext.disposable and of @types/node. The runtimes senv supports have both.
declare global {
  interface SymbolConstructor {
    readonly dispose: unique symbol;
    readonly asyncDispose: unique symbol;
  }
}

/** An object holding secret state: `destroy()`, or the end of a `using` block, zeroizes it. */
export interface Destroyable {
  /** Zeroizes the object's secret state; further use throws StateError. Idempotent. */
  destroy(): void;
  /** destroy(), for `using x = ...` (TypeScript 5.2+, ES2026 explicit resource management). */
  [Symbol.dispose](): void;
}

/**
 * Feeds `data` to `step(ptr, len)` through the I/O window, in window-sized
 * chunks, and zeroizes what it wrote there: a message may be as secret as a
 * key (the Mcs layer's hash and signature messages are).
 */
export function feed(c: Core, data: Uint8Array, step: (ptr: number, len: number) => number, what: string): void {
  let off = 0;
  try {
    do {
      const n = Math.min(c.ioSize, data.length - off);
      c.mem().set(data.subarray(off, off + n), c.io);
      const status = step(c.io, n);
      if (status < 0) throw statusError(status, what);
      off += n;
    } while (off < data.length);
  } finally {
    c.x.zeroize(c.io, Math.min(c.ioSize, data.length));
  }
}

/** Reads `len` bytes of output at `ptr` into a new array and zeroizes `used` bytes there. */
export function takeOutput(c: Core, ptr: number, len: number, used = len, secret = false): Bytes {
  const out = c.read(ptr, len, secret);
  c.x.zeroize(ptr, used);
  return out;
}

/** The core a context lives in, for the facade's own modules (the package root does not export it). */
export let coreOf!: (c: CoreContext) => Core;
/** Whether `x` is a context this facade made (not an object dressed up as one). */
export let isCoreContext!: (x: unknown) => x is CoreContext;

// The core and the handle are ES private fields: a TypeScript `protected` would still be an
// ordinary property at run time, and the core it names reaches the whole WASM memory (every key),
// while a handle copied into a lookalike object would operate under another caller's key.
/** An object holding a context in the core (an AesKey, an HmacDrbg): `destroy()` zeroizes and frees it. */
export abstract class CoreContext implements Destroyable {
  readonly #core: Core;
  #ctx: number;
  readonly #what: string;

  /** @internal its subclasses' own constructors are the published ones (Core is not published). */
  protected constructor(ctx: number, what: string, c: Core = core()) {
    this.#core = c;
    this.#ctx = ctx;
    this.#what = what;
    contextRegistry.register(this, { core: c, ctx }, this);
  }

  /** The live context handle, or a StateError naming what was already finished. */
  protected live(): number {
    if (this.#ctx === 0) throw new StateError(`${this.#what} already finished or destroyed`);
    return this.#ctx;
  }

  /** Feeds `data` to `step(ctx, ptr, len)`: the argument is checked before the state, as every stream does. */
  protected feed(data: Uint8Array, step: (ctx: number, ptr: number, len: number) => number): void {
    const bytes = bytesArg(data, 'data');
    const ctx = this.live();
    feed(this.#core, bytes, (p, n) => step(ctx, p, n), this.#what);
  }

  /** Zeroizes and frees the context; further use throws StateError. Idempotent. */
  destroy(): void {
    if (this.#ctx === 0) return;
    contextRegistry.unregister(this);
    this.#core.x.ctx_free(this.#ctx);
    this.#ctx = 0;
  }

  /** destroy(), for `using x = ...`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  static {
    coreOf = (c) => c.#core;
    isCoreContext = (x): x is CoreContext => typeof x === 'object' && x !== null && #ctx in x;
  }
}

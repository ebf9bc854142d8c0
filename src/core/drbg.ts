// HMAC_DRBG (NIST SP 800-90A Rev. 1) over the core, and randomBytes() from
// one process-wide instance that reseeds itself. Entropy input and nonce come
// from the runtime's CSPRNG (crypto.getRandomValues on Node, Deno and
// browsers) unless a test supplies its own source.
import { core, type Core } from './loader.ts';
import { EMPTY, secretBytes, secretCopy, type Bytes } from './bytes.ts';
import { CoreContext, coreOf, takeOutput } from './context.ts';
import { CoreError, failureKind, InvalidInputError, LengthError, statusError } from './errors.ts';
import { bytesArg, flagArg, optionsArg, stillReadable, type OptionNames } from './args.ts';
import { hashId, type HashName } from './hash.ts';

export interface DrbgExports {
  drbg_create(alg: number): number;
  drbg_set_reseed_interval(ctx: number, interval: bigint): number;
  drbg_instantiate(ctx: number, entropy: number, entropyLen: number, nonce: number, nonceLen: number, pers: number, persLen: number): number;
  drbg_reseed(ctx: number, entropy: number, entropyLen: number, addin: number, addinLen: number): number;
  drbg_generate(ctx: number, out: number, len: number, addin: number, addinLen: number): number;
}

/** Returns `n` bytes of entropy input. */
export type EntropySource = (n: number) => Uint8Array;

/** Options of hmacDrbg() and new HmacDrbg(); every one may be left out. */
export interface HmacDrbgOptions {
  /** 'SHA-256' (default), 'SHA-384' or 'SHA-512'. */
  hash?: HashName | undefined;
  /** The personalization string mixed in at instantiation (SP 800-90A section 8.7.1); default none. */
  personalization?: Uint8Array | undefined;
  /** Reseed from the entropy source before every generate (SP 800-90A section 9.3.1). */
  predictionResistance?: boolean | undefined;
  /** Generate requests between automatic reseeds (1 .. 2^48; default 2^48). */
  reseedInterval?: number | undefined;
  /** Replaces the runtime CSPRNG, e.g. to replay known-answer tests. */
  entropy?: EntropySource | undefined;
}

const DRBG_OPTIONS: OptionNames<HmacDrbgOptions> = { hash: true, personalization: true, predictionResistance: true, reseedInterval: true, entropy: true };

/** Security strength 256 bits for every supported hash: entropy 32 bytes, nonce 16. */
const ENTROPY_BYTES = 32;
const NONCE_BYTES = 16;
/** SP 800-90A table 2: at most 2^19 bits per generate request. */
const MAX_REQUEST_BYTES = 65536;
const ERR_STATE = -7;

/** crypto.getRandomValues fills at most this many bytes per call (Web Crypto's QuotaExceededError beyond). */
const GET_RANDOM_VALUES_LIMIT = 65536;
/** The shortest draw the health test below can judge: 16 equal bytes from a working source have probability 2^-120. */
const HEALTH_TEST_BYTES = 16;

/**
 * `n` bytes from the runtime's CSPRNG (crypto.getRandomValues), in memory
 * outside V8's heap (secretBytes: a small array there is moved by a
 * collection, which leaves its bytes behind where no zero-fill reaches them).
 * There is no other source to fall back on, so a runtime without one, a
 * source that throws, or one that hands back its array unfilled (a stub or a
 * broken polyfill: all zeros) is a CoreError, never weak seed material: every
 * call of at least 16 bytes whose bytes are all one value fails (a
 * repetition count test, SP 800-90B 4.4.1, with a cutoff no working source
 * reaches); a shorter request is drawn as 16 bytes, tested, and cut.
 */
export function systemRandom(n: number): Bytes {
  const getRandomValues = globalThis.crypto?.getRandomValues;
  if (typeof getRandomValues !== 'function') {
    throw new CoreError('this runtime has no crypto.getRandomValues: senv takes all its randomness from it and has no other source');
  }
  const out = secretBytes(Math.max(n, HEALTH_TEST_BYTES));
  try {
    for (let off = 0; off < out.length; off += GET_RANDOM_VALUES_LIMIT) {
      // A last piece shorter than the test judges is drawn over the end of the one before it,
      // cleared first so that a source that leaves it unfilled shows.
      const part = out.subarray(Math.min(off, out.length - HEALTH_TEST_BYTES), Math.min(out.length, off + GET_RANDOM_VALUES_LIMIT));
      part.fill(0);
      try {
        getRandomValues.call(globalThis.crypto, part);
      } catch (e) {
        throw new CoreError(`the runtime's entropy source (crypto.getRandomValues) failed (${failureKind(e)})`);
      }
      if (part.every((b) => b === part[0])) {
        throw new CoreError(`the runtime's entropy source (crypto.getRandomValues) returned ${part.length} equal bytes: it is broken or stubbed`);
      }
    }
  } catch (e) {
    out.fill(0);
    throw e;
  }
  if (out.length === n) return out;
  const cut = secretCopy(out.subarray(0, n));
  out.fill(0);
  return cut;
}


/**
 * `n` or more bytes from the source, in an array the DRBG owns and zeroizes
 * after use: the system source's own, or a copy of what a caller's source
 * returned (which may be a buffer it keeps, as a known-answer replay does).
 */
function take(source: EntropySource, n: number, what: string): Bytes {
  const returned = source(n);
  const b = bytesArg(returned, what);
  if (b.length < n) throw new LengthError(`entropy source returned ${b.length} bytes of ${what}, at least ${n} required`);
  // The system source's array is secretBytes' own (over an ArrayBuffer).
  return source === systemRandom ? (b as Bytes) : secretCopy(b);
}

/**
 * Places byte strings in the I/O window (after `reserved` bytes), falling
 * back to allocations, and runs `fn` on them. Whatever was placed is zeroized
 * and freed however it ends: an allocation that fails halfway leaves no seed behind.
 */
function withInputs<T>(c: Core, reserved: number, inputs: Uint8Array[], fn: (ptrs: number[]) => T): T {
  const total = inputs.reduce((s, b) => s + b.length, 0);
  const ptrs: number[] = [];
  const allocated: [number, number][] = [];
  const fits = reserved + total <= c.ioSize;
  try {
    let at = c.io + reserved;
    for (const b of inputs) {
      if (fits) {
        c.mem().set(b, at);
        ptrs.push(at);
        at += b.length;
      } else {
        // An empty input gets a block too (the core counts a size of 0 as 1, docs/wasm-abi.md).
        ptrs.push(c.alloc(b.length, b));
        allocated.push([ptrs[ptrs.length - 1]!, b.length]);
      }
    }
    return fn(ptrs);
  } finally {
    if (fits) c.x.zeroize(c.io + reserved, total);
    for (const [p, n] of allocated) c.free(p, n);
  }
}

/** An HMAC_DRBG instance; destroy() uninstantiates it (the state is zeroized). */
export class HmacDrbg extends CoreContext {
  /** The hash HMAC_DRBG runs on. */
  readonly hash: HashName;
  /** Whether every generate() reseeds from the entropy source first. */
  readonly predictionResistance: boolean;
  readonly #entropy: EntropySource;

  constructor(opts?: HmacDrbgOptions | null) {
    // Everything that can fail runs before the context exists.
    const options = optionsArg(opts, 'HmacDrbg options', DRBG_OPTIONS) ?? {};
    const hash = options.hash ?? 'SHA-256';
    const id = hashId(hash);
    const pers = bytesArg(options.personalization ?? EMPTY, 'personalization');
    const interval = options.reseedInterval ?? undefined;
    if (interval !== undefined && (!Number.isSafeInteger(interval) || interval < 1 || interval > 2 ** 48)) {
      throw new InvalidInputError('reseedInterval must be an integer from 1 to 2^48');
    }
    const source = options.entropy ?? systemRandom;
    if (typeof source !== 'function') throw new InvalidInputError('entropy must be a function (n) => Uint8Array');
    const pr = flagArg(options.predictionResistance, 'predictionResistance', false);
    const c = core();
    const entropy = take(source, ENTROPY_BYTES, 'entropy input');
    let nonce: Uint8Array = EMPTY;
    try {
      nonce = take(source, NONCE_BYTES, 'nonce');
      stillReadable(pers, 'personalization');
      super(c.x.drbg_create(id), 'HMAC_DRBG', c);
    } catch (e) {
      // Drawn seed material goes to no one, also when no context could be made for it.
      entropy.fill(0);
      nonce.fill(0);
      throw e;
    }
    this.hash = hash;
    this.predictionResistance = pr;
    this.#entropy = source;
    try {
      const set = interval === undefined ? 0 : c.x.drbg_set_reseed_interval(this.live(), BigInt(interval));
      if (set < 0) throw statusError(set, 'HMAC_DRBG reseed interval');
      const status = withInputs(c, 0, [entropy, nonce, pers], ([e, n, p]) =>
        c.x.drbg_instantiate(this.live(), e!, entropy.length, n!, nonce.length, p!, pers.length));
      if (status < 0) throw statusError(status, 'HMAC_DRBG instantiate');
    } catch (e) {
      // Released at once, not left to the garbage collector.
      this.destroy();
      throw e;
    } finally {
      entropy.fill(0);
      nonce.fill(0);
    }
  }

  /** Mixes fresh entropy (and optional additional input) into the state. */
  reseed(input: Uint8Array = EMPTY): this {
    const additionalInput = bytesArg(input, 'additionalInput');
    this.live();
    const c = coreOf(this);
    const entropy = take(this.#entropy, ENTROPY_BYTES, 'entropy input');
    let status: number;
    try {
      stillReadable(additionalInput, 'additionalInput');
      // The handle is read after the entropy source ran: a source that destroyed this generator (and
      // made another, which may sit at the same address) gets a StateError, not the other's state.
      const ctx = this.live();
      status = withInputs(c, 0, [entropy, additionalInput], ([e, a]) =>
        c.x.drbg_reseed(ctx, e!, entropy.length, a!, additionalInput.length));
    } finally {
      entropy.fill(0);
    }
    if (status < 0) throw statusError(status, 'HMAC_DRBG reseed');
    return this;
  }

  /** Returns `n` pseudorandom bytes (at most 65536 per request, as SP 800-90A allows). */
  generate(n: number, input: Uint8Array = EMPTY): Bytes {
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidInputError('byte count must be a non-negative integer');
    if (n > MAX_REQUEST_BYTES) throw new LengthError(`HMAC_DRBG request of ${n} bytes exceeds ${MAX_REQUEST_BYTES}`);
    const additionalInput = bytesArg(input, 'additionalInput');
    this.live();
    // With prediction resistance, or when the reseed counter ran out, the
    // additional input goes into the reseed and generate gets none (9.3.1).
    // The handle is read after each reseed, which runs the caller's entropy source.
    let addin = additionalInput;
    if (this.predictionResistance) {
      this.reseed(addin);
      addin = EMPTY;
    }
    let status = this.#generate(this.live(), n, addin);
    if (status === ERR_STATE) {
      this.reseed(addin);
      status = this.#generate(this.live(), n, EMPTY);
    }
    if (status < 0) throw statusError(status, 'HMAC_DRBG generate');
    // The output may become a key: no copy of it stays in the I/O window, nor in V8's heap.
    const c = coreOf(this);
    return takeOutput(c, c.io, n, n, true);
  }

  #generate(ctx: number, n: number, addin: Uint8Array): number {
    const c = coreOf(this);
    return withInputs(c, n, [addin], ([a]) => c.x.drbg_generate(ctx, c.io, n, a!, addin.length));
  }
}

/** Creates an HMAC_DRBG instance (SP 800-90A), instantiated from the entropy source. */
export function hmacDrbg(options?: HmacDrbgOptions | null): HmacDrbg {
  return new HmacDrbg(options);
}

/**
 * Generate requests between reseeds of senv's own long-lived generators (randomBytes' and each
 * software SE's): well below SP 800-90A's 2^48, so that fresh OS entropy keeps flowing in and a
 * state read out of memory once predicts at most this many requests, not the rest of the process.
 */
export const OWN_RESEED_INTERVAL = 4096;

// The process-wide generator behind randomBytes(): HMAC_DRBG with SHA-256,
// which in the core costs half as much per small request as SHA-512 and the
// same per byte in bulk.
let shared: { drbg: HmacDrbg; core: Core } | undefined;

function sharedDrbg(): HmacDrbg {
  const c = core();
  // A different core build (initSync with another build) has its own memory, so its own generator;
  // the one it replaces is destroyed (its state zeroized) at once, not left to the garbage collector.
  // Made first: a new generator that cannot be made leaves the one in use intact.
  if (shared?.core !== c) {
    const drbg = new HmacDrbg({ hash: 'SHA-256', reseedInterval: OWN_RESEED_INTERVAL });
    shared?.drbg.destroy();
    shared = { drbg, core: c };
  }
  return shared.drbg;
}

/** `n` cryptographically secure random bytes from the shared HMAC_DRBG. */
export function randomBytes(n: number): Bytes {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidInputError('byte count must be a non-negative integer');
  return generateAll(sharedDrbg(), n);
}

/**
 * `n` bytes from `drbg` in as many requests as SP 800-90A's limit needs; each
 * piece is zeroized once copied (the result may become a key).
 */
export function generateAll(drbg: HmacDrbg, n: number): Bytes {
  if (n <= MAX_REQUEST_BYTES) return drbg.generate(n);
  let out: Bytes;
  try {
    out = new Uint8Array(n);
  } catch {
    // The runtime's own limit on an array (V8: 2^32 bytes), or no memory for it: a RangeError otherwise.
    throw new LengthError(`${n} random bytes are more than this runtime can allocate in one array`);
  }
  for (let off = 0; off < n; off += MAX_REQUEST_BYTES) {
    const chunk = drbg.generate(Math.min(MAX_REQUEST_BYTES, n - off));
    out.set(chunk, off);
    chunk.fill(0);
  }
  return out;
}

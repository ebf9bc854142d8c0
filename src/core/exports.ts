// The typed view of the WASM core's exports (docs/wasm-abi.md). Pointers and
// lengths are byte offsets into `memory`; negative i32 results are status codes.

// Each algorithm family declares its own exports interface beside its facade
// and adds it to the `extends` list of CoreExports.
import type { DrbgExports } from './drbg.ts';
import type { EcExports } from './ecdsa.ts';
import type { AesExports } from './aes.ts';

export interface CoreExports extends BaseExports, HashExports, DrbgExports, EcExports, AesExports {}

/**
 * The exports that may allocate in linear memory (a context, a block, a
 * curve's generator tables). When the memory cannot grow any further, the
 * allocator traps; the loader turns that trap into an OutOfMemoryError.
 */
export const ALLOCATING_EXPORTS = [
  'mem_alloc', 'hash_create', 'hmac_create', 'drbg_create',
  'aes_key_create', 'aes_key_copy', 'gcm_create', 'ccm_create', 'cbc_create', 'mac_create',
  'ec_precompute', 'ec_public_key', 'ec_sign', 'ec_sign_with_k', 'ec_verify',
] as const satisfies readonly (keyof CoreExports)[];

const F = 'function';

/**
 * Every export the facade calls, by kind: a module the host compiled is checked against it before
 * init({ module }) instantiates it. An older core of the same ABI version may lack an export added
 * since (docs/wasm-abi.md, Versioning: adding exports keeps the version), and a module that only
 * names a few alike is no core at all; either would fail later, at a call, with a TypeError. A
 * record of CoreExports' keys: an export added to the interfaces must be added here too.
 */
export const CORE_EXPORT_KINDS: Readonly<Record<keyof CoreExports, 'function' | 'memory'>> = Object.freeze({
  abi_version: F, features: F, io_ptr: F, io_size: F, mem_alloc: F, mem_free: F, mem_in_use: F, zeroize: F, ctx_free: F, ct_equal: F,
  hash_digest_length: F, hash_block_length: F, hash_create: F, hash_update: F, hash_final: F, hash_reset: F, hash_oneshot: F, hash_many: F,
  hmac_create: F, hmac_update: F, hmac_final: F, hmac_reset: F, hmac_oneshot: F,
  aes_key_create: F, aes_key_copy: F, aes_scratch_clear: F, aes_encrypt_blocks: F, aes_decrypt_blocks: F,
  gcm_create: F, gcm_aad: F, gcm_update: F, gcm_final: F, gcm_verify: F, ccm_create: F, ccm_aad: F, ccm_update: F, ccm_final: F, ccm_verify: F,
  cbc_create: F, cbc_update: F, cbc_final: F, mac_create: F, mac_update: F, mac_final: F,
  drbg_create: F, drbg_set_reseed_interval: F, drbg_instantiate: F, drbg_reseed: F, drbg_generate: F,
  ec_scalar_length: F, ec_precompute: F, ec_public_key: F, ec_public_key_check: F, ec_sign: F, ec_sign_with_k: F, ec_verify: F,
  memory: 'memory',
});

export interface BaseExports {
  // Structural, not WebAssembly.Memory: the published declarations must check in a Node project
  // without the DOM lib, and @types/node does not declare the WebAssembly namespace.
  readonly memory: { readonly buffer: ArrayBuffer };
  abi_version(): number;
  features(): number;
  io_ptr(): number;
  io_size(): number;
  mem_alloc(size: number): number;
  mem_free(ptr: number, size: number): void;
  mem_in_use(): number;
  zeroize(ptr: number, size: number): void;
  ctx_free(ctx: number): void;
  ct_equal(a: number, b: number, n: number): number;
}

export interface HashExports {
  hash_digest_length(alg: number): number;
  hash_block_length(alg: number): number;
  hash_create(alg: number): number;
  hash_update(ctx: number, src: number, len: number): number;
  hash_final(ctx: number, out: number): number;
  hash_reset(ctx: number): number;
  hash_oneshot(alg: number, src: number, len: number, out: number): number;
  hash_many(alg: number, src: number, offsets: number, count: number, out: number): number;

  hmac_create(alg: number, key: number, keyLen: number): number;
  hmac_update(ctx: number, src: number, len: number): number;
  hmac_final(ctx: number, out: number): number;
  hmac_reset(ctx: number): number;
  hmac_oneshot(alg: number, key: number, keyLen: number, src: number, len: number, out: number): number;
}

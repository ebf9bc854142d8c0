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

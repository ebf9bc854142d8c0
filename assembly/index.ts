// The exports of the senv WASM core; docs/wasm-abi.md describes each one.
export { abi_version, features, io_ptr, io_size, mem_alloc, mem_free, zeroize, ctx_free } from './abi';
export { ct_equal } from './ct';
export {
  hash_digest_length, hash_block_length, hash_create, hash_update, hash_final, hash_reset, hash_oneshot,
} from './hash';
export { hash_many } from './hash-many';
export { hmac_create, hmac_update, hmac_final, hmac_reset, hmac_oneshot } from './hmac';

// The exports of the senv WASM core; docs/wasm-abi.md describes each one.
export { abi_version, features, io_ptr, io_size, mem_alloc, mem_free, mem_in_use, zeroize, ctx_free } from './abi';
export { ct_equal } from './ct';
export {
  hash_digest_length, hash_block_length, hash_create, hash_update, hash_final, hash_reset, hash_oneshot,
} from './hash';
export { hash_many } from './hash-many';
export { hmac_create, hmac_update, hmac_final, hmac_reset, hmac_oneshot } from './hmac';
export { aes_key_create, aes_key_copy, aes_scratch_clear, aes_encrypt_blocks, aes_decrypt_blocks } from './aes';
export { gcm_create, gcm_aad, gcm_update, gcm_final, gcm_verify } from './gcm';
export { ccm_create, ccm_aad, ccm_update, ccm_final, ccm_verify } from './ccm';
export { cbc_create, cbc_update, cbc_final } from './cbc';
export { mac_create, mac_update, mac_final } from './cmac';
export { drbg_create, drbg_set_reseed_interval, drbg_instantiate, drbg_reseed, drbg_generate } from './drbg';
export { ec_scalar_length, ec_precompute, ec_public_key, ec_public_key_check, ec_sign, ec_sign_with_k, ec_verify } from './ec/ecdsa';

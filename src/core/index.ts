// The typed facade over the WASM core.
export { init, initSync, coreBuilds, CORE_BUILDS, coreMemoryStats, type CoreBuild, type CoreInfo, type InitOptions, type CoreMemoryStats } from './loader.ts';
export { constantTimeEqual } from './compare.ts';
export type { Bytes } from './bytes.ts';
export type { CoreContext, Destroyable } from './context.ts';
export { SenvError, InvalidInputError, UnknownAlgorithmError, LengthError, StateError, AuthenticationError, PaddingError, InvalidValueError, CoreError, SelfTestError, OutOfMemoryError, DeviceFullError, type SenvErrorCode } from './errors.ts';
export { sha256, sha384, sha512, hash, createHash, hashMany, sha256Many, type Hash, type HashName } from './hash.ts';
export { hmac, createHmac, type Hmac } from './hmac.ts';
export { aesKey, AesKey, type KeyInput } from './aes.ts';
export { gcm, type GcmOptions } from './gcm.ts';
export { ccm, type CcmOptions } from './ccm.ts';
export { cbc, type Cbc, type CbcOptions, type CbcPadding, type CbcStream } from './cbc.ts';
export { cmac, cbcMac, createCmac, createCbcMac, type Mac } from './cmac.ts';
export type { Aead, AeadEncryptStream, AeadDecryptStream } from './aead.ts';
export { HmacDrbg, hmacDrbg, randomBytes, type HmacDrbgOptions, type EntropySource } from './drbg.ts';
export { ecdsa, ecdsaPrecompute, type Ecdsa, type CurveName, type KeyPair, type SignOptions, type VerifyOptions, type SignatureFormat } from './ecdsa.ts';

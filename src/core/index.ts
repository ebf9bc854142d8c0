// The typed facade over the WASM core.
export { init, initSync, type CoreBuild, type CoreInfo, type InitOptions } from './loader.ts';
export * from './errors.ts';
export { sha256, sha384, sha512, hash, createHash, hashMany, sha256Many, type Hash, type HashName } from './hash.ts';
export { hmac, createHmac, type Hmac } from './hmac.ts';

// AES-GCM, AES-CCM, AES-CBC and AES-CMAC against node:crypto (OpenSSL with
// AES-NI), @noble/ciphers and WebCrypto. Every implementation gets the key
// as bytes on each operation (key setup included), as in notes/peers.md;
// "senv … AesKey" rows show the same call with a pre-expanded key.
import nodeCrypto from 'node:crypto';
import { gcm as nobleGcm, cbc as nobleCbc, cmac as nobleCmac } from '@noble/ciphers/aes.js';
import { gcm, ccm, cbc, cmac, aesKey, initSync, type AesKey } from '../src/index.ts';
import type { BenchCase, BenchGroup, BenchModule } from './harness.ts';
import { AES_BUILDS, senvCases } from './builds.ts';

const SIZES = [16, 1024, 64 * 1024, 1024 * 1024];

// The same operation with a key expanded once per build, outside the loop.
function senvKeyCases(key: Uint8Array, fn: (k: AesKey) => unknown): BenchCase[] {
  return AES_BUILDS.map((build) => {
    let k: AesKey | undefined;
    return {
      impl: `senv ${build} AesKey`,
      setup: () => {
        initSync({ build });
        k = aesKey(key);
      },
      fn: () => fn(k!),
    };
  });
}

export const aesBench: BenchModule = async () => {
  const groups: BenchGroup[] = [];
  const subtle = globalThis.crypto.subtle;
  const nonce = new Uint8Array(nodeCrypto.randomBytes(12));
  const iv = new Uint8Array(nodeCrypto.randomBytes(16));
  for (const size of SIZES) {
    const data = new Uint8Array(nodeCrypto.randomBytes(size));
    for (const bitsize of [128, 256]) {
      const key = new Uint8Array(nodeCrypto.randomBytes(bitsize / 8));
      const name: nodeCrypto.CipherGCMTypes = bitsize === 128 ? 'aes-128-gcm' : 'aes-256-gcm';
      groups.push({
        algorithm: `AES-${bitsize}-GCM encrypt`, size, cases: [
          ...senvCases(() => gcm(key, nonce).encrypt(data), AES_BUILDS),
          ...(size <= 1024 ? senvKeyCases(key, (k) => gcm(k, nonce).encrypt(data)) : []),
          { impl: 'node:crypto', fn: () => { const c = nodeCrypto.createCipheriv(name, key, nonce); return [c.update(data), c.final(), c.getAuthTag()]; } },
          { impl: '@noble/ciphers', fn: () => nobleGcm(key, nonce).encrypt(data) },
          // One operation awaited at a time, importKey included (the key as bytes, as for the others).
          { impl: 'WebCrypto', async: true, fn: () => subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']).then((k) => subtle.encrypt({ name: 'AES-GCM', iv: nonce }, k, data)) },
        ],
      });
    }
    const key = new Uint8Array(nodeCrypto.randomBytes(16));
    // GCM with the data as associated data and nothing to encrypt: GHASH alone (plus one block).
    const empty = new Uint8Array(0);
    groups.push({
      algorithm: 'AES-128-GMAC (GCM, data as AAD)', size, cases: [
        ...senvCases(() => gcm(key, nonce, data).encrypt(empty), AES_BUILDS),
        { impl: 'node:crypto', fn: () => { const c = nodeCrypto.createCipheriv('aes-128-gcm', key, nonce); c.setAAD(data); c.final(); return c.getAuthTag(); } },
        { impl: '@noble/ciphers', fn: () => nobleGcm(key, nonce, data).encrypt(empty) },
      ],
    });
    groups.push({
      algorithm: 'AES-128-CCM encrypt', size, cases: [
        ...senvCases(() => ccm(key, nonce).encrypt(data), AES_BUILDS),
        { impl: 'node:crypto', fn: () => { const c = nodeCrypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: 16 }); c.setAAD(new Uint8Array(0), { plaintextLength: data.length }); return [c.update(data), c.final(), c.getAuthTag()]; } },
      ],
    });
    groups.push({
      algorithm: 'AES-128-CBC encrypt (PKCS#7)', size, cases: [
        ...senvCases(() => cbc(key, iv).encrypt(data), AES_BUILDS),
        { impl: 'node:crypto', fn: () => { const c = nodeCrypto.createCipheriv('aes-128-cbc', key, iv); return [c.update(data), c.final()]; } },
        { impl: '@noble/ciphers', fn: () => nobleCbc(key, iv).encrypt(data) },
      ],
    });
    const ct = cbc(key, iv).encrypt(data);
    groups.push({
      algorithm: 'AES-128-CBC decrypt (PKCS#7)', size, cases: [
        ...senvCases(() => cbc(key, iv).decrypt(ct), AES_BUILDS),
        { impl: 'node:crypto', fn: () => { const c = nodeCrypto.createDecipheriv('aes-128-cbc', key, iv); return [c.update(ct), c.final()]; } },
        { impl: '@noble/ciphers', fn: () => nobleCbc(key, iv).decrypt(ct) },
      ],
    });
    groups.push({
      algorithm: 'AES-128-CMAC', size, cases: [
        ...senvCases(() => cmac(key, data), AES_BUILDS),
        { impl: '@noble/ciphers', fn: () => nobleCmac(data, key) },
        // node:crypto has no CMAC; its CBC over the same bytes costs about the same (a stand-in: other output).
        { impl: 'node:crypto (CBC as CMAC)', output: false, fn: () => { const c = nodeCrypto.createCipheriv('aes-128-cbc', key, iv); c.update(data); return c.final(); } },
      ],
    });
  }
  return groups;
};

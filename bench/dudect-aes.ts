// The dudect-style timing-leak probes of the AES core (bench/dudect.ts runs
// them): the AES block function, the key schedule, GHASH, the serial modes'
// chains (CBC encryption, CMAC, CCM) and CBC's padding removal, on every core
// build; with them the core's tag comparison (ct_equal) and HMAC's key.
// `senv bench --only dudect-aes`.
import { type Core } from '../src/core/loader.ts';
import type { BenchModule } from './harness.ts';
import { AES_BUILDS } from './builds.ts';
import { runDudect, type Probe, type ProbeSet } from './dudect.ts';

/** Each probe's calls per measurement and measurements in a full run: AES calls are short. */
const RUN = { repeat: 8, samples: 200_000 };

const KEY_AT = 1024, OUT_AT = 2048, NONCE_AT = 4096;

export function probes(c: Core): ProbeSet {
  c.mem().fill(0x5a, c.io + KEY_AT, c.io + KEY_AT + 16);
  const fixedKey = c.x.aes_key_create(c.io + KEY_AT, 16, 0);
  const list: Probe[] = [
    {
      name: 'AES-128 8 blocks, fixed vs random plaintext', size: 128, ...RUN,
      prepare(c, secret) {
        c.mem().set(secret, c.io);
        return () => c.x.aes_encrypt_blocks(fixedKey, c.io, c.io + OUT_AT, 128);
      },
    },
    {
      // One block: the SIMD build's swizzle path (aes-vperm.ts).
      name: 'AES-128 one block, fixed vs random plaintext', size: 16, ...RUN,
      prepare(c, secret) {
        c.mem().set(secret, c.io);
        return () => c.x.aes_encrypt_blocks(fixedKey, c.io, c.io + OUT_AT, 16);
      },
    },
    {
      name: 'AES-128 decryption, fixed vs random ciphertext', size: 128, ...RUN,
      prepare(c, secret) {
        c.mem().set(secret, c.io);
        return () => c.x.aes_decrypt_blocks(fixedKey, c.io, c.io + OUT_AT, 128);
      },
    },
    {
      name: 'AES-128 key schedule + one block, fixed vs random key', size: 16, ...RUN,
      prepare(c, secret) {
        c.mem().set(secret, c.io + KEY_AT);
        return () => c.x.aes_encrypt_blocks(c.x.aes_key_create(c.io + KEY_AT, 16, 1), c.io, c.io + OUT_AT, 16);
      },
    },
    {
      // gcm_aad runs GHASH only; H = E(K, 0) comes from the secret key.
      name: 'GHASH, fixed vs random hash subkey', size: 16, ...RUN,
      prepare(c, secret) {
        c.mem().set(secret, c.io + KEY_AT);
        const key = c.x.aes_key_create(c.io + KEY_AT, 16, 1);
        const op = c.x.gcm_create(key, c.io + NONCE_AT, 12, 16, 0, 1);
        return () => c.x.gcm_aad(op, c.io, 512);
      },
    },
    {
      name: 'GHASH, fixed vs random input', size: 512, ...RUN,
      prepare(c, secret) {
        const op = c.x.gcm_create(fixedKey, c.io + NONCE_AT, 12, 16, 0, 1);
        c.mem().set(secret, c.io);
        return () => c.x.gcm_aad(op, c.io, 512);
      },
    },
    {
      // The serial modes' chain (CBC encryption, CMAC, CBC-MAC): its own one-block loop on the
      // SIMD builds (chainVperm), apart from the block function the rows above time.
      name: 'AES-128 CBC encryption chain, fixed vs random plaintext', size: 256, ...RUN,
      prepare(c, secret) {
        const op = c.x.cbc_create(fixedKey, c.io + NONCE_AT, 13, 0, 1);
        c.mem().set(secret, c.io);
        return () => c.x.cbc_update(op, c.io, c.io + OUT_AT, 256);
      },
    },
    {
      name: 'AES-CMAC chain, fixed vs random key', size: 16, ...RUN,
      prepare(c, secret) {
        c.mem().set(secret, c.io + KEY_AT);
        const op = c.x.mac_create(c.x.aes_key_create(c.io + KEY_AT, 16, 1), 49, 1);
        return () => c.x.mac_update(op, c.io, 256);
      },
    },
    {
      // CCM's two chains side by side (ccmVperm, the Relaxed SIMD build) or its batched counter mode.
      name: 'AES-128-CCM encryption, fixed vs random plaintext', size: 256, ...RUN,
      prepare(c, secret) {
        const op = c.x.ccm_create(fixedKey, c.io + NONCE_AT, 12, 16, 0n, BigInt(256 * RUN.repeat), 0, 1);
        c.mem().set(secret, c.io);
        return () => c.x.ccm_update(op, c.io, c.io + OUT_AT, 256);
      },
    },
    {
      // PKCS#7 removal after CBC decryption (cbc_final) must not take a time that depends on where
      // an invalid padding goes wrong: the fixed class's block is invalid one way (last byte 0x5a),
      // the random class's in ever other ways (valid in about 0.4 % of them). Valid or not is the
      // answer itself, which unauthenticated CBC cannot hide (docs/aes.md).
      name: 'CBC PKCS#7 padding removal, fixed vs random last plaintext block', size: 16, ...RUN,
      prepare(c, secret) {
        // With an IV of zeros, the ciphertext block that decrypts to `secret` is E(K, secret).
        c.mem().fill(0, c.io + NONCE_AT, c.io + NONCE_AT + 16);
        c.mem().set(secret, c.io);
        c.x.aes_encrypt_blocks(fixedKey, c.io, c.io + KEY_AT + 32, 16);
        return () => {
          const op = c.x.cbc_create(fixedKey, c.io + NONCE_AT, 24, 1, 1);
          c.x.cbc_update(op, c.io + KEY_AT + 32, c.io + OUT_AT, 16);
          return c.x.cbc_final(op, c.io + OUT_AT);
        };
      },
    },
    {
      // Received tags and MACs are compared with ct_equal (the facade's constantTimeEqual):
      // equal (the fixed class) against different from the first byte on (the random class).
      name: 'ct_equal over 64 bytes, fixed vs random operand against the fixed bytes', size: 64, ...RUN,
      prepare(c, secret) {
        c.mem().fill(0x5a, c.io + KEY_AT + 64, c.io + KEY_AT + 128);
        c.mem().set(secret, c.io);
        return () => c.x.ct_equal(c.io, c.io + KEY_AT + 64, 64);
      },
    },
    {
      // HMAC's key schedule (the ipad and opad states) and one message block under the key.
      name: 'HMAC-SHA-256 key + 64-byte message, fixed vs random key', size: 32, ...RUN,
      prepare(c, secret) {
        c.mem().set(secret, c.io + KEY_AT);
        return () => c.x.hmac_oneshot(4, c.io + KEY_AT, 32, c.io, 64, c.io + OUT_AT);
      },
    },
    {
      // Positive control: an early-exit comparison must show a large |t|,
      // or the measurement is too coarse to trust the rows above.
      name: 'control: early-exit compare (should leak)', size: 64, ...RUN,
      prepare(_c, secret) {
        const reference = new Uint8Array(64).fill(0x5a);
        return () => {
          for (let i = 0; i < 64; i++) if (secret[i] !== reference[i]) return false;
          return true;
        };
      },
    },
  ];
  return { list, release: () => c.x.ctx_free(fixedKey) };
}

export const dudectAesBench: BenchModule = (opts) => {
  runDudect('dudect-aes', opts, AES_BUILDS, probes, (c) => c.x.aes_scratch_clear());
  return [];
};

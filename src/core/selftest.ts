// Known-answer self test of every algorithm in the core, on whatever runtime
// and build is loaded: `senv selftest`, and the software SE after [SEReboot].
// Both directions where they run different code: AES decryption is its own
// circuit, tag and signature verification their own comparisons (a wrong
// one must be refused).
import { sha256, sha384, sha512 } from './hash.ts';
import { hmac } from './hmac.ts';
import { gcm } from './gcm.ts';
import { ccm } from './ccm.ts';
import { cbc } from './cbc.ts';
import { cbcMac, cmac } from './cmac.ts';
import { HmacDrbg } from './drbg.ts';
import { ecdsa } from './ecdsa.ts';
import { core } from './loader.ts';
import { toHex } from './bytes.ts';

export interface KnownAnswer {
  name: string;
  /** Returns the bytes to compare with `expected` (hex). */
  run(): Uint8Array;
  expected: string;
}

const ascii = (s: string) => new TextEncoder().encode(s);
const unhex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
/** 01 when `fn` throws (a forged input refused), 00 when it returns. */
const refuses = (fn: () => unknown): Uint8Array => {
  try {
    fn();
    return Uint8Array.of(0);
  } catch {
    return Uint8Array.of(1);
  }
};
const flipped = (b: Uint8Array) => b.map((x, i) => (i === b.length - 1 ? x ^ 1 : x));
const drbg = (hash: 'SHA-256' | 'SHA-512', entropy: string, nonce: string) => () => {
  const inputs = [unhex(entropy), unhex(nonce)];
  const d = new HmacDrbg({ hash, entropy: () => inputs.shift() ?? new Uint8Array(0) });
  d.generate(hash === 'SHA-256' ? 128 : 256);
  const out = d.generate(hash === 'SHA-256' ? 128 : 256);
  d.destroy();
  return out;
};
const K128 = unhex('2b7e151628aed2a6abf7158809cf4f3c'), IV = unhex('000102030405060708090a0b0c0d0e0f');
const K256 = unhex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
const P1 = unhex('6bc1bee22e409f96e93d7e117393172a');
const CCM_KEY = unhex('c0c1c2c3c4c5c6c7c8c9cacbcccdcecf'), CCM_NONCE = unhex('00000003020100a0a1a2a3a4a5'), CCM_AAD = unhex('0001020304050607');
const GCM_CT = unhex('0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf');
const CCM_CT = unhex('588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0');
const P256_SIG = unhex('efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8');
// RFC 6979 A.2.5: the public key of the P-256 key below.
const P256_PUB = unhex('0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299');

// FIPS 180-4 examples ("abc") and RFC 4231 test case 2.
export const KNOWN_ANSWERS: KnownAnswer[] = [
  { name: 'SHA-256', run: () => sha256(ascii('abc')), expected: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
  { name: 'SHA-384', run: () => sha384(ascii('abc')), expected: 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7' },
  { name: 'SHA-512', run: () => sha512(ascii('abc')), expected: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f' },
  { name: 'HMAC-SHA-256', run: () => hmac('SHA-256', ascii('Jefe'), ascii('what do ya want for nothing?')), expected: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' },
  { name: 'HMAC-SHA-384', run: () => hmac('SHA-384', ascii('Jefe'), ascii('what do ya want for nothing?')), expected: 'af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649' },
  { name: 'HMAC-SHA-512', run: () => hmac('SHA-512', ascii('Jefe'), ascii('what do ya want for nothing?')), expected: '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737' },
  // AES: GCM spec test cases 2 and 14 (McGrew-Viega), RFC 3610 packet 1,
  // SP 800-38A F.2.1 block 1, RFC 4493 example 2.
  { name: 'AES-128-GCM', run: () => gcm(new Uint8Array(16), new Uint8Array(12)).encrypt(new Uint8Array(16)), expected: '0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf' },
  { name: 'AES-256-GCM', run: () => gcm(new Uint8Array(32), new Uint8Array(12)).encrypt(new Uint8Array(16)), expected: 'cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919' },
  { name: 'AES-128-CCM_8', run: () => ccm(unhex('c0c1c2c3c4c5c6c7c8c9cacbcccdcecf'), unhex('00000003020100a0a1a2a3a4a5'), unhex('0001020304050607'), { tagLength: 8 }).encrypt(unhex('08090a0b0c0d0e0f101112131415161718191a1b1c1d1e')), expected: '588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0' },
  { name: 'AES-128-GCM decrypt, forged tag refused', run: () => Uint8Array.of(...gcm(new Uint8Array(16), new Uint8Array(12)).decrypt(GCM_CT), ...refuses(() => gcm(new Uint8Array(16), new Uint8Array(12)).decrypt(flipped(GCM_CT)))), expected: '0000000000000000000000000000000001' },
  { name: 'AES-128-CCM_8 decrypt, forged tag refused', run: () => Uint8Array.of(...ccm(CCM_KEY, CCM_NONCE, CCM_AAD, { tagLength: 8 }).decrypt(CCM_CT), ...refuses(() => ccm(CCM_KEY, CCM_NONCE, CCM_AAD, { tagLength: 8 }).decrypt(flipped(CCM_CT)))), expected: '08090a0b0c0d0e0f101112131415161718191a1b1c1d1e01' },
  { name: 'AES-128-CBC', run: () => cbc(K128, IV, { padding: 'none' }).encrypt(P1), expected: '7649abac8119b246cee98e9b12e9197d' },
  { name: 'AES-128-CBC decrypt', run: () => cbc(K128, IV, { padding: 'none' }).decrypt(unhex('7649abac8119b246cee98e9b12e9197d')), expected: '6bc1bee22e409f96e93d7e117393172a' },
  { name: 'AES-256-CBC decrypt', run: () => cbc(K256, IV, { padding: 'none' }).decrypt(unhex('f58c4c04d6e5f1ba779eabfb5f7bfbd6')), expected: '6bc1bee22e409f96e93d7e117393172a' },
  { name: 'AES-128-CMAC', run: () => cmac(K128, P1), expected: '070a16b46b4d4144f79bdd9dd04a287c' },
  // One block under a zero IV is the block cipher itself: SP 800-38A F.1.1.
  { name: 'AES-128 CBC-MAC', run: () => cbcMac(K128, P1), expected: '3ad77bb40d7a3660a89ecaf32466ef97' },
  // HMAC_DRBG: CAVP no_reseed COUNT 0 of [SHA-256] and [SHA-512] (the software SE's rngType 1).
  { name: 'HMAC_DRBG-SHA-256', run: drbg('SHA-256', 'ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488', '659ba96c601dc69fc902940805ec0ca8'), expected: 'e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc107694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8' },
  { name: 'HMAC_DRBG-SHA-512', run: drbg('SHA-512', '35049f389a33c0ecb1293238fd951f8ffd517dfde06041d32945b3e26914ba15', 'f7328760be6168e6aa9fb54784989a11'), expected: 'e76491b0260aacfded01ad39fbf1a66a88284caa5123368a2ad9330ee48335e3c9c9ba90e6cbc9429962d60c1a6661edcfaa31d972b8264b9d4562cf18494128a092c17a8da6f3113e8a7edfcd4427082bd390675e9662408144971717303d8dc352c9e8b95e7f35fa2ac9f549b292bc7c4bc7f01ee0a577859ef6e82d79ef23892d167c140d22aac32b64ccdfeee2730528a38763b24227f91ac3ffe47fb11538e435307e77481802b0f613f370ffb0dbeab774fe1efbb1a80d01154a9459e73ad361108bbc86b0914f095136cbe634555ce0bb263618dc5c367291ce0825518987154fe9ecb052b3f0a256fcc30cc14572531c9628973639beda456f2bddf6' },
  // ECDSA: RFC 6979 A.2.5-A.2.7, message "sample"; verification of the P-256 answer, and of it forged.
  { name: 'ECDSA P-256 verify, forged signature refused', run: () => Uint8Array.of(+ecdsa('P-256').verify(P256_SIG, ascii('sample'), P256_PUB, { format: 'raw' }), +ecdsa('P-256').verify(flipped(P256_SIG), ascii('sample'), P256_PUB, { format: 'raw' })), expected: '0100' },
  { name: 'ECDSA P-256 SHA-256', run: () => ecdsa('P-256').sign(ascii('sample'), unhex('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721'), { format: 'raw', extraEntropy: false }), expected: 'efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8' },
  { name: 'ECDSA P-384 SHA-384', run: () => ecdsa('P-384').sign(ascii('sample'), unhex('6b9d3dad2e1b8c1c05b19875b6659f4de23c3b667bf297ba9aa47740787137d896d5724e4c70a825f872c9ea60d2edf5'), { format: 'raw', extraEntropy: false }), expected: '94edbb92a5ecb8aad4736e56c691916b3f88140666ce9fa73d64c4ea95ad133c81a648152e44acf96e36dd1e80fabe4699ef4aeb15f178cea1fe40db2603138f130e740a19624526203b6351d0a3a94fa329c145786e679e7b82c71a38628ac8' },
  { name: 'ECDSA P-521 SHA-512', run: () => ecdsa('P-521').sign(ascii('sample'), unhex('00fad06daa62ba3b25d2fb40133da757205de67f5bb0018fee8c86e1b68c7e75caa896eb32f1f47c70855836a6d16fcc1466f6d8fbec67db89ec0c08b0e996b83538'), { format: 'raw', extraEntropy: false }), expected: '00c328fafcbd79dd77850370c46325d987cb525569fb63c5d3bc53950e6d4c5f174e25a1ee9017b5d450606add152b534931d7d4e8455cc91f9b15bf05ec36e377fa00617cce7cf5064806c467f678d3b4080d6f1cc50af26ca209417308281b68af282623eaa63e5b5c0723d8b8c37ff0777b1a20f8ccb1dccc43997f1ee0e44da4a67a' },
];

export interface SelftestResult {
  build: string;
  results: { name: string; ok: boolean; error?: string }[];
  ok: boolean;
}

export function selftest(): SelftestResult {
  const build = core().info.build;
  const results = KNOWN_ANSWERS.map((k) => {
    try {
      const got = toHex(k.run());
      return got === k.expected ? { name: k.name, ok: true } : { name: k.name, ok: false, error: 'wrong answer' };
    } catch (e) {
      return { name: k.name, ok: false, error: (e as Error).message };
    }
  });
  return { build, results, ok: results.every((r) => r.ok) };
}

// Known-answer self test of every algorithm in the core, on whatever runtime
// and build is loaded: `senv selftest`, and the software SE after [SEReboot].
import { sha256, sha384, sha512 } from './hash.ts';
import { hmac } from './hmac.ts';
import { gcm } from './gcm.ts';
import { ccm } from './ccm.ts';
import { cbc } from './cbc.ts';
import { cmac } from './cmac.ts';
import { HmacDrbg } from './drbg.ts';
import { ecdsa } from './ecdsa.ts';
import { core } from './loader.ts';

export interface KnownAnswer {
  name: string;
  /** Returns the bytes to compare with `expected` (hex). */
  run(): Uint8Array;
  expected: string;
}

const ascii = (s: string) => new TextEncoder().encode(s);
const unhex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

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
  { name: 'AES-128-CBC', run: () => cbc(unhex('2b7e151628aed2a6abf7158809cf4f3c'), unhex('000102030405060708090a0b0c0d0e0f'), { padding: 'none' }).encrypt(unhex('6bc1bee22e409f96e93d7e117393172a')), expected: '7649abac8119b246cee98e9b12e9197d' },
  { name: 'AES-128-CMAC', run: () => cmac(unhex('2b7e151628aed2a6abf7158809cf4f3c'), unhex('6bc1bee22e409f96e93d7e117393172a')), expected: '070a16b46b4d4144f79bdd9dd04a287c' },
  // HMAC_DRBG: CAVP no_reseed [SHA-256] COUNT 0; ECDSA: RFC 6979 A.2.5-A.2.7, message "sample".
  {
    name: 'HMAC_DRBG-SHA-256',
    run: () => {
      const inputs = [unhex('ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488'), unhex('659ba96c601dc69fc902940805ec0ca8')];
      const drbg = new HmacDrbg({ hash: 'SHA-256', entropy: () => inputs.shift() ?? new Uint8Array(0) });
      drbg.generate(128);
      const out = drbg.generate(128);
      drbg.destroy();
      return out;
    },
    expected: 'e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc107694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8',
  },
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

// Known-answer self test of every algorithm in the core, on whatever runtime
// and build is loaded: `senv selftest`, and the software SE after [SEReboot].
import { sha256, sha384, sha512 } from './hash.ts';
import { hmac } from './hmac.ts';
import { core } from './loader.ts';

export interface KnownAnswer {
  name: string;
  /** Returns the bytes to compare with `expected` (hex). */
  run(): Uint8Array;
  expected: string;
}

const ascii = (s: string) => new TextEncoder().encode(s);
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

// FIPS 180-4 examples ("abc") and RFC 4231 test case 2.
export const KNOWN_ANSWERS: KnownAnswer[] = [
  { name: 'SHA-256', run: () => sha256(ascii('abc')), expected: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
  { name: 'SHA-384', run: () => sha384(ascii('abc')), expected: 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7' },
  { name: 'SHA-512', run: () => sha512(ascii('abc')), expected: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f' },
  { name: 'HMAC-SHA-256', run: () => hmac('SHA-256', ascii('Jefe'), ascii('what do ya want for nothing?')), expected: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' },
  { name: 'HMAC-SHA-384', run: () => hmac('SHA-384', ascii('Jefe'), ascii('what do ya want for nothing?')), expected: 'af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649' },
  { name: 'HMAC-SHA-512', run: () => hmac('SHA-512', ascii('Jefe'), ascii('what do ya want for nothing?')), expected: '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737' },
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

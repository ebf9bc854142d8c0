// Every algorithm value of TS-0016 tables 9.6-1 to 9.9-1 with the rules that
// make it usable: key lengths, generated key length, nonce/IV and tag sizes.
// The same for every backend, so the Mcs layer validates once and a backend
// only executes. Decisions on the spec's gaps are recorded in docs/mcs.md.
import type { CipherAlgorithm, HashAlgorithm, RebootType, RngType, SignatureAlgorithm } from './backend.ts';
import type { HashName } from '../core/hash.ts';
// The tables are the engine's rules, exported for reading: frozen all the way down.
import { frozen } from '../core/frozen.ts';

/** What CIPHERS says of a `<cipher>` algorithm. */
export interface CipherInfo {
  /** Its TS-0016 name (`ALG_AEAD_AES_128_GCM`). */
  readonly name: string;
  /** The AES mode that runs it. */
  readonly mode: 'gcm' | 'ccm' | 'cbc';
  /** The key lengths it takes, in bytes. */
  readonly keyLengths: readonly number[];
  /** Length generateKey produces. */
  readonly generatedKeyLength: number;
  /** AEAD: RFC 5116 / RFC 6655 fix a 12-byte nonce for every one of 1001-1019. */
  readonly nonceLength?: number;
  /** AEAD: the tag's length in bytes. */
  readonly tagLength?: number;
  /** CBC: its padding, as cbc() names it. */
  readonly padding?: 'none' | 'iso9797-m1' | 'iso9797-m2' | 'pkcs5';
}


// AES-128 and AES-256 are what the core implements; the CBC values (Java Card)
// take either, and generateKey picks AES-256 for them.
const AES = Object.freeze([16, 32] as const);

/** The `<cipher>` algorithms of TS-0016 table 9.6-1 senv implements, by value. */
export const CIPHERS: Readonly<Record<CipherAlgorithm, CipherInfo>> = frozen({
  1001: { name: 'ALG_AEAD_AES_128_GCM', mode: 'gcm', keyLengths: [16], generatedKeyLength: 16, nonceLength: 12, tagLength: 16 },
  1002: { name: 'ALG_AEAD_AES_256_GCM', mode: 'gcm', keyLengths: [32], generatedKeyLength: 32, nonceLength: 12, tagLength: 16 },
  1003: { name: 'ALG_AEAD_AES_128_CCM', mode: 'ccm', keyLengths: [16], generatedKeyLength: 16, nonceLength: 12, tagLength: 16 },
  1004: { name: 'ALG_AEAD_AES_256_CCM', mode: 'ccm', keyLengths: [32], generatedKeyLength: 32, nonceLength: 12, tagLength: 16 },
  1018: { name: 'ALG_AEAD_AES_128_CCM_8', mode: 'ccm', keyLengths: [16], generatedKeyLength: 16, nonceLength: 12, tagLength: 8 },
  1019: { name: 'ALG_AEAD_AES_256_CCM_8', mode: 'ccm', keyLengths: [32], generatedKeyLength: 32, nonceLength: 12, tagLength: 8 },
  13: { name: 'ALG_AES_BLOCK_128_CBC_NOPAD', mode: 'cbc', keyLengths: AES, generatedKeyLength: 32, padding: 'none' },
  22: { name: 'ALG_AES_CBC_ISO9797_M1', mode: 'cbc', keyLengths: AES, generatedKeyLength: 32, padding: 'iso9797-m1' },
  23: { name: 'ALG_AES_CBC_ISO9797_M2', mode: 'cbc', keyLengths: AES, generatedKeyLength: 32, padding: 'iso9797-m2' },
  24: { name: 'ALG_AES_CBC_PKCS5', mode: 'cbc', keyLengths: AES, generatedKeyLength: 32, padding: 'pkcs5' },
});

/** What SIGNATURES says of a `<signature>` algorithm. */
export interface SignatureInfo {
  /** Its TS-0016 name (`ALG_ECDSA_SHA_256`). */
  readonly name: string;
  /** The kind of MAC or signature. */
  readonly family: 'cmac' | 'cbc-mac' | 'ecdsa' | 'hmac';
  /** Allowed secret key lengths (HMAC: a range). */
  readonly keyLengths: readonly number[] | { readonly min: number; readonly max: number };
  /** Length generateKey produces, in bytes (ECDSA: the private scalar's). */
  readonly generatedKeyLength: number;
  /** ECDSA: its curve. */
  readonly curve?: 'P-256' | 'P-384' | 'P-521';
  /** ECDSA and HMAC: the hash it runs on. */
  readonly hash?: HashAlgorithm;
}

/** The `<signature>` algorithms of TS-0016 table 9.9-1 senv implements, by value. */
export const SIGNATURES: Readonly<Record<SignatureAlgorithm, SignatureInfo>> = frozen({
  49: { name: 'ALG_AES_CMAC_128', family: 'cmac', keyLengths: AES, generatedKeyLength: 32 },
  18: { name: 'ALG_AES_MAC_128_NOPAD', family: 'cbc-mac', keyLengths: AES, generatedKeyLength: 32 },
  33: { name: 'ALG_ECDSA_SHA_256', family: 'ecdsa', keyLengths: [32], generatedKeyLength: 32, curve: 'P-256', hash: 4 },
  34: { name: 'ALG_ECDSA_SHA_384', family: 'ecdsa', keyLengths: [48], generatedKeyLength: 48, curve: 'P-384', hash: 5 },
  38: { name: 'ALG_ECDSA_SHA_512', family: 'ecdsa', keyLengths: [66], generatedKeyLength: 66, curve: 'P-521', hash: 6 },
  // RFC 2104 allows any key length; generated keys have the hash's output
  // length, and an empty key is refused.
  25: { name: 'ALG_HMAC_SHA_256', family: 'hmac', keyLengths: { min: 1, max: 4096 }, generatedKeyLength: 32, hash: 4 },
  26: { name: 'ALG_HMAC_SHA_384', family: 'hmac', keyLengths: { min: 1, max: 4096 }, generatedKeyLength: 48, hash: 5 },
  27: { name: 'ALG_HMAC_SHA_512', family: 'hmac', keyLengths: { min: 1, max: 4096 }, generatedKeyLength: 64, hash: 6 },
});

/** `coreName`: the core's name of the hash (src/core/hash.ts), which backends and the virtual card compute with. */
export const HASHES: Readonly<Record<HashAlgorithm, { readonly name: string; readonly outputLength: number; readonly coreName: HashName }>> = frozen({
  4: { name: 'SHA256', outputLength: 32, coreName: 'SHA-256' },
  5: { name: 'SHA384', outputLength: 48, coreName: 'SHA-384' },
  6: { name: 'SHA512', outputLength: 64, coreName: 'SHA-512' },
});

/** The values a table keyed by them holds, as numbers, in ascending order (Object.keys' order for integer keys). */
export function valuesOf<K extends number>(table: Readonly<Partial<Record<K, unknown>>>): K[] {
  return Object.keys(table).map(Number) as K[];
}

export const RNG_TYPES: Readonly<Record<RngType, string>> = frozen({ 1: 'Pseudo RNG', 2: 'True (physical) RNG' });

/** TS-0016 table 9.4-1: the [SEReboot] rebootTypes, by value. */
export const REBOOT_TYPES: Readonly<Record<RebootType, string>> = frozen({ 1: 'cold reset', 2: 'warm reset' });
/**
 * Every value of REBOOT_TYPES, in order: what an SE that performs both resets reports, and what a
 * reboot type is checked against. Frozen: a backend's capabilities hand it out.
 */
export const ALL_REBOOT_TYPES: readonly RebootType[] = frozen(valuesOf(REBOOT_TYPES));
/** How a refusal names the reboot types: one wording wherever one is refused. */
export const REBOOT_TYPES_TEXT = `${ALL_REBOOT_TYPES.map((t) => `${t} (${REBOOT_TYPES[t]})`).join(' or ')}, TS-0016 table 9.4-1`;

/** SEC1 uncompressed point length per curve (public keys in keyInformation). */
export const PUBLIC_KEY_LENGTHS = frozen({ 'P-256': 65, 'P-384': 97, 'P-521': 133 } as const);

export function keyLengthAllowed(rule: SignatureInfo['keyLengths'] | CipherInfo['keyLengths'], n: number): boolean {
  return 'min' in rule ? n >= rule.min && n <= rule.max : rule.includes(n);
}

export function describeKeyLengths(rule: SignatureInfo['keyLengths'] | CipherInfo['keyLengths']): string {
  return 'min' in rule ? `${rule.min} to ${rule.max} bytes` : `${rule.join(' or ')} bytes`;
}

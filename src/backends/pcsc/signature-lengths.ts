// How long the signatures and MACs of the card profile are: what the host
// allows a card's answer, what it sends a card to verify, and what a card's
// command data field must hold for that.
import type { SignatureAlgorithm, SignatureOptions } from '../backend.ts';
import { HASHES, PUBLIC_KEY_LENGTHS, SIGNATURES } from '../algorithms.ts';
import { TAG } from '../../apdu/profile.ts';
import { tlvs } from '../../apdu/tlv.ts';

/** HMAC: the hash's whole output (the profile truncates nothing); CMAC and CBC-MAC: one AES block. */
export function macLength(algorithm: SignatureAlgorithm): number {
  const info = SIGNATURES[algorithm];
  return info.family === 'hmac' ? HASHES[info.hash!].outputLength : 16;
}

/** Coordinate (and scalar) length of an ECDSA algorithm's curve: its SEC1 point is 04 || X || Y. */
export const fieldLength = (algorithm: number): number => (PUBLIC_KEY_LENGTHS[SIGNATURES[algorithm as SignatureAlgorithm].curve!] - 1) / 2;

/**
 * No signature or MAC longer than this can verify: the answer is false
 * without the card, as the software SE's, where a card without extended length
 * would have to refuse the chained VERIFY as a data length. DER: a SEQUENCE
 * (up to 3 header bytes) of two INTEGERs of up to a field length plus a sign
 * byte (2 header bytes each).
 */
export function longestSignature(algorithm: SignatureAlgorithm, format: SignatureOptions['format']): number {
  if (SIGNATURES[algorithm].family !== 'ecdsa') return macLength(algorithm);
  const n = fieldLength(algorithm);
  return format === 'der' ? 3 + 2 * (2 + n + 1) : 2 * n;
}

/**
 * The largest VERIFY template, `9E L signature` of the longest signature of
 * any algorithm (a DER P-521 one: 144 bytes). The last link of a
 * verification carries only that template, whole (a card's chain takes an
 * earlier link as message data), so a card must take it in one command.
 */
export const LARGEST_VERIFY = Math.max(
  ...Object.keys(SIGNATURES).map((a) => tlvs([TAG.SIGNATURE, new Uint8Array(longestSignature(Number(a) as SignatureAlgorithm, 'der'))]).length),
);

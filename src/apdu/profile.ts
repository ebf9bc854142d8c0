// The senv card profile (docs/apdu-profile.md): the constants both sides share,
// the PC/SC backend (host) and the virtual card. ISO/IEC 7816-4/-8 commands
// wherever they exist; proprietary only for what those standards leave open.

import type { Bytes } from '../core/bytes.ts';

/** Application identifier: 'F0' (proprietary, unregistered) + "SENV" + version 01. */
// Typed, not inferred: TypeScript 5.7+ would declare Uint8Array<ArrayBuffer>, which 5.4 cannot read (README).
export const SENV_AID: Bytes = Uint8Array.of(0xf0, 0x53, 0x45, 0x4e, 0x56, 0x01);

export const INS = {
  MSE: 0x22, PSO: 0x2a, GENERATE_KEY_PAIR: 0x47, MANAGE_CHANNEL: 0x70, GET_CHALLENGE: 0x84, INTERNAL_AUTHENTICATE: 0x88,
  GET_DATA: 0xca, PUT_DATA: 0xda,
} as const;

/** MSE:SET P1 (set, for computation/decipherment/internal authentication) and the CRT tag as P2. */
export const MSE_SET = 0x41;
export const CRT = { HT: 0xaa, DST: 0xb6, CT: 0xb8, AT: 0xa4 } as const;

/** The length of a key stamp (tag 83): what the card draws each time it writes a key slot. */
export const KEY_STAMP_LENGTH = 8;

/** Tags inside a CRT (MSE data) and key templates. */
export const TAG = {
  ALGORITHM: 0x80, // 2 bytes: the TS-0016 algorithm value
  KEY_KIND: 0x81, // 1 byte: 1 secret, 2 public
  KEY_MATERIAL: 0x82,
  KEY_STAMP: 0x83, // KEY_STAMP_LENGTH bytes in a key information: drawn each time the slot is written
  KEY_REF: 0x84, // 1 byte: key slot 01..FE
  IV: 0x87, // CBC IV / AEAD nonce
  AAD: 0xc2, // AEAD associated data
  INPUT_IS_DIGEST: 0xc0, // 1 byte 01: PSO CDS input is the digest (ECDSA prehashed)
  SIG_FORMAT: 0xc1, // 1 byte: 0 raw r||s, 1 DER
  SIGNATURE: 0x9e,
  PUBLIC_KEY_TEMPLATE: 0x7f49,
  EC_POINT: 0x86,
  FCI: 0x6f,
  AID: 0x84,
  PROPRIETARY: 0xa5,
} as const;

/** PSO P1-P2 (ISO/IEC 7816-8). */
export const PSO = {
  HASH: 0x9080,
  COMPUTE_SIGNATURE: 0x9e9a,
  VERIFY_SIGNATURE: 0x00a8,
  ENCIPHER: 0x8680,
  DECIPHER: 0x8086,
} as const;

/** GET DATA / PUT DATA P1: the high byte of P1-P2 selects the object family, P2 the id. */
export const DO = {
  KEY: 0x01, // PUT: import key into slot P2; GET: key information (never secret material)
  OBJECT: 0x02, // sensitive data object P2 (1..254)
  DELETE_KEY: 0x03, // PUT with empty data
  DELETE_OBJECT: 0x04,
  COUNTERS: 0xdf01, // GET: cold, warm, off resets since the process started (4 bytes each)
  MEMORY: 0xdf02, // GET: total, available non-volatile bytes (4 bytes each)
  SERIAL: 0xdf03, // GET: 8-byte card serial number
  KEY_MAP: 0xdf04, // GET: 32-byte bitmap of key slots in use (bit 7 of byte 0 = slot 0)
} as const;

/** FCI proprietary tags (in A5). */
export const FCI = { VERSION: 0x80, MAX_COMMAND: 0x81, ALGORITHMS: 0x82, SERIAL: 0x83, MAX_RESPONSE: 0x85 } as const;

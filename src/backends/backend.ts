// The one interface every secure-environment backend implements: the software
// SE on the WASM core, a PC/SC card driven by APDUs, and whatever comes later.
//
// Every operation is asynchronous because a card answers over I/O. The Mcs
// layer (src/mcs/) queries `capabilities` and runs every operation of a
// resource through this interface (it takes from the core only what is no
// SE's operation: typed errors, byte helpers, random resource IDs, a public
// point's check, the data directory's sealing); values are the numeric codes
// of TS-0016 clause 9 (src/backends/algorithms.ts), so a backend
// can carry them into its own protocol (e.g. an MSE:SET algorithm reference)
// without a translation table in between.
//
// The contract a backend author needs is on SecureEnvironmentBackend below (it goes to the
// declarations) and in docs/mcs.md "Writing a backend"; the engine checks it at the boundary
// (src/mcs/handed.ts). The argument checks senv's own backends share are in checks.ts.
import { InvalidInputError } from '../core/errors.ts';
import { shown } from '../core/args.ts';

/** TS-0016 table 9.2-1 / 7.2.1-2. */
export type SeType = 1 | 2 | 3 | 4;
/** TS-0016 table 9.3-1: 1 low, 2 medium, 3 high. */
export type SecurityLevel = 1 | 2 | 3;
/** TS-0016 table 9.4-1: 1 cold reset, 2 warm reset. */
export type RebootType = 1 | 2;
/**
 * TS-0016 table 9.6-1 (CIPHERS): 1001 / 1002 AES-128 / AES-256 GCM, 1003 / 1004 CCM, 1018 / 1019 CCM_8;
 * AES-CBC with 13 no padding, 22 ISO 9797-1 method 1, 23 method 2, 24 PKCS#5.
 */
export type CipherAlgorithm = 1001 | 1002 | 1003 | 1004 | 1018 | 1019 | 13 | 22 | 23 | 24;
/** TS-0016 table 9.7-1: 1 pseudo RNG, 2 true (physical) RNG. */
export type RngType = 1 | 2;
/** TS-0016 table 9.8-1: 4 SHA-256, 5 SHA-384, 6 SHA-512. */
export type HashAlgorithm = 4 | 5 | 6;
/**
 * TS-0016 table 9.9-1 (SIGNATURES): 49 AES-CMAC, 18 AES CBC-MAC, 33 / 34 / 38 ECDSA P-256 / P-384 / P-521,
 * 25 / 26 / 27 HMAC-SHA-256 / 384 / 512.
 */
export type SignatureAlgorithm = 49 | 18 | 33 | 34 | 38 | 25 | 26 | 27;

/** Who an SE is (McsEngine.describe(), the <SE> registration and [deviceInfo]). */
export interface BackendDescription {
  /** SEType (TS-0016 table 7.2.1-2): the first digit of the M2M-SE-ID; 4 for the software SE. */
  seType: SeType;
  /** TS-0016 table 9.3-1: 1 low (the software SE), 2 medium, 3 high (a card). */
  securityLevel: SecurityLevel;
  /** Unique ID part of the M2M-SE-ID (clause 7.2.1), e.g. a card serial number. */
  uniqueId: string;
  /** [deviceInfo] manufacturer. */
  manufacturer: string;
  /** [deviceInfo] model. */
  model: string;
  /** [deviceInfo] fwv. */
  firmwareVersion: string;
  /** [deviceInfo] swv. */
  softwareVersion: string;
  /**
   * What the SE runs on (deviceInfo `hwv`, with `fwv` and `swv` among TS-0001 D.8's identification attributes): a card's ATR, or that a
   * software SE has no hardware of its own. A backend without it shows "unknown".
   */
  hardwareVersion?: string | undefined;
  /** Where the bytes of each supported rngType come from, in plain words (reported on <SE> deviceInfo). */
  rngSources: Partial<Record<RngType, string>>;
}

/** What an SE can do (McsEngine.describe()): the engine refuses what it does not offer. */
export interface BackendCapabilities {
  /** The <cipher> algorithms it runs (TS-0016 table 9.6-1). */
  cipherAlgorithms: readonly CipherAlgorithm[];
  /** The <hash> algorithms it runs (table 9.8-1). */
  hashAlgorithms: readonly HashAlgorithm[];
  /** The <signature> algorithms it runs (table 9.9-1). */
  signatureAlgorithms: readonly SignatureAlgorithm[];
  /** The <rand> rngTypes it serves (table 9.7-1). */
  rngTypes: readonly RngType[];
  /** The [SEReboot] types it performs (table 9.4-1). */
  rebootTypes: readonly RebootType[];
  /** Bytes per stream update that amortize the per-call cost best (WASM: tens of KiB; card: the largest command data). */
  preferredBatchSize: number;
  /** Largest single random() request. */
  maxRandomLength: number;
  /**
   * 'host': key material leaves the backend as bytes in `storeKey` and the
   * host persists it (sealed). 'device': `storeKey` returns a reference to a
   * key the device keeps itself; its material never leaves it.
   */
  keyStorage: 'host' | 'device';
}

/** What a key is for: the Mcs algorithm value fixes type and length. */
export type KeySpec =
  | { use: 'cipher'; algorithm: CipherAlgorithm }
  | { use: 'signature'; algorithm: SignatureAlgorithm };

/** 'secret': a symmetric or private key; 'public': an ECDSA public point only (verification). */
export type KeyKind = 'secret' | 'public';

/**
 * An opaque key held by the backend that created it. A backend makes every handle it returns from
 * importKey, generateKey and loadKey with markKeyHandle (exported by the package root, beside
 * SoftwareBackend): the engine takes only such objects as keys. Any other, or one whose size is not a
 * non-negative integer, answers 5000 and is deleted (deleteKey, else releaseKey) when importKey or
 * generateKey gave it; from loadKey it is released and McsEngine.create fails naming the backend.
 */
export interface KeyHandle {
  /** What the key is for. */
  readonly spec: KeySpec;
  /** Secret (symmetric or private) or public. */
  readonly kind: KeyKind;
  /** Bytes of key material the host keeps for it (what counts against the SE's memory quota); 0 for a key kept on the device. */
  readonly size: number;
}

// Key handles are told apart by identity, not by shape: a client's JSON value
// (e2eSecInfo, keyInformation) may well have `spec` and `kind` members.
const keyHandles = new WeakSet<object>();

/**
 * Registers a handle a backend hands out; only registered objects are treated as keys (by identity:
 * a Proxy or a copy of a marked handle is not one). Exported by the package root for backends
 * written outside senv.
 */
export function markKeyHandle<T extends KeyHandle>(handle: T): T {
  if (typeof handle !== 'object' || handle === null) throw new InvalidInputError(`a key handle is an object, got ${shown(handle)}`);
  keyHandles.add(handle);
  return handle;
}

/** @internal the engine's test for a key (the contract asks backends to mark theirs, not to test). */
export function isKeyHandle(v: unknown): v is KeyHandle {
  return typeof v === 'object' && v !== null && keyHandles.has(v);
}

/**
 * A key in a form the host can persist: raw material (host key storage; the
 * host seals it at rest) or a reference to a key kept on the device.
 */
export type StoredKey =
  | { form: 'material'; kind: KeyKind; bytes: Uint8Array }
  | { form: 'reference'; kind: KeyKind; ref: string };

/** A cipher stream's parameters: the IV (CBC) or the nonce and associated data (AEAD). */
export interface CipherParams {
  /** CBC modes: 16 bytes. */
  iv?: Uint8Array | undefined;
  /** AEAD modes: the nonce. */
  nonce?: Uint8Array | undefined;
  /** AEAD modes: associated data. */
  aad?: Uint8Array | undefined;
}

/**
 * What ends an operation (the stream factories and final, sign, verify) may
 * answer without a promise: a backend that computes in the calling process
 * (the software SE) does, which spares a small operation its asynchronous
 * turns; a device backend answers with a promise. Callers handle both (and a
 * failure either thrown or rejected).
 */
export type MaybePromise<T> = T | Promise<T>;

/**
 * `into`, on update and final, is room the caller offers for the output (at
 * least the input length plus 32 bytes): a backend may write the output there,
 * from its start, and return a view of it, which spares an allocation per
 * batch. A backend that does not returns its own array; callers handle both.
 */
export interface CipherStream {
  /** Feeds input; returns output that is final already (possibly empty), in `into` or an array handed over. */
  update(data: Uint8Array, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * Ends the message and returns the remaining output (AEAD encryption: with
   * the tag appended). AEAD decryption verifies the tag here; a caller must
   * not release output of earlier updates before this resolved. One that
   * fails leaves none of its output in `into` (the caller keeps that room). All output of a
   * message is at most its length plus 32 bytes; more answers 5000.
   */
  final(last?: Uint8Array, into?: Uint8Array): MaybePromise<Uint8Array>;
  /** Ends the stream without a result; must not throw (the engine ignores a throw and goes on). */
  abort(): void;
}

/** A hash stream of a backend (SecureEnvironmentBackend.digest()). */
export interface DigestStream {
  /** Feeds `data` (lent). */
  update(data: Uint8Array): Promise<void>;
  /** The digest, handed over: the hash's output length exactly (32, 48 or 64 bytes). */
  final(last?: Uint8Array): MaybePromise<Uint8Array>;
  /** Ends the stream without a result; must not throw (the engine ignores a throw and goes on). */
  abort(): void;
}

/** How a <signature> resource signs and verifies (ECDSA only; a MAC ignores both). */
export interface SignatureOptions {
  /** ECDSA: 'der' (X9.62 ECDSA-Sig-Value, strict) or 'raw' (r || s, fixed length). */
  format: 'der' | 'raw';
  /** ECDSA: the message is already the digest of the algorithm's hash. */
  prehashed: boolean;
}

/** Absorbs the message, then either signs (or MACs) it or verifies a signature over it. */
export interface SignatureStream {
  /** Feeds message data (lent). */
  update(data: Uint8Array): Promise<void>;
  /**
   * The signature or MAC, handed over: a MAC of its algorithm's length, a raw ECDSA signature of
   * twice the coordinate length, a DER one a strict ECDSA-Sig-Value of the curve.
   */
  sign(last?: Uint8Array): MaybePromise<Uint8Array>;
  /**
   * Resolves false for a well-formed signature that does not verify (MACs compare in constant time).
   * A boolean only: anything else (a string "false", 1) answers 5000. `signature` is lent.
   */
  verify(signature: Uint8Array, last?: Uint8Array): MaybePromise<boolean>;
  /** Ends the stream without a result; must not throw (the engine ignores a throw and goes on). */
  abort(): void;
}

/** Sensitive data kept by the device itself (e.g. PUT DATA / GET DATA on a card). */
export interface ObjectStore {
  /** `data` is lent: the engine zeroizes it once this settled, so a device that keeps it in memory copies it. */
  write(id: string, data: Uint8Array): Promise<void>;
  /**
   * The data, handed over: a fresh array of exactly `length` bytes (how many were written), which
   * the engine zeroizes once it answered with it, so never the array the device keeps. Any other
   * type or length answers 5000 (and a wrong array is zeroized).
   */
  read(id: string, length?: number): Promise<Uint8Array>;
  /** Deletes the data kept under `id`. */
  remove(id: string): Promise<void>;
}

/**
 * A secure environment the Mcs engine hosts (McsEngine.create({ backends })). The contract, which
 * the engine checks where it can (docs/mcs.md "Writing a backend"):
 *
 * - Arguments are lent for the call: key material, data chunks, `into`, a signature to verify. The
 *   engine may zeroize or reuse them once the call settled, so a backend copies what it keeps.
 * - Results are handed over: each byte result (digest, MAC or signature, random bytes, exported or
 *   public key, cipher output not written into `into`) is a fresh array over memory of its own that
 *   the backend no longer uses, never a view of memory it reuses (a WASM library's memory, a random
 *   pool). The engine checks it (a Uint8Array, readable, of the length the algorithm or request
 *   fixes), then keeps it as it is (in the resource, or given to the client of a binary response)
 *   and zeroizes it when done; a result that fails the check answers 5000 naming what was wrong.
 * - Key handles are made with markKeyHandle (see KeyHandle).
 * - Errors are the typed errors of senv (exported by the package root): AuthenticationError (a
 *   tag or MAC that does not verify), PaddingError, LengthError or InvalidValueError (bad key,
 *   nonce or data) answer 4102; StateError 4005; UnknownAlgorithmError 5001; DeviceFullError 5207.
 *   Their messages go into the response's m2m:dbg as they are: messages must not carry key or data
 *   bytes. They are told apart by class identity: the classes of the copy of senv the engine runs
 *   (a typed error of another copy, as any other error, answers 5000 showing only its code or
 *   class name, never its message).
 * - Streams are fed in the order of the data; `final` may carry the last chunk so that a short
 *   message costs one call. A stream is finished by final, sign, verify or abort, exactly once;
 *   abort() must not throw (the engine tolerates one that does, and ignores its rejection).
 *   The streams fed while UPDATEs arrive are speculative: one whose factory or update() fails is
 *   aborted and its message replayed on a new stream by the operation that ends it, where a
 *   failure answers; a broken update() shows only as slower operations.
 * - description and capabilities are read after open() and checked at McsEngine.create against
 *   the TS-0016 tables (InvalidInputError naming the unique ID and the field).
 */
export interface SecureEnvironmentBackend {
  /** Who the SE is; read after open(). */
  readonly description: BackendDescription;
  /** What the SE can do; read after open(). */
  readonly capabilities: BackendCapabilities;
  /** Present when <sensitiveDataObject> contents live on the device; otherwise the host keeps them (sealed at rest). */
  readonly objectStore?: ObjectStore | undefined;

  /**
   * Brings the backend up (self test, card connection); called by McsEngine.create before any
   * other call. One open engine uses a backend instance at a time: create refuses an instance
   * another open engine hosts. After that engine closed (and called close()), or after a create
   * that failed, the instance may be given to create again, which calls open() again: a backend
   * left open by a failed create (create does not close the caller's backends) must accept that;
   * one the engine closed may refuse.
   */
  open(): Promise<void>;
  /** [SEReboot]: drops volatile state (open streams, session keys) and reruns the start-up checks. */
  reboot(type: RebootType): Promise<void>;
  /**
   * Releases everything; further calls fail. engine.close() calls it once per engine, whatever
   * failed before, and rejects afterwards with a senv error as thrown (its message should name the
   * device) or a StateError naming the SE for anything else.
   */
  close(): Promise<void>;
  /**
   * Non-volatile memory in bytes, for the [memory] mgmtObj. With keyStorage
   * 'host' its total is the default quota of what the host may keep for the
   * SE (McsEngineOptions.memoryQuota); the engine counts that itself. Non-negative integers
   * (at create an invalid figure fails the create; later, it answers 5000).
   */
  memoryInfo(): Promise<{ total: number; available: number }>;

  /** `length` random bytes exactly, handed over. */
  random(type: RngType, length: number): Promise<Uint8Array>;

  /**
   * Imports a key: AES key bytes, HMAC key, ECDSA private scalar ('secret') or SEC1 point ('public').
   * `material` is lent: the engine zeroizes it once this settled, so a backend copies it.
   */
  importKey(spec: KeySpec, kind: KeyKind, material: Uint8Array): Promise<KeyHandle>;
  /** Generates a secret key of the size the algorithm fixes (HMAC: the hash's output length). */
  generateKey(spec: KeySpec): Promise<KeyHandle>;
  /** ECDSA keys: the uncompressed SEC1 public point, handed over; undefined for symmetric keys. */
  publicKey(key: KeyHandle): Promise<Uint8Array | undefined>;
  /**
   * The key's bytes for a caller that created it exportable; a device may refuse (StateError).
   * Handed over: a copy, never the array the backend keys with, since the engine zeroizes it.
   */
  exportKey(key: KeyHandle): Promise<Uint8Array>;
  /**
   * The key in the form the journal keeps, of the key's kind: with keyStorage 'host' its material
   * (a copy the caller owns, of a length the key's algorithm takes; the host zeroizes it once
   * sealed), with 'device' a reference (a non-empty string). Anything else answers 5000 and
   * nothing is written: a record loadKey could not read would fail the next McsEngine.create.
   */
  storeKey(key: KeyHandle): Promise<StoredKey>;
  /**
   * Takes its own copy of material: the host zeroizes `stored.bytes` once this settled. Called by
   * McsEngine.create for each key of the data directory: what it throws fails the create as it is
   * (the caller's to retry), and a result that is no key handle fails it with an InvalidInputError
   * naming the backend's unique ID.
   */
  loadKey(spec: KeySpec, stored: StoredKey): Promise<KeyHandle>;
  /**
   * Forgets the handle: zeroizes the host's copy of the material (software);
   * a device keeps the key itself (the engine closing with a data directory
   * that still names it). Idempotent; never throws (a removal runs it after
   * the store recorded the removal: the engine ignores a throw).
   */
  releaseKey(key: KeyHandle): void;
  /**
   * The key's resource is gone (deleted, expired, deregistered, a refused
   * CREATE, or an engine closing with nothing that could load it again): a
   * device deletes the key too (in the background: a deletion that fails is
   * the backend's to retry). Without it, releaseKey serves. Idempotent; never throws.
   */
  deleteKey?(key: KeyHandle): void;

  /** A new hash stream of `algorithm`. */
  digest(algorithm: HashAlgorithm): MaybePromise<DigestStream>;
  /** A new encryption or decryption stream under `key`, whose spec names `algorithm`. */
  cipher(algorithm: CipherAlgorithm, key: KeyHandle, direction: 'encrypt' | 'decrypt', params: CipherParams): MaybePromise<CipherStream>;
  /** A new stream that signs (or MACs) or verifies under `key`, whose spec names `algorithm`. */
  signature(algorithm: SignatureAlgorithm, key: KeyHandle, options: SignatureOptions): MaybePromise<SignatureStream>;
}

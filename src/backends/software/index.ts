// The software SE (SEType 4, security level 1): every operation runs on the
// WASM core in this process. Each algorithm family is one small adapter in
// this folder; this class only routes and keeps keys.
import type {
  BackendCapabilities, BackendDescription, CipherAlgorithm, CipherParams, CipherStream, DigestStream, HashAlgorithm, KeyHandle, KeyKind, KeySpec, RebootType, RngType, SecureEnvironmentBackend, SignatureAlgorithm, SignatureOptions, SignatureStream, StoredKey,
} from '../backend.ts';
import { ALL_REBOOT_TYPES } from '../algorithms.ts';
import { checkCipherParams, checkDirection, checkKeyUse, checkRandomLength, checkRebootType, checkSignatureOptions, checkStoredKey, checkUniqueId } from '../checks.ts';
import { InvalidInputError, SelfTestError, StateError, UnknownAlgorithmError } from '../../core/errors.ts';
import { optionsArg, shown, type OptionNames } from '../../core/args.ts';
import { selftest } from '../../core/selftest.ts';
import { frozen } from '../../core/frozen.ts';
import { core } from '../../core/loader.ts';
import { HASH_ALGORITHMS, openDigest } from './digest.ts';
import { MAC_ALGORITHMS, openMac } from './mac.ts';
import { RNG_SOURCES, SOFTWARE_RNG_TYPES, SoftwareRng } from './random.ts';
import { randomBytes } from '../../core/drbg.ts';
import { CIPHER_ALGORITHMS, openCipher } from './cipher.ts';
import { ECDSA_ALGORITHMS, ecdsaKeygen, ecdsaPublicKey, openEcdsa } from './ecdsa.ts';
import { asSoftwareKey, SoftwareKey } from './keys.ts';
import { secretCopy, toHex } from '../../core/bytes.ts';
import { checkMaterial, specInfo } from '../key-material.ts';
import { SENV_VERSION } from '../../version.ts';

/** Options of new SoftwareBackend(); both may be left out. */
export interface SoftwareBackendOptions {
  /**
   * Unique ID part of the M2M-SE-ID. Absent: a random one, which an engine
   * with a data directory replaces with the one it keeps there, so that the
   * SE's resources come back at a restart.
   */
  uniqueId?: string | undefined;
  /** Bytes reported as non-volatile memory of this SE: the quota of host storage it grants. */
  storageQuota?: number | undefined;
}

const OPTIONS: OptionNames<SoftwareBackendOptions> = { uniqueId: true, storageQuota: true };

/** Software SEs made without a uniqueId, until an engine with a data directory gives them the one it keeps. */
const unnamed = new WeakSet<SoftwareBackend>();

/** Whether `b` is a software SE made without a uniqueId and not yet opened. */
export function unnamedSoftware(b: unknown): b is SoftwareBackend {
  return b instanceof SoftwareBackend && unnamed.has(b);
}

/** Gives such an SE the ID a data directory keeps for it (McsEngine.create). */
export function nameSoftware(b: SoftwareBackend, uniqueId: string): void {
  unnamed.delete(b);
  b.description.uniqueId = uniqueId;
}


/** The software SE (SEType 4, security level 1) on the WASM core: what McsEngine.create() hosts by default. */
export class SoftwareBackend implements SecureEnvironmentBackend {
  readonly description: BackendDescription;
  readonly capabilities: BackendCapabilities;
  readonly #quota: number;
  readonly #rng = new SoftwareRng();
  #state: 'new' | 'open' | 'failed' | 'closed' = 'new';
  /** The keys it made or loaded and not yet released: close() releases what is left. */
  readonly #keys = new Set<SoftwareKey>();

  constructor(opts?: SoftwareBackendOptions | null) {
    const options = optionsArg(opts, 'SoftwareBackend options', OPTIONS) ?? {};
    const { uniqueId, storageQuota } = options;
    if (uniqueId !== undefined) checkUniqueId(uniqueId, 'uniqueId');
    if (storageQuota !== undefined && !(Number.isSafeInteger(storageQuota) && storageQuota >= 0)) {
      throw new InvalidInputError(`storageQuota must be a number of bytes (an integer from 0), got ${shown(storageQuota)}`);
    }
    this.description = {
      seType: 4,
      securityLevel: 1,
      uniqueId: uniqueId ?? toHex(randomBytes(16)),
      manufacturer: 'onem2m-senv',
      model: 'software SE on the senv WASM core',
      firmwareVersion: `core ABI ${core().info.abiVersion}`,
      softwareVersion: SENV_VERSION,
      hardwareVersion: 'none: a software SE on the host CPU',
      rngSources: RNG_SOURCES,
    };
    // Frozen (core/frozen.ts): the lists and rngSources above are this module's own, handed out by
    // every instance and read by its checks, so a write through one SE would change them all (the
    // signature list, made for each instance, is frozen alike).
    this.capabilities = {
      cipherAlgorithms: CIPHER_ALGORITHMS,
      hashAlgorithms: HASH_ALGORITHMS,
      signatureAlgorithms: frozen([...MAC_ALGORITHMS, ...ECDSA_ALGORITHMS]),
      rngTypes: SOFTWARE_RNG_TYPES,
      rebootTypes: ALL_REBOOT_TYPES,
      preferredBatchSize: 32 * 1024,
      maxRandomLength: 1 << 20,
      keyStorage: 'host',
    };
    this.#quota = storageQuota ?? 64 * 1024 * 1024;
    if (uniqueId === undefined) unnamed.add(this);
  }

  async open(): Promise<void> {
    // Its ID is fixed once it serves (the M2M-SE-ID is made from it).
    unnamed.delete(this);
    this.#check();
  }

  /**
   * Both reset types drop the DRBG state and rerun the core's known-answer
   * self test; the Mcs layer aborts its open streams first (they are its
   * volatile state). Keys are resource state and survive, as on a card.
   */
  async reboot(type: RebootType): Promise<void> {
    if (this.#state === 'closed') throw new StateError('backend closed');
    checkRebootType(type);
    this.#rng.reset();
    this.#check();
  }

  /** Releases (zeroizes) every key it made or loaded that is still held, too. */
  async close(): Promise<void> {
    this.#rng.reset();
    this.#state = 'closed';
    for (const k of this.#keys) k.release();
    this.#keys.clear();
  }

  /** close(), for `await using x = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The whole quota: the software SE itself stores nothing; the engine counts what the host keeps against it (McsEngineOptions.memoryQuota overrides it). */
  async memoryInfo(): Promise<{ total: number; available: number }> {
    return { total: this.#quota, available: this.#quota };
  }

  async random(type: RngType, length: number): Promise<Uint8Array> {
    this.#live();
    return this.#rng.bytes(type, checkRandomLength(length, this.capabilities));
  }

  /** ECDSA keys are checked on import: a scalar outside [1, n-1] fails here (InvalidValueError), not at first use. */
  async importKey(spec: KeySpec, kind: KeyKind, material: Uint8Array): Promise<KeyHandle> {
    this.#live();
    const key = this.#issue(new SoftwareKey(spec, kind, checkMaterial(spec, kind, material)));
    if (spec.use === 'signature' && kind === 'secret' && ECDSA_ALGORITHMS.includes(spec.algorithm)) {
      try {
        ecdsaPublicKey(spec.algorithm, key).fill(0);
      } catch (e) {
        this.releaseKey(key);
        throw e;
      }
    }
    return key;
  }

  async generateKey(spec: KeySpec): Promise<KeyHandle> {
    this.#live();
    const info = specInfo(spec);
    const ec = spec.use === 'signature' && ECDSA_ALGORITHMS.includes(spec.algorithm);
    const bytes = ec ? ecdsaKeygen(spec.algorithm as SignatureAlgorithm) : this.#rng.bytes(1, info.generatedKeyLength);
    try {
      return this.#issue(new SoftwareKey(spec, 'secret', bytes));
    } finally {
      bytes.fill(0);
    }
  }

  async publicKey(key: KeyHandle): Promise<Uint8Array | undefined> {
    const k = this.#held(key);
    return k.spec.use === 'signature' && ECDSA_ALGORITHMS.includes(k.spec.algorithm) ? ecdsaPublicKey(k.spec.algorithm, k) : undefined;
  }

  async exportKey(key: KeyHandle): Promise<Uint8Array> {
    return secretCopy(this.#held(key).bytes);
  }

  async storeKey(key: KeyHandle): Promise<StoredKey> {
    const k = this.#held(key);
    return { form: 'material', kind: k.kind, bytes: secretCopy(k.bytes) };
  }

  async loadKey(spec: KeySpec, stored: StoredKey): Promise<KeyHandle> {
    this.#notClosed();
    stored = checkStoredKey(stored);
    if (stored.form !== 'material') throw new StateError('the software SE keeps no device key references');
    return this.#issue(new SoftwareKey(spec, stored.kind, checkMaterial(spec, stored.kind, stored.bytes)));
  }

  releaseKey(key: KeyHandle): void {
    if (!(key instanceof SoftwareKey)) return;
    key.release();
    this.#keys.delete(key);
  }

  digest(algorithm: HashAlgorithm): DigestStream {
    this.#live();
    if (!HASH_ALGORITHMS.includes(algorithm)) throw new UnknownAlgorithmError(`hash algorithm ${shown(algorithm)}`);
    return openDigest(algorithm);
  }

  cipher(algorithm: CipherAlgorithm, key: KeyHandle, direction: 'encrypt' | 'decrypt', params: CipherParams): CipherStream {
    this.#live();
    if (!CIPHER_ALGORITHMS.includes(algorithm)) throw new UnknownAlgorithmError(`cipher algorithm ${shown(algorithm)}`);
    return openCipher(algorithm, keyFor(key, 'cipher', algorithm), checkDirection(direction), checkCipherParams(params));
  }

  signature(algorithm: SignatureAlgorithm, key: KeyHandle, options: SignatureOptions): SignatureStream {
    this.#live();
    if (!MAC_ALGORITHMS.includes(algorithm) && !ECDSA_ALGORITHMS.includes(algorithm)) throw new UnknownAlgorithmError(`signature algorithm ${shown(algorithm)}`);
    options = checkSignatureOptions(options);
    const k = keyFor(key, 'signature', algorithm);
    return MAC_ALGORITHMS.includes(algorithm) ? openMac(algorithm, k) : openEcdsa(algorithm, k, options);
  }

  #check(): void {
    const r = selftest();
    this.#state = r.ok ? 'open' : 'failed';
    if (!r.ok) throw new SelfTestError(`self test failed: ${r.results.filter((t) => !t.ok).map((t) => t.name).join(', ')}`);
  }

  #live(): void {
    if (this.#state !== 'open') throw new StateError(`software SE is ${this.#state === 'failed' ? 'in self-test failure' : this.#state}`);
  }

  /** Keys are still read out of an SE in self-test failure (the store keeps writing its resources), not once it closed. */
  #notClosed(): void {
    if (this.#state === 'closed') throw new StateError('backend closed');
  }

  #held(key: KeyHandle): SoftwareKey {
    this.#notClosed();
    return asSoftwareKey(key);
  }

  #issue(key: SoftwareKey): SoftwareKey {
    this.#keys.add(key);
    return key;
  }
}

function keyFor(key: KeyHandle, use: KeySpec['use'], algorithm: number): SoftwareKey {
  const k = asSoftwareKey(key);
  checkKeyUse(k.spec, use, algorithm);
  return k;
}

// ECDSA over P-256, P-384 and P-521: ecdsa(curve) returns the key generation,
// signing and verification functions of one curve. Messages are hashed here
// (or passed prehashed); the core signs digests with RFC 6979 nonces, hedged
// with fresh randomness unless the caller asks for deterministic signatures.
import { copyArg, EMPTY, type Bytes } from './bytes.ts';
import { core, type Core } from './loader.ts';
import { InvalidInputError, InvalidValueError, LengthError, statusError, UnknownAlgorithmError } from './errors.ts';
import { bytesArg, flagArg, optionsArg, shown, type OptionNames } from './args.ts';
import { hash, hashId, DIGEST_LENGTHS, type HashName } from './hash.ts';
import { randomBytes, systemRandom } from './drbg.ts';
import { rawToDer, derToRaw } from './ecdsa-der.ts';

export interface EcExports {
  ec_scalar_length(curve: number): number;
  ec_precompute(curve: number): number;
  ec_public_key(curve: number, sk: number, out: number, compressed: number): number;
  ec_public_key_check(curve: number, pk: number, pkLen: number): number;
  ec_sign(curve: number, hash: number, sk: number, digest: number, digestLen: number, extra: number, extraLen: number, out: number): number;
  /** Known-answer tests only (CAVP SigGen fixes k); not part of the package API. */
  ec_sign_with_k(curve: number, sk: number, digest: number, digestLen: number, k: number, out: number): number;
  ec_verify(curve: number, pk: number, pkLen: number, digest: number, digestLen: number, sig: number): number;
}

/** The NIST curves senv signs on (FIPS 186-5). */
export type CurveName = 'P-256' | 'P-384' | 'P-521';
/** A signature's encoding: 'der' (X9.62 ECDSA-Sig-Value) or 'raw' (r || s, each half scalarLength bytes). */
export type SignatureFormat = 'der' | 'raw';

/** Options of verify(). */
export interface VerifyOptions {
  /** Hash applied to the message; default the curve's own (SHA-256, SHA-384, SHA-512). */
  hash?: HashName | undefined;
  /** 'der' (X9.62 ECDSA-Sig-Value, default) or 'raw' (r || s, fixed length). */
  format?: SignatureFormat | undefined;
  /** The message is already a digest of `hash` (its length must match). */
  prehashed?: boolean | undefined;
  /**
   * Not here: hedging is the signer's, and verify() refuses it (InvalidInputError). Typed `never` so
   * that sign()'s options, reused for verify(), are refused when compiled rather than when run.
   */
  extraEntropy?: never;
}

/** Options of sign(): verify()'s and the nonce's hedging. */
export interface SignOptions extends Omit<VerifyOptions, 'extraEntropy'> {
  /**
   * Hedging of the RFC 6979 nonce (section 3.6): true (default) mixes fresh
   * bytes from the runtime CSPRNG in, false gives the purely deterministic
   * signature, bytes are used as the extra input as given.
   */
  extraEntropy?: boolean | Uint8Array | undefined;
}

/** The option names verify() reads (its `extraEntropy` is typed only to refuse sign()'s options). */
type VerifyOptionNames = OptionNames<Omit<VerifyOptions, 'extraEntropy'>>;

const VERIFY_OPTIONS: VerifyOptionNames = { hash: true, format: true, prehashed: true };
// Hedging is the signer's: a verify given extraEntropy is refused, not left to ignore it.
const SIGN_OPTIONS: OptionNames<SignOptions> = { ...VERIFY_OPTIONS, extraEntropy: true };

/** A key pair from keygen(). */
export interface KeyPair {
  /** The private scalar, big-endian, scalarLength bytes (32, 48 or 66). */
  secretKey: Bytes;
  /** The uncompressed SEC1 point: 0x04, then x and y of scalarLength bytes each. */
  publicKey: Bytes;
}

/** ECDSA on one curve (from ecdsa()). Messages come first, keys after them. */
export interface Ecdsa {
  /** The curve these functions work on. */
  readonly curve: CurveName;
  /** Length of a secret key and of each half of a raw signature. */
  readonly scalarLength: number;
  /** A new key pair, its scalar drawn from randomBytes (rejection sampling, FIPS 186-5 A.2.2). */
  keygen(): KeyPair;
  /** SEC1 public key: uncompressed (default) or compressed. */
  getPublicKey(secretKey: Uint8Array, compressed?: boolean | null): Bytes;
  /**
   * The signature of `message` (hashed with the curve's own hash unless `opts` says otherwise) under
   * `secretKey`: DER by default, hedged RFC 6979 nonce.
   * @throws LengthError for a key or a prehashed digest of the wrong length, extraEntropy above 1,024 bytes;
   * InvalidValueError for a key outside [1, n-1]; InvalidInputError or UnknownAlgorithmError for bad options.
   */
  sign(message: Uint8Array, secretKey: Uint8Array, opts?: SignOptions | null): Bytes;
  /**
   * Whether `publicKey` is a SEC1 point of this curve (uncompressed or compressed, on the curve,
   * not the identity): the check verify() makes, for a key received before any signature.
   */
  isPublicKey(publicKey: Uint8Array): boolean;
  /** False for a well-formed but invalid or malformed signature; throws for unusable keys or options. */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, opts?: VerifyOptions | null): boolean;
}

// id: the core's curve id (field size in bits); bytes: scalar and coordinate length.
const CURVES: Readonly<Record<CurveName, { id: number; bytes: number; hash: HashName }>> = Object.freeze({
  'P-256': { id: 256, bytes: 32, hash: 'SHA-256' },
  'P-384': { id: 384, bytes: 48, hash: 'SHA-384' },
  'P-521': { id: 521, bytes: 66, hash: 'SHA-512' },
});

// I/O window layout of one call: inputs at fixed offsets, output after them.
const AT_KEY = 0; // secret key or public key (<= 133 bytes)
const AT_DIGEST = 256;
const AT_EXTRA = 512; // extra entropy, up to MAX_EXTRA bytes
const MAX_EXTRA = 1024;
const AT_OUT = AT_EXTRA + MAX_EXTRA;
/** All of the window a call uses (an output is at most 133 bytes, a P-521 public key): zeroized after every call. */
const USED = AT_OUT + 1 + 2 * 66;

/** Runs `fn` on the core, then zeroizes the part of the I/O window the call used, whatever happened. */
function inWindow<T>(fn: (c: Core) => T): T {
  const c = core();
  try {
    return fn(c);
  } finally {
    c.x.zeroize(c.io, USED);
  }
}

/**
 * What a secret key is, for the refusals of one of another length: keys from the PKI world come as
 * PKCS#8 or SEC1 DER (or PEM, or JWK), whose length alone would not tell their holder what to send.
 */
export const SCALAR_FORM = 'the private scalar, big-endian: a PKCS#8, SEC1 or JWK key is converted first';

const instances = new Map<CurveName, Ecdsa>();

/** The ECDSA functions of one curve: 'P-256', 'P-384' or 'P-521'. */
export function ecdsa(curve: CurveName): Ecdsa {
  const known = typeof curve === 'string' && Object.hasOwn(CURVES, curve);
  if (!known) throw new UnknownAlgorithmError(`unknown curve (got ${shown(curve)}): expected one of ${Object.keys(CURVES).join(', ')}`);
  let e = instances.get(curve);
  if (!e) {
    e = makeEcdsa(curve);
    instances.set(curve, e);
  }
  return e;
}

/**
 * Builds the generator tables of a curve now (they are otherwise built on the
 * first key generation, signature or verification); returns the milliseconds it took.
 */
export function ecdsaPrecompute(curve: CurveName): number {
  ecdsa(curve);
  const c = core();
  const t0 = performance.now();
  c.x.ec_precompute(CURVES[curve].id);
  return performance.now() - t0;
}

function makeEcdsa(curve: CurveName): Ecdsa {
  const { id, bytes: sb, hash: defaultHash } = CURVES[curve];

  function checkSecret(key: Uint8Array): Uint8Array {
    const secretKey = bytesArg(key, 'secretKey');
    if (secretKey.length !== sb) throw new LengthError(`secretKey must be ${sb} bytes for ${curve} (${SCALAR_FORM}), got ${secretKey.length}`);
    return secretKey;
  }

  function checkPublic(key: Uint8Array): Uint8Array {
    const publicKey = bytesArg(key, 'publicKey');
    if (publicKey.length !== 1 + 2 * sb && publicKey.length !== 1 + sb) {
      throw new LengthError(`publicKey must be a SEC1 point of ${curve}, ${1 + 2 * sb} (uncompressed) or ${1 + sb} (compressed) bytes (an SPKI key is converted first), got ${publicKey.length}`);
    }
    return publicKey;
  }

  // Every option is read once, before any byte argument is: an options getter runs no later than
  // this, so it cannot detach or shrink a buffer whose view the call has already taken.
  function optionsOf(options: SignOptions | null | undefined, what: string, known: VerifyOptionNames): SignOptions {
    const o = optionsArg(options, what, known);
    return { hash: o?.hash, format: o?.format, prehashed: o?.prehashed, extraEntropy: o?.extraEntropy };
  }

  function digestOf(input: Uint8Array, opts: SignOptions): { digest: Uint8Array; hashName: HashName } {
    const message = bytesArg(input, 'message');
    const hashName = opts.hash ?? defaultHash;
    hashId(hashName);
    if (!flagArg(opts.prehashed, 'prehashed', false)) return { digest: hash(hashName, message), hashName };
    const dl = DIGEST_LENGTHS[hashName];
    if (message.length !== dl) throw new LengthError(`prehashed message must be a ${dl}-byte ${hashName} digest, got ${message.length} bytes`);
    return { digest: message, hashName };
  }

  function formatOf(opts: SignOptions): SignatureFormat {
    const format = opts.format ?? 'der';
    if (format !== 'der' && format !== 'raw') throw new InvalidInputError(`format must be 'der' or 'raw', got ${shown(format)}`);
    return format;
  }

  function getPublicKey(key: Uint8Array, compressed?: boolean | null): Bytes {
    const secretKey = checkSecret(key);
    const form = flagArg(compressed, 'compressed', false);
    return inWindow((c) => {
      c.mem().set(secretKey, c.io + AT_KEY);
      const n = c.x.ec_public_key(id, c.io + AT_KEY, c.io + AT_OUT, form ? 1 : 0);
      if (n < 0) throw n === -8 ? new InvalidValueError(`secretKey is not a valid ${curve} scalar (must be in [1, n-1])`) : statusError(n, 'ECDSA getPublicKey');
      return c.read(c.io + AT_OUT, n);
    });
  }

  function keygen(): KeyPair {
    // Rejection sampling (FIPS 186-5 A.2.2): P-521 keys keep only 521 bits.
    for (;;) {
      const secretKey = randomBytes(sb);
      if (id === 521) secretKey[0] = secretKey[0]! & 0x01;
      try {
        return { secretKey, publicKey: getPublicKey(secretKey) };
      } catch (e) {
        secretKey.fill(0);
        if (!(e instanceof InvalidValueError)) throw e;
      }
    }
  }

  function sign(message: Uint8Array, key: Uint8Array, options?: SignOptions | null): Bytes {
    const opts = optionsOf(options, 'sign options', SIGN_OPTIONS);
    const secretKey = checkSecret(key);
    const { digest, hashName } = digestOf(message, opts);
    const format = formatOf(opts);
    const hedge = opts.extraEntropy ?? true;
    let extra: Uint8Array;
    // Outside V8's heap, as the DRBG's seed material is: the zero-fill below must reach every copy.
    if (hedge === true) extra = systemRandom(sb);
    else if (hedge === false) extra = EMPTY;
    else {
      extra = bytesArg(hedge, 'extraEntropy');
      if (extra.length > MAX_EXTRA) throw new LengthError(`extraEntropy must be at most ${MAX_EXTRA} bytes`);
    }
    const raw = inWindow((c) => {
      const mem = c.mem();
      mem.set(secretKey, c.io + AT_KEY);
      mem.set(digest, c.io + AT_DIGEST);
      mem.set(extra, c.io + AT_EXTRA);
      let n: number;
      try {
        n = c.x.ec_sign(id, hashId(hashName), c.io + AT_KEY, c.io + AT_DIGEST, digest.length, c.io + AT_EXTRA, extra.length, c.io + AT_OUT);
      } finally {
        if (hedge === true) extra.fill(0);
      }
      if (n < 0) throw n === -8 ? new InvalidValueError(`secretKey is not a valid ${curve} scalar (must be in [1, n-1])`) : statusError(n, 'ECDSA sign');
      return c.read(c.io + AT_OUT, n);
    });
    return format === 'raw' ? raw : rawToDer(raw);
  }

  function verify(sig: Uint8Array, message: Uint8Array, key: Uint8Array, options?: VerifyOptions | null): boolean {
    const opts = optionsOf(options, 'verify options', VERIFY_OPTIONS);
    // A private copy: the DER checks and the bytes verified must be the same (a caller's buffer may be
    // shared memory another thread writes meanwhile).
    const signature = copyArg(sig, 'signature');
    const publicKey = checkPublic(key);
    const { digest } = digestOf(message, opts);
    const format = formatOf(opts);
    const raw = format === 'raw' ? (signature.length === 2 * sb ? signature : undefined) : derToRaw(signature, sb);
    return inWindow((c) => {
      const mem = c.mem();
      mem.set(publicKey, c.io + AT_KEY);
      if (!raw) {
        // Still reject an unusable key, so the answer does not depend on the signature.
        if (c.x.ec_public_key_check(id, c.io + AT_KEY, publicKey.length) !== 1) throw badKey();
        return false;
      }
      mem.set(digest, c.io + AT_DIGEST);
      mem.set(raw, c.io + AT_OUT);
      const r = c.x.ec_verify(id, c.io + AT_KEY, publicKey.length, c.io + AT_DIGEST, digest.length, c.io + AT_OUT);
      if (r === -8) throw badKey();
      if (r < 0) throw statusError(r, 'ECDSA verify');
      return r === 1;
    });
  }

  function isPublicKey(key: Uint8Array): boolean {
    const publicKey = bytesArg(key, 'publicKey');
    if (publicKey.length !== 1 + 2 * sb && publicKey.length !== 1 + sb) return false;
    return inWindow((c) => {
      c.mem().set(publicKey, c.io + AT_KEY);
      return c.x.ec_public_key_check(id, c.io + AT_KEY, publicKey.length) === 1;
    });
  }

  const badKey = () => new InvalidValueError(`publicKey is not a valid ${curve} point`);

  return Object.freeze({ curve, scalarLength: sb, keygen, getPublicKey, isPublicKey, sign, verify });
}

// Project Wycheproof (C2SP/wycheproof, testvectors_v1) for every primitive
// senv implements that it covers: AES-GCM and GMAC, AES-CCM, AES-CBC with PKCS#5
// padding, AES-CMAC, HMAC-SHA-256/384/512 and ECDSA verification (DER and
// raw signatures). Its edge cases are the ones random tests rarely reach: GCM's
// 32-bit counter wrapping after a long nonce's GHASH, every tag bit flipped,
// padding bytes that are almost right, BER and other not-quite-DER signature
// encodings, r and s at the edges of [1, n).
//
// Every test of a file is run and counted. "valid" must give the file's
// output (and decrypt back), "invalid" must be refused (a typed error at
// construction for parameters senv does not take, AuthenticationError or
// PaddingError for data, false from verify), "acceptable" may go either way
// but must never give a wrong output. The ECDSA files and the GCM tests that
// fit <cipher> 1001 / 1002 also run through the Mcs engine. senv implements
// AES-128 and AES-256 only (TS-0016 names no AES-192): a 24-byte key is
// refused with LengthError, and those tests are counted apart, to the exact
// number the file has.
import {
  gcm, ccm, cbc, cmac, hmac, ecdsa,
  AuthenticationError, LengthError, PaddingError,
  type Aead, type CurveName, type HashName,
} from '../../src/index.ts';
import { type PortableCase, type ReadVector, equalHex, equal, ok, throws, unhex, hex } from './harness.ts';
import { b64, body, engineWith, fails as mcsFails, ok as mcsOk, Session, softwareSe, unb64 } from './mcs-kit.ts';

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  result: 'valid' | 'invalid' | 'acceptable';
  [field: string]: unknown;
}

interface WycheproofGroup {
  type: string;
  keySize?: number;
  ivSize?: number;
  tagSize?: number;
  tests: WycheproofTest[];
  [field: string]: unknown;
}

interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: WycheproofGroup[];
}

/** The parsed file, checked to hold as many tests as its header says. */
async function load(read: ReadVector, name: string, algorithm: string): Promise<WycheproofFile> {
  const file = JSON.parse(await read(`wycheproof/${name}`)) as WycheproofFile;
  equal(file.algorithm, algorithm, `${name}: algorithm`);
  const count = file.testGroups.reduce((n, g) => n + g.tests.length, 0);
  equal(count, file.numberOfTests, `${name}: tests in the file against numberOfTests`);
  return file;
}

const str = (t: WycheproofTest, field: string): string => {
  const v = t[field];
  ok(typeof v === 'string', `tcId ${t.tcId}: field ${field} is not a string`);
  return v;
};
const bytes = (t: WycheproofTest, field: string): Uint8Array => unhex(str(t, field));
const label = (name: string, t: WycheproofTest) => `${name} tcId ${t.tcId} (${t.comment || t.flags.join(', ')})`;

/** Tallies of one file's results, checked against the file at the end. */
class Tally {
  valid = 0;
  invalid = 0;
  acceptable = 0;
  /** Tests with a 24-byte (AES-192) key, refused as senv takes AES-128/256 only. */
  aes192 = 0;

  add(t: WycheproofTest): void {
    this[t.result]++;
  }

  check(file: WycheproofFile, aes192: number): void {
    equal(this.valid + this.invalid + this.acceptable, file.numberOfTests, `${file.algorithm}: tests run`);
    equal(this.aes192, aes192, `${file.algorithm}: AES-192 tests refused`);
    ok(this.valid > 0 && this.invalid > 0, `${file.algorithm}: valid ${this.valid} / invalid ${this.invalid}`);
  }
}

/** True when the key is a 24-byte AES-192 key: asserts that `make` refuses it and counts it. */
function refusedAes192(tally: Tally, key: Uint8Array, make: () => unknown, what: string): boolean {
  if (key.length !== 24) return false;
  throws(make, LengthError, `${what}: AES-192 key`, /key/i);
  tally.aes192++;
  return true;
}

/** Runs `fn`; undefined when it throws one of the expected error types (anything else is rethrown). */
function refusedBy<T>(fn: () => T, ...types: (abstract new (...a: never[]) => Error)[]): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (types.some((type) => e instanceof type)) return undefined;
    throw e;
  }
}

/** What a case does with one test; `tally` counts the AES-192 refusals. */
type EachTest = (t: WycheproofTest, g: WycheproofGroup, what: string, tally: Tally) => void | Promise<void>;

/**
 * A case over every test of a file: `prepare` runs once (an engine, say) and gives the
 * function run on each test; the tally is checked against the file at the end, then `after`.
 */
function fileCase(title: string, name: string, algorithm: string, aes192: number, prepare: () => EachTest | Promise<EachTest>, after?: () => void): PortableCase {
  return {
    name: `Wycheproof ${title}`,
    async run(read) {
      const file = await load(read, name, algorithm);
      const each = await prepare();
      const tally = new Tally();
      for (const g of file.testGroups) {
        for (const t of g.tests) {
          tally.add(t);
          await each(t, g, label(name, t), tally);
        }
      }
      tally.check(file, aes192);
      after?.();
    },
  };
}

/** An invalid test must open nothing; an acceptable one may, but only to the file's message. */
function noWrongPlaintext(t: WycheproofTest, opened: Uint8Array | undefined, what: string): void {
  if (t.result === 'invalid') ok(opened === undefined, `${what}: invalid, decrypted to ${opened && hex(opened)}`);
  else if (opened !== undefined) equalHex(opened, str(t, 'msg'), `${what}: acceptable, decrypted`);
}

// ---- AEAD: GCM and CCM ----

/** `view` gives a test the AEAD fields (key, iv, aad, msg, ct, tag) where its file names them otherwise. */
function aeadCase(name: string, algorithm: string, mode: (key: Uint8Array, iv: Uint8Array, aad: Uint8Array, tagLength: number) => Aead, aes192: number, view = (t: WycheproofTest) => t): PortableCase {
  return fileCase(name, name, algorithm, aes192, () => (test, g, what, tally) => {
    const t = view(test);
    const tagLength = g.tagSize! / 8;
    const key = bytes(t, 'key'), iv = bytes(t, 'iv'), aad = bytes(t, 'aad');
    const sealed = unhex(str(t, 'ct') + str(t, 'tag'));
    if (refusedAes192(tally, key, () => mode(key, iv, aad, tagLength), what)) return;
    if (t.result === 'valid') {
      const m = mode(key, iv, aad, tagLength);
      equalHex(m.encrypt(bytes(t, 'msg')), hex(sealed), `${what}: encrypt`);
      equalHex(m.decrypt(sealed), str(t, 'msg'), `${what}: decrypt`);
      return;
    }
    // Parameters senv refuses (a nonce or tag length the mode does not allow) or a
    // ciphertext whose tag does not verify: either way no plaintext.
    noWrongPlaintext(t, refusedBy(() => mode(key, iv, aad, tagLength).decrypt(sealed), LengthError, AuthenticationError), what);
  });
}

// ---- CBC with PKCS#5 padding ----

function cbcCase(name: string, aes192: number): PortableCase {
  return fileCase(name, name, 'AES-CBC-PKCS5', aes192, () => (t, _g, what, tally) => {
    const key = bytes(t, 'key'), iv = bytes(t, 'iv'), ct = bytes(t, 'ct');
    const mode = () => cbc(key, iv, { padding: 'pkcs5' });
    if (refusedAes192(tally, key, mode, what)) return;
    if (t.result === 'valid') {
      equalHex(mode().encrypt(bytes(t, 'msg')), hex(ct), `${what}: encrypt`);
      equalHex(mode().decrypt(ct), str(t, 'msg'), `${what}: decrypt`);
      return;
    }
    noWrongPlaintext(t, refusedBy(() => mode().decrypt(ct), PaddingError, LengthError), what);
  });
}

// ---- MACs: AES-CMAC and HMAC (tags may be truncated) ----

/** aes192: the count of AES-192 tests for an AES MAC, undefined for HMAC (any key length). */
function macCase(name: string, algorithm: string, mac: (key: Uint8Array, msg: Uint8Array) => Uint8Array, aes192?: number): PortableCase {
  return fileCase(name, name, algorithm, aes192 ?? 0, () => (t, g, what, tally) => {
    const tagLength = g.tagSize! / 8;
    const key = bytes(t, 'key'), msg = bytes(t, 'msg'), tag = str(t, 'tag');
    if (aes192 !== undefined && refusedAes192(tally, key, () => mac(key, msg), what)) return;
    // A key length the MAC does not take is refused as invalid parameters are.
    const full = refusedBy(() => mac(key, msg), LengthError);
    if (full === undefined) {
      ok(t.result !== 'valid', `${what}: valid, but the key was refused`);
      return;
    }
    const matches = hex(full.subarray(0, tagLength)) === tag.toLowerCase() && tag.length === 2 * tagLength;
    if (t.result === 'valid') ok(matches, `${what}: expected ${tag}, got ${hex(full.subarray(0, tagLength))}`);
    else if (t.result === 'invalid') ok(!matches, `${what}: invalid tag accepted`);
  });
}

// ---- ECDSA verification: DER (X9.62) and raw (IEEE P1363, r || s) signatures ----

const CURVES: Record<string, CurveName> = { secp256r1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
const GROUP_TYPES = { der: 'EcdsaVerify', raw: 'EcdsaP1363Verify' };

/** The group's public key (uncompressed) and curve, checked to be a point of it. */
function groupKey(g: WycheproofGroup, format: 'der' | 'raw'): { curve: CurveName; publicKey: Uint8Array } {
  equal(g.type, GROUP_TYPES[format], 'group type');
  const pk = g.publicKey as { curve: string; uncompressed: string };
  const curve = CURVES[pk.curve];
  ok(curve !== undefined, `curve ${pk.curve}`);
  const publicKey = unhex(pk.uncompressed);
  ok(ecdsa(curve).isPublicKey(publicKey), `the group's public key is a point of ${curve}`);
  return { curve, publicKey };
}

function ecdsaCase(name: string, format: 'der' | 'raw'): PortableCase {
  return fileCase(name, name, 'ECDSA', 0, () => (t, g, what) => {
    const { curve, publicKey } = groupKey(g, format);
    const verdict = ecdsa(curve).verify(bytes(t, 'sig'), bytes(t, 'msg'), publicKey, { hash: g.sha as HashName, format });
    if (t.result !== 'acceptable') equal(verdict, t.result === 'valid', `${what}: verdict`);
  });
}

export const wycheproofCases: PortableCase[] = [
  aeadCase('aes_gcm_test.json', 'AES-GCM', (k, iv, aad, tagLength) => gcm(k, iv, aad, { tagLength }), 103),
  aeadCase('aes_ccm_test.json', 'AES-CCM', (k, iv, aad, tagLength) => ccm(k, iv, aad, { tagLength }), 184),
  // GMAC is GCM with the message as associated data and nothing to encrypt: the tag is the whole output.
  aeadCase('aes_gmac_test.json', 'AES-GMAC', (k, iv, aad, tagLength) => gcm(k, iv, aad, { tagLength }), 138, (t) => ({ ...t, aad: t.msg, msg: '', ct: '' })),
  cbcCase('aes_cbc_pkcs5_test.json', 72),
  macCase('aes_cmac_test.json', 'AES-CMAC', (k, m) => cmac(k, m), 102),
  macCase('hmac_sha256_test.json', 'HMACSHA256', (k, m) => hmac('SHA-256', k, m)),
  macCase('hmac_sha384_test.json', 'HMACSHA384', (k, m) => hmac('SHA-384', k, m)),
  macCase('hmac_sha512_test.json', 'HMACSHA512', (k, m) => hmac('SHA-512', k, m)),
  ecdsaCase('ecdsa_secp256r1_sha256_test.json', 'der'),
  ecdsaCase('ecdsa_secp256r1_sha512_test.json', 'der'),
  ecdsaCase('ecdsa_secp256r1_sha256_p1363_test.json', 'raw'),
  ecdsaCase('ecdsa_secp384r1_sha384_test.json', 'der'),
  ecdsaCase('ecdsa_secp384r1_sha384_p1363_test.json', 'raw'),
  ecdsaCase('ecdsa_secp384r1_sha512_test.json', 'der'),
  ecdsaCase('ecdsa_secp521r1_sha512_test.json', 'der'),
  ecdsaCase('ecdsa_secp521r1_sha512_p1363_test.json', 'raw'),
];

// ---- The same vectors through the Mcs layer (software SE) ----

async function registeredSession(): Promise<Session> {
  const s = new Session(await engineWith(softwareSe), 'CAE1');
  await s.register();
  return s;
}

/** Wycheproof ECDSA verification through a verification-only <signature> per test: vR is the verdict. */
function mcsEcdsaCase(name: string, salg: number, sgF: 'der' | 'raw'): PortableCase {
  return fileCase(`${name} through <signature> (Salg ${salg}, sgF ${sgF})`, name, 'ECDSA', 0, async () => {
    const s = await registeredSession();
    return async (t, g, what) => {
      const rn = `t${t.tcId}`, kInf = b64(groupKey(g, sgF).publicKey);
      mcsOk(await s.create(s.seId, 20012, { 'senv:Sgn': { rn, Salg: salg, sgF, kInf, msg: b64(bytes(t, 'msg')), Sgn: b64(bytes(t, 'sig')) } }), 2001, `${what}: create`);
      const vR = body(mcsOk(await s.retrieve(s.path('reg', rn, 'verifySignature')), 2000, `${what}: verify`), 'senv:Sgn').vR;
      if (t.result !== 'acceptable') equal(vR, t.result === 'valid', `${what}: vR`);
      mcsOk(await s.delete(s.path('reg', rn)), 2002, `${what}: delete`);
    };
  });
}

/**
 * Wycheproof AES-GCM through <cipher> 1001 / 1002: the tests with a 12-byte nonce, a 16-byte tag
 * and a 16- or 32-byte key (133 of the file's; the others are counted, not sent). Encrypt gives
 * ct || tag, decrypt gives msg for a valid test and 4102 with no calculatedData for an invalid one.
 */
function mcsGcmCase(name: string): PortableCase {
  const sent = { valid: 0, invalid: 0 };
  return fileCase(`${name} through <cipher> (Calg 1001, 1002)`, name, 'AES-GCM', 0, async () => {
    const s = await registeredSession();
    sent.valid = sent.invalid = 0;
    return async (t, g, what) => {
      if (g.ivSize !== 96 || g.tagSize !== 128 || (g.keySize !== 128 && g.keySize !== 256)) return;
      if (t.result !== 'acceptable') sent[t.result]++;
      const rn = `t${t.tcId}`, at = s.path('reg', rn);
      mcsOk(await s.create(s.seId, 20002, { 'senv:Cph': { rn, Calg: g.keySize === 128 ? 1001 : 1002, mbs: 1024, kDt: b64(bytes(t, 'key')) } }), 2001, `${what}: create`);
      mcsOk(await s.create(at, 20001, { 'senv:algP': { rn: 'p', nc: b64(bytes(t, 'iv')), aD: b64(bytes(t, 'aad')) } }), 2001, `${what}: algP`);
      const sealed = str(t, 'ct') + str(t, 'tag');
      if (t.result === 'valid') {
        mcsOk(await s.update(at, { 'senv:Cph': { msg: b64(bytes(t, 'msg')) } }), 2004, `${what}: plaintext`);
        equalHex(unb64(body(mcsOk(await s.retrieve(`${at}/encrypt`), 2000, `${what}: encrypt`), 'senv:Cph').cD), sealed, `${what}: encrypt`);
      }
      mcsOk(await s.update(at, { 'senv:Cph': { msg: b64(unhex(sealed)) } }), 2004, `${what}: ciphertext`);
      if (t.result === 'valid') {
        const cD = body(mcsOk(await s.retrieve(`${at}/decrypt`), 2000, `${what}: decrypt`), 'senv:Cph').cD;
        equalHex(cD === undefined ? new Uint8Array(0) : unb64(cD), str(t, 'msg'), `${what}: decrypt`);
      } else {
        mcsFails(await s.retrieve(`${at}/decrypt`), 4102, `${what}: decrypt`);
        equal(body(await s.retrieve(at), 'senv:Cph').cD, undefined, `${what}: no calculatedData`);
      }
      mcsOk(await s.delete(at), 2002, `${what}: delete`);
    };
  }, () => equal(`${sent.valid} valid, ${sent.invalid} invalid`, '79 valid, 54 invalid', 'tests sent through <cipher>'));
}

export const wycheproofMcsCases: PortableCase[] = [
  mcsGcmCase('aes_gcm_test.json'),
  mcsEcdsaCase('ecdsa_secp256r1_sha256_test.json', 33, 'der'),
  mcsEcdsaCase('ecdsa_secp256r1_sha256_p1363_test.json', 33, 'raw'),
  mcsEcdsaCase('ecdsa_secp384r1_sha384_test.json', 34, 'der'),
  mcsEcdsaCase('ecdsa_secp384r1_sha384_p1363_test.json', 34, 'raw'),
  mcsEcdsaCase('ecdsa_secp521r1_sha512_test.json', 38, 'der'),
  mcsEcdsaCase('ecdsa_secp521r1_sha512_p1363_test.json', 38, 'raw'),
];

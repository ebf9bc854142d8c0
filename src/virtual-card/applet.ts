// The senv applet: the card profile of docs/apdu-profile.md on the WASM core.
// Secret key material enters by PUT DATA or is generated here, and no command
// ever returns it.
import type { DecodedCommand } from '../apdu/apdu.ts';
import { ApduError } from '../apdu/errors.ts';
import { CRT, DO, FCI, INS, KEY_STAMP_LENGTH, MSE_SET, PSO, SENV_AID, TAG } from '../apdu/profile.ts';
import { decodeTlvs, encodeTlv, findTlv, tlvs, u16, u32, type Tlv } from '../apdu/tlv.ts';
import {
  AuthenticationError, cbc, ccm, constantTimeEqual, createCbcMac, createCmac, createHash, createHmac, ecdsa, gcm, LengthError, PaddingError,
  type CurveName, type HashName,
} from '../core/index.ts';
import { CIPHERS, HASHES, keyLengthAllowed, SIGNATURES, type CipherInfo, type SignatureInfo } from '../backends/algorithms.ts';
import type { CipherAlgorithm, SignatureAlgorithm } from '../backends/backend.ts';
import { concatBytes, secretCopy, type Bytes } from '../core/bytes.ts';
import { DIGEST_LENGTHS } from '../core/hash.ts';
import { CardStatus, SW, type Applet, type CardLimits, type ChannelContext } from './card.ts';
import { KeyStore, newStamp, NVM_CAPACITY, type KeyRecord } from './keystore.ts';

/**
 * Ciphertext an AEAD DECIPHER chain may bring: 64 MiB of plaintext, which the card holds until the
 * tag verified, and a tag. A host takes more than 16 MiB at the last link (GCM), so this is the
 * virtual card's own bound, as its 256 KiB of key store is.
 */
const AEAD_DECIPHER_MOST = 2 ** 26 + 16;

// The algorithm tables are the backends' (src/backends/algorithms.ts, TS-0016
// clause 9): one source of key lengths, curves and hashes for the host and the card.
const DIGESTS: Readonly<Record<number, HashName>> = Object.fromEntries(Object.entries(HASHES).map(([a, h]) => [a, h.coreName]));
const bySignatureFamily = <T>(family: string, f: (info: SignatureInfo) => T): Readonly<Record<number, T>> =>
  Object.fromEntries(Object.entries(SIGNATURES).filter(([, i]) => i.family === family).map(([alg, i]) => [alg, f(i)]));
const HMACS = bySignatureFamily('hmac', (i) => HASHES[i.hash!].coreName);
const ECDSAS = bySignatureFamily('ecdsa', (i) => ({ curve: i.curve!, hash: HASHES[i.hash!].coreName }));

/** A core streaming object: absorbs data, yields a digest or MAC, frees its WASM context. */
interface Absorber {
  update(d: Uint8Array): unknown;
  digest(): Uint8Array;
  destroy(): void;
}

/** AES MACs of TS-0016 table 9.9-1: 49 CMAC, 18 CBC-MAC without padding. */
const AES_MACS: Readonly<Record<number, (key: Uint8Array) => Absorber>> = {
  49: (k) => createCmac(k),
  18: (k) => createCbcMac(k),
};

/** Key length rules (allowed, generated) of the symmetric algorithms: ciphers, HMAC and the AES MACs. */
function symmetricKeyRule(algorithm: number): CipherInfo | SignatureInfo | undefined {
  return CIPHERS[algorithm as CipherAlgorithm] ?? (HMACS[algorithm] || AES_MACS[algorithm] ? SIGNATURES[algorithm as SignatureAlgorithm] : undefined);
}

/** Core failures on card data become the status words of docs/apdu-profile.md. */
function cardCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AuthenticationError) throw new CardStatus(SW.VERIFY_FAILED);
    if (e instanceof PaddingError) throw new CardStatus(SW.WRONG_DATA);
    if (e instanceof LengthError) throw new CardStatus(SW.WRONG_LENGTH);
    throw e;
  }
}

/** A security operation fed link by link (PSO with command chaining). */
interface Stream {
  pso: number;
  update(data: Uint8Array): Uint8Array;
  finish(data: Uint8Array): Uint8Array;
  /** Signature streams: checks a signature over the message instead of producing one. */
  verify?(signature: Uint8Array): boolean;
  /** Frees (and zeroizes) the core context of a stream that will not finish. */
  destroy(): void;
}

interface Environment {
  algorithm: number;
  keyRef?: number;
  tlv: Tlv[];
}

const SE_STATE = (crt: number) => `se:${crt}`;

/** Whether `stamp` is the key's: the host names the key it means by it (MSE:SET, PUT DATA 03). */
function hasStamp(k: KeyRecord, stamp: Uint8Array): boolean {
  return stamp.length === k.stamp.length && stamp.every((b, i) => b === k.stamp[i]);
}
const STREAM = 'stream';

/** A public key as the profile takes it: an uncompressed point of the curve (anything else: 6A80). */
function checkedPoint(curve: CurveName, material: Uint8Array): Uint8Array {
  if (material[0] !== 0x04 || !ecdsa(curve).isPublicKey(material)) throw new CardStatus(SW.WRONG_DATA);
  return material.slice();
}

function must<T>(x: T | undefined, sw: number): T {
  if (x === undefined) throw new CardStatus(sw);
  return x;
}

/** The data objects of a command's data field; a malformed one is wrong data (6A80), not a wrong length. */
function template(data: Uint8Array): Tlv[] {
  try {
    return decodeTlvs(data);
  } catch (e) {
    if (e instanceof ApduError) throw new CardStatus(SW.WRONG_DATA);
    throw e;
  }
}

const empty = new Uint8Array(0);

export interface SenvAppletOptions {
  store: KeyStore;
  /** Entropy for GET CHALLENGE and key generation. */
  random: (n: number) => Uint8Array;
  /** The card OS's I/O limits, reported in the FCI. */
  limits: CardLimits;
}

export class SenvApplet implements Applet {
  readonly aid: Bytes = SENV_AID;
  readonly counters = { cold: 0, warm: 0, off: 0 };
  private readonly store: KeyStore;
  private readonly random: (n: number) => Uint8Array;
  private readonly limits: CardLimits;

  constructor(opts: SenvAppletOptions) {
    this.store = opts.store;
    this.random = opts.random;
    this.limits = opts.limits;
  }

  /** Streams in progress on any channel: a reset frees their core contexts at once. */
  private readonly streamsOpen = new Set<Stream>();

  power(event: 'cold' | 'warm' | 'off'): void {
    this.counters[event]++;
    for (const st of this.streamsOpen) st.destroy();
    this.streamsOpen.clear();
  }

  /** TS-0016 algorithm values this card implements. */
  algorithms(): number[] {
    return [...Object.keys(DIGESTS), ...Object.keys(HMACS), ...Object.keys(ECDSAS), ...Object.keys(CIPHERS), ...Object.keys(AES_MACS)].map(Number);
  }

  select(): Uint8Array {
    const algs = this.algorithms().flatMap(u16);
    return tlvs([TAG.FCI, tlvs(
      [TAG.AID, this.aid],
      [TAG.PROPRIETARY, tlvs(
        [FCI.VERSION, [1]],
        [FCI.MAX_COMMAND, u16(this.limits.maxCommandData)],
        [FCI.MAX_RESPONSE, u16(Math.min(this.limits.maxResponseData, 0xffff))],
        [FCI.ALGORITHMS, algs],
        [FCI.SERIAL, this.store.serial],
      )],
    )]);
  }

  streams(cmd: DecodedCommand): boolean {
    return cmd.ins === INS.PSO;
  }

  process(cmd: DecodedCommand, ctx: ChannelContext, last: boolean): Uint8Array {
    return cardCall(() => this.dispatch(cmd, ctx, last));
  }

  refuses(cmd: DecodedCommand): number | undefined {
    if (cmd.cla !== 0x00) return SW.CLA_UNSUPPORTED;
    if (!Object.hasOwn(this.instructions, cmd.ins)) return SW.INS_UNSUPPORTED;
    return undefined;
  }

  /** The applet's instructions: refuses() and dispatch() read this one table. */
  private readonly instructions: Readonly<Record<number, (cmd: DecodedCommand, ctx: ChannelContext, last: boolean) => Uint8Array>> = {
    [INS.GET_CHALLENGE]: (cmd) => {
      if (cmd.p1 || cmd.p2) throw new CardStatus(SW.WRONG_P1P2);
      // Case 2: a data field is a wrong length (ISO/IEC 7816-4), as a missing Le.
      if (cmd.ne === 0 || cmd.data.length) throw new CardStatus(SW.WRONG_LENGTH);
      return this.random(cmd.ne);
    },
    [INS.MSE]: (cmd, ctx) => this.mse(cmd, ctx),
    [INS.PSO]: (cmd, ctx, last) => this.pso(cmd, ctx, last),
    [INS.GENERATE_KEY_PAIR]: (cmd) => this.generate(cmd),
    [INS.PUT_DATA]: (cmd) => this.putData(cmd),
    [INS.GET_DATA]: (cmd) => this.getData(cmd),
    [INS.INTERNAL_AUTHENTICATE]: (cmd, ctx) => this.internalAuthenticate(cmd, ctx),
  };

  private dispatch(cmd: DecodedCommand, ctx: ChannelContext, last: boolean): Uint8Array {
    const sw = this.refuses(cmd);
    if (sw !== undefined) throw new CardStatus(sw);
    return this.instructions[cmd.ins]!(cmd, ctx, last);
  }

  private mse(cmd: DecodedCommand, ctx: ChannelContext): Uint8Array {
    if (cmd.p1 !== MSE_SET || !Object.values(CRT).includes(cmd.p2 as never)) throw new CardStatus(SW.WRONG_P1P2);
    // Its own copy: the environment outlives the command, whose joined chain the card OS zeroizes.
    const tlv = template(cmd.data.slice());
    const alg = must(findTlv(tlv, TAG.ALGORITHM), SW.WRONG_DATA);
    const ref = findTlv(tlv, TAG.KEY_REF);
    if (alg.length !== 2 || (ref && ref.length !== 1)) throw new CardStatus(SW.WRONG_DATA);
    // The profile's one-byte flags: 00 or 01, nothing read by its first byte only.
    for (const tag of [TAG.INPUT_IS_DIGEST, TAG.SIG_FORMAT]) {
      const flag = findTlv(tlv, tag);
      if (flag && (flag.length !== 1 || flag[0]! > 1)) throw new CardStatus(SW.WRONG_DATA);
    }
    const env: Environment = { algorithm: (alg[0]! << 8) | alg[1]!, tlv, ...(ref ? { keyRef: ref[0]! } : {}) };
    ctx.state.set(SE_STATE(cmd.p2), env);
    this.dropStream(ctx);
    return empty;
  }

  private env(ctx: ChannelContext, crt: number): Environment {
    return must(ctx.state.get(SE_STATE(crt)) as Environment | undefined, SW.CONDITIONS);
  }

  private key(env: Environment): KeyRecord {
    const ref = must(env.keyRef, SW.REF_NOT_FOUND);
    const k = must(this.store.keys.get(ref), SW.REF_NOT_FOUND);
    // A stamp in the environment names the key the host means: another written into the slot since is not it.
    const stamp = findTlv(env.tlv, TAG.KEY_STAMP);
    if (stamp && !hasStamp(k, stamp)) throw new CardStatus(SW.REF_NOT_FOUND);
    if (k.algorithm !== env.algorithm) throw new CardStatus(SW.REF_NOT_USABLE);
    return k;
  }

  // COMPUTE DIGITAL SIGNATURE and VERIFY DIGITAL SIGNATURE share one chain:
  // the message may come in links of either, and the last link decides. A
  // host streaming a message before it knows whether it will sign or verify
  // (a MAC stream) thus never has to send it twice.
  private pso(cmd: DecodedCommand, ctx: ChannelContext, last: boolean): Uint8Array {
    const p1p2 = (cmd.p1 << 8) | cmd.p2;
    const family = p1p2 === PSO.VERIFY_SIGNATURE ? PSO.COMPUTE_SIGNATURE : p1p2;
    let s = ctx.state.get(STREAM) as Stream | undefined;
    if (s && s.pso !== family) {
      this.dropStream(ctx);
      throw new CardStatus(SW.CONDITIONS);
    }
    if (!s) {
      s = this.openStream(family, ctx);
      ctx.state.set(STREAM, s);
      this.streamsOpen.add(s);
    }
    if (!last) return s.update(cmd.data);
    ctx.state.delete(STREAM);
    this.streamsOpen.delete(s);
    try {
      if (p1p2 !== PSO.VERIFY_SIGNATURE) return s.finish(cmd.data);
      // The last link of a verification is only 9E <signature>.
      const t = template(cmd.data);
      if (t.length !== 1 || t[0]!.tag !== TAG.SIGNATURE) throw new CardStatus(SW.WRONG_DATA);
      if (!s.verify!(t[0]!.value)) throw new CardStatus(SW.VERIFY_FAILED);
      return empty;
    } finally {
      s.destroy();
    }
  }

  dropChain(ctx: ChannelContext): void {
    this.dropStream(ctx);
  }

  private dropStream(ctx: ChannelContext): void {
    const s = ctx.state.get(STREAM) as Stream | undefined;
    if (s) {
      s.destroy();
      this.streamsOpen.delete(s);
    }
    ctx.state.delete(STREAM);
  }

  private openStream(p1p2: number, ctx: ChannelContext): Stream {
    switch (p1p2) {
      case PSO.ENCIPHER:
      case PSO.DECIPHER:
        return this.cipherStream(p1p2, ctx);
      case PSO.HASH: {
        const h = createHash(must(DIGESTS[this.env(ctx, CRT.HT).algorithm], SW.FUNC_UNSUPPORTED));
        return { pso: p1p2, update: (d) => (h.update(d), empty), finish: (d) => h.update(d).digest(), destroy: () => h.destroy() };
      }
      case PSO.COMPUTE_SIGNATURE: {
        const env = this.env(ctx, CRT.DST);
        const ec = ECDSAS[env.algorithm];
        if (!ec) {
          const mac = this.macFor(env);
          return {
            pso: p1p2,
            update: (d) => (mac.update(d), empty),
            finish: (d) => (mac.update(d), mac.digest()),
            verify: (sig) => constantTimeEqual(mac.digest(), sig),
            destroy: () => mac.destroy(),
          };
        }
        const k = this.key(env);
        // The stream's own copies, as a MAC's or cipher's state holds its key: a deletion of the slot
        // meanwhile (which zeroizes the record's bytes) leaves the operation under way whole.
        const secret = k.secret && secretCopy(k.secret);
        const publicKey = k.publicKey?.slice();
        const input = this.ecdsaInput(env, ec.hash);
        const opts = { hash: ec.hash, prehashed: true, format: findTlv(env.tlv, TAG.SIG_FORMAT)?.[0] === 1 ? 'der' : 'raw' } as const;
        return {
          pso: p1p2,
          update: (d) => (input.update(d), empty),
          finish: (d) => {
            input.update(d);
            return ecdsa(ec.curve).sign(input.digest(), must(secret, SW.REF_NOT_USABLE), opts);
          },
          verify: (sig) => ecdsa(ec.curve).verify(sig, input.digest(), must(publicKey, SW.REF_NOT_USABLE), opts),
          destroy: () => {
            input.destroy();
            secret?.fill(0);
          },
        };
      }
      default:
        throw new CardStatus(SW.WRONG_P1P2);
    }
  }

  /** The message hash of an ECDSA operation, or the digest itself when the DST says the input is one. */
  private ecdsaInput(env: Environment, hash: HashName): Absorber {
    if (findTlv(env.tlv, TAG.INPUT_IS_DIGEST)?.[0] !== 1) return createHash(hash);
    const parts: Uint8Array[] = [];
    let size = 0;
    return {
      update: (d: Uint8Array) => {
        // A digest is what comes: anything longer is refused at once, not buffered.
        size += d.length;
        if (size > DIGEST_LENGTHS[hash]) throw new CardStatus(SW.WRONG_LENGTH);
        parts.push(d.slice());
      },
      digest: () => concatBytes(parts),
      destroy: () => parts.splice(0).forEach((p) => p.fill(0)),
    };
  }

  private macFor(env: Environment): Absorber {
    const hash = HMACS[env.algorithm];
    const aes = AES_MACS[env.algorithm];
    if (!hash && !aes) throw new CardStatus(SW.FUNC_UNSUPPORTED);
    const k = this.key(env);
    if (k.kind !== 'secret' || !k.secret) throw new CardStatus(SW.REF_NOT_USABLE);
    return hash ? createHmac(hash, k.secret) : aes!(k.secret);
  }

  // ENCIPHER links answer with the ciphertext produced so far; DECIPHER of an
  // AEAD answers nothing until the last link verified the tag.
  private cipherStream(p1p2: number, ctx: ChannelContext): Stream {
    const env = this.env(ctx, CRT.CT);
    const info = must(CIPHERS[env.algorithm as CipherAlgorithm], SW.FUNC_UNSUPPORTED);
    const k = this.key(env);
    const key = must(k.secret, SW.REF_NOT_USABLE);
    const iv = findTlv(env.tlv, TAG.IV) ?? empty;
    const aad = findTlv(env.tlv, TAG.AAD) ?? empty;
    const m = info.mode === 'gcm' ? gcm(key, iv, aad, { tagLength: info.tagLength! })
      : info.mode === 'ccm' ? ccm(key, iv, aad, { tagLength: info.tagLength! })
      : cbc(key, iv, { padding: info.padding! });
    const st = p1p2 === PSO.ENCIPHER ? m.encryptStream() : m.decryptStream();
    const output = (out: unknown) => (out instanceof Uint8Array ? out : empty);
    // An AEAD decipherment holds its plaintext until the tag verified: bounded, not by whatever a chain brings.
    const most = p1p2 === PSO.DECIPHER && info.mode !== 'cbc' ? AEAD_DECIPHER_MOST : Infinity;
    let taken = 0;
    const take = (d: Uint8Array) => {
      if ((taken += d.length) > most) throw new CardStatus(SW.MEMORY_FULL);
      return output(st.update(d));
    };
    return {
      pso: p1p2,
      update: take,
      finish: (d) => concatBytes([take(d), st.final()]),
      destroy: () => st.destroy(),
    };
  }

  private internalAuthenticate(cmd: DecodedCommand, ctx: ChannelContext): Uint8Array {
    if (cmd.p1 || cmd.p2) throw new CardStatus(SW.WRONG_P1P2);
    if (cmd.data.length === 0) throw new CardStatus(SW.WRONG_LENGTH);
    const env = this.env(ctx, CRT.AT);
    const ec = ECDSAS[env.algorithm];
    if (!ec) {
      const mac = this.macFor(env);
      mac.update(cmd.data);
      return mac.digest();
    }
    const sk = must(this.key(env).secret, SW.REF_NOT_USABLE);
    return ecdsa(ec.curve).sign(cmd.data, sk, { hash: ec.hash, format: 'raw' });
  }

  private generate(cmd: DecodedCommand): Uint8Array {
    // P1-P2 first (6A86), as the profile's order of checks has it, then the data (6A80).
    if ((cmd.p1 !== 0x80 && cmd.p1 !== 0x81) || cmd.p2 !== 0) throw new CardStatus(SW.WRONG_P1P2);
    const tlv = template(cmd.data);
    const ref = must(findTlv(tlv, TAG.KEY_REF), SW.WRONG_DATA);
    if (ref.length !== 1 || ref[0] === 0 || ref[0] === 0xff) throw new CardStatus(SW.WRONG_DATA);
    if (cmd.p1 === 0x81) {
      // read the public part of an existing key
      const k = must(this.store.keys.get(ref[0]!), SW.REF_NOT_FOUND);
      return encodeTlv(TAG.PUBLIC_KEY_TEMPLATE, encodeTlv(TAG.EC_POINT, must(k.publicKey, SW.REF_NOT_USABLE)));
    }
    const alg = must(findTlv(tlv, TAG.ALGORITHM), SW.WRONG_DATA);
    if (alg.length !== 2) throw new CardStatus(SW.WRONG_DATA);
    const algorithm = (alg[0]! << 8) | alg[1]!;
    const ec = ECDSAS[algorithm];
    if (ec) {
      const pair = ecdsa(ec.curve).keygen();
      this.storeKey(ref[0]!, { algorithm, kind: 'secret', secret: pair.secretKey, publicKey: pair.publicKey });
      return encodeTlv(TAG.PUBLIC_KEY_TEMPLATE, encodeTlv(TAG.EC_POINT, pair.publicKey));
    }
    const rule = must(symmetricKeyRule(algorithm), SW.FUNC_UNSUPPORTED);
    this.storeKey(ref[0]!, { algorithm, kind: 'secret', secret: this.random(rule.generatedKeyLength) });
    return empty;
  }

  // A slot is written once until PUT DATA 03 deletes its key: a host whose
  // map of used slots is stale (another application in shared mode) gets
  // 6A89 instead of overwriting a key someone else holds.
  private storeKey(ref: number, key: Omit<KeyRecord, 'stamp'>): void {
    if (this.store.keys.has(ref)) {
      key.secret?.fill(0);
      throw new CardStatus(SW.REF_EXISTS);
    }
    const rec: KeyRecord = { ...key, stamp: newStamp() };
    this.store.keys.set(ref, rec);
    this.commit(true, () => {
      this.store.keys.delete(ref);
      rec.secret?.fill(0);
    });
  }

  /**
   * Keeps a change made to the store only once its file holds it: a change the card's memory
   * cannot take (6A84, where it `adds`) or the file could not be written with (6F00) is undone,
   * so the card never answers from a key a restart would lose, nor loses one the file still has.
   * `replaced` runs once the file holds the change (zeroizing what it replaced).
   */
  private commit(adds: boolean, undo: () => void, replaced?: () => void): void {
    try {
      if (adds && this.store.used() > NVM_CAPACITY) throw new CardStatus(SW.MEMORY_FULL);
      this.store.write();
    } catch (e) {
      undo();
      throw e;
    }
    replaced?.();
    this.store.sync();
  }

  private putData(cmd: DecodedCommand): Uint8Array {
    const id = cmd.p2;
    if (id === 0 || id === 0xff) throw new CardStatus(SW.WRONG_P1P2);
    switch (cmd.p1) {
      case DO.KEY: {
        const tlv = template(cmd.data);
        const alg = must(findTlv(tlv, TAG.ALGORITHM), SW.WRONG_DATA);
        const kindTlv = must(findTlv(tlv, TAG.KEY_KIND), SW.WRONG_DATA);
        const kind = kindTlv.length === 1 ? kindTlv[0] : undefined;
        const material = must(findTlv(tlv, TAG.KEY_MATERIAL), SW.WRONG_DATA);
        if (alg.length !== 2 || (kind !== 1 && kind !== 2) || material.length === 0) throw new CardStatus(SW.WRONG_DATA);
        const algorithm = (alg[0]! << 8) | alg[1]!;
        const ec = ECDSAS[algorithm];
        if (ec) {
          let rec: Omit<KeyRecord, 'stamp'>;
          try {
            rec = kind === 1
              ? { algorithm, kind: 'secret', secret: material.slice(), publicKey: ecdsa(ec.curve).getPublicKey(material) }
              : { algorithm, kind: 'public', publicKey: checkedPoint(ec.curve, material) };
          } catch {
            throw new CardStatus(SW.WRONG_DATA); // scalar out of range, not a point, wrong length
          }
          this.storeKey(id, rec);
          return empty;
        }
        const rule = must(symmetricKeyRule(algorithm), SW.FUNC_UNSUPPORTED);
        if (kind !== 1 || !keyLengthAllowed(rule.keyLengths, material.length)) throw new CardStatus(SW.WRONG_DATA);
        this.storeKey(id, { algorithm, kind: 'secret', secret: material.slice() });
        return empty;
      }
      case DO.OBJECT: {
        const old = this.store.objects.get(id);
        const data = cmd.data.slice();
        this.store.objects.set(id, data);
        this.commit(true, () => {
          data.fill(0);
          if (old) this.store.objects.set(id, old);
          else this.store.objects.delete(id);
        }, () => old?.fill(0));
        return empty;
      }
      case DO.DELETE_KEY: {
        // No data, or the key's stamp (83 08): the deletion is then refused (6A88) for another key written into the slot since.
        if (cmd.data.length && cmd.data.length !== 2 + KEY_STAMP_LENGTH) throw new CardStatus(SW.WRONG_LENGTH);
        const k = must(this.store.keys.get(id), SW.REF_NOT_FOUND);
        if (cmd.data.length) {
          if (cmd.data[0] !== TAG.KEY_STAMP || cmd.data[1] !== KEY_STAMP_LENGTH) throw new CardStatus(SW.WRONG_DATA);
          if (!hasStamp(k, cmd.data.subarray(2))) throw new CardStatus(SW.REF_NOT_FOUND);
        }
        this.store.keys.delete(id);
        this.commit(false, () => this.store.keys.set(id, k), () => k.secret?.fill(0));
        return empty;
      }
      case DO.DELETE_OBJECT: {
        if (cmd.data.length) throw new CardStatus(SW.WRONG_LENGTH);
        const o = must(this.store.objects.get(id), SW.REF_NOT_FOUND);
        this.store.objects.delete(id);
        this.commit(false, () => this.store.objects.set(id, o), () => o.fill(0));
        return empty;
      }
      default:
        throw new CardStatus(SW.WRONG_P1P2);
    }
  }

  private getData(cmd: DecodedCommand): Uint8Array {
    const p1p2 = (cmd.p1 << 8) | cmd.p2;
    switch (p1p2) {
      case DO.COUNTERS:
        return Uint8Array.from([...u32(this.counters.cold), ...u32(this.counters.warm), ...u32(this.counters.off)]);
      case DO.MEMORY:
        // A store file written with more than the capacity (by hand, or another build) still answers available <= total.
        return Uint8Array.from([...u32(NVM_CAPACITY), ...u32(Math.max(0, NVM_CAPACITY - this.store.used()))]);
      case DO.SERIAL:
        return this.store.serial;
      case DO.KEY_MAP: {
        const map = new Uint8Array(32);
        for (const ref of this.store.keys.keys()) map[ref >> 3]! |= 0x80 >> (ref & 7);
        return map;
      }
    }
    switch (cmd.p1) {
      case DO.OBJECT:
        return must(this.store.objects.get(cmd.p2), SW.REF_NOT_FOUND).slice();
      case DO.KEY: {
        const k = must(this.store.keys.get(cmd.p2), SW.REF_NOT_FOUND);
        return tlvs(
          [TAG.ALGORITHM, u16(k.algorithm)],
          [TAG.KEY_KIND, [k.kind === 'secret' ? 1 : 2]],
          [TAG.KEY_STAMP, k.stamp],
          ...(k.publicKey ? [[TAG.EC_POINT, k.publicKey] as [number, Uint8Array]] : []),
        );
      }
      default:
        throw new CardStatus(SW.REF_NOT_FOUND);
    }
  }
}

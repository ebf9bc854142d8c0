// The PC/SC SE (SEType 2 GlobalPlatform SE, or 1 for a UICC; security level
// 3): every operation is a sequence of ISO/IEC 7816-4/-8 APDUs to a card that
// runs the senv profile (docs/apdu-profile.md), over the native bridge.
// Keys live in the card's slots; the host only ever holds slot references.
import { concatBytes, copyArg, secretBytes, secretCopyArg } from '../../core/bytes.ts';
import type {
  BackendCapabilities, BackendDescription, CipherAlgorithm, CipherParams, CipherStream, DigestStream, HashAlgorithm,
  KeyHandle, KeyKind, KeySpec, RebootType, RngType, SecureEnvironmentBackend, SignatureAlgorithm, SignatureOptions,
  SignatureStream, StoredKey,
} from '../backend.ts';
import { markKeyHandle } from '../backend.ts';
import { checkCipherParams, checkDirection, checkKeyUse, checkRandomLength, checkSignatureArg, checkSigningKey, checkRebootType, checkSignatureOptions, checkStoredKey } from '../checks.ts';
import { checkMaterial, specInfo } from '../key-material.ts';
import { fromHex, hex, joinParts, type CommandApdu, type ResponseApdu } from '../../apdu/apdu.ts';
import { ApduError, StatusWordError } from '../../apdu/errors.ts';
import { CRT, DO, INS, KEY_STAMP_LENGTH, PSO, TAG } from '../../apdu/profile.ts';
import { CBC_MAC_LENGTH } from '../../core/cmac.ts';
import { shorterThanTag } from '../../core/aead.ts';
import { cbcLengthError } from '../../core/cbc.ts';
import { decodeTlvs, findTlv, tlvs, u16, type Tlv } from '../../apdu/tlv.ts';
import { secretDigest } from '../../core/hash.ts';
import { AuthenticationError, DeviceFullError, InvalidInputError, InvalidValueError, LengthError, PaddingError, StateError, UnknownAlgorithmError } from '../../core/errors.ts';
import { optionsArg, shown, type OptionNames } from '../../core/args.ts';
import { ALL_REBOOT_TYPES, CIPHERS, HASHES, SIGNATURES, valuesOf, type CipherInfo } from '../algorithms.ts';
import { derToRaw } from '../../core/ecdsa-der.ts';
import { checkReader, checkShare, checkTimeout } from '../../pcsc/args.ts';
import { PcscContext, PcscError, type ReaderState, type ShareMode } from '../../pcsc/index.ts';
import { answeredBy, CardSession, exactly, mayHaveWritten, roomRefused, staleConnection, type AppletChannel, type CardContext, type CardInfo } from './session.ts';
import { LinkStream } from './streams.ts';
import { fieldLength, longestSignature, macLength } from './signature-lengths.ts';
import { CardObjectStore } from './objects.ts';
import type { ObjectStore } from '../backend.ts';
import { SENV_VERSION } from '../../version.ts';

export type { CardConnection, CardContext } from './session.ts';

const SW_VERIFY_FAILED = 0x6300;

export interface PcscBackendOptions {
  /** PC/SC reader name of the card. */
  reader: string;
  /** TS-0016 SEType: 2 GlobalPlatform SE (default) or 1 UICC. */
  seType?: 1 | 2 | undefined;
  /**
   * The context to connect through: a `PcscContext`, or an object of one's own for a card that is not
   * behind PC/SC (docs/pcsc.md, "A card that is not behind PC/SC"). Default: one of the backend's own.
   */
  context?: CardContext | undefined;
  /** Default 'exclusive': no other application can slip APDUs between ours. */
  share?: ShareMode | undefined;
  /**
   * Longest wait in milliseconds for the card's answer to one command, and
   * for a connection (default 30,000; Infinity: as long as the reader driver
   * waits). See docs/pcsc.md, "A card that stops answering".
   */
  commandTimeoutMs?: number | undefined;
  /** APDU trace (secret data masked). */
  log?: ((line: string) => void) | undefined;
}

/** Long enough for a slow card's key generation, short enough that a hung SE answers its requests. */
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

/** discoverPcscBackends' options: a context given there must list readers too (a `PcscContext`). */
export type DiscoverPcscOptions = Omit<PcscBackendOptions, 'reader' | 'context'> & { context?: PcscContext | undefined };

const DISCOVER_OPTIONS: OptionNames<DiscoverPcscOptions> = { seType: true, context: true, share: true, commandTimeoutMs: true, log: true };
const OPTIONS: OptionNames<PcscBackendOptions> = { ...DISCOVER_OPTIONS, reader: true };

/** Every option but the reader, checked (InvalidInputError); answers the command timeout. */
function checkOptions(o: Omit<PcscBackendOptions, 'reader'>): number {
  if (o.seType !== undefined && o.seType !== 1 && o.seType !== 2) throw new InvalidInputError(`seType must be 1 (UICC) or 2 (GlobalPlatform SE), got ${shown(o.seType)}`);
  checkShare(o.share);
  if (o.context !== undefined && typeof (o.context as Partial<CardContext> | null)?.connect !== 'function') throw new InvalidInputError(`context must be a PcscContext or an object with connect(), got ${shown(o.context)}`);
  if (o.log !== undefined && typeof o.log !== 'function') throw new InvalidInputError(`log must be a function, got ${shown(o.log)}`);
  return o.commandTimeoutMs === undefined ? DEFAULT_COMMAND_TIMEOUT_MS : checkTimeout(o.commandTimeoutMs, 'commandTimeoutMs');
}

/** A key in a card slot: the handle carries the slot number, never material. */
class CardKey implements KeyHandle {
  /** The card keeps the material: nothing of it is on the host. */
  readonly size = 0;
  released = false;
  /**
   * The slot's key stamp (key information tag 83) when the card gives one: stored with the reference.
   * `lost`: why a key loaded from a reference is no longer in its slot (deleted, or another key
   * written there since): the handle keeps the reference, and every use of it is refused.
   */
  constructor(
    readonly spec: KeySpec, readonly kind: KeyKind, readonly ref: number, readonly stamp: Uint8Array | undefined,
    public publicKey?: Uint8Array, readonly lost?: string,
  ) {
    markKeyHandle(this);
  }

  /** A lost key's emptied slot this handle keeps from new keys (until it is deleted). */
  holdsSlot = false;
}

/**
 * The error for an operation the card refused because `key` is no longer in its slot (6A88 where it
 * looks the key up): a StateError naming the slot, 4005 over Mcs, as loadKey's lost key gives after a
 * restart. The handle is not marked lost: one forged or garbled answer must not end a key still there.
 */
function gone(key: CardKey): StateError {
  return new StateError(`card slot ${key.ref} no longer holds the key this reference names (deleted, or another key written there since)`);
}

/** `key` as this backend's card key; for an operation (`use`), one still in its slot. */
function asCardKey(key: KeyHandle, owner: PcscBackend, keys: WeakSet<CardKey>, use = true): CardKey {
  if (!(key instanceof CardKey) || !keys.has(key)) throw new StateError(`key handle does not belong to the PC/SC SE ${owner.reader}`);
  if (key.released) throw new StateError('key was released');
  if (use && key.lost) throw new StateError(key.lost);
  return key;
}

export class PcscBackend implements SecureEnvironmentBackend {
  readonly reader: string;
  private readonly session: CardSession;
  private readonly seType: 1 | 2;
  private readonly keys = new WeakSet<CardKey>();
  private usedRefs = new Set<number>();
  /**
   * Slots whose key must go but whose deletion failed, or whose write got no
   * answer (the card may hold the key): deleted again before the next slot
   * is taken and at close(), so no key is left on the card that no handle names.
   */
  private orphans = new Set<number>();
  /** Deletions deleteKey queued and close() waits for (one that fails joins `orphans`). */
  private deleting = new Set<Promise<void>>();
  private state: 'new' | 'open' | 'closed' = 'new';
  /** Other applications use the card too (share 'shared'): a slot whose fate is unknown may become theirs. */
  private readonly shared: boolean;
  /** <sensitiveDataObject> contents live on the card (PUT DATA / GET DATA). */
  readonly objectStore: ObjectStore;
  /** The same store, for close() to sweep the objects nothing names. */
  private readonly objects: CardObjectStore;

  constructor(opts: PcscBackendOptions) {
    const o = optionsArg(opts, 'PcscBackend options', OPTIONS);
    if (!o) throw new InvalidInputError('PcscBackend options must name the reader ({ reader })');
    this.reader = checkReader(o.reader);
    const commandTimeoutMs = checkOptions(o);
    this.seType = o.seType ?? 2;
    this.shared = (o.share ?? 'exclusive') !== 'exclusive';
    this.session = new CardSession({
      reader: this.reader,
      commandTimeoutMs,
      ...(o.context ? { context: o.context } : {}),
      ...(o.share ? { share: o.share } : {}),
      ...(o.log ? { log: o.log } : {}),
    });
    this.objectStore = this.objects = new CardObjectStore(this.session, this.shared);
  }

  /** APDUs sent so far (benchmarks and the batching rule's tests). */
  get apdus(): number {
    return this.session.apdus;
  }

  get description(): BackendDescription {
    const info = this.session.info;
    return {
      seType: this.seType,
      securityLevel: 3,
      uniqueId: info ? hex(info.serial) : this.reader,
      manufacturer: 'senv card profile',
      model: `card in ${this.reader}`,
      firmwareVersion: `senv applet ${info?.version ?? '?'}`,
      softwareVersion: SENV_VERSION,
      hardwareVersion: this.session.atr ? `ATR ${hex(this.session.atr)}` : 'unknown (no ATR read)',
      rngSources: { 1: 'GET CHALLENGE: the card\'s random number generator', 2: 'GET CHALLENGE: the card\'s random number generator' },
    };
  }

  get capabilities(): BackendCapabilities {
    const algs = this.session.info?.algorithms ?? [];
    const has = <T extends number>(v: readonly T[]) => v.filter((a) => algs.includes(a));
    return {
      cipherAlgorithms: has(valuesOf(CIPHERS)),
      hashAlgorithms: has(valuesOf(HASHES)),
      signatureAlgorithms: has([49, 18, 33, 34, 38, 25, 26, 27] as SignatureAlgorithm[]),
      rngTypes: [1, 2],
      rebootTypes: ALL_REBOOT_TYPES,
      preferredBatchSize: this.maxPayload,
      maxRandomLength: 1 << 20,
      keyStorage: 'device',
    };
  }

  private get maxPayload(): number {
    return this.session.info?.maxCommandData ?? 255;
  }

  /** The card's FCI data; throws unless the backend is open. */
  private live(): CardInfo {
    if (this.state !== 'open' || !this.session.info) throw new StateError(`PC/SC SE ${this.reader} is ${this.state}`);
    return this.session.info;
  }

  async open(): Promise<void> {
    if (this.state === 'closed') throw new StateError('backend closed');
    await this.session.run(async () => {
      const map = exactly((await this.session.channel0.transmit({ cla: 0, ins: INS.GET_DATA, p1: DO.KEY_MAP >> 8, p2: DO.KEY_MAP & 0xff, ne: 32 })).data, 32, 'the key slot map (DF04)');
      this.usedRefs = new Set();
      for (let ref = 0; ref < map.length * 8; ref++) if (map[ref >> 3]! & (0x80 >> (ref & 7))) this.usedRefs.add(ref);
    });
    this.state = 'open';
  }

  /** rebootType 1: cold reset (power cycle), 2: warm reset; the applet is selected again. */
  async reboot(type: RebootType): Promise<void> {
    if (this.state === 'closed') throw new StateError('backend closed');
    await this.session.reset(checkRebootType(type) === 1 ? 'cold' : 'warm');
  }

  /**
   * Deletes what no handle names any more and closes the session; rejects,
   * once closed, when a key or a data object nothing names could still not
   * be deleted (a card away or stalled): nothing of this backend could name
   * it again, so the caller must hear that it stays on the card.
   */
  async close(): Promise<void> {
    let keys: number[] = [], objects: number[] = [];
    if (this.state !== 'closed') {
      await Promise.all(this.deleting);
      await this.sweepOrphans();
      keys = [...this.orphans];
      objects = await this.objects.sweep();
    }
    this.state = 'closed';
    await this.session.close();
    if (keys.length || objects.length) throw new StateError(keptOnCard(this.reader, keys, objects));
  }

  /** close(), for `await using x = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async memoryInfo(): Promise<{ total: number; available: number }> {
    this.live();
    const r = await this.session.run(() => this.session.channel0.transmit({ cla: 0, ins: INS.GET_DATA, p1: DO.MEMORY >> 8, p2: DO.MEMORY & 0xff, ne: 8 }));
    const d = exactly(r.data, 8, 'memory figures (total, available)');
    const v = new DataView(d.buffer, d.byteOffset, 8);
    const figures = { total: v.getUint32(0), available: v.getUint32(4) };
    if (figures.available > figures.total) throw new ApduError(`the card says ${figures.available} bytes of its ${figures.total} are available`);
    return figures;
  }

  /** GET CHALLENGE, in as few APDUs as the card's and the transport's response limits allow. */
  async random(type: RngType, length: number): Promise<Uint8Array> {
    const info = this.live();
    if (type !== 1 && type !== 2) throw new UnknownAlgorithmError(`rngType ${shown(type)}`);
    checkRandomLength(length, this.capabilities);
    const out = new Uint8Array(length);
    try {
      await this.session.run(async () => {
        const ch = this.session.channel0;
        // Without extended length one APDU asks for 256 bytes at most, whatever the card's tag 85 says.
        const per = Math.min(info.maxResponseData, ch.t.maxResponseData);
        for (let o = 0; o < length; o += per) {
          const n = Math.min(per, length - o);
          // `most`: Ne 256 (or 65536) reads as "all available" to the transport, which would follow 61xx for up to 16 MiB.
          const got = (await ch.transmit({ cla: 0, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: n, most: n, secret: true })).data;
          out.set(got.subarray(0, n), o);
          got.fill(0);
          // Fewer bytes than asked would leave zeros in the result: never hand those out as random.
          if (got.length !== n) throw new ApduError(`GET CHALLENGE returned ${got.length} bytes instead of ${n}`);
        }
      });
    } catch (e) {
      // Random bytes of a call that failed part way go to no one.
      out.fill(0);
      throw e;
    }
    return out;
  }

  async importKey(spec: KeySpec, kind: KeyKind, keyMaterial: Uint8Array): Promise<KeyHandle> {
    const alg = this.supported(spec);
    // Checked as the software SE checks it: a card need not check a public point at all.
    const material = checkMaterial(spec, kind, keyMaterial);
    const data = tlvs([TAG.ALGORITHM, u16(alg)], [TAG.KEY_KIND, [kind === 'secret' ? 1 : 2]], [TAG.KEY_MATERIAL, material]);
    let ref: number;
    try {
      ({ ref } = await this.inFreeSlot((slot) => ({ cla: 0, ins: INS.PUT_DATA, p1: DO.KEY, p2: slot, secret: true, data })));
    } catch (e) {
      // 6A80 means bad key material only as the answer to the PUT DATA that carried it.
      if (answeredBy(e, INS.PUT_DATA) && e.sw === 0x6a80) {
        throw new InvalidValueError('the card refused the key material (out of range or malformed)');
      }
      throw e;
    } finally {
      // The command's copy of the key: the card has its own now, or refused it.
      data.fill(0);
    }
    const seen = {};
    const { stamp, publicKey } = await this.orDelete(ref, seen, async () => ({
      stamp: await this.writtenStamp(ref, seen),
      publicKey: !isEcdsa(spec) ? undefined : kind === 'public' ? copyArg(material, 'public key') : await this.readPublicKey(ref, alg),
    }));
    return this.track(new CardKey(spec, kind, ref, stamp, publicKey));
  }

  /** Generated on the card: the secret never exists outside it. */
  async generateKey(spec: KeySpec): Promise<KeyHandle> {
    const alg = this.supported(spec);
    const { ref, r } = await this.inFreeSlot((slot) => ({
      cla: 0, ins: INS.GENERATE_KEY_PAIR, p1: 0x80, p2: 0, data: tlvs([TAG.ALGORITHM, u16(alg)], [TAG.KEY_REF, [slot]]), ne: 65536, most: PUBLIC_KEY_TEMPLATE_MAX,
    }));
    const seen = {};
    const { stamp, publicKey } = await this.orDelete(ref, seen, async () => {
      if (!isEcdsa(spec)) exactly(r.data, 0, 'data after generating a symmetric key');
      return { publicKey: isEcdsa(spec) ? publicPoint(r.data, alg) : undefined, stamp: await this.writtenStamp(ref, seen) };
    });
    return this.track(new CardKey(spec, 'secret', ref, stamp, publicKey));
  }

  /** `fn` for the key the card now holds in `ref`; when it fails, no handle will ever name the slot, so the key is deleted rather than orphaned there. */
  private async orDelete<T>(ref: number, seen: { stamp?: Uint8Array }, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      // In shared mode another application may have written the slot by now: only the key of the stamp read first goes.
      await this.deleteSlot(ref, this.shared ? seen.stamp : undefined).catch(() => this.shared || this.orphans.add(ref));
      throw e;
    }
  }

  /**
   * Writes a key into a slot this backend believes free. A slot the card
   * says is taken (6A89: another application in shared mode wrote it since
   * open() read the map) stays marked used and the next one is tried; any
   * other refusal frees the slot again, and a write without an answer leaves
   * it to `orphans`.
   */
  private async inFreeSlot(command: (slot: number) => CommandApdu): Promise<{ ref: number; r: ResponseApdu }> {
    // A slot a DELETE freed a moment ago is free for this key: its deletion, queued, is waited for.
    await Promise.allSettled([...this.deleting]);
    await this.sweepOrphans();
    for (;;) {
      const ref = this.allocate();
      const cmd = command(ref);
      let sent = false;
      try {
        const r = await this.session.run(async () => {
          const first = this.session.apdus + 1;
          sent = true;
          try {
            return await this.session.channel0.transmit(cmd);
          } catch (e) {
            // pcsc-lite refuses a command on a connection a removal or a reset made stale before
            // anything goes out: when that was the command's first APDU, the card never saw it.
            if (staleConnection(e) && this.session.apdus === first) sent = false;
            throw e;
          }
        });
        return { ref, r };
      } catch (e) {
        if (answeredBy(e, cmd.ins) && e.sw === 0x6a89) continue;
        // Not sent (no connection), or refused by the command itself: nothing was written. Otherwise (no
        // answer, a lost card, a failure after the card accepted it, an answer that says memory may have
        // changed) the key may be there. In shared mode the slot is left alone: another application may
        // write it before a later deletion would run.
        if (!sent || (answeredBy(e, cmd.ins) && !mayHaveWritten(e.sw))) this.usedRefs.delete(ref);
        else if (!this.shared) this.orphans.add(ref);
        throw roomRefused(e, cmd.ins, 'another key');
      }
    }
  }

  /** Deletes the keys of `orphans`; one the card still cannot delete stays for the next sweep. */
  private async sweepOrphans(): Promise<void> {
    for (const ref of [...this.orphans]) {
      try {
        await this.deleteSlot(ref);
      } catch {
        continue;
      }
      this.orphans.delete(ref);
    }
  }

  async publicKey(key: KeyHandle): Promise<Uint8Array | undefined> {
    const k = asCardKey(key, this, this.keys);
    return k.publicKey?.slice();
  }

  async exportKey(_key: KeyHandle): Promise<Uint8Array> {
    throw new StateError('keys on a PC/SC SE never leave the card');
  }

  async storeKey(key: KeyHandle): Promise<StoredKey> {
    // A lost key keeps its reference: the right card (or the key written back) loads it again.
    const k = asCardKey(key, this, this.keys, false);
    return { form: 'reference', kind: k.kind, ref: `${hex(this.live().serial)}:${k.ref}${k.stamp ? `:${hex(k.stamp)}` : ''}` };
  }

  async loadKey(spec: KeySpec, stored: StoredKey): Promise<KeyHandle> {
    const alg = this.supported(spec);
    stored = checkStoredKey(stored);
    if (stored.form !== 'reference') throw new StateError('a PC/SC SE loads card key references only');
    // serial:slot, and the slot's key stamp where the card gave one (written by earlier versions without).
    const [serial, refText = '', stampText, ...rest] = stored.ref.split(':');
    if (serial !== hex(this.live().serial)) throw new StateError(`key reference is for card ${serial}, this is ${hex(this.live().serial)}`);
    if (!/^[1-9]\d{0,2}$/.test(refText) || Number(refText) > 254 || rest.length || (stampText !== undefined && !STAMP_TEXT.test(stampText))) {
      throw new StateError('key reference is not serial:slot[:stamp] of this profile');
    }
    const ref = Number(refText);
    // A key no longer in its slot is a handle of a lost key, not a refusal: the engine loads its
    // resource with the others (one emptied slot does not take the SE's other keys with it), and
    // each use of the key is refused, naming what became of it.
    const lost = (why: string, empty = false) => {
      const k = this.track(new CardKey(spec, stored.kind, ref, stampText === undefined ? undefined : fromHex(stampText), undefined, `card slot ${ref} ${why}`));
      // An emptied slot is taken for no new key while the handle lives: on a card without stamps, a key
      // written there would be loaded by this reference on the next run as if it were the lost one.
      if (empty && !this.usedRefs.has(ref)) {
        this.usedRefs.add(ref);
        k.holdsSlot = true;
      }
      return k;
    };
    let info: Tlv[];
    try {
      info = await this.keyInfo(ref);
    } catch (e) {
      // 6A88 as the GET DATA's own answer: the slot is empty, its key deleted since (by another application, or by hand).
      if (answeredBy(e, INS.GET_DATA) && e.sw === 0x6a88) return lost('holds no key: the key this reference names was deleted from the card', true);
      throw e;
    }
    const onCard = findTlv(info, TAG.ALGORITHM);
    // A key information without its algorithm is the card's fault; one naming another algorithm is a stale reference.
    if (onCard?.length !== 2) throw new ApduError(`the card's information on slot ${ref} has no algorithm (80 of 2 bytes)`);
    if (((onCard[0]! << 8) | onCard[1]!) !== alg) return lost('holds a key for another algorithm');
    // Nor another kind: a verify-only point loaded as a signing key would fail only at its first use.
    const kind = findTlv(info, TAG.KEY_KIND);
    if (kind?.length !== 1 || (kind[0] !== 1 && kind[0] !== 2)) throw new ApduError(`the card's information on slot ${ref} has no key kind (81 of 1 byte, 1 or 2)`);
    if ((kind[0] === 1 ? 'secret' : 'public') !== stored.kind) return lost(`holds a ${kind[0] === 1 ? 'secret' : 'public'} key, the reference names a ${stored.kind} one`);
    const point = isEcdsa(spec) ? ecPoint(findTlv(info, TAG.EC_POINT), alg) : undefined;
    // A key written into the slot since (the old one deleted) has another stamp, even of the same algorithm and kind.
    const stamp = stampOf(info, ref);
    if (stampText !== undefined && (!stamp || hex(stamp) !== stampText)) return lost('holds another key than the one this reference names (written since)');
    return this.track(new CardKey(spec, stored.kind, ref, stamp, point));
  }

  /** Forgets the handle; the key stays in its slot, for a data directory that names it. */
  releaseKey(key: KeyHandle): void {
    if (!(key instanceof CardKey) || !this.keys.has(key) || key.released) return;
    key.released = true;
  }

  /** Deletes the key from its slot (queued; one the card could not delete now is deleted again later, see `orphans`). */
  deleteKey(key: KeyHandle): void {
    if (!(key instanceof CardKey) || !this.keys.has(key) || key.released) return;
    key.released = true;
    // Not ours to delete: the slot is empty (free again once no handle names it), or holds a key written since.
    if (key.lost) {
      if (key.holdsSlot) this.usedRefs.delete(key.ref);
      return;
    }
    const done: Promise<void> = this.deleteSlot(key.ref, key.stamp)
      .catch(() => void (this.shared || this.orphans.add(key.ref)))
      .finally(() => this.deleting.delete(done));
    this.deleting.add(done);
  }

  /** PUT DATA 03: the slot is free again once the card deleted its key, or says there is none (6A88). */
  private async deleteSlot(ref: number, stamp?: Uint8Array): Promise<void> {
    // With the key's stamp, the card deletes that key only: not one another application wrote into the slot since (6A88, as for none).
    const data = stamp ? tlvs([TAG.KEY_STAMP, stamp]) : undefined;
    try {
      await this.session.run(() => this.session.channel0.transmit({ cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_KEY, p2: ref, ...(data ? { data } : {}) }));
    } catch (e) {
      if (!(answeredBy(e, INS.PUT_DATA) && e.sw === 0x6a88)) throw e;
    }
    this.usedRefs.delete(ref);
  }

  async digest(algorithm: HashAlgorithm): Promise<DigestStream> {
    if (!this.capabilities.hashAlgorithms.includes(algorithm)) throw new UnknownAlgorithmError(`hash algorithm ${shown(algorithm)}`);
    const s = this.stream(PSO.HASH, (ch) => ch.setEnvironment(CRT.HT, algorithm), HASHES[algorithm].outputLength);
    return {
      update: async (d) => void (await s.update(d)),
      final: async (last) => {
        if (last) await s.update(last);
        return await s.finish((out) => exactly(out, HASHES[algorithm].outputLength, `${HASHES[algorithm].coreName} digest`));
      },
      abort: () => s.abort(),
    };
  }

  /**
   * PSO ENCIPHER / DECIPHER with the IV or nonce and the AAD in the security
   * environment. An AEAD decipherment answers nothing before its last link
   * verified the tag; a wrong tag is 6300 (AuthenticationError).
   */
  async cipher(algorithm: CipherAlgorithm, key: KeyHandle, direction: 'encrypt' | 'decrypt', params: CipherParams): Promise<CipherStream> {
    if (!this.capabilities.cipherAlgorithms.includes(algorithm)) throw new UnknownAlgorithmError(`cipher algorithm ${shown(algorithm)}`);
    checkDirection(direction);
    params = checkCipherParams(params);
    const k = asCardKey(key, this, this.keys);
    checkKeyUse(k.spec, 'cipher', algorithm);
    // Copies: the card learns them only at the first link, and the caller may reuse its arrays before that.
    // The mode says which one it takes, and one left out is refused here, as the software SE refuses it:
    // CBC the IV, an AEAD the nonce.
    const iv = CIPHERS[algorithm].mode === 'cbc' ? copyArg(params.iv, 'iv') : copyArg(params.nonce, 'nonce');
    const aad = params.aad && copyArg(params.aad, 'aad');
    const extra: [number, Uint8Array][] = [[TAG.IV, iv], ...(aad?.length ? [[TAG.AAD, aad] as [number, Uint8Array]] : [])];
    const dropParams = () => {
      iv.fill(0);
      aad?.fill(0);
    };
    const s = new LinkStream(this.session, this.maxPayload, {
      pso: direction === 'encrypt' ? PSO.ENCIPHER : PSO.DECIPHER,
      setup: (ch) => ch.setEnvironment(CRT.CT, algorithm, k, extra),
      keyGone: () => gone(k),
      output: true,
      most: (n, last) => cipherOutput(CIPHERS[algorithm], direction, n, last).max,
    });
    let finishing = false;
    // Output bytes so far, against what the input given so far allows (cipherOutput).
    let produced = 0;
    const checked = (out: Uint8Array, end: boolean): Uint8Array => {
      produced += out.length;
      const { min, max } = cipherOutput(CIPHERS[algorithm], direction, s.received, end);
      if (produced >= min && produced <= max) return out;
      out.fill(0);
      throw new ApduError(`the card returned ${produced} bytes of ${direction === 'encrypt' ? 'ciphertext' : 'plaintext'} ${end ? 'in all' : 'so far'} for ${s.received} bytes of input (${min === max ? min : `${min} to ${max}`} expected)`);
    };
    return {
      update: async (d) => {
        const out = await dataCall(s.update(d));
        try {
          return checked(out, false);
        } catch (e) {
          // A card whose output cannot be right does not get the rest of the message.
          s.abort();
          dropParams();
          throw e;
        }
      },
      final: async (last) => {
        // Only the first final() owns the end: a second one must not abort it or wipe its parameters.
        if (finishing) throw new StateError('stream already finished');
        finishing = true;
        let head: Uint8Array = new Uint8Array(0);
        try {
          if (last) head = checked(await dataCall(s.update(last)), false);
          const refused = lengthRefusal(CIPHERS[algorithm], direction, s.received);
          if (refused) throw refused;
          const tail = await dataCall(s.finish((out) => checked(out, true)));
          return head.length ? joinParts([head, tail], true) : tail;
        } catch (e) {
          // Plaintext of a message that failed at its end (tag, padding, an output of the wrong length) is released to no one.
          head.fill(0);
          // A final that failed ends the stream: no retry may run under the wiped parameters.
          s.abort();
          throw e;
        } finally {
          dropParams();
        }
      },
      abort: () => {
        dropParams();
        return s.abort();
      },
    };
  }

  async signature(algorithm: SignatureAlgorithm, key: KeyHandle, options: SignatureOptions): Promise<SignatureStream> {
    if (!this.capabilities.signatureAlgorithms.includes(algorithm)) throw new UnknownAlgorithmError(`signature algorithm ${shown(algorithm)}`);
    options = checkSignatureOptions(options);
    const k = asCardKey(key, this, this.keys);
    checkKeyUse(k.spec, 'signature', algorithm);
    const info = SIGNATURES[algorithm];
    if (info.family === 'ecdsa') return this.ecdsaStream(algorithm, k, options);
    // MACs: the message streams to the card in COMPUTE DIGITAL SIGNATURE links;
    // the last command decides between returning the MAC and verifying one.
    const s = this.stream(PSO.COMPUTE_SIGNATURE, (ch) => ch.setEnvironment(CRT.DST, algorithm, k), macLength(algorithm), k);
    // A message CBC-MAC cannot take, once whole, is refused here in the software SE's words (the card's 6700 names no cause).
    const refuseLength = () => {
      if (info.family !== 'cbc-mac' || wholeBlocks(s.received)) return;
      s.abort();
      throw new LengthError(CBC_MAC_LENGTH);
    };
    return {
      update: async (d) => void (await s.update(d)),
      sign: async (last) => {
        if (last) await s.update(last);
        refuseLength();
        return await dataCall(s.finish((out) => exactly(out, macLength(algorithm), `${info.name} MAC`)));
      },
      verify: async (given, last) => {
        const signature = checkSignatureArg(given);
        if (signature.length > longestSignature(algorithm, options.format)) {
          // No MAC is that long, but a message CBC-MAC cannot take is refused first, as the software SE refuses it.
          const total = s.received + (last?.length ?? 0);
          s.abort();
          if (info.family === 'cbc-mac' && !wholeBlocks(total)) throw new LengthError(CBC_MAC_LENGTH);
          return false;
        }
        if (last) await s.update(last);
        refuseLength();
        return verified(s.endWith((ch) => verifyCommand(ch, signature)));
      },
      abort: () => s.abort(),
    };
  }

  // ECDSA hashes on the host (public data) and sends the digest: one PSO per
  // signature whatever the message length. The card signs and verifies.
  private ecdsaStream(algorithm: SignatureAlgorithm, k: CardKey, options: SignatureOptions): SignatureStream {
    const hashName = HASHES[SIGNATURES[algorithm].hash!].coreName;
    const parts: Uint8Array[] = [];
    let done = false;
    // The message is secret: the copies made of it here (through the typed-array slots) are zeroized once used.
    const dropParts = () => {
      for (const p of parts) p.fill(0);
      parts.length = 0;
    };
    const digest = (last?: Uint8Array): Uint8Array => {
      if (done) throw new StateError('stream already finished');
      const tail = last && secretCopyArg(last, 'data');
      done = true;
      if (tail) parts.push(tail);
      const msg = concatBytes(parts, secretBytes);
      dropParts();
      if (options.prehashed) {
        const dl = HASHES[SIGNATURES[algorithm].hash!].outputLength;
        if (msg.length === dl) return msg;
        msg.fill(0);
        throw new LengthError(`prehashed message must be a ${dl}-byte ${hashName} digest, got ${msg.length} bytes`);
      }
      const d = secretDigest(hashName, msg);
      msg.fill(0);
      return d;
    };
    // The link stream keeps its own copy of the digest (zeroized when it ends).
    const send = async (s: LinkStream, last?: Uint8Array) => {
      const d = digest(last);
      try {
        await s.update(d);
      } finally {
        d.fill(0);
      }
    };
    const extra: [number, number[]][] = [[TAG.INPUT_IS_DIGEST, [1]], [TAG.SIG_FORMAT, [options.format === 'der' ? 1 : 0]]];
    const setup = (ch: AppletChannel) => ch.setEnvironment(CRT.DST, algorithm, k, extra);
    return {
      update: async (d) => {
        if (done) throw new StateError('stream already finished');
        parts.push(secretCopyArg(d, 'data'));
      },
      sign: async (last) => {
        checkSigningKey(k.kind);
        const s = this.stream(PSO.COMPUTE_SIGNATURE, setup, longestSignature(algorithm, options.format), k);
        await send(s, last);
        return await s.finish((out) => ecdsaSignature(algorithm, options.format === 'der', out));
      },
      verify: async (given, last) => {
        const signature = checkSignatureArg(given);
        if (signature.length > longestSignature(algorithm, options.format)) {
          digest(last).fill(0);
          return false;
        }
        const s = this.stream(PSO.COMPUTE_SIGNATURE, setup, 0, k);
        await send(s, last);
        return verified(s.endWith((ch) => verifyCommand(ch, signature)));
      },
      abort: () => {
        done = true;
        dropParts();
      },
    };
  }

  /**
   * A stream of message links whose result is at most `most` bytes (a digest, a MAC, a signature):
   * a card that sends more, or keeps announcing more, is refused at once rather than followed
   * through the GET RESPONSE rounds a large result would be allowed.
   */
  private stream(pso: number, setup: (ch: AppletChannel) => Promise<void>, most: number, key?: CardKey): LinkStream {
    this.live();
    return new LinkStream(this.session, this.maxPayload, { pso, setup, most: () => most, ...(key ? { keyGone: () => gone(key) } : {}) });
  }

  private supported(spec: KeySpec): number {
    this.live();
    specInfo(spec);
    const ok = spec.use === 'signature'
      ? this.capabilities.signatureAlgorithms.includes(spec.algorithm)
      : this.capabilities.cipherAlgorithms.includes(spec.algorithm);
    if (!ok) throw new UnknownAlgorithmError(`${spec.use} algorithm ${spec.algorithm} is not supported by the card in ${this.reader}`);
    return spec.algorithm;
  }

  private allocate(): number {
    for (let ref = 1; ref < 255; ref++) {
      if (!this.usedRefs.has(ref)) {
        this.usedRefs.add(ref);
        return ref;
      }
    }
    throw new DeviceFullError('the card has no room for another key (every key slot is in use)');
  }

  private track(k: CardKey): CardKey {
    this.keys.add(k);
    return k;
  }

  /**
   * The stamp the card drew for the key it just wrote into `ref`, read twice:
   * the key's uses and its deletion name it by this stamp, so one garbled
   * answer taken as its name would leave a key every use refuses and whose
   * deletion spares it (6A88, as for another application's key). Two reads
   * that differ are a card fault (or, in shared mode, another application
   * that rewrote the slot between them); the caller then deletes the slot,
   * in shared mode only the key of the first stamp (`seen`).
   */
  private async writtenStamp(ref: number, seen: { stamp?: Uint8Array }): Promise<Uint8Array | undefined> {
    const first = stampOf(await this.keyInfo(ref), ref);
    seen.stamp = first;
    const second = stampOf(await this.keyInfo(ref), ref);
    if ((first && hex(first)) !== (second && hex(second))) throw new ApduError(`the card gave two key stamps for the key it just wrote into slot ${ref}`);
    return first;
  }

  /** GET DATA 01: the card's information on key slot `ref` (never secret material). */
  private async keyInfo(ref: number): Promise<Tlv[]> {
    return decodeTlvs((await this.session.run(() => this.session.channel0.transmit({ cla: 0, ins: INS.GET_DATA, p1: DO.KEY, p2: ref, ne: 256 }))).data);
  }

  private async readPublicKey(ref: number, alg: number): Promise<Uint8Array> {
    const r = await this.session.run(() => this.session.channel0.transmit({
      cla: 0, ins: INS.GENERATE_KEY_PAIR, p1: 0x81, p2: 0, data: tlvs([TAG.KEY_REF, [ref]]), ne: 65536, most: PUBLIC_KEY_TEMPLATE_MAX,
    }));
    return publicPoint(r.data, alg);
  }
}

async function verifyCommand(ch: AppletChannel, signature: Uint8Array) {
  // A MAC to verify is a candidate tag over a secret message: logged as a length, zeroized once sent.
  const data = tlvs([TAG.SIGNATURE, signature]);
  try {
    return await ch.transmit({ cla: 0, ins: INS.PSO, p1: PSO.VERIFY_SIGNATURE >> 8, p2: PSO.VERIFY_SIGNATURE & 0xff, data, secret: true });
  } finally {
    data.fill(0);
  }
}

/** 9000: the signature verified; 6300: it did not (a well-formed "no", not an error). */
async function verified(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return true;
  } catch (e) {
    if (answeredBy(e, INS.PSO, PSO.VERIFY_SIGNATURE) && e.sw === SW_VERIFY_FAILED) return false;
    throw dataError(e);
  }
}

/**
 * What close() says of the keys and data objects the card still keeps: the reader (an engine may host
 * several cards), their numbers and how to delete them, never contents.
 */
function keptOnCard(reader: string, keys: number[], objects: number[]): string {
  const kept = (n: number[], what: string, where: string) => (n.length ? [`${n.length} ${what}${n.length === 1 ? '' : 's'} (${where} ${n.join(', ')})`] : []);
  const how = [...(keys.length ? ['PUT DATA 03 of the slot'] : []), ...(objects.length ? ['PUT DATA 04 of the object'] : [])];
  return `closed, but the card in '${reader}' keeps ${[...kept(keys, 'key', 'slot'), ...kept(objects, 'data object', 'object')].join(' and ')} it could not delete: `
    + `delete ${keys.length + objects.length === 1 ? 'it' : 'them'} with the card present (${how.join(', ')}, docs/apdu-profile.md)`;
}

/**
 * The card's answers to bad input data, as the typed errors every backend
 * throws: only from the PSO that carried the data. A length the mode refuses
 * (6700) may come with any link (the card checks the IV or nonce when the
 * first link sets the operation up); a failed tag (6300) or bad padding
 * (6A80) only with the end of a decipherment, where they are decided. The
 * same status word from MSE:SET, SELECT, a GET RESPONSE or any other command
 * is the card's failure (5000 over Mcs), not the client's.
 */
function dataError(e: unknown): unknown {
  if (!(e instanceof StatusWordError && e.answering.ins === INS.PSO)) return e;
  const deciphered = e.answers(INS.PSO, PSO.DECIPHER);
  if (deciphered && e.sw === SW_VERIFY_FAILED) return new AuthenticationError('the card could not verify the authentication tag');
  if (deciphered && e.sw === 0x6a80) return new PaddingError('the card found invalid padding');
  if (e.sw === 0x6700) return new LengthError('the card refused a length (an IV or nonce the mode does not take, or data that is not a non-empty multiple of 16 bytes without padding)');
  return e;
}

async function dataCall(p: Promise<Uint8Array>): Promise<Uint8Array> {
  try {
    return await p;
  } catch (e) {
    throw dataError(e);
  }
}

// What the card returns, checked against what the profile defines for it,
// each kind in one place: a faulty card, or a forged status word (a 9000 to
// an MSE:SET that never ran leaves the previous environment, and an HMAC
// comes back where a signature was asked for), must not reach the caller as a
// result. Card faults are ApduError (5000 over Mcs), never StateError (4005).

const isEcdsa = (spec: KeySpec): boolean => spec.use === 'signature' && SIGNATURES[spec.algorithm as SignatureAlgorithm]?.family === 'ecdsa';

/** 7F49 { 86 point }: at most 2 + 3 + 1 + 3 + 133 bytes (P-521), with room to spare. */
const PUBLIC_KEY_TEMPLATE_MAX = 256;

/** Raw r || s of two field-length halves, or (C1 01) a DER ECDSA-Sig-Value whose integers fit the field. */
function ecdsaSignature(algorithm: SignatureAlgorithm, der: boolean, sig: Uint8Array): Uint8Array {
  const n = fieldLength(algorithm);
  if (!der) return exactly(sig, 2 * n, `${SIGNATURES[algorithm].name} signature (r || s)`);
  if (derToRaw(sig, n)) return sig;
  throw new ApduError(`the card returned ${sig.length} bytes that are no DER ${SIGNATURES[algorithm].name} signature`);
}

/** The uncompressed point (04 || X || Y) of an ECDSA key for `algorithm`, as a copy. */
function ecPoint(point: Uint8Array | undefined, algorithm: number): Uint8Array {
  const n = 1 + 2 * fieldLength(algorithm);
  if (point?.length === n && point[0] === 0x04) return point.slice();
  throw new ApduError(`the card returned ${point ? `a public point of ${point.length} bytes` : 'no public point'} where an uncompressed one of ${n} bytes belongs`);
}

/** A stamp in a stored reference: hex() of KEY_STAMP_LENGTH bytes. */
const STAMP_TEXT = new RegExp(`^[0-9A-F]{${2 * KEY_STAMP_LENGTH}}$`);

/** A key information's stamp (tag 83, KEY_STAMP_LENGTH bytes), or undefined from a card that gives none. */
function stampOf(info: Tlv[], ref: number): Uint8Array | undefined {
  const stamp = findTlv(info, TAG.KEY_STAMP);
  if (stamp !== undefined && stamp.length !== KEY_STAMP_LENGTH) throw new ApduError(`the card's information on slot ${ref} has a key stamp of ${stamp.length} bytes, not ${KEY_STAMP_LENGTH}`);
  return stamp?.slice();
}

/** The point of a public key template, 7F49 { 86 point }. */
function publicPoint(template: Uint8Array, algorithm: number): Uint8Array {
  const inner = findTlv(decodeTlvs(template), TAG.PUBLIC_KEY_TEMPLATE);
  return ecPoint(inner && findTlv(decodeTlvs(inner), TAG.EC_POINT), algorithm);
}

/**
 * What a cipher operation may have output after `n` input bytes. Before its
 * end: no more than the input (block modes keep a block back, CCM all of it),
 * and nothing at all from an AEAD decipherment, which releases no plaintext
 * before its tag verified. At its end, the whole output: the input plus the
 * tag or minus it (AEAD); for CBC, the input padded to whole blocks
 * (encipherment) or, with padding, one to 16 bytes less (decipherment). An
 * input the card had to refuse allows no output at all (min > max).
 */
function cipherOutput(info: CipherInfo, direction: 'encrypt' | 'decrypt', n: number, end: boolean): { min: number; max: number } {
  const decrypt = direction === 'decrypt';
  if (!end) return { min: 0, max: info.mode !== 'cbc' && decrypt ? 0 : n };
  const exact = (x: number) => ({ min: x, max: x });
  const none = { min: 1, max: 0 };
  if (info.mode !== 'cbc') return !decrypt ? exact(n + info.tagLength!) : n >= info.tagLength! ? exact(n - info.tagLength!) : none;
  const blocks = n % 16 === 0;
  if (decrypt) {
    if (!blocks) return none;
    if (info.padding === 'none') return exact(n);
    if (n === 0) return none; // every padding leaves a block at least
    if (info.padding === 'iso9797-m1') return exact(n); // method 1's zeros cannot be told from data
    return { min: n - 16, max: n - 1 };
  }
  if (info.padding === 'none') return blocks ? exact(n) : none;
  if (info.padding === 'iso9797-m1') return exact(Math.max(16, Math.ceil(n / 16) * 16));
  return exact(n - (n % 16) + 16);
}

/** What CBC-MAC (no padding) takes: a non-empty whole number of blocks. */
const wholeBlocks = (n: number): boolean => n > 0 && n % 16 === 0;

/**
 * A message length the mode cannot take, refused on the host once the message is whole, in the
 * software SE's words: the card's 6700 names no cause (an IV, a nonce or the data), and an SE of
 * each kind must answer the same bad input alike.
 */
function lengthRefusal(info: CipherInfo, direction: 'encrypt' | 'decrypt', n: number): LengthError | undefined {
  const { min, max } = cipherOutput(info, direction, n, true);
  if (min <= max) return undefined;
  return info.mode === 'cbc' ? cbcLengthError(info.padding!, direction === 'decrypt') : shorterThanTag({ name: `AES-${info.mode.toUpperCase()}`, tagLength: info.tagLength! }, n);
}

/**
 * The readers and their states. A reader removed between the listing and the
 * status query fails the query for all (SCARD_E_UNKNOWN_READER): listed again,
 * a few times, rather than failing the discovery of the others.
 */
async function readerStates(ctx: PcscContext): Promise<ReaderState[]> {
  for (let attempt = 1; ; attempt++) {
    const readers = await ctx.listReaders();
    try {
      return readers.length ? await ctx.getStatusChange(readers.map((reader) => ({ reader })), 0) : [];
    } catch (e) {
      if (attempt >= 3 || !(e instanceof PcscError && e.scardName === 'SCARD_E_UNKNOWN_READER')) throw e;
    }
  }
}

/**
 * One backend per reader whose card answers SELECT of the senv applet, each
 * already open. Readers without a card, or with another card, are skipped.
 * pcscd's answers are bounded by `commandTimeoutMs` as the cards' are. The
 * options are checked as the backend checks them, before anything reaches pcscd.
 */
export async function discoverPcscBackends(opts: DiscoverPcscOptions = {}): Promise<PcscBackend[]> {
  const o = optionsArg(opts, 'discoverPcscBackends options', DISCOVER_OPTIONS) ?? {};
  const commandTimeoutMs = checkOptions(o);
  if (o.context && (typeof o.context.listReaders !== 'function' || typeof o.context.getStatusChange !== 'function')) {
    throw new InvalidInputError('discoverPcscBackends needs a context that lists readers (a PcscContext); a card behind a context of your own is new PcscBackend({ reader, context })');
  }
  const listing = o.context ?? (await PcscContext.establish({ timeoutMs: commandTimeoutMs }));
  try {
    const states = await readerStates(listing);
    const found: PcscBackend[] = [];
    for (const s of states.filter((x) => x.present)) {
      const b = new PcscBackend({ ...o, reader: s.reader });
      try {
        await b.open();
        found.push(b);
      } catch {
        await b.close();
      }
    }
    return found;
  } finally {
    // Its failure (pcscd stopped answering) tells the caller nothing the listing did not.
    if (!o.context) await listing.release().catch(() => undefined);
  }
}

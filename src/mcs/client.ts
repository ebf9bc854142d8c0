// A typed convenience layer for callers who prefer methods to primitives.
// Every method sends the same request primitives a network client would
// (in binary mode), so it behaves exactly like Mcs; a failure throws the
// McsError of the response (its rsc and m2m:dbg). The calls on one resource
// run one after another in call order, whichever client or object of this
// engine makes them, so a method made of two requests (verify: UPDATE Sgn,
// then RETRIEVE verifySignature) never interleaves with another such call.
import type { CipherAlgorithm, HashAlgorithm, RebootType, RngType, SignatureAlgorithm } from '../backends/backend.ts';
import type { McsEngine } from './engine.ts';
import type { McsResponse, Operation } from './primitive.ts';
import { McsError, RSC } from './rsc.ts';
import { fromBase64, toBase64 } from './codec.ts';
import { snapshot } from './snapshot.ts';
import { InvalidInputError } from '../core/errors.ts';
import { bytesArg, optionsArg, shown, type OptionNames } from '../core/args.ts';
import type { Bytes } from '../core/bytes.ts';
import { LONGEST_TIMER } from '../core/timers.ts';
import { PUBLIC_KEY_LENGTHS, SIGNATURES } from '../backends/algorithms.ts';
import { checkRebootType } from '../backends/checks.ts';

let counter = 0;

/** The last call queued on each resource of an engine, by the address resource objects were made with. */
const queues = new WeakMap<McsEngine, Map<string, Promise<unknown>>>();
/** The <cipher>s cipher() created without parameters. */
const created = new WeakSet<object>();
/** The resource name of a <cipher>'s <algorithmSpecificParameter> as McsClient creates it: one address for every client. */
const PARAMETERS = 'parameters';

/**
 * How long a call of McsClient may wait: given to the constructor for every call, and to any method for
 * that call (its last argument; a factory's options), where it replaces the client's.
 */
export interface RequestOptions {
  /**
   * Milliseconds from the call by which each of its requests must be served (the primitive's rqet, sent
   * as what is left of them): a request still waiting then, behind another or an SE that stopped
   * answering, answers 4008 (McsError) and changes nothing; one served before runs to its end.
   */
  requestExpiration?: number | undefined;
}

/** What a factory takes besides the type's own attributes (<sensitiveDataObject> has no et, <accessControlPolicy> no acpi). */
export interface CommonOptions extends RequestOptions {
  /** resourceName; the SE assigns one otherwise. */
  name?: string | undefined;
  /** accessControlPolicyIDs: resource IDs or addresses of <accessControlPolicy> resources of this SE. */
  policies?: readonly string[] | undefined;
  /** expirationTime as a oneM2M timestamp ('20261231T000000'). */
  expirationTime?: string | undefined;
}

/** An access control rule: originators (or 'all') and the operations granted (CREATE 1, RETRIEVE 2, UPDATE 4, DELETE 8). */
export interface AccessRule {
  /** accessControlOriginators: AE-IDs or CSE-IDs, or 'all'. */
  originators: readonly string[];
  /** accessControlOperations: the sum of the bits granted (CREATE 1, RETRIEVE 2, UPDATE 4, DELETE 8). */
  operations: number;
}

/** An originator (AE-ID or CSE-ID) talking to one hosted SE. */
export class McsClient {
  /** The engine the requests go to. */
  readonly engine: McsEngine;
  /** The originator (`fr`) of every request. */
  readonly originator: string;
  /** The M2M-SE-ID of the SE the requests go to (the engine's first when none was given). */
  readonly seId: string;
  /** The requestExpiration of a call that gives none (undefined: no expiration). */
  readonly requestExpiration: number | undefined;
  #registration: string | undefined;

  constructor(engine: McsEngine, originator: string, seId?: string, options?: RequestOptions | null) {
    // By shape: the engine module imports this one's types, not the other way round.
    const e = engine as { send?: unknown; seIds?: unknown } | null;
    if (typeof e !== 'object' || e === null || typeof e.send !== 'function' || !Array.isArray(e.seIds)) throw new InvalidInputError(`McsClient needs an McsEngine, got ${shown(engine)}`);
    if (typeof originator !== 'string' || originator === '') throw new InvalidInputError(`the originator is a non-empty string, got ${shown(originator)}`);
    seId ??= engine.seIds[0]!;
    if (typeof seId !== 'string') throw new InvalidInputError(`an M2M-SE-ID is a string, got ${shown(seId)}`);
    this.requestExpiration = expirationArg(optionsArg(options, 'McsClient options', REQUEST_OPTIONS)?.requestExpiration);
    this.engine = engine;
    this.originator = originator;
    this.seId = seId;
  }

  /** Sends one primitive; resolves to the body of its content, or throws the response's McsError. */
  async request(op: Operation, to: string, root?: string, content?: Record<string, unknown>, ty?: number, options?: RequestOptions | null): Promise<Record<string, unknown>> {
    const rqet = expirationOf(this, options);
    const req: Record<string, unknown> = { op, to, fr: this.originator, rqi: `c${++counter}` };
    if (ty !== undefined) req.ty = ty;
    if (rqet !== undefined) req.rqet = rqet;
    // Content as given (null included, which the engine refuses); none is an empty element.
    if (root) req.pc = { [root]: content === undefined ? {} : content };
    const r: McsResponse = await this.engine.send(req, { binary: true });
    if (r.rsc >= 4000) throw new McsError(r.rsc, String(r.pc?.['m2m:dbg'] ?? ''));
    // A response names its element by the type's short name whatever the request named it by: a long root
    // ('senv:hash', which the engine accepts) must still find the body, not an empty object.
    const pc = r.pc as Record<string, unknown> | undefined;
    return (pc && (root && Object.hasOwn(pc, root) ? pc[root] : Object.values(pc)[0])) as Record<string, unknown> ?? {};
  }

  /** CREATE <SE>: registers this originator (required before anything else). */
  async register(name?: string, options?: RequestOptions | null): Promise<this> {
    const level = this.engine.describe(this.seId)?.description.securityLevel;
    this.#registration = (await this.request(1, this.seId, 'senv:Senv', omit({ sID: this.seId, seL: level, rn: name }), 20011, options)).ri as string;
    return this;
  }

  /** DELETE <SE>: deregisters, deleting every resource created under the registration. */
  async deregister(options?: RequestOptions | null): Promise<void> {
    await this.request(4, this.seId, undefined, undefined, undefined, options);
    this.#registration = undefined;
  }

  /** RETRIEVE <SE>: this originator's registration (seT, sID, seL, srt, esi, hcl, hal, acpi). */
  registration(options?: RequestOptions | null): Promise<Record<string, unknown>> {
    return this.#lookUp(options);
  }

  async #lookUp(options: RequestOptions | null | undefined): Promise<Record<string, unknown>> {
    const r = await this.request(2, this.seId, 'senv:Senv', undefined, undefined, options);
    this.#registration = r.ri as string;
    return r;
  }

  /** UPDATE <SE>: srt (narrowed), esi, hcl, hal, acpi by short name. */
  async updateRegistration(attributes: Record<string, unknown>, options?: RequestOptions | null): Promise<Record<string, unknown>> {
    return this.request(3, this.seId, 'senv:Senv', attributesArg(attributes, 'updateRegistration'), undefined, options);
  }

  /** RETRIEVE [deviceInfo] of the registration. */
  deviceInfo(options?: RequestOptions | null): Promise<Record<string, unknown>> {
    return this.#below(2, 'deviceInfo', 'm2m:dvi', undefined, options);
  }

  /** RETRIEVE [memory]: mma (available) and mmt (total), in bytes. */
  async memory(options?: RequestOptions | null): Promise<{ available: number; total: number }> {
    const m = await this.#below(2, 'memory', 'm2m:mem', undefined, options);
    return { available: m.mma as number, total: m.mmt as number };
  }

  /**
   * UPDATE [SEReboot] rb = true: rebootType 1 cold reset, 2 warm reset (the SE's [SEReboot] of that type).
   * The options come last, as on every method: `reboot(undefined, options)` is a cold reset.
   */
  async reboot(type: RebootType = 1, options?: RequestOptions | null): Promise<void> {
    checkRebootType(type);
    await this.#below(3, type === 1 ? 'coldReset' : 'warmReset', 'senv:Srbt', { rb: true }, options);
  }

  /** CREATE <accessControlPolicy> under the registration: `privileges` (pv) for the resources naming it, `selfPrivileges` (pvs) for itself. */
  async accessControlPolicy(options: {
    privileges: readonly AccessRule[];
    selfPrivileges: readonly AccessRule[];
    /** Not here: an <accessControlPolicy> has no acpi (InvalidInputError), typed so that shared CommonOptions are refused when compiled. */
    policies?: never;
  } & Omit<CommonOptions, 'policies'>): Promise<PolicyResource> {
    const opts = required(options, 'accessControlPolicy', POLICY_OPTIONS);
    return new PolicyResource(this, await this.#create(1, 'm2m:acp', { pv: acr(opts.privileges, 'privileges'), pvs: acr(opts.selfPrivileges, 'selfPrivileges') }, opts));
  }

  /** CREATE <hash>: `algorithm` 4 SHA-256, 5 SHA-384, 6 SHA-512. */
  async hash(options: { algorithm: HashAlgorithm } & CommonOptions): Promise<HashResource> {
    const opts = required(options, 'hash', HASH_OPTIONS);
    return new HashResource(this, await this.#create(20004, 'senv:Hsh', { Halg: opts.algorithm }, opts));
  }

  /**
   * CREATE <cipher>, then its <algorithmSpecificParameter> when nonce, iv or
   * aad is given (or later with setParameters). When the parameters are
   * refused the cipher is deleted again and the error thrown.
   */
  async cipher(options: {
    /** TS-0016 table 9.6-1: 1001 / 1002 AES-128 / AES-256 GCM, 1003 / 1004 CCM, 1018 / 1019 CCM_8, 13, 22, 23, 24 AES-CBC. */
    algorithm: CipherAlgorithm;
    /** maxByteSize: the most data, in bytes, the <cipher> holds at a time. */
    maxByteSize: number;
    /** The key (16 or 32 bytes, as the algorithm takes); without it, generateKey() makes one. */
    key?: Uint8Array | undefined;
    /** Whether generateKey() may hand the key out (default false: never returned). */
    exportable?: boolean | undefined;
    /** AEAD: the nonce (12 bytes). */
    nonce?: Uint8Array | undefined;
    /** CBC: the 16-byte IV. */
    iv?: Uint8Array | undefined;
    /** AEAD: the associated data. */
    aad?: Uint8Array | undefined;
  } & CommonOptions): Promise<CipherResource> {
    const opts = required(options, 'cipher', CIPHER_OPTIONS);
    const { key, nonce, iv, aad } = optionalBytes(opts, 'key', 'nonce', 'iv', 'aad');
    // The CREATE and the parameters' requests are one call: one deadline.
    const until = deadline(expirationOf(this, requestPart(opts)));
    // The parameters are sent after the CREATE: copied now.
    return held(omit({ nc: nonce, iV: iv, aD: aad }), async (parameters) => {
      const c = new CipherResource(this, await this.#create(20002, 'senv:Cph', { Calg: opts.algorithm, mbs: opts.maxByteSize, kDt: key, kExp: opts.exportable }, opts, this.seId, within(until)));
      // Just created, with no parameters yet: setParameters() tries the CREATE first.
      if (Object.keys(parameters).length === 0) created.add(c);
      else {
        try {
          await putParameters(this, c.address, parameters, false, () => within(until));
        } catch (e) {
          const left = await c.delete().then(() => undefined, (d: unknown) => d);
          // The caller holds no object for it: the address, so that it can delete it later.
          if (left !== undefined) throw new McsError(e instanceof McsError ? e.rsc : RSC.INTERNAL_SERVER_ERROR, `${e instanceof Error ? e.message : String(e)}; and the <cipher> ${c.address} could not be deleted (${left instanceof Error ? left.message : String(left)})`);
          throw e;
        }
      }
      return c;
    });
  }

  /**
   * CREATE <signature>. `publicKey` (ECDSA): the uncompressed SEC1 point of the algorithm's
   * curve, for a verify-only resource (another form is an InvalidInputError here: the SE would
   * keep it as free-form keyInformation and verify nothing).
   */
  async signature(options: {
    /** TS-0016 table 9.9-1: 49 AES-CMAC, 18 AES CBC-MAC, 33 / 34 / 38 ECDSA P-256 / P-384 / P-521, 25 / 26 / 27 HMAC-SHA-256 / 384 / 512. */
    algorithm: SignatureAlgorithm;
    /** The secret key (a MAC key, or ECDSA's private scalar); without it, generateKey() makes one. */
    key?: Uint8Array | undefined;
    /** ECDSA: the public key alone, for a resource that only verifies (the uncompressed SEC1 point). */
    publicKey?: Uint8Array | undefined;
    /** Whether generateKey() may hand the secret key out (default false: never returned). */
    exportable?: boolean | undefined;
    /** ECDSA: the signature's encoding, 'der' (default) or 'raw' (r || s). */
    format?: 'der' | 'raw' | undefined;
    /** ECDSA: the message is already its hash's digest. */
    prehashed?: boolean | undefined;
  } & CommonOptions): Promise<SignatureResource> {
    const opts = required(options, 'signature', SIGNATURE_OPTIONS);
    const { key, publicKey } = optionalBytes(opts, 'key', 'publicKey');
    // Read once: the caller may reuse the options object for its next call before this one resolved.
    const algorithm = opts.algorithm;
    const info = signatureInfo(algorithm);
    const pointLength = info.curve ? PUBLIC_KEY_LENGTHS[info.curve] : 0;
    if (publicKey && (info.family !== 'ecdsa' || publicKey.length !== pointLength || publicKey[0] !== 4)) {
      throw new InvalidInputError(info.family === 'ecdsa'
        ? `publicKey must be the uncompressed SEC1 point of the curve (${pointLength} bytes, starting with 04), got ${publicKey.length} bytes`
        : 'publicKey is for ECDSA algorithms: a MAC has no public key');
    }
    const kInf = publicKey && toBase64(publicKey);
    const address = await this.#create(20012, 'senv:Sgn', { Salg: algorithm, kDt: key, kInf, kExp: opts.exportable, sgF: opts.format, prH: opts.prehashed }, opts);
    return new SignatureResource(this, address, algorithm);
  }

  /** CREATE <rand>: `rngType` 1 pseudo RNG, 2 true (physical) RNG, of those the SE offers (engine.describe()). */
  async rand(options: { rngType: RngType } & CommonOptions): Promise<RandResource> {
    const opts = required(options, 'rand', RAND_OPTIONS);
    return new RandResource(this, await this.#create(20007, 'senv:Rnd', { rgT: opts.rngType }, opts));
  }

  /** CREATE <sensitiveDataObject>; `opts` may also be just the resourceName. */
  async sensitiveData(data: Uint8Array, opts?: string | (Omit<CommonOptions, 'expirationTime'> & {
    /** Not here: a <sensitiveDataObject> has no et (InvalidInputError), typed so that shared CommonOptions are refused when compiled. */
    expirationTime?: never;
  }) | null): Promise<SensitiveDataResource> {
    const msg = bytesArg(data, 'data');
    const common = typeof opts === 'string' ? { name: opts } : optionsArg(opts, 'sensitiveData options', DATA_OPTIONS);
    return new SensitiveDataResource(this, await this.#create(20009, 'senv:Sdo', { msg }, common));
  }

  async #create(ty: number, root: string, content: Record<string, unknown>, common: CommonOptions = {}, to = this.seId, options: RequestOptions | null | undefined = requestPart(common)): Promise<string> {
    // The common options only where given: content's own rn (createUnder's) stays otherwise.
    const body = await this.request(1, to, root, omit({ ...content, ...omit({ rn: common.name, acpi: common.policies, et: common.expirationTime }) }), ty, options);
    // Only the address is kept: the representation's byte copies (an exportable key, the data) must not linger unreferenced.
    for (const v of Object.values(body)) if (v instanceof Uint8Array) v.fill(0);
    return `${this.seId}/${body.ri as string}`;
  }

  /** Creates a child of `parent` (an <algorithmSpecificParameter> of a cipher). */
  createUnder(parent: string, ty: number, root: string, content: Record<string, unknown>, options?: RequestOptions | null): Promise<string> {
    return this.#create(ty, root, content, {}, parent, options);
  }

  /**
   * A request to `<M2M-SE-ID>/<registration's resource ID>/<name>`, the
   * mgmtObjs the SE keeps below the registration. The resource ID is cached;
   * after a 4004 it is looked up again and the request sent once more (the
   * originator may have registered again meanwhile, through another client).
   */
  async #below(op: Operation, name: string, root: string, content: Record<string, unknown> | undefined, options: RequestOptions | null | undefined): Promise<Record<string, unknown>> {
    // The look-up and the request are one call: one deadline.
    const until = deadline(expirationOf(this, options));
    const send = (ri: string) => this.request(op, `${this.seId}/${ri}/${name}`, root, content, undefined, within(until));
    const fresh = async () => send((await this.#lookUp(within(until))).ri as string);
    const cached = this.#registration;
    if (cached === undefined) return fresh();
    return send(cached).catch((e: unknown) => {
      if (isRsc(e, RSC.NOT_FOUND)) return fresh();
      throw e;
    });
  }
}

/** What every resource object of McsClient has: its address, RETRIEVE, UPDATE of attributes, DELETE. */
export abstract class McsResource {
  /** The client whose originator sends this object's requests. */
  readonly client: McsClient;
  /** Absolute address: `<M2M-SE-ID>/<resourceID>`. */
  readonly address: string;
  protected abstract readonly root: string;

  constructor(client: McsClient, address: string) {
    // Checked here: a wrong client (the engine itself, by mistake) would otherwise fail at the first call with a TypeError.
    if (!(client instanceof McsClient)) throw new InvalidInputError(`a resource object needs an McsClient, got ${shown(client)}`);
    if (typeof address !== 'string' || address === '') throw new InvalidInputError(`a resource's address is a non-empty string, got ${shown(address)}`);
    this.client = client;
    this.address = address;
  }

  /**
   * Runs `fn` after every earlier call on this resource has finished: on this
   * object, another object for the same address, or one of another client
   * (two originators sharing a <signature> would otherwise see each other's
   * Sgn verified). `fn` gives each request it sends `limit()`, what is left of
   * the call's requestExpiration (`options`', or the client's), which runs from
   * this call. Async, so that bad options reject as request()'s do; the call
   * still takes its place in the queue when made.
   */
  protected async serial<T>(fn: (limit: () => RequestOptions) => Promise<T>, options: RequestOptions | null | undefined): Promise<T> {
    const until = deadline(expirationOf(this.client, options));
    let byAddress = queues.get(this.client.engine);
    if (!byAddress) queues.set(this.client.engine, (byAddress = new Map()));
    const before = byAddress.get(this.address) ?? Promise.resolve();
    let expired = false;
    const run = before.then(() => {
      if (expired) throw waitExpired();
      return fn(() => within(until));
    });
    const settled = run.then(() => undefined, () => undefined);
    byAddress.set(this.address, settled);
    void settled.then(() => {
      if (byAddress.get(this.address) === settled) byAddress.delete(this.address);
    });
    // The engine bounds a request once sent; the wait for an earlier call that never ends (a hung SE) is
    // bounded here, and the call then never runs. A deadline beyond the longest timer is the engine's to check.
    if (until === undefined || until - performance.now() > LONGEST_TIMER) return run;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        expired = true;
        reject(waitExpired());
      }, Math.max(0, until - performance.now()));
      void before.then(() => {
        clearTimeout(timer);
        if (!expired) run.then(resolve, reject);
      });
    });
  }

  /**
   * `serial` for a call that carries the caller's values: they are copied
   * now, as engine.send() reads a request when it is called (the caller may
   * reuse or wipe its arrays at once), and the copies zeroized once sent.
   */
  protected serialWith<C, T>(content: C, fn: (content: C, limit: () => RequestOptions) => Promise<T>, options: RequestOptions | null | undefined): Promise<T> {
    return held(content, (c) => this.serial((limit) => fn(c, limit), options));
  }

  /** RETRIEVE: the resource's attributes by short name (byte values as Uint8Array). */
  retrieve(options?: RequestOptions | null): Promise<Record<string, unknown>> {
    return this.serial((limit) => this.client.request(2, this.address, this.root, undefined, undefined, limit()), options);
  }

  /** DELETE: the resource and everything below it; its keys are zeroized. */
  delete(options?: RequestOptions | null): Promise<void> {
    return this.serial(async (limit) => void (await this.client.request(4, this.address, undefined, undefined, undefined, limit())), options);
  }

  /** UPDATE of attributes by short name (acpi and et where the type has them, or the type's own); null removes an optional one. */
  async set(attributes: Record<string, unknown>, options?: RequestOptions | null): Promise<Record<string, unknown>> {
    return this.serialWith(attributesArg(attributes, 'set'), (a, limit) => this.patch(a, limit), options);
  }

  protected patch(content: Record<string, unknown>, limit: () => RequestOptions): Promise<Record<string, unknown>> {
    return this.client.request(3, this.address, this.root, content, undefined, limit());
  }

  protected async run(virtual: string, limit: () => RequestOptions): Promise<Record<string, unknown>> {
    return this.client.request(2, `${this.address}/${virtual}`, this.root, undefined, undefined, limit());
  }
}

/** The message of <hash>, <cipher> and <signature>: chunks appended by UPDATE until an operation ends it. */
export abstract class MessageResource extends McsResource {
  /** Appends to the message (a new message after the operation that ends one). */
  async update(chunk: Uint8Array, options?: RequestOptions | null): Promise<this> {
    await this.serialWith({ msg: bytesArg(chunk, 'chunk') }, (c, limit) => this.patch(c, limit), options);
    return this;
  }

  /** Discards the data held (cbs: 0 on <cipher>, msg: null elsewhere). */
  async discard(options?: RequestOptions | null): Promise<this> {
    await this.serial((limit) => this.patch(this.root === 'senv:Cph' ? { cbs: 0 } : { msg: null }, limit), options);
    return this;
  }
}

// A binary response's byte attributes are arrays of their own (the engine copies or hands over what
// it made, never a view of shared memory): the results below are typed Bytes as their values are.

/** A <hash> (McsClient.hash()). */
export class HashResource extends MessageResource {
  protected readonly root = 'senv:Hsh';
  /** RETRIEVE calculateHash: the digest of the message held, which ends it (the next update() starts another). */
  async calculate(options?: RequestOptions | null): Promise<Bytes> {
    return (await this.serial((limit) => this.run('calculateHash', limit), options)).Hv as Bytes;
  }
}

/** A <cipher> (McsClient.cipher()). */
export class CipherResource extends MessageResource {
  protected readonly root = 'senv:Cph';
  /** Whether the <algorithmSpecificParameter> child existed when this object last looked: unknown (undefined) for an object made from an address. */
  #hasParameters: boolean | undefined;

  /** RETRIEVE encrypt: the ciphertext of the data held (AEAD: followed by the tag), which ends the message. */
  async encrypt(options?: RequestOptions | null): Promise<Bytes> {
    return (await this.serial((limit) => this.run('encrypt', limit), options)).cD as Bytes;
  }
  /** RETRIEVE decrypt: the plaintext of the data held (AEAD: ciphertext and tag; 4102, no plaintext, when the tag is wrong). */
  async decrypt(options?: RequestOptions | null): Promise<Bytes> {
    return (await this.serial((limit) => this.run('decrypt', limit), options)).cD as Bytes;
  }
  /** Generates the key; returns it only when the cipher was created exportable. */
  async generateKey(options?: RequestOptions | null): Promise<Bytes | undefined> {
    return (await this.serial((limit) => this.run('generateKey', limit), options)).kDt as Bytes | undefined;
  }
  /**
   * Creates the <algorithmSpecificParameter> child (named `parameters`), or updates it once it
   * exists (a given value replaces the old one), whichever object or client created it: after a
   * restart a new nonce must replace the old one, never sit beside it.
   */
  async setParameters(p: { nonce?: Uint8Array | undefined; iv?: Uint8Array | undefined; aad?: Uint8Array | undefined }, options?: RequestOptions | null): Promise<void> {
    const { nonce, iv, aad } = optionalBytes(required(p, 'setParameters', PARAMETER_OPTIONS), 'nonce', 'iv', 'aad');
    return this.serialWith(omit({ nc: nonce, iV: iv, aD: aad }), async (content, limit) => {
      const exists = this.#hasParameters ?? !created.has(this);
      this.#hasParameters = undefined;
      await putParameters(this.client, this.address, content, exists, limit);
      this.#hasParameters = true;
    }, options);
  }
}

/** A <signature> (McsClient.signature()): a MAC or an ECDSA key. */
export class SignatureResource extends MessageResource {
  protected readonly root = 'senv:Sgn';
  /** The resource's algorithm (TS-0016 table 9.9-1). */
  readonly algorithm: SignatureAlgorithm;
  constructor(client: McsClient, address: string, algorithm: SignatureAlgorithm) {
    super(client, address);
    // Checked here: generateKey() reads the key information by it (a public point for ECDSA only).
    signatureInfo(algorithm);
    this.algorithm = algorithm;
  }
  /** RETRIEVE calculateSignature: the MAC or signature of the message held, which ends it. */
  async sign(options?: RequestOptions | null): Promise<Bytes> {
    return (await this.serial((limit) => this.run('calculateSignature', limit), options)).Sgn as Bytes;
  }
  /**
   * UPDATE `Sgn`, then RETRIEVE verifySignature: whether `signature` is the message held's (false, not an
   * error, for a wrong one). The two requests run one after the other on this resource.
   */
  async verify(signature: Uint8Array, options?: RequestOptions | null): Promise<boolean> {
    return this.serialWith({ Sgn: bytesArg(signature, 'signature') }, async (c, limit) => {
      await this.patch(c, limit);
      return (await this.run('verifySignature', limit)).vR === true;
    }, options);
  }
  /**
   * Generates the key. `publicKey`: ECDSA's uncompressed SEC1 point (kept
   * in keyInformation; a MAC's keyInformation is whatever the client wrote
   * there, never a public key); `key`: the secret key, only when the
   * resource was created exportable.
   */
  async generateKey(options?: RequestOptions | null): Promise<{ publicKey?: Bytes; key?: Bytes }> {
    const r = await this.serial((limit) => this.run('generateKey', limit), options);
    const point = SIGNATURES[this.algorithm].family === 'ecdsa' && typeof r.kInf === 'string' ? fromBase64(r.kInf) : undefined;
    // The point is fromBase64's new Uint8Array(n).
    return omit({ publicKey: point, key: r.kDt }) as { publicKey?: Bytes; key?: Bytes };
  }
}

/** A <rand> (McsClient.rand()). */
export class RandResource extends McsResource {
  protected readonly root = 'senv:Rnd';
  /** The Dsz this object last saw the resource hold: unknown (undefined) until it generated. */
  #size: number | undefined;

  /**
   * RETRIEVE generateRand: `length` bytes, or the resource's Dsz when left out (4005 while it has
   * none). Dsz is UPDATEd where the resource holds none or, as this object last saw it, another
   * length; an originator granted RETRIEVE alone, whose UPDATE answers 4103, still gets the length
   * the resource holds. The length stays first, so that `generate(16)` reads as before: `generate(undefined, options)`
   * is the Dsz held, within those options.
   */
  async generate(length?: number, options?: RequestOptions | null): Promise<Bytes> {
    if (length !== undefined && !(Number.isSafeInteger(length) && length >= 0)) throw new InvalidInputError(`length must be a whole number of bytes, got ${shown(length)}`);
    return this.serial(async (limit) => {
      if (length === undefined) return this.#generate(limit);
      // What this object saw is a hint: another object or originator may have changed Dsz since, which the result's length tells.
      const first = this.#size === undefined || this.#size === length;
      if (first) {
        // 4005: the resource has no Dsz yet.
        const data = await this.#generateAs(length, limit).catch((e: unknown) => {
          if (isRsc(e, RSC.OPERATION_NOT_ALLOWED)) return undefined;
          throw e;
        });
        if (data) return data;
      }
      try {
        await this.patch({ Dsz: length }, limit);
      } catch (e) {
        // A reader not allowed to UPDATE, whose hint is stale, still gets the length the resource holds by now.
        if (first || !isRsc(e, RSC.ORIGINATOR_HAS_NO_PRIVILEGE)) throw e;
        const data = await this.#generateAs(length, limit);
        if (data) return data;
        throw e;
      }
      return this.#generate(limit);
    }, options);
  }

  async #generate(limit: () => RequestOptions): Promise<Bytes> {
    const data = (await this.run('generateRand', limit)).rndD as Bytes;
    this.#size = data.length;
    return data;
  }

  /** generateRand's bytes if they are `length` long (the resource holds that Dsz); others are zeroized. */
  async #generateAs(length: number, limit: () => RequestOptions): Promise<Bytes | undefined> {
    const data = await this.#generate(limit);
    if (data.length === length) return data;
    data.fill(0);
    return undefined;
  }
}

/** A <sensitiveDataObject> (McsClient.sensitiveData()). */
export class SensitiveDataResource extends McsResource {
  protected readonly root = 'senv:Sdo';
  /** The data held (empty when there is none). */
  async read(options?: RequestOptions | null): Promise<Bytes> {
    return ((await this.retrieve(options)).msg as Bytes | undefined) ?? new Uint8Array(0);
  }
  /** Replaces the data held with `data`. */
  async write(data: Uint8Array, options?: RequestOptions | null): Promise<void> {
    await this.set({ msg: bytesArg(data, 'data') }, options);
  }
}

/** An <accessControlPolicy> (McsClient.accessControlPolicy()). */
export class PolicyResource extends McsResource {
  protected readonly root = 'm2m:acp';
  /** Replaces the privileges (pv) and/or the self privileges (pvs). */
  async update(p: { privileges?: readonly AccessRule[] | undefined; selfPrivileges?: readonly AccessRule[] | undefined }, options?: RequestOptions | null): Promise<void> {
    const o = required(p, 'policy update', POLICY_UPDATE);
    await this.set(omit({ pv: o.privileges && acr(o.privileges, 'privileges'), pvs: o.selfPrivileges && acr(o.selfPrivileges, 'selfPrivileges') }), options);
  }
}

const REQUEST_OPTIONS: OptionNames<RequestOptions> = { requestExpiration: true };
const COMMON_OPTIONS: OptionNames<CommonOptions> = { ...REQUEST_OPTIONS, name: true, policies: true, expirationTime: true };
const POLICY_OPTIONS: OptionNames<Omit<Parameters<McsClient['accessControlPolicy']>[0], 'policies'>> = { ...REQUEST_OPTIONS, name: true, expirationTime: true, privileges: true, selfPrivileges: true };
const HASH_OPTIONS: OptionNames<Parameters<McsClient['hash']>[0]> = { ...COMMON_OPTIONS, algorithm: true };
const CIPHER_OPTIONS: OptionNames<Parameters<McsClient['cipher']>[0]> = {
  ...COMMON_OPTIONS, algorithm: true, maxByteSize: true, key: true, exportable: true, nonce: true, iv: true, aad: true,
};
const SIGNATURE_OPTIONS: OptionNames<Parameters<McsClient['signature']>[0]> = {
  ...COMMON_OPTIONS, algorithm: true, key: true, publicKey: true, exportable: true, format: true, prehashed: true,
};
const RAND_OPTIONS: OptionNames<Parameters<McsClient['rand']>[0]> = { ...COMMON_OPTIONS, rngType: true };
const DATA_OPTIONS: OptionNames<Omit<CommonOptions, 'expirationTime'>> = { ...REQUEST_OPTIONS, name: true, policies: true };
const PARAMETER_OPTIONS: OptionNames<Parameters<CipherResource['setParameters']>[0]> = { nonce: true, iv: true, aad: true };
const POLICY_UPDATE: OptionNames<Parameters<PolicyResource['update']>[0]> = { privileges: true, selfPrivileges: true };

/** The request options among a factory's, whose names the factory checked. */
function requestPart(o: RequestOptions): RequestOptions {
  return { requestExpiration: o.requestExpiration };
}

/** A factory's options: an object (InvalidInputError otherwise, as for every options argument of senv). */
function required<T extends object>(opts: T, what: string, known: OptionNames<T>): T {
  const o = optionsArg(opts, `${what} options`, known);
  if (o === undefined) throw new InvalidInputError(`${what} options must be an object of options, got ${String(opts)}`);
  return o;
}

/**
 * An UPDATE's attributes: an object, as the primitive's content must be (anything else would go
 * out as an empty UPDATE, which succeeds and moves lastModifiedTime).
 */
function attributesArg(attributes: Record<string, unknown>, what: string): Record<string, unknown> {
  if (typeof attributes !== 'object' || attributes === null || Array.isArray(attributes)) throw new InvalidInputError(`${what} takes an object of attributes by short name, got ${shown(attributes)}`);
  return attributes;
}

/**
 * Writes a <cipher>'s parameters to its child named `parameters`: UPDATE where `exists` says the
 * child is, CREATE otherwise. `exists` is only a hint of which to try first (another object or
 * client may have created or deleted the child since): a 4004 from the UPDATE falls back to the
 * CREATE, a 4105 from the CREATE to the UPDATE.
 */
async function putParameters(client: McsClient, cipher: string, content: Record<string, unknown>, exists: boolean, limit: () => RequestOptions): Promise<void> {
  const update = () => client.request(3, `${cipher}/${PARAMETERS}`, 'senv:algP', content, undefined, limit());
  if (exists) {
    try {
      await update();
      return;
    } catch (e) {
      if (!isRsc(e, RSC.NOT_FOUND)) throw e;
    }
  }
  try {
    await client.createUnder(cipher, 20001, 'senv:algP', { ...content, rn: PARAMETERS }, limit());
  } catch (e) {
    if (!isRsc(e, RSC.CONFLICT)) throw e;
    // A child exists: this one, made since, or, when the UPDATE finds none by this name, one of another name (made with primitives).
    await update().catch((u: unknown) => {
      throw isRsc(u, RSC.NOT_FOUND) ? new McsError(RSC.CONFLICT, `${e.message}: this <cipher>'s parameters were created under another name than '${PARAMETERS}'; UPDATE that <algorithmSpecificParameter> by its address`) : u;
    });
  }
}

/**
 * When a call's requests expire, in performance.now() milliseconds; undefined: never. A limit is
 * time that passes, not a wall-clock reading: a clock stepped a day forward between a call's
 * requests would expire the rest of it, one stepped back would extend it.
 */
type Deadline = number | undefined;

function deadline(ms: number | undefined): Deadline {
  return ms === undefined ? undefined : performance.now() + ms;
}

/** The request options of a request sent now for a call that expires at `until`: what is left of its time. */
function within(until: Deadline): RequestOptions {
  // now + ms rounds above 2^53 for the largest limits: what is left stays a limit the caller could give,
  // in whole milliseconds (performance.now() has fractions).
  return until === undefined ? {} : { requestExpiration: Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.floor(until - performance.now()))) };
}

/** A call's requestExpiration: its options' (an object, null or left out, as request() takes them), or the client's where they give none. */
function expirationOf(client: McsClient, options: RequestOptions | null | undefined): number | undefined {
  return expirationArg(optionsArg(options, 'request options', REQUEST_OPTIONS)?.requestExpiration) ?? client.requestExpiration;
}

/** A requestExpiration as the primitive's rqet takes it: a whole number of milliseconds. */
function expirationArg(ms: unknown): number | undefined {
  if (ms !== undefined && !(Number.isSafeInteger(ms) && (ms as number) >= 0)) throw new InvalidInputError(`requestExpiration must be a whole number of milliseconds, got ${shown(ms)}`);
  return ms as number | undefined;
}

const waitExpired = () => new McsError(RSC.REQUEST_TIMEOUT, 'the request expired (requestExpiration) while an earlier call on this resource was under way; nothing was sent');

function isRsc(e: unknown, rsc: number): e is McsError {
  return e instanceof McsError && e.rsc === rsc;
}

/** Rules as the primitive's acr; their content is the engine's to check (4000), their form the client's. */
function acr(rules: readonly AccessRule[], name: string): { acr: { acor: readonly string[]; acop: number }[] } {
  if (!Array.isArray(rules)) throw new InvalidInputError(`${name} must be an array of rules ({ originators, operations }), got ${shown(rules)}`);
  return {
    acr: rules.map((r, i) => {
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new InvalidInputError(`${name}[${i}] must be a rule ({ originators, operations }), got ${shown(r)}`);
      const { originators, operations } = r;
      // A rule written with the primitive's names (acor, acop) would reach the engine without its members,
      // whose 4000 then asks for acor and acop: the names the client takes are said here instead.
      for (const [member, value] of [['originators', originators], ['operations', operations]] as const) {
        if (value === undefined) throw new InvalidInputError(`${name}[${i}] has no ${member}: a rule is { originators, operations } (acor and acop are their names in the primitive)`);
      }
      return { acor: originators, acop: operations };
    }),
  };
}

/** The table entry of a signature algorithm, or an InvalidInputError naming the value. */
function signatureInfo(algorithm: SignatureAlgorithm): (typeof SIGNATURES)[SignatureAlgorithm] {
  if (typeof algorithm !== 'number' || !Object.hasOwn(SIGNATURES, algorithm)) throw new InvalidInputError(`algorithm must be a signature algorithm of table 9.9-1 (${Object.keys(SIGNATURES).join(', ')}), got ${shown(algorithm)}`);
  return SIGNATURES[algorithm];
}

/**
 * The byte options given, each read once and as a plain view of its bytes
 * (bytesArg: a subclass or an own `length` cannot lie about them).
 * Byte arguments are Uint8Arrays, as everywhere in senv: anything else (a
 * string would reach the primitive as base64 and be decoded silently) and a
 * view of a detached buffer are an InvalidInputError.
 */
function optionalBytes<T extends object, K extends keyof T & string>(opts: T, ...names: K[]): Partial<Record<K, Uint8Array>> {
  const out: Partial<Record<K, Uint8Array>> = {};
  for (const n of names) {
    const v = opts[n];
    if (v !== undefined) out[n] = bytesArg(v, n);
  }
  return out;
}

/**
 * Runs `fn` on a copy of `content` taken now (an async function runs to its first await at once);
 * the byte copies are zeroized when it has finished (or the copy failed). Content that cannot be
 * copied rejects, as every failure of the client does, rather than throwing from the call.
 */
async function held<C, T>(content: C, fn: (content: C) => Promise<T>): Promise<T> {
  const copies: Uint8Array[] = [];
  const wipe = () => {
    for (const c of copies) c.fill(0);
  };
  let copy: C;
  try {
    copy = snapshot(content, copies);
  } catch (e) {
    wipe();
    throw e;
  }
  return fn(copy).finally(wipe);
}

function omit(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

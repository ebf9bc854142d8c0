// The Mcs engine: one dispatcher for every request to every hosted SE.
// It checks the envelope, resolves the address, checks registration and
// access, enforces the declared attribute rules of the target's type, runs
// the type's hooks, checks the SE's memory quota, persists the change and
// only then applies it, and answers with a response primitive. Every
// failure becomes a response (never an exception), and a failed request
// leaves no trace in the resource tree: not even one whose change could not
// be written to the data directory.
import { isKeyHandle, type BackendCapabilities, type BackendDescription, type SecureEnvironmentBackend } from '../backends/backend.ts';
import { checkUniqueId } from '../backends/checks.ts';
import { nameSoftware, SoftwareBackend, unnamedSoftware } from '../backends/software/index.ts';
import { DeviceFullError, failureKind, InvalidInputError, OutOfMemoryError, SenvError, StateError, UnknownAlgorithmError } from '../core/errors.ts';
import { flagArg, optionsArg, shown, type OptionNames } from '../core/args.ts';
import { backendMemory, checkBackend, disengage, engage, engineOptions, masterKeyOptions, refuseEngaged } from './engine-checks.ts';
import { LONGEST_TIMER } from '../core/timers.ts';
import { isAllowed, mayRepoint, OP_BITS } from './access.ts';
import { Borrowed, Change, prospect, stage, type Staged } from './change.ts';
import type { Context } from './context.ts';
import { keepsDeviceData, SeHost, type Target } from './host.ts';
import { parseTimestamp } from './codec.ts';
import { parseRequest, releaseVersion, requestId, type McsRequest, type McsResponse, type SendOptions } from './primitive.ts';
import { CREATABLE, NOT_IMPLEMENTED } from './registry.ts';
import { byteSize, represent } from './repr.ts';
import { Resource } from './resource.ts';
import { Accumulator } from './accumulator.ts';
import { badRequest, isA, kindOf, McsError, quoted, RSC, unreadable, type ResponseStatusCode } from './rsc.ts';
import { decodeRequestValue, tooLarge, type AttributeDef, type CompiledType, type VirtualDef } from './schema.ts';
import { SE_TY } from './types/se.ts';
import { MGMT_TY, seRebootType } from './types/mgmt.ts';
import { ACP_TY } from './types/acp.ts';
import { BackendFailure, type Persistence } from './persist.ts';
import { JournalStore } from './store/journal.ts';
import { resolveMasterKey, type MasterKeyOptions } from './store/master-key.ts';
import { openFiles, type Files } from './store/files.ts';
import type { RollbackAnchor } from './store/anchor.ts';
import { setBytes } from './types/common.ts';
import { snapshot } from './snapshot.ts';
import { frozen } from '../core/frozen.ts';
import { changeSize, treeSize } from './usage.ts';

/** Options of McsEngine.create(); every one may be left out (docs/mcs.md). */
export interface McsEngineOptions extends MasterKeyOptions {
  /** The SEs to host; by default one software SE. */
  backends?: readonly SecureEnvironmentBackend[] | undefined;
  /** Largest byte attribute without a maxByteSize of its own (message, sensitiveData of <sensitiveDataObject>...). Default 16 MiB. */
  maxDataSize?: number | undefined;
  /**
   * Bytes each SE whose data the host keeps (keyStorage 'host', e.g. the
   * software SE) may hold for its clients, counted as docs/mcs.md "Memory
   * quota" says; [memory] memTotal. What would go beyond it answers 5207.
   * Default: the total the backend reports (software SE: its storageQuota,
   * 64 MiB). An SE that keeps data on its device reports its own memory.
   */
  memoryQuota?: number | undefined;
  /**
   * Keeps SE-resources in this directory across restarts (Node and Deno),
   * secrets sealed under the master key; in memory when absent.
   */
  dataDir?: string | undefined;
  /** The file operations of the data directory (default: node:fs or Deno), e.g. to watch them or to make writes fail. */
  files?: Files | undefined;
  /**
   * Keeps the head of the data directory's journal where whoever can write
   * the directory cannot set it back (a TPM NV index, a card's data object, a
   * service), written before each write is answered: a directory cut back or
   * put back to an older copy is refused at open (DataDirRolledBackError).
   * docs/mcs.md "Rollback".
   */
  rollbackAnchor?: RollbackAnchor | undefined;
  /** Another persistence than the data directory's journal. */
  store?: Persistence | undefined;
  /** Time source in ms (tests of expirationTime). */
  clock?: (() => number) | undefined;
}

const SEND_OPTIONS: OptionNames<SendOptions> = { binary: true };

const SLASH = 47;
/** A registration's name already in use as the first segment of an address (a registration's name or a resource ID). */
const TAKEN = (rn: string) => `the name '${rn}' is taken on this SE`;
/** How soon the expiration timer tries again when the store could not record a removal. */
const EXPIRY_RETRY_MS = 1000;
/**
 * Longest wait of the expiration timer before it reads the clock again. Timers run on a monotonic
 * clock, the expiration times on the wall clock: one stepped forward (NTP, an operator) or a host
 * resumed from suspend (which stops the monotonic clock) would otherwise leave due keys live, with no
 * traffic, until the time the timer was set for (hours, days) had passed on the monotonic clock.
 */
const EXPIRY_RECHECK_MS = 60_000;

/**
 * The Mcs reference point of TS-0016 in process: hosts one or more SEs and serves oneM2M request
 * primitives to them (send()), or to McsClient's typed methods. Made by McsEngine.create().
 */
export class McsEngine {
  readonly #hosts = new Map<string, SeHost>();
  readonly #maxData: number;
  readonly #clock: () => number;
  readonly #store: Persistence | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** SEs whose expiry sweep waits for its turn or runs. */
  readonly #sweeping = new Set<SeHost>();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(options: McsEngineOptions) {
    this.#maxData = options.maxDataSize ?? 16 * 1024 * 1024;
    // Whole milliseconds, as the journal keeps times (a fraction written would not read back).
    const clock = options.clock;
    this.#clock = clock ? () => Math.floor(clock()) : Date.now;
    this.#store = options.store;
  }

  /** Opens the backends (self tests), loads persisted resources and returns a ready engine. */
  static async create(options?: McsEngineOptions | null): Promise<McsEngine> {
    // An options argument is an object, null or left out (README), as everywhere else.
    options = engineOptions(options);
    const quota = options.memoryQuota;
    if (options.dataDir && !options.store) {
      // Before the directory is locked, upgraded or snapshotted for an engine that would not come up.
      if (options.backends) refuseEngaged(options.backends);
      // Files first: in a browser, "no files here" is the answer, not advice on where to put a master key.
      const files = options.files ?? (await openFiles());
      const masterKey = await resolveMasterKey(options);
      try {
        options = { ...options, store: await JournalStore.open({ dir: options.dataDir, masterKey, files, rollbackAnchor: options.rollbackAnchor }) };
      } finally {
        masterKey.fill(0);
      }
      // The store opened here holds the directory's lock: an engine that does not come up must release it.
      const store = options.store!;
      return McsEngine.create({ ...options, dataDir: undefined, masterKey: undefined, masterKeyFile: undefined, masterKeyEnv: undefined, rollbackAnchor: undefined, store }).catch(async (e: unknown) => {
        await store.close();
        throw e;
      });
    }
    const engine = new McsEngine(options);
    const own = options.backends === undefined;
    const backends = options.backends ?? [new SoftwareBackend()];
    engage(backends);
    try {
      // Software SEs made without an ID take the ones the data directory keeps, in order ('software',
      // 'software-2', ...): with a random one each run, their resources would stay behind unseen.
      let n = 0;
      for (const b of options.store ? backends : []) {
        if (unnamedSoftware(b)) nameSoftware(b, await options.store!.uniqueId(n++ === 0 ? 'software' : `software-${n}`));
      }
      for (const b of backends) {
        await b.open();
        const d: unknown = b.description;
        if (typeof d !== 'object' || d === null) throw new InvalidInputError(`the description of SE backend ${engine.#hosts.size + 1} must be an object, got ${shown(d)}`);
        const { uniqueId } = b.description;
        checkUniqueId(uniqueId, `the unique ID of SE backend ${engine.#hosts.size + 1}`);
        checkBackend(b);
        const id = `${b.description.seType}-${uniqueId}`;
        if (engine.#hosts.has(id)) throw new StateError(`two backends share the M2M-SE-ID ${id}`);
        const hostKeeps = b.capabilities.keyStorage === 'host';
        engine.#hosts.set(id, new SeHost(id, b, hostKeeps ? quota ?? (await backendMemory(b)).total : undefined));
      }
      if (options.store) {
        for (const host of engine.#hosts.values()) await options.store.load(host);
      }
    } catch (e) {
      // An engine that does not come up keeps nothing: what was loaded is released (a device keeps
      // its keys for the next attempt) and the backend it made itself is closed. The caller's own
      // stay open for a retry (a closed PcscBackend cannot be opened again), theirs to close.
      for (const host of engine.#hosts.values()) for (const r of host.byRi.values()) host.releaseResource(r, true);
      if (own) await Promise.allSettled(backends.map((b) => b.close()));
      for (const b of backends) disengage(b);
      throw e;
    }
    engine.#schedule();
    return engine;
  }

  /** M2M-SE-IDs of the hosted SEs (clause 7.2.1: type of SE, '-', unique ID). */
  get seIds(): string[] {
    return [...this.#hosts.keys()];
  }

  /** What a hosted SE is and can do, as its backend reports it. */
  describe(seId: string): { readonly description: Readonly<BackendDescription>; readonly capabilities: Readonly<BackendCapabilities> } | undefined {
    const host = this.#hosts.get(seId);
    // Copies: the engine keeps reading the backend's own (a caller's change must not reach a registration).
    return host && frozen(structuredClone({ description: host.backend.description, capabilities: host.backend.capabilities }));
  }

  /** Serves one request primitive; resolves to its response primitive, never rejects. */
  async send(request: unknown, options?: SendOptions | null): Promise<McsResponse> {
    let req: McsRequest;
    let binary: boolean;
    try {
      if (this.#closed) throw new McsError(RSC.INTERNAL_SERVER_ERROR, 'engine closed');
      req = parseRequest(request);
      binary = readBinary(options);
    } catch (e) {
      return versioned(failure(requestId(request), e), releaseVersion(request));
    }
    const host = this.#route(req.to);
    if (!host) return versioned(failure(req.rqi, new McsError(RSC.NOT_FOUND, 'no SE with this M2M-SE-ID')), req.rvi);
    let now: number;
    try {
      now = this.#clock();
    } catch (e) {
      return versioned(failure(req.rqi, e), req.rvi);
    }
    const turn = host.acquire();
    const deadline = req.rqet === undefined ? undefined : typeof req.rqet === 'number' ? now + req.rqet : parseTimestamp(req.rqet)!;
    // A request read after an await (its turn, or expirations due first) is read as it was sent: its
    // byte values are copied now (and zeroized after), since the caller may reuse or wipe its arrays
    // as soon as send() returned.
    let copies: Uint8Array[] | undefined;
    let unreadable: { error: unknown } | undefined;
    if (turn || now >= host.nextExpiry) {
      copies = [];
      // Content that cannot be read (a getter that throws, too many values) is this request's
      // answer, once its turn came: the turn is taken and must be released like any other.
      try {
        req = detached(req, copies);
      } catch (error) {
        unreadable = { error };
      }
    }
    // Open when send() began, with no await since: only this request's own code (a getter, the clock)
    // closed it, and such a request is refused, whether it waits for its turn or not.
    if (this.#closed) unreadable ??= { error: new McsError(RSC.INTERNAL_SERVER_ERROR, 'engine closed') };
    if (turn && deadline !== undefined && !unreadable && !(await servedBefore(turn, deadline - now))) {
      // Still waiting behind another request (a long operation, a hung SE) when its rqet passed: it
      // answers now and changes nothing; the place it held in the queue is handed on when it comes.
      void turn.then(() => host.release());
      for (const c of copies!) c.fill(0);
      return versioned(failure(req.rqi, expired()), req.rvi);
    }
    if (turn) await turn;
    let response: McsResponse;
    try {
      // Caller code run above (a getter of the request, the clock) may have closed the engine, whose
      // turn on this SE then came first: the SE's keys and secrets are gone.
      if (host.closed) throw new McsError(RSC.INTERNAL_SERVER_ERROR, 'engine closed');
      if (turn) now = this.#clock();
      if (unreadable) throw unreadable.error;
      const ctx = this.#context(host, req.fr, now);
      // Milliseconds count from send() in real time, which servedBefore timed; only a timestamp is read on the engine's
      // clock at the turn (an injected clock that jumped ahead would expire a request that was never late).
      if (deadline !== undefined && (typeof req.rqet === 'number' ? req.rqet <= 0 : now >= deadline)) throw expired();
      if (ctx.now >= host.nextExpiry) await this.#expire(host, ctx);
      // An UPDATE of a chunk answers synchronously; awaiting a plain value would still cost a turn.
      const handled = this.#handle(ctx, req, binary);
      response = handled instanceof Promise ? await handled : handled;
    } catch (e) {
      response = failure(req.rqi, e);
    } finally {
      host.release();
      if (copies) for (const c of copies) c.fill(0);
    }
    if (req.rcn === 0 && response.rsc < 4000) {
      // The representation was the caller's, never shown: its byte values (an exported key, data) are zeroized.
      wipeBytes(response.pc);
      delete response.pc;
    }
    return versioned(response, req.rvi);
  }

  /**
   * Moves the data directory to a new master key, given as McsEngine.create takes one (masterKey,
   * masterKeyFile, or the variable masterKeyEnv, SENV_MASTER_KEY by default), and resolves once it is
   * durably under it: from then on only the new key opens it. Requests wait meanwhile (one snapshot
   * write), and close() waits for it. docs/mcs.md "Rotating the master key".
   */
  async rotateMasterKey(options: MasterKeyOptions): Promise<void> {
    const o = masterKeyOptions(options);
    if (this.#closed) throw new StateError('engine closed');
    const store = this.#store;
    if (!store) throw new StateError('this engine has no data directory (its state is in memory): no master key to rotate');
    if (typeof store.rotateMasterKey !== 'function') throw new StateError('this engine\'s store (McsEngineOptions.store) cannot rotate a master key: it has no rotateMasterKey()');
    // Every SE's turn: no request is between building its record and writing it (sealed under the old
    // key) while the store rotates. Taken at once, in one order (a request holds one turn at most), and
    // before the key is read: a close() called meanwhile queues behind the rotation, as documented.
    const hosts = [...this.#hosts.values()];
    const turns = hosts.map((h) => h.acquire());
    let key: Uint8Array | undefined;
    try {
      key = await resolveMasterKey(o);
      await Promise.all(turns);
      await store.rotateMasterKey(key);
    } finally {
      // A turn is released only once it came, the key unreadable or not.
      await Promise.all(turns);
      for (const h of hosts) h.release();
      key?.fill(0);
    }
  }

  /** Releases every key and stream, closes the backends and the store. */
  close(): Promise<void> {
    // Every call resolves when the closing has finished, not only the first.
    return (this.#closing ??= this.#close());
  }

  /** close(), for `await using x = ...`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    // Every SE at once, each in its own turn (a request under way finishes first): one busy or hung
    // SE must not keep the others' keys live. Then the store (its lock released, its keys zeroized),
    // whatever failed on the way; what failed is thrown at the end, every failure of it (two cards may
    // each keep a key, and the caller must hear of both).
    const closed = await Promise.allSettled([...this.#hosts.values()].map(async (host) => {
      await host.acquire();
      host.closed = true;
      try {
        // Keys and data a device keeps stay there when the store names them (the next run loads them);
        // data no resource names (a failed CREATE's, see #abandon) goes either way.
        // Data that could not be removed is reported once the keys are released and the backend closed,
        // with what the backend's close reports (keys it could not delete): one error names both.
        const stays = await host.removeDeviceData(!this.#store).then(() => undefined, (e: unknown) => ({ e }));
        for (const r of host.byRi.values()) host.releaseResource(r, this.#store !== undefined);
        // The backend's close is reached whatever failed before; what it throws is told as a typed
        // error (a backend's own TypeError would say nothing of which SE or step failed), with its
        // message: close() answers the engine's owner, not a remote originator.
        // A close() that throws at once is a failure like a rejection; one that returns no promise has closed.
        const closing = await Promise.resolve().then(() => host.backend.close()).then(() => undefined, (e: unknown) => ({
          e: isA(e, SenvError) ? e : new StateError(`SE ${host.seId}: its backend's close() failed (${failureKind(e)}${e instanceof Error ? `: ${e.message}` : ''})`),
        }));
        if (closing && stays) throw new StateError(`${closing.e.message}; and ${stays.e instanceof Error ? stays.e.message : failureKind(stays.e)}`);
        if (closing) throw closing.e;
        if (stays) throw stays.e;
      } finally {
        // Closed, or failed closing: either way this engine is done with it, and another may take it.
        disengage(host.backend);
        host.release();
      }
    }));
    const failures = closed.filter((c): c is PromiseRejectedResult => c.status === 'rejected').map((c) => c.reason as unknown);
    await this.#store?.close().catch((e: unknown) => void failures.push(e));
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) {
      // Each message names its SE or device (docs/mcs.md "Writing a backend") or the data directory.
      throw new StateError(`close() failed ${failures.length} times: ${failures.map((e, i) => `(${i + 1}) ${e instanceof Error ? e.message : failureKind(e)}`).join('; ')}`);
    }
  }

  /**
   * The SE whose M2M-SE-ID is the first segment of `to`, found in place: a
   * substring would have to be hashed for a map lookup, and startsWith is
   * several times slower than indexOf in V8.
   */
  #route(to: string): SeHost | undefined {
    const start = to.charCodeAt(0) === SLASH ? 1 : 0;
    for (const host of this.#hosts.values()) {
      const end = start + host.seId.length;
      if (to.indexOf(host.seId, start) === start && (to.length === end || to.charCodeAt(end) === SLASH)) return host;
    }
    return undefined;
  }

  #context(host: SeHost, originator: string, now = this.#clock()): Context {
    return { host, originator, maxData: this.#maxData, now, effects: [] };
  }

  /** Checks that hold for every operation, then runs it (throws synchronously for those checks). */
  #handle(ctx: Context, req: McsRequest, binary: boolean): McsResponse | Promise<McsResponse> {
    const { host } = ctx;
    // A registration is a CREATE <SE> at the M2M-SE-ID itself (#route matched it at the start of
    // `to`): an unregistered originator learns nothing of any other address.
    const registering = req.op === 1 && req.ty === SE_TY && req.to.length - (req.to.charCodeAt(0) === SLASH ? 1 : 0) === host.seId.length;
    if (!registering && !host.registrationOf(req.fr)) {
      if (host.failed) throw outOfService(host);
      throw new McsError(RSC.ORIGINATOR_HAS_NOT_REGISTERED, 'originator is not registered with this SE: CREATE an <SE> first');
    }
    const target = host.resolve(req.to);
    // An SE out of service (a failed self test, a reset that could not reach the card) takes one
    // request: an UPDATE of its [SEReboot], whose success brings it back.
    if (host.failed && !(req.op === 3 && !target.virtual && target.res?.def.type === seRebootType)) throw outOfService(host);
    switch (req.op) {
      case 1: return this.#create(ctx, req, target, binary);
      case 2: return this.#retrieve(ctx, req, target, binary);
      case 3: return this.#update(ctx, req, target, binary);
      case 4: return this.#delete(ctx, req, target);
    }
  }

  async #create(ctx: Context, req: McsRequest, target: Target, binary: boolean): Promise<McsResponse> {
    const { host } = ctx;
    const ty = req.ty!;
    // Privilege first: an originator without it learns nothing of what the parent would accept
    // (a virtual resource's is its parent's), not even that an <SE> does not go there.
    const parent = ty === SE_TY && !target.res ? undefined : target.res ?? host.registrationOf(ctx.originator)!;
    if (parent) this.#authorize(ctx, parent, 1);
    const def = CREATABLE.get(ty);
    const name = def?.type.name ?? NOT_IMPLEMENTED[ty] ?? (ty === MGMT_TY ? 'mgmtObj' : undefined);
    if (name === undefined) throw badRequest(`unknown resource type ${ty}`);
    if (target.virtual) throw new McsError(RSC.OPERATION_NOT_ALLOWED, `CREATE is not allowed on virtual resource ${target.virtual.name}`);
    if (parent && ty === SE_TY) throw new McsError(RSC.INVALID_CHILD_RESOURCE_TYPE, '<SE> is created at the M2M-SE-ID only');
    // A type the parent's table does not list is refused as such, implemented or not: the answer
    // does not change when a later release implements it.
    if (parent && !parent.def.type.children.includes(ty)) {
      throw new McsError(RSC.INVALID_CHILD_RESOURCE_TYPE, `<${name}> cannot be a child of <${parent.def.type.name}>`);
    }
    if (ty === MGMT_TY) throw new McsError(RSC.OPERATION_NOT_ALLOWED, '[deviceInfo] and [memory] are maintained by the SE');
    if (!def) throw new McsError(RSC.NOT_IMPLEMENTED, `<${name}> is not implemented by this SE`);
    if (parent) {
      const srt = parent.registration.attrs.get('supportedResourceType') as number[];
      if (!srt.includes(ty)) throw new McsError(RSC.INVALID_CHILD_RESOURCE_TYPE, `resource type ${ty} is not in this registration's srt`);
    }
    const { values } = this.#content(def, req.pc!, 'create');
    const stated = takeStated(def, values);
    let ri: string, rn: string;
    try {
      for (const a of def.all) {
        if (a.create === 'M' && !values.has(a.name)) throw badRequest(`${a.sn} (${a.name}) is mandatory at CREATE`);
      }
      // A well-formed registration sent again (a retry) is told so, whatever name it gives.
      if (!parent && host.registrationOf(ctx.originator)) throw new McsError(RSC.ORIGINATOR_HAS_ALREADY_REGISTERED, `${quoted(ctx.originator)} is already registered with this SE`);
      ri = host.newRi(def.type);
      rn = (values.get('resourceName') as string | undefined) ?? ri;
      values.delete('resourceName');
      const siblings = parent ? parent.children : host.top;
      if (siblings.has(rn) || parent?.def.virtuals.has(rn)) throw new McsError(RSC.CONFLICT, parent ? `a resource named '${rn}' exists here` : TAKEN(rn));
      // The first segment of an address is a resource ID or a registration's name: the two never meet.
      // One text for both: an originator that is not registered yet learns no more than that the name is taken.
      if (!parent && host.byRi.has(rn)) throw new McsError(RSC.CONFLICT, TAKEN(rn));
      const max = def.type.maxPerParent;
      if (parent && max !== undefined && [...parent.children.values()].filter((c) => c.def === def).length >= max) {
        throw new McsError(RSC.CONFLICT, `<${parent.def.type.name}> holds at most ${max} <${def.type.name}>`);
      }
      this.#checkCommon(ctx, values);
    } catch (e) {
      wipe(values);
      throw e;
    }
    const inherited = def.type.acpiFromParent && !values.has('accessControlPolicyIDs') ? (parent?.attrs.get('accessControlPolicyIDs') as string[] | undefined) : undefined;
    if (inherited?.length) values.set('accessControlPolicyIDs', [...inherited]);
    const res = new Resource(def, ri, rn, parent, ctx.now);
    for (const [k, v] of values) res.attrs.set(k, v);
    res.attrs.set('creator', ctx.originator);
    // Until it is linked the new resource is the request's alone: nothing else sees what the hooks do to it.
    try {
      const append = def.appendAttr;
      if (append && values.has(append.name)) {
        const acc = new Accumulator();
        const chunk = values.get(append.name) as Uint8Array;
        this.#checkLimit(res, append, 0, chunk.length);
        acc.append(chunk);
        chunk.fill(0);
        res.attrs.set(append.name, acc);
      }
      await def.type.hooks?.create?.(ctx, res);
      // Once the hooks computed them (SEType, the size of the data the device now holds).
      if (stated) checkStated(res, stated);
      host.reserve(treeSize(res));
      if (this.#store) await durably(this.#store.put(host, res, true));
    } catch (e) {
      await this.#abandon(ctx, res);
      throw e;
    }
    host.link(res);
    // Armed before the effects run: one that fails answers 5000 with the resource linked (and stored), whose et must still hold.
    this.#schedule();
    await this.#effects(ctx);
    return reply(RSC.CREATED, req.rqi, represent(host.seId, res, host.backend, { binary }));
  }

  /** Undoes what the hooks of a CREATE that fails did outside the new resource (data written to the device) and releases it. */
  async #abandon(ctx: Context, res: Resource): Promise<void> {
    // Best effort: the request fails anyway, with the error that made it fail. Data the device still
    // keeps is named by no resource: close() removes it, or says it stays.
    await this.#beforeRemove(ctx, res).catch(() => {
      // A new resource: no children.
      if (keepsDeviceData(res)) ctx.host.strays.add(res.ri);
    });
    ctx.host.discard(res);
  }

  #retrieve(ctx: Context, req: McsRequest, target: Target, binary: boolean): McsResponse | Promise<McsResponse> {
    const res = target.res ?? ctx.host.registrationOf(ctx.originator)!;
    this.#authorize(ctx, res, 2);
    return target.virtual ? this.#operate(ctx, req, res, target.virtual, binary) : this.#read(ctx, req, res, binary);
  }

  /**
   * RETRIEVE of a virtual resource: runs its operation and commits what it
   * changed, also when it failed (the message it consumed is kept like any
   * other change), then answers or throws the operation's error. Without a
   * promise of its own when the operation and the commit finished at once.
   */
  #operate(ctx: Context, req: McsRequest, res: Resource, virtual: VirtualDef, binary: boolean): McsResponse | Promise<McsResponse> {
    const change = new Change();
    const only = res.def.results.get(virtual)!;
    const settle = (failure?: { error: unknown }): McsResponse | Promise<McsResponse> => {
      const owned = binary && !failure ? handOver(change, only) : undefined;
      const done = (): McsResponse | Promise<McsResponse> => {
        if (failure) throw failure.error;
        return reply(RSC.OK, req.rqi, represent(ctx.host.seId, res, ctx.host.backend, { binary, only, owned }));
      };
      const committed = change.empty ? undefined : this.#commit(ctx, res, change);
      return committed ? committed.then(done) : done();
    };
    let ran: void | Promise<void>;
    try {
      ran = virtual.run(ctx, res, change);
    } catch (error) {
      return settle({ error });
    }
    return ran instanceof Promise ? ran.then(() => settle(), (error: unknown) => settle({ error })) : settle();
  }

  async #read(ctx: Context, req: McsRequest, res: Resource, binary: boolean): Promise<McsResponse> {
    const { host } = ctx;
    const refresh = res.def.type.hooks?.retrieve;
    const values = refresh ? (await refresh(ctx, res)) ?? undefined : undefined;
    if (!values) return reply(RSC.OK, req.rqi, represent(host.seId, res, host.backend, { binary }));
    try {
      return { rsc: RSC.OK, rqi: req.rqi, pc: await represent(host.seId, res, host.backend, { binary, values }) };
    } finally {
      for (const v of values.values()) v.fill(0);
    }
  }

  /**
   * Validates an UPDATE, runs the type's check and commits it; without a
   * promise of its own unless the hook, the backend stream or the store has
   * to be waited for (an UPDATE of a chunk is the hot path).
   */
  #update(ctx: Context, req: McsRequest, target: Target, binary: boolean): McsResponse | Promise<McsResponse> {
    const { host } = ctx;
    // Privilege first, as for CREATE: a virtual resource's is its parent's.
    const res = target.res ?? host.registrationOf(ctx.originator)!;
    this.#authorize(ctx, res, 4);
    if (target.virtual) throw new McsError(RSC.OPERATION_NOT_ALLOWED, `UPDATE is not allowed on virtual resource ${target.virtual.name}`);
    const def = res.def;
    const content = this.#content(def, req.pc!, 'update');
    const changes = content.values;
    let borrowed = content.borrowed;
    const stated = takeStated(def, changes);
    // What a refused UPDATE decoded is zeroized (past this point the commit does that).
    let checked: void | Promise<void> = undefined;
    try {
      if (stated) checkStated(res, stated);
      if (changes.has('accessControlPolicyIDs') && !mayRepoint(res, ctx.originator, (ri) => host.byRi.get(ri))) {
        throw new McsError(RSC.ORIGINATOR_HAS_NO_PRIVILEGE, 'changing acpi needs UPDATE in the selfPrivileges (pvs) of the policies in force');
      }
      this.#checkCommon(ctx, changes);
      const append = def.appendAttr;
      const chunk = append && (changes.get(append.name) as Uint8Array | null | undefined);
      const acc = append && (res.attrs.get(append.name) as Accumulator | undefined);
      if (append && chunk) this.#checkLimit(res, append, acc && !acc.consumed ? acc.size : 0, chunk.length);
      checked = def.type.hooks?.update?.(ctx, res, changes);
    } catch (e) {
      wipe(changes, borrowed);
      throw e;
    }
    // The caller's chunk is read in place only when it is applied before send() returns; one that
    // waits for the hook or the store's write is copied now (a plain view's slice() is a copy), and
    // then owned (zeroized after use). A hook may have replaced it (cbs 0 turns an empty chunk into
    // the discard, null): that stays.
    if (borrowed && (checked || this.#store)) {
      if (changes.get(def.appendAttr!.name) === borrowed) changes.set(def.appendAttr!.name, borrowed.slice());
      borrowed = undefined;
    }
    const change = new Change(changes);
    const answer = () => reply(RSC.UPDATED, req.rqi, represent(host.seId, res, host.backend, { binary, only: modified(def, changes) }));
    if (checked) {
      return checked.then(() => this.#commit(ctx, res, change, borrowed), (e: unknown) => {
        wipe(changes, borrowed);
        throw e;
      }).then(answer);
    }
    const committed = this.#commit(ctx, res, change, borrowed);
    return committed ? committed.then(answer) : answer();
  }

  /**
   * Commits a change: checks it against the quota, makes it durable (with a
   * store) and only then applies it. A change refused at either step is
   * discarded and the resource stays exactly as it was. Synchronous when
   * nothing has to be waited for.
   */
  #commit(ctx: Context, res: Resource, change: Change, borrowed?: Uint8Array): Promise<void> | void {
    const { host } = ctx;
    const store = this.#store;
    const delta = changeSize(res, change);
    let staged: Staged;
    try {
      host.reserve(delta);
      staged = stage(res, change);
    } catch (e) {
      discard(host, change, borrowed);
      throw e;
    }
    if (!store) return this.#apply(ctx, res, change, delta, borrowed, staged);
    return durably(persist(store, host, res, change, ctx.now)).then(
      () => this.#apply(ctx, res, change, delta, borrowed, staged),
      (e: unknown) => {
        discard(host, change, borrowed);
        throw e;
      },
    );
  }

  /**
   * Writes a committed change into the resource (a chunk into its
   * accumulator) with what stage() allocated for it, so nothing here fails,
   * then runs what waited for it.
   */
  #apply(ctx: Context, res: Resource, change: Change, delta: number, borrowed: Uint8Array | undefined, staged: Staged): Promise<void> | void {
    const { host } = ctx;
    const append = res.def.appendAttr?.name;
    const chunk = append === undefined ? undefined : (change.attrs.get(append) as Uint8Array | null | undefined);
    const { acc } = staged;
    if (acc && (chunk !== undefined || change.consumed)) acc.receive(chunk, change.consumed, staged.space);
    if (acc && acc !== res.attrs.get(append!)) res.attrs.set(append!, acc);
    for (const [name, v] of change.attrs) {
      if (name === append) continue;
      if (v === null) {
        const old = res.attrs.get(name);
        if (old instanceof Uint8Array) old.fill(0);
        res.attrs.delete(name);
      } else if (v instanceof Uint8Array) setBytes(res.attrs, name, v);
      else if (v instanceof Borrowed) setBytes(res.attrs, name, copyInto(v.into!, v.bytes));
      else res.attrs.set(name, v);
    }
    let pumping: Promise<void> | undefined;
    if (chunk) {
      if (chunk !== borrowed) chunk.fill(0);
      // Started once every attribute is in place: the stream it opens reads the key and parameters.
      const open = res.def.type.hooks?.stream;
      const batch = host.backend.capabilities.preferredBatchSize;
      if (open && acc!.ready(batch)) pumping = acc!.pump(batch, () => open(ctx, res));
    }
    if (change.hint !== undefined) res.hint = change.hint;
    res.modified = ctx.now;
    host.used += delta;
    if (change.attrs.has('expirationTime')) {
      host.watchExpiry(res);
      this.#schedule();
    }
    if (!pumping && ctx.effects.length === 0) return;
    return (async () => {
      await pumping;
      await this.#effects(ctx);
    })();
  }

  /** Runs what the request's hooks deferred until its change took effect. */
  async #effects(ctx: Context): Promise<void> {
    for (const effect of ctx.effects) await effect();
  }

  async #delete(ctx: Context, req: McsRequest, target: Target): Promise<McsResponse> {
    const { host } = ctx;
    const res = target.res ?? host.registrationOf(ctx.originator)!;
    this.#authorize(ctx, res, 8);
    if (target.virtual) throw new McsError(RSC.OPERATION_NOT_ALLOWED, `DELETE is not allowed on virtual resource ${target.virtual.name}`);
    if (res.def.type.systemOnly) throw new McsError(RSC.OPERATION_NOT_ALLOWED, `[${res.def.type.name}] is maintained by the SE`);
    await this.#remove(ctx, [res]);
    return { rsc: RSC.DELETED, rqi: req.rqi };
  }

  /**
   * Deletes resources (none below another) and everything below them: device-side clean-up first
   * (it cannot be taken back, and is idempotent, so a DELETE whose write failed can be repeated),
   * then one durable record of them all, then the tree.
   */
  async #remove(ctx: Context, tops: readonly Resource[]): Promise<void> {
    const { host } = ctx;
    for (const r of tops) await this.#beforeRemove(ctx, r);
    if (this.#store) await durably(this.#store.remove(host, tops.flatMap((r) => host.subtree(r))));
    for (const r of tops) host.remove(ctx, r);
  }

  /** Runs the delete hooks of a resource and everything below it (device-side clean-up). */
  async #beforeRemove(ctx: Context, res: Resource): Promise<void> {
    for (const c of res.children.values()) await this.#beforeRemove(ctx, c);
    const hook = res.def.type.hooks?.delete;
    if (hook) await hook(ctx, res);
  }

  #authorize(ctx: Context, res: Resource, op: (typeof OP_BITS)[keyof typeof OP_BITS]): void {
    if (!isAllowed(res, ctx.originator, op, (ri) => ctx.host.byRi.get(ri))) {
      throw new McsError(RSC.ORIGINATOR_HAS_NO_PRIVILEGE, 'originator has no privilege for this operation');
    }
  }

  /**
   * Decodes the content of a CREATE or UPDATE against the declared attributes
   * of `def`: the own members of the caller's objects, each read once. Byte
   * values become private copies, except a chunk an UPDATE appends given as
   * bytes: the accumulator copies that one, so it stays a view of the
   * caller's array (`borrowed`), neither kept nor zeroized.
   */
  #content(def: CompiledType, pc: Record<string, unknown>, when: 'create' | 'update'): { values: Map<string, unknown>; borrowed?: Uint8Array } {
    const values = new Map<string, unknown>();
    let borrowed: Uint8Array | undefined;
    // A request sent before close() is served (close waits for it); only one whose own getter closed
    // the engine while its content was read is refused below.
    const closedBefore = this.#closed;
    try {
      const root = def.type.root;
      const keys = Object.keys(pc);
      if (keys.length !== 1 || (keys[0] !== root && keys[0] !== def.type.longRoot)) throw badRequest(`content must be one element '${root}'`);
      const body = pc[keys[0]!];
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(`content must be one element '${root}' holding an object`);
      for (const k of Object.keys(body)) {
        const v = (body as Record<string, unknown>)[k];
        const a = def.bySn.get(k) ?? def.byName.get(k);
        if (!a) throw badRequest(`unknown attribute '${quoted(k)}' for <${def.type.name}>`);
        if (values.has(a.name)) throw badRequest(`${a.sn} (${a.name}) given twice`);
        // The SE sets it at every CREATE: the request for it is met, and nothing is stored from it.
        if (v === null && when === 'create' && a.nullAsksAtCreate) continue;
        if (a.access === 'RO' && !a.stated) throw badRequest(`${a.sn} (${a.name}) is read-only`);
        if (when === 'update' && a.access === 'WO') throw badRequest(`${a.sn} (${a.name}) is write-once: set at CREATE only`);
        if ((when === 'create' ? a.create : a.update) === 'NP') throw badRequest(`${a.sn} (${a.name}) is not permitted at ${when.toUpperCase()}`);
        if (v === null && when === 'create') throw badRequest(`${a.sn} (${a.name}) cannot be null at CREATE: leave it out (null removes a value at UPDATE)`);
        if (v === null) {
          // Null removes a value (TS-0004); one the type makes mandatory (pv) or the SE fills in (srt) stays.
          if (a.always || a.create === 'M') throw badRequest(`${a.sn} (${a.name}) always has a value: it can be changed, not removed`);
          values.set(a.name, null);
        } else if (when === 'update' && a.append) {
          const chunk = decodeRequestValue(a, v, this.#maxData, false) as Uint8Array;
          // Base64 was decoded into an array of the request's own; bytes are the view of the caller's.
          if (typeof v !== 'string') borrowed = chunk;
          values.set(a.name, chunk);
        } else values.set(a.name, decodeRequestValue(a, v, this.#maxData));
      }
      // A limit attribute (maxByteSize) cannot promise more than the SE holds for one value.
      for (const a of def.limited) {
        const limit = values.get(a.maxFrom!) as number | undefined;
        if (limit && limit > this.#maxData) throw new McsError(RSC.NOT_ACCEPTABLE, `${def.byName.get(a.maxFrom!)!.sn} exceeds this SE's limit of ${this.#maxData} bytes`);
      }
      // A getter of the content may have closed the engine, whose close waits for this turn: nothing is applied.
      if (this.#closed && !closedBefore) throw new McsError(RSC.INTERNAL_SERVER_ERROR, 'engine closed');
    } catch (e) {
      // Secrets decoded before the refusal are zeroized; the caller's own chunk is left alone.
      wipe(values, borrowed);
      throw unreadable(e, 'the request content');
    }
    return { values, borrowed };
  }

  /**
   * expirationTime in the future; accessControlPolicyIDs naming <accessControlPolicy> resources of
   * this SE that the originator may retrieve: a policy it may not is answered as one that does not
   * exist, so that acpi is no way to learn which addresses are policies, or their resource IDs.
   */
  #checkCommon(ctx: Context, values: Map<string, unknown>): void {
    const et = values.get('expirationTime');
    if (typeof et === 'number' && et <= ctx.now) throw badRequest('et (expirationTime) must be in the future');
    const acpi = values.get('accessControlPolicyIDs');
    if (Array.isArray(acpi)) {
      const lookup = (ri: string) => ctx.host.byRi.get(ri);
      values.set('accessControlPolicyIDs', acpi.map((id: string) => {
        const acp = policyAt(ctx.host, id);
        if (acp?.ty !== ACP_TY || !isAllowed(acp, ctx.originator, OP_BITS[2], lookup)) {
          throw badRequest(`acpi: '${quoted(id)}' is not an <accessControlPolicy> of this SE the originator may retrieve`);
        }
        return acp.ri;
      }));
    }
  }

  #checkLimit(res: Resource, a: AttributeDef, held: number, adding: number): void {
    // A maxByteSize written under a larger maxDataSize (a data directory opened with a smaller one) does not raise it.
    const max = a.maxFrom ? Math.min(res.attrs.get(a.maxFrom) as number, this.#maxData) : this.#maxData;
    if (held + adding > max) throw tooLarge(a, max);
  }

  /**
   * Removes expired resources (zeroizing their keys) before a request sees the tree: every one
   * due, as one write to the store (each flushed record costs a disk's flush: thousands due after
   * a restart took seconds one by one); one below another due goes with it. When the store
   * refuses the write, all of them stay and stay due: the request fails (5000) and the next one
   * tries again.
   */
  async #expire(host: SeHost, ctx: Context): Promise<void> {
    const due = new Set(host.expired(ctx.now).filter((r) => host.byRi.has(r.ri)));
    const tops = [...due].filter((r) => {
      for (let p = r.parent; p; p = p.parent) if (due.has(p)) return false;
      return true;
    });
    if (!tops.length) return;
    try {
      await this.#remove(ctx, tops);
    } catch (e) {
      for (const r of due) if (host.byRi.has(r.ri)) host.watchExpiry(r);
      throw e;
    }
  }

  /**
   * Wakes up at the next expirationTime so keys are zeroized on time even
   * without traffic; after a removal the store could not record, not before
   * `notBefore` ms (no busy loop while a disk is failing).
   */
  #schedule(notBefore = 0): void {
    clearTimeout(this.#timer);
    let next = Infinity;
    // An SE whose sweep waits for its turn is left out: that sweep schedules again when it has run.
    for (const h of this.#hosts.values()) if (!this.#sweeping.has(h)) next = Math.min(next, h.nextExpiry);
    if (next === Infinity || this.#closed) return;
    let delay: number;
    try {
      delay = Math.min(Math.max(notBefore, next - this.#clock()), EXPIRY_RECHECK_MS);
    } catch {
      // A clock that failed (a caller's clock option) is asked again later; a timer must not throw.
      delay = EXPIRY_RETRY_MS;
    }
    this.#timer = setTimeout(() => this.#sweep(), delay);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /**
   * Sweeps each SE that has something due, each on its own: an SE busy with
   * a long request (or a card that stopped answering) delays no other SE's
   * expirations, and one with nothing due is not made to wait for a turn.
   */
  #sweep(): void {
    let now: number;
    try {
      now = this.#clock();
    } catch {
      this.#schedule(EXPIRY_RETRY_MS);
      return;
    }
    for (const h of this.#hosts.values()) {
      if (now < h.nextExpiry || this.#sweeping.has(h)) continue;
      this.#sweeping.add(h);
      void this.#sweepHost(h);
    }
    this.#schedule();
  }

  async #sweepHost(h: SeHost): Promise<void> {
    let failed = false;
    const turn = h.acquire();
    if (turn) await turn;
    try {
      // Closed meanwhile: close() has released everything.
      if (!this.#closed) await this.#expire(h, this.#context(h, ''));
    } catch {
      failed = true;
    } finally {
      h.release();
      this.#sweeping.delete(h);
    }
    this.#schedule(failed ? EXPIRY_RETRY_MS : 0);
  }
}

/** The values of computed attributes a request stated (AttributeDef.stated), taken out of `values`: nothing is stored from them. */
function takeStated(def: CompiledType, values: Map<string, unknown>): Map<AttributeDef, unknown> | undefined {
  let stated: Map<AttributeDef, unknown> | undefined;
  for (const a of def.stated) {
    if (!values.has(a.name)) continue;
    (stated ??= new Map()).set(a, values.get(a.name));
    values.delete(a.name);
  }
  return stated;
}

/** A stated value is served when it is the one the SE computes for the resource. */
function checkStated(res: Resource, stated: ReadonlyMap<AttributeDef, unknown>): void {
  for (const [a, given] of stated) {
    const actual = a.sizeOf ? byteSize(res.attrs.get(a.sizeOf)) : res.attrs.get(a.name);
    if (given !== actual) throw badRequest(`${a.sn} (${a.name}) is computed by the SE: ${statedText(actual)} here, not ${statedText(given)}`);
  }
}

/** Not args.ts's shown(), which gives a string by its length: a stated value is a size, an SEType or an originator ID, no secret. */
const statedText = (v: unknown) => (typeof v === 'string' ? `'${quoted(v)}'` : String(v));

/** An UPDATE answers with what it changed: resourceID, lastModifiedTime and the attributes written (bulk data as its size). */
function modified(def: CompiledType, changes: Map<string, unknown>): readonly AttributeDef[] {
  // One attribute (the common UPDATE): its name is the key, without building a string.
  let names = '';
  if (changes.size === 1) names = changes.keys().next().value!;
  else for (const name of changes.keys()) names += `${name},`;
  let out = def.replies.get(names);
  if (out) return out;
  out = [def.byName.get('resourceID')!, def.byName.get('lastModifiedTime')!];
  for (const name of changes.keys()) {
    const a = def.byName.get(name)!;
    if (a.type.kind !== 'bytes') out.push(a);
    else if (def.sizeOf.has(name)) out.push(def.sizeOf.get(name)!);
  }
  // Bounded: a client choosing ever new attribute orders must not grow it.
  if (def.replies.size < 64) def.replies.set(names, out);
  return out;
}

/**
 * Writes a change to the store before it is applied: a chunk alone as an
 * append (the hot path: not the whole message again), anything else as the
 * resource the change will leave, which names the message when the change
 * leaves its bytes as they were (the journal then does not write it again).
 */
async function persist(store: Persistence, host: SeHost, res: Resource, change: Change, now: number): Promise<void> {
  const append = res.def.appendAttr?.name;
  const chunk = append && change.attrs.size === 1 ? change.attrs.get(append) : undefined;
  if (chunk instanceof Uint8Array) return store.append(host, res, append!, chunk, now);
  const next = prospect(res, change, now);
  try {
    await store.put(host, next.res, false);
  } finally {
    next.dispose();
  }
}

/**
 * A store that could not write answers 5000 (a failure of the SE, not of the
 * request; the client may repeat it), naming only the kind of failure: an
 * errno code or error name, never a path or data.
 */
function durably(write: Promise<void>): Promise<void> {
  return write.catch((e: unknown) => {
    if (BackendFailure.is(e)) throw e.cause;
    throw new McsError(RSC.INTERNAL_SERVER_ERROR, `storage write failed (${failureKind(e)}): nothing was changed`);
  });
}

/**
 * The fresh byte results of an operation that its response shows (those
 * without a read rule), for a binary response to take as they are; the
 * change borrows them instead, so the resource keeps a copy (in the array it
 * holds when the size is the same). One array is allocated per result
 * instead of two: a typed array above 64 bytes lives outside V8's heap, and
 * allocating the 1,040 bytes of a GCM result took about 0.7-0.8 us, 8 % of
 * an UPDATE + encrypt pair's profile. Smaller arrays are cheap to copy and
 * left alone (digests, MACs and signatures measured the same either way).
 */
function handOver(change: Change, shown: readonly AttributeDef[]): Map<string, Uint8Array> | undefined {
  let owned: Map<string, Uint8Array> | undefined;
  for (const a of shown) {
    const v = change.attrs.get(a.name);
    if (a.read || !(v instanceof Uint8Array) || v.length <= 64) continue;
    (owned ??= new Map()).set(a.name, v);
    change.attrs.set(a.name, new Borrowed(v));
  }
  return owned;
}

/**
 * Whether the caller asked for binary results; options that are no object (or null), a binary that
 * is no boolean, or options that cannot be read are the client's error (4000), like a request.
 */
function readBinary(options: SendOptions | null | undefined): boolean {
  try {
    return flagArg(optionsArg(options, 'send() options', SEND_OPTIONS)?.binary, 'the send() option binary', false);
  } catch (e) {
    throw unreadable(e, 'the send() options');
  }
}

/**
 * `req` with a copy of its content as it is now (the caller's objects
 * untouched); byte copies are added to `copies`. Content that cannot be read
 * is a 4000, as on the path that reads it without a copy (#content).
 */
function detached(req: McsRequest, copies: Uint8Array[]): McsRequest {
  try {
    return req.pc ? { ...req, pc: snapshot(req.pc, copies) } : req;
  } catch (e) {
    throw unreadable(e, 'the request content');
  }
}

/**
 * The resource an acpi entry names: a resource ID alone, or any address of
 * this SE (`<M2M-SE-ID>/<ri>`, hierarchical `<M2M-SE-ID>/reg/acp`, either
 * with a leading `/`). Stored as its resource ID.
 */
function policyAt(host: SeHost, id: string): Resource | undefined {
  const bare = host.byRi.get(id);
  if (bare) return bare;
  const path = id.startsWith('/') ? id.slice(1) : id;
  if (!path.startsWith(`${host.seId}/`)) return undefined;
  try {
    const target = host.resolve(path);
    return target.virtual ? undefined : target.res;
  } catch {
    return undefined;
  }
}

/** Zeroizes the byte values of a response's content (binary mode), at any depth. */
function wipeBytes(v: unknown): void {
  if (v instanceof Uint8Array) v.fill(0);
  else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) wipeBytes(x);
}

/** Zeroizes the byte values of a refused request or change (not the caller's own `borrowed` array). */
function wipe(values: Map<string, unknown>, borrowed?: Uint8Array): void {
  for (const v of values.values()) {
    if (v instanceof Uint8Array) {
      if (v !== borrowed) v.fill(0);
    } else if (v instanceof Borrowed) v.bytes.fill(0);
  }
}

/** A change that will not be applied: its bytes zeroized, its keys released. */
function discard(host: SeHost, change: Change, borrowed: Uint8Array | undefined): void {
  wipe(change.attrs, borrowed);
  for (const v of change.attrs.values()) if (isKeyHandle(v)) host.deleteKey(v);
}

function copyInto(into: Uint8Array, bytes: Uint8Array): Uint8Array {
  into.set(bytes);
  return into;
}

function reply(rsc: ResponseStatusCode, rqi: string, pc: Record<string, unknown> | Promise<Record<string, unknown>>): McsResponse | Promise<McsResponse> {
  return pc instanceof Promise ? pc.then((content) => ({ rsc, rqi, pc: content })) : { rsc, rqi, pc };
}

const expired = () => new McsError(RSC.REQUEST_TIMEOUT, 'the request expired (rqet) before it was served');

/**
 * Whether `turn` came within `ms` (real time: an injected clock is not read while waiting). A
 * deadline beyond the longest timer is left to the check at the turn.
 */
function servedBefore(turn: Promise<void>, ms: number): Promise<boolean> {
  if (ms > LONGEST_TIMER) return turn.then(() => true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, ms));
    void turn.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

const outOfService = (host: SeHost) => new McsError(RSC.INTERNAL_SERVER_ERROR, `SE out of service (${host.failed}): UPDATE an [SEReboot] (rb: true) to bring it back`);

/** A response echoes the request's release version (TS-0004), whatever answered it. */
function versioned(response: McsResponse, rvi: string | undefined): McsResponse {
  if (rvi) response.rvi = rvi;
  return response;
}

function failure(rqi: string, e: unknown): McsResponse {
  if (isA(e, McsError)) return { rsc: e.rsc, rqi, pc: { 'm2m:dbg': e.message } };
  if (isA(e, UnknownAlgorithmError)) return { rsc: RSC.NOT_IMPLEMENTED, rqi, pc: { 'm2m:dbg': e.message } };
  if (isA(e, StateError)) return { rsc: RSC.OPERATION_NOT_ALLOWED, rqi, pc: { 'm2m:dbg': e.message } };
  // As for the SE's quota (5207): the request is sound, the SE has no room for it now.
  if (isA(e, DeviceFullError)) return { rsc: RSC.NOT_ACCEPTABLE, rqi, pc: { 'm2m:dbg': `not enough memory on this SE: ${e.message}` } };
  if (isA(e, OutOfMemoryError)) return { rsc: RSC.NOT_ACCEPTABLE, rqi, pc: { 'm2m:dbg': 'not enough memory on this SE: its WASM core is full' } };
  return { rsc: RSC.INTERNAL_SERVER_ERROR, rqi, pc: { 'm2m:dbg': `internal error (${kindOf(e)})` } };
}

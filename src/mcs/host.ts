// One hosted secure environment: its backend, its M2M-SE-ID, its resource
// tree (registrations at the top, addressed from the M2M-SE-ID) and the
// indexes the engine resolves addresses with. Requests to one SE run one at
// a time (clause 7.3.0: concurrent accesses are resolved in the SE
// abstraction layer); different SEs do not wait for each other.
import { isKeyHandle, type KeyHandle, type RebootType, type SecureEnvironmentBackend } from '../backends/backend.ts';
import type { Context } from './context.ts';
import { compiledType, REGISTRATION_TYPES } from './registry.ts';
import { DeviceData, Resource } from './resource.ts';
import { Accumulator } from './accumulator.ts';
import { ExpiryQueue } from './expiry.ts';
import { kindOf, McsError, RSC } from './rsc.ts';
import type { ResourceType, VirtualDef } from './schema.ts';
import { resourceSize, treeSize } from './usage.ts';
import { toHex } from '../core/bytes.ts';
import { failureKind, StateError } from '../core/errors.ts';
import { randomBytes } from '../core/drbg.ts';
import { zeroize } from './handed.ts';
import { unawaited } from './settle.ts';

/** What a `to` address names on this SE. */
export interface Target {
  /** Undefined: the M2M-SE-ID itself, which stands for the originator's registration. */
  res?: Resource;
  virtual?: VirtualDef;
}

/** Resolved addresses kept between tree changes (an IN-CSE sends the same few addresses again and again). */
const ADDRESS_CACHE = 4096;

export class SeHost {
  readonly seId: string;
  readonly backend: SecureEnvironmentBackend;
  /** Resource types that can be created under a registration on this SE. */
  readonly supportedTypes: readonly number[];
  /** Registrations (<SE> resources) by resourceName. */
  readonly top = new Map<string, Resource>();
  readonly byRi = new Map<string, Resource>();
  readonly byOriginator = new Map<string, Resource>();
  /** Resources with an expirationTime, in the order they fall due. */
  readonly expiring = new ExpiryQueue<Resource>();
  failed: string | undefined;
  /** Set in the engine's close(), in this SE's turn: a request whose turn comes later is refused. */
  closed = false;
  /**
   * Bytes the host may keep for this SE's clients (src/mcs/usage.ts), and
   * what it keeps; undefined for an SE that keeps its data on the device and
   * reports its own memory.
   */
  readonly quota: number | undefined;
  used = 0;
  /**
   * Resource IDs whose data a CREATE that failed had written to the device and could not take back
   * (the device away or stalled): no resource names them, so the engine's close() removes them, or
   * names those that stay.
   */
  readonly strays = new Set<string>();
  /** Resolved addresses; emptied by every change of the tree. */
  readonly #addresses = new Map<string, Target>();
  #busy = false;
  /** Requests waiting for their turn: a queue read from #head (shift() costs its length, a backlog its square). */
  #waiting: ((() => void) | undefined)[] = [];
  #head = 0;
  #counter = 0;

  constructor(seId: string, backend: SecureEnvironmentBackend, quota?: number) {
    this.seId = seId;
    this.backend = backend;
    this.quota = quota;
    const caps = backend.capabilities;
    // A family with no algorithm on this backend is not offered at all.
    const offered: Record<number, number> = {
      20002: caps.cipherAlgorithms.length,
      20001: caps.cipherAlgorithms.length,
      20004: caps.hashAlgorithms.length,
      20012: caps.signatureAlgorithms.length,
      20007: caps.rngTypes.length,
      20010: caps.rebootTypes.length,
    };
    this.supportedTypes = REGISTRATION_TYPES.filter((ty) => offered[ty] !== 0);
  }

  /**
   * Takes this SE, at once when it is free (undefined) or when the returned
   * promise resolves; every acquire() is paired with a release(). Requests
   * are served one at a time, in the order they came.
   */
  acquire(): Promise<void> | undefined {
    if (!this.#busy) {
      this.#busy = true;
      return undefined;
    }
    return new Promise<void>((resume) => this.#waiting.push(resume));
  }

  release(): void {
    if (this.#head === this.#waiting.length) {
      this.#busy = false;
      return;
    }
    const resume = this.#waiting[this.#head]!;
    this.#waiting[this.#head++] = undefined;
    // Served entries are dropped once they are half the array: amortized constant time.
    if (this.#head === this.#waiting.length || this.#head > 1024 && 2 * this.#head > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    resume();
  }

  registrationOf(originator: string): Resource | undefined {
    return this.byOriginator.get(originator);
  }

  /** Type short name, a counter and 48 random bits: unique in this SE, also across restarts. */
  newRi(type: ResourceType): string {
    const prefix = type.root.slice(type.root.indexOf(':') + 1);
    for (;;) {
      const ri = `${prefix}${(++this.#counter).toString(36)}${toHex(randomBytes(6))}`;
      // Nor a registration's name: both stand as the first segment of an address.
      if (!this.byRi.has(ri) && !this.top.has(ri)) return ri;
    }
  }

  /** Creates a resource the SE maintains itself (e.g. [deviceInfo]) under a registration being created. */
  async systemChild(ctx: Context, parent: Resource, type: ResourceType, attrs: Record<string, unknown>, rn?: string): Promise<void> {
    const def = compiledType(type);
    const ri = this.newRi(type);
    const res = new Resource(def, ri, rn ?? type.name, parent, ctx.now);
    for (const [k, v] of Object.entries(attrs)) res.attrs.set(k, v);
    res.attrs.set('creator', parent.creator);
    await type.hooks?.create?.(ctx, res);
    parent.children.set(res.rn, res);
  }

  /** `<M2M-SE-ID>[/<ri or registration rn>[/<child rn>...][/<virtual>]]`, an optional leading '/'. */
  resolve(to: string): Target {
    let target = this.#addresses.get(to);
    if (target) return target;
    target = this.#walk(to);
    if (this.#addresses.size >= ADDRESS_CACHE) this.#addresses.clear();
    this.#addresses.set(to, target);
    return target;
  }

  #walk(to: string): Target {
    const segs = (to.startsWith('/') ? to.slice(1) : to).split('/');
    if (segs.length === 1) return {};
    const notFound = () => new McsError(RSC.NOT_FOUND, 'no resource at this address');
    const first = this.byRi.get(segs[1]!) ?? this.top.get(segs[1]!);
    if (!first) throw notFound();
    let res: Resource = first;
    for (let i = 2; i < segs.length; i++) {
      const seg = segs[i]!;
      const child: Resource | undefined = res.children.get(seg);
      if (child) {
        res = child;
        continue;
      }
      const virtual = res.def.virtuals.get(seg);
      if (virtual && i === segs.length - 1) return { res, virtual };
      throw notFound();
    }
    return { res };
  }

  /** Adds a resource (and the children it was created with) to the tree and the indexes. */
  link(res: Resource): void {
    this.#addresses.clear();
    if (res.parent) res.parent.children.set(res.rn, res);
    else {
      this.top.set(res.rn, res);
      this.byOriginator.set(res.creator, res);
    }
    this.#index(res);
  }

  #index(res: Resource): void {
    this.byRi.set(res.ri, res);
    this.used += resourceSize(res);
    this.watchExpiry(res);
    for (const c of res.children.values()) this.#index(c);
  }

  /** When the next resource falls due (or one removed since did: a sweep then finds nothing). */
  get nextExpiry(): number {
    return this.expiring.next;
  }

  watchExpiry(res: Resource): void {
    this.expiring.set(res, res.attrs.get('expirationTime') as number | undefined);
  }

  /** The resource IDs of a resource and everything below it: what remove() removes. */
  subtree(res: Resource): string[] {
    const ris: string[] = [];
    const walk = (r: Resource) => {
      for (const c of r.children.values()) walk(c);
      ris.push(r.ri);
    };
    walk(res);
    return ris;
  }

  /** Removes a resource and everything below it, zeroizing what they hold. */
  remove(ctx: Context, res: Resource): void {
    // Sized before anything changes: the walk must not stop half way, with some resources gone from the indexes.
    const freed = treeSize(res);
    this.#addresses.clear();
    const walk = (r: Resource) => {
      for (const c of r.children.values()) walk(c);
      r.def.type.hooks?.removed?.(ctx, r);
      this.releaseResource(r);
      this.byRi.delete(r.ri);
      this.expiring.delete(r);
    };
    walk(res);
    this.used -= freed;
    if (res.parent) res.parent.children.delete(res.rn);
    else {
      this.top.delete(res.rn);
      this.byOriginator.delete(res.creator);
    }
  }

  /**
   * Zeroizes and releases what a resource holds: keys, the data of its append
   * attribute, secrets. Its keys are deleted from a device too, unless
   * `keepDeviceKeys` (the engine closing with a store that still names them).
   */
  releaseResource(res: Resource, keepDeviceKeys = false): void {
    for (const [name, v] of res.attrs) {
      // A backend that throws here (breaking its contract: releaseKey, a stream's abort) must not
      // stop a removal half way: the store has recorded it, and the indexes must follow. The key or
      // stream is the backend's to clean up; every other value is still released.
      try {
        if (isKeyHandle(v)) {
          if (keepDeviceKeys) unawaited(this.backend.releaseKey(v));
          else this.deleteKey(v);
        }
        else if (v instanceof Accumulator) v.clear();
        else if (v instanceof Uint8Array && res.def.byName.get(name)?.secret) zeroize(v);
      } catch {
        // nothing to undo
      }
    }
  }

  /**
   * Removes from the device the data nothing will name again: the strays, and with `all` the data
   * every resource keeps there (a card's data objects; the engine closing without a store). Every
   * one is tried; then a StateError says how many stay (the device away or stalled), as the
   * backend's close says of keys.
   */
  async removeDeviceData(all: boolean): Promise<void> {
    const device = this.backend.objectStore;
    if (!device) return;
    const left: string[] = [];
    let cause: unknown;
    const ris = [...this.strays, ...(all ? [...this.byRi.values()].filter(keepsDeviceData).map((r) => r.ri) : [])];
    for (const ri of ris) {
      await device.remove(ri).catch((e: unknown) => {
        left.push(ri);
        cause ??= e;
      });
    }
    const one = left.length === 1;
    // Named by resource ID, the name the device's own directory keeps them under (a card's object FE).
    if (left.length) throw new StateError(`${left.length} data object${one ? '' : 's'} of <sensitiveDataObject>s stay${one ? 's' : ''} on the device (resource ID ${left.join(', ')}): removing ${one ? 'it' : 'them'} failed (${failureKind(cause)}); remove ${one ? 'it' : 'them'} with the device present (a card: PUT DATA 04 of the object its directory, object FE, names for the ID)`);
  }

  /** The key's resource is gone: deleted from a device too. */
  deleteKey(key: KeyHandle): void {
    if (this.backend.deleteKey) unawaited(this.backend.deleteKey(key));
    else unawaited(this.backend.releaseKey(key));
  }

  /** Releases a resource whose CREATE failed, with the children it was being created with (never in the tree: nothing else saw them). */
  discard(res: Resource): void {
    for (const c of res.children.values()) this.discard(c);
    this.releaseResource(res);
  }

  /** Refuses (5207) what would take the SE beyond its quota; whatever frees memory fits. */
  reserve(bytes: number): void {
    if (bytes <= 0 || this.quota === undefined || this.used + bytes <= this.quota) return;
    const available = Math.max(0, this.quota - this.used);
    throw new McsError(RSC.NOT_ACCEPTABLE, `not enough memory on this SE: ${bytes} bytes needed, ${available} available`);
  }

  /**
   * Resources whose expirationTime has passed, all of them from one sweep.
   * They leave the queue: what cannot be removed is watched again.
   */
  expired(now: number): Resource[] {
    return now < this.expiring.next ? [] : this.expiring.due(now);
  }

  /** [SEReboot]: drops every speculative stream (volatile state), then reboots the backend. */
  async reboot(type: RebootType): Promise<void> {
    for (const r of this.byRi.values()) {
      for (const v of r.attrs.values()) if (v instanceof Accumulator) v.dropStream();
    }
    try {
      await this.backend.reboot(type);
      this.failed = undefined;
    } catch (e) {
      this.failed = kindOf(e);
      // The request's change was committed before the reboot ran (it is never undone): the text says so.
      throw new McsError(RSC.INTERNAL_SERVER_ERROR, `SE reboot failed (${this.failed}): the request's change took effect, the SE is out of service`);
    }
  }
}

/** Whether `r` keeps data on the device (a `<sensitiveDataObject>` of an SE with an objectStore). */
export function keepsDeviceData(r: Resource): boolean {
  return [...r.attrs.values()].some((v) => v instanceof DeviceData);
}

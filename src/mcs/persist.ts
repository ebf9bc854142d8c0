// Where SE-resources are kept between runs. The engine calls these before it
// applies a change to its in-memory state: each call is one atomic write
// that resolves once it is durable, or rejects having stored nothing, and
// then the engine applies nothing either (docs/mcs.md "Failed writes"). A
// call after a failed one works normally once the storage does again.
//
// A store is handed the engine's own SE and resource objects; the types below
// publish only what a store reads of them (the rest is the engine's internals,
// which the package does not export).
import type { SecureEnvironmentBackend } from '../backends/backend.ts';

/**
 * What a store's write rejects with when the backend failed while the record was made (its
 * storeKey, or what it gave), before anything was written: the engine answers the backend's error,
 * not a disk's. The journal marks a failing loadKey so too while it loads, and throws the cause:
 * a backend's own TypeError is no damaged record.
 */
export class BackendFailure {
  constructor(readonly cause: unknown) {}

  /** Whether a store's rejection is one: a store may reject with any value (an anchor's own), and `instanceof` throws for some (a revoked proxy). */
  static is(e: unknown): e is BackendFailure {
    try {
      return e instanceof BackendFailure;
    } catch {
      return false;
    }
  }
}

/** The SE a store's call is about: its M2M-SE-ID keys the records, its backend seals and loads keys (storeKey, loadKey). */
export interface PersistedSe {
  /** The SE's M2M-SE-ID. */
  readonly seId: string;
  /** The SE's backend. */
  readonly backend: SecureEnvironmentBackend;
}

/** A resource as a store reads it. */
export interface PersistedResource {
  /** resourceID. */
  readonly ri: string;
  /** resourceName. */
  readonly rn: string;
  /** resourceType. */
  readonly ty: number;
  /** The parent resource; undefined for a registration (<SE>). */
  readonly parent: PersistedResource | undefined;
  /** creationTime, in ms since the epoch. */
  readonly created: number;
  /** lastModifiedTime, in ms since the epoch. */
  readonly modified: number;
  /** Attribute values by long name (the resource type's own: 'algorithm' of a <hash>), in the engine's form (bytes, numbers, ms timestamps, key handles, appended data). */
  readonly attrs: ReadonlyMap<string, unknown>;
  /** The child resources, by resourceName. */
  readonly children: ReadonlyMap<string, PersistedResource>;
  /**
   * In a put of a change: the append attributes whose data (not whether it was consumed) the
   * change leaves as it was, i.e. as the store's last write of this resource left it (the engine
   * applies only what was written). A store may keep what it holds of them instead of writing
   * the data again. Absent for a new resource.
   */
  readonly unchangedMessages?: ReadonlySet<string>;
  /**
   * In a put of a change: true when the change leaves every secret value (each key, and each
   * attribute declared secret but the append attribute's message, which unchangedMessages covers)
   * as the store's last write of this resource left it. A store may keep what it holds of them
   * instead of writing them again, and need not encode them (no storeKey call on the backend for
   * a key). Absent (or false) for a new resource, and for a change that sets, replaces or removes
   * a secret value.
   */
  readonly unchangedSecrets?: boolean;
}

/**
 * A store of SE-resources other than the data directory's journal (McsEngineOptions.store): the
 * engine calls it before it applies each change (docs/mcs.md, "Failed writes").
 */
export interface Persistence {
  /** A unique ID for the software SE of this data directory, the same on every run. */
  uniqueId(kind: string): Promise<string>;
  /**
   * Rebuilds the host's resource tree from what was stored for its M2M-SE-ID.
   * senv's journal does so through the engine's internals: a store of another
   * kind gets the SE's identity only, and brings nothing back.
   */
  load(host: PersistedSe): Promise<void>;
  /**
   * Stores a resource's state (and its children's, for a new registration),
   * as one write. `res` may be a copy showing the state a change will leave
   * (its values are only read, and only until the call resolves).
   */
  put(host: PersistedSe, res: PersistedResource, withChildren: boolean): Promise<void>;
  /** Stores a chunk appended to the resource's append attribute, and its new lastModifiedTime. */
  append(host: PersistedSe, res: PersistedResource, attr: string, chunk: Uint8Array, modified: number): Promise<void>;
  /** Removes resources (a resource and everything below it), as one write. */
  remove(host: PersistedSe, ris: readonly string[]): Promise<void>;
  /**
   * Moves what is stored to a new 32-byte master key (McsEngine.rotateMasterKey), resolving once it
   * is durably under it; the engine calls it with none of its writes under way, and zeroizes `masterKey`
   * after. A store without it cannot rotate.
   */
  rotateMasterKey?(masterKey: Uint8Array): Promise<void>;
  /** Releases the store (McsEngine.close(), after every SE closed); no call follows. */
  close(): Promise<void>;
}

// Where SE-resources are kept between runs. The engine calls these before it
// applies a change to its in-memory state: each call is one atomic write
// that resolves once it is durable, or rejects having stored nothing, and
// then the engine applies nothing either (docs/mcs.md "Failed writes"). A
// call after a failed one works normally once the storage does again.
import type { SeHost } from './host.ts';
import type { Resource } from './resource.ts';

/**
 * What a store's write rejects with when the backend failed while the record was made (its
 * storeKey), before anything was written: the engine answers the backend's error, not a disk's.
 */
export class BackendFailure {
  constructor(readonly cause: unknown) {}
}

export interface Persistence {
  /** A unique ID for the software SE of this data directory, the same on every run. */
  uniqueId(kind: string): Promise<string>;
  /** Rebuilds the host's resource tree from what was stored for its M2M-SE-ID. */
  load(host: SeHost): Promise<void>;
  /**
   * Stores a resource's state (and its children's, for a new registration),
   * as one write. `res` may be a copy showing the state a change will leave
   * (its values are only read, and only until the call resolves).
   */
  put(host: SeHost, res: Resource, withChildren: boolean): Promise<void>;
  /** Stores a chunk appended to the resource's append attribute, and its new lastModifiedTime. */
  append(host: SeHost, res: Resource, attr: string, chunk: Uint8Array, modified: number): Promise<void>;
  /** Removes resources (a resource and everything below it), as one write. */
  remove(host: SeHost, ris: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
